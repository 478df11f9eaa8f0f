//! Planning: a validated operation turned, once, into what execution walks.
//!
//! Field collection (the specification's CollectFields) is done ahead of time for every
//! object type a selection can meet: fragments and inline fragments are flattened,
//! same-named fields merged, response keys pre-escaped as JSON, field definitions
//! resolved to indexes, constant arguments coerced to their types once (arguments with
//! variables are coerced per request) and `@skip`/`@include` turned into conditions on
//! variables (decided at plan time when constant). The plan also carries the
//! operation's cost, so a persisted operation's cost is computed once.

use std::collections::HashSet;

use async_graphql_parser::types::{
    Directive, ExecutableDocument, OperationDefinition, OperationType, Selection as Sel,
    SelectionSet, VariableDefinition,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::indexmap::IndexMap;
use async_graphql_value::{ConstValue, Name, Value};

use crate::coerce::{has_variables, no_variables, print_literal, value_from_literal};
use crate::schema::{Kind, Schema, TypeId, TypeRef};

/// A conjunction of `(variable, required value)`s.
pub type Conjunction = Vec<(Name, bool)>;

/// Where one occurrence of a response key lands in the collected order, under which
/// conjunction.
pub type Occurs = (u32, Conjunction);

/// When a field is included: any one of the conjunctions holds (a conjunction is a list
/// of `(variable, required value)`); `[[]]` is always, `[]` never.
pub type Condition = Vec<Vec<(Name, bool)>>;

/// An argument as planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Known at plan time.
    Const(ConstValue),
    /// Contains variables: filled in per request.
    Dynamic(Value),
}

/// The fields to produce for an object of one concrete type, in response order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// The fields.
    pub fields: Vec<PlannedField>,
    /// Empty when the order of `fields` is the response order whatever the variables.
    /// Otherwise (some key's first occurrence has a condition, and the key occurs again
    /// under another), one entry per field: its occurrences in document order, each
    /// with its place in the collected order and its conjunction; a request orders the
    /// fields by their first included occurrence (CollectFields).
    pub order: Vec<Vec<Occurs>>,
    /// Whether the fields included depend on the variables (a field has a condition, or
    /// the order can change); when false, every field is included, in order.
    pub conditional: bool,
}

impl Selection {
    /// The place of field `i` in this request's collected order: its first occurrence
    /// whose condition holds (only meaningful when `order` is not empty).
    pub fn place(&self, i: usize, get: impl Fn(&Name) -> Option<bool>) -> u32 {
        self.order[i]
            .iter()
            .find(|(_, conj)| conj.iter().all(|(var, want)| get(var) == Some(*want)))
            .map_or(u32::MAX, |(seq, _)| *seq)
    }
}

/// What a field's value is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Children {
    /// A scalar or enum.
    Leaf,
    /// An object type: one selection.
    Object(Selection),
    /// An interface or union: a selection per possible object type.
    Abstract(Vec<(TypeId, Selection)>),
}

/// One field of a selection.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedField {
    /// The response key (alias or name).
    pub key: Box<str>,
    /// `"key":`, escaped, ready to copy into the response.
    pub key_json: Box<[u8]>,
    /// The field's name in the schema.
    pub name: Box<str>,
    /// The object type it is selected on.
    pub parent: TypeId,
    /// Its position among `parent`'s fields ([`crate::schema::TypeDef::fields`]), or
    /// [`PlannedField::META`] for `__typename`, `__schema` and `__type`: a resolver
    /// keeps what it decided about each field by position, not by name.
    pub position: u32,
    /// Its return type.
    pub ty: TypeRef,
    /// Its arguments, given ones and defaults alike.
    pub args: Vec<(Name, Arg)>,
    /// When it is included.
    pub condition: Condition,
    /// What its value is made of.
    pub children: Children,
    /// Where the field (its first occurrence) is in the document, for errors.
    pub pos: Pos,
}

impl PlannedField {
    /// The position of a meta field (`__typename`, `__schema`, `__type`).
    pub const META: u32 = u32::MAX;
}

/// A planned operation.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Query, mutation or subscription.
    pub operation: OperationType,
    /// The root object type.
    pub root: TypeId,
    /// The root fields.
    pub selection: Selection,
    /// The operation's variable definitions, so a request is coerced without the
    /// document.
    pub variables: Vec<Positioned<VariableDefinition>>,
    /// A bound on the work: every field counts 1, times the sizes its enclosing lists
    /// ask for (`first`/`last`, or their defaults).
    pub cost: u64,
}

/// Why an operation cannot be planned (validation should have caught it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The schema has no root for this operation kind.
    #[error("the schema does not support {0:?} operations")]
    NoRoot(OperationType),
    /// A literal argument does not fit its type.
    #[error("{0}")]
    InvalidArgument(String),
    /// A field is not on its type.
    #[error("unknown field {field} on {ty}")]
    UnknownField {
        /// The type.
        ty: String,
        /// The field.
        field: String,
    },
}

/// Plans `op` of `doc` against `schema`.
pub fn plan(
    schema: &Schema,
    doc: &ExecutableDocument,
    op: &OperationDefinition,
) -> Result<Plan, PlanError> {
    let root = match op.ty {
        OperationType::Query => Some(schema.query),
        OperationType::Mutation => schema.mutation,
        OperationType::Subscription => schema.subscription,
    }
    .ok_or(PlanError::NoRoot(op.ty))?;
    let planner = Planner { schema, doc };
    let selection = planner.selection(root, &[(&op.selection_set.node, vec![vec![]])])?;
    let cost = cost(&selection);
    Ok(Plan {
        operation: op.ty,
        root,
        selection,
        variables: op.variable_definitions.clone(),
        cost,
    })
}

struct Planner<'a> {
    schema: &'a Schema,
    doc: &'a ExecutableDocument,
}

/// A field occurrence gathered by field collection.
struct Occurrence<'a> {
    field: &'a Positioned<async_graphql_parser::types::Field>,
    condition: Vec<(Name, bool)>,
    /// Its place among every occurrence collected for the selection.
    seq: u32,
}

impl<'a> Planner<'a> {
    /// The selection for an object of type `object` from one or more selection sets
    /// (merged fields' sub-selections), each under a condition.
    fn selection(
        &self,
        object: TypeId,
        sets: &[(&'a SelectionSet, Condition)],
    ) -> Result<Selection, PlanError> {
        let mut by_key: IndexMap<&'a str, Vec<Occurrence<'a>>> = IndexMap::new();
        let mut seq = 0;
        for (set, condition) in sets {
            for conj in condition {
                self.collect(
                    object,
                    set,
                    conj.clone(),
                    &mut by_key,
                    &mut HashSet::new(),
                    &mut seq,
                );
            }
        }
        // The order can change with the variables only when a key's first occurrence
        // is conditional and it occurs again under another condition.
        let reorders = by_key.values().any(|occurrences| {
            let first = &occurrences[0].condition;
            !first.is_empty() && occurrences[1..].iter().any(|o| &o.condition != first)
        });
        let order = if reorders {
            by_key
                .values()
                .map(|occurrences| {
                    occurrences
                        .iter()
                        .map(|o| (o.seq, o.condition.clone()))
                        .collect()
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut fields = Vec::with_capacity(by_key.len());
        for (key, occurrences) in by_key {
            let first = occurrences[0].field;
            let name = first.node.name.node.as_str();
            let def = self
                .schema
                .field(object, name)
                .ok_or_else(|| PlanError::UnknownField {
                    ty: self.schema.get(object).name.clone(),
                    field: name.to_owned(),
                })?;
            let condition = simplify(occurrences.iter().map(|o| o.condition.clone()).collect());
            let sub: Vec<(&SelectionSet, Condition)> = occurrences
                .iter()
                // Each occurrence brings its sub-selection only when it is itself
                // included (CollectFields merges included occurrences only).
                .map(|o| (&o.field.node.selection_set.node, vec![o.condition.clone()]))
                .collect();
            let named = def.ty.named();
            let children = match &self.schema.get(named).kind {
                Kind::Object { .. } => Children::Object(self.selection(named, &sub)?),
                Kind::Interface { possible, .. } => Children::Abstract(
                    possible
                        .iter()
                        .map(|&t| self.selection(t, &sub).map(|s| (t, s)))
                        .collect::<Result<_, _>>()?,
                ),
                Kind::Union { members } => Children::Abstract(
                    members
                        .iter()
                        .map(|&t| self.selection(t, &sub).map(|s| (t, s)))
                        .collect::<Result<_, _>>()?,
                ),
                _ => Children::Leaf,
            };
            let mut args = Vec::with_capacity(def.args.len());
            for a in &def.args {
                let given = first
                    .node
                    .arguments
                    .iter()
                    .find(|(n, _)| n.node.as_str() == a.name);
                let value = match given {
                    // Arguments with variables are coerced per request (CoerceArgumentValues).
                    Some((_, v)) if has_variables(&v.node) => Arg::Dynamic(v.node.clone()),
                    // Literals are coerced here, once.
                    Some((_, v)) => Arg::Const(
                        value_from_literal(self.schema, &v.node, &a.ty, &no_variables).ok_or_else(
                            || {
                                PlanError::InvalidArgument(format!(
                                    "Argument \"{}\" has invalid value {}.",
                                    a.name,
                                    print_literal(&v.node)
                                ))
                            },
                        )?,
                    ),
                    // Defaults are coerced when the schema is built.
                    None => match &a.default {
                        Some(d) => Arg::Const(d.clone()),
                        None => continue,
                    },
                };
                args.push((Name::new(&a.name), value));
            }
            let position = self
                .schema
                .get(object)
                .field(name)
                .map_or(PlannedField::META, |(i, _)| i as u32);
            fields.push(PlannedField {
                key_json: json_key(key),
                key: key.into(),
                name: name.into(),
                parent: object,
                position,
                ty: def.ty.clone(),
                args,
                condition,
                children,
                pos: first.pos,
            });
        }
        let conditional = !order.is_empty()
            || fields
                .iter()
                .any(|f| !(f.condition.len() == 1 && f.condition[0].is_empty()));
        Ok(Selection {
            fields,
            order,
            conditional,
        })
    }

    /// CollectFields for `object`: fields of `set` and of the fragments that apply,
    /// each with the conjunction of the conditions on its way.
    fn collect(
        &self,
        object: TypeId,
        set: &'a SelectionSet,
        condition: Vec<(Name, bool)>,
        out: &mut IndexMap<&'a str, Vec<Occurrence<'a>>>,
        visited: &mut HashSet<&'a str>,
        seq: &mut u32,
    ) {
        for item in &set.items {
            match &item.node {
                Sel::Field(f) => {
                    let Some(cond) = and(&condition, &f.node.directives) else {
                        continue;
                    };
                    let key = f.node.alias.as_ref().unwrap_or(&f.node.name).node.as_str();
                    out.entry(key).or_default().push(Occurrence {
                        field: f,
                        condition: cond,
                        seq: *seq,
                    });
                    *seq += 1;
                }
                Sel::InlineFragment(i) => {
                    let Some(cond) = and(&condition, &i.node.directives) else {
                        continue;
                    };
                    let applies = match &i.node.type_condition {
                        Some(c) => self.applies(object, &c.node.on.node),
                        None => true,
                    };
                    if applies {
                        self.collect(object, &i.node.selection_set.node, cond, out, visited, seq);
                    }
                }
                Sel::FragmentSpread(s) => {
                    let Some(cond) = and(&condition, &s.node.directives) else {
                        continue;
                    };
                    let name = s.node.fragment_name.node.as_str();
                    let Some(frag) = self.doc.fragments.get(&s.node.fragment_name.node) else {
                        continue;
                    };
                    if !self.applies(object, &frag.node.type_condition.node.on.node)
                        || !visited.insert(name)
                    {
                        continue;
                    }
                    self.collect(
                        object,
                        &frag.node.selection_set.node,
                        cond,
                        out,
                        visited,
                        seq,
                    );
                    visited.remove(name);
                }
            }
        }
    }

    /// DoesFragmentTypeApply.
    fn applies(&self, object: TypeId, condition: &str) -> bool {
        self.schema
            .type_named(condition)
            .is_some_and(|c| self.schema.is_possible(c, object))
    }
}

/// `condition` and the `@skip`/`@include` of `directives`; None when constantly false.
fn and(
    condition: &[(Name, bool)],
    directives: &[Positioned<Directive>],
) -> Option<Vec<(Name, bool)>> {
    let mut out = condition.to_vec();
    for d in directives {
        let include = match d.node.name.node.as_str() {
            "include" => true,
            "skip" => false,
            _ => continue,
        };
        let Some((_, v)) = d.node.arguments.iter().find(|(n, _)| n.node == "if") else {
            continue;
        };
        match &v.node {
            Value::Boolean(b) if *b == include => {}
            Value::Boolean(_) => return None,
            Value::Variable(var) => out.push((var.clone(), include)),
            _ => {}
        }
    }
    Some(out)
}

/// Drops duplicate conjunctions; any empty one makes the condition "always".
fn simplify(mut conjunctions: Condition) -> Condition {
    if conjunctions.iter().any(Vec::is_empty) {
        return vec![vec![]];
    }
    for c in &mut conjunctions {
        c.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()).then(a.1.cmp(&b.1)));
        c.dedup();
    }
    conjunctions.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    conjunctions.dedup();
    conjunctions
}

/// Whether `condition` holds for the request's variables (`get` reads a Boolean one).
pub fn holds(condition: &Condition, get: impl Fn(&Name) -> Option<bool>) -> bool {
    condition
        .iter()
        .any(|conj| conj.iter().all(|(var, want)| get(var) == Some(*want)))
}

/// `"key":` with the key escaped for JSON.
fn json_key(key: &str) -> Box<[u8]> {
    // GraphQL names are /[_A-Za-z][_0-9A-Za-z]*/: nothing to escape, but stay safe.
    let mut out = Vec::with_capacity(key.len() + 3);
    out.push(b'"');
    for c in key.bytes() {
        if c == b'"' || c == b'\\' {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.extend_from_slice(b"\":");
    out.into_boxed_slice()
}

/// The sizes a list field asks for: its `first` or `last` argument when constant.
fn list_size(f: &PlannedField) -> u64 {
    f.args
        .iter()
        .find(|(n, _)| n.as_str() == "first" || n.as_str() == "last")
        .and_then(|(_, a)| match a {
            Arg::Const(ConstValue::Number(n)) => n.as_u64(),
            _ => None,
        })
        .unwrap_or(DEFAULT_LIST_SIZE)
}

/// What a list without a size argument counts for.
const DEFAULT_LIST_SIZE: u64 = 10;

fn is_list(ty: &TypeRef) -> bool {
    match ty {
        TypeRef::NonNull(inner) => is_list(inner),
        TypeRef::List(_) => true,
        TypeRef::Named(_) => false,
    }
}

/// Introspection (`__schema`, `__type` and everything under them) counts 1 a field,
/// lists or not: it is answered from the schema's tables, and the standard
/// IntrospectionQuery must fit the default limits.
fn flat_cost(f: &PlannedField) -> u64 {
    let flat = |s: &Selection| s.fields.iter().map(flat_cost).fold(0, u64::saturating_add);
    let children = match &f.children {
        Children::Leaf => 0,
        Children::Object(s) => flat(s),
        Children::Abstract(by_type) => by_type.iter().map(|(_, s)| flat(s)).max().unwrap_or(0),
    };
    1u64.saturating_add(children)
}

fn cost(sel: &Selection) -> u64 {
    cost_in(sel, false)
}

/// The cost of a selection; `paged` when its object is a page sized by its field's
/// `first`/`last` (a Relay connection), whose unsized lists (`edges`, `nodes`) are that
/// page and count once.
fn cost_in(sel: &Selection, paged: bool) -> u64 {
    sel.fields
        .iter()
        .map(|f| {
            if matches!(&*f.name, "__schema" | "__type") {
                return flat_cost(f);
            }
            let sized = has_size_arg(f);
            let list = is_list(&f.ty);
            // A sized object (a connection) passes its size down to its lists.
            let pages = sized && !list;
            let children = match &f.children {
                Children::Leaf => 0,
                Children::Object(s) => cost_in(s, pages),
                Children::Abstract(by_type) => by_type
                    .iter()
                    .map(|(_, s)| cost_in(s, pages))
                    .max()
                    .unwrap_or(0),
            };
            let times = if sized || (list && !paged) {
                list_size(f)
            } else {
                1
            };
            1u64.saturating_add(children.saturating_mul(times))
        })
        .fold(0u64, u64::saturating_add)
}

fn has_size_arg(f: &PlannedField) -> bool {
    f.args
        .iter()
        .any(|(n, _)| n.as_str() == "first" || n.as_str() == "last")
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql_parser::parse_query;

    const SDL: &str = r#"
        interface Pet { name: String! }
        type Dog implements Pet { name: String! barks: Boolean! }
        type Cat implements Pet { name: String! meows: Boolean! }
        type Human { name: String! pets(first: Int = 5): [Pet!]! }
        input Opts { kind: String! limit: Int = 10 }
        type Query {
          human(id: ID!): Human
          pets: [Pet!]!
          tags(t: [String], d: [String] = "z"): Int
          opts(o: Opts, l: [Opts]): Int
        }
    "#;

    fn plan_of(query: &str) -> Plan {
        let schema = Schema::from_sdl(SDL).unwrap();
        let doc = parse_query(query).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        plan(&schema, &doc, &op.node).unwrap()
    }

    fn keys(sel: &Selection) -> Vec<&str> {
        sel.fields.iter().map(|f| &*f.key).collect()
    }

    #[test]
    fn fragments_flatten_and_same_keys_merge_in_first_seen_order() {
        let p = plan_of(
            "{ human(id: 1) { ...H name n: name } } fragment H on Human { name pets { name } }",
        );
        let human = &p.selection.fields[0];
        assert_eq!(&*human.key_json, b"\"human\":");
        // An Int literal for an ID is coerced to its string.
        assert_eq!(
            human.args,
            vec![(Name::new("id"), Arg::Const(ConstValue::String("1".into())))]
        );
        let Children::Object(h) = &human.children else {
            panic!()
        };
        assert_eq!(keys(h), ["name", "pets", "n"]);
        // Defaults become arguments.
        assert_eq!(
            h.fields[1].args,
            vec![(Name::new("first"), Arg::Const(ConstValue::Number(5.into())))]
        );
    }

    #[test]
    fn abstract_fields_get_a_selection_per_object_type() {
        let p = plan_of("{ pets { __typename name ... on Dog { barks } ... on Cat { meows } } }");
        let Children::Abstract(by_type) = &p.selection.fields[0].children else {
            panic!()
        };
        let by_name: Vec<(String, Vec<&str>)> = {
            let schema = Schema::from_sdl(SDL).unwrap();
            by_type
                .iter()
                .map(|(t, s)| (schema.get(*t).name.clone(), keys(s)))
                .collect()
        };
        assert!(
            by_name.contains(&("Dog".into(), vec!["__typename", "name", "barks"])),
            "{by_name:?}"
        );
        assert!(
            by_name.contains(&("Cat".into(), vec!["__typename", "name", "meows"])),
            "{by_name:?}"
        );
    }

    #[test]
    fn skip_and_include_become_conditions() {
        let p = plan_of(
            "query Q($a: Boolean!, $b: Boolean!) { human(id: 1) {
               gone: name @skip(if: true)
               kept: name @include(if: true)
               maybe: name @include(if: $a)
               ...F @skip(if: $b)
               either: name @include(if: $a)
             } } fragment F on Human { either: name }",
        );
        let Children::Object(h) = &p.selection.fields[0].children else {
            panic!()
        };
        assert_eq!(keys(h), ["kept", "maybe", "either"]);
        assert_eq!(h.fields[0].condition, vec![vec![]]);
        let get = |a: bool, b: bool| move |n: &Name| Some(if n.as_str() == "a" { a } else { b });
        assert!(holds(&h.fields[1].condition, get(true, true)));
        assert!(!holds(&h.fields[1].condition, get(false, true)));
        // `either` is there when $a, or when not $b.
        assert!(holds(&h.fields[2].condition, get(false, false)));
        assert!(holds(&h.fields[2].condition, get(true, true)));
        assert!(!holds(&h.fields[2].condition, get(false, true)));
    }

    #[test]
    fn merged_occurrences_bring_their_sub_selections_only_when_included() {
        let p = plan_of(
            "query Q($x: Boolean!) {
               h: human(id: 1) @include(if: $x) { name }
               h: human(id: 1) @skip(if: $x) { pets { name } }
             }",
        );
        let h = &p.selection.fields[0];
        let Children::Object(sub) = &h.children else {
            panic!()
        };
        let x = |v: bool| move |_: &Name| Some(v);
        // With $x: only `name`; without: only `pets`.
        let included = |v: bool| -> Vec<&str> {
            sub.fields
                .iter()
                .filter(|f| holds(&f.condition, x(v)))
                .map(|f| &*f.key)
                .collect()
        };
        assert_eq!(included(true), ["name"]);
        assert_eq!(included(false), ["pets"]);
        assert!(holds(&h.condition, x(true)) && holds(&h.condition, x(false)));
    }

    #[test]
    fn variables_stay_dynamic_and_cost_multiplies_through_lists() {
        let p = plan_of("query Q($id: ID!) { human(id: $id) { name pets(first: 20) { name } } }");
        assert!(matches!(
            p.selection.fields[0].args[0].1,
            Arg::Dynamic(Value::Variable(_))
        ));
        // human 1 + name 1 + pets (1 + 20 x name 1) = 23
        assert_eq!(p.cost, 23);
        let p = plan_of("{ pets { name } }");
        assert_eq!(p.cost, 1 + DEFAULT_LIST_SIZE);
    }

    fn arg(f: &PlannedField, name: &str) -> ConstValue {
        match f.args.iter().find(|(n, _)| n.as_str() == name) {
            Some((_, Arg::Const(c))) => c.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn literal_arguments_are_coerced_once_when_planned() {
        let p = plan_of(
            "{ human(id: 7) { name } tags(t: \"a\") opts(o: { kind: \"x\" }, l: { kind: \"y\", limit: 2 }) }",
        );
        let [human, tags, opts] = &p.selection.fields[..] else {
            panic!("{:?}", p.selection.fields)
        };
        assert_eq!(arg(human, "id"), ConstValue::String("7".into()));
        // A single value where a list is expected is a list of one.
        assert_eq!(
            arg(tags, "t"),
            ConstValue::List(vec![ConstValue::String("a".into())])
        );
        // Argument defaults are coerced too (when the schema is built).
        assert_eq!(
            arg(tags, "d"),
            ConstValue::List(vec![ConstValue::String("z".into())])
        );
        // Input objects get their fields' defaults.
        let obj = |kind: &str, limit: i32| {
            let mut o = IndexMap::new();
            o.insert(Name::new("kind"), ConstValue::String(kind.into()));
            o.insert(Name::new("limit"), ConstValue::Number(limit.into()));
            ConstValue::Object(o)
        };
        assert_eq!(arg(opts, "o"), obj("x", 10));
        assert_eq!(arg(opts, "l"), ConstValue::List(vec![obj("y", 2)]));
        // A literal that does not fit (validation refuses it first) is not planned.
        let schema = Schema::from_sdl(SDL).unwrap();
        let doc = parse_query("{ tags(t: {a: 1}) }").unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        assert_eq!(
            plan(&schema, &doc, &op.node).unwrap_err(),
            PlanError::InvalidArgument("Argument \"t\" has invalid value {a: 1}.".into())
        );
    }

    #[test]
    fn introspection_costs_one_a_field_without_list_multipliers() {
        // __schema, types, name, fields, name, args, name
        let p = plan_of("{ __schema { types { name fields { name args { name } } } } }");
        assert_eq!(p.cost, 7);
        let p = plan_of("{ __type(name: \"Human\") { fields { name } } pets { name } }");
        assert_eq!(p.cost, 3 + 1 + DEFAULT_LIST_SIZE);
    }

    #[test]
    fn the_order_is_kept_per_request_only_where_it_can_change() {
        // Unconditional first occurrences: the plan's order is the response order.
        let p = plan_of(
            "query Q($x: Boolean!) { human(id: 1) { name pets @include(if: $x) { name } name @skip(if: $x) } }",
        );
        let Children::Object(h) = &p.selection.fields[0].children else {
            panic!()
        };
        assert!(h.order.is_empty());
        // A conditional first occurrence that recurs: its place depends on $x.
        let p = plan_of(
            "query Q($x: Boolean!) { human(id: 1) { name @include(if: $x) pets { name } name } }",
        );
        let Children::Object(h) = &p.selection.fields[0].children else {
            panic!()
        };
        assert_eq!(keys(h), ["name", "pets"]);
        let x = |v: bool| move |_: &Name| Some(v);
        assert_eq!((h.place(0, x(true)), h.place(1, x(true))), (0, 1));
        assert_eq!((h.place(0, x(false)), h.place(1, x(false))), (2, 1));
    }
}
