//! Results in the JSON of BENCH.md, and the short table printed on stdout.

use serde::{Deserialize, Serialize};

use crate::hist::Summary;

/// One server's figures in a report (medians over rounds where there were rounds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// `streamhub` or the peer's name.
    pub server: String,
    /// Answered requests per second (closed-loop).
    pub rps: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency.
    pub max_us: f64,
    /// Failed requests and 4xx/5xx answers.
    pub errors: u64,
    /// Answered requests.
    pub requests: u64,
    /// Seconds of load.
    pub seconds: f64,
    /// The load generator's CPU, as a share of its one core (1.0 = saturated).
    pub loadgen_cpu: f64,
    /// The server's CPU, as a share of one core (unknown for a server not started here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<f64>,
    /// Keep-alive connections.
    pub connections: u32,
    /// How the latency figures were taken, e.g. `open-loop at 50000 req/s`.
    pub latency: String,
    /// Open-loop: p99 of how late the generator sent requests it could have sent on time
    /// (its own error; compare with the latency figures).
    #[serde(default)]
    pub loadgen_lag_p99_us: f64,
    /// Each round's figures, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<Round>,
    /// The latency percentile distribution (percentile, µs), for plots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<(f64, f64)>,
}

impl Run {
    /// Copies the percentiles of `s` into the run.
    pub fn set_latency(&mut self, s: &Summary) {
        self.p50_us = s.p50_us;
        self.p90_us = s.p90_us;
        self.p99_us = s.p99_us;
        self.p999_us = s.p999_us;
        self.max_us = s.max_us;
    }
}

/// One round of one server.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Round {
    /// `throughput` (closed-loop) or `latency` (open-loop).
    pub phase: Phase,
    /// Requests per second.
    pub rps: f64,
    /// 99th percentile latency.
    pub p99_us: f64,
    /// Load generator CPU share.
    pub loadgen_cpu: f64,
    /// Server CPU share.
    pub server_cpu: f64,
    /// Errors.
    pub errors: u64,
}

/// Which measurement a round belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Closed-loop throughput.
    #[default]
    Throughput,
    /// Open-loop latency at a fixed rate.
    Latency,
}

/// streamhub's figures over the peer's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ratio {
    /// streamhub rps / peer rps (higher is better for streamhub).
    pub rps: f64,
    /// streamhub p99 / peer p99 (lower is better for streamhub).
    pub p99_us: f64,
}

/// A whole result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// CPU model, cores and kernel.
    pub machine: String,
    /// Where the server and the load ran.
    pub setup: String,
    /// When it ran (UTC).
    pub date: String,
    /// The command line that made it.
    pub command: String,
    /// One entry per server.
    pub runs: Vec<Run>,
    /// streamhub over the peer, when there was a peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
}

/// A description of this machine.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Counted from /proc, not from this thread's affinity (the load is pinned).
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}

/// The median of `xs` (NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The short table for stdout.
pub fn table(r: &Report) -> String {
    let mut out = format!("{} | {}\n{}\n", r.scenario, r.setup, r.machine);
    out.push_str(&format!(
        "{:<12} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8}\n",
        "server",
        "req/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "errors",
        "load cpu",
        "srv cpu"
    ));
    for run in &r.runs {
        out.push_str(&format!(
            "{:<12} {:>11.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>7.0}% {:>7}%\n",
            run.server,
            run.rps,
            run.p50_us,
            run.p90_us,
            run.p99_us,
            run.p999_us,
            run.max_us,
            run.errors,
            run.loadgen_cpu * 100.0,
            run.server_cpu
                .map_or_else(|| "-".to_owned(), |c| format!("{:.0}", c * 100.0)),
        ));
    }
    if let Some(first) = r.runs.first() {
        out.push_str(&format!("latency: {}\n", first.latency));
    }
    for run in r.runs.iter().filter(|run| run.loadgen_lag_p99_us > 0.0) {
        out.push_str(&format!(
            "generator send lag p99 ({}): {:.0} µs\n",
            run.server, run.loadgen_lag_p99_us
        ));
    }
    if let Some(ratio) = r.ratio {
        out.push_str(&format!(
            "ratio streamhub/{}: rps {:.2}x, p99 {:.2}x\n",
            r.runs.get(1).map_or("peer", |p| p.server.as_str()),
            ratio.rps,
            ratio.p99_us
        ));
    }
    if r.runs.iter().any(|run| run.loadgen_cpu > 0.9) {
        out.push_str("note: the load generator used over 90% of its core in a run; it may have been the bottleneck there\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            scenario: "http-static".into(),
            machine: machine(),
            setup: "server on core 0, load on core 1".into(),
            date: "2026-11-25T00:00:00Z".into(),
            command: "streamhub-bench compare http-static --peer axum".into(),
            runs: vec![
                Run {
                    server: "streamhub".into(),
                    rps: 150_000.0,
                    p99_us: 200.0,
                    requests: 1_500_000,
                    seconds: 10.0,
                    loadgen_cpu: 0.8,
                    ..Run::default()
                },
                Run {
                    server: "axum".into(),
                    rps: 100_000.0,
                    p99_us: 400.0,
                    ..Run::default()
                },
            ],
            ratio: Some(Ratio {
                rps: 1.5,
                p99_us: 0.5,
            }),
        }
    }

    #[test]
    fn json_has_the_fields_bench_md_names() {
        let v = serde_json::to_value(report()).unwrap();
        for key in ["scenario", "machine", "runs", "ratio"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        let run = &v["runs"][0];
        for key in [
            "server",
            "rps",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "errors",
            "requests",
            "seconds",
            "loadgen_cpu",
        ] {
            assert!(run.get(key).is_some(), "run is missing {key}");
        }
        assert_eq!(run["server"], "streamhub");
        assert_eq!(v["ratio"]["rps"], 1.5);
        assert_eq!(v["ratio"]["p99_us"], 0.5);
        // Empty rounds and distributions are left out, and the file reads back.
        assert!(run.get("rounds").is_none());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back.runs.len(), 2);
    }

    #[test]
    fn table_names_each_server_and_the_ratio() {
        let t = table(&report());
        assert!(t.contains("streamhub"));
        assert!(t.contains("axum"));
        assert!(t.contains("rps 1.50x, p99 0.50x"), "{t}");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
