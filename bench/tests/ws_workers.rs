//! The WebSocket machinery against a real WebSocket echo server: connections spread over
//! worker processes and source addresses, every stamped message timed on its way back.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastwebsockets::{upgrade, OpCode};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use streamhub_bench::ws::{collect, spawn_workers, WorkerArgs};

/// Starts an echo server on its own thread; returns its address and the peers it saw.
fn echo_server() -> (SocketAddr, Arc<Mutex<HashSet<IpAddr>>>) {
    let peers: Arc<Mutex<HashSet<IpAddr>>> = Arc::default();
    let seen = Arc::clone(&peers);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                seen.lock().unwrap().insert(peer.ip());
                tokio::spawn(async move {
                    let svc = service_fn(|mut req: Request<Incoming>| async move {
                        let (resp, fut) = upgrade::upgrade(&mut req)?;
                        tokio::spawn(async move {
                            let Ok(mut ws) = fut.await else { return };
                            while let Ok(frame) = ws.read_frame().await {
                                let echo = matches!(frame.opcode, OpCode::Text | OpCode::Binary);
                                if frame.opcode == OpCode::Close
                                    || (echo && ws.write_frame(frame).await.is_err())
                                {
                                    return;
                                }
                            }
                        });
                        Ok::<Response<Empty<Bytes>>, fastwebsockets::WebSocketError>(resp)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
    });
    (addr, peers)
}

#[test]
fn workers_spread_over_processes_and_addresses_and_time_every_echo() {
    let (addr, peers) = echo_server();
    let base = WorkerArgs {
        url: format!("ws://{addr}/echo"),
        connections: 0,
        source_ip: None,
        protocol: None,
        init: vec!["hello {stamp}".into()],
        publish: Some(r#"{"body":"{stamp}"}"#.into()),
        publish_every: Duration::from_millis(20),
        publish_count: 5,
        hold: Duration::from_secs(2),
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_streamhub-bench"));
    let children = spawn_workers(exe, &base, 3, 90, 2, 0).unwrap();
    let (report, latency) = collect(children).unwrap();

    assert_eq!(report.connected, 90, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    // One init message and five publishes per connection, each echoed and timed.
    assert_eq!(report.sent, 90 * 6);
    assert_eq!(report.received, 90 * 6);
    assert_eq!(latency.count(), 90 * 6);
    assert_eq!(report.closed_early, 0);
    let seen = peers.lock().unwrap().clone();
    let expected: HashSet<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(seen, expected, "each worker connects from its own address");
}
