//! The chat writer: room events recorded with group commit. Every shard's `record`
//! hands its event to one writer thread and waits; the writer takes whatever has
//! queued (up to [`MAX_BATCH`]) and writes it in one statement, one round trip and one
//! commit, then answers each waiting sender. So acknowledged means committed (the
//! commit waits for PostgreSQL's WAL flush), and under load many messages share a
//! commit instead of queueing for the pool one transaction each.
//!
//! A sender is acknowledged only when the row at its event's (room, seq) is its own:
//! a batch is first written with a plain insert, which either inserts every row or
//! fails; when a seq is already taken (a write that timed out earlier committed late,
//! or a retry of an event that was committed), the batch is written again with
//! `ON CONFLICT DO NOTHING`, and each row that was not inserted is compared with the
//! stored one: the same event is acknowledged (a retry is idempotent), another one is
//! refused with [`StoreError::Conflict`] (PostgreSQL answered: no sign of its health).
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

use std::collections::HashSet;

use streamhub_pubsub::{Chat, Event};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::{Chain, PgSettings, REFUSED_INPUT};
use crate::store::{Millis, StoreError};

/// Events written in one statement at most.
pub const MAX_BATCH: usize = 512;

/// Events waiting for the writer at most; a sender past it waits its turn.
const QUEUE: usize = 16 * MAX_BATCH;

/// The columns of `chat_events` a batch writes, in the order of the parameters.
const COLUMNS: &str = "channel_id, seq, kind, recorded_at, author_id, author_login, \
    author_display_name, body, sent_at, deleted, target_seq, target_user_id, until";

/// The batch's rows, from one array per column.
const ROWS: &str = "UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
    $6::text[], $7::text[], $8::text[], $9::int8[], $10::bool[], $11::int8[], $12::text[], \
    $13::int8[])";

/// A batch without deletions, the common case: every row inserted, or an error (a seq
/// already taken is a unique violation, and the batch goes to [`careful`]).
fn insert() -> String {
    format!("INSERT INTO chat_events ({COLUMNS}) SELECT * FROM {ROWS}")
}

/// Which of the channels given exist. `chat_events` has no foreign key to `channels`
/// (checked per row after the insert, it was a third of PostgreSQL's time per message):
/// the writer asks once per channel instead and keeps the answer, since channels are
/// never deleted.
const CHANNELS: &str = "SELECT id FROM channels WHERE id = ANY($1)";

/// Channels the writer keeps as known to exist at most; past it, it forgets them all
/// and asks again.
const KNOWN_CHANNELS: usize = 100_000;

/// A batch with deletions, or one whose plain insert met a taken seq: the rows whose
/// seq is free are inserted, the messages that the inserted deletions name, written
/// before, are marked deleted (a deletion of a message in the same batch is marked on
/// its row before the insert: a statement does not see its own inserts), and the
/// inserted rows' keys are returned.
fn careful() -> String {
    format!(
        "WITH ins AS (
    INSERT INTO chat_events ({COLUMNS}) SELECT * FROM {ROWS}
    ON CONFLICT (channel_id, seq) DO NOTHING
    RETURNING channel_id, seq, kind, target_seq
), del AS (
    UPDATE chat_events e SET deleted = true FROM ins
    WHERE ins.kind = 'deleted' AND e.channel_id = ins.channel_id AND e.seq = ins.target_seq
        AND e.kind = 'message'
)
SELECT channel_id, seq FROM ins"
    )
}

/// The stored events at the keys given (those that [`careful`] did not insert), read
/// by a statement after its commit, so it sees the rows that took their seqs.
const STORED: &str = "SELECT e.channel_id, e.seq, e.kind, e.author_id, e.body, e.sent_at, \
    e.target_seq, e.target_user_id, e.until \
    FROM UNNEST($1::text[], $2::int8[]) AS k(channel_id, seq) \
    JOIN chat_events e ON e.channel_id = k.channel_id AND e.seq = k.seq";

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

/// A seq as PostgreSQL keeps it.
fn signed(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A batch of events as the columns of their rows, borrowed from the events (the
/// senders' own copies: nothing is copied on the way to the writer).
#[derive(Debug, Default)]
struct Columns<'a> {
    channel_id: Vec<&'a str>,
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    recorded_at: Vec<i64>,
    author_id: Vec<Option<&'a str>>,
    author_login: Vec<Option<&'a str>>,
    author_display_name: Vec<Option<&'a str>>,
    body: Vec<Option<&'a str>>,
    sent_at: Vec<Option<i64>>,
    deleted: Vec<bool>,
    target_seq: Vec<Option<i64>>,
    target_user_id: Vec<Option<&'a str>>,
    until: Vec<Option<i64>>,
    /// Whether any event is a deletion.
    deletions: bool,
}

impl<'a> Columns<'a> {
    /// The rows of `jobs`, with each deletion of a message in the same batch marked on
    /// the message's row.
    fn of(jobs: &[&'a Job]) -> Columns<'a> {
        let mut c = Columns::default();
        for job in jobs {
            c.push(&job.event, job.at);
        }
        if c.deletions {
            let targets: HashSet<(&str, i64)> = c
                .channel_id
                .iter()
                .zip(&c.target_seq)
                .filter_map(|(&room, target)| Some((room, (*target)?)))
                .collect();
            for i in 0..c.seq.len() {
                if c.kind[i] == "message" && targets.contains(&(c.channel_id[i], c.seq[i])) {
                    c.deleted[i] = true;
                }
            }
        }
        c
    }

    fn push(&mut self, event: &'a Event, at: Millis) {
        let (kind, author, body, sent_at, target_seq, target_user_id, until) =
            match &event.payload.chat {
                Chat::Message {
                    author,
                    body,
                    sent_at,
                } => (
                    "message",
                    Some(author),
                    Some(&**body),
                    Some(*sent_at),
                    None,
                    None,
                    None,
                ),
                Chat::Deleted { message_seq } => {
                    self.deletions = true;
                    let target = Some(signed(*message_seq));
                    ("deleted", None, None, None, target, None, None)
                }
                Chat::Banned { user_id, until } => {
                    ("banned", None, None, None, None, Some(&**user_id), *until)
                }
            };
        self.channel_id.push(&event.room);
        self.seq.push(signed(event.seq));
        self.kind.push(kind);
        self.recorded_at.push(at);
        self.author_id.push(author.map(|a| &*a.id));
        self.author_login.push(author.map(|a| &*a.login));
        self.author_display_name
            .push(author.map(|a| &*a.display_name));
        self.body.push(body);
        self.sent_at.push(sent_at);
        self.deleted.push(false);
        self.target_seq.push(target_seq);
        self.target_user_id.push(target_user_id);
        self.until.push(until);
    }

    fn len(&self) -> usize {
        self.seq.len()
    }

    /// The statements' parameters.
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 13] {
        [
            &self.channel_id,
            &self.seq,
            &self.kind,
            &self.recorded_at,
            &self.author_id,
            &self.author_login,
            &self.author_display_name,
            &self.body,
            &self.sent_at,
            &self.deleted,
            &self.target_seq,
            &self.target_user_id,
            &self.until,
        ]
    }

    /// Whether `stored` (a row of [`STORED`]) holds the event of row `i`: a retry of
    /// the same event, not another one that took its seq.
    fn same(&self, i: usize, stored: &tokio_postgres::Row) -> Result<bool, tokio_postgres::Error> {
        Ok(stored.try_get::<_, &str>(2)? == self.kind[i]
            && stored.try_get::<_, Option<&str>>(3)? == self.author_id[i]
            && stored.try_get::<_, Option<&str>>(4)? == self.body[i]
            && stored.try_get::<_, Option<i64>>(5)? == self.sent_at[i]
            && stored.try_get::<_, Option<i64>>(6)? == self.target_seq[i]
            && stored.try_get::<_, Option<&str>>(7)? == self.target_user_id[i]
            && stored.try_get::<_, Option<i64>>(8)? == self.until[i])
    }
}

struct Job {
    event: Event,
    at: Millis,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("event", &self.event)
            .field("at", &self.at)
            .finish()
    }
}

/// The writer's handle: what `record` sends events to.
#[derive(Debug, Clone)]
pub struct ChatWriter {
    queue: mpsc::Sender<Job>,
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
            event: event.clone(),
            at,
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

/// The writer's connection, its statements, and the channels it found.
struct Conn {
    client: Client,
    insert: Statement,
    careful: Statement,
    stored: Statement,
    channels: Statement,
    /// Channels known to exist (at most [`KNOWN_CHANNELS`]).
    known: HashSet<Box<str>>,
}

impl Conn {
    /// Learns whether the channels of `jobs` that it does not know yet exist.
    async fn learn_channels(&mut self, jobs: &[Job]) -> Result<(), tokio_postgres::Error> {
        let mut unknown: Vec<&str> = Vec::new();
        for job in jobs {
            let room = &*job.event.room;
            if !self.known.contains(room) && !unknown.contains(&room) {
                unknown.push(room);
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let found = self.client.query(&self.channels, &[&unknown]).await?;
        if self.known.len() + found.len() > KNOWN_CHANNELS {
            self.known.clear();
        }
        for row in found {
            self.known.insert(row.try_get::<_, &str>(0)?.into());
        }
        Ok(())
    }
}

/// The writer's loop: a batch at a time until every handle is gone.
async fn run(settings: PgSettings, mut jobs: mpsc::Receiver<Job>) {
    let mut conn: Option<Conn> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A sender that stopped waiting (its call's deadline passed while PostgreSQL
        // hung) has been told its event failed: recording it now would keep a message
        // that was refused.
        batch.retain(|j| !j.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        match write(&settings, &mut conn, &batch).await {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.done.send(answer);
                }
            }
            // PostgreSQL refused the batch for what one of its events holds (a NUL
            // character in a message, say): each event alone, so only that one fails.
            Err(Failure::Refused(..)) if batch.len() > 1 => {
                for job in batch.drain(..) {
                    let one = std::slice::from_ref(&job);
                    let answer = match write(&settings, &mut conn, one).await {
                        Ok(mut answers) => answers.pop().expect("one answer per event"),
                        Err(f) => Err(f.into_error()),
                    };
                    let _ = job.done.send(answer);
                }
            }
            Err(failure) => {
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(failure.clone().into_error()));
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
    /// What the senders of the failed write hear.
    fn into_error(self) -> StoreError {
        match self {
            Failure::Unavailable(e) => e,
            Failure::Refused(code, message) if code.starts_with("22") => {
                StoreError::Invalid(format!("{REFUSED_INPUT}: {message}"))
            }
            Failure::Refused(_, message) => {
                StoreError::Unavailable(format!("PostgreSQL refused a chat event: {message}"))
            }
        }
    }
}

/// The connection, made (with its statements prepared) when there is none or it
/// closed.
async fn connected<'c>(
    settings: &PgSettings,
    conn: &'c mut Option<Conn>,
) -> Result<&'c mut Conn, Failure> {
    if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
        *conn = None;
        let client = super::connect(&settings.url)
            .await
            .map_err(|e| Failure::Unavailable(StoreError::Unavailable(e.to_string())))?;
        let timeout = settings.statement_timeout.as_millis();
        client
            .batch_execute(&format!("SET statement_timeout = {timeout}"))
            .await
            .map_err(|e| unavailable(&e))?;
        let prepare = async |sql: &str| client.prepare(sql).await.map_err(|e| unavailable(&e));
        let insert = prepare(&insert()).await?;
        let careful = prepare(&careful()).await?;
        let stored = prepare(STORED).await?;
        let channels = prepare(CHANNELS).await?;
        *conn = Some(Conn {
            client,
            insert,
            careful,
            stored,
            channels,
            known: HashSet::new(),
        });
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// Writes a batch, each event's row committed or found already kept: one answer per
/// event, in order.
async fn write(
    settings: &PgSettings,
    conn: &mut Option<Conn>,
    jobs: &[Job],
) -> Result<Vec<Result<(), StoreError>>, Failure> {
    let c = connected(settings, conn).await?;
    match write_on(c, jobs).await {
        Ok(answers) => Ok(answers),
        Err(e) => {
            if c.client.is_closed() {
                *conn = None;
            }
            Err(unavailable(&e))
        }
    }
}

/// [`write`] on a connection: the events of channels that do not exist answered "not
/// found", the others inserted.
async fn write_on(
    c: &mut Conn,
    jobs: &[Job],
) -> Result<Vec<Result<(), StoreError>>, tokio_postgres::Error> {
    c.learn_channels(jobs).await?;
    let mut answers: Vec<Result<(), StoreError>> = jobs
        .iter()
        .map(|j| {
            if c.known.contains(&*j.event.room) {
                Ok(())
            } else {
                Err(StoreError::NotFound(format!(
                    "no channel has id `{}`",
                    j.event.room
                )))
            }
        })
        .collect();
    let kept: Vec<&Job> = jobs
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_ok())
        .map(|(j, _)| j)
        .collect();
    if kept.is_empty() {
        return Ok(answers);
    }
    let rows = Columns::of(&kept);
    let written = if rows.deletions {
        careful_write(c, &rows).await?
    } else {
        match c.client.execute(&c.insert, &rows.params()).await {
            Ok(_) => vec![Ok(()); rows.len()],
            // A seq already taken: which one, and by what.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                careful_write(c, &rows).await?
            }
            Err(e) => return Err(e),
        }
    };
    let mut written = written.into_iter();
    for answer in answers.iter_mut().filter(|a| a.is_ok()) {
        *answer = written.next().expect("one answer per row");
    }
    Ok(answers)
}

/// [`careful`], then each row it did not insert compared with the stored one.
async fn careful_write(
    c: &Conn,
    rows: &Columns<'_>,
) -> Result<Vec<Result<(), StoreError>>, tokio_postgres::Error> {
    let inserted = c.client.query(&c.careful, &rows.params()).await?;
    let inserted: HashSet<(&str, i64)> = inserted
        .iter()
        .map(|r| Ok((r.try_get::<_, &str>(0)?, r.try_get::<_, i64>(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let taken: Vec<usize> = (0..rows.len())
        .filter(|&i| !inserted.contains(&(rows.channel_id[i], rows.seq[i])))
        .collect();
    let mut answers = vec![Ok(()); rows.len()];
    if taken.is_empty() {
        return Ok(answers);
    }
    let channels: Vec<&str> = taken.iter().map(|&i| rows.channel_id[i]).collect();
    let seqs: Vec<i64> = taken.iter().map(|&i| rows.seq[i]).collect();
    let stored = c.client.query(&c.stored, &[&channels, &seqs]).await?;
    for i in taken {
        let key = (rows.channel_id[i], rows.seq[i]);
        let mut same = false;
        for row in &stored {
            if (row.try_get::<_, &str>(0)?, row.try_get::<_, i64>(1)?) == key {
                same = rows.same(i, row)?;
            }
        }
        if !same {
            answers[i] = Err(StoreError::Conflict(format!(
                "seq {} of room `{}` is taken by another event (a write that timed out \
                 committed late): this one was not recorded",
                key.1, key.0
            )));
        }
    }
    Ok(answers)
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

    fn jobs(events: Vec<(Event, Millis)>) -> Vec<Job> {
        events
            .into_iter()
            .map(|(event, at)| Job {
                event,
                at,
                done: oneshot::channel().0,
            })
            .collect()
    }

    #[test]
    fn rows_carry_what_each_kind_needs() {
        let jobs = jobs(vec![
            (message(1), 7),
            (event(2, Chat::Deleted { message_seq: 1 }), 8),
            (
                event(
                    3,
                    Chat::Banned {
                        user_id: "u2".into(),
                        until: Some(9),
                    },
                ),
                8,
            ),
        ]);
        let c = Columns::of(&jobs.iter().collect::<Vec<_>>());
        assert_eq!(
            (
                c.kind[0],
                c.seq[0],
                c.recorded_at[0],
                c.sent_at[0],
                c.body[0]
            ),
            ("message", 1, 7, Some(5), Some("hi"))
        );
        assert_eq!(
            (c.author_id[0], c.author_login[0], c.author_display_name[0]),
            (Some("u1"), Some("alice"), Some("Alice"))
        );
        assert_eq!(
            (c.kind[1], c.target_seq[1], c.body[1]),
            ("deleted", Some(1), None)
        );
        assert_eq!(
            (c.kind[2], c.target_user_id[2], c.until[2]),
            ("banned", Some("u2"), Some(9))
        );
        assert!(c.deletions);
        assert_eq!(c.channel_id, ["ch_1"; 3]);
    }

    #[test]
    fn a_deletion_in_the_same_batch_marks_its_message() {
        let jobs = jobs(vec![
            (message(1), 0),
            (message(2), 0),
            (event(3, Chat::Deleted { message_seq: 2 }), 0),
        ]);
        let all: Vec<&Job> = jobs.iter().collect();
        assert_eq!(Columns::of(&all).deleted, [false, true, false]);
        let none = self::jobs(vec![(message(1), 0), (message(2), 0)]);
        let c = Columns::of(&none.iter().collect::<Vec<_>>());
        assert!(!c.deletions);
        assert_eq!(c.deleted, [false, false]);
    }
}
