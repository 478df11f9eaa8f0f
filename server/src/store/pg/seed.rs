//! `streamhub seed`: loads the demo dataset (the one the memory store starts with,
//! [`crate::store::memory::demo`]) into PostgreSQL, so that the demo and the benchmarks
//! run on the same data over either store.
//!
//! The schema comes first: [`seed`] runs [`migrate`], which applies what is missing and
//! refuses a schema this release cannot run on. Then one transaction, under an advisory
//! lock ([`LOCK_KEY`]) so that seeds started together do not race, checks whether the
//! demo's first user (`u1`, alice) is there: if so, the database counts as seeded and
//! nothing changes (whatever size seeded it, and whatever was added since); if not, every
//! table is loaded with `COPY ... FROM STDIN` in the binary format and the whole load
//! commits at once, or not at all. Running it twice thus leaves the data of the first
//! run. Rows that collide with data already there (a user `u5` created from a token,
//! say) fail the load, which then changes nothing.
//!
//! What is stored: users, categories, channels (with their live stream, follower count,
//! and tags), streams (all live: the demo ends none), follows with the demo's keys (and
//! the `follow_keys` sequence moved past the highest, so later follows sort after
//! them), moderators, bans, and each channel's room events with the demo's seqs,
//! recorded at the time of the seed. The demo's viewer counts are presence, kept by the
//! hub while a node runs: they are not data and are not stored.

use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use streamhub_pubsub::Chat;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::migrate::{self, migrate, MigrateError};
use super::Chain;
use crate::store::memory::demo;

/// The transaction-level advisory lock a seed holds while it checks and loads
/// ("sHuS" in ASCII; `migrate` holds its own, [`migrate::LOCK_KEY`]).
pub const LOCK_KEY: i64 = 0x7348_7553;

/// The demo user whose presence means the database is seeded.
const FIRST_USER: &str = "u1";

/// Why the seed failed; when it does, the demo data is not there (the load is one
/// transaction), though the schema may have been migrated.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The schema could not be brought up to this release's.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A statement failed.
    #[error("PostgreSQL failed while {doing}: {}", Chain(.cause))]
    Db {
        /// What was being done.
        doing: String,
        /// The error.
        cause: tokio_postgres::Error,
    },
}

impl SeedError {
    fn db(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SeedError {
        let doing = doing.into();
        move |cause| SeedError::Db { doing, cause }
    }
}

/// What [`seed`] did: the migrations it applied, then the rows it loaded or that the
/// data was there already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What the migration did first.
    pub migrated: migrate::Report,
    /// What the seed did.
    pub outcome: Outcome,
}

/// Whether the seed loaded the demo data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did, in one transaction.
    Seeded {
        /// The rows written, table by table.
        counts: Counts,
        /// How long the load took (generating the data, copying and committing).
        took: Duration,
    },
    /// The demo's first user was there: nothing was written.
    AlreadySeeded {
        /// The users the database holds.
        users: i64,
    },
}

/// Rows written, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Users (each with a channel: as many channels).
    pub users: u64,
    /// Categories.
    pub categories: u64,
    /// Streams (live ones: as many live channels).
    pub streams: u64,
    /// Follows.
    pub follows: u64,
    /// Moderators, over all channels.
    pub moderators: u64,
    /// Bans, over all channels.
    pub bans: u64,
    /// Room events (messages and deletions), over all channels.
    pub chat_events: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.migrated.applied.is_empty() {
            write!(f, "{}; ", self.migrated)?;
        }
        match &self.outcome {
            Outcome::Seeded { counts: c, took } => write!(
                f,
                "seeded the demo data in {took:.1?}: users {} (each with a channel), categories {}, live streams {}, follows {}, moderators {}, bans {}, chat events {}",
                c.users, c.categories, c.streams, c.follows, c.moderators, c.bans, c.chat_events
            ),
            Outcome::AlreadySeeded { users } => write!(
                f,
                "already seeded: the database has the demo user {FIRST_USER} ({users} users in all); nothing changed"
            ),
        }
    }
}

/// Migrates the schema, then loads the demo data of `users` users unless the database
/// has it already (see the module's doc).
pub async fn seed(client: &mut Client, users: u32) -> Result<Report, SeedError> {
    let migrated = migrate(client).await?;
    let started = Instant::now();
    let tx = client
        .transaction()
        .await
        .map_err(SeedError::db("starting the transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(SeedError::db("taking the seed lock"))?;
    let present = tx
        .query_opt("SELECT 1 FROM users WHERE id = $1", &[&FIRST_USER])
        .await
        .map_err(SeedError::db("looking for the demo users"))?
        .is_some();
    if present {
        let users: i64 = tx
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .map_err(SeedError::db("counting the users"))?
            .get(0);
        // Which releases the lock.
        tx.rollback()
            .await
            .map_err(SeedError::db("ending the transaction"))?;
        return Ok(Report {
            migrated,
            outcome: Outcome::AlreadySeeded { users },
        });
    }
    let rows = demo::rows(users, crate::store::now());
    let counts = load(&tx, &rows).await?;
    tx.commit()
        .await
        .map_err(SeedError::db("committing the demo data"))?;
    Ok(Report {
        migrated,
        outcome: Outcome::Seeded {
            counts,
            took: started.elapsed(),
        },
    })
}

/// Copies every table of `rows` in, in an order the foreign keys accept (the ones
/// between users and channels, and from a channel to its live stream, are checked at
/// the commit), and moves the follow keys' sequence past the demo's.
async fn load(tx: &Transaction<'_>, rows: &demo::DemoRows) -> Result<Counts, SeedError> {
    let mut counts = Counts::default();

    let mut copy = CopyIn::start(
        tx,
        "categories (id, slug, name)",
        &[Type::TEXT, Type::TEXT, Type::TEXT],
    )
    .await?;
    for k in rows.categories() {
        copy.write(&[&k.id, &k.slug, &k.name]).await?;
    }
    counts.categories = copy.finish().await?;

    let mut copy = CopyIn::start(
        tx,
        "users (id, login, display_name, bio, admin, created_at, channel_id)",
        &[
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BOOL,
            Type::INT8,
            Type::TEXT,
        ],
    )
    .await?;
    for u in rows.users() {
        copy.write(&[
            &&*u.id,
            &&*u.login,
            &&*u.display_name,
            &u.bio,
            &u.admin,
            &u.created_at,
            &u.channel_id,
        ])
        .await?;
    }
    counts.users = copy.finish().await?;

    // Moderators are kept on the channel rows: gathered here, copied after.
    let mut moderators = Vec::new();
    let mut copy = CopyIn::start(
        tx,
        "channels (id, owner_id, login, title, language, tags, category_id, stream_id, follower_count)",
        &[
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
        ],
    )
    .await?;
    for c in rows.channels() {
        // At most the number of users (5,000,000 at most).
        let follower_count = c.follower_count as i32;
        copy.write(&[
            &c.id,
            &c.owner_id,
            &c.login,
            &c.title,
            &c.language,
            &c.tags,
            &c.category_id,
            &c.stream_id,
            &follower_count,
        ])
        .await?;
        moderators.extend(c.moderator_ids.into_iter().map(|m| (c.id.clone(), m)));
    }
    copy.finish().await?;

    let mut copy = CopyIn::start(
        tx,
        "streams (id, channel_id, title, category_id, language, started_at)",
        &[
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
        ],
    )
    .await?;
    for s in rows.streams() {
        copy.write(&[
            &s.id,
            &s.channel_id,
            &s.title,
            &s.category_id,
            &s.language,
            &s.started_at,
        ])
        .await?;
    }
    counts.streams = copy.finish().await?;

    let mut last_key = 0;
    let mut copy = CopyIn::start(
        tx,
        "follows (user_id, channel_id, key)",
        &[Type::TEXT, Type::TEXT, Type::INT8],
    )
    .await?;
    for f in rows.follows() {
        last_key = last_key.max(f.key);
        copy.write(&[&f.user_id, &f.channel_id, &(f.key as i64)])
            .await?;
    }
    counts.follows = copy.finish().await?;
    if last_key > 0 {
        // The next follow's key is one more than the demo's last.
        tx.execute("SELECT setval('follow_keys', $1)", &[&(last_key as i64)])
            .await
            .map_err(SeedError::db("moving the sequence follow_keys"))?;
    }

    let mut copy = CopyIn::start(
        tx,
        "moderators (channel_id, user_id)",
        &[Type::TEXT, Type::TEXT],
    )
    .await?;
    for (channel_id, user_id) in &moderators {
        copy.write(&[channel_id, user_id]).await?;
    }
    counts.moderators = copy.finish().await?;

    let mut copy = CopyIn::start(
        tx,
        "bans (channel_id, user_id, until)",
        &[Type::TEXT, Type::TEXT, Type::INT8],
    )
    .await?;
    for b in rows.bans() {
        copy.write(&[&b.channel_id, &b.user_id, &b.until]).await?;
    }
    counts.bans = copy.finish().await?;

    let mut copy = CopyIn::start(
        tx,
        "chat_events (channel_id, seq, kind, recorded_at, author_id, author_login, \
         author_display_name, body, sent_at, deleted, target_seq, target_user_id, until)",
        &[
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::BOOL,
            Type::INT8,
            Type::TEXT,
            Type::INT8,
        ],
    )
    .await?;
    for e in rows.chat() {
        let none: Option<&str> = None;
        let never: Option<i64> = None;
        let seq = e.seq as i64;
        match e.chat {
            Chat::Message {
                author,
                body,
                sent_at,
            } => {
                copy.write(&[
                    &e.channel_id,
                    &seq,
                    &"message",
                    &e.recorded_at,
                    &&*author.id,
                    &&*author.login,
                    &&*author.display_name,
                    &&**body,
                    sent_at,
                    &e.deleted,
                    &never,
                    &none,
                    &never,
                ])
                .await?
            }
            Chat::Deleted { message_seq } => {
                copy.write(&[
                    &e.channel_id,
                    &seq,
                    &"deleted",
                    &e.recorded_at,
                    &none,
                    &none,
                    &none,
                    &none,
                    &never,
                    &false,
                    &(*message_seq as i64),
                    &none,
                    &never,
                ])
                .await?
            }
            Chat::Banned { user_id, until } => {
                copy.write(&[
                    &e.channel_id,
                    &seq,
                    &"banned",
                    &e.recorded_at,
                    &none,
                    &none,
                    &none,
                    &none,
                    &never,
                    &false,
                    &never,
                    user_id,
                    until,
                ])
                .await?
            }
        }
    }
    counts.chat_events = copy.finish().await?;

    Ok(counts)
}

/// One `COPY <table> (<columns>) FROM STDIN (FORMAT binary)` under way.
struct CopyIn {
    writer: Pin<Box<BinaryCopyInWriter>>,
    /// What it is doing, for error messages: "copying into users".
    doing: String,
}

impl CopyIn {
    /// Starts copying into `into`, a table and its columns (`users (id, login, ...)`),
    /// whose values have the `types`.
    async fn start(tx: &Transaction<'_>, into: &str, types: &[Type]) -> Result<CopyIn, SeedError> {
        let table = into.split_whitespace().next().unwrap_or(into);
        let doing = format!("copying into {table}");
        let sink = tx
            .copy_in(&format!("COPY {into} FROM STDIN (FORMAT binary)"))
            .await
            .map_err(SeedError::db(doing.clone()))?;
        Ok(CopyIn {
            writer: Box::pin(BinaryCopyInWriter::new(sink, types)),
            doing,
        })
    }

    /// Writes a row (sent when enough are buffered).
    async fn write(&mut self, row: &[&(dyn ToSql + Sync)]) -> Result<(), SeedError> {
        match self.writer.as_mut().write(row).await {
            Ok(()) => Ok(()),
            Err(cause) => Err(SeedError::Db {
                doing: self.doing.clone(),
                cause,
            }),
        }
    }

    /// Ends the copy: the rows written.
    async fn finish(mut self) -> Result<u64, SeedError> {
        let doing = std::mem::take(&mut self.doing);
        self.writer
            .as_mut()
            .finish()
            .await
            .map_err(SeedError::db(doing))
    }
}
