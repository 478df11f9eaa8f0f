//! streamhub-ws: WebSocket sessions.
//!
//! Owns: the upgrade on a shard's HTTP connection, framing (with `fastwebsockets`),
//! message size limits, ping/pong and close codes, per-connection send queues with a
//! byte limit, and the two protocols spoken over a session: the room protocol (`/ws`)
//! and `graphql-transport-ws` (`/graphql`).
//!
//! Must not know: SQL, Redis or how rooms are fanned out across cores and nodes; it
//! hands room events to and takes frames from `streamhub-pubsub`.
//!
//! Status: the crate exists so the workspace has its final shape; sessions land with
//! issue 6 and nothing depends on it yet.
