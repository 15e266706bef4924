//! `finalize`: partition 0, no `baton.dev/selected` labels, role labels matching the
//! arbiter (pods recreated in the last wave carry the template's). The lock is the
//! caller's to release.

use baton_engine::event::RunEvent;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use super::{Selection, relabel_pods};
use crate::env::Env;
use crate::events::{EventType, FINISHED};
use crate::k8s::pod_rows;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let live = env.live().await?;
    super::write_partition(env, ctx, &live.sts, 0).await?;
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
        json!({"partition": 0, "relabelled": patched}),
    ))
}
