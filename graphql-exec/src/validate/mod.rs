//! Validation of an executable document against a [`Schema`], rule by rule after the
//! GraphQL specification's "Validation" section. Each rule is its own function in
//! [`rules`], adding errors to a shared list; [`validate`] runs them all.
//!
//! Rules the parsed document cannot show are checked on its text, in [`source`]:
//! 5.6.3 Input Object Field Uniqueness (the parser keeps the last of two equal keys, so
//! duplicates are found before they are lost), and 5.1.1 Executable Definitions,
//! 5.2.1.1 Operation Name Uniqueness, 5.2.2.1 Lone Anonymous Operation and 5.5.1.1
//! Fragment Name Uniqueness, which the parser enforces by refusing the document without
//! locations: when it refuses, [`source::parser_refusal`] turns such a refusal into
//! validation errors with graphql-js's messages and locations (a real syntax error stays
//! a parse error). [`crate::persisted::prepare`] runs both; see `parser_enforced_rules`
//! in the tests.

mod lex;
pub mod rules;
pub mod source;
mod walk;

use async_graphql_parser::types::ExecutableDocument;
use async_graphql_parser::Pos;

use crate::schema::Schema;

/// One violated rule, with where in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// What is wrong, for the client.
    pub message: String,
    /// Where (1-based line and column).
    pub locations: Vec<Pos>,
}

/// What every rule reads, and where it writes its findings.
pub struct Context<'a> {
    /// The schema.
    pub schema: &'a Schema,
    /// The document.
    pub doc: &'a ExecutableDocument,
    errors: Vec<ValidationError>,
}

impl<'a> Context<'a> {
    /// A context with no errors yet.
    pub fn new(schema: &'a Schema, doc: &'a ExecutableDocument) -> Context<'a> {
        Context {
            schema,
            doc,
            errors: Vec::new(),
        }
    }

    /// Records a violation.
    pub fn report(&mut self, message: impl Into<String>, locations: Vec<Pos>) {
        self.errors.push(ValidationError {
            message: message.into(),
            locations,
        });
    }

    /// The violations found so far.
    pub fn into_errors(self) -> Vec<ValidationError> {
        self.errors
    }
}

/// Every rule, in the specification's order.
pub const RULES: &[fn(&mut Context<'_>)] = &[
    rules::subscription_single_root_field,
    rules::fields_on_correct_type,
    rules::field_selection_merging,
    rules::leaf_field_selections,
    rules::argument_names,
    rules::argument_uniqueness,
    rules::required_arguments,
    rules::fragment_spread_type_existence,
    rules::fragments_on_composite_types,
    rules::fragments_must_be_used,
    rules::fragment_spread_target_defined,
    rules::fragment_spreads_must_not_form_cycles,
    rules::fragment_spread_is_possible,
    rules::values_of_correct_type,
    rules::directives_are_defined,
    rules::directives_in_valid_locations,
    rules::directives_unique_per_location,
    rules::variable_uniqueness,
    rules::variables_are_input_types,
    rules::all_variable_uses_defined,
    rules::all_variables_used,
    rules::all_variable_usages_allowed,
];

/// Validates `doc` against `schema`; empty when it is valid.
pub fn validate(schema: &Schema, doc: &ExecutableDocument) -> Vec<ValidationError> {
    let mut cx = Context::new(schema, doc);
    for rule in RULES {
        rule(&mut cx);
    }
    cx.into_errors()
}

#[cfg(test)]
mod tests;
