//! streamhub-pubsub: room fan-out.
//!
//! Owns: per-shard room hubs, the seq of each room (one owner per room), the
//! single-producer broadcast ring each shard writes and the other shards read, room
//! history for `since` recovery, and the Redis bridge between nodes.
//!
//! Must not know: WebSocket framing, GraphQL, HTTP or PostgreSQL.
//!
//! Status: the crate exists so the workspace has its final shape; the hub lands with
//! issue 6 and nothing depends on it yet.
