//! The validation rules, one function each, named after the specification's sections.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{BaseType, OperationType, Type};
use async_graphql_parser::Pos;

use super::walk::{self, Location, Visit};
use super::Context;
use async_graphql_value::{ConstValue, Value};

use crate::schema::{InputValue, Kind, TypeId, TypeRef};

/// 5.2.3.1 Single root field: a subscription's root selection set collects (through
/// fragments, same response keys merged) into exactly one response key, and that is
/// not an introspection field.
pub fn subscription_single_root_field(cx: &mut Context<'_>) {
    use async_graphql_parser::types::Selection as Sel;
    let doc = cx.doc;
    for (name, op) in doc.operations.iter() {
        if op.node.ty != OperationType::Subscription {
            continue;
        }
        // (response key, field name, position), each key once, in collected order.
        let mut roots: Vec<(&str, &str, Pos)> = Vec::new();
        let mut seen = HashSet::new();
        // Depth first, in document order, as CollectFields goes.
        let mut pending = vec![op.node.selection_set.node.items.iter()];
        while let Some(items) = pending.last_mut() {
            let Some(item) = items.next() else {
                pending.pop();
                continue;
            };
            let directives = match &item.node {
                Sel::Field(f) => &f.node.directives,
                Sel::InlineFragment(i) => &i.node.directives,
                Sel::FragmentSpread(s) => &s.node.directives,
            };
            if constantly_excluded(directives) {
                continue;
            }
            match &item.node {
                Sel::Field(f) => {
                    let key = f.node.alias.as_ref().unwrap_or(&f.node.name).node.as_str();
                    if !roots.iter().any(|(k, _, _)| *k == key) {
                        roots.push((key, f.node.name.node.as_str(), f.pos));
                    }
                }
                Sel::InlineFragment(i) => {
                    pending.push(i.node.selection_set.node.items.iter());
                }
                Sel::FragmentSpread(s) => {
                    if seen.insert(s.node.fragment_name.node.as_str()) {
                        if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                            pending.push(f.node.selection_set.node.items.iter());
                        }
                    }
                }
            }
        }
        let roots: Vec<(&str, Pos)> = roots.into_iter().map(|(_, n, p)| (n, p)).collect();
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
                found.push((
                    format!(
                        "Cannot query field \"{name}\" on type \"{}\".",
                        schema.get(parent).name
                    ),
                    field.pos,
                ));
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

/// The arguments of a directive this engine knows (`@skip`, `@include`).
fn directive_args<'a>(cx: &Context<'a>, name: &str) -> Option<&'a [InputValue]> {
    directive_spec(name)?;
    Some(cx.schema.directive_args(name))
}

/// 5.4.1 Argument Names: every argument is defined on its field or directive.
pub fn argument_names(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                parent,
                def: Some(def),
            } = v
            {
                for (name, _) in &field.node.arguments {
                    if !def.args.iter().any(|a| a.name == name.node.as_str()) {
                        let owner = parent.map_or("", |p| schema.get(p).name.as_str());
                        found.push((
                            format!(
                                "Unknown argument \"{}\" on field \"{owner}.{}\".",
                                name.node, def.name
                            ),
                            name.pos,
                        ));
                    }
                }
            }
        });
    }
    for (_, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            let Some(defs) = directive_args(cx, &d.node.name.node) else {
                continue;
            };
            for (name, _) in &d.node.arguments {
                if !defs.iter().any(|a| a.name == name.node.as_str()) {
                    found.push((
                        format!(
                            "Unknown argument \"{}\" on directive \"@{}\".",
                            name.node, d.node.name.node
                        ),
                        name.pos,
                    ));
                }
            }
        }
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

/// 5.4.2.1 Required Arguments: every non-null argument without a default is given, on
/// fields and directives. (An explicit null for one is given: 5.6.1 refuses it.)
pub fn required_arguments(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let mut found = Vec::new();
    let missing = |defs: &[InputValue],
                   given: &[(
        async_graphql_parser::Positioned<async_graphql_value::Name>,
        async_graphql_parser::Positioned<Value>,
    )]| {
        defs.iter()
            .filter(|a| is_required(a))
            .filter(|a| !given.iter().any(|(n, _)| n.node.as_str() == a.name))
            .map(|a| (a.name.clone(), display_ref(schema, &a.ty)))
            .collect::<Vec<_>>()
    };
    for (set, parent) in walk::definitions(schema, cx.doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field {
                field,
                def: Some(def),
                ..
            } = v
            {
                for (arg, ty) in missing(&def.args, &field.node.arguments) {
                    found.push((
                        format!("Field \"{}\" argument \"{arg}\" of type \"{ty}\" is required, but it was not provided.", def.name),
                        field.pos,
                    ));
                }
            }
        });
    }
    for (_, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            let Some(defs) = directive_args(cx, &d.node.name.node) else {
                continue;
            };
            for (arg, ty) in missing(defs, &d.node.arguments) {
                found.push((
                    format!(
                        "Directive \"@{}\" argument \"{arg}\" of type \"{ty}\" is required, but it was not provided.",
                        d.node.name.node
                    ),
                    d.pos,
                ));
            }
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// Whether `@skip(if: true)` or `@include(if: false)` leaves a selection out whatever
/// the variables.
fn constantly_excluded(
    directives: &[async_graphql_parser::Positioned<async_graphql_parser::types::Directive>],
) -> bool {
    directives.iter().any(|d| {
        let want = match d.node.name.node.as_str() {
            "skip" => true,
            "include" => false,
            _ => return false,
        };
        d.node
            .arguments
            .iter()
            .any(|(n, v)| n.node == "if" && v.node == Value::Boolean(want))
    })
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
            if let Visit::Inline(i, _) = v {
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

/// 5.5.2.3 Fragment spread is possible: a fragment's type and the type it is spread
/// into share at least one object type.
pub fn fragment_spread_is_possible(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let doc = cx.doc;
    let mut found = Vec::new();
    for (set, parent) in walk::definitions(schema, doc) {
        walk::walk(schema, &set.node, parent, &mut |v| {
            let (on, parent, label, pos) = match v {
                Visit::Spread(s, Some(parent)) => {
                    let Some(f) = doc.fragments.get(&s.node.fragment_name.node) else {
                        return;
                    };
                    let on = schema.type_named(&f.node.type_condition.node.on.node);
                    (
                        on,
                        parent,
                        format!("Fragment \"{}\"", s.node.fragment_name.node),
                        s.pos,
                    )
                }
                Visit::Inline(i, Some(parent)) => {
                    let Some(c) = &i.node.type_condition else {
                        return;
                    };
                    (
                        schema.type_named(&c.node.on.node),
                        parent,
                        "Fragment".to_owned(),
                        i.pos,
                    )
                }
                _ => return,
            };
            let Some(on) = on else { return };
            if !walk::is_composite(schema, on) || !walk::is_composite(schema, parent) {
                return;
            }
            // The same type always overlaps itself, even an interface nothing implements.
            if on == parent {
                return;
            }
            let theirs = walk::possible_types(schema, on);
            if !walk::possible_types(schema, parent)
                .iter()
                .any(|t| theirs.contains(t))
            {
                found.push((
                    format!(
                        "{label} cannot be spread here as objects of type \"{}\" can never be of type \"{}\".",
                        schema.get(parent).name,
                        schema.get(on).name
                    ),
                    pos,
                ));
            }
        });
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// 5.6.1 Values of Correct Type, 5.6.2 Input Object Field Names and 5.6.4 Input
/// Object Required Fields: every literal (field and directive arguments, variables'
/// default values) coerces to its type, reported with graphql-js's messages. (5.6.3,
/// field uniqueness, cannot be checked here: the parser keeps one entry per input field
/// name; it is checked on the text, in [`super::source::duplicate_input_fields`].)
pub fn values_of_correct_type(cx: &mut Context<'_>) {
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
                for (name, value) in &field.node.arguments {
                    if let Some(arg) = def.args.iter().find(|a| a.name == name.node.as_str()) {
                        check_value(schema, &value.node, &arg.ty, value.pos, &mut found);
                    }
                }
            }
        });
    }
    for (_, ds) in walk::directive_lists(cx.doc) {
        for d in ds {
            let Some(defs) = directive_args(cx, &d.node.name.node) else {
                continue;
            };
            for (name, value) in &d.node.arguments {
                if let Some(arg) = defs.iter().find(|a| a.name == name.node.as_str()) {
                    check_value(schema, &value.node, &arg.ty, value.pos, &mut found);
                }
            }
        }
    }
    for (_, op) in cx.doc.operations.iter() {
        for v in &op.node.variable_definitions {
            let (Some(default), Some(ty)) = (
                &v.node.default_value,
                crate::coerce::resolve(schema, &v.node.var_type.node),
            ) else {
                continue;
            };
            let value = default.node.clone().into_value();
            check_value(schema, &value, &ty, default.pos, &mut found);
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

/// Checks a literal against a type as graphql-js's ValuesOfCorrectTypeRule does;
/// variables are checked by 5.8.5.
fn check_value(
    schema: &crate::schema::Schema,
    value: &Value,
    ty: &TypeRef,
    pos: Pos,
    found: &mut Vec<(String, Pos)>,
) {
    let print = crate::coerce::print_literal;
    let expected = |ty: &TypeRef| {
        format!(
            "Expected value of type \"{}\", found {}.",
            display_ref(schema, ty),
            print(value)
        )
    };
    let nullable = match ty {
        TypeRef::NonNull(inner) => &**inner,
        other => other,
    };
    match value {
        Value::Variable(_) => {}
        Value::Null => {
            if ty.is_non_null() {
                found.push((expected(ty), pos));
            }
        }
        Value::List(items) if matches!(nullable, TypeRef::List(_)) => {
            let TypeRef::List(item) = nullable else {
                return;
            };
            for i in items {
                check_value(schema, i, item, pos, found);
            }
        }
        Value::Object(given) => {
            let named = schema.get(ty.named());
            let Kind::InputObject { fields } = &named.kind else {
                return check_leaf(schema, value, ty, pos, found);
            };
            for f in fields {
                if !given.contains_key(f.name.as_str()) && f.ty.is_non_null() && f.default.is_none()
                {
                    found.push((
                        format!(
                            "Field \"{}.{}\" of required type \"{}\" was not provided.",
                            named.name,
                            f.name,
                            display_ref(schema, &f.ty)
                        ),
                        pos,
                    ));
                }
            }
            for (key, v) in given {
                match fields.iter().find(|f| f.name == key.as_str()) {
                    Some(f) => check_value(schema, v, &f.ty, pos, found),
                    None => found.push((
                        format!("Field \"{key}\" is not defined by type \"{}\".", named.name),
                        pos,
                    )),
                }
            }
        }
        _ => check_leaf(schema, value, ty, pos, found),
    }
}

/// graphql-js `isValidValueNode`: a literal where a scalar or enum (or, wrongly, an
/// input object) is expected, reported with the scalar's own parse error.
fn check_leaf(
    schema: &crate::schema::Schema,
    value: &Value,
    ty: &TypeRef,
    pos: Pos,
    found: &mut Vec<(String, Pos)>,
) {
    let printed = crate::coerce::print_literal(value);
    let named = schema.get(ty.named());
    let message = match (&named.kind, named.name.as_str(), value) {
        (Kind::Enum { values }, _, Value::Enum(n)) => {
            if values.iter().any(|e| e.name == n.as_str()) {
                return;
            }
            format!("Value \"{n}\" does not exist in \"{}\" enum.", named.name)
        }
        (Kind::Enum { .. }, _, _) => format!(
            "Enum \"{}\" cannot represent non-enum value: {printed}.",
            named.name
        ),
        (Kind::Scalar, "Int", Value::Number(n)) if n.is_i64() || n.is_u64() => {
            if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) {
                return;
            }
            format!("Int cannot represent non 32-bit signed integer value: {printed}")
        }
        (Kind::Scalar, "Int", _) => format!("Int cannot represent non-integer value: {printed}"),
        (Kind::Scalar, "Float", Value::Number(_))
        | (Kind::Scalar, "String", Value::String(_))
        | (Kind::Scalar, "Boolean", Value::Boolean(_))
        | (Kind::Scalar, "ID", Value::String(_)) => return,
        (Kind::Scalar, "ID", Value::Number(n)) if n.is_i64() || n.is_u64() => return,
        (Kind::Scalar, "Float", _) => {
            format!("Float cannot represent non numeric value: {printed}")
        }
        (Kind::Scalar, "String", _) => {
            format!("String cannot represent a non string value: {printed}")
        }
        (Kind::Scalar, "Boolean", _) => {
            format!("Boolean cannot represent a non boolean value: {printed}")
        }
        (Kind::Scalar, "ID", _) => {
            format!("ID cannot represent a non-string and non-integer value: {printed}")
        }
        // Custom scalars take any literal.
        (Kind::Scalar, _, _) => return,
        _ => format!(
            "Expected value of type \"{}\", found {printed}.",
            display_ref(schema, ty)
        ),
    };
    found.push((message, pos));
}

fn display_ref(schema: &crate::schema::Schema, ty: &TypeRef) -> String {
    match ty {
        TypeRef::Named(id) => schema.get(*id).name.clone(),
        TypeRef::List(inner) => format!("[{}]", display_ref(schema, inner)),
        TypeRef::NonNull(inner) => format!("{}!", display_ref(schema, inner)),
    }
}

/// 5.8.5 All Variable Usages Are Allowed: a variable's declared type fits every place
/// it is used, in field and directive arguments (a nullable variable may stand where a
/// non-null is expected only when the variable has a non-null default or the location
/// has a default).
pub fn all_variable_usages_allowed(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let doc = cx.doc;
    let mut found = Vec::new();
    for (_, op) in doc.operations.iter() {
        let declared: HashMap<&str, (&Type, bool)> = op
            .node
            .variable_definitions
            .iter()
            .map(|v| {
                let non_null_default = v
                    .node
                    .default_value
                    .as_ref()
                    .is_some_and(|d| !matches!(d.node, ConstValue::Null));
                (
                    v.node.name.node.as_str(),
                    (&v.node.var_type.node, non_null_default),
                )
            })
            .collect();
        let mut sets = vec![(&op.node.selection_set.node, walk::root(schema, op.node.ty))];
        for frag in walk::reachable_fragments(doc, &op.node.selection_set.node) {
            if let Some(f) = doc.fragments.get(frag) {
                sets.push((
                    &f.node.selection_set.node,
                    schema.type_named(&f.node.type_condition.node.on.node),
                ));
            }
        }
        for (set, parent) in sets {
            walk::walk(schema, set, parent, &mut |v| {
                let directives = match v {
                    Visit::Field { field, def, .. } => {
                        for (name, value) in &field.node.arguments {
                            let Some(arg) = def
                                .and_then(|d| d.args.iter().find(|a| a.name == name.node.as_str()))
                            else {
                                continue;
                            };
                            usages(
                                schema,
                                &value.node,
                                &arg.ty,
                                arg.default.is_some(),
                                value.pos,
                                &declared,
                                &mut found,
                            );
                        }
                        &field.node.directives
                    }
                    Visit::Spread(s, _) => &s.node.directives,
                    Visit::Inline(i, _) => &i.node.directives,
                };
                for d in directives {
                    let Some(defs) = directive_args(cx, &d.node.name.node) else {
                        continue;
                    };
                    for (name, value) in &d.node.arguments {
                        if let Some(arg) = defs.iter().find(|a| a.name == name.node.as_str()) {
                            usages(
                                schema,
                                &value.node,
                                &arg.ty,
                                arg.default.is_some(),
                                value.pos,
                                &declared,
                                &mut found,
                            );
                        }
                    }
                }
            });
        }
    }
    for (m, p) in found {
        cx.report(m, vec![p]);
    }
}

fn usages(
    schema: &crate::schema::Schema,
    value: &Value,
    location: &TypeRef,
    location_default: bool,
    pos: Pos,
    declared: &HashMap<&str, (&Type, bool)>,
    found: &mut Vec<(String, Pos)>,
) {
    match value {
        Value::Variable(name) => {
            let Some((var_ty, var_default)) = declared.get(name.as_str()) else {
                return;
            };
            // A default on either side lets a nullable variable fill a non-null place.
            let location = match location {
                TypeRef::NonNull(inner)
                    if var_ty.nullable && (*var_default || location_default) =>
                {
                    &**inner
                }
                other => other,
            };
            if !type_fits(schema, var_ty, location) {
                found.push((
                    format!(
                        "Variable \"${name}\" of type \"{var_ty}\" used in position expecting type \"{}\".",
                        display_ref(schema, location)
                    ),
                    pos,
                ));
            }
        }
        Value::List(items) => {
            let inner = match location {
                TypeRef::NonNull(l) => match &**l {
                    TypeRef::List(i) => Some(&**i),
                    _ => None,
                },
                TypeRef::List(i) => Some(&**i),
                TypeRef::Named(_) => None,
            };
            if let Some(inner) = inner {
                for item in items {
                    usages(schema, item, inner, false, pos, declared, found);
                }
            }
        }
        Value::Object(fields) => {
            let named = location.named();
            if let Kind::InputObject { fields: defs } = &schema.get(named).kind {
                for (k, v) in fields {
                    if let Some(d) = defs.iter().find(|d| d.name == k.as_str()) {
                        usages(schema, v, &d.ty, d.default.is_some(), pos, declared, found);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Whether a variable of type `var` may stand where `location` is expected
/// (IsVariableUsageAllowed / AreTypesCompatible of the specification).
fn type_fits(schema: &crate::schema::Schema, var: &Type, location: &TypeRef) -> bool {
    match location {
        TypeRef::NonNull(inner) => {
            !var.nullable
                && type_fits(
                    schema,
                    &Type {
                        base: var.base.clone(),
                        nullable: true,
                    },
                    inner,
                )
        }
        _ if !var.nullable => type_fits(
            schema,
            &Type {
                base: var.base.clone(),
                nullable: true,
            },
            location,
        ),
        TypeRef::List(inner) => match &var.base {
            BaseType::List(item) => type_fits(schema, item, inner),
            BaseType::Named(_) => false,
        },
        TypeRef::Named(id) => match &var.base {
            BaseType::Named(n) => schema.get(*id).name == n.as_str(),
            BaseType::List(_) => false,
        },
    }
}

/// The most field pairs 5.3.2 compares in one document; a document that needs more is
/// refused rather than allowed to burn the core.
const MAX_MERGE_COMPARISONS: usize = 100_000;

/// A field with the type it is selected on, as gathered for 5.3.2.
struct Gathered<'a> {
    parent: Option<TypeId>,
    field: &'a async_graphql_parser::Positioned<async_graphql_parser::types::Field>,
    def: Option<&'a crate::schema::Field>,
}

/// Why two fields cannot merge: a reason of their own, or their sub-fields'.
enum Reason {
    Own(String),
    Sub(Vec<(String, Reason)>),
}

impl Reason {
    /// graphql-js's wording: `subfields "x" conflict because ...`, joined by `and`.
    fn message(&self) -> String {
        match self {
            Reason::Own(why) => why.clone(),
            Reason::Sub(subs) => subs
                .iter()
                .map(|(key, r)| format!("subfields \"{key}\" conflict because {}", r.message()))
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }
}

/// 5.3.2 Field Selection Merging (graphql-js OverlappingFieldsCanBeMerged): in every
/// selection set (through fragments too), fields with the same response name are the
/// same field with the same arguments unless their parents are mutually exclusive
/// (different object types, or under such parents), return results of the same shape
/// always, and their sub-selections merge in turn, the exclusivity carried down.
pub fn field_selection_merging(cx: &mut Context<'_>) {
    let schema = cx.schema;
    let doc = cx.doc;
    let mut found: Vec<(String, Vec<Pos>)> = Vec::new();
    let mut budget = MAX_MERGE_COMPARISONS;
    // Every selection set of the document (an inline fragment's fields are in the set
    // around it).
    let mut sets = Vec::new();
    for (set, parent) in walk::definitions(schema, doc) {
        sets.push((&set.node, parent));
        walk::walk(schema, &set.node, parent, &mut |v| {
            if let Visit::Field { field, def, .. } = v {
                if !field.node.selection_set.node.items.is_empty() {
                    sets.push((&field.node.selection_set.node, def.map(|d| d.ty.named())));
                }
            }
        });
    }
    for (set, parent) in sets {
        let mut fields = Vec::new();
        gather(cx, set, parent, &mut fields, &mut HashSet::new());
        for (key, group) in by_response_key(&fields) {
            for (i, a) in group.iter().enumerate() {
                for b in &group[i + 1..] {
                    if let Some(why) = find_conflict(cx, false, a, b, &mut budget) {
                        found.push((
                            format!("Fields \"{key}\" conflict because {}. Use different aliases on the fields to fetch both if this was intentional.", why.message()),
                            vec![a.field.pos, b.field.pos],
                        ));
                    }
                }
            }
        }
    }
    if budget == 0 {
        found.push((
            "The document has too many overlapping fields to check.".to_owned(),
            vec![],
        ));
    }
    // A fragment's own pairs are met in its definition and wherever it is spread.
    let mut seen = HashSet::new();
    found.retain(|(m, p)| {
        seen.insert((
            m.clone(),
            p.iter().map(|p| (p.line, p.column)).collect::<Vec<_>>(),
        ))
    });
    for (m, p) in found {
        cx.report(m, p);
    }
}

/// Gathered fields by response key, in document order.
fn by_response_key<'g, 'a>(
    fields: &'g [Gathered<'a>],
) -> async_graphql_value::indexmap::IndexMap<&'a str, Vec<&'g Gathered<'a>>> {
    let mut out = async_graphql_value::indexmap::IndexMap::<&str, Vec<&Gathered<'a>>>::new();
    for g in fields {
        let key = g
            .field
            .node
            .alias
            .as_ref()
            .unwrap_or(&g.field.node.name)
            .node
            .as_str();
        out.entry(key).or_default().push(g);
    }
    out
}

/// Collects the fields of `set`, looking through inline fragments and spreads.
fn gather<'a>(
    cx: &Context<'a>,
    set: &'a async_graphql_parser::types::SelectionSet,
    parent: Option<TypeId>,
    out: &mut Vec<Gathered<'a>>,
    spread: &mut HashSet<&'a str>,
) {
    use async_graphql_parser::types::Selection;
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let def = parent.and_then(|p| walk::field_def(cx.schema, p, &field.node.name.node));
                out.push(Gathered { parent, field, def });
            }
            Selection::InlineFragment(i) => {
                let on = match &i.node.type_condition {
                    Some(c) => cx.schema.type_named(&c.node.on.node),
                    None => parent,
                };
                gather(cx, &i.node.selection_set.node, on, out, spread);
            }
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                if !spread.insert(name) {
                    continue;
                }
                if let Some(f) = cx.doc.fragments.get(&s.node.fragment_name.node) {
                    let on = cx.schema.type_named(&f.node.type_condition.node.on.node);
                    gather(cx, &f.node.selection_set.node, on, out, spread);
                }
            }
        }
    }
}

/// graphql-js `findConflict`: why two fields of one response name cannot merge, if
/// they cannot. `parents_exclusive` when they sit under fields that can never be the
/// same object.
fn find_conflict(
    cx: &Context<'_>,
    parents_exclusive: bool,
    a: &Gathered<'_>,
    b: &Gathered<'_>,
    budget: &mut usize,
) -> Option<Reason> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let schema = cx.schema;
    let is_object =
        |t: Option<TypeId>| t.is_some_and(|t| matches!(schema.get(t).kind, Kind::Object { .. }));
    let exclusive =
        parents_exclusive || (a.parent != b.parent && is_object(a.parent) && is_object(b.parent));
    if !exclusive {
        let (an, bn) = (&a.field.node.name.node, &b.field.node.name.node);
        if an != bn {
            return Some(Reason::Own(format!(
                "\"{an}\" and \"{bn}\" are different fields"
            )));
        }
        if !same_arguments(&a.field.node.arguments, &b.field.node.arguments) {
            return Some(Reason::Own("they have differing arguments".to_owned()));
        }
    }
    if let (Some(ad), Some(bd)) = (a.def, b.def) {
        if !same_shape(schema, &ad.ty, &bd.ty) {
            return Some(Reason::Own(format!(
                "they return conflicting types \"{}\" and \"{}\"",
                display_ref(schema, &ad.ty),
                display_ref(schema, &bd.ty)
            )));
        }
    }
    let (a_set, b_set) = (
        &a.field.node.selection_set.node,
        &b.field.node.selection_set.node,
    );
    if a_set.items.is_empty() || b_set.items.is_empty() {
        return None;
    }
    // The sub-selections land in one object: each sub-field of one against the
    // same-named sub-fields of the other.
    let (mut a_subs, mut b_subs) = (Vec::new(), Vec::new());
    let a_ty = a.def.map(|d| d.ty.named());
    let b_ty = b.def.map(|d| d.ty.named());
    gather(cx, a_set, a_ty, &mut a_subs, &mut HashSet::new());
    gather(cx, b_set, b_ty, &mut b_subs, &mut HashSet::new());
    let b_by_key = by_response_key(&b_subs);
    let mut conflicts = Vec::new();
    for (key, a_group) in by_response_key(&a_subs) {
        let Some(b_group) = b_by_key.get(key) else {
            continue;
        };
        for x in &a_group {
            for y in b_group {
                if let Some(why) = find_conflict(cx, exclusive, x, y, budget) {
                    conflicts.push((key.to_owned(), why));
                }
            }
        }
    }
    (!conflicts.is_empty()).then_some(Reason::Sub(conflicts))
}

fn same_arguments(
    a: &[(
        async_graphql_parser::Positioned<async_graphql_value::Name>,
        async_graphql_parser::Positioned<Value>,
    )],
    b: &[(
        async_graphql_parser::Positioned<async_graphql_value::Name>,
        async_graphql_parser::Positioned<Value>,
    )],
) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(n, v)| b.iter().any(|(m, w)| n.node == m.node && v.node == w.node))
}

/// Same wrappers, and the same type at the leaves (composites may differ: their
/// sub-selections are compared instead).
fn same_shape(schema: &crate::schema::Schema, a: &TypeRef, b: &TypeRef) -> bool {
    match (a, b) {
        (TypeRef::NonNull(x), TypeRef::NonNull(y)) | (TypeRef::List(x), TypeRef::List(y)) => {
            same_shape(schema, x, y)
        }
        (TypeRef::Named(x), TypeRef::Named(y)) => {
            let leaf = |t: TypeId| !walk::is_composite(schema, t);
            if leaf(*x) || leaf(*y) {
                x == y
            } else {
                true
            }
        }
        _ => false,
    }
}
