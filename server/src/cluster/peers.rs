//! What a mutation changed, announced to the other nodes before it answers: their
//! caches drop it, so a write answered on one node is seen by every request that
//! starts after it on every node.
//!
//! A node publishes its changes on `sh:changes` (its id, a number, the changes); every
//! other node subscribed there hands them to its shards through its event sink (which
//! bumps its write counter: its next request drains them first) and only then answers
//! on `sh:changes:<origin>`. `PUBLISH` (`SPUBLISH` in a cluster, on the channel's own
//! master, where every node's link subscribes) says how many links received the
//! changes, so the origin waits for that many answers less its own, at most one Redis
//! timeout (a node that does not answer in time is logged; the write stands, it is
//! committed).
//! While the node's link is down its mutations are refused before they touch the store
//! (they could not be announced), and once it is back every cache of the node is
//! cleared (it may have missed other nodes' announcements meanwhile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use streamhub_pubsub::redis::{Link, RedisRooms};
use tokio::sync::oneshot;

use crate::domain::events::{EventSink, Notice};
use crate::store::{Change, StoreError};

/// The channel every node announces its changes on.
pub const CHANGES: &str = "sh:changes";

/// The channel node `node`'s announcements are answered on.
pub fn answers(node: &str) -> String {
    format!("{CHANGES}:{node}")
}

/// This node's side of the announcements: its own, waiting for answers, and the
/// others', handed to its shards.
#[derive(Debug)]
pub struct Peers {
    node: Box<str>,
    answers: String,
    events: Arc<dyn EventSink>,
    timeout: Duration,
    redis: OnceLock<RedisRooms>,
    link: OnceLock<Link>,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
}

/// An announcement waiting for answers.
#[derive(Debug, Default)]
struct Waiting {
    got: usize,
    want: Option<usize>,
    done: Option<oneshot::Sender<()>>,
}

impl Waiting {
    /// Tells the waiter once every answer it wants has come.
    fn check(&mut self) {
        if self.want.is_some_and(|w| self.got >= w) {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

impl Peers {
    /// Node `node`'s side, handing other nodes' changes to `events`; an announcement
    /// waits at most `timeout` for its answers.
    pub fn new(node: &str, events: Arc<dyn EventSink>, timeout: Duration) -> Peers {
        Peers {
            node: node.into(),
            answers: answers(node),
            events,
            timeout,
            redis: OnceLock::new(),
            link: OnceLock::new(),
            next: AtomicU64::new(0),
            waiting: Mutex::default(),
        }
    }

    /// Connects it to Redis (once the connections are made).
    pub(super) fn connect(&self, redis: RedisRooms, link: Link) {
        let _ = self.redis.set(redis);
        let _ = self.link.set(link);
    }

    /// Whether a mutation may go ahead: not while the link is down, since its changes
    /// could not reach the other nodes.
    pub fn ready(&self) -> Result<(), StoreError> {
        match self.link.get().and_then(Link::down) {
            Some(why) => Err(StoreError::Unavailable(format!(
                "redis: other nodes cannot be told of a change: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Announces `changes` to the other nodes; done once every node that received them
    /// has handed them to its shards, or after the timeout (logged).
    pub async fn announce(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let Some(redis) = self.redis.get() else {
            return;
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, answered) = oneshot::channel();
        self.lock().insert(
            n,
            Waiting {
                done: Some(done),
                ..Waiting::default()
            },
        );
        let bytes = encode(&self.node, n, changes);
        let waited = async {
            let received = redis
                .publish(CHANGES, &bytes)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(w) = self.lock().get_mut(&n) {
                // Every link that received it but this node's own answers.
                w.want = Some(received.saturating_sub(1));
                w.check();
            }
            tokio::time::timeout(self.timeout, answered)
                .await
                .map_err(|_| format!("not every node answered within {:?}", self.timeout))?
                .map_err(|_| "dropped".to_owned())
        }
        .await;
        self.lock().remove(&n);
        if let Err(why) = waited {
            tracing::warn!(error = %why, "peers: a change may be read from other nodes' caches until they drop it");
        }
    }

    /// A message on [`CHANGES`] or on this node's answers channel; false when it is on
    /// neither.
    pub(super) fn receive(&self, channel: &str, bytes: &[u8]) -> bool {
        if channel == CHANGES {
            self.changed(bytes);
        } else if channel == self.answers {
            let Some(n) = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()) else {
                return true;
            };
            if let Some(w) = self.lock().get_mut(&n) {
                w.got += 1;
                w.check();
            }
        } else {
            return false;
        }
        true
    }

    /// Another node's changes: handed to the shards, then answered.
    fn changed(&self, bytes: &[u8]) {
        let Some((origin, n, changes)) = decode(bytes) else {
            tracing::warn!("peers: changes that cannot be read");
            return;
        };
        if origin == &*self.node {
            return;
        }
        self.events.publish(Notice::Changed(changes.into()));
        let Some(redis) = self.redis.get().cloned() else {
            return;
        };
        let channel = answers(origin);
        tokio::spawn(async move {
            let _ = redis.publish(&channel, n.to_string().as_bytes()).await;
        });
    }

    /// The link is back after a loss: what other nodes announced meanwhile did not
    /// come, so every cache of this node drops everything.
    pub(super) fn resubscribed(&self) {
        self.events.publish(Notice::Cleared);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `<origin length: u8><origin><n: u64 LE>` then per change a tag byte and its
/// strings, each `<length: u32 LE><bytes>` (node ids are short: longer ones are cut).
fn encode(origin: &str, n: u64, changes: &[Change]) -> Vec<u8> {
    let origin = &origin.as_bytes()[..origin.len().min(usize::from(u8::MAX))];
    let mut out = Vec::with_capacity(64);
    out.push(u8::try_from(origin.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(origin);
    out.extend_from_slice(&n.to_le_bytes());
    let mut put = |tag: u8, strings: &[&str]| {
        out.push(tag);
        for s in strings {
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    };
    for c in changes {
        match c {
            Change::User(id) => put(b'U', &[id]),
            Change::Channel(id) => put(b'C', &[id]),
            Change::Follow {
                user_id,
                channel_id,
            } => put(b'F', &[user_id, channel_id]),
            Change::Live => put(b'L', &[]),
            Change::Stream(id) => put(b'S', &[id]),
            Change::Membership {
                user_id,
                channel_id,
            } => put(b'M', &[user_id, channel_id]),
        }
    }
    out
}

/// What [`encode`] wrote: the origin, the number and the changes.
fn decode(bytes: &[u8]) -> Option<(&str, u64, Vec<Change>)> {
    let (&len, rest) = bytes.split_first()?;
    let (origin, rest) = rest.split_at_checked(usize::from(len))?;
    let origin = std::str::from_utf8(origin).ok()?;
    let (n, mut rest) = rest.split_at_checked(8)?;
    let n = u64::from_le_bytes(n.try_into().ok()?);
    let take = |rest: &mut &[u8]| -> Option<Box<str>> {
        let (len, tail) = rest.split_at_checked(4)?;
        let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
        let (s, tail) = tail.split_at_checked(len)?;
        *rest = tail;
        Some(std::str::from_utf8(s).ok()?.into())
    };
    let mut changes = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        changes.push(match tag {
            b'U' => Change::User(take(&mut rest)?),
            b'C' => Change::Channel(take(&mut rest)?),
            b'F' => Change::Follow {
                user_id: take(&mut rest)?,
                channel_id: take(&mut rest)?,
            },
            b'L' => Change::Live,
            b'S' => Change::Stream(take(&mut rest)?),
            b'M' => Change::Membership {
                user_id: take(&mut rest)?,
                channel_id: take(&mut rest)?,
            },
            _ => return None,
        });
    }
    Some((origin, n, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_written_and_garbage_is_refused() {
        let changes = vec![
            Change::User("u 1".into()),
            Change::Channel("ch_u1".into()),
            Change::Follow {
                user_id: "u2".into(),
                channel_id: "ch_ü".into(),
            },
            Change::Live,
            Change::Stream("ch_u3".into()),
            Change::Membership {
                user_id: "".into(),
                channel_id: "ch_u4".into(),
            },
        ];
        let bytes = encode("node-a", 42, &changes);
        let (origin, n, back) = decode(&bytes).expect("read back");
        assert_eq!((origin, n), ("node-a", 42));
        assert_eq!(back, changes);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none(), "cut short");
        let mut unknown = encode("n", 1, &[]);
        unknown.push(b'?');
        assert!(decode(&unknown).is_none(), "an unknown tag");
        assert_eq!(decode(&encode("n", 7, &[])), Some(("n", 7, Vec::new())));
    }
}
