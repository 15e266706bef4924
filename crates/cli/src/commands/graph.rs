//! `engine graph PLAN`: the step DAG a plan asks for, with wave 1 standing for every
//! wave. Reads nothing but the plan file.

use baton_engine::dag::{self, GraphFormat};
use baton_engine::plan::ValidPlan;

use crate::args::{self, GlobalArgs, GraphArgs};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &GraphArgs) -> anyhow::Result<ExitStatus> {
    let plan = match ValidPlan::load(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            printer::err(error.render());
            return Ok(ExitStatus::Usage);
        }
    };
    let graph = dag::plan_graph(&plan);
    if printer::is_json(global) {
        let doc = serde_json::json!({
            "plan": plan.name(),
            "repeatingWave": graph.repeating(),
            "steps": graph
                .specs()
                .iter()
                .map(|spec| serde_json::json!({
                    "id": spec.id.to_string(),
                    "wave": spec.id.wave,
                    "after": spec.deps.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>(),
        });
        printer::out_json(&doc);
        return Ok(ExitStatus::Success);
    }
    let format = match args.format {
        args::GraphFormat::Text => GraphFormat::Text,
        args::GraphFormat::Dot => GraphFormat::Dot,
        args::GraphFormat::Mermaid => GraphFormat::Mermaid,
    };
    let rendered = graph.render(format);
    printer::out(rendered.trim_end());
    Ok(ExitStatus::Success)
}
