//! The schema's versions: the migrations embedded in the binary ([`MIGRATIONS`]),
//! applying them ([`migrate`], the `streamhub migrate` command) and deciding whether
//! this binary can run against a database's schema ([`check`], for `serve`).
//!
//! Every applied migration is a row of `streamhub_schema` (version, name, when, and its
//! `compatible_from`). Migrations follow expand/contract: a migration that only adds
//! (a table, a nullable column, an index) leaves the schema usable by the releases
//! before it, and says so with a low `compatible_from`; one that removes or changes
//! what older code reads raises it. So a release whose newest migration is [`LATEST`]
//! runs against a newer schema only when every migration past [`LATEST`] was recorded
//! with `compatible_from <= LATEST`; it refuses an older schema (it would read tables
//! that are not there yet) until `streamhub migrate` has run.

use std::fmt;

use tokio_postgres::Client;

use super::{Chain, ConnectError};

/// One schema change, embedded in the binary and applied in its own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number: 1, 2, 3, ... in the order they apply.
    pub version: i32,
    /// A short name, recorded beside the version (a mismatch means the database was
    /// migrated by a different build).
    pub name: &'static str,
    /// The SQL, one or more statements.
    pub sql: &'static str,
    /// The oldest release, named by its [`LATEST`] schema version, whose code still runs
    /// on the schema once this migration is applied: its own version for a contracting
    /// change (a drop, a rename, a new constraint older code would break), lower for an
    /// expanding one.
    pub compatible_from: i32,
}

/// The migrations this binary embeds, in order, numbered from 1 without gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../migrations/0001_initial.sql"),
        compatible_from: 1,
    },
    Migration {
        version: 2,
        name: "chat_events_channel_check",
        sql: include_str!("../../../migrations/0002_chat_events_channel_check.sql"),
        compatible_from: 1,
    },
];

/// The schema version this binary's code is written for: its newest migration.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The session advisory lock `migrate` holds, so that nodes starting together apply
/// each migration once ("sHub" in ASCII).
pub const LOCK_KEY: i64 = 0x7348_7562;

/// The version table, created by the first `migrate`.
const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS streamhub_schema (
    version         integer PRIMARY KEY,
    name            text NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    compatible_from integer NOT NULL
)";

/// Why the schema cannot be migrated, or this binary cannot run on it.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// PostgreSQL could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A statement failed.
    #[error("PostgreSQL failed while {doing}: {}", Chain(.cause))]
    Db {
        /// What was being done.
        doing: String,
        /// The error.
        cause: tokio_postgres::Error,
    },
    /// The database's schema is older than this binary's.
    #[error(
        "the database schema is at version {database} and this release needs version {latest}: run `streamhub migrate` first"
    )]
    Behind {
        /// The database's newest applied migration (0: none).
        database: i32,
        /// This binary's [`LATEST`].
        latest: i32,
    },
    /// The database's schema was contracted by a newer release than this one.
    #[error(
        "the database schema is at version {database} and this release's is {latest}: {} changed it in ways only releases at schema version {needs} or later can run on, so deploy a newer release",
        Versions(.versions)
    )]
    TooNew {
        /// The database's newest applied migration.
        database: i32,
        /// This binary's [`LATEST`].
        latest: i32,
        /// The migrations past [`LATEST`] that older releases cannot run on.
        versions: Vec<i32>,
        /// The highest `compatible_from` among them.
        needs: i32,
    },
    /// The database's history of migrations differs from this binary's.
    #[error(
        "the database schema's history differs from this release's at version {version}: {detail}"
    )]
    Diverged {
        /// The first version that differs.
        version: i32,
        /// How.
        detail: String,
    },
}

impl MigrateError {
    fn db(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
        let doing = doing.into();
        move |cause| MigrateError::Db { doing, cause }
    }
}

/// "migration 3", "migrations 3, 4".
struct Versions<'a>(&'a [i32]);

impl fmt::Display for Versions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.len() == 1 {
            "migration "
        } else {
            "migrations "
        })?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// A row of `streamhub_schema`: a migration the database records as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Its version.
    pub version: i32,
    /// Its name.
    pub name: String,
    /// The oldest release that runs on the schema after it.
    pub compatible_from: i32,
}

/// Whether this binary can run on a database's schema (see [`check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// The schema is this binary's: [`LATEST`].
    Current,
    /// The schema is newer, but the migrations past [`LATEST`] only expanded it, so this
    /// binary runs on it.
    Expanded {
        /// The database's newest applied migration.
        version: i32,
    },
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The migrations it applied (version, name), in order; empty when the schema was
    /// up to date.
    pub applied: Vec<(i32, &'static str)>,
    /// The schema now.
    pub state: SchemaState,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            f.write_str("the database schema is up to date")?;
        } else {
            f.write_str("applied ")?;
            for (i, (version, name)) in self.applied.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{version:04}_{name}")?;
            }
        }
        match self.state {
            SchemaState::Current => write!(f, " (version {LATEST})"),
            SchemaState::Expanded { version } => write!(
                f,
                " (version {version}, newer than this release's {LATEST} and compatible with it)"
            ),
        }
    }
}

/// Brings the schema up to this binary's: takes the migration lock (waiting for
/// another node's `migrate` to finish), creates the version table if absent, applies
/// each missing migration in its own transaction together with its row, and releases
/// the lock. Refuses a schema this binary cannot run on ([`MigrateError::TooNew`],
/// [`MigrateError::Diverged`]) without changing it.
pub async fn migrate(client: &mut Client) -> Result<Report, MigrateError> {
    migrate_with(client, MIGRATIONS).await
}

/// [`migrate`] with the given migrations instead of [`MIGRATIONS`] (numbered from 1
/// without gaps): how tests exercise a failing or a future migration.
pub async fn migrate_with(
    client: &mut Client,
    migrations: &'static [Migration],
) -> Result<Report, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(MigrateError::db("taking the migration lock"))?;
    let result = migrate_locked(client, migrations).await;
    // A failed migration's transaction has rolled back by now (dropped unfinished);
    // the lock goes with the session anyway if this fails.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(MigrateError::db("releasing the migration lock"));
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn migrate_locked(
    client: &mut Client,
    migrations: &'static [Migration],
) -> Result<Report, MigrateError> {
    client
        .batch_execute(SCHEMA_TABLE)
        .await
        .map_err(MigrateError::db("creating the table streamhub_schema"))?;
    let recorded = recorded(client).await?;
    let plan = plan(migrations, &recorded)?;
    let mut applied = Vec::with_capacity(plan.missing.len());
    for m in plan.missing {
        let doing = || format!("applying migration {:04}_{}", m.version, m.name);
        let tx = client
            .transaction()
            .await
            .map_err(MigrateError::db(doing()))?;
        tx.batch_execute(m.sql)
            .await
            .map_err(MigrateError::db(doing()))?;
        tx.execute(
            "INSERT INTO streamhub_schema (version, name, compatible_from) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.compatible_from],
        )
        .await
        .map_err(MigrateError::db(doing()))?;
        tx.commit().await.map_err(MigrateError::db(doing()))?;
        tracing::info!(version = m.version, name = m.name, "applied a migration");
        applied.push((m.version, m.name));
    }
    Ok(Report {
        applied,
        state: plan.state,
    })
}

/// Whether this binary can run on the database's schema, for `serve`: reads the
/// version table (without creating it) and judges it (see the module's doc).
pub async fn check(client: &Client) -> Result<SchemaState, MigrateError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('streamhub_schema') IS NOT NULL", &[])
        .await
        .map_err(MigrateError::db("looking for the table streamhub_schema"))?
        .get(0);
    let recorded = if exists {
        recorded(client).await?
    } else {
        Vec::new()
    };
    verdict(MIGRATIONS, &recorded)
}

/// The rows of `streamhub_schema`, by version.
async fn recorded(client: &Client) -> Result<Vec<Recorded>, MigrateError> {
    let rows = client
        .query(
            "SELECT version, name, compatible_from FROM streamhub_schema ORDER BY version",
            &[],
        )
        .await
        .map_err(MigrateError::db("reading the table streamhub_schema"))?;
    Ok(rows
        .iter()
        .map(|r| Recorded {
            version: r.get(0),
            name: r.get(1),
            compatible_from: r.get(2),
        })
        .collect())
}

/// What a database whose history is `recorded` needs from a binary embedding `ours`.
#[derive(Debug)]
struct Plan<'m> {
    /// Our migrations it does not record, in order.
    missing: Vec<&'m Migration>,
    /// The schema once they are applied.
    state: SchemaState,
}

/// Compares a database's recorded migrations with `ours` (numbered from 1 without
/// gaps): the ones to apply, or why this binary must not touch or run on the schema.
fn plan<'m>(ours: &'m [Migration], recorded: &[Recorded]) -> Result<Plan<'m>, MigrateError> {
    let latest = ours.last().map_or(0, |m| m.version);
    let database = recorded.iter().map(|r| r.version).max().unwrap_or(0);
    for m in ours {
        match recorded.iter().find(|r| r.version == m.version) {
            Some(r) if r.name != m.name => {
                return Err(MigrateError::Diverged {
                    version: m.version,
                    detail: format!(
                        "the database records `{}` and this release has `{}`",
                        r.name, m.name
                    ),
                });
            }
            // Applying an older migration after newer ones would run it on a schema
            // it was not written for.
            None if m.version < database => {
                return Err(MigrateError::Diverged {
                    version: m.version,
                    detail: format!(
                        "the database records later migrations (up to {database}) but not `{}`",
                        m.name
                    ),
                });
            }
            _ => {}
        }
    }
    let beyond: Vec<&Recorded> = recorded.iter().filter(|r| r.version > latest).collect();
    let contracting: Vec<i32> = beyond
        .iter()
        .filter(|r| r.compatible_from > latest)
        .map(|r| r.version)
        .collect();
    if !contracting.is_empty() {
        return Err(MigrateError::TooNew {
            database,
            latest,
            needs: beyond.iter().map(|r| r.compatible_from).max().unwrap_or(0),
            versions: contracting,
        });
    }
    let missing: Vec<&Migration> = ours
        .iter()
        .filter(|m| !recorded.iter().any(|r| r.version == m.version))
        .collect();
    let state = if beyond.is_empty() {
        SchemaState::Current
    } else {
        SchemaState::Expanded { version: database }
    };
    Ok(Plan { missing, state })
}

/// Whether a binary embedding `ours` can run on a database whose history is
/// `recorded`, as it is (nothing applied).
fn verdict(ours: &[Migration], recorded: &[Recorded]) -> Result<SchemaState, MigrateError> {
    let plan = plan(ours, recorded)?;
    if plan.missing.is_empty() {
        Ok(plan.state)
    } else {
        Err(MigrateError::Behind {
            database: recorded.iter().map(|r| r.version).max().unwrap_or(0),
            latest: ours.last().map_or(0, |m| m.version),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &[Migration] = &[
        Migration {
            version: 1,
            name: "initial",
            sql: "",
            compatible_from: 1,
        },
        Migration {
            version: 2,
            name: "bios",
            sql: "",
            compatible_from: 1,
        },
    ];

    fn rec(version: i32, name: &str, compatible_from: i32) -> Recorded {
        Recorded {
            version,
            name: name.into(),
            compatible_from,
        }
    }

    fn ours_recorded() -> Vec<Recorded> {
        OURS.iter()
            .map(|m| rec(m.version, m.name, m.compatible_from))
            .collect()
    }

    #[test]
    fn the_embedded_migrations_are_numbered_from_one_and_compatible_with_themselves() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(
                (1..=m.version).contains(&m.compatible_from),
                "{}: compatible_from {} is not a release up to its own",
                m.name,
                m.compatible_from
            );
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(LATEST, MIGRATIONS.len() as i32);
        assert!(MIGRATIONS[0].sql.contains("CREATE TABLE chat_events"));
    }

    #[test]
    fn the_same_history_is_current() {
        assert_eq!(
            verdict(OURS, &ours_recorded()).unwrap(),
            SchemaState::Current
        );
        let plan = plan(OURS, &ours_recorded()).unwrap();
        assert!(plan.missing.is_empty());
    }

    #[test]
    fn an_older_schema_must_be_migrated_first() {
        let err = verdict(OURS, &ours_recorded()[..1]).unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::Behind {
                    database: 1,
                    latest: 2
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("streamhub migrate"), "{err}");
        let err = verdict(OURS, &[]).unwrap_err();
        assert!(matches!(err, MigrateError::Behind { database: 0, .. }));
        // What migrate applies: the missing ones, in order, reaching our schema.
        let plan = plan(OURS, &[]).unwrap();
        let missing: Vec<i32> = plan.missing.iter().map(|m| m.version).collect();
        assert_eq!(missing, vec![1, 2]);
        assert_eq!(plan.state, SchemaState::Current);
    }

    #[test]
    fn a_newer_schema_that_was_only_expanded_is_accepted() {
        let mut recorded = ours_recorded();
        recorded.push(rec(3, "more_indexes", 1));
        recorded.push(rec(4, "new_table", 2));
        assert_eq!(
            verdict(OURS, &recorded).unwrap(),
            SchemaState::Expanded { version: 4 }
        );
        assert!(plan(OURS, &recorded).unwrap().missing.is_empty());
    }

    #[test]
    fn a_newer_schema_that_was_contracted_is_refused() {
        let mut recorded = ours_recorded();
        recorded.push(rec(3, "more_indexes", 1));
        recorded.push(rec(4, "drop_column", 4));
        recorded.push(rec(5, "drop_table", 3));
        let err = verdict(OURS, &recorded).unwrap_err();
        match &err {
            MigrateError::TooNew {
                database,
                latest,
                versions,
                needs,
            } => {
                assert_eq!((*database, *latest, *needs), (5, 2, 4));
                assert_eq!(versions, &[4, 5]);
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("deploy a newer release"), "{message}");
        assert!(message.contains("migrations 4, 5"), "{message}");
        // migrate refuses it too rather than reporting it up to date.
        assert!(matches!(
            plan(OURS, &recorded),
            Err(MigrateError::TooNew { .. })
        ));
    }

    #[test]
    fn a_different_history_is_diverged() {
        let mut recorded = ours_recorded();
        recorded[1].name = "something_else".into();
        let err = verdict(OURS, &recorded).unwrap_err();
        assert!(
            matches!(err, MigrateError::Diverged { version: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("`something_else`"), "{err}");
        // A gap: a later migration recorded without an earlier one of ours.
        let gap = vec![rec(1, "initial", 1), rec(3, "future", 1)];
        assert!(matches!(
            plan(OURS, &gap),
            Err(MigrateError::Diverged { version: 2, .. })
        ));
    }

    #[test]
    fn the_report_says_what_was_applied_or_that_nothing_was() {
        let applied = Report {
            applied: vec![(1, "initial")],
            state: SchemaState::Current,
        };
        assert_eq!(
            applied.to_string(),
            format!("applied 0001_initial (version {LATEST})")
        );
        let none = Report {
            applied: vec![],
            state: SchemaState::Expanded { version: 9 },
        };
        assert!(none
            .to_string()
            .starts_with("the database schema is up to date (version 9"));
    }
}
