//! The validation rules, one function each, named after the specification's sections.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{BaseType, OperationType, Type};
use async_graphql_parser::Pos;

use super::walk::{self, Location, Visit};
use super::Context;
use crate::schema::{InputValue, Kind, TypeId};

/// Introspection entry points selectable on the query root besides its own fields.
const QUERY_META_FIELDS: [&str; 2] = ["__schema", "__type"];

/// 5.2.3.1 Single root field: a subscription selects exactly one root field
/// (`__typename` not allowed there), counting through fragments.
pub fn subscription_single_root_field(cx: &mut Context<'_>) {
    let doc = cx.doc;
    for (name, op) in doc.operations.iter() {
        if op.node.ty != OperationType::Subscription {
            continue;
        }
        let mut roots: Vec<(&str, Pos)> = Vec::new();
        let mut stack = vec![&op.node.selection_set.node];
        let mut seen = HashSet::new();
        while let Some(set) = stack.pop() {
            for item in &set.items {
                match &item.node {
                    async_graphql_parser::types::Selection::Field(f) => {
                        roots.push((f.node.name.node.as_str(), f.pos));
                    }
                    async_graphql_parser::types::Selection::InlineFragment(i) => {
                        stack.push(&i.node.selection_set.node);
                    }
                    async_graphql_parser::types::Selection::FragmentSpread(s) => {
                        if seen.insert(s.node.fragment_name.node.as_str()) {
                            if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                                stack.push(&f.node.selection_set.node);
                            }
                        }
                    }
                }
            }
        }
        let label = name.map_or("the anonymous subscription".to_owned(), |n| {
            format!("subscription {n}")
        });
        if roots.len() != 1 {
            cx.report(
                format!("{label} must select exactly one root field"),
                vec![op.pos],
            );
        } else if roots[0].0.starts_with("__") {
            cx.report(
                format!(
                    "{label} must not select the introspection field {}",
                    roots[0].0
                ),
                vec![roots[0].1],
            );
        }
    }
}

/// 5.3.1 Field Selections: every field exists on the type it is selected on.
pub fn fields_on_correct_type(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                parent: Some(parent),
                def: None,
            } = v
            {
                let name = field.node.name.node.as_str();
                let meta = walk::is_typename(name)
                    || (parent == schema.query && QUERY_META_FIELDS.contains(&name));
                if !meta {
                    found.push((
                        format!(
                            "Cannot query field \"{name}\" on type \"{}\".",
                            schema.get(parent).name
                        ),
                        field.pos,
                    ));
                }
            }
        });
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.3.3 Leaf Field Selections: scalars and enums take no selection set; objects,
/// interfaces and unions need one.
pub fn leaf_field_selections(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                def: Some(def),
                ..
            } = v
            {
                let ty = def.ty.named();
                let has_selection = !field.node.selection_set.node.items.is_empty();
                let name = field.node.name.node.as_str();
                let type_name = &schema.get(ty).name;
                if walk::is_composite(schema, ty) && !has_selection {
                    found.push((format!("Field \"{name}\" of type \"{type_name}\" must have a selection of subfields."), field.pos));
                } else if !walk::is_composite(schema, ty) && has_selection {
                    found.push((format!("Field \"{name}\" must not have a selection since type \"{type_name}\" has no subfields."), field.pos));
                }
            }
        });
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.4.1 Argument Names: every argument is defined on its field.
pub fn argument_names(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                def: Some(def),
                ..
            } = v
            {
                for (name, _) in &field.node.arguments {
                    if !def.args.iter().any(|a| a.name == name.node.as_str()) {
                        found.push((
                            format!(
                                "Unknown argument \"{}\" on field \"{}\".",
                                name.node, def.name
                            ),
                            name.pos,
                        ));
                    }
                }
            }
        });
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.4.2 Argument Uniqueness: no argument is given twice, on fields or directives.
pub fn argument_uniqueness(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    let mut check = |args: &[(
        async_graphql_parser::Positioned<async_graphql_value::Name>,
        async_graphql_parser::Positioned<async_graphql_value::Value>,
    )]| {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for (name, _) in args {
            if let Some(first) = seen.insert(name.node.as_str(), name.pos) {
                found.push((
                    format!("There can be only one argument named \"{}\".", name.node),
                    vec![first, name.pos],
                ));
            }
        }
    };
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field { field, .. } = v {
                check(&field.node.arguments);
            }
        });
    }
    for (_, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            check(&d.node.arguments);
        }
    }
    for (m, p) in found {
        cx.report(m, p);
    }
}

/// 5.4.2.1 Required Arguments: every non-null argument without a default is given.
pub fn required_arguments(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                def: Some(def),
                ..
            } = v
            {
                for arg in def.args.iter().filter(|a| is_required(a)) {
                    let given = field
                        .node
                        .arguments
                        .iter()
                        .find(|(n, _)| n.node.as_str() == arg.name);
                    let missing = match given {
                        None => true,
                        Some((_, v)) => matches!(v.node, async_graphql_value::Value::Null),
                    };
                    if missing {
                        found.push((
                            format!("Field \"{}\" argument \"{}\" is required, but it was not provided.", def.name, arg.name),
                            field.pos,
                        ));
                    }
                }
            }
        });
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

fn is_required(arg: &InputValue) -> bool {
    arg.ty.is_non_null() && arg.default.is_none()
}

/// 5.5.1.2 Fragment Spread Type Existence: type conditions name existing types.
pub fn fragment_spread_type_existence(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (cond, pos) in type_conditions(cx) {
        if cx.schema.type_named(cond).is_none() {
            found.push((format!("Unknown type \"{cond}\"."), pos));
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.5.1.3 Fragments On Composite Types: type conditions name objects, interfaces or unions.
pub fn fragments_on_composite_types(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (cond, pos) in type_conditions(cx) {
        if let Some(id) = cx.schema.type_named(cond) {
            if !walk::is_composite(cx.schema, id) {
                found.push((
                    format!("Fragment cannot condition on non composite type \"{cond}\"."),
                    pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// Every type condition of the document: fragment definitions and inline fragments.
fn type_conditions<'a>(cx: &Context<'a>) -> Vec<(&'a str, Pos)> {
    let mut out: Vec<(&str, Pos)> = cx
        .doc
        .fragments
        .values()
        .map(|f| {
            (
                f.node.type_condition.node.on.node.as_str(),
                f.node.type_condition.pos,
            )
        })
        .collect();
    for (set, parent) in walk::definitions(cx.schema, cx.doc) {
        walk::walk(cx.schema, &set.node, parent, &mut |v| {
            if let Visit::Inline(i) = v {
                if let Some(c) = &i.node.type_condition {
                    out.push((c.node.on.node.as_str(), c.pos));
                }
            }
        });
    }
    out
}

/// 5.5.1.4 Fragments Must Be Used: every fragment is spread from some operation.
pub fn fragments_must_be_used(cx: &mut Context<'_>) {
    let doc = cx.doc;
    let used: HashSet<&str> = doc
        .operations
        .iter()
        .flat_map(|(_, op)| walk::reachable_fragments(doc, &op.node.selection_set.node))
        .collect();
    let mut unused: Vec<_> = doc
        .fragments
        .iter()
        .filter(|(name, _)| !used.contains(name.as_str()))
        .map(|(name, f)| (format!("Fragment \"{name}\" is never used."), f.pos))
        .collect();
    unused.sort_by_key(|(_, p)| (p.line, p.column));
    for (m, p) in unused {
        cx.report(m, vec![p]);
    }
}

/// 5.5.2.1 Fragment spread target defined: every spread names a defined fragment.
pub fn fragment_spread_target_defined(cx: &mut Context<'_>) {
    let doc = cx.doc;
    let mut found = Vec::new();
    for (set, _) in walk::definitions(cx.schema, doc) {
        for s in walk::spreads(&set.node) {
            if !doc.fragments.contains_key(&s.node.fragment_name.node) {
                found.push((
                    format!("Unknown fragment \"{}\".", s.node.fragment_name.node),
                    s.pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.5.2.2 Fragment spreads must not form cycles.
pub fn fragment_spreads_must_not_form_cycles(cx: &mut Context<'_>) {
    let doc = cx.doc;
    let mut found = Vec::new();
    let mut names: Vec<_> = doc.fragments.keys().collect();
    names.sort();
    for name in names {
        let f = &doc.fragments[name];
        // A fragment is in a cycle when it can reach itself.
        let mut stack: Vec<&str> = walk::spreads(&f.node.selection_set.node)
            .iter()
            .map(|s| s.node.fragment_name.node.as_str())
            .collect();
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == name.as_str() {
                found.push((
                    format!("Cannot spread fragment \"{name}\" within itself."),
                    f.pos,
                ));
                break;
            }
            if !seen.insert(n) {
                continue;
            }
            if let Some(g) = doc.fragments.get(n) {
                stack.extend(
                    walk::spreads(&g.node.selection_set.node)
                        .iter()
                        .map(|s| s.node.fragment_name.node.as_str()),
                );
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// The executable directives this engine knows, with their locations and arguments.
fn directive_spec(name: &str) -> Option<(&'static [Location], &'static [&'static str])> {
    const CONDITIONAL: &[Location] = &[
        Location::Field,
        Location::FragmentSpread,
        Location::InlineFragment,
    ];
    match name {
        "skip" | "include" => Some((CONDITIONAL, &["if"])),
        _ => None,
    }
}

/// 5.7.1 Directives Are Defined.
pub fn directives_are_defined(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (_, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            if directive_spec(&d.node.name.node).is_none() {
                found.push((
                    format!("Unknown directive \"@{}\".", d.node.name.node),
                    d.pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.7.2 Directives Are In Valid Locations.
pub fn directives_in_valid_locations(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (loc, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            if let Some((locations, _)) = directive_spec(&d.node.name.node) {
                if !locations.contains(&loc) {
                    found.push((
                        format!(
                            "Directive \"@{}\" may not be used on {loc:?}.",
                            d.node.name.node
                        ),
                        d.pos,
                    ));
                }
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.7.3 Directives Are Unique Per Location (none of the known ones is repeatable).
pub fn directives_unique_per_location(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (_, ds) in walk::directive_lists(cx.doc) {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for d in ds {
            if let Some(first) = seen.insert(d.node.name.node.as_str(), d.pos) {
                found.push((
                    format!(
                        "The directive \"@{}\" can only be used once at this location.",
                        d.node.name.node
                    ),
                    vec![first, d.pos],
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, p);
    }
}

/// 5.8.1 Variable Uniqueness.
pub fn variable_uniqueness(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (_, op) in cx.doc.operations.iter() {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for v in &op.node.variable_definitions {
            if let Some(first) = seen.insert(v.node.name.node.as_str(), v.pos) {
                found.push((
                    format!(
                        "There can be only one variable named \"${}\".",
                        v.node.name.node
                    ),
                    vec![first, v.pos],
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, p);
    }
}

/// 5.8.2 Variables Are Input Types: scalars, enums and input objects only.
pub fn variables_are_input_types(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for (_, op) in cx.doc.operations.iter() {
        for v in &op.node.variable_definitions {
            let named = base_name(&v.node.var_type.node);
            let ok = cx
                .schema
                .type_named(named)
                .is_some_and(|id| is_input_type(cx, id));
            if !ok {
                found.push((
                    format!(
                        "Variable \"${}\" cannot be non-input type \"{}\".",
                        v.node.name.node, v.node.var_type.node
                    ),
                    v.node.var_type.pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

fn base_name(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => base_name(inner),
    }
}

fn is_input_type(cx: &Context<'_>, id: TypeId) -> bool {
    matches!(
        cx.schema.get(id).kind,
        Kind::Scalar | Kind::Enum { .. } | Kind::InputObject { .. }
    )
}

/// 5.8.3 All Variable Uses Defined: every variable used by an operation, directly or
/// through its fragments, is defined by it.
pub fn all_variable_uses_defined(cx: &mut Context<'_>) {
    let doc = cx.doc;
    let mut found = Vec::new();
    for (name, op) in doc.operations.iter() {
        let defined: HashSet<&str> = op
            .node
            .variable_definitions
            .iter()
            .map(|v| v.node.name.node.as_str())
            .collect();
        for (var, pos) in operation_variables(cx, &op.node.selection_set.node) {
            if !defined.contains(var) {
                let label = name.map_or("the anonymous operation".to_owned(), |n| {
                    format!("operation \"{n}\"")
                });
                found.push((
                    format!("Variable \"${var}\" is not defined by {label}."),
                    vec![pos, op.pos],
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, p);
    }
}

/// 5.8.4 All Variables Used: every variable an operation defines is used, directly or
/// through its fragments.
pub fn all_variables_used(cx: &mut Context<'_>) {
    let doc = cx.doc;
    let mut found = Vec::new();
    for (name, op) in doc.operations.iter() {
        let used: HashSet<&str> = operation_variables(cx, &op.node.selection_set.node)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for v in &op.node.variable_definitions {
            if !used.contains(v.node.name.node.as_str()) {
                let label = name.map_or("the anonymous operation".to_owned(), |n| {
                    format!("operation \"{n}\"")
                });
                found.push((
                    format!(
                        "Variable \"${}\" is never used in {label}.",
                        v.node.name.node
                    ),
                    v.pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// The variables an operation uses, through all the fragments it reaches.
fn operation_variables<'a>(
    cx: &Context<'a>,
    set: &'a async_graphql_parser::types::SelectionSet,
) -> Vec<(&'a str, Pos)> {
    let doc = cx.doc;
    let mut out: Vec<(&str, Pos)> = walk::variables_used(set)
        .into_iter()
        .map(|(n, p)| (n.as_str(), p))
        .collect();
    for frag in walk::reachable_fragments(doc, set) {
        if let Some(f) = doc.fragments.get(frag) {
            out.extend(
                walk::variables_used(&f.node.selection_set.node)
                    .into_iter()
                    .map(|(n, p)| (n.as_str(), p)),
            );
        }
    }
    out
}
