//! Subscriptions streamed over HTTP against the real binary: the `graphql-sse` npm
//! client and Apollo Client's multipart `HttpLink` get the events other clients send;
//! a raw SSE stream resumes with `Last-Event-ID` exactly where it left off, or is told
//! `HISTORY_UNAVAILABLE`; multipart streams carry heartbeats; refusals travel inside
//! the stream.

mod support;

use serde_json::{json, Value};
use support::{token, Server, Streamed, SECRET};

const SSE: &str = "text/event-stream";
const MULTIPART: &str = "multipart/mixed;subscriptionSpec=\"1.0\", application/json";

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_CHAT", "off"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn node(script: &str, server: &Server, channel: &str) -> Value {
    let addr = server.addr.to_string();
    let (alice, bob) = (token("u1", "alice", false), token("u2", "bob", false));
    support::run_node(script, &[&addr, &alice, &bob, channel])
}

/// Sends a chat message to `channel` as bob; its seq.
fn send(server: &Server, channel: &str, body: &str) -> u64 {
    let r = server.graphql(
        Some(&token("u2", "bob", false)),
        &json!({
            "query": "mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq } }",
            "variables": {"c": channel, "b": body},
        }),
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    v["data"]["sendChatMessage"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"))
}

fn chat_events(since: Option<u64>) -> Value {
    json!({
        "query": "subscription($c: ID!, $s: Int) { chatEvents(channelId: $c, sinceSeq: $s) { __typename ... on ChatMessage { seq body } } }",
        "variables": {"c": "ch_u9", "s": since},
    })
}

fn seq_of(v: &Value) -> u64 {
    v["data"]["chatEvents"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"))
}

#[test]
fn the_graphql_sse_client_runs_a_query_and_gets_every_event_sent() {
    let server = server(&[]);
    let r = node("sse.mjs", &server, "ch_u7");
    assert_eq!(
        r["query"],
        json!([{"data": {"viewer": {"login": "alice"}, "category": {"name": "Art"}}}])
    );
    let events = r["events"].as_array().unwrap();
    let mut bodies: Vec<&str> = events
        .iter()
        .map(|e| {
            e["data"]["chatEvents"]["body"]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"))
        })
        .collect();
    let seqs: Vec<u64> = events.iter().map(seq_of).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gaps: {seqs:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["data"]["chatEvents"]["author"]["login"] == "bob"));
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        ["by mutation 1", "by mutation 2", "by room 1", "by room 2"]
    );
}

#[test]
fn apollo_clients_multipart_subscription_gets_events_across_heartbeats() {
    let server = server(&[]);
    let r = node("multipart.mjs", &server, "ch_u8");
    let events = r["events"].as_array().unwrap();
    let bodies: Vec<&str> = events
        .iter()
        .map(|e| {
            e["data"]["chatEvents"]["body"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
        })
        .collect();
    assert_eq!(bodies, ["by mutation 1", "by mutation 2", "by mutation 3"]);
}

#[test]
fn a_multipart_stream_is_framed_as_apollo_specifies_with_heartbeats() {
    let server = server(&[]);
    let mut s = Streamed::open(server.addr, MULTIPART, &chat_events(None), &[]);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("content-type"),
        Some("multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"")
    );
    assert_eq!(
        s.read_through(b"\r\n--graphql\r\n").unwrap(),
        b"\r\n--graphql\r\n"
    );
    // A heartbeat comes while the room is quiet.
    let heartbeat = s.read_through(b"\r\n--graphql\r\n").unwrap();
    assert_eq!(
        heartbeat,
        b"Content-Type: application/json\r\n\r\n{}\r\n--graphql\r\n"
    );
    let seq = send(&server, "ch_u9", "over multipart");
    let part = loop {
        let part = s.read_through(b"\r\n--graphql\r\n").unwrap();
        if !part.ends_with(b"{}\r\n--graphql\r\n") {
            break part;
        }
    };
    let text = String::from_utf8(part).unwrap();
    let json_text = text
        .strip_prefix("Content-Type: application/json\r\n\r\n")
        .and_then(|t| t.strip_suffix("\r\n--graphql\r\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    let v: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(
        v,
        json!({"payload": {"data": {"chatEvents": {"__typename": "ChatMessage", "seq": seq, "body": "over multipart"}}}})
    );
}

#[test]
fn an_sse_stream_resumes_with_last_event_id_exactly_where_it_left_off() {
    let server = server(&[]);
    let first = Streamed::open(server.addr, SSE, &chat_events(None), &[]);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let mut first = first;
    let sent: Vec<u64> = (1..=3)
        .map(|i| send(&server, "ch_u9", &format!("before {i}")))
        .collect();
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = first.next_event().expect("an event");
        assert_eq!(e.event, "next");
        assert_eq!(e.id, Some(seq_of(&e.json())), "the id is the seq");
        got.push(e.id.unwrap());
    }
    assert_eq!(got, sent);
    let last = *got.last().unwrap();
    drop(first);

    let missed: Vec<u64> = (1..=3)
        .map(|i| send(&server, "ch_u9", &format!("missed {i}")))
        .collect();
    // Last-Event-ID wins over an older sinceSeq in the query.
    let mut again = Streamed::open(
        server.addr,
        SSE,
        &chat_events(Some(1)),
        &[("Last-Event-ID", &last.to_string())],
    );
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let e = again.next_event().expect("a replayed event");
        assert_eq!(e.id, Some(seq_of(&e.json())));
        replayed.push(e.id.unwrap());
    }
    assert_eq!(replayed, missed, "exactly the missed events, in order");
    let live = send(&server, "ch_u9", "after");
    let e = again.next_event().expect("a live event");
    assert_eq!(
        (e.id, e.json()["data"]["chatEvents"]["body"].clone()),
        (Some(live), json!("after"))
    );
}

#[test]
fn a_resume_older_than_the_history_gets_history_unavailable_then_complete() {
    let server = server(&[("STREAMHUB_HISTORY_EVENTS", "5")]);
    let sent: Vec<u64> = (0..7)
        .map(|i| send(&server, "ch_u9", &format!("m{i}")))
        .collect();
    // The 6 events after the first one sent: more than the 5 kept.
    let since = sent[0].to_string();
    let mut s = Streamed::open(
        server.addr,
        SSE,
        &chat_events(None),
        &[("Last-Event-ID", &since)],
    );
    assert_eq!(s.status, 200);
    let e = s.next_event().expect("an event");
    assert_eq!(e.event, "next");
    assert_eq!(e.id, None);
    assert_eq!(
        e.json()["errors"][0]["extensions"]["code"],
        "HISTORY_UNAVAILABLE"
    );
    assert_eq!(s.next_event().map(|e| e.event), Some("complete".into()));
    assert!(s.ended_cleanly());
}

#[test]
fn a_query_and_a_refusal_over_sse_are_one_next_then_complete() {
    let server = server(&[]);
    let mut s = Streamed::open(
        server.addr,
        SSE,
        &json!({"query": "{ category(slug: \"art\") { name } }"}),
        &[],
    );
    let e = s.next_event().unwrap();
    assert_eq!(e.json(), json!({"data": {"category": {"name": "Art"}}}));
    assert_eq!(s.next_event().map(|e| e.event), Some("complete".into()));
    assert!(s.ended_cleanly());

    let mut s = Streamed::open(server.addr, SSE, &json!({"query": "{ nope }"}), &[]);
    assert_eq!(s.status, 200);
    let e = s.next_event().unwrap();
    assert_eq!(
        e.json()["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(s.next_event().map(|e| e.event), Some("complete".into()));

    // Without a streaming Accept, a subscription is still refused over plain HTTP.
    let r = server.graphql(None, &chat_events(None));
    assert_eq!(r.status, 400);
}
