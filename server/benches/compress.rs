//! Response compression levels on the channel page: the JSON `/graphql` answers for the
//! channel-page query of BENCH.md (alice, small demo data, anonymous: 4,614 bytes),
//! compressed with the server's own `http::compress` functions at every brotli quality
//! and gzip level. `cargo bench -p streamhub-server --bench compress` (pin it: `taskset
//! -c 1`) prints a Markdown table: bytes out, bytes saved, and CPU µs per response (this
//! thread's CPU time, the median of 7 runs of about 100 ms each), marks the level a
//! stated rule picks and the one the server uses. With `br 2` (a coding and a level) it
//! compresses for 5 s and prints nothing, for `perf record`.
#![allow(missing_docs, clippy::print_stdout)]

use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graphql_exec::limits::Limits;
use streamhub_pubsub::history::HistoryLimits;
use streamhub_server::domain::events::Counted;
use streamhub_server::domain::{DataLayer, Domain, Obj};
use streamhub_server::http::compress::{self, BROTLI_QUALITY, GZIP_LEVEL};
use streamhub_server::metrics::ShardMetrics;
use streamhub_server::store::cache::{Cache, CacheLimits};
use streamhub_server::store::memory::demo::DemoSize;
use streamhub_server::store::SystemClock;

// The allocator the server runs with: the compressors allocate their state per call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHANNEL_PAGE: &str = include_str!("../../bench/queries/channel-page.graphql");

/// The response body: what `POST /graphql` answers for the channel page.
fn channel_page() -> Vec<u8> {
    let schema = Arc::new(streamhub_server::schema::build().unwrap());
    let data = DataLayer::embedded(
        DemoSize::SMALL,
        HistoryLimits::default(),
        Arc::new(SystemClock),
    );
    let domain = Domain::new(Arc::clone(&schema), data, Arc::new(Counted::default()));
    let cache = shard_cache();
    let prepared =
        graphql_exec::persisted::prepare(&schema, CHANNEL_PAGE, &Limits::default()).unwrap();
    let plan = prepared.plan(None).unwrap();
    let mut input = serde_json::Map::new();
    input.insert("login".into(), "alice".into());
    let vars = graphql_exec::coerce::coerce_variables(&schema, &plan.variables, &input).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let req = domain.request(&cache, None).await.unwrap();
            graphql_exec::exec::execute(&schema, plan, &req, Obj::Root, &vars).await
        })
}

/// A shard's cache, as the server sizes it.
fn shard_cache() -> Cache {
    Cache::new(
        CacheLimits {
            entries: 10_000,
            ttl: 30_000,
            primary_after_change: 0,
        },
        Arc::new(ShardMetrics::new(0)),
    )
}

/// This thread's CPU time so far, in ns (the first field of its schedstat): on a shared
/// machine, time the thread spent preempted is not counted.
fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// Median CPU µs per call of `f`, over 7 runs of about 100 ms each.
fn median_us(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut calls = 0u32;
    while t.elapsed() < Duration::from_millis(20) {
        f();
        calls += 1;
    }
    let per_run = (calls * 5).max(5);
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = cpu_ns();
            for _ in 0..per_run {
                f();
            }
            (cpu_ns() - t) as f64 / 1e3 / f64::from(per_run)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

/// gzip through flate2's raw `Compress` with a window fitted to the body (9-15 bits).
fn gzip_fitted(c: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Finish)
        .unwrap();
    out
}

fn window_bits(n: usize) -> u8 {
    let mut bits = 9;
    while bits < 15 && (1usize << bits) - 262 < n {
        bits += 1;
    }
    bits
}

/// One measured setting.
struct Measured {
    name: String,
    out: usize,
    us: f64,
}

/// Bytes a µs of CPU must save for a level to be worth its cost (see [`best`]).
const BYTES_PER_US: f64 = 10.0;

/// The level of `levels` (cheapest first) with the highest bytes saved less
/// [`BYTES_PER_US`] times its µs: going one level up is worth it while it saves at least
/// 10 bytes for each extra µs.
fn best(levels: &[Measured], input: usize) -> usize {
    let score = |m: &Measured| (input - m.out) as f64 - BYTES_PER_US * m.us;
    (0..levels.len())
        .max_by(|&a, &b| score(&levels[a]).total_cmp(&score(&levels[b])))
        .unwrap()
}

fn print(rows: &[Measured], input: usize, best: Option<usize>, server: Option<usize>) {
    for (i, m) in rows.iter().enumerate() {
        let saved = input - m.out;
        let mut marks = Vec::new();
        if best == Some(i) {
            marks.push("best by the rule");
        }
        if server == Some(i) {
            marks.push("the server's");
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" **({})**", marks.join(", "))
        };
        println!(
            "| {}{marks} | {} | {saved} ({:.1}%) | {:.1} | {:.0} |",
            m.name,
            m.out,
            saved as f64 * 100.0 / input as f64,
            m.us,
            saved as f64 / m.us
        );
    }
}

fn main() {
    let body = channel_page();
    let n = body.len();
    // `compress br 4`: that coding and level only, for 5 s, silent (for `perf record`).
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let [coding, level] = &args[..] {
        let level: u32 = level.parse().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            match coding.as_str() {
                "br" => black_box(compress::brotli(black_box(&body), level).unwrap()),
                _ => black_box(compress::gzip(black_box(&body), level).unwrap()),
            };
        }
        return;
    }
    let measure =
        |name: String, f: &dyn Fn(&[u8]) -> Vec<u8>, decode: &dyn Fn(&[u8]) -> Vec<u8>| {
            let out = f(&body);
            assert_eq!(decode(&out), body, "{name} round-trips");
            let us = median_us(|| {
                black_box(f(black_box(&body)));
            });
            Measured {
                name,
                out: out.len(),
                us,
            }
        };
    let unbrotli = |b: &[u8]| {
        let mut back = Vec::new();
        brotli::Decompressor::new(b, 4096)
            .read_to_end(&mut back)
            .unwrap();
        back
    };
    let ungzip = |b: &[u8]| {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut back)
            .unwrap();
        back
    };
    let br: Vec<Measured> = (0..=11)
        .map(|q| {
            measure(
                format!("br {q}"),
                &|b| compress::brotli(b, q).unwrap(),
                &unbrotli,
            )
        })
        .collect();
    let gz: Vec<Measured> = (1..=9)
        .map(|l| {
            measure(
                format!("gzip {l}"),
                &|b| compress::gzip(b, l).unwrap(),
                &ungzip,
            )
        })
        .collect();
    // What the server leaves aside: brotli's default window (4 MiB) instead of one
    // fitted to the body, and gzip with a fitted window and its state kept between
    // responses (a per-shard compressor).
    let params = brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(BROTLI_QUALITY).unwrap(),
        lgwin: 22,
        ..Default::default()
    };
    let bits = window_bits(n);
    let new_gzip = || flate2::Compress::new_gzip(flate2::Compression::new(GZIP_LEVEL), bits);
    let reused = std::cell::RefCell::new(new_gzip());
    let others = [
        measure(
            format!("br {BROTLI_QUALITY}, default 4 MiB window"),
            &|b| {
                let mut out = Vec::new();
                brotli::BrotliCompress(&mut &b[..], &mut out, &params).unwrap();
                out
            },
            &unbrotli,
        ),
        measure(
            format!("gzip {GZIP_LEVEL}, {bits}-bit window"),
            &|b| gzip_fitted(&mut new_gzip(), b),
            &ungzip,
        ),
        measure(
            format!("gzip {GZIP_LEVEL}, {bits}-bit window, state reused"),
            &|b| {
                let mut c = reused.borrow_mut();
                c.reset();
                gzip_fitted(&mut c, b)
            },
            &ungzip,
        ),
    ];

    println!("channel page: {n} bytes of JSON; CPU µs per response, median of 7 runs");
    println!("rule: the level with the most bytes saved less {BYTES_PER_US} x its µs\n");
    println!("| coding, level | bytes out | bytes saved | µs per response | bytes saved per µs |");
    println!("|---|---|---|---|---|");
    let server_br = usize::try_from(BROTLI_QUALITY).unwrap();
    let server_gz = usize::try_from(GZIP_LEVEL).unwrap() - 1;
    print(&br, n, Some(best(&br, n)), Some(server_br));
    print(&gz, n, Some(best(&gz, n)), Some(server_gz));
    print(&others, n, None, None);
}
