//! `streamhub serve`: starts the shards, then runs the shutdown sequence on SIGTERM or
//! SIGINT: readiness 503 at once, keep serving for the drain delay, close the
//! listeners, let connections finish their current response (up to the grace), exit 0.
//! A second signal during shutdown exits at once. SIGHUP reloads the persisted-query
//! manifest. [`start`] is the node without the process around it (logs, signals,
//! exit): what `serve` runs, on the wall clock.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use graphql_exec::registry::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::auth::key::VerifyKey;
use crate::cluster::RedisOrderer;
use crate::config::Config;
use crate::domain::events::EventSink;
use crate::domain::{DataLayer, Domain};
use crate::io_backend::Backend;
use crate::node::{Node, Phase};
use crate::realtime::fanout::Fanout;
use crate::realtime::presence::Presence;
use crate::rooms::{LocalOrderer, Orderer};
use crate::store::memory::demo::DemoSize;
use crate::store::pg::{migrate, seed, PgSettings, PgStore};
use crate::store::{Clock, SharedStore, SystemClock};

/// Runs the server until it has shut down.
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::logging::init(&config.log_filter, config.log_format)?;
    // Signals are caught from before the first connection can be accepted, so a
    // SIGTERM right after start drains like any other instead of killing the process.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the control runtime")?;
    let signals = {
        let _guard = rt.enter();
        Signals {
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            hup: signal(SignalKind::hangup()).context("catching SIGHUP")?,
        }
    };
    let mut running = start(config, Arc::new(SystemClock))?;
    let shards = running.threads.len();
    let node = Arc::clone(&running.node);
    match rt.block_on(shutdown_sequence(&node, signals, &mut running.done, shards)) {
        Outcome::Clean => {}
        Outcome::ShardExited => anyhow::bail!("a shard stopped before any shutdown signal"),
        Outcome::Forced(sig) => {
            tracing::warn!(signal = sig, "second signal: exiting without waiting");
            std::process::exit(1);
        }
    }
    running.join()?;
    tracing::info!("stopped");
    Ok(())
}

/// A node serving on its shards (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// The address every shard listens on.
    pub addr: std::net::SocketAddr,
    /// The node's shared state; advancing its phase to [`Phase::Closing`] closes the
    /// listeners, and the shards finish once their connections have.
    pub node: Arc<Node>,
    threads: Vec<std::thread::JoinHandle<std::io::Result<()>>>,
    /// Each shard's id once it has finished.
    done: mpsc::Receiver<usize>,
}

impl Running {
    /// Waits for every shard to finish (after [`Phase::Closing`]); the first failure.
    pub fn join(self) -> anyhow::Result<()> {
        for t in self.threads {
            match t.join() {
                Ok(res) => res.context("a shard failed")?,
                Err(_) => anyhow::bail!("a shard thread panicked"),
            }
        }
        Ok(())
    }
}

/// The store the node serves from: the embedded memory store with its demo data, or
/// PostgreSQL with `DATABASE_URL` (and its read replica with `DATABASE_REPLICA_URL`),
/// its rooms ordered through Redis with `REDIS_URL` (their events published to
/// `events` as they come from other nodes).
fn data_layer(
    config: &Config,
    clock: Arc<dyn Clock>,
    events: Arc<Fanout>,
) -> anyhow::Result<DataLayer> {
    let Some(pg) = config.postgres() else {
        return Ok(DataLayer::embedded(
            config.demo_size(),
            config.retention(),
            clock,
        ));
    };
    prepare_postgres(config, &pg)?;
    let store: SharedStore =
        Arc::new(PgStore::new(&pg, Arc::clone(&clock)).context("the PostgreSQL store")?);
    tracing::info!(replica = pg.replica.is_some(), "store: PostgreSQL");
    let presence = Arc::new(Presence::default());
    let mut redis = None;
    let mut peers = None;
    let mut rooms_slot = None;
    let orderer: Box<dyn Orderer> = match &config.redis_url {
        Some(url) => {
            let servers = streamhub_pubsub::redis::Servers::parse(url, config.redis_cluster)
                .context("REDIS_URL")?;
            let orderer = RedisOrderer::start(
                servers,
                config.redis_timeout,
                config.retention().max_events,
                Arc::clone(&store),
                Arc::clone(&events) as Arc<dyn EventSink>,
                // The link's thread publishes other nodes' events through a ring of
                // its own, the upkeep's (rooms catching up) through another.
                {
                    let events = Arc::clone(&events);
                    Box::new(move || events.attach_bridge(0))
                },
                Arc::clone(&clock),
            )
            .context("REDIS_URL")?;
            // Longer than an orderer that lives takes between its two calls: the
            // store's wait and statement, and both Redis calls.
            let stale_after = config.db_pool_wait
                + config.db_statement_timeout
                + 2 * config.redis_timeout
                + std::time::Duration::from_secs(1);
            orderer
                .start_upkeep(
                    Arc::clone(&presence),
                    config.presence_ttl,
                    stale_after,
                    Box::new(move || events.attach_bridge(1)),
                )
                .context("starting the Redis upkeep")?;
            tracing::info!("rooms: ordered through Redis");
            redis = Some(orderer.redis());
            peers = Some(orderer.peers());
            rooms_slot = Some(orderer.rooms_slot());
            Box::new(orderer)
        }
        None => Box::new(LocalOrderer),
    };
    let mut data = DataLayer::over(store, orderer, config.retention(), clock);
    data.presence = presence;
    data.redis = redis;
    data.peers = peers;
    if let Some(slot) = rooms_slot {
        let _ = slot.set(Arc::downgrade(&data.rooms));
    }
    data.read_your_writes = config.read_your_writes();
    Ok(data)
}

/// Before serving on PostgreSQL: the schema migrated (`--migrate`) or checked, the demo
/// data seeded when `STREAMHUB_DEMO_DATA` asks for it. A schema this release cannot run
/// on stops the start, saying why; PostgreSQL unreachable does not (the node starts,
/// `/readyz` answers 503 with the reason, and the store recovers by itself once it is
/// back), except when migrating or seeding, which need it.
fn prepare_postgres(config: &Config, pg: &PgSettings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the PostgreSQL check's runtime")?;
    rt.block_on(async {
        let mut client = match crate::store::pg::connect(&pg.url).await {
            Ok(client) => client,
            Err(e) if config.migrate || config.demo_size() != DemoSize::Off => {
                return Err(anyhow::Error::new(e).context("preparing the database (--migrate or the demo data)"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "store: PostgreSQL is unreachable at start; serving what the caches hold until it is back");
                return Ok(());
            }
        };
        if let DemoSize::Users(users) = config.demo_size() {
            // Asked for on purpose (the default is off with PostgreSQL): migrates too.
            let report = seed::seed(&mut client, users).await?;
            tracing::info!(%report, "store: PostgreSQL demo data");
        } else if config.migrate {
            let report = migrate::migrate(&mut client).await?;
            tracing::info!(%report, "store: PostgreSQL schema migrated");
        } else {
            let state = migrate::check(&client).await?;
            tracing::info!(?state, "store: PostgreSQL schema checked");
        }
        Ok(())
    })
}

/// Starts a node for `config` on the calling process: binds the listeners, loads the
/// keys, TLS, the schema, the manifest and the store (the demo data, its room logs'
/// ages measured on `clock`), then runs one thread per shard. Logs `listening` once
/// the shards run.
pub fn start(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let (backend, why) = crate::io_backend::select(config.io)?;
    let shards = config.shard_count();
    match backend {
        // Each shard's ring has its own file table, bounded by RLIMIT_NOFILE: the
        // connections one process can hold grow with the shards, not the limit.
        Backend::Uring => tracing::info!(
            backend = backend.name(),
            reason = %why,
            shards,
            connections = u64::from(crate::uring::table_size()) * shards as u64,
            "io backend selected"
        ),
        Backend::Epoll => tracing::info!(
            backend = backend.name(),
            reason = %why,
            "io backend selected"
        ),
    }

    let listeners = crate::listener::bind_all(config.listen, shards)
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listeners[0]
        .local_addr()
        .context("reading the bound address")?;
    let verify_key = VerifyKey::from_settings(
        config.jwt_secret.as_deref(),
        config.jwt_public_key_file.as_deref(),
    )?;
    log_demo_tokens(&verify_key)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
        _ => None,
    };
    let schema = Arc::new(crate::schema::build().context("building the API schema")?);
    let manifest = match &config.persisted_queries {
        Some(path) => load_manifest(path, &config, &schema)?,
        None => Vec::new(),
    };
    let persisted = Registry::new(&manifest, config.document_registry_bytes);
    // With Redis, two bridge rings: the link's thread and the upkeep's.
    let bridges = if config.redis_url.is_some() { 2 } else { 0 };
    let events = Arc::new(Fanout::new(shards, bridges));
    let data = data_layer(&config, clock, events.clone())?;
    let domain = Arc::new(Domain::new(schema, data, events.clone()));
    let node = Arc::new(Node::new(
        config, backend, shards, verify_key, tls, domain, persisted, events,
    ));

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (done_tx, done) = mpsc::channel::<usize>(shards);
    let mut threads = Vec::with_capacity(shards);
    for (id, listener) in listeners.into_iter().enumerate() {
        let node = Arc::clone(&node);
        let done = done_tx.clone();
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || crate::shard::run(id, node, listener, core, done))
            .context("spawning a shard thread")?;
        threads.push(handle);
    }
    tracing::info!(
        addr = %addr,
        shards,
        pinned = !cores.is_empty(),
        tls = node.tls.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    Ok(Running {
        addr,
        node,
        threads,
        done,
    })
}

/// Reads, checks and prepares the persisted-query manifest, so a bad one stops the
/// start (or, on SIGHUP, is refused) with its reason instead of failing requests later.
fn load_manifest(
    path: &Path,
    config: &Config,
    schema: &graphql_exec::schema::Schema,
) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the manifest {}", path.display()))?;
    let entries = graphql_exec::persisted::parse_manifest(&text)
        .with_context(|| format!("reading the manifest {}", path.display()))?;
    let limits = config.graphql_limits();
    for (id, body) in &entries {
        graphql_exec::persisted::prepare(schema, body, &limits).map_err(|e| {
            anyhow::anyhow!(
                "the manifest {} has an operation `{id}` that cannot run: {e:?}",
                path.display()
            )
        })?;
    }
    tracing::info!(operations = entries.len(), path = %path.display(), "persisted-query manifest loaded");
    Ok(entries)
}

/// On SIGHUP: loads the manifest again and puts it in place of the old one on every
/// shard; a manifest that cannot be loaded leaves the old one serving, and says why.
fn reload_manifest(node: &Node) {
    let Some(path) = &node.config.persisted_queries else {
        tracing::info!("SIGHUP: no manifest is configured (STREAMHUB_PERSISTED_QUERIES)");
        return;
    };
    match load_manifest(path, &node.config, &node.domain.schema) {
        Ok(entries) => {
            node.persisted.replace_manifest(&entries);
            tracing::info!(
                operations = entries.len(),
                "SIGHUP: the new manifest serves on every shard"
            );
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "SIGHUP: the new manifest was refused; the previous one keeps serving"
        ),
    }
}

/// With a secret made for this process, logs a ready token for each demo user, so the
/// demo works at once while nothing is open by default.
fn log_demo_tokens(key: &VerifyKey) -> anyhow::Result<()> {
    let Some(signer) = &key.demo_signer else {
        return Ok(());
    };
    tracing::warn!(
        "no STREAMHUB_JWT_SECRET or STREAMHUB_JWT_PUBLIC_KEY_FILE: tokens are verified with a random secret made for this process"
    );
    for (id, login, _, admin) in crate::store::memory::demo::NAMED {
        let roles: Vec<String> = if admin { vec!["admin".into()] } else { vec![] };
        let token = crate::token::sign_with(
            key.algorithm,
            signer,
            id,
            login,
            &roles,
            std::time::Duration::from_secs(24 * 3600),
        )?;
        tracing::info!(user_id = id, login, roles = ?roles, token = %token, "demo token, valid 24 h");
    }
    Ok(())
}

/// The signals that start and force shutdown, and the one that reloads the manifest.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// How the shutdown sequence ended.
enum Outcome {
    /// Every shard finished after the listeners closed.
    Clean,
    /// A second signal arrived: leave now.
    Forced(&'static str),
    /// A shard ended on its own before any signal.
    ShardExited,
}

async fn shutdown_sequence(
    node: &Node,
    signals: Signals,
    done: &mut mpsc::Receiver<usize>,
    shards: usize,
) -> Outcome {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    let first = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => reload_manifest(node),
            _ = done.recv() => return Outcome::ShardExited,
        }
    };
    let cfg = &node.config;
    tracing::info!(
        signal = first,
        drain_delay_ms = u64::try_from(cfg.drain_delay.as_millis()).unwrap_or(u64::MAX),
        "draining: readiness now answers 503"
    );
    node.advance(Phase::Draining);
    tokio::select! {
        () = tokio::time::sleep(cfg.drain_delay) => {}
        _ = term.recv() => return Outcome::Forced("SIGTERM"),
        _ = int.recv() => return Outcome::Forced("SIGINT"),
        _ = done.recv() => return Outcome::ShardExited,
    }
    tracing::info!(
        grace_ms = u64::try_from(cfg.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
        "closing: listeners closed, connections close after their current response"
    );
    node.advance(Phase::Closing);
    let mut finished = 0;
    while finished < shards {
        tokio::select! {
            exited = done.recv() => match exited {
                Some(_) => finished += 1,
                None => break,
            },
            _ = term.recv() => return Outcome::Forced("SIGTERM"),
            _ = int.recv() => return Outcome::Forced("SIGINT"),
        }
    }
    Outcome::Clean
}
