//! What the HTTP layer needs to know about a planned operation, worked out once per
//! prepared document: for how long a GET of its result may be cached publicly (from the
//! schema's cache hints, [`super::cache_hints`]), whether its result depends on who asks,
//! and whether it sends chat.

use async_graphql_parser::types::OperationType;
use graphql_exec::plan::Plan;
use graphql_exec::schema::Schema;

use super::cache_hints::CacheHints;

/// Facts about one operation; small and `Copy`, since every request reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// Seconds its result may be cached publicly: its cache policy's max age for a query
    /// that depends on no viewer; 0 (not cacheable) otherwise and for mutations and
    /// subscriptions. Uncapped: the HTTP layer caps it with `public_max_age`.
    pub max_age: u32,
    /// A mutation that sends a chat message (spends the chat budget).
    pub sends_chat: bool,
    /// Its result depends on who asks: some field it reads is PRIVATE (a subscription's
    /// payload is then rendered per viewer, not once for all).
    pub per_viewer: bool,
}

/// The facts of `plan`, with `hints` resolved against `schema`.
pub fn op_info(schema: &Schema, hints: &CacheHints, plan: &Plan) -> OpInfo {
    let policy = hints.policy(schema, plan);
    OpInfo {
        max_age: if plan.operation == OperationType::Query && !policy.private {
            policy.max_age
        } else {
            0
        },
        per_viewer: policy.private,
        sends_chat: plan.operation == OperationType::Mutation
            && plan
                .selection
                .fields
                .iter()
                .any(|f| &*f.name == "sendChatMessage"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cache_hints::HINTS;
    use graphql_exec::limits::Limits;
    use graphql_exec::persisted::prepare;

    fn info(q: &str) -> OpInfo {
        let schema = crate::schema::build().unwrap();
        let hints = CacheHints::new(&schema, HINTS).unwrap();
        let p = prepare(&schema, q, &Limits::default()).unwrap();
        op_info(&schema, &hints, p.plan(None).unwrap())
    }

    #[test]
    fn only_queries_of_public_data_get_a_max_age() {
        assert_eq!(
            info("{ channel(login: \"a\") { title owner { displayName } } }").max_age,
            300
        );
        assert_eq!(info("{ category(slug: \"chess\") { name } }").max_age, 300);
        assert_eq!(info("{ channel(login: \"a\") { viewerCount } }").max_age, 0);
        assert_eq!(
            info("{ node(id: \"x\") { ... on Channel { isLive } } }").max_age,
            0
        );
        // PRIVATE, whatever its max age.
        assert_eq!(info("{ viewer { id } }").max_age, 0);
        // Mutations and subscriptions never, whatever they read.
        assert_eq!(info("mutation { endStream { title } }").max_age, 0);
        assert_eq!(
            info("subscription { streamUpdates(channelId: \"c\") { title } }").max_age,
            0
        );
    }

    #[test]
    fn viewer_dependent_selections_are_told_apart() {
        let sub = |s: &str| {
            info(&format!(
                "subscription {{ streamUpdates(channelId: \"c\") {{ {s} }} }}"
            ))
        };
        assert!(sub("channel { viewerIsFollowing }").per_viewer);
        assert!(sub("channel { owner { roles } }").per_viewer);
        assert!(!sub("title channel { login followerCount }").per_viewer);
        assert!(info("{ viewer { id } }").per_viewer);
        assert!(!info("{ channel(login: \"a\") { viewerCount } }").per_viewer);
    }

    #[test]
    fn chat_sends_are_told_apart_from_other_mutations() {
        assert!(
            info("mutation { sendChatMessage(channelId: \"c\", body: \"b\") { seq } }").sends_chat
        );
        assert!(!info("mutation { endStream { id } }").sends_chat);
        assert!(!info("{ viewer { id } }").sends_chat);
    }
}
