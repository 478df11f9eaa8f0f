//! WebSocket client machinery for the WebSocket scenarios: many connections spread
//! over several client processes (`ulimit -n` caps each one) and 127.0.0.x source
//! addresses (each address has its own ephemeral ports), messages stamped with their
//! send time so receivers measure publish-to-receive latency.
//!
//! A scenario starts [`spawn_workers`]; each worker is this binary's hidden `ws-worker`
//! subcommand ([`worker_main`]), which prints one JSON [`WorkerReport`] line when done;
//! [`collect`] merges them.

use std::cell::RefCell;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::Request;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;

use crate::hist::Latency;

/// In a message to send, replaced with the send time as `ts:<unix nanoseconds>`.
pub const STAMP: &str = "{stamp}";
const STAMP_PREFIX: &str = "ts:";

/// One worker process's settings (the hidden `ws-worker` subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// `ws://host:port/path`.
    #[arg(long)]
    pub url: String,
    /// Connections this worker opens.
    #[arg(long)]
    pub connections: u32,
    /// Local address to connect from (e.g. 127.0.0.2).
    #[arg(long)]
    pub source_ip: Option<IpAddr>,
    /// `Sec-WebSocket-Protocol` to ask for.
    #[arg(long)]
    pub protocol: Option<String>,
    /// Text messages each connection sends once connected (`{stamp}` is replaced).
    #[arg(long = "send")]
    pub init: Vec<String>,
    /// A text message each connection sends repeatedly (`{stamp}` is replaced).
    #[arg(long)]
    pub publish: Option<String>,
    /// How often `--publish` is sent.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub publish_every: Duration,
    /// How many times `--publish` is sent.
    #[arg(long, default_value_t = 0)]
    pub publish_count: u32,
    /// How long to keep every connection open after connecting, reading what arrives.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub hold: Duration,
}

/// What one worker saw, printed as one JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Connections that completed the handshake.
    pub connected: u64,
    /// Connections that failed to connect.
    pub failed: u64,
    /// Seconds from the first connect to the last handshake.
    pub connect_seconds: f64,
    /// Text messages sent.
    pub sent: u64,
    /// Text messages received.
    pub received: u64,
    /// Connections the server closed before the hold ended.
    pub closed_early: u64,
    /// When the first and the last stamped message arrived (Unix ns; 0: none).
    pub first_received_ns: u64,
    /// See `first_received_ns`.
    pub last_received_ns: u64,
    /// Received messages' latency (ns, count) since their stamp.
    pub latency: Vec<(u64, u64)>,
    /// The first error, if any.
    pub first_error: Option<String>,
}

/// Replaces [`STAMP`] in `template` with the current time.
pub fn stamp(template: &str) -> String {
    if !template.contains(STAMP) {
        return template.to_owned();
    }
    template.replace(STAMP, &format!("{STAMP_PREFIX}{}", unix_nanos()))
}

/// The send time stamped into `text`, if it carries one.
pub fn find_stamp(text: &str) -> Option<u64> {
    let at = text.find(STAMP_PREFIX)? + STAMP_PREFIX.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Now, in nanoseconds since the Unix epoch (the stamps' clock).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Splits `ws://host:port/path` into the address and the path.
pub fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("`{url}` is not a ws:// URL"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = host
        .parse()
        .with_context(|| format!("`{host}` is not an ip:port"))?;
    Ok((
        addr,
        if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    ))
}

struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Opens one WebSocket connection from `source` (if given).
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    source: Option<IpAddr>,
    protocol: Option<&str>,
) -> anyhow::Result<Upgraded> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding source address {ip}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut req = Request::builder()
        .method("GET")
        .uri(path)
        .header(HOST, addr.to_string())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13");
    if let Some(p) = protocol {
        req = req.header("Sec-WebSocket-Protocol", p);
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let (ws, _resp) = fastwebsockets::handshake::client(&SpawnExecutor, req, stream)
        .await
        .context("WebSocket handshake")?;
    Ok(ws.into_inner())
}

#[derive(Default)]
struct Tally {
    report: WorkerReport,
    latency: Latency,
}

/// Runs one worker and prints its report as one JSON line on stdout.
pub fn worker_main(args: &WorkerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_worker(args))?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Runs one worker's connections on the current thread.
pub async fn run_worker(args: &WorkerArgs) -> anyhow::Result<WorkerReport> {
    let (addr, path) = parse_url(&args.url)?;
    let tally = Rc::new(RefCell::new(Tally::default()));
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    local
        .run_until(async {
            // Connect in waves so the server's accept queue is not overrun.
            let mut tasks = Vec::with_capacity(args.connections as usize);
            for _ in 0..args.connections {
                let up = match connect(addr, &path, args.source_ip, args.protocol.as_deref()).await
                {
                    Ok(up) => up,
                    Err(e) => {
                        let mut t = tally.borrow_mut();
                        t.report.failed += 1;
                        t.report.first_error.get_or_insert_with(|| format!("{e:#}"));
                        continue;
                    }
                };
                tally.borrow_mut().report.connected += 1;
                tasks.push(tokio::task::spawn_local(session(
                    up,
                    args.clone(),
                    Rc::clone(&tally),
                )));
            }
            tally.borrow_mut().report.connect_seconds = start.elapsed().as_secs_f64();
            for t in tasks {
                t.await.context("a session panicked")?;
            }
            anyhow::Ok(())
        })
        .await?;
    let Tally {
        mut report,
        latency,
    } = Rc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("sessions still running"))?
        .into_inner();
    report.latency = latency.to_pairs();
    Ok(report)
}

async fn session(up: Upgraded, args: WorkerArgs, tally: Rc<RefCell<Tally>>) {
    let (r, w) = tokio::io::split(up);
    let (mut rd, wr) = fastwebsockets::after_handshake_split(r, w, Role::Client);
    let wr = Rc::new(tokio::sync::Mutex::new(wr));
    let deadline = tokio::time::Instant::now() + args.hold;

    // Reader: count messages and time the stamped ones, until the hold ends.
    let reader = {
        let (wr, tally) = (Rc::clone(&wr), Rc::clone(&tally));
        tokio::task::spawn_local(async move {
            let read_all = async {
                loop {
                    let frame = rd
                        .read_frame(&mut |f: Frame<'_>| {
                            let wr = Rc::clone(&wr);
                            let owned = Frame::new(
                                true,
                                f.opcode,
                                None,
                                Payload::Owned(f.payload.to_vec()),
                            );
                            async move { wr.lock().await.write_frame(owned).await }
                        })
                        .await?;
                    match frame.opcode {
                        OpCode::Text => {
                            let now = unix_nanos();
                            let mut t = tally.borrow_mut();
                            t.report.received += 1;
                            if let Some(sent) = std::str::from_utf8(&frame.payload)
                                .ok()
                                .and_then(find_stamp)
                            {
                                t.latency
                                    .record(Duration::from_nanos(now.saturating_sub(sent)));
                                if t.report.first_received_ns == 0 {
                                    t.report.first_received_ns = now;
                                }
                                t.report.last_received_ns = now;
                            }
                        }
                        OpCode::Close => return Ok::<_, WebSocketError>(true),
                        _ => {}
                    }
                }
            };
            match tokio::time::timeout_at(deadline, read_all).await {
                Ok(Ok(true)) | Ok(Err(_)) => tally.borrow_mut().report.closed_early += 1,
                _ => {}
            }
        })
    };

    // Writer: the init messages, then the publishes on their schedule.
    let send = |text: String| {
        let wr = Rc::clone(&wr);
        let tally = Rc::clone(&tally);
        async move {
            let frame = Frame::text(Payload::Owned(text.into_bytes()));
            let ok = wr.lock().await.write_frame(frame).await.is_ok();
            if ok {
                tally.borrow_mut().report.sent += 1;
            }
            ok
        }
    };
    let mut ok = true;
    for m in &args.init {
        ok = ok && send(stamp(m)).await;
    }
    if let Some(p) = &args.publish {
        let mut next = tokio::time::Instant::now();
        for _ in 0..args.publish_count {
            if !ok || next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
            ok = send(stamp(p)).await;
            next += args.publish_every;
        }
    }
    let _ = reader.await;
}

/// Starts `processes` workers (`exe` is the `streamhub-bench` binary) sharing
/// `connections`, each from its own source address 127.0.0.(first_ip + i).
pub fn spawn_workers(
    exe: &std::path::Path,
    base: &WorkerArgs,
    processes: u32,
    connections: u32,
    first_ip: u8,
    away_from: usize,
) -> anyhow::Result<Vec<Child>> {
    if processes == 0 {
        bail!("at least one worker process is needed");
    }
    let mut children = Vec::new();
    for i in 0..processes {
        let share = connections / processes + u32::from(i < connections % processes);
        let ip = format!("127.0.0.{}", u32::from(first_ip) + i);
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &other_cores(away_from)])
            .arg(exe)
            .args(["ws-worker", "--url", &base.url])
            .args(["--connections", &share.to_string()])
            .args(["--source-ip", &ip])
            .args(["--hold", &humantime::format_duration(base.hold).to_string()])
            .args([
                "--publish-every",
                &humantime::format_duration(base.publish_every).to_string(),
            ])
            .args(["--publish-count", &base.publish_count.to_string()]);
        if let Some(p) = &base.protocol {
            cmd.args(["--protocol", p]);
        }
        for m in &base.init {
            cmd.args(["--send", m]);
        }
        if let Some(p) = &base.publish {
            cmd.args(["--publish", p]);
        }
        children.push(
            cmd.stdout(Stdio::piped())
                .spawn()
                .context("starting a ws worker")?,
        );
    }
    Ok(children)
}

/// Waits for the workers and merges their reports; the latency histogram is merged too.
pub fn collect(children: Vec<Child>) -> anyhow::Result<(WorkerReport, Latency)> {
    let mut total = WorkerReport::default();
    let mut latency = Latency::default();
    for child in children {
        let out = child
            .wait_with_output()
            .context("waiting for a ws worker")?;
        if !out.status.success() {
            bail!("a ws worker failed: {}", out.status);
        }
        let r: WorkerReport =
            serde_json::from_slice(&out.stdout).context("reading a worker's report")?;
        total.connected += r.connected;
        total.failed += r.failed;
        total.connect_seconds = total.connect_seconds.max(r.connect_seconds);
        total.sent += r.sent;
        total.received += r.received;
        if r.first_received_ns != 0 {
            total.first_received_ns = match total.first_received_ns {
                0 => r.first_received_ns,
                t => t.min(r.first_received_ns),
            };
        }
        total.last_received_ns = total.last_received_ns.max(r.last_received_ns);
        total.closed_early += r.closed_early;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
        latency.merge(&Latency::from_pairs(&r.latency));
    }
    total.latency = latency.to_pairs();
    Ok((total, latency))
}

/// Every core but `core`, as a `taskset` list ("1" on two cores); `core` itself when it
/// is the only one.
pub fn other_cores(core: usize) -> String {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others: Vec<String> = (0..n)
        .filter(|&c| c != core)
        .map(|c| c.to_string())
        .collect();
    if others.is_empty() {
        core.to_string()
    } else {
        others.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_message_text() {
        let msg = stamp(r#"{"type":"send","room":"c1","body":"{stamp}"}"#);
        let t = find_stamp(&msg).unwrap();
        assert!(t > 1_700_000_000_000_000_000, "{msg}");
        assert_eq!(find_stamp(r#"{"body":"ts:42 rest"}"#), Some(42));
        assert_eq!(find_stamp("no stamp"), None);
        assert_eq!(stamp("plain"), "plain");
    }

    #[test]
    fn urls_split_into_address_and_path() {
        let (a, p) = parse_url("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(a, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(p, "/ws");
        assert_eq!(parse_url("ws://127.0.0.1:1").unwrap().1, "/");
        assert!(parse_url("http://x").is_err());
    }
}
