//! GraphQL over HTTP against the real binary: the graphql-http audit, persisted
//! operations in all their forms, caching headers, rate limits, roles, and bad input
//! refused with its code while everyone else keeps being served.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{token, Server, SECRET};

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

#[test]
fn the_graphql_http_audit_passes_with_no_error_and_no_warning() {
    let dir = support::js_dir();
    let server = server(&[]);
    let out = Command::new("node")
        .arg("audit.mjs")
        .arg(format!("http://{}/graphql", server.addr))
        .current_dir(&dir)
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        results.len() >= 50,
        "the audit ran only {} checks",
        results.len()
    );
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] != "ok").collect();
    assert!(failed.is_empty(), "audit findings: {failed:#?}");
}

#[test]
fn apq_registers_after_the_hash_check_and_then_runs_by_hash_on_every_shard() {
    let server = server(&[]);
    let text = "{ category(slug: \"chess\") { name } }";
    let hash = sha256_hex(text);
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    // Unknown hash: 200, PERSISTED_QUERY_NOT_FOUND, not cacheable.
    let r = server.graphql(None, &by_hash);
    assert_eq!(r.status, 200);
    assert_eq!(code(&r.json()), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(
        r.header("cache-control"),
        Some("private, no-cache, must-revalidate")
    );
    // A wrong hash with text is refused and registers nothing.
    let wrong = json!({"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex("x")}}});
    let r = server.graphql(None, &wrong);
    assert_eq!(r.status, 400);
    // Hash and text register it, on whichever shard the kernel picks...
    let mut both = by_hash.clone();
    both["query"] = json!(text);
    let r = server.post(
        "/graphql",
        &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", "apq-register"),
        ],
        both.to_string().as_bytes(),
    );
    assert_eq!(r.json()["data"]["category"]["name"], "Chess");
    let registered_on = server.shard_of("apq-register");
    // ...and the hash alone then runs it on every shard, every time: by POST, by GET
    // and as a `sha256:` documentId, each on a new connection, until both shards have
    // answered (the access log says which did).
    let query = format!(
        "/graphql?extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22{hash}%22%7D%7D"
    );
    let document_id = format!("/graphql?documentId=sha256:{hash}");
    let mut shards = std::collections::BTreeSet::new();
    for i in 0..200 {
        let id = format!("apq-{i}");
        let r = match i % 3 {
            0 => server.post(
                "/graphql",
                &[("Content-Type", "application/json"), ("X-Request-Id", &id)],
                by_hash.to_string().as_bytes(),
            ),
            1 => server.get(&query, &[("X-Request-Id", &id)]),
            _ => server.get(&document_id, &[("X-Request-Id", &id)]),
        };
        assert_eq!(
            r.json()["data"]["category"]["name"],
            "Chess",
            "{:?}",
            r.json()
        );
        shards.insert(server.shard_of(&id));
        if shards.len() == 2 && i >= 8 {
            break;
        }
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} answered");
    assert!(shards.iter().any(|s| *s != registered_on));
}

#[test]
fn the_manifest_reloads_on_sighup_and_a_bad_one_keeps_the_old() {
    let dir = tempdir::Dir::new();
    let manifest = |id: &str, body: &str| json!({ id: body }).to_string();
    let path = dir.file(
        "manifest.json",
        &manifest("cat", "{ category(slug: \"art\") { name } }"),
    );
    let server = server(&[("STREAMHUB_PERSISTED_QUERIES", path.as_str())]);
    let run = |id: &str| server.get(&format!("/graphql?documentId={id}"), &[]).json();
    // Every shard has the first manifest (several new connections, so both shards).
    for _ in 0..6 {
        assert_eq!(run("cat")["data"]["category"]["name"], "Art");
    }
    dir.file(
        "manifest.json",
        &json!({"cat": "{ category(slug: \"chess\") { name } }", "dog": "{ category(slug: \"art\") { slug } }"}).to_string(),
    );
    server.sighup();
    server.wait_for_log(|l| l["message"] == "SIGHUP: the new manifest serves on every shard");
    for _ in 0..6 {
        assert_eq!(run("cat")["data"]["category"]["name"], "Chess");
        assert_eq!(run("dog")["data"]["category"]["slug"], "art");
    }
    // A manifest that cannot run is refused, and the last good one keeps serving.
    dir.file("manifest.json", &manifest("cat", "{ nope }"));
    server.sighup();
    let refused = server.wait_for_log(|l| {
        l["message"] == "SIGHUP: the new manifest was refused; the previous one keeps serving"
    });
    assert!(
        refused["error"].as_str().unwrap().contains("`cat`"),
        "{refused}"
    );
    for _ in 0..6 {
        assert_eq!(run("cat")["data"]["category"]["name"], "Chess");
        assert_eq!(run("dog")["data"]["category"]["slug"], "art");
    }
}

#[test]
fn in_trusted_mode_a_text_the_manifest_dropped_on_sighup_is_refused_on_every_shard() {
    let dir = tempdir::Dir::new();
    let text = "{ category(slug: \"art\") { name } }";
    let path = dir.file("manifest.json", &json!({ "cat": text }).to_string());
    let server = server(&[
        ("STREAMHUB_PERSISTED_QUERIES", path.as_str()),
        ("STREAMHUB_TRUSTED_DOCUMENTS", "true"),
    ]);
    let body = json!({ "query": text }).to_string();
    let send = |id: &str| {
        server.post(
            "/graphql",
            &[("Content-Type", "application/json"), ("X-Request-Id", id)],
            body.as_bytes(),
        )
    };
    // The manifest's text runs as text, on both shards (each remembers it).
    let mut shards = std::collections::BTreeSet::new();
    for i in 0..12 {
        let id = format!("before-{i}");
        assert_eq!(send(&id).json()["data"]["category"]["name"], "Art");
        shards.insert(server.shard_of(&id));
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} answered");
    dir.file(
        "manifest.json",
        &json!({"dog": "{ category(slug: \"art\") { slug } }"}).to_string(),
    );
    server.sighup();
    server.wait_for_log(|l| l["message"] == "SIGHUP: the new manifest serves on every shard");
    let mut shards = std::collections::BTreeSet::new();
    for i in 0..12 {
        let id = format!("after-{i}");
        let r = send(&id);
        assert_eq!(r.status, 400, "{:?}", r.json());
        assert_eq!(
            r.json()["errors"][0]["extensions"]["code"],
            "PERSISTED_QUERY_ID_REQUIRED"
        );
        shards.insert(server.shard_of(&id));
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} answered");
}

fn manifest_server(extra: &[(&str, &str)]) -> (Server, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let apollo = json!({
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [
            {"id": "cat-name", "body": "query Cat($slug: String!) { category(slug: $slug) { name } }", "name": "Cat", "type": "query"},
            {"id": "live", "body": "{ channel(login: \"alice\") { viewerCount } }", "name": null, "type": "query"},
            {"id": "end", "body": "mutation End { endStream { isLive } }", "name": "End", "type": "mutation"}
        ]
    });
    let path = dir.file("manifest.json", &apollo.to_string());
    let mut env = vec![("STREAMHUB_PERSISTED_QUERIES", path.as_str())];
    env.extend_from_slice(extra);
    (server(&env), dir)
}

#[test]
fn manifest_operations_run_by_id_and_public_gets_are_cacheable() {
    let (server, _dir) = manifest_server(&[]);
    let path = "/graphql?documentId=cat-name&variables=%7B%22slug%22%3A%22chess%22%7D";
    let r = server.get(path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["category"]["name"], "Chess");
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    let etag = r.header("etag").expect("an ETag").to_owned();
    let again = server.get(path, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    // The same document by its sha256 id, and by Relay's doc_id.
    let hash = sha256_hex("query Cat($slug: String!) { category(slug: $slug) { name } }");
    for p in [
        format!("/graphql?documentId=sha256:{hash}&variables=%7B%22slug%22%3A%22art%22%7D"),
        "/graphql?doc_id=cat-name&variables=%7B%22slug%22%3A%22art%22%7D".to_owned(),
    ] {
        assert_eq!(
            server.get(&p, &[]).json()["data"]["category"]["name"],
            "Art",
            "{p}"
        );
    }
    // A live counter makes it private.
    let r = server.get("/graphql?documentId=live", &[]);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert!(r.header("etag").is_none());
    // A mutation over GET: 405 with Allow: POST.
    let r = server.get("/graphql?documentId=end", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // An unknown id.
    let r = server.get(
        "/graphql?documentId=nope",
        &[("Accept", "application/graphql-response+json")],
    );
    assert_eq!(r.status, 400);
    assert_eq!(code(&r.json()), "PERSISTED_QUERY_NOT_FOUND");
}

/// Runs `text` once as a POST (which registers it node-wide), then GETs it by its
/// `sha256:` id on a new connection (either shard), as `token`'s holder or anonymously.
fn persisted_get(server: &Server, text: &str, token: Option<&str>) -> support::Response {
    let r = server.graphql(token, &json!({ "query": text }));
    assert!(r.json()["errors"].is_null(), "{text}: {}", r.json());
    // A POST is never cacheable, whatever it reads.
    assert_eq!(
        r.header("cache-control"),
        Some("private, no-store"),
        "{text}"
    );
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let r = server.get(
        &format!("/graphql?documentId=sha256:{}", sha256_hex(text)),
        &headers,
    );
    assert_eq!(r.status, 200, "{text}");
    assert!(r.json()["errors"].is_null(), "{text}: {}", r.json());
    r
}

/// Public profile data: every field of it has a 300 s hint or inherits one.
const PROFILE: &str = "{ user(login: \"alice\") { login displayName bio channel { title language tags category { name slug } owner { displayName } } } }";

#[test]
fn the_cache_hints_make_profile_gets_public_and_live_or_viewer_gets_private() {
    let server = server(&[]);
    // Profile data: 300 s by its hints, capped by the default 30 s.
    let r = persisted_get(&server, PROFILE, None);
    assert_eq!(
        r.json()["data"]["user"]["channel"]["owner"]["displayName"],
        "Alice"
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert!(r.header("etag").is_some());
    // The same text sent as text is not a persisted GET: private.
    let r = server.get(
        &format!(
            "/graphql?query={}",
            form_urlencoded::byte_serialize(PROFILE.as_bytes()).collect::<String>()
        ),
        &[],
    );
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    // One live counter, live status or chat anywhere in it, and it is private.
    for text in [
        "{ user(login: \"alice\") { login channel { title followerCount } } }",
        "{ channel(login: \"alice\") { title isLive } }",
        "{ channel(login: \"alice\") { title stream { title } } }",
        "{ category(slug: \"chess\") { name liveStreamCount } }",
        "{ channel(login: \"alice\") { followers(first: 2) { nodes { login } } } }",
        "{ chatHistory(channelId: \"ch_u1\", last: 1) { body } }",
    ] {
        let r = persisted_get(&server, text, None);
        assert_eq!(
            r.header("cache-control"),
            Some("private, no-store"),
            "{text}"
        );
        assert!(r.header("etag").is_none(), "{text}");
    }
    // Whatever depends on the viewer is private, signed in or not.
    let bob = token("u2", "bob", false);
    for (text, who) in [
        ("{ viewer { login } }", Some(bob.as_str())),
        ("{ viewer { login } }", None),
        (
            "{ channel(login: \"alice\") { title viewerIsFollowing } }",
            Some(bob.as_str()),
        ),
        (
            "{ user(login: \"bob\") { login roles } }",
            Some(bob.as_str()),
        ),
    ] {
        let r = persisted_get(&server, text, who);
        assert_eq!(
            r.header("cache-control"),
            Some("private, no-store"),
            "{text}"
        );
    }
}

#[test]
fn a_public_operation_that_fails_is_not_cached_publicly() {
    let server = server(&[]);
    // `search` is hinted 60 s; an empty query is a field error.
    let fine = "{ search(query: \"alice\") { ... on User { login } } }";
    let failing = "{ search(query: \" \") { ... on User { login } } }";
    let r = persisted_get(&server, fine, None);
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    // Registered by running it as text, then read by its hash.
    let r = server.graphql(None, &json!({ "query": failing }));
    assert_eq!(code(&r.json()), "BAD_USER_INPUT");
    let r = server.get(
        &format!("/graphql?documentId=sha256:{}", sha256_hex(failing)),
        &[],
    );
    assert_eq!(code(&r.json()), "BAD_USER_INPUT");
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("etag"), None);
}

#[test]
fn the_public_max_age_caps_the_policy_and_never_raises_it() {
    // `search` is hinted 60 s, profile data 300 s.
    let search = "{ search(query: \"alice\") { ... on User { login } ... on Channel { title } } }";
    let capped = server(&[("STREAMHUB_PUBLIC_MAX_AGE", "10s")]);
    for text in [PROFILE, search] {
        let r = persisted_get(&capped, text, None);
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=10"),
            "{text}"
        );
    }
    drop(capped);
    let wide = server(&[("STREAMHUB_PUBLIC_MAX_AGE", "2m")]);
    let r = persisted_get(&wide, PROFILE, None);
    assert_eq!(r.header("cache-control"), Some("public, max-age=120"));
    let r = persisted_get(&wide, search, None);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
}

#[test]
fn trusted_documents_mode_runs_only_persisted_operations() {
    let (server, _dir) = manifest_server(&[("STREAMHUB_TRUSTED_DOCUMENTS", "true")]);
    let r = server.graphql(
        None,
        &json!({"query": "{ category(slug: \"art\") { name } }"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(code(&r.json()), "PERSISTED_QUERY_ID_REQUIRED");
    // APQ registration is refused too.
    let text = "{ category(slug: \"art\") { slug } }";
    let apq = json!({"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(text)}}});
    assert_eq!(
        code(&server.graphql(None, &apq).json()),
        "PERSISTED_QUERY_ID_REQUIRED"
    );
    // The manifest's own text is allowed, as is its id.
    let r = server.graphql(
        None,
        &json!({"query": "query Cat($slug: String!) { category(slug: $slug) { name } }", "variables": {"slug": "art"}}),
    );
    assert_eq!(r.json()["data"]["category"]["name"], "Art");
    let r = server.graphql(
        None,
        &json!({"documentId": "cat-name", "variables": {"slug": "music"}}),
    );
    assert_eq!(r.json()["data"]["category"]["name"], "Music");
}

#[test]
fn a_bad_manifest_stops_the_start_with_its_reason() {
    let dir = tempdir::Dir::new();
    let path = dir.file("m.json", r#"{"op1": "{ nosuchfield }"}"#);
    let out = Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .env("STREAMHUB_LISTEN", "127.0.0.1:0")
        .env("STREAMHUB_PERSISTED_QUERIES", &path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("op1") && err.contains("nosuchfield"), "{err}");
}

#[test]
fn the_roles_decide_what_each_token_may_change() {
    let server = server(&[]);
    let alice = token("u1", "alice", false);
    let bob = token("u2", "bob", false); // moderates alice's channel
    let eve = token("u77", "eve", false);
    let send = |t: &str, body: &str| {
        server.graphql(
            Some(t),
            &json!({"query": "mutation($b: String!) { sendChatMessage(channelId: \"ch_u1\", body: $b) { seq } }", "variables": {"b": body}}),
        )
        .json()
    };
    let seq = send(&eve, "hello")["data"]["sendChatMessage"]["seq"]
        .as_i64()
        .unwrap();
    let del = |t: &str, seq: i64| {
        server
            .graphql(Some(t), &json!({"query": format!("mutation {{ deleteChatMessage(channelId: \"ch_u1\", messageSeq: {seq}) }}")}))
            .json()
    };
    let other = send(&alice, "mine")["data"]["sendChatMessage"]["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(
        code(&del(&eve, other)),
        "FORBIDDEN",
        "a viewer deletes only their own"
    );
    assert_eq!(
        del(&bob, seq)["data"]["deleteChatMessage"],
        true,
        "a moderator may"
    );
    let ban = json!({"query": "mutation { banUser(channelId: \"ch_u1\", userId: \"u77\") }"});
    assert_eq!(code(&server.graphql(Some(&eve), &ban).json()), "FORBIDDEN");
    assert_eq!(
        server.graphql(Some(&bob), &ban).json()["data"]["banUser"],
        true
    );
    assert_eq!(code(&send(&eve, "again")), "FORBIDDEN", "banned");
    let anon = server.graphql(None, &json!({"query": "mutation { endStream { isLive } }"}));
    assert_eq!(anon.status, 200);
    assert_eq!(code(&anon.json()), "UNAUTHENTICATED");
    // A bad token is refused, never anonymous.
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let r = server.graphql(Some(&forged), &json!({"query": "{ viewer { id } }"}));
    assert_eq!(r.status, 401);
    // The viewer is whoever the token says, created on first sight.
    let r = server.graphql(
        Some(&token("new-sub", "newbie", false)),
        &json!({"query": "{ viewer { login channel { id } } }"}),
    );
    assert_eq!(
        r.json()["data"]["viewer"],
        json!({"login": "newbie", "channel": {"id": "ch_new-sub"}})
    );
}

#[test]
fn a_burst_past_the_rate_gets_429_and_others_keep_being_served() {
    let server = server(&[("STREAMHUB_RATE_QUERY", "6/1m")]);
    let q = json!({"query": "{ category(slug: \"art\") { name } }"});
    let alice = token("u1", "alice", false);
    let auth = format!("Bearer {alice}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let body = q.to_string();
    // One connection, so one shard: it gets the node's whole budget, not a share.
    let mut one = server.connect();
    for _ in 0..6 {
        let r = support::request_with_body(&mut one, "POST", "/graphql", &headers, body.as_bytes())
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
    }
    // Spent on one shard is spent on all: new connections, on both shards, get 429.
    let mut shards = std::collections::BTreeSet::new();
    for i in 0..10 {
        let id = format!("burst-{i}");
        let mut h = headers.to_vec();
        h.push(("X-Request-Id", &id));
        let r = server.post("/graphql", &h, body.as_bytes());
        assert_eq!(r.status, 429);
        assert_eq!(code(&r.json()), "RATE_LIMITED");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=10).contains(&retry), "{retry}");
        shards.insert(server.shard_of(&id));
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} answered");
    // Another user, and anonymous callers, have their own buckets.
    let q = json!({"query": "{ category(slug: \"art\") { name } }"});
    let bob = token("u2", "bob", false);
    assert_eq!(server.graphql(Some(&bob), &q).status, 200);
    assert_eq!(server.graphql(None, &q).status, 200);
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing: the anonymous
    // caller is still the socket's address and runs out like anyone.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let xff = format!("10.0.0.{i}");
        let r = server.post(
            "/graphql",
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", &xff),
            ],
            q.to_string().as_bytes(),
        );
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn bad_input_gets_its_code_and_the_server_keeps_serving() {
    let server = server(&[("STREAMHUB_MAX_BODY_BYTES", "64KiB")]);
    let ok = json!({"query": "{ category(slug: \"art\") { name } }"});
    let gql = [
        ("Content-Type", "application/json"),
        ("Accept", "application/graphql-response+json"),
    ];
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"query\": ".to_vec(), 400, "BAD_REQUEST"),
        (br#"{"query": 7}"#.to_vec(), 400, "BAD_REQUEST"),
        (br#"{"query": "{ category(slug: 7) { name } }"}"#.to_vec(), 400, "GRAPHQL_VALIDATION_FAILED"),
        (br#"{"query": "{ category(slug: "#.to_vec(), 400, "BAD_REQUEST"),
        (json!({"query": "{ category(slug: "}).to_string().into_bytes(), 400, "GRAPHQL_PARSE_FAILED"),
        (json!({"query": "query($s: String!) { category(slug: $s) { name } }", "variables": {"s": 5}}).to_string().into_bytes(), 400, "BAD_USER_INPUT"),
        (json!({"query": format!("{}{}", "{ viewer { channel { owner ".repeat(30), "}".repeat(91))}).to_string().into_bytes(), 400, "QUERY_TOO_COMPLEX"),
        (json!({"query": format!("{}{}", "{".repeat(100_000), "}".repeat(100_000))}).to_string().into_bytes(), 413, "BAD_REQUEST"),
        (json!({"query": format!("{{ {} }}", (0..40).map(|i| format!("a{i}: viewer {{ id }}")).collect::<Vec<_>>().join(" "))}).to_string().into_bytes(), 400, "QUERY_TOO_COMPLEX"),
        (json!({"query": "{ streams(first: 100) { nodes { channel { followers(first: 100) { nodes { following(first: 100) { totalCount } } } } } } }"}).to_string().into_bytes(), 400, "QUERY_TOO_COMPLEX"),
    ];
    let mut keep = server.connect();
    for (body, status, want) in cases {
        let r = server.post("/graphql", &gql, &body);
        assert_eq!(
            r.status,
            status,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_eq!(code(&r.json()), want);
        let served = support::request_with_body(
            &mut keep,
            "POST",
            "/graphql",
            &gql[..1],
            ok.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(served.json()["data"]["category"]["name"], "Art");
    }
}

#[test]
fn duplicate_input_fields_and_operation_names_are_validation_errors_with_locations() {
    let server = server(&[]);
    let refused = |query: &str| {
        let r = server.graphql(None, &json!({ "query": query }));
        assert_eq!(r.status, 200, "{query}");
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{:?}",
            r.header("content-type")
        );
        let v = r.json();
        assert_eq!(code(&v), "GRAPHQL_VALIDATION_FAILED", "{v}");
        assert!(v.get("data").is_none(), "{v}");
        v["errors"].clone()
    };
    // The parser would keep the second title; the document is refused instead.
    let errors =
        refused(r#"mutation { updateChannel(input: { title: "a", title: "b" }) { title } }"#);
    assert_eq!(
        errors[0]["message"],
        "There can be only one input field named \"title\"."
    );
    assert_eq!(
        errors[0]["locations"],
        json!([{"line": 1, "column": 35}, {"line": 1, "column": 47}])
    );
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    // Two operations of one name: refused by the parser, reported as validation.
    let errors = refused("query A { viewer { id } } query A { viewer { login } }");
    assert_eq!(
        errors,
        json!([{
            "message": "There can be only one operation named \"A\".",
            "locations": [{"line": 1, "column": 7}, {"line": 1, "column": 33}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}
        }])
    );
}

/// A scratch folder removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "streamhub-test-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn file(&self, name: &str, text: &str) -> String {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Once a mutation has answered, every request that starts after it sees it, on
/// whichever shard it lands: each shard's cache holds the rows the page reads (they
/// were read just before), and the change must reach all of them before they answer.
#[test]
fn a_write_on_one_connection_is_read_by_every_connection_after_it_on_any_shard() {
    let server = server(&[]);
    let alice = token("u1", "alice", false);
    let eve = token("u60", "eve", false);
    let page = json!({"query": "{ channel(login: \"alice\") { title followerCount viewerIsFollowing tags } }"});
    let read = |i: usize, round: usize| {
        let id = format!("read-{round}-{i}");
        let r = server.post(
            "/graphql",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {eve}")),
                ("X-Request-Id", &id),
            ],
            page.to_string().as_bytes(),
        );
        (r.json()["data"]["channel"].clone(), server.shard_of(&id))
    };
    // eve starts not following alice (the demo data may have her follow).
    server.graphql(
        Some(&eve),
        &json!({"query": "mutation { unfollow(channelId: \"ch_u1\") { id } }"}),
    );
    let mut shards = std::collections::BTreeSet::new();
    // Fill every shard's cache first.
    for i in 0..8 {
        shards.insert(read(i, 0).1);
    }
    let mut followers = read(99, 0).0["followerCount"].as_i64().unwrap();
    for round in 1..=5 {
        let title = format!("round {round}");
        let r = server.graphql(
            Some(&alice),
            &json!({"query": "mutation($t: String!) { updateChannel(input: {title: $t, tags: [\"R\"]}) { title } }", "variables": {"t": title}}),
        );
        assert_eq!(r.json()["data"]["updateChannel"]["title"], title.as_str());
        let follow = if round % 2 == 1 { "follow" } else { "unfollow" };
        let r = server.graphql(
            Some(&eve),
            &json!({"query": format!("mutation {{ {follow}(channelId: \"ch_u1\") {{ id }} }}")}),
        );
        assert!(r.json().get("errors").is_none(), "{:?}", r.json());
        followers += if round % 2 == 1 { 1 } else { -1 };
        for i in 0..8 {
            let (c, shard) = read(i, round);
            shards.insert(shard);
            assert_eq!(c["title"], title.as_str(), "connection {i}, shard {shard}");
            assert_eq!(
                c["followerCount"], followers,
                "connection {i}, shard {shard}"
            );
            assert_eq!(
                c["viewerIsFollowing"],
                round % 2 == 1,
                "connection {i}, shard {shard}"
            );
            assert_eq!(c["tags"], json!(["R"]));
        }
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} answered");
}
