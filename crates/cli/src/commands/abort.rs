//! `engine abort RUN`: freeze the rollout where it stands (partition = |P| - |U|) and
//! release the lock. Recorded in the run's history with who and why.
//!
//! Abort writes only while it holds the set's lock (taken over from the run's own dead or
//! stopping process), so it can never write under another run; a run that already
//! succeeded is refused (exit 2), one whose set another run holds too (exit 4).

use std::time::Duration;

use anyhow::Context as _;
use baton_engine::executor;
use baton_steps::lease;

use crate::args::{GateArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::{cluster, printer, state};

pub fn run(global: &GlobalArgs, args: &GateArgs) -> anyhow::Result<ExitStatus> {
    if args.cluster.in_cluster {
        return crate::commands::in_cluster::request(
            global,
            args,
            baton_controller::requests::Kind::Abort,
        );
    }
    let dir = state::state_dir(global)?;
    let plan = match executor::stored_plan(&dir, Some(&args.run)) {
        Ok(plan) => plan,
        Err(error) => return state::report_exec_error(error),
    };
    // A finished run is refused before anything else, whoever holds the set now.
    match executor::load_run(&dir, &args.run) {
        Ok(view) if view.state.is_finished() => {
            return state::report_exec_error(executor::ExecError::Finished {
                run: args.run.clone(),
            });
        }
        Ok(_) => {}
        Err(error) => return state::report_exec_error(error),
    }
    let by = crate::commands::who();
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        let target = &plan.spec().target;
        // Never write under another run: the set's lock must be free or this run's own.
        if let Some(holder) =
            lease::held_by_other_run(&client, &target.namespace, &target.name, &args.run).await?
        {
            return refuse_locked(&args.run, &holder);
        }
        // Stop the process driving the run first (it releases its own lease), then take the
        // lock for the freeze, so no run can start between the check and the write.
        if let Err(error) = executor::mark_aborted(&dir, &args.run, &by, args.reason.as_deref()) {
            return state::report_exec_error(error);
        }
        let guard = match lease::acquire_patiently(
            &client,
            &target.namespace,
            &target.name,
            &lease::holder_identity(&args.run),
            &args.run,
            LOCK_PATIENCE,
        )
        .await
        {
            Ok(guard) => guard,
            Err(lease::LeaseError::Held { holder }) => return refuse_locked(&args.run, &holder),
            Err(other) => return Err(other.into()),
        };
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
            let outcome = baton_steps::env::outcome_of(
                &applied,
                baton_steps::k8s::KubeError::surely_not_applied,
            );
            if let Some(outcome) = outcome
                && let Err(error) =
                    executor::settle_operator_write(&dir, &args.run, intent, outcome)
            {
                return state::report_exec_error(error);
            }
            applied?;
        }
        guard.release().await.context(
            "the rollout is frozen, but the lock could not be released; it expires on its own",
        )?;
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

/// How long abort waits for the run's own process to let go of the lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Another run holds the set: abort writes nothing (exit 4, as for a refused run).
fn refuse_locked(run: &str, holder: &str) -> anyhow::Result<ExitStatus> {
    printer::error_chain(&anyhow::anyhow!(
        "not aborting {run}: another run holds the lock on its statefulset ({holder}); \
         nothing was written. Abort that run by its own name if that is what you mean"
    ));
    Ok(ExitStatus::Locked)
}
