//! `finalize`: partition 0, no `baton.dev/selected` labels, role labels matching the
//! arbiter (pods recreated in the last wave carry the template's). The lock is the
//! caller's to release.
//!
//! One deliberate extension of SPEC §1: pods the arbiter never listed (*protected*) are
//! never updated by Baton, not even here. The partition written is the number of
//! protected pods still old ([`finalize_partition`]), which is 0 in every ordinary run.

use baton_engine::decide::finalize_partition;
use baton_engine::event::RunEvent;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use super::{Selection, relabel_pods};
use crate::env::Env;
use crate::events::{EventType, FINISHED};
use crate::k8s::pod_rows;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let live = env.live().await?;
    let partition =
        finalize_partition(&live.snapshot, &env.policy(ctx)).map_err(crate::env::refusal)?;
    if partition > 0 {
        ctx.journal.emit(RunEvent::Warning {
            message: format!(
                "{} the arbiter does not list {} the old revision (partition {partition})",
                baton_engine::text::count(
                    usize::try_from(partition).unwrap_or(usize::MAX),
                    "pod",
                    "pods"
                ),
                if partition == 1 { "keeps" } else { "keep" }
            ),
        });
    }
    super::write_partition(env, ctx, &live.sts, partition).await?;
    let patched = relabel_pods(env, ctx, &live, Selection::Exactly(&[])).await?;
    ctx.journal.emit(RunEvent::Pods {
        pods: pod_rows(&live, &env.plan.spec().update.images),
    });
    env.recorder
        .publish(
            EventType::Normal,
            FINISHED,
            &format!("run {} finished", ctx.run_id),
        )
        .await;
    Ok(StepOutput::new(
        json!({"partition": partition, "relabelled": patched}),
    ))
}
