//! Persisted documents: SHA-256 document ids, Apollo APQ's hash check, manifests (the
//! Apollo persisted-query manifest and Relay's id-to-text map), `documentId` forms, and
//! the prepared-document cache every request goes through, so a persisted request is
//! hash, look up, execute: no parsing, no validation.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use async_graphql_parser::{parse_query, Error as ParseError};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::limits::{check_cost, check_document, check_nesting, LimitError, Limits};
use crate::plan::{plan, Plan};
use crate::schema::Schema;
use crate::validate::{source, validate, ValidationError};

/// A document's SHA-256.
pub type Hash = [u8; 32];

/// The SHA-256 of a document's text.
pub fn hash(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

/// How a request names a persisted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentRef {
    /// `sha256:<hex>`, or APQ's `sha256Hash`.
    Sha256(Hash),
    /// A manifest id.
    Id(String),
}

/// Reads a `documentId` (or Relay `doc_id`): `sha256:<64 hex>` or a manifest id.
pub fn parse_document_id(s: &str) -> DocumentRef {
    s.strip_prefix("sha256:")
        .and_then(parse_hex_hash)
        .map_or_else(|| DocumentRef::Id(s.to_owned()), DocumentRef::Sha256)
}

/// A 64-digit hex SHA-256.
pub fn parse_hex_hash(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    (s.len() == 64).then_some(())?;
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// APQ registration: the text must hash to the hash it is sent with.
pub fn apq_hash_matches(sha256_hex: &str, text: &str) -> bool {
    parse_hex_hash(sha256_hex).is_some_and(|h| h == hash(text))
}

/// Why a manifest cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON.
    #[error("the manifest is not JSON: {0}")]
    Json(String),
    /// JSON of another shape.
    #[error("the manifest is neither an Apollo persisted-query manifest nor a Relay id map: {0}")]
    Shape(String),
}

/// The (id, text) pairs of a manifest: Apollo's
/// `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id","body",..}]}`
/// or Relay's `{"<id>": "<text>"}`.
pub fn parse_manifest(json: &str) -> Result<Vec<(String, String)>, ManifestError> {
    let v: Json = serde_json::from_str(json).map_err(|e| ManifestError::Json(e.to_string()))?;
    let Json::Object(map) = v else {
        return Err(ManifestError::Shape("not an object".into()));
    };
    if map.get("format").and_then(Json::as_str) == Some("apollo-persisted-query-manifest") {
        if map.get("version").and_then(Json::as_u64) != Some(1) {
            return Err(ManifestError::Shape(
                "only version 1 of the Apollo format is known".into(),
            ));
        }
        let ops = map
            .get("operations")
            .and_then(Json::as_array)
            .ok_or_else(|| ManifestError::Shape("no operations array".into()))?;
        return ops
            .iter()
            .map(|op| {
                let id = op.get("id").and_then(Json::as_str);
                let body = op.get("body").and_then(Json::as_str);
                match (id, body) {
                    (Some(id), Some(body)) => Ok((id.to_owned(), body.to_owned())),
                    _ => Err(ManifestError::Shape(format!(
                        "an operation lacks id or body: {op}"
                    ))),
                }
            })
            .collect();
    }
    map.into_iter()
        .map(|(id, text)| match text {
            Json::String(t) => Ok((id, t)),
            other => Err(ManifestError::Shape(format!(
                "the value of {id} is not a string: {other}"
            ))),
        })
        .collect()
}

/// A document checked and planned once: every operation's plan, by name.
#[derive(Debug)]
pub struct Prepared {
    /// The document's hash.
    pub hash: Hash,
    /// Each operation's name (None for an anonymous one) and plan.
    pub plans: Vec<(Option<String>, Plan)>,
}

impl Prepared {
    /// The plan of `operation_name`, or of the only operation when no name is given.
    pub fn plan(&self, operation_name: Option<&str>) -> Option<&Plan> {
        match operation_name {
            Some(name) => self
                .plans
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .map(|(_, p)| p),
            None if self.plans.len() == 1 => Some(&self.plans[0].1),
            None => None,
        }
    }
}

/// Why a document cannot be prepared; maps to `GRAPHQL_PARSE_FAILED`,
/// `GRAPHQL_VALIDATION_FAILED` and `QUERY_TOO_COMPLEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareError {
    /// It does not parse.
    Parse(String),
    /// It breaks validation rules.
    Invalid(Vec<ValidationError>),
    /// It is over a limit.
    Limit(LimitError),
}

/// Checks the nesting of `text` before parsing, then parses, checks the limits,
/// validates (the text too, for what the parser loses or refuses without locations) and
/// plans it; every plan's cost is checked once, here.
pub fn prepare(schema: &Schema, text: &str, limits: &Limits) -> Result<Prepared, PrepareError> {
    // A valid document within the depth limit nests at most a brace per field level,
    // plus arguments' lists and objects: anything far past that is refused unparsed.
    check_nesting(text, limits.depth * 2 + 16).map_err(PrepareError::Limit)?;
    let doc = parse_query(text).map_err(|e| refused(text, &e))?;
    check_document(&doc, limits).map_err(PrepareError::Limit)?;
    // Duplicate fields of an object value are gone from `doc`: they are found in the text.
    let mut errors = source::duplicate_input_fields(text);
    errors.extend(validate(schema, &doc));
    if !errors.is_empty() {
        return Err(PrepareError::Invalid(errors));
    }
    let plans: Vec<(Option<String>, Plan)> = doc
        .operations
        .iter()
        .map(|(name, op)| {
            plan(schema, &doc, &op.node)
                .map(|p| (name.map(|n| n.to_string()), p))
                .map_err(|e| {
                    PrepareError::Invalid(vec![ValidationError {
                        message: e.to_string(),
                        locations: vec![op.pos],
                    }])
                })
        })
        .collect::<Result<_, _>>()?;
    for (_, p) in &plans {
        check_cost(p.cost, limits).map_err(PrepareError::Limit)?;
    }
    Ok(Prepared {
        hash: hash(text),
        plans,
    })
}

/// Why the parser refused `text`: the validation rules it enforces, with their locations
/// (see [`source::parser_refusal`]), or the syntax error.
fn refused(text: &str, e: &ParseError) -> PrepareError {
    source::parser_refusal(text, e)
        .map_or_else(|| PrepareError::Parse(e.to_string()), PrepareError::Invalid)
}

/// Prepared documents by hash, at most `capacity` of them, the least recently used
/// leaving first. One per shard, filled from the node-wide
/// [`crate::registry::Registry`] on a miss; documents from a manifest are pinned and
/// leave only when a new manifest replaces theirs.
/// `T` is what the caller keeps per document: a [`Prepared`], or one wrapped with what
/// the caller derives from it once.
#[derive(Debug)]
pub struct PlanCache<T = Prepared> {
    capacity: usize,
    entries: HashMap<Hash, (Rc<T>, u64)>,
    pinned: HashMap<Hash, Rc<T>>,
    /// Manifest ids to hashes.
    ids: HashMap<String, Hash>,
    /// (hash, stamp) in use order; stale stamps are skipped.
    order: VecDeque<(Hash, u64)>,
    clock: u64,
}

impl<T> PlanCache<T> {
    /// An empty cache for up to `capacity` unpinned documents.
    pub fn new(capacity: usize) -> PlanCache<T> {
        PlanCache {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            pinned: HashMap::new(),
            ids: HashMap::new(),
            order: VecDeque::new(),
            clock: 0,
        }
    }

    /// Pins a document from a manifest, reachable by its hash and, when given, by `id`.
    pub fn pin(&mut self, id: Option<&str>, hash: Hash, prepared: Rc<T>) {
        if let Some(id) = id {
            self.ids.insert(id.to_owned(), hash);
        }
        self.entries.remove(&hash);
        self.pinned.insert(hash, prepared);
    }

    /// Drops every pinned document and manifest id (a new manifest replaced theirs).
    pub fn unpin_all(&mut self) {
        self.pinned.clear();
        self.ids.clear();
    }

    /// The prepared document for a reference, if cached.
    pub fn get(&mut self, r: &DocumentRef) -> Option<Rc<T>> {
        let hash = match r {
            DocumentRef::Sha256(h) => *h,
            DocumentRef::Id(id) => *self.ids.get(id)?,
        };
        if let Some(p) = self.pinned.get(&hash) {
            return Some(Rc::clone(p));
        }
        self.clock += 1;
        let stamp = self.clock;
        let (p, used) = self.entries.get_mut(&hash)?;
        *used = stamp;
        let p = Rc::clone(p);
        self.order.push_back((hash, stamp));
        self.compact();
        Some(p)
    }

    /// Caches a prepared document under its hash.
    pub fn insert(&mut self, hash: Hash, prepared: Rc<T>) {
        if self.pinned.contains_key(&hash) {
            return;
        }
        self.clock += 1;
        self.entries.insert(hash, (prepared, self.clock));
        self.order.push_back((hash, self.clock));
        while self.entries.len() > self.capacity {
            let Some((h, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&h).is_some_and(|(_, used)| *used == stamp) {
                self.entries.remove(&h);
            }
        }
        self.compact();
    }

    /// Whether the document is cached (pinned or not).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.pinned.contains_key(hash) || self.entries.contains_key(hash)
    }

    /// Keeps the use log from growing past a few times the entries.
    fn compact(&mut self) {
        if self.order.len() > 4 * self.capacity + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(h, stamp)| entries.get(h).is_some_and(|(_, used)| used == stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "type Query { a: Int b(x: Int!): Int }";

    fn schema() -> Schema {
        Schema::from_sdl(SDL).unwrap()
    }

    #[test]
    fn hashes_and_document_ids() {
        // sha256("{ a }")
        let h = hash("{ a }");
        let hex = hex::encode(h);
        assert!(apq_hash_matches(&hex, "{ a }"));
        assert!(!apq_hash_matches(&hex, "{ a b(x: 1) }"));
        assert!(!apq_hash_matches("not hex", "{ a }"));
        assert_eq!(
            parse_document_id(&format!("sha256:{hex}")),
            DocumentRef::Sha256(h)
        );
        assert_eq!(
            parse_document_id("ChannelPage"),
            DocumentRef::Id("ChannelPage".into())
        );
        assert_eq!(
            parse_document_id("sha256:xyz"),
            DocumentRef::Id("sha256:xyz".into())
        );
        assert_eq!(
            hex::encode(hash("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn manifests_in_both_formats() {
        let apollo = r#"{"format":"apollo-persisted-query-manifest","version":1,
            "operations":[{"id":"abc","body":"{ a }","name":"A","type":"query"}]}"#;
        assert_eq!(
            parse_manifest(apollo).unwrap(),
            vec![("abc".into(), "{ a }".into())]
        );
        let relay = r#"{"q1": "{ a }", "q2": "query B { b(x: 1) }"}"#;
        assert_eq!(parse_manifest(relay).unwrap().len(), 2);
        assert!(matches!(
            parse_manifest("[1]"),
            Err(ManifestError::Shape(_))
        ));
        assert!(matches!(
            parse_manifest("{\"q\": 1}"),
            Err(ManifestError::Shape(_))
        ));
        assert!(matches!(
            parse_manifest("nope"),
            Err(ManifestError::Json(_))
        ));
        let wrong_version =
            r#"{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}"#;
        assert!(parse_manifest(wrong_version).is_err());
    }

    #[test]
    fn prepare_parses_validates_and_plans_every_operation() {
        let s = schema();
        let p = prepare(&s, "query A { a } query B { b(x: 1) }", &Limits::default()).unwrap();
        assert!(p.plan(Some("B")).is_some());
        assert!(p.plan(None).is_none(), "two operations need a name");
        assert!(p.plan(Some("C")).is_none());
        assert!(prepare(&s, "{ a }", &Limits::default())
            .unwrap()
            .plan(None)
            .is_some());
        assert!(matches!(
            prepare(&s, "{ a", &Limits::default()),
            Err(PrepareError::Parse(_))
        ));
        assert!(matches!(
            prepare(&s, "{ b }", &Limits::default()),
            Err(PrepareError::Invalid(_))
        ));
    }

    #[test]
    fn prepare_refuses_documents_over_a_limit_with_the_limit_named() {
        let s = schema();
        let tight = Limits {
            depth: 2,
            aliases: 1,
            root_fields: 2,
            complexity: 1,
        };
        let over = |text: &str| match prepare(&s, text, &tight) {
            Err(PrepareError::Limit(e)) => e,
            other => panic!("{text}: {other:?}"),
        };
        assert!(matches!(over("{ x: a y: a }"), LimitError::Aliases { .. }));
        assert!(matches!(
            over("{ a b(x: 1) c: a }"),
            LimitError::RootFields { .. }
        ));
        assert!(matches!(
            over("{ a b(x: 1) }"),
            LimitError::Complexity { .. }
        ));
        let deep = format!("{}{}", "{".repeat(50), "}".repeat(50));
        assert!(matches!(over(&deep), LimitError::Nesting(_)));
        assert!(prepare(&s, "{ a }", &tight).is_ok());
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_and_pinned_ones() {
        let s = schema();
        let mut c = PlanCache::new(2);
        let docs: Vec<Rc<Prepared>> = ["{ a }", "{ b(x: 1) }", "{ b(x: 2) }"]
            .iter()
            .map(|t| Rc::new(prepare(&s, t, &Limits::default()).unwrap()))
            .collect();
        c.insert(docs[0].hash, Rc::clone(&docs[0]));
        c.insert(docs[1].hash, Rc::clone(&docs[1]));
        // Using the first makes the second the least recently used.
        assert!(c.get(&DocumentRef::Sha256(docs[0].hash)).is_some());
        c.insert(docs[2].hash, Rc::clone(&docs[2]));
        assert!(c.contains(&docs[0].hash));
        assert!(!c.contains(&docs[1].hash));
        assert!(c.contains(&docs[2].hash));
        // Pinned documents stay and answer to their manifest id.
        let pinned = Rc::new(prepare(&s, "query P { a }", &Limits::default()).unwrap());
        c.pin(Some("P1"), pinned.hash, Rc::clone(&pinned));
        for _ in 0..10 {
            let d = Rc::new(prepare(&s, "{ b(x: 3) }", &Limits::default()).unwrap());
            c.insert(d.hash, d);
        }
        assert!(Rc::ptr_eq(
            &c.get(&DocumentRef::Id("P1".into())).unwrap(),
            &pinned
        ));
        assert!(c.get(&DocumentRef::Id("nope".into())).is_none());
        c.unpin_all();
        assert!(c.get(&DocumentRef::Id("P1".into())).is_none());
        assert!(!c.contains(&pinned.hash));
        // Many lookups do not grow the use log without bound.
        for _ in 0..1000 {
            c.get(&DocumentRef::Sha256(docs[2].hash));
        }
        assert!(c.order.len() <= 4 * 2 + 16 + 1);
    }
}
