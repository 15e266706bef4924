//! `engine schema`: the plan's JSON Schema, pretty-printed, for editors and CI.

use crate::args::GlobalArgs;
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let schema = baton_engine::plan::schema();
    printer::out(serde_json::to_string_pretty(&schema)?);
    Ok(ExitStatus::Success)
}
