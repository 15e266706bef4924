//! `rollback` (`onFailure: rollback`, issue #15): after a failed wave, freeze the partition
//! (|P|, absolute), write back the pod template the run started from (recorded by
//! `protect`), and wait for the controller to observe it. Its `updateRevision` is then the
//! old revision again (Kruise reuses the ControllerRevision of an equal template), so the
//! waves that follow are ordinary waves towards it: pods of the new revision are the "old"
//! ones now, and the decision core reverses the handovers first
//! ([`Policy::prefer_handover`](baton_engine::decide::Policy)). Idempotent: a run after a
//! crash finds the partition and the template written and only waits.

use baton_engine::dag::{StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::step::{PRIVATE_OUTPUT, StepContext, StepError, StepOutput};
use serde_json::Value;

use super::apply_update::template_summary;
use crate::env::{Env, RollbackOutput, to_value};
use crate::patch::template_patch;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    // Freeze first: nothing of the new revision may go on updating.
    let sts = env.view().sts().await?;
    super::write_partition(env, ctx, &sts, sts.replicas()).await?;
    let old = started_from(ctx)?;
    let sts = env.view().sts().await?;
    let current = &sts.spec.template;
    let changed = match template_patch(&to_value(&*sts), old.clone()) {
        None => false,
        Some(patch) => {
            env.write_sts(
                ctx,
                "roll back template",
                patch,
                template_summary(current),
                template_summary(&old),
            )
            .await?;
            true
        }
    };
    let update_revision = super::wait::observed_revision(env, ctx).await?;
    ctx.journal.emit(RunEvent::Warning {
        message: format!(
            "the template is back at revision {update_revision}; the next waves bring the \
             pods back to it, standby-first"
        ),
    });
    let out = RollbackOutput {
        changed,
        update_revision,
        images: template_summary(&old)["images"].clone(),
    };
    Ok(StepOutput::new(to_value(&out)))
}

/// Whether the current step belongs to a rollback (the `rollback` step succeeded).
pub fn rolling_back(ctx: &StepContext) -> bool {
    ctx.output_of(&StepId::run_level(StepKind::Rollback))
        .is_some()
}

/// The pod template the run started from, as `protect` recorded it.
fn started_from(ctx: &StepContext) -> Result<Value, StepError> {
    ctx.output_of(&StepId::run_level(StepKind::Protect))
        .and_then(|o| o.get(PRIVATE_OUTPUT))
        .and_then(|p| p.get("template"))
        .filter(|t| t.is_object())
        .cloned()
        .ok_or_else(|| {
            StepError::failed(
                "the run did not record the pod template it started from (it began before \
                 rollbacks existed); the partition is frozen: roll the template back by hand",
            )
        })
}
