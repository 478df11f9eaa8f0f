//! The room protocol on `/ws` against the real binary over real sockets: delivery in seq
//! order and exactly once to members on every shard while several publishers send (by
//! the room protocol and by GraphQL), `since` recovery and its limits, authentication
//! paths, a slow consumer closed with 4008 while the others go on, and bad input (its
//! close code reaches a client still writing). The history's age is tested on the
//! library's node run in this process, its store on a clock moved by hand.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use streamhub_server::config::{Cli, Command};
use streamhub_server::node::Phase;
use streamhub_server::store::{Clock, Millis};
use support::{token, Server, WsClient, SECRET};

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_CHAT", "off"),
        ("STREAMHUB_RATE_WS_CONNECT", "off"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn auth(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn every_member_on_every_shard_gets_every_event_once_in_order() {
    let server = server(&[("STREAMHUB_SHARDS", "2")]);
    let mut members: Vec<WsClient> = (0..8)
        .map(|_| WsClient::connect(&server, "/ws", &[]))
        .collect();
    let start: Vec<u64> = members
        .iter_mut()
        .map(|m| m.join("ch_u2", None)["seq"].as_u64().unwrap())
        .collect();
    let first = start[0];
    assert!(start.iter().all(|&s| s == first));
    // Publishers: three room-protocol senders and one GraphQL client, at once.
    let per = 25;
    let mut threads = Vec::new();
    for n in 0..3 {
        let addr_server = &server;
        let mut c = WsClient::connect(
            addr_server,
            "/ws",
            &[(
                "Authorization",
                &auth(&token(&format!("u{}", 10 + n), "x", false)),
            )],
        );
        threads.push(std::thread::spawn(move || {
            for i in 0..per {
                c.send_json(&json!({"type": "send", "room": "ch_u2", "body": format!("ws {n} {i}"), "nonce": format!("{n}-{i}")}));
            }
            let mut acks = 0;
            while acks < per {
                if c.next_json()["type"] == "sent" {
                    acks += 1;
                }
            }
        }));
    }
    let alice = token("u1", "alice", false);
    for i in 0..per {
        let r = server.graphql(
            Some(&alice),
            &json!({"query": "mutation($b: String!) { sendChatMessage(channelId: \"ch_u2\", body: $b) { seq } }", "variables": {"b": format!("gql {i}")}}),
        );
        assert!(r.json()["data"]["sendChatMessage"]["seq"].is_u64());
    }
    for t in threads {
        t.join().unwrap();
    }
    let total = 4 * per as u64;
    for (k, m) in members.iter_mut().enumerate() {
        let mut seen = Vec::new();
        let mut bodies = HashMap::new();
        while (seen.len() as u64) < total {
            let e = m.next_json();
            assert_eq!(e["type"], "message", "{e}");
            seen.push(e["seq"].as_u64().unwrap());
            bodies.insert(e["body"].as_str().unwrap().to_owned(), ());
        }
        let want: Vec<u64> = (first + 1..=first + total).collect();
        assert_eq!(seen, want, "member {k}: every seq once, in order");
        assert_eq!(bodies.len() as u64, total);
    }
}

/// A member of `ch_u3` notes the room's last seq and leaves; bob then sends three
/// messages (`<prefix> 0..2`). Returns bob's connection and that seq.
fn miss_three(addr: SocketAddr, prefix: &str) -> (WsClient, u64) {
    let bob = token("u2", "bob", false);
    let mut sender = WsClient::connect_to(addr, "/ws", &[("Authorization", &auth(&bob))]);
    let mut a = WsClient::connect_to(addr, "/ws", &[]);
    let last = a.join("ch_u3", None)["seq"].as_u64().unwrap();
    drop(a);
    for i in 0..3 {
        sender
            .send_json(&json!({"type": "send", "room": "ch_u3", "body": format!("{prefix} {i}")}));
        assert_eq!(sender.next_json()["type"], "sent");
    }
    (sender, last)
}

#[test]
fn a_reconnect_with_since_recovers_the_gap_or_says_it_cannot() {
    let server = server(&[("STREAMHUB_HISTORY_EVENTS", "5")]);
    let (mut sender, last) = miss_three(server.addr, "missed");
    let mut again = WsClient::connect(&server, "/ws", &[]);
    let j = again.join("ch_u3", Some(last));
    assert_eq!(j["recovered"], true);
    assert_eq!(j["seq"], last + 3);
    for i in 0..3 {
        let e = again.next_json();
        assert_eq!(e["seq"], last + 1 + i);
        assert_eq!(e["body"], format!("missed {i}"));
    }
    for i in 0..4 {
        sender.send_json(&json!({"type": "send", "room": "ch_u3", "body": format!("more {i}")}));
        assert_eq!(sender.next_json()["type"], "sent");
    }
    // 7 events after `last`: more than the 5 kept.
    let mut late = WsClient::connect(&server, "/ws", &[]);
    let j = late.join("ch_u3", Some(last));
    assert_eq!(j["recovered"], false);
    assert_eq!(j["seq"], last + 7);
    // A since past the end is refused.
    late.send_json(&json!({"type": "join", "room": "ch_u2", "since": 1_000_000}));
    assert_eq!(late.next_json()["code"], "BAD_USER_INPUT");
}

/// A store clock the test moves by hand.
#[derive(Debug)]
struct HandClock(AtomicI64);

impl Clock for HandClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

impl HandClock {
    fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

#[test]
fn history_older_than_its_age_is_not_replayed_and_leaves_the_chat_log() {
    // The library's node in this process (the binary's `serve` without its logs and
    // signals), two shards, its store on a clock moved by hand; clients over sockets.
    let cli = Cli::try_parse_from([
        "streamhub",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--jwt-secret",
        SECRET,
        "--rate-chat",
        "off",
        "--rate-ws-connect",
        "off",
    ])
    .unwrap();
    let Command::Serve(config) = cli.into_command() else {
        unreachable!("no subcommand given")
    };
    let age = config.history_age.as_millis() as i64;
    let clock = Arc::new(HandClock(AtomicI64::new(1_800_000_000_000)));
    let node = streamhub_server::serve::start(*config, clock.clone()).unwrap();
    let (mut sender, last) = miss_three(node.addr, "old");
    let since_last = || WsClient::connect_to(node.addr, "/ws", &[]).join("ch_u3", Some(last));
    let history = || {
        let r = support::graphql_at(
            node.addr,
            None,
            &json!({"query": "{ channel(id: \"ch_u3\") { recentMessages(last: 50) { seq body } } chatHistory(channelId: \"ch_u3\") { seq } }"}),
        );
        r.json()["data"].clone()
    };
    // Just under the age, the three are replayed and in the chat log.
    clock.advance(age - 1);
    let j = since_last();
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(true), Some(last + 3)),
        "{j}"
    );
    let seqs = |list: &Value| -> Vec<u64> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect()
    };
    let d = history();
    assert!(
        seqs(&d["chatHistory"]).ends_with(&[last + 1, last + 2, last + 3]),
        "{d}"
    );
    // At the age, they are too old to replay...
    clock.advance(1);
    let j = since_last();
    assert_eq!(
        (j["recovered"].as_bool(), j["seq"].as_u64()),
        (Some(false), Some(last + 3)),
        "{j}"
    );
    // ... and the next message trims them from the room's log, which the chat history
    // reads.
    sender.send_json(&json!({"type": "send", "room": "ch_u3", "body": "new"}));
    assert_eq!(sender.next_json()["type"], "sent");
    let d = history();
    let new = json!([{"seq": last + 4, "body": "new"}]);
    assert_eq!(d["channel"]["recentMessages"], new, "{d}");
    assert_eq!(d["chatHistory"], json!([{"seq": last + 4}]), "{d}");
    drop(sender);
    node.node.advance(Phase::Closing);
    node.join().unwrap();
}

#[test]
fn identity_comes_from_the_header_or_the_auth_message_and_bad_tokens_close_1008() {
    let server = server(&[]);
    let mut anon = WsClient::connect(&server, "/ws", &[]);
    anon.send_json(&json!({"type": "send", "room": "ch_u1", "body": "hi", "nonce": "n"}));
    let e = anon.next_json();
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["nonce"].as_str()),
        (Some("error"), Some("UNAUTHENTICATED"), Some("n"))
    );
    anon.send_json(&json!({"type": "auth", "token": token("u2", "bob", false)}));
    anon.send_json(&json!({"type": "send", "room": "ch_u1", "body": "hi", "nonce": "n2"}));
    let s = anon.next_json();
    assert_eq!(
        (s["type"].as_str(), s["nonce"].as_str()),
        (Some("sent"), Some("n2"))
    );
    // A bad token in `auth` closes with 1008; on the upgrade it is a 401.
    let mut c = WsClient::connect(&server, "/ws", &[]);
    c.send_json(&json!({"type": "auth", "token": "not.a.token"}));
    assert_eq!(c.close_code(), Some(1008));
    let r = server.get(
        "/ws",
        &[
            ("Authorization", "Bearer forged"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn origins_outside_the_allow_list_are_closed_with_1008() {
    let server = server(&[("STREAMHUB_WS_ALLOWED_ORIGINS", "https://app.example")]);
    let mut ok = WsClient::connect(&server, "/ws", &[("Origin", "https://app.example")]);
    ok.send_json(&json!({"type": "ping"}));
    assert_eq!(ok.next_json()["type"], "pong");
    let mut bad = WsClient::connect(&server, "/ws", &[("Origin", "https://evil.example")]);
    assert_eq!(bad.close_code(), Some(1008));
}

#[test]
fn a_slow_consumer_is_closed_with_4008_and_the_others_keep_receiving() {
    let server = server(&[("STREAMHUB_WS_QUEUE_BYTES", "16KiB")]);
    let mut slow = WsClient::connect_small(&server, "/ws");
    slow.join("ch_u4", None);
    let mut fast = WsClient::connect(&server, "/ws", &[]);
    let first = fast.join("ch_u4", None)["seq"].as_u64().unwrap();
    // `slow` stops reading; messages fill the socket buffers, then its queue.
    let mut sender = WsClient::connect(
        &server,
        "/ws",
        &[("Authorization", &auth(&token("u5", "x", false)))],
    );
    let body = "x".repeat(500);
    // Enough to fill the kernel's buffers on both sides (at most 4 MiB here) and then
    // the 16 KiB queue.
    let total = 12_000u64;
    let reader = std::thread::spawn(move || {
        for i in 1..=total {
            let e = fast.next_json();
            assert_eq!(e["seq"], first + i);
        }
    });
    for _ in 0..total {
        // One at a time, so the reading member keeps up.
        sender.send_json(&json!({"type": "send", "room": "ch_u4", "body": body}));
        assert_eq!(sender.next_json()["type"], "sent");
    }
    reader.join().unwrap();
    slow.socket()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(slow.close_code(), Some(4008));
}

#[test]
fn the_server_pings_and_closes_only_the_session_that_stops_answering() {
    let server = server(&[
        ("STREAMHUB_WS_PING_INTERVAL", "1s"),
        ("STREAMHUB_WS_PONG_TIMEOUT", "1s"),
    ]);
    let mut silent = WsClient::connect(&server, "/ws", &[]);
    let mut alive = WsClient::connect(&server, "/ws", &[]);
    let answering = std::thread::spawn(move || {
        // Answer three pings (about three seconds: past the silent one's 2 s).
        let mut answered = 0;
        while answered < 3 {
            match alive.next() {
                Some(support::WsFrame::Ping) => {
                    alive.send_frame(0xA, b"");
                    answered += 1;
                }
                other => panic!("expected pings, got {other:?}"),
            }
        }
        alive
    });
    assert!(matches!(silent.next(), Some(support::WsFrame::Ping)));
    assert_eq!(silent.close_code(), Some(1001), "no answer to pings");
    let mut alive = answering.join().unwrap();
    alive.send_json(&json!({"type": "ping"}));
    assert_eq!(alive.next_json()["type"], "pong", "still served");
}

#[test]
fn bad_frames_and_messages_get_their_codes_and_nothing_else_is_disturbed() {
    let server = server(&[("STREAMHUB_WS_MAX_MESSAGE_BYTES", "1KiB")]);
    let mut bystander = WsClient::connect(&server, "/ws", &[]);
    let mut c = WsClient::connect(&server, "/ws", &[]);
    c.send_json(&json!({"type": "dance"}));
    assert_eq!(c.next_json()["code"], "BAD_USER_INPUT");
    c.send_json(&json!({"type": "join", "room": "nope"}));
    assert_eq!(c.next_json()["code"], "NOT_FOUND");
    c.send_frame(0x1, &vec![b'x'; 2000]);
    assert_eq!(c.close_code(), Some(1009));
    let mut b = WsClient::connect(&server, "/ws", &[]);
    b.send_frame(0x2, b"binary");
    assert_eq!(b.close_code(), Some(1003));
    let mut u = WsClient::connect(&server, "/ws", &[]);
    u.send_frame(0x1, &[0xff, 0xfe]);
    assert_eq!(u.close_code(), Some(1007));
    bystander.send_json(&json!({"type": "ping"}));
    assert_eq!(bystander.next_json()["type"], "pong");
}

#[test]
fn a_client_still_writing_past_its_error_reads_its_close_code() {
    // The default limit (64 KiB); every client keeps writing 2 MiB past its error.
    let server = server(&[]);
    let big = 2 << 20;
    let filler = support::filler();
    let mut fragments = support::masked_frame(0x01, &vec![b'x'; 32 << 10]);
    for _ in 0..62 {
        fragments.extend(support::masked_frame(0x00, &vec![b'x'; 32 << 10]));
    }
    fragments.extend(support::masked_frame(0x80, &vec![b'x'; 32 << 10]));
    let with_filler = |first: Vec<u8>| [first, filler.clone()].concat();
    let cases: [(&str, Vec<u8>, bool, u16); 6] = [
        (
            "one frame of 2 MiB",
            support::masked_frame(0x81, &vec![b'x'; big]),
            false,
            1009,
        ),
        ("2 MiB in fragments of 32 KiB", fragments, false, 1009),
        (
            "a reserved bit, then 2 MiB",
            with_filler(support::masked_frame(0xC1, b"hello")),
            true,
            1002,
        ),
        (
            "an unmasked frame, then 2 MiB",
            with_filler(vec![0x81, 5, b'h', b'e', b'l', b'l', b'o']),
            true,
            1002,
        ),
        (
            "text that is not UTF-8, then 2 MiB",
            with_filler(support::masked_frame(0x81, &[0xff, 0xfe])),
            false,
            1007,
        ),
        (
            "a binary message, then 2 MiB",
            with_filler(support::masked_frame(0x82, b"bin")),
            false,
            1003,
        ),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(what, bytes, fin, want)| {
            support::close_seen_by_a_client_still_writing(&server, "/ws", what, bytes, *fin, *want)
                .err()
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // The server is still there for others.
    let mut other = WsClient::connect(&server, "/ws", &[]);
    other.send_json(&json!({"type": "ping"}));
    assert_eq!(other.next_json()["type"], "pong");
}

#[test]
fn chat_and_connect_rates_hold_over_websocket() {
    let server = Server::start(&[
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_CHAT", "2/1m"),
        ("STREAMHUB_RATE_WS_CONNECT", "3/1m"),
    ]);
    let t = token("u8", "x", false);
    let mut c = WsClient::connect(&server, "/ws", &[("Authorization", &auth(&t))]);
    let mut kinds = Vec::new();
    for i in 0..3 {
        c.send_json(
            &json!({"type": "send", "room": "ch_u1", "body": "hi", "nonce": format!("n{i}")}),
        );
        let r = c.next_json();
        kinds.push((
            r["type"].as_str().unwrap().to_owned(),
            r["code"].as_str().map(str::to_owned),
        ));
    }
    assert_eq!(kinds[0].0, "sent");
    assert_eq!(kinds[1].0, "sent");
    assert_eq!(
        kinds[2],
        ("error".to_owned(), Some("RATE_LIMITED".to_owned()))
    );
    // Connects: the same user's fourth upgrade within the minute is refused with 429.
    let _b = WsClient::connect(&server, "/ws", &[("Authorization", &auth(&t))]);
    let _c = WsClient::connect(&server, "/ws", &[("Authorization", &auth(&t))]);
    let r = server.get(
        "/ws",
        &[
            ("Authorization", &auth(&t)),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // Someone else still connects and is served.
    let mut other = WsClient::connect(&server, "/ws", &[]);
    other.send_json(&json!({"type": "ping"}));
    assert_eq!(other.next_json()["type"], "pong");
}

#[test]
fn sessions_get_1001_when_the_server_shuts_down() {
    let mut server = Server::start(&[
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_DRAIN_DELAY", "0s"),
    ]);
    let mut room = WsClient::connect(&server, "/ws", &[]);
    room.join("ch_u1", None);
    let mut gql = WsClient::connect(
        &server,
        "/graphql",
        &[("Sec-WebSocket-Protocol", "graphql-transport-ws")],
    );
    server.sigterm();
    assert_eq!(room.close_code(), Some(1001));
    assert_eq!(gql.close_code(), Some(1001));
    assert!(server.wait_exit(support::PATIENCE).success());
}
