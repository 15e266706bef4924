//! `relabel`: role labels mirror the arbiter; `baton.dev/selected` on exactly the wave.

use baton_engine::dag::StepKind;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use super::{Selection, relabel_pods};
use crate::env::{Env, SelectOutput, wave_output};

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let select: SelectOutput = wave_output(ctx, StepKind::Select)
        .ok_or_else(|| StepError::failed("relabel needs the output of this wave's select step"))?;
    let live = env.live().await?;
    let patched = relabel_pods(env, ctx, &live, Selection::Exactly(&select.select)).await?;
    Ok(StepOutput::new(json!({"patched": patched})))
}
