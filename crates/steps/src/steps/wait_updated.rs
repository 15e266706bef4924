//! `wait-updated`: watch until every pod of the wave runs the update revision and is
//! settled (SPEC §1 step 5). Judges the pods themselves: Kruise's counters lag.

use std::collections::BTreeSet;

use baton_engine::dag::StepKind;
use baton_engine::event::RunEvent;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use super::wait::{Progress, progress, watch_until};
use crate::env::{Env, SelectOutput, wave_output};

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let select: SelectOutput = wave_output(ctx, StepKind::Select).ok_or_else(|| {
        StepError::failed("wait-updated needs the output of this wave's select step")
    })?;
    ctx.journal.emit(RunEvent::Waiting {
        step: ctx.step.to_string(),
        what: if select.select.is_empty() {
            "the controller to observe the partition".to_owned()
        } else {
            format!(
                "{} to run the update revision and be ready",
                select.select.join(", ")
            )
        },
    });
    let mut announced = BTreeSet::new();
    let revision = watch_until(
        env,
        ctx,
        true,
        |w| {
            let (sts, pods) = w.views();
            let want = sts.trusted_update_revision()?;
            for p in pods.iter().filter(|p| select.select.contains(&p.name)) {
                if p.revision.as_deref() == Some(want)
                    && p.is_settled()
                    && announced.insert(p.name.clone())
                {
                    ctx.journal.emit(RunEvent::PodUpdated {
                        pod: p.name.clone(),
                        revision: want.to_owned(),
                    });
                }
            }
            matches!(progress(&sts, &pods, &select.select), Progress::Done).then(|| want.to_owned())
        },
        |w| {
            let (sts, pods) = w.views();
            progress(&sts, &pods, &select.select).explain()
        },
    )
    .await?;
    Ok(StepOutput::new(
        json!({"pods": select.select, "revision": revision}),
    ))
}
