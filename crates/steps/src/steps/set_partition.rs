//! `set-partition`: rank `baton.dev/selected=true` first in the ASTS priority strategy
//! (other terms kept), then set `partition = |P| - |U ∪ S|`: every pod that is neither
//! updated nor selected keeps the old revision. Counting `U ∪ S` (not `|U| + |S|`) keeps
//! a re-run after a partial wave from opening the partition one pod too far.

use std::collections::BTreeSet;

use baton_engine::dag::StepKind;
use baton_engine::snapshot::Snapshot;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::{Env, SelectOutput, to_value, wave_output};
use crate::patch::priority_patch;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let select: SelectOutput = wave_output(ctx, StepKind::Select).ok_or_else(|| {
        StepError::failed("set-partition needs the output of this wave's select step")
    })?;
    // The update revision must be trusted before counting U.
    super::wait::observed_revision(env, ctx).await?;
    let live = env.live().await?;
    let target = partition_for(&live.snapshot, &select.select).ok_or_else(|| {
        StepError::retryable(
            "the controller has not observed the latest generation; the update revision is unknown",
        )
    })?;
    let mut sts = live.sts;
    let current = sts
        .rolling_update()
        .and_then(|r| r.unordered_update.clone());
    if let Some(patch) = priority_patch(&to_value(&sts))? {
        let after = crate::patch::desired_unordered(current.as_ref())?;
        env.write_sts(ctx, "set update priority", patch, json!(current), after)
            .await?;
        sts = env.target.get_sts().await?;
    }
    let changed = super::write_partition(env, ctx, &sts, target).await?;
    if target != select.partition {
        tracing::info!(
            planned = select.partition,
            set = target,
            "partition recomputed from the live pods"
        );
    }
    Ok(StepOutput::new(
        json!({"partition": target, "changed": changed}),
    ))
}

/// `|P| - |U ∪ S|`, or `None` while the update revision is not trusted.
pub fn partition_for(s: &Snapshot, selected: &[String]) -> Option<u32> {
    let want = s.sts.trusted_update_revision()?;
    let mut moving: BTreeSet<&str> = s
        .pods
        .iter()
        .filter(|p| p.revision.as_deref() == Some(want))
        .map(|p| p.name.as_str())
        .collect();
    moving.extend(selected.iter().map(String::as_str));
    Some(
        s.sts
            .replicas
            .saturating_sub(u32::try_from(moving.len()).unwrap_or(u32::MAX)),
    )
}
