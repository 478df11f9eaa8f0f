//! A schema built from SDL into flat tables: every type has a [`TypeId`], every type
//! reference is resolved, so planning and execution index arrays instead of looking
//! names up. Built-in scalars and directives are added; the SDL is checked for
//! references to unknown types, union members that are not objects, and objects that
//! do not implement their interfaces' fields.

use std::collections::HashMap;

use async_graphql_parser::types::{
    BaseType, ConstDirective, FieldDefinition, InputValueDefinition, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_parser::{parse_schema, Positioned};
use async_graphql_value::ConstValue;

/// Index of a type in [`Schema::types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeId(pub u32);

/// A reference to a type, with list and non-null wrappers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    /// A named type.
    Named(TypeId),
    /// A list of the inner type.
    List(Box<TypeRef>),
    /// The inner type, never null.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// The named type under the wrappers.
    pub fn named(&self) -> TypeId {
        match self {
            TypeRef::Named(id) => *id,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    /// Whether null is refused at this level.
    pub fn is_non_null(&self) -> bool {
        matches!(self, TypeRef::NonNull(_))
    }
}

/// An argument or input field.
#[derive(Debug, Clone)]
pub struct InputValue {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its type.
    pub ty: TypeRef,
    /// The default value, if it has one.
    pub default: Option<ConstValue>,
}

/// A field of an object or interface.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its arguments.
    pub args: Vec<InputValue>,
    /// Its type.
    pub ty: TypeRef,
    /// The `@deprecated` reason, if deprecated.
    pub deprecation: Option<String>,
}

/// An enum value.
#[derive(Debug, Clone)]
pub struct EnumValue {
    /// The value's name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The `@deprecated` reason, if deprecated.
    pub deprecation: Option<String>,
}

/// What kind of type a type is, with its members.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar (built-in or custom).
    Scalar,
    /// An object type.
    Object {
        /// Its fields, in SDL order.
        fields: Vec<Field>,
        /// The interfaces it implements.
        interfaces: Vec<TypeId>,
    },
    /// An interface.
    Interface {
        /// Its fields.
        fields: Vec<Field>,
        /// The interfaces it implements.
        interfaces: Vec<TypeId>,
        /// The object types that implement it.
        possible: Vec<TypeId>,
    },
    /// A union.
    Union {
        /// Its member object types.
        members: Vec<TypeId>,
    },
    /// An enum.
    Enum {
        /// Its values.
        values: Vec<EnumValue>,
    },
    /// An input object.
    InputObject {
        /// Its fields.
        fields: Vec<InputValue>,
    },
}

/// A named type.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its kind and members.
    pub kind: Kind,
}

impl TypeDef {
    /// The fields of an object or interface; none for other kinds.
    pub fn fields(&self) -> &[Field] {
        match &self.kind {
            Kind::Object { fields, .. } | Kind::Interface { fields, .. } => fields,
            _ => &[],
        }
    }

    /// The field called `name`, if the type has one.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
    }
}

/// Why SDL could not become a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The SDL does not parse.
    #[error("the schema does not parse: {0}")]
    Parse(String),
    /// A type is defined twice.
    #[error("type {0} is defined twice")]
    Duplicate(String),
    /// A reference names no type.
    #[error("{at} refers to the unknown type {name}")]
    UnknownType {
        /// Where the reference is.
        at: String,
        /// The name.
        name: String,
    },
    /// A type is used where its kind is not allowed.
    #[error("{0}")]
    WrongKind(String),
    /// There is no query root.
    #[error("the schema has no query type")]
    NoQuery,
    /// A default value does not fit its argument's or input field's type.
    #[error("{0}")]
    InvalidDefault(String),
    /// An object lacks a field of an interface it implements.
    #[error("{object} implements {interface} but lacks its field {field}")]
    MissingInterfaceField {
        /// The object.
        object: String,
        /// The interface.
        interface: String,
        /// The field.
        field: String,
    },
}

/// A built schema.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The type holding the meta fields (`__typename`, `__schema`, `__type`).
    meta: TypeId,
    /// The description of the `schema` definition.
    pub description: Option<String>,
    types: Vec<TypeDef>,
    by_name: HashMap<String, TypeId>,
    /// The query root.
    pub query: TypeId,
    /// The mutation root.
    pub mutation: Option<TypeId>,
    /// The subscription root.
    pub subscription: Option<TypeId>,
    sdl: String,
}

const BUILTIN_SCALARS: [&str; 5] = ["Int", "Float", "String", "Boolean", "ID"];

/// The introspection types every schema has (GraphQL, section 4.2).
const INTROSPECTION_SDL: &str = r#"
type __Schema {
  description: String
  types: [__Type!]!
  queryType: __Type!
  mutationType: __Type
  subscriptionType: __Type
  directives: [__Directive!]!
}
type __Type {
  kind: __TypeKind!
  name: String
  description: String
  specifiedByURL: String
  fields(includeDeprecated: Boolean = false): [__Field!]
  interfaces: [__Type!]
  possibleTypes: [__Type!]
  enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!]
  ofType: __Type
  isOneOf: Boolean
}
enum __TypeKind { SCALAR OBJECT INTERFACE UNION ENUM INPUT_OBJECT LIST NON_NULL }
type __Field {
  name: String!
  description: String
  args(includeDeprecated: Boolean = false): [__InputValue!]!
  type: __Type!
  isDeprecated: Boolean!
  deprecationReason: String
}
type __InputValue {
  name: String!
  description: String
  type: __Type!
  defaultValue: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __EnumValue {
  name: String!
  description: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __Directive {
  name: String!
  description: String
  locations: [__DirectiveLocation!]!
  args(includeDeprecated: Boolean = false): [__InputValue!]!
  isRepeatable: Boolean!
}
enum __DirectiveLocation {
  QUERY MUTATION SUBSCRIPTION FIELD FRAGMENT_DEFINITION FRAGMENT_SPREAD INLINE_FRAGMENT
  VARIABLE_DEFINITION SCHEMA SCALAR OBJECT FIELD_DEFINITION ARGUMENT_DEFINITION INTERFACE
  UNION ENUM ENUM_VALUE INPUT_OBJECT INPUT_FIELD_DEFINITION
}
type __Meta {
  __typename: String!
  __schema: __Schema!
  __type(name: String!): __Type
}
type __Directives {
  include(if: Boolean!): Boolean
  skip(if: Boolean!): Boolean
  deprecated(reason: String = "No longer supported"): Boolean
  specifiedBy(url: String!): Boolean
}
"#;

/// Name of the holder of the meta fields; never a member of `types()`' output roots.
const META_TYPE: &str = "__Meta";

impl Schema {
    /// The built-in `Int` (built-in scalars come first, in a fixed order).
    pub const INT: TypeId = TypeId(0);
    /// The built-in `Float`.
    pub const FLOAT: TypeId = TypeId(1);

    /// Builds a schema from SDL.
    pub fn from_sdl(sdl: &str) -> Result<Schema, SchemaError> {
        // The parser predates descriptions on `schema { ... }` (GraphQL, October 2021):
        // take the description out, keeping every other position where it was.
        let (text, description) = lift_schema_description(sdl);
        let doc = parse_schema(&text).map_err(|e| SchemaError::Parse(e.to_string()))?;
        let builtin = parse_schema(INTROSPECTION_SDL).expect("the introspection SDL parses");
        let mut defs = Vec::new();
        let mut roots = (None, None, None);
        for def in doc.definitions {
            match def {
                TypeSystemDefinition::Type(t) => defs.push(t.node),
                TypeSystemDefinition::Schema(s) => {
                    let s = s.node;
                    roots = (
                        s.query.map(|n| n.node.to_string()),
                        s.mutation.map(|n| n.node.to_string()),
                        s.subscription.map(|n| n.node.to_string()),
                    );
                }
                // Custom directive definitions carry nothing execution needs.
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        for def in builtin.definitions {
            if let TypeSystemDefinition::Type(t) = def {
                defs.push(t.node);
            }
        }

        // Pass 1: names to ids, built-in scalars first.
        let mut by_name = HashMap::new();
        let mut names: Vec<String> = BUILTIN_SCALARS.iter().map(|s| (*s).to_owned()).collect();
        for d in &defs {
            let name = d.name.node.to_string();
            if BUILTIN_SCALARS.contains(&name.as_str()) {
                continue;
            }
            if names.contains(&name) {
                return Err(SchemaError::Duplicate(name));
            }
            names.push(name);
        }
        for (i, n) in names.iter().enumerate() {
            by_name.insert(n.clone(), TypeId(i as u32));
        }
        let lookup = |name: &str, at: &str| -> Result<TypeId, SchemaError> {
            by_name
                .get(name)
                .copied()
                .ok_or_else(|| SchemaError::UnknownType {
                    at: at.to_owned(),
                    name: name.to_owned(),
                })
        };

        // Pass 2: resolve every definition.
        let mut types: Vec<TypeDef> = BUILTIN_SCALARS
            .iter()
            .map(|s| TypeDef {
                name: (*s).to_owned(),
                description: None,
                kind: Kind::Scalar,
            })
            .collect();
        for d in defs {
            let name = d.name.node.to_string();
            if BUILTIN_SCALARS.contains(&name.as_str()) {
                continue;
            }
            let description = d.description.map(|p| p.node);
            let kind = match d.kind {
                TypeKind::Scalar => Kind::Scalar,
                TypeKind::Object(o) => Kind::Object {
                    fields: fields(&name, o.fields, &lookup)?,
                    interfaces: o
                        .implements
                        .iter()
                        .map(|i| lookup(&i.node, &name))
                        .collect::<Result<_, _>>()?,
                },
                TypeKind::Interface(i) => Kind::Interface {
                    fields: fields(&name, i.fields, &lookup)?,
                    interfaces: i
                        .implements
                        .iter()
                        .map(|n| lookup(&n.node, &name))
                        .collect::<Result<_, _>>()?,
                    possible: Vec::new(),
                },
                TypeKind::Union(u) => Kind::Union {
                    members: u
                        .members
                        .iter()
                        .map(|m| lookup(&m.node, &name))
                        .collect::<Result<_, _>>()?,
                },
                TypeKind::Enum(e) => Kind::Enum {
                    values: e
                        .values
                        .into_iter()
                        .map(|v| EnumValue {
                            name: v.node.value.node.to_string(),
                            description: v.node.description.map(|p| p.node),
                            deprecation: deprecation(&v.node.directives),
                        })
                        .collect(),
                },
                TypeKind::InputObject(io) => Kind::InputObject {
                    fields: input_values(&name, io.fields, &lookup)?,
                },
            };
            types.push(TypeDef {
                name,
                description,
                kind,
            });
        }

        let root = |given: Option<String>, default: &str| -> Result<Option<TypeId>, SchemaError> {
            match given {
                Some(n) => lookup(&n, "schema").map(Some),
                None => Ok(by_name.get(default).copied()),
            }
        };
        let query = root(roots.0, "Query")?.ok_or(SchemaError::NoQuery)?;
        let mutation = root(roots.1, "Mutation")?;
        let subscription = root(roots.2, "Subscription")?;

        let meta = by_name[META_TYPE];
        let mut schema = Schema {
            meta,
            description,
            types,
            by_name,
            query,
            mutation,
            subscription,
            sdl: sdl.to_owned(),
        };
        schema.check_and_link()?;
        schema.coerce_defaults()?;
        Ok(schema)
    }

    /// Coerces every argument's and input field's default value to its type (as
    /// graphql-js does when it builds a schema), so `[String] = "a"` is `["a"]` and an
    /// input object default carries its fields' defaults. Input object defaults can
    /// nest, so this repeats until nothing changes (bounded, in case they nest in a
    /// cycle).
    fn coerce_defaults(&mut self) -> Result<(), SchemaError> {
        // (type, member, argument): member is a field index, argument None for an input
        // field.
        type At = (usize, usize, Option<usize>);
        let mut raw: Vec<(At, ConstValue)> = Vec::new();
        for (t, def) in self.types.iter().enumerate() {
            match &def.kind {
                Kind::Object { fields, .. } | Kind::Interface { fields, .. } => {
                    for (f, field) in fields.iter().enumerate() {
                        for (a, arg) in field.args.iter().enumerate() {
                            if let Some(d) = &arg.default {
                                raw.push(((t, f, Some(a)), d.clone()));
                            }
                        }
                    }
                }
                Kind::InputObject { fields } => {
                    for (f, field) in fields.iter().enumerate() {
                        if let Some(d) = &field.default {
                            raw.push(((t, f, None), d.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        let input_objects = self
            .types
            .iter()
            .filter(|t| matches!(t.kind, Kind::InputObject { .. }))
            .count();
        for _ in 0..=input_objects.min(16) {
            let mut changed = false;
            for ((t, f, a), literal) in &raw {
                let value = self.input_value(*t, *f, *a);
                let Some(coerced) = crate::coerce::value_from_literal(
                    self,
                    literal,
                    &value.ty,
                    &crate::coerce::no_variables,
                ) else {
                    let owner = &self.types[*t].name;
                    let at = match a {
                        Some(_) => format!(
                            "{owner}.{}({})",
                            self.types[*t].fields()[*f].name,
                            value.name
                        ),
                        None => format!("{owner}.{}", value.name),
                    };
                    return Err(SchemaError::InvalidDefault(format!(
                        "the default value {} of {at} is not a valid {}",
                        crate::coerce::print_literal(literal),
                        crate::coerce::display(self, &value.ty)
                    )));
                };
                if value.default.as_ref() != Some(&coerced) {
                    changed = true;
                    self.input_value_mut(*t, *f, *a).default = Some(coerced);
                }
            }
            if !changed {
                break;
            }
        }
        Ok(())
    }

    fn input_value(&self, t: usize, f: usize, a: Option<usize>) -> &InputValue {
        match (&self.types[t].kind, a) {
            (Kind::Object { fields, .. } | Kind::Interface { fields, .. }, Some(a)) => {
                &fields[f].args[a]
            }
            (Kind::InputObject { fields }, None) => &fields[f],
            _ => unreachable!("input values are listed from the tables"),
        }
    }

    fn input_value_mut(&mut self, t: usize, f: usize, a: Option<usize>) -> &mut InputValue {
        match (&mut self.types[t].kind, a) {
            (Kind::Object { fields, .. } | Kind::Interface { fields, .. }, Some(a)) => {
                &mut fields[f].args[a]
            }
            (Kind::InputObject { fields }, None) => &mut fields[f],
            _ => unreachable!("input values are listed from the tables"),
        }
    }

    /// Checks kinds (roots and union members are objects, interfaces are interfaces,
    /// field types are output types, argument types are input types), that objects carry
    /// their interfaces' fields, and records each interface's implementations.
    fn check_and_link(&mut self) -> Result<(), SchemaError> {
        for root in [Some(self.query), self.mutation, self.subscription]
            .into_iter()
            .flatten()
        {
            if !matches!(self.get(root).kind, Kind::Object { .. }) {
                return Err(SchemaError::WrongKind(format!(
                    "root type {} is not an object type",
                    self.get(root).name
                )));
            }
        }
        let mut implementations: Vec<(TypeId, TypeId)> = Vec::new();
        for (i, t) in self.types.iter().enumerate() {
            let id = TypeId(i as u32);
            match &t.kind {
                Kind::Object { fields, interfaces } => {
                    self.check_fields(&t.name, fields)?;
                    for &iface in interfaces {
                        let it = self.get(iface);
                        if !matches!(it.kind, Kind::Interface { .. }) {
                            return Err(SchemaError::WrongKind(format!(
                                "{} implements {}, which is not an interface",
                                t.name, it.name
                            )));
                        }
                        for f in it.fields() {
                            if !fields.iter().any(|g| g.name == f.name) {
                                return Err(SchemaError::MissingInterfaceField {
                                    object: t.name.clone(),
                                    interface: it.name.clone(),
                                    field: f.name.clone(),
                                });
                            }
                        }
                        implementations.push((iface, id));
                    }
                }
                Kind::Interface { fields, .. } => self.check_fields(&t.name, fields)?,
                Kind::Union { members } => {
                    for &m in members {
                        if !matches!(self.get(m).kind, Kind::Object { .. }) {
                            return Err(SchemaError::WrongKind(format!(
                                "union {} has the member {}, which is not an object type",
                                t.name,
                                self.get(m).name
                            )));
                        }
                    }
                }
                Kind::InputObject { fields } => {
                    for f in fields {
                        if !self.is_input(&f.ty) {
                            return Err(SchemaError::WrongKind(format!(
                                "input field {}.{} is not of an input type",
                                t.name, f.name
                            )));
                        }
                    }
                }
                Kind::Scalar | Kind::Enum { .. } => {}
            }
        }
        for (iface, object) in implementations {
            if let Kind::Interface { possible, .. } = &mut self.types[iface.0 as usize].kind {
                possible.push(object);
            }
        }
        Ok(())
    }

    fn check_fields(&self, owner: &str, fields: &[Field]) -> Result<(), SchemaError> {
        for f in fields {
            if matches!(self.get(f.ty.named()).kind, Kind::InputObject { .. }) {
                return Err(SchemaError::WrongKind(format!(
                    "field {owner}.{} returns an input object",
                    f.name
                )));
            }
            for a in &f.args {
                if !self.is_input(&a.ty) {
                    return Err(SchemaError::WrongKind(format!(
                        "argument {owner}.{}({}) is not of an input type",
                        f.name, a.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn is_input(&self, ty: &TypeRef) -> bool {
        matches!(
            self.get(ty.named()).kind,
            Kind::Scalar | Kind::Enum { .. } | Kind::InputObject { .. }
        )
    }

    /// The field `name` as selected on `parent`: its own fields, `__typename` on every
    /// composite type, and `__schema` and `__type` on the query root.
    pub fn field(&self, parent: TypeId, name: &str) -> Option<&Field> {
        if let Some((_, f)) = self.get(parent).field(name) {
            return Some(f);
        }
        let meta = self.get(self.meta);
        match name {
            "__typename" if self.is_composite(parent) => meta.field(name).map(|(_, f)| f),
            "__schema" | "__type" if parent == self.query => meta.field(name).map(|(_, f)| f),
            _ => None,
        }
    }

    /// The arguments of a built-in directive (`include`, `skip`, `deprecated`,
    /// `specifiedBy`), for introspection.
    pub fn directive_args(&self, directive: &str) -> &[InputValue] {
        self.type_named("__Directives")
            .and_then(|t| self.get(t).field(directive))
            .map_or(&[], |(_, f)| f.args.as_slice())
    }

    /// Whether the type is an object, interface or union.
    pub fn is_composite(&self, id: TypeId) -> bool {
        matches!(
            self.get(id).kind,
            Kind::Object { .. } | Kind::Interface { .. } | Kind::Union { .. }
        )
    }

    /// Whether a type is one of the introspection types (or the meta-field holder).
    pub fn is_introspection(&self, id: TypeId) -> bool {
        self.get(id).name.starts_with("__")
    }

    /// The type with id `id`.
    pub fn get(&self, id: TypeId) -> &TypeDef {
        &self.types[id.0 as usize]
    }

    /// The type called `name`.
    pub fn type_named(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    /// Every type, by id.
    pub fn types(&self) -> &[TypeDef] {
        &self.types
    }

    /// The SDL the schema was built from.
    pub fn sdl(&self) -> &str {
        &self.sdl
    }

    /// Whether an object of type `object` can be where `abstract_ty` is expected.
    pub fn is_possible(&self, abstract_ty: TypeId, object: TypeId) -> bool {
        match &self.get(abstract_ty).kind {
            Kind::Interface { possible, .. } => possible.contains(&object),
            Kind::Union { members } => members.contains(&object),
            _ => abstract_ty == object,
        }
    }
}

/// Blanks out the description before a top-level `schema` keyword (with spaces, so
/// error positions stay right) and returns it.
fn lift_schema_description(sdl: &str) -> (std::borrow::Cow<'_, str>, Option<String>) {
    let b = sdl.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    // The last string literal at depth 0 with nothing but blanks and comments after it.
    let mut last_string: Option<(usize, usize)> = None;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                let start = i;
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                        i += if b[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i = (i + 3).min(b.len());
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i = (i + 1).min(b.len());
                }
                if depth == 0 {
                    last_string = Some((start, i));
                }
                continue;
            }
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            c if c.is_ascii_whitespace() || c == b',' => {}
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if depth == 0 && &sdl[start..i] == "schema" {
                    if let Some((s, e)) = last_string {
                        let raw = &sdl[s..e];
                        let text = string_value(raw);
                        let mut out = String::with_capacity(sdl.len());
                        out.push_str(&sdl[..s]);
                        out.extend(raw.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
                        out.push_str(&sdl[e..]);
                        return (std::borrow::Cow::Owned(out), Some(text));
                    }
                }
                last_string = None;
                continue;
            }
            _ => last_string = None,
        }
        i += 1;
    }
    (std::borrow::Cow::Borrowed(sdl), None)
}

/// The value of a string literal as written (`"..."` with escapes, or a block string,
/// GraphQL section 2.9.4).
fn string_value(raw: &str) -> String {
    if let Some(body) = raw.strip_prefix("\"\"\"") {
        let body = body.strip_suffix("\"\"\"").unwrap_or(body);
        return block_string_value(&body.replace("\\\"\"\"", "\"\"\""));
    }
    let body = raw.strip_prefix('"').unwrap_or(raw);
    let body = body.strip_suffix('"').unwrap_or(body);
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let code = if chars.peek() == Some(&'{') {
                    chars.next();
                    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    u32::from_str_radix(&hex, 16).ok()
                } else {
                    let hex: String = chars.by_ref().take(4).collect();
                    u32::from_str_radix(&hex, 16).ok()
                };
                let Some(mut code) = code else {
                    out.push('\u{fffd}');
                    continue;
                };
                // A surrogate pair written as two escapes.
                if (0xD800..0xDC00).contains(&code) {
                    let mut rest = chars.clone();
                    if rest.next() == Some('\\') && rest.next() == Some('u') {
                        let hex: String = rest.by_ref().take(4).collect();
                        if let Ok(low) = u32::from_str_radix(&hex, 16) {
                            if (0xDC00..0xE000).contains(&low) {
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                chars = rest;
                            }
                        }
                    }
                }
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            // `\"`, `\\`, `\/`.
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// BlockStringValue (GraphQL section 2.9.4): common indentation removed from every
/// line but the first, leading and trailing blank lines dropped.
fn block_string_value(raw: &str) -> String {
    let lines: Vec<&str> = raw
        .split("\r\n")
        .flat_map(|l| l.split(['\n', '\r']))
        .collect();
    let is_blank = |l: &str| l.chars().all(|c| c == ' ' || c == '\t');
    let common = lines
        .iter()
        .skip(1)
        .filter(|l| !is_blank(l))
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min();
    let mut out: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| match common {
            Some(n) if i > 0 => l.get(n..).unwrap_or(""),
            _ => l,
        })
        .collect();
    while out.first().is_some_and(|l| is_blank(l)) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| is_blank(l)) {
        out.pop();
    }
    out.join("\n")
}

fn type_ref(
    ty: &Type,
    at: &str,
    lookup: &impl Fn(&str, &str) -> Result<TypeId, SchemaError>,
) -> Result<TypeRef, SchemaError> {
    let inner = match &ty.base {
        BaseType::Named(n) => TypeRef::Named(lookup(n, at)?),
        BaseType::List(inner) => TypeRef::List(Box::new(type_ref(inner, at, lookup)?)),
    };
    Ok(if ty.nullable {
        inner
    } else {
        TypeRef::NonNull(Box::new(inner))
    })
}

fn fields(
    owner: &str,
    defs: Vec<Positioned<FieldDefinition>>,
    lookup: &impl Fn(&str, &str) -> Result<TypeId, SchemaError>,
) -> Result<Vec<Field>, SchemaError> {
    defs.into_iter()
        .map(|f| {
            let f = f.node;
            let at = format!("{owner}.{}", f.name.node);
            Ok(Field {
                ty: type_ref(&f.ty.node, &at, lookup)?,
                args: input_values(&at, f.arguments, lookup)?,
                deprecation: deprecation(&f.directives),
                description: f.description.map(|p| p.node),
                name: f.name.node.to_string(),
            })
        })
        .collect()
}

fn input_values(
    owner: &str,
    defs: Vec<Positioned<InputValueDefinition>>,
    lookup: &impl Fn(&str, &str) -> Result<TypeId, SchemaError>,
) -> Result<Vec<InputValue>, SchemaError> {
    defs.into_iter()
        .map(|v| {
            let v = v.node;
            let at = format!("{owner}({})", v.name.node);
            Ok(InputValue {
                ty: type_ref(&v.ty.node, &at, lookup)?,
                default: v.default_value.map(|d| d.node),
                description: v.description.map(|p| p.node),
                name: v.name.node.to_string(),
            })
        })
        .collect()
}

fn deprecation(directives: &[Positioned<ConstDirective>]) -> Option<String> {
    let d = directives
        .iter()
        .find(|d| d.node.name.node == "deprecated")?;
    let reason = d
        .node
        .arguments
        .iter()
        .find(|(n, _)| n.node == "reason")
        .and_then(|(_, v)| match &v.node {
            ConstValue::String(s) => Some(s.clone()),
            _ => None,
        });
    Some(reason.unwrap_or_else(|| "No longer supported".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        "A thing with an id."
        interface Node { id: ID! }
        type Query {
          node(id: ID!): Node
          things(first: Int = 20, filter: Filter): [Thing!]!
          search(q: String!): [Result!]!
        }
        type Mutation { rename(id: ID!, name: String!): Thing! }
        type Thing implements Node {
          id: ID!
          name: String @deprecated(reason: "use label")
          label: String
          color: Color!
        }
        type Other implements Node { id: ID! }
        union Result = Thing | Other
        enum Color { RED GREEN @deprecated }
        input Filter { color: Color, names: [String!] }
        scalar DateTime
    "#;

    #[test]
    fn types_and_references_resolve() {
        let s = Schema::from_sdl(SDL).unwrap();
        let query = s.get(s.query);
        assert_eq!(query.name, "Query");
        assert_eq!(s.get(s.mutation.unwrap()).name, "Mutation");
        assert!(s.subscription.is_none());
        let (_, things) = query.field("things").unwrap();
        // [Thing!]!
        let thing = s.type_named("Thing").unwrap();
        assert_eq!(
            things.ty,
            TypeRef::NonNull(Box::new(TypeRef::List(Box::new(TypeRef::NonNull(
                Box::new(TypeRef::Named(thing))
            )))))
        );
        assert_eq!(things.args[0].default, Some(ConstValue::Number(20.into())));
        let (_, name) = s.get(thing).field("name").unwrap();
        assert_eq!(name.deprecation.as_deref(), Some("use label"));
        assert_eq!(
            s.get(s.type_named("Node").unwrap()).description.as_deref(),
            Some("A thing with an id.")
        );
        assert!(s.type_named("DateTime").is_some());
        assert!(s.type_named("Int").is_some());
    }

    #[test]
    fn abstract_types_know_their_objects() {
        let s = Schema::from_sdl(SDL).unwrap();
        let node = s.type_named("Node").unwrap();
        let result = s.type_named("Result").unwrap();
        let thing = s.type_named("Thing").unwrap();
        let other = s.type_named("Other").unwrap();
        let query = s.query;
        assert!(s.is_possible(node, thing) && s.is_possible(node, other));
        assert!(s.is_possible(result, other));
        assert!(!s.is_possible(node, query));
        match &s.get(s.type_named("Color").unwrap()).kind {
            Kind::Enum { values } => assert_eq!(
                values[1].deprecation.as_deref(),
                Some("No longer supported")
            ),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn a_described_schema_definition_is_accepted() {
        let sdl = "\"\"\"\nThe API { with braces }.\n\"\"\"\nschema { query: Q }\n\"A type.\" type Q { a: Int }";
        let s = Schema::from_sdl(sdl).unwrap();
        assert_eq!(s.description.as_deref(), Some("The API { with braces }."));
        assert_eq!(s.get(s.query).name, "Q");
        assert_eq!(s.get(s.query).description.as_deref(), Some("A type."));
        assert_eq!(s.sdl(), sdl);
        // Without a schema definition nothing is lifted.
        assert!(Schema::from_sdl("\"Q\" type Query { a: Int }")
            .unwrap()
            .description
            .is_none());
    }

    #[test]
    fn the_schema_description_is_decoded_like_any_string() {
        let description = |sdl: &str| {
            Schema::from_sdl(&format!("{sdl}\nschema {{ query: Q }} type Q {{ a: Int }}"))
                .unwrap()
                .description
                .unwrap()
        };
        // A block string: common indentation and blank first and last lines removed,
        // escaped triple quotes unescaped, backslashes kept.
        assert_eq!(
            description(
                "\"\"\"\n\n    The API.\n      Indented.\n    Escaped \\\"\"\" and \\n kept.\n  \n\"\"\""
            ),
            "The API.\n  Indented.\nEscaped \"\"\" and \\n kept."
        );
        assert_eq!(description("\"\"\"  One line.  \"\"\""), "  One line.  ");
        // A string: escapes decoded, surrogate pairs joined.
        assert_eq!(
            description(r#""Tab\there \u00e9 \"q\" \\ \/ \ud83d\ude00 \u{1F600}""#),
            "Tab\there \u{e9} \"q\" \\ / \u{1F600} \u{1F600}"
        );
    }

    #[test]
    fn default_values_are_coerced_and_checked_when_built() {
        let s = Schema::from_sdl(
            "input F { tags: [String] = \"a\", n: Int = 1 } type Query { a(f: F = {}, id: ID = 1): Int }",
        )
        .unwrap();
        let (_, a) = s.get(s.query).field("a").unwrap();
        let mut f = async_graphql_value::indexmap::IndexMap::new();
        f.insert(
            async_graphql_value::Name::new("tags"),
            ConstValue::List(vec![ConstValue::String("a".into())]),
        );
        f.insert(
            async_graphql_value::Name::new("n"),
            ConstValue::Number(1.into()),
        );
        assert_eq!(a.args[0].default, Some(ConstValue::Object(f)));
        assert_eq!(a.args[1].default, Some(ConstValue::String("1".into())));
        assert_eq!(
            Schema::from_sdl("type Query { a(n: Int = \"x\"): Int }").unwrap_err(),
            SchemaError::InvalidDefault(
                "the default value \"x\" of Query.a(n) is not a valid Int".into()
            )
        );
    }

    #[test]
    fn meta_fields_and_introspection_types_are_there() {
        let s = Schema::from_sdl(SDL).unwrap();
        let thing = s.type_named("Thing").unwrap();
        assert_eq!(s.field(thing, "__typename").unwrap().name, "__typename");
        assert!(
            s.field(thing, "__schema").is_none(),
            "only on the query root"
        );
        assert!(s.field(s.query, "__schema").is_some());
        assert_eq!(s.field(s.query, "__type").unwrap().args[0].name, "name");
        let ty = s.type_named("__Type").unwrap();
        assert!(s.is_introspection(ty));
        assert!(s.get(ty).field("ofType").is_some());
        assert!(!s.is_introspection(thing));
    }

    #[test]
    fn bad_sdl_is_refused_with_a_reason() {
        let err = |sdl: &str| Schema::from_sdl(sdl).unwrap_err();
        assert!(matches!(err("type Query {"), SchemaError::Parse(_)));
        assert_eq!(
            err("type Query { a: Nope }"),
            SchemaError::UnknownType {
                at: "Query.a".into(),
                name: "Nope".into()
            }
        );
        assert_eq!(
            err("type Query { a: Int } type Query { b: Int }"),
            SchemaError::Duplicate("Query".into())
        );
        assert_eq!(err("type Other { a: Int }"), SchemaError::NoQuery);
        assert!(matches!(
            err("type Query { a: In } input In { x: Int }"),
            SchemaError::WrongKind(_)
        ));
        assert!(matches!(
            err("type Query { a(x: Query): Int }"),
            SchemaError::WrongKind(_)
        ));
        assert!(matches!(
            err("type Query { a: U } union U = Query | Int"),
            SchemaError::WrongKind(_)
        ));
        assert_eq!(
            err("interface I { id: ID! } type Query implements I { a: Int }"),
            SchemaError::MissingInterfaceField {
                object: "Query".into(),
                interface: "I".into(),
                field: "id".into()
            }
        );
    }
}
