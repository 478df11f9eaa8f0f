//! `graphql-transport-ws` on `/graphql` against the real binary: the `graphql-ws` npm
//! client runs a query and subscribes to `chatEvents` while another client sends by
//! GraphQL mutation and by the room protocol, then replays from a seq; and every
//! protocol misstep gets its close code.

mod support;

use serde_json::{json, Value};
use support::{token, Server, WsClient, SECRET};

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_CHAT", "off"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

#[test]
fn the_graphql_ws_client_gets_every_event_sent_by_mutation_and_by_the_room_protocol() {
    let server = server(&[]);
    let addr = server.addr.to_string();
    let (alice, bob) = (token("u1", "alice", false), token("u2", "bob", false));
    let r = support::run_node("subscribe.mjs", &[&addr, &alice, &bob, "ch_u7"]);
    assert_eq!(
        r["query"]["data"],
        json!({"viewer": {"login": "alice"}, "category": {"name": "Art"}})
    );
    let events = r["events"].as_array().unwrap();
    let bodies: Vec<&str> = events
        .iter()
        .map(|e| {
            e["data"]["chatEvents"]["body"]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"))
        })
        .collect();
    assert_eq!(bodies.len(), 4);
    let mut by_mutation: Vec<&str> = bodies
        .iter()
        .copied()
        .filter(|b| b.starts_with("by mutation"))
        .collect();
    by_mutation.sort_unstable();
    assert_eq!(by_mutation, ["by mutation 1", "by mutation 2"]);
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["data"]["chatEvents"]["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gaps: {seqs:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["data"]["chatEvents"]["author"]["login"] == "bob"));
    // `sinceSeq` replays the same events in order.
    assert_eq!(r["replayed"], json!(seqs));
}

fn server_limited() -> Server {
    server(&[("STREAMHUB_WS_MAX_SUBSCRIPTIONS", "1")])
}

fn gql_ws(server: &Server) -> WsClient {
    WsClient::connect(
        server,
        "/graphql",
        &[("Sec-WebSocket-Protocol", "graphql-transport-ws")],
    )
}

#[test]
fn protocol_missteps_get_their_close_codes() {
    let server = server(&[("STREAMHUB_HEADER_TIMEOUT", "1s")]);
    // No subprotocol.
    let mut c = WsClient::connect(&server, "/graphql", &[]);
    assert_eq!(c.close_code(), Some(4406));
    // Subscribe before connection_init.
    let mut c = gql_ws(&server);
    c.send_json(
        &json!({"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { id } }"}}),
    );
    assert_eq!(c.close_code(), Some(4401));
    // Two inits.
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init"}));
    assert_eq!(c.next_json()["type"], "connection_ack");
    c.send_json(&json!({"type": "connection_init"}));
    assert_eq!(c.close_code(), Some(4429));
    // A bad token in the init payload.
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init", "payload": {"token": "forged"}}));
    assert_eq!(c.close_code(), Some(4403));
    // Authorization inside the payload works too.
    let mut c = gql_ws(&server);
    let auth = format!("Bearer {}", token("u3", "carol", true));
    c.send_json(&json!({"type": "connection_init", "payload": {"Authorization": auth}}));
    assert_eq!(c.next_json()["type"], "connection_ack");
    c.send_json(
        &json!({"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { roles } }"}}),
    );
    let next = c.next_json();
    assert_eq!(
        next["payload"]["data"]["viewer"]["roles"],
        json!(["VIEWER", "ADMIN"])
    );
    assert_eq!(c.next_json()["type"], "complete");
    // A subscription id in use.
    let sub = json!({"id": "s", "type": "subscribe", "payload": {"query": "subscription { chatEvents(channelId: \"ch_u1\") { __typename } }"}});
    c.send_json(&sub);
    c.send_json(&json!({"type": "ping"}));
    assert_eq!(c.next_json()["type"], "pong");
    c.send_json(&sub);
    assert_eq!(c.close_code(), Some(4409));
    // Validation errors come back as `error` for that id, and the socket stays.
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init"}));
    c.next_json();
    c.send_json(
        &json!({"id": "bad", "type": "subscribe", "payload": {"query": "subscription { nope }"}}),
    );
    let e = c.next_json();
    assert_eq!(
        (e["type"].as_str(), e["id"].as_str()),
        (Some("error"), Some("bad"))
    );
    assert_eq!(
        e["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // Not a protocol message.
    c.send_json(&json!({"type": "hello"}));
    assert_eq!(c.close_code(), Some(4400));
    // Subscriptions per connection.
    let limited = server_limited();
    let mut c = gql_ws(&limited);
    c.send_json(&json!({"type": "connection_init"}));
    c.next_json();
    for id in ["a", "b"] {
        c.send_json(&json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { chatEvents(channelId: \"ch_u1\") { __typename } }"}}));
    }
    let e = c.next_json();
    assert_eq!(
        (e["type"].as_str(), e["id"].as_str()),
        (Some("error"), Some("b"))
    );
    // No init in time.
    let mut c = gql_ws(&server);
    assert_eq!(c.close_code(), Some(4408));
}

#[test]
fn viewer_counts_and_stream_changes_reach_their_subscribers() {
    let server = server(&[]);
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init"}));
    assert_eq!(c.next_json()["type"], "connection_ack");
    c.send_json(&json!({"id": "v", "type": "subscribe", "payload": {"query": "subscription { viewerCount(channelId: \"ch_u9\") }"}}));
    c.send_json(&json!({"id": "s", "type": "subscribe", "payload": {"query": "subscription { streamUpdates(channelId: \"ch_u9\") { isLive title channel { login } } }"}}));
    let first = c.next_json();
    assert_eq!(first["id"], "v", "{first}");
    let before = first["payload"]["data"]["viewerCount"].as_i64().unwrap();
    // Someone joins the room: the count goes up by one, emitted within a second.
    let mut viewer = WsClient::connect(&server, "/ws", &[]);
    viewer.send_json(&json!({"type": "join", "room": "ch_u9"}));
    assert_eq!(viewer.next_json()["type"], "joined");
    let next = c.next_json();
    assert_eq!(next["id"], "v");
    assert_eq!(next["payload"]["data"]["viewerCount"], before + 1);
    // The owner goes live with a new title, then offline (whatever it was before). An
    // update renders the channel as it is when it renders, so a change followed at once
    // by another may show only the later state: each is awaited before the next.
    let owner = token("u9", "nine", false);
    let ok = |q: &str| {
        let r = server.graphql(Some(&owner), &json!({"query": q}));
        assert!(r.json().get("errors").is_none(), "{}", r.json());
    };
    let update_until = |c: &mut WsClient, live: bool| loop {
        let m = c.next_json();
        if m["id"] == "s" && m["payload"]["data"]["streamUpdates"]["isLive"] == live {
            return m["payload"]["data"]["streamUpdates"].clone();
        }
    };
    ok("mutation { endStream { isLive } }");
    ok("mutation { startStream(input: {title: \"back live\"}) { id } }");
    let live = update_until(&mut c, true);
    assert_eq!(live["title"], "back live");
    ok("mutation { endStream { isLive } }");
    let offline = update_until(&mut c, false);
    assert_eq!(live["channel"]["login"], offline["channel"]["login"]);
}

#[test]
fn a_viewer_dependent_subscription_is_rendered_for_each_subscriber() {
    let server = server(&[]);
    let follower = token("u40", "forty", false);
    let r = server.graphql(
        Some(&follower),
        &json!({"query": "mutation { follow(channelId: \"ch_u11\") { id } }"}),
    );
    assert!(r.json().get("errors").is_none(), "{}", r.json());
    let query = "subscription { streamUpdates(channelId: \"ch_u11\") { title channel { viewerIsFollowing } } }";
    let subscribe = |payload: Value| {
        let mut c = gql_ws(&server);
        c.send_json(&json!({"type": "connection_init", "payload": payload}));
        assert_eq!(c.next_json()["type"], "connection_ack");
        c.send_json(&json!({"id": "s", "type": "subscribe", "payload": {"query": query}}));
        c
    };
    let mut as_follower = subscribe(json!({"token": follower}));
    let mut as_other = subscribe(json!({"token": token("u41", "fortyone", false)}));
    let mut anonymous = subscribe(json!({}));
    // A query over each socket first: every subscription is in place once it answers.
    for c in [&mut as_follower, &mut as_other, &mut anonymous] {
        c.send_json(&json!({"id": "q", "type": "subscribe", "payload": {"query": "{ channel(id: \"ch_u11\") { id } }"}}));
        assert_eq!(c.next_json()["id"], "q");
        assert_eq!(c.next_json()["type"], "complete");
    }
    let owner = token("u11", "eleven", false);
    let r = server.graphql(
        Some(&owner),
        &json!({"query": "mutation { updateChannel(input: {title: \"new title\"}) { id } }"}),
    );
    assert!(r.json().get("errors").is_none(), "{}", r.json());
    for (c, follows) in [
        (&mut as_follower, true),
        (&mut as_other, false),
        (&mut anonymous, false),
    ] {
        let m = c.next_json();
        let u = &m["payload"]["data"]["streamUpdates"];
        assert_eq!(u["title"], "new title", "{m}");
        assert_eq!(u["channel"]["viewerIsFollowing"], follows, "{m}");
    }
}

#[test]
fn subscriptions_can_be_persisted_by_manifest_id_or_apq() {
    let dir = std::env::temp_dir().join(format!("streamhub-gqlws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        "subscription Chat($c: ID!) { chatEvents(channelId: $c) { ... on ChatMessage { body } } }";
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, json!({"chat": text}).to_string()).unwrap();
    let server = server(&[("STREAMHUB_PERSISTED_QUERIES", manifest.to_str().unwrap())]);
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init"}));
    assert_eq!(c.next_json()["type"], "connection_ack");
    // By the manifest's id.
    c.send_json(&json!({"id": "m", "type": "subscribe", "payload": {"documentId": "chat", "variables": {"c": "ch_u10"}}}));
    // By APQ: an unknown hash first, then hash and text.
    let other = "subscription { chatEvents(channelId: \"ch_u10\") { __typename } }";
    let hash = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(other.as_bytes()))
    };
    let apq = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    c.send_json(&json!({"id": "a1", "type": "subscribe", "payload": {"extensions": apq}}));
    let e = c.next_json();
    assert_eq!(
        (e["type"].as_str(), e["id"].as_str()),
        (Some("error"), Some("a1"))
    );
    assert_eq!(
        e["payload"][0]["extensions"]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    c.send_json(
        &json!({"id": "a2", "type": "subscribe", "payload": {"query": other, "extensions": apq}}),
    );
    // The connection's messages are handled in order: once the ping is answered, both
    // subscriptions are in place, so the message sent next reaches them.
    c.send_json(&json!({"type": "ping"}));
    assert_eq!(c.next_json()["type"], "pong");
    // Both get the next message of the room.
    let mut sender = WsClient::connect(
        &server,
        "/ws",
        &[(
            "Authorization",
            &format!("Bearer {}", token("u2", "bob", false)),
        )],
    );
    sender.send_json(&json!({"type": "send", "room": "ch_u10", "body": "persisted hello"}));
    let mut got = std::collections::HashMap::new();
    while got.len() < 2 {
        let m = c.next_json();
        assert_eq!(m["type"], "next", "{m}");
        got.insert(
            m["id"].as_str().unwrap().to_owned(),
            m["payload"]["data"]["chatEvents"].clone(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got["m"], json!({"body": "persisted hello"}));
    assert_eq!(got["a2"], json!({"__typename": "ChatMessage"}));
}

#[test]
fn a_since_seq_older_than_the_history_is_refused_with_history_unavailable() {
    let server = server(&[("STREAMHUB_HISTORY_EVENTS", "5")]);
    let bob = token("u2", "bob", false);
    let seqs: Vec<u64> = (0..7)
        .map(|i| {
            let r = server.graphql(
                Some(&bob),
                &json!({"query": format!("mutation {{ sendChatMessage(channelId: \"ch_u6\", body: \"m{i}\") {{ seq }} }}")}),
            );
            r.json()["data"]["sendChatMessage"]["seq"].as_u64().unwrap()
        })
        .collect();
    let mut c = gql_ws(&server);
    c.send_json(&json!({"type": "connection_init"}));
    assert_eq!(c.next_json()["type"], "connection_ack");
    // The 6 events after the first one sent: more than the 5 kept.
    c.send_json(&json!({"id": "s", "type": "subscribe", "payload": {
        "query": "subscription($s: Int) { chatEvents(channelId: \"ch_u6\", sinceSeq: $s) { __typename } }",
        "variables": {"s": seqs[0]},
    }}));
    let e = c.next_json();
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["id"], "s");
    assert_eq!(e["payload"][0]["extensions"]["code"], "HISTORY_UNAVAILABLE");
    // One more recent is replayed.
    c.send_json(&json!({"id": "t", "type": "subscribe", "payload": {
        "query": "subscription($s: Int) { chatEvents(channelId: \"ch_u6\", sinceSeq: $s) { ... on ChatMessage { seq } } }",
        "variables": {"s": seqs[6] - 1},
    }}));
    assert_eq!(
        c.next_json()["payload"]["data"]["chatEvents"]["seq"],
        seqs[6]
    );
}
