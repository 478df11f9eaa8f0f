//! Token-bucket rate limits per client: the user for authenticated calls, the client
//! address (behind trusted proxies, the forwarded one) for anonymous ones. Each budget
//! (queries, mutations, chat sends, WebSocket connects) has its own buckets.
//!
//! Buckets live per shard, with the node-wide rate split evenly across shards, so
//! checking one takes no lock. A client whose connections all land on one shard gets
//! that shard's share; SO_REUSEPORT spreads connections by their addresses, so a client
//! with several connections spreads over shards too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

/// A rate: `count` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per period (also the burst).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

/// Parses `<count>/<period>` (`20/30s`, `100/1s`) or `off` (no limit).
pub fn parse_rate(s: &str) -> Result<Option<Rate>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (count, period) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a rate like 20/30s, or off"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: the count must be a whole number"))?;
    let period = humantime::parse_duration(period.trim())
        .map_err(|e| format!("`{s}`: the period is not a duration: {e}"))?;
    if count == 0 || period.is_zero() {
        return Err(format!("`{s}`: use `off` for no limit, not a zero rate"));
    }
    Ok(Some(Rate { count, period }))
}

/// What a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A GraphQL query.
    Query = 0,
    /// A GraphQL mutation.
    Mutation = 1,
    /// A chat message, by mutation or by the room protocol.
    Chat = 2,
    /// A WebSocket upgrade.
    WsConnect = 3,
}

/// Who spends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An authenticated user, by id.
    User(Rc<str>),
    /// An anonymous client, by address.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Buckets {
    capacity: f64,
    per_second: f64,
    map: HashMap<Client, Bucket, foldhash::fast::RandomState>,
    last_sweep: Instant,
}

/// Past this many clients, buckets that have refilled completely are dropped (they hold
/// nothing a new bucket would not).
const SWEEP_ABOVE: usize = 10_000;

impl Buckets {
    fn take(&mut self, client: &Client, now: Instant) -> Result<(), Duration> {
        if self.map.len() > SWEEP_ABOVE
            && now.duration_since(self.last_sweep) >= Duration::from_secs(1)
        {
            let (capacity, rate) = (self.capacity, self.per_second);
            self.map
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
            self.last_sweep = now;
        }
        let capacity = self.capacity;
        let b = self.map.entry(client.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_second).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
    }
}

/// One shard's rate limits.
#[derive(Debug)]
pub struct Limiter {
    budgets: [Option<RefCell<Buckets>>; 4],
}

impl Limiter {
    /// Limits for one of `shards` shards: each budget's node-wide `rates` (by
    /// [`Budget`] order) split evenly; a burst of at least one call.
    pub fn new(rates: [Option<Rate>; 4], shards: usize, now: Instant) -> Limiter {
        let shards = shards.max(1) as f64;
        Limiter {
            budgets: rates.map(|r| {
                r.map(|r| {
                    RefCell::new(Buckets {
                        capacity: (f64::from(r.count) / shards).max(1.0),
                        per_second: f64::from(r.count) / r.period.as_secs_f64() / shards,
                        map: HashMap::default(),
                        last_sweep: now,
                    })
                })
            }),
        }
    }

    /// Spends one call of `budget` for `client`, or says how long until one is allowed.
    pub fn check(&self, budget: Budget, client: &Client, now: Instant) -> Result<(), Duration> {
        match &self.budgets[budget as usize] {
            Some(b) => b.borrow_mut().take(client, now),
            None => Ok(()),
        }
    }
}

/// The `Retry-After` value for a wait: whole seconds, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Option<Rate> {
        parse_rate(s).unwrap()
    }

    fn ip(s: &str) -> Client {
        Client::Ip(s.parse().unwrap())
    }

    #[test]
    fn rates_parse() {
        assert_eq!(
            rate("20/30s"),
            Some(Rate {
                count: 20,
                period: Duration::from_secs(30)
            })
        );
        assert_eq!(
            rate(" 100 / 1s "),
            Some(Rate {
                count: 100,
                period: Duration::from_secs(1)
            })
        );
        assert_eq!(rate("OFF"), None);
        for bad in ["20", "x/1s", "20/soon", "0/1s", "5/0s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_the_wait_then_refilled() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("10/10s"), None, None, None], 1, t0);
        let c = ip("10.0.0.1");
        for _ in 0..10 {
            assert!(l.check(Budget::Query, &c, t0).is_ok());
        }
        let wait = l.check(Budget::Query, &c, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        // One token back per second.
        assert!(l
            .check(Budget::Query, &c, t0 + Duration::from_secs(1))
            .is_ok());
        assert!(l
            .check(Budget::Query, &c, t0 + Duration::from_secs(1))
            .is_err());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(l.check(Budget::Query, &c, later).is_ok());
        }
        assert!(l.check(Budget::Query, &c, later).is_err());
    }

    #[test]
    fn clients_and_budgets_are_independent_and_off_is_unlimited() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("1/1m"), rate("1/1m"), None, None], 1, t0);
        let (a, b) = (ip("10.0.0.1"), Client::User(Rc::from("u1")));
        assert!(l.check(Budget::Query, &a, t0).is_ok());
        assert!(l.check(Budget::Query, &a, t0).is_err());
        assert!(
            l.check(Budget::Query, &b, t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(
            l.check(Budget::Mutation, &a, t0).is_ok(),
            "another budget has its own bucket"
        );
        for _ in 0..1000 {
            assert!(l.check(Budget::Chat, &a, t0).is_ok());
        }
    }

    #[test]
    fn the_node_rate_is_split_across_shards() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("100/1s"), None, None, None], 4, t0);
        let c = ip("10.0.0.1");
        let allowed = (0..100)
            .filter(|_| l.check(Budget::Query, &c, t0).is_ok())
            .count();
        assert_eq!(allowed, 25);
        // 25 a second on this shard: one back every 40 ms.
        assert!(l
            .check(Budget::Query, &c, t0 + Duration::from_millis(40))
            .is_ok());
    }

    #[test]
    fn full_buckets_are_swept_when_there_are_many_clients() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("5/1s"), None, None, None], 1, t0);
        for i in 0..(SWEEP_ABOVE as u32 + 10) {
            let c = Client::Ip(IpAddr::from(i.to_be_bytes()));
            l.check(Budget::Query, &c, t0).unwrap();
        }
        let later = t0 + Duration::from_secs(5);
        l.check(Budget::Query, &ip("10.9.9.9"), later).unwrap();
        let b = l.budgets[0].as_ref().unwrap().borrow();
        assert!(b.map.len() <= 2, "{} buckets left", b.map.len());
    }
}
