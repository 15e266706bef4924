//! `engine list`: every run in the state directory with its state.

use baton_engine::executor;
use baton_engine::store::RunState;

use crate::args::GlobalArgs;
use crate::commands::status::{abandoned_by, state_dir};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let dir = state_dir(global)?;
    let runs = executor::list_runs(&dir)?;
    if printer::is_json(global) {
        printer::out_json(&serde_json::to_value(&runs)?);
        return Ok(ExitStatus::Success);
    }
    if runs.is_empty() {
        printer::err("no runs yet");
        return Ok(ExitStatus::Success);
    }
    let mut rows = vec![[
        "RUN".to_owned(),
        "STATE".to_owned(),
        "TARGET".to_owned(),
        "WAVE".to_owned(),
        "UPDATED".to_owned(),
    ]];
    // Notes go on the line under their run's row.
    let mut notes: Vec<Vec<String>> = Vec::new();
    for r in &runs {
        let state = match r.state {
            Some(s) if r.live => format!("{} (live)", s.as_str()),
            // Marked running, but nobody holds it: its process died without a word.
            Some(RunState::Running) => match abandoned_by(&dir, &r.run, RunState::Running, None) {
                Some(Some(pid)) => format!("running, pid {pid} gone"),
                _ => "running, process gone".to_owned(),
            },
            Some(s) => s.as_str().to_owned(),
            None => "unreadable".to_owned(),
        };
        let mut note = Vec::new();
        if state.contains("gone") {
            note.push(format!("continue with `engine resume {}`", r.run));
        }
        note.extend(r.problem.clone());
        notes.push(note);
        rows.push([
            r.run.clone(),
            state,
            r.target.clone().unwrap_or_else(|| "-".to_owned()),
            r.current_wave
                .map(|w| w.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            r.updated_at
                .map(printer::time)
                .unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let indent = " ".repeat(
        runs.iter()
            .map(|r| r.run.chars().count())
            .max()
            .unwrap_or(0)
            .max(3),
    );
    let mut lines = crate::progress::columns(&rows).into_iter();
    if let Some(header) = lines.next() {
        printer::out(header);
    }
    for (line, note) in lines.zip(notes) {
        printer::out(line);
        for note in note {
            printer::out(format!("{indent}  {note}"));
        }
    }
    Ok(ExitStatus::Success)
}
