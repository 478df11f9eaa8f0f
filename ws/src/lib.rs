//! streamhub-ws: WebSocket sessions.
//!
//! Owns: the upgrade on a shard's HTTP connection ([`upgrade`]), reading frames with no
//! buffer held while idle, as poll functions a session future drives, and throwing
//! away (bounded) what a peer still sends after a close for its error ([`reader`]),
//! reading whole messages
//! with size limits that also hold for fragmented messages, UTF-8 checks and the close
//! code for every protocol error ([`message`]), and the conformance echo endpoint
//! ([`echo`]), server frames encoded once into shared bytes ([`frame`]), per-connection
//! send queues with a byte limit and one vectored write per wake-up, driven in the
//! session's own task ([`queue`]), the room protocol's messages ([`room`]) and the
//! `graphql-transport-ws` messages and close codes ([`gqlws`]).
//!
//! Must not know: SQL, Redis or how rooms are fanned out across cores and nodes; it
//! hands room events to and takes frames from `streamhub-pubsub`.

pub mod echo;
pub mod frame;
pub mod gqlws;
pub mod message;
pub mod queue;
pub mod reader;
pub mod room;
pub mod upgrade;
