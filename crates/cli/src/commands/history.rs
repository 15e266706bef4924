//! `engine history RUN`: the audit log of a run (every write to the cluster or the
//! arbiter, with time and step) and the operators' approvals, aborts and accepted risks.

use baton_engine::executor;
use baton_engine::store::AuditOutcome;

use crate::args::{GlobalArgs, RunArg};
use crate::commands::status::state_dir;
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &RunArg) -> anyhow::Result<ExitStatus> {
    let view = if args.cluster.in_cluster {
        crate::commands::in_cluster::view(global, &args.run, &args.cluster)?
    } else {
        executor::load_run(&state_dir(global)?, &args.run)?
    };
    if printer::is_json(global) {
        printer::out_json(&serde_json::json!({
            "run": view.run,
            "audit": view.audit,
            "approvals": view.approvals,
        }));
        return Ok(ExitStatus::Success);
    }
    // Both lists come from one log; its sequence numbers give the order. The last column
    // (the change, before → after) is as long as it needs and is not padded.
    let mut rows: Vec<(u64, [String; 5])> = view
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
                [
                    printer::time(a.at),
                    a.step.to_string(),
                    w.object.clone(),
                    w.action.clone(),
                    format!("{} → {}{outcome}", w.before, w.after),
                ],
            )
        })
        .collect();
    rows.extend(view.approvals.iter().map(|a| {
        let reason = a
            .approval
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let gate = if a.gate.is_empty() {
            "-".to_owned()
        } else {
            a.gate.to_string()
        };
        (
            a.seq,
            [
                printer::time_text(&a.approval.at),
                gate,
                format!("run {}", view.run),
                a.action.to_string(),
                format!("by {}{reason}", a.approval.by),
            ],
        )
    }));
    // Writes of one batch may share a sequence number: their text orders them then.
    rows.sort();
    if rows.is_empty() {
        printer::err(format!("run {} has written nothing yet", view.run));
        return Ok(ExitStatus::Success);
    }
    let header = ["TIME", "STEP", "OBJECT", "ACTION", "CHANGE"].map(str::to_owned);
    let table: Vec<[String; 5]> = std::iter::once(header)
        .chain(rows.into_iter().map(|(_, row)| row))
        .collect();
    for line in crate::progress::columns(&table) {
        printer::out(line);
    }
    Ok(ExitStatus::Success)
}
