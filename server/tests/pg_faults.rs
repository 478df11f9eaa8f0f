//! PostgreSQL faults against the real binary. Each test runs a PostgreSQL of its own
//! ([`PrivatePg`]: `initdb` in a scratch folder, a free port) that it stops and starts
//! under a running server, and restarts servers on it: what was written (users,
//! channels, follows, bans, moderators, acknowledged chat) survives a restart and an
//! outage; while PostgreSQL is down writes fail fast with `SERVICE_UNAVAILABLE`,
//! `/readyz` says why and cached pages are still served, and the node recovers by
//! itself once PostgreSQL is back; a client that reconnects with `since` after a
//! restart gets exactly the events it missed; and no string argument of the schema
//! reaches PostgreSQL as SQL, or makes the node believe PostgreSQL is down.
//!
//! Nothing here asserts a duration: every wait is bounded by [`PATIENCE`], and a
//! request that gets no answer within it fails the test (the server hung).

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::pg::PrivatePg;
use support::{token, Server, Streamed, WsClient, PATIENCE, SECRET};

/// A server on `pg` (the schema migrated at start), with `extra` settings
/// (`STREAMHUB_DEMO_DATA=small` seeds the demo data at start).
fn serve(pg: &PrivatePg, extra: &[(&str, &str)]) -> Server {
    let url = pg.url();
    let mut env = vec![
        ("DATABASE_URL", url.as_str()),
        ("STREAMHUB_MIGRATE", "true"),
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_QUERY", "off"),
        ("STREAMHUB_RATE_MUTATION", "off"),
        ("STREAMHUB_RATE_CHAT", "off"),
        ("STREAMHUB_RATE_WS_CONNECT", "off"),
        ("STREAMHUB_DRAIN_DELAY", "0s"),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    server.wait_for_log(|l| l["message"] == "store: PostgreSQL");
    server
}

/// Sends SIGTERM and waits for a clean exit.
fn terminate(mut server: Server) {
    server.sigterm();
    let status = server.wait_exit(PATIENCE);
    assert!(status.success(), "the server exited with {status}");
}

/// POST /graphql as `who` (or anonymously): the whole response. The client waits
/// [`PATIENCE`] for it: a server that does not answer fails the test.
fn post_graphql(server: &Server, who: Option<&str>, body: &Value) -> support::Response {
    let auth = who.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let mut s = server.connect();
    let text = body.to_string();
    support::request_with_body(&mut s, "POST", "/graphql", &headers, text.as_bytes())
        .unwrap_or_else(|e| {
            panic!("no answer to {text} within {PATIENCE:?} ({e}): the server did not answer")
        })
}

/// One GraphQL operation: the response's JSON.
fn gql(server: &Server, who: Option<&str>, query: &str, variables: Value) -> Value {
    post_graphql(
        server,
        who,
        &json!({"query": query, "variables": variables}),
    )
    .json()
}

/// The data of an answer that must have no error.
fn data(v: Value) -> Value {
    assert!(v.get("errors").is_none(), "unexpected errors: {v}");
    v["data"].clone()
}

/// The code of an answer's first error.
fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

fn ws(server: &Server, who: Option<&str>) -> WsClient {
    match who {
        Some(t) => WsClient::connect(server, "/ws", &[("Authorization", &format!("Bearer {t}"))]),
        None => WsClient::connect(server, "/ws", &[]),
    }
}

/// Sends a message over the room protocol and waits for its answer: the seq it was
/// acknowledged with (`sent`), or the `error`. Room events on the way are skipped.
fn ws_send(c: &mut WsClient, room: &str, body: &str, nonce: &str) -> Result<u64, Value> {
    c.send_json(&json!({"type": "send", "room": room, "body": body, "nonce": nonce}));
    loop {
        let m = c.next_json();
        match m["type"].as_str() {
            Some("sent") => {
                assert_eq!(m["nonce"], nonce, "{m}");
                return Ok(m["seq"].as_u64().expect("a seq"));
            }
            Some("error") => {
                assert_eq!(m["nonce"], nonce, "{m}");
                return Err(m);
            }
            _ => continue,
        }
    }
}

const SEND: &str = "mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq body author { id } } }";

/// Sends a message with `sendChatMessage`: its answer.
fn gql_send(server: &Server, who: &str, channel: &str, body: &str) -> Value {
    gql(server, Some(who), SEND, json!({"c": channel, "b": body}))
}

/// Sends a message with `sendChatMessage` that must be acknowledged: its seq.
fn gql_sent(server: &Server, who: &str, channel: &str, body: &str) -> u64 {
    let d = data(gql_send(server, who, channel, body));
    assert_eq!(d["sendChatMessage"]["body"], body);
    d["sendChatMessage"]["seq"].as_u64().expect("a seq")
}

/// `GET /readyz`: its status and JSON body.
fn readyz(server: &Server) -> (u16, Value) {
    let mut s = server.connect();
    let r = support::request(&mut s, "GET", "/readyz", &[]).unwrap_or_else(|e| {
        panic!("no answer to /readyz within {PATIENCE:?} ({e}): the server did not answer")
    });
    (r.status, r.json())
}

/// A channel's chat (seq, body) as `chatHistory` reads it from the store.
fn history(server: &Server, channel: &str) -> Vec<(u64, String)> {
    let d = data(gql(
        server,
        None,
        "query($c: ID!) { chatHistory(channelId: $c, last: 100) { seq body } }",
        json!({"c": channel}),
    ));
    d["chatHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What the restart test reads back: alice's channel and the user made from a token.
const READ_BACK: &str = "query($u: ID!) {
    channel(login: \"alice\") {
        id title tags followerCount moderators { id }
        recentMessages(last: 10) { seq body author { id } }
    }
    user(id: $u) {
        login displayName bio
        following(first: 50) { totalCount nodes { id } }
    }
    bobs: channel(id: \"ch_u2\") { followerCount }
}";

#[test]
fn a_restart_keeps_users_channels_follows_bans_and_chat() {
    let pg = PrivatePg::start_new();
    let a = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let alice = token("u1", "alice", false);
    let bob = token("u2", "bob", false);
    // A user the demo data does not have: made from its token on the first request.
    let newcomer = token("u_restart", "restarter", false);

    let me = data(gql(
        &a,
        Some(&newcomer),
        "mutation { updateProfile(input: {displayName: \"Re Starter\", bio: \"made by a token\"}) { id login displayName bio } }",
        json!({}),
    ));
    assert_eq!(
        me["updateProfile"],
        json!({"id": "u_restart", "login": "restarter", "displayName": "Re Starter", "bio": "made by a token"})
    );
    let mut followers = Vec::new();
    for channel in ["ch_u1", "ch_u2"] {
        let f = data(gql(
            &a,
            Some(&newcomer),
            "mutation($c: ID!) { follow(channelId: $c) { followerCount viewerIsFollowing } }",
            json!({"c": channel}),
        ));
        assert_eq!(f["follow"]["viewerIsFollowing"], true);
        followers.push(f["follow"]["followerCount"].clone());
    }
    let c = data(gql(
        &a,
        Some(&alice),
        "mutation { updateChannel(input: {title: \"kept across a restart\", tags: [\"durable\", \"restart\"]}) { title tags } }",
        json!({}),
    ));
    assert_eq!(c["updateChannel"]["title"], "kept across a restart");
    let m = data(gql(
        &a,
        Some(&alice),
        "mutation { addModerator(channelId: \"ch_u1\", userId: \"u2\") { moderators { id } } }",
        json!({}),
    ));
    assert!(m["addModerator"]["moderators"]
        .as_array()
        .unwrap()
        .contains(&json!({"id": "u2"})));

    // Chat: by GraphQL and by the room protocol, then a ban (a room event too), then
    // one more message.
    let mut sent = Vec::new();
    for i in 0..2 {
        let body = format!("kept gql {i}");
        sent.push((gql_sent(&a, &bob, "ch_u1", &body), body));
    }
    let mut bob_ws = ws(&a, Some(&bob));
    for i in 0..2 {
        let body = format!("kept ws {i}");
        let seq = ws_send(&mut bob_ws, "ch_u1", &body, &format!("n{i}")).expect("acknowledged");
        sent.push((seq, body));
    }
    drop(bob_ws);
    let ban = data(gql(
        &a,
        Some(&alice),
        "mutation { banUser(channelId: \"ch_u1\", userId: \"u_restart\", reason: \"test\") }",
        json!({}),
    ));
    assert_eq!(ban["banUser"], true);
    let refused = gql_send(&a, &newcomer, "ch_u1", "not while banned");
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let body = "kept after the ban".to_owned();
    sent.push((gql_sent(&a, &bob, "ch_u1", &body), body));
    let seqs: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    let first = seqs[0];
    // Four messages, the ban, one message: consecutive seqs.
    assert_eq!(
        seqs,
        [first, first + 1, first + 2, first + 3, first + 5],
        "{sent:?}"
    );

    let before = data(gql(&a, None, READ_BACK, json!({"u": "u_restart"})));
    let page = &before["channel"];
    assert_eq!(page["title"], "kept across a restart");
    assert_eq!(page["tags"], json!(["durable", "restart"]));
    assert_eq!(page["followerCount"], followers[0]);
    assert_eq!(before["bobs"]["followerCount"], followers[1]);
    let recent: Vec<(u64, String)> = page["recentMessages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recent[recent.len() - sent.len()..], sent[..]);
    terminate(a);

    // Another server on the same database: everything is read back from PostgreSQL.
    let b = serve(&pg, &[]);
    let after = data(gql(&b, None, READ_BACK, json!({"u": "u_restart"})));
    assert_eq!(after, before, "what server A answered, server B answers");
    let following: BTreeSet<&str> = after["user"]["following"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(following, BTreeSet::from(["ch_u1", "ch_u2"]));
    assert_eq!(after["user"]["following"]["totalCount"], 2);
    assert_eq!(after["user"]["displayName"], "Re Starter");
    let following_now = data(gql(
        &b,
        Some(&newcomer),
        "{ a: channel(id: \"ch_u1\") { viewerIsFollowing } b: channel(id: \"ch_u2\") { viewerIsFollowing } }",
        json!({}),
    ));
    assert_eq!(
        following_now,
        json!({"a": {"viewerIsFollowing": true}, "b": {"viewerIsFollowing": true}})
    );

    // The ban holds on B, by both ways of sending; the user may still send elsewhere.
    let refused = gql_send(&b, &newcomer, "ch_u1", "still banned?");
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let mut newcomer_ws = ws(&b, Some(&newcomer));
    let e = ws_send(&mut newcomer_ws, "ch_u1", "still banned?", "b1").unwrap_err();
    assert_eq!(e["code"], "FORBIDDEN", "{e}");
    ws_send(&mut newcomer_ws, "ch_u2", "not banned here", "b2").expect("acknowledged");
    drop(newcomer_ws);

    // The room's history is PostgreSQL's: the same events, the ban among them, and the
    // next message takes the next seq.
    let mut member = ws(&b, None);
    let j = member.join("ch_u1", Some(first - 1));
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(j["seq"], first + 5, "{j}");
    let mut replay = Vec::new();
    for _ in 0..6 {
        replay.push(member.next_json());
    }
    let kinds: Vec<&str> = replay.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["message", "message", "message", "message", "banned", "message"]
    );
    assert_eq!(replay[4]["userId"], "u_restart");
    for (e, (seq, body)) in replay.iter().filter(|e| e["type"] == "message").zip(&sent) {
        assert_eq!((&e["seq"], &e["body"]), (&json!(seq), &json!(body)));
    }
    let next = gql_sent(&b, &bob, "ch_u1", "after the restart");
    assert_eq!(next, first + 6);
    let live = member.next_json();
    assert_eq!(
        (&live["seq"], &live["body"]),
        (&json!(next), &json!("after the restart"))
    );
}

/// The channel page the outage test reads: what the shard caches hold.
const PAGE: &str = "{ channel(login: \"alice\") { id title tags followerCount owner { login displayName } recentMessages(last: 5) { seq body author { login } } } }";

/// Reads the channel page on new connections until both shards have answered it (the
/// access log says which did): each answer's data.
fn page_on_every_shard(server: &Server, tag: &str) -> Vec<Value> {
    let body = json!({"query": PAGE}).to_string();
    let mut shards = BTreeSet::new();
    let mut answers = Vec::new();
    for i in 0..200 {
        let id = format!("{tag}-{i}");
        let mut s = server.connect();
        let r = support::request_with_body(
            &mut s,
            "POST",
            "/graphql",
            &[("Content-Type", "application/json"), ("X-Request-Id", &id)],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("no answer to the channel page within {PATIENCE:?}: {e}"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        answers.push(data(r.json()));
        shards.insert(server.shard_of(&id));
        if shards.len() == 2 {
            return answers;
        }
    }
    panic!("only shard {shards:?} answered");
}

#[test]
fn postgres_down_fails_fast_and_recovers() {
    let pg = PrivatePg::start_new();
    // Cached rows are kept longer than the test runs: what the page reads while
    // PostgreSQL is down must come from the caches, however slow the machine.
    let server = serve(
        &pg,
        &[
            ("STREAMHUB_DEMO_DATA", "small"),
            ("STREAMHUB_CACHE_TTL", "1h"),
        ],
    );
    let bob = token("u2", "bob", false);
    assert_eq!(readyz(&server).0, 200);
    let before = gql_sent(&server, &bob, "ch_u1", "before the outage");
    // A connection that has sent once: its shard's caches hold what a send checks, so
    // its sends during the outage go as far as the chat writer.
    let mut bob_ws = ws(&server, Some(&bob));
    let before_ws =
        ws_send(&mut bob_ws, "ch_u1", "before the outage, by ws", "b0").expect("acknowledged");
    let warm = page_on_every_shard(&server, "warm");
    let page = warm.last().unwrap().clone();
    assert!(warm.iter().all(|p| *p == page), "{warm:?}");
    let recent = &page["channel"]["recentMessages"];
    assert_eq!(
        (&recent[3]["seq"], &recent[4]["seq"]),
        (&json!(before), &json!(before_ws)),
        "{page}"
    );

    pg.stop();
    // Writes fail, each with an answer (not a hang), whether the circuit is still
    // closed (the first few try to connect) or already open.
    for i in 0..4 {
        let r = gql_send(&server, &bob, "ch_u1", &format!("during the outage {i}"));
        assert_eq!(code(&r), "SERVICE_UNAVAILABLE", "{r}");
        assert!(r["data"]["sendChatMessage"].is_null(), "{r}");
        let r = gql(
            &server,
            Some(&bob),
            "mutation { follow(channelId: \"ch_u3\") { followerCount } }",
            json!({}),
        );
        assert_eq!(code(&r), "SERVICE_UNAVAILABLE", "{r}");
        let e = ws_send(&mut bob_ws, "ch_u1", "during the outage", &format!("o{i}"))
            .expect_err("nothing is acknowledged while PostgreSQL is down");
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
    }
    let (status, body) = readyz(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "store", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("PostgreSQL"),
        "{body}"
    );
    // The page is still served from the caches, on every shard.
    for p in page_on_every_shard(&server, "outage") {
        assert_eq!(p, page);
    }

    pg.start();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = readyz(&server);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} {body} {PATIENCE:?} after PostgreSQL is back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Writes work again, on the same server.
    let back = gql_sent(&server, &bob, "ch_u1", "after the outage");
    let r = gql(
        &server,
        Some(&bob),
        "mutation { follow(channelId: \"ch_u3\") { viewerIsFollowing } }",
        json!({}),
    );
    assert_eq!(data(r)["follow"]["viewerIsFollowing"], true);
    let seq = ws_send(&mut bob_ws, "ch_u1", "after the outage, by ws", "b").expect("acknowledged");
    assert!(seq > back, "{seq} after {back}");
    for p in page_on_every_shard(&server, "back") {
        let recent = p["channel"]["recentMessages"].as_array().unwrap();
        assert_eq!(recent[4]["seq"], seq);
        assert_eq!(recent[3]["seq"], back);
    }
}

#[test]
fn acknowledged_chat_survives_an_outage_and_sigterm() {
    let pg = PrivatePg::start_new();
    let mut a = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let bob = token("u2", "bob", false);
    let room = "ch_u3";
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut bob_ws = ws(&a, Some(&bob));
    for i in 0..12 {
        let body = format!("acknowledged {i}");
        let seq = if i % 3 == 0 {
            gql_sent(&a, &bob, room, &body)
        } else {
            ws_send(&mut bob_ws, room, &body, &format!("a{i}")).expect("acknowledged")
        };
        acked.push((seq, body));
    }

    pg.stop();
    let mut refused = Vec::new();
    for i in 0..6 {
        let body = format!("refused {i}");
        if i % 2 == 0 {
            let r = gql_send(&a, &bob, room, &body);
            assert_eq!(code(&r), "SERVICE_UNAVAILABLE", "{r}");
        } else {
            let e = ws_send(&mut bob_ws, room, &body, &format!("r{i}"))
                .expect_err("nothing is acknowledged while PostgreSQL is down");
            assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
        }
        refused.push(body);
    }
    // SIGTERM during the outage: the WebSocket client is told to go (1001), the process
    // exits cleanly.
    a.sigterm();
    assert_eq!(bob_ws.close_code(), Some(1001));
    drop(bob_ws);
    let status = a.wait_exit(PATIENCE);
    assert!(status.success(), "the server exited with {status}");
    drop(a);

    pg.start();
    let b = serve(&pg, &[]);
    let kept = history(&b, room);
    for m in &acked {
        assert!(kept.contains(m), "acknowledged {m:?} is lost: {kept:?}");
    }
    for body in &refused {
        assert!(
            kept.iter().all(|(_, b)| b != body),
            "refused {body:?} was recorded: {kept:?}"
        );
    }
    // The room's history on the new server: exactly the acknowledged messages after
    // the first one's predecessor, in order.
    let first = acked[0].0;
    let mut member = ws(&b, None);
    let j = member.join(room, Some(first - 1));
    assert_eq!(j["recovered"], true, "{j}");
    assert_eq!(j["seq"], acked.last().unwrap().0, "{j}");
    for (seq, body) in &acked {
        let e = member.next_json();
        assert_eq!(e["type"], "message", "{e}");
        assert_eq!((&e["seq"], &e["body"]), (&json!(seq), &json!(body)));
    }
}

#[test]
fn a_client_reconnecting_with_since_after_a_restart_recovers_its_gap() {
    let pg = PrivatePg::start_new();
    let a = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let bob = token("u2", "bob", false);
    let room = "ch_u2"; // bob's channel
                        // A witness stays in the room on A: what it receives live is what the member
                        // must recover after the restart.
    let mut witness = ws(&a, None);
    witness.join(room, None);
    let mut member = ws(&a, None);
    member.join(room, None);
    let seen = gql_sent(&a, &bob, room, "seen by the member");
    let m = member.next_json();
    assert_eq!((&m["type"], &m["seq"]), (&json!("message"), &json!(seen)));
    assert_eq!(witness.next_json()["seq"], seen);
    drop(member);

    // Missed: messages both ways, a deletion, a ban, a message.
    let mut bob_ws = ws(&a, Some(&bob));
    let mut seqs = Vec::new();
    for i in 0..4 {
        let body = format!("missed {i}");
        seqs.push(if i % 2 == 0 {
            gql_sent(&a, &bob, room, &body)
        } else {
            ws_send(&mut bob_ws, room, &body, &format!("m{i}")).expect("acknowledged")
        });
    }
    drop(bob_ws);
    let d = data(gql(
        &a,
        Some(&bob),
        "mutation($s: Int!) { deleteChatMessage(channelId: \"ch_u2\", messageSeq: $s) }",
        json!({"s": seqs[1]}),
    ));
    assert_eq!(d["deleteChatMessage"], true);
    let d = data(gql(
        &a,
        Some(&bob),
        "mutation { banUser(channelId: \"ch_u2\", userId: \"u150\", durationSeconds: 3600) }",
        json!({}),
    ));
    assert_eq!(d["banUser"], true);
    gql_sent(&a, &bob, room, "missed last");
    let missed: Vec<Value> = (0..7).map(|_| witness.next_json()).collect();
    let missed_seqs: Vec<u64> = missed.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(missed_seqs, (seen + 1..=seen + 7).collect::<Vec<_>>());
    let kinds: Vec<&str> = missed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["message", "message", "message", "message", "deleted", "banned", "message"]
    );
    drop(witness);
    terminate(a);

    let b = serve(&pg, &[]);
    let mut member = ws(&b, None);
    let j = member.join(room, Some(seen));
    assert_eq!(
        j,
        json!({"type": "joined", "room": room, "seq": seen + 7, "recovered": true})
    );
    for want in &missed {
        assert_eq!(member.next_json(), *want);
    }
    // And then live, from where the replay ended.
    let next = gql_sent(&b, &bob, room, "after the restart");
    assert_eq!(next, seen + 8);
    let e = member.next_json();
    assert_eq!(
        (&e["seq"], &e["body"]),
        (&json!(next), &json!("after the restart"))
    );
}

/// Strings that would change a query if the server built SQL from text, or a pattern
/// if it matched with LIKE: each fits every stored text field (25 characters at most,
/// nothing to trim), and none is a valid tag, language, id or cursor.
const HOSTILE: [&str; 12] = [
    "'); DROP TABLE users; --",
    "%",
    "_",
    "\\",
    "'",
    "\"",
    "''",
    "%' OR '1'='1",
    "\" OR \"\"=\"",
    "a_b%c\\d'e\"f",
    "$1",
    "\\'; SELECT 1; --",
];

/// What must not change while hostile arguments go by (read through GraphQL).
const COUNTS: &str = "{
    search(query: \"o\", first: 100) { __typename ... on User { id } ... on Channel { id } ... on Category { id } }
    streams(first: 100) { totalCount }
    categories(first: 100) { totalCount }
    bob: channel(login: \"bob\") { title followerCount followers(first: 100) { totalCount } }
    carol: user(login: \"carol\") { displayName following(first: 100) { totalCount } }
    alice: channel(id: \"ch_u1\") { title tags recentMessages(last: 3) { seq body } }
}";

#[test]
fn graphql_string_arguments_cannot_inject_sql() {
    let pg = PrivatePg::start_new();
    let server = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    for s in HOSTILE {
        assert!(s.chars().count() <= 25 && s.trim() == s, "{s:?}");
    }
    // A user per hostile login (the token's `login` claim, stored as the login), made
    // before the counts are taken.
    for (i, s) in HOSTILE.iter().enumerate() {
        let t = token(&format!("u_h{i}"), s, false);
        let me = data(gql(&server, Some(&t), "{ viewer { id login } }", json!({})));
        assert_eq!(me["viewer"], json!({"id": format!("u_h{i}"), "login": s}));
    }
    let writer = token("u_writer", "writer", false);
    data(gql(&server, Some(&writer), "{ viewer { id } }", json!({})));
    let counts = data(gql(&server, None, COUNTS, json!({})));
    assert!(!counts["search"].as_array().unwrap().is_empty());
    let tables =
        pg.psql("SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM channels)");

    for (i, s) in HOSTILE.iter().enumerate() {
        let v = json!({"s": s});
        let who = format!("{s:?}");
        // Looked up by every string a lookup takes: found where the hostile user is,
        // nothing otherwise.
        let found = data(gql(
            &server,
            None,
            "query($s: String!, $id: ID!) {
                user(login: $s) { id login }
                channel(login: $s) { id login }
                byId: user(id: $id) { id }
                channelById: channel(id: $id) { id }
                node(id: $id) { id }
                category(slug: $s) { id }
                categoryById: category(id: $id) { id }
                streams(categoryId: $id) { totalCount }
            }",
            json!({"s": s, "id": s}),
        ));
        assert_eq!(
            found,
            json!({
                "user": {"id": format!("u_h{i}"), "login": s},
                "channel": {"id": format!("ch_u_h{i}"), "login": s},
                "byId": null, "channelById": null, "node": null,
                "category": null, "categoryById": null,
                "streams": {"totalCount": 0},
            }),
            "{who}"
        );
        // Search matches the text itself, not a pattern.
        let hits = data(gql(
            &server,
            None,
            "query($s: String!) { search(query: $s, first: 100) { __typename ... on User { id login } ... on Channel { id title } ... on Category { id name } } }",
            v.clone(),
        ));
        let needle = s.to_lowercase();
        let hits = hits["search"].as_array().unwrap();
        assert!(
            hits.iter().any(|h| h["id"] == format!("u_h{i}")),
            "{who}: {hits:?}"
        );
        for h in hits {
            let text = ["login", "title", "name"]
                .iter()
                .find_map(|k| h[*k].as_str())
                .unwrap()
                .to_lowercase();
            assert!(text.contains(&needle), "{who} found {h}");
        }

        // Stored and echoed verbatim: a profile, a channel title, a stream title, a
        // chat message; read back from the store.
        let p = data(gql(
            &server,
            Some(&writer),
            "mutation($s: String!) { updateProfile(input: {displayName: $s, bio: $s}) { displayName bio } }",
            v.clone(),
        ));
        assert_eq!(
            p["updateProfile"],
            json!({"displayName": s, "bio": s}),
            "{who}"
        );
        let c = data(gql(
            &server,
            Some(&writer),
            "mutation($s: String!) { updateChannel(input: {title: $s}) { title } }",
            v.clone(),
        ));
        assert_eq!(c["updateChannel"]["title"], *s, "{who}");
        let st = data(gql(
            &server,
            Some(&writer),
            "mutation($s: String!) { startStream(input: {title: $s}) { title channel { isLive } } }",
            v.clone(),
        ));
        assert_eq!(
            st["startStream"],
            json!({"title": s, "channel": {"isLive": true}}),
            "{who}"
        );
        let seq = gql_sent(&server, &writer, "ch_u_writer", s);
        let back = data(gql(
            &server,
            None,
            "{ user(id: \"u_writer\") { displayName bio channel { title stream { title } recentMessages(last: 1) { seq body } } } }",
            json!({}),
        ));
        assert_eq!(
            back["user"],
            json!({"displayName": s, "bio": s, "channel": {"title": s, "stream": {"title": s}, "recentMessages": [{"seq": seq, "body": s}]}}),
            "{who}"
        );
        assert_eq!(
            history(&server, "ch_u_writer").last(),
            Some(&(seq, s.to_string()))
        );
        data(gql(
            &server,
            Some(&writer),
            "mutation { endStream { isLive } }",
            json!({}),
        ));
        // A ban's reason is taken (and not stored).
        let ban = data(gql(
            &server,
            Some(&writer),
            "mutation($s: String!) { banUser(channelId: \"ch_u_writer\", userId: \"u2\", durationSeconds: 60, reason: $s) unbanUser(channelId: \"ch_u_writer\", userId: \"u2\") }",
            v.clone(),
        ));
        assert_eq!(ban, json!({"banUser": true, "unbanUser": true}), "{who}");

        // Refused for what they are, each with its code.
        let refusals: [(&str, &str); 6] = [
            (
                "mutation($s: String!) { updateChannel(input: {tags: [$s]}) { id } }",
                "BAD_USER_INPUT",
            ),
            (
                "mutation($s: String!) { updateChannel(input: {language: $s}) { id } }",
                "BAD_USER_INPUT",
            ),
            (
                "mutation($s: ID!) { updateChannel(input: {categoryId: $s}) { id } }",
                "BAD_USER_INPUT",
            ),
            (
                "mutation($s: ID!) { startStream(input: {title: \"t\", categoryId: $s}) { id } }",
                "BAD_USER_INPUT",
            ),
            (
                "query($s: String!) { streams(after: $s) { totalCount } }",
                "BAD_USER_INPUT",
            ),
            (
                "query($s: String!) { categories(after: $s) { totalCount } }",
                "BAD_USER_INPUT",
            ),
        ];
        for (query, want) in refusals {
            let r = gql(&server, Some(&writer), query, v.clone());
            assert_eq!(code(&r), want, "{who} in {query}: {r}");
        }
        let refusals: [(&str, &str); 4] = [
            ("query($s: String!) { user(login: \"bob\") { following(after: $s) { totalCount } } }", "BAD_USER_INPUT"),
            ("query($s: String!) { channel(login: \"bob\") { followers(after: $s) { totalCount } } }", "BAD_USER_INPUT"),
            ("query($s: String!) { category(slug: \"art\") { streams(after: $s) { totalCount } } }", "BAD_USER_INPUT"),
            ("query($s: ID!) { chatHistory(channelId: $s) { seq } }", "NOT_FOUND"),
        ];
        for (query, want) in refusals {
            let r = gql(&server, None, query, v.clone());
            assert_eq!(code(&r), want, "{who} in {query}: {r}");
        }
        // No stream is in that language.
        let r = data(gql(
            &server,
            None,
            "query($s: String!) { streams(language: $s) { totalCount } }",
            v.clone(),
        ));
        assert_eq!(r["streams"]["totalCount"], 0, "{who}");
        let not_found: [&str; 11] = [
            "mutation($s: ID!) { follow(channelId: $s) { id } }",
            "mutation($s: ID!) { unfollow(channelId: $s) { id } }",
            "mutation($s: ID!) { sendChatMessage(channelId: $s, body: \"x\") { seq } }",
            "mutation($s: ID!) { deleteChatMessage(channelId: $s, messageSeq: 1) }",
            "mutation($s: ID!) { banUser(channelId: $s, userId: \"u2\") }",
            "mutation($s: ID!) { banUser(channelId: \"ch_u_writer\", userId: $s) }",
            "mutation($s: ID!) { unbanUser(channelId: $s, userId: \"u2\") }",
            "mutation($s: ID!) { unbanUser(channelId: \"ch_u_writer\", userId: $s) }",
            "mutation($s: ID!) { addModerator(channelId: \"ch_u_writer\", userId: $s) { id } }",
            "mutation($s: ID!) { removeModerator(channelId: $s, userId: \"u2\") { id } }",
            "mutation($s: ID!) { addModerator(channelId: $s, userId: \"u2\") { id } }",
        ];
        for query in not_found {
            let r = gql(&server, Some(&writer), query, v.clone());
            assert_eq!(code(&r), "NOT_FOUND", "{who} in {query}: {r}");
        }
        // A subscription's channel id, over SSE.
        let mut sse = Streamed::open(
            server.addr,
            "text/event-stream",
            &json!({"query": "subscription($s: ID!) { chatEvents(channelId: $s) { __typename } }", "variables": v}),
            &[],
        );
        assert_eq!(sse.status, 200);
        let first = sse.next_event().expect("an event");
        assert_eq!(first.event, "next", "{who}: {first:?}");
        assert_eq!(code(&first.json()), "NOT_FOUND", "{who}: {first:?}");
    }

    // The writer's channel back as it was, so the counts compare.
    data(gql(
        &server,
        Some(&writer),
        "mutation { updateChannel(input: {title: \"writer's channel\"}) { title } }",
        json!({}),
    ));
    assert_eq!(data(gql(&server, None, COUNTS, json!({}))), counts);
    assert_eq!(
        pg.psql("SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM channels)"),
        tables
    );
    assert_eq!(readyz(&server).0, 200);
}

/// A NUL character cannot be stored in PostgreSQL's text: a string argument holding
/// one is the request's fault, never a sign that PostgreSQL is down. Anyone could
/// otherwise open the circuit breaker for the whole node with three anonymous reads.
#[test]
fn a_nul_in_a_string_argument_is_bad_input_not_an_outage() {
    let pg = PrivatePg::start_new();
    let server = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let bob = token("u2", "bob", false);
    let nul = "a\u{0}b";
    let mut bob_ws = ws(&server, Some(&bob));
    for i in 0..5 {
        let r = gql(
            &server,
            None,
            "query($s: String!) { user(login: $s) { id } }",
            json!({"s": nul}),
        );
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        let r = gql(
            &server,
            None,
            "query($s: String!) { search(query: $s) { __typename } }",
            json!({"s": nul}),
        );
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        let r = gql(
            &server,
            Some(&bob),
            "mutation($s: String!) { updateProfile(input: {bio: $s}) { bio } }",
            json!({"s": nul}),
        );
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        let r = gql_send(&server, &bob, "ch_u1", nul);
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        let e = ws_send(&mut bob_ws, "ch_u1", nul, &format!("n{i}")).unwrap_err();
        assert_eq!(e["code"], "BAD_USER_INPUT", "{e}");
    }
    drop(bob_ws);
    let (status, body) = readyz(&server);
    assert_eq!(status, 200, "{body}");
    gql_sent(&server, &bob, "ch_u1", "the store still serves");
    let r = data(gql(
        &server,
        None,
        "{ user(login: \"bob\") { id bio } }",
        json!({}),
    ));
    assert_eq!(r["user"]["id"], "u2");
    assert_ne!(r["user"]["bio"], nul);
    assert!(history(&server, "ch_u1").iter().all(|(_, b)| b != nul));
}

/// Chat alone brings the node back: once PostgreSQL is back, a sender that keeps
/// trying is acknowledged again, with nothing else (no `/readyz`, no read) asking the
/// store first.
#[test]
fn chat_alone_recovers_once_postgres_is_back() {
    let pg = PrivatePg::start_new();
    let server = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let bob = token("u2", "bob", false);
    let mut bob_ws = ws(&server, Some(&bob));
    ws_send(&mut bob_ws, "ch_u1", "before", "b").expect("acknowledged");
    // Each refusal says why once (a refusal is not a new failure of PostgreSQL's).
    let says_why_once = |e: &Value| {
        let m = e["message"].as_str().unwrap_or_default();
        assert!(m.contains("PostgreSQL"), "{e}");
        assert!(m.matches("is unreachable").count() <= 1, "{e}");
    };
    pg.stop();
    for i in 0..8 {
        let e = ws_send(&mut bob_ws, "ch_u1", "during", &format!("d{i}")).unwrap_err();
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
        if i >= 3 {
            says_why_once(&e);
        }
    }
    pg.start();
    let deadline = Instant::now() + PATIENCE;
    for i in 0.. {
        match ws_send(&mut bob_ws, "ch_u1", "after", &format!("a{i}")) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
                says_why_once(&e);
                assert!(
                    Instant::now() < deadline,
                    "no message acknowledged {PATIENCE:?} after PostgreSQL came back; the last answer: {e}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PostgreSQL that hangs (frozen, as behind a network partition) rather than refusing:
/// a chat send is refused once its call's deadline has passed, and once PostgreSQL
/// answers again, the sends that were refused and still waited in the chat writer's
/// queue are not recorded after all. (The batch already sent when PostgreSQL froze
/// may be committed when it thaws, although its sender was refused: its outcome is
/// unknowable to the server, as any database client's after a timeout. Not judged.)
#[test]
fn sends_refused_while_postgres_hangs_are_not_recorded_later() {
    let pg = PrivatePg::start_new();
    // Short bounds, so that each call gives up soon: 100 ms pool wait, 1 s connect,
    // 500 ms statements, and the store's 1 s of slack.
    let url = format!("{}?connect_timeout=1", pg.url());
    let server = serve(
        &pg,
        &[
            ("STREAMHUB_DEMO_DATA", "small"),
            ("DATABASE_URL", &url),
            ("STREAMHUB_DB_POOL_WAIT", "100ms"),
            ("STREAMHUB_DB_STATEMENT_TIMEOUT", "500ms"),
        ],
    );
    let bob = token("u2", "bob", false);
    let mut bob_ws = ws(&server, Some(&bob));
    ws_send(&mut bob_ws, "ch_u1", "before", "b").expect("acknowledged");
    pg.freeze();
    // The first waits on the wire, the next ones in the writer's queue behind it, until
    // their calls give up; then the circuit is open and the last is refused at once.
    let hung: Vec<String> = (0..4).map(|i| format!("hung {i}")).collect();
    for (i, body) in hung.iter().enumerate() {
        let e = ws_send(&mut bob_ws, "ch_u1", body, &format!("h{i}"))
            .expect_err("nothing is acknowledged while PostgreSQL hangs");
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
    }
    pg.thaw();
    // Once a new message is acknowledged, the writer has written (or dropped) all that
    // queued before it.
    let deadline = Instant::now() + PATIENCE;
    for i in 0.. {
        match ws_send(&mut bob_ws, "ch_u1", "after", &format!("a{i}")) {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no message acknowledged {PATIENCE:?} after PostgreSQL thawed: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept = history(&server, "ch_u1");
    assert!(kept.iter().any(|(_, b)| b == "after"), "{kept:?}");
    for body in &hung[1..] {
        assert!(
            kept.iter().all(|(_, b)| b != body),
            "{body:?} was refused, and recorded: {kept:?}"
        );
    }
}

#[test]
fn a_refused_message_reaches_no_one_and_its_seq_is_never_given_again() {
    let pg = PrivatePg::start_new();
    let a = serve(&pg, &[("STREAMHUB_DEMO_DATA", "small")]);
    let bob = token("u2", "bob", false);
    let room = "ch_u1";
    // Members on several connections (so, whatever the kernel does, on more than one
    // shard as a rule); none of them may ever see a refused message.
    let mut members: Vec<WsClient> = (0..4).map(|_| ws(&a, None)).collect();
    for m in &mut members {
        m.join(room, None);
    }
    let before = gql_sent(&a, &bob, room, "before the outage");
    for m in &mut members {
        let e = m.next_json();
        assert_eq!(
            (&e["seq"], &e["body"]),
            (&json!(before), &json!("before the outage"))
        );
    }
    let mut bob_ws = ws(&a, Some(&bob));
    ws_send(&mut bob_ws, room, "warm", "w").expect("acknowledged");
    for m in &mut members {
        assert_eq!(m.next_json()["body"], "warm");
    }

    pg.stop();
    for i in 0..4 {
        let r = gql_send(&a, &bob, room, &format!("refused {i}"));
        assert_eq!(code(&r), "SERVICE_UNAVAILABLE", "{r}");
        let e = ws_send(
            &mut bob_ws,
            room,
            &format!("refused by ws {i}"),
            &format!("r{i}"),
        )
        .expect_err("nothing is acknowledged while PostgreSQL is down");
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
    }
    pg.start();
    let deadline = Instant::now() + PATIENCE;
    while readyz(&a).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again {PATIENCE:?} after PostgreSQL is back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = gql_sent(&a, &bob, room, "after the outage");
    let after_ws = ws_send(&mut bob_ws, room, "after, by ws", "a").expect("acknowledged");
    assert!(after > before + 1, "{after} after {before}");
    assert_eq!(after_ws, after + 1);
    // Live: the members' next events are the acknowledged ones, nothing refused between.
    for m in &mut members {
        let e = m.next_json();
        assert_eq!(
            (&e["seq"], &e["body"]),
            (&json!(after), &json!("after the outage")),
            "{e}"
        );
        let e = m.next_json();
        assert_eq!(
            (&e["seq"], &e["body"]),
            (&json!(after_ws), &json!("after, by ws")),
            "{e}"
        );
    }
    // A replay over the outage: the acknowledged events only.
    let replay = |server: &Server| -> Vec<(u64, String)> {
        let mut c = ws(server, None);
        let j = c.join(room, Some(before));
        assert_eq!(j["recovered"], true, "{j}");
        let last = j["seq"].as_u64().unwrap();
        let mut seen = Vec::new();
        while seen.last().is_none_or(|(s, _)| *s < last) {
            let e = c.next_json();
            seen.push((
                e["seq"].as_u64().unwrap(),
                e["body"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        seen
    };
    let acked = vec![
        (before + 1, "warm".to_owned()),
        (after, "after the outage".to_owned()),
        (after_ws, "after, by ws".to_owned()),
    ];
    assert_eq!(replay(&a), acked);
    drop(members);
    drop(bob_ws);
    terminate(a);

    // After a restart, the same; the next message takes the next seq.
    let b = serve(&pg, &[]);
    assert_eq!(replay(&b), acked);
    let next = gql_sent(&b, &bob, room, "after the restart");
    assert_eq!(next, after_ws + 1);
}
