//! `engine plan PLAN`: the dry run. Reads the cluster and the arbiter, prints the waves
//! the run would go through and the preconditions that fail; writes nothing.

use baton_engine::decide::{self, Policy, Warning};
use baton_engine::plan::ValidPlan;

use crate::args::{GlobalArgs, PlanArg};
use crate::exit::ExitStatus;
use crate::{cluster, printer};

pub fn run(global: &GlobalArgs, args: &PlanArg) -> anyhow::Result<ExitStatus> {
    let plan = match ValidPlan::load(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            printer::err(error.render());
            return Ok(ExitStatus::Usage);
        }
    };
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        let (snapshot, warnings) = match baton_steps::preflight_with_retries(&client, &plan).await {
            Ok(found) => found,
            Err(error) => {
                printer::error_chain(&anyhow::Error::new(error));
                return Ok(ExitStatus::Usage);
            }
        };
        let working = snapshot.arbiter.members.values().filter(|r| **r == baton_engine::snapshot::Role::Working).count();
        let policy = Policy {
            max_per_wave: plan.spec().waves.max_per_wave,
            min_working: match plan.spec().safety.min_working {
                0 => u32::try_from(working).unwrap_or(u32::MAX),
                n => n,
            },
            expected_update_revision: None,
        };
        let forecast = decide::forecast(&snapshot, &policy);
        if printer::is_json(global) {
            let doc = serde_json::json!({
                "run": plan.name(),
                "target": format!("{}/{}", snapshot.sts.namespace, snapshot.sts.name),
                "replicas": snapshot.sts.replicas,
                "minWorking": policy.min_working,
                "warnings": warnings,
                "waves": forecast.as_ref().ok(),
                "refusal": forecast.as_ref().err(),
            });
            printer::out_json(&doc);
        } else {
            printer::out(format!(
                "plan {} on {}/{}: {} replicas, {} working, arbiter epoch {}",
                plan.name(),
                snapshot.sts.namespace,
                snapshot.sts.name,
                snapshot.sts.replicas,
                working,
                snapshot.arbiter.epoch
            ));
            for warning in &warnings {
                match warning {
                    Warning::Protected { pods } => printer::out(format!(
                        "warning: the arbiter does not list {}; they are protected and will not be updated",
                        pods.join(", ")
                    )),
                }
            }
            match &forecast {
                Ok(waves) if waves.is_empty() => printer::out("nothing to do: every pod runs the update revision"),
                Ok(waves) => {
                    printer::out("  (protect: partition = replicas, then apply the new template)");
                    for wave in waves {
                        printer::out(format!(
                            "wave {}: update {} (partition {})",
                            wave.wave,
                            if wave.select.is_empty() { "nothing".to_owned() } else { wave.select.join(", ") },
                            wave.partition
                        ));
                        if let Some(handover) = &wave.handover {
                            printer::out(format!(
                                "        handover: promote {}, demote {}",
                                handover.promote.join(", "),
                                handover.demote.join(", ")
                            ));
                        }
                    }
                    printer::out("  (finalize: partition 0, labels cleaned)");
                }
                Err(refusal) => printer::out(format!("refused: {refusal}")),
            }
        }
        Ok(if forecast.is_ok() { ExitStatus::Success } else { ExitStatus::Usage })
    })
}

/// The preconditions `engine run` checks before it writes anything (SPEC §1). Returns
/// the exit status to stop with, or `None` to go on.
pub async fn refuse_if_unsafe(
    client: &kube::Client,
    plan: &ValidPlan,
) -> anyhow::Result<Option<ExitStatus>> {
    match baton_steps::preflight_with_retries(client, plan).await {
        Ok((_, warnings)) => {
            for warning in warnings {
                let Warning::Protected { pods } = warning;
                printer::err(format!(
                    "warning: the arbiter does not list {}; they will not be updated",
                    pods.join(", ")
                ));
            }
            Ok(None)
        }
        Err(error) => {
            printer::error_chain(&anyhow::Error::new(error));
            Ok(Some(ExitStatus::Usage))
        }
    }
}
