//! Bad input against the real binary: oversized heads and bodies, garbage bytes and
//! slowloris heads get a 4xx or a closed connection, and the server keeps serving
//! everyone else meanwhile.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{closed_by_peer, read_response, request, Server};

/// A keep-alive client that must be served before, between and after the abuse.
fn assert_still_serving(s: &mut std::net::TcpStream) {
    let r = request(s, "GET", "/healthz", &[]).expect("a well-behaved client was not served");
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_headers_get_431_and_others_are_served() {
    let server = Server::start(&[("STREAMHUB_MAX_HEADER_BYTES", "16KiB")]);
    let mut good = server.connect();
    assert_still_serving(&mut good);

    let big = "a".repeat(20 * 1024);
    let mut bad = server.connect();
    let r = request(&mut bad, "GET", "/healthz", &[("X-Big", &big)]).unwrap();
    assert_eq!(r.status, 431);

    // Just under the limit is fine.
    let fits = "a".repeat(12 * 1024);
    let r = server.get("/healthz", &[("X-Fits", &fits)]);
    assert_eq!(r.status, 200);
    assert_still_serving(&mut good);
}

#[test]
fn oversized_bodies_get_413_with_a_json_error() {
    let server = Server::start(&[("STREAMHUB_MAX_BODY_BYTES", "64KiB")]);
    let mut good = server.connect();
    let mut bad = server.connect();
    // Only the head is sent: the server must refuse on the declared length alone.
    bad.write_all(b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
        .unwrap();
    let r = read_response(&mut bad).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert_still_serving(&mut good);
}

#[test]
fn garbage_bytes_get_400_or_a_closed_connection() {
    let server = Server::start(&[]);
    let mut good = server.connect();
    for garbage in [
        &b"\x00\x01\x02\x03garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
    ] {
        let mut bad = server.connect();
        bad.write_all(garbage).unwrap();
        match read_response(&mut bad) {
            Ok(r) => assert!(
                (400..500).contains(&r.status),
                "{:?} got {}",
                String::from_utf8_lossy(garbage),
                r.status
            ),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "{:?}: {e}",
                String::from_utf8_lossy(garbage)
            ),
        }
        assert_still_serving(&mut good);
    }
}

#[test]
fn slowloris_heads_are_closed_while_others_are_served() {
    let server = Server::start(&[("STREAMHUB_HEADER_TIMEOUT", "1s")]);
    let mut good = server.connect();
    assert_still_serving(&mut good);

    // Several slow clients start a head and keep trickling header lines, never finishing.
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                .unwrap();
            s
        })
        .collect();
    let tricklers: Vec<_> = slow
        .iter()
        .map(|s| {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                // Stops once the server has closed the socket.
                for i in 0..200 {
                    if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();

    // Everyone else is served while the slow heads hang.
    for _ in 0..20 {
        assert_still_serving(&mut good);
        assert_eq!(server.get("/readyz", &[]).status, 200);
    }
    // Each slow connection is closed by the server (a read sees EOF or reset), although
    // bytes kept arriving.
    for mut s in slow {
        assert!(
            closed_by_peer(&mut s),
            "a slowloris connection was left open"
        );
    }
    for t in tricklers {
        t.join().unwrap();
    }
    assert_still_serving(&mut good);
}

#[test]
fn idle_keepalive_connections_are_closed_after_the_keepalive_timeout() {
    // The default (75 s) is shown by hand; here a short one shows the mechanism.
    let server = Server::start(&[("STREAMHUB_KEEPALIVE_TIMEOUT", "1s")]);
    let mut s = server.connect();
    assert_still_serving(&mut s);
    assert!(closed_by_peer(&mut s), "idle connection was not closed");
}

#[test]
fn connections_past_the_per_address_limit_get_429_and_trusted_proxies_are_exempt() {
    let server = Server::start(&[("STREAMHUB_MAX_CONNECTIONS_PER_IP", "3")]);
    let mut held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for s in &mut held {
        assert_still_serving(s);
    }
    // The limit is the node's: past it, new connections are refused on every shard,
    // wherever the kernel put the three held ones.
    let mut shards = std::collections::BTreeSet::new();
    for i in 0..12 {
        let id = format!("over-{i}");
        let mut extra = server.connect();
        let r = request(&mut extra, "GET", "/healthz", &[("X-Request-Id", &id)]).unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["errors"][0]["extensions"]["code"], "RATE_LIMITED");
        assert!(r.closes());
        assert!(closed_by_peer(&mut extra));
        shards.insert(server.shard_of(&id));
    }
    assert_eq!(shards.len(), 2, "only shard {shards:?} refused");
    // The held connections keep being served; once one closes, a new one gets in.
    assert_still_serving(&mut held[0]);
    drop(held.remove(0));
    let admitted = (0..200).any(|_| {
        let mut s = server.connect();
        let ok = request(&mut s, "GET", "/healthz", &[]).is_ok_and(|r| r.status == 200);
        if !ok {
            std::thread::sleep(Duration::from_millis(10));
        }
        ok
    });
    assert!(admitted, "a freed slot was never given back");

    let behind_alb = Server::start(&[
        ("STREAMHUB_MAX_CONNECTIONS_PER_IP", "3"),
        ("STREAMHUB_TRUSTED_PROXIES", "127.0.0.1/32"),
    ]);
    let mut many: Vec<_> = (0..6).map(|_| behind_alb.connect()).collect();
    for s in &mut many {
        assert_still_serving(s);
    }
}
