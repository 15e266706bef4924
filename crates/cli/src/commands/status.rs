//! `engine status [RUN]`: the run's state, current wave and DAG with node states. Reads
//! the database when no process drives the run, else the status file that process keeps
//! current, so it works while the run goes on elsewhere.

use std::fmt::Write as _;

use baton_engine::executor;
use baton_engine::store::{NodeState, Phase, RunState, RunView};

use crate::args::{GlobalArgs, OptRunArg};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &OptRunArg) -> anyhow::Result<ExitStatus> {
    if args.cluster.in_cluster {
        return crate::commands::in_cluster::status(global, args.run.as_deref(), &args.cluster);
    }
    let dir = state_dir(global)?;
    let run = executor::pick_run(&dir, args.run.as_deref())?;
    let mut view = executor::load_run(&dir, &run)?;
    // A driving process publishes the pods it last read; otherwise ask the cluster now.
    let mut pods_note = None;
    if view.pods.is_none() {
        match cluster_pods(global, &dir, &run) {
            Ok(rows) => view.pods = Some(rows),
            Err(error) => pods_note = Some(printer::chain_text(&error)),
        }
    }
    if printer::is_json(global) {
        printer::out_json(&serde_json::to_value(&view)?);
    } else {
        let gone = abandoned_by(&dir, &view.run, view.state, view.live_pid);
        let mut text = render(&view, gone);
        if let Some(note) = pods_note {
            let _ = writeln!(text, "\npods: cannot read the cluster: {note}");
        }
        printer::out(text.trim_end());
    }
    Ok(ExitStatus::Success)
}

/// The set's pods and roles from the cluster and the arbiter, within a few seconds.
fn cluster_pods(
    global: &GlobalArgs,
    dir: &std::path::Path,
    run: &str,
) -> anyhow::Result<Vec<baton_engine::event::PodRow>> {
    let plan = executor::stored_plan(dir, Some(run))?;
    crate::cluster::runtime()?.block_on(async {
        let read = async {
            let client = crate::cluster::client(global).await?;
            Ok::<_, anyhow::Error>(baton_steps::read_pod_rows(&client, &plan).await?)
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 5s"))?
    })
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

/// The pods the gates held back, wave by wave, each with the gate and its answer (each
/// `select` step's output keeps them).
fn held_lines(view: &RunView) -> Vec<String> {
    let mut selects: Vec<(u32, &serde_json::Value)> = view
        .nodes
        .iter()
        .filter(|n| n.step.kind == baton_engine::dag::StepKind::Select)
        .filter_map(|n| Some((n.step.wave?, &**n.output.as_ref()?)))
        .collect();
    selects.sort_by_key(|(wave, _)| *wave);
    let mut lines = Vec::new();
    for (wave, output) in selects {
        let answers: Vec<baton_engine::decide::GateAnswer> = output
            .get("gates")
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_default();
        lines.extend(answers.iter().filter(|a| !a.passed).map(|a| {
            format!(
                "held:    wave {wave}: {} by gate {} ({}): {}",
                a.pod,
                a.gate,
                a.moment.as_str(),
                a.answer
            )
        }));
    }
    lines
}

/// Whether run `run` is marked `running` while no process drives it: the process that did
/// was killed (`kill -9`, a crash, the machine went down) before it could record how it
/// stopped. `Some` then, with the pid it last published when that is known.
///
/// A driving process holds the run's database; a run read from the database (no live pid)
/// has none. Its last `status.json` still names the pid that drove it.
pub fn abandoned_by(
    dir: &std::path::Path,
    run: &str,
    state: RunState,
    live_pid: Option<u32>,
) -> Option<Option<u32>> {
    if state != RunState::Running || live_pid.is_some() {
        return None;
    }
    let path = baton_engine::store::status_path(&baton_engine::store::run_dir(dir, run));
    let pid = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|doc| doc.get("livePid").and_then(serde_json::Value::as_u64))
        .and_then(|pid| u32::try_from(pid).ok());
    Some(pid)
}

/// `running, but its process (pid 12) is gone: resume with `engine resume RUN``.
pub fn gone_text(run: &str, pid: Option<u32>) -> String {
    let process = match pid {
        Some(pid) => format!("its process (pid {pid})"),
        None => "its process".to_owned(),
    };
    format!("running, but {process} is gone: continue with `engine resume {run}`")
}

/// A run that is rolling back says so, and why (`onFailure: rollback`); once it has rolled
/// back, its state and reason say it.
fn rollback_line(view: &RunView) -> Option<String> {
    if view.state == baton_engine::store::RunState::RolledBack {
        return None;
    }
    view.events.iter().rev().find_map(|e| match &e.event {
        baton_engine::event::RunEvent::RollbackStarted { step, reason, .. } => Some(format!(
            "rolling back to the old template, standby-first, since {step} failed: {reason}"
        )),
        _ => None,
    })
}

pub(crate) fn render(view: &RunView, gone: Option<Option<u32>>) -> String {
    let mut s = String::new();
    let state = match (view.live_pid, gone) {
        (Some(pid), _) => format!("{} (driven by pid {pid})", view.state.as_str()),
        (None, Some(pid)) => gone_text(&view.run, pid),
        (None, None) => view.state.as_str().to_owned(),
    };
    let _ = writeln!(s, "run:     {}", view.run);
    let _ = writeln!(s, "state:   {state}");
    if let Some(reason) = &view.reason {
        let _ = writeln!(s, "reason:  {reason}");
    }
    let _ = writeln!(s, "target:  {}", view.target);
    let short = view.plan_hash.get(..12).unwrap_or(&view.plan_hash);
    let _ = writeln!(s, "plan:    {} (sha256 {short})", view.plan_file);
    let wave = match (view.current_wave, &view.phase) {
        (Some(w), _) | (None, &Phase::Wave { wave: w }) => format!("wave {w}"),
        (None, Phase::Prologue) => "before the first wave".to_owned(),
        (None, Phase::Epilogue) => "after the last wave".to_owned(),
    };
    let _ = writeln!(s, "phase:   {wave}");
    if let Some(line) = rollback_line(view) {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "updated: {}", printer::time(view.updated_at));
    for gate in &view.waiting_approval {
        // Only a process driving the run can be released; a stopped run asks again
        // once resumed.
        if view.live_pid.is_some() {
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
    for w in &view.waiting {
        let _ = writeln!(s, "waiting: {}: {}", w.step, w.what);
    }
    for line in held_lines(view) {
        let _ = writeln!(s, "{line}");
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
    if let Some(pods) = &view.pods {
        let source = if view.live_pid.is_some() {
            "as the run last read them"
        } else {
            "from the cluster now"
        };
        let _ = writeln!(
            s,
            "\npods ({source}):\n{}",
            crate::progress::pod_table(pods)
        );
    }
    s
}
