//! streamhub-ws: WebSocket sessions.
//!
//! Owns: the upgrade on a shard's HTTP connection ([`upgrade`]), reading frames with a
//! buffer an idle connection gives back ([`reader`]), reading whole messages
//! with size limits that also hold for fragmented messages, UTF-8 checks and the close
//! code for every protocol error ([`message`]), and the conformance echo endpoint
//! ([`echo`]), server frames encoded once into shared bytes ([`frame`]), per-connection
//! send queues with a byte limit and one write per wake-up ([`queue`]), and the room
//! protocol's messages ([`room`]). Later: `graphql-transport-ws` (`/graphql`).
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
