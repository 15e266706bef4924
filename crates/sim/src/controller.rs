//! The async driver: runs the Kruise controller ([`crate::kruise`]) and the kubelet
//! ([`crate::kubelet`]) against the store.
//!
//! It wakes on store changes (pods, sets, revisions) and on timers for what is due later (pod
//! start delays, crash-loop restarts, minReadySeconds), never by polling. Each wake is one pass:
//! the kubelet acts on every pod, then every set is reconciled and its [`Plan`] applied. A
//! pass that changes nothing writes nothing, so the passes its own writes trigger settle.
//! When the controller begins updating a pod it tells the [`Report`] which role the arbiter
//! held for it at that moment, and it records Kruise's Events on the set
//! ([`crate::kruise::events`]).
//!
//! A pass costs what changed, not what exists: like an informer cache, the driver remembers
//! each pod's stored object (shared with the store, never copied) and the [`PodView`] read from
//! it, and rereads a pod only when the store replaced its object. The kubelet skips pods it had
//! nothing to do for. Every pass still hands the pure reconcile all of a set's pods, lent from
//! the cache without copies, so its decisions see the whole set as before.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use crate::arbiter::Arbiter;
use crate::kruise::events::{self, PodAction};
use crate::kruise::pod::{self, PodView, containers, in_place_update, set_condition};
use crate::kruise::reconcile::{self, DeleteReason, Input, Plan};
use crate::kruise::revision::{self, Revision, RevisionChange};
use crate::kruise::types::Asts;
use crate::kruise::{
    INPLACE_READY_CONDITION, KRUISE_READY_CONDITION, LIFECYCLE_STATE_LABEL,
    LIFECYCLE_TIMESTAMP_ANNOTATION,
};
use crate::kubelet::{self, KubeletConfig, UNREADY_ANNOTATION};
use crate::report::Report;
use crate::store::{ApiError, Kind, Store};

/// The pod label mirroring the arbiter's role (the plan's default `roles.label`).
pub const ROLE_LABEL: &str = "working";

/// Starts the controller and kubelet; the task ends when the store is dropped.
pub fn spawn(
    store: Store,
    report: Report,
    arbiter: Arbiter,
    kubelet: KubeletConfig,
) -> JoinHandle<()> {
    arbiter.attach_report(report.clone());
    let mut rx = store.subscribe();
    tokio::spawn(async move {
        let mut driver = Driver {
            store,
            report,
            arbiter,
            kubelet,
            pods: Vec::new(),
            sets: Vec::new(),
            set_uids: None,
            event_seq: std::cell::Cell::new(0),
        };
        loop {
            let started = tokio::time::Instant::now();
            let wake = driver.pass();
            // Changes up to here are the pass's own writes (or raced with them).
            let own_until = driver.store.resource_version();
            let mut external = false;
            // Wait for a relevant change or the next timer.
            loop {
                let change = match wake {
                    Some(at) => {
                        tokio::select! {
                            r = rx.recv() => Some(r),
                            () = tokio::time::sleep_until(at.into()) => None,
                        }
                    }
                    None => Some(rx.recv().await),
                };
                match change {
                    None => break,
                    Some(Err(RecvError::Closed)) => return,
                    Some(Err(RecvError::Lagged(_))) => break,
                    Some(Ok(c)) if relevant(c.kind) => {
                        external = c.resource_version > own_until;
                        break;
                    }
                    Some(Ok(_)) => {}
                }
            }
            // A client writing pod after pod (the engine relabelling a wave) would otherwise
            // cost one pass over every pod per write: passes woken by others' writes start at
            // most this often, and what arrives meanwhile joins the next one. The passes that
            // follow the controller's own writes (a wave's chain of update, restart, refresh,
            // status) are not held back.
            if external {
                tokio::time::sleep_until(started + MIN_PASS_INTERVAL).await;
            }
            // Coalesce whatever else is already queued into this pass.
            loop {
                match rx.try_recv() {
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
            }
        }
    })
}

/// The shortest time from the start of one pass to the start of the next.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(2);

fn relevant(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Pod | Kind::StatefulSet | Kind::ControllerRevision
    )
}

/// Makes a pod unready (`ready = false`) until called again with `true`: the kubelet reports
/// its containers unready while the `sim.baton.dev/unready` annotation says so.
pub fn set_pod_ready(store: &Store, ns: &str, name: &str, ready: bool) -> Result<Value, ApiError> {
    store
        .modify(Kind::Pod, ns, name, |p| {
            if !p["metadata"]["annotations"].is_object() {
                p["metadata"]["annotations"] = serde_json::json!({});
            }
            if let Some(a) = p["metadata"]["annotations"].as_object_mut() {
                if ready {
                    a.remove(UNREADY_ANNOTATION);
                } else {
                    a.insert(UNREADY_ANNOTATION.into(), "true".into());
                }
            }
            kubelet::recompute_ready(p, Timestamp::now());
            Ok(())
        })
        .map(Arc::unwrap_or_clone)
}

/// Deletes a pod, as a user or an eviction would; its set recreates it.
pub fn delete_pod(store: &Store, ns: &str, name: &str) -> Result<Value, ApiError> {
    store
        .delete_or_mark(Kind::Pod, ns, name)
        .map(Arc::unwrap_or_clone)
}

struct Driver {
    store: Store,
    report: Report,
    arbiter: Arbiter,
    kubelet: KubeletConfig,
    /// What the last pass saw of every pod, sorted by namespace and name (the store's list
    /// order): the controller's informer cache. A pod whose stored object is the same `Arc` as
    /// last time, and that the kubelet had nothing to do for, costs a pass nothing.
    pods: Vec<Seen>,
    /// Parsed and defaulted sets, by the stored object they were read from.
    sets: Vec<(Arc<Value>, Arc<Asts>)>,
    /// UIDs of the sets at the last garbage collection.
    set_uids: Option<HashSet<String>>,
    /// The stamp of the last Event recorded: the next one's is larger, so names stay unique.
    event_seq: std::cell::Cell<u64>,
}

/// The driver's memory of one pod.
struct Seen {
    namespace: String,
    name: String,
    uid: String,
    /// The stored object the rest was computed from. The store replaces the `Arc` on every
    /// write, so pointer equality means "unchanged".
    obj: Arc<Value>,
    /// UIDs of its controlling owners (`ownerReferences` with `controller: true`).
    controllers: Vec<String>,
    /// What the controller reads of it.
    view: PodView,
    /// Its image signature and when the kubelet first saw it.
    clock: (String, Instant),
    /// Last seen Ready (to record each Ready transition once).
    ready: bool,
    /// The kubelet had nothing to do for `obj` ([`needs_kubelet`] was false).
    idle: bool,
}

impl Seen {
    fn new(obj: Arc<Value>, now: Instant) -> Seen {
        Seen {
            namespace: meta_str(&obj, "namespace").to_string(),
            name: meta_str(&obj, "name").to_string(),
            uid: meta_str(&obj, "uid").to_string(),
            controllers: Vec::new(),
            view: PodView::default(),
            clock: (kubelet::image_signature(&obj), now),
            ready: false,
            idle: false,
            obj,
        }
    }

    /// Rereads what depends on the object.
    fn refresh(&mut self) {
        self.view = PodView::from_value(&self.obj);
        self.controllers = self.obj["metadata"]["ownerReferences"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .filter(|r| r["controller"] == true)
                    .filter_map(|r| r["uid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
    }

    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }

    fn owned_by(&self, ns: &str, set_uid: &str) -> bool {
        self.namespace == ns && self.controllers.iter().any(|u| u == set_uid)
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v["metadata"][field].as_str().unwrap_or_default()
}

impl Driver {
    /// One pass; returns when the next timer is due.
    fn pass(&mut self) -> Option<Instant> {
        let mut wake = self.kubelet_pass();
        let (listed, _) = self.store.list_shared(Kind::StatefulSet, None);
        self.collect_garbage(&listed);
        let mut sets = Vec::with_capacity(listed.len());
        for obj in listed {
            if let Some((_, set)) = self.sets.iter().find(|(o, _)| Arc::ptr_eq(o, &obj)) {
                sets.push((obj.clone(), set.clone()));
                continue;
            }
            match Asts::from_value(&obj) {
                Ok(set) => sets.push((obj, Arc::new(set.defaulted()))),
                Err(e) => {
                    tracing::warn!(error = %e, name = meta_str(&obj, "name"), "unreadable statefulset")
                }
            }
        }
        self.sets = sets;
        for i in 0..self.sets.len() {
            let (obj, set) = self.sets[i].clone();
            wake = earliest(wake, self.reconcile_set(&obj, &set));
        }
        wake
    }

    /// The kubelet acts on every pod that needs it, and the cache follows the store. Returns
    /// the next timer. The cache is the controller's view for this pass, like an informer's:
    /// any later change triggers another pass.
    fn kubelet_pass(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let now_ts = Timestamp::now();
        let (listed, _) = self.store.list_shared(Kind::Pod, None);
        let mut old = std::mem::take(&mut self.pods).into_iter().peekable();
        let mut pods = Vec::with_capacity(listed.len());
        let mut wake = None;
        for obj in listed {
            // The common case at scale: the pod is the very object the last pass saw and the
            // kubelet had nothing to do for it. Both lists are in key order, so the next
            // remembered pod is the one to compare; no field of the object is read (looking
            // up its namespace, name and uid in the JSON was most of a pass at 1000 pods).
            if let Some(s) = old.next_if(|s| s.idle && Arc::ptr_eq(&s.obj, &obj)) {
                pods.push(s);
                continue;
            }
            let (ns, name, uid) = (
                meta_str(&obj, "namespace"),
                meta_str(&obj, "name"),
                meta_str(&obj, "uid"),
            );
            // Both are sorted by (namespace, name): entries before this pod are gone.
            while old.next_if(|s| s.key() < (ns, name)).is_some() {}
            let prev = old.next_if(|s| s.key() == (ns, name) && s.uid == uid);
            let mut seen = match prev {
                Some(s) if Arc::ptr_eq(&s.obj, &obj) && s.idle => {
                    pods.push(s);
                    continue;
                }
                Some(mut s) => {
                    let changed = !Arc::ptr_eq(&s.obj, &obj);
                    s.obj = obj;
                    if changed {
                        s.refresh();
                    }
                    s
                }
                None => {
                    let mut s = Seen::new(obj, now);
                    s.refresh();
                    s
                }
            };
            if seen.view.terminating {
                // Graceful deletion: the containers are gone at once. A pod with finalizers
                // stays Terminating (the API server keeps it) until they are cleared, and the
                // controller keeps seeing it.
                if !seen.view.finalizers.is_empty() {
                    let uid = seen.uid.clone();
                    let written = self
                        .store
                        .modify(Kind::Pod, &seen.namespace, &seen.name, |p| {
                            if meta_str(p, "uid") != uid {
                                return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                            }
                            kubelet::terminate(p, now_ts);
                            Ok(())
                        });
                    if let Ok(v) = written
                        && !Arc::ptr_eq(&v, &seen.obj)
                    {
                        seen.obj = v;
                        seen.refresh();
                        self.note_ready(&mut seen);
                    }
                    seen.idle = true;
                    pods.push(seen);
                    continue;
                }
                if let Err(e) = self.store.delete(Kind::Pod, &seen.namespace, &seen.name) {
                    tracing::debug!(pod = seen.name, reason = %e.reason, "kubelet could not finish a deletion");
                }
                continue;
            }
            wake = earliest(wake, self.kubelet_step(&mut seen, now, now_ts));
            pods.push(seen);
        }
        self.pods = pods;
        wake
    }

    /// The kubelet's work on one pod that changed or has something pending.
    fn kubelet_step(&self, seen: &mut Seen, now: Instant, now_ts: Timestamp) -> Option<Instant> {
        let sig = kubelet::image_signature(&seen.obj);
        if seen.clock.0 != sig {
            seen.clock = (sig, now);
        }
        let waited = now.duration_since(seen.clock.1);
        self.note_ready(seen);
        let cfg = &self.kubelet;
        let mut wake = None;
        if needs_kubelet(&seen.obj, cfg) {
            let mut next = (*seen.obj).clone();
            let due = kubelet::act(&mut next, cfg, waited, now_ts);
            wake = due.map(|d| now + d);
            if next != *seen.obj {
                let uid = seen.uid.as_str();
                let written = self
                    .store
                    .modify(Kind::Pod, &seen.namespace, &seen.name, |cur| {
                        if meta_str(cur, "uid") != uid {
                            return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                        }
                        kubelet::act(cur, cfg, waited, now_ts);
                        Ok(())
                    });
                match written {
                    Ok(v) => {
                        seen.obj = v;
                        seen.refresh();
                        self.note_ready(seen);
                    }
                    Err(e) => {
                        tracing::debug!(pod = seen.name, reason = %e.reason, "kubelet write skipped")
                    }
                }
            }
        }
        seen.idle = !needs_kubelet(&seen.obj, cfg);
        wake
    }

    /// Records a pod's transition to Ready in the report.
    fn note_ready(&self, seen: &mut Seen) {
        let p = &seen.obj;
        let ready = p["status"]["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        match ready {
            Some(c) if p["status"]["phase"] == "Running" => {
                if !seen.ready {
                    seen.ready = true;
                    let at = c["lastTransitionTime"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok())
                        .unwrap_or_else(Timestamp::now);
                    self.report.record_ready(&seen.name, at);
                }
            }
            _ => seen.ready = false,
        }
    }

    /// Deletes pods and revisions whose owning set no longer exists. Runs when the sets changed
    /// since the last pass (a set was deleted or replaced).
    fn collect_garbage(&mut self, sets: &[Arc<Value>]) {
        let uids: HashSet<&str> = sets.iter().map(|s| meta_str(s, "uid")).collect();
        let known: HashSet<String> = uids.iter().map(|u| u.to_string()).collect();
        if self.set_uids.as_ref() == Some(&known) {
            return;
        }
        self.set_uids = Some(known);
        for kind in [Kind::Pod, Kind::ControllerRevision] {
            let (objs, _) = self.store.list_shared(kind, None);
            for o in &objs {
                let orphaned = o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter().any(|r| {
                            r["controller"] == true
                                && r["kind"] == crate::kruise::KIND
                                && r["apiVersion"] == crate::kruise::API_VERSION
                                && !uids.contains(r["uid"].as_str().unwrap_or_default())
                        })
                    });
                if orphaned {
                    let _ = self
                        .store
                        .delete(kind, meta_str(o, "namespace"), meta_str(o, "name"));
                }
            }
        }
    }

    /// Reconciles one set and applies the plan; returns when to look again.
    fn reconcile_set(&mut self, stored_obj: &Value, set: &Asts) -> Option<Instant> {
        let ns = set.namespace().to_string();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let (revs, _) = self.store.list_shared(Kind::ControllerRevision, Some(&ns));
        let mut revisions: Vec<Revision> = revs
            .iter()
            .filter(|r| pod::is_owned_by(r, &uid))
            .filter_map(|r| Revision::from_value(r))
            .collect();
        let resolved = revision::resolve(set, &revisions);
        match &resolved.change {
            RevisionChange::None => {}
            RevisionChange::Create(obj) => {
                if let Err(e) = self
                    .store
                    .create(Kind::ControllerRevision, &ns, obj.clone())
                    && e.code != 409
                {
                    tracing::warn!(set = set.name(), reason = %e.reason, "could not create a revision");
                    return None;
                }
                revisions.push(resolved.update.clone());
            }
            RevisionChange::Bump { name, number } => {
                let number = *number;
                let _ = self.store.modify(Kind::ControllerRevision, &ns, name, |r| {
                    r["revision"] = number.into();
                    Ok(())
                });
                for r in revisions.iter_mut().filter(|r| &r.name == name) {
                    r.number = number;
                }
            }
        }
        // The owned pods' views are lent to the pure reconcile and put back afterwards.
        let owned: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].owned_by(&ns, &uid))
            .collect();
        let views: Vec<PodView> = owned
            .iter()
            .map(|&i| std::mem::take(&mut self.pods[i].view))
            .collect();
        // `spec.serviceName` is not part of the typed view: only pods use it.
        let service_name = stored_obj["spec"]["serviceName"].as_str();
        let now = Timestamp::now();
        let plan = reconcile::reconcile(Input {
            set,
            pods: &views,
            revisions: &revisions,
            resolved: &resolved,
            service_name,
            now,
        });
        let to_delete = {
            let live: Vec<&str> = views.iter().map(|p| p.revision()).collect();
            revision::history_to_delete(
                set,
                &revisions,
                &live,
                &resolved.current.name,
                &resolved.update.name,
            )
        };
        for (&i, view) in owned.iter().zip(views) {
            self.pods[i].view = view;
        }
        let requeue = plan
            .requeue_after
            .and_then(|d| Duration::try_from(d).ok())
            .map(|d| Instant::now() + d);
        self.apply(set, &ns, plan, now);
        for name in to_delete {
            let _ = self.store.delete(Kind::ControllerRevision, &ns, &name);
        }
        requeue
    }

    /// The role label of a pod as this pass saw it.
    fn label_of(&self, ns: &str, name: &str) -> Option<String> {
        let i = self
            .pods
            .binary_search_by(|s| s.key().cmp(&(ns, name)))
            .ok()?;
        self.pods[i].obj["metadata"]["labels"][ROLE_LABEL]
            .as_str()
            .map(str::to_string)
    }

    /// Records a Kruise Event on the set for a pod action.
    fn record_event(&self, set: &Asts, ns: &str, pod: &str, action: PodAction<'_>) {
        let now = Timestamp::now();
        let nanos = u64::try_from(now.as_nanosecond()).unwrap_or_default();
        let stamp = nanos.max(self.event_seq.get() + 1);
        self.event_seq.set(stamp);
        let event = events::pod_event(set, pod, action, now, stamp);
        if let Err(e) = self.store.create(Kind::Event, ns, event) {
            tracing::debug!(pod, reason = %e.reason, "event not recorded");
        }
    }

    fn apply(&self, set: &Asts, ns: &str, plan: Plan, now: Timestamp) {
        for r in &plan.refresh {
            let _ = self.store.modify(Kind::Pod, ns, &r.name, |p| {
                if meta_str(p, "uid") != r.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                if r.mark_inplace_ready {
                    set_condition(p, INPLACE_READY_CONDITION, true, "", now);
                }
                if r.mark_kruise_ready {
                    set_condition(p, KRUISE_READY_CONDITION, true, "", now);
                }
                if let Some(state) = &r.lifecycle {
                    p["metadata"]["labels"][LIFECYCLE_STATE_LABEL] = state.as_str().into();
                    p["metadata"]["annotations"][LIFECYCLE_TIMESTAMP_ANNOTATION] =
                        now.to_string().into();
                }
                kubelet::recompute_ready(p, now);
                Ok(())
            });
        }
        for obj in plan.create {
            let name = meta_str(&obj, "name").to_string();
            match self.store.create(Kind::Pod, ns, obj) {
                Ok(_) => {
                    self.arbiter.ensure_member(&name);
                    self.record_event(set, ns, &name, PodAction::Created);
                }
                Err(e) => tracing::debug!(pod = name, reason = %e.reason, "pod not created"),
            }
        }
        for d in &plan.delete {
            if let DeleteReason::Update { from, to } = &d.reason {
                let role = self.arbiter.role(&d.name);
                self.report
                    .record_update(&d.name, from, to, role, self.label_of(ns, &d.name));
            }
            let still_same = self
                .store
                .get_shared(Kind::Pod, ns, &d.name)
                .is_some_and(|p| meta_str(&p, "uid") == d.uid);
            if still_same && self.store.delete_or_mark(Kind::Pod, ns, &d.name).is_ok() {
                self.record_event(set, ns, &d.name, PodAction::Deleted);
                if d.reason == DeleteReason::Condemned {
                    self.arbiter.forget_member(&d.name);
                }
            }
        }
        for u in &plan.in_place {
            let role = self.arbiter.role(&u.name);
            self.report
                .record_update(&u.name, &u.from, &u.to, role, self.label_of(ns, &u.name));
            // Kruise first writes `InPlaceUpdateReady=False` (and so `Ready=False`) as a
            // status write, then the pod: a watch sees the pod unready at its old revision
            // before it sees the new one.
            let _ = self.store.modify(Kind::Pod, ns, &u.name, |p| {
                if meta_str(p, "uid") != u.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                if pod::has_readiness_gate(p, INPLACE_READY_CONDITION) {
                    set_condition(p, INPLACE_READY_CONDITION, false, "StartInPlaceUpdate", now);
                    kubelet::recompute_ready(p, now);
                }
                Ok(())
            });
            let updated = self.store.modify(Kind::Pod, ns, &u.name, |p| {
                if meta_str(p, "uid") != u.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                in_place_update(p, &u.old_template, &u.new_template, &u.to, now);
                Ok(())
            });
            if updated.is_ok() {
                self.record_event(set, ns, &u.name, PodAction::InPlace { revision: &u.to });
            }
        }
        for park in &plan.park {
            let _ = self.store.modify(Kind::Pod, ns, &park.name, |p| {
                if meta_str(p, "uid") != park.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                p["metadata"]["labels"][LIFECYCLE_STATE_LABEL] = park.state.as_str().into();
                p["metadata"]["annotations"][LIFECYCLE_TIMESTAMP_ANNOTATION] =
                    now.to_string().into();
                for (k, v) in &park.add_labels {
                    p["metadata"]["labels"][k] = v.as_str().into();
                }
                for f in &park.add_finalizers {
                    if !p["metadata"]["finalizers"].is_array() {
                        p["metadata"]["finalizers"] = serde_json::json!([]);
                    }
                    if let Some(fs) = p["metadata"]["finalizers"].as_array_mut()
                        && !fs.iter().any(|x| x == f)
                    {
                        fs.push(f.as_str().into());
                    }
                }
                if pod::has_readiness_gate(p, KRUISE_READY_CONDITION) {
                    set_condition(p, KRUISE_READY_CONDITION, !park.mark_not_ready, "", now);
                    kubelet::recompute_ready(p, now);
                }
                Ok(())
            });
        }
        if plan.write_status || set.status.is_none() {
            let status = match serde_json::to_value(&plan.status) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "unserialisable status");
                    return;
                }
            };
            let _ = self.store.modify(Kind::StatefulSet, ns, set.name(), |s| {
                s["status"] = status;
                Ok(())
            });
        }
    }
}

/// Whether the kubelet may have something to do for this pod: it is not running yet, a
/// container runs another image than its spec asks for, it crash-loops, or its readiness is
/// forced or not what its containers and readiness gates say (a client flipped a gate).
fn needs_kubelet(p: &Value, cfg: &KubeletConfig) -> bool {
    if p["status"]["phase"] != "Running" {
        return true;
    }
    let statuses = p["status"]["containerStatuses"].as_array();
    let images_match = p["spec"]["containers"].is_array()
        && containers(p).all(|(name, image)| {
            statuses.is_some_and(|ss| {
                ss.iter()
                    .any(|s| s["name"] == name && s["image"].as_str() == Some(image))
            })
        });
    let crash = !cfg.crash_image_marker.is_empty()
        && kubelet::image_signature(p).contains(&cfg.crash_image_marker);
    let forced = !p["metadata"]["annotations"][UNREADY_ANNOTATION].is_null();
    !images_match || crash || forced || !kubelet::ready_settled(p)
}
