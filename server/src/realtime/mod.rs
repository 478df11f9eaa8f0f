//! Rooms on one node: the domain's room events routed to every shard ([`fanout`]), each
//! shard's room members and subscriptions and their delivery ([`hub`]), the room
//! protocol's sessions on `/ws` ([`session`]) and `graphql-transport-ws` sessions on
//! `/graphql` ([`graphql_ws`]), and the shard's sweep that pings them and keeps their
//! deadlines ([`liveness`]).
//!
//! A room's order is the store's: an event's seq is its place in the channel's room log,
//! assigned under the store's lock, so one node has one owner per room. Publishing
//! tells every shard "this room changed" through the publishing shard's broadcast ring
//! (`streamhub-pubsub`); each shard then delivers, in seq order, every
//! event after the last one it delivered, each encoded once per shard into one frame
//! that all its members' send queues share. A shard that is told twice, or late, still
//! delivers each event exactly once, in order: it reads the log, not the notices; a
//! shard lapped by a ring re-reads every room it serves.

pub mod fanout;
pub mod graphql_ws;
pub mod hub;
pub mod liveness;
pub mod presence;
pub mod session;
mod socket;
