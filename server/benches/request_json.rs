//! Request-body JSON: serde_json against simd-json on the bodies GraphQL clients send,
//! and the server's own `from_body`.
//! `cargo bench -p streamhub-server --bench request_json` (pin it: `taskset -c 1`).
//! Prints nanoseconds per parse, the median of 7 runs of 200,000 parses each.
#![allow(missing_docs, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

const PERSISTED: &str = r#"{"operationName":"ChannelPage","variables":{"login":"alice"},"extensions":{"persistedQuery":{"version":1,"sha256Hash":"6d0e1f4e3b2a19c8d7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918"}}}"#;

const TEXT: &str = r#"{"query":"query ChannelPage($login: String!) {\n  channel(login: $login) {\n    id login title language tags isLive followerCount viewerIsFollowing viewerCount\n    owner { id login displayName bio }\n    category { id slug name viewerCount }\n    stream { id title startedAt viewerCount category { id name } }\n    followers(first: 10) { totalCount pageInfo { hasNextPage endCursor } nodes { id login displayName } }\n    recentMessages(last: 20) { id seq body sentAt author { id login displayName } }\n  }\n}","operationName":"ChannelPage","variables":{"login":"alice"}}"#;

fn median_ns(mut f: impl FnMut()) -> f64 {
    const N: u32 = 200_000;
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    for (name, body) in [
        ("persisted (APQ) body", PERSISTED),
        ("text body (channel page)", TEXT),
    ] {
        let bytes = body.as_bytes();
        let serde = median_ns(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(bytes)).unwrap();
            black_box(v);
        });
        // simd-json parses in place, so each parse pays for a copy of the body.
        let simd_owned = median_ns(|| {
            let mut copy = black_box(bytes).to_vec();
            let v = simd_json::to_owned_value(&mut copy).unwrap();
            black_box(v);
        });
        let simd_serde = median_ns(|| {
            let mut copy = black_box(bytes).to_vec();
            let v: serde_json::Value = simd_json::serde::from_slice(&mut copy).unwrap();
            black_box(v);
        });
        // What the server runs: serde_json straight into the request's typed shape.
        let ours = median_ns(|| {
            let r = streamhub_server::graphql::request::from_body(black_box(bytes)).unwrap();
            black_box(r);
        });
        println!(
            "{name:<26} {} bytes: serde_json Value {serde:>5.0} ns | simd-json owned {simd_owned:>5.0} ns | simd-json Value {simd_serde:>5.0} ns | from_body (typed serde_json) {ours:>5.0} ns",
            bytes.len()
        );
    }
}
