//! `engine delete RUN` and `engine gc`: forget runs. Only the state directory changes; the
//! cluster never does. Unfinished runs are kept unless the operator forces one by name,
//! because a run's history is the only record of what it wrote.

use baton_engine::executor;

use crate::args::{DeleteArgs, GcArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::{printer, state};

pub fn run(global: &GlobalArgs, args: &DeleteArgs) -> anyhow::Result<ExitStatus> {
    let dir = state::state_dir(global)?;
    match executor::delete_run(&dir, &args.run, args.force) {
        Ok(summary) => {
            let state = summary.state.map_or("unreadable", |s| s.as_str());
            if printer::is_json(global) {
                printer::out_json(&serde_json::json!({"deleted": [summary.run], "state": state}));
            } else {
                printer::out(format!("deleted run {} ({state})", summary.run));
            }
            Ok(ExitStatus::Success)
        }
        Err(error) => state::report_exec_error(error),
    }
}

pub fn gc(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<ExitStatus> {
    let dir = state::state_dir(global)?;
    let age = jiff::SignedDuration::try_from(args.older_than.0)
        .map_err(|e| anyhow::anyhow!("--older-than is too long: {e}"))?;
    let before = jiff::Timestamp::now()
        .checked_sub(age)
        .map_err(|e| anyhow::anyhow!("--older-than is too long: {e}"))?;
    let runs = match executor::collectable_runs(&dir, before) {
        Ok(runs) => runs,
        Err(error) => return state::report_exec_error(error),
    };
    let mut deleted = Vec::new();
    for r in &runs {
        if args.dry_run {
            deleted.push(r.run.clone());
            continue;
        }
        match executor::delete_run(&dir, &r.run, false) {
            Ok(_) => deleted.push(r.run.clone()),
            // Resumed or driven since it was listed: it is not garbage any more.
            Err(error) => printer::err(format!("kept {}: {error}", r.run)),
        }
    }
    if printer::is_json(global) {
        printer::out_json(&serde_json::json!({"deleted": deleted, "dryRun": args.dry_run}));
    } else if deleted.is_empty() {
        printer::err(format!("no finished run older than {}", args.older_than));
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for run in &deleted {
            printer::out(format!("{verb} run {run}"));
        }
    }
    Ok(ExitStatus::Success)
}
