//! Limits at the edge, each exact per node: request rates per client ([`rate`]) and open
//! connections per client address ([`connections`]). Size and depth limits sit
//! with what they bound (body and header sizes in `config` and `http`; GraphQL depth,
//! aliases and complexity with the engine; WebSocket frames with the sessions).

pub mod connections;
pub mod rate;
