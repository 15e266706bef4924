//! The async driver: runs the Kruise controller ([`crate::kruise`]) and the kubelet
//! ([`crate::kubelet`]) against the store.
//!
//! It wakes on store changes (pods, sets, revisions) and on timers for what is due later (pod
//! start delays, crash-loop restarts, minReadySeconds), never by polling. Each wake is one pass:
//! the kubelet acts on every pod, then every set is reconciled and its [`Plan`] applied. A
//! pass that changes nothing writes nothing, so the passes its own writes trigger settle.
//! When the controller begins updating a pod it tells the [`Report`] which role the arbiter
//! held for it at that moment.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use crate::arbiter::Arbiter;
use crate::kruise::pod::{self, PodView, in_place_update, is_owned_by, set_condition};
use crate::kruise::reconcile::{self, DeleteReason, Input, Plan};
use crate::kruise::revision::{self, Revision, RevisionChange};
use crate::kruise::types::Asts;
use crate::kruise::{
    INPLACE_READY_CONDITION, LIFECYCLE_STATE_LABEL, LIFECYCLE_TIMESTAMP_ANNOTATION,
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
            clocks: HashMap::new(),
            ready: HashSet::new(),
            set_uids: None,
        };
        loop {
            let wake = driver.pass();
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
                    Some(Ok(c)) if relevant(c.kind) => break,
                    Some(Ok(_)) => {}
                }
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

fn relevant(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Pod | Kind::StatefulSet | Kind::ControllerRevision
    )
}

/// Makes a pod unready (`ready = false`) until called again with `true`: the kubelet reports
/// its containers unready while the `sim.baton.dev/unready` annotation says so.
pub fn set_pod_ready(store: &Store, ns: &str, name: &str, ready: bool) -> Result<Value, ApiError> {
    store.modify(Kind::Pod, ns, name, |p| {
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
}

/// Deletes a pod, as a user or an eviction would; its set recreates it.
pub fn delete_pod(store: &Store, ns: &str, name: &str) -> Result<Value, ApiError> {
    store.delete(Kind::Pod, ns, name)
}

struct Driver {
    store: Store,
    report: Report,
    arbiter: Arbiter,
    kubelet: KubeletConfig,
    /// Per pod UID: its image signature and when the kubelet first saw it.
    clocks: HashMap<String, (String, Instant)>,
    /// UIDs of pods last seen Ready (to record each Ready transition once).
    ready: HashSet<String>,
    /// UIDs of the sets at the last garbage collection.
    set_uids: Option<HashSet<String>>,
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
        let (mut wake, pods) = self.kubelet_pass();
        let (sets, _) = self.store.list(Kind::StatefulSet, None);
        self.collect_garbage(&sets);
        for set in &sets {
            match Asts::from_value(set) {
                Ok(set) => wake = earliest(wake, self.reconcile_set(&set, &pods)),
                Err(e) => {
                    tracing::warn!(error = %e, name = meta_str(set, "name"), "unreadable statefulset")
                }
            }
        }
        wake
    }

    /// The kubelet acts on every pod that needs it. Returns the next timer and the pods as
    /// they are after its writes (the controller's view for this pass, like an informer
    /// cache: any later change triggers another pass).
    fn kubelet_pass(&mut self) -> (Option<Instant>, Vec<Value>) {
        let now = Instant::now();
        let now_ts = Timestamp::now();
        let (mut pods, _) = self.store.list(Kind::Pod, None);
        let mut wake = None;
        let mut live = HashSet::new();
        let mut gone = HashSet::new();
        for p in &mut pods {
            let (uid, ns, name) = (
                meta_str(p, "uid"),
                meta_str(p, "namespace"),
                meta_str(p, "name"),
            );
            live.insert(uid.to_string());
            if !p["metadata"]["deletionTimestamp"].is_null() {
                // Graceful deletion: the containers are gone at once.
                if let Err(e) = self.store.delete(Kind::Pod, ns, name) {
                    tracing::debug!(pod = name, reason = %e.reason, "kubelet could not finish a deletion");
                }
                gone.insert(uid.to_string());
                continue;
            }
            let sig = kubelet::image_signature(p);
            let clock = self
                .clocks
                .entry(uid.to_string())
                .or_insert_with(|| (sig.clone(), now));
            if clock.0 != sig {
                *clock = (sig, now);
            }
            let waited = now.duration_since(clock.1);
            self.note_ready(p, name, uid);
            if !needs_kubelet(p, &self.kubelet) {
                continue;
            }
            let mut next = p.clone();
            let due = kubelet::act(&mut next, &self.kubelet, waited, now_ts);
            wake = earliest(wake, due.map(|d| now + d));
            if next == *p {
                continue;
            }
            let cfg = &self.kubelet;
            let written = self.store.modify(Kind::Pod, ns, name, |cur| {
                if meta_str(cur, "uid") != uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                kubelet::act(cur, cfg, waited, now_ts);
                Ok(())
            });
            match written {
                Ok(v) => {
                    let (name, uid) = (name.to_string(), uid.to_string());
                    self.note_ready(&v, &name, &uid);
                    *p = v;
                }
                Err(e) => tracing::debug!(pod = name, reason = %e.reason, "kubelet write skipped"),
            }
        }
        self.clocks.retain(|uid, _| live.contains(uid));
        self.ready.retain(|uid| live.contains(uid));
        pods.retain(|p| !gone.contains(meta_str(p, "uid")));
        (wake, pods)
    }

    /// Records a pod's transition to Ready in the report.
    fn note_ready(&mut self, p: &Value, name: &str, uid: &str) {
        let ready = p["status"]["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        match ready {
            Some(c) if p["status"]["phase"] == "Running" => {
                if !self.ready.contains(uid) {
                    self.ready.insert(uid.to_string());
                    let at = c["lastTransitionTime"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok())
                        .unwrap_or_else(Timestamp::now);
                    self.report.record_ready(name, at);
                }
            }
            _ => {
                self.ready.remove(uid);
            }
        }
    }

    /// Deletes pods and revisions whose owning set no longer exists. Runs when the sets changed
    /// since the last pass (a set was deleted or replaced).
    fn collect_garbage(&mut self, sets: &[Value]) {
        let uids: HashSet<&str> = sets.iter().map(|s| meta_str(s, "uid")).collect();
        let known: HashSet<String> = uids.iter().map(|u| u.to_string()).collect();
        if self.set_uids.as_ref() == Some(&known) {
            return;
        }
        self.set_uids = Some(known);
        for kind in [Kind::Pod, Kind::ControllerRevision] {
            let (objs, _) = self.store.list(kind, None);
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
    fn reconcile_set(&self, stored: &Asts, all_pods: &[Value]) -> Option<Instant> {
        let set = stored.defaulted();
        let ns = set.namespace().to_string();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let (revs, _) = self.store.list(Kind::ControllerRevision, Some(&ns));
        let mut revisions: Vec<Revision> = revs
            .iter()
            .filter(|r| pod::is_owned_by(r, &uid))
            .filter_map(Revision::from_value)
            .collect();
        let resolved = revision::resolve(&set, &revisions);
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
        let owned: Vec<&Value> = all_pods
            .iter()
            .filter(|p| meta_str(p, "namespace") == ns && is_owned_by(p, &uid))
            .collect();
        let views: Vec<PodView> = owned.iter().map(|p| PodView::from_value(p)).collect();
        let service_name = stored_service_name(&self.store, &ns, set.name());
        let now = Timestamp::now();
        let plan = reconcile::reconcile(Input {
            set: &set,
            pods: &views,
            revisions: &revisions,
            resolved: &resolved,
            service_name: service_name.as_deref(),
            now,
        });
        let requeue = plan
            .requeue_after
            .and_then(|d| Duration::try_from(d).ok())
            .map(|d| Instant::now() + d);
        self.apply(&set, &ns, &owned, plan, now);
        let live: Vec<&str> = views.iter().map(|p| p.revision()).collect();
        for name in revision::history_to_delete(
            &set,
            &revisions,
            &live,
            &resolved.current.name,
            &resolved.update.name,
        ) {
            let _ = self.store.delete(Kind::ControllerRevision, &ns, &name);
        }
        requeue
    }

    fn apply(&self, set: &Asts, ns: &str, pods: &[&Value], plan: Plan, now: Timestamp) {
        let label_of = |name: &str| {
            pods.iter()
                .find(|p| meta_str(p, "name") == name)
                .and_then(|p| p["metadata"]["labels"][ROLE_LABEL].as_str())
                .map(str::to_string)
        };
        for r in &plan.refresh {
            let _ = self.store.modify(Kind::Pod, ns, &r.name, |p| {
                if meta_str(p, "uid") != r.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                if r.mark_inplace_ready {
                    set_condition(p, INPLACE_READY_CONDITION, true, "", now);
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
                Ok(_) => self.arbiter.ensure_member(&name),
                Err(e) => tracing::debug!(pod = name, reason = %e.reason, "pod not created"),
            }
        }
        for d in &plan.delete {
            if let DeleteReason::Update { from, to } = &d.reason {
                let role = self.arbiter.roles().get(&d.name).copied();
                self.report
                    .record_update(&d.name, from, to, role, label_of(&d.name));
            }
            let still_same = self
                .store
                .get(Kind::Pod, ns, &d.name)
                .is_some_and(|p| meta_str(&p, "uid") == d.uid);
            if still_same
                && self.store.delete(Kind::Pod, ns, &d.name).is_ok()
                && d.reason == DeleteReason::Condemned
            {
                self.arbiter.forget_member(&d.name);
            }
        }
        for u in &plan.in_place {
            let role = self.arbiter.roles().get(&u.name).copied();
            self.report
                .record_update(&u.name, &u.from, &u.to, role, label_of(&u.name));
            let _ = self.store.modify(Kind::Pod, ns, &u.name, |p| {
                if meta_str(p, "uid") != u.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                in_place_update(p, &u.old_template, &u.new_template, &u.to, now);
                Ok(())
            });
        }
        for park in &plan.park {
            let _ = self.store.modify(Kind::Pod, ns, &park.name, |p| {
                if meta_str(p, "uid") != park.uid {
                    return Err(ApiError::new(409, "Conflict", "the pod was replaced"));
                }
                p["metadata"]["labels"][LIFECYCLE_STATE_LABEL] = park.state.as_str().into();
                p["metadata"]["annotations"][LIFECYCLE_TIMESTAMP_ANNOTATION] =
                    now.to_string().into();
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

/// `spec.serviceName` of the stored set (not part of the typed view: only pods use it).
fn stored_service_name(store: &Store, ns: &str, name: &str) -> Option<String> {
    store
        .get(Kind::StatefulSet, ns, name)
        .and_then(|s| s["spec"]["serviceName"].as_str().map(str::to_string))
}

/// Whether the kubelet may have something to do for this pod: it is not running yet, a
/// container runs another image than its spec asks for, it crash-loops, or its readiness is
/// forced or not settled.
fn needs_kubelet(p: &Value, cfg: &KubeletConfig) -> bool {
    if p["status"]["phase"] != "Running" {
        return true;
    }
    let statuses = p["status"]["containerStatuses"].as_array();
    let images_match = p["spec"]["containers"].as_array().is_some_and(|cs| {
        cs.iter().all(|c| {
            statuses.is_some_and(|ss| {
                ss.iter()
                    .any(|s| s["name"] == c["name"] && s["image"] == c["image"])
            })
        })
    });
    let crash = !cfg.crash_image_marker.is_empty()
        && kubelet::image_signature(p).contains(&cfg.crash_image_marker);
    let forced = !p["metadata"]["annotations"][UNREADY_ANNOTATION].is_null();
    let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    !images_match || crash || forced || !ready
}
