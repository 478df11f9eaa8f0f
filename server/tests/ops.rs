//! The operations surface against the real binary: health, readiness, metrics, errors,
//! request ids, trace ids and client addresses in the access log.

mod support;

use support::Server;

#[test]
fn health_and_readiness_answer_200_with_json() {
    let server = Server::start(&[]);
    for path in ["/healthz", "/readyz"] {
        let r = server.get(path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.json()["status"].is_string());
    }
    let r = server.get("/healthz", &[]);
    assert_eq!(r.json()["status"], "ok");
}

#[test]
fn each_io_backend_says_it_runs_and_why_and_serves() {
    // `auto` runs epoll until the io_uring backend beats it; the probe's reasons are
    // unit-tested in io_backend.
    for (setting, runs) in [("epoll", "epoll"), ("uring", "io_uring"), ("auto", "epoll")] {
        let server = Server::start(&[("STREAMHUB_IO", setting)]);
        let line = server.wait_for_log(|l| l["message"] == "io backend selected");
        assert_eq!(line["backend"], runs, "{setting}: {line}");
        assert!(
            line["reason"].as_str().unwrap().contains("STREAMHUB_IO"),
            "{setting}: {line}"
        );
        if runs == "io_uring" {
            // Each shard's ring holds a file table of RLIMIT_NOFILE less a reserve (at
            // most 65,536): the connections the process can hold, said at start.
            let table = open_files_limit().saturating_sub(256).clamp(64, 65_536);
            let shards = line["shards"].as_u64().unwrap();
            assert_eq!(line["connections"], shards * table, "{line}");
        }
        let r = server.get("/graphql?query=%7B__typename%7D", &[]);
        assert_eq!(r.status, 200, "{setting}");
        assert_eq!(r.json()["data"]["__typename"], "Query", "{setting}");
    }
}

#[test]
fn unknown_paths_get_404_and_wrong_methods_405_with_json_errors() {
    let server = Server::start(&[]);
    let r = server.get("/no/such/thing", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["extensions"]["code"], "NOT_FOUND");

    let mut s = server.connect();
    let r = support::request(&mut s, "DELETE", "/healthz", &[]).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        r.json()["errors"][0]["extensions"]["code"],
        "METHOD_NOT_ALLOWED"
    );
    // The same keep-alive connection keeps serving after an error response.
    let r = support::request(&mut s, "GET", "/healthz", &[]).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn metrics_parse_and_count_the_requests_made() {
    let server = Server::start(&[]);
    // New connections each time, so both shards get some and the scrape must sum them.
    for _ in 0..7 {
        assert_eq!(server.get("/healthz", &[]).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(server.get("/missing", &[]).status, 404);
    }
    let r = server.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("metrics text parses");

    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("unexpected sample {other:?}"),
            })
    };
    assert_eq!(
        value(
            "streamhub_http_requests_total",
            &[("route", "/healthz"), ("status", "200")]
        ),
        Some(7.0)
    );
    assert_eq!(
        value(
            "streamhub_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(3.0)
    );
    let hist = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "streamhub_http_request_duration_seconds"
                && s.labels.get("route") == Some("/healthz")
        })
        .expect("duration histogram for /healthz");
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .unwrap();
            assert_eq!(inf.count, 7.0);
        }
        other => panic!("expected a histogram, got {other:?}"),
    }
    // The scrape's own connection is open, and ten others were accepted before it.
    assert!(value("streamhub_http_connections_open", &[]).unwrap() >= 1.0);
    assert!(value("streamhub_http_connections_accepted_total", &[]).unwrap() >= 11.0);
    // The scrape itself is in flight while it renders.
    assert_eq!(value("streamhub_http_requests_in_flight", &[]), Some(1.0));
    assert_eq!(
        value(
            "streamhub_build_info",
            &[("io_backend", support::io_backend()), ("shards", "2")]
        ),
        Some(1.0)
    );
    assert_eq!(value("streamhub_draining", &[]), Some(0.0));
}

#[test]
fn request_ids_are_echoed_or_made_and_logged_with_the_trace_id() {
    let server = Server::start(&[]);
    let r = server.get(
        "/healthz",
        &[
            ("X-Request-Id", "req-abc-123"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    );
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    let line = server.wait_for_log(|l| l["request_id"] == "req-abc-123");
    assert_eq!(line["message"], "request");
    assert_eq!(line["target"], "streamhub::access");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/healthz");
    assert_eq!(line["status"], 200);
    assert!(line["duration_us"].is_u64());
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let r = server.get(
        "/nowhere",
        &[(
            "X-Amzn-Trace-Id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        )],
    );
    let made = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID is made when none is sent: {made}");
    let line = server.wait_for_log(|l| l["request_id"] == made.as_str());
    assert_eq!(line["status"], 404);
    assert_eq!(line["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let xff = [
        ("X-Forwarded-For", "6.6.6.6, 198.51.100.7"),
        ("X-Request-Id", ""),
    ];

    let untrusted = Server::start(&[]);
    let mut h = xff;
    h[1].1 = "spoof-1";
    untrusted.get("/healthz", &h);
    let line = untrusted.wait_for_log(|l| l["request_id"] == "spoof-1");
    assert_eq!(
        line["client_ip"], "127.0.0.1",
        "spoofed X-Forwarded-For changed the client"
    );

    let trusted = Server::start(&[("STREAMHUB_TRUSTED_PROXIES", "127.0.0.0/8")]);
    h[1].1 = "via-alb-1";
    trusted.get("/healthz", &h);
    let line = trusted.wait_for_log(|l| l["request_id"] == "via-alb-1");
    assert_eq!(line["client_ip"], "198.51.100.7");
}

#[test]
fn head_requests_get_headers_only() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    use std::io::{Read, Write};
    s.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "HEAD must not carry a body: {text:?}"
    );
}

/// This process' soft `RLIMIT_NOFILE` (the server inherits it).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}
