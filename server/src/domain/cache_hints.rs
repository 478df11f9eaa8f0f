//! Cache hints for the API's types and fields, in Apollo's `@cacheControl` model, and
//! the cache policy of a planned operation worked out from them.
//!
//! schema.graphql is a copy of the contract and carries no directives, so the hints are
//! kept here, in [`HINTS`], keyed by `Type` and by `Type.field` (never by a field name
//! alone). Every composite type and every field of every object type but `Mutation`'s has
//! an entry, decided on purpose; a test fails on a type or field without one and on an
//! entry the schema does not have, so a new field is never served publicly by default and
//! a typo never drops a hint.
//!
//! The rules are Apollo Server's cache-control plugin's:
//! - A field starts from its return type's hint when it returns an object, interface or
//!   union (for an interface or a union, that type's own hint: the hints of the objects
//!   behind it are not consulted). Its own hint then overrides the max age and the scope
//!   where it gives them; with `inheritMaxAge` of its own, a max age from the type still
//!   wins.
//! - A root field, or a field returning a composite type, still without a max age gets 0
//!   (not cacheable), unless it inherits (`inheritMaxAge`, on the field or on its type;
//!   never at the root).
//! - A leaf (scalar or enum) without a max age inherits its parent's: it restricts nothing.
//! - The operation's policy is the most restrictive of its fields': the least max age,
//!   PRIVATE when any field is.
//!
//! Apollo applies them while executing; here they are applied to the plan, once per
//! prepared document. Every field of the plan counts whatever the variables
//! (`@skip`/`@include`) and whichever object type an abstract field turns out to return,
//! so the policy is never looser than the one a request would get.

use graphql_exec::plan::{Children, Plan, Selection};
use graphql_exec::schema::{Kind, Schema, TypeId};

/// A cache hint on a type or a field: Apollo's
/// `@cacheControl(maxAge:, scope:, inheritMaxAge:)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// How long a value stays fresh.
    pub max_age: MaxAge,
    /// `scope: PRIVATE`: the value depends on who asks. (An explicit `scope: PUBLIC`,
    /// which would override a PRIVATE type on one field, is not offered: no entry needs it.)
    pub private: bool,
}

/// The max-age part of a hint (Apollo ignores `maxAge` beside `inheritMaxAge`, so it is
/// one or the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxAge {
    /// Not said here.
    Unset,
    /// `maxAge: seconds`.
    Seconds(u32),
    /// `inheritMaxAge: true`: a field (or a field returning the type) takes its parent's
    /// max age instead of 0.
    Inherit,
}

impl Hint {
    /// No hint of its own: Apollo's defaults apply (a leaf inherits its parent's max
    /// age; a field returning a type takes the type's hint, and 0 without one).
    pub const NONE: Hint = Hint {
        max_age: MaxAge::Unset,
        private: false,
    };

    /// `@cacheControl(inheritMaxAge: true)`.
    pub const INHERIT: Hint = Hint {
        max_age: MaxAge::Inherit,
        private: false,
    };

    /// `@cacheControl(scope: PRIVATE)`: per viewer, the max age from the type or parent.
    pub const PRIVATE: Hint = Hint {
        max_age: MaxAge::Unset,
        private: true,
    };

    /// `@cacheControl(maxAge: seconds)`, public.
    pub const fn max_age(seconds: u32) -> Hint {
        Hint {
            max_age: MaxAge::Seconds(seconds),
            private: false,
        }
    }
}

/// Public profile data: names, titles, descriptions, which change when their owner edits
/// them. `STREAMHUB_PUBLIC_MAX_AGE` caps what is served.
const PROFILE: Hint = Hint::max_age(300);
/// Live state: counters, live status, which streams are live, chat. Never cached.
const LIVE: Hint = Hint::max_age(0);
/// Depends on who asks.
const PRIVATE: Hint = Hint::PRIVATE;
/// No hint of its own (see [`Hint::NONE`]).
const NONE: Hint = Hint::NONE;
/// Pages of a list: the field that returns the page decides.
const INHERIT: Hint = Hint::INHERIT;

/// The hints of schema.graphql, by `Type` and by `Type.field`.
pub const HINTS: &[(&str, Hint)] = &[
    // Types. A type's hint applies to the fields that return it.
    ("User", PROFILE),
    ("Channel", PROFILE),
    ("Category", PROFILE),
    // A stream's record (title, category, start) is fixed once it starts and kept after
    // it ends; which stream is live is not (`Channel.stream`, `streams`: 0).
    ("Stream", PROFILE),
    // Any object by id: an interface's own hint is what `node` gets, so the live fields
    // of the objects behind it (and every field of a chat message) carry their own 0.
    ("Node", PROFILE),
    ("SearchResult", PROFILE),
    // Chat: a message can be deleted by a moderator at any moment.
    ("ChatMessage", LIVE),
    ("ChatEvent", LIVE),
    ("ChatMessageDeleted", LIVE),
    ("UserBanned", LIVE),
    // The payload of `streamUpdates`.
    ("StreamUpdate", LIVE),
    // Pages of lists: the field that returns a page decides.
    ("UserConnection", INHERIT),
    ("ChannelConnection", INHERIT),
    ("StreamConnection", INHERIT),
    ("CategoryConnection", INHERIT),
    ("UserEdge", INHERIT),
    ("ChannelEdge", INHERIT),
    ("StreamEdge", INHERIT),
    ("CategoryEdge", INHERIT),
    ("PageInfo", INHERIT),
    // Fields. NONE: a leaf inherits its parent's max age, a field returning a type takes
    // the type's. A root field without a max age gets 0: the lookups take their type's
    // (the viewer too, PRIVATE).
    ("Query.viewer", PRIVATE),
    ("Query.node", NONE),
    ("Query.user", NONE),
    ("Query.channel", NONE),
    ("Query.category", NONE),
    ("Query.streams", LIVE),
    // Ordered by live viewers.
    ("Query.categories", LIVE),
    ("Query.chatHistory", LIVE),
    // The matches change as users sign up and rename things: a minute.
    ("Query.search", Hint::max_age(60)),
    // Profile data but what is live or per viewer.
    ("User.id", NONE),
    ("User.login", NONE),
    ("User.displayName", NONE),
    ("User.bio", NONE),
    // The viewer's own roles come from their token.
    ("User.roles", PRIVATE),
    ("User.createdAt", NONE),
    ("User.channel", NONE),
    ("User.following", LIVE),
    ("Channel.id", NONE),
    ("Channel.login", NONE),
    ("Channel.owner", NONE),
    ("Channel.title", NONE),
    ("Channel.language", NONE),
    ("Channel.tags", NONE),
    ("Channel.category", NONE),
    ("Channel.isLive", LIVE),
    ("Channel.stream", LIVE),
    ("Channel.followerCount", LIVE),
    ("Channel.followers", LIVE),
    ("Channel.moderators", NONE),
    ("Channel.viewerIsFollowing", PRIVATE),
    ("Channel.recentMessages", LIVE),
    ("Channel.viewerCount", LIVE),
    ("Stream.id", NONE),
    ("Stream.channel", NONE),
    ("Stream.title", NONE),
    ("Stream.category", NONE),
    ("Stream.language", NONE),
    ("Stream.startedAt", NONE),
    ("Stream.viewerCount", LIVE),
    ("Category.id", NONE),
    ("Category.slug", NONE),
    ("Category.name", NONE),
    ("Category.viewerCount", LIVE),
    ("Category.liveStreamCount", LIVE),
    ("Category.streams", LIVE),
    // Reached through `node` too, whose hint is Node's: each field says 0 itself.
    ("ChatMessage.id", LIVE),
    ("ChatMessage.channel", LIVE),
    ("ChatMessage.seq", LIVE),
    ("ChatMessage.author", LIVE),
    ("ChatMessage.body", LIVE),
    ("ChatMessage.sentAt", LIVE),
    ("PageInfo.hasNextPage", LIVE),
    ("PageInfo.endCursor", NONE),
    ("UserEdge.cursor", NONE),
    ("UserEdge.node", NONE),
    ("UserConnection.edges", NONE),
    ("UserConnection.nodes", NONE),
    ("UserConnection.pageInfo", NONE),
    ("UserConnection.totalCount", LIVE),
    ("ChannelEdge.cursor", NONE),
    ("ChannelEdge.node", NONE),
    ("ChannelConnection.edges", NONE),
    ("ChannelConnection.nodes", NONE),
    ("ChannelConnection.pageInfo", NONE),
    ("ChannelConnection.totalCount", LIVE),
    ("StreamEdge.cursor", NONE),
    ("StreamEdge.node", NONE),
    ("StreamConnection.edges", NONE),
    ("StreamConnection.nodes", NONE),
    ("StreamConnection.pageInfo", NONE),
    ("StreamConnection.totalCount", LIVE),
    ("CategoryEdge.cursor", NONE),
    ("CategoryEdge.node", NONE),
    ("CategoryConnection.edges", NONE),
    ("CategoryConnection.nodes", NONE),
    ("CategoryConnection.pageInfo", NONE),
    ("CategoryConnection.totalCount", LIVE),
    // Subscriptions are never cached; their scope says whether a payload is rendered
    // once for everyone or per viewer.
    ("Subscription.chatEvents", LIVE),
    ("Subscription.streamUpdates", LIVE),
    ("Subscription.viewerCount", LIVE),
    ("ChatMessageDeleted.channelId", NONE),
    ("ChatMessageDeleted.seq", NONE),
    ("ChatMessageDeleted.messageSeq", NONE),
    ("UserBanned.channelId", NONE),
    ("UserBanned.seq", NONE),
    ("UserBanned.userId", NONE),
    ("UserBanned.until", NONE),
    ("StreamUpdate.channel", NONE),
    ("StreamUpdate.isLive", LIVE),
    ("StreamUpdate.title", NONE),
    ("StreamUpdate.category", NONE),
    ("StreamUpdate.viewerCount", LIVE),
];

/// Why a table of hints does not fit a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    /// `Type` or `Type.field` names a type the schema does not have.
    #[error("cache hint `{0}`: the schema has no such type")]
    UnknownType(String),
    /// `Type.field` names a field its type does not have.
    #[error("cache hint `{0}`: the type has no such field")]
    UnknownField(String),
    /// A hint where none can apply: on a scalar, enum, input or root type, or on an
    /// interface's field (fields are resolved on object types).
    #[error("cache hint `{0}`: hints go on object, interface and union types that fields return, and on object types' fields")]
    Misplaced(String),
    /// The same key twice.
    #[error("cache hint `{0}` is given twice")]
    Duplicate(String),
}

/// A table of hints resolved against a schema: by type id and by field index.
#[derive(Debug, Clone)]
pub struct CacheHints {
    types: Vec<Option<Hint>>,
    fields: Vec<Vec<Option<Hint>>>,
}

/// The most restrictive cache policy over everything an operation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds the result stays fresh; 0: not cacheable.
    pub max_age: u32,
    /// Some field it reads depends on who asks (Apollo's PRIVATE scope).
    pub private: bool,
}

impl CacheHints {
    /// `table` resolved against `schema`; an entry the schema does not have is an error.
    pub fn new(schema: &Schema, table: &[(&str, Hint)]) -> Result<CacheHints, HintError> {
        let n = schema.types().len();
        let mut hints = CacheHints {
            types: vec![None; n],
            fields: schema
                .types()
                .iter()
                .map(|t| vec![None; t.fields().len()])
                .collect(),
        };
        let roots = [Some(schema.query), schema.mutation, schema.subscription];
        for &(key, hint) in table {
            let (type_name, field) = match key.split_once('.') {
                Some((t, f)) => (t, Some(f)),
                None => (key, None),
            };
            let ty = schema
                .type_named(type_name)
                .filter(|&t| !schema.is_introspection(t))
                .ok_or_else(|| HintError::UnknownType(key.to_owned()))?;
            let slot = match field {
                None if schema.is_composite(ty) && !roots.contains(&Some(ty)) => {
                    &mut hints.types[ty.0 as usize]
                }
                None => return Err(HintError::Misplaced(key.to_owned())),
                Some(f) => {
                    let def = schema.get(ty);
                    let (i, _) = def
                        .field(f)
                        .ok_or_else(|| HintError::UnknownField(key.to_owned()))?;
                    if !matches!(def.kind, Kind::Object { .. }) {
                        return Err(HintError::Misplaced(key.to_owned()));
                    }
                    &mut hints.fields[ty.0 as usize][i]
                }
            };
            if slot.replace(hint).is_some() {
                return Err(HintError::Duplicate(key.to_owned()));
            }
        }
        Ok(hints)
    }

    /// The hint of type `ty`, if it has one.
    fn of_type(&self, ty: TypeId) -> Option<Hint> {
        self.types.get(ty.0 as usize).copied().flatten()
    }

    /// The hint of field `name` of `parent`, if it has one (meta-fields such as
    /// `__typename` never do).
    fn of_field(&self, schema: &Schema, parent: TypeId, name: &str) -> Option<Hint> {
        let (i, _) = schema.get(parent).field(name)?;
        self.fields[parent.0 as usize][i]
    }

    /// The policy of `plan`: the least max age and any PRIVATE scope over its fields.
    /// (Whether it may be served publicly also depends on the operation's kind; see
    /// `plan_info`.)
    pub fn policy(&self, schema: &Schema, plan: &Plan) -> Policy {
        let mut acc = Acc {
            max_age: None,
            private: false,
        };
        self.restrict(schema, &plan.selection, true, &mut acc);
        Policy {
            // No field set a max age (only possible for an empty selection): Apollo
            // calls that not cacheable.
            max_age: acc.max_age.unwrap_or(0),
            private: acc.private,
        }
    }

    fn restrict(&self, schema: &Schema, sel: &Selection, root: bool, acc: &mut Acc) {
        for f in &sel.fields {
            let target = f.ty.named();
            let composite = schema.is_composite(target);
            let mut max_age = None;
            let mut private = false;
            let mut inherit = false;
            if composite {
                if let Some(h) = self.of_type(target) {
                    match h.max_age {
                        MaxAge::Seconds(s) => max_age = Some(s),
                        MaxAge::Inherit => inherit = true,
                        MaxAge::Unset => {}
                    }
                    private = h.private;
                }
            }
            if let Some(h) = self.of_field(schema, f.parent, &f.name) {
                match h.max_age {
                    MaxAge::Seconds(s) => max_age = Some(s),
                    // A max age from the type wins over the field's `inheritMaxAge`.
                    MaxAge::Inherit => inherit |= max_age.is_none(),
                    MaxAge::Unset => {}
                }
                private |= h.private;
            }
            if max_age.is_none() && ((composite && !inherit) || root) {
                max_age = Some(0);
            }
            if let Some(age) = max_age {
                acc.max_age = Some(acc.max_age.map_or(age, |a| a.min(age)));
            }
            acc.private |= private;
            match &f.children {
                Children::Leaf => {}
                Children::Object(sub) => self.restrict(schema, sub, false, acc),
                Children::Abstract(by_type) => {
                    for (_, sub) in by_type {
                        self.restrict(schema, sub, false, acc);
                    }
                }
            }
        }
    }
}

/// The policy so far.
struct Acc {
    max_age: Option<u32>,
    private: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphql_exec::limits::Limits;
    use graphql_exec::persisted::prepare;

    const SDL: &str = r#"
        interface Named { name: String! }
        type Author implements Named { name: String! secret: String! books: [Book!]! }
        type Book implements Named { name: String! price: Int! author: Author! reviews: Reviews! publisher: Publisher! }
        type Reviews { count: Int! }
        type Publisher { name: String! }
        union Work = Author | Book
        type Query {
          author: Author
          book: Book
          books: [Book!]!
          works: [Work!]!
          named: Named
          count: Int!
          hinted: Int!
          reviews: Reviews!
        }
    "#;

    /// Hints for the rules: types with and without hints, fields overriding them.
    const TABLE: &[(&str, Hint)] = &[
        ("Author", Hint::max_age(100)),
        ("Book", Hint::max_age(200)),
        ("Reviews", Hint::INHERIT),
        ("Work", Hint::max_age(500)),
        ("Query.author", Hint::max_age(1000)),
        ("Query.hinted", Hint::max_age(50)),
        ("Query.reviews", Hint::INHERIT),
        ("Author.secret", Hint::PRIVATE),
        ("Book.price", Hint::max_age(10)),
    ];

    fn policy_with(table: &[(&str, Hint)], q: &str) -> Policy {
        let schema = Schema::from_sdl(SDL).unwrap();
        let hints = CacheHints::new(&schema, table).unwrap();
        let p = prepare(&schema, q, &Limits::default()).unwrap();
        hints.policy(&schema, p.plan(None).unwrap())
    }

    fn policy(q: &str) -> Policy {
        policy_with(TABLE, q)
    }

    fn public(max_age: u32) -> Policy {
        Policy {
            max_age,
            private: false,
        }
    }

    #[test]
    fn a_root_field_without_a_max_age_is_not_cacheable() {
        // A leaf at the root has no parent to inherit from.
        assert_eq!(policy("{ count }"), public(0));
        assert_eq!(policy("{ hinted }"), public(50));
        // Nor does `inheritMaxAge` help at the root, even over a type that inherits.
        assert_eq!(policy("{ reviews { count } }"), public(0));
        // One such field is enough.
        assert_eq!(policy("{ hinted count }"), public(0));
        assert_eq!(policy("{ __typename }"), public(0));
    }

    #[test]
    fn a_field_returning_a_type_takes_the_types_hint_or_zero() {
        // Query.book has no hint of its own: Book's 200.
        assert_eq!(policy("{ book { name } }"), public(200));
        // Book.author: Author's 100.
        assert_eq!(policy("{ book { author { name } } }"), public(100));
        // Book.publisher: Publisher has no hint, so 0.
        assert_eq!(policy("{ book { publisher { name } } }"), public(0));
        // Query.named: the interface Named has no hint (its objects' are not read).
        assert_eq!(policy("{ named { name } }"), public(0));
    }

    #[test]
    fn a_fields_own_hint_overrides_its_types() {
        // Query.author says 1000 over Author's 100.
        assert_eq!(policy("{ author { name } }"), public(1000));
    }

    #[test]
    fn a_leaf_without_a_hint_inherits_its_parents_max_age() {
        assert_eq!(policy("{ book { name } }"), public(200));
        assert_eq!(policy("{ book { __typename name } }"), public(200));
        // A leaf with its own max age counts.
        assert_eq!(policy("{ book { price } }"), public(10));
    }

    #[test]
    fn inherit_max_age_takes_the_parents_instead_of_zero() {
        // Reviews inherits: under Book, Book's 200.
        assert_eq!(policy("{ book { reviews { count } } }"), public(200));
        // Without the type's `inheritMaxAge`, Reviews would be 0.
        let no_inherit: Vec<_> = TABLE
            .iter()
            .filter(|(k, _)| *k != "Reviews")
            .copied()
            .collect();
        assert_eq!(
            policy_with(&no_inherit, "{ book { reviews { count } } }"),
            public(0)
        );
        // The field's own `inheritMaxAge` does the same.
        let mut on_field = no_inherit.clone();
        on_field.push(("Book.reviews", Hint::INHERIT));
        assert_eq!(
            policy_with(&on_field, "{ book { reviews { count } } }"),
            public(200)
        );
        // A max age from the type wins over the field's `inheritMaxAge`.
        let mut both = on_field.clone();
        both.retain(|(k, _)| *k != "Book");
        both.push(("Book", Hint::max_age(200)));
        both.push(("Book.author", Hint::INHERIT));
        assert_eq!(
            policy_with(&both, "{ book { author { name } } }"),
            public(100)
        );
    }

    #[test]
    fn the_least_max_age_over_every_field_wins() {
        assert_eq!(
            policy("{ author { name } book { price author { name } } }"),
            public(10)
        );
        assert_eq!(policy("{ author { books { name } } }"), public(200));
    }

    #[test]
    fn private_anywhere_makes_the_whole_private() {
        assert_eq!(
            policy("{ book { price author { secret } } }"),
            Policy {
                max_age: 10,
                private: true,
            }
        );
        assert!(!policy("{ author { name } }").private);
        // A type's PRIVATE scope holds for the fields that return it, and a field's own
        // max age keeps it.
        let mut private_type = TABLE.to_vec();
        private_type.retain(|(k, _)| *k != "Author");
        private_type.push((
            "Author",
            Hint {
                private: true,
                ..Hint::max_age(100)
            },
        ));
        assert_eq!(
            policy_with(&private_type, "{ author { name } }"),
            Policy {
                max_age: 1000,
                private: true,
            }
        );
    }

    #[test]
    fn fragments_count_like_the_fields_they_bring() {
        let q = "{ ...Q } fragment Q on Query { book { ...B } } fragment B on Book { name ... on Book { price } }";
        assert_eq!(policy(q), public(10));
        // Conditional fields count whatever the variables.
        let q = "query($x: Boolean!) { book { name price @include(if: $x) } }";
        assert_eq!(policy(q), public(10));
    }

    #[test]
    fn abstract_fields_count_every_possible_object_types_selection() {
        // The union's own hint, not its members'.
        assert_eq!(policy("{ works { __typename } }"), public(500));
        assert_eq!(policy("{ works { ... on Author { name } } }"), public(500));
        // A member's fields restrict, even if this list holds none of that member.
        assert_eq!(
            policy("{ works { ... on Author { name } ... on Book { price } } }"),
            public(10)
        );
        assert!(policy("{ works { ... on Author { secret } } }").private);
        // Through an interface: fields of the interface are read on each object type.
        let mut named = TABLE.to_vec();
        named.push(("Named", Hint::max_age(300)));
        assert_eq!(policy_with(&named, "{ named { name } }"), public(300));
        assert_eq!(
            policy_with(&named, "{ named { ... on Book { price } } }"),
            public(10)
        );
    }

    #[test]
    fn entries_the_schema_does_not_have_are_refused() {
        let schema = Schema::from_sdl(SDL).unwrap();
        let refused = |key: &str| CacheHints::new(&schema, &[(key, Hint::max_age(1))]).unwrap_err();
        assert_eq!(refused("Autor"), HintError::UnknownType("Autor".into()));
        assert_eq!(
            refused("Author.nmae"),
            HintError::UnknownField("Author.nmae".into())
        );
        assert_eq!(
            refused("Query.nope"),
            HintError::UnknownField("Query.nope".into())
        );
        // Types no field returns a hint for, and fields read on objects, not interfaces.
        for misplaced in ["Int", "Query", "Named.name", "__Schema"] {
            assert!(
                matches!(
                    refused(misplaced),
                    HintError::Misplaced(_) | HintError::UnknownType(_)
                ),
                "{misplaced}"
            );
        }
        assert_eq!(
            CacheHints::new(&schema, &[("Book", Hint::NONE), ("Book", Hint::NONE)]).unwrap_err(),
            HintError::Duplicate("Book".into())
        );
    }

    /// Every key the schema has that needs a decision: each composite type but the roots,
    /// and each field of each object type but `Mutation`'s (mutations are never cached
    /// nor shared).
    fn keys_to_decide(schema: &Schema) -> Vec<String> {
        let roots = [Some(schema.query), schema.mutation, schema.subscription];
        let mut keys = Vec::new();
        for (i, t) in schema.types().iter().enumerate() {
            let id = TypeId(i as u32);
            if schema.is_introspection(id) || !schema.is_composite(id) {
                continue;
            }
            if !roots.contains(&Some(id)) {
                keys.push(t.name.clone());
            }
            if matches!(t.kind, Kind::Object { .. }) && Some(id) != schema.mutation {
                keys.extend(t.fields().iter().map(|f| format!("{}.{}", t.name, f.name)));
            }
        }
        keys
    }

    #[test]
    fn the_api_schema_has_a_hint_for_every_type_and_field_and_no_other() {
        let schema = crate::schema::build().unwrap();
        // Every entry names something the schema has (a typo cannot drop a hint).
        CacheHints::new(&schema, HINTS).unwrap();
        // Every type and field is decided: none is left to Apollo's defaults unseen.
        let keys = keys_to_decide(&schema);
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !HINTS.iter().any(|(h, _)| h == k))
            .collect();
        assert!(missing.is_empty(), "no cache hint for {missing:?}");
        // And nothing else: no hint on a mutation, which would mean nothing.
        let stray: Vec<&str> = HINTS
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !keys.iter().any(|k| k == h))
            .collect();
        assert!(stray.is_empty(), "cache hints for nothing: {stray:?}");
    }

    #[test]
    fn the_api_schemas_hints_make_profile_data_public_and_the_rest_not() {
        let schema = crate::schema::build().unwrap();
        let hints = CacheHints::new(&schema, HINTS).unwrap();
        let of = |q: &str| {
            let p = prepare(&schema, q, &Limits::default()).unwrap();
            hints.policy(&schema, p.plan(None).unwrap())
        };
        for q in [
            "{ user(login: \"a\") { login displayName bio createdAt channel { title } } }",
            "{ channel(login: \"a\") { title description: title language tags owner { displayName } category { name slug } moderators { login } } }",
            "{ category(slug: \"chess\") { id name slug } }",
            "{ node(id: \"x\") { ... on User { login } ... on Channel { title } } }",
        ] {
            assert_eq!(of(q), public(300), "{q}");
        }
        assert_eq!(
            of("{ search(query: \"a\") { ... on User { login } } }"),
            public(60)
        );
        for q in [
            "{ channel(login: \"a\") { viewerCount } }",
            "{ channel(login: \"a\") { followerCount } }",
            "{ channel(login: \"a\") { isLive } }",
            "{ channel(login: \"a\") { stream { title } } }",
            "{ channel(login: \"a\") { followers { nodes { login } } } }",
            "{ channel(login: \"a\") { recentMessages { body } } }",
            "{ streams { nodes { title } } }",
            "{ categories { nodes { name } } }",
            "{ category(slug: \"c\") { liveStreamCount } }",
            "{ chatHistory(channelId: \"c\") { body } }",
            "{ node(id: \"x\") { id } }",
            "{ node(id: \"x\") { ... on ChatMessage { body } } }",
            "{ node(id: \"x\") { ... on Stream { viewerCount } } }",
            "{ search(query: \"a\") { ... on Category { viewerCount } } }",
            "{ user(login: \"a\") { following { pageInfo { endCursor } } } }",
        ] {
            assert_eq!(of(q).max_age, 0, "{q}");
        }
        for q in [
            "{ viewer { login } }",
            "{ channel(login: \"a\") { viewerIsFollowing } }",
            "{ user(login: \"a\") { roles } }",
        ] {
            assert!(of(q).private, "{q}");
        }
    }
}
