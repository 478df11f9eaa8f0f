//! The one place that reads flags and the environment.
//!
//! Every setting is a flag and a `STREAMHUB_*` environment variable (clap's `env`
//! feature). Values are parsed into their final types here (durations, sizes, CIDR
//! lists), so the rest of the server receives a typed [`Config`] and never reads the
//! environment itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::limits::rate::{parse_rate, Rate};

/// The command line of the `streamhub` binary.
#[derive(Debug, Parser)]
#[command(
    name = "streamhub",
    version,
    about = "StreamHub: the API edge for live-streaming platforms (GraphQL over HTTP, real-time over WebSocket)",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, `streamhub` runs `serve`. Every flag can also be set by the environment variable shown beside it."
)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `serve` when it runs as the default command.
    #[command(flatten)]
    pub serve: Config,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<Config>),
    /// Print a signed JWT for a user, with the key the server is configured with.
    Token(TokenArgs),
    /// Apply the PostgreSQL schema (the migrations this release embeds) and exit.
    Migrate(MigrateArgs),
    /// Load the demo data into PostgreSQL (migrating the schema first) and exit; a
    /// database that has it already is left as it is.
    Seed(SeedArgs),
}

impl Cli {
    /// The command to run, with `serve` standing in for a missing subcommand.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

/// Which IO backend the shards run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoBackend {
    /// Probe io_uring and fall back to epoll, logging which runs and why.
    Auto,
    /// io_uring; refused with a clear error until that backend is built.
    Uring,
    /// epoll through a tokio current-thread runtime per shard.
    Epoll,
}

/// Where the rate budgets hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RateScope {
    /// Per node: each node gives a client the whole budget.
    Node,
    /// Across the nodes sharing `REDIS_URL`: a client's budget is spent in Redis
    /// (the node's own buckets stand in while Redis cannot be reached).
    Cluster,
}

/// How the node's PostgreSQL connections are pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DbPools {
    /// One pool per shard (the pool size split between them): a shard's queries run on
    /// connections its own runtime drives.
    PerShard,
    /// One pool for the node: a connection is driven by whichever shard made it.
    Shared,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines (for a terminal).
    Pretty,
}

/// Everything `serve` is configured with.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct Config {
    /// Address to listen on (every shard binds it with SO_REUSEPORT; port 0 picks a free port).
    #[arg(long, env = "STREAMHUB_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Number of shards (pinned threads, each with its own listener and runtime); default one per core.
    #[arg(long, env = "STREAMHUB_SHARDS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: Option<u16>,

    /// IO backend.
    #[arg(long, env = "STREAMHUB_IO", value_enum, default_value_t = IoBackend::Auto)]
    pub io: IoBackend,

    /// Log filter (tracing's EnvFilter syntax, e.g. `info`, or `info,streamhub::access=off` to drop the access log).
    #[arg(
        long = "log",
        env = "STREAMHUB_LOG",
        default_value = "info",
        help_heading = "Logging"
    )]
    pub log_filter: String,

    /// Log format.
    #[arg(long, env = "STREAMHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Comma-separated CIDRs (or addresses) of the proxies whose X-Forwarded-For is believed, e.g. the ALB's subnets.
    #[arg(long, env = "STREAMHUB_TRUSTED_PROXIES", value_parser = parse_trusted_proxies, default_value = "", help_heading = "HTTP")]
    pub trusted_proxies: TrustedProxies,

    /// Comma-separated origins (`https://app.example.com`) whose pages may call the API (CORS), with credentials; `*` lets any other origin read too, without credentials. Empty: no CORS headers at all.
    #[arg(long, env = "STREAMHUB_CORS_ORIGINS", value_parser = crate::http::cors::parse_origins, default_value = "", help_heading = "HTTP")]
    pub cors_origins: crate::http::cors::CorsOrigins,

    /// Compress responses with br or gzip, as the client's Accept-Encoding prefers.
    #[arg(long, env = "STREAMHUB_COMPRESS", default_value_t = true, action = clap::ArgAction::Set, help_heading = "HTTP")]
    pub compress: bool,

    /// Smallest response body that is compressed.
    #[arg(long, env = "STREAMHUB_COMPRESS_MIN_BYTES", value_parser = parse_size, default_value = "1KiB", help_heading = "HTTP")]
    pub compress_min_bytes: usize,

    /// How long an idle keep-alive connection is kept open; keep it above the ALB's idle timeout (60 s).
    #[arg(long, env = "STREAMHUB_KEEPALIVE_TIMEOUT", value_parser = parse_duration, default_value = "75s", help_heading = "HTTP")]
    pub keepalive_timeout: Duration,

    /// How long a client may take to send a whole request head once it has started one (slowloris guard).
    #[arg(long, env = "STREAMHUB_HEADER_TIMEOUT", value_parser = parse_duration, default_value = "10s", help_heading = "HTTP")]
    pub header_timeout: Duration,

    /// How long a request may take from its head to its response; past it the answer is 503 (for a query or mutation over graphql-transport-ws, an error with SERVICE_UNAVAILABLE).
    #[arg(long, env = "STREAMHUB_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "30s", help_heading = "HTTP")]
    pub request_timeout: Duration,

    /// Largest request head (request line and headers); past it the answer is 431.
    #[arg(long, env = "STREAMHUB_MAX_HEADER_BYTES", value_parser = parse_header_limit, default_value = "16KiB", help_heading = "Limits")]
    pub max_header_bytes: usize,

    /// Open connections allowed per client address, node-wide (split across shards); past it a connection's requests get 429. Trusted proxies are exempt. 0: no limit.
    #[arg(
        long,
        env = "STREAMHUB_MAX_CONNECTIONS_PER_IP",
        default_value_t = 1000,
        help_heading = "Limits"
    )]
    pub max_connections_per_ip: u32,

    /// Largest request body; past it the answer is 413.
    #[arg(long, env = "STREAMHUB_MAX_BODY_BYTES", value_parser = parse_size, default_value = "1MiB", help_heading = "Limits")]
    pub max_body_bytes: usize,

    /// After SIGTERM or SIGINT: how long to keep serving (with /readyz answering 503) before the listeners close.
    #[arg(long, env = "STREAMHUB_DRAIN_DELAY", value_parser = parse_duration, default_value = "10s", help_heading = "Shutdown")]
    pub drain_delay: Duration,

    /// HS256 secret tokens are verified with (at least 32 bytes). With neither this nor a public key, a random secret is made and demo tokens are logged.
    #[arg(
        long,
        env = "STREAMHUB_JWT_SECRET",
        hide_env_values = true,
        help_heading = "Auth",
        conflicts_with = "jwt_public_key_file"
    )]
    pub jwt_secret: Option<String>,

    /// PEM public key (RSA for RS256, EC P-256 for ES256) tokens are verified with.
    #[arg(long, env = "STREAMHUB_JWT_PUBLIC_KEY_FILE", help_heading = "Auth")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,

    /// Clock skew allowed on a token's `exp` and `nbf`.
    #[arg(long, env = "STREAMHUB_JWT_LEEWAY", value_parser = parse_duration, default_value = "30s", help_heading = "Auth")]
    pub jwt_leeway: Duration,

    /// PEM certificate chain: with STREAMHUB_TLS_KEY, terminate TLS 1.3 here (for deployments without an ALB).
    #[arg(
        long,
        env = "STREAMHUB_TLS_CERT",
        requires = "tls_key",
        help_heading = "TLS"
    )]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of the TLS certificate.
    #[arg(
        long,
        env = "STREAMHUB_TLS_KEY",
        requires = "tls_cert",
        help_heading = "TLS"
    )]
    pub tls_key: Option<std::path::PathBuf>,

    /// Demo data: `off`, `small`, `large` or a user count. Loaded into the embedded store
    /// (default `small`); with `DATABASE_URL` the default is `off` (`streamhub seed` loads
    /// it on purpose) and a size given here is seeded at start.
    #[arg(long, env = "STREAMHUB_DEMO_DATA", value_parser = crate::store::memory::demo::parse_size, help_heading = "Data")]
    pub demo_data: Option<crate::store::memory::demo::DemoSize>,

    /// PostgreSQL, the store of record (a `postgres://` URL or `key=value` settings);
    /// without it the node serves from the embedded memory store.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        help_heading = "Data"
    )]
    pub database_url: Option<String>,

    /// A streaming replica of `DATABASE_URL` that serves reads while it keeps up
    /// (writes, and a viewer's reads for a while after that viewer wrote, go to the
    /// primary); only with `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_REPLICA_URL",
        hide_env_values = true,
        requires = "database_url",
        help_heading = "Data"
    )]
    pub database_replica_url: Option<String>,

    /// With a replica: how long after a viewer wrote that viewer's reads go to the
    /// primary (read your own writes), and how long after a change the caches read it
    /// again from the primary.
    #[arg(long, env = "STREAMHUB_DB_READ_YOUR_WRITES", value_parser = parse_duration, default_value = "5s", help_heading = "Data")]
    pub db_read_your_writes: Duration,

    /// With a replica: how far behind the primary it may be; beyond it (or unreachable)
    /// reads go to the primary until it catches up.
    #[arg(long, env = "STREAMHUB_DB_REPLICA_MAX_LAG", value_parser = parse_duration, default_value = "1s", help_heading = "Data")]
    pub db_replica_max_lag: Duration,

    /// PostgreSQL pools: one per shard (`per-shard`, `STREAMHUB_DB_POOL_SIZE` split
    /// between them) or one for the node (`shared`).
    #[arg(long, env = "STREAMHUB_DB_POOLS", value_enum, default_value_t = DbPools::PerShard, help_heading = "Data")]
    pub db_pools: DbPools,

    /// Applies the embedded schema migrations before serving (`streamhub migrate`).
    #[arg(long, env = "STREAMHUB_MIGRATE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", help_heading = "Data")]
    pub migrate: bool,

    /// PostgreSQL connections the node keeps at most.
    #[arg(
        long,
        env = "STREAMHUB_DB_POOL_SIZE",
        default_value_t = 16,
        help_heading = "Data"
    )]
    pub db_pool_size: usize,

    /// How long a store call waits for a free PostgreSQL connection before it fails
    /// with `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "STREAMHUB_DB_POOL_WAIT", value_parser = parse_duration, default_value = "500ms", help_heading = "Data")]
    pub db_pool_wait: Duration,

    /// How long one PostgreSQL statement may run before it is cancelled.
    #[arg(long, env = "STREAMHUB_DB_STATEMENT_TIMEOUT", value_parser = parse_duration, default_value = "2s", help_heading = "Data")]
    pub db_statement_timeout: Duration,

    /// Redis, the engine between nodes (a `redis://` URL; with
    /// `STREAMHUB_REDIS_CLUSTER`, a Redis Cluster's seed nodes, comma-separated): room
    /// events are ordered there and reach every node that has members in the room.
    /// Only with `DATABASE_URL` (nodes on memory stores of their own would disagree).
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        requires = "database_url",
        help_heading = "Nodes"
    )]
    pub redis_url: Option<String>,

    /// Whether `REDIS_URL` is a Redis Cluster (commands routed by key slot; rooms on
    /// sharded pub/sub, each on the master of its slot).
    #[arg(long, env = "STREAMHUB_REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set, requires = "redis_url", help_heading = "Nodes")]
    pub redis_cluster: bool,

    /// How long a Redis call (ordering a room event, subscribing to a room) may take
    /// before it fails with `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "STREAMHUB_REDIS_TIMEOUT", value_parser = parse_duration, default_value = "500ms", help_heading = "Nodes")]
    pub redis_timeout: Duration,

    /// With Redis: how long a node's viewer counts count after it last reported them
    /// (it reports every third of this, at least every second); a node that stops
    /// counts for no longer.
    #[arg(long, env = "STREAMHUB_PRESENCE_TTL", value_parser = parse_duration, default_value = "15s", help_heading = "Nodes")]
    pub presence_ttl: Duration,

    /// Entries each shard's cache keeps per table (users, channels, streams, follows,
    /// rooms' recent messages...); 0 turns the caches off.
    #[arg(
        long,
        env = "STREAMHUB_CACHE_ENTRIES",
        default_value_t = 100_000,
        help_heading = "Data"
    )]
    pub cache_entries: usize,

    /// How long a cached row serves before it is read again (changes on this node drop
    /// it at once; this bounds what changes elsewhere can leave behind).
    #[arg(long, env = "STREAMHUB_CACHE_TTL", value_parser = parse_duration, default_value = "30s", help_heading = "Data")]
    pub cache_ttl: Duration,

    /// A persisted-query manifest loaded at start and again on SIGHUP: Apollo's format or a Relay id-to-text map.
    #[arg(long, env = "STREAMHUB_PERSISTED_QUERIES", help_heading = "GraphQL")]
    pub persisted_queries: Option<std::path::PathBuf>,

    /// Only persisted operations run: other text gets PERSISTED_QUERY_ID_REQUIRED and APQ registration is refused.
    #[arg(long, env = "STREAMHUB_TRUSTED_DOCUMENTS", default_value_t = false, action = clap::ArgAction::Set, help_heading = "GraphQL")]
    pub trusted_documents: bool,

    /// Prepared documents each shard keeps (least recently used leave first; manifest ones stay).
    #[arg(
        long,
        env = "STREAMHUB_PLAN_CACHE",
        default_value_t = 1000,
        help_heading = "GraphQL"
    )]
    pub plan_cache: usize,

    /// Bytes of registered document texts (APQ registrations and documents run as text) kept node-wide for every shard; least recently used leave first, the manifest is not counted.
    #[arg(long, env = "STREAMHUB_DOCUMENT_REGISTRY_BYTES", value_parser = parse_size, default_value = "16MiB", help_heading = "GraphQL")]
    pub document_registry_bytes: usize,

    /// Operations in one batched POST (a JSON array); 0 turns batching off.
    #[arg(
        long,
        env = "STREAMHUB_MAX_BATCH",
        default_value_t = 10,
        help_heading = "GraphQL"
    )]
    pub max_batch: usize,

    /// GraphQL operations (and, apart, operation-client pairs) given their own series in `/metrics`; the rest count as operation="other".
    #[arg(
        long,
        env = "STREAMHUB_METRICS_MAX_OPERATIONS",
        default_value_t = 500,
        help_heading = "GraphQL"
    )]
    pub metrics_max_operations: usize,

    /// Cap on the `max-age` of public GET responses (persisted queries whose cache hints allow it); 0 caches nothing publicly.
    #[arg(long, env = "STREAMHUB_PUBLIC_MAX_AGE", value_parser = parse_duration, default_value = "30s", help_heading = "GraphQL")]
    pub public_max_age: Duration,

    /// Deepest field nesting of an operation.
    #[arg(
        long,
        env = "STREAMHUB_MAX_DEPTH",
        default_value_t = 15,
        help_heading = "Limits"
    )]
    pub max_depth: usize,

    /// Most aliases in a document.
    #[arg(
        long,
        env = "STREAMHUB_MAX_ALIASES",
        default_value_t = 30,
        help_heading = "Limits"
    )]
    pub max_aliases: usize,

    /// Most root fields in an operation.
    #[arg(
        long,
        env = "STREAMHUB_MAX_ROOT_FIELDS",
        default_value_t = 20,
        help_heading = "Limits"
    )]
    pub max_root_fields: usize,

    /// Largest operation cost (every field 1, times the page sizes of the lists around it).
    #[arg(
        long,
        env = "STREAMHUB_MAX_COMPLEXITY",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    pub max_complexity: u64,

    /// GraphQL queries per user (or per address when anonymous), node-wide: `<count>/<period>` or `off`.
    #[arg(long, env = "STREAMHUB_RATE_QUERY", value_parser = parse_rate_setting, default_value = "200/1s", help_heading = "Rates")]
    pub rate_query: RateSetting,

    /// GraphQL mutations (other than chat) per user.
    #[arg(long, env = "STREAMHUB_RATE_MUTATION", value_parser = parse_rate_setting, default_value = "30/10s", help_heading = "Rates")]
    pub rate_mutation: RateSetting,

    /// Chat messages per user, by mutation or over the room protocol.
    #[arg(long, env = "STREAMHUB_RATE_CHAT", value_parser = parse_rate_setting, default_value = "20/30s", help_heading = "Rates")]
    pub rate_chat: RateSetting,

    /// WebSocket upgrades per user or address.
    #[arg(long, env = "STREAMHUB_RATE_WS_CONNECT", value_parser = parse_rate_setting, default_value = "20/10s", help_heading = "Rates")]
    pub rate_ws_connect: RateSetting,

    /// Where the rate budgets hold: `node` (each node gives a client the whole budget)
    /// or `cluster` (spent in Redis, across the nodes; requires `REDIS_URL`).
    #[arg(
        long,
        env = "STREAMHUB_RATE_SCOPE",
        value_enum,
        default_value = "node",
        requires_if("cluster", "redis_url"),
        help_heading = "Rates"
    )]
    pub rate_scope: RateScope,

    /// Mount `/ws/echo`, which echoes every WebSocket message (for conformance suites).
    #[arg(long, env = "STREAMHUB_WS_ECHO", default_value_t = false, action = clap::ArgAction::Set, help_heading = "WebSocket")]
    pub ws_echo: bool,

    /// Largest WebSocket message (fragmented messages included); past it the connection is closed with 1009.
    #[arg(long, env = "STREAMHUB_WS_MAX_MESSAGE_BYTES", value_parser = parse_size, default_value = "64KiB", help_heading = "WebSocket")]
    pub ws_max_message_bytes: usize,

    /// A WebSocket connection's send queue limit; a consumer past it is closed with 4008.
    #[arg(long, env = "STREAMHUB_WS_QUEUE_BYTES", value_parser = parse_size, default_value = "1MiB", help_heading = "WebSocket")]
    pub ws_queue_bytes: usize,

    /// Events of each room kept in memory for `since` recovery; an older gap answers `recovered:false`.
    #[arg(
        long,
        env = "STREAMHUB_HISTORY_EVENTS",
        default_value_t = 1000,
        help_heading = "WebSocket"
    )]
    pub history_events: u32,

    /// How long each room's events are kept for `since` recovery (and in the embedded
    /// chat log); an older gap answers `recovered:false`.
    #[arg(long, env = "STREAMHUB_HISTORY_AGE", value_parser = parse_duration, default_value = "1h", help_heading = "WebSocket")]
    pub history_age: Duration,

    /// How often the server pings each WebSocket connection.
    #[arg(long, env = "STREAMHUB_WS_PING_INTERVAL", value_parser = parse_duration, default_value = "25s", help_heading = "WebSocket")]
    pub ws_ping_interval: Duration,

    /// How long past a ping a silent connection is kept before it is closed.
    #[arg(long, env = "STREAMHUB_WS_PONG_TIMEOUT", value_parser = parse_duration, default_value = "10s", help_heading = "WebSocket")]
    pub ws_pong_timeout: Duration,

    /// GraphQL subscriptions one WebSocket connection may hold.
    #[arg(
        long,
        env = "STREAMHUB_WS_MAX_SUBSCRIPTIONS",
        default_value_t = 100,
        help_heading = "WebSocket"
    )]
    pub ws_max_subscriptions: usize,

    /// Comma-separated origins (`https://example.com`) browsers may open WebSockets from; empty: any. Others are closed with 1008.
    #[arg(
        long,
        env = "STREAMHUB_WS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        help_heading = "WebSocket"
    )]
    pub ws_allowed_origins: Vec<String>,

    /// After the listeners close: how long in-flight work may take before the process exits anyway.
    #[arg(long, env = "STREAMHUB_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "30s", help_heading = "Shutdown")]
    pub shutdown_grace: Duration,
}

impl Config {
    /// The GraphQL limits.
    pub fn graphql_limits(&self) -> graphql_exec::limits::Limits {
        graphql_exec::limits::Limits {
            depth: self.max_depth,
            aliases: self.max_aliases,
            root_fields: self.max_root_fields,
            complexity: self.max_complexity,
        }
    }

    /// How much of each room's history is kept.
    pub fn retention(&self) -> streamhub_pubsub::history::HistoryLimits {
        streamhub_pubsub::history::HistoryLimits {
            max_events: self.history_events as usize,
            max_age: Some(self.history_age),
        }
    }

    /// The demo data to load: the setting, else `small` on the embedded store and
    /// `off` with PostgreSQL (never seed a database unasked).
    pub fn demo_size(&self) -> crate::store::memory::demo::DemoSize {
        use crate::store::memory::demo::DemoSize;
        self.demo_data.unwrap_or(match self.database_url {
            Some(_) => DemoSize::Off,
            None => DemoSize::SMALL,
        })
    }

    /// PostgreSQL's settings, when `DATABASE_URL` is set.
    pub fn postgres(&self) -> Option<crate::store::pg::PgSettings> {
        self.database_url
            .as_ref()
            .map(|url| crate::store::pg::PgSettings {
                url: url.clone(),
                pool_size: self.db_pool_size.max(1),
                pools: match self.db_pools {
                    DbPools::PerShard => self.shard_count(),
                    DbPools::Shared => 1,
                },
                pool_wait: self.db_pool_wait,
                statement_timeout: self.db_statement_timeout,
                replica: self.database_replica_url.as_ref().map(|url| {
                    crate::store::pg::ReplicaSettings {
                        url: url.clone(),
                        max_lag: self.db_replica_max_lag,
                    }
                }),
            })
    }

    /// How long after a write its writer's reads, and a cache's misses on what it
    /// changed, go to the primary: `STREAMHUB_DB_READ_YOUR_WRITES` with a replica, else
    /// 0 (every read is the primary's).
    pub fn read_your_writes(&self) -> crate::store::Millis {
        match (&self.database_url, &self.database_replica_url) {
            (Some(_), Some(_)) => {
                i64::try_from(self.db_read_your_writes.as_millis()).unwrap_or(i64::MAX)
            }
            _ => 0,
        }
    }

    /// What each shard's cache keeps.
    pub fn cache_limits(&self) -> crate::store::cache::CacheLimits {
        crate::store::cache::CacheLimits {
            entries: self.cache_entries,
            ttl: i64::try_from(self.cache_ttl.as_millis()).unwrap_or(i64::MAX),
            primary_after_change: self.read_your_writes(),
        }
    }

    /// The rates by [`crate::limits::rate::Budget`] order.
    pub fn rates(&self) -> [Option<Rate>; 4] {
        [
            self.rate_query.0,
            self.rate_mutation.0,
            self.rate_chat.0,
            self.rate_ws_connect.0,
        ]
    }

    /// The number of shards to run: the setting, or one per available core.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Arguments of `streamhub token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// The user's login (`login` claim).
    #[arg(long)]
    pub login: String,
    /// A global role to grant (`roles` claim); repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// How long the token is valid.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub ttl: Duration,
    /// HS256 secret, the same one `serve` verifies with.
    #[arg(long, env = "STREAMHUB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM private key (RSA for RS256, EC P-256 for ES256) whose public half `serve` is given.
    #[arg(
        long,
        env = "STREAMHUB_JWT_PRIVATE_KEY_FILE",
        conflicts_with = "jwt_secret"
    )]
    pub jwt_private_key_file: Option<std::path::PathBuf>,
}

/// Arguments of `streamhub migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to migrate: a `postgres://` URL or `key=value` settings.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

/// Arguments of `streamhub seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// The PostgreSQL database to seed: a `postgres://` URL or `key=value` settings.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The demo data to load: `small`, `large` or a user count (`off` is refused: there
    /// would be nothing to seed). The same data as `serve --demo-data` of that size.
    #[arg(long, value_parser = parse_seed_size, default_value = "small", value_name = "SIZE")]
    pub demo_data: u32,
}

/// A demo size to seed: its user count (`off` is an error).
fn parse_seed_size(s: &str) -> Result<u32, String> {
    use crate::store::memory::demo::{parse_size, DemoSize};
    match parse_size(s)? {
        DemoSize::Users(n) => Ok(n),
        DemoSize::Off => Err(
            "`off` seeds nothing: use small, large or a user count from 3 to 5000000".to_owned(),
        ),
    }
}

/// A rate setting: a rate, or None for `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSetting(pub Option<Rate>);

fn parse_rate_setting(s: &str) -> Result<RateSetting, String> {
    parse_rate(s).map(RateSetting)
}

/// The proxies whose `X-Forwarded-For` header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_trusted_proxies(s: &str) -> Result<TrustedProxies, String> {
    let mut nets = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = match part.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => part
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("`{part}` is neither a CIDR nor an IP address"))?,
        };
        nets.push(net);
    }
    Ok(TrustedProxies(nets))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 75s or 2m: {e}"))
}

/// Parses a size: plain bytes (`65536`) or a number with a unit (`64KiB`, `1MiB`, `2KB`).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 65536 or 64KiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit (use B, KB, KiB, MB, MiB, GB or GiB)"
            ))
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// A request line alone can take a kilobyte, so the header limit cannot go lower.
fn parse_header_limit(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n < 1024 {
        return Err(format!("`{s}` is below the smallest header limit, 1KiB"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64 KiB"), Ok(65536));
        assert_eq!(parse_size("2KB"), Ok(2000));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn header_limit_has_a_floor() {
        assert!(parse_header_limit("512").is_err());
        assert_eq!(parse_header_limit("8KiB"), Ok(8192));
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let t = parse_trusted_proxies("10.0.0.0/8, 192.168.1.7,::1").unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        // An IPv4 peer seen through a dual-stack socket.
        assert!(t.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["streamhub", "--listen", "127.0.0.1:0"]).unwrap();
        match cli.into_command() {
            Command::Serve(c) => {
                assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
                assert_eq!(c.keepalive_timeout, Duration::from_secs(75));
                assert_eq!(c.max_body_bytes, 1 << 20);
                assert!(c.cors_origins.is_empty());
                assert!(c.compress);
                assert_eq!(c.compress_min_bytes, 1024);
            }
            Command::Token(_) | Command::Migrate(_) | Command::Seed(_) => {
                panic!("expected serve")
            }
        }
    }

    #[test]
    fn migrate_takes_the_database_url() {
        let cli =
            Cli::try_parse_from(["streamhub", "migrate", "--database-url", "postgres://db/x"])
                .unwrap();
        match cli.into_command() {
            Command::Migrate(args) => assert_eq!(args.database_url, "postgres://db/x"),
            other => panic!("expected migrate, got {other:?}"),
        }
    }

    #[test]
    fn seed_takes_the_database_url_and_a_demo_size_but_not_off() {
        let seed = |args: &[&str]| {
            let line = ["streamhub", "seed", "--database-url", "postgres://db/x"];
            Cli::try_parse_from(line.iter().chain(args)).map(Cli::into_command)
        };
        match seed(&[]).unwrap() {
            Command::Seed(args) => {
                assert_eq!(args.database_url, "postgres://db/x");
                assert_eq!(args.demo_data, 200, "small by default");
            }
            other => panic!("expected seed, got {other:?}"),
        }
        for (size, users) in [("large", 100_000), ("1000", 1000)] {
            match seed(&["--demo-data", size]).unwrap() {
                Command::Seed(args) => assert_eq!(args.demo_data, users),
                other => panic!("expected seed, got {other:?}"),
            }
        }
        let err = seed(&["--demo-data", "off"]).unwrap_err().to_string();
        assert!(err.contains("`off` seeds nothing"), "{err}");
        assert!(seed(&["--demo-data", "2"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
