//! The node-wide registry of persisted documents' texts: the manifest's (by id and by
//! hash, never evicted, replaced whole on a reload) and those registered by APQ or run
//! as text (by hash, bounded in bytes, the least recently used leaving first).
//!
//! Every thread shares one [`Registry`]; each keeps its own cache of prepared plans
//! (a [`crate::persisted::PlanCache`]) and comes here only on a miss, so the request
//! path takes no lock: a plan-cache hit reads one atomic (the manifest's generation)
//! and, for a registered document, marks it used with one more (a store only when its
//! mark is stale, so hot documents do not bounce a cache line between cores).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::persisted::{hash, DocumentRef, Hash};

/// A registered document: its text and when it was last used.
#[derive(Debug)]
pub struct Registered {
    text: Arc<str>,
    /// The registry's use clock when this was last used.
    used: AtomicU64,
}

impl Registered {
    /// Marks the document used now (the registry's clock, read lock-free).
    pub fn touch(&self, registry: &Registry) {
        let now = registry.clock.load(Ordering::Relaxed);
        if self.used.load(Ordering::Relaxed) != now {
            self.used.store(now, Ordering::Relaxed);
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The document's hash.
    pub hash: Hash,
    /// Its text, to prepare.
    pub text: Arc<str>,
    /// `Some` for a registered document (mark it used on every hit); `None` for a
    /// manifest one (pinned).
    pub registered: Option<Arc<Registered>>,
}

/// A manifest: ids to hashes, hashes to texts.
#[derive(Debug, Default)]
struct Manifest {
    ids: HashMap<String, Hash>,
    texts: HashMap<Hash, Arc<str>>,
}

#[derive(Debug)]
struct Inner {
    manifest: Manifest,
    registered: HashMap<Hash, Arc<Registered>>,
    /// The registered texts' bytes.
    bytes: usize,
}

/// The persisted documents of a node (see the module documentation).
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Bumped whenever a manifest replaces the last one.
    generation: AtomicU64,
    /// Advances on every registration and lookup; uses are stamped with it.
    clock: AtomicU64,
    capacity_bytes: usize,
}

impl Registry {
    /// A registry with `manifest`'s (id, text) pairs pinned, keeping up to
    /// `capacity_bytes` of registered texts.
    pub fn new(manifest: &[(String, String)], capacity_bytes: usize) -> Registry {
        Registry {
            inner: Mutex::new(Inner {
                manifest: manifest_of(manifest),
                registered: HashMap::new(),
                bytes: 0,
            }),
            generation: AtomicU64::new(0),
            clock: AtomicU64::new(0),
            capacity_bytes,
        }
    }

    /// Changes whenever the manifest is replaced: a thread whose plans were pinned
    /// from an older one drops them.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the manifest (already checked by the caller) and bumps the generation.
    pub fn replace_manifest(&self, manifest: &[(String, String)]) {
        let new = manifest_of(manifest);
        self.lock().manifest = new;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Finds a document by manifest id or hash: the manifest first, then the
    /// registered ones (marked used).
    pub fn find(&self, r: &DocumentRef) -> Option<Found> {
        let inner = self.lock();
        let hash = match r {
            DocumentRef::Id(id) => *inner.manifest.ids.get(id)?,
            DocumentRef::Sha256(h) => *h,
        };
        if let Some(text) = inner.manifest.texts.get(&hash) {
            return Some(Found {
                hash,
                text: Arc::clone(text),
                registered: None,
            });
        }
        let entry = inner.registered.get(&hash)?;
        self.tick_and_touch(entry);
        Some(Found {
            hash,
            text: Arc::clone(&entry.text),
            registered: Some(Arc::clone(entry)),
        })
    }

    /// Registers a document that was prepared without error, unless the manifest has
    /// it; returns its entry (to mark uses with), or `None` for a manifest document or
    /// one larger than the whole capacity. The least recently used leave to make room.
    pub fn register(&self, text: &str) -> Option<Arc<Registered>> {
        let hash = hash(text);
        let mut inner = self.lock();
        if inner.manifest.texts.contains_key(&hash) || text.len() > self.capacity_bytes {
            return None;
        }
        if let Some(entry) = inner.registered.get(&hash) {
            let entry = Arc::clone(entry);
            self.tick_and_touch(&entry);
            return Some(entry);
        }
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Registered {
            text: Arc::from(text),
            used: AtomicU64::new(now),
        });
        inner.bytes += text.len();
        inner.registered.insert(hash, Arc::clone(&entry));
        if inner.bytes > self.capacity_bytes {
            evict(&mut inner, self.capacity_bytes - self.capacity_bytes / 8);
        }
        Some(entry)
    }

    /// The registered documents' count and bytes.
    #[cfg(test)]
    fn registered(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.registered.len(), inner.bytes)
    }

    fn tick_and_touch(&self, entry: &Registered) {
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        entry.used.store(now, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing done under the lock can leave it half-changed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn manifest_of(entries: &[(String, String)]) -> Manifest {
    let mut m = Manifest::default();
    for (id, text) in entries {
        let h = hash(text);
        m.ids.insert(id.clone(), h);
        m.texts.entry(h).or_insert_with(|| Arc::from(text.as_str()));
    }
    m
}

/// Drops the least recently used registered documents until their bytes are at most
/// `target` (evicting down to below the capacity, so the scan is amortised over
/// many registrations).
fn evict(inner: &mut Inner, target: usize) {
    let mut by_use: Vec<(u64, Hash, usize)> = inner
        .registered
        .iter()
        .map(|(h, e)| (e.used.load(Ordering::Relaxed), *h, e.text.len()))
        .collect();
    by_use.sort_unstable_by_key(|(used, _, _)| *used);
    for (_, h, len) in by_use {
        if inner.bytes <= target {
            break;
        }
        inner.registered.remove(&h);
        inner.bytes -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Vec<(String, String)> {
        vec![("ChannelPage".into(), "query P { a }".into())]
    }

    #[test]
    fn manifest_documents_are_found_by_id_and_hash_and_never_registered() {
        let r = Registry::new(&manifest(), 1024);
        let by_id = r.find(&DocumentRef::Id("ChannelPage".into())).unwrap();
        assert_eq!(&*by_id.text, "query P { a }");
        assert!(by_id.registered.is_none());
        let by_hash = r.find(&DocumentRef::Sha256(hash("query P { a }"))).unwrap();
        assert_eq!(by_hash.hash, by_id.hash);
        assert!(r.register("query P { a }").is_none());
        assert_eq!(r.registered(), (0, 0));
        assert!(r.find(&DocumentRef::Id("nope".into())).is_none());
    }

    #[test]
    fn registered_documents_are_found_by_hash_only() {
        let r = Registry::new(&[], 1024);
        let text = "{ a }";
        assert!(r.find(&DocumentRef::Sha256(hash(text))).is_none());
        let entry = r.register(text).unwrap();
        let found = r.find(&DocumentRef::Sha256(hash(text))).unwrap();
        assert!(Arc::ptr_eq(found.registered.as_ref().unwrap(), &entry));
        assert_eq!(&*found.text, text);
        // Registering again keeps one copy.
        assert!(Arc::ptr_eq(&r.register(text).unwrap(), &entry));
        assert_eq!(r.registered(), (1, text.len()));
        assert!(r.find(&DocumentRef::Id("{ a }".into())).is_none());
    }

    #[test]
    fn the_least_recently_used_leave_first_within_the_byte_bound() {
        // Ten-byte documents; room for ten.
        let doc = |i: usize| format!("{{ a{i:05} }}");
        assert_eq!(doc(1).len(), 10);
        let r = Registry::new(&manifest(), 100);
        let entries: Vec<_> = (0..10).map(|i| r.register(&doc(i)).unwrap()).collect();
        assert_eq!(r.registered(), (10, 100));
        // A thread's plan-cache hit marks the first one used, lock-free.
        entries[0].touch(&r);
        // The eleventh evicts down to 7/8 of the capacity, oldest use first.
        r.register(&doc(10)).unwrap();
        let (count, bytes) = r.registered();
        assert!(bytes <= 100 - 100 / 8, "{bytes} bytes kept");
        assert_eq!(count, bytes / 10);
        let kept = |i: usize| r.find(&DocumentRef::Sha256(hash(&doc(i)))).is_some();
        assert!(kept(0), "used since, so kept");
        assert!(kept(10), "just registered");
        assert!(
            !kept(1) && !kept(2) && !kept(3),
            "the least recently used left"
        );
        assert!(kept(9));
        // The manifest is never evicted, and a text larger than everything is not kept.
        assert!(r.find(&DocumentRef::Id("ChannelPage".into())).is_some());
        assert!(r.register(&"x".repeat(101)).is_none());
    }

    #[test]
    fn a_new_manifest_replaces_the_old_and_bumps_the_generation() {
        let r = Registry::new(&manifest(), 1024);
        let g = r.generation();
        r.replace_manifest(&[("Other".into(), "{ b }".into())]);
        assert_ne!(r.generation(), g);
        assert!(r.find(&DocumentRef::Id("ChannelPage".into())).is_none());
        assert!(r.find(&DocumentRef::Id("Other".into())).is_some());
        assert!(r
            .find(&DocumentRef::Sha256(hash("{ b }")))
            .unwrap()
            .registered
            .is_none());
    }

    #[test]
    fn a_registration_on_one_thread_is_seen_by_every_other() {
        let r = Registry::new(&[], 1 << 20);
        let text = |t: usize, i: usize| format!("{{ t{t} n{i} }}");
        std::thread::scope(|s| {
            for t in 0..4 {
                let r = &r;
                s.spawn(move || (0..100).for_each(|i| drop(r.register(&text(t, i)))));
            }
        });
        std::thread::scope(|s| {
            for t in 0..4 {
                let r = &r;
                s.spawn(move || {
                    let other = (t + 1) % 4;
                    for i in 0..100 {
                        let h = hash(&text(other, i));
                        assert!(r.find(&DocumentRef::Sha256(h)).is_some());
                    }
                });
            }
        });
        assert_eq!(r.registered().0, 400);
    }
}
