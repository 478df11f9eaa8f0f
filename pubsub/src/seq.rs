//! How an incoming seq follows the last one a receiver delivered: the next one, one it
//! already has, or one after a gap that must be recovered from history (or its
//! subscribers told it cannot be) first.

use std::ops::RangeInclusive;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_classifies_next_stale_and_gaps() {
        assert_eq!(continuity(0, 1), Continuity::Next);
        assert_eq!(continuity(6, 7), Continuity::Next);
        assert_eq!(continuity(7, 7), Continuity::Stale);
        assert_eq!(continuity(7, 3), Continuity::Stale);
        assert_eq!(continuity(0, 2), Continuity::Gap { missing: 1..=1 });
        assert_eq!(continuity(4, 9), Continuity::Gap { missing: 5..=8 });
    }
}
