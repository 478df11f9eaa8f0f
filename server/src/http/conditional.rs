//! Conditional GETs: a response with an `ETag` the client already holds (its
//! `If-None-Match` names it) is answered 304 with no body. Judged once the encoding is
//! chosen, against the tag of the variant this request would get (`http::compress`), so a
//! client that cached the br variant revalidates the br variant.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, ETAG, IF_NONE_MATCH};
use hyper::{Method, Response, StatusCode};

use super::Body;

/// Renames the response's `ETag` for an encoded variant: `"abc"` becomes `"abc-br"`
/// (`W/"abc"`, `W/"abc-br"`).
pub fn tag_variant(headers: &mut HeaderMap, coding: &str) {
    let Some(tag) = headers.get(ETAG).and_then(|t| t.to_str().ok()) else {
        return;
    };
    let Some(open) = tag.strip_suffix('"') else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{open}-{coding}\"")) {
        headers.insert(ETAG, v);
    }
}

/// Whether the client already holds `response`: a `GET` or `HEAD` answered 200 with an
/// `ETag` that the request's `If-None-Match` names (weak comparison, RFC 9110 13.1.2),
/// or `If-None-Match: *`.
pub fn client_has(method: &Method, request: &HeaderMap, response: &Response<Body>) -> bool {
    if !(method == Method::GET || method == Method::HEAD) || response.status() != StatusCode::OK {
        return false;
    }
    let Some(tag) = response.headers().get(ETAG).and_then(|t| t.to_str().ok()) else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(tag);
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

/// `response` as a 304: the same headers (`ETag`, `Vary`, `Cache-Control`), no body.
pub fn not_modified(mut response: Response<Body>) -> Response<Body> {
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.body_mut() = Body::new(Bytes::new());
    response.headers_mut().remove(CONTENT_LENGTH);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_etag(tag: &'static str) -> Response<Body> {
        let mut r = Response::new(Body::new(Bytes::from_static(b"{}")));
        r.headers_mut().insert(ETAG, HeaderValue::from_static(tag));
        r
    }

    fn inm(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn variants_get_their_own_tag() {
        let mut r = with_etag("\"abc\"");
        tag_variant(r.headers_mut(), "br");
        assert_eq!(r.headers()[ETAG], "\"abc-br\"");
        let mut r = with_etag("W/\"abc\"");
        tag_variant(r.headers_mut(), "gzip");
        assert_eq!(r.headers()[ETAG], "W/\"abc-gzip\"");
    }

    #[test]
    fn if_none_match_names_the_variant() {
        let r = with_etag("\"abc-br\"");
        assert!(client_has(&Method::GET, &inm("\"abc-br\""), &r));
        assert!(client_has(&Method::GET, &inm("\"x\", W/\"abc-br\""), &r));
        assert!(client_has(&Method::GET, &inm("*"), &r));
        assert!(!client_has(&Method::GET, &inm("\"abc\""), &r));
        assert!(!client_has(&Method::POST, &inm("\"abc-br\""), &r));
        assert!(!client_has(&Method::GET, &HeaderMap::new(), &r));
        let r = not_modified(r);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[ETAG], "\"abc-br\"");
    }
}
