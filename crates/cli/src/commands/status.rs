//! `engine status [RUN]`: the run's state, current wave and DAG with node states. Reads
//! the database when no process drives the run, else the status file that process keeps
//! current, so it works while the run goes on elsewhere.

use std::fmt::Write as _;

use baton_engine::executor;
use baton_engine::store::{NodeState, RunState, RunView};

use crate::args::{GlobalArgs, OptRunArg};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &OptRunArg) -> anyhow::Result<ExitStatus> {
    let dir = state_dir(global)?;
    let run = executor::pick_run(&dir, args.run.as_deref())?;
    let view = executor::load_run(&dir, &run)?;
    if printer::is_json(global) {
        printer::out_json(&serde_json::to_value(&view)?);
    } else {
        printer::out(render(&view).trim_end());
    }
    Ok(ExitStatus::Success)
}

/// `--state-dir`, `$ENGINE_STATE_DIR`, then the XDG default.
pub fn state_dir(global: &GlobalArgs) -> anyhow::Result<std::path::PathBuf> {
    match &global.state_dir {
        Some(dir) => Ok(dir.clone()),
        None => executor::default_state_dir().ok_or_else(|| {
            anyhow::anyhow!("cannot find a state directory: set --state-dir or ENGINE_STATE_DIR")
        }),
    }
}

fn render(view: &RunView) -> String {
    let mut s = String::new();
    let live = match view.live_pid {
        Some(pid) => format!(" (driven by pid {pid})"),
        None => String::new(),
    };
    let _ = writeln!(s, "run:     {}", view.run);
    let _ = writeln!(s, "state:   {}{live}", view.state.as_str());
    if let Some(reason) = &view.reason {
        let _ = writeln!(s, "reason:  {reason}");
    }
    let _ = writeln!(s, "target:  {}", view.target);
    let short = view.plan_hash.get(..12).unwrap_or(&view.plan_hash);
    let _ = writeln!(s, "plan:    {} (sha256 {short})", view.plan_file);
    let wave = match view.current_wave {
        Some(w) => format!("wave {w}"),
        None => format!("{:?}", view.phase).to_lowercase(),
    };
    let _ = writeln!(s, "phase:   {wave}");
    let _ = writeln!(s, "updated: {}", view.updated_at);
    for gate in &view.waiting_approval {
        // Only a process driving the run can be released; a stopped run asks again
        // once resumed.
        if matches!(view.state, RunState::Running) {
            let _ = writeln!(
                s,
                "waiting: approval of {gate}: run `engine approve {}`",
                view.run
            );
        } else {
            let _ = writeln!(
                s,
                "waiting: approval of {gate}, asked again on `engine resume {}`",
                view.run
            );
        }
    }
    if !view.vars.is_empty() {
        let vars: Vec<String> = view.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "vars:    {}", vars.join(" "));
    }
    let rows: Vec<[String; 4]> = view
        .nodes
        .iter()
        .map(|node| {
            let mark = match node.state {
                NodeState::Succeeded => "✓",
                NodeState::Running => "▶",
                NodeState::Failed => "✗",
                NodeState::Interrupted => "!",
                NodeState::Skipped => "-",
                NodeState::Pending => " ",
            };
            let error = node
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            [
                node.id.to_string(),
                format!("{mark} {}", node.state.as_str()),
                node.attempts.to_string(),
                error,
            ]
        })
        .collect();
    let width = |column: usize, header: &str| {
        rows.iter()
            .map(|r| r[column].chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let (step, state, attempts) = (width(0, "STEP"), width(1, "STATE"), width(2, "ATTEMPTS"));
    let _ = writeln!(
        s,
        "\n{:<step$}  {:<state$}  {:>attempts$}  ERROR",
        "STEP", "STATE", "ATTEMPTS"
    );
    for [id, node_state, tries, error] in &rows {
        let line = format!("{id:<step$}  {node_state:<state$}  {tries:>attempts$}  {error}");
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}
