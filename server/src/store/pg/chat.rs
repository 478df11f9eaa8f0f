//! The chat writer: room events recorded with group commit. Every shard's `record`
//! hands its event to one writer thread and waits; the writer takes whatever has
//! queued (up to [`MAX_BATCH`]) and writes it in one statement, one round trip and one
//! commit, then answers each waiting sender. So acknowledged means committed (the
//! commit waits for PostgreSQL's WAL flush), and under load many messages share a
//! commit instead of queueing for the pool one transaction each.
//!
//! An event whose sender stopped waiting (its call's deadline passed while PostgreSQL
//! hung, and it was refused) is dropped before it is written; only a batch already
//! sent when PostgreSQL stopped answering can still commit after its senders were
//! refused (its outcome is unknown to the node, as any client's after a timeout).
//!
//! While PostgreSQL cannot be reached, a batch fails at once, so chat sends fail fast
//! with `SERVICE_UNAVAILABLE` like every other write; nothing is acknowledged that was
//! not committed. The circuit breaker is the caller's (`PgStore::record` goes through it
//! like every call, one sender one call): once it is open, senders are refused before
//! they reach the writer, and the one it lets through as the probe is written, so chat
//! alone brings the circuit back once PostgreSQL is.

use streamhub_pubsub::{Chat, Event};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Statement};

use super::{Chain, PgSettings, REFUSED_INPUT};
use crate::store::{Millis, StoreError};

/// Events written in one statement at most.
pub const MAX_BATCH: usize = 512;

/// Events waiting for the writer at most; a sender past it waits its turn.
const QUEUE: usize = 16 * MAX_BATCH;

/// One statement: the batch's rows inserted (a seq already there is left as it is: a
/// retry of an event that was committed), and the messages that the batch's deletions
/// name, written before, marked deleted. A deletion of a message in the same batch is
/// marked on its row before the insert (a statement does not see its own inserts).
const WRITE: &str = "WITH r AS (
    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[],
        $6::text[], $7::text[], $8::text[], $9::int8[], $10::bool[], $11::int8[],
        $12::text[], $13::int8[])
    AS r(channel_id, seq, kind, recorded_at, author_id, author_login, author_display_name,
        body, sent_at, deleted, target_seq, target_user_id, until)
), ins AS (
    INSERT INTO chat_events (channel_id, seq, kind, recorded_at, author_id, author_login,
        author_display_name, body, sent_at, deleted, target_seq, target_user_id, until)
    SELECT * FROM r
    ON CONFLICT (channel_id, seq) DO NOTHING
)
UPDATE chat_events e SET deleted = true
FROM r
WHERE r.kind = 'deleted' AND e.channel_id = r.channel_id AND e.seq = r.target_seq
    AND e.kind = 'message'";

/// A failed write: refused for its content (a constraint, or a value PostgreSQL cannot
/// take such as a NUL character: not the database's health), or unavailable.
fn unavailable(e: &tokio_postgres::Error) -> Failure {
    let code = e.code().map(|c| c.code());
    if let (Some(code), Some(db)) = (code, e.as_db_error()) {
        if code.starts_with("23") || code.starts_with("22") {
            return Failure::Refused(code.to_owned(), db.message().to_owned());
        }
    }
    Failure::Unavailable(StoreError::Unavailable(format!(
        "PostgreSQL failed to record chat: {}",
        Chain(e)
    )))
}

/// A room event as a row of `chat_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    channel_id: String,
    seq: i64,
    kind: &'static str,
    recorded_at: i64,
    author_id: Option<String>,
    author_login: Option<String>,
    author_display_name: Option<String>,
    body: Option<String>,
    sent_at: Option<i64>,
    deleted: bool,
    target_seq: Option<i64>,
    target_user_id: Option<String>,
    until: Option<i64>,
}

impl Row {
    fn of(event: &Event, at: Millis) -> Row {
        let mut row = Row {
            channel_id: event.room.to_string(),
            seq: i64::try_from(event.seq).unwrap_or(i64::MAX),
            kind: "message",
            recorded_at: at,
            author_id: None,
            author_login: None,
            author_display_name: None,
            body: None,
            sent_at: None,
            deleted: false,
            target_seq: None,
            target_user_id: None,
            until: None,
        };
        match &event.payload.chat {
            Chat::Message {
                author,
                body,
                sent_at,
            } => {
                row.author_id = Some(author.id.to_string());
                row.author_login = Some(author.login.to_string());
                row.author_display_name = Some(author.display_name.to_string());
                row.body = Some(body.to_string());
                row.sent_at = Some(*sent_at);
            }
            Chat::Deleted { message_seq } => {
                row.kind = "deleted";
                row.target_seq = Some(i64::try_from(*message_seq).unwrap_or(i64::MAX));
            }
            Chat::Banned { user_id, until } => {
                row.kind = "banned";
                row.target_user_id = Some(user_id.to_string());
                row.until = *until;
            }
        }
        row
    }
}

/// A batch's rows, with each deletion of a message in the same batch marked on the
/// message's row.
fn mark_deletions(rows: &mut [Row]) {
    let targets: Vec<(String, i64)> = rows
        .iter()
        .filter_map(|r| Some((r.channel_id.clone(), r.target_seq?)))
        .collect();
    for r in rows.iter_mut().filter(|r| r.kind == "message") {
        if targets
            .iter()
            .any(|(channel, seq)| *channel == r.channel_id && *seq == r.seq)
        {
            r.deleted = true;
        }
    }
}

struct Job {
    row: Row,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The writer's handle: what `record` sends events to.
#[derive(Debug, Clone)]
pub struct ChatWriter {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("row", &self.row).finish()
    }
}

impl ChatWriter {
    /// Starts the writer thread (its own current-thread runtime and connection, made
    /// when the first event comes and again after a failure).
    pub fn spawn(settings: &PgSettings) -> std::io::Result<ChatWriter> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let settings = settings.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("pg-chat-writer".into())
            .spawn(move || rt.block_on(run(settings, jobs)))?;
        Ok(ChatWriter { queue })
    }

    /// Records `event` (ordered at `at`): answers once it is committed, or with why not.
    pub async fn record(&self, event: &Event, at: Millis) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            row: Row::of(event, at),
            done,
        };
        if self.queue.send(job).await.is_err() {
            return Err(StoreError::Unavailable(
                "the chat writer has stopped".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the chat writer has stopped".into(),
            ))
        })
    }
}

/// The writer's loop: a batch at a time until every handle is gone.
async fn run(settings: PgSettings, mut jobs: mpsc::Receiver<Job>) {
    let mut client: Option<(Client, Statement)> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A sender that stopped waiting (its call's deadline passed while PostgreSQL
        // hung) has been told its event failed: recording it now would keep a message
        // that was refused.
        batch.retain(|j| !j.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        let rows: Vec<Row> = batch.iter().map(|j| j.row.clone()).collect();
        match write(&settings, &mut client, rows).await {
            // PostgreSQL refused the batch for what one of its events holds (a room
            // whose channel is gone, say): each event alone, so only that one fails.
            Err(Failure::Refused(..)) if batch.len() > 1 => {
                for job in batch.drain(..) {
                    let row = job.row.clone();
                    let result = write(&settings, &mut client, vec![job.row])
                        .await
                        .map_err(|f| f.into_error(&row));
                    let _ = job.done.send(result);
                }
            }
            result => {
                for job in batch.drain(..) {
                    let _ = job
                        .done
                        .send(result.clone().map_err(|f| f.into_error(&job.row)));
                }
            }
        }
    }
}

/// Why a write failed.
#[derive(Debug, Clone)]
enum Failure {
    /// PostgreSQL could not be reached, or gave up (its message).
    Unavailable(StoreError),
    /// PostgreSQL answered and refused the rows (a constraint): its SQLSTATE and message.
    Refused(String, String),
}

impl Failure {
    /// What the sender of `row` hears.
    fn into_error(self, row: &Row) -> StoreError {
        match self {
            Failure::Unavailable(e) => e,
            Failure::Refused(code, _) if code == "23503" => {
                StoreError::NotFound(format!("no channel has id `{}`", row.channel_id))
            }
            Failure::Refused(code, message) if code.starts_with("22") => {
                StoreError::Invalid(format!("{REFUSED_INPUT}: {message}"))
            }
            Failure::Refused(_, message) => {
                StoreError::Unavailable(format!("PostgreSQL refused a chat event: {message}"))
            }
        }
    }
}

/// Writes rows in one statement: Ok once committed.
async fn write(
    settings: &PgSettings,
    client: &mut Option<(Client, Statement)>,
    mut rows: Vec<Row>,
) -> Result<(), Failure> {
    if client.as_ref().is_none_or(|(c, _)| c.is_closed()) {
        *client = None;
        let c = super::connect(&settings.url)
            .await
            .map_err(|e| Failure::Unavailable(StoreError::Unavailable(e.to_string())))?;
        let timeout = settings.statement_timeout.as_millis();
        c.batch_execute(&format!("SET statement_timeout = {timeout}"))
            .await
            .map_err(|e| unavailable(&e))?;
        let statement = c.prepare(WRITE).await.map_err(|e| unavailable(&e))?;
        *client = Some((c, statement));
    }
    let (c, statement) = client.as_ref().expect("connected above");
    mark_deletions(&mut rows);
    let col = |f: fn(&Row) -> Option<&str>| -> Vec<Option<&str>> { rows.iter().map(f).collect() };
    let channel_ids: Vec<&str> = rows.iter().map(|r| r.channel_id.as_str()).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
    let recorded_at: Vec<i64> = rows.iter().map(|r| r.recorded_at).collect();
    let author_ids = col(|r| r.author_id.as_deref());
    let author_logins = col(|r| r.author_login.as_deref());
    let author_names = col(|r| r.author_display_name.as_deref());
    let bodies = col(|r| r.body.as_deref());
    let sent_at: Vec<Option<i64>> = rows.iter().map(|r| r.sent_at).collect();
    let deleted: Vec<bool> = rows.iter().map(|r| r.deleted).collect();
    let target_seqs: Vec<Option<i64>> = rows.iter().map(|r| r.target_seq).collect();
    let target_users = col(|r| r.target_user_id.as_deref());
    let until: Vec<Option<i64>> = rows.iter().map(|r| r.until).collect();
    let result = c
        .execute(
            statement,
            &[
                &channel_ids,
                &seqs,
                &kinds,
                &recorded_at,
                &author_ids,
                &author_logins,
                &author_names,
                &bodies,
                &sent_at,
                &deleted,
                &target_seqs,
                &target_users,
                &until,
            ],
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            if c.is_closed() {
                *client = None;
            }
            Err(unavailable(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use streamhub_pubsub::{Author, ChatEvent};

    fn event(seq: u64, chat: Chat) -> Event {
        Event::new("ch_1", seq, Arc::new(ChatEvent::new(chat)))
    }

    fn message(seq: u64) -> Event {
        event(
            seq,
            Chat::Message {
                author: Author {
                    id: "u1".into(),
                    login: "alice".into(),
                    display_name: "Alice".into(),
                },
                body: "hi".into(),
                sent_at: 5,
            },
        )
    }

    #[test]
    fn rows_carry_what_each_kind_needs() {
        let m = Row::of(&message(1), 7);
        assert_eq!(
            (m.kind, m.seq, m.recorded_at, m.sent_at, m.body.as_deref()),
            ("message", 1, 7, Some(5), Some("hi"))
        );
        let d = Row::of(&event(2, Chat::Deleted { message_seq: 1 }), 8);
        assert_eq!((d.kind, d.target_seq, d.body), ("deleted", Some(1), None));
        let b = Row::of(
            &event(
                3,
                Chat::Banned {
                    user_id: "u2".into(),
                    until: Some(9),
                },
            ),
            8,
        );
        assert_eq!(
            (b.kind, b.target_user_id.as_deref(), b.until),
            ("banned", Some("u2"), Some(9))
        );
    }

    #[test]
    fn a_deletion_in_the_same_batch_marks_its_message() {
        let mut rows = vec![
            Row::of(&message(1), 0),
            Row::of(&message(2), 0),
            Row::of(&event(3, Chat::Deleted { message_seq: 2 }), 0),
        ];
        mark_deletions(&mut rows);
        let deleted: Vec<bool> = rows.iter().map(|r| r.deleted).collect();
        assert_eq!(deleted, [false, true, false]);
    }
}
