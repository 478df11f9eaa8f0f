//! Open connections per client address, counted node-wide in a lock-free table every
//! shard shares, so `STREAMHUB_MAX_CONNECTIONS_PER_IP` holds exactly wherever the
//! kernel puts a client's connections.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A count's value once its address has no connection and the entry is leaving: an
/// admission that still holds it looks again.
const LEAVING: u32 = u32::MAX;

/// Open connections by client address.
#[derive(Debug)]
pub struct PerAddress {
    /// Connections allowed per address; 0 for no limit.
    limit: u32,
    open: papaya::HashMap<IpAddr, AtomicU32, foldhash::fast::RandomState>,
}

impl PerAddress {
    /// Counts for a node allowing `limit` connections per address (0: no limit).
    pub fn new(limit: u32) -> PerAddress {
        PerAddress {
            limit,
            open: papaya::HashMap::default(),
        }
    }

    /// Whether addresses are counted at all.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Counts a new connection from `ip`; true when it is past the limit (it is counted
    /// all the same, and [`release`](Self::release)d when it closes).
    pub fn admit(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let open = self.open.pin();
        loop {
            let count = open.get_or_insert_with(ip, || AtomicU32::new(0));
            let mut seen = count.load(Ordering::Acquire);
            while seen != LEAVING {
                match count.compare_exchange_weak(
                    seen,
                    seen + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return seen + 1 > self.limit,
                    Err(v) => seen = v,
                }
            }
            let _ = open.remove_if(&ip, |_, c| c.load(Ordering::Acquire) == LEAVING);
        }
    }

    /// Uncounts a connection [`admit`](Self::admit)ted from `ip`; the address's entry
    /// leaves with its last connection.
    pub fn release(&self, ip: IpAddr) {
        let ip = ip.to_canonical();
        let open = self.open.pin();
        let Some(count) = open.get(&ip) else {
            return;
        };
        // Never LEAVING here: this connection is still counted in it.
        if count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Marked before it goes, so an admission racing with this starts a new entry.
            let _ = open.remove_if(&ip, |_, c| {
                c.compare_exchange(0, LEAVING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            });
        }
    }

    /// Open connections counted for `ip`.
    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> u32 {
        self.open
            .pin()
            .get(&ip.to_canonical())
            .map_or(0, |c| c.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn past_the_limit_is_refused_until_one_closes() {
        let p = PerAddress::new(2);
        let a = ip("10.0.0.1");
        assert!(!p.admit(a));
        assert!(!p.admit(a));
        assert!(p.admit(a), "the third is past the limit");
        assert!(
            !p.admit(ip("10.0.0.2")),
            "another address has its own count"
        );
        p.release(a);
        p.release(a);
        assert!(!p.admit(a));
        // IPv4-mapped IPv6 is the same address.
        assert!(p.admit(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn an_address_leaves_with_its_last_connection() {
        let p = PerAddress::new(5);
        let a = ip("10.0.0.3");
        p.admit(a);
        p.release(a);
        assert_eq!(p.count(a), 0);
        assert_eq!(p.open.len(), 0);
    }

    #[test]
    fn threads_opening_and_closing_at_once_keep_an_exact_count() {
        let p = PerAddress::new(1000);
        let a = ip("10.0.0.4");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        assert!(!p.admit(a));
                        p.release(a);
                    }
                    for _ in 0..10 {
                        p.admit(a);
                    }
                });
            }
        });
        assert_eq!(p.count(a), 40);
    }
}
