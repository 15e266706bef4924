//! `engine history RUN`: the audit log of a run (every write to the cluster or the
//! arbiter, with time and step) and the operators' approvals, aborts and accepted risks.

use baton_engine::executor;
use baton_engine::store::AuditOutcome;

use crate::args::{GlobalArgs, RunArg};
use crate::commands::status::state_dir;
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &RunArg) -> anyhow::Result<ExitStatus> {
    let view = executor::load_run(&state_dir(global)?, &args.run)?;
    if printer::is_json(global) {
        printer::out_json(&serde_json::json!({
            "run": view.run,
            "audit": view.audit,
            "approvals": view.approvals,
        }));
        return Ok(ExitStatus::Success);
    }
    // Both lists come from one log; its sequence numbers give the order.
    let mut lines: Vec<(u64, String)> = view
        .audit
        .iter()
        .map(|a| {
            let w = &a.write;
            let outcome = match &a.outcome {
                AuditOutcome::Applied => String::new(),
                AuditOutcome::Failed { error } => format!("  (failed: {error})"),
                AuditOutcome::Unknown { error } => {
                    format!(
                        "  (unknown whether applied: {error}; the next step re-read the cluster)"
                    )
                }
                AuditOutcome::Cancelled => "  (cancelled before its answer)".to_owned(),
                AuditOutcome::Unconfirmed => {
                    "  (unconfirmed: no answer was recorded; the process stopped first)".to_owned()
                }
            };
            (
                a.seq,
                format!(
                    "{}  {}  {}  {}  {} → {}{outcome}",
                    a.at, a.step, w.object, w.action, w.before, w.after
                ),
            )
        })
        .collect();
    lines.extend(view.approvals.iter().map(|a| {
        let reason = a
            .approval
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let gate = if a.gate.is_empty() {
            String::new()
        } else {
            format!("{}  ", a.gate)
        };
        (
            a.seq,
            format!(
                "{}  {gate}{} by {}{reason}",
                a.approval.at, a.action, a.approval.by
            ),
        )
    }));
    lines.sort();
    if lines.is_empty() {
        printer::err(format!("run {} has written nothing yet", view.run));
    }
    for (_, line) in lines {
        printer::out(line);
    }
    Ok(ExitStatus::Success)
}
