//! Typed walks over a document for the rules: each operation and fragment definition
//! with the type its selections apply to, fields with their definitions, and every
//! place a directive or a variable can stand. Spreads are never followed, so a cycle
//! cannot hang a walk.

use async_graphql_parser::types::{
    Directive, ExecutableDocument, FragmentSpread, InlineFragment, OperationType, Selection,
    SelectionSet,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::{Name, Value};

use crate::schema::{Field as FieldDef, Kind, Schema, TypeId};

/// One step of a walk.
pub enum Visit<'a> {
    /// A field; `parent` is None where the enclosing type is unknown (reported elsewhere).
    Field {
        /// The field in the document.
        field: &'a Positioned<async_graphql_parser::types::Field>,
        /// The type it is selected on.
        parent: Option<TypeId>,
        /// Its definition, when the parent has such a field.
        def: Option<&'a FieldDef>,
    },
    /// A fragment spread, with the type it is spread into.
    Spread(&'a Positioned<FragmentSpread>, Option<TypeId>),
    /// An inline fragment, with the type it stands in.
    Inline(&'a Positioned<InlineFragment>, Option<TypeId>),
}

/// The root type of an operation kind.
pub fn root(schema: &Schema, ty: OperationType) -> Option<TypeId> {
    match ty {
        OperationType::Query => Some(schema.query),
        OperationType::Mutation => schema.mutation,
        OperationType::Subscription => schema.subscription,
    }
}

/// Every operation and fragment definition's selection set with the type it applies to.
pub fn definitions<'a>(
    schema: &Schema,
    doc: &'a ExecutableDocument,
) -> Vec<(&'a Positioned<SelectionSet>, Option<TypeId>)> {
    let mut out: Vec<_> = doc
        .operations
        .iter()
        .map(|(_, op)| (&op.node.selection_set, root(schema, op.node.ty)))
        .collect();
    for f in doc.fragments.values() {
        let on = schema.type_named(&f.node.type_condition.node.on.node);
        out.push((&f.node.selection_set, on));
    }
    out
}

/// Walks `set` (applied to `parent`), calling `f` for every field, spread and inline
/// fragment inside it.
pub fn walk<'a>(
    schema: &'a Schema,
    set: &'a SelectionSet,
    parent: Option<TypeId>,
    f: &mut impl FnMut(Visit<'a>),
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let def = parent.and_then(|p| field_def(schema, p, &field.node.name.node));
                f(Visit::Field { field, parent, def });
                let child = def.map(|d| d.ty.named());
                walk(schema, &field.node.selection_set.node, child, f);
            }
            Selection::FragmentSpread(spread) => f(Visit::Spread(spread, parent)),
            Selection::InlineFragment(inline) => {
                let on = match &inline.node.type_condition {
                    Some(c) => schema.type_named(&c.node.on.node),
                    None => parent,
                };
                f(Visit::Inline(inline, parent));
                walk(schema, &inline.node.selection_set.node, on, f);
            }
        }
    }
}

/// The definition of field `name` on `parent`, meta fields included.
pub fn field_def<'a>(schema: &'a Schema, parent: TypeId, name: &str) -> Option<&'a FieldDef> {
    schema.field(parent, name)
}

/// The object types a value of type `id` can be.
pub fn possible_types(schema: &Schema, id: TypeId) -> Vec<TypeId> {
    match &schema.get(id).kind {
        Kind::Object { .. } => vec![id],
        Kind::Interface { possible, .. } => possible.clone(),
        Kind::Union { members } => members.clone(),
        _ => Vec::new(),
    }
}

/// Whether the type is an object, interface or union.
pub fn is_composite(schema: &Schema, id: TypeId) -> bool {
    schema.is_composite(id)
}

/// Where a directive stands (the specification's executable directive locations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// On a query.
    Query,
    /// On a mutation.
    Mutation,
    /// On a subscription.
    Subscription,
    /// On a field.
    Field,
    /// On a fragment definition.
    FragmentDefinition,
    /// On a fragment spread.
    FragmentSpread,
    /// On an inline fragment.
    InlineFragment,
    /// On a variable definition.
    VariableDefinition,
}

/// Every directive list of the document with its location.
pub fn directive_lists(doc: &ExecutableDocument) -> Vec<(Location, &[Positioned<Directive>])> {
    let mut out = Vec::new();
    let mut sets: Vec<&SelectionSet> = Vec::new();
    for (_, op) in doc.operations.iter() {
        let loc = match op.node.ty {
            OperationType::Query => Location::Query,
            OperationType::Mutation => Location::Mutation,
            OperationType::Subscription => Location::Subscription,
        };
        out.push((loc, op.node.directives.as_slice()));
        for v in &op.node.variable_definitions {
            out.push((Location::VariableDefinition, v.node.directives.as_slice()));
        }
        sets.push(&op.node.selection_set.node);
    }
    for f in doc.fragments.values() {
        out.push((Location::FragmentDefinition, f.node.directives.as_slice()));
        sets.push(&f.node.selection_set.node);
    }
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    out.push((Location::Field, field.node.directives.as_slice()));
                    sets.push(&field.node.selection_set.node);
                }
                Selection::FragmentSpread(s) => {
                    out.push((Location::FragmentSpread, s.node.directives.as_slice()));
                }
                Selection::InlineFragment(i) => {
                    out.push((Location::InlineFragment, i.node.directives.as_slice()));
                    sets.push(&i.node.selection_set.node);
                }
            }
        }
    }
    out
}

/// The fragment spreads directly inside `set` (not through other fragments).
pub fn spreads(set: &SelectionSet) -> Vec<&Positioned<FragmentSpread>> {
    let mut out = Vec::new();
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => stack.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => out.push(s),
                Selection::InlineFragment(i) => stack.push(&i.node.selection_set.node),
            }
        }
    }
    out
}

/// The variables used directly inside `set` (arguments and directive arguments, not
/// through spreads), with their positions.
pub fn variables_used(set: &SelectionSet) -> Vec<(&Name, Pos)> {
    fn in_value<'a>(v: &'a Value, pos: Pos, out: &mut Vec<(&'a Name, Pos)>) {
        match v {
            Value::Variable(n) => out.push((n, pos)),
            Value::List(items) => items.iter().for_each(|i| in_value(i, pos, out)),
            Value::Object(fields) => fields.values().for_each(|i| in_value(i, pos, out)),
            _ => {}
        }
    }
    fn in_directives<'a>(ds: &'a [Positioned<Directive>], out: &mut Vec<(&'a Name, Pos)>) {
        for d in ds {
            for (_, v) in &d.node.arguments {
                in_value(&v.node, v.pos, out);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (_, v) in &f.node.arguments {
                        in_value(&v.node, v.pos, &mut out);
                    }
                    in_directives(&f.node.directives, &mut out);
                    stack.push(&f.node.selection_set.node);
                }
                Selection::FragmentSpread(s) => in_directives(&s.node.directives, &mut out),
                Selection::InlineFragment(i) => {
                    in_directives(&i.node.directives, &mut out);
                    stack.push(&i.node.selection_set.node);
                }
            }
        }
    }
    out
}

/// The fragments reachable from `set` through spreads, transitively, each once.
pub fn reachable_fragments<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut stack: Vec<&SelectionSet> = vec![set];
    while let Some(set) = stack.pop() {
        for s in spreads(set) {
            let name = s.node.fragment_name.node.as_str();
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                stack.push(&f.node.selection_set.node);
            }
        }
    }
    seen
}
