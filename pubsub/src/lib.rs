//! streamhub-pubsub: room fan-out.
//!
//! Owns (so far, as a library the shards will plug in):
//! - [`ring`]: the single-producer broadcast ring each shard writes and the other shards
//!   read, each with its own cursor; a reader that falls a lap behind is told exactly
//!   which positions it lost instead of slowing the writer.
//! - [`doorbell`]: batched cross-thread wake-ups a shard's runtime awaits (one wake-up
//!   per burst, however many publishes).
//! - [`seq`]: which shard orders a room (a fixed hash of the room id over the shards),
//!   the per-room seq counters that shard keeps, and how an incoming seq follows the
//!   last one delivered.
//! - [`history`]: each room's recent events for `since` recovery: an exact replay of the
//!   gap or "not recoverable", never a partial replay.
//! - [`room`]: the event model shared by the hub.
//!
//! Still to come: the per-shard room hubs (subscribers, delivery) and the Redis bridge
//! between nodes.
//!
//! Must not know: WebSocket framing, GraphQL, HTTP or PostgreSQL.
//!
//! The only `unsafe` code is in the ring's private slot array (epoch-managed slots),
//! each block with its `SAFETY:` argument; the multi-threaded stress tests in
//! `ring::tests` exercise it.

pub mod doorbell;
pub mod history;
pub mod ring;
pub mod room;
pub mod seq;

pub use doorbell::Doorbell;
pub use history::{History, HistoryLimits, Recovery};
pub use ring::{Consumer, Lapped, Producer, Recv};
pub use room::{RoomEvent, RoomId};
