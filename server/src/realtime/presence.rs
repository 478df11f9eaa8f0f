//! Presence: how many connections are joined to each room on this node (room protocol
//! members; GraphQL subscriptions do not count), node-wide and lock-free (one atomic per
//! room in a concurrent map). The hubs count joins and leaves; `viewerCount` and the
//! lists ordered by viewers read it. The demo data seeds it for its live channels.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Viewer counts by room.
#[derive(Debug, Default)]
pub struct Presence {
    counts: papaya::HashMap<Box<str>, AtomicU32, foldhash::fast::RandomState>,
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
        self.counts.pin().get(room).map_or(0, |n| n.load(Relaxed))
    }

    /// The viewers of all of `rooms` together (one pin of the map for all).
    pub fn total<'a>(&self, rooms: impl IntoIterator<Item = &'a str>) -> u64 {
        let map = self.counts.pin();
        rooms
            .into_iter()
            .filter_map(|room| map.get(room))
            .map(|n| u64::from(n.load(Relaxed)))
            .sum()
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
