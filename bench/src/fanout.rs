//! `ws-fanout`: one room, S subscribers spread over worker processes and source
//! addresses, one publisher sending P messages a second through the room protocol;
//! deliveries per second and publish-to-receive latency (each message carries its send
//! time). The server runs pinned to its core with one shard; the workers run on every
//! other core, so nothing else runs on the server's.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::hist::Latency;
use crate::scenario::{streamhub, token};
use crate::server::{bin_dir, ServerProc};
use crate::ws::{collect, spawn_workers, WorkerArgs, STAMP};

/// What a fan-out run needs.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Subscribers joined to the room.
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: u32,
    /// Messages published per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long to publish.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Bytes of each message's body.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Server shards (threads), all pinned to the server's core: more than one holds
    /// more connections on io_uring, whose file table per ring is bounded by
    /// `RLIMIT_NOFILE`.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Subscribers per worker process (each process has its own descriptor limit).
    #[arg(long, default_value_t = 5_000)]
    pub per_process: u32,
    /// Core for the server.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Also run a peer the same way (`tungstenite-hub`), after StreamHub.
    #[arg(long)]
    pub peer: Option<String>,
}

/// The room every scenario uses: alice's channel.
pub const ROOM: &str = "ch_u1";

/// Runs the scenario against a StreamHub started here (and then the peer, when asked);
/// returns the BENCH.md JSON with the scenario's own fields.
pub fn run(args: &FanoutArgs, command: &str) -> anyhow::Result<Value> {
    let dir = bin_dir()?;
    let mut spec = streamhub(&dir);
    spec.env
        .push(("STREAMHUB_RATE_WS_CONNECT".into(), "off".into()));
    with_shards(&mut spec, args.shards);
    let mut result = run_one(args, command, &spec)?;
    if let Some(peer) = &args.peer {
        let other = run_one(args, command, &crate::scenario::peer(peer, &dir)?)?;
        let rate = |v: &Value| {
            v["runs"][0]["deliveries_per_second"]
                .as_f64()
                .unwrap_or(0.0)
        };
        let p99 = |v: &Value| v["runs"][0]["p99_us"].as_f64().unwrap_or(0.0);
        let ratio = json!({
            "deliveries_per_second": rate(&result) / rate(&other).max(1.0),
            "p99_us": p99(&result) / p99(&other).max(1.0),
        });
        if let Some(runs) = result["runs"].as_array_mut() {
            runs.push(other["runs"][0].clone());
        }
        result["ratio"] = ratio;
    }
    Ok(result)
}

/// Runs the server with `shards` shards.
fn with_shards(spec: &mut crate::server::ServerSpec, shards: u32) {
    for (k, v) in &mut spec.env {
        if k == "STREAMHUB_SHARDS" {
            *v = shards.to_string();
        }
    }
}

/// How the server ran, for a result's setup line.
fn shards_said(shards: u32) -> String {
    match shards {
        1 => "one shard".to_string(),
        n => format!("{n} shards"),
    }
}

/// One server's run.
fn run_one(
    args: &FanoutArgs,
    command: &str,
    spec: &crate::server::ServerSpec,
) -> anyhow::Result<Value> {
    let server = ServerProc::start(spec, args.server_core)?;
    let streamhub = spec.name == "streamhub";
    let addr = server.addr;
    let joined = move || {
        if streamhub {
            viewer_count(addr)
        } else {
            peer_members(addr)
        }
    };
    let url = format!("ws://{}/ws", server.addr);
    let m = measure(args, &url, &url, &joined, &[server.pid()])?;
    Ok(json!({
        "scenario": "ws-fanout",
        "machine": crate::report::machine(),
        "setup": format!(
            "server pinned to core {} with {}; {} subscriber processes and one publisher on cores {}",
            args.server_core,
            // The peers have no shards: the setting is StreamHub's alone.
            if streamhub { shards_said(args.shards) } else { "its own threads".to_string() },
            m.processes,
            crate::ws::other_cores(args.server_core)
        ),
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "command": command,
        "runs": [m.run(&spec.name, args)],
    }))
}

/// What one fan-out measured.
#[derive(Debug)]
pub struct Measured {
    /// Subscriber worker processes.
    pub processes: u32,
    /// Messages published.
    pub publishes: u64,
    /// Messages the subscribers received.
    pub deliveries: u64,
    /// Subscribers times publishes.
    pub expected: u64,
    /// Seconds from the first delivery to the last.
    pub delivery_span: f64,
    /// Publish-to-receive latency.
    pub latency: crate::hist::Summary,
    /// Connections that failed or were closed early.
    pub errors: u64,
    /// Seconds the publishing took.
    pub seconds: f64,
    /// Seconds until every subscriber had joined.
    pub connect_seconds: f64,
    /// CPU seconds of the serving processes while publishing.
    pub cpu_seconds: f64,
    /// Their CPU share of one core over the same time.
    pub cpu_share: f64,
}

impl Measured {
    /// The run as BENCH.md's JSON has it.
    pub fn run(&self, server: &str, args: &FanoutArgs) -> Value {
        let s = &self.latency;
        json!({
            "server": server,
            "subscribers": args.subscribers,
            "publishes": self.publishes,
            "body_bytes": args.body_bytes,
            "deliveries": self.deliveries,
            "deliveries_expected": self.expected,
            // Over the time they took, from the first arrival to the last (the
            // publisher's window ends with a hold that delivers nothing).
            "deliveries_per_second": self.deliveries as f64 / self.delivery_span.max(1e-3),
            "p50_us": s.p50_us, "p90_us": s.p90_us, "p99_us": s.p99_us,
            "p999_us": s.p999_us, "max_us": s.max_us,
            "errors": self.errors,
            "seconds": self.seconds,
            "connect_seconds": self.connect_seconds,
            "server_cpu": self.cpu_share,
            // The serving processes' CPU time per delivery, publishes and all.
            "server_cpu_us_per_delivery": 1e6 * self.cpu_seconds / (self.deliveries.max(1) as f64),
            "latency": "publish-to-receive, from the stamp in each message",
        })
    }
}

/// The fan-out itself: `args.subscribers` join the room at `subscribe_url` (spread
/// over worker processes), `joined` says how many have, then one publisher sends
/// through `publish_url`; the CPU of `pids` (the processes that serve) is measured
/// while it publishes.
pub fn measure(
    args: &FanoutArgs,
    subscribe_url: &str,
    publish_url: &str,
    joined: &dyn Fn() -> anyhow::Result<i64>,
    pids: &[u32],
) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe()?;
    let before = joined()?;
    let publishes = (args.rate * args.duration.as_secs_f64()).round() as u32;
    let connect_allowance = Duration::from_secs(5 + u64::from(args.subscribers / 2_000));
    let hold = connect_allowance + args.duration + Duration::from_secs(3);
    let subscribers = WorkerArgs {
        url: subscribe_url.to_owned(),
        connections: args.subscribers,
        source_ip: None,
        protocol: None,
        init: vec![json!({"type": "join", "room": ROOM}).to_string()],
        publish: None,
        publish_every: Duration::from_secs(1),
        publish_count: 0,
        hold,
    };
    let processes = args.subscribers.div_ceil(args.per_process.max(1)).max(1);
    let connect_started = Instant::now();
    let subs = spawn_workers(
        &exe,
        &subscribers,
        processes,
        args.subscribers,
        2,
        args.server_core,
    )?;
    // Wait until every subscriber has joined.
    let want = before + i64::from(args.subscribers);
    loop {
        if joined()? >= want {
            break;
        }
        if connect_started.elapsed() > connect_allowance {
            bail!(
                "only {} of {} subscribers joined within {:?}",
                joined()? - before,
                args.subscribers,
                connect_allowance
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let padding = "x".repeat(args.body_bytes.saturating_sub(30));
    let publisher = WorkerArgs {
        url: publish_url.to_owned(),
        connections: 1,
        source_ip: None,
        protocol: None,
        init: vec![json!({"type": "auth", "token": token(2)}).to_string()],
        publish: Some(
            json!({"type": "send", "room": ROOM, "body": format!("{STAMP} {padding}")}).to_string(),
        ),
        publish_every: Duration::from_secs_f64(1.0 / args.rate.max(0.001)),
        publish_count: publishes,
        hold: args.duration + Duration::from_secs(2),
    };
    let cpus = pids
        .iter()
        .map(|p| crate::procfs::CpuMeter::start(Some(*p)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let started = Instant::now();
    let pubs = spawn_workers(&exe, &publisher, 1, 1, 1, args.server_core)?;
    let (pub_report, _) = collect(pubs)?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds: f64 = cpus.iter().map(|c| c.used()).sum();
    let (sub_report, latency): (_, Latency) = collect(subs)?;
    // The publisher also gets its own `sent` acknowledgements; deliveries are what the
    // subscribers received.
    Ok(Measured {
        processes,
        publishes: pub_report.sent,
        deliveries: sub_report.received,
        expected: u64::from(args.subscribers) * pub_report.sent,
        delivery_span: delivery_span(&sub_report),
        latency: latency.summary(),
        errors: sub_report.failed + sub_report.closed_early,
        seconds,
        connect_seconds,
        cpu_seconds,
        cpu_share: cpu_seconds / seconds.max(1e-3),
    })
}

/// A peer's joined members (`GET /rooms/<id>/members`).
fn peer_members(addr: SocketAddr) -> anyhow::Result<i64> {
    let req =
        format!("GET /rooms/{ROOM}/members HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let json_start = out.find("\r\n\r\n").map_or(0, |i| i + 4);
    let v: Value = serde_json::from_str(&out[json_start..]).context("reading the member count")?;
    v["members"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no member count in {v}"))
}

/// The room's viewer count, through GraphQL.
pub fn viewer_count(addr: SocketAddr) -> anyhow::Result<i64> {
    let body =
        json!({"query": format!("{{ channel(id: \"{ROOM}\") {{ viewerCount }} }}")}).to_string();
    let req = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let json_start = out.find("\r\n\r\n").map_or(0, |i| i + 4);
    let v: Value = serde_json::from_str(&out[json_start..]).context("reading the viewer count")?;
    v["data"]["channel"]["viewerCount"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no viewer count in {v}"))
}

/// The result as a short table.
pub fn table(v: &Value) -> String {
    let mut out = String::new();
    for r in v["runs"].as_array().into_iter().flatten() {
        out.push_str(&run_line(v, r));
    }
    if let Some(ratio) = v.get("ratio") {
        out.push_str(&format!(
            "ratio streamhub/peer: deliveries/s {:.2}x, p99 {:.2}x\n",
            ratio["deliveries_per_second"].as_f64().unwrap_or(0.0),
            ratio["p99_us"].as_f64().unwrap_or(0.0)
        ));
    }
    out
}

/// Seconds from the first delivery to the last.
pub fn delivery_span(r: &crate::ws::WorkerReport) -> f64 {
    r.last_received_ns.saturating_sub(r.first_received_ns) as f64 / 1e9
}

fn run_line(v: &Value, r: &Value) -> String {
    format!(
        "ws-fanout {} | {}\n{} subscribers, {} publishes of {} bytes: {} of {} deliveries, {:.0} deliveries/s\npublish-to-receive µs: p50 {:.0} p90 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}; server CPU {:.0}% ({:.2} µs per delivery); joined in {:.1} s; errors {}\n",
        r["server"].as_str().unwrap_or(""),
        v["setup"].as_str().unwrap_or(""),
        r["subscribers"], r["publishes"], r["body_bytes"], r["deliveries"], r["deliveries_expected"],
        r["deliveries_per_second"].as_f64().unwrap_or(0.0),
        r["p50_us"].as_f64().unwrap_or(0.0), r["p90_us"].as_f64().unwrap_or(0.0),
        r["p99_us"].as_f64().unwrap_or(0.0), r["p999_us"].as_f64().unwrap_or(0.0),
        r["max_us"].as_f64().unwrap_or(0.0),
        100.0 * r["server_cpu"].as_f64().unwrap_or(0.0),
        r["server_cpu_us_per_delivery"].as_f64().unwrap_or(0.0),
        r["connect_seconds"].as_f64().unwrap_or(0.0), r["errors"],
    )
}

/// What an idle-connections run needs.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Idle WebSocket connections to open (each joins the room, then stays silent).
    #[arg(long, default_value_t = 15_000)]
    pub connections: u32,
    /// Server shards (threads), all pinned to the server's core: more than one holds
    /// more connections on io_uring, whose file table per ring is bounded by
    /// `RLIMIT_NOFILE`.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Connections per worker process.
    #[arg(long, default_value_t = 5_000)]
    pub per_process: u32,
    /// How long to hold them once all are open.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub hold: Duration,
    /// Core for the server.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// `ws-idle`: N idle connections (joined to a room); the server's RSS growth per
/// connection and the connect rate.
pub fn run_idle(args: &IdleArgs, command: &str) -> anyhow::Result<Value> {
    let dir = bin_dir()?;
    let mut spec = streamhub(&dir);
    spec.env
        .push(("STREAMHUB_RATE_WS_CONNECT".into(), "off".into()));
    with_shards(&mut spec, args.shards);
    let server = ServerProc::start(&spec, args.server_core)?;
    // Warm the server (allocator, first connections) before the baseline.
    let _ = viewer_count(server.addr)?;
    std::thread::sleep(Duration::from_millis(300));
    let before_rss = crate::procfs::rss_bytes(server.pid())?;
    let before = viewer_count(server.addr)?;
    let allowance = Duration::from_secs(10 + u64::from(args.connections / 1_000));
    let workers = WorkerArgs {
        url: format!("ws://{}/ws", server.addr),
        connections: args.connections,
        source_ip: None,
        protocol: None,
        init: vec![json!({"type": "join", "room": ROOM}).to_string()],
        publish: None,
        publish_every: Duration::from_secs(1),
        publish_count: 0,
        hold: allowance + args.hold,
    };
    let processes = args.connections.div_ceil(args.per_process.max(1)).max(1);
    let started = Instant::now();
    let children = spawn_workers(
        &std::env::current_exe()?,
        &workers,
        processes,
        args.connections,
        2,
        args.server_core,
    )?;
    let want = before + i64::from(args.connections);
    while viewer_count(server.addr)? < want {
        if started.elapsed() > allowance {
            bail!(
                "only {} of {} connections joined",
                viewer_count(server.addr)? - before,
                args.connections
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(args.hold);
    let after_rss = crate::procfs::rss_bytes(server.pid())?;
    let (report, _) = collect(children)?;
    let per_conn = after_rss.saturating_sub(before_rss) as f64 / f64::from(args.connections);
    Ok(json!({
        "scenario": "ws-idle",
        "machine": crate::report::machine(),
        "setup": format!("server pinned to core {} with {}; {} worker processes on cores {}", args.server_core, shards_said(args.shards), processes, crate::ws::other_cores(args.server_core)),
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "command": command,
        "runs": [{
            "server": "streamhub",
            "connections": args.connections,
            "connected": report.connected,
            "errors": report.failed + report.closed_early,
            "rss_before_bytes": before_rss,
            "rss_after_bytes": after_rss,
            "bytes_per_connection": per_conn,
            "connect_seconds": connect_seconds,
            "connects_per_second": f64::from(args.connections) / connect_seconds,
        }],
    }))
}

/// The idle result as a short table.
pub fn idle_table(v: &Value) -> String {
    let r = &v["runs"][0];
    format!(
        "ws-idle | {}\n{} connections joined in {:.1} s ({:.0}/s); server RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per connection; errors {}\n",
        v["setup"].as_str().unwrap_or(""),
        r["connected"],
        r["connect_seconds"].as_f64().unwrap_or(0.0),
        r["connects_per_second"].as_f64().unwrap_or(0.0),
        r["rss_before_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        r["rss_after_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        r["bytes_per_connection"].as_f64().unwrap_or(0.0),
        r["errors"],
    )
}
