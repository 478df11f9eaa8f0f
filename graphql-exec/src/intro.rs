//! Introspection (`__schema`, `__type` and the `__` types) resolved by the engine from
//! the schema tables, so GraphiQL and code generators work for any schema.

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
            "defaultValue" => v
                .default
                .as_ref()
                .map_or(Resolved::Null, |d| s(&d.to_string())),
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
