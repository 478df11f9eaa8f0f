//! streamhub-server: the `streamhub` binary's library.
//!
//! Owns: the configuration ([`config`]), the thread-per-core shards and their listeners
//! ([`shard`], [`listener`]), the HTTP connection driver with its ALB-friendly timeouts
//! ([`conn`]), the HTTP request path: routing, GraphQL over HTTP and its streams, CORS, response
//! compression and the operations endpoints ([`http`]), the GraphQL service every
//! transport calls ([`graphql`]), WebSocket sessions, rooms and subscriptions
//! ([`realtime`]), the node's rooms: histories and the orderer of their events
//! ([`rooms`]) and their orderer across nodes through Redis and what mutations changed announced to the other nodes ([`cluster`]), authentication ([`auth`]), node-wide limits ([`limits`]), the streaming
//! domain ([`domain`], [`schema`]) over the store seam, its memory implementation,
//! the PostgreSQL store (schema, migrations, demo seed, group-commit chat writer, circuit breaker) and each shard's read-through cache ([`store`]), per-shard metrics summed at
//! scrape ([`metrics`]), JSON logs ([`logging`]), node-wide state and graceful shutdown
//! ([`node`], [`serve`]), the IO backend choice ([`io_backend`]) and the io_uring backend's driver ([`uring`]), TLS ([`tls`]) and the
//! `token` subcommand ([`token`]).
//!
//! Must not know: how GraphQL executes (graphql-exec), how WebSocket frames are built
//! (ws) or how room events cross cores and nodes (pubsub); it wires them to the shard.
//!
//! The shard is the unit every capability plugs into: [`shard::Shard`] is the one place
//! where per-shard state lives, and every request handler receives it.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod io_backend;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod realtime;
pub mod rooms;
pub mod schema;
pub mod serve;
pub mod shard;
pub mod store;
pub mod tls;
pub mod token;
pub mod uring;
