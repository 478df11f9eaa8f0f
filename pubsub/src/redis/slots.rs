//! Redis Cluster's key slots: which of the 16,384 slots a key falls in (CRC16 of its
//! hash tag), and for every slot a short tag that falls in it, so that a key made for a
//! slot (a slot's epoch) shares it with the room keys of that slot and one script may
//! touch both.

use std::sync::OnceLock;

/// How many slots a Redis Cluster has.
pub const SLOTS: usize = 16_384;

/// CRC16/XMODEM (polynomial 0x1021, no reflection), as Redis Cluster hashes keys.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: of its hash tag (what is between its first `{` and the next `}`,
/// when that is not empty), else of the whole key.
pub fn slot(key: &str) -> u16 {
    let tagged = key.find('{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.find('}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key).as_bytes()) % SLOTS as u16
}

/// A tag that falls in slot `of` (below [`SLOTS`]): `{<tag>}` in a key puts the key
/// there.
pub fn tag(of: u16) -> &'static str {
    static TAGS: OnceLock<Vec<Box<str>>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<Option<Box<str>>> = vec![None; SLOTS];
        let mut missing = SLOTS;
        let mut n: u64 = 0;
        // About 170,000 tries fill every slot (the coupon collector's n·ln n).
        while missing > 0 {
            let candidate = format!("s{n}");
            let s = usize::from(slot(&candidate));
            if tags[s].is_none() {
                tags[s] = Some(candidate.into());
                missing -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(|t| t.unwrap_or_default()).collect()
    });
    &tags[usize::from(of) % SLOTS]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // CLUSTER KEYSLOT's answers on Redis 7.0.
        assert_eq!(slot("foo"), 12_182);
        assert_eq!(slot("123456789"), 12_739);
        assert_eq!(slot("sh:{ch_u1}:seq"), slot("ch_u1"));
        assert_eq!(slot("{ch_u1}"), slot("ch_u1"));
        assert_eq!(
            slot("a{}b"),
            crc16(b"a{}b") % 16_384,
            "an empty tag: the whole key"
        );
    }

    #[test]
    fn every_slot_has_a_tag_that_falls_in_it() {
        for s in 0..SLOTS as u16 {
            assert_eq!(slot(&format!("sh:{{{}}}:epoch", tag(s))), s);
        }
    }
}
