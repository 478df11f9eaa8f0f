//! Graceful shutdown against the real binary: SIGTERM during a steady stream of
//! requests. Readiness turns 503 at once, requests keep being served through the drain
//! delay, the listeners close, every request the server accepted is answered, and the
//! process exits 0. Open SSE and multipart streams keep getting events through the
//! drain, then end (`complete`, the final boundary) when the listeners close.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{request, Server, Streamed};

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    answered_after_term: AtomicU64,
    closes_after_term: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Connects, or returns None once the server no longer takes connections.
fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(support::PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    Some(s)
}

/// Sends requests back to back on keep-alive connections until connecting fails.
/// A request that was written but got no whole response is a failure.
fn keepalive_client(addr: SocketAddr, term: &AtomicBool, tally: &Tally, path: &str) {
    'connections: while let Some(mut s) = connect(addr) {
        loop {
            match request(&mut s, "GET", path, &[]) {
                Ok(r) => {
                    tally.answered.fetch_add(1, SeqCst);
                    if term.load(SeqCst) {
                        tally.answered_after_term.fetch_add(1, SeqCst);
                    }
                    if r.status != 200 {
                        tally
                            .failures
                            .lock()
                            .unwrap()
                            .push(format!("{path}: status {}", r.status));
                    }
                    if r.closes() {
                        if term.load(SeqCst) {
                            tally.closes_after_term.fetch_add(1, SeqCst);
                        }
                        continue 'connections;
                    }
                }
                Err(e) => {
                    tally.failures.lock().unwrap().push(format!("{path}: {e}"));
                    continue 'connections;
                }
            }
        }
    }
}

/// Opens a new connection for every request.
fn one_shot_client(addr: SocketAddr, term: &AtomicBool, tally: &Tally) {
    while let Some(mut s) = connect(addr) {
        match request(&mut s, "GET", "/healthz", &[("Connection", "close")]) {
            Ok(_) => {
                tally.answered.fetch_add(1, SeqCst);
                if term.load(SeqCst) {
                    tally.answered_after_term.fetch_add(1, SeqCst);
                }
            }
            Err(e) => tally
                .failures
                .lock()
                .unwrap()
                .push(format!("one-shot: {e}")),
        }
    }
}

#[test]
fn sigterm_drains_without_failing_an_accepted_request_and_exits_0() {
    let mut server = Server::start(&[
        ("STREAMHUB_DRAIN_DELAY", "2s"),
        ("STREAMHUB_SHUTDOWN_GRACE", "10s"),
    ]);
    let addr = server.addr;
    let term = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());

    let mut clients = Vec::new();
    for i in 0..6 {
        let (term, tally) = (Arc::clone(&term), Arc::clone(&tally));
        clients.push(std::thread::spawn(move || {
            if i < 4 {
                keepalive_client(addr, &term, &tally, "/healthz");
            } else {
                one_shot_client(addr, &term, &tally);
            }
        }));
    }

    // Readiness as the load balancer sees it: a new connection per probe. Probes sent
    // after the server logged that it drains must all see 503.
    let draining = Arc::new(AtomicBool::new(false));
    let readiness = {
        let (term, draining) = (Arc::clone(&term), Arc::clone(&draining));
        std::thread::spawn(move || {
            let mut after_term = Vec::new();
            while let Some(mut s) = connect(addr) {
                let sent_while_draining = draining.load(SeqCst);
                let Ok(r) = request(&mut s, "GET", "/readyz", &[]) else {
                    break;
                };
                if sent_while_draining {
                    after_term.push(r.status);
                } else if !term.load(SeqCst) {
                    assert_eq!(r.status, 200, "not ready before SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            after_term
        })
    };

    // Let the stream run, then signal.
    while tally.answered.load(SeqCst) < 500 {
        std::thread::sleep(Duration::from_millis(10));
    }
    term.store(true, SeqCst);
    server.sigterm();
    server.wait_for_log(|l| l["message"].as_str().unwrap_or("").starts_with("draining"));
    draining.store(true, SeqCst);
    let status = server.wait_exit(Duration::from_secs(30));

    for c in clients {
        c.join().unwrap();
    }
    let ready_after = readiness.join().unwrap();

    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let failures = tally.failures.lock().unwrap();
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    assert!(
        tally.answered_after_term.load(SeqCst) > 100,
        "requests were not served during the drain delay"
    );
    assert!(
        tally.closes_after_term.load(SeqCst) >= 1,
        "no keep-alive connection was told `Connection: close`"
    );
    assert!(
        !ready_after.is_empty(),
        "readiness was not probed during the drain"
    );
    assert!(
        ready_after.iter().all(|&s| s == 503),
        "readiness after SIGTERM: {ready_after:?}"
    );
    server.wait_for_log(|l| l["message"] == "stopped");
}

#[test]
fn an_idle_keepalive_connection_is_closed_once_the_listeners_close() {
    let mut server = Server::start(&[
        ("STREAMHUB_DRAIN_DELAY", "0s"),
        ("STREAMHUB_LOG", "debug"),
        ("STREAMHUB_SHUTDOWN_GRACE", "10s"),
    ]);
    let mut s = server.connect();
    assert_eq!(request(&mut s, "GET", "/healthz", &[]).unwrap().status, 200);
    server.sigterm();
    server.wait_for_log(|l| l["message"].as_str().unwrap_or("").starts_with("closing"));
    // The idle connection is closed by the server once it has been idle past the linger.
    assert!(support::closed_by_peer(&mut s));
    assert_eq!(server.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn open_http_streams_are_served_through_the_drain_then_end_and_the_process_exits_0() {
    let mut server = Server::start(&[
        ("STREAMHUB_DRAIN_DELAY", "1s"),
        ("STREAMHUB_SHUTDOWN_GRACE", "10s"),
        ("STREAMHUB_RATE_CHAT", "off"),
        ("STREAMHUB_JWT_SECRET", support::SECRET),
    ]);
    let subscription = serde_json::json!({
        "query": "subscription { chatEvents(channelId: \"ch_u4\") { ... on ChatMessage { seq body } } }",
    });
    let mut sse = Streamed::open(server.addr, "text/event-stream", &subscription, &[]);
    let mut multipart = Streamed::open(
        server.addr,
        "multipart/mixed;subscriptionSpec=1.0",
        &subscription,
        &[],
    );
    assert_eq!((sse.status, multipart.status), (200, 200));
    multipart.read_through(b"\r\n--graphql\r\n").unwrap();

    server.sigterm();
    server.wait_for_log(|l| l["message"].as_str().unwrap_or("").starts_with("draining"));
    // Still served while draining.
    let r = server.graphql(
        Some(&support::token("u2", "bob", false)),
        &serde_json::json!({"query": "mutation { sendChatMessage(channelId: \"ch_u4\", body: \"while draining\") { seq } }"}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = sse.next_event().expect("the event sent while draining");
    assert_eq!(e.json()["data"]["chatEvents"]["body"], "while draining");
    let part = multipart
        .read_through(b"while draining")
        .map(String::from_utf8);
    assert!(part.is_some(), "the multipart stream got the event");

    // Once the listeners close, the streams end: `complete`, the final boundary.
    assert_eq!(sse.next_event().map(|e| e.event), Some("complete".into()));
    assert!(sse.ended_cleanly());
    assert!(multipart.read_through(b"\r\n--graphql--\r\n").is_some());
    assert!(multipart.ended_cleanly());
    assert_eq!(server.wait_exit(Duration::from_secs(20)).code(), Some(0));
}
