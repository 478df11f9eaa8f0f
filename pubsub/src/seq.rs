//! Who orders a room, and the seq counters its owner keeps.
//!
//! On a single node every room has one owner shard, chosen by hashing the room id over
//! the number of shards ([`owner_shard`]); that shard alone assigns the room's seqs
//! (1, 2, 3, ... with no gaps), so ordering needs no lock and no shared atomic. The
//! hash is FNV-1a (64-bit, over the id's UTF-8 bytes) followed by the SplitMix64
//! finaliser, reduced modulo the shard count. It is fixed here, not taken from a
//! library whose output may change between versions, so the same id maps to the same
//! shard on every build and platform for a given shard count. (Changing the shard
//! count remaps rooms; that only happens on a restart, which starts rooms afresh.)

use std::collections::HashMap;
use std::ops::RangeInclusive;

use crate::room::RoomId;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The SplitMix64 finaliser: spreads FNV's weak high/low bits over the whole word.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable 64-bit hash of a room id: FNV-1a 64 of its UTF-8 bytes, then the
/// SplitMix64 finaliser.
pub fn room_hash(room: &str) -> u64 {
    mix64(fnv1a64(room.as_bytes()))
}

/// The shard (`0..shards`) that orders `room`: `room_hash(room) % shards`.
///
/// # Panics
/// When `shards` is 0.
pub fn owner_shard(room: &str, shards: usize) -> usize {
    assert!(shards > 0, "there is at least one shard");
    (room_hash(room) % shards as u64) as usize
}

/// How an incoming seq follows the last seq delivered for its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuity {
    /// Exactly the next seq: deliver it.
    Next,
    /// At or before the last delivered seq: already delivered, drop it.
    Stale,
    /// Later than the next seq: these seqs are missing and must be recovered from
    /// history (or the receiver told it cannot be) before this one is delivered.
    Gap {
        /// The missing seqs.
        missing: RangeInclusive<u64>,
    },
}

/// Classifies `seq` against `last_delivered` (0 when nothing was delivered yet).
pub fn continuity(last_delivered: u64, seq: u64) -> Continuity {
    if seq <= last_delivered {
        Continuity::Stale
    } else if seq == last_delivered + 1 {
        Continuity::Next
    } else {
        Continuity::Gap {
            missing: last_delivered + 1..=seq - 1,
        }
    }
}

/// One room's seq counter: the last seq assigned. Plain data, owned by the room's
/// owner shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounter {
    last: u64,
}

impl SeqCounter {
    /// A counter for a room with no events: the first seq is 1.
    pub const fn new() -> Self {
        Self { last: 0 }
    }

    /// A counter that continues after `last` (a room whose events up to `last` exist).
    pub const fn starting_after(last: u64) -> Self {
        Self { last }
    }

    /// Assigns the next seq.
    pub fn next_seq(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// The last seq assigned (0 when none).
    pub const fn last(&self) -> u64 {
        self.last
    }
}

/// The shard count was 0, or the shard index was not below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard} is not one of {shards} shards")]
pub struct ShardError {
    /// The shard index given.
    pub shard: usize,
    /// The shard count given.
    pub shards: usize,
}

/// This shard does not order the room: its owner does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room {room} is ordered by shard {owner}, not by this one")]
pub struct NotOwner {
    /// The room.
    pub room: String,
    /// The shard that owns it.
    pub owner: usize,
}

/// A shard's seq counters for the rooms it owns.
#[derive(Debug)]
pub struct Sequencer {
    shard: usize,
    shards: usize,
    rooms: HashMap<RoomId, SeqCounter, foldhash::fast::RandomState>,
}

impl Sequencer {
    /// The sequencer of shard `shard` out of `shards`.
    ///
    /// # Errors
    /// [`ShardError`] when `shard >= shards`.
    pub fn new(shard: usize, shards: usize) -> Result<Self, ShardError> {
        if shard >= shards {
            return Err(ShardError { shard, shards });
        }
        Ok(Self {
            shard,
            shards,
            rooms: HashMap::default(),
        })
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Whether this shard orders `room`.
    pub fn owns(&self, room: &str) -> bool {
        owner_shard(room, self.shards) == self.shard
    }

    /// Assigns the next seq of `room` (1 for its first event).
    ///
    /// # Errors
    /// [`NotOwner`] when another shard orders `room`.
    pub fn next_seq(&mut self, room: &str) -> Result<u64, NotOwner> {
        let owner = owner_shard(room, self.shards);
        if owner != self.shard {
            return Err(NotOwner {
                room: room.to_owned(),
                owner,
            });
        }
        if let Some(counter) = self.rooms.get_mut(room) {
            return Ok(counter.next_seq());
        }
        let mut counter = SeqCounter::new();
        let seq = counter.next_seq();
        self.rooms.insert(RoomId::from(room), counter);
        Ok(seq)
    }

    /// The last seq assigned in `room` (0 when none, or when another shard owns it).
    pub fn last_seq(&self, room: &str) -> u64 {
        self.rooms.get(room).map_or(0, SeqCounter::last)
    }

    /// How many rooms have had a seq assigned here.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (Fowler/Noll/Vo).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_room_hash_is_pinned() {
        // Golden values: if these change, rooms move between shards.
        assert_eq!(room_hash(""), mix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(room_hash("ch_u1"), GOLDEN[0]);
        assert_eq!(room_hash("ch_u2"), GOLDEN[1]);
        assert_eq!(room_hash("général"), GOLDEN[2]);
        assert_eq!(owner_shard("ch_u1", 4), 3);
        assert_eq!(owner_shard("ch_u2", 4), 2);
    }
    /// Computed with an independent implementation (Python) of FNV-1a 64 + SplitMix64.
    const GOLDEN: [u64; 3] = [
        0x4273_ef6a_af22_4f8b,
        0xc6d6_f73e_ee4a_aa06,
        0x575b_46c1_4fc9_d16a,
    ];

    #[test]
    fn owner_shard_is_in_range_and_deterministic() {
        for shards in 1..=16 {
            for i in 0..200 {
                let room = format!("ch_{i}");
                let owner = owner_shard(&room, shards);
                assert!(owner < shards);
                assert_eq!(owner, owner_shard(&room, shards));
            }
        }
        assert_eq!(owner_shard("anything", 1), 0);
    }

    #[test]
    fn owner_shard_spreads_sequential_ids_evenly() {
        for shards in [2, 3, 4, 8, 16] {
            let mut counts = vec![0_usize; shards];
            let rooms = 20_000;
            for i in 0..rooms {
                counts[owner_shard(&format!("ch_u{i}"), shards)] += 1;
            }
            let mean = rooms / shards;
            for (shard, &count) in counts.iter().enumerate() {
                assert!(
                    count.abs_diff(mean) * 10 < mean,
                    "shard {shard} of {shards} got {count} rooms, mean {mean}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least one shard")]
    fn owner_shard_of_zero_shards_panics() {
        owner_shard("ch_1", 0);
    }

    #[test]
    fn continuity_classifies_next_stale_and_gaps() {
        assert_eq!(continuity(0, 1), Continuity::Next);
        assert_eq!(continuity(6, 7), Continuity::Next);
        assert_eq!(continuity(7, 7), Continuity::Stale);
        assert_eq!(continuity(7, 3), Continuity::Stale);
        assert_eq!(continuity(0, 2), Continuity::Gap { missing: 1..=1 });
        assert_eq!(continuity(4, 9), Continuity::Gap { missing: 5..=8 });
    }

    #[test]
    fn a_counter_counts_from_one_or_after_a_known_seq() {
        let mut counter = SeqCounter::new();
        assert_eq!(counter.last(), 0);
        assert_eq!(
            [counter.next_seq(), counter.next_seq(), counter.next_seq()],
            [1, 2, 3]
        );
        assert_eq!(counter.last(), 3);
        let mut resumed = SeqCounter::starting_after(41);
        assert_eq!(resumed.next_seq(), 42);
    }

    #[test]
    fn a_sequencer_orders_only_the_rooms_its_shard_owns() {
        let shards = 4;
        let mut sequencers: Vec<_> = (0..shards)
            .map(|s| Sequencer::new(s, shards).unwrap())
            .collect();
        for i in 0..100 {
            let room = format!("ch_{i}");
            let owner = owner_shard(&room, shards);
            for sequencer in &mut sequencers {
                assert_eq!(sequencer.owns(&room), sequencer.shard() == owner);
                if sequencer.shard() == owner {
                    assert_eq!(sequencer.next_seq(&room), Ok(1));
                    assert_eq!(sequencer.next_seq(&room), Ok(2));
                    assert_eq!(sequencer.last_seq(&room), 2);
                } else {
                    assert_eq!(
                        sequencer.next_seq(&room),
                        Err(NotOwner {
                            room: room.clone(),
                            owner
                        })
                    );
                    assert_eq!(sequencer.last_seq(&room), 0);
                }
            }
        }
        assert_eq!(sequencers.iter().map(Sequencer::rooms).sum::<usize>(), 100);
    }

    #[test]
    fn rooms_are_counted_independently() {
        let mut sequencer = Sequencer::new(0, 1).unwrap();
        assert_eq!(sequencer.next_seq("a"), Ok(1));
        assert_eq!(sequencer.next_seq("b"), Ok(1));
        assert_eq!(sequencer.next_seq("a"), Ok(2));
        assert_eq!(sequencer.last_seq("b"), 1);
        assert_eq!(sequencer.last_seq("never"), 0);
    }

    #[test]
    fn a_sequencer_needs_a_valid_shard() {
        assert_eq!(
            Sequencer::new(2, 2).unwrap_err(),
            ShardError {
                shard: 2,
                shards: 2
            }
        );
        assert!(Sequencer::new(0, 0).is_err());
        assert!(Sequencer::new(1, 2).is_ok());
    }
}
