//! `protect`: partition = |P|, so nothing updates before the run decides what may. Its
//! output keeps the pod template the run starts from (private: the published status leaves
//! it out): `apply-update` replaces it, and a rollback writes it back. Kept here because
//! `protect` always succeeds before `apply-update` writes anything, so a crash in between
//! cannot lose it.

use baton_engine::step::{PRIVATE_OUTPUT, StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::Env;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let sts = env.view().sts().await?;
    let target = sts.replicas();
    let changed = super::write_partition(env, ctx, &sts, target).await?;
    Ok(StepOutput::new(json!({
        "partition": target,
        "changed": changed,
        PRIVATE_OUTPUT: {"template": sts.spec.template},
    })))
}
