//! `engine resume [RUN]`: continue an interrupted run from its last checkpoint.

use baton_engine::executor;
use baton_engine::plan::{PlanError, ValidPlan, read_plan_text};

use crate::args::{GlobalArgs, ResumeArgs};
use crate::exit::ExitStatus;
use crate::rollout::{self, Entry};
use crate::{cluster, printer, state};

pub fn run(global: &GlobalArgs, args: &ResumeArgs) -> anyhow::Result<ExitStatus> {
    if args.cluster.in_cluster {
        return crate::commands::in_cluster::resume(global, args);
    }
    let opts = state::run_options(global, args.accept_risk, args.replan)?;
    let override_plan = match &args.plan {
        Some(path) => match ValidPlan::load(path) {
            Ok(plan) => Some(plan),
            Err(error) => {
                printer::err(error.render());
                return Ok(ExitStatus::Usage);
            }
        },
        None => None,
    };
    // The steps need the plan the run was started with (or its override) before the
    // executor loads the rest of the record.
    let run = match executor::pick_run(&opts.state_dir, args.run.as_deref()) {
        Ok(run) => run,
        Err(error) => return state::report_exec_error(error),
    };
    let stored = match executor::stored_plan(&opts.state_dir, Some(&run)) {
        Ok(plan) => plan,
        Err(error) => return state::report_exec_error(error),
    };
    // Without --plan, the file the run was started from is the plan the operator edits: a
    // change there is refused (with a diff) unless --replan takes it.
    let override_plan = match override_plan {
        Some(plan) => Some(plan),
        None => match file_plan(&stored, args.replan) {
            Ok(plan) => plan,
            Err(status) => return Ok(status),
        },
    };
    if let Some(given) = &override_plan
        && given.source().hash != stored.source().hash
        && !args.replan
    {
        printer::err(format!(
            "error: the plan changed since run {run} started; pass --replan to continue with the new plan\n{}",
            plan_diff(
                &stored.source().text,
                &given.source().text,
                &given.source().file
            )
        ));
        return Ok(ExitStatus::Usage);
    }
    let plan = override_plan.clone().unwrap_or(stored);
    let safety = match rollout::safety_options(&plan, &args.skip_gate, args.reason.as_deref()) {
        Ok(safety) => safety,
        Err(message) => {
            printer::err(message);
            return Ok(ExitStatus::Usage);
        }
    };
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        let entry = Entry::Resume {
            run: &run,
            plan_override: override_plan.as_ref(),
        };
        rollout::drive_and_report(
            client,
            &plan,
            entry,
            &opts,
            global,
            args.metrics_addr,
            safety,
        )
        .await
    })
}

/// The plan in the file the run was started from, when it differs from the stored one (or
/// `--replan` asks for it). `Err` carries the exit status of a refusal already reported.
fn file_plan(stored: &ValidPlan, replan: bool) -> Result<Option<ValidPlan>, ExitStatus> {
    let file = &stored.source().file;
    let text = match read_plan_text(std::path::Path::new(file)) {
        Ok(text) => text,
        Err(PlanError::Read { source, .. }) if replan => {
            printer::err(format!(
                "error: --replan: cannot read the run's plan file {file} ({source}); pass --plan FILE"
            ));
            return Err(ExitStatus::Usage);
        }
        // Too large: not the text the run stored, and not a plan to take.
        Err(PlanError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::FileTooLarge =>
        {
            printer::err(format!(
                "error: the plan file {file} changed since the run started and is now {source}; \
                 restore it, or pass --plan FILE"
            ));
            return Err(ExitStatus::Usage);
        }
        // The file is gone or unreadable: the stored plan is the run's plan.
        Err(PlanError::Read { .. }) => return Ok(None),
        // Not UTF-8: changed, and located.
        Err(error) => {
            printer::err(error.render());
            return Err(ExitStatus::Usage);
        }
    };
    if text == stored.source().text {
        if replan {
            printer::err(format!(
                "note: {file} has not changed since the run started; --replan has nothing to take"
            ));
        }
        return Ok(None);
    }
    if !replan {
        printer::err(format!(
            "error: the plan file {file} changed since the run started; pass --replan to continue with it, \
             or restore it\n{}",
            plan_diff(&stored.source().text, &text, file)
        ));
        return Err(ExitStatus::Usage);
    }
    match ValidPlan::parse(file, &text) {
        Ok(plan) => Ok(Some(plan)),
        Err(error) => {
            printer::err(error.render());
            Err(ExitStatus::Usage)
        }
    }
}

/// A unified diff of the stored plan against the new one, for the operator to read.
fn plan_diff(stored: &str, given: &str, file: &str) -> String {
    similar::TextDiff::from_lines(stored, given)
        .unified_diff()
        .context_radius(2)
        .header("plan stored with the run", file)
        .to_string()
}
