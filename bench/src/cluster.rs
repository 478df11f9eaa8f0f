//! `ws-cluster`: the fan-out of `ws-fanout` across two nodes through Redis, beside the
//! same load on one node and beside Redis pub/sub alone, in one run:
//! - `single`: one StreamHub node on PostgreSQL, subscribers and publisher on it;
//! - `cluster`: two nodes on the same PostgreSQL and a Redis this run starts,
//!   subscribers on node A, the publisher on node B, so every event crosses Redis;
//! - `redis` (the peer): the subscribers as RESP connections on one channel of a Redis
//!   of its own, a publisher at the same rate (what Redis alone charges);
//! - with `--redis-cluster`, `cluster` again on a Redis Cluster of three masters this
//!   run makes (classic pub/sub: every node's link on one master).
//!
//! On two cores the nodes, Redis and the load share them, so each run reports the CPU
//! of every process that serves (both nodes and Redis) per delivery, beside the
//! latency. Each node runs one shard; node A (and the single node, and the peer's
//! Redis) is pinned to the server core, node B to the other, with the load.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::fanout::{measure, viewer_count, FanoutArgs, Measured, ROOM};
use crate::scenario::streamhub;
use crate::server::{answers_200, bin_dir, free_addr, ServerProc};

/// What a cluster run needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Subscribers joined to the room.
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: u32,
    /// Messages published per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to publish.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Bytes of each message's body.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// A PostgreSQL database the run may create databases from (it makes its own,
    /// migrated and seeded with the small demo data, and drops it after).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres: String,
    /// Core for node A (and the single node, and the peer's Redis).
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// Also run the two nodes on a Redis Cluster of three masters.
    #[arg(long)]
    pub redis_cluster: bool,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Runs the three and returns the BENCH.md JSON with the scenario's own fields and
/// the cluster's cost over the single node.
pub fn run(args: &ClusterArgs, command: &str) -> anyhow::Result<Value> {
    let fanout = FanoutArgs {
        subscribers: args.subscribers,
        rate: args.rate,
        duration: args.duration,
        body_bytes: args.body_bytes,
        shards: 1,
        per_process: 5_000,
        server_core: args.server_core,
        json: None,
        peer: None,
    };
    let db = Database::create(&args.postgres)?;
    let other = other_core(args.server_core);
    let single = {
        let node = node(&db.url, None, true, args.server_core)?;
        let url = format!("ws://{}/ws", node.addr);
        let addr = node.addr;
        measure(&fanout, &url, &url, &|| viewer_count(addr), &[node.pid()])?
    };
    let cluster = {
        let redis = Redis::start(args.server_core)?;
        two_nodes(
            &fanout,
            &db.url,
            (&redis.url(), false),
            &[redis.pid()],
            args.server_core,
        )?
    };
    let on_cluster = if args.redis_cluster {
        let masters = RedisCluster::start(args.server_core)?;
        Some(two_nodes(
            &fanout,
            &db.url,
            (&masters.url(), true),
            &masters.pids(),
            args.server_core,
        )?)
    } else {
        None
    };
    let peer = {
        let redis = Redis::start(args.server_core)?;
        redis_peer(&fanout, &redis)?
    };
    let mut runs = vec![
        single.run("streamhub (one node)", &fanout),
        cluster.run("streamhub (two nodes, Redis)", &fanout),
        peer.run("redis", &fanout),
    ];
    if let Some(m) = &on_cluster {
        runs.push(m.run("streamhub (two nodes, Redis Cluster)", &fanout));
    }
    let cpu = |m: &Measured| m.cpu_seconds / m.deliveries.max(1) as f64;
    let over_single = |m: &Measured| {
        json!({
            "p99_added_us": m.latency.p99_us - single.latency.p99_us,
            "cpu_per_delivery": cpu(m) / cpu(&single).max(1e-12),
        })
    };
    Ok(json!({
        "scenario": "ws-cluster",
        "machine": crate::report::machine(),
        "setup": format!(
            "one shard per node; node A, the single node and the peer's Redis pinned to core {}, node B to core {other} with the load; the cluster's Redis unpinned; PostgreSQL shared",
            args.server_core
        ),
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "command": command,
        "runs": runs,
        "cluster_over_single": over_single(&cluster),
        "redis_cluster_over_single": on_cluster.as_ref().map(over_single),
    }))
}

/// The result as a short table.
pub fn table(v: &Value) -> String {
    let mut out = format!("ws-cluster | {}\n", v["setup"].as_str().unwrap_or(""));
    for r in v["runs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<30} {} of {} deliveries; µs p50 {:.0} p90 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}; CPU {:.2} µs per delivery; errors {}\n",
            r["server"].as_str().unwrap_or(""),
            r["deliveries"], r["deliveries_expected"],
            r["p50_us"].as_f64().unwrap_or(0.0), r["p90_us"].as_f64().unwrap_or(0.0),
            r["p99_us"].as_f64().unwrap_or(0.0), r["p999_us"].as_f64().unwrap_or(0.0),
            r["max_us"].as_f64().unwrap_or(0.0),
            r["server_cpu_us_per_delivery"].as_f64().unwrap_or(0.0),
            r["errors"],
        ));
    }
    for (what, key) in [
        ("two nodes over one", "cluster_over_single"),
        (
            "two nodes on a Redis Cluster over one",
            "redis_cluster_over_single",
        ),
    ] {
        let c = &v[key];
        if c.is_object() {
            out.push_str(&format!(
                "{what}: p99 {:+.0} µs, CPU per delivery {:.2}x\n",
                c["p99_added_us"].as_f64().unwrap_or(0.0),
                c["cpu_per_delivery"].as_f64().unwrap_or(0.0)
            ));
        }
    }
    out
}

/// The other core of a two-core machine (the one the load runs on).
fn other_core(core: usize) -> usize {
    crate::ws::other_cores(core)
        .split(',')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(core)
}

/// The `cluster` run: two nodes on `db` and the Redis at `redis` (its URL, and whether
/// it is a Redis Cluster, whose processes are `redis_pids`), node A on `core`,
/// subscribers on A and the publisher on B.
fn two_nodes(
    fanout: &FanoutArgs,
    db: &str,
    redis: (&str, bool),
    redis_pids: &[u32],
    core: usize,
) -> anyhow::Result<Measured> {
    let a = node(db, Some(redis), false, core)?;
    let b = node(db, Some(redis), false, other_core(core))?;
    let (at_a, at_b) = (format!("ws://{}/ws", a.addr), format!("ws://{}/ws", b.addr));
    let addr = a.addr;
    let mut pids = vec![a.pid(), b.pid()];
    pids.extend_from_slice(redis_pids);
    measure(fanout, &at_a, &at_b, &|| viewer_count(addr), &pids)
}

/// A StreamHub node on `db` (the first one migrates and seeds it), with Redis when
/// given (its URL, and whether it is a Redis Cluster), ready once `/readyz` says so (a
/// new Redis epoch settles first).
fn node(
    db: &str,
    redis: Option<(&str, bool)>,
    first: bool,
    core: usize,
) -> anyhow::Result<ServerProc> {
    let mut spec = streamhub(&bin_dir()?);
    spec.env.push(("DATABASE_URL".into(), db.into()));
    spec.env
        .push(("STREAMHUB_RATE_WS_CONNECT".into(), "off".into()));
    if first {
        spec.env.push(("STREAMHUB_MIGRATE".into(), "true".into()));
        spec.env
            .push(("STREAMHUB_DEMO_DATA".into(), "small".into()));
    }
    if let Some((url, cluster)) = redis {
        spec.env.push(("REDIS_URL".into(), url.into()));
        spec.env
            .push(("STREAMHUB_REDIS_CLUSTER".into(), cluster.to_string()));
    }
    let server = ServerProc::start(&spec, core)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers_200(server.addr, "/readyz") {
        if Instant::now() > deadline {
            bail!("the node at {} did not become ready", server.addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

/// The peer: the subscribers on Redis pub/sub itself, the publisher likewise.
fn redis_peer(args: &FanoutArgs, redis: &Redis) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe()?;
    let channel = format!("room:{ROOM}");
    let cores = crate::ws::other_cores(args.server_core);
    let publishes = (args.rate * args.duration.as_secs_f64()).round() as u32;
    let worker = |subscribers: u32,
                  publish: Option<String>,
                  hold: Duration|
     -> anyhow::Result<Child> {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cores])
            .arg(&exe)
            .args(["redis-worker", "--url", &redis.url(), "--channel", &channel])
            .args(["--subscribers", &subscribers.to_string()])
            .args(["--hold", &humantime::format_duration(hold).to_string()])
            .args([
                "--publish-every",
                &humantime::format_duration(Duration::from_secs_f64(1.0 / args.rate.max(0.001)))
                    .to_string(),
            ])
            .args(["--publish-count", &publishes.to_string()]);
        if let Some(p) = publish {
            cmd.args(["--publish", &p]);
        }
        cmd.stdout(Stdio::piped())
            .spawn()
            .context("starting a redis worker")
    };
    let connect_started = Instant::now();
    let allowance = Duration::from_secs(5 + u64::from(args.subscribers / 2_000));
    let subs = worker(
        args.subscribers,
        None,
        allowance + args.duration + Duration::from_secs(3),
    )?;
    while redis.subscribers(&channel)? < u64::from(args.subscribers) {
        if connect_started.elapsed() > allowance {
            bail!("the redis subscribers did not all subscribe within {allowance:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let padding = "x".repeat(args.body_bytes.saturating_sub(30));
    let cpu = crate::procfs::CpuMeter::start(Some(redis.pid()))?;
    let started = Instant::now();
    let publisher = worker(
        0,
        Some(format!("{} {padding}", crate::ws::STAMP)),
        args.duration + Duration::from_secs(2),
    )?;
    let (pub_report, _) = crate::ws::collect(vec![publisher])?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu.used();
    let (sub_report, latency) = crate::ws::collect(vec![subs])?;
    Ok(Measured {
        processes: 1,
        publishes: pub_report.sent,
        deliveries: sub_report.received,
        expected: u64::from(args.subscribers) * pub_report.sent,
        delivery_span: crate::fanout::delivery_span(&sub_report),
        latency: latency.summary(),
        errors: sub_report.failed,
        seconds,
        connect_seconds,
        cpu_seconds,
        cpu_share: cpu_seconds / seconds.max(1e-3),
    })
}

/// A `redis-server` of the run's own on a free port, keeping nothing on disk.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(core: usize) -> anyhow::Result<Redis> {
        Redis::start_with(core, free_addr()?.port(), &["--dir", "/tmp"])
    }

    /// On `port`, with more options.
    fn start_with(core: usize, port: u16, options: &[&str]) -> anyhow::Result<Redis> {
        let child = Command::new("taskset")
            .args(["-c", &core.to_string(), "redis-server"])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(options)
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (apt install redis-server)")?;
        let redis = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many clients are subscribed to `channel`.
    fn subscribers(&self, channel: &str) -> anyhow::Result<u64> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection()?;
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut conn)?;
        Ok(n)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of the run's own: three masters (no replicas) pinned to one core,
/// keeping nothing on disk.
struct RedisCluster {
    masters: Vec<Redis>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    fn start(core: usize) -> anyhow::Result<RedisCluster> {
        let dir =
            std::env::temp_dir().join(format!("streamhub-bench-cluster-{}", std::process::id()));
        let mut masters = Vec::new();
        for _ in 0..3 {
            let bus = free_addr()?.port().to_string();
            let port = free_addr()?.port();
            let at = dir.join(port.to_string());
            std::fs::create_dir_all(&at)?;
            let at = at.to_string_lossy().into_owned();
            masters.push(Redis::start_with(
                core,
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--dir",
                    &at,
                ],
            )?);
        }
        let nodes: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .context("redis-cli --cluster create")?;
        if !made.status.success() {
            bail!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&made.stdout)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for m in &masters {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut redis::Client::open(m.url())?.get_connection()?)?;
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the Redis Cluster did not become ok");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { masters, dir })
    }

    /// `REDIS_URL` for it: its masters, comma-separated.
    fn url(&self) -> String {
        self.masters
            .iter()
            .map(Redis::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn pids(&self) -> Vec<u32> {
        self.masters.iter().map(Redis::pid).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.masters.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A database of the run's own, dropped after.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str) -> anyhow::Result<Database> {
        let name = format!("streamhub_bench_cluster_{}", std::process::id());
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .context("the PostgreSQL URL names a database")?;
        let db = Database {
            admin: admin.into(),
            url: format!("{base}/{name}"),
            name,
        };
        db.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))?;
        db.psql(&format!("CREATE DATABASE {}", db.name))?;
        Ok(db)
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let out = Command::new("psql")
            .args([&self.admin, "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
