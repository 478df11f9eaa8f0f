//! graphql-exec: StreamHub's GraphQL engine, schema-agnostic.
//!
//! Owns: building a schema from SDL, parsing operations, validating them against every
//! rule of the specification's validation section, coercing variables and arguments,
//! turning an operation into a cached plan, executing a plan level by level straight
//! into one JSON output buffer, and the persisted-document registry.
//!
//! Must not know: streams, chat, users, stores, HTTP or WebSocket. Resolvers are
//! supplied by the caller through a trait; the streaming schema is only the first user.
//!
//! Status: the crate exists so the workspace has its final shape; the engine lands with
//! issue 5 and nothing depends on it yet.
