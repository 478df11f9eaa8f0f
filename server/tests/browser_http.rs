//! What browser and mobile clients expect of the HTTP API, against the real binary: CORS
//! for pages on other origins (preflights, actual requests, nothing when it is off).

mod support;

use std::process::Command;

use serde_json::json;
use support::{request, Response, Server, WsClient};

const APP: &str = "https://app.example.com";
/// The log filter: `listening` (which `Server::start` waits for), no access lines.
const LOG: &str = "warn,streamhub=info,streamhub::access=off";

/// POST /graphql with a JSON body and extra headers, on a new connection.
fn post(server: &Server, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    server.post("/graphql", &all, body)
}

fn options(server: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = server.connect();
    request(&mut s, "OPTIONS", path, headers).expect("request failed")
}

/// The comma-separated names of a header, lower case.
fn names(r: &Response, header: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(header))
        .flat_map(|(_, v)| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn cors_headers(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.to_ascii_lowercase().starts_with("access-control-"))
        .collect()
}

fn preflight(origin: &str) -> [(&str, &str); 3] {
    [
        ("Origin", origin),
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "content-type,authorization,apollographql-client-name",
        ),
    ]
}

fn cors_server(origins: &str) -> Server {
    Server::start(&[("STREAMHUB_CORS_ORIGINS", origins), ("STREAMHUB_LOG", LOG)])
}

#[test]
fn a_preflight_from_a_listed_origin_is_allowed_and_one_from_elsewhere_is_not() {
    let server = cors_server("https://app.example.com, http://localhost:3000");
    // Several connections: both shards answer the same.
    for _ in 0..4 {
        let r = options(&server, "/graphql", &preflight(APP));
        assert_eq!(r.status, 204, "{r:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("access-control-allow-origin"), Some(APP));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(
            names(&r, "access-control-allow-methods"),
            ["get", "post", "options"]
        );
        let allowed = names(&r, "access-control-allow-headers");
        for h in ["content-type", "authorization", "apollographql-client-name"] {
            assert!(allowed.iter().any(|a| a == h), "{h} not in {allowed:?}");
        }
        assert_eq!(r.header("access-control-max-age"), Some("7200"));
        assert!(names(&r, "vary").contains(&"origin".to_owned()), "{r:?}");
        assert_eq!(r.header("allow"), Some("GET, POST, OPTIONS"));
        assert!(r.header("access-control-expose-headers").is_none());
    }
    // The other listed origin, echoed as sent.
    let r = options(&server, "/graphql", &preflight("http://localhost:3000"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    // An origin not listed (nor one that only starts like a listed one): 204, no
    // CORS header at all, so the browser refuses the request.
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
    ] {
        let r = options(&server, "/graphql", &preflight(origin));
        assert_eq!(r.status, 204, "{origin}");
        assert!(cors_headers(&r).is_empty(), "{origin}: {r:?}");
        assert!(names(&r, "vary").contains(&"origin".to_owned()));
    }
    // The SDL takes part too; the operations endpoints answer OPTIONS without CORS.
    let r = options(&server, "/graphql/schema.graphql", &preflight(APP));
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    let r = options(&server, "/healthz", &preflight(APP));
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(cors_headers(&r).is_empty(), "{r:?}");
    // OPTIONS where nothing is served.
    assert_eq!(options(&server, "/nope", &preflight(APP)).status, 404);
}

#[test]
fn actual_requests_from_a_listed_origin_may_be_read_and_others_may_not() {
    let server = cors_server(APP);
    let body = json!({"query": "{ category(slug: \"chess\") { name } }"}).to_string();
    let r = post(&server, &[("Origin", APP)], body.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["category"]["name"], "Chess");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let exposed = names(&r, "access-control-expose-headers");
    for h in ["x-request-id", "etag", "retry-after"] {
        assert!(exposed.iter().any(|e| e == h), "{h} not in {exposed:?}");
    }
    // GraphQL's own Vary is kept, Origin added to it.
    let vary = names(&r, "vary");
    for v in ["accept", "authorization", "origin"] {
        assert!(vary.iter().any(|n| n == v), "{v} not in {vary:?}");
    }
    assert!(r.header("access-control-allow-methods").is_none());

    // An error the page must be able to read: a refused token.
    let r = post(
        &server,
        &[("Origin", APP), ("Authorization", "Bearer not-a-token")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));

    // An origin not listed: served, but nothing lets its page read the answer.
    let r = post(
        &server,
        &[("Origin", "https://evil.example")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(cors_headers(&r).is_empty(), "{r:?}");
    assert!(names(&r, "vary").contains(&"origin".to_owned()));
    // No Origin (not a browser's cross-origin request): still Vary: Origin, so a cache
    // never gives this answer to a browser.
    let r = post(&server, &[], body.as_bytes());
    assert!(cors_headers(&r).is_empty());
    assert!(names(&r, "vary").contains(&"origin".to_owned()));
    // The operations endpoints take no part.
    let r = server.get("/healthz", &[("Origin", APP)]);
    assert!(cors_headers(&r).is_empty(), "{r:?}");
    // A WebSocket upgrade from the origin still upgrades (its origin check is
    // STREAMHUB_WS_ALLOWED_ORIGINS) and works.
    let mut ws = WsClient::connect(&server, "/ws", &[("Origin", APP)]);
    ws.send_json(&json!({"type": "ping"}));
    assert_eq!(ws.next_json()["type"], "pong");
}

#[test]
fn star_lets_any_origin_read_without_credentials() {
    let server = cors_server(&format!("{APP},*"));
    let r = options(&server, "/graphql", &preflight("https://other.example"));
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-credentials").is_none());
    assert!(r.header("access-control-allow-methods").is_some());
    // The listed origin keeps its credentials.
    let r = options(&server, "/graphql", &preflight(APP));
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}

#[test]
fn without_the_setting_no_response_has_a_cors_header() {
    let server = Server::start(&[("STREAMHUB_LOG", LOG)]);
    let r = options(&server, "/graphql", &preflight(APP));
    // OPTIONS is answered (no more 405), with what the route allows and nothing else.
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, POST, OPTIONS"));
    assert!(cors_headers(&r).is_empty(), "{r:?}");
    assert!(r.header("vary").is_none());
    let body = json!({"query": "{ category(slug: \"chess\") { name } }"}).to_string();
    let r = post(&server, &[("Origin", APP)], body.as_bytes());
    assert_eq!(r.status, 200);
    assert!(cors_headers(&r).is_empty(), "{r:?}");
    assert!(!names(&r, "vary").contains(&"origin".to_owned()));
    // A bad origin in the setting stops the start with its reason.
    let out = Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .env("STREAMHUB_CORS_ORIGINS", "https://app.example.com/")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has a path"), "{err}");
}
