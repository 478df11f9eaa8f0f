//! Each rule on its own: a document that passes it and documents that break it.

use async_graphql_parser::parse_query;

use super::{rules, validate, Context};
use crate::limits::Limits;
use crate::persisted::{prepare, PrepareError};
use crate::schema::Schema;

const SDL: &str = r#"
    interface Pet { name: String! }
    type Dog implements Pet { name: String! barks: Boolean! owner: Human }
    type Cat implements Pet { name: String! meows: Boolean! owner: Human }
    type Human { name: String! nick: String! pets(first: Int = 10, kind: Kind): [Pet!]! }
    interface Lonely { a: Int }
    union Animal = Dog | Cat
    enum Kind { DOG CAT }
    input Filter { kind: Kind! }
    type Query {
      dog: Dog
      pet(name: String!): Pet
      animals(filter: Filter): [Animal!]!
      human(id: ID!, verbose: Boolean = false): Human
      lonely: Lonely
    }
    type Subscription { barks: Dog! meows: Cat! }
"#;

fn schema() -> Schema {
    Schema::from_sdl(SDL).unwrap()
}

/// The messages one rule reports for `query`.
fn run(rule: fn(&mut Context<'_>), query: &str) -> Vec<String> {
    let s = schema();
    let doc = parse_query(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut cx = Context::new(&s, &doc);
    rule(&mut cx);
    cx.into_errors().into_iter().map(|e| e.message).collect()
}

fn passes(rule: fn(&mut Context<'_>), query: &str) {
    let errors = run(rule, query);
    assert!(errors.is_empty(), "{query}: {errors:?}");
}

fn fails(rule: fn(&mut Context<'_>), query: &str, expected: &str) {
    let errors = run(rule, query);
    assert!(
        errors.iter().any(|e| e.contains(expected)),
        "{query}: expected {expected:?}, got {errors:?}"
    );
}

/// The (message, [(line, column)]) of each error `prepare` refuses `text` with.
fn invalid(text: &str) -> Vec<(String, Vec<(usize, usize)>)> {
    match prepare(&schema(), text, &Limits::default()) {
        Err(PrepareError::Invalid(errors)) => errors
            .into_iter()
            .map(|e| {
                let at = e.locations.iter().map(|p| (p.line, p.column)).collect();
                (e.message, at)
            })
            .collect(),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn parser_enforced_rules() {
    // 5.1.1, 5.2.1.1, 5.2.2.1, 5.5.1.1: the parser refuses these documents, without
    // saying where; `prepare` reports them as validation errors with graphql-js's
    // messages and locations.
    let cases = [
        (
            "query A { dog { name } } query A { dog { name } }",
            "There can be only one operation named \"A\".",
            vec![(1, 7), (1, 32)],
        ),
        (
            "{ dog { name } } query B { dog { name } }",
            "This anonymous operation must be the only defined operation.",
            vec![(1, 1)],
        ),
        (
            "{ dog { ...F } } fragment F on Dog { name } fragment F on Dog { name }",
            "There can be only one fragment named \"F\".",
            vec![(1, 27), (1, 54)],
        ),
        (
            "type T { a: Int }",
            "The \"T\" definition is not executable.",
            vec![(1, 1)],
        ),
    ];
    for (text, message, at) in cases {
        assert!(
            parse_query(text).is_err(),
            "the parser still refuses {text}"
        );
        assert_eq!(invalid(text), vec![(message.to_owned(), at)], "{text}");
    }
    // A syntax error stays one.
    assert!(matches!(
        prepare(&schema(), "type T { a: Int } { dog", &Limits::default()),
        Err(PrepareError::Parse(_))
    ));
}

#[test]
fn input_object_field_uniqueness() {
    // 5.6.3: the parser keeps the last of two equal fields; `prepare` finds them in the
    // text, and reports them before what the rules find in the parsed document.
    let message = "There can be only one input field named \"kind\".";
    assert_eq!(
        invalid("{ animals(filter: { kind: DOG, kind: CAT }) { __typename } }"),
        vec![(message.to_owned(), vec![(1, 21), (1, 32)])]
    );
    let errors = invalid("{ animals(filter: { kind: DOG, kind: 5 }) { __typename } }");
    // The value kept is the last; 5.6.1 finds it wrong at the argument's value (the
    // parser keeps no positions inside a value).
    let wrong = "Enum \"Kind\" cannot represent non-enum value: 5.";
    assert_eq!(
        errors,
        vec![
            (message.to_owned(), vec![(1, 21), (1, 32)]),
            (wrong.to_owned(), vec![(1, 19)])
        ]
    );
    assert!(prepare(
        &schema(),
        "{ animals(filter: { kind: DOG }) { __typename } }",
        &Limits::default()
    )
    .is_ok());
}

#[test]
fn subscription_single_root_field() {
    let r = rules::subscription_single_root_field;
    passes(r, "subscription S { barks { name } }");
    passes(
        r,
        "subscription S { ...F } fragment F on Subscription { barks { name } }",
    );
    fails(
        r,
        "subscription S { barks { name } meows { name } }",
        "exactly one root field",
    );
    fails(
        r,
        "subscription S { barks { name } ...F } fragment F on Subscription { meows { name } }",
        "exactly one root field",
    );
    fails(r, "subscription S { __typename }", "introspection");
    // Response keys are counted after collection: one key selected twice is one field.
    passes(r, "subscription { barks { name } barks { name } }");
    passes(
        r,
        "subscription { barks { name } ... on Subscription { barks { name } } }",
    );
    passes(
        r,
        "subscription { barks { name } ...F } fragment F on Subscription { barks { name } }",
    );
    passes(
        r,
        "subscription { barks { name } meows @skip(if: true) { name } }",
    );
    fails(
        r,
        "subscription { b: barks { name } ... on Subscription { c: barks { name } } }",
        "exactly one root field",
    );
}

#[test]
fn fields_on_correct_type() {
    let r = rules::fields_on_correct_type;
    passes(
        r,
        "{ dog { name barks __typename } __typename __schema { types { name } } }",
    );
    passes(r, "{ pet(name: \"x\") { name ... on Dog { barks } } }");
    fails(
        r,
        "{ dog { meows } }",
        "Cannot query field \"meows\" on type \"Dog\"",
    );
    fails(r, "{ pet(name: \"x\") { barks } }", "on type \"Pet\"");
    fails(r, "{ animals { name } }", "on type \"Animal\"");
    fails(
        r,
        "fragment F on Cat { barks } { dog { name } }",
        "on type \"Cat\"",
    );
}

#[test]
fn leaf_field_selections() {
    let r = rules::leaf_field_selections;
    passes(r, "{ dog { name owner { name } } }");
    fails(r, "{ dog }", "must have a selection of subfields");
    fails(r, "{ dog { name { x } } }", "must not have a selection");
}

#[test]
fn argument_names() {
    let r = rules::argument_names;
    passes(r, "{ human(id: 1) { pets(first: 2, kind: DOG) { name } } }");
    assert_eq!(
        run(r, "{ human(id: 1, nope: 2) { name } }"),
        ["Unknown argument \"nope\" on field \"Query.human\"."]
    );
    // Directives' arguments too.
    passes(r, "{ dog @include(if: true) { name @skip(if: false) } }");
    assert_eq!(
        run(r, "{ dog @include(if: true, unless: true) { name } }"),
        ["Unknown argument \"unless\" on directive \"@include\"."]
    );
}

#[test]
fn argument_uniqueness() {
    let r = rules::argument_uniqueness;
    passes(r, "{ human(id: 1, verbose: true) { name } }");
    fails(
        r,
        "{ human(id: 1, id: 2) { name } }",
        "only one argument named \"id\"",
    );
    fails(
        r,
        "{ dog @skip(if: true, if: false) { name } }",
        "only one argument named \"if\"",
    );
}

#[test]
fn required_arguments() {
    let r = rules::required_arguments;
    passes(r, "{ human(id: 1) { pets { name } } }");
    assert_eq!(
        run(r, "{ human { name } }"),
        ["Field \"human\" argument \"id\" of type \"ID!\" is required, but it was not provided."]
    );
    // An explicit null is provided: 5.6.1 refuses it, not this rule.
    passes(r, "{ human(id: null) { name } }");
    // Directives' required arguments too.
    assert_eq!(
        run(r, "{ dog @skip { name } }"),
        ["Directive \"@skip\" argument \"if\" of type \"Boolean!\" is required, but it was not provided."]
    );
    fails(
        r,
        "{ dog { ... @include { name } } }",
        "\"@include\" argument \"if\"",
    );
}

#[test]
fn an_explicit_null_for_a_required_argument_is_one_error() {
    let s = schema();
    let doc = parse_query("{ human(id: null) { name } }").unwrap();
    let messages: Vec<String> = validate(&s, &doc).into_iter().map(|e| e.message).collect();
    assert_eq!(messages, ["Expected value of type \"ID!\", found null."]);
}

#[test]
fn fragment_spread_type_existence() {
    let r = rules::fragment_spread_type_existence;
    passes(
        r,
        "{ dog { ...F ... on Dog { name } } } fragment F on Dog { name }",
    );
    fails(
        r,
        "{ dog { ...F } } fragment F on Nope { name }",
        "Unknown type \"Nope\"",
    );
    fails(
        r,
        "{ dog { ... on Nope { name } } }",
        "Unknown type \"Nope\"",
    );
}

#[test]
fn fragments_on_composite_types() {
    let r = rules::fragments_on_composite_types;
    passes(
        r,
        "{ animals { ... on Dog { name } } pet(name: \"x\") { ... on Pet { name } } }",
    );
    fails(
        r,
        "{ dog { ...F } } fragment F on Kind { x }",
        "non composite type \"Kind\"",
    );
    fails(
        r,
        "{ dog { ... on Boolean { x } } }",
        "non composite type \"Boolean\"",
    );
}

#[test]
fn fragments_must_be_used() {
    let r = rules::fragments_must_be_used;
    passes(
        r,
        "{ dog { ...A } } fragment A on Dog { ...B } fragment B on Dog { name }",
    );
    fails(
        r,
        "{ dog { name } } fragment Unused on Dog { name }",
        "Fragment \"Unused\" is never used",
    );
}

#[test]
fn fragment_spread_target_defined() {
    let r = rules::fragment_spread_target_defined;
    passes(r, "{ dog { ...A } } fragment A on Dog { name }");
    fails(r, "{ dog { ...Missing } }", "Unknown fragment \"Missing\"");
}

#[test]
fn fragment_spreads_must_not_form_cycles() {
    let r = rules::fragment_spreads_must_not_form_cycles;
    passes(
        r,
        "{ dog { ...A } } fragment A on Dog { ...B } fragment B on Dog { name }",
    );
    fails(
        r,
        "{ dog { ...A } } fragment A on Dog { ...A }",
        "\"A\" within itself",
    );
    fails(
        r,
        "{ dog { ...A } } fragment A on Dog { owner { pets { ...B } } } fragment B on Dog { ...A }",
        "\"B\" within itself",
    );
}

#[test]
fn directives_are_defined() {
    let r = rules::directives_are_defined;
    passes(r, "{ dog @include(if: true) { name @skip(if: false) } }");
    fails(r, "{ dog @nope { name } }", "Unknown directive \"@nope\"");
}

#[test]
fn directives_in_valid_locations() {
    let r = rules::directives_in_valid_locations;
    passes(r, "{ dog { ...F @skip(if: true) ... @include(if: true) { name } } } fragment F on Dog { name }");
    fails(
        r,
        "query Q @skip(if: true) { dog { name } }",
        "may not be used on Query",
    );
}

#[test]
fn directives_unique_per_location() {
    let r = rules::directives_unique_per_location;
    passes(r, "{ dog @skip(if: false) @include(if: true) { name } }");
    fails(
        r,
        "{ dog @skip(if: false) @skip(if: true) { name } }",
        "\"@skip\" can only be used once",
    );
}

#[test]
fn variable_uniqueness() {
    let r = rules::variable_uniqueness;
    passes(
        r,
        "query Q($a: ID!, $b: ID!) { human(id: $a) { name } h2: human(id: $b) { name } }",
    );
    fails(
        r,
        "query Q($a: ID!, $a: ID!) { human(id: $a) { name } }",
        "only one variable named \"$a\"",
    );
}

#[test]
fn variables_are_input_types() {
    let r = rules::variables_are_input_types;
    passes(
        r,
        "query Q($a: ID!, $f: Filter, $k: [Kind!]) { dog { name } }",
    );
    fails(
        r,
        "query Q($d: Dog) { dog { name } }",
        "non-input type \"Dog\"",
    );
    fails(
        r,
        "query Q($d: [Nope]) { dog { name } }",
        "non-input type \"[Nope]\"",
    );
}

#[test]
fn all_variable_uses_defined() {
    let r = rules::all_variable_uses_defined;
    passes(
        r,
        "query Q($id: ID!) { ...F } fragment F on Query { human(id: $id) { name } }",
    );
    fails(
        r,
        "query Q { human(id: $id) { name } }",
        "Variable \"$id\" is not defined by operation \"Q\"",
    );
    fails(
        r,
        "query Q { ...F } fragment F on Query { human(id: $id) { name } }",
        "\"$id\" is not defined",
    );
    fails(
        r,
        "query Q { dog @include(if: $show) { name } }",
        "\"$show\" is not defined",
    );
}

#[test]
fn all_variables_used() {
    let r = rules::all_variables_used;
    passes(
        r,
        "query Q($f: Filter) { animals(filter: $f) { __typename } }",
    );
    passes(
        r,
        "query Q($k: Kind!) { animals(filter: { kind: $k }) { __typename } }",
    );
    fails(
        r,
        "query Q($unused: ID) { dog { name } }",
        "\"$unused\" is never used in operation \"Q\"",
    );
}

#[test]
fn a_valid_document_passes_every_rule_and_errors_carry_locations() {
    let s = schema();
    let ok = parse_query(
        "query Q($id: ID!, $withPets: Boolean!) {
           human(id: $id) { name ...Pets @include(if: $withPets) }
           animals { __typename ... on Dog { name barks } ... on Cat { meows } }
         }
         fragment Pets on Human { pets(first: 3) { name ... on Dog { owner { name } } } }",
    )
    .unwrap();
    assert_eq!(validate(&s, &ok), vec![]);
    let bad = parse_query("{\n  dog {\n    meows\n  }\n}").unwrap();
    let errors = validate(&s, &bad);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].locations[0].line, errors[0].locations[0].column),
        (3, 5)
    );
}

#[test]
fn fragment_spread_is_possible() {
    let r = rules::fragment_spread_is_possible;
    passes(
        r,
        "{ pet(name: \"x\") { ... on Dog { barks } ...C } } fragment C on Cat { meows }",
    );
    passes(r, "{ animals { ... on Pet { name } } }");
    fails(
        r,
        "{ dog { ... on Cat { meows } } }",
        "objects of type \"Dog\" can never be of type \"Cat\"",
    );
    fails(
        r,
        "{ dog { ...H } } fragment H on Human { name }",
        "Fragment \"H\" cannot be spread here",
    );
}

#[test]
fn values_of_correct_type() {
    let r = rules::values_of_correct_type;
    passes(r, "{ human(id: 4, verbose: true) { pets(first: 2, kind: DOG) { name } } animals(filter: { kind: CAT }) { __typename } }");
    passes(
        r,
        "{ human(id: \"u1\") { name } dog @skip(if: false) { name } }",
    );
    // graphql-js's messages, word for word.
    let only = |query: &str, expected: &str| assert_eq!(run(r, query), [expected], "{query}");
    only(
        "{ human(id: 1, verbose: \"yes\") { name } }",
        "Boolean cannot represent a non boolean value: \"yes\"",
    );
    only(
        "{ human(id: 1) { pets(first: 3000000000) { name } } }",
        "Int cannot represent non 32-bit signed integer value: 3000000000",
    );
    only(
        "{ human(id: 1) { pets(first: 1.5) { name } } }",
        "Int cannot represent non-integer value: 1.5",
    );
    only(
        "{ human(id: 1) { pets(kind: FISH) { name } } }",
        "Value \"FISH\" does not exist in \"Kind\" enum.",
    );
    only(
        "{ human(id: 1) { pets(kind: \"DOG\") { name } } }",
        "Enum \"Kind\" cannot represent non-enum value: \"DOG\".",
    );
    only(
        "{ human(id: 1.5) { name } }",
        "ID cannot represent a non-string and non-integer value: 1.5",
    );
    only(
        "{ animals(filter: { kind: DOG, color: RED }) { __typename } }",
        "Field \"color\" is not defined by type \"Filter\".",
    );
    only(
        "{ animals(filter: {}) { __typename } }",
        "Field \"Filter.kind\" of required type \"Kind!\" was not provided.",
    );
    only(
        "{ animals(filter: { kind: null }) { __typename } }",
        "Expected value of type \"Kind!\", found null.",
    );
    only(
        "{ animals(filter: 1) { __typename } }",
        "Expected value of type \"Filter\", found 1.",
    );
    only(
        "{ animals(filter: [{ kind: DOG }]) { __typename } }",
        "Expected value of type \"Filter\", found [{kind: DOG}].",
    );
    only(
        "{ dog @include(if: 1) { name } }",
        "Boolean cannot represent a non boolean value: 1",
    );
    only(
        "{ human(id: null) { name } }",
        "Expected value of type \"ID!\", found null.",
    );
}

#[test]
fn variable_default_values_are_checked_against_their_type() {
    let r = rules::values_of_correct_type;
    passes(
        r,
        "query Q($n: Int = 3, $k: [Kind] = DOG, $f: Filter = { kind: CAT }) { dog { name } }",
    );
    assert_eq!(
        run(
            r,
            "query Q($n: Int = \"x\") { human(id: 1) { pets(first: $n) { name } } }"
        ),
        ["Int cannot represent non-integer value: \"x\""]
    );
    assert_eq!(
        run(
            r,
            "query Q($f: Filter = { kind: \"x\" }, $l: [Int!] = [1, null]) { dog { name } }"
        ),
        [
            "Enum \"Kind\" cannot represent non-enum value: \"x\".",
            "Expected value of type \"Int!\", found null."
        ]
    );
}

#[test]
fn all_variable_usages_allowed() {
    let r = rules::all_variable_usages_allowed;
    passes(
        r,
        "query Q($id: ID!, $k: Kind) { human(id: $id) { pets(kind: $k) { name } } }",
    );
    passes(r, "query Q($id: ID = 1) { human(id: $id) { name } }");
    passes(
        r,
        "query Q($k: Kind!) { animals(filter: { kind: $k }) { __typename } }",
    );
    fails(
        r,
        "query Q($id: ID) { human(id: $id) { name } }",
        "\"$id\" of type \"ID\" used in position expecting type \"ID!\"",
    );
    fails(
        r,
        "query Q($n: String!) { human(id: $n) { name } }",
        "expecting type \"ID!\"",
    );
    fails(
        r,
        "query Q($k: [Kind]) { human(id: 1) { pets(kind: $k) { name } } }",
        "expecting type \"Kind\"",
    );
    fails(r, "query Q($k: Kind) { ...F } fragment F on Query { animals(filter: { kind: $k }) { __typename } }", "expecting type \"Kind!\"");
}

#[test]
fn variable_usages_in_directive_arguments_are_checked() {
    let r = rules::all_variable_usages_allowed;
    passes(r, "query Q($v: Boolean!) { dog @skip(if: $v) { name } }");
    passes(
        r,
        "query Q($v: Boolean = true) { dog @skip(if: $v) { name } }",
    );
    assert_eq!(
        run(r, "query Q($v: Boolean) { dog @skip(if: $v) { name } }"),
        ["Variable \"$v\" of type \"Boolean\" used in position expecting type \"Boolean!\"."]
    );
    fails(
        r,
        "query Q($s: String!) { dog { ... @include(if: $s) { name } } }",
        "Variable \"$s\" of type \"String!\" used in position expecting type \"Boolean!\".",
    );
    fails(
        r,
        "query Q($v: Boolean) { ...F } fragment F on Query { dog { ...D @include(if: $v) } } fragment D on Dog { name }",
        "\"$v\" of type \"Boolean\" used in position expecting type \"Boolean!\"",
    );
}

#[test]
fn a_null_variable_default_is_no_default() {
    let r = rules::all_variable_usages_allowed;
    assert_eq!(
        run(r, "query Q($id: ID = null) { human(id: $id) { name } }"),
        ["Variable \"$id\" of type \"ID\" used in position expecting type \"ID!\"."]
    );
}

#[test]
fn field_selection_merging() {
    let r = rules::field_selection_merging;
    passes(r, "{ dog { name name } dog { barks } }");
    passes(r, "{ dog { n: name ...F } } fragment F on Dog { n: name }");
    passes(
        r,
        "{ human(id: 1) { pets(first: 2) { name } pets(first: 2) { ... on Dog { barks } } } }",
    );
    // Different parents that can never be the same object may differ.
    passes(
        r,
        "{ pet(name: \"x\") { ... on Dog { v: barks } ... on Cat { v: meows } } }",
    );
    fails(
        r,
        "{ dog { x: name x: barks } }",
        "\"name\" and \"barks\" are different fields",
    );
    fails(
        r,
        "{ human(id: 1) { pets(first: 1) { name } pets(first: 2) { name } } }",
        "differing arguments",
    );
    fails(
        r,
        "{ dog { ...A ...B } } fragment A on Dog { x: name } fragment B on Dog { x: barks }",
        "are different fields",
    );
    // Same shape is required even across disjoint parents.
    fails(
        r,
        "{ animals { ... on Dog { v: name } ... on Cat { v: meows } } }",
        "conflicting types \"String!\" and \"Boolean!\"",
    );
    // Conflicts deep inside merged sub-selections are found.
    assert_eq!(
        run(r, "{ dog { owner { x: name } } dog { owner { x: pets { name } } } }"),
        ["Fields \"dog\" conflict because subfields \"owner\" conflict because subfields \"x\" conflict because \"name\" and \"pets\" are different fields. Use different aliases on the fields to fetch both if this was intentional."]
    );
}

#[test]
fn mutually_exclusive_parents_stay_exclusive_in_sub_selections() {
    let r = rules::field_selection_merging;
    // Dog and Cat are never the same object: neither are their owners' fields.
    passes(
        r,
        "{ pet(name: \"x\") { ... on Dog { owner { x: name } } ... on Cat { owner { x: nick } } } }",
    );
    passes(
        r,
        "{ pet(name: \"x\") { ...D ...C } } fragment D on Dog { owner { x: name } } fragment C on Cat { owner { x: nick } }",
    );
    // Under the same parent type they are the same object.
    fails(
        r,
        "{ pet(name: \"x\") { ... on Dog { owner { x: name } } ... on Dog { owner { x: nick } } } }",
        "subfields \"x\" conflict because \"name\" and \"nick\" are different fields",
    );
    // Shapes must still agree.
    fails(
        r,
        "{ pet(name: \"x\") { ... on Dog { owner { x: name } } ... on Cat { owner { x: pets { name } } } } }",
        "conflicting types",
    );
}

#[test]
fn a_type_always_overlaps_itself() {
    let r = rules::fragment_spread_is_possible;
    // Lonely has no implementations, yet spreading it into itself is possible.
    passes(r, "{ lonely { ... on Lonely { a } } }");
    passes(r, "{ lonely { ...L } } fragment L on Lonely { a }");
    fails(
        r,
        "{ lonely { ... on Dog { name } } }",
        "objects of type \"Lonely\" can never be of type \"Dog\"",
    );
}
