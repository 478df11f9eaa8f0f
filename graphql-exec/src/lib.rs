//! graphql-exec: StreamHub's GraphQL engine, schema-agnostic.
//!
//! Owns: building a schema from SDL, parsing operations, validating them against every
//! rule of the specification's validation section, coercing variables and arguments,
//! turning an operation into a cached plan, executing a plan level by level straight
//! into one JSON output buffer (asynchronously: resolvers may await their store, once
//! per batch), and the persisted-document registry.
//!
//! Must not know: streams, chat, users, stores, HTTP or WebSocket. Resolvers are
//! supplied by the caller through a trait; the streaming schema is only the first user.
//!
//! Status: the schema model with introspection types ([`schema`]), validation
//! ([`validate`]), variable coercion ([`coerce`]), planning ([`plan`]), level-by-level
//! execution into JSON ([`exec`]), introspection ([`intro`]) and persisted documents with
//! the per-thread prepared-document cache ([`persisted`]) and the node-wide registry of
//! their texts ([`registry`]), and limits ([`limits`]) are built; the
//! HTTP transport and the streaming domain's resolvers (in the server) follow (issue 5).

pub mod coerce;
pub mod exec;
pub mod intro;
pub mod limits;
pub mod persisted;
pub mod plan;
pub mod registry;
pub mod schema;
pub mod validate;

/// Runs `f` to its end on a current-thread runtime, as a shard runs an operation.
#[cfg(test)]
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
