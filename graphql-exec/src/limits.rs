//! Limits on what a document may ask for, each refused with `QUERY_TOO_COMPLEX` and a
//! message naming the limit: nesting (checked on the raw text in one linear pass before
//! parsing, so a hostile document costs no parse; the parser itself survived 20,000
//! levels on a 2 MiB stack in a probe), field depth, aliases, root fields and cost (from
//! the plan, computed once per document).

use std::collections::HashSet;

use async_graphql_parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The limits a server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest field nesting.
    pub depth: usize,
    /// Most aliased fields in a document.
    pub aliases: usize,
    /// Most root fields in an operation.
    pub root_fields: usize,
    /// Largest plan cost.
    pub complexity: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 15,
            aliases: 30,
            root_fields: 20,
            complexity: 10_000,
        }
    }
}

/// A limit a document is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Braces, brackets or parentheses nest deeper than any valid document within the
    /// depth limit could.
    #[error("the document nests deeper than {0} levels")]
    Nesting(usize),
    /// Fields nest too deep.
    #[error("the operation is {found} fields deep; the limit is {limit}")]
    Depth {
        /// How deep it is.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many aliases.
    #[error("the document has {found} aliases; the limit is {limit}")]
    Aliases {
        /// How many.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many root fields.
    #[error("the operation selects {found} root fields; the limit is {limit}")]
    RootFields {
        /// How many.
        found: usize,
        /// The limit.
        limit: usize,
    },
    /// The plan's cost is too high.
    #[error("the operation's cost is {found}; the limit is {limit}")]
    Complexity {
        /// The cost.
        found: u64,
        /// The limit.
        limit: u64,
    },
}

/// Refuses text whose `{`, `[` and `(` nest deeper than `max` (strings, block strings
/// and comments skipped), before the parser sees it.
pub fn check_nesting(text: &str, max: usize) -> Result<(), LimitError> {
    let b = text.as_bytes();
    let (mut i, mut depth) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(LimitError::Nesting(max));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Checks depth, aliases and root fields of a parsed document (fragments expanded,
/// each spread once per path).
pub fn check_document(doc: &ExecutableDocument, limits: &Limits) -> Result<(), LimitError> {
    let mut aliases = 0;
    let mut counted = HashSet::new();
    for (_, op) in doc.operations.iter() {
        let set = &op.node.selection_set.node;
        let roots = count_root_fields(doc, set, &mut HashSet::new());
        if roots > limits.root_fields {
            return Err(LimitError::RootFields {
                found: roots,
                limit: limits.root_fields,
            });
        }
        let depth = depth(doc, set, 0, limits.depth, &mut Vec::new());
        if depth > limits.depth {
            return Err(LimitError::Depth {
                found: depth,
                limit: limits.depth,
            });
        }
        aliases += count_aliases(doc, set, &mut counted);
    }
    if aliases > limits.aliases {
        return Err(LimitError::Aliases {
            found: aliases,
            limit: limits.aliases,
        });
    }
    Ok(())
}

/// Checks a plan's cost.
pub fn check_cost(cost: u64, limits: &Limits) -> Result<(), LimitError> {
    if cost > limits.complexity {
        return Err(LimitError::Complexity {
            found: cost,
            limit: limits.complexity,
        });
    }
    Ok(())
}

fn count_root_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    seen: &mut HashSet<&'a str>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(i) => {
                count_root_fields(doc, &i.node.selection_set.node, seen)
            }
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match doc.fragments.get(&s.node.fragment_name.node) {
                    Some(f) if seen.insert(name) => {
                        count_root_fields(doc, &f.node.selection_set.node, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

/// The deepest field nesting under `set` (stops counting past `limit`).
fn depth<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    at: usize,
    limit: usize,
    path: &mut Vec<&'a str>,
) -> usize {
    let mut deepest = at;
    for item in &set.items {
        if deepest > limit {
            break;
        }
        let d = match &item.node {
            Selection::Field(f) if f.node.selection_set.node.items.is_empty() => at + 1,
            Selection::Field(f) => depth(doc, &f.node.selection_set.node, at + 1, limit, path),
            Selection::InlineFragment(i) => depth(doc, &i.node.selection_set.node, at, limit, path),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match doc.fragments.get(&s.node.fragment_name.node) {
                    // A fragment already on the path is a cycle: validation reports it.
                    Some(f) if !path.contains(&name) => {
                        path.push(name);
                        let d = depth(doc, &f.node.selection_set.node, at, limit, path);
                        path.pop();
                        d
                    }
                    _ => at,
                }
            }
        };
        deepest = deepest.max(d);
    }
    deepest
}

fn count_aliases<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    counted: &mut HashSet<&'a str>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some())
                    + count_aliases(doc, &f.node.selection_set.node, counted)
            }
            Selection::InlineFragment(i) => count_aliases(doc, &i.node.selection_set.node, counted),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match doc.fragments.get(&s.node.fragment_name.node) {
                    Some(f) if counted.insert(name) => {
                        count_aliases(doc, &f.node.selection_set.node, counted)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql_parser::parse_query;

    fn check(query: &str, limits: Limits) -> Result<(), LimitError> {
        check_document(&parse_query(query).unwrap(), &limits)
    }

    #[test]
    fn hostile_nesting_is_refused_before_parsing() {
        let deep = format!("{}{}", "{ a ".repeat(100_000), "}".repeat(100_000));
        assert_eq!(check_nesting(&deep, 64), Err(LimitError::Nesting(64)));
        let deep_list = format!("{{ a(x: {}1{}) }}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(check_nesting(&deep_list, 64).is_err());
        // Braces inside strings and comments do not count.
        let text = "{ a(s: \"{{{{{{\", t: \"\"\"[[[[[[\"\"\") # ((((((((\n }";
        assert_eq!(check_nesting(text, 3), Ok(()));
        assert!(check_nesting("{ a { b { c } } }", 3).is_ok());
        assert!(check_nesting("{ a { b { c { d } } } }", 3).is_err());
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        let l = Limits {
            depth: 3,
            ..Limits::default()
        };
        assert!(check("{ a { b { c } } }", l).is_ok());
        assert_eq!(
            check("{ a { b { c { d } } } }", l),
            Err(LimitError::Depth { found: 4, limit: 3 })
        );
        assert!(check("{ a { ...F } } fragment F on T { b { c { d } } }", l).is_err());
        assert!(check("{ a { ... on T { b { c } } } }", l).is_ok());
    }

    #[test]
    fn aliases_and_root_fields_are_counted() {
        let l = Limits {
            aliases: 2,
            root_fields: 2,
            ..Limits::default()
        };
        assert!(check("{ x: a y: b }", l).is_ok());
        assert_eq!(
            check("{ x: a y: b z: c }", l),
            Err(LimitError::RootFields { found: 3, limit: 2 })
        );
        assert_eq!(
            check("{ a { x: b y: c z: d } }", l),
            Err(LimitError::Aliases { found: 3, limit: 2 })
        );
        assert!(
            check("{ ...R } fragment R on Q { a b c }", l).is_err(),
            "root fields through a fragment"
        );
        assert_eq!(
            check_cost(10_001, &Limits::default()),
            Err(LimitError::Complexity {
                found: 10_001,
                limit: 10_000
            })
        );
        assert!(check_cost(10_000, &Limits::default()).is_ok());
    }
}
