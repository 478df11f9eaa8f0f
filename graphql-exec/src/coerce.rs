//! Input coercion (GraphQL, sections 3.5 and 6.1.2): the JSON variables of a request
//! into typed values for an operation, with the errors graphql-js users know.

use std::collections::HashMap;

use async_graphql_parser::types::{BaseType, Type, VariableDefinition};
use async_graphql_parser::Positioned;
use async_graphql_value::indexmap::IndexMap;
use async_graphql_value::{ConstValue, Name, Number, Value};
use serde_json::Value as Json;

use crate::schema::{Kind, Schema, TypeId, TypeRef};

/// The coerced variables of one request.
pub type Variables = HashMap<Name, ConstValue>;

/// A variable that could not be coerced; maps to `BAD_USER_INPUT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CoercionError {
    /// What is wrong, naming the variable.
    pub message: String,
}

/// The schema type of a variable's declared type (None if it names no type; validation
/// reports that).
pub fn resolve(schema: &Schema, ty: &Type) -> Option<TypeRef> {
    let inner = match &ty.base {
        BaseType::Named(n) => TypeRef::Named(schema.type_named(n)?),
        BaseType::List(item) => TypeRef::List(Box::new(resolve(schema, item)?)),
    };
    Some(if ty.nullable {
        inner
    } else {
        TypeRef::NonNull(Box::new(inner))
    })
}

/// CoerceVariableValues: every variable of `definitions` (an operation's, or its
/// plan's), from `input` or its default; an absent nullable variable without a default
/// stays absent.
pub fn coerce_variables(
    schema: &Schema,
    definitions: &[Positioned<VariableDefinition>],
    input: &serde_json::Map<String, Json>,
) -> Result<Variables, Vec<CoercionError>> {
    let mut out = Variables::new();
    let mut errors = Vec::new();
    for def in definitions {
        let def = &def.node;
        let name = &def.name.node;
        let Some(ty) = resolve(schema, &def.var_type.node) else {
            continue;
        };
        match input.get(name.as_str()) {
            None => match &def.default_value {
                // The default is a literal of the variable's type (validation checked
                // it): coerced like one, so `[String] = "a"` gives `["a"]`.
                Some(default) => {
                    match value_from_literal(schema, &default.node, &ty, &no_variables) {
                        Some(v) => {
                            out.insert(name.clone(), v);
                        }
                        None => errors.push(CoercionError {
                            message: format!(
                                "Variable \"${name}\" has an invalid default value {}.",
                                print_literal(&default.node)
                            ),
                        }),
                    }
                }
                None if ty.is_non_null() => errors.push(CoercionError {
                    message: format!(
                        "Variable \"${name}\" of required type \"{}\" was not provided.",
                        def.var_type.node
                    ),
                }),
                None => {}
            },
            Some(value) => match coerce(schema, value, &ty) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(why) => errors.push(CoercionError {
                    message: format!("Variable \"${name}\" got invalid value {value}; {why}"),
                }),
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Coerces one JSON input value to `ty`.
pub fn coerce(schema: &Schema, value: &Json, ty: &TypeRef) -> Result<ConstValue, String> {
    match (ty, value) {
        (TypeRef::NonNull(_), Json::Null) => Err(format!(
            "Expected non-nullable type \"{}\" not to be null.",
            display(schema, ty)
        )),
        (TypeRef::NonNull(inner), v) => coerce(schema, v, inner),
        (_, Json::Null) => Ok(ConstValue::Null),
        (TypeRef::List(item), Json::Array(items)) => items
            .iter()
            .map(|v| coerce(schema, v, item))
            .collect::<Result<_, _>>()
            .map(ConstValue::List),
        // A single value where a list is expected is a list of one.
        (TypeRef::List(item), v) => Ok(ConstValue::List(vec![coerce(schema, v, item)?])),
        (TypeRef::Named(id), v) => coerce_named(schema, *id, v),
    }
}

fn coerce_named(schema: &Schema, id: TypeId, v: &Json) -> Result<ConstValue, String> {
    let t = schema.get(id);
    match &t.kind {
        Kind::Scalar => coerce_scalar(&t.name, v),
        Kind::Enum { values } => match v {
            Json::String(s) if values.iter().any(|e| &e.name == s) => {
                Ok(ConstValue::Enum(Name::new(s)))
            }
            other => Err(format!(
                "Value {other} does not exist in \"{}\" enum.",
                t.name
            )),
        },
        Kind::InputObject { fields } => {
            let Json::Object(given) = v else {
                return Err(format!("Expected type \"{}\" to be an object.", t.name));
            };
            if let Some(unknown) = given.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                return Err(format!(
                    "Field \"{unknown}\" is not defined by type \"{}\".",
                    t.name
                ));
            }
            let mut out = IndexMap::new();
            for f in fields {
                match given.get(&f.name) {
                    Some(fv) => {
                        let coerced = coerce(schema, fv, &f.ty)
                            .map_err(|e| format!("At \"{}\": {e}", f.name))?;
                        out.insert(Name::new(&f.name), coerced);
                    }
                    None => match &f.default {
                        Some(d) => {
                            out.insert(Name::new(&f.name), d.clone());
                        }
                        None if f.ty.is_non_null() => {
                            return Err(format!(
                                "Field \"{}\" of required type \"{}\" was not provided.",
                                f.name,
                                display(schema, &f.ty)
                            ))
                        }
                        None => {}
                    },
                }
            }
            Ok(ConstValue::Object(out))
        }
        Kind::Object { .. } | Kind::Interface { .. } | Kind::Union { .. } => {
            Err(format!("\"{}\" is not an input type.", t.name))
        }
    }
}

fn coerce_scalar(name: &str, v: &Json) -> Result<ConstValue, String> {
    match (name, v) {
        ("Int", Json::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 {
                return Err(format!("Int cannot represent non-integer value: {n}"));
            }
            if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f) {
                return Err(format!(
                    "Int cannot represent non 32-bit signed integer value: {n}"
                ));
            }
            Ok(ConstValue::Number(Number::from(f as i32)))
        }
        ("Float", Json::Number(n)) => Ok(ConstValue::Number(n.clone())),
        ("String", Json::String(s)) => Ok(ConstValue::String(s.clone())),
        ("Boolean", Json::Bool(b)) => Ok(ConstValue::Boolean(*b)),
        ("ID", Json::String(s)) => Ok(ConstValue::String(s.clone())),
        ("ID", Json::Number(n)) if n.is_i64() || n.is_u64() => {
            Ok(ConstValue::String(n.to_string()))
        }
        ("Int" | "Float" | "String" | "Boolean" | "ID", other) => {
            Err(format!("{name} cannot represent value: {other}"))
        }
        // Custom scalars take any JSON; the resolver that reads them checks their form.
        (_, other) => ConstValue::from_json(other.clone()).map_err(|e| e.to_string()),
    }
}

/// A literal as the coercion of literals sees it: a document's [`Value`] (which may hold
/// variables) or a [`ConstValue`] (a default, or an argument known at plan time).
pub trait Literal {
    /// The literal's form.
    fn view(&self) -> View<'_, Self>
    where
        Self: Sized;
}

/// One level of a [`Literal`].
#[derive(Debug)]
pub enum View<'a, L> {
    /// `$name`.
    Variable(&'a Name),
    /// `null`.
    Null,
    /// An Int or Float literal.
    Number(&'a Number),
    /// A String literal.
    String(&'a str),
    /// `true` or `false`.
    Boolean(bool),
    /// An enum value.
    Enum(&'a Name),
    /// A list.
    List(&'a [L]),
    /// An input object.
    Object(&'a IndexMap<Name, L>),
    /// Bytes (never written in a document).
    Binary,
}

impl Literal for Value {
    fn view(&self) -> View<'_, Value> {
        match self {
            Value::Variable(n) => View::Variable(n),
            Value::Null => View::Null,
            Value::Number(n) => View::Number(n),
            Value::String(s) => View::String(s),
            Value::Boolean(b) => View::Boolean(*b),
            Value::Binary(_) => View::Binary,
            Value::Enum(n) => View::Enum(n),
            Value::List(items) => View::List(items),
            Value::Object(fields) => View::Object(fields),
        }
    }
}

impl Literal for ConstValue {
    fn view(&self) -> View<'_, ConstValue> {
        match self {
            ConstValue::Null => View::Null,
            ConstValue::Number(n) => View::Number(n),
            ConstValue::String(s) => View::String(s),
            ConstValue::Boolean(b) => View::Boolean(*b),
            ConstValue::Binary(_) => View::Binary,
            ConstValue::Enum(n) => View::Enum(n),
            ConstValue::List(items) => View::List(items),
            ConstValue::Object(fields) => View::Object(fields),
        }
    }
}

/// The variable lookup of a literal without variables.
pub fn no_variables(_: &Name) -> Option<&'static ConstValue> {
    None
}

/// Whether a literal holds a variable anywhere.
pub fn has_variables<L: Literal>(v: &L) -> bool {
    match v.view() {
        View::Variable(_) => true,
        View::List(items) => items.iter().any(has_variables),
        View::Object(fields) => fields.values().any(has_variables),
        _ => false,
    }
}

/// A literal coerced to `ty` (graphql-js `valueFromAST`): Int and ID literals as their
/// types take them, a single value where a list is expected as a list of one, input
/// objects with their fields' defaults. `vars` gives the request's coerced variables (None:
/// not provided); a variable's value is taken as it is. None when the literal does not fit
/// `ty` (validation reports that before execution).
pub fn value_from_literal<'v, L: Literal>(
    schema: &Schema,
    value: &L,
    ty: &TypeRef,
    vars: &impl Fn(&Name) -> Option<&'v ConstValue>,
) -> Option<ConstValue> {
    if let View::Variable(n) = value.view() {
        let v = vars(n)?;
        if ty.is_non_null() && matches!(v, ConstValue::Null) {
            return None;
        }
        return Some(v.clone());
    }
    let ty = match ty {
        TypeRef::NonNull(inner) => {
            if matches!(value.view(), View::Null) {
                return None;
            }
            &**inner
        }
        other => other,
    };
    if let View::Null = value.view() {
        return Some(ConstValue::Null);
    }
    match ty {
        TypeRef::NonNull(_) => None,
        TypeRef::List(item) => match value.view() {
            View::List(items) => items
                .iter()
                .map(|i| match i.view() {
                    // A missing variable in a list is null, or invalid where null is.
                    View::Variable(n) if vars(n).is_none() => {
                        (!item.is_non_null()).then_some(ConstValue::Null)
                    }
                    _ => value_from_literal(schema, i, item, vars),
                })
                .collect::<Option<Vec<_>>>()
                .map(ConstValue::List),
            _ => Some(ConstValue::List(vec![value_from_literal(
                schema, value, item, vars,
            )?])),
        },
        TypeRef::Named(id) => {
            let t = schema.get(*id);
            match &t.kind {
                Kind::InputObject { fields } => {
                    let View::Object(given) = value.view() else {
                        return None;
                    };
                    if given
                        .keys()
                        .any(|k| !fields.iter().any(|f| f.name == k.as_str()))
                    {
                        return None;
                    }
                    let mut out = IndexMap::with_capacity(fields.len());
                    for f in fields {
                        let fv = given.get(f.name.as_str()).filter(
                            |fv| !matches!(fv.view(), View::Variable(n) if vars(n).is_none()),
                        );
                        match fv {
                            Some(fv) => {
                                let c = value_from_literal(schema, fv, &f.ty, vars)?;
                                out.insert(Name::new(&f.name), c);
                            }
                            None => match &f.default {
                                Some(d) => {
                                    out.insert(Name::new(&f.name), d.clone());
                                }
                                None if f.ty.is_non_null() => return None,
                                None => {}
                            },
                        }
                    }
                    Some(ConstValue::Object(out))
                }
                Kind::Enum { values } => match value.view() {
                    View::Enum(n) if values.iter().any(|e| e.name == n.as_str()) => {
                        Some(ConstValue::Enum(n.clone()))
                    }
                    _ => None,
                },
                Kind::Scalar => parse_scalar_literal(&t.name, value, vars),
                Kind::Object { .. } | Kind::Interface { .. } | Kind::Union { .. } => None,
            }
        }
    }
}

/// The `parseLiteral` of the built-in scalars; custom scalars take any literal as it is.
fn parse_scalar_literal<'v, L: Literal>(
    name: &str,
    value: &L,
    vars: &impl Fn(&Name) -> Option<&'v ConstValue>,
) -> Option<ConstValue> {
    match (name, value.view()) {
        ("Int", View::Number(n)) => {
            let i = n.as_i64()?;
            i32::try_from(i).ok()?;
            Some(ConstValue::Number(Number::from(i)))
        }
        ("Float", View::Number(n)) => Some(ConstValue::Number(n.clone())),
        ("String", View::String(s)) => Some(ConstValue::String(s.to_owned())),
        ("Boolean", View::Boolean(b)) => Some(ConstValue::Boolean(b)),
        ("ID", View::String(s)) => Some(ConstValue::String(s.to_owned())),
        ("ID", View::Number(n)) if n.is_i64() || n.is_u64() => {
            Some(ConstValue::String(n.to_string()))
        }
        ("Int" | "Float" | "String" | "Boolean" | "ID", _) => None,
        _ => Some(untyped(value, vars)),
    }
}

/// A literal as it is, variables filled in (graphql-js `valueFromASTUntyped`).
fn untyped<'v, L: Literal>(
    value: &L,
    vars: &impl Fn(&Name) -> Option<&'v ConstValue>,
) -> ConstValue {
    match value.view() {
        View::Variable(n) => vars(n).cloned().unwrap_or(ConstValue::Null),
        View::Null | View::Binary => ConstValue::Null,
        View::Number(n) => ConstValue::Number(n.clone()),
        View::String(s) => ConstValue::String(s.to_owned()),
        View::Boolean(b) => ConstValue::Boolean(b),
        View::Enum(n) => ConstValue::Enum(n.clone()),
        View::List(items) => ConstValue::List(items.iter().map(|i| untyped(i, vars)).collect()),
        View::Object(fields) => ConstValue::Object(
            fields
                .iter()
                .filter(|(_, v)| !matches!(v.view(), View::Variable(n) if vars(n).is_none()))
                .map(|(k, v)| (k.clone(), untyped(v, vars)))
                .collect(),
        ),
    }
}

/// A literal in GraphQL syntax, as graphql-js `print` writes it.
pub fn print_literal<L: Literal>(value: &L) -> String {
    let mut out = String::new();
    write_literal(value, &mut out);
    out
}

/// [`print_literal`], appended to `out`.
pub fn write_literal<L: Literal>(value: &L, out: &mut String) {
    match value.view() {
        View::Variable(n) => {
            out.push('$');
            out.push_str(n);
        }
        View::Null | View::Binary => out.push_str("null"),
        View::Number(n) => out.push_str(&n.to_string()),
        View::String(s) => print_string(s, out),
        View::Boolean(b) => out.push_str(if b { "true" } else { "false" }),
        View::Enum(n) => out.push_str(n),
        View::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(item, out);
            }
            out.push(']');
        }
        View::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                write_literal(v, out);
            }
            out.push('}');
        }
    }
}

/// A GraphQL string literal (graphql-js `printString`).
pub fn print_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A type as written in a document: `[Int!]`.
pub fn display(schema: &Schema, ty: &TypeRef) -> String {
    match ty {
        TypeRef::Named(id) => schema.get(*id).name.clone(),
        TypeRef::List(inner) => format!("[{}]", display(schema, inner)),
        TypeRef::NonNull(inner) => format!("{}!", display(schema, inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql_parser::parse_query;
    use serde_json::json;

    const SDL: &str = r#"
        type Query { a(x: Int): Int }
        enum Kind { DOG CAT }
        input Filter { kind: Kind!, tags: [String!], limit: Int = 10 }
        scalar DateTime
    "#;

    fn run(vars: &str, input: Json) -> Result<Variables, Vec<String>> {
        let schema = Schema::from_sdl(SDL).unwrap();
        let doc = parse_query(format!("query Q{vars} {{ a }}")).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        let Json::Object(map) = input else {
            panic!("variables are an object")
        };
        coerce_variables(&schema, &op.node.variable_definitions, &map)
            .map_err(|es| es.into_iter().map(|e| e.message).collect())
    }

    fn value(vars: &str, input: Json, name: &str) -> ConstValue {
        run(vars, input).unwrap().remove(&Name::new(name)).unwrap()
    }

    fn error(vars: &str, input: Json) -> String {
        run(vars, input).unwrap_err().join("\n")
    }

    #[test]
    fn scalars_coerce_by_the_specification() {
        assert_eq!(
            value("($i: Int)", json!({"i": 7}), "i"),
            ConstValue::Number(7.into())
        );
        assert_eq!(
            value("($i: Int)", json!({"i": 7.0}), "i"),
            ConstValue::Number(7.into())
        );
        assert!(error("($i: Int)", json!({"i": 7.5})).contains("non-integer value: 7.5"));
        assert!(error("($i: Int)", json!({"i": 3_000_000_000u64})).contains("non 32-bit"));
        assert!(error("($i: Int)", json!({"i": "7"})).contains("Int cannot represent value: \"7\""));
        assert_eq!(
            value("($f: Float)", json!({"f": 2}), "f"),
            ConstValue::Number(2.into())
        );
        assert_eq!(
            value("($id: ID)", json!({"id": 42}), "id"),
            ConstValue::String("42".into())
        );
        assert!(error("($id: ID)", json!({"id": 4.2})).contains("ID cannot represent"));
        assert!(error("($b: Boolean)", json!({"b": "true"})).contains("Boolean cannot represent"));
        assert_eq!(
            value(
                "($d: DateTime)",
                json!({"d": "2026-11-24T12:00:00.000Z"}),
                "d"
            ),
            ConstValue::String("2026-11-24T12:00:00.000Z".into())
        );
    }

    #[test]
    fn absent_null_and_defaults() {
        let vars = run("($a: Int, $b: Int = 5, $c: Int)", json!({"c": null})).unwrap();
        assert!(!vars.contains_key(&Name::new("a")), "absent stays absent");
        assert_eq!(vars[&Name::new("b")], ConstValue::Number(5.into()));
        assert_eq!(vars[&Name::new("c")], ConstValue::Null);
        assert_eq!(
            error("($r: Int!)", json!({})),
            "Variable \"$r\" of required type \"Int!\" was not provided."
        );
        assert!(error("($r: Int!)", json!({"r": null})).contains("not to be null"));
    }

    #[test]
    fn variable_defaults_are_coerced_to_their_type() {
        assert_eq!(
            value("($t: [String] = \"a\")", json!({}), "t"),
            ConstValue::List(vec![ConstValue::String("a".into())])
        );
        assert_eq!(
            value("($id: ID = 5)", json!({}), "id"),
            ConstValue::String("5".into())
        );
        let ConstValue::Object(f) = value("($f: Filter = { kind: DOG })", json!({}), "f") else {
            panic!()
        };
        assert_eq!(f[&Name::new("kind")], ConstValue::Enum(Name::new("DOG")));
        assert_eq!(f[&Name::new("limit")], ConstValue::Number(10.into()));
        // A given value wins over the default.
        assert_eq!(
            value("($t: [String] = \"a\")", json!({"t": "b"}), "t"),
            ConstValue::List(vec![ConstValue::String("b".into())])
        );
        // A default that does not fit (validation refuses the document first).
        assert_eq!(
            error("($n: Int = \"x\")", json!({})),
            "Variable \"$n\" has an invalid default value \"x\"."
        );
    }

    #[test]
    fn lists_enums_and_input_objects() {
        assert_eq!(
            value("($l: [Int])", json!({"l": 3}), "l"),
            ConstValue::List(vec![ConstValue::Number(3.into())]),
            "a single value is a list of one"
        );
        assert!(error("($l: [Int!])", json!({"l": [1, null]})).contains("not to be null"));
        assert_eq!(
            value("($k: Kind)", json!({"k": "CAT"}), "k"),
            ConstValue::Enum(Name::new("CAT"))
        );
        assert!(
            error("($k: Kind)", json!({"k": "FISH"})).contains("does not exist in \"Kind\" enum")
        );
        let f = value(
            "($f: Filter)",
            json!({"f": {"kind": "DOG", "tags": "a"}}),
            "f",
        );
        let ConstValue::Object(f) = f else {
            panic!("{f:?}")
        };
        assert_eq!(
            f[&Name::new("limit")],
            ConstValue::Number(10.into()),
            "field default applied"
        );
        assert_eq!(
            f[&Name::new("tags")],
            ConstValue::List(vec![ConstValue::String("a".into())])
        );
        assert!(error("($f: Filter)", json!({"f": {"tags": []}}))
            .contains("\"kind\" of required type \"Kind!\""));
        assert!(error("($f: Filter)", json!({"f": {"kind": "DOG", "x": 1}}))
            .contains("\"x\" is not defined"));
        assert!(error("($f: Filter)", json!({"f": [1]})).contains("to be an object"));
        // Every bad variable is reported, not just the first.
        assert_eq!(
            run("($a: Int, $b: Int)", json!({"a": "x", "b": "y"}))
                .unwrap_err()
                .len(),
            2
        );
    }
}
