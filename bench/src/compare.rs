//! `compare`: StreamHub and a peer in one run. Both are started pinned to the server
//! core, the load runs pinned to the other; rounds alternate A, B, A, B. Throughput is
//! closed-loop; latency is open-loop at half the slower server's median throughput, so
//! both are measured at the same rate, well below either's saturation.

use std::time::Duration;

use crate::hist::Latency;
use crate::http::{LoadSpec, Pace};
use crate::procfs::CpuMeter;
use crate::report::{median, Phase, Ratio, Report, Round, Run};
use crate::scenario::Scenario;
use crate::server::{ServerProc, ServerSpec};

/// What a comparison needs.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// StreamHub first, then the peer.
    pub servers: Vec<ServerSpec>,
    /// Rounds of each phase.
    pub rounds: u32,
    /// Each round's length.
    pub duration: Duration,
    /// Keep-alive connections.
    pub connections: u32,
    /// The latency phase's rate; by default half the slower median throughput.
    pub rate: Option<f64>,
    /// Core for the servers.
    pub server_core: usize,
    /// Core for the load.
    pub load_core: usize,
    /// The command line, for the report.
    pub command: String,
}

/// Runs the comparison on the current (pinned) thread's runtime.
pub async fn run(spec: &CompareSpec) -> anyhow::Result<Report> {
    let procs: Vec<ServerProc> = spec
        .servers
        .iter()
        .map(|s| ServerProc::start(s, spec.server_core))
        .collect::<anyhow::Result<_>>()?;
    let mut runs: Vec<Run> = procs
        .iter()
        .map(|p| Run {
            server: p.name.clone(),
            connections: spec.connections,
            ..Run::default()
        })
        .collect();

    for p in &procs {
        spec.scenario.setup(p.addr).map_err(|e| {
            e.context(format!(
                "setting up {} for {}",
                p.name,
                spec.scenario.name()
            ))
        })?;
    }
    // Warm-up: connections, caches, the allocator.
    for p in &procs {
        one(spec, p, Pace::Closed, Duration::from_secs(2), None).await?;
    }

    for round in 0..spec.rounds {
        for (p, run) in procs.iter().zip(runs.iter_mut()) {
            let label = format!("throughput {}/{} {}", round + 1, spec.rounds, p.name);
            let (res, lg, sv) = one(spec, p, Pace::Closed, spec.duration, Some(label)).await?;
            run.rounds.push(Round {
                phase: Phase::Throughput,
                rps: res.rps(),
                p99_us: res.latency.summary().p99_us,
                loadgen_cpu: lg,
                server_cpu: sv,
                errors: res.errors,
            });
            run.errors += res.errors;
            run.requests += res.requests;
            run.seconds += res.seconds;
        }
    }
    let median_rps = |run: &Run| {
        let throughput: Vec<f64> = run
            .rounds
            .iter()
            .filter(|r| r.phase == Phase::Throughput)
            .map(|r| r.rps)
            .collect();
        median(&throughput)
    };
    let rate = spec
        .rate
        .unwrap_or_else(|| runs.iter().map(median_rps).fold(f64::INFINITY, f64::min) / 2.0);

    let mut merged: Vec<Latency> = procs.iter().map(|_| Latency::default()).collect();
    let mut p_rounds: Vec<Vec<[f64; 5]>> = procs.iter().map(|_| Vec::new()).collect();
    let mut lag: Vec<Latency> = procs.iter().map(|_| Latency::default()).collect();
    for round in 0..spec.rounds {
        for (i, p) in procs.iter().enumerate() {
            let label = format!(
                "latency {}/{} {} @ {rate:.0}/s",
                round + 1,
                spec.rounds,
                p.name
            );
            let (res, lg, sv) =
                one(spec, p, Pace::Open { rate }, spec.duration, Some(label)).await?;
            let s = res.latency.summary();
            lag[i].merge(&res.send_lag);
            p_rounds[i].push([s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us]);
            merged[i].merge(&res.latency);
            let run = &mut runs[i];
            run.rounds.push(Round {
                phase: Phase::Latency,
                rps: res.rps(),
                p99_us: s.p99_us,
                loadgen_cpu: lg,
                server_cpu: sv,
                errors: res.errors,
            });
            run.errors += res.errors;
            run.requests += res.requests;
            run.seconds += res.seconds;
        }
    }

    for (i, run) in runs.iter_mut().enumerate() {
        let col = |k: usize| median(&p_rounds[i].iter().map(|r| r[k]).collect::<Vec<_>>());
        run.rps = median_rps(run);
        run.p50_us = col(0);
        run.p90_us = col(1);
        run.p99_us = col(2);
        run.p999_us = col(3);
        run.max_us = col(4);
        let tp: Vec<&Round> = run
            .rounds
            .iter()
            .filter(|r| r.phase == Phase::Throughput)
            .collect();
        run.loadgen_cpu = median(&tp.iter().map(|r| r.loadgen_cpu).collect::<Vec<_>>());
        run.server_cpu = Some(median(&tp.iter().map(|r| r.server_cpu).collect::<Vec<_>>()));
        run.latency = format!(
            "open-loop at {rate:.0} req/s ({}), medians of {} rounds; distribution merged over rounds",
            if spec.rate.is_some() { "--rate" } else { "half the slower median throughput" },
            spec.rounds
        );
        run.distribution = merged[i].distribution(10);
        run.loadgen_lag_p99_us = lag[i].summary().p99_us;
    }
    let ratio = (runs.len() == 2).then(|| Ratio {
        rps: runs[0].rps / runs[1].rps,
        p99_us: runs[0].p99_us / runs[1].p99_us,
    });
    Ok(Report {
        scenario: spec.scenario.name().into(),
        machine: crate::report::machine(),
        setup: format!(
            "servers pinned to core {}, load (1 thread) to core {}, {} keep-alive connections, {} rounds of {} s alternating A, B",
            spec.server_core,
            spec.load_core,
            spec.connections,
            spec.rounds,
            spec.duration.as_secs()
        ),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        command: spec.command.clone(),
        runs,
        ratio,
    })
}

/// One load run against one server, with the generator's and the server's CPU share.
async fn one(
    spec: &CompareSpec,
    p: &ServerProc,
    pace: Pace,
    duration: Duration,
    progress: Option<String>,
) -> anyhow::Result<(crate::http::LoadResult, f64, f64)> {
    let had_progress = progress.is_some();
    let load = CpuMeter::start(None)?;
    let server = CpuMeter::start(Some(p.pid()))?;
    let res = crate::http::run(LoadSpec {
        addr: p.addr,
        requests: spec.scenario.requests(p.addr, &[]),
        connections: spec.connections,
        duration,
        pace,
        max_requests: None,
        progress,
    })
    .await?;
    let shares = (load.share(), server.share());
    if had_progress {
        eprintln_clear();
    }
    Ok((res, shares.0, shares.1))
}

/// Ends a progress line.
fn eprintln_clear() {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n");
}
