//! Small conversions between the store's values and GraphQL's: the `DateTime` scalar,
//! keyset cursors, and argument readers.

use async_graphql_value::ConstValue;
use graphql_exec::exec::{Args, FieldError, Leaf, Out, Resolved};

use crate::store::cursor::Cursor;
use crate::store::Millis;

/// The `BAD_USER_INPUT` code.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
/// The `NOT_FOUND` code.
pub const NOT_FOUND: &str = "NOT_FOUND";

/// A `DateTime`: RFC 3339 in UTC with milliseconds, `2026-11-24T12:00:00.000Z`.
pub fn date_time(ms: Millis) -> String {
    let mut buf = [0u8; 24];
    write_date_time(ms, &mut buf).to_owned()
}

/// A `DateTime` written into `buf`, with no allocation.
pub fn write_date_time(ms: Millis, buf: &mut [u8; 24]) -> &str {
    let ms = ms.max(0) as u64;
    buf[..19].copy_from_slice(&crate::logging::clock::date_time(ms / 1000));
    let frac = ms % 1000;
    buf[19] = b'.';
    buf[20] = b'0' + (frac / 100) as u8;
    buf[21] = b'0' + (frac / 10 % 10) as u8;
    buf[22] = b'0' + (frac % 10) as u8;
    buf[23] = b'Z';
    // Every byte written is ASCII.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// A cursor, as a string value.
pub fn cursor(out: &mut Out<'_, super::Obj>, cursor: &Cursor) -> Resolved<super::Obj> {
    out.text(&cursor.encode())
}

/// A string leaf, escaped into the response's text arena.
pub fn string(out: &mut Out<'_, super::Obj>, s: &str) -> Resolved<super::Obj> {
    out.text(s)
}

/// An Int leaf.
pub fn int(n: impl Into<i64>) -> Resolved<super::Obj> {
    Resolved::Leaf(Leaf::Int(n.into()))
}

/// A Boolean leaf.
pub fn boolean(b: bool) -> Resolved<super::Obj> {
    Resolved::Leaf(Leaf::Boolean(b))
}

/// A `DateTime` leaf.
pub fn time(out: &mut Out<'_, super::Obj>, ms: Millis) -> Resolved<super::Obj> {
    let mut buf = [0u8; 24];
    out.text(write_date_time(ms, &mut buf))
}

/// An optional string argument (absent and null are both None).
pub fn str_arg<'a>(args: &'a Args<'_>, name: &str) -> Option<&'a str> {
    match args.get(name) {
        Some(ConstValue::String(s)) => Some(s),
        Some(ConstValue::Enum(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// An optional Int argument.
pub fn int_arg(args: &Args<'_>, name: &str) -> Option<i64> {
    match args.get(name) {
        Some(ConstValue::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// A page size argument (`first`, `last`): 0 to 100.
pub fn count_arg(args: &Args<'_>, name: &str, default: usize) -> Result<usize, FieldError> {
    match int_arg(args, name) {
        None => Ok(default),
        Some(n @ 0..=100) => Ok(n as usize),
        Some(n) => Err(FieldError::new(
            BAD_USER_INPUT,
            format!("`{name}` must be between 0 and 100, not {n}"),
        )),
    }
}

/// The `after` cursor, if given.
pub fn after_arg(args: &Args<'_>) -> Result<Option<Cursor>, FieldError> {
    str_arg(args, "after")
        .map(|c| Cursor::decode(c).map_err(|e| FieldError::new(BAD_USER_INPUT, e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_have_milliseconds_and_z() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(date_time(1_795_521_600_007), "2026-11-24T12:00:00.007Z");
        assert_eq!(date_time(1_795_521_600_999), "2026-11-24T12:00:00.999Z");
    }
}
