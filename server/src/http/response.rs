//! JSON error responses, shaped like GraphQL errors so every client parses one format:
//! `{"errors":[{"message":"...","extensions":{"code":"..."}}]}`.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, VARY};
use hyper::{Response, StatusCode};

use super::Body;

/// The `extensions.code` of an error response (SPEC.md's codes, plus the HTTP-only ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or over a limit.
    BadRequest,
    /// No such route.
    NotFound,
    /// The route does not answer this method.
    MethodNotAllowed,
    /// The server cannot answer now (timeout, draining, store down).
    ServiceUnavailable,
    /// The credentials were refused.
    Unauthenticated,
    /// The client is over a limit; `Retry-After` says when to come back.
    RateLimited,
}

impl ErrorCode {
    /// The code as it appears in `extensions.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::RateLimited => "RATE_LIMITED",
        }
    }
}

/// A JSON response with a static or rendered body.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error response: `status` with a JSON body carrying `message` and `code`.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    let mut r = json(status, body.to_string());
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Adds `name` to the response's `Vary` (one header, its names comma-separated), unless
/// it is there already or `Vary` is `*`.
pub fn add_vary(headers: &mut HeaderMap, name: &'static str) {
    let mut names: Vec<&str> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names
        .iter()
        .any(|n| *n == "*" || n.eq_ignore_ascii_case(name))
    {
        return;
    }
    if names.is_empty() {
        headers.insert(VARY, HeaderValue::from_static(name));
        return;
    }
    names.push(name);
    let joined = names.join(", ");
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_names_merge_into_one_header_once() {
        let mut h = HeaderMap::new();
        add_vary(&mut h, "Origin");
        assert_eq!(h[VARY], "Origin");
        add_vary(&mut h, "origin");
        assert_eq!(h[VARY], "Origin");
        h.insert(VARY, HeaderValue::from_static("Accept, Authorization"));
        h.append(VARY, HeaderValue::from_static("Origin"));
        add_vary(&mut h, "Accept-Encoding");
        assert_eq!(
            h.get_all(VARY).iter().collect::<Vec<_>>(),
            ["Accept, Authorization, Origin, Accept-Encoding"]
        );
        h.insert(VARY, HeaderValue::from_static("*"));
        add_vary(&mut h, "Origin");
        assert_eq!(h[VARY], "*");
    }
}
