//! PostgreSQL as the source of truth: the store over it ([`PgStore`], its queries and
//! connection pool, behind [`super::Store`]), an optional read replica ([`replica`]),
//! chat recorded with group commit
//! ([`chat`]), the circuit breaker in front of it ([`breaker`]), connecting
//! ([`connect`]), the schema, embedded in the binary and applied by `streamhub migrate`
//! ([`migrate`]), and the demo data that `streamhub seed` loads ([`seed`]).
//!
//! Owns: the SQL schema (`server/migrations/`), its version table and the rules by which
//! a binary decides whether it can run against a database's schema, and the SQL that
//! reads and changes the data (each query beside the index that serves it).

pub mod breaker;
pub mod chat;
pub mod migrate;
pub mod replica;
pub mod seed;
mod store;

pub use store::{PgStore, READS};

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::store::StoreError;

/// How a node uses PostgreSQL (the config module's `DATABASE_URL` and pool settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// The primary (`DATABASE_URL`): a `postgres://` URL or `key=value` settings.
    pub url: String,
    /// Connections the node keeps at most.
    pub pool_size: usize,
    /// How many pools share them: 1 for the node, or one per shard (each thread that
    /// calls the store takes the next pool the first time, so each shard has its own).
    pub pools: usize,
    /// How long a call waits for a free connection before failing as unavailable.
    pub pool_wait: Duration,
    /// How long one statement may run before PostgreSQL cancels it.
    pub statement_timeout: Duration,
    /// A read replica of the primary (`DATABASE_REPLICA_URL`), with the same pool
    /// settings.
    pub replica: Option<ReplicaSettings>,
}

/// A read replica: where it is and how far behind the primary it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Its URL (a `postgres://` URL or `key=value` settings).
    pub url: String,
    /// The lag above which reads go to the primary instead.
    pub max_lag: Duration,
}

/// How long [`connect`] waits for PostgreSQL when the URL does not say
/// (`connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`connect`] failed. The message carries the whole cause (tokio-postgres puts
/// the part that matters, "Connection refused", in its error's source).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL (or `key=value` settings) could not be parsed.
    #[error("cannot connect to PostgreSQL: the database URL is invalid: {}", Chain(.cause))]
    Url {
        /// What the parser said.
        cause: tokio_postgres::Error,
    },
    /// PostgreSQL refused or failed the connection (or the address has no server).
    #[error("cannot connect to PostgreSQL at {at}: {}", Chain(.cause))]
    Failed {
        /// The hosts and ports tried.
        at: String,
        /// What went wrong.
        cause: tokio_postgres::Error,
    },
    /// No connection was made within the time limit.
    #[error("cannot connect to PostgreSQL at {at}: no answer within {}", humantime::format_duration(*.limit))]
    TimedOut {
        /// The hosts and ports tried.
        at: String,
        /// The limit.
        limit: Duration,
    },
    /// The chat writer's thread could not be started ([`PgStore::new`]).
    #[error("cannot start the PostgreSQL chat writer: {cause}")]
    Writer {
        /// What the system said.
        cause: std::io::Error,
    },
    /// The replica's check could not be started ([`PgStore::new`]).
    #[error("cannot start the PostgreSQL replica's check: {cause}")]
    Check {
        /// What the system said.
        cause: std::io::Error,
    },
    /// The connection pool could not be built ([`PgStore::new`]).
    #[error("cannot make the PostgreSQL connection pool: {cause}")]
    Pool {
        /// What the pool's builder said.
        cause: deadpool_postgres::BuildError,
    },
}

/// How an error that PostgreSQL answered for a value it cannot take (a data exception,
/// SQLSTATE class 22: a NUL character in text, say) begins. Such an error is the
/// request's fault, not a sign of the database's health: callers get it as a
/// [`StoreError::Conflict`] (`BAD_USER_INPUT` at the edge), and the circuit breaker
/// counts it as an answer, so that no input can open the circuit for everyone.
pub(crate) const REFUSED_INPUT: &str = "PostgreSQL refused the input";

/// The error for a data exception (SQLSTATE class 22), None for any other error.
pub(crate) fn refused_input(e: &tokio_postgres::Error) -> Option<StoreError> {
    let db = e.as_db_error()?;
    db.code()
        .code()
        .starts_with("22")
        .then(|| StoreError::Invalid(format!("{REFUSED_INPUT}: {}", db.message())))
}

/// An error and its sources on one line ("error connecting to server: Connection
/// refused (os error 111)"), for messages that must say what went wrong by themselves.
pub(crate) struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Connects to the PostgreSQL that `url` names (a `postgres://` URL or `key=value`
/// settings), without TLS, within the URL's `connect_timeout` or else
/// [`CONNECT_TIMEOUT`] for the whole handshake.
///
/// The connection is driven by a task spawned on the current tokio runtime (a shard's
/// or the `migrate` command's current-thread runtime): the client is usable while that
/// runtime runs, and the connection closes when the client is dropped.
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|cause| ConnectError::Url { cause })?;
    let limit = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    // The socket's connect is bounded by the config; the startup and authentication
    // that follow are bounded by the timeout around the whole handshake.
    config.connect_timeout(limit);
    let at = describe(&config);
    let (client, connection) = tokio::time::timeout(limit, config.connect(NoTls))
        .await
        .map_err(|_| ConnectError::TimedOut {
            at: at.clone(),
            limit,
        })?
        .map_err(|cause| ConnectError::Failed { at, cause })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "the PostgreSQL connection failed");
        }
    });
    Ok(client)
}

/// The hosts and ports a config names (never its password), for error messages.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // One port for all hosts, or one per host; 5432 when none is given.
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}/.s.PGSQL.{port}", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() {
        "the default host".to_owned()
    } else {
        hosts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> String {
        describe(&url.parse().unwrap())
    }

    #[test]
    fn the_address_is_described_without_the_password() {
        assert_eq!(
            described("postgres://app:secret@db.internal:6432/streamhub"),
            "db.internal:6432"
        );
        assert_eq!(described("postgres://app@db/streamhub"), "db:5432");
        assert_eq!(
            described("host=a,b port=1,2 user=app password=secret"),
            "a:1, b:2"
        );
        assert_eq!(
            described("host=/var/run/postgresql user=app"),
            "/var/run/postgresql/.s.PGSQL.5432"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_named_as_such() {
        let err = connect("postgres://app@db:notaport/x").await.unwrap_err();
        assert!(matches!(err, ConnectError::Url { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with("cannot connect to PostgreSQL"),
            "{err}"
        );
    }
}
