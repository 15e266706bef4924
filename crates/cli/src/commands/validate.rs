//! `engine validate`: parse and check a plan; change nothing.
//!
//! Text output is `ok: ...` on stdout or rustc-style reports on stderr; JSON output is one
//! document on stdout either way. A bad plan exits 2 (SPEC §5), and so does a plan whose
//! token file is unreadable, empty or larger than 1 MiB.

use baton_engine::plan::{PlanError, ValidPlan};
use serde_json::json;

use crate::args::{GlobalArgs, PlanArg};
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &PlanArg) -> anyhow::Result<ExitStatus> {
    // The files the plan names (its token file) are checked here too: a plan that parses
    // but whose token file is empty would fail only at the first arbiter request.
    let checked = ValidPlan::load(&args.plan).and_then(|plan| plan.check_files().map(|()| plan));
    match checked {
        Ok(plan) => {
            let target = &plan.spec().target;
            if printer::is_json(global) {
                printer::out_json(&json!({
                    "valid": true,
                    "file": plan.source().file,
                    "name": plan.name(),
                    "target": {"namespace": target.namespace, "name": target.name},
                    "hash": plan.source().hash,
                }));
            } else {
                printer::out(format_args!(
                    "ok: {} ({}, target {}/{})",
                    plan.source().file,
                    plan.name(),
                    target.namespace,
                    target.name
                ));
            }
            Ok(ExitStatus::Success)
        }
        Err(error) => {
            if printer::is_json(global) {
                printer::out_json(&errors_json(&error));
            } else {
                printer::err(error.render());
            }
            Ok(ExitStatus::Usage)
        }
    }
}

fn errors_json(error: &PlanError) -> serde_json::Value {
    let file = error.file();
    let errors: Vec<serde_json::Value> = match error {
        PlanError::Read { source, .. } => vec![json!({
            "file": file,
            "line": null,
            "column": null,
            "path": "",
            "message": format!("cannot read plan file: {source}"),
        })],
        PlanError::Invalid { diagnostics, .. } => diagnostics
            .iter()
            .map(|d| {
                json!({
                    "file": file,
                    "line": d.line,
                    "column": d.column,
                    "path": d.path,
                    "message": d.message,
                })
            })
            .collect(),
    };
    json!({"valid": false, "errors": errors})
}
