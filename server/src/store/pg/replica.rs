//! A read replica of the primary (`DATABASE_REPLICA_URL`, streaming replication): its
//! pool ([`super::store::Db`], with a breaker of its own) and the check that decides
//! whether reads go to it.
//!
//! The check runs on a thread of its own, once per [`CHECK_EVERY`], on two connections
//! of its own (not the pools': a pool that is busy says nothing about the lag). It reads
//! the primary's flushed WAL position (`pg_current_wal_flush_lsn()`: a committed
//! transaction's commit record is at or before it) and then polls the replica's
//! replayed position (`pg_last_wal_replay_lsn()`) until it reaches that point: the time
//! that took is the lag (0 on an idle primary, unlike `now() -
//! pg_last_xact_replay_timestamp()`, which grows while nothing is written). Reads go to
//! the replica while it reaches the point within the lag allowed
//! ([`ReplicaSettings::max_lag`]); beyond it, or when the replica cannot be reached or
//! is not replaying (promoted, say), they go to the primary until a check finds it
//! within bounds again. Reads go to the primary until the first check has passed. When
//! the primary cannot be reached the lag cannot be measured: reads stay where they
//! were.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::store::Db;
use super::{connect, ConnectError, ReplicaSettings};
use crate::store::ReplicaStatus;

/// How often the check measures the replica's lag.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often a check asks the replica again while it has not reached the primary's
/// position.
const POLL: Duration = Duration::from_millis(20);

/// How long one of the check's statements may take.
const STATEMENT_LIMIT: Duration = Duration::from_secs(2);

const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::int8";

const REPLAYED: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8";

/// The replica: its pool and what its check found.
pub(super) struct Replica {
    /// Its pool and breaker.
    pub(super) db: Db,
    state: Arc<State>,
}

/// What the check found last (shared with the check's thread, which stops once the
/// store is gone).
#[derive(Debug)]
struct State {
    serving: AtomicBool,
    reachable: AtomicBool,
    /// The lag in milliseconds ([`UNKNOWN`] before the first measure).
    lag_ms: AtomicU64,
    /// Why reads do not go to it (empty while they do).
    why_not: Mutex<String>,
}

/// [`State::lag_ms`] before any measure.
const UNKNOWN: u64 = u64::MAX;

impl Replica {
    /// The replica over `db`, its check started against the primary at `primary_url`.
    pub(super) fn start(
        db: Db,
        primary_url: &str,
        settings: &ReplicaSettings,
    ) -> Result<Replica, ConnectError> {
        let state = Arc::new(State {
            serving: AtomicBool::new(false),
            reachable: AtomicBool::new(false),
            lag_ms: AtomicU64::new(UNKNOWN),
            why_not: Mutex::new("not checked yet".into()),
        });
        let check = Check {
            primary_url: primary_url.to_owned(),
            replica_url: settings.url.clone(),
            max_lag: settings.max_lag,
            state: Arc::downgrade(&state),
            primary: None,
            replica: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|cause| ConnectError::Check { cause })?;
        std::thread::Builder::new()
            .name("pg-replica-check".into())
            .spawn(move || rt.block_on(check.run()))
            .map_err(|cause| ConnectError::Check { cause })?;
        Ok(Replica { db, state })
    }

    /// Whether reads go to it now.
    pub(super) fn serving(&self) -> bool {
        self.state.serving.load(Ordering::Acquire)
    }

    /// Its state, for `/metrics`.
    pub(super) fn status(&self) -> ReplicaStatus {
        let lag = self.state.lag_ms.load(Ordering::Relaxed);
        ReplicaStatus {
            serving: self.serving(),
            reachable: self.state.reachable.load(Ordering::Relaxed),
            lag_ms: (lag != UNKNOWN).then_some(lag),
        }
    }

    /// Where reads go, in words (for `/readyz` while the primary is down).
    pub(super) fn describe(&self) -> String {
        if self.serving() {
            if let Some(open) = self.db.circuit_open() {
                return format!("the replica at {} is unreachable: {open}", self.db.at());
            }
            format!("the replica at {} serves reads", self.db.at())
        } else {
            let why = self.state.why_not.lock().unwrap_or_else(|e| e.into_inner());
            format!(
                "the replica at {} does not serve reads: {why}",
                self.db.at()
            )
        }
    }
}

/// The check's loop and its connections.
struct Check {
    primary_url: String,
    replica_url: String,
    max_lag: Duration,
    state: Weak<State>,
    primary: Option<Client>,
    replica: Option<Client>,
}

/// Why a check did not find the replica within bounds.
#[derive(Debug, thiserror::Error)]
enum Miss {
    /// The primary could not be asked (the lag cannot be measured).
    #[error("the primary cannot be reached: {0}")]
    Primary(String),
    /// The replica could not be asked, or is not replaying.
    #[error("{0}")]
    Replica(String),
    /// The replica had not reached the primary's position within the lag allowed.
    #[error("it lags by more than {}", humantime::format_duration(*.0))]
    Lagging(Duration),
}

impl Check {
    /// Checks once per [`CHECK_EVERY`] until the store is gone.
    async fn run(mut self) {
        loop {
            let Some(state) = self.state.upgrade() else {
                return;
            };
            let outcome = self.measure(&state).await;
            state.record(outcome);
            drop(state);
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    /// How long the replica took to replay what the primary had flushed when the check
    /// began.
    async fn measure(&mut self, state: &State) -> Result<Duration, Miss> {
        let began = Instant::now();
        let target = position(&mut self.primary, &self.primary_url, PRIMARY_POSITION)
            .await
            .map_err(Miss::Primary)?;
        loop {
            let replayed = position(&mut self.replica, &self.replica_url, REPLAYED)
                .await
                .map_err(Miss::Replica)?;
            let lag = began.elapsed();
            match replayed {
                None => {
                    return Err(Miss::Replica(
                        "it is not replaying a primary (pg_last_wal_replay_lsn() is null)".into(),
                    ))
                }
                Some(at) if at >= target.unwrap_or(0) => return Ok(lag),
                Some(_) if lag > self.max_lag => return Err(Miss::Lagging(self.max_lag)),
                Some(_) => {
                    state.lag_ms.store(millis(lag), Ordering::Relaxed);
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}

impl State {
    fn record(&self, outcome: Result<Duration, Miss>) {
        let (serving, reachable, lag, why) = match outcome {
            Ok(lag) => (true, true, Some(lag), String::new()),
            // Nothing to compare with: reads stay where they are.
            Err(miss @ Miss::Primary(_)) => {
                tracing::debug!(%miss, "replica check: the lag cannot be measured");
                return;
            }
            Err(miss @ Miss::Lagging(lag)) => (false, true, Some(lag), miss.to_string()),
            Err(miss @ Miss::Replica(_)) => (false, false, None, miss.to_string()),
        };
        if let Some(lag) = lag {
            self.lag_ms.store(millis(lag), Ordering::Relaxed);
        }
        self.reachable.store(reachable, Ordering::Relaxed);
        let was = self.serving.swap(serving, Ordering::AcqRel);
        let mut why_not = self.why_not.lock().unwrap_or_else(|e| e.into_inner());
        if was != serving || (!serving && *why_not != why) {
            if serving {
                tracing::info!("replica: within the lag allowed; reads go to it");
            } else {
                tracing::warn!(reason = why, "replica: reads go to the primary");
            }
        }
        *why_not = why;
    }
}

/// One position (bytes of WAL) read with `sql` over `client`, connecting to `url` first
/// if need be; a failure drops the connection (the next check makes a new one).
async fn position(
    client: &mut Option<Client>,
    url: &str,
    sql: &str,
) -> Result<Option<i64>, String> {
    if client.as_ref().is_none_or(Client::is_closed) {
        *client = Some(connect(url).await.map_err(|e| e.to_string())?);
    }
    let c = client.as_ref().ok_or("no connection")?;
    let answer = tokio::time::timeout(STATEMENT_LIMIT, c.query_one(sql, &[]))
        .await
        .map_err(|_| "no answer in time".to_owned())
        .and_then(|r| r.map_err(|e| super::Chain(&e).to_string()))
        .and_then(|row| row.try_get::<_, Option<i64>>(0).map_err(|e| e.to_string()));
    if answer.is_err() {
        *client = None;
    }
    answer
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1)
}
