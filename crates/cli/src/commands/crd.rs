//! `engine crd`: the UpgradePlan CustomResourceDefinition, generated from the plan's
//! types, as YAML (`--output json` for JSON). `deploy/crd.yaml` is this output.

use anyhow::Context as _;

use crate::args::{GlobalArgs, OutputFormat};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    use baton_engine::plan::crd;
    let text = match global.output {
        OutputFormat::Text => crd::crd_yaml().context("generate the UpgradePlan CRD")?,
        OutputFormat::Json => {
            serde_json::to_string_pretty(&crd::crd().context("generate the UpgradePlan CRD")?)?
        }
    };
    printer::out(text.trim_end());
    Ok(ExitStatus::Success)
}
