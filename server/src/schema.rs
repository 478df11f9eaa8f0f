//! The public API's schema: the project's copy of the contract (`server/schema.graphql`,
//! kept equal to `shared/schema.graphql` by a test), built into the engine's tables at
//! start so a broken copy stops the process before it serves.

use graphql_exec::schema::{Schema, SchemaError};

/// The SDL, as served at `GET /graphql/schema.graphql`.
pub const SDL: &str = include_str!("../schema.graphql");

/// Builds the schema.
pub fn build() -> Result<Schema, SchemaError> {
    Schema::from_sdl(SDL)
}

#[cfg(test)]
mod tests {
    use graphql_exec::schema::Kind;

    #[test]
    fn the_contract_builds_with_its_three_roots() {
        let s = super::build().unwrap();
        assert_eq!(s.get(s.query).name, "Query");
        assert_eq!(s.get(s.mutation.unwrap()).name, "Mutation");
        assert_eq!(s.get(s.subscription.unwrap()).name, "Subscription");
        let node = s.type_named("Node").unwrap();
        for t in ["User", "Channel", "Stream", "Category", "ChatMessage"] {
            assert!(
                s.is_possible(node, s.type_named(t).unwrap()),
                "{t} is a Node"
            );
        }
        match &s.get(s.type_named("ChatEvent").unwrap()).kind {
            Kind::Union { members } => assert_eq!(members.len(), 3),
            k => panic!("ChatEvent is {k:?}"),
        }
    }
}
