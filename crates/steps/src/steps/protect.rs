//! `protect`: partition = |P|, so nothing updates before the run decides what may.

use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::Env;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let sts = env.view().sts().await?;
    let target = sts.replicas();
    let changed = super::write_partition(env, ctx, &sts, target).await?;
    Ok(StepOutput::new(
        json!({"partition": target, "changed": changed}),
    ))
}
