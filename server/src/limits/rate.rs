//! Rate limits per client, exact per node: the user for authenticated calls, the client
//! address (behind trusted proxies, the forwarded one) for anonymous ones. Each budget
//! (queries, mutations, chat sends, WebSocket connects) has its own buckets.
//!
//! A bucket is one atomic per client and budget in a lock-free table every shard shares
//! (`papaya`): the generic cell rate algorithm keeps the time at which the bucket will
//! be full again (its "theoretical arrival time"), and a call is one compare-and-swap
//! of it. So a client gets the node's whole budget wherever the kernel puts its
//! connections, and no shard waits on another.
//!
//! With `STREAMHUB_RATE_SCOPE=cluster` the same algorithm runs in Redis, one script
//! call per call on Redis' clock, so a client's budget holds across the nodes; while
//! Redis cannot be reached, each node's own buckets stand in (logged once).
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use streamhub_pubsub::redis::RedisRooms;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// An authenticated user, by id.
    User(Rc<str>),
    /// An anonymous client, by address.
    Ip(IpAddr),
}

/// A client as the node-wide table keeps it (shareable across threads).
#[derive(Debug, PartialEq, Eq)]
enum Key {
    User(Box<str>),
    Ip(IpAddr),
}

// `Client` is looked up without building a `Key`, so both hash the same way.
impl Hash for Client {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Client::User(id) => (0u8, &**id).hash(h),
            Client::Ip(ip) => (1u8, ip).hash(h),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Key::User(id) => (0u8, &**id).hash(h),
            Key::Ip(ip) => (1u8, ip).hash(h),
        }
    }
}

impl papaya::Equivalent<Key> for Client {
    fn equivalent(&self, key: &Key) -> bool {
        match (self, key) {
            (Client::User(a), Key::User(b)) => **a == **b,
            (Client::Ip(a), Key::Ip(b)) => a == b,
            _ => false,
        }
    }
}

impl Client {
    fn key(&self) -> Key {
        match self {
            Client::User(id) => Key::User(Box::from(&**id)),
            Client::Ip(ip) => Key::Ip(*ip),
        }
    }
}

/// A bucket's value once a sweep has taken it out of the table: a caller that still
/// holds it looks again.
const SWEPT: u64 = u64::MAX;

/// Past this many clients, buckets that have refilled completely are dropped (they hold
/// nothing a new bucket would not), at most once a second.
const SWEEP_ABOVE: usize = 10_000;

/// One budget's buckets: for each client, the time (nanoseconds after `epoch`) at
/// which its bucket is full again.
#[derive(Debug)]
struct Buckets {
    /// Time one call adds (the period over the count).
    interval: u64,
    /// How far ahead of now a bucket may run: the burst less one call.
    tolerance: u64,
    map: papaya::HashMap<Key, AtomicU64, foldhash::fast::RandomState>,
    last_sweep: AtomicU64,
}

impl Buckets {
    fn new(rate: Rate) -> Buckets {
        let period = u64::try_from(rate.period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(rate.count)).max(1);
        Buckets {
            interval,
            tolerance: interval.saturating_mul(u64::from(rate.count) - 1),
            map: papaya::HashMap::default(),
            last_sweep: AtomicU64::new(0),
        }
    }

    fn take(&self, client: &Client, now: u64) -> Result<(), Duration> {
        let map = self.map.pin();
        if map.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        loop {
            let full_at = match map.get(client) {
                Some(b) => b,
                None => map.get_or_insert_with(client.key(), || AtomicU64::new(0)),
            };
            let mut seen = full_at.load(Ordering::Acquire);
            while seen != SWEPT {
                let from = seen.max(now);
                if from - now > self.tolerance {
                    return Err(Duration::from_nanos(from - now - self.tolerance));
                }
                match full_at.compare_exchange_weak(
                    seen,
                    from + self.interval,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(()),
                    Err(v) => seen = v,
                }
            }
            // A sweep took this bucket out (it was full): take it out now if the sweep
            // has not yet, and start a new one.
            let _ = map.remove_if(client, |_, b| b.load(Ordering::Acquire) == SWEPT);
        }
    }

    /// Drops full buckets, at most once a second; one caller sweeps, the rest go on.
    fn sweep(&self, now: u64) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1_000_000_000
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.map.pin().retain(|_, b| {
            let full_at = b.load(Ordering::Acquire);
            // Marked first, so a concurrent call sees SWEPT and starts a new bucket
            // instead of spending from one that is leaving.
            !(full_at <= now
                && b.compare_exchange(full_at, SWEPT, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok())
        });
    }
}

/// The node's rate limits, shared by every shard.
#[derive(Debug)]
pub struct Limiter {
    budgets: [Option<Buckets>; 4],
    epoch: Instant,
    /// With the cluster scope: Redis, where the budgets are spent.
    cluster: Option<RedisRooms>,
    /// Whether the last call to Redis failed (the node's buckets stand in).
    failing: AtomicBool,
}

impl Limiter {
    /// Limits for the node: each budget's `rates` (by [`Budget`] order) per client.
    pub fn new(rates: [Option<Rate>; 4], now: Instant) -> Limiter {
        Limiter {
            budgets: rates.map(|r| r.map(Buckets::new)),
            epoch: now,
            cluster: None,
            failing: AtomicBool::new(false),
        }
    }

    /// Spends the budgets in `redis` from now on, across every node that does.
    pub fn across_nodes(&mut self, redis: RedisRooms) {
        self.cluster = Some(redis);
    }

    /// Spends one call of `budget` for `client`, or says how long until one is
    /// allowed: in Redis with the cluster scope (the node's own buckets while Redis
    /// cannot be reached), else on the node ([`Limiter::check`]).
    pub async fn spend(
        &self,
        budget: Budget,
        client: &Client,
        now: Instant,
    ) -> Result<(), Duration> {
        match (&self.cluster, &self.budgets[budget as usize]) {
            // Boxed: the callers' futures stay as small as with the node scope.
            (Some(redis), Some(b)) => Box::pin(self.spend_in(redis, b, budget, client, now)).await,
            _ => self.check(budget, client, now),
        }
    }

    /// [`Limiter::spend`] in Redis.
    async fn spend_in(
        &self,
        redis: &RedisRooms,
        b: &Buckets,
        budget: Budget,
        client: &Client,
        now: Instant,
    ) -> Result<(), Duration> {
        let bucket = match client {
            Client::User(id) => format!("{}:u:{id}", budget as u8),
            Client::Ip(ip) => format!("{}:ip:{ip}", budget as u8),
        };
        let spent = redis
            .spend(
                &bucket,
                Duration::from_nanos(b.interval),
                Duration::from_nanos(b.tolerance),
            )
            .await;
        match spent {
            Ok(spent) => {
                self.failing.store(false, Ordering::Relaxed);
                spent
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate limits: Redis cannot be reached: each node spends its own budgets meanwhile");
                }
                self.check(budget, client, now)
            }
        }
    }

    /// Spends one call of `budget` for `client`, or says how long until one is allowed.
    pub fn check(&self, budget: Budget, client: &Client, now: Instant) -> Result<(), Duration> {
        match &self.budgets[budget as usize] {
            Some(b) => {
                let since = now.saturating_duration_since(self.epoch).as_nanos();
                b.take(client, u64::try_from(since).unwrap_or(u64::MAX - 1))
            }
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
        let l = Limiter::new([rate("10/10s"), None, None, None], t0);
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
        let l = Limiter::new([rate("1/1m"), rate("1/1m"), None, None], t0);
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
    fn every_thread_spends_from_the_same_buckets() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("1000/1h"), None, None, None], t0);
        let allowed = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let c = ip("10.0.0.1");
                    let n = (0..500)
                        .filter(|_| l.check(Budget::Query, &c, t0).is_ok())
                        .count();
                    allowed.fetch_add(n, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(allowed.into_inner(), 1000, "exactly the node's budget");
    }

    #[test]
    fn full_buckets_are_swept_when_there_are_many_clients_and_spending_goes_on() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("5/1s"), None, None, None], t0);
        let busy = ip("10.9.9.9");
        for i in 0..(SWEEP_ABOVE as u32 + 10) {
            let c = Client::Ip(IpAddr::from(i.to_be_bytes()));
            l.check(Budget::Query, &c, t0).unwrap();
        }
        let later = t0 + Duration::from_secs(5);
        for _ in 0..5 {
            l.check(Budget::Query, &busy, later).unwrap();
        }
        let b = l.budgets[0].as_ref().unwrap();
        assert!(b.map.len() <= 2, "{} buckets left", b.map.len());
        // The busy client spent its five after the sweep: its sixth call waits.
        assert!(l.check(Budget::Query, &busy, later).is_err());
        // A swept client starts again with a full bucket.
        let c = Client::Ip(IpAddr::from(7u32.to_be_bytes()));
        assert!(l.check(Budget::Query, &c, later).is_ok());
    }

    #[test]
    fn users_and_addresses_never_share_a_bucket() {
        let t0 = Instant::now();
        let l = Limiter::new([rate("1/1m"), None, None, None], t0);
        let user = Client::User(Rc::from("10.0.0.1"));
        assert!(l.check(Budget::Query, &ip("10.0.0.1"), t0).is_ok());
        assert!(l.check(Budget::Query, &user, t0).is_ok());
        assert!(l.check(Budget::Query, &user, t0).is_err());
    }
}
