//! The rules checked on the text: exact messages and locations, and what must not
//! confuse them.

use async_graphql_parser::parse_query;

use super::*;

/// (message, [(line, column)]) of each error.
type Found = Vec<(String, Vec<(usize, usize)>)>;

fn found(errors: Vec<ValidationError>) -> Found {
    errors
        .into_iter()
        .map(|e| {
            let at = e.locations.iter().map(|p| (p.line, p.column)).collect();
            (e.message, at)
        })
        .collect()
}

/// The duplicate input fields of a document the parser accepts.
fn dups(text: &str) -> Found {
    parse_query(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    found(duplicate_input_fields(text))
}

fn dup(name: &str, first: (usize, usize), second: (usize, usize)) -> (String, Vec<(usize, usize)>) {
    let message = format!("There can be only one input field named \"{name}\".");
    (message, vec![first, second])
}

/// What [`parser_refusal`] makes of a document the parser refuses.
fn refusal(text: &str) -> Option<Found> {
    let e = parse_query(text).expect_err(text);
    parser_refusal(text, &e).map(found)
}

fn one(message: &str, at: &[(usize, usize)]) -> (String, Vec<(usize, usize)>) {
    (message.to_owned(), at.to_vec())
}

#[test]
fn duplicate_fields_of_an_argument_are_found_at_both_names() {
    assert_eq!(
        dups(r#"mutation { updateChannel(input: { title: "a", title: "b" }) { title } }"#),
        vec![dup("title", (1, 35), (1, 47))]
    );
    // graphql-js's own cases: one error per repetition, each with the first.
    assert_eq!(
        dups("{\n  field(arg: { f1: \"value\", f1: \"value\", f1: \"value\" })\n}"),
        vec![dup("f1", (2, 16), (2, 29)), dup("f1", (2, 16), (2, 42))]
    );
    assert_eq!(
        dups("{ f(a: { x: 1 y: 2 z: 3 }) }"),
        vec![],
        "commas are optional"
    );
}

#[test]
fn nested_objects_and_lists_of_objects_are_each_their_own_scope() {
    // The inner repetition is found; the outer `x` is another object's.
    assert_eq!(
        dups("{ f(a: { o: { x: 1, x: 2 }, x: 3 }) }"),
        vec![dup("x", (1, 15), (1, 21))]
    );
    assert_eq!(
        dups("{ f(a: { deep: { deep: { id: 1 } id: 1 } id: 1 }) }"),
        vec![]
    );
    // Objects in a list, in a list of lists: siblings are not duplicates of each other.
    assert_eq!(
        dups("{ f(a: [{ x: 1 }, { x: 2, y: 3, x: 4 }, [{ y: 1 }, { y: 2, y: 3 }]]) }"),
        vec![dup("x", (1, 21), (1, 33)), dup("y", (1, 54), (1, 60))]
    );
    // The same field in two arguments, and in objects under the same field name.
    assert_eq!(
        dups("{ f(a: { x: 1 }, b: { x: 1 }) g(a: { o: { x: 1 } }, b: { o: { x: 1 } }) }"),
        vec![]
    );
}

#[test]
fn directive_arguments_and_variable_defaults_are_checked_too() {
    assert_eq!(
        dups("{ f @d(a: { x: 1, x: 2 }) ... @e(b: [{ y: 1 y: 2 }]) { g } }"),
        vec![dup("x", (1, 13), (1, 19)), dup("y", (1, 40), (1, 45))]
    );
    assert_eq!(
        dups("query Q($v: In = { x: 1, x: 2 }, $w: [In!] = [{ x: 1 }, { x: 1 }]) { f(a: $v, b: $w) }"),
        vec![dup("x", (1, 20), (1, 26))]
    );
    assert_eq!(
        dups("fragment F on T @d(a: { o: { k: A, k: B } }) { f }\n{ ...F }"),
        vec![dup("k", (1, 30), (1, 36))]
    );
}

#[test]
fn strings_block_strings_and_comments_do_not_confuse_the_pass() {
    // Braces, colons and repeated names inside strings, escapes, block strings and
    // comments are not fields; the real repetition after them is found where it is.
    let text = concat!(
        "{ f(a: {\n",
        "  s: \"{ x: 1, x: 2 } \\\" x: \\u0041\",\n",
        "  b: \"\"\"\n",
        "    } x: \\\"\"\" { x: 1 x: 2 } \"\n",
        "  \"\"\"\n",
        "  # x: 1, x: 2 }\n",
        "  x: 1\n",
        "  e: \"é✓\", x: 2\n",
        "}) }",
    );
    assert_eq!(dups(text), vec![dup("x", (7, 3), (8, 12))]);
}

#[test]
fn selection_sets_and_arguments_are_not_object_values() {
    // Repeated response keys are merged by 5.3.2, repeated arguments refused by 5.4.2:
    // neither is an input field.
    assert_eq!(dups("{ a: f a: f f(x: 1) { x: g x: g } }"), vec![]);
    assert_eq!(dups("query Q($x: Int = 1) { f(x: $x) }"), vec![]);
}

#[test]
fn type_system_definitions_are_not_executable() {
    // graphql-js's cases, as they are written there.
    let text = "
      query Foo {
        dog {
          name
        }
      }

      type Cow {
        name: String
      }

      extend type Dog {
        color: String
      }
    ";
    assert_eq!(
        refusal(text),
        Some(vec![
            one("The \"Cow\" definition is not executable.", &[(8, 7)]),
            one("The \"Dog\" definition is not executable.", &[(12, 7)]),
        ])
    );
    let text = "
      schema {
        query: Query
      }

      type Query {
        test: String
      }

      extend schema @directive
    ";
    assert_eq!(
        refusal(text),
        Some(vec![
            one("The schema definition is not executable.", &[(2, 7)]),
            one("The \"Query\" definition is not executable.", &[(6, 7)]),
            one("The schema definition is not executable.", &[(10, 7)]),
        ])
    );
}

#[test]
fn every_kind_of_type_system_definition_is_named_from_its_start() {
    let text = concat!(
        "\"\"\"A scalar.\"\"\"\n",
        "scalar Date @specifiedBy(url: \"x\")\n",
        "union U = | A | B\n",
        "\"An enum.\" enum E { A B }\n",
        "input I @d { a: [Int!] = [1] }\n",
        "interface N implements M & O { id: ID! }\n",
        "directive @auth(role: String = \"x\") repeatable on FIELD | QUERY\n",
        "extend union U = C\n",
        "{ a }\n",
    );
    let names = ["Date", "U", "E", "I", "N", "auth", "U"];
    let lines = [1, 3, 4, 5, 6, 7, 8];
    let expected: Found = names
        .iter()
        .zip(lines)
        .map(|(n, line)| {
            let m = format!("The \"{n}\" definition is not executable.");
            (m, vec![(line, 1)])
        })
        .collect();
    assert_eq!(refusal(text), Some(expected));
    // A `{` after a definition that takes no body is a query of its own; type system
    // keywords are names where a name is due.
    assert_eq!(
        refusal("scalar S { a }"),
        Some(vec![one(
            "The \"S\" definition is not executable.",
            &[(1, 1)]
        )])
    );
    assert_eq!(
        refusal("type query implements type { type: query } query type { type }"),
        Some(vec![one(
            "The \"query\" definition is not executable.",
            &[(1, 1)]
        )])
    );
}

#[test]
fn operation_names_are_unique_at_both_names() {
    assert_eq!(
        refusal("query A { a }\nmutation A { b }"),
        Some(vec![one(
            "There can be only one operation named \"A\".",
            &[(1, 7), (2, 10)]
        )])
    );
    assert_eq!(
        refusal("query A { a } query A { b } subscription A { c }"),
        Some(vec![
            one(
                "There can be only one operation named \"A\".",
                &[(1, 7), (1, 21)]
            ),
            one(
                "There can be only one operation named \"A\".",
                &[(1, 7), (1, 42)]
            ),
        ])
    );
}

#[test]
fn an_anonymous_operation_must_be_alone() {
    // graphql-js's cases: an error at each anonymous operation.
    assert_eq!(
        refusal("\n      {\n        fieldA\n      }\n      {\n        fieldB\n      }\n    "),
        Some(vec![
            one(
                "This anonymous operation must be the only defined operation.",
                &[(2, 7)]
            ),
            one(
                "This anonymous operation must be the only defined operation.",
                &[(5, 7)]
            ),
        ])
    );
    assert_eq!(
        refusal("{ a }\nmutation Foo { b }"),
        Some(vec![one(
            "This anonymous operation must be the only defined operation.",
            &[(1, 1)]
        )])
    );
    // `query { … }` is anonymous too, found at its keyword.
    assert_eq!(
        refusal("query Foo { a }\nquery($v: Int) { b(v: $v) }"),
        Some(vec![one(
            "This anonymous operation must be the only defined operation.",
            &[(2, 1)]
        )])
    );
}

#[test]
fn fragment_names_are_unique_at_both_names() {
    assert_eq!(
        refusal("{ ...F }\nfragment F on T { a }\nfragment F on T { b }"),
        Some(vec![one(
            "There can be only one fragment named \"F\".",
            &[(2, 10), (3, 10)]
        )])
    );
}

#[test]
fn all_the_rules_broken_are_reported_in_document_order() {
    let text = concat!(
        "{ a }\n",
        "query A { f(o: { x: 1, x: 2 }) }\n",
        "type T { a: Int }\n",
        "query A { b }\n",
        "fragment F on T { a }\n",
        "fragment F on T { b }\n",
    );
    assert_eq!(
        refusal(text),
        Some(vec![
            one("The \"T\" definition is not executable.", &[(3, 1)]),
            one(
                "This anonymous operation must be the only defined operation.",
                &[(1, 1)]
            ),
            one(
                "There can be only one input field named \"x\".",
                &[(2, 18), (2, 24)]
            ),
            one(
                "There can be only one operation named \"A\".",
                &[(2, 7), (4, 7)]
            ),
            one(
                "There can be only one fragment named \"F\".",
                &[(5, 10), (6, 10)]
            ),
        ])
    );
}

#[test]
fn a_real_syntax_error_stays_a_parse_error() {
    for text in [
        // In the executable definitions, with or without type system ones around.
        "{ a",
        "query A { a } query A { a",
        "type T { a: Int } { a",
        "type T { a: Int } query Q { a(: 1) }",
        // In the type system definitions.
        "type T { a } { b }",
        "{ a } type { a: Int }",
        "{ a } scalar",
        "{ a } directive @d on NOWHERE",
        "{ a } \"lost description\"",
        "\"a description\" { a }",
        // Definitions that only split as the text goes: joined up they would parse.
        "query Q type T { x: Int } { a }",
        "union U = A | { a } type",
        "extend schema @a { a }",
        "{ a } extend directive @d on FIELD",
        // Tokens that are no definition's.
        "{ a } b",
        "{ a } }",
        "type T { a: Int } 5",
        "{ a } type T % { a: Int }",
    ] {
        assert_eq!(refusal(text), None, "{text}");
    }
    // A document with only fragments has no operation: not one of these rules.
    assert_eq!(refusal("fragment F on T { a }"), None);
}

#[test]
fn a_fragment_without_an_operation_still_counts_as_executable() {
    assert_eq!(
        refusal("type T { a: Int }\nfragment F on T { a }"),
        Some(vec![one(
            "The \"T\" definition is not executable.",
            &[(1, 1)]
        )])
    );
}
