//! What GraphQL clients and operators expect beyond one POST, against the real binary on
//! two shards: batches (a JSON array of operations, as Apollo Client's `BatchHttpLink`
//! sends) and per-operation metrics with bounded cardinality.

mod support;

use serde_json::{json, Value};
use support::{token, Server, SECRET};

fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info,streamhub::access=off"),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn post(
    server: &Server,
    token: Option<&str>,
    body: &Value,
    extra: &[(&str, &str)],
) -> support::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    headers.extend_from_slice(extra);
    server.post("/graphql", &headers, body.to_string().as_bytes())
}

fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

#[test]
fn a_batch_answers_each_operation_on_its_own_in_order() {
    let server = server(&[]);
    let alice = token("u1", "alice", false);
    let batch = json!([
        {"query": "{ category(slug: \"chess\") { name } }"},
        {"query": "mutation { updateChannel(input: {title: \"first\"}) { title } }"},
        {"query": "{ nope }"},
        {"query": "mutation { updateChannel(input: {title: \"second\"}) { title } }"},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0".repeat(64)}}},
        {"query": 7},
        {"query": "{ channel(login: \"alice\") { title } }"},
    ]);
    let r = post(&server, Some(&alice), &batch, &[]);
    assert_eq!(r.status, 200);
    let results = r.json();
    let results = results.as_array().expect("an array of results");
    assert_eq!(results.len(), 7);
    assert_eq!(results[0]["data"]["category"]["name"], "Chess");
    assert_eq!(results[1]["data"]["updateChannel"]["title"], "first");
    assert_eq!(code(&results[2]), "GRAPHQL_VALIDATION_FAILED");
    assert_eq!(results[3]["data"]["updateChannel"]["title"], "second");
    assert_eq!(code(&results[4]), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(code(&results[5]), "BAD_REQUEST");
    // Mutations ran in order, and before what followed them.
    assert_eq!(results[6]["data"]["channel"]["title"], "second");
}

#[test]
fn apollo_clients_batch_http_link_gets_each_result_from_one_post() {
    let server = server(&[]);
    let r = support::run_node("batch.mjs", &[&server.addr.to_string()]);
    assert_eq!(
        r["posts"], 1,
        "the three queries went out as one batch: {r}"
    );
    let names: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["data"]["category"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
        })
        .collect();
    assert_eq!(names, ["Chess", "Art", "Music"]);
}

#[test]
fn batches_past_the_limit_or_while_off_are_refused_and_each_operation_spends_its_budget() {
    let server = server(&[
        ("STREAMHUB_MAX_BATCH", "3"),
        ("STREAMHUB_RATE_QUERY", "4/1m"),
    ]);
    let q = json!({"query": "{ category(slug: \"art\") { name } }"});
    let r = post(&server, None, &json!([q, q, q, q]), &[]);
    assert_eq!(r.status, 400);
    assert_eq!(code(&r.json()), "BAD_REQUEST");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("4 operations") && message.contains("limit of 3"),
        "{message}"
    );
    let r = post(&server, None, &json!([]), &[]);
    assert_eq!(r.status, 400);
    // Three in one batch, then two more one by one: the fifth is over the 4 a minute.
    let r = post(&server, None, &json!([q, q, q]), &[]);
    assert_eq!(r.status, 200);
    assert!(r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["data"]["category"]["name"] == "Art"));
    assert_eq!(post(&server, None, &q, &[]).status, 200);
    let r = post(&server, None, &json!([q, q]), &[]).json();
    assert_eq!(code(&r[0]), "RATE_LIMITED");
    assert_eq!(code(&r[1]), "RATE_LIMITED");

    let off = self::server(&[("STREAMHUB_MAX_BATCH", "0")]);
    let r = post(&off, None, &json!([q]), &[]);
    assert_eq!(r.status, 400);
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("batching is off"));
    assert_eq!(
        post(&off, None, &q, &[]).status,
        200,
        "single operations still run"
    );
}

/// The value of the `streamhub_graphql_operations_total` sample with these labels.
fn operations(text: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "streamhub_graphql_operations_total")
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn operations_are_counted_by_name_document_client_and_outcome_node_wide_and_bounded() {
    let server = server(&[("STREAMHUB_METRICS_MAX_OPERATIONS", "3")]);
    let page = "query Page { channel(login: \"alice\") { title } }";
    let hash = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(page.as_bytes()))
    };
    let web = [("apollographql-client-name", "web")];
    // Registered by APQ, then run by hash on new connections (both shards) ten times.
    let register = json!({"query": page, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    assert_eq!(post(&server, None, &register, &web).status, 200);
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    for _ in 0..10 {
        assert!(post(&server, None, &by_hash, &web).json()["data"]["channel"]["title"].is_string());
    }
    // Text from another client: adhoc; an execution error; a refusal.
    let text = json!({"query": "query Cat { category(slug: \"art\") { name } }"});
    let ios = [("apollographql-client-name", "ios")];
    for _ in 0..3 {
        post(&server, None, &text, &ios);
    }
    // An anonymous mutation that needs a viewer: executed, with an error.
    let failing =
        json!({"query": "mutation Upd { updateChannel(input: {title: \"x\"}) { title } }"});
    assert!(post(&server, None, &failing, &ios).json()["errors"].is_array());
    // A fourth operation, past the three given series; and a refusal.
    let fourth = json!({"query": "query Who { category(slug: \"chess\") { slug } }"});
    post(&server, None, &fourth, &ios);
    post(&server, None, &json!({"query": "{ nope }"}), &ios);
    let r = server.get("/metrics", &[]);
    let text = String::from_utf8(r.body.clone()).unwrap();
    let sha = format!("sha256:{}", &hash[..12]);
    assert_eq!(
        operations(
            &text,
            &[
                ("operation", "Page"),
                ("document", &sha),
                ("client", "web"),
                ("outcome", "ok")
            ]
        ),
        11.0,
        "{text}"
    );
    assert_eq!(
        operations(
            &text,
            &[
                ("operation", "Cat"),
                ("document", "adhoc"),
                ("client", "ios"),
                ("outcome", "ok")
            ]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        operations(
            &text,
            &[
                ("operation", "Upd"),
                ("document", "adhoc"),
                ("outcome", "error")
            ]
        ),
        1.0,
        "{text}"
    );
    // Past the three operations given series, the fourth counts as "other"; so does a
    // request refused before its document is known.
    assert_eq!(operations(&text, &[("operation", "Who")]), 0.0, "{text}");
    assert_eq!(
        operations(&text, &[("operation", "other"), ("outcome", "refused")]),
        1.0,
        "{text}"
    );
    assert_eq!(operations(&text, &[("operation", "other")]), 2.0, "{text}");
    assert!(
        text.contains("streamhub_graphql_operation_duration_seconds_count{operation=\"Page\""),
        "{text}"
    );
}
