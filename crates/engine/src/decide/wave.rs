//! What the next wave does and which roles change after it (SPEC §1, steps 3.1–3.8).
//!
//! Safety rests on one inequality. Kruise, in unordered mode, updates the pods of
//! `done ++ waiting` up to `replicas - partition` entries, where `done` holds every counted
//! pod already at the update revision or terminating and `waiting` the other pods, ranked
//! with `baton.dev/selected` first. With `partition = |P| - |U| - |S|` that quota is
//! `|U| + |S|`, and `|done| >= |U|`, so at most `|S|` waiting pods are updated: the
//! selected ones, which are idle.

use std::collections::BTreeMap;

use crate::snapshot::{PodManagementPolicy, PodView, Snapshot, UpdateStrategyType};

use super::gates::Held;
use super::partition::partition_for;
use super::sets::{Sets, cap, count, names};
use super::{Handover, Policy, Refusal, Warning, WaveDecision};

/// Preconditions of SPEC §1: `Parallel`, `RollingUpdate`, not paused, and every pod the
/// arbiter names belongs to the set. Pods the arbiter does not name come back as a warning.
pub fn check_preconditions(s: &Snapshot) -> Result<Vec<Warning>, Refusal> {
    if s.sts.pod_management_policy == PodManagementPolicy::OrderedReady {
        return Err(Refusal::OrderedReady);
    }
    match &s.sts.update_type {
        UpdateStrategyType::RollingUpdate => {}
        UpdateStrategyType::OnDelete => {
            return Err(Refusal::NotRollingUpdate {
                found: "OnDelete".to_owned(),
            });
        }
        UpdateStrategyType::Other(found) => {
            return Err(Refusal::NotRollingUpdate {
                found: found.clone(),
            });
        }
    }
    if s.sts.paused {
        return Err(Refusal::Paused);
    }
    let unknown = s.unknown_members();
    if !unknown.is_empty() {
        return Err(Refusal::UnknownPods {
            pods: unknown.into_iter().map(str::to_owned).collect(),
        });
    }
    let protected = s.protected();
    Ok(if protected.is_empty() {
        Vec::new()
    } else {
        vec![Warning::Protected {
            pods: names(&protected),
        }]
    })
}

/// The next wave.
///
/// `Done` when no counted pod the arbiter lists is old (protected pods may still be);
/// otherwise `Update` with `S` = the first `maxPerWave` pods of `I ∩ O` by ordinal and
/// `partition = |P| - |U| - |S|`; when `I ∩ O` is empty but `W ∩ O` is not, the handover
/// that must come first. With [`Policy::prefer_handover`] (a rollback) that handover comes
/// first whenever a settled idle pod of `U` can take over from a pod of `W ∩ O`.
pub fn plan_wave(s: &Snapshot, policy: &Policy) -> Result<WaveDecision, Refusal> {
    plan_wave_held(s, policy, &Held::default())
}

/// [`plan_wave`] with pods that per-pod gates hold back (see `decide::gates`): a pod in
/// `held.select` is not selected, one in `held.promote` not promoted. When gates hold every
/// pod the wave could take, the refusal says so.
pub(super) fn plan_wave_held(
    s: &Snapshot,
    policy: &Policy,
    held: &Held,
) -> Result<WaveDecision, Refusal> {
    check_preconditions(s)?;
    let sets = Sets::of(s, policy)?;
    let working = count(sets.working);
    if working < policy.min_working {
        return Err(Refusal::BelowMinWorking {
            working,
            min: policy.min_working,
        });
    }
    // Reverse the handovers first (a rollback): an idle pod at the update revision takes
    // over from a working pod that is not, before anything updates.
    if policy.prefer_handover
        && !sets.working_old.is_empty()
        && let Ok(h) = handover(&sets, policy, &held.promote)
    {
        return Ok(WaveDecision::HandoverFirst(h));
    }
    let free: Vec<&PodView> = sets
        .idle_old
        .iter()
        .copied()
        .filter(|p| !held.select.contains_key(&p.name))
        .collect();
    if !free.is_empty() {
        let select: Vec<&PodView> = free
            .iter()
            .copied()
            .take(cap(policy.max_per_wave))
            .collect();
        let select = names(&select);
        let partition = partition_for(s, &select).ok_or(Refusal::RevisionNotObserved)?;
        return Ok(WaveDecision::Update { select, partition });
    }
    if !sets.working_old.is_empty() {
        if sets.idle == 0 {
            return Err(Refusal::AllWorking);
        }
        return match handover(&sets, policy, &held.promote) {
            Ok(h) => Ok(WaveDecision::HandoverFirst(h)),
            Err(refusal) => Err(held.explain(&sets, refusal)),
        };
    }
    if !sets.idle_old.is_empty() {
        return Err(held.explain(&sets, Refusal::AllWorking));
    }
    Ok(WaveDecision::Done)
}

/// The partition `finalize` writes: the number of protected pods still old, usually 0.
///
/// With `unorderedUpdate` the partition is how many pods keep the old revision, and once
/// every other counted pod is updated those are exactly the protected ones: a pod the
/// arbiter does not list is never updated by Baton, not even at the end.
pub fn finalize_partition(s: &Snapshot, policy: &Policy) -> Result<u32, Refusal> {
    check_preconditions(s)?;
    let sets = Sets::of(s, policy)?;
    Ok(count(sets.protected_old.len()))
}

/// The handover after a wave: `None` when no working pod is old. Otherwise promote `m`
/// settled pods of `I ∩ U` and demote `m` pods of `W ∩ O`, lowest ordinals first, with
/// `m = min(|settled I ∩ U|, |W ∩ O|, maxPerWave)`, so the working count stays the same.
pub fn plan_handover(s: &Snapshot, policy: &Policy) -> Result<Option<Handover>, Refusal> {
    plan_handover_held(s, policy, &Held::default())
}

/// [`plan_handover`] without promoting the pods `held.promote` names (their promote gates failed).
pub(super) fn plan_handover_held(
    s: &Snapshot,
    policy: &Policy,
    held: &Held,
) -> Result<Option<Handover>, Refusal> {
    check_preconditions(s)?;
    let sets = Sets::of(s, policy)?;
    if sets.working_old.is_empty() {
        return Ok(None);
    }
    handover(&sets, policy, &held.promote)
        .map(Some)
        .map_err(|refusal| held.explain(&sets, refusal))
}

/// The settled pods of `I ∩ U`: the only pods a handover may promote.
pub(super) fn promotable<'a>(sets: &Sets<'a>) -> Vec<&'a PodView> {
    sets.idle_updated
        .iter()
        .copied()
        .filter(|p| p.is_settled())
        .collect()
}

fn handover(
    sets: &Sets<'_>,
    policy: &Policy,
    held: &BTreeMap<String, String>,
) -> Result<Handover, Refusal> {
    let ready: Vec<&PodView> = promotable(sets)
        .into_iter()
        .filter(|p| !held.contains_key(&p.name))
        .collect();
    let m = ready
        .len()
        .min(sets.working_old.len())
        .min(cap(policy.max_per_wave));
    if m == 0 {
        return Err(Refusal::NoIdleToHandOver {
            working: names(&sets.working_old),
        });
    }
    Ok(Handover {
        promote: names(&ready[..m]),
        demote: names(&sets.working_old[..m]),
    })
}
