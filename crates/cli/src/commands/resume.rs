//! `engine resume [RUN]`: continue an interrupted run from its last checkpoint.

use baton_engine::executor;
use baton_engine::plan::ValidPlan;

use crate::args::{GlobalArgs, ResumeArgs};
use crate::exit::ExitStatus;
use crate::rollout::{self, Entry};
use crate::{cluster, printer, state};

pub fn run(global: &GlobalArgs, args: &ResumeArgs) -> anyhow::Result<ExitStatus> {
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
    let plan = override_plan.clone().unwrap_or(stored);
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        let entry = Entry::Resume {
            run: &run,
            plan_override: override_plan.as_ref(),
        };
        rollout::drive_and_report(client, &plan, entry, &opts, global, args.metrics_addr).await
    })
}
