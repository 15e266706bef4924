//! `engine run PLAN`: start a run and follow it to the end.

use baton_engine::executor;
use baton_engine::plan::ValidPlan;

use crate::args::{GlobalArgs, RunArgs};
use crate::exit::ExitStatus;
use crate::rollout::{self, Entry};
use crate::{cluster, printer, state};

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<ExitStatus> {
    let plan = match ValidPlan::load(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            printer::err(error.render());
            return Ok(ExitStatus::Usage);
        }
    };
    let safety = match rollout::safety_options(&plan, &args.skip_gate, args.reason.as_deref()) {
        Ok(safety) => safety,
        Err(message) => {
            printer::err(message);
            return Ok(ExitStatus::Usage);
        }
    };
    let opts = state::run_options(global, false, false)?;
    let run = match executor::name_new_run(&opts.state_dir, &plan, args.name.as_deref()) {
        Ok(run) => run,
        Err(error) => return state::report_exec_error(error),
    };
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        if let Some(status) = crate::commands::plan::refuse_if_unsafe(&client, &plan).await? {
            return Ok(status);
        }
        rollout::drive_and_report(
            client,
            &plan,
            Entry::Start { run: &run },
            &opts,
            global,
            args.metrics_addr,
            safety,
        )
        .await
    })
}
