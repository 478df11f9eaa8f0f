//! `streamhub-bench`: one command per question. See BENCH.md and the README's section
//! for perf engineers.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use streamhub_bench::compare::{self, CompareSpec};
use streamhub_bench::http::{self, LoadSpec, Pace};
use streamhub_bench::procfs::CpuMeter;
use streamhub_bench::report::{self, Report, Run};
use streamhub_bench::scenario::{self, Scenario};
use streamhub_bench::server::{bin_dir, ServerProc};
use streamhub_bench::{plot, ws};

#[derive(Debug, Parser)]
#[command(
    name = "streamhub-bench",
    version,
    about = "Load generators and comparisons for StreamHub"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// `GET /healthz`: the HTTP floor of the same server.
    HttpStatic(LoadArgs),
    /// The channel-page query as a persisted GET (APQ hash).
    GqlPersisted(LoadArgs),
    /// The channel-page query sent as text by POST.
    GqlText(LoadArgs),
    /// `sendChatMessage` by many users.
    GqlMutation(LoadArgs),
    /// One room, many subscribers, a publisher at a fixed rate: deliveries/s and latency.
    WsFanout(streamhub_bench::fanout::FanoutArgs),
    /// N idle WebSocket connections: server memory per connection, connect rate.
    WsIdle(streamhub_bench::fanout::IdleArgs),
    /// The fan-out across two nodes through Redis, beside one node and Redis alone.
    WsCluster(streamhub_bench::cluster::ClusterArgs),
    /// StreamHub against a peer on the same scenario, alternating rounds.
    Compare(CompareArgs),
    /// Draws the latency distributions of result files on one chart (SVG).
    Plot(PlotArgs),
    /// One process of WebSocket clients (started by the WebSocket scenarios).
    #[command(hide = true)]
    WsWorker(ws::WorkerArgs),
    /// One process of Redis pub/sub clients (started by `ws-cluster`).
    #[command(hide = true)]
    RedisWorker(streamhub_bench::peers::redis::RedisWorkerArgs),
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Load an already running server here instead of starting StreamHub.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// How long to load.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Open-loop at this many requests per second (latency); closed-loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many requests in all (instruction counts).
    #[arg(long)]
    requests: Option<u64>,
    /// Core for the server.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core for the load.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Do not run `cargo build --release` for the server first.
    #[arg(long)]
    no_build: bool,
    /// An extra request header, `Name: value` (repeat for several), e.g. a bearer token.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// The peer (see bench/peers).
    #[arg(long)]
    peer: String,
    /// Rounds of each phase, alternating StreamHub and the peer.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Length of each round.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Rate of the latency phase; default half the slower median throughput.
    #[arg(long)]
    rate: Option<f64>,
    /// Core for the servers.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core for the load.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the latency distributions here (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Do not run `cargo build --release` for the servers first.
    #[arg(long)]
    no_build: bool,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// Result files written with --json.
    files: Vec<PathBuf>,
    /// The SVG to write.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match cli.command {
        Cmd::HttpStatic(args) => single(Scenario::HttpStatic, args, command),
        Cmd::GqlPersisted(args) => single(Scenario::GqlPersisted, args, command),
        Cmd::GqlText(args) => single(Scenario::GqlText, args, command),
        Cmd::GqlMutation(args) => single(Scenario::GqlMutation, args, command),
        Cmd::WsFanout(args) => {
            let result = streamhub_bench::fanout::run(&args, &command)?;
            emit(
                &result,
                &streamhub_bench::fanout::table(&result),
                args.json.as_deref(),
            )
        }
        Cmd::WsIdle(args) => {
            let result = streamhub_bench::fanout::run_idle(&args, &command)?;
            emit(
                &result,
                &streamhub_bench::fanout::idle_table(&result),
                args.json.as_deref(),
            )
        }
        Cmd::WsCluster(args) => {
            let result = streamhub_bench::cluster::run(&args, &command)?;
            emit(
                &result,
                &streamhub_bench::cluster::table(&result),
                args.json.as_deref(),
            )
        }
        Cmd::Compare(args) => compare_cmd(args, command),
        Cmd::Plot(args) => plot_cmd(&args),
        Cmd::WsWorker(args) => ws::worker_main(&args),
        Cmd::RedisWorker(args) => streamhub_bench::peers::redis::worker_main(&args),
    }
}

/// Prints a scenario's table and writes its JSON where asked.
fn emit(
    result: &serde_json::Value,
    table: &str,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    std::io::stdout().write_all(table.as_bytes())?;
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(result)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn pin(core: usize) {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    match ids.iter().find(|c| c.id == core) {
        Some(&id) if core_affinity::set_for_current(id) => {}
        _ => eprintln_warn(&format!(
            "could not pin the load to core {core}; running unpinned"
        )),
    }
}

fn eprintln_warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {msg}");
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn single(scenario: Scenario, args: LoadArgs, command: String) -> anyhow::Result<()> {
    let server = match args.addr {
        Some(_) => None,
        None => Some(ServerProc::start(
            &scenario::streamhub(&bin_dir()?),
            args.server_core,
        )?),
    };
    let addr = args
        .addr
        .or(server.as_ref().map(|s| s.addr))
        .expect("an address");
    scenario.setup(addr)?;
    pin(args.load_core);
    let pace = args.rate.map_or(Pace::Closed, |rate| Pace::Open { rate });
    let load = CpuMeter::start(None)?;
    let srv = server
        .as_ref()
        .map(|s| CpuMeter::start(Some(s.pid())))
        .transpose()?;
    let res = runtime()?.block_on(http::run(LoadSpec {
        addr,
        requests: scenario.requests(
            addr,
            &args
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        ),
        connections: args.connections,
        duration: args.duration,
        pace,
        max_requests: args.requests,
        progress: (!args.quiet).then(|| scenario.name().to_owned()),
    }))?;
    if !args.quiet {
        let _ = writeln!(std::io::stderr());
    }
    let mut run = Run {
        server: server
            .as_ref()
            .map_or_else(|| addr.to_string(), |s| s.name.clone()),
        rps: res.rps(),
        errors: res.errors,
        requests: res.requests,
        seconds: res.seconds,
        loadgen_cpu: load.share(),
        server_cpu: srv.map(|m| m.share()),
        connections: args.connections,
        latency: match pace {
            Pace::Closed => "closed-loop (no coordinated-omission correction)".into(),
            Pace::Open { rate } => format!("open-loop at {rate:.0} req/s"),
        },
        distribution: res.latency.distribution(10),
        loadgen_lag_p99_us: res.send_lag.summary().p99_us,
        ..Run::default()
    };
    run.set_latency(&res.latency.summary());
    let report = Report {
        scenario: scenario.name().into(),
        machine: report::machine(),
        setup: match &server {
            Some(_) => format!(
                "server pinned to core {}, load (1 thread) to core {}",
                args.server_core, args.load_core
            ),
            None => format!(
                "server at {addr} (not started here), load (1 thread) on core {}",
                args.load_core
            ),
        },
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        command,
        runs: vec![run],
        ratio: None,
    };
    finish(&report, args.json.as_deref(), None)
}

fn compare_cmd(args: CompareArgs, command: String) -> anyhow::Result<()> {
    if !args.no_build {
        build_servers()?;
    }
    let dir = bin_dir()?;
    let spec = CompareSpec {
        scenario: args.scenario,
        servers: vec![scenario::streamhub(&dir), scenario::peer(&args.peer, &dir)?],
        rounds: args.rounds,
        duration: args.duration,
        connections: args.connections,
        rate: args.rate,
        server_core: args.server_core,
        load_core: args.load_core,
        command,
    };
    pin(args.load_core);
    let report = runtime()?.block_on(compare::run(&spec))?;
    finish(&report, args.json.as_deref(), args.plot.as_deref())
}

/// Builds StreamHub and the peers with the same profile as this binary.
fn build_servers() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "-p",
        "streamhub-server",
        "-p",
        "streamhub-bench",
    ]);
    let status = cmd.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    Ok(())
}

fn finish(
    report: &Report,
    json: Option<&std::path::Path>,
    plot_to: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    std::io::stdout().write_all(report::table(report).as_bytes())?;
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = plot_to {
        write_plot(std::slice::from_ref(report), path)?;
    }
    Ok(())
}

fn write_plot(reports: &[Report], out: &std::path::Path) -> anyhow::Result<()> {
    let series: Vec<plot::Series> = reports
        .iter()
        .flat_map(|r| r.runs.iter())
        .map(|run| plot::Series {
            name: run.server.clone(),
            points: run.distribution.clone(),
        })
        .collect();
    let title = reports.first().map_or_else(String::new, |r| {
        // "open-loop at N req/s (...), ..." -> "open-loop at N req/s"
        let how = r.runs.first().map_or("", |run| run.latency.as_str());
        let how = how.split(" (").next().unwrap_or(how);
        format!("{}: latency, {how}", r.scenario)
    });
    std::fs::write(out, plot::percentile_svg(&title, &series))
        .with_context(|| format!("writing {}", out.display()))
}

fn plot_cmd(args: &PlotArgs) -> anyhow::Result<()> {
    let reports: Vec<Report> = args
        .files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    write_plot(&reports, &args.out)
}
