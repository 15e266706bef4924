//! The pod sets of SPEC §1, computed once from one snapshot so every decision of a step
//! reasons about the same moment.
//!
//! Only pods the controller counts (ordinal below `spec.replicas`) take part: a pod being
//! scaled away is neither updated by Kruise nor counted in its partition arithmetic, so
//! counting it here could open the partition one pod too wide.

use crate::snapshot::{PodView, Role, Snapshot};

use super::{Policy, Refusal};

/// `O` and the intersections of `U` and `O` with the arbiter's `W` and `I`, each by ascending ordinal.
#[derive(Debug)]
pub(super) struct Sets<'a> {
    /// `W ∩ O`.
    pub working_old: Vec<&'a PodView>,
    /// `I ∩ O`: the only pods a wave may select.
    pub idle_old: Vec<&'a PodView>,
    /// `I ∩ U`: candidates for promotion once settled.
    pub idle_updated: Vec<&'a PodView>,
    /// Old pods the arbiter does not list: they can never be selected.
    pub protected_old: Vec<&'a PodView>,
    /// `|I|` over counted pods.
    pub idle: usize,
    /// `|W|` as the arbiter reports it (every member exists: preconditions hold).
    pub working: usize,
}

impl<'a> Sets<'a> {
    /// Classify the pods, refusing when the update revision cannot be trusted.
    pub fn of(s: &'a Snapshot, policy: &Policy) -> Result<Self, Refusal> {
        let update = s
            .sts
            .trusted_update_revision()
            .ok_or(Refusal::RevisionNotObserved)?;
        if let Some(expected) = &policy.expected_update_revision
            && expected != update
        {
            return Err(Refusal::UpdateRevisionChanged {
                expected: expected.clone(),
                found: update.to_owned(),
            });
        }
        let mut sets = Sets {
            working_old: Vec::new(),
            idle_old: Vec::new(),
            idle_updated: Vec::new(),
            protected_old: Vec::new(),
            idle: 0,
            working: s.arbiter.with_role(Role::Working).count(),
        };
        for pod in s.pods_by_ordinal().into_iter().filter(|p| s.in_range(p)) {
            let updated = pod.revision.as_deref() == Some(update);
            let role = s.arbiter.role_of(&pod.name);
            if role == Some(Role::Idle) {
                sets.idle += 1;
            }
            match (role, updated) {
                (Some(Role::Working), false) => sets.working_old.push(pod),
                (Some(Role::Idle), false) => sets.idle_old.push(pod),
                (Some(Role::Idle), true) => sets.idle_updated.push(pod),
                (None, false) => sets.protected_old.push(pod),
                (Some(Role::Working) | None, true) => {}
            }
        }
        Ok(sets)
    }
}

/// `maxPerWave` as a cap on a count (0 = no cap).
pub(super) fn cap(max_per_wave: u32) -> usize {
    match max_per_wave {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// A count as the `u32` the cluster API uses; pod counts never come near the limit.
pub(super) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn names(pods: &[&PodView]) -> Vec<String> {
    pods.iter().map(|p| p.name.clone()).collect()
}
