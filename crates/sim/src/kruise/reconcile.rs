//! One reconcile pass of the Advanced StatefulSet controller, as a pure function.
//!
//! [`reconcile`] restates `updateStatefulSet` + `rollingUpdateStatefulsetPods` +
//! `completeRollingUpdate`: it fills the ordinal slots, creates missing pods at the revision
//! `isCurrentRevisionNeeded` picks, deletes failed and condemned pods, then walks the update
//! order under the `maxUnavailable` budget and emits in-place updates or deletions. The result
//! is a [`Plan`]; the driver applies it to the store.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::pod::{PodView, can_update_in_place, new_pod};
use super::revision::{Resolved, Revision};
use super::types::{Asts, AstsStatus, PodUpdatePolicy};
use super::update::{is_current_revision_needed, scaled_max_unavailable, sort_pods_to_update};
use super::{REVISION_LABEL, SPECIFIED_DELETE_LABEL};

/// Why the controller deletes a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteReason {
    /// Outside the live ordinal range (scale down, reserved ordinal).
    Condemned,
    /// Phase Failed or Succeeded: replaced by a fresh pod.
    Failed,
    /// ReCreate update from one revision to another.
    Update { from: String, to: String },
    /// Labelled `apps.kruise.io/specified-delete`.
    Specified,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub name: String,
    pub uid: String,
    pub reason: DeleteReason,
}

/// An in-place update of one pod from the `from` revision's template to the `to` one.
#[derive(Debug, Clone, PartialEq)]
pub struct InPlace {
    pub name: String,
    pub uid: String,
    pub from: String,
    pub to: String,
    pub old_template: Value,
    pub new_template: Value,
}

/// `refreshPodState` for one pod whose in-place update finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    pub name: String,
    pub uid: String,
    /// Set `InPlaceUpdateReady=True` (the pod carries the readiness gate).
    pub mark_inplace_ready: bool,
    /// Set `KruisePodReady=True` (the pod carries the gate and has no such condition yet).
    pub mark_kruise_ready: bool,
    /// The lifecycle state to move to (`refreshPodState`).
    pub lifecycle: Option<String>,
}

/// A pod parked by a lifecycle hook instead of being updated or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub name: String,
    pub uid: String,
    /// `PreparingUpdate` or `PreparingDelete`.
    pub state: String,
    /// The hook's `markPodNotReady`: `KruisePodReady` becomes False (True otherwise).
    pub mark_not_ready: bool,
    /// Hook labels and finalizers Kruise puts back on a pod it parks again from `Updated`
    /// (`UpdatePodLifecycleWithHandler`), so that the pod stays parked until released.
    pub add_labels: Vec<(String, String)>,
    pub add_finalizers: Vec<String>,
}

/// What one reconcile wants done, in order: refresh, create, delete, in-place, park, status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub refresh: Vec<Refresh>,
    pub park: Vec<Park>,
    /// Pod objects to create.
    pub create: Vec<Value>,
    pub delete: Vec<Delete>,
    pub in_place: Vec<InPlace>,
    /// The status this pass computed.
    pub status: AstsStatus,
    /// Whether it differs from the stored status in a field Kruise compares.
    pub write_status: bool,
    /// Reconcile again after this long (minReadySeconds waits).
    pub requeue_after: Option<SignedDuration>,
}

impl Plan {
    fn requeue(&mut self, after: SignedDuration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// One slot of the live ordinal range: a stored pod (borrowed from the input) or one this
/// pass creates.
#[derive(Debug, Clone)]
struct Slot<'a> {
    pod: Cow<'a, PodView>,
    /// Created by this pass; not in the store yet.
    new: bool,
}

impl Borrow<PodView> for Slot<'_> {
    fn borrow(&self) -> &PodView {
        &self.pod
    }
}

/// The inputs of one pass.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The set, already defaulted ([`Asts::defaulted`]).
    pub set: &'a Asts,
    /// Pods the set owns.
    pub pods: &'a [PodView],
    /// Every stored revision of the set (for in-place templates).
    pub revisions: &'a [Revision],
    pub resolved: &'a Resolved,
    /// `spec.serviceName`, for the pods' subdomain.
    pub service_name: Option<&'a str>,
    pub now: Timestamp,
}

/// Computes one reconcile pass.
pub fn reconcile(input: Input<'_>) -> Plan {
    let Input {
        set,
        pods,
        revisions,
        resolved,
        service_name,
        now,
    } = input;
    let name = set.name();
    let min_ready = set.min_ready_seconds();
    let current = &resolved.current;
    let update = &resolved.update;
    let old_status = set.status_or_default();
    let mut plan = Plan::default();

    // Refresh (`inplaceupdate.Refresh` + `refreshPodState`): a gated pod gets
    // `InPlaceUpdateReady=True` when it has no such condition yet or its in-place update
    // finished; lifecycle states advance when their hook lets them.
    let hooks = set.spec.lifecycle.clone().unwrap_or_default();
    let released = |hook: &Option<super::types::LifecycleHook>, pod: &PodView| {
        hook.as_ref()
            .is_none_or(|h| h.all_hooked(&pod.labels, &pod.finalizers))
    };
    for pod in pods.iter().filter(|p| !p.terminating) {
        let completed = pod.in_place_completed();
        let mark = completed && pod.inplace_gate && pod.inplace_ready != Some(true);
        let mark_kruise = pod.kruise_gate && pod.kruise_ready.is_none();
        let after_update = || {
            if released(&hooks.in_place_update, pod) {
                "Normal"
            } else {
                "Updated"
            }
        };
        let next = match pod.lifecycle_state() {
            "PreparingNormal" if released(&hooks.pre_normal, pod) => Some("Normal"),
            "PreparingUpdate" if pod.revision() == resolved.update.name => Some(after_update()),
            "Updating" if completed => Some(after_update()),
            "Updated" if released(&hooks.in_place_update, pod) => Some("Normal"),
            _ => None,
        };
        // Kruise writes `InPlaceUpdateReady=True` (a status write) before it moves the
        // lifecycle state (a pod write): a watch sees `Updating` with the condition True
        // first. The state moves in the pass after the condition's.
        let next = next
            .filter(|n| *n != pod.lifecycle_state())
            .filter(|_| !mark);
        // `UpdatePodLifecycle(…, markPodNotReady=false)`: every state change other than
        // parking clears a lifecycle not-ready mark.
        let mark_kruise = mark_kruise || next.is_some() && pod.kruise_ready == Some(false);
        if mark || mark_kruise || next.is_some() {
            plan.refresh.push(Refresh {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                mark_inplace_ready: mark,
                mark_kruise_ready: mark_kruise,
                lifecycle: next.map(str::to_string),
            });
        }
    }
    let lifecycle_moved = plan.refresh.iter().any(|r| r.lifecycle.is_some());

    // Slots of the live range, and the condemned pods outside it.
    let (start, end) = set.replicas_range();
    let reserved = set.reserved_ordinals();
    let len = usize::try_from(end - start).unwrap_or(0);
    let mut slots: Vec<Option<Slot>> = vec![None; len];
    let mut condemned: Vec<(i64, &PodView)> = Vec::new();
    for pod in pods {
        match pod.ordinal(name) {
            Some(o) if o >= start && o < end && !reserved.contains(&o) => {
                let i = usize::try_from(o - start).unwrap_or(0);
                slots[i] = Some(Slot {
                    pod: Cow::Borrowed(pod),
                    new: false,
                });
            }
            o => condemned.push((o.unwrap_or(-1), pod)),
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));

    // Missing pods, in ascending order, each seeing the ones filled before it.
    for ord in start..end {
        let i = usize::try_from(ord - start).unwrap_or(0);
        if reserved.contains(&ord) || slots[i].is_some() {
            continue;
        }
        let rev = if is_current_revision_needed(set, &update.name, ord, &slots) {
            current
        } else {
            update
        };
        let object = new_pod(set, ord, &rev.name, &rev.template, service_name, now);
        let mut view = PodView::from_value(&object);
        view.phase.clear();
        view.labels.insert(REVISION_LABEL.into(), rev.name.clone());
        slots[i] = Some(Slot {
            pod: Cow::Owned(view),
            new: true,
        });
        plan.create.push(object);
    }
    // Only the first missing pod is created under OrderedReady; trimmed in the loop below.
    let mut to_create = std::mem::take(&mut plan.create);
    to_create.reverse();

    let monotonic = !set.is_parallel();
    let mut status = AstsStatus {
        observed_generation: set.generation(),
        current_revision: current.name.clone(),
        update_revision: update.name.clone(),
        collision_count: Some(resolved.collision_count),
        label_selector: crate::selector::from_label_selector(&set.spec.selector)
            .map(|s| crate::selector::render(&s))
            .unwrap_or_default(),
        ..AstsStatus::default()
    };

    let finish = |mut plan: Plan,
                  mut status: AstsStatus,
                  slots: &[Option<Slot>],
                  condemned: &[(i64, &PodView)]| {
        count_status(
            &mut status,
            slots,
            condemned,
            min_ready,
            now,
            &current.name,
            &update.name,
        );
        complete_rolling_update(set, &mut status);
        plan.write_status = status.differs_from(&old_status);
        plan.status = status;
        plan
    };

    // processReplica over the live slots. In Parallel mode `scaleStrategy.maxUnavailable` is a
    // budget each created, failed, terminating or unavailable pod spends; once spent, the loop
    // stops (the rest of the pass goes on): pods are created a budget's worth at a time, the
    // next ones once those are available.
    let mut scale_budget = set
        .spec
        .scale_strategy
        .as_ref()
        .and_then(|s| s.max_unavailable.as_ref())
        .filter(|_| !monotonic)
        .map(|v| scaled_max_unavailable(Some(v), set.replicas()));
    let has_budget = scale_budget.is_some();
    let mut spent = || {
        scale_budget.as_mut().is_some_and(|n| {
            *n -= 1;
            *n <= 0
        })
    };
    let mut exit = false;
    for slot in slots.iter().flatten() {
        let pod = &slot.pod;
        if slot.new {
            if let Some(obj) = to_create.pop() {
                plan.create.push(obj);
            }
            if monotonic {
                exit = true;
                break;
            }
            if spent() {
                break;
            }
            continue;
        }
        if pod.is_failed() {
            if !pod.terminating {
                plan.delete.push(Delete {
                    name: pod.name.clone(),
                    uid: pod.uid.clone(),
                    reason: DeleteReason::Failed,
                });
            }
            if monotonic {
                exit = true;
                break;
            }
            if spent() {
                break;
            }
            continue;
        }
        if pod.terminating {
            if monotonic {
                exit = true;
                break;
            }
            if spent() {
                break;
            }
            continue;
        }
        if let Err(wait) = pod.available(min_ready, now) {
            if monotonic {
                if let Some(wait) = wait {
                    plan.requeue(wait);
                }
                exit = true;
                break;
            }
            if has_budget && let Some(wait) = wait {
                plan.requeue(wait);
            }
            if spent() {
                break;
            }
        }
    }
    if exit {
        return finish(plan, status, &slots, &condemned);
    }

    // processCondemned, highest ordinal first.
    for &(_, pod) in &condemned {
        if pod.terminating {
            if monotonic {
                return finish(plan, status, &slots, &condemned);
            }
            continue;
        }
        delete_pod(&mut plan, &hooks, pod, DeleteReason::Condemned);
        if monotonic {
            return finish(plan, status, &slots, &condemned);
        }
    }

    count_status(
        &mut status,
        &slots,
        &condemned,
        min_ready,
        now,
        &current.name,
        &update.name,
    );
    let Some(ru) = set.rolling_update() else {
        // OnDelete: pods change revision only when someone deletes them.
        complete_rolling_update(set, &mut status);
        plan.write_status = status.differs_from(&old_status);
        plan.status = status;
        return plan;
    };
    let status_done = |mut plan: Plan, mut status: AstsStatus| {
        complete_rolling_update(set, &mut status);
        plan.write_status = status.differs_from(&old_status);
        plan.status = status;
        plan
    };
    if lifecycle_moved || ru.paused {
        return status_done(plan, status);
    }

    // The unavailable budget, counted over every live pod.
    let max_unavailable = scaled_max_unavailable(ru.max_unavailable.as_ref(), set.replicas());
    let max_unavailable = usize::try_from(max_unavailable).unwrap_or(usize::MAX);
    let mut unavailable: BTreeSet<usize> = BTreeSet::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(slot) = slot else { continue };
        let pod = &slot.pod;
        if slot.new || !pod.is_healthy() || !pod.in_place_completed() {
            unavailable.insert(i);
        } else if let Err(wait) = pod.available(min_ready, now) {
            if let Some(wait) = wait {
                plan.requeue(wait);
            }
            unavailable.insert(i);
        }
    }

    // Specified deletes, highest slot first; a blocked pod is skipped, not a stop.
    let mut specified: BTreeSet<usize> = BTreeSet::new();
    for (i, slot) in slots.iter().enumerate().rev() {
        let Some(slot) = slot else { continue };
        let pod = &slot.pod;
        if slot.new || pod.terminating || !pod.labels.contains_key(SPECIFIED_DELETE_LABEL) {
            continue;
        }
        if unavailable.len() >= max_unavailable && !unavailable.contains(&i) {
            continue;
        }
        delete_pod(&mut plan, &hooks, pod, DeleteReason::Specified);
        specified.insert(i);
        unavailable.insert(i);
        if pod.revision() == update.name {
            status.updated_replicas -= 1;
        }
    }

    let order = sort_pods_to_update(Some(&ru), &update.name, set.replicas(), &slots);
    let policy = set.pod_update_policy();
    // `can_update_in_place` per revision pair, not per pod: a wave updates many pods from the
    // same revision.
    let mut in_place_memo: Vec<(&str, bool)> = Vec::new();
    for i in order {
        let Some(slot) = &slots[i] else { continue };
        let pod = &slot.pod;
        if pod.revision() == update.name {
            continue;
        }
        if unavailable.len() >= max_unavailable && !unavailable.contains(&i) {
            break;
        }
        if slot.new || specified.contains(&i) || pod.terminating {
            unavailable.insert(i);
            continue;
        }
        let old = revisions.iter().find(|r| r.name == pod.revision());
        let in_place = match (policy, old) {
            (PodUpdatePolicy::ReCreate, _) | (_, None) => None,
            (_, Some(old)) => in_place_able(&mut in_place_memo, old, update).then_some(old),
        };
        // `inplacing || actuallyDeleted`: a pod parked in PreparingUpdate counts as changed, one
        // parked in PreparingDelete does not (measured on Kruise 1.5.5: `currentReplicas`
        // drops for the former only).
        let changed = match (in_place, policy) {
            (Some(old), _) => {
                // `inPlaceUpdatePod`: a hooked pod is parked in PreparingUpdate instead.
                let hooked = hooks
                    .in_place_update
                    .as_ref()
                    .is_some_and(|h| h.is_hooked(&pod.labels, &pod.finalizers));
                match pod.lifecycle_state() {
                    "PreparingDelete" => continue,
                    "PreparingUpdate" if hooked => true,
                    "" | "Normal" | "PreparingNormal" | "Updated"
                        if hooked
                            || pod.lifecycle_state() == "Updated"
                                && hooks.in_place_update.is_some() =>
                    {
                        let hook = hooks.in_place_update.clone().unwrap_or_default();
                        let again = pod.lifecycle_state() == "Updated";
                        plan.park.push(Park {
                            name: pod.name.clone(),
                            uid: pod.uid.clone(),
                            state: "PreparingUpdate".into(),
                            mark_not_ready: hook.mark_pod_not_ready,
                            add_labels: if again {
                                hook.labels_handler.into_iter().collect()
                            } else {
                                Vec::new()
                            },
                            add_finalizers: if again {
                                hook.finalizers_handler
                            } else {
                                Vec::new()
                            },
                        });
                        true
                    }
                    _ => {
                        plan.in_place.push(InPlace {
                            name: pod.name.clone(),
                            uid: pod.uid.clone(),
                            from: old.name.clone(),
                            to: update.name.clone(),
                            old_template: old.template.clone(),
                            new_template: update.template.clone(),
                        });
                        true
                    }
                }
            }
            // InPlaceOnly refuses to recreate; Kruise reports an error and retries.
            (None, PodUpdatePolicy::InPlaceOnly) => continue,
            (None, _) => delete_pod(
                &mut plan,
                &hooks,
                pod,
                DeleteReason::Update {
                    from: pod.revision().to_string(),
                    to: update.name.clone(),
                },
            ),
        };
        unavailable.insert(i);
        if changed && pod.revision() == current.name {
            status.current_replicas -= 1;
        }
    }
    status_done(plan, status)
}

/// Whether pods at `old` can move to `update` in place, remembered per old revision.
fn in_place_able<'r>(
    memo: &mut Vec<(&'r str, bool)>,
    old: &'r Revision,
    update: &Revision,
) -> bool {
    if let Some((_, able)) = memo.iter().find(|(name, _)| *name == old.name) {
        return *able;
    }
    let able = can_update_in_place(&old.template, &update.template);
    memo.push((&old.name, able));
    able
}

/// `deletePod`: with a preDelete hook holding the pod, park it in PreparingDelete (once)
/// instead of deleting it.
///
/// Returns whether the pod is actually deleted (Kruise's `actuallyDeleted`).
fn delete_pod(
    plan: &mut Plan,
    hooks: &super::types::Lifecycle,
    pod: &PodView,
    reason: DeleteReason,
) -> bool {
    let hooked = hooks
        .pre_delete
        .as_ref()
        .is_some_and(|h| h.is_hooked(&pod.labels, &pod.finalizers));
    if hooked {
        if pod.lifecycle_state() != "PreparingDelete" {
            plan.park.push(Park {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                state: "PreparingDelete".into(),
                mark_not_ready: hooks
                    .pre_delete
                    .as_ref()
                    .is_some_and(|h| h.mark_pod_not_ready),
                add_labels: Vec::new(),
                add_finalizers: Vec::new(),
            });
        }
        return false;
    }
    plan.delete.push(Delete {
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        reason,
    });
    true
}

/// `computeReplicaStatus` over the stored pods (pods created by this pass are not counted).
fn count_status(
    status: &mut AstsStatus,
    slots: &[Option<Slot>],
    condemned: &[(i64, &PodView)],
    min_ready: i64,
    now: Timestamp,
    current: &str,
    update: &str,
) {
    let pods = slots
        .iter()
        .flatten()
        .filter(|s| !s.new)
        .map(|s| &*s.pod)
        .chain(condemned.iter().map(|&(_, p)| p));
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    let (mut current_n, mut updated, mut updated_ready, mut updated_available) = (0, 0, 0, 0);
    for pod in pods {
        replicas += 1;
        if pod.phase == "Running" && pod.ready {
            ready += 1;
            let avail = pod.available(min_ready, now).is_ok();
            if avail {
                available += 1;
            }
            if pod.revision() == update {
                updated_ready += 1;
                if avail {
                    updated_available += 1;
                }
            }
        }
        if !pod.terminating {
            if pod.revision() == current {
                current_n += 1;
            }
            if pod.revision() == update {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = ready;
    status.available_replicas = available;
    status.current_replicas = current_n;
    status.updated_replicas = updated;
    status.updated_ready_replicas = updated_ready;
    status.updated_available_replicas = updated_available;
}

/// `completeRollingUpdate`: once every pod is updated and ready, the update revision becomes
/// the current one.
fn complete_rolling_update(set: &Asts, status: &mut AstsStatus) {
    if set.is_rolling_update()
        && status.updated_replicas == status.replicas
        && status.ready_replicas == status.replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}
