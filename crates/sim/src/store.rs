//! The object store behind the simulated API server: what etcd plus the
//! apiserver's registry are in a real cluster.
//!
//! Objects are plain JSON (`serde_json::Value`) keyed by kind, namespace and
//! name, so the HTTP layer can serve exactly what clients sent, unknown fields
//! included. Every write goes through one mutex and bumps one global
//! `resourceVersion` counter, which gives watches a total order. A bounded
//! history of changes lets a watch resume from a `resourceVersion`; a version
//! older than the history answers `410 Gone`, as a compacted etcd would.
//!
//! The store knows nothing about HTTP; the Kruise controller and the kubelet
//! use it directly, and the REST handlers build PUT, PATCH and the status
//! subresource on [`Store::modify`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::admission;

mod kind;
pub use kind::Kind;

/// How many changes are kept for resuming watches.
const DEFAULT_HISTORY: usize = 10_000;
/// How far a live subscriber may fall behind before it is told it lagged.
const BROADCAST_CAPACITY: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    /// The `type` of a watch event.
    pub fn as_watch_type(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed write, as watches see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub change: ChangeType,
    /// The object after the change (before it, with the new resourceVersion, for `Deleted`).
    /// Shared with the store and every other subscriber: delivering a change copies no object.
    pub object: Arc<Value>,
    /// `object` as JSON, shared the same way: encoded once however many watches send it.
    pub encoded: Encoded,
    pub resource_version: u64,
}

/// A stored object version, shared, with its encoding.
pub type Stored = (Arc<Value>, Encoded);

/// The JSON encoding of one stored object version, made on first use and then shared by every
/// list, get and watch event that serves that version.
#[derive(Clone, Debug, Default)]
pub struct Encoded(Arc<OnceLock<Bytes>>);

impl Encoded {
    /// The encoding of `object`, which must be the version this belongs to.
    pub fn get(&self, object: &Value) -> Bytes {
        self.0
            .get_or_init(|| {
                // A `Value` always serialises.
                Bytes::from(serde_json::to_vec(object).unwrap_or_default())
            })
            .clone()
    }
}

/// A Kubernetes-style API error, rendered as a `Status` body by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `Conflict`, `AlreadyExists`, `Invalid`, `Gone`, `BadRequest`, ...
    pub reason: String,
    pub message: String,
    /// For `Invalid`: one `field: what is wrong` line per problem.
    pub causes: Vec<String>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            causes: Vec::new(),
        }
    }

    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(kind)),
        )
    }

    pub fn already_exists(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(kind)),
        )
    }

    pub fn conflict(kind: Kind, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(kind)
            ),
        )
    }

    /// `422 Invalid`, worded like the apiserver: `StatefulSet.apps.kruise.io "s" is invalid: ...`.
    pub fn invalid(kind: Kind, name: &str, causes: &[String]) -> ApiError {
        let what = match kind.group() {
            "" => kind.kind_name().to_string(),
            g => format!("{}.{g}", kind.kind_name()),
        };
        let joined = match causes {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{what} \"{name}\" is invalid: {joined}"),
        );
        err.causes = causes.to_vec();
        err
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }
}

/// `statefulsets.apps.kruise.io`, as the apiserver names resources in messages.
pub fn qualified(kind: Kind) -> String {
    match kind.group() {
        "" => kind.plural().to_string(),
        g => format!("{}.{g}", kind.plural()),
    }
}

type Key = (Kind, String, String);

struct Inner {
    rv: u64,
    /// Stored objects are immutable once written: a write replaces the `Arc`, so readers share
    /// them without copying (a list of a thousand pods is a thousand reference counts).
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<Change>,
    history_cap: usize,
    /// Watches from a version below this cannot be served from history.
    oldest_servable: u64,
}

/// The shared object store. Cloning shares it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store::with_history(DEFAULT_HISTORY)
    }

    /// A store that keeps only the last `history` changes for resuming watches.
    pub fn with_history(history: usize) -> Store {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            inner: Arc::new(Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_cap: history.max(1),
                oldest_servable: 1,
            })),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole objects behind (every
        // write replaces a value), so the data is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of one object.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.get_shared(kind, ns, name).map(|v| (*v).clone())
    }

    /// One object, shared with the store (no copy).
    pub fn get_shared(&self, kind: Kind, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.get_encoded(kind, ns, name).map(|(v, _)| v)
    }

    /// One object, shared, with its (lazily made) JSON encoding.
    pub fn get_encoded(&self, kind: Kind, ns: &str, name: &str) -> Option<Stored> {
        self.lock().objects.get(&key(kind, ns, name)).cloned()
    }

    /// Copies of the objects in a namespace (None = all) and the store's current resourceVersion.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> (Vec<Value>, u64) {
        let (items, rv) = self.list_shared(kind, ns);
        (items.iter().map(|v| (**v).clone()).collect(), rv)
    }

    /// The objects in a namespace (None = all), shared with the store, in key order, and the
    /// store's current resourceVersion.
    pub fn list_shared(&self, kind: Kind, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = inner.select(kind, ns).map(|(v, _)| v.clone()).collect();
        (items, inner.rv)
    }

    /// [`Store::list_shared`] with each object's (lazily made) JSON encoding.
    pub fn list_encoded(&self, kind: Kind, ns: Option<&str>) -> (Vec<Stored>, u64) {
        let inner = self.lock();
        (inner.select(kind, ns).cloned().collect(), inner.rv)
    }

    /// The current (latest committed) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Sets uid, resourceVersion, creationTimestamp, generation=1 (for kinds with spec); AlreadyExists on dup.
    ///
    /// `metadata.generateName` is honoured when `metadata.name` is absent.
    pub fn create(&self, kind: Kind, ns: &str, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let mut inner = self.lock();
        let meta = metadata_mut(&mut obj);
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let mut name;
                    loop {
                        name = format!("{prefix}{}", random_suffix());
                        if !inner.objects.contains_key(&key(kind, ns, &name)) {
                            break;
                        }
                    }
                    name
                }
                _ => {
                    return Err(ApiError::invalid(
                        kind,
                        "",
                        &[
                            "metadata.name: Required value: name or generateName is required"
                                .to_string(),
                        ],
                    ));
                }
            },
        };
        let k = key(kind, ns, &name);
        if inner.objects.contains_key(&k) {
            return Err(ApiError::already_exists(kind, &name));
        }
        let rv = inner.rv + 1;
        let meta = metadata_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        if kind.namespaced() {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        if kind.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(kind.api_version()));
            map.insert("kind".into(), json!(kind.kind_name()));
        }
        admission::default(kind, &mut obj);
        admission::validate(kind, &name, None, &obj)?;
        inner.rv = rv;
        let obj = Arc::new(obj);
        let encoded = Encoded::default();
        inner.objects.insert(k, (obj.clone(), encoded.clone()));
        self.record(
            &mut inner,
            kind,
            ns,
            &name,
            ChangeType::Added,
            (obj.clone(), encoded),
            rv,
        );
        Ok(obj)
    }

    /// Atomic read-modify-write of the whole object (the closure may return Err to abort).
    /// Bumps resourceVersion (one global counter) and metadata.generation when `.spec` changed;
    /// does nothing and returns the object unchanged if the closure changed nothing.
    ///
    /// Identity fields (name, namespace, uid, creationTimestamp, apiVersion,
    /// kind) cannot be changed this way; `resourceVersion` and `generation`
    /// are the store's to set.
    pub fn modify(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let k = key(kind, ns, name);
        let old = inner
            .objects
            .get(&k)
            .map(|(v, _)| v.clone())
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let mut new = (*old).clone();
        f(&mut new)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        // Restore what callers may not change, then see whether anything else did.
        if let Some(map) = new.as_object_mut() {
            map.insert("apiVersion".into(), old["apiVersion"].clone());
            map.insert("kind".into(), old["kind"].clone());
        }
        let no_meta = json!({});
        let old_meta = old.get("metadata").unwrap_or(&no_meta);
        let meta = metadata_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        // A deletion, once requested, cannot be taken back.
        if let Some(v) = old_meta.get("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), v.clone());
        }
        if new == *old {
            return Ok(old);
        }
        admission::default(kind, &mut new);
        admission::validate(kind, name, Some(&old), &new)?;
        let rv = inner.rv + 1;
        let spec_changed = old.get("spec") != new.get("spec");
        let meta = metadata_mut(&mut new);
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if kind.has_generation() && spec_changed {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta.insert("generation".into(), json!(generation + 1));
        }
        inner.rv = rv;
        // Like the API server: an object whose deletion was only waiting for its finalizers
        // is removed by the write that clears the last one.
        let finished = !old_meta.get("deletionTimestamp").is_none_or(Value::is_null)
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        let new = Arc::new(new);
        let encoded = Encoded::default();
        let change = if finished {
            inner.objects.remove(&k);
            ChangeType::Deleted
        } else {
            inner.objects.insert(k, (new.clone(), encoded.clone()));
            ChangeType::Modified
        };
        self.record(
            &mut inner,
            kind,
            ns,
            name,
            change,
            (new.clone(), encoded),
            rv,
        );
        Ok(new)
    }

    /// Deletes the object the way the API server does: with finalizers it only gets a
    /// `deletionTimestamp` (once) and stays until they are cleared; without, it is removed.
    pub fn delete_or_mark(&self, kind: Kind, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let pending = self.get_shared(kind, ns, name).is_some_and(|o| {
            o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
        });
        if !pending {
            return self.delete(kind, ns, name);
        }
        self.modify(kind, ns, name, |o| {
            if o["metadata"]["deletionTimestamp"].is_null() {
                o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            }
            Ok(())
        })
    }

    /// Removes the object now and emits Deleted.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let (obj, _) = inner
            .objects
            .remove(&key(kind, ns, name))
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let rv = inner.rv + 1;
        inner.rv = rv;
        // The last holder (usually the store) gets it without a copy.
        let mut obj = Arc::unwrap_or_clone(obj);
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.record(
            &mut inner,
            kind,
            ns,
            name,
            ChangeType::Deleted,
            (obj.clone(), Encoded::default()),
            rv,
        );
        Ok(obj)
    }

    /// Every change after the call, in resourceVersion order.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// The changes after `rv` still in history, and a receiver for every
    /// later one, taken atomically so that nothing is missed or repeated.
    /// `410 Gone` when changes after `rv` have already been forgotten.
    pub fn watch_from(
        &self,
        rv: u64,
    ) -> Result<(Vec<Change>, broadcast::Receiver<Change>), ApiError> {
        let inner = self.lock();
        if rv < inner.oldest_servable {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                inner.oldest_servable
            )));
        }
        let rx = self.tx.subscribe();
        let past = inner
            .history
            .iter()
            .filter(|c| c.resource_version > rv)
            .cloned()
            .collect();
        Ok((past, rx))
    }

    /// A consistent snapshot of one kind plus a receiver for every later
    /// change: the start of a watch without a resourceVersion.
    pub fn list_and_subscribe(
        &self,
        kind: Kind,
        ns: Option<&str>,
    ) -> (Vec<Stored>, u64, broadcast::Receiver<Change>) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        (inner.select(kind, ns).cloned().collect(), inner.rv, rx)
    }

    /// Forgets the whole change history, as an etcd compaction would: every
    /// watch resuming from an older version then gets `410 Gone`.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest_servable = inner.rv;
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        inner: &mut Inner,
        kind: Kind,
        ns: &str,
        name: &str,
        change: ChangeType,
        (object, encoded): Stored,
        resource_version: u64,
    ) {
        let change = Change {
            kind,
            namespace: if kind.namespaced() {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
            change,
            object,
            encoded,
            resource_version,
        };
        if inner.history.len() >= inner.history_cap
            && let Some(dropped) = inner.history.pop_front()
        {
            inner.oldest_servable = dropped.resource_version;
        }
        inner.history.push_back(change.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }
}

impl Inner {
    /// The objects of one kind in a namespace (None = all), in key order. Keys sort by kind
    /// first, so this walks only that kind's objects (and one namespace's, when given).
    fn select<'a>(
        &'a self,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        let ns = ns.filter(|_| kind.namespaced());
        let from = (kind, ns.unwrap_or_default().to_string(), String::new());
        self.objects
            .range(from..)
            .take_while(move |((k, n, _), _)| *k == kind && ns.is_none_or(|ns| n == ns))
            .map(|(_, v)| v)
    }
}

fn key(kind: Kind, ns: &str, name: &str) -> Key {
    let ns = if kind.namespaced() { ns } else { "" };
    (kind, ns.to_string(), name.to_string())
}

/// `obj.metadata` as a map, created if missing or not an object.
/// Callers have checked that `obj` itself is an object.
fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    let map = match obj {
        Value::Object(map) => map,
        other => {
            *other = json!({});
            match other {
                Value::Object(map) => map,
                _ => unreachable!("just assigned an object"),
            }
        }
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just ensured an object"),
    }
}

/// Now, as Kubernetes writes timestamps (seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now with microseconds, as `metav1.MicroTime` fields want it.
pub fn now_micro_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Five characters from the alphabet the apiserver uses for `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
