//! CORS: which browser pages on other origins may call the API (`STREAMHUB_CORS_ORIGINS`),
//! after the Fetch standard's CORS protocol.
//!
//! - Origins are exact (`https://app.example.com`, compared ASCII case-insensitively, as
//!   browsers serialize them in lower case). A listed origin is echoed in
//!   `Access-Control-Allow-Origin` with `Access-Control-Allow-Credentials: true`. `*`
//!   lets any other origin read responses too, as `Access-Control-Allow-Origin: *`
//!   without credentials (the Fetch standard refuses `*` with credentials; bearer tokens
//!   in `Authorization` are a header, not credentials, so they still work).
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) gets 204
//!   from the route (see [`super::route::Route::allow`]) and here, for an allowed origin,
//!   the allowed methods, the allowed request headers and how long the browser may
//!   cache the answer. An origin that is not allowed gets the 204 with no CORS header at
//!   all, and the browser refuses the request. tower-http's `CorsLayer`, which Apollo
//!   Router builds on, answers such a preflight the same way (success, no
//!   `Access-Control-Allow-Origin`); a 403 would tell the page's script nothing more
//!   (it sees the same opaque network error either way) and would be one more status for
//!   caches and dashboards to tell apart from real refusals.
//! - Every response of a CORS route carries `Vary: Origin` once CORS is configured, a
//!   request without `Origin` included: its headers depend on the origin, and a shared
//!   cache must not hand one origin's answer to another.
//! - Only the API routes take part ([`applies_to`]); WebSocket upgrades have their own
//!   origin check (`STREAMHUB_WS_ALLOWED_ORIGINS`). Unset, nothing here adds a header.

use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use hyper::{Method, Response, StatusCode};

use super::response::add_vary;
use super::route::Route;
use super::Body;

/// The methods a cross-origin page may use.
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";

/// The request headers a cross-origin page may send: what GraphQL clients (Apollo
/// Client's client name and version, its CSRF-prevention headers), tracing
/// (`traceparent`, `tracestate`), request ids, conditional GETs and SSE reconnects send.
/// The whole list is answered, not only what one preflight asked for: the browser checks
/// each name it wants against it, and caches the answer for each, so a later request
/// with another of these headers needs no new preflight.
const ALLOW_HEADERS: &str = "accept, authorization, content-type, apollographql-client-name, \
    apollographql-client-version, apollo-require-preflight, x-apollo-operation-name, \
    x-request-id, traceparent, tracestate, if-none-match, last-event-id";

/// The response headers a cross-origin page's script may read besides the safelisted
/// ones (`Cache-Control`, `Content-Type`, ...).
const EXPOSE_HEADERS: &str = "x-request-id, etag, retry-after, www-authenticate";

/// How long a browser may reuse a preflight's answer, in seconds: Chromium's cap (two
/// hours; Firefox allows a day).
const MAX_AGE: &str = "7200";

/// The origins allowed to read responses: `STREAMHUB_CORS_ORIGINS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    /// Exact origins, lower case: echoed, with credentials.
    listed: Vec<String>,
    /// `*` was given: any other origin may read, without credentials.
    any: bool,
}

impl CorsOrigins {
    /// Whether CORS is off (no origin listed, no `*`).
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && !self.any
    }
}

/// Parses `STREAMHUB_CORS_ORIGINS`: comma-separated origins (`scheme://host[:port]`,
/// no path, no trailing slash) and optionally `*`; empty: CORS off.
pub fn parse_origins(s: &str) -> Result<CorsOrigins, String> {
    let mut origins = CorsOrigins::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "*" {
            origins.any = true;
            continue;
        }
        if part.eq_ignore_ascii_case("null") {
            return Err(
                "`null` is the origin of sandboxed frames and local files, which any page can \
                 make; it cannot be listed (use `*` to let every origin read without credentials)"
                    .into(),
            );
        }
        let Some((scheme, rest)) = part.split_once("://") else {
            return Err(format!(
                "`{part}` is not an origin like https://app.example.com"
            ));
        };
        // RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c));
        if !scheme_ok || rest.is_empty() {
            return Err(format!(
                "`{part}` is not an origin like https://app.example.com"
            ));
        }
        if let Some(i) = rest.find(['/', '?', '#']) {
            return Err(format!(
                "`{part}` has a path; an origin is scheme, host and port only: `{scheme}://{}`",
                &rest[..i]
            ));
        }
        if !rest.bytes().all(|c| c.is_ascii_graphic() && c != b',') {
            return Err(format!("`{part}` has characters no origin has"));
        }
        let origin = part.to_ascii_lowercase();
        if !origins.listed.contains(&origin) {
            origins.listed.push(origin);
        }
    }
    Ok(origins)
}

/// Whether CORS headers are given on `route`: the API a page on another origin calls
/// (GraphQL over HTTP and the SDL code generators fetch), not the operations endpoints,
/// the playground (served from this origin) or WebSocket routes.
pub fn applies_to(route: Route) -> bool {
    matches!(route, Route::GraphQl | Route::Schema)
}

/// What a request's origin is granted.
enum Grant {
    /// A listed origin: echoed, with credentials.
    Listed(HeaderValue),
    /// Any origin, by `*`: no credentials.
    Any,
}

impl CorsOrigins {
    fn grant(&self, request: &HeaderMap) -> Option<Grant> {
        let mut values = request.get_all(ORIGIN).iter();
        let origin = values.next()?;
        if values.next().is_some() {
            // Two Origin headers: no browser sends that.
            return None;
        }
        if self
            .listed
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
        {
            return Some(Grant::Listed(origin.clone()));
        }
        self.any.then_some(Grant::Any)
    }
}

/// Adds the CORS headers `response` gets on `route` for a request with `method` and
/// `request` headers: none while CORS is off or off the API routes; `Vary: Origin`, and
/// for an allowed origin what it is allowed (a preflight: methods, headers, max age;
/// any other request: the headers its script may read).
pub fn decorate(
    origins: &CorsOrigins,
    route: Route,
    method: &Method,
    request: &HeaderMap,
    response: &mut Response<Body>,
) {
    if origins.is_empty()
        || !applies_to(route)
        || response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        return;
    }
    let headers = response.headers_mut();
    add_vary(headers, "Origin");
    let Some(grant) = origins.grant(request) else {
        return;
    };
    match grant {
        Grant::Listed(origin) => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Grant::Any => {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
    }
    if method == Method::OPTIONS && request.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    } else {
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn decorated(
        origins: &str,
        method: Method,
        pairs: &[(&'static str, &'static str)],
    ) -> HeaderMap {
        let origins = parse_origins(origins).unwrap();
        let mut r = Response::new(Body::new(Bytes::new()));
        decorate(&origins, Route::GraphQl, &method, &request(pairs), &mut r);
        r.headers().clone()
    }

    #[test]
    fn origins_parse_and_bad_ones_say_why() {
        let o =
            parse_origins("https://App.example.com, http://localhost:3000,capacitor://localhost,*")
                .unwrap();
        assert_eq!(
            o.listed,
            [
                "https://app.example.com",
                "http://localhost:3000",
                "capacitor://localhost"
            ]
        );
        assert!(o.any);
        assert!(parse_origins("").unwrap().is_empty());
        let e = parse_origins("https://app.example.com/").unwrap_err();
        assert!(e.contains("`https://app.example.com`"), "{e}");
        assert!(parse_origins("app.example.com").is_err());
        assert!(parse_origins("null").is_err());
        assert!(parse_origins("https://").is_err());
        assert!(parse_origins("1http://a").is_err());
    }

    #[test]
    fn a_listed_origin_is_echoed_with_credentials() {
        let h = decorated(
            "https://a.example",
            Method::POST,
            &[("origin", "https://A.example")],
        );
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://A.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], EXPOSE_HEADERS);
        assert_eq!(h["vary"], "Origin");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }

    #[test]
    fn star_answers_other_origins_without_credentials() {
        let h = decorated(
            "https://a.example,*",
            Method::GET,
            &[("origin", "https://b.example")],
        );
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        let h = decorated("*", Method::GET, &[]);
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(h["vary"], "Origin");
    }

    #[test]
    fn a_preflight_gets_methods_headers_and_max_age_and_an_unlisted_one_nothing() {
        let pre = [
            ("origin", "https://a.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, authorization",
            ),
        ];
        let h = decorated("https://a.example", Method::OPTIONS, &pre);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], ALLOW_METHODS);
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], MAX_AGE);
        assert!(!h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));
        let h = decorated("https://b.example", Method::OPTIONS, &pre);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["vary"], "Origin");
        // Two Origin headers: not allowed.
        let h = decorated(
            "https://a.example",
            Method::GET,
            &[
                ("origin", "https://a.example"),
                ("origin", "https://a.example"),
            ],
        );
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        // Off: nothing at all.
        assert!(decorated("", Method::OPTIONS, &pre).is_empty());
    }
}
