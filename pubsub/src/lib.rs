//! streamhub-pubsub: room fan-out.
//!
//! Owns:
//! - [`ring`]: the single-producer broadcast ring each shard writes and the other shards
//!   read, each with its own cursor; a reader that falls a lap behind is told exactly
//!   which positions it lost instead of slowing the writer.
//! - [`doorbell`]: batched cross-thread wake-ups a shard's runtime awaits (one wake-up
//!   per burst, however many publishes).
//! - [`seq`]: how an incoming seq follows the last one delivered (next, stale, a gap).
//! - [`history`]: each room's recent events for `since` recovery and gap filling,
//!   accepted at the seq their orderer gave them: an exact replay of a gap or "not
//!   recoverable", never a partial replay.
//! - [`room`]: the one event type of the whole path ([`Event`]: a room, a seq and a
//!   self-contained [`Chat`] event with its frame encoded once).
//! - [`wire`]: a room event's bytes between nodes (its seq and chat event, or a void).
//! - [`redis`]: rooms across nodes through Redis (one server or a Redis Cluster): the
//!   scripts that order a room's events in its slot's epoch, the subscriber link that
//!   brings a node the events of its rooms (and the channels it always listens on), and
//!   what else nodes share there (presence, APQ registrations, rate budgets).
//!
//! The server's hubs (subscribers, delivery), its orderers and the Redis bridge between
//! nodes are built on these.
//!
//! Must not know: WebSocket framing, GraphQL, HTTP or PostgreSQL.
//!
//! The only `unsafe` code is in the ring's private slot array (epoch-managed slots),
//! each block with its `SAFETY:` argument; the multi-threaded stress tests in
//! `ring::tests` exercise it.

pub mod doorbell;
pub mod history;
pub mod redis;
pub mod ring;
pub mod room;
pub mod seq;
pub mod wire;

pub use doorbell::Doorbell;
pub use history::{History, HistoryLimits, Recovery};
pub use ring::{Consumer, Lapped, Producer, Recv};
pub use room::{Author, Chat, ChatEvent, Event, RoomEvent, RoomId};
