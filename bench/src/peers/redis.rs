//! The `redis` peer of `ws-cluster`: the same fan-out through Redis pub/sub alone, with
//! nothing in between: subscribers on one channel (RESP connections, the `redis`
//! crate's pub/sub client) and a publisher at the scenario's rate, the send time
//! stamped in each message. What a platform that put Redis between its nodes and its
//! clients' sockets would pay at the least.

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::hist::Latency;
use crate::ws::{find_stamp, stamp, unix_nanos, WorkerReport};

/// One process of Redis clients.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisWorkerArgs {
    /// `redis://host:port`.
    #[arg(long)]
    pub url: String,
    /// The channel.
    #[arg(long)]
    pub channel: String,
    /// Subscriber connections this worker opens.
    #[arg(long, default_value_t = 0)]
    pub subscribers: u32,
    /// A message to publish repeatedly (`{stamp}` is replaced).
    #[arg(long)]
    pub publish: Option<String>,
    /// How often it is published.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub publish_every: Duration,
    /// How many times.
    #[arg(long, default_value_t = 0)]
    pub publish_count: u32,
    /// How long to hold the subscriptions, reading what arrives.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub hold: Duration,
}

/// Runs one worker and prints its report as one JSON line on stdout.
pub fn worker_main(args: &RedisWorkerArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(tokio::task::LocalSet::new().run_until(run(args)))?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    out.write_all(b"\n")?;
    Ok(())
}

async fn run(args: &RedisWorkerArgs) -> anyhow::Result<WorkerReport> {
    let client = redis::Client::open(args.url.as_str())?;
    let deadline = tokio::time::Instant::now() + args.hold;
    let started = Instant::now();
    let mut report = WorkerReport::default();
    let mut readers = Vec::new();
    for _ in 0..args.subscribers {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        pubsub.subscribe(&args.channel).await?;
        report.connected += 1;
        readers.push(tokio::task::spawn_local(async move {
            let mut seen = (0u64, 0u64, 0u64, Latency::default());
            let mut messages = pubsub.on_message();
            let read = async {
                while let Some(m) = messages.next().await {
                    let now = unix_nanos();
                    seen.0 += 1;
                    let text = String::from_utf8_lossy(m.get_payload_bytes());
                    if let Some(sent) = find_stamp(&text) {
                        seen.3
                            .record(Duration::from_nanos(now.saturating_sub(sent)));
                        if seen.1 == 0 {
                            seen.1 = now;
                        }
                        seen.2 = now;
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline, read).await;
            seen
        }));
    }
    report.connect_seconds = started.elapsed().as_secs_f64();
    if let Some(template) = &args.publish {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut next = tokio::time::Instant::now();
        for _ in 0..args.publish_count {
            if next >= deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&args.channel)
                .arg(stamp(template))
                .query_async(&mut conn)
                .await?;
            report.sent += 1;
            next += args.publish_every;
        }
    }
    let mut latency = Latency::default();
    for r in readers {
        let (received, first, last, l) = r.await?;
        report.received += received;
        if first != 0 {
            report.first_received_ns = match report.first_received_ns {
                0 => first,
                t => t.min(first),
            };
        }
        report.last_received_ns = report.last_received_ns.max(last);
        latency.merge(&l);
    }
    report.latency = latency.to_pairs();
    Ok(report)
}
