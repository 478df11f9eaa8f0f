//! Response compression: `br` or `gzip`, as the request's `Accept-Encoding` prefers,
//! for text bodies of at least `STREAMHUB_COMPRESS_MIN_BYTES` (`STREAMHUB_COMPRESS=false`:
//! never). Every body here is one complete buffer, so it is compressed in one call on the
//! shard that made it; the levels are chosen by measurement (`benches/compress.rs`,
//! perf/RESULTS.md).
//!
//! A response that could be compressed says `Vary: Accept-Encoding` whether or not this
//! request takes it, so a shared cache never hands one client's encoding to another. Its
//! `ETag`, when it has one, names the encoding (`"…-br"`): a compressed variant is not the
//! same bytes as the identity one (`http::conditional` then compares against the tag of
//! the variant this request would get).

use std::io::Write;

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Method, Response, StatusCode};

use super::response::add_vary;
use super::Body;
use crate::config::Config;

/// The brotli quality responses are compressed at (0-11), chosen on the 4.6 KB channel
/// page (`benches/compress.rs`, perf/RESULTS.md 2026-11-30) as the level with the most
/// bytes saved less 10 bytes per µs of CPU (medians of 6 runs): quality 3 saves 73% for
/// ~55 µs; 2 saves 59 bytes less for ~4 µs less (a near tie), 4 costs 1.6x for 15 bytes
/// more, and from 5 on the encoder's larger hashers cost ~1.7 ms per response for 76%.
pub const BROTLI_QUALITY: u32 = 3;

/// The gzip level responses are compressed at (1-9), by the same rule: level 6 (zlib's
/// default) saves 73% for ~42 µs; 2 to 5 are within 3 µs of it for 71-73%, level 1 saves
/// 62% for ~22 µs, and 7 to 9 cost more for 13 bytes more.
pub const GZIP_LEVEL: u32 = 6;

/// A content coding the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli (RFC 7932).
    Br,
    /// gzip (RFC 1952).
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// Compresses `data` at the server's level for this coding.
    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Coding::Br => brotli(data, BROTLI_QUALITY),
            Coding::Gzip => gzip(data, GZIP_LEVEL),
        }
    }
}

/// Whether `response` to a `method` request may be sent compressed: compression is on,
/// the request is not `HEAD` (its headers must be those of the `GET`), the status has a
/// body worth it (not 1xx, 204, 206 or 304), the body is text of at least the
/// threshold and nothing has encoded it yet.
pub fn compressible(method: &Method, response: &Response<Body>, config: &Config) -> bool {
    let status = response.status();
    if !config.compress
        || method == Method::HEAD
        || status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return false;
    }
    let headers = response.headers();
    if headers.contains_key(CONTENT_ENCODING) {
        return false;
    }
    let large = hyper::body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|n| n >= config.compress_min_bytes as u64);
    large && headers.get(CONTENT_TYPE).is_some_and(is_text)
}

/// Whether a content type is text that compresses: `text/*`, JSON (GraphQL's media types
/// included), JavaScript, XML, SVG.
fn is_text(content_type: &HeaderValue) -> bool {
    let Ok(ct) = content_type.to_str() else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("json")
        || essence.ends_with("javascript")
        || essence.ends_with("xml")
}

/// The coding a response is sent with, by the request's `Accept-Encoding`: the
/// acceptable one with the highest q-value, br when br and gzip tie; none when the
/// header is absent (clients that decode send it), when neither is acceptable (q=0, or
/// neither listed nor covered by `*`), or when `identity` is listed with a higher q-value.
pub fn negotiate(request: &HeaderMap) -> Option<Coding> {
    let mut present = false;
    // q-values in thousandths, for br, gzip, identity and `*`: the first mention counts.
    let (mut br, mut gzip, mut identity, mut any) = (None, None, None, None);
    for value in request.get_all(ACCEPT_ENCODING) {
        present = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for p in params {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim());
                    }
                }
            }
            // An item with a q-value we cannot read is left out.
            let Some(q) = q else { continue };
            let slot = if name.eq_ignore_ascii_case("br") {
                &mut br
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if name == "*" {
                &mut any
            } else {
                continue;
            };
            slot.get_or_insert(q);
        }
    }
    if !present {
        return None;
    }
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    // Unlisted, identity is still acceptable, as the fallback, but it is not preferred
    // over a listed coding.
    let identity = identity.or(any).unwrap_or(0);
    let (coding, q) = if br >= gzip {
        (Coding::Br, br)
    } else {
        (Coding::Gzip, gzip)
    };
    (q > 0 && q >= identity).then_some(coding)
}

/// A q-value (`0`, `0.5`, `1.000`) in thousandths; None when it is not one.
fn parse_q(s: &str) -> Option<u16> {
    let q: f32 = s.parse().ok()?;
    (q.is_finite() && (0.0..=1.0).contains(&q)).then(|| (q * 1000.0).round() as u16)
}

/// `response` with its body compressed with `coding` and `Content-Encoding` set (hyper
/// writes the new `Content-Length`); unchanged if the compressor fails.
pub fn encode(coding: Coding, mut response: Response<Body>) -> Response<Body> {
    let body = std::mem::replace(response.body_mut(), Body::new(Bytes::new()));
    let data = match body {
        Body::Full(full) => full.into_inner().unwrap_or_default(),
        // A stream goes out as it comes (`compressible` says no to it).
        stream => {
            *response.body_mut() = stream;
            return response;
        }
    };
    match coding.compress(&data) {
        Ok(compressed) => {
            *response.body_mut() = Body::new(Bytes::from(compressed));
            let headers = response.headers_mut();
            headers.remove(CONTENT_LENGTH);
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
        }
        Err(e) => {
            tracing::warn!(error = %e, coding = coding.token(), "compression failed; sent as is");
            *response.body_mut() = Body::new(data);
        }
    }
    response
}

/// Marks a compressible response as varying by `Accept-Encoding`.
pub fn vary(response: &mut Response<Body>) {
    add_vary(response.headers_mut(), "Accept-Encoding");
}

/// `data` compressed with brotli at `quality` (0-11), with a window just large enough
/// for it (a smaller window is less memory to set up, for the same output).
pub fn brotli(data: &[u8], quality: u32) -> std::io::Result<Vec<u8>> {
    // A window of 2^lgwin - 16 bytes holds the whole input: brotli allows 10 to 24.
    let mut lgwin = 10;
    while lgwin < 24 && (1usize << lgwin) - 16 < data.len() {
        lgwin += 1;
    }
    let params = brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(quality.min(11)).unwrap_or(11),
        lgwin,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    Ok(out)
}

/// `data` compressed with gzip at `level` (1-9).
pub fn gzip(data: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let out = Vec::with_capacity(data.len() / 4 + 64);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level.min(9)));
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn negotiated(value: &'static str) -> Option<Coding> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static(value));
        negotiate(&h)
    }

    #[test]
    fn accept_encoding_is_negotiated_by_q_value() {
        assert_eq!(negotiate(&HeaderMap::new()), None);
        assert_eq!(negotiated(""), None);
        assert_eq!(negotiated("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(negotiated("gzip"), Some(Coding::Gzip));
        assert_eq!(negotiated("x-gzip"), Some(Coding::Gzip));
        assert_eq!(negotiated("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(negotiated("br;q=0, gzip;q=0"), None);
        assert_eq!(negotiated("BR;Q=1.0"), Some(Coding::Br));
        assert_eq!(negotiated("identity"), None);
        assert_eq!(negotiated("gzip;q=0.5, identity"), None);
        assert_eq!(negotiated("gzip, identity"), Some(Coding::Gzip));
        assert_eq!(negotiated("*"), Some(Coding::Br));
        assert_eq!(negotiated("*;q=0.1, br;q=0"), Some(Coding::Gzip));
        assert_eq!(negotiated("*;q=0"), None);
        assert_eq!(negotiated("deflate"), None);
        // A q-value that is not one leaves its item out.
        assert_eq!(negotiated("br;q=2, gzip;q=abc"), None);
        assert_eq!(negotiated("br;q=2, gzip"), Some(Coding::Gzip));
    }

    #[test]
    fn both_codings_round_trip() {
        let data = br#"{"data":{"channel":{"title":"hello"}}}"#.repeat(100);
        let mut out = Vec::new();
        brotli::Decompressor::new(&brotli(&data, BROTLI_QUALITY).unwrap()[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&data, GZIP_LEVEL).unwrap()[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // Empty and window-sized inputs too.
        for n in [0, 1008, 1009, 70_000] {
            let data = vec![b'a'; n];
            let mut out = Vec::new();
            brotli::Decompressor::new(&brotli(&data, 11).unwrap()[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out.len(), n);
        }
    }

    fn config(args: &[&str]) -> Config {
        use clap::Parser;
        let mut argv = vec!["streamhub"];
        argv.extend_from_slice(args);
        match crate::config::Cli::try_parse_from(argv)
            .unwrap()
            .into_command()
        {
            crate::config::Command::Serve(c) => *c,
            _ => unreachable!("no subcommand was given"),
        }
    }

    fn response(status: StatusCode, len: usize, content_type: &'static str) -> Response<Body> {
        let mut r = Response::new(Body::new(Bytes::from(vec![b'a'; len])));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    }

    #[test]
    fn only_large_text_bodies_of_get_and_post_are_compressible() {
        let on = config(&[]);
        let json = "application/json";
        assert!(compressible(
            &Method::GET,
            &response(StatusCode::OK, 1024, json),
            &on
        ));
        assert!(compressible(
            &Method::POST,
            &response(StatusCode::BAD_REQUEST, 4096, json),
            &on
        ));
        assert!(!compressible(
            &Method::GET,
            &response(StatusCode::OK, 1023, json),
            &on
        ));
        assert!(!compressible(
            &Method::HEAD,
            &response(StatusCode::OK, 4096, json),
            &on
        ));
        for status in [
            StatusCode::SWITCHING_PROTOCOLS,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            assert!(!compressible(
                &Method::GET,
                &response(status, 4096, json),
                &on
            ));
        }
        assert!(!compressible(
            &Method::GET,
            &response(StatusCode::OK, 4096, "image/png"),
            &on
        ));
        let mut encoded = response(StatusCode::OK, 4096, json);
        encoded
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!compressible(&Method::GET, &encoded, &on));
        let off = config(&["--compress", "false"]);
        assert!(!compressible(
            &Method::GET,
            &response(StatusCode::OK, 4096, json),
            &off
        ));
        let low = config(&["--compress-min-bytes", "10"]);
        assert!(compressible(
            &Method::GET,
            &response(StatusCode::OK, 10, json),
            &low
        ));
    }

    #[test]
    fn an_encoded_response_says_so_and_decodes() {
        let data = br#"{"data":{"x":1}}"#.repeat(200);
        let mut r = Response::new(Body::new(Bytes::from(data.clone())));
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
        let r = encode(Coding::Gzip, r);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        assert!(!r.headers().contains_key(CONTENT_LENGTH));
        let Body::Full(full) = r.into_body() else {
            panic!("a full body stays full");
        };
        let body = full.into_inner().unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn text_types_compress_and_others_do_not() {
        for ct in [
            "application/json",
            "application/graphql-response+json; charset=utf-8",
            "text/plain; version=0.0.4",
            "text/html",
            "image/svg+xml",
        ] {
            assert!(is_text(&HeaderValue::from_static(ct)), "{ct}");
        }
        for ct in ["image/png", "application/octet-stream"] {
            assert!(!is_text(&HeaderValue::from_static(ct)), "{ct}");
        }
    }
}
