//! Rooms across nodes through Redis: the commands that order a room's events
//! ([`RedisRooms`]) and the subscriber link that brings every node the events of the
//! rooms it watches ([`Link`]).
//!
//! Every key of room R carries the hash tag `{R}`, so that a room's keys share one slot
//! of a Redis Cluster and each script touches one slot: `sh:{R}:seq` (the last seq
//! given), `sh:{R}:pend` (seqs given and not settled yet, scored by when, on Redis'
//! clock), `sh:{R}:x` (the room's stream of settled events, capped by length) and the
//! pub/sub channel `sh:{R}`. What is published and kept is [`crate::wire`]'s bytes.
//! The same commands serve one Redis and a Redis Cluster ([`Servers`]).
//!
//! An event is ordered in two steps around the store of record: `order` gives the seq
//! (and marks it pending), the caller records the event, then `settle` appends it (or a
//! void, when the record was refused) to the stream and publishes it in one script, so
//! no node ever receives an event that was not recorded.
//!
//! Seqs are given in an epoch, one per key slot (`sh:{<slot's tag>}:epoch`, in the slot
//! of the rooms it covers, so that a master of a cluster that comes back empty loses
//! exactly the epochs of the rooms it lost), made with a settling time by the first
//! node that finds a slot without one ([`RedisRooms::epochs`]) and announced on
//! [`EPOCHS`]; an order in another epoch, or while it settles, is refused. Beside the
//! rooms, nodes share through Redis their viewer counts, APQ registrations, rate budgets
//! ([`RedisRooms::spend`], the generic cell rate algorithm on Redis' clock) and plain
//! messages ([`RedisRooms::publish`]).

mod conn;
pub mod slots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::{RedisResult, Script};
use tokio::sync::{mpsc, oneshot};

pub use conn::{Conn, Messages, Received, Servers, Subscriptions};

/// `KEYS` seq, pend, epoch, settling; `ARGV` the epoch the node holds. The next seq,
/// marked pending; -1 when the room has no counter (never seeded in this epoch), -2
/// when the slot's epoch is not the node's (its master came back empty and the node
/// has not said yet what it saw before), -3 while the nodes settle a new epoch.
const ORDER: &str = r"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -2 end
if redis.call('EXISTS', KEYS[4]) == 1 then return -3 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), seq)
return seq
";

/// What [`RedisRooms::order`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordered {
    /// The room's next seq, pending until settled.
    Seq(u64),
    /// The room has no counter in this epoch: [`RedisRooms::given`] seeds it.
    Unseeded,
    /// Redis' epoch is not the one the node holds.
    OtherEpoch,
    /// The nodes are settling a new epoch: no seq is given until they have.
    Settling,
}

/// `KEYS` epoch, settling; `ARGV` a new epoch, milliseconds. A slot's epoch, made (with
/// a settling time of that many milliseconds) when the slot has none: Redis is new, or
/// its master came back empty. Answers the epoch, how many milliseconds of settling
/// are left, and 1 if it was made now.
const EPOCH: &str = r"
local epoch = redis.call('GET', KEYS[1])
local made = 0
if not epoch then
  epoch = ARGV[1]
  made = 1
  redis.call('SET', KEYS[1], epoch)
  redis.call('SET', KEYS[2], 1, 'PX', ARGV[2])
end
return {epoch, math.max(redis.call('PTTL', KEYS[2]), 0), made}
";

/// The channel new epochs are announced on (by the node that made them, once it has
/// read every slot's): every node joins them (raising the counters of its open rooms
/// of the slots whose epoch changed) while they settle.
pub const EPOCHS: &str = "sh:epochs";

/// A slot's epoch, as [`RedisRooms::epochs`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// Its id: made by the node that found the slot without one.
    pub id: String,
    /// Whether this call made it.
    pub made: bool,
    /// How long the nodes still settle it: while they do, no seq is given, and every
    /// node raises the counters of the rooms it has open to the highest seq it has
    /// seen, so that seqs never repeat.
    pub settling: Duration,
}

/// `KEYS` pend, stream; `ARGV` seq, event bytes, stream length, channel, the publish
/// command (`SPUBLISH` in a cluster: the channel is in the room's slot). The settled
/// event (or void) leaves the pending set, joins the stream and is published; 0 (and
/// nothing done) when it is no longer pending: a node voided it, too late.
const SETTLE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
redis.call(ARGV[5], ARGV[4], ARGV[2])
return 1
";

/// `KEYS` pend, stream; `ARGV` seq, milliseconds, void bytes, stream length, channel,
/// the publish command.
/// Settles the seq as a void if it has been pending longer than that (on Redis' clock):
/// 1; -1 when it is pending but not for that long; 0 when it is not pending.
const VOID: &str = r"
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(at) > now - tonumber(ARGV[2]) then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[3])
redis.call(ARGV[6], ARGV[5], ARGV[3])
return 1
";

/// What [`RedisRooms::void_stale`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voided {
    /// The seq was voided: every node watching hears it.
    Voided,
    /// It has been pending, but not for that long yet.
    Recent,
    /// It is not pending (settled, or never given).
    NotPending,
}

/// `KEYS` seq, pend, settling; `ARGV` floor. Raises the room's counter to `floor` (the
/// store's last seq) when it is missing or lower, then answers the last seq given, the
/// pending ones, and whether the nodes are settling a new epoch.
const GIVEN: &str = r"
local floor = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < floor then
  redis.call('SET', KEYS[1], floor)
  cur = floor
end
return {cur, redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('EXISTS', KEYS[3])}
";

/// What [`RedisRooms::given`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The last seq given in the room.
    pub last: u64,
    /// The seqs given and not settled yet, in order.
    pub pending: Vec<u64>,
    /// Whether the nodes were settling a new epoch.
    pub settling: bool,
}

/// A stream entry as `XRANGE` answers it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The epoch of slot `slot`.
fn epoch_key(slot: u16) -> String {
    format!("sh:{{{}}}:epoch", slots::tag(slot))
}

/// Present while the nodes settle a new epoch of slot `slot`.
fn settling_key(slot: u16) -> String {
    format!("sh:{{{}}}:settling", slots::tag(slot))
}

/// How many slots' epochs are read (or made) at once (a cluster client that is
/// repairing its connections queues what it cannot send).
const EPOCHS_AT_ONCE: usize = 64;

/// Redis' key of room `room` with `suffix`.
fn key(room: &str, suffix: &str) -> String {
    format!("sh:{{{room}}}:{suffix}")
}

/// The pub/sub channel of room `room`.
pub fn channel(room: &str) -> String {
    format!("sh:{{{room}}}")
}

/// The key slot of room `room`'s keys (and channel).
pub fn room_slot(room: &str) -> u16 {
    slots::slot(&channel(room))
}

/// The room a pub/sub channel is for.
pub fn room_of(channel: &str) -> Option<&str> {
    channel.strip_prefix("sh:{")?.strip_suffix('}')
}

/// The room commands, on one connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisRooms {
    conn: Arc<Mutex<Made>>,
    /// Makes the connection again: a connection refused by Redis' authentication (a
    /// user not made yet, a password being rotated) does not try again by itself.
    remake: Arc<dyn Fn() -> RedisResult<Conn> + Send + Sync>,
    timeout: Duration,
    stream_len: usize,
    /// `PUBLISH`, or `SPUBLISH` in a cluster (sharded pub/sub).
    publish_command: &'static str,
    order: Script,
    settle: Script,
    given: Script,
    void: Script,
    epoch: Script,
    gcra: Script,
}

impl std::fmt::Debug for RedisRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRooms")
            .field("stream_len", &self.stream_len)
            .finish_non_exhaustive()
    }
}

/// The command connection, and how many times it was made before.
struct Made {
    conn: Conn,
    again: u64,
}

impl RedisRooms {
    /// Commands on the connection `make` makes, each given up after `timeout`; each
    /// room's stream keeps about `stream_len` events.
    pub fn new(
        make: impl Fn() -> RedisResult<Conn> + Send + Sync + 'static,
        publish_command: &'static str,
        timeout: Duration,
        stream_len: usize,
    ) -> RedisResult<RedisRooms> {
        Ok(RedisRooms {
            conn: Arc::new(Mutex::new(Made {
                conn: make()?,
                again: 0,
            })),
            remake: Arc::new(make),
            publish_command,
            timeout,
            stream_len: stream_len.max(1),
            order: Script::new(ORDER),
            settle: Script::new(SETTLE),
            given: Script::new(GIVEN),
            void: Script::new(VOID),
            epoch: Script::new(EPOCH),
            gcra: Script::new(GCRA),
        })
    }

    /// Gives the room's next seq (pending until settled) in epoch `epoch` (its slot's).
    pub async fn order(&self, room: &str, epoch: &str) -> RedisResult<Ordered> {
        let slot = room_slot(room);
        let seq: i64 = self
            .run(|mut conn| {
                let mut order = self.order.key(key(room, "seq"));
                order
                    .key(key(room, "pend"))
                    .key(epoch_key(slot))
                    .key(settling_key(slot))
                    .arg(epoch);
                async move { order.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(match seq {
            -1 => Ordered::Unseeded,
            -2 => Ordered::OtherEpoch,
            -3 => Ordered::Settling,
            seq => Ordered::Seq(u64::try_from(seq).unwrap_or(0)),
        })
    }

    /// The epochs of slots `of`, in that order (each as its master answered: one
    /// master down fails only its slots): made now, with `settling` to settle them,
    /// where a slot has none. Read [`EPOCHS_AT_ONCE`] at a time; once a whole batch has
    /// failed (Redis, or the cluster, is down) the rest are not asked for.
    pub async fn epochs(
        &self,
        of: impl Iterator<Item = u16>,
        settling: Duration,
    ) -> Vec<RedisResult<Epoch>> {
        let fresh = format!("{:016x}", fastrand::u64(1..));
        let ms = u64::try_from(settling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let (fresh, ms) = (&fresh, ms);
        let slots: Vec<u16> = of.collect();
        let mut read = Vec::with_capacity(slots.len());
        for batch in slots.chunks(EPOCHS_AT_ONCE) {
            if !read.is_empty()
                && read[read.len().saturating_sub(EPOCHS_AT_ONCE)..]
                    .iter()
                    .all(Result::is_err)
            {
                read.extend(batch.iter().map(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "not asked: the slots read before failed",
                    )))
                }));
                continue;
            }
            let answers: Vec<RedisResult<Epoch>> =
                futures_util::stream::iter(batch.iter().copied())
                    .map(|slot| async move {
                        let (id, left, made): (String, u64, i64) = self
                            .run(|mut conn| {
                                let mut epoch = self.epoch.key(epoch_key(slot));
                                epoch.key(settling_key(slot)).arg(fresh).arg(ms);
                                async move { epoch.invoke_async(&mut conn).await }
                            })
                            .await?;
                        Ok(Epoch {
                            id,
                            made: made == 1,
                            settling: Duration::from_millis(left),
                        })
                    })
                    .buffered(EPOCHS_AT_ONCE)
                    .collect()
                    .await;
            read.extend(answers);
        }
        read
    }

    /// Settles the event at `seq` with its bytes (`crate::wire`: the event, or a void):
    /// out of the pending set, into the stream, published to every node watching; false
    /// (nothing done) when it was no longer pending (voided: too late).
    pub async fn settle(&self, room: &str, seq: u64, bytes: &[u8]) -> RedisResult<bool> {
        let settled: i64 = self
            .run(|mut conn| {
                let mut settle = self.settle.key(key(room, "pend"));
                settle
                    .key(key(room, "x"))
                    .arg(seq)
                    .arg(bytes)
                    .arg(self.stream_len)
                    .arg(channel(room))
                    .arg(self.publish_command);
                async move { settle.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(settled == 1)
    }

    /// Voids the seq `seq` of `room` if it has been pending for `older_than` (its
    /// orderer died, or lost Redis, between ordering and settling it), so that the
    /// room's later events stop waiting for it.
    pub async fn void_stale(
        &self,
        room: &str,
        seq: u64,
        older_than: Duration,
    ) -> RedisResult<Voided> {
        let void = crate::wire::encode(seq, None);
        let ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
        let done: i64 = self
            .run(|mut conn| {
                let mut call = self.void.key(key(room, "pend"));
                call.key(key(room, "x"))
                    .arg(seq)
                    .arg(ms)
                    .arg(&void[..])
                    .arg(self.stream_len)
                    .arg(channel(room))
                    .arg(self.publish_command);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(match done {
            1 => Voided::Voided,
            -1 => Voided::Recent,
            _ => Voided::NotPending,
        })
    }

    /// The last seq given in the room and those still pending, after raising the room's
    /// counter to `floor` if it is lower (or missing).
    pub async fn given(&self, room: &str, floor: u64) -> RedisResult<Given> {
        let (last, mut pending, settling): (u64, Vec<u64>, i64) = self
            .run(|mut conn| {
                let mut given = self.given.key(key(room, "seq"));
                given
                    .key(key(room, "pend"))
                    .key(settling_key(room_slot(room)))
                    .arg(floor);
                async move { given.invoke_async(&mut conn).await }
            })
            .await?;
        pending.sort_unstable();
        Ok(Given {
            last,
            pending,
            settling: settling == 1,
        })
    }

    /// The last `count` entries of the room's stream (what was settled last, events and
    /// voids, as [`crate::wire`] bytes), oldest first.
    pub async fn stream_tail(&self, room: &str, count: usize) -> RedisResult<Vec<Vec<u8>>> {
        let entries: Vec<StreamEntry> = self
            .run(|mut conn| async move {
                redis::cmd("XREVRANGE")
                    .arg(key(room, "x"))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(entries
            .into_iter()
            .rev()
            .filter_map(|(_, fields)| fields.into_iter().next().map(|(_, bytes)| bytes))
            .collect())
    }

    /// `call`'s answer on the command connection within the commands' timeout
    /// (connecting included). A call refused because the connection was lost (Redis
    /// went away since it was made) is made once more: the first one started the
    /// reconnection, so a Redis that is back answers the second. So is one whose
    /// connection Redis' authentication refused, on a connection made again.
    async fn run<T, F, Fut>(&self, call: F) -> RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut again = true;
        loop {
            let (conn, made) = {
                let m = self.conn.lock().unwrap_or_else(|e| e.into_inner());
                (m.conn.clone(), m.again)
            };
            let answer = tokio::time::timeout_at(deadline, call(conn))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", self.timeout),
                    )
                    .into())
                });
            match answer {
                Err(e) if again && (e.is_connection_dropped() || e.is_connection_refusal()) => {
                    again = false;
                }
                Err(e) if again && e.kind() == redis::ErrorKind::AuthenticationFailed => {
                    again = false;
                    let mut m = self.conn.lock().unwrap_or_else(|e| e.into_inner());
                    // Once, however many calls were refused with it.
                    if m.again == made {
                        m.conn = (self.remake)()?;
                        m.again += 1;
                    }
                }
                answer => return answer,
            }
        }
    }
}

impl RedisRooms {
    /// Publishes `bytes` on `channel`: how many subscribers received it (this node's
    /// link included, when it is subscribed).
    pub async fn publish(&self, channel: &str, bytes: &[u8]) -> RedisResult<usize> {
        self.run(|mut conn| async move {
            redis::cmd(self.publish_command)
                .arg(channel)
                .arg(bytes)
                .query_async(&mut conn)
                .await
        })
        .await
    }
}

/// `KEYS` the bucket; `ARGV` interval and tolerance (µs). The generic cell rate
/// algorithm on Redis' clock: the bucket keeps when it is full again; 0 when the call
/// is allowed (and spent), else the µs to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local full = tonumber(redis.call('GET', KEYS[1]) or '0')
if full < now then full = now end
local wait = full - now - tonumber(ARGV[2])
if wait > 0 then return wait end
local next = full + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return 0
";

/// Rate budgets across nodes: one key per budget and client, `sh:rl:<bucket>`, holding
/// when the bucket is full again (expiring then).
impl RedisRooms {
    /// Spends one call from `bucket`, which refills one call per `interval` and holds
    /// `tolerance / interval + 1` calls: Ok, or how long until one is allowed.
    pub async fn spend(
        &self,
        bucket: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> RedisResult<Result<(), Duration>> {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2);
        let wait: u64 = self
            .run(|mut conn| {
                let mut call = self.gcra.key(format!("sh:rl:{bucket}"));
                call.arg(us(interval).max(1)).arg(us(tolerance));
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(match wait {
            0 => Ok(()),
            us => Err(Duration::from_micros(us)),
        })
    }
}

/// Presence across nodes: each node keeps its per-room viewer counts in a hash of its
/// own, `sh:{pres}:<node>` (a field per room, and an empty one so that the hash exists
/// with no viewers), which expires unless the node writes it again; `sh:{pres}:nodes`
/// lists the nodes that wrote one, and a node whose hash expired is dropped from it.
/// (One hash tag: in a cluster, they share a slot, so each write is one transaction.)
impl RedisRooms {
    /// Writes node `node`'s counts, kept for `ttl`.
    pub async fn report_presence(
        &self,
        node: &str,
        counts: &[(Box<str>, u32)],
        ttl: Duration,
    ) -> RedisResult<()> {
        let key = format!("sh:{{pres}}:{node}");
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore().hset(&key, "", 0).ignore();
        if !counts.is_empty() {
            let fields: Vec<(&str, u32)> = counts.iter().map(|(r, n)| (&**r, *n)).collect();
            pipe.hset_multiple(&key, &fields).ignore();
        }
        pipe.pexpire(&key, i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .ignore()
            .sadd(NODES_KEY, node)
            .ignore();
        self.run(|mut conn| {
            let pipe = pipe.clone();
            async move { pipe.query_async(&mut conn).await }
        })
        .await
    }

    /// The viewer counts of every node but `node` whose hash has not expired, summed by
    /// room.
    pub async fn others_presence(&self, node: &str) -> RedisResult<Vec<(String, u64)>> {
        let nodes: Vec<String> = self
            .run(|mut conn| async move {
                redis::cmd("SMEMBERS")
                    .arg(NODES_KEY)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let others: Vec<&String> = nodes.iter().filter(|n| *n != node).collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in &others {
            pipe.hgetall(format!("sh:{{pres}}:{n}"));
        }
        let hashes: Vec<Vec<(String, u64)>> = self
            .run(|mut conn| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        let mut sums: std::collections::BTreeMap<String, u64> = Default::default();
        for (n, hash) in others.iter().zip(hashes) {
            if hash.is_empty() {
                // Expired: the node stopped reporting.
                let _: RedisResult<i64> = self
                    .run(|mut conn| {
                        let mut srem = redis::cmd("SREM");
                        srem.arg(NODES_KEY).arg(n.as_str());
                        async move { srem.query_async(&mut conn).await }
                    })
                    .await;
            }
            for (room, count) in hash.into_iter().filter(|(room, _)| !room.is_empty()) {
                *sums.entry(room).or_default() += count;
            }
        }
        Ok(sums.into_iter().collect())
    }
}

/// The nodes that report viewer counts.
const NODES_KEY: &str = "sh:{pres}:nodes";

/// How long a document registered by APQ stays shared between nodes.
const SHARED_DOCUMENT_SECS: u64 = 86_400;

/// Documents registered by APQ (automatic persisted queries), shared between nodes:
/// `sh:apq:<sha256 hex>` holds the document's text for a day, so a GET by its hash
/// works on every node once one node has registered it.
impl RedisRooms {
    /// Shares the text of the document whose hash is `hash` (lowercase hex).
    pub async fn share_document(&self, hash: &str, text: &str) -> RedisResult<()> {
        self.run(|mut conn| async move {
            redis::cmd("SET")
                .arg(format!("sh:apq:{hash}"))
                .arg(text)
                .arg("EX")
                .arg(SHARED_DOCUMENT_SECS)
                .query_async(&mut conn)
                .await
        })
        .await
    }

    /// The text some node shared for `hash`, if any.
    pub async fn shared_document(&self, hash: &str) -> RedisResult<Option<String>> {
        self.run(|mut conn| async move {
            redis::cmd("GET")
                .arg(format!("sh:apq:{hash}"))
                .query_async(&mut conn)
                .await
        })
        .await
    }
}

/// Why the link could not subscribe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Redis is not reachable (or did not confirm in time).
    #[error("redis is unreachable: {0}")]
    Unreachable(String),
    /// The link's thread has stopped.
    #[error("the redis link has stopped")]
    Stopped,
}

/// What the link hands the node.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A message on a room's channel.
    Message {
        /// The channel.
        channel: &'a str,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// The link is connected and subscribed to every room it watches; `again` after it
    /// was lost (what was published meanwhile did not come).
    Subscribed {
        /// Whether it had been connected before.
        again: bool,
    },
}

/// What the link's thread is asked.
enum Want {
    /// Subscribe to a channel, and say when Redis has confirmed.
    Subscribe {
        channel: String,
        done: oneshot::Sender<Result<(), LinkError>>,
    },
    /// Unsubscribe from these channels (in one command).
    Unsubscribe(Vec<String>),
}

/// The node's subscriber connection to Redis, on a thread of its own: subscribed to the
/// channel of every room the node watches, it hands every message to the node; lost,
/// it reconnects (with a growing pause, up to a second) and subscribes again.
#[derive(Debug, Clone)]
pub struct Link {
    wants: mpsc::UnboundedSender<Want>,
    down: Arc<Mutex<Option<String>>>,
}

/// Starts a node's connections to Redis (`servers`): the command connection (lazy:
/// it connects on first use and again after a loss) and the [`Link`] on its thread,
/// subscribed to the channels `always` from the start (`first` runs on its thread
/// before anything else), whose `deliver` gets each message in the order Redis sent
/// them (and word of each connection).
/// Commands, connecting, subscribing and the link's heartbeat each give up after
/// `timeout`; each room's stream keeps about `stream_len` events.
pub fn start(
    servers: Servers,
    timeout: Duration,
    stream_len: usize,
    always: Vec<String>,
    first: Box<dyn FnOnce() + Send>,
    deliver: impl FnMut(Incoming<'_>) + Send + 'static,
) -> Result<(RedisRooms, Link), LinkError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LinkError::Unreachable(e.to_string()))?;
    // Made on the link's runtime, which runs its upkeep (a cluster's connections and
    // slot map; one server's watch for disconnections).
    let make = {
        let (servers, rt) = (servers.clone(), rt.handle().clone());
        move || {
            let _on = rt.enter();
            servers.commands(timeout)
        }
    };
    let redis = RedisRooms::new(make, servers.publish_command(), timeout, stream_len)
        .map_err(|e| LinkError::Unreachable(e.to_string()))?;
    let (wants, rx) = mpsc::unbounded_channel();
    let down = Arc::new(Mutex::new(Some("connecting".to_owned())));
    let state = Arc::clone(&down);
    std::thread::Builder::new()
        .name("redis-link".into())
        .spawn(move || {
            first();
            rt.block_on(run(servers, timeout, always, rx, state, deliver));
        })
        .map_err(|e| LinkError::Unreachable(e.to_string()))?;
    Ok((redis, Link { wants, down }))
}

impl Link {
    /// Why the link is not connected now, if it is not.
    pub fn down(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Subscribes to `channel` (a room's is [`channel`]'s): done once Redis has
    /// confirmed, so that every message published after this returns reaches the node.
    pub async fn subscribe(&self, channel: String) -> Result<(), LinkError> {
        let (done, confirmed) = oneshot::channel();
        self.wants
            .send(Want::Subscribe { channel, done })
            .map_err(|_| LinkError::Stopped)?;
        confirmed.await.map_err(|_| LinkError::Stopped)?
    }

    /// Unsubscribes from `channels`, in one command (nothing is awaited: what still
    /// comes for them is dropped by the node).
    pub fn unsubscribe(&self, channels: Vec<String>) {
        if !channels.is_empty() {
            let _ = self.wants.send(Want::Unsubscribe(channels));
        }
    }
}

/// The link's thread: connect, subscribe to what is wanted, deliver, until the node
/// drops every [`Link`].
async fn run(
    servers: Servers,
    timeout: Duration,
    mut wanted: Vec<String>,
    mut wants: mpsc::UnboundedReceiver<Want>,
    down: Arc<Mutex<Option<String>>>,
    mut deliver: impl FnMut(Incoming<'_>),
) {
    let mut pause = Duration::from_millis(50);
    let set_down = |why: Option<String>| *down.lock().unwrap_or_else(|e| e.into_inner()) = why;
    let mut lost = false;
    let mut attempt = 0;
    loop {
        let why = match connect(&servers, attempt, timeout, &wanted).await {
            Ok((mut subs, mut messages)) => {
                pause = Duration::from_millis(50);
                tracing::info!(rooms = wanted.len(), "redis link: subscribed");
                // Told before it counts as up, so that the node is not taken for
                // ready before it has caught up.
                deliver(Incoming::Subscribed {
                    again: std::mem::take(&mut lost),
                });
                set_down(None);
                let mut beat = tokio::time::interval(timeout.max(Duration::from_secs(1)));
                loop {
                    tokio::select! {
                        want = wants.recv() => match want {
                            None => return,
                            Some(Want::Subscribe { channel, done }) => {
                                let known = wanted.contains(&channel);
                                let r = if known {
                                    Ok(())
                                } else {
                                    within(timeout, subs.subscribe(std::slice::from_ref(&channel))).await
                                };
                                let failed = r.as_ref().err().cloned();
                                if r.is_ok() && !known {
                                    wanted.push(channel);
                                }
                                let _ = done.send(r);
                                if let Some(e) = failed {
                                    break e.to_string();
                                }
                            }
                            Some(Want::Unsubscribe(channels)) => {
                                wanted.retain(|c| !channels.contains(c));
                                if let Err(e) = within(timeout, subs.unsubscribe(&channels)).await {
                                    break e.to_string();
                                }
                            }
                        },
                        msg = messages.next() => match msg {
                            Received::Message { channel, bytes } => deliver(Incoming::Message {
                                channel: &channel,
                                bytes: &bytes,
                            }),
                            Received::Lost => break "the connection closed".to_string(),
                        },
                        _ = beat.tick() => {
                            if let Err(e) = within(timeout, subs.ping()).await {
                                break e.to_string();
                            }
                        }
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %why, retry_in = ?pause, "redis link: lost");
        set_down(Some(why.clone()));
        lost = true;
        // Subscriptions asked meanwhile fail at once rather than wait for Redis.
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                want = wants.recv() => match want {
                    Some(Want::Subscribe { done, .. }) => {
                        let _ = done.send(Err(LinkError::Unreachable(why.clone())));
                    }
                    Some(Want::Unsubscribe(channels)) => {
                        wanted.retain(|c| !channels.contains(c));
                    }
                    None => return,
                },
            }
        }
        pause = (pause * 2).min(Duration::from_secs(1));
        attempt += 1;
    }
}

/// A subscriber connection (the `attempt`th), subscribed to `wanted`.
async fn connect(
    servers: &Servers,
    attempt: usize,
    timeout: Duration,
    wanted: &[String],
) -> Result<(Subscriptions, Messages), LinkError> {
    let (mut subs, messages) = within(timeout, servers.subscriber(attempt)).await?;
    // A hundred channels at a time, each hundred within the timeout: a node with
    // thousands of rooms open subscribes again however long all of them take.
    for some in wanted.chunks(100) {
        within(timeout, subs.subscribe(some)).await?;
    }
    Ok((subs, messages))
}

/// `f`'s value, or why Redis did not give it within `timeout`.
async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = RedisResult<T>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LinkError::Unreachable(e.to_string())),
        Err(_) => Err(LinkError::Unreachable(format!(
            "no answer within {timeout:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_and_channel_share_its_hash_tag() {
        assert_eq!(key("ch_u1", "seq"), "sh:{ch_u1}:seq");
        assert_eq!(channel("ch_u1"), "sh:{ch_u1}");
        assert_eq!(room_of("sh:{ch_u1}"), Some("ch_u1"));
        assert_eq!(room_of("sh:ch_u1"), None);
        assert_eq!(room_of("other"), None);
    }
}
