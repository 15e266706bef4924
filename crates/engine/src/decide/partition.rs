//! The one partition arithmetic of Baton: `partition = |P| - |U ∪ S|`.
//!
//! Every step that writes a partition (`set-partition`, `abort`'s freeze), every decision that
//! plans one (`plan_wave`, `forecast`) and the progress lines that print one take it from
//! [`partition_for`], so what is written, planned and reported cannot drift apart.
//!
//! Why this is safe, in Kruise's unordered mode: the controller builds `done ++ waiting` over
//! the pods it counts (ordinal below `spec.replicas`), `done` being the pods already at the
//! update revision or terminating, `waiting` the rest ranked with `baton.dev/selected` first,
//! and updates up to `replicas - partition` entries of it. With the partition below, that
//! quota is `|U ∪ S|` over **present, counted** pods; `done` already holds all of `U`, so at
//! most `|S \ U|` waiting pods are reached: the selected ones.
//!
//! Two ways to get it wrong, both seen on a real cluster or on paper:
//! - counting a pod that is being scaled away (ordinal ≥ `spec.replicas`, still Terminating):
//!   Kruise does not list it, so counting it opens the quota by one for a pod of its choosing,
//!   which can be a working pod;
//! - counting a selected pod that does not exist right now: its slot is empty, Kruise does not
//!   list it either, and the quota again goes to another pod.
//!
//! So only pods that exist and are counted take part; anything else keeps the partition higher,
//! which can only slow a wave down, never widen it.

use std::collections::BTreeSet;

use crate::snapshot::Snapshot;

/// `|P| - |U ∪ S|` over pods that exist with an ordinal below `spec.replicas`, or `None` while
/// the update revision is not trusted (nothing can be counted as updated then).
///
/// `selected` may name pods that are updated already (a step re-run after a partial wave) or
/// that no longer exist; both are handled as described in the module doc.
pub fn partition_for(s: &Snapshot, selected: &[String]) -> Option<u32> {
    let want = s.sts.trusted_update_revision()?;
    let selected: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    let moving: BTreeSet<&str> = s
        .pods
        .iter()
        .filter(|p| s.in_range(p))
        .filter(|p| p.revision.as_deref() == Some(want) || selected.contains(p.name.as_str()))
        .map(|p| p.name.as_str())
        .collect();
    Some(
        s.sts
            .replicas
            .saturating_sub(u32::try_from(moving.len()).unwrap_or(u32::MAX)),
    )
}

/// The partition that freezes a rollout where it stands (`engine abort`, and the state after a
/// handover-only wave): `|P| - |U|`, so nothing more updates. While the update revision is not
/// trusted, `|P|`: nothing at all may move.
pub fn freeze_partition(s: &Snapshot) -> u32 {
    partition_for(s, &[]).unwrap_or(s.sts.replicas)
}
