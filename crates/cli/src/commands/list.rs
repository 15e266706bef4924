//! `engine list`: every run in the state directory with its state.

use baton_engine::executor;

use crate::args::GlobalArgs;
use crate::commands::status::state_dir;
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let runs = executor::list_runs(&state_dir(global)?)?;
    if printer::is_json(global) {
        printer::out_json(&serde_json::to_value(&runs)?);
        return Ok(ExitStatus::Success);
    }
    if runs.is_empty() {
        printer::err("no runs yet");
        return Ok(ExitStatus::Success);
    }
    let width = runs.iter().map(|r| r.run.len()).max().unwrap_or(3).max(3);
    printer::out(format!(
        "{:<width$}  {:<14}  {:<24}  {:<5}  UPDATED",
        "RUN", "STATE", "TARGET", "WAVE"
    ));
    for r in &runs {
        let state = match (r.state, r.live) {
            (Some(s), true) => format!("{} (live)", s.as_str()),
            (Some(s), false) => s.as_str().to_owned(),
            (None, _) => "unreadable".to_owned(),
        };
        let wave = r
            .current_wave
            .map(|w| w.to_string())
            .unwrap_or_else(|| "-".to_owned());
        let updated = r.updated_at.map(|t| t.to_string()).unwrap_or_default();
        let target = r.target.clone().unwrap_or_default();
        printer::out(format!(
            "{:<width$}  {state:<14}  {target:<24}  {wave:<5}  {updated}",
            r.run
        ));
        if let Some(problem) = &r.problem {
            printer::out(format!("{:<width$}  {problem}", ""));
        }
    }
    Ok(ExitStatus::Success)
}
