//! RFC 3339 timestamps in UTC with microseconds, e.g. `2026-11-24T12:00:00.000123Z`.
//! The date and time of day are recomputed only when the second changes.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS`
const PREFIX_LEN: usize = 19;

thread_local! {
    static CACHE: Cell<(u64, [u8; PREFIX_LEN])> = const { Cell::new((u64::MAX, [0; PREFIX_LEN])) };
}

/// Appends the current time.
pub fn write_now(out: &mut Vec<u8>) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    write_timestamp(out, since.as_secs(), since.subsec_micros());
}

/// Appends the timestamp of `secs` seconds and `micros` microseconds after the epoch.
pub fn write_timestamp(out: &mut Vec<u8>, secs: u64, micros: u32) {
    let prefix = CACHE.with(|c| {
        let (cached_secs, prefix) = c.get();
        if cached_secs == secs {
            prefix
        } else {
            let prefix = date_time(secs);
            c.set((secs, prefix));
            prefix
        }
    });
    out.extend_from_slice(&prefix);
    out.push(b'.');
    let mut frac = [b'0'; 6];
    let mut m = micros;
    for d in frac.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&frac);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time (days to civil date after Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn date_time(secs: u64) -> [u8; PREFIX_LEN] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hour, min, sec) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);

    let mut b = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, hour);
    put(14, 2, min);
    put(17, 2, sec);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: u64, micros: u32) -> String {
        let mut out = Vec::new();
        write_timestamp(&mut out, secs, micros);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_instants_format_exactly() {
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.
        assert_eq!(ts(951_827_696, 7), "2000-02-29T12:34:56.000007Z");
        // 2026-11-24T12:00:00Z
        assert_eq!(ts(1_795_521_600, 123_456), "2026-11-24T12:00:00.123456Z");
        // The last second of 2099-12-31.
        assert_eq!(ts(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }

    #[test]
    fn the_cache_follows_the_second() {
        assert_eq!(ts(86_399, 1), "1970-01-01T23:59:59.000001Z");
        assert_eq!(ts(86_400, 2), "1970-01-02T00:00:00.000002Z");
        assert_eq!(ts(86_399, 3), "1970-01-01T23:59:59.000003Z");
    }
}
