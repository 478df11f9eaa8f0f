//! Input coercion (GraphQL, sections 3.5 and 6.1.2): the JSON variables of a request
//! into typed values for an operation, with the errors graphql-js users know.

use std::collections::HashMap;

use async_graphql_parser::types::{BaseType, Type, VariableDefinition};
use async_graphql_parser::Positioned;
use async_graphql_value::indexmap::IndexMap;
use async_graphql_value::{ConstValue, Name, Number};
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
                Some(default) => {
                    out.insert(name.clone(), default.node.clone());
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

fn display(schema: &Schema, ty: &TypeRef) -> String {
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
