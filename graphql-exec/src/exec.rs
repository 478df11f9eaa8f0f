//! Execution: a plan run level by level, straight into JSON.
//!
//! Each level hands the resolver every parent object that needs a field at once
//! ([`Resolver::resolve`] takes a slice of parents), so a field is resolved once per
//! level and selection, never once per parent (no N+1, no dataloader timers). The
//! resolver is async, so a resolver that goes to its store suspends the operation, not
//! the thread; the batches of a level that await are awaited together (one allocation
//! for the level, none when a single batch awaits), so a page's loads take one round
//! trip per level, not one per batch. Results
//! land in a flat arena of compact nodes (breadth-first order is not output order), then
//! one depth-first pass writes the response with the plan's pre-escaped keys. Null
//! propagates from a non-null position to the nearest nullable parent, and every error
//! carries its path.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use async_graphql_parser::types::OperationType;
use async_graphql_value::{ConstValue, Name, Value};

use crate::coerce::{display, print_literal, value_from_literal};
use crate::intro::{self, Intro};
use crate::plan::{holds, Arg, Children, Plan, PlannedField, Selection};
use crate::schema::{Schema, TypeId, TypeRef};

/// A scalar or enum value, as a resolver returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// An `Int`.
    Int(i64),
    /// A `Float`.
    Float(f64),
    /// A `String`, `ID` or custom scalar rendered as a string.
    String(String),
    /// A `Boolean`.
    Boolean(bool),
    /// An enum value's name.
    Enum(&'static str),
    /// A JSON string already escaped into the response's text arena (see [`Out::text`]).
    Json {
        /// Where it starts in the arena.
        start: u32,
        /// Where it ends.
        end: u32,
    },
}

/// A field error: its message and, when the domain names one, its `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The message clients see.
    pub message: String,
    /// The `extensions.code`, e.g. `FORBIDDEN`.
    pub code: Option<&'static str>,
}

impl FieldError {
    /// An error with a code.
    pub fn new(code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            message: message.into(),
            code: Some(code),
        }
    }
}

impl From<String> for FieldError {
    fn from(message: String) -> FieldError {
        FieldError {
            message,
            code: None,
        }
    }
}

impl From<&str> for FieldError {
    fn from(message: &str) -> FieldError {
        message.to_owned().into()
    }
}

/// One field's value for one parent.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<O> {
    /// null.
    Null,
    /// A scalar or enum.
    Leaf(Leaf),
    /// An object, whose fields the next level resolves.
    Object(O),
    /// A list.
    List(Vec<Resolved<O>>),
    /// The field failed: null, with this error in `errors`.
    Error(FieldError),
}

impl<O> Resolved<O> {
    /// Moves the strings in the text arena this value points at by `by` (its strings
    /// were written to an arena of their own, then appended to another at `by`).
    fn shift_text(&mut self, by: u32) {
        match self {
            Resolved::Leaf(Leaf::Json { start, end }) => {
                *start += by;
                *end += by;
            }
            Resolved::List(items) => items.iter_mut().for_each(|i| i.shift_text(by)),
            _ => {}
        }
    }
}

/// A field's arguments for one request: constants from the plan (coerced when it was
/// made), the arguments with variables coerced for this request.
#[derive(Debug)]
pub struct Args<'a> {
    planned: &'a [(Name, Arg)],
    /// The values of the planned `Arg::Dynamic`s; one left out (an absent variable and
    /// no default) is not here.
    dynamic: Vec<(&'a Name, Cow<'a, ConstValue>)>,
}

impl Args<'_> {
    /// The argument called `name` (defaults included), if given.
    pub fn get(&self, name: &str) -> Option<&ConstValue> {
        match &self.planned.iter().find(|(n, _)| n.as_str() == name)?.1 {
            Arg::Const(c) => Some(c),
            Arg::Dynamic(_) => self
                .dynamic
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.as_ref()),
        }
    }
}

/// Where a resolver puts its values: one per parent, in order. Strings can be copied
/// into the response's text arena ([`Out::text`]), already escaped, so a string value
/// costs no allocation of its own.
#[derive(Debug)]
pub struct Out<'a, O> {
    values: &'a mut Vec<Resolved<O>>,
    text: &'a mut Vec<u8>,
}

/// Where an [`Out`] stood ([`Out::mark`]), to take back what was written after it.
#[derive(Debug, Clone, Copy)]
pub struct OutMark {
    values: usize,
    text: usize,
}

impl<O> Out<'_, O> {
    /// Where it stands now.
    pub fn mark(&self) -> OutMark {
        OutMark {
            values: self.values.len(),
            text: self.text.len(),
        }
    }

    /// Takes back every value and string written since `mark`.
    pub fn rewind(&mut self, mark: OutMark) {
        self.values.truncate(mark.values);
        self.text.truncate(mark.text);
    }

    /// Adds the value for the next parent.
    pub fn push(&mut self, value: Resolved<O>) {
        self.values.push(value);
    }

    /// A string value, escaped into the response's text arena (usable as a value or a
    /// list item).
    pub fn text(&mut self, s: &str) -> Resolved<O> {
        let start = self.text.len() as u32;
        write_str(self.text, s);
        Resolved::Leaf(Leaf::Json {
            start,
            end: self.text.len() as u32,
        })
    }

    /// A string value made of `parts` one after another (an id from a prefix and a
    /// number, say), escaped into the text arena with no allocation of its own.
    pub fn text_concat(&mut self, parts: &[&str]) -> Resolved<O> {
        let start = self.text.len() as u32;
        self.text.push(b'"');
        for p in parts {
            write_escaped(self.text, p);
        }
        self.text.push(b'"');
        Resolved::Leaf(Leaf::Json {
            start,
            end: self.text.len() as u32,
        })
    }

    /// How many values are in so far.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no value is in yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<O> Extend<Resolved<O>> for Out<'_, O> {
    fn extend<T: IntoIterator<Item = Resolved<O>>>(&mut self, iter: T) {
        self.values.extend(iter);
    }
}

impl<O: Clone> Out<'_, O> {
    /// Adds `value` for each of `n` parents.
    pub fn repeat(&mut self, value: &Resolved<O>, n: usize) {
        self.values.extend(std::iter::repeat_n(value, n).cloned());
    }
}

/// What the schema's user supplies: how to resolve a field for a batch of parents.
///
/// `resolve` is async so a resolver can await its store (a database round trip, a
/// cache), once per batch. Its future is not required to be `Send`: an operation runs
/// on the thread that started it (thread-per-core), hence the allowed lint.
#[allow(async_fn_in_trait)]
pub trait Resolver {
    /// The domain's object handle.
    type Object: Clone;

    /// Resolves `field` for every one of `parents` (all of type `field.parent`), pushing
    /// exactly one value per parent, in order, onto `out`. Called once per level,
    /// selection and field, with every parent of the batch; outside a mutation's root,
    /// the calls of one level run concurrently (on the caller's task), so a resolver
    /// must not hold a borrow of shared state across an await.
    async fn resolve(
        &self,
        field: &PlannedField,
        args: &Args<'_>,
        parents: &[Self::Object],
        out: &mut Out<'_, Self::Object>,
    );

    /// Resolves `field` for `parents` as [`Resolver::resolve`] would, if that needs no
    /// await (a scalar read from the parents' rows, say): true when done, false to have
    /// the batch awaited instead (pushing nothing then). The executor asks this first,
    /// so the common fields run as plain calls, not through a future.
    fn resolve_now(
        &self,
        _field: &PlannedField,
        _args: &Args<'_>,
        _parents: &[Self::Object],
        _out: &mut Out<'_, Self::Object>,
    ) -> bool {
        false
    }

    /// The concrete object type of an object met where an interface or union is expected.
    fn type_of(&self, object: &Self::Object) -> TypeId;
}

/// A node of the result arena.
#[derive(Debug)]
enum Node<'p> {
    Null,
    Leaf(Leaf),
    Object {
        selection: &'p Selection,
        type_id: TypeId,
        /// Child nodes, one per included field of `selection`, in order.
        first_child: u32,
    },
    List {
        first: u32,
        len: u32,
    },
}

#[derive(Debug)]
struct Slot<'p> {
    node: Node<'p>,
    parent: u32,
    /// The field's position among the parent's included fields, or the list index.
    index: u32,
    /// Whether null here must propagate to the parent.
    non_null: bool,
    /// Nulled by a non-null child that was null (the node keeps its shape for paths).
    nulled: bool,
}

const NO_PARENT: u32 = u32::MAX;

/// One response: `{"errors":[...],"data":{...}}` as bytes. Introspection fields are
/// answered by the engine; every other field by `resolver`, level by level: in each
/// level the fields that need no await are resolved first, then the batches that await
/// are awaited together (a level's loads are in flight at once), and the next level
/// starts when they are all done. Dropping the future stops the execution between two batches (or
/// inside one, where the resolver awaits): a caller bounds it with a timeout this way.
pub async fn execute<R: Resolver>(
    schema: &Schema,
    plan: &Plan,
    resolver: &R,
    root: R::Object,
    variables: &HashMap<Name, ConstValue>,
) -> Vec<u8> {
    let mut run = Run {
        schema,
        resolver,
        variables,
        // Sized for a page-sized response, so most requests never grow them.
        slots: Vec::with_capacity(1024),
        errors: Vec::new(),
        included: HashMap::default(),
        text: Vec::with_capacity(8192),
        values: Vec::new(),
        intro_values: Vec::new(),
        spare: Vec::new(),
    };
    run.slots.push(Slot {
        node: Node::Null,
        parent: NO_PARENT,
        index: 0,
        non_null: false,
        nulled: false,
    });
    let mut level: Vec<Batch<'_, R::Object>> = Vec::new();
    run.object(0, &plan.selection, plan.root, Item::User(root), &mut level);
    if plan.operation == OperationType::Mutation {
        // Root fields of a mutation run one after another, each with its whole
        // sub-selection, before the next one starts.
        let root = level.pop().expect("the root object was queued");
        for pos in 0..run.included(&plan.selection).len() {
            let mut next = Vec::new();
            run.batch(&root, Some(pos), &mut next, None).await;
            run.drain(next).await;
        }
    } else {
        run.drain(level).await;
    }
    run.propagate_nulls();
    run.write()
}

/// An object of the user's resolver or of introspection.
#[derive(Debug, Clone)]
enum Item<'s, O> {
    User(O),
    Intro(Intro<'s>),
}

/// The objects of a batch: the user's, or introspection's (never both).
#[derive(Debug)]
enum Objects<'s, O> {
    User(Vec<O>),
    Intro(Vec<Intro<'s>>),
}

/// Objects of one type needing one selection, gathered across a level.
#[derive(Debug)]
struct Batch<'p, O> {
    selection: &'p Selection,
    type_id: TypeId,
    /// Their nodes, in the order of `objects`.
    nodes: Vec<u32>,
    objects: Objects<'p, O>,
}

/// The values and strings one awaited field writes, apart from the others of its level.
type Scratch<O> = (Vec<Resolved<O>>, Vec<u8>);

/// A field of a level's batch whose resolver must await, waiting to be awaited with
/// the others of its level.
struct Waiting<'p, 'r> {
    /// The batch's place in its level.
    batch: usize,
    /// The field's place among the batch's included fields.
    pos: usize,
    field: &'p PlannedField,
    args: Args<'r>,
}

/// The fields of a selection this request includes.
#[derive(Debug, Clone)]
enum Included {
    /// All of them, in order.
    All(usize),
    /// These, in this order.
    Some(std::rc::Rc<[usize]>),
}

impl Included {
    fn len(&self) -> usize {
        match self {
            Included::All(n) => *n,
            Included::Some(v) => v.len(),
        }
    }

    fn get(&self, pos: usize) -> usize {
        match self {
            Included::All(_) => pos,
            Included::Some(v) => v[pos],
        }
    }
}

struct Run<'p, 'r, R: Resolver> {
    schema: &'p Schema,
    resolver: &'r R,
    variables: &'r HashMap<Name, ConstValue>,
    slots: Vec<Slot<'p>>,
    errors: Vec<(u32, FieldError)>,
    /// The included fields of each conditional selection, for this request's variables.
    included: HashMap<*const Selection, std::rc::Rc<[usize]>, foldhash::fast::FixedState>,
    /// Pre-escaped JSON strings the resolvers wrote ([`Out::text`]).
    text: Vec<u8>,
    /// Scratch: one field's values, reused across batches.
    values: Vec<Resolved<R::Object>>,
    intro_values: Vec<Resolved<Intro<'p>>>,
    /// Scratch: values of the fields a level awaits together, reused across levels.
    spare: Vec<Vec<Resolved<R::Object>>>,
}

impl<'p: 'r, 'r, R: Resolver> Run<'p, 'r, R> {
    fn included(&mut self, selection: &'p Selection) -> Included {
        if !selection.conditional {
            return Included::All(selection.fields.len());
        }
        let vars = self.variables;
        let list = self
            .included
            .entry(selection as *const Selection)
            .or_insert_with(|| {
                let get = |n: &Name| match vars.get(n) {
                    Some(ConstValue::Boolean(b)) => Some(*b),
                    _ => None,
                };
                let mut fields: Vec<usize> = selection
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| holds(&f.condition, get))
                    .map(|(i, _)| i)
                    .collect();
                // Only when a key's first occurrence is conditional: the first included
                // occurrence decides its place (CollectFields).
                if !selection.order.is_empty() {
                    fields.sort_by_key(|&i| selection.place(i, get));
                }
                fields.into()
            });
        Included::Some(std::rc::Rc::clone(list))
    }

    /// Makes node `at` an object of `type_id` and queues it for `selection`.
    fn object(
        &mut self,
        at: u32,
        selection: &'p Selection,
        type_id: TypeId,
        object: Item<'p, R::Object>,
        level: &mut Vec<Batch<'p, R::Object>>,
    ) {
        let fields = self.included(selection);
        let first_child = self.slots.len() as u32;
        for pos in 0..fields.len() {
            self.slots.push(Slot {
                node: Node::Null,
                parent: at,
                index: pos as u32,
                non_null: selection.fields[fields.get(pos)].ty.is_non_null(),
                nulled: false,
            });
        }
        self.slots[at as usize].node = Node::Object {
            selection,
            type_id,
            first_child,
        };
        let batch = match level
            .iter_mut()
            .find(|b| std::ptr::eq(b.selection, selection) && b.type_id == type_id)
        {
            Some(b) => b,
            None => {
                level.push(Batch {
                    selection,
                    type_id,
                    nodes: Vec::new(),
                    objects: match object {
                        Item::User(_) => Objects::User(Vec::new()),
                        Item::Intro(_) => Objects::Intro(Vec::new()),
                    },
                });
                level.last_mut().expect("just pushed")
            }
        };
        match (&mut batch.objects, object) {
            (Objects::User(v), Item::User(o)) => v.push(o),
            (Objects::Intro(v), Item::Intro(i)) => v.push(i),
            // A type is either introspection's or the user's.
            _ => return,
        }
        batch.nodes.push(at);
    }

    /// Resolves level after level until nothing is left. In each level, the fields
    /// that resolve without an await are placed first, then every field that awaits
    /// is awaited together with the others of its level ([`Run::settle`]).
    async fn drain(&mut self, mut level: Vec<Batch<'p, R::Object>>) {
        let mut waiting = Vec::new();
        while !level.is_empty() {
            let mut next = Vec::new();
            for (at, batch) in level.iter().enumerate() {
                self.batch(batch, None, &mut next, Some((at, &mut waiting)))
                    .await;
            }
            self.settle(&level, &mut waiting, &mut next).await;
            level = next;
        }
    }

    /// Awaits the resolver's futures for the `waiting` fields of `level` together
    /// (so a level's loads reach the store at once, not one round trip after another),
    /// each into values of its own, then places their values in order.
    async fn settle(
        &mut self,
        level: &[Batch<'p, R::Object>],
        waiting: &mut Vec<Waiting<'p, 'r>>,
        next: &mut Vec<Batch<'p, R::Object>>,
    ) {
        if waiting.len() <= 1 {
            if let Some(w) = waiting.pop() {
                let mut values = std::mem::take(&mut self.values);
                values.clear();
                let mut out = Out {
                    values: &mut values,
                    text: &mut self.text,
                };
                let batch = &level[w.batch];
                if let Objects::User(parents) = &batch.objects {
                    self.resolver
                        .resolve(w.field, &w.args, parents, &mut out)
                        .await;
                }
                self.place_values(batch, w.pos, w.field, &mut values, next);
                self.values = values;
            }
            return;
        }
        let mut outs: Vec<Scratch<R::Object>> = waiting
            .iter()
            .map(|_| (self.spare.pop().unwrap_or_default(), Vec::new()))
            .collect();
        let resolver = self.resolver;
        futures_util::future::join_all(waiting.iter().zip(outs.iter_mut()).map(
            |(w, (values, text))| async move {
                if let Objects::User(parents) = &level[w.batch].objects {
                    let mut out = Out { values, text };
                    resolver.resolve(w.field, &w.args, parents, &mut out).await;
                }
            },
        ))
        .await;
        for (w, (mut values, text)) in waiting.drain(..).zip(outs) {
            if !text.is_empty() {
                // Strings it wrote to an arena of its own move to the response's.
                let base = self.text.len() as u32;
                self.text.extend_from_slice(&text);
                for v in &mut values {
                    v.shift_text(base);
                }
            }
            self.place_values(&level[w.batch], w.pos, w.field, &mut values, next);
            values.clear();
            self.spare.push(values);
        }
    }

    /// Places the values a resolver gave for the included field at `pos` of `batch`,
    /// one per parent (filled with errors if it gave too few), emptying `values`.
    fn place_values(
        &mut self,
        batch: &Batch<'p, R::Object>,
        pos: usize,
        field: &'p PlannedField,
        values: &mut Vec<Resolved<R::Object>>,
        next: &mut Vec<Batch<'p, R::Object>>,
    ) {
        fill(values, batch.nodes.len(), field);
        for (k, value) in values.drain(..).enumerate() {
            if let Node::Object { first_child, .. } = self.slots[batch.nodes[k] as usize].node {
                self.place(
                    first_child + pos as u32,
                    value,
                    field,
                    &field.ty,
                    next,
                    &Item::User,
                );
            }
        }
    }

    /// Resolves the included fields of a batch (or only the one at `only`). A field
    /// that must await is awaited here, or, given `defer` (the batch's place in its
    /// level and the level's list), left in that list for [`Run::settle`].
    async fn batch(
        &mut self,
        batch: &Batch<'p, R::Object>,
        only: Option<usize>,
        next: &mut Vec<Batch<'p, R::Object>>,
        mut defer: Option<(usize, &mut Vec<Waiting<'p, 'r>>)>,
    ) {
        let fields = self.included(batch.selection);
        let n = batch.nodes.len();
        for pos in 0..fields.len() {
            if only.is_some_and(|o| o != pos) {
                continue;
            }
            let field: &'p PlannedField = &batch.selection.fields[fields.get(pos)];
            let at = |run: &Self, k: usize| match run.slots[batch.nodes[k] as usize].node {
                Node::Object { first_child, .. } => Some(first_child + pos as u32),
                _ => None,
            };
            if &*field.name == "__typename" {
                let start = self.text.len() as u32;
                write_str(&mut self.text, &self.schema.get(batch.type_id).name);
                let leaf = Leaf::Json {
                    start,
                    end: self.text.len() as u32,
                };
                for k in 0..n {
                    if let Some(a) = at(self, k) {
                        self.slots[a as usize].node = Node::Leaf(leaf.clone());
                    }
                }
                continue;
            }
            let args = match field_args(self.schema, self.variables, field) {
                Ok(args) => args,
                Err(e) => {
                    // CoerceArgumentValues failed: a field error for every parent.
                    for k in 0..n {
                        if let Some(a) = at(self, k) {
                            self.errors.push((a, e.clone()));
                        }
                    }
                    continue;
                }
            };
            let meta =
                field.parent == self.schema.query && matches!(&*field.name, "__schema" | "__type");
            match &batch.objects {
                Objects::User(parents) if !meta => {
                    let mut values = std::mem::take(&mut self.values);
                    values.clear();
                    let mut out = Out {
                        values: &mut values,
                        text: &mut self.text,
                    };
                    if !self.resolver.resolve_now(field, &args, parents, &mut out) {
                        if let Some((at, waiting)) = defer.as_mut() {
                            waiting.push(Waiting {
                                batch: *at,
                                pos,
                                field,
                                args,
                            });
                            self.values = values;
                            continue;
                        }
                        self.resolver.resolve(field, &args, parents, &mut out).await;
                    }
                    drop(args);
                    self.place_values(batch, pos, field, &mut values, next);
                    self.values = values;
                }
                objects => {
                    let mut values = std::mem::take(&mut self.intro_values);
                    values.clear();
                    for k in 0..n {
                        let parent = match objects {
                            Objects::Intro(v) => Some(v[k]),
                            Objects::User(_) => None,
                        };
                        values.push(intro::resolve(self.schema, field, &args, parent));
                    }
                    drop(args);
                    for (k, value) in values.drain(..).enumerate() {
                        if let Some(a) = at(self, k) {
                            self.place(a, value, field, &field.ty, next, &Item::Intro);
                        }
                    }
                    self.intro_values = values;
                }
            }
        }
    }

    /// Puts `value` (of type `ty`, for `field`) at node `at`; objects become `wrap`.
    #[allow(clippy::too_many_arguments)]
    fn place<X>(
        &mut self,
        at: u32,
        value: Resolved<X>,
        field: &'p PlannedField,
        ty: &TypeRef,
        next: &mut Vec<Batch<'p, R::Object>>,
        wrap: &impl Fn(X) -> Item<'p, R::Object>,
    ) {
        let ty = match ty {
            TypeRef::NonNull(inner) => &**inner,
            other => other,
        };
        match value {
            Resolved::Null => {}
            Resolved::Error(message) => self.errors.push((at, message)),
            // Only numbers can fail result coercion; strings skip the check.
            Resolved::Leaf(leaf @ (Leaf::Int(_) | Leaf::Float(_))) => {
                match serialize_error(&leaf, ty) {
                    None => self.slots[at as usize].node = Node::Leaf(leaf),
                    Some(e) => self.errors.push((at, e.into())),
                }
            }
            Resolved::Leaf(leaf) => self.slots[at as usize].node = Node::Leaf(leaf),
            Resolved::List(items) => {
                let TypeRef::List(item_ty) = ty else {
                    self.errors.push((
                        at,
                        format!("{} returned a list where none is expected", field.name).into(),
                    ));
                    return;
                };
                let first = self.slots.len() as u32;
                for i in 0..items.len() {
                    self.slots.push(Slot {
                        node: Node::Null,
                        parent: at,
                        index: i as u32,
                        non_null: item_ty.is_non_null(),
                        nulled: false,
                    });
                }
                self.slots[at as usize].node = Node::List {
                    first,
                    len: items.len() as u32,
                };
                for (i, item) in items.into_iter().enumerate() {
                    self.place(first + i as u32, item, field, item_ty, next, wrap);
                }
            }
            Resolved::Object(object) => match &field.children {
                Children::Object(sel) => {
                    let t = ty.named();
                    self.object(at, sel, t, wrap(object), next);
                }
                Children::Abstract(by_type) => {
                    let object = wrap(object);
                    let t = match &object {
                        Item::User(o) => self.resolver.type_of(o),
                        // Introspection has no interfaces or unions.
                        Item::Intro(_) => self.schema.query,
                    };
                    match by_type.iter().find(|(bt, _)| *bt == t) {
                        Some((_, sel)) => self.object(at, sel, t, object, next),
                        None => self.errors.push((
                            at,
                            format!(
                                "{} returned an object of a type it cannot return",
                                field.name
                            )
                            .into(),
                        )),
                    }
                }
                Children::Leaf => self.errors.push((
                    at,
                    format!("{} returned an object for a leaf", field.name).into(),
                )),
            },
        }
    }

    /// Null in a non-null position nulls the parent, up to the nearest nullable one.
    fn propagate_nulls(&mut self) {
        let mut reported: Option<Vec<bool>> = None;
        for i in (1..self.slots.len()).rev() {
            let s = &self.slots[i];
            let is_null = s.nulled || matches!(s.node, Node::Null);
            if s.non_null && is_null {
                let parent = s.parent;
                let reported = reported.get_or_insert_with(|| {
                    let mut r = vec![false; self.slots.len()];
                    for &(at, _) in &self.errors {
                        r[at as usize] = true;
                    }
                    r
                });
                if !reported[i] && !self.has_reported_descendant_error(i) {
                    let message = format!(
                        "Cannot return null for non-nullable field {}.",
                        self.field_label(i)
                    );
                    self.errors.push((i as u32, message.into()));
                }
                self.slots[parent as usize].nulled = true;
            }
        }
    }

    /// Whether an error was recorded at or under `i` (its null then already explains).
    fn has_reported_descendant_error(&self, i: usize) -> bool {
        self.errors.iter().any(|&(at, _)| {
            let mut n = at;
            while n != NO_PARENT {
                if n as usize == i {
                    return true;
                }
                n = self.slots[n as usize].parent;
            }
            false
        })
    }

    /// `Type.field` of the object field at node `i` (or of the list holding it).
    fn field_label(&self, i: usize) -> String {
        match self.field_at(i) {
            Some((type_id, field)) => format!("{}.{}", self.schema.get(type_id).name, field.name),
            None => "data".to_owned(),
        }
    }

    /// The object type and field whose value node `i` is (or is an item of).
    fn field_at(&self, mut i: usize) -> Option<(TypeId, &'p PlannedField)> {
        loop {
            let s = &self.slots[i];
            if s.parent == NO_PARENT {
                return None;
            }
            if let Node::Object {
                selection, type_id, ..
            } = &self.slots[s.parent as usize].node
            {
                let selection: &'p Selection = selection;
                let field = &selection.fields[self.included_index(selection, s.index)];
                return Some((*type_id, field));
            }
            i = s.parent as usize;
        }
    }

    fn included_index(&self, selection: &Selection, pos: u32) -> usize {
        if !selection.conditional {
            return pos as usize;
        }
        self.included
            .get(&(selection as *const Selection))
            .and_then(|v| v.get(pos as usize).copied())
            .unwrap_or(pos as usize)
    }

    /// The response path of node `i`.
    fn path(&self, mut i: u32) -> Vec<PathSegment<'p>> {
        let mut out = Vec::new();
        loop {
            let s = &self.slots[i as usize];
            if s.parent == NO_PARENT {
                break;
            }
            match &self.slots[s.parent as usize].node {
                Node::List { .. } => out.push(PathSegment::Index(s.index)),
                Node::Object { selection, .. } => {
                    let field = &selection.fields[self.included_index(selection, s.index)];
                    out.push(PathSegment::Key(&field.key));
                }
                Node::Null | Node::Leaf(_) => {}
            }
            i = s.parent;
        }
        out.reverse();
        out
    }

    fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 8 * self.slots.len() + 64);
        out.push(b'{');
        if !self.errors.is_empty() {
            out.extend_from_slice(b"\"errors\":[");
            for (n, (at, error)) in self.errors.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"message\":");
                write_str(&mut out, &error.message);
                if let Some((_, field)) = self.field_at(*at as usize) {
                    let mut b = itoa::Buffer::new();
                    out.extend_from_slice(b",\"locations\":[{\"line\":");
                    out.extend_from_slice(b.format(field.pos.line).as_bytes());
                    out.extend_from_slice(b",\"column\":");
                    out.extend_from_slice(b.format(field.pos.column).as_bytes());
                    out.extend_from_slice(b"}]");
                }
                out.extend_from_slice(b",\"path\":[");
                for (k, seg) in self.path(*at).iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    match seg {
                        PathSegment::Key(key) => write_str(&mut out, key),
                        PathSegment::Index(i) => {
                            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes())
                        }
                    }
                }
                out.push(b']');
                if let Some(code) = error.code {
                    out.extend_from_slice(b",\"extensions\":{\"code\":");
                    write_str(&mut out, code);
                    out.push(b'}');
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"],");
        }
        out.extend_from_slice(b"\"data\":");
        self.write_node(0, &mut out);
        out.push(b'}');
        out
    }

    fn write_node(&self, i: u32, out: &mut Vec<u8>) {
        let slot = &self.slots[i as usize];
        if slot.nulled {
            out.extend_from_slice(b"null");
            return;
        }
        match &slot.node {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Leaf(Leaf::Json { start, end }) => {
                out.extend_from_slice(&self.text[*start as usize..*end as usize]);
            }
            Node::Leaf(leaf) => write_leaf(leaf, out),
            Node::List { first, len } => {
                out.push(b'[');
                for k in 0..*len {
                    if k > 0 {
                        out.push(b',');
                    }
                    self.write_node(first + k, out);
                }
                out.push(b']');
            }
            Node::Object {
                selection,
                first_child,
                ..
            } => {
                out.push(b'{');
                let count = if selection.conditional {
                    self.included
                        .get(&(*selection as *const Selection))
                        .map_or(0, |v| v.len())
                } else {
                    selection.fields.len()
                };
                for pos in 0..count {
                    if pos > 0 {
                        out.push(b',');
                    }
                    let f = self.included_index(selection, pos as u32);
                    out.extend_from_slice(&selection.fields[f].key_json);
                    self.write_node(first_child + pos as u32, out);
                }
                out.push(b'}');
            }
        }
    }
}

/// CoerceArgumentValues for the arguments with variables (the others were coerced when
/// the plan was made); nothing is allocated for a field without them.
fn field_args<'s>(
    schema: &'s Schema,
    vars: &'s HashMap<Name, ConstValue>,
    field: &'s PlannedField,
) -> Result<Args<'s>, FieldError> {
    let mut dynamic = Vec::new();
    for (name, arg) in &field.args {
        let Arg::Dynamic(value) = arg else {
            continue;
        };
        let Some(def) = schema
            .field(field.parent, &field.name)
            .and_then(|f| f.args.iter().find(|a| a.name == name.as_str()))
        else {
            continue;
        };
        let value = match value {
            Value::Variable(var) => match vars.get(var) {
                // An absent variable: the argument's default, or no argument.
                None => match &def.default {
                    Some(d) => Cow::Owned(d.clone()),
                    None if def.ty.is_non_null() => {
                        return Err(format!(
                            "Argument \"{name}\" of required type \"{}\" was provided the variable \"${var}\" which was not provided a runtime value.",
                            display(schema, &def.ty)
                        )
                        .into())
                    }
                    None => continue,
                },
                Some(ConstValue::Null) if def.ty.is_non_null() => {
                    return Err(format!(
                        "Argument \"{name}\" of non-null type \"{}\" must not be null.",
                        display(schema, &def.ty)
                    )
                    .into())
                }
                // Already coerced with the request's variables.
                Some(v) => Cow::Borrowed(v),
            },
            literal => Cow::Owned(
                value_from_literal(schema, literal, &def.ty, &|n: &Name| vars.get(n))
                    .ok_or_else(|| {
                        FieldError::from(format!(
                            "Argument \"{name}\" has invalid value {}.",
                            print_literal(literal)
                        ))
                    })?,
            ),
        };
        dynamic.push((name, value));
    }
    Ok(Args {
        planned: &field.args,
        dynamic,
    })
}

/// Makes `values` hold exactly `n` values: a resolver that gave too few or too many is
/// a bug, reported as a field error rather than a shifted response.
fn fill<O: Clone>(values: &mut Vec<Resolved<O>>, n: usize, field: &PlannedField) {
    if values.len() != n {
        values.truncate(n);
        values.resize(
            n,
            Resolved::Error(format!("the resolver of {} returned no value", field.name).into()),
        );
    }
}

/// Why a number cannot be the value of an `Int` or `Float` (result coercion, GraphQL
/// 3.5.1 and 3.5.2), if it cannot.
fn serialize_error(leaf: &Leaf, ty: &TypeRef) -> Option<String> {
    if !matches!(leaf, Leaf::Int(_) | Leaf::Float(_)) {
        return None;
    }
    let int = matches!(ty, TypeRef::Named(id) if *id == Schema::INT);
    match *leaf {
        Leaf::Int(n) if int && i32::try_from(n).is_err() => Some(format!(
            "Int cannot represent non 32-bit signed integer value: {n}"
        )),
        Leaf::Float(f) if int && (f.fract() != 0.0 || !f.is_finite()) => Some(format!(
            "Int cannot represent non-integer value: {}",
            js_number(f)
        )),
        Leaf::Float(f) if int && (f < f64::from(i32::MIN) || f > f64::from(i32::MAX)) => {
            Some(format!(
                "Int cannot represent non 32-bit signed integer value: {}",
                js_number(f)
            ))
        }
        Leaf::Float(f) if !f.is_finite() => Some(format!(
            "Float cannot represent non numeric value: {}",
            js_number(f)
        )),
        _ => None,
    }
}

/// A number as JavaScript prints it (NaN, Infinity, 3 for 3.0).
fn js_number(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        format!("{f}")
    }
}

enum PathSegment<'p> {
    Key(&'p str),
    Index(u32),
}

fn write_leaf(leaf: &Leaf, out: &mut Vec<u8>) {
    match leaf {
        Leaf::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Leaf::Float(f) if f.is_finite() => {
            let mut s = String::new();
            let _ = write!(s, "{f}");
            out.extend_from_slice(s.as_bytes());
        }
        Leaf::Float(_) => out.extend_from_slice(b"null"),
        Leaf::String(s) => write_str(out, s),
        Leaf::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Leaf::Enum(e) => write_str(out, e),
        // Written from the text arena by `write_node`; never met here.
        Leaf::Json { .. } => out.extend_from_slice(b"null"),
    }
}

/// Appends `s` as a JSON string. Runs of bytes that need no escape (the common case)
/// are found eight at a time and copied whole.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Appends the inside of `s` as a JSON string, without the quotes.
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if ESCAPE[usize::from(b)] == 0 {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match ESCAPE[usize::from(b)] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            e => out.extend_from_slice(&[b'\\', e]),
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// For each byte: 0 when it goes out as is, else the letter after the backslash (`u`
/// for `\u00XX`).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the eight bytes of `w` is a control character, `"` or `\`
/// (the classic has-zero-byte and has-less-than word tricks).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (below_space | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;
    use crate::plan::plan;
    use async_graphql_parser::parse_query;
    use std::cell::{Cell, RefCell};

    const SDL: &str = r#"
        interface Pet { name: String! }
        type Dog implements Pet { name: String! barks: Boolean! }
        type Cat implements Pet { name: String! lives: Int }
        type Human { id: ID! name: String! nick: String! pets: [Pet!]! friend: Human }
        type Query { humans: [Human!]! human(id: ID!): Human pet(name: String!): Pet }
    "#;

    #[derive(Debug, Clone, PartialEq)]
    enum Obj {
        Root,
        Human(usize),
        Pet(usize),
    }

    /// (name, nick, pets, friend)
    type HumanRow = (
        &'static str,
        Option<&'static str>,
        &'static [usize],
        Option<usize>,
    );
    const HUMANS: [HumanRow; 3] = [
        ("ann", Some("a\"1"), &[0, 1], Some(1)),
        ("bob", None, &[], Some(0)),
        ("cid", Some("c"), &[2], None),
    ];
    /// (name, is dog)
    const PETS: [(&str, bool); 3] = [("rex", true), ("tom", false), ("fido", true)];

    struct Toy {
        schema: Schema,
        /// (type.field, how many parents) per call.
        calls: RefCell<Vec<(String, usize)>>,
        /// Calls suspended now, and the most that ever were at once.
        in_flight: Cell<usize>,
        most_in_flight: Cell<usize>,
    }

    impl Resolver for Toy {
        type Object = Obj;

        async fn resolve(
            &self,
            f: &PlannedField,
            args: &Args<'_>,
            parents: &[Obj],
            out: &mut Out<'_, Obj>,
        ) {
            self.calls.borrow_mut().push((
                format!("{}.{}", self.schema.get(f.parent).name, f.name),
                parents.len(),
            ));
            // As a store round trip would: the batch is suspended once before answering.
            self.in_flight.set(self.in_flight.get() + 1);
            self.most_in_flight
                .set(self.most_in_flight.get().max(self.in_flight.get()));
            tokio::task::yield_now().await;
            self.in_flight.set(self.in_flight.get() - 1);
            for p in parents {
                let value = match (p, &*f.name) {
                    (Obj::Root, "humans") => {
                        Resolved::List((0..3).map(|i| Resolved::Object(Obj::Human(i))).collect())
                    }
                    (Obj::Root, "human") => match args.get("id") {
                        Some(ConstValue::String(id)) => id
                            .parse::<usize>()
                            .ok()
                            .filter(|i| *i < 3)
                            .map_or(Resolved::Null, |i| Resolved::Object(Obj::Human(i))),
                        _ => Resolved::Error("bad id".into()),
                    },
                    (Obj::Root, "pet") => Resolved::Object(Obj::Pet(0)),
                    (Obj::Human(i), "id") => Resolved::Leaf(Leaf::String(i.to_string())),
                    (Obj::Human(i), "name") => Resolved::Leaf(Leaf::String(HUMANS[*i].0.into())),
                    // In the text arena, as a domain writes its strings.
                    (Obj::Human(i), "nick") => HUMANS[*i].1.map_or(Resolved::Null, |n| out.text(n)),
                    (Obj::Human(i), "pets") => Resolved::List(
                        HUMANS[*i]
                            .2
                            .iter()
                            .map(|p| Resolved::Object(Obj::Pet(*p)))
                            .collect(),
                    ),
                    (Obj::Human(i), "friend") => HUMANS[*i]
                        .3
                        .map_or(Resolved::Null, |f| Resolved::Object(Obj::Human(f))),
                    (Obj::Pet(i), "name") => Resolved::Leaf(Leaf::String(PETS[*i].0.into())),
                    (Obj::Pet(_), "barks") => Resolved::Leaf(Leaf::Boolean(true)),
                    (Obj::Pet(_), "lives") => {
                        Resolved::Error(FieldError::new("FORBIDDEN", "cats do not tell"))
                    }
                    other => Resolved::Error(format!("no resolver for {other:?}").into()),
                };
                out.push(value);
            }
        }

        fn type_of(&self, o: &Obj) -> TypeId {
            let name = match o {
                Obj::Root => "Query",
                Obj::Human(_) => "Human",
                Obj::Pet(i) if PETS[*i].1 => "Dog",
                Obj::Pet(_) => "Cat",
            };
            self.schema.type_named(name).unwrap()
        }
    }

    fn run(query: &str, vars: serde_json::Value) -> (serde_json::Value, Vec<(String, usize)>) {
        let (json, calls, _) = run_counting(query, vars);
        (json, calls)
    }

    /// As [`run`], also saying how many resolver calls were suspended at once at most.
    fn run_counting(
        query: &str,
        vars: serde_json::Value,
    ) -> (serde_json::Value, Vec<(String, usize)>, usize) {
        let toy = Toy {
            schema: Schema::from_sdl(SDL).unwrap(),
            calls: RefCell::default(),
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
        };
        let doc = parse_query(query).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        assert_eq!(
            crate::validate::validate(&toy.schema, &doc),
            vec![],
            "{query}"
        );
        let p = plan(&toy.schema, &doc, &op.node).unwrap();
        let serde_json::Value::Object(input) = vars else {
            panic!()
        };
        let vars = crate::coerce::coerce_variables(&toy.schema, &p.variables, &input).unwrap();
        let bytes = block_on(execute(&toy.schema, &p, &toy, Obj::Root, &vars));
        let text = String::from_utf8(bytes).unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (json, toy.calls.into_inner(), toy.most_in_flight.get())
    }

    #[test]
    fn the_fields_a_level_awaits_are_awaited_together_and_keep_their_strings() {
        let (r, calls, most) = run_counting(
            "{ human(id: \"0\") { nick pets { name } friend { name friend { nick } } } }",
            serde_json::json!({}),
        );
        // Level 3 awaits the names of the dogs and of the cats, the friend's name and the
        // friend's friend together.
        assert_eq!(most, 4, "{calls:?}");
        assert_eq!(
            r["data"]["human"],
            serde_json::json!({
                "nick": "a\"1",
                "pets": [{"name": "rex"}, {"name": "tom"}],
                "friend": {"name": "bob", "friend": {"nick": "a\"1"}},
            })
        );
    }

    #[test]
    fn a_query_becomes_json_with_aliases_and_escapes() {
        let (r, _) = run(
            "{ first: human(id: \"0\") { name nick n: name } nobody: human(id: \"9\") { name } }",
            serde_json::json!({}),
        );
        assert_eq!(
            r,
            serde_json::json!({"data": {"first": {"name": "ann", "nick": "a\"1", "n": "ann"}, "nobody": null}})
        );
    }

    #[test]
    fn every_level_is_one_call_per_field_whatever_the_number_of_parents() {
        let (r, calls) = run(
            "{ humans { name pets { name } friend { name } } }",
            serde_json::json!({}),
        );
        assert_eq!(r["data"]["humans"][0]["pets"][1]["name"], "tom");
        assert_eq!(r["data"]["humans"][2]["friend"], serde_json::Value::Null);
        let count = |f: &str| calls.iter().filter(|(n, _)| n == f).count();
        assert_eq!(
            count("Human.name"),
            2,
            "level 2 for humans, level 3 for friends: {calls:?}"
        );
        assert_eq!(count("Human.pets"), 1);
        // Pets of every human come in one batch per concrete type (Dog, Cat).
        let pet_name_calls: Vec<usize> = calls
            .iter()
            .filter(|(n, _)| n.ends_with(".name") && !n.starts_with("Human"))
            .map(|(_, k)| *k)
            .collect();
        assert_eq!(pet_name_calls.iter().sum::<usize>(), 3, "{calls:?}");
        assert!(pet_name_calls.len() <= 2, "{calls:?}");
        assert!(calls.iter().any(|(n, k)| n == "Human.name" && *k == 3));
    }

    #[test]
    fn abstract_types_select_by_concrete_type_with_typename() {
        let (r, _) = run(
            "{ humans { pets { __typename name ... on Dog { barks } } } }",
            serde_json::json!({}),
        );
        assert_eq!(
            r["data"]["humans"][0]["pets"],
            serde_json::json!([{"__typename": "Dog", "name": "rex", "barks": true}, {"__typename": "Cat", "name": "tom"}])
        );
    }

    #[test]
    fn null_in_a_non_null_place_nulls_the_nearest_nullable_parent_with_one_error() {
        // bob has no nick, and nick is String!: bob's human becomes null.
        let (r, _) = run("{ human(id: \"1\") { name nick } }", serde_json::json!({}));
        assert_eq!(r["data"], serde_json::json!({"human": null}));
        assert_eq!(r["errors"].as_array().unwrap().len(), 1);
        assert_eq!(
            r["errors"][0]["message"],
            "Cannot return null for non-nullable field Human.nick."
        );
        assert_eq!(r["errors"][0]["path"], serde_json::json!(["human", "nick"]));
        // Inside [Human!]!, a null human nulls the whole list, and the list nulls data.
        let (r, _) = run("{ humans { nick } }", serde_json::json!({}));
        assert_eq!(r["data"], serde_json::Value::Null);
        assert_eq!(
            r["errors"][0]["path"],
            serde_json::json!(["humans", 1, "nick"])
        );
    }

    #[test]
    fn resolver_errors_carry_their_path_and_leave_null() {
        let (r, _) = run(
            "{ humans { pets { ... on Cat { lives } } } }",
            serde_json::json!({}),
        );
        assert_eq!(
            r["data"]["humans"][0]["pets"][1],
            serde_json::json!({"lives": null})
        );
        assert_eq!(r["errors"][0]["message"], "cats do not tell");
        assert_eq!(
            r["errors"][0]["path"],
            serde_json::json!(["humans", 0, "pets", 1, "lives"])
        );
    }

    #[test]
    fn introspection_answers_from_the_schema() {
        let (r, calls) = run(
            "{ __schema { queryType { name } types { name kind } directives { name args { name type { kind ofType { name } } } } }
               __type(name: \"Human\") { kind fields { name type { kind name ofType { kind name ofType { name } } } } }
               pet(name: \"x\") { __typename } }",
            serde_json::json!({}),
        );
        assert_eq!(r["data"]["__schema"]["queryType"]["name"], "Query");
        let types: Vec<&str> = r["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for t in [
            "Query", "Human", "Pet", "Dog", "String", "__Schema", "__Type",
        ] {
            assert!(types.contains(&t), "{t} missing from {types:?}");
        }
        assert!(!types.contains(&"__Meta") && !types.contains(&"__Directives"));
        let include = &r["data"]["__schema"]["directives"][0];
        assert_eq!(include["name"], "include");
        assert_eq!(
            include["args"][0]["type"],
            serde_json::json!({"kind": "NON_NULL", "ofType": {"name": "Boolean"}})
        );
        let human = &r["data"]["__type"];
        assert_eq!(human["kind"], "OBJECT");
        let pets = human["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "pets")
            .unwrap();
        // [Pet!]!
        assert_eq!(
            pets["type"],
            serde_json::json!({"kind": "NON_NULL", "name": null, "ofType": {"kind": "LIST", "name": null, "ofType": {"name": null}}})
        );
        assert_eq!(r["data"]["pet"]["__typename"], "Dog");
        // The user's resolver saw only its own fields.
        assert!(calls.iter().all(|(n, _)| !n.contains("__")), "{calls:?}");
    }

    #[test]
    fn variables_reach_arguments_and_conditions() {
        let q = "query Q($id: ID!, $more: Boolean!) { human(id: $id) { name friend @include(if: $more) { name } } }";
        let (r, _) = run(q, serde_json::json!({"id": 0, "more": true}));
        assert_eq!(
            r["data"]["human"],
            serde_json::json!({"name": "ann", "friend": {"name": "bob"}})
        );
        let (r, _) = run(q, serde_json::json!({"id": "2", "more": false}));
        assert_eq!(r["data"]["human"], serde_json::json!({"name": "cid"}));
    }
}

#[cfg(test)]
mod coercion_tests {
    //! Arguments and results coerced by the specification (CoerceArgumentValues,
    //! result coercion), and the response order of conditional fields.

    use super::*;
    use crate::block_on;
    use crate::plan::plan;
    use async_graphql_parser::parse_query;
    use serde_json::json;

    const SDL: &str = r#"
        input Opts { kind: String!, limit: Int = 10 }
        type Obj { n: Int inf: Float! }
        type Query {
          node(id: ID): String
          tags(t: [String]): String
          opts(o: Opts): String
          page(first: Int = 5, after: String): String
          req(x: Int! = 3): String
          defaults(t: [String] = "a", o: Opts = { kind: "k" }, id: ID = 12, s: ID = "x1"): String
          a: String
          b: String
          big: Int
          nan: Float
          obj: Obj
        }
    "#;

    /// Answers each field with its arguments as JSON (as the resolver sees them), and
    /// a few numbers no Int or Float can be.
    struct Echo;

    impl Resolver for Echo {
        type Object = ();

        async fn resolve(
            &self,
            f: &PlannedField,
            args: &Args<'_>,
            parents: &[()],
            out: &mut Out<'_, ()>,
        ) {
            for _ in parents {
                out.push(match &*f.name {
                    "big" => Resolved::Leaf(Leaf::Int(3_000_000_000)),
                    "nan" => Resolved::Leaf(Leaf::Float(f64::NAN)),
                    "obj" => Resolved::Object(()),
                    "n" => Resolved::Leaf(Leaf::Int(-5)),
                    "inf" => Resolved::Leaf(Leaf::Float(f64::INFINITY)),
                    _ => {
                        let mut seen = serde_json::Map::new();
                        for (name, _) in &f.args {
                            if let Some(v) = args.get(name) {
                                seen.insert(name.to_string(), v.clone().into_json().unwrap());
                            }
                        }
                        Resolved::Leaf(Leaf::String(serde_json::Value::Object(seen).to_string()))
                    }
                });
            }
        }

        fn type_of(&self, _: &()) -> TypeId {
            unreachable!("no abstract types")
        }
    }

    /// The response text, checked valid first.
    fn text(query: &str, vars: serde_json::Value) -> String {
        let schema = Schema::from_sdl(SDL).unwrap();
        let doc = parse_query(query).unwrap();
        assert_eq!(crate::validate::validate(&schema, &doc), vec![], "{query}");
        let (_, op) = doc.operations.iter().next().unwrap();
        let p = plan(&schema, &doc, &op.node).unwrap();
        let serde_json::Value::Object(input) = vars else {
            panic!()
        };
        let vars = crate::coerce::coerce_variables(&schema, &p.variables, &input).unwrap();
        String::from_utf8(block_on(execute(&schema, &p, &Echo, (), &vars))).unwrap()
    }

    fn run(query: &str, vars: serde_json::Value) -> serde_json::Value {
        let t = text(query, vars);
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
    }

    /// What the resolver of the root field `field` saw.
    fn seen(query: &str, vars: serde_json::Value, field: &str) -> serde_json::Value {
        let r = run(query, vars);
        assert!(r.get("errors").is_none(), "{r}");
        serde_json::from_str(r["data"][field].as_str().unwrap()).unwrap()
    }

    #[test]
    fn an_absent_variable_leaves_the_argument_out_or_takes_its_default() {
        let q = "query Q($f: Int, $a: String) { page(first: $f, after: $a) }";
        assert_eq!(seen(q, json!({}), "page"), json!({"first": 5}));
        assert_eq!(
            seen(q, json!({"f": 2, "a": null}), "page"),
            json!({"first": 2, "after": null})
        );
        let q = "query Q($x: Int) { req(x: $x) }";
        assert_eq!(seen(q, json!({}), "req"), json!({"x": 3}));
        // Inside an input object: the field is left out, so its default applies.
        let q = "query Q($l: Int) { opts(o: { kind: \"k\", limit: $l }) }";
        assert_eq!(
            seen(q, json!({}), "opts"),
            json!({"o": {"kind": "k", "limit": 10}})
        );
        assert_eq!(
            seen(q, json!({"l": null}), "opts"),
            json!({"o": {"kind": "k", "limit": null}})
        );
        assert_eq!(
            seen(q, json!({"l": 1}), "opts"),
            json!({"o": {"kind": "k", "limit": 1}})
        );
        // In a list, an absent variable is null.
        let q = "query Q($s: String) { tags(t: [\"a\", $s]) }";
        assert_eq!(seen(q, json!({}), "tags"), json!({"t": ["a", null]}));
    }

    #[test]
    fn an_explicit_null_for_a_non_null_argument_is_a_field_error() {
        let r = run("query Q($x: Int) { req(x: $x) a }", json!({"x": null}));
        assert_eq!(r["data"], json!({"req": null, "a": "{}"}));
        assert_eq!(
            r["errors"],
            json!([{
                "message": "Argument \"x\" of non-null type \"Int!\" must not be null.",
                "locations": [{"line": 1, "column": 20}],
                "path": ["req"]
            }])
        );
    }

    #[test]
    fn literals_and_defaults_reach_the_resolver_coerced() {
        let q = "{ node(id: 1) tags(t: \"a\") opts(o: { kind: \"x\" }) }";
        assert_eq!(seen(q, json!({}), "node"), json!({"id": "1"}));
        assert_eq!(seen(q, json!({}), "tags"), json!({"t": ["a"]}));
        assert_eq!(
            seen(q, json!({}), "opts"),
            json!({"o": {"kind": "x", "limit": 10}})
        );
        assert_eq!(
            seen("{ defaults }", json!({}), "defaults"),
            json!({"t": ["a"], "o": {"kind": "k", "limit": 10}, "id": "12", "s": "x1"})
        );
        // Variables' defaults are coerced when used.
        let q = "query Q($t: [String] = \"b\", $id: ID = 5) { tags(t: $t) node(id: $id) }";
        assert_eq!(seen(q, json!({}), "tags"), json!({"t": ["b"]}));
        assert_eq!(seen(q, json!({}), "node"), json!({"id": "5"}));
        // Literals holding variables are coerced per request.
        let q = "query Q($k: String!) { tags(t: [$k, \"w\"]) opts(o: { kind: $k }) }";
        assert_eq!(seen(q, json!({"k": "z"}), "tags"), json!({"t": ["z", "w"]}));
        assert_eq!(
            seen(q, json!({"k": "z"}), "opts"),
            json!({"o": {"kind": "z", "limit": 10}})
        );
    }

    #[test]
    fn introspection_prints_coerced_defaults_in_graphql_syntax() {
        let r = run(
            "{ __type(name: \"Query\") { fields { name args { name defaultValue } } } }",
            json!({}),
        );
        let fields = r["data"]["__type"]["fields"].as_array().unwrap();
        let defaults = fields.iter().find(|f| f["name"] == "defaults").unwrap();
        assert_eq!(
            defaults["args"],
            json!([
                {"name": "t", "defaultValue": "[\"a\"]"},
                {"name": "o", "defaultValue": "{kind: \"k\", limit: 10}"},
                {"name": "id", "defaultValue": "12"},
                {"name": "s", "defaultValue": "\"x1\""}
            ])
        );
    }

    #[test]
    fn response_keys_follow_the_first_included_occurrence() {
        let q = "query Q($x: Boolean!) { a @include(if: $x) b a }";
        assert_eq!(
            text(q, json!({"x": false})),
            r#"{"data":{"b":"{}","a":"{}"}}"#
        );
        assert_eq!(
            text(q, json!({"x": true})),
            r#"{"data":{"a":"{}","b":"{}"}}"#
        );
        // Through fragments, and with the unconditional order untouched.
        let q =
            "query Q($x: Boolean!) { ... @include(if: $x) { b } a ...F } fragment F on Query { b }";
        assert_eq!(
            text(q, json!({"x": false})),
            r#"{"data":{"a":"{}","b":"{}"}}"#
        );
        assert_eq!(
            text(q, json!({"x": true})),
            r#"{"data":{"b":"{}","a":"{}"}}"#
        );
    }

    #[test]
    fn numbers_no_int_or_float_can_be_are_field_errors() {
        let r = run("{ big nan obj { n inf } a }", json!({}));
        assert_eq!(
            r["data"],
            json!({"big": null, "nan": null, "obj": null, "a": "{}"})
        );
        let errors: Vec<(&str, &serde_json::Value)> = r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["message"].as_str().unwrap(), &e["path"]))
            .collect();
        assert_eq!(
            errors,
            [
                (
                    "Int cannot represent non 32-bit signed integer value: 3000000000",
                    &json!(["big"])
                ),
                (
                    "Float cannot represent non numeric value: NaN",
                    &json!(["nan"])
                ),
                (
                    "Float cannot represent non numeric value: Infinity",
                    &json!(["obj", "inf"])
                ),
            ]
        );
    }
}

#[cfg(test)]
mod write_str_tests {
    use super::write_str;

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_come_out_as_serde_json_writes_them() {
        let samples = [
            "",
            "plain",
            "exactly8",
            "a longer string of plain text with no escapes at all",
            "quote \" in the middle of a long run of text",
            "back\\slash",
            "tab\tnew\nline\rret",
            "\u{1}\u{1f} controls",
            "é ü 日本語 emoji 🎉 and \" after",
            "ends with a quote\"",
            "\"",
            "0123456\"",
            "01234567\\",
            "~\u{7f}\u{80}",
        ];
        for s in samples {
            let ours = json(s);
            let serde = serde_json::to_string(s).unwrap();
            // serde_json writes control characters other than \n \r \t \b \f as \u00XX,
            // and \b \f as short escapes; ours writes every other control as \u00XX.
            let back: String = serde_json::from_str(&ours).unwrap();
            assert_eq!(back, s, "{ours} does not round-trip");
            if !s.chars().any(|c| c == '\u{8}' || c == '\u{c}') {
                assert_eq!(ours, serde, "{s:?}");
            }
        }
    }
}
