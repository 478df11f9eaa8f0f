//! Documents: the shard's cache of prepared documents, filled from the node-wide
//! registry of persisted documents (`Node::persisted`) on a miss, and how a request
//! names its document (a manifest id, a `sha256:` id, an APQ hash, or its text).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use graphql_exec::limits::Limits;
use graphql_exec::persisted::{
    self, apq_hash_matches, parse_document_id, parse_hex_hash, DocumentRef, PlanCache,
    PrepareError, Prepared,
};
use graphql_exec::plan::Plan;
use graphql_exec::registry::Registered;
use serde_json::json;

use super::request::GraphQlRequest;
use super::service::{one_error, Kind, Refusal};
use crate::domain::plan_info::{op_info, OpInfo};
use crate::domain::Domain;
use crate::shard::Shard;

/// A prepared document with what the service derives from each of its operations.
#[derive(Debug)]
pub struct Doc {
    prepared: Prepared,
    info: Vec<OpInfo>,
    /// The node-wide registry's entry of a registered document, marked on every use so
    /// the registry keeps what any shard uses; `None` for a manifest document.
    registered: Option<Arc<Registered>>,
}

impl Doc {
    fn new(domain: &Domain, prepared: Prepared, registered: Option<Arc<Registered>>) -> Doc {
        let info = prepared
            .plans
            .iter()
            .map(|(_, p)| op_info(&domain.schema, &domain.cache_hints, p))
            .collect();
        Doc {
            prepared,
            info,
            registered,
        }
    }

    /// The plan of the operation at `index`.
    pub fn plan_at(&self, index: usize) -> &Plan {
        &self.prepared.plans[index].1
    }

    /// The name of the operation at `index` (None for an anonymous one).
    pub fn name_at(&self, index: usize) -> Option<&str> {
        self.prepared.plans[index].0.as_deref()
    }

    /// What the service derives from the operation at `index`.
    pub fn info_at(&self, index: usize) -> OpInfo {
        self.info[index]
    }

    /// The index of the operation `name` (or the only one).
    pub fn operation_index(&self, name: Option<&str>) -> Option<usize> {
        match name {
            Some(n) => self
                .prepared
                .plans
                .iter()
                .position(|(op, _)| op.as_deref() == Some(n)),
            None if self.prepared.plans.len() == 1 => Some(0),
            None => None,
        }
    }
}

/// One shard's GraphQL state: its plan cache, filled from the node-wide registry of
/// persisted documents (`Node::persisted`) on a miss.
#[derive(Debug)]
pub struct Documents {
    cache: RefCell<PlanCache<Doc>>,
    /// Documents sent as text, by their text: a direct-mapped memo in front of the plan
    /// cache, so that a text client's repeat skips the SHA-256 of its text (about 7,000
    /// instructions for a 200-byte mutation) and the plan cache's lookup.
    texts: RefCell<Box<[Option<Remembered>]>>,
    /// Where a text goes in `texts` (seeded per process: texts chosen to collide only
    /// make each other miss).
    text_slot: foldhash::fast::RandomState,
    /// The registry's manifest generation the pinned documents come from.
    generation: Cell<u64>,
    limits: Limits,
}

/// A text and its document, in the memo.
type Remembered = (Box<str>, Rc<Doc>);

/// Slots of a shard's memo of texts.
const TEXT_MEMO: usize = 64;

/// The longest text the memo keeps (longer ones are found by their hash).
const TEXT_MEMO_MAX: usize = 4096;

impl Documents {
    /// The shard's state, empty: documents are prepared on their first use here.
    pub fn new(shard_node: &crate::node::Node) -> Documents {
        let config = &shard_node.config;
        Documents {
            cache: RefCell::new(PlanCache::new(config.plan_cache)),
            texts: RefCell::new(vec![None; TEXT_MEMO].into_boxed_slice()),
            text_slot: foldhash::fast::RandomState::default(),
            generation: Cell::new(shard_node.persisted.generation()),
            limits: config.graphql_limits(),
        }
    }

    /// The cached document for `r`, or the registry's prepared and cached now; `None`
    /// when neither has it. A plan-cache hit takes no lock.
    fn find(&self, shard: &Shard, r: &DocumentRef) -> Result<Option<Rc<Doc>>, Refusal> {
        let registry = &shard.node.persisted;
        self.follow_manifest(registry);
        if let Some(doc) = self.cache.borrow_mut().get(r) {
            if let Some(entry) = &doc.registered {
                entry.touch(registry);
            }
            return Ok(Some(doc));
        }
        let Some(found) = registry.find(r) else {
            return Ok(None);
        };
        let mut cache = self.cache.borrow_mut();
        if let Some(doc) = cache.get(&DocumentRef::Sha256(found.hash)) {
            // A manifest document already pinned by its hash, now asked for by its id.
            if let DocumentRef::Id(id) = r {
                cache.pin(Some(id), found.hash, Rc::clone(&doc));
            }
            return Ok(Some(doc));
        }
        let prepared = persisted::prepare(&shard.node.domain.schema, &found.text, &self.limits)
            .map_err(prepare_error)?;
        let manifest = found.registered.is_none();
        let doc = Rc::new(Doc::new(&shard.node.domain, prepared, found.registered));
        if manifest {
            let id = match r {
                DocumentRef::Id(id) => Some(id.as_str()),
                DocumentRef::Sha256(_) => None,
            };
            cache.pin(id, found.hash, Rc::clone(&doc));
        } else {
            cache.insert(found.hash, Rc::clone(&doc));
        }
        Ok(Some(doc))
    }

    /// A manifest reloaded since the shard last looked: its pinned documents (and the
    /// memo of texts, which may hold one the new manifest dropped) go.
    fn follow_manifest(&self, registry: &graphql_exec::registry::Registry) {
        let generation = registry.generation();
        if generation != self.generation.get() {
            self.cache.borrow_mut().unpin_all();
            self.texts.borrow_mut().fill(None);
            self.generation.set(generation);
        }
    }

    /// The slot of `text` in the memo, if the memo keeps texts that long.
    fn text_slot(&self, text: &str) -> Option<usize> {
        use std::hash::BuildHasher as _;
        // The remainder is below TEXT_MEMO, so it fits a usize.
        (text.len() <= TEXT_MEMO_MAX)
            .then(|| (self.text_slot.hash_one(text) % TEXT_MEMO as u64) as usize)
    }

    /// The document sent before as `text`, from the memo.
    fn remembered(&self, shard: &Shard, text: &str) -> Option<Rc<Doc>> {
        let slot = self.text_slot(text)?;
        self.follow_manifest(&shard.node.persisted);
        let texts = self.texts.borrow();
        let (kept, doc) = texts[slot].as_ref()?;
        if **kept != *text {
            return None;
        }
        if let Some(entry) = &doc.registered {
            entry.touch(&shard.node.persisted);
        }
        Some(Rc::clone(doc))
    }

    /// Remembers `doc` as the document of `text`.
    fn remember(&self, text: &str, doc: &Rc<Doc>) {
        if let Some(slot) = self.text_slot(text) {
            self.texts.borrow_mut()[slot] = Some((text.into(), Rc::clone(doc)));
        }
    }
}

/// The request's document from the cache, or prepared now (and cached).
pub fn document(shard: &Shard, req: &GraphQlRequest<'_>) -> Result<Rc<Doc>, Refusal> {
    let trusted_only = shard.node.config.trusted_documents;
    let state = &shard.graphql;
    let not_found = || {
        Refusal::new(
            Kind::PersistedNotFound,
            one_error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"),
        )
    };
    if let Some(id) = &req.document_id {
        let r = parse_document_id(id);
        return state.find(shard, &r)?.ok_or_else(|| {
            Refusal::graphql(one_error(
                "PERSISTED_QUERY_NOT_FOUND",
                "no persisted document has this id",
            ))
        });
    }
    match (&req.apq_hash, &req.query) {
        (Some(h), None) => {
            let hash = parse_hex_hash(h).ok_or_else(not_found)?;
            state
                .find(shard, &DocumentRef::Sha256(hash))?
                .ok_or_else(not_found)
        }
        (Some(h), Some(text)) => {
            if !apq_hash_matches(h, text) {
                return Err(Refusal::bad_request(
                    "BAD_REQUEST",
                    "provided sha does not match query",
                ));
            }
            text_document(shard, text, trusted_only)
        }
        (None, Some(text)) => text_document(shard, text, trusted_only),
        (None, None) => Err(Refusal::bad_request(
            "BAD_REQUEST",
            "send `query`, `documentId` or an APQ hash",
        )),
    }
}

/// A document sent as text: found by the hash of its text (so text clients skip the
/// parse too after the first time), or prepared and registered node-wide, so a GET by
/// its hash works on every shard at once.
fn text_document(shard: &Shard, text: &str, trusted_only: bool) -> Result<Rc<Doc>, Refusal> {
    let state = &shard.graphql;
    if let Some(doc) = state.remembered(shard, text) {
        return Ok(doc);
    }
    let hash = persisted::hash(text);
    if let Some(doc) = state.find(shard, &DocumentRef::Sha256(hash))? {
        state.remember(text, &doc);
        return Ok(doc);
    }
    if trusted_only {
        return Err(Refusal::bad_request(
            "PERSISTED_QUERY_ID_REQUIRED",
            "only persisted operations run here: send a documentId",
        ));
    }
    let prepared = persisted::prepare(&shard.node.domain.schema, text, &state.limits)
        .map_err(prepare_error)?;
    let registered = shard.node.persisted.register(text);
    let doc = Rc::new(Doc::new(&shard.node.domain, prepared, registered));
    state.cache.borrow_mut().insert(hash, Rc::clone(&doc));
    state.remember(text, &doc);
    Ok(doc)
}

/// A document another node registered (by APQ), whose text came from Redis (checked
/// against its hash by the caller): registered here as if sent as text.
pub fn adopt(shard: &Shard, text: &str) -> Result<(), Refusal> {
    text_document(shard, text, shard.node.config.trusted_documents).map(|_| ())
}

fn prepare_error(e: PrepareError) -> Refusal {
    match e {
        PrepareError::Parse(message) => {
            Refusal::graphql(one_error("GRAPHQL_PARSE_FAILED", &message))
        }
        PrepareError::Invalid(errors) => Refusal::graphql(serde_json::Value::Array(
            errors
                .into_iter()
                .map(|e| {
                    let locations: Vec<_> = e
                        .locations
                        .iter()
                        .map(|p| json!({"line": p.line, "column": p.column}))
                        .collect();
                    json!({
                        "message": e.message,
                        "locations": locations,
                        "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" }
                    })
                })
                .collect(),
        )),
        PrepareError::Limit(e) => Refusal::graphql(one_error("QUERY_TOO_COMPLEX", &e.to_string())),
    }
}
