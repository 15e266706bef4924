//! `engine abort RUN`: freeze the rollout where it stands (partition = |P| - |U|) and
//! release the lock. Recorded in the run's history with who and why.

use baton_engine::executor;
use baton_engine::step::WriteOutcome;

use crate::args::{GateArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::{cluster, printer, state};

pub fn run(global: &GlobalArgs, args: &GateArgs) -> anyhow::Result<ExitStatus> {
    let dir = state::state_dir(global)?;
    let plan = match executor::stored_plan(&dir, Some(&args.run)) {
        Ok(plan) => plan,
        Err(error) => return state::report_exec_error(error),
    };
    let by = crate::commands::who();
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        // Stop the process driving the run first (it releases its own lease), then freeze.
        if let Err(error) = executor::mark_aborted(&dir, &args.run, &by, args.reason.as_deref()) {
            return state::report_exec_error(error);
        }
        let target = &plan.spec().target;
        let frozen = baton_steps::plan_freeze(&client, &plan).await?;
        if frozen.changes() {
            // Write-ahead, as the steps do: the history holds the write even if this
            // command dies before the answer.
            let intent = match executor::intend_operator_write(
                &dir,
                &args.run,
                "abort",
                &by,
                frozen.audit(),
            ) {
                Ok(intent) => intent,
                Err(error) => return state::report_exec_error(error),
            };
            let applied = baton_steps::apply_freeze(&client, &plan, &frozen).await;
            let outcome = match &applied {
                Ok(()) => Some(WriteOutcome::Applied),
                Err(e) if e.surely_not_applied() => Some(WriteOutcome::Failed {
                    error: baton_steps::env::chain(e),
                }),
                Err(_) => None,
            };
            if let Some(outcome) = outcome
                && let Err(error) =
                    executor::settle_operator_write(&dir, &args.run, intent, outcome)
            {
                return state::report_exec_error(error);
            }
            applied?;
        }
        baton_steps::lease::clear_stale(&client, &target.namespace, &target.name, plan.name())
            .await?;
        if printer::is_json(global) {
            printer::out_json(&serde_json::json!({
                "run": args.run,
                "by": by,
                "reason": args.reason,
                "partitionBefore": frozen.before,
                "partition": frozen.partition,
                "changed": frozen.changes(),
                "lockReleased": true,
            }));
        } else if frozen.changes() {
            printer::out(format!(
                "aborted {}: partition {} -> {} (frozen), lock released",
                args.run,
                frozen
                    .before
                    .map_or_else(|| "unset".to_owned(), |p| p.to_string()),
                frozen.partition
            ));
        } else {
            printer::out(format!(
                "aborted {}: partition already frozen at {}, lock released",
                args.run, frozen.partition
            ));
        }
        Ok(ExitStatus::Success)
    })
}
