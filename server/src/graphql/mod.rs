//! The one GraphQL service, transport-free: requests ([`request`]), documents found in
//! the shard's plan cache or the node-wide registry, or prepared ([`documents`]), and
//! the service that checks, rate-limits, coerces and executes an operation or describes
//! a subscription for the hub ([`service`]), with per-operation metrics ([`metrics`]). HTTP (`http::graphql`) and
//! `graphql-transport-ws` (`realtime::graphql_ws`) are thin layers over it: each reads
//! its own framing into a [`request::GraphQlRequest`] and writes the outcome in its own
//! form.

pub mod documents;
pub mod metrics;
pub mod request;
pub mod service;
