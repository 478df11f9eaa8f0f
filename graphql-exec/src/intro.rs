//! Introspection (`__schema`, `__type` and the `__` types) resolved by the engine from
//! the schema tables, so GraphiQL and code generators work for any schema.

use async_graphql_value::ConstValue;

use crate::exec::{Args, Leaf, Resolved};
use crate::plan::PlannedField;
use crate::schema::{EnumValue, InputValue, Kind, Schema, TypeId, TypeRef};

/// An introspection object.
#[derive(Debug, Clone, Copy)]
pub enum Intro<'s> {
    /// `__Schema`.
    Schema,
    /// `__Type` of a reference (lists and non-null wrappers included).
    TypeRef(&'s TypeRef),
    /// `__Type` of a named type.
    Named(TypeId),
    /// `__Field`: (owner type, field index).
    Field(TypeId, usize),
    /// `__InputValue`.
    Input(&'s InputValue),
    /// `__EnumValue`.
    Enum(&'s EnumValue),
    /// `__Directive`.
    Directive(&'static Directive),
}

/// A built-in directive, for `__schema.directives`.
#[derive(Debug)]
pub struct Directive {
    name: &'static str,
    description: &'static str,
    locations: &'static [&'static str],
}

const DIRECTIVES: [Directive; 4] = [
    Directive {
        name: "include",
        description: "Directs the executor to include this field or fragment only when the `if` argument is true.",
        locations: &["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"],
    },
    Directive {
        name: "skip",
        description: "Directs the executor to skip this field or fragment when the `if` argument is true.",
        locations: &["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"],
    },
    Directive {
        name: "deprecated",
        description: "Marks an element of a GraphQL schema as no longer supported.",
        locations: &["FIELD_DEFINITION", "ARGUMENT_DEFINITION", "INPUT_FIELD_DEFINITION", "ENUM_VALUE"],
    },
    Directive {
        name: "specifiedBy",
        description: "Exposes a URL that specifies the behavior of this scalar.",
        locations: &["SCALAR"],
    },
];

fn s(text: &str) -> Resolved<Intro<'static>> {
    Resolved::Leaf(Leaf::String(text.to_owned()))
}

fn opt(text: Option<&String>) -> Resolved<Intro<'static>> {
    text.map_or(Resolved::Null, |t| s(t))
}

fn include_deprecated(args: &Args<'_>) -> bool {
    matches!(
        args.get("includeDeprecated"),
        Some(async_graphql_value::ConstValue::Boolean(true))
    )
}

/// Resolves an introspection field (or the meta fields `__schema`, `__type`) for one parent.
pub fn resolve<'s>(
    schema: &'s Schema,
    f: &PlannedField,
    args: &Args<'_>,
    parent: Option<Intro<'s>>,
) -> Resolved<Intro<'s>> {
    let field = &*f.name;
    let Some(parent) = parent else {
        // Meta fields on the query root.
        return match field {
            "__schema" => Resolved::Object(Intro::Schema),
            "__type" => match args.get("name") {
                Some(async_graphql_value::ConstValue::String(n)) => schema
                    .type_named(n)
                    .filter(|&t| !is_hidden(schema, t))
                    .map_or(Resolved::Null, |t| Resolved::Object(Intro::Named(t))),
                _ => Resolved::Null,
            },
            other => Resolved::Error(format!("unknown meta field {other}").into()),
        };
    };
    match parent {
        Intro::Schema => match field {
            "description" => opt(schema.description.as_ref()),
            "types" => Resolved::List(
                (0..schema.types().len() as u32)
                    .map(TypeId)
                    .filter(|&t| !is_hidden(schema, t))
                    .map(|t| Resolved::Object(Intro::Named(t)))
                    .collect(),
            ),
            "queryType" => Resolved::Object(Intro::Named(schema.query)),
            "mutationType" => schema
                .mutation
                .map_or(Resolved::Null, |t| Resolved::Object(Intro::Named(t))),
            "subscriptionType" => schema
                .subscription
                .map_or(Resolved::Null, |t| Resolved::Object(Intro::Named(t))),
            "directives" => Resolved::List(
                DIRECTIVES
                    .iter()
                    .map(|d| Resolved::Object(Intro::Directive(d)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        Intro::TypeRef(r) => match r {
            TypeRef::Named(t) => resolve(schema, f, args, Some(Intro::Named(*t))),
            TypeRef::List(inner) | TypeRef::NonNull(inner) => match field {
                "kind" => Resolved::Leaf(Leaf::Enum(if matches!(r, TypeRef::List(_)) {
                    "LIST"
                } else {
                    "NON_NULL"
                })),
                "ofType" => Resolved::Object(wrap(inner)),
                _ => Resolved::Null,
            },
        },
        Intro::Named(t) => named_type_field(schema, t, field, args),
        Intro::Field(owner, i) => {
            let def = &schema.get(owner).fields()[i];
            match field {
                "name" => s(&def.name),
                "description" => opt(def.description.as_ref()),
                "args" => Resolved::List(
                    def.args
                        .iter()
                        .map(|a| Resolved::Object(Intro::Input(a)))
                        .collect(),
                ),
                "type" => Resolved::Object(wrap(&def.ty)),
                "isDeprecated" => Resolved::Leaf(Leaf::Boolean(def.deprecation.is_some())),
                "deprecationReason" => opt(def.deprecation.as_ref()),
                _ => Resolved::Null,
            }
        }
        Intro::Input(v) => match field {
            "name" => s(&v.name),
            "description" => opt(v.description.as_ref()),
            "type" => Resolved::Object(wrap(&v.ty)),
            "defaultValue" => v.default.as_ref().map_or(Resolved::Null, |d| {
                let mut out = String::new();
                print_value(schema, d, &v.ty, &mut out);
                Resolved::Leaf(Leaf::String(out))
            }),
            "isDeprecated" => Resolved::Leaf(Leaf::Boolean(false)),
            _ => Resolved::Null,
        },
        Intro::Enum(e) => match field {
            "name" => s(&e.name),
            "description" => opt(e.description.as_ref()),
            "isDeprecated" => Resolved::Leaf(Leaf::Boolean(e.deprecation.is_some())),
            "deprecationReason" => opt(e.deprecation.as_ref()),
            _ => Resolved::Null,
        },
        Intro::Directive(d) => match field {
            "name" => s(d.name),
            "description" => s(d.description),
            "locations" => Resolved::List(
                d.locations
                    .iter()
                    .map(|l| Resolved::Leaf(Leaf::Enum(l)))
                    .collect(),
            ),
            "args" => Resolved::List(
                schema
                    .directive_args(d.name)
                    .iter()
                    .map(|v| Resolved::Object(Intro::Input(v)))
                    .collect(),
            ),
            "isRepeatable" => Resolved::Leaf(Leaf::Boolean(false)),
            _ => Resolved::Null,
        },
    }
}

/// `__Type` of a reference: named types become `Named`.
fn wrap(r: &TypeRef) -> Intro<'_> {
    match r {
        TypeRef::Named(t) => Intro::Named(*t),
        other => Intro::TypeRef(other),
    }
}

/// The holders of meta fields and directive arguments are not types of the schema's
/// users.
fn is_hidden(schema: &Schema, t: TypeId) -> bool {
    matches!(schema.get(t).name.as_str(), "__Meta" | "__Directives")
}

fn named_type_field<'s>(
    schema: &'s Schema,
    t: TypeId,
    field: &str,
    args: &Args<'_>,
) -> Resolved<Intro<'s>> {
    let def = schema.get(t);
    let deprecated_too = include_deprecated(args);
    match field {
        "kind" => Resolved::Leaf(Leaf::Enum(match def.kind {
            Kind::Scalar => "SCALAR",
            Kind::Object { .. } => "OBJECT",
            Kind::Interface { .. } => "INTERFACE",
            Kind::Union { .. } => "UNION",
            Kind::Enum { .. } => "ENUM",
            Kind::InputObject { .. } => "INPUT_OBJECT",
        })),
        "name" => s(&def.name),
        "description" => opt(def.description.as_ref()),
        "fields" => match &def.kind {
            Kind::Object { fields, .. } | Kind::Interface { fields, .. } => Resolved::List(
                fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| deprecated_too || f.deprecation.is_none())
                    .map(|(i, _)| Resolved::Object(Intro::Field(t, i)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        "interfaces" => match &def.kind {
            Kind::Object { interfaces, .. } | Kind::Interface { interfaces, .. } => Resolved::List(
                interfaces
                    .iter()
                    .map(|&i| Resolved::Object(Intro::Named(i)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        "possibleTypes" => match &def.kind {
            Kind::Interface { possible, .. } => Resolved::List(
                possible
                    .iter()
                    .map(|&i| Resolved::Object(Intro::Named(i)))
                    .collect(),
            ),
            Kind::Union { members } => Resolved::List(
                members
                    .iter()
                    .map(|&i| Resolved::Object(Intro::Named(i)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        "enumValues" => match &def.kind {
            Kind::Enum { values } => Resolved::List(
                values
                    .iter()
                    .filter(|v| deprecated_too || v.deprecation.is_none())
                    .map(|v| Resolved::Object(Intro::Enum(v)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        "inputFields" => match &def.kind {
            Kind::InputObject { fields } => Resolved::List(
                fields
                    .iter()
                    .map(|v| Resolved::Object(Intro::Input(v)))
                    .collect(),
            ),
            _ => Resolved::Null,
        },
        "isOneOf" => match def.kind {
            Kind::InputObject { .. } => Resolved::Leaf(Leaf::Boolean(false)),
            _ => Resolved::Null,
        },
        // specifiedByURL, ofType of a named type.
        _ => Resolved::Null,
    }
}

/// A coerced input value in GraphQL syntax for its type (graphql-js `astFromValue`, then
/// `print`): input object fields in their type's order, an ID that is an integer as an
/// Int literal, a whole Float as an Int.
pub fn print_value(schema: &Schema, value: &ConstValue, ty: &TypeRef, out: &mut String) {
    let ty = match ty {
        TypeRef::NonNull(inner) => &**inner,
        other => other,
    };
    if matches!(value, ConstValue::Null) {
        out.push_str("null");
        return;
    }
    match ty {
        TypeRef::NonNull(inner) => print_value(schema, value, inner, out),
        TypeRef::List(item) => match value {
            ConstValue::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    print_value(schema, v, item, out);
                }
                out.push(']');
            }
            // Coerced values are lists here; graphql-js prints a lone item as it is.
            other => print_value(schema, other, item, out),
        },
        TypeRef::Named(id) => {
            let t = schema.get(*id);
            match (&t.kind, value) {
                (Kind::InputObject { fields }, ConstValue::Object(given)) => {
                    out.push('{');
                    let mut first = true;
                    for f in fields {
                        let Some(v) = given.get(f.name.as_str()) else {
                            continue;
                        };
                        if !first {
                            out.push_str(", ");
                        }
                        first = false;
                        out.push_str(&f.name);
                        out.push_str(": ");
                        print_value(schema, v, &f.ty, out);
                    }
                    out.push('}');
                }
                (_, ConstValue::String(s))
                    if t.name == "ID"
                        && !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_digit())
                        && (s == "0" || !s.starts_with('0')) =>
                {
                    out.push_str(s)
                }
                (_, ConstValue::Number(n)) => match n.as_f64() {
                    // JavaScript prints 1.0 as 1.
                    Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e21 => {
                        out.push_str(&format!("{f:.0}"))
                    }
                    _ => out.push_str(&n.to_string()),
                },
                (_, other) => crate::coerce::write_literal(other, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Out;
    use crate::exec::{execute, Resolver};
    use crate::limits::Limits;
    use crate::persisted::prepare;

    /// graphql-js 16's `getIntrospectionQuery({ descriptions: true, specifiedByUrl: true,
    /// directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true })`,
    /// as GraphiQL and code generators send it.
    const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        description
        queryType { name kind }
        mutationType { name kind }
        subscriptionType { name kind }
        types {
          ...FullType
        }
        directives {
          name
          description
          isRepeatable
          
          
          locations
          args(includeDeprecated: true) {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      specifiedByURL
      
      fields(includeDeprecated: true) {
        name
        description
        args(includeDeprecated: true) {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields(includeDeprecated: true) {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
      isDeprecated
      deprecationReason
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        name
        kind
        ofType {
          name
          kind
          ofType {
            name
            kind
            ofType {
              name
              kind
              ofType {
                name
                kind
                ofType {
                  name
                  kind
                  ofType {
                    name
                    kind
                    ofType {
                      name
                      kind
                      ofType {
                        name
                        kind
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  
"#;

    struct NoFields;

    impl Resolver for NoFields {
        type Object = ();

        async fn resolve(
            &self,
            f: &PlannedField,
            _: &Args<'_>,
            parents: &[()],
            out: &mut Out<'_, ()>,
        ) {
            out.extend(
                parents
                    .iter()
                    .map(|_| Resolved::Error(format!("{} asked", f.name).into())),
            );
        }

        fn type_of(&self, _: &()) -> TypeId {
            unreachable!("introspection only")
        }
    }

    #[test]
    fn the_standard_introspection_query_fits_the_default_limits_and_runs_clean() {
        let schema = Schema::from_sdl(
            r#"
            """
            A small API.
            """
            schema { query: Query }
            enum Kind { A B @deprecated(reason: "use A") }
            input Filter { kind: Kind = A, tags: [String!] = "x", limit: Int = 10 }
            interface Node { id: ID! }
            type Item implements Node { id: ID! name: String @deprecated kind: Kind! }
            union Found = Item
            type Query {
              node(id: ID!): Node
              items(filter: Filter = { kind: B }, first: Int = 20): [Item!]!
              search(q: String!): [Found!]!
            }
            "#,
        )
        .unwrap();
        let prepared = prepare(&schema, INTROSPECTION_QUERY, &Limits::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let plan = prepared.plan(None).unwrap();
        assert!(plan.cost <= Limits::default().complexity, "{}", plan.cost);
        let out = crate::block_on(execute(&schema, plan, &NoFields, (), &Default::default()));
        let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(r.get("errors").is_none(), "{r}");
        let s = &r["data"]["__schema"];
        assert_eq!(s["description"], "A small API.");
        assert_eq!(
            s["queryType"],
            serde_json::json!({"name": "Query", "kind": "OBJECT"})
        );
        let ty = |name: &str| {
            s["types"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("{name}"))
                .clone()
        };
        let filter = ty("Filter");
        let defaults: Vec<&serde_json::Value> = filter["inputFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["defaultValue"])
            .collect();
        assert_eq!(defaults, ["A", "[\"x\"]", "10"]);
        let items = ty("Query")["fields"][1].clone();
        assert_eq!(
            items["args"][0]["defaultValue"],
            "{kind: B, tags: [\"x\"], limit: 10}"
        );
        assert_eq!(ty("Item")["fields"][1]["isDeprecated"], true);
        assert_eq!(ty("Found")["possibleTypes"][0]["name"], "Item");
        let skip = s["directives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "skip")
            .unwrap();
        assert_eq!(skip["isRepeatable"], false);
        assert_eq!(skip["args"][0]["type"]["kind"], "NON_NULL");
    }
}
