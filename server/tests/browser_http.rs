//! What browser and mobile clients expect of the HTTP API, against the real binary: CORS
//! for pages on other origins (preflights, actual requests, nothing when it is off) and
//! response compression (br and gzip by `Accept-Encoding`, decoded here with the same
//! crates to exactly the identity body; ETags per encoding and their 304s), and Node.js's
//! own `fetch` decoding what the server sends.

mod support;

use std::io::Read;
use std::process::Command;

use serde_json::json;
use support::{request, Response, Server, WsClient};

const APP: &str = "https://app.example.com";
/// The log filter: `listening` (which `Server::start` waits for), no access lines.
const LOG: &str = "warn,streamhub=info,streamhub::access=off";
const CHANNEL_PAGE: &str = include_str!("../../bench/queries/channel-page.graphql");

fn channel_page_body() -> Vec<u8> {
    json!({"query": CHANNEL_PAGE, "variables": {"login": "alice"}})
        .to_string()
        .into_bytes()
}

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

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .expect("a valid brotli stream");
    out
}

fn ungzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

#[test]
fn large_responses_are_compressed_as_accepted_and_decode_to_the_identity_body() {
    let server = Server::start(&[("STREAMHUB_LOG", LOG)]);
    let body = channel_page_body();
    let identity = post(&server, &[], &body);
    assert_eq!(identity.status, 200);
    assert!(identity.header("content-encoding").is_none());
    assert_eq!(identity.json()["data"]["channel"]["login"], "alice");
    assert!(identity.body.len() > 4000, "{}", identity.body.len());
    // Compressible, so it varies by Accept-Encoding even when sent as is.
    assert!(names(&identity, "vary").contains(&"accept-encoding".to_owned()));

    for (accept, want) in [
        ("br", Some("br")),
        ("gzip", Some("gzip")),
        // What browsers send: br preferred when both are equally acceptable.
        ("gzip, deflate, br, zstd", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("*", Some("br")),
        ("br;q=0, gzip;q=0", None),
        ("identity", None),
        ("gzip;q=0.2, identity;q=0.9", None),
        ("deflate", None),
    ] {
        let r = post(&server, &[("Accept-Encoding", accept)], &body);
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.header("content-encoding"), want, "{accept}");
        // The body read is exactly Content-Length bytes (the client reads by it).
        let decoded = match want {
            Some("br") => unbrotli(&r.body),
            Some("gzip") => ungzip(&r.body),
            _ => r.body.clone(),
        };
        assert_eq!(decoded, identity.body, "{accept}");
        if want.is_some() {
            assert!(
                r.body.len() * 2 < identity.body.len(),
                "{accept}: {} bytes",
                r.body.len()
            );
        }
        let vary = names(&r, "vary");
        for v in ["accept", "authorization", "accept-encoding"] {
            assert!(vary.iter().any(|n| n == v), "{accept}: {v} not in {vary:?}");
        }
    }
    // The SDL and the metrics are compressed too (Prometheus asks for gzip).
    let sdl = server.get("/graphql/schema.graphql", &[]);
    let r = server.get("/graphql/schema.graphql", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(ungzip(&r.body), sdl.body);
    let r = server.get("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(String::from_utf8(ungzip(&r.body))
        .unwrap()
        .contains("streamhub_http_requests_total"));
}

#[test]
fn small_responses_and_a_server_with_compression_off_send_identity() {
    let server = Server::start(&[("STREAMHUB_LOG", LOG)]);
    let r = server.get("/healthz", &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-encoding").is_none());
    assert!(r.header("vary").is_none(), "{r:?}");
    assert_eq!(r.json()["status"], "ok");
    // A WebSocket upgrade asking for br is a plain 101.
    let mut ws = WsClient::connect(&server, "/ws", &[("Accept-Encoding", "br")]);
    ws.send_json(&json!({"type": "ping"}));
    assert_eq!(ws.next_json()["type"], "pong");

    let off = Server::start(&[("STREAMHUB_LOG", LOG), ("STREAMHUB_COMPRESS", "false")]);
    let r = post(
        &off,
        &[("Accept-Encoding", "br, gzip")],
        &channel_page_body(),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-encoding").is_none());
    assert_eq!(r.json()["data"]["channel"]["login"], "alice");
    // A higher threshold leaves the channel page as is too.
    let high = Server::start(&[
        ("STREAMHUB_LOG", LOG),
        ("STREAMHUB_COMPRESS_MIN_BYTES", "64KiB"),
    ]);
    let r = post(&high, &[("Accept-Encoding", "br")], &channel_page_body());
    assert!(r.header("content-encoding").is_none());
}

#[test]
fn a_public_get_has_an_etag_per_encoding_and_each_revalidates_with_304() {
    let server = Server::start(&[("STREAMHUB_LOG", LOG)]);
    // A public query (no viewer, no live state) large enough to be compressed.
    let text = "{ search(query: \"e\", first: 40) { __typename ... on User { id login displayName bio createdAt } ... on Channel { id login title language tags } ... on Category { id slug name } } }";
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let register = json!({"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    assert_eq!(
        post(&server, &[], register.to_string().as_bytes()).status,
        200
    );
    let path = format!(
        "/graphql?extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22{hash}%22%7D%7D"
    );

    let identity = server.get(&path, &[]);
    assert_eq!(identity.status, 200, "{identity:?}");
    assert!(identity
        .header("cache-control")
        .unwrap()
        .starts_with("public"));
    assert!(identity.body.len() > 1024, "{}", identity.body.len());
    let plain_tag = identity.header("etag").expect("an ETag").to_owned();

    let mut tags = vec![plain_tag.clone()];
    for (coding, decode) in [("br", unbrotli as fn(&[u8]) -> Vec<u8>), ("gzip", ungzip)] {
        let r = server.get(&path, &[("Accept-Encoding", coding)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(decode(&r.body), identity.body, "{coding}");
        let tag = r.header("etag").expect("an ETag").to_owned();
        assert!(!tags.contains(&tag), "{tag} is not unique among {tags:?}");
        tags.push(tag.clone());

        // New connections, so both shards are asked: the variant's tag gets 304 with
        // its ETag and Vary, no body.
        for _ in 0..3 {
            let again = server.get(
                &path,
                &[("Accept-Encoding", coding), ("If-None-Match", &tag)],
            );
            assert_eq!(again.status, 304, "{coding}: {again:?}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(tag.as_str()));
            assert!(names(&again, "vary").contains(&"accept-encoding".to_owned()));
            assert!(again.header("content-encoding").is_none());
        }
        // The identity tag does not stand for the compressed variant...
        let r = server.get(
            &path,
            &[("Accept-Encoding", coding), ("If-None-Match", &plain_tag)],
        );
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.header("content-encoding"), Some(coding));
        // ...nor a variant's tag for the identity body.
        let r = server.get(&path, &[("If-None-Match", &tag)]);
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.body, identity.body);
    }
    let r = server.get(&path, &[("If-None-Match", &plain_tag)]);
    assert_eq!(r.status, 304);
    // A client holding several variants lists them.
    let all = tags.join(", ");
    let r = server.get(
        &path,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &all)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(tags[2].as_str()));
}

/// Node.js's `fetch` (undici) asks for br and gzip itself and decodes what it gets: the
/// channel page arrives whole.
#[test]
fn node_fetch_decodes_the_compressed_channel_page() {
    let server = Server::start(&[("STREAMHUB_LOG", LOG)]);
    let url = format!("http://{}/graphql", server.addr);
    let got = support::run_node("fetch.mjs", &[&url, CHANNEL_PAGE]);
    let identity = post(&server, &[], &channel_page_body());
    assert!(
        got["encoding"] == "br" || got["encoding"] == "gzip",
        "{got}"
    );
    assert!(
        got["wireBytes"].as_u64().unwrap() * 2 < identity.body.len() as u64,
        "{got}"
    );
    assert_eq!(got["body"], identity.json());
}
