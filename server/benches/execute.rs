//! The executor on the domain: the channel-page query of BENCH.md planned once, then
//! executed into JSON over the small demo data, as `/graphql` runs a persisted request
//! (no HTTP). `cargo bench -p streamhub-server --bench execute` (pin it: `taskset -c 1`)
//! prints nanoseconds per operation, the median of 7 runs; with an argument N it runs N
//! operations once and prints nothing else, for `valgrind --tool=callgrind`.
#![allow(missing_docs, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use graphql_exec::limits::Limits;
use graphql_exec::plan::Plan;
use graphql_exec::schema::Schema;
use streamhub_pubsub::history::HistoryLimits;
use streamhub_server::domain::events::Counted;
use streamhub_server::domain::{DataLayer, Domain, Obj};
use streamhub_server::metrics::ShardMetrics;
use streamhub_server::store::cache::{Cache, CacheLimits};
use streamhub_server::store::memory::demo::DemoSize;
use streamhub_server::store::SystemClock;

// The allocator the server runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHANNEL_PAGE: &str = include_str!("../../bench/queries/channel-page.graphql");

fn main() {
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
    // The operations run on a current-thread runtime, as on a shard.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let run = |n: u32| {
        rt.block_on(async {
            for _ in 0..n {
                black_box(channel_page(&schema, &domain, &cache, plan, &input).await);
            }
        })
    };
    if let Some(n) = std::env::args().nth(1).and_then(|a| a.parse::<u32>().ok()) {
        run(n);
        return;
    }
    let bytes = rt
        .block_on(channel_page(&schema, &domain, &cache, plan, &input))
        .len();
    const N: u32 = 20_000;
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            run(N);
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "channel page (persisted: coerce + execute), {bytes} bytes of JSON: {:.0} ns/op",
        runs[3]
    );
}

/// One persisted channel page: its variables coerced, then executed.
async fn channel_page(
    schema: &Schema,
    domain: &Domain,
    cache: &Cache,
    plan: &Plan,
    input: &serde_json::Map<String, serde_json::Value>,
) -> Vec<u8> {
    let vars = graphql_exec::coerce::coerce_variables(schema, &plan.variables, input).unwrap();
    let req = domain.request(cache, None).await.unwrap();
    graphql_exec::exec::execute(schema, plan, &req, Obj::Root, &vars).await
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
