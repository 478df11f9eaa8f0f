//! What the HTTP layer needs to know about a planned operation, worked out once per
//! prepared document: whether its result is the same for everyone for a while (so a GET
//! of it may be cached publicly) and whether it sends chat.

use graphql_exec::plan::{Children, Plan, Selection};

/// Fields whose value depends on the viewer, or on live state that changes by the
/// second (counters, live status, chat): a result containing any of them is private.
const VOLATILE: [&str; 16] = [
    "viewer",
    "viewerIsFollowing",
    "viewerCount",
    "followerCount",
    "liveStreamCount",
    "totalCount",
    "isLive",
    "stream",
    "streams",
    "categories",
    "recentMessages",
    "chatHistory",
    "followers",
    "following",
    "hasNextPage",
    "roles",
];

/// Facts about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    /// A query whose result depends on no viewer and no live state.
    pub public: bool,
    /// A mutation that sends a chat message (spends the chat budget).
    pub sends_chat: bool,
    /// Its result depends on who asks (a subscription's payload is then rendered per
    /// viewer, not once for all).
    pub per_viewer: bool,
}

/// The facts of `plan`.
pub fn op_info(plan: &Plan) -> OpInfo {
    use async_graphql_parser::types::OperationType;
    OpInfo {
        public: plan.operation == OperationType::Query && !touches(&plan.selection, &VOLATILE),
        per_viewer: touches(&plan.selection, &PER_VIEWER),
        sends_chat: plan.operation == OperationType::Mutation
            && plan
                .selection
                .fields
                .iter()
                .any(|f| &*f.name == "sendChatMessage"),
    }
}

/// Fields whose value depends on who asks.
const PER_VIEWER: [&str; 2] = ["viewer", "viewerIsFollowing"];

/// Whether `s` selects any of `fields`, at any depth.
fn touches(s: &Selection, fields: &[&str]) -> bool {
    s.fields.iter().any(|f| {
        fields.contains(&&*f.name)
            || match &f.children {
                Children::Leaf => false,
                Children::Object(sub) => touches(sub, fields),
                Children::Abstract(subs) => subs.iter().any(|(_, sub)| touches(sub, fields)),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphql_exec::limits::Limits;
    use graphql_exec::persisted::prepare;

    fn info(q: &str) -> OpInfo {
        let schema = crate::schema::build().unwrap();
        let p = prepare(&schema, q, &Limits::default()).unwrap();
        op_info(p.plan(None).unwrap())
    }

    #[test]
    fn only_viewer_free_and_live_free_queries_are_public() {
        assert!(info("{ channel(login: \"a\") { title owner { displayName } } }").public);
        assert!(info("{ category(slug: \"chess\") { name } }").public);
        assert!(!info("{ channel(login: \"a\") { viewerCount } }").public);
        assert!(!info("{ viewer { id } }").public);
        assert!(!info("{ node(id: \"x\") { ... on Channel { isLive } } }").public);
        assert!(!info("mutation { endStream { title } }").public);
    }

    #[test]
    fn viewer_dependent_selections_are_told_apart() {
        let sub = |s: &str| {
            info(&format!(
                "subscription {{ streamUpdates(channelId: \"c\") {{ {s} }} }}"
            ))
        };
        assert!(sub("channel { viewerIsFollowing }").per_viewer);
        assert!(!sub("title channel { login followerCount }").per_viewer);
        assert!(info("{ viewer { id } }").per_viewer);
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
