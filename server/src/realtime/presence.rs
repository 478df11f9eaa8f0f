//! Presence: how many connections are joined to each room on this node (room protocol
//! members; GraphQL subscriptions do not count), node-wide and lock-free (one atomic per
//! room in a concurrent map), plus, with other nodes (Redis), their counts as last
//! reported. The hubs count joins and leaves; `viewerCount` and the lists ordered by
//! viewers read the sum. The demo data seeds it for its live channels.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// Viewer counts by room.
#[derive(Debug, Default)]
pub struct Presence {
    counts: papaya::HashMap<Box<str>, AtomicU32, foldhash::fast::RandomState>,
    /// Other nodes' counts, summed (empty on one node).
    remote: papaya::HashMap<Box<str>, AtomicU32, foldhash::fast::RandomState>,
    /// Whether other nodes ever reported (one node never reads `remote`).
    shared: AtomicBool,
}

impl Presence {
    /// Presence with these counts to start with.
    pub fn seeded(counts: impl IntoIterator<Item = (Box<str>, u32)>) -> Presence {
        let p = Presence::default();
        {
            let map = p.counts.pin();
            for (room, n) in counts {
                map.insert(room, AtomicU32::new(n));
            }
        }
        p
    }

    /// The viewers of `room`.
    pub fn count(&self, room: &str) -> u32 {
        let local = self.counts.pin().get(room).map_or(0, |n| n.load(Relaxed));
        if !self.shared.load(Relaxed) {
            return local;
        }
        let remote = self.remote.pin().get(room).map_or(0, |n| n.load(Relaxed));
        local.saturating_add(remote)
    }

    /// The viewers of all of `rooms` together (one pin of each map for all).
    pub fn total<'a>(&self, rooms: impl IntoIterator<Item = &'a str>) -> u64 {
        let local = self.counts.pin();
        let count = |n: &AtomicU32| u64::from(n.load(Relaxed));
        if !self.shared.load(Relaxed) {
            return rooms
                .into_iter()
                .filter_map(|room| local.get(room).map(count))
                .sum();
        }
        let remote = self.remote.pin();
        rooms
            .into_iter()
            .map(|room| local.get(room).map_or(0, count) + remote.get(room).map_or(0, count))
            .sum()
    }

    /// This node's own counts (rooms with viewers), to report to the other nodes.
    pub fn local(&self) -> Vec<(Box<str>, u32)> {
        self.counts
            .pin()
            .iter()
            .map(|(room, n)| (room.clone(), n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The other nodes' counts, summed by room, as last reported: every room not in
    /// `sums` has none there.
    pub fn set_remote(&self, sums: &[(String, u64)]) {
        self.shared.store(true, Relaxed);
        let remote = self.remote.pin();
        for (room, n) in remote.iter() {
            if !sums.iter().any(|(r, _)| **r == **room) {
                n.store(0, Relaxed);
            }
        }
        for (room, n) in sums {
            let n = u32::try_from(*n).unwrap_or(u32::MAX);
            match remote.get(room.as_str()) {
                Some(count) => count.store(n, Relaxed),
                None => {
                    remote.insert(room.as_str().into(), AtomicU32::new(n));
                }
            }
        }
    }

    /// A connection joined `room`.
    pub fn joined(&self, room: &str) {
        let map = self.counts.pin();
        match map.get(room) {
            Some(n) => {
                n.fetch_add(1, Relaxed);
            }
            None => {
                map.get_or_insert_with(room.into(), || AtomicU32::new(0))
                    .fetch_add(1, Relaxed);
            }
        }
    }

    /// A connection left `room`.
    pub fn left(&self, room: &str) {
        if let Some(n) = self.counts.pin().get(room) {
            // Never below zero, even if a seeded count was smaller than the leaves.
            let _ = n.fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_nodes_counts_add_to_this_ones_until_they_report_none() {
        let p = Presence::seeded([("ch_u1".into(), 2)]);
        p.set_remote(&[("ch_u1".into(), 3), ("ch_u2".into(), 4)]);
        assert_eq!((p.count("ch_u1"), p.count("ch_u2")), (5, 4));
        assert_eq!(p.total(["ch_u1", "ch_u2"]), 9);
        assert_eq!(
            p.local(),
            [("ch_u1".into(), 2)],
            "only this node's are reported"
        );
        p.set_remote(&[("ch_u2".into(), 1)]);
        assert_eq!((p.count("ch_u1"), p.count("ch_u2")), (2, 1));
    }

    #[test]
    fn joins_and_leaves_count_from_the_seed_and_never_below_zero() {
        let p = Presence::seeded([("ch_u1".into(), 5)]);
        assert_eq!(p.count("ch_u1"), 5);
        assert_eq!(p.count("ch_u9"), 0);
        p.joined("ch_u9");
        p.joined("ch_u9");
        p.joined("ch_u1");
        p.left("ch_u9");
        assert_eq!((p.count("ch_u1"), p.count("ch_u9")), (6, 1));
        assert_eq!(p.total(["ch_u1", "ch_u9", "ch_u7"]), 7);
        p.left("ch_u9");
        p.left("ch_u9");
        assert_eq!(p.count("ch_u9"), 0);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let p = std::sync::Arc::new(Presence::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = std::sync::Arc::clone(&p);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        p.joined("r");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(p.count("r"), 4000);
    }
}
