//! Rules checked on the document's text, for what the parser loses, or refuses without
//! saying where:
//!
//! - 5.6.3 Input Object Field Uniqueness: the parser keeps the last of two equal keys of
//!   an object value, so duplicates are found here, before they are lost
//!   ([`duplicate_input_fields`]);
//! - 5.1.1 Executable Definitions, 5.2.1.1 Operation Name Uniqueness, 5.2.2.1 Lone
//!   Anonymous Operation and 5.5.1.1 Fragment Name Uniqueness: the parser refuses such a
//!   document; [`parser_refusal`] tells these refusals from syntax errors and reports
//!   them with graphql-js's messages and locations.
//!
//! Each is one pass of the lexer (`lex`) over the text, linear in its length.

use std::collections::hash_map::{Entry, HashMap};
use std::ops::Range;

use async_graphql_parser::{parse_query, parse_schema, Error as ParseError, Pos};

use super::lex::{Kind, Lexer, Token};
use super::ValidationError;

/// 5.6.3 Input Object Field Uniqueness: each object value in `text` (in an argument, a
/// list, another object, a directive's argument or a default value) names each of its
/// fields once. One error per repeated name, at the first and the repeated field, as
/// graphql-js reports it.
pub fn duplicate_input_fields(text: &str) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut open: Vec<Open<'_>> = Vec::new();
    let mut prev: Option<Token<'_>> = None;
    for t in Lexer::new(text) {
        match t.text {
            _ if t.kind != Kind::Punct => {}
            "{" if starts_value(prev.as_ref(), open.last()) => {
                open.push(Open::Object(HashMap::new()));
            }
            "{" => open.push(Open::Block),
            "[" => open.push(Open::List),
            "(" => open.push(Open::Parens),
            "}" | "]" | ")" => {
                open.pop();
            }
            ":" => {
                let name = prev.filter(|p| p.kind == Kind::Name);
                if let (Some(Open::Object(fields)), Some(name)) = (open.last_mut(), name) {
                    errors.extend(repeated(fields, name, "input field"));
                }
            }
            _ => {}
        }
        prev = Some(t);
    }
    errors
}

/// What a bracket opened.
enum Open<'a> {
    /// A selection set, or the body of a type system definition.
    Block,
    /// An object value, with its fields so far.
    Object(HashMap<&'a str, Pos>),
    /// A list value, or a list type.
    List,
    /// Arguments, or variable definitions.
    Parens,
}

/// Whether a `{` after `prev`, inside `open`, starts an object value: it does after the
/// `:` of an argument, an object field or a variable, the `=` of a default value, and
/// inside a list. (Anywhere else in a document that parses it opens a selection set or
/// a definition's body.)
fn starts_value(prev: Option<&Token<'_>>, open: Option<&Open<'_>>) -> bool {
    matches!(open, Some(Open::List)) || prev.is_some_and(|p| p.is(":") || p.is("="))
}

/// Notes `name` among `seen`; the error when it was there already.
fn repeated<'a>(
    seen: &mut HashMap<&'a str, Pos>,
    name: Token<'a>,
    what: &str,
) -> Option<ValidationError> {
    match seen.entry(name.text) {
        Entry::Occupied(first) => Some(ValidationError {
            message: format!("There can be only one {what} named \"{}\".", name.text),
            locations: vec![*first.get(), name.pos],
        }),
        Entry::Vacant(v) => {
            v.insert(name.pos);
            None
        }
    }
}

/// When `parse_query` refused `text` with `error`: the violations of 5.1.1, 5.2.1.1,
/// 5.2.2.1 and 5.5.1.1 that made it refuse (with those of 5.6.3 in the same text), as
/// graphql-js reports them. None when the refusal stands as a parse error: a syntax
/// error, or a text this pass does not split into definitions.
///
/// A syntax error is the parser's word for a type system definition too; the text is
/// then taken as such only when its executable definitions parse on their own, and its
/// other definitions parse as a schema.
pub fn parser_refusal(text: &str, error: &ParseError) -> Option<Vec<ValidationError>> {
    let defs = match error {
        ParseError::Syntax { .. } => definitions(text).filter(|d| parse_apart(text, d))?,
        ParseError::MultipleOperations { .. }
        | ParseError::OperationDuplicated { .. }
        | ParseError::FragmentDuplicated { .. } => definitions(text)?,
        _ => return None,
    };
    // graphql-js reports 5.1.1 for the whole document first, then the others in
    // document order.
    let mut errors: Vec<ValidationError> = defs.iter().filter_map(not_executable).collect();
    let mut in_order = duplicate_input_fields(text);
    in_order.extend(unique_names(&defs, DefKind::Operation, "operation"));
    in_order.extend(unique_names(&defs, DefKind::Fragment, "fragment"));
    in_order.extend(lone_anonymous_operation(&defs));
    in_order.sort_by_key(|e| e.locations.last().copied());
    errors.extend(in_order);
    (!errors.is_empty()).then_some(errors)
}

/// 5.1.1 Executable Definitions, for one definition.
fn not_executable(d: &Definition<'_>) -> Option<ValidationError> {
    let what = match (d.kind, d.name) {
        (DefKind::Operation | DefKind::Fragment, _) => return None,
        (DefKind::Schema, _) | (DefKind::TypeSystem, None) => "schema".to_owned(),
        (DefKind::TypeSystem, Some(name)) => format!("\"{}\"", name.text),
    };
    Some(ValidationError {
        message: format!("The {what} definition is not executable."),
        locations: vec![d.start],
    })
}

/// 5.2.1.1 Operation Name Uniqueness and 5.5.1.1 Fragment Name Uniqueness: one error per
/// repeated name, at the first and the repeated name.
fn unique_names(defs: &[Definition<'_>], kind: DefKind, what: &str) -> Vec<ValidationError> {
    let mut seen = HashMap::new();
    defs.iter()
        .filter(|d| d.kind == kind)
        .filter_map(|d| d.name)
        .filter_map(|name| repeated(&mut seen, name, what))
        .collect()
}

/// 5.2.2.1 Lone Anonymous Operation: with more than one operation, an error at each
/// anonymous one.
fn lone_anonymous_operation(defs: &[Definition<'_>]) -> Vec<ValidationError> {
    let operations = defs.iter().filter(|d| d.kind == DefKind::Operation);
    if operations.clone().count() < 2 {
        return Vec::new();
    }
    operations
        .filter(|d| d.name.is_none())
        .map(|d| ValidationError {
            message: "This anonymous operation must be the only defined operation.".into(),
            locations: vec![d.start],
        })
        .collect()
}

/// Whether the executable definitions, on their own, parse as a document (refused at
/// most for the rules checked here, or for having no operation), and the others parse
/// as a schema (refused at most for its roots). False when all are executable: the
/// syntax error is theirs.
fn parse_apart(text: &str, defs: &[Definition<'_>]) -> bool {
    let (executable, other): (Vec<_>, Vec<_>) = defs.iter().partition(|d| d.is_executable());
    let joined = |ds: &[&Definition<'_>]| -> String {
        let parts: Vec<&str> = ds.iter().map(|d| &text[d.span.clone()]).collect();
        parts.join("\n")
    };
    let executable_ok = executable.is_empty()
        || match parse_query(joined(&executable)) {
            Ok(_) => true,
            Err(e) => matches!(
                e,
                ParseError::MultipleOperations { .. }
                    | ParseError::OperationDuplicated { .. }
                    | ParseError::FragmentDuplicated { .. }
                    | ParseError::MissingOperation
            ),
        };
    let other_ok = match parse_schema(joined(&other)) {
        Ok(_) => true,
        Err(e) => matches!(
            e,
            ParseError::MultipleRoots { .. } | ParseError::MissingQueryRoot { .. }
        ),
    };
    !other.is_empty() && executable_ok && other_ok
}

/// What a top-level definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefKind {
    /// An operation, the shorthand `{ … }` included.
    Operation,
    /// A fragment.
    Fragment,
    /// `schema` or `extend schema`.
    Schema,
    /// Any other type system definition or extension.
    TypeSystem,
}

/// Whether a definition may have a body in braces, or has had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// It takes none (`scalar`, `union`, `directive`): a `{` after it is a query.
    None,
    /// It may have one.
    Allowed,
    /// It has had it; it ends there.
    Done,
}

/// What a definition waits for at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing in particular: a keyword here starts the next definition.
    Nothing,
    /// Its own name (after its keyword, or `directive @`), which an operation may omit.
    OwnName {
        /// An operation's.
        optional: bool,
    },
    /// Some other name (after `on`, `implements`, `@`, `|`, `&`, `=`).
    Name,
    /// The keyword of what `extend` extends.
    Extended,
    /// The `@` of `directive @name`.
    At,
}

/// A top-level definition as the text shows it.
#[derive(Debug, Clone)]
struct Definition<'a> {
    kind: DefKind,
    /// Where it starts: its description, `extend`, its keyword, or the `{` of a shorthand
    /// query.
    start: Pos,
    /// Its name and where that is (for `directive @d`, `d`).
    name: Option<Token<'a>>,
    /// Its bytes in the text.
    span: Range<usize>,
    body: Body,
    expect: Expect,
}

impl Definition<'_> {
    fn is_executable(&self) -> bool {
        matches!(self.kind, DefKind::Operation | DefKind::Fragment)
    }

    /// Whether it may end here: it waits for nothing, and an executable one has had its
    /// selection set.
    fn complete(&self) -> bool {
        self.expect == Expect::Nothing && (self.body == Body::Done || !self.is_executable())
    }

    /// Takes the keyword after `extend`.
    fn extends(&mut self, keyword: &str) -> Option<()> {
        let (kind, body, expect) = definition_keyword(keyword)?;
        if kind == DefKind::Operation || kind == DefKind::Fragment {
            return None;
        }
        if keyword == "extend" || keyword == "directive" {
            return None;
        }
        (self.kind, self.body, self.expect) = (kind, body, expect);
        Some(())
    }
}

/// What the keyword starting a definition makes of it.
fn definition_keyword(word: &str) -> Option<(DefKind, Body, Expect)> {
    let own_name = Expect::OwnName { optional: false };
    Some(match word {
        "query" | "mutation" | "subscription" => (
            DefKind::Operation,
            Body::Allowed,
            Expect::OwnName { optional: true },
        ),
        "fragment" => (DefKind::Fragment, Body::Allowed, own_name),
        "schema" => (DefKind::Schema, Body::Allowed, Expect::Nothing),
        "type" | "interface" | "enum" | "input" => (DefKind::TypeSystem, Body::Allowed, own_name),
        "scalar" | "union" => (DefKind::TypeSystem, Body::None, own_name),
        "directive" => (DefKind::TypeSystem, Body::None, Expect::At),
        "extend" => (DefKind::TypeSystem, Body::None, Expect::Extended),
        _ => return None,
    })
}

/// The top-level definitions of `text`, or None where it does not split into
/// definitions as GraphQL writes them (a syntax error, which the parser reports).
fn definitions(text: &str) -> Option<Vec<Definition<'_>>> {
    let mut s = Splitter::default();
    for t in Lexer::new(text) {
        s.token(t)?;
    }
    s.finish()
}

/// Splits a text into definitions, token by token: the brackets' depth, and at depth 0
/// what each token is to the definition under way.
#[derive(Default)]
struct Splitter<'a> {
    done: Vec<Definition<'a>>,
    current: Option<Definition<'a>>,
    /// A description waiting for its definition.
    description: Option<Token<'a>>,
    depth: usize,
}

impl<'a> Splitter<'a> {
    fn token(&mut self, t: Token<'a>) -> Option<()> {
        match t.kind {
            Kind::Invalid => None,
            _ if self.depth > 0 => self.nested(t),
            Kind::Name => self.name(t),
            Kind::Punct => self.punct(t),
            Kind::String if self.description.is_none() => {
                self.close()?;
                self.description = Some(t);
                Some(())
            }
            Kind::String | Kind::Number => None,
        }
    }

    /// A token inside brackets: it belongs to the definition under way.
    fn nested(&mut self, t: Token<'a>) -> Option<()> {
        if t.kind == Kind::Punct {
            match t.text {
                "{" | "[" | "(" => self.depth += 1,
                "}" | "]" | ")" => self.depth -= 1,
                _ => {}
            }
        }
        self.current.as_mut()?.span.end = t.end();
        Some(())
    }

    /// A name at the top level: a name the definition waits for, a keyword starting the
    /// next one, or `on`, `implements`, `repeatable` of this one.
    fn name(&mut self, t: Token<'a>) -> Option<()> {
        let Some(cur) = self.current.as_mut() else {
            return self.start(t);
        };
        match cur.expect {
            Expect::OwnName { .. } => (cur.name, cur.expect) = (Some(t), Expect::Nothing),
            Expect::Name => cur.expect = Expect::Nothing,
            Expect::Extended => cur.extends(t.text)?,
            Expect::At => return None,
            Expect::Nothing if definition_keyword(t.text).is_some() => return self.start(t),
            Expect::Nothing if cur.body == Body::Done => return None,
            Expect::Nothing if matches!(t.text, "on" | "implements") => cur.expect = Expect::Name,
            Expect::Nothing => {}
        }
        cur.span.end = t.end();
        Some(())
    }

    /// Starts a definition at its keyword (after its description, if any).
    fn start(&mut self, keyword: Token<'a>) -> Option<()> {
        self.close()?;
        let (kind, body, expect) = definition_keyword(keyword.text)?;
        let described = self.description.take();
        let describable = matches!(kind, DefKind::Schema | DefKind::TypeSystem);
        if described.is_some() && (!describable || keyword.text == "extend") {
            return None;
        }
        let first = described.unwrap_or(keyword);
        self.current = Some(Definition {
            kind,
            start: first.pos,
            name: None,
            span: first.start..keyword.end(),
            body,
            expect,
        });
        Some(())
    }

    /// A punctuator at the top level.
    fn punct(&mut self, t: Token<'a>) -> Option<()> {
        if t.is("{") && !self.takes_body() {
            return self.shorthand_query(t);
        }
        let cur = self.current.as_mut().filter(|c| c.body != Body::Done)?;
        let optional = Expect::OwnName { optional: true };
        match (t.text, cur.expect) {
            ("{", _) => (cur.body, cur.expect) = (Body::Done, Expect::Nothing),
            ("(", Expect::Nothing) => {}
            ("(", e) if e == optional => cur.expect = Expect::Nothing,
            ("@", Expect::At) => cur.expect = Expect::OwnName { optional: false },
            ("@", Expect::Nothing) => cur.expect = Expect::Name,
            ("@", e) if e == optional => cur.expect = Expect::Name,
            ("|" | "&" | "=", Expect::Nothing | Expect::Name) => cur.expect = Expect::Name,
            _ => return None,
        }
        if t.is("{") || t.is("(") {
            self.depth = 1;
        }
        cur.span.end = t.end();
        Some(())
    }

    /// Whether a `{` here is the body of the definition under way.
    fn takes_body(&self) -> bool {
        self.description.is_none()
            && self.current.as_ref().is_some_and(|c| {
                c.body == Body::Allowed
                    && matches!(
                        c.expect,
                        Expect::Nothing | Expect::OwnName { optional: true }
                    )
            })
    }

    /// A `{` starting a query in shorthand.
    fn shorthand_query(&mut self, t: Token<'a>) -> Option<()> {
        self.close()?;
        if self.description.is_some() {
            return None;
        }
        self.current = Some(Definition {
            kind: DefKind::Operation,
            start: t.pos,
            name: None,
            span: t.start..t.end(),
            body: Body::Done,
            expect: Expect::Nothing,
        });
        self.depth = 1;
        Some(())
    }

    /// Ends the definition under way, if it may end here.
    fn close(&mut self) -> Option<()> {
        if let Some(d) = self.current.take() {
            d.complete().then_some(())?;
            self.done.push(d);
        }
        Some(())
    }

    /// The definitions, if the text ended where one may.
    fn finish(mut self) -> Option<Vec<Definition<'a>>> {
        (self.depth == 0 && self.description.is_none()).then_some(())?;
        self.close()?;
        (!self.done.is_empty()).then_some(self.done)
    }
}

#[cfg(test)]
mod tests;
