//! [`PgStore`]: the [`Store`] over PostgreSQL, with the answers of the memory store for
//! the same commands (`store::memory`, the reference) on the schema of
//! `server/migrations/` (whose comments name the index each query here uses).
//!
//! Every call checks a connection out of a `deadpool-postgres` pool (made lazily, so a
//! node starts while PostgreSQL is down), runs prepared statements (cached per
//! connection) and hands the connection back. Loads by many ids are one `= ANY($1)`
//! query each, put back in the order asked; follow lists are keyset pages on
//! `follows.key`; each command is one transaction. Every failure of PostgreSQL (no
//! free connection within the pool wait, no connection within the connect timeout, a
//! statement past its `statement_timeout`, a server shutting down, a call past its
//! deadline) is [`StoreError::Unavailable`]; a unique violation where the memory store
//! answers a conflict is [`StoreError::Conflict`]; a value PostgreSQL cannot take (a
//! NUL character in text: [`super::REFUSED_INPUT`]), which the memory store would have
//! taken, is [`StoreError::Invalid`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, Pool, PoolError, Runtime, TimeoutType};
use streamhub_pubsub::{Author, Chat, ChatEvent, Event};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use super::breaker::Breaker;
use super::chat::ChatWriter;
use super::replica::Replica;
use super::{describe, refused_input, Chain, ConnectError, PgSettings, CONNECT_TIMEOUT};
use crate::store::{
    Applied, Category, Change, Channel, Clock, Command, Found, KeyPage, Live, Membership, Message,
    Millis, ReplicaStatus, Store, StoreError, StoreFuture, Stream, Tail, User,
};

/// A call's time beyond its pool wait, connect timeout and statement timeout, before it
/// fails as unavailable (a connection whose peer vanished answers nothing, ever).
const CALL_SLACK: Duration = Duration::from_secs(1);

/// How many times `EnsureUser` runs again after a unique violation (another node made
/// the same user, or took the same login, at the same moment).
const ENSURE_USER_TRIES: usize = 3;

/// The transaction-scoped advisory lock under which `StartStream` numbers a new stream
/// ("sHSt" in ASCII; the migrations' lock is "sHub").
const STREAM_IDS_LOCK: i64 = 0x7348_5374;

/// The SQL of the store's reads that the indexes serve, by the method that runs it:
/// what the plan test (`tests/pg_store.rs`) EXPLAINs. (`categories` reads a small table
/// whole; `search` scans users, channels and categories by design.)
pub const READS: &[(&str, &str)] = &[
    ("users", USERS),
    ("user_by_login", USER_BY_LOGIN),
    ("user_and_channel_by_login", USER_AND_CHANNEL_BY_LOGIN),
    ("channels", CHANNELS),
    ("streams", STREAMS),
    ("live", LIVE),
    ("follows", FOLLOWS),
    ("followers", FOLLOWERS),
    ("followers_with_users", FOLLOWERS_WITH_USERS),
    ("following", FOLLOWING),
    ("following_with_channels", FOLLOWING_WITH_CHANNELS),
    ("messages", MESSAGES),
    ("message", MESSAGE),
    ("membership", MEMBERSHIP),
    ("tail", TAIL),
];

const USERS: &str = "SELECT id, login, display_name, bio, admin, created_at, channel_id \
     FROM users WHERE id = ANY($1)";

const USER_BY_LOGIN: &str = "SELECT id, login, display_name, bio, admin, created_at, \
     channel_id FROM users WHERE lower(login COLLATE \"C\") = $1";

const CHANNELS: &str = "SELECT c.id, c.owner_id, c.login, c.title, c.language, c.tags, \
     c.category_id, c.stream_id, c.follower_count, \
     ARRAY(SELECT m.user_id FROM moderators m WHERE m.channel_id = c.id ORDER BY m.user_id) \
     FROM channels c WHERE c.id = ANY($1)";

/// [`USER_BY_LOGIN`] and the user's channel ([`CHANNELS`]' columns from the 8th).
const USER_AND_CHANNEL_BY_LOGIN: &str = "SELECT u.id, u.login, u.display_name, u.bio, \
     u.admin, u.created_at, u.channel_id, c.id, c.owner_id, c.login, c.title, c.language, \
     c.tags, c.category_id, c.stream_id, c.follower_count, \
     ARRAY(SELECT m.user_id FROM moderators m WHERE m.channel_id = c.id ORDER BY m.user_id) \
     FROM users u LEFT JOIN channels c ON c.id = u.channel_id \
     WHERE lower(u.login COLLATE \"C\") = $1";

const STREAMS: &str = "SELECT id, channel_id, title, category_id, language, started_at \
     FROM streams WHERE id = ANY($1)";

const CATEGORIES: &str = "SELECT id, slug, name FROM categories ORDER BY id";

const LIVE: &str = "SELECT id, login, stream_id, category_id, language \
     FROM channels WHERE stream_id IS NOT NULL";

const FOLLOWS: &str = "SELECT channel_id FROM follows WHERE user_id = $1 AND channel_id = ANY($2)";

const FOLLOWERS: &str = "SELECT c.follower_count::bigint, f.key, f.user_id FROM channels c \
     LEFT JOIN LATERAL (SELECT key, user_id FROM follows \
         WHERE channel_id = c.id AND key < $2 ORDER BY key DESC LIMIT $3) f ON true \
     WHERE c.id = $1 ORDER BY f.key DESC NULLS LAST";

/// [`FOLLOWERS`] and the users of the first `$4` follows ([`USERS`]' columns from the 4th).
const FOLLOWERS_WITH_USERS: &str = "SELECT c.follower_count::bigint, f.key, f.user_id, \
     u.id, u.login, u.display_name, u.bio, u.admin, u.created_at, u.channel_id \
     FROM channels c \
     LEFT JOIN LATERAL (SELECT key, user_id, row_number() OVER (ORDER BY key DESC) AS n \
         FROM follows WHERE channel_id = c.id AND key < $2 ORDER BY key DESC LIMIT $3) f ON true \
     LEFT JOIN users u ON u.id = f.user_id AND f.n <= $4 \
     WHERE c.id = $1 ORDER BY f.key DESC NULLS LAST";

const FOLLOWING: &str = "SELECT t.total, f.key, f.channel_id FROM users u \
     CROSS JOIN LATERAL (SELECT count(*) AS total FROM follows WHERE user_id = u.id) t \
     LEFT JOIN LATERAL (SELECT key, channel_id FROM follows \
         WHERE user_id = u.id AND key < $2 ORDER BY key DESC LIMIT $3) f ON true \
     WHERE u.id = $1 ORDER BY f.key DESC NULLS LAST";

/// [`FOLLOWING`] and the channels of the first `$4` follows ([`CHANNELS`]' columns
/// from the 4th).
const FOLLOWING_WITH_CHANNELS: &str = "SELECT t.total, f.key, f.channel_id, c.id, \
     c.owner_id, c.login, c.title, c.language, c.tags, c.category_id, c.stream_id, \
     c.follower_count, \
     ARRAY(SELECT m.user_id FROM moderators m WHERE m.channel_id = c.id ORDER BY m.user_id) \
     FROM users u \
     CROSS JOIN LATERAL (SELECT count(*) AS total FROM follows WHERE user_id = u.id) t \
     LEFT JOIN LATERAL (SELECT key, channel_id, row_number() OVER (ORDER BY key DESC) AS n \
         FROM follows WHERE user_id = u.id AND key < $2 ORDER BY key DESC LIMIT $3) f ON true \
     LEFT JOIN channels c ON c.id = f.channel_id AND f.n <= $4 \
     WHERE u.id = $1 ORDER BY f.key DESC NULLS LAST";

const MESSAGES: &str = "SELECT e.seq, e.author_id, e.author_login, e.author_display_name, \
     e.body, e.sent_at FROM channels c \
     LEFT JOIN LATERAL (SELECT seq, author_id, author_login, author_display_name, body, \
         sent_at FROM chat_events \
         WHERE channel_id = c.id AND seq < $2 AND kind = 'message' AND NOT deleted \
         ORDER BY seq DESC LIMIT $3) e ON true \
     WHERE c.id = $1 ORDER BY e.seq";

const MESSAGE: &str = "SELECT seq, author_id, author_login, author_display_name, body, \
     sent_at FROM chat_events \
     WHERE channel_id = $1 AND seq = $2 AND kind = 'message' AND NOT deleted";

const MEMBERSHIP: &str = "SELECT c.owner_id, \
     EXISTS (SELECT 1 FROM moderators m WHERE m.channel_id = c.id AND m.user_id = $2), \
     b.user_id IS NOT NULL, b.until FROM channels c \
     LEFT JOIN bans b ON b.channel_id = c.id AND b.user_id = $2 \
         AND (b.until IS NULL OR b.until > $3) \
     WHERE c.id = $1";

const SEARCH: &str = "SELECT kind, id FROM ( \
     (SELECT 1 AS kind, created_at AS place, id FROM users \
         WHERE strpos(lower(login), $1) > 0 ORDER BY created_at, id LIMIT $2) \
     UNION ALL \
     (SELECT 2, u.created_at, c.id FROM channels c JOIN users u ON u.id = c.owner_id \
         WHERE strpos(lower(c.title), $1) > 0 ORDER BY u.created_at, c.id LIMIT $2) \
     UNION ALL \
     (SELECT 3, 0, id FROM categories \
         WHERE strpos(lower(name), $1) > 0 ORDER BY id LIMIT $2)) found \
     ORDER BY kind, place, id LIMIT $2";

const UNRECORD: &str = "DELETE FROM chat_events WHERE channel_id = $1 AND seq = $2";

const TAIL: &str = "SELECT l.last_seq, e.seq, e.kind, e.author_id, e.author_login, \
     e.author_display_name, e.body, e.sent_at, e.target_seq, e.target_user_id, e.until \
     FROM channels c \
     CROSS JOIN LATERAL (SELECT coalesce(max(seq), 0) AS last_seq FROM chat_events \
         WHERE channel_id = c.id) l \
     LEFT JOIN LATERAL (SELECT seq, kind, author_id, author_login, author_display_name, \
         body, sent_at, target_seq, target_user_id, until FROM chat_events \
         WHERE channel_id = c.id ORDER BY seq DESC LIMIT $2) e ON true \
     WHERE c.id = $1 ORDER BY e.seq";

const READY: &str = "SELECT 1";

// The commands' statements, each run inside the command's transaction.

const USER_AND_CHANNEL: &str = "SELECT EXISTS (SELECT 1 FROM channels WHERE id = $1), \
     EXISTS (SELECT 1 FROM users WHERE id = $2)";

const CATEGORY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1)";

const USER_ADMIN: &str = "SELECT admin FROM users WHERE id = $1 FOR UPDATE";

const SET_ADMIN: &str = "UPDATE users SET admin = $2 WHERE id = $1";

/// The lowercase logins that a free login made from `$1` could collide with: `$1`
/// itself and `$1` followed by digits, all between `$1` and `$1 || ':'` (':' follows
/// '9' in ASCII) under the "C" collation of `users_login_lower`.
const LOGINS_FROM: &str = "SELECT lower(login COLLATE \"C\") FROM users \
     WHERE lower(login COLLATE \"C\") >= $1 AND lower(login COLLATE \"C\") < $2";

const INSERT_USER: &str = "INSERT INTO users \
     (id, login, display_name, admin, created_at, channel_id) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const INSERT_CHANNEL: &str = "INSERT INTO channels (id, owner_id, login, title, language) \
     VALUES ($1, $2, $3, $4, 'en')";

const UPDATE_PROFILE: &str = "UPDATE users SET display_name = coalesce($2, display_name), \
     bio = CASE WHEN $3::text IS NULL THEN bio WHEN $3::text = '' THEN NULL ELSE $3::text END \
     WHERE id = $1";

const CHANNEL_FOR_UPDATE: &str = "SELECT title, language, category_id, stream_id, \
     stream_id IS NOT NULL FROM channels WHERE id = $1 FOR UPDATE";

const UPDATE_CHANNEL: &str = "UPDATE channels SET title = $2, language = $3, \
     tags = coalesce($4::text[], tags), category_id = $5 WHERE id = $1";

const LOCK_STREAM_IDS: &str = "SELECT pg_advisory_xact_lock($1)";

/// The next stream's number: streams are `st1`, `st2`, ... as the memory store numbers
/// them (one more than the highest, which is the count when none is missing).
const NEXT_STREAM: &str = "SELECT coalesce(max(substr(id, 3)::bigint), 0) + 1 FROM streams \
     WHERE id ~ '^st[1-9][0-9]{0,17}$'";

const INSERT_STREAM: &str = "INSERT INTO streams \
     (id, channel_id, title, category_id, language, started_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const GO_LIVE: &str =
    "UPDATE channels SET title = $2, category_id = $3, stream_id = $4 WHERE id = $1";

const END_STREAM: &str = "UPDATE streams SET ended_at = greatest($2, started_at) \
     WHERE id = $1 AND ended_at IS NULL";

const GO_OFFLINE: &str = "UPDATE channels SET stream_id = NULL WHERE id = $1";

const FOLLOW: &str = "INSERT INTO follows (user_id, channel_id) SELECT $1::text, $2::text \
     WHERE NOT EXISTS (SELECT 1 FROM follows WHERE user_id = $1 AND channel_id = $2) \
     ON CONFLICT DO NOTHING";

const UNFOLLOW: &str = "DELETE FROM follows WHERE user_id = $1 AND channel_id = $2";

const COUNT_FOLLOWER: &str =
    "UPDATE channels SET follower_count = follower_count + $2 WHERE id = $1";

const BAN: &str = "INSERT INTO bans (channel_id, user_id, until) VALUES ($1, $2, $3) \
     ON CONFLICT (channel_id, user_id) DO UPDATE SET until = EXCLUDED.until";

const UNBAN: &str = "DELETE FROM bans WHERE channel_id = $1 AND user_id = $2";

const ADD_MODERATOR: &str = "INSERT INTO moderators (channel_id, user_id) VALUES ($1, $2) \
     ON CONFLICT DO NOTHING";

const REMOVE_MODERATOR: &str = "DELETE FROM moderators WHERE channel_id = $1 AND user_id = $2";

/// The store over PostgreSQL.
///
/// A pool per shard, or one for the node ([`PgSettings::pools`]): a connection is made
/// by whichever runtime first needs it and driven by a task spawned there (a shard's
/// current-thread runtime, say), so it serves while that runtime runs; with a pool per
/// shard, a shard's queries never wait on another shard's runtime. With a read replica ([`PgSettings::replica`]) a second
/// pool, with its own breaker, serves the reads while [`Replica`]'s check finds it
/// within the lag allowed; a read it fails as unavailable runs again on the primary.
/// Writes, and what they read (`tail`, `ready`), always go to the primary, and so does
/// every read of [`Store::primary`]'s view.
pub struct PgStore {
    core: Arc<Core>,
    /// Whether reads may go to the replica (false: this is the primary-pinned view).
    replica_reads: bool,
    /// The primary-pinned view of the same store, when there is a replica.
    pinned: Option<Box<PgStore>>,
}

/// What a store and its primary-pinned view share.
struct Core {
    primary: Db,
    replica: Option<Replica>,
    /// Records room events, many per commit.
    chat: ChatWriter,
    clock: Arc<dyn Clock>,
}

/// One PostgreSQL server: its pools, its breaker and its limits.
pub(super) struct Db {
    /// One, or one per shard ([`PgSettings::pools`]; see [`Db::pool`]).
    pools: Box<[Pool]>,
    /// Spares PostgreSQL while it is down (see [`Breaker`]).
    breaker: Arc<Breaker>,
    /// The hosts and ports of the URL, for messages.
    at: String,
    /// How long a call waits for a free connection.
    pool_wait: Duration,
    /// How long making a connection may take.
    connect_limit: Duration,
    /// How long a whole call may take.
    call_limit: Duration,
    /// Calls admitted so far (a statement each, or a command's transaction).
    calls: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.core;
        f.debug_struct("PgStore")
            .field("at", &core.primary.at)
            .field(
                "pools",
                &core
                    .primary
                    .pools
                    .iter()
                    .map(Pool::status)
                    .collect::<Vec<_>>(),
            )
            .field("replica", &core.replica.as_ref().map(|r| &r.db.at))
            .field("replica_reads", &self.replica_reads)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store over the PostgreSQL of `settings.url` (and its replica, if any), its
    /// times (ban expiry, a stream's end) read from `clock`. Only parses the URLs and
    /// builds the pools (and starts the replica's check): connections are made when
    /// calls need them, each within the URL's `connect_timeout` or else
    /// [`CONNECT_TIMEOUT`], with `settings.statement_timeout` set on it; a call waits at
    /// most `settings.pool_wait` for a free one.
    pub fn new(settings: &PgSettings, clock: Arc<dyn Clock>) -> Result<PgStore, ConnectError> {
        let primary = Db::new(&settings.url, settings)?;
        let replica = match &settings.replica {
            Some(r) => Some(Replica::start(
                Db::new(&r.url, settings)?,
                &settings.url,
                r,
            )?),
            None => None,
        };
        let chat = ChatWriter::spawn(settings).map_err(|cause| ConnectError::Writer { cause })?;
        let core = Arc::new(Core {
            primary,
            replica,
            chat,
            clock,
        });
        let pinned = core.replica.is_some().then(|| {
            Box::new(PgStore {
                core: Arc::clone(&core),
                replica_reads: false,
                pinned: None,
            })
        });
        Ok(PgStore {
            core,
            replica_reads: true,
            pinned,
        })
    }

    /// Runs a read: on the replica while it serves (and again on the primary if the
    /// replica turns out unavailable), else on the primary.
    fn read<'a, T, F>(&'a self, work: impl Fn(&'a Db) -> F + Send + 'a) -> StoreFuture<'a, T>
    where
        T: Send + 'a,
        F: Future<Output = Result<T, StoreError>> + Send + 'a,
    {
        let primary = &self.core.primary;
        let replica = match &self.core.replica {
            Some(r) if self.replica_reads && r.serving() => &r.db,
            _ => return Box::pin(primary.call(work(primary))),
        };
        Box::pin(async move {
            match replica.call(work(replica)).await {
                Err(StoreError::Unavailable(why)) => {
                    tracing::debug!(
                        reason = why,
                        "a read failed on the replica: read again on the primary"
                    );
                    primary.call(work(primary)).await
                }
                answered => answered,
            }
        })
    }

    /// Runs a write (or what a write needs) on the primary.
    fn write<'a, T: Send + 'a>(
        &'a self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(self.core.primary.call(work))
    }
}

impl Db {
    /// The pool and breaker for the PostgreSQL at `url`, with `settings`' limits.
    fn new(url: &str, settings: &PgSettings) -> Result<Db, ConnectError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|cause| ConnectError::Url { cause })?;
        let connect_limit = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT);
        config.connect_timeout(connect_limit);
        let timeout = format!(
            "-c statement_timeout={}",
            settings.statement_timeout.as_millis()
        );
        let options = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {timeout}"),
            _ => timeout,
        };
        config.options(&options);
        let at = describe(&config);
        // The connect timeout bounds the socket's connect; the pool's create timeout
        // the startup and authentication after it, as `connect` does.
        let count = settings.pools.max(1);
        let pools = (0..count)
            .map(|_| {
                Pool::builder(Manager::new(config.clone(), NoTls))
                    .max_size(settings.pool_size.div_ceil(count))
                    .wait_timeout(Some(settings.pool_wait))
                    .create_timeout(Some(connect_limit))
                    .recycle_timeout(Some(connect_limit))
                    .runtime(Runtime::Tokio1)
                    .build()
            })
            .collect::<Result<_, _>>()
            .map_err(|cause| ConnectError::Pool { cause })?;
        Ok(Db {
            pools,
            breaker: Arc::new(Breaker::new()),
            at,
            pool_wait: settings.pool_wait,
            connect_limit,
            call_limit: settings.pool_wait
                + connect_limit
                + settings.statement_timeout
                + CALL_SLACK,
            calls: AtomicU64::new(0),
        })
    }

    /// The hosts and ports of its URL.
    pub(super) fn at(&self) -> &str {
        &self.at
    }

    /// Why its circuit is open, if it is.
    pub(super) fn circuit_open(&self) -> Option<String> {
        self.breaker.is_open()
    }

    /// Runs a call within its deadline, through the breaker: refused at once while it
    /// is open; a call that PostgreSQL answered (whatever the answer) closes it, one
    /// that could not reach it counts towards opening it.
    async fn call<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if let Err(open) = self.breaker.admit() {
            return Err(StoreError::Unavailable(open.to_string()));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = tokio::time::timeout(self.call_limit, work)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "PostgreSQL at {} did not answer within {}",
                    self.at,
                    humantime::format_duration(self.call_limit)
                )))
            });
        match &result {
            Err(StoreError::Unavailable(why)) => self.breaker.failed(why),
            _ => self.breaker.succeeded(),
        }
        result
    }

    /// This thread's pool: with one per shard, each thread that calls the store takes
    /// the next one the first time, so a shard's connections are made, and driven, by
    /// its own runtime (a connection's task runs where it was made).
    fn pool(&self) -> &Pool {
        if self.pools.len() == 1 {
            return &self.pools[0];
        }
        thread_local! {
            static POOL: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let at = POOL.with(|p| match p.get() {
            Some(at) => at,
            None => {
                let at = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                p.set(Some(at));
                at
            }
        });
        &self.pools[at % self.pools.len()]
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool().get().await.map_err(|e| {
            StoreError::Unavailable(match e {
                PoolError::Timeout(TimeoutType::Wait) => format!(
                    "PostgreSQL at {}: no free connection within {}",
                    self.at,
                    humantime::format_duration(self.pool_wait)
                ),
                PoolError::Timeout(_) => format!(
                    "PostgreSQL at {} did not accept a connection within {}",
                    self.at,
                    humantime::format_duration(self.connect_limit)
                ),
                PoolError::Backend(cause) => {
                    format!(
                        "PostgreSQL at {} cannot be reached: {}",
                        self.at,
                        Chain(&cause)
                    )
                }
                other => format!("PostgreSQL at {}: {other}", self.at),
            })
        })
    }
}

impl PgStore {
    /// Runs `command` in a transaction of its own.
    async fn apply_once(&self, command: &Command) -> Result<Applied, StoreError> {
        let mut client = self.core.primary.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let applied = self.run(&tx, command).await?;
        tx.commit().await.map_err(failed)?;
        Ok(applied)
    }

    async fn run(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        command: &Command,
    ) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let changes = &mut applied.changes;
        match command {
            Command::EnsureUser {
                id,
                login,
                admin,
                now,
            } => match opt(tx, USER_ADMIN, &[id]).await? {
                Some(row) => {
                    if col::<bool>(&row, 0)? != *admin {
                        exec(tx, SET_ADMIN, &[id, admin]).await?;
                        changes.push(Change::User(id.clone()));
                    }
                }
                None => {
                    let free = free_login(tx, login).await?;
                    let channel_id = format!("ch_{id}");
                    let title = format!("{login}'s channel");
                    let display_name: &str = login;
                    exec(
                        tx,
                        INSERT_USER,
                        &[id, &free, &display_name, admin, now, &channel_id],
                    )
                    .await?;
                    exec(tx, INSERT_CHANNEL, &[&channel_id, id, &free, &title]).await?;
                    tracing::info!(user = &**id, login = free, "user created from a token");
                    changes.push(Change::User(id.clone()));
                    changes.push(Change::Channel(channel_id.into()));
                    applied.created = Some(id.clone());
                }
            },
            Command::UpdateProfile {
                user_id,
                display_name,
                bio,
            } => {
                if exec(tx, UPDATE_PROFILE, &[user_id, display_name, bio]).await? == 0 {
                    return Err(no_user(user_id));
                }
                changes.push(Change::User(user_id.clone()));
            }
            Command::UpdateChannel {
                channel_id,
                title,
                language,
                tags,
                category_id,
            } => {
                let row = opt(tx, CHANNEL_FOR_UPDATE, &[channel_id])
                    .await?
                    .ok_or_else(|| no_channel(channel_id))?;
                let (old_title, old_language): (&str, &str) = (col(&row, 0)?, col(&row, 1)?);
                let old_category: Option<&str> = col(&row, 2)?;
                let live: bool = col(&row, 4)?;
                if let Some(Some(k)) = category_id {
                    category_exists(tx, k).await?;
                }
                let new_title = title.as_deref().unwrap_or(old_title);
                let new_language = language.as_deref().unwrap_or(old_language);
                let new_category = match category_id {
                    Some(k) => k.as_deref(),
                    None => old_category,
                };
                let category_moved = new_category != old_category;
                let visible = new_title != old_title || category_moved;
                let listed = new_language != old_language || category_moved;
                let tags: Option<Vec<&str>> =
                    tags.as_ref().map(|t| t.iter().map(|s| &**s).collect());
                exec(
                    tx,
                    UPDATE_CHANNEL,
                    &[channel_id, &new_title, &new_language, &tags, &new_category],
                )
                .await?;
                changes.push(Change::Channel(channel_id.clone()));
                if listed && live {
                    changes.push(Change::Live);
                }
                if visible {
                    changes.push(Change::Stream(channel_id.clone()));
                }
            }
            Command::StartStream {
                channel_id,
                title,
                category_id,
                now,
            } => {
                let row = opt(tx, CHANNEL_FOR_UPDATE, &[channel_id])
                    .await?
                    .ok_or_else(|| no_channel(channel_id))?;
                let language: &str = col(&row, 1)?;
                if let Some(k) = category_id {
                    category_exists(tx, k).await?;
                }
                if col::<bool>(&row, 4)? {
                    return Err(already_live());
                }
                exec(tx, LOCK_STREAM_IDS, &[&STREAM_IDS_LOCK]).await?;
                let next: i64 = col(&one(tx, NEXT_STREAM, &[]).await?, 0)?;
                let stream_id = format!("st{next}");
                let started = exec(
                    tx,
                    INSERT_STREAM,
                    &[&stream_id, channel_id, title, category_id, &language, now],
                )
                .await;
                started.map_err(|e| match e {
                    StoreError::Conflict(_) => already_live(),
                    other => other,
                })?;
                exec(tx, GO_LIVE, &[channel_id, title, category_id, &stream_id]).await?;
                applied.created = Some(stream_id.into());
                changes.push(Change::Channel(channel_id.clone()));
                changes.push(Change::Live);
                changes.push(Change::Stream(channel_id.clone()));
            }
            Command::EndStream { channel_id } => {
                let row = opt(tx, CHANNEL_FOR_UPDATE, &[channel_id])
                    .await?
                    .ok_or_else(|| no_channel(channel_id))?;
                if let Some(stream_id) = col::<Option<&str>>(&row, 3)? {
                    exec(tx, END_STREAM, &[&stream_id, &self.core.clock.now()]).await?;
                    exec(tx, GO_OFFLINE, &[channel_id]).await?;
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Live);
                    changes.push(Change::Stream(channel_id.clone()));
                }
            }
            Command::Follow {
                user_id,
                channel_id,
            } => {
                user_and_channel(tx, user_id, channel_id).await?;
                if exec(tx, FOLLOW, &[user_id, channel_id]).await? == 1 {
                    exec(tx, COUNT_FOLLOWER, &[channel_id, &1i32]).await?;
                    follow_changes(changes, user_id, channel_id);
                }
            }
            Command::Unfollow {
                user_id,
                channel_id,
            } => {
                user_and_channel(tx, user_id, channel_id).await?;
                if exec(tx, UNFOLLOW, &[user_id, channel_id]).await? == 1 {
                    exec(tx, COUNT_FOLLOWER, &[channel_id, &-1i32]).await?;
                    follow_changes(changes, user_id, channel_id);
                }
            }
            Command::Ban {
                channel_id,
                user_id,
                until,
            } => {
                user_and_channel(tx, user_id, channel_id).await?;
                exec(tx, BAN, &[channel_id, user_id, until]).await?;
                changes.push(membership(user_id, channel_id));
            }
            Command::Unban {
                channel_id,
                user_id,
            } => {
                user_and_channel(tx, user_id, channel_id).await?;
                if exec(tx, UNBAN, &[channel_id, user_id]).await? > 0 {
                    changes.push(membership(user_id, channel_id));
                }
            }
            Command::AddModerator {
                channel_id,
                user_id,
            }
            | Command::RemoveModerator {
                channel_id,
                user_id,
            } => {
                user_and_channel(tx, user_id, channel_id).await?;
                let sql = match command {
                    Command::AddModerator { .. } => ADD_MODERATOR,
                    _ => REMOVE_MODERATOR,
                };
                if exec(tx, sql, &[channel_id, user_id]).await? > 0 {
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(membership(user_id, channel_id));
                }
            }
        }
        Ok(applied)
    }
}

impl Store for PgStore {
    fn users<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<User>>> {
        self.read(move |db| async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let client = db.client().await?;
            let found = query(&client, USERS, &[&ids])
                .await?
                .iter()
                .map(|row| Ok((col::<&str>(row, 0)?.into(), user(row)?)))
                .collect::<Result<_, StoreError>>()?;
            Ok(in_order(ids, found))
        })
    }

    fn user_by_login<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<User>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let lower = login.to_ascii_lowercase();
            opt(&client, USER_BY_LOGIN, &[&lower])
                .await?
                .map(|row| user(&row))
                .transpose()
        })
    }

    fn user_and_channel_by_login<'a>(
        &'a self,
        login: &'a str,
    ) -> StoreFuture<'a, Option<(User, Option<Channel>)>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let lower = login.to_ascii_lowercase();
            let Some(row) = opt(&client, USER_AND_CHANNEL_BY_LOGIN, &[&lower]).await? else {
                return Ok(None);
            };
            let channel = match col::<Option<&str>>(&row, 7)? {
                Some(_) => Some(channel(&row, 7)?),
                None => None,
            };
            Ok(Some((user(&row)?, channel)))
        })
    }

    fn channels<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Channel>>> {
        self.read(move |db| async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let client = db.client().await?;
            let found = query(&client, CHANNELS, &[&ids])
                .await?
                .iter()
                .map(|row| {
                    let channel = channel(row, 0)?;
                    Ok((channel.id.clone(), channel))
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(in_order(ids, found))
        })
    }

    fn streams<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Stream>>> {
        self.read(move |db| async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let client = db.client().await?;
            let found = query(&client, STREAMS, &[&ids])
                .await?
                .iter()
                .map(|row| {
                    let stream = Stream {
                        id: col::<&str>(row, 0)?.into(),
                        channel_id: col::<&str>(row, 1)?.into(),
                        title: col::<&str>(row, 2)?.into(),
                        category_id: col::<Option<&str>>(row, 3)?.map(Into::into),
                        language: col::<&str>(row, 4)?.into(),
                        started_at: col(row, 5)?,
                    };
                    Ok((stream.id.clone(), stream))
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(in_order(ids, found))
        })
    }

    fn categories(&self) -> StoreFuture<'_, Vec<Category>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            query(&client, CATEGORIES, &[])
                .await?
                .iter()
                .map(|row| {
                    Ok(Category {
                        id: col::<&str>(row, 0)?.into(),
                        slug: col::<&str>(row, 1)?.into(),
                        name: col::<&str>(row, 2)?.into(),
                    })
                })
                .collect()
        })
    }

    fn live(&self) -> StoreFuture<'_, Vec<Live>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            query(&client, LIVE, &[])
                .await?
                .iter()
                .map(|row| {
                    Ok(Live {
                        channel_id: col::<&str>(row, 0)?.into(),
                        login: col::<&str>(row, 1)?.into(),
                        stream_id: col::<&str>(row, 2)?.into(),
                        category_id: col::<Option<&str>>(row, 3)?.map(Into::into),
                        language: col::<&str>(row, 4)?.into(),
                    })
                })
                .collect()
        })
    }

    fn follows<'a>(
        &'a self,
        user_id: &'a str,
        channel_ids: &'a [&'a str],
    ) -> StoreFuture<'a, Vec<bool>> {
        self.read(move |db| async move {
            if channel_ids.is_empty() {
                return Ok(Vec::new());
            }
            let client = db.client().await?;
            let rows = query(&client, FOLLOWS, &[&user_id, &channel_ids]).await?;
            let followed = rows
                .iter()
                .map(|row| col::<&str>(row, 0))
                .collect::<Result<HashSet<&str>, _>>()?;
            Ok(channel_ids.iter().map(|id| followed.contains(id)).collect())
        })
    }

    fn followers<'a>(
        &'a self,
        channel_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let rows = query(
                &client,
                FOLLOWERS,
                &[&channel_id, &before(after), &limit(first.saturating_add(1))],
            )
            .await?;
            key_page(&rows, first)?.ok_or_else(|| no_channel(channel_id))
        })
    }

    fn followers_with_users<'a>(
        &'a self,
        channel_id: &'a str,
        after: Option<u64>,
        first: usize,
        with_users: usize,
    ) -> StoreFuture<'a, (KeyPage, Vec<Option<User>>)> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let rows = query(
                &client,
                FOLLOWERS_WITH_USERS,
                &[
                    &channel_id,
                    &before(after),
                    &limit(first.saturating_add(1)),
                    &limit(with_users),
                ],
            )
            .await?;
            joined_page(&rows, first, with_users, || no_channel(channel_id), user_at)
        })
    }

    fn following<'a>(
        &'a self,
        user_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let rows = query(
                &client,
                FOLLOWING,
                &[&user_id, &before(after), &limit(first.saturating_add(1))],
            )
            .await?;
            key_page(&rows, first)?.ok_or_else(|| no_user(user_id))
        })
    }

    fn following_with_channels<'a>(
        &'a self,
        user_id: &'a str,
        after: Option<u64>,
        first: usize,
        with_channels: usize,
    ) -> StoreFuture<'a, (KeyPage, Vec<Option<Channel>>)> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let rows = query(
                &client,
                FOLLOWING_WITH_CHANNELS,
                &[
                    &user_id,
                    &before(after),
                    &limit(first.saturating_add(1)),
                    &limit(with_channels),
                ],
            )
            .await?;
            joined_page(&rows, first, with_channels, || no_user(user_id), channel)
        })
    }

    fn messages<'a>(
        &'a self,
        channel_id: &'a str,
        last: usize,
        before_seq: Option<u64>,
    ) -> StoreFuture<'a, Vec<Message>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let rows = query(
                &client,
                MESSAGES,
                &[&channel_id, &before(before_seq), &limit(last)],
            )
            .await?;
            if rows.is_empty() {
                return Err(no_channel(channel_id));
            }
            let room: Arc<str> = Arc::from(channel_id);
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(seq) = col::<Option<i64>>(row, 0)? {
                    out.push(message(&room, unsigned(seq)?, row, 1)?);
                }
            }
            Ok(out)
        })
    }

    fn message<'a>(&'a self, channel_id: &'a str, seq: u64) -> StoreFuture<'a, Option<Message>> {
        self.read(move |db| async move {
            let Ok(seq) = i64::try_from(seq) else {
                return Ok(None);
            };
            let client = db.client().await?;
            match opt(&client, MESSAGE, &[&channel_id, &seq]).await? {
                Some(row) => Ok(Some(message(
                    &Arc::from(channel_id),
                    unsigned(seq)?,
                    &row,
                    1,
                )?)),
                None => Ok(None),
            }
        })
    }

    fn membership<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> StoreFuture<'a, Option<Membership>> {
        self.read(move |db| async move {
            let client = db.client().await?;
            let now = self.core.clock.now();
            let Some(row) = opt(&client, MEMBERSHIP, &[&channel_id, &user_id, &now]).await? else {
                return Ok(None);
            };
            let banned: bool = col(&row, 2)?;
            Ok(Some(Membership {
                owner_id: col::<&str>(&row, 0)?.into(),
                moderator: col(&row, 1)?,
                ban: if banned { Some(col(&row, 3)?) } else { None },
            }))
        })
    }

    fn search<'a>(&'a self, query_text: &'a str, first: usize) -> StoreFuture<'a, Vec<Found>> {
        self.read(move |db| async move {
            if first == 0 {
                return Ok(Vec::new());
            }
            let client = db.client().await?;
            query(&client, SEARCH, &[&query_text, &limit(first)])
                .await?
                .iter()
                .map(|row| {
                    let id: Box<str> = col::<&str>(row, 1)?.into();
                    match col::<i32>(row, 0)? {
                        1 => Ok(Found::User(id)),
                        2 => Ok(Found::Channel(id)),
                        _ => Ok(Found::Category(id)),
                    }
                })
                .collect()
        })
    }

    fn apply(&self, command: Command) -> StoreFuture<'_, Applied> {
        self.write(async move {
            let mut tries = 0;
            loop {
                tries += 1;
                match self.apply_once(&command).await {
                    // Another node made this user or took this login meanwhile: the
                    // next try sees it.
                    Err(StoreError::Conflict(_))
                        if matches!(command, Command::EnsureUser { .. })
                            && tries < ENSURE_USER_TRIES => {}
                    result => return result,
                }
            }
        })
    }

    fn record<'a>(&'a self, event: &'a Event, at: Millis) -> StoreFuture<'a, ()> {
        // Through the chat writer (group commit), which has its own connection; through
        // the breaker and bounded like every call (the writer itself neither admits nor
        // counts: a second admission would refuse the probe this one let through, so
        // chat alone could never close the circuit, and each failure counted twice).
        self.write(self.core.chat.record(event, at))
    }

    fn unrecord<'a>(&'a self, channel_id: &'a str, seq: u64) -> StoreFuture<'a, ()> {
        self.write(async move {
            let client = self.core.primary.client().await?;
            let seq = i64::try_from(seq).map_err(|_| StoreError::Invalid("seq".into()))?;
            exec(&client, UNRECORD, &[&channel_id, &seq]).await?;
            Ok(())
        })
    }

    fn tail<'a>(&'a self, channel_id: &'a str, max: usize) -> StoreFuture<'a, Option<Tail>> {
        // An orderer starts from it: the primary's, never a replica's that lags.
        self.write(async move {
            let client = self.core.primary.client().await?;
            let rows = query(&client, TAIL, &[&channel_id, &limit(max)]).await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let mut tail = Tail {
                last_seq: unsigned(col::<i64>(first, 0)?)?,
                events: Vec::with_capacity(rows.len()),
            };
            for row in &rows {
                if let Some(seq) = col::<Option<i64>>(row, 1)? {
                    tail.events
                        .push((unsigned(seq)?, Arc::new(ChatEvent::new(chat(row)?))));
                }
            }
            Ok(Some(tail))
        })
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let primary = &self.core.primary;
            let answer = primary
                .call(async {
                    let client = primary.client().await?;
                    query(&client, READY, &[]).await.map(drop)
                })
                .await;
            match (answer, &self.core.replica) {
                // The primary down: say where reads go meanwhile.
                (Err(StoreError::Unavailable(why)), Some(replica)) => Err(StoreError::Unavailable(
                    format!("{why}; {}", replica.describe()),
                )),
                (answer, _) => answer,
            }
        })
    }

    fn primary(&self) -> Option<&dyn Store> {
        self.pinned.as_deref().map(|p| p as &dyn Store)
    }

    fn replica(&self) -> Option<ReplicaStatus> {
        self.core.replica.as_ref().map(Replica::status)
    }

    fn calls(&self) -> Option<u64> {
        let replica = self
            .core
            .replica
            .as_ref()
            .map_or(0, |r| r.db.calls.load(Ordering::Relaxed));
        Some(self.core.primary.calls.load(Ordering::Relaxed) + replica)
    }
}

/// Prepares (once per connection) and runs a statement that answers rows.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.query(&statement, params).await.map_err(failed)
}

/// [`query`] for at most one row.
async fn opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.query_opt(&statement, params).await.map_err(failed)
}

/// [`query`] for exactly one row.
async fn one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.query_one(&statement, params).await.map_err(failed)
}

/// [`query`] for a statement that changes rows: how many.
async fn exec(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(failed)?;
    client.execute(&statement, params).await.map_err(failed)
}

/// What a PostgreSQL error means to callers: a conflict for a unique violation, a
/// missing row for a foreign key violation (the callers that can meet one say which),
/// a refused input for a value PostgreSQL cannot take (see [`super::REFUSED_INPUT`]), the
/// store being unavailable for everything else.
fn failed(e: tokio_postgres::Error) -> StoreError {
    if let Some(refused) = refused_input(&e) {
        return refused;
    }
    let Some(code) = e.code() else {
        let what = if e.is_closed() {
            "closed the connection"
        } else {
            "failed"
        };
        return StoreError::Unavailable(format!("PostgreSQL {what}: {}", Chain(&e)));
    };
    let what = match code.code() {
        "23505" => return StoreError::Conflict(format!("PostgreSQL: {}", Chain(&e))),
        "23503" => return StoreError::NotFound(format!("PostgreSQL: {}", Chain(&e))),
        "57014" => "cancelled a statement (statement_timeout)",
        c if c.starts_with("57P") => "is shutting down",
        c if c.starts_with("08") => "lost the connection",
        c if c.starts_with("53") => "is out of resources",
        _ => "failed a statement",
    };
    StoreError::Unavailable(format!("PostgreSQL {what}: {}", Chain(&e)))
}

/// Column `i` of `row`, or unavailable when it is not what the schema says.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| {
        StoreError::Unavailable(format!(
            "PostgreSQL answered a row the store cannot read: {}",
            Chain(&e)
        ))
    })
}

/// A count or number from a row as the unsigned number the rows carry.
fn unsigned<N: TryFrom<i64>, S: Into<i64>>(n: S) -> Result<N, StoreError> {
    let n = n.into();
    N::try_from(n).map_err(|_| {
        StoreError::Unavailable(format!("PostgreSQL answered {n} where a count or seq goes"))
    })
}

/// An exclusive upper bound on keys or seqs (None: none).
fn before(after: Option<u64>) -> i64 {
    after.map_or(i64::MAX, |k| i64::try_from(k).unwrap_or(i64::MAX))
}

/// A `LIMIT`.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn strings(list: Vec<&str>) -> Vec<Box<str>> {
    list.into_iter().map(Into::into).collect()
}

/// Rows found by id, as one entry per id asked, in order.
fn in_order<T: Clone>(ids: &[&str], found: HashMap<Box<str>, T>) -> Vec<Option<T>> {
    ids.iter().map(|id| found.get(*id).cloned()).collect()
}

fn user(row: &Row) -> Result<User, StoreError> {
    user_at(row, 0)
}

/// A user from [`USERS`]' columns starting at `from`.
fn user_at(row: &Row, from: usize) -> Result<User, StoreError> {
    Ok(User {
        id: col::<&str>(row, from)?.into(),
        login: col::<&str>(row, from + 1)?.into(),
        display_name: col::<&str>(row, from + 2)?.into(),
        bio: col::<Option<&str>>(row, from + 3)?.map(Into::into),
        admin: col(row, from + 4)?,
        created_at: col(row, from + 5)?,
        channel_id: col::<&str>(row, from + 6)?.into(),
    })
}

/// A channel from [`CHANNELS`]' columns starting at `from`.
fn channel(row: &Row, from: usize) -> Result<Channel, StoreError> {
    Ok(Channel {
        id: col::<&str>(row, from)?.into(),
        owner_id: col::<&str>(row, from + 1)?.into(),
        login: col::<&str>(row, from + 2)?.into(),
        title: col::<&str>(row, from + 3)?.into(),
        language: col::<&str>(row, from + 4)?.into(),
        tags: strings(col(row, from + 5)?),
        category_id: col::<Option<&str>>(row, from + 6)?.map(Into::into),
        stream_id: col::<Option<&str>>(row, from + 7)?.map(Into::into),
        follower_count: unsigned(col::<i32>(row, from + 8)?)?,
        moderator_ids: strings(col(row, from + 9)?),
    })
}

/// A message from its columns starting at `from`: author id, login and display name,
/// body, sent at.
fn message(room: &Arc<str>, seq: u64, row: &Row, from: usize) -> Result<Message, StoreError> {
    Ok(Message {
        channel_id: Arc::clone(room),
        seq,
        author: author(row, from)?,
        body: col::<&str>(row, from + 3)?.into(),
        sent_at: col(row, from + 4)?,
    })
}

fn author(row: &Row, from: usize) -> Result<Author, StoreError> {
    Ok(Author {
        id: col::<&str>(row, from)?.into(),
        login: col::<&str>(row, from + 1)?.into(),
        display_name: col::<&str>(row, from + 2)?.into(),
    })
}

/// A room event from a row of [`TAIL`].
fn chat(row: &Row) -> Result<Chat, StoreError> {
    match col::<&str>(row, 2)? {
        "message" => Ok(Chat::Message {
            author: author(row, 3)?,
            body: col::<&str>(row, 6)?.into(),
            sent_at: col(row, 7)?,
        }),
        "deleted" => Ok(Chat::Deleted {
            message_seq: unsigned(col::<i64>(row, 8)?)?,
        }),
        "banned" => Ok(Chat::Banned {
            user_id: col::<&str>(row, 9)?.into(),
            until: col(row, 10)?,
        }),
        other => Err(StoreError::Unavailable(format!(
            "PostgreSQL answered a room event of kind `{other}`"
        ))),
    }
}

/// A follow page from rows of (total, key, id), or None when there are none (the
/// channel or user is not there). Asked for `first` + 1 items: one more means a next
/// page.
fn key_page(rows: &[Row], first: usize) -> Result<Option<KeyPage>, StoreError> {
    let Some(head) = rows.first() else {
        return Ok(None);
    };
    let mut page = KeyPage {
        items: Vec::with_capacity(rows.len().min(first)),
        has_next: false,
        total: unsigned(col::<i64>(head, 0)?)?,
    };
    for row in rows {
        let Some(key) = col::<Option<i64>>(row, 1)? else {
            continue;
        };
        if page.items.len() == first {
            page.has_next = true;
            break;
        }
        page.items
            .push((unsigned(key)?, col::<&str>(row, 2)?.into()));
    }
    Ok(Some(page))
}

/// A follow page whose rows also carry the followed or following row from column 3
/// ([`key_page`]), and those rows for the page's first `with` items, read by `row_at`
/// (None where the row is gone); `missing` when there is no page (the owner is not there).
fn joined_page<T>(
    rows: &[Row],
    first: usize,
    with: usize,
    missing: impl FnOnce() -> StoreError,
    row_at: fn(&Row, usize) -> Result<T, StoreError>,
) -> Result<(KeyPage, Vec<Option<T>>), StoreError> {
    let page = key_page(rows, first)?.ok_or_else(missing)?;
    let joined = rows
        .iter()
        .take(page.items.len().min(with))
        .map(|row| match col::<Option<&str>>(row, 3)? {
            Some(_) => row_at(row, 3).map(Some),
            None => Ok(None),
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((page, joined))
}

/// `login`, or `login` with the smallest numeric suffix from 2 up that no user has
/// (logins ignore ASCII case), as the memory store makes it.
async fn free_login(
    tx: &deadpool_postgres::Transaction<'_>,
    login: &str,
) -> Result<String, StoreError> {
    let lower = login.to_ascii_lowercase();
    let end = format!("{lower}:");
    let rows = query(tx, LOGINS_FROM, &[&lower, &end]).await?;
    let taken = rows
        .iter()
        .map(|row| col::<&str>(row, 0))
        .collect::<Result<HashSet<&str>, _>>()?;
    if !taken.contains(&*lower) {
        return Ok(login.to_owned());
    }
    let n = (2u64..)
        .find(|n| !taken.contains(&*format!("{lower}{n}")))
        .unwrap_or_default();
    Ok(format!("{login}{n}"))
}

/// NotFound unless the channel and then the user exist, as the memory store checks.
async fn user_and_channel(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &str,
    channel_id: &str,
) -> Result<(), StoreError> {
    let row = one(tx, USER_AND_CHANNEL, &[&channel_id, &user_id]).await?;
    if !col::<bool>(&row, 0)? {
        return Err(no_channel(channel_id));
    }
    if !col::<bool>(&row, 1)? {
        return Err(no_user(user_id));
    }
    Ok(())
}

async fn category_exists(
    tx: &deadpool_postgres::Transaction<'_>,
    id: &str,
) -> Result<(), StoreError> {
    if col(&one(tx, CATEGORY_EXISTS, &[&id]).await?, 0)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("no category has id `{id}`")))
    }
}

fn follow_changes(changes: &mut Vec<Change>, user_id: &str, channel_id: &str) {
    changes.push(Change::Channel(channel_id.into()));
    changes.push(Change::Follow {
        user_id: user_id.into(),
        channel_id: channel_id.into(),
    });
}

fn membership(user_id: &str, channel_id: &str) -> Change {
    Change::Membership {
        user_id: user_id.into(),
        channel_id: channel_id.into(),
    }
}

fn already_live() -> StoreError {
    StoreError::Conflict("the channel is already live".into())
}

fn no_channel(id: &str) -> StoreError {
    StoreError::NotFound(format!("no channel has id `{id}`"))
}

fn no_user(id: &str) -> StoreError {
    StoreError::NotFound(format!("no user has id `{id}`"))
}
