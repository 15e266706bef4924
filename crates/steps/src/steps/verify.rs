//! `verify`: no pod that was working when the wave began changed revision, restarted or
//! was recreated, and the update revision is still the run's. Any violation is a safety
//! stop: the partition goes back to |P| at once, before anything else.

use baton_engine::decide::{Violation, judge_wave};
use baton_engine::event::RunEvent;
use baton_engine::plan::OnFailure;
use baton_engine::snapshot::Snapshot;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::{Env, wave_baseline};
use crate::events::{EventType, ROLLBACK, SAFETY_STOP};

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    // The pods and the ASTS as the view shows them now (every write of this run in it).
    // The arbiter is not asked: the judgement takes roles from the wave's baseline, and
    // `handover` asks the arbiter itself, with the epoch guarding its write.
    let now = env.pods_now().await?;
    let before = wave_baseline(ctx, &now.sts)?;
    let expected = env.policy(ctx).expected_update_revision;
    let reasons = unsafe_reasons(&before, &now, expected.as_deref());
    if reasons.is_empty() {
        return Ok(StepOutput::new(json!({"safe": true})));
    }
    Err(safety_stop(env, ctx, &reasons).await)
}

/// Everything that makes the wave unsafe to go on with, as sentences for the operator: the
/// violations of [`judge_wave`] against the snapshot taken when the wave began, and an update
/// revision that is no longer the run's. Empty when all is well. `wait-updated` asks the same
/// question at every change it watches, so a stop does not wait for the end of the wave.
pub fn unsafe_reasons(before: &Snapshot, now: &Snapshot, expected: Option<&str>) -> Vec<String> {
    let verdict = judge_wave(before, now);
    let mut reasons: Vec<String> = verdict.violations.iter().map(describe).collect();
    if let (Some(e), Some(f)) = (expected, now.sts.trusted_update_revision())
        && e != f
    {
        reasons.push(format!(
            "the update revision changed under the run: expected {e}, found {f}"
        ));
    }
    reasons
}

/// The safety stop (SPEC §1, step 3.6): the partition goes back to |P| at once, before
/// anything else, then the stop is announced (progress event, Kubernetes Event) and the step
/// fails as a safety stop, which only `engine resume --accept-risk` continues.
pub async fn safety_stop(env: &Env, ctx: &StepContext, reasons: &[String]) -> StepError {
    let reason = reasons.join("; ");
    // Freeze first: nothing may update while the operator looks.
    let replicas = match freeze(env, ctx).await {
        Ok(replicas) => replicas,
        Err(e) => return e,
    };
    ctx.journal.emit(RunEvent::SafetyStop {
        step: ctx.step.to_string(),
        reason: reason.clone(),
    });
    env.recorder
        .publish(EventType::Warning, SAFETY_STOP, &reason)
        .await;
    StepError::safety_stop(format!(
        "safety stop, the rollout is frozen (partition = {replicas}): {reason}"
    ))
}

/// Partition = replicas, as an absolute write: no pod updates from now on. Returns it.
async fn freeze(env: &Env, ctx: &StepContext) -> Result<u32, StepError> {
    let sts = env.view().sts().await?;
    super::write_partition(env, ctx, &sts, sts.replicas()).await?;
    Ok(sts.replicas())
}

/// An analysis check failed (the application is unhealthy, no invariant broke): the
/// partition is frozen at once as for a safety stop. With `onFailure: rollback` the step
/// then fails as [`StepErrorKind::Unhealthy`](baton_engine::step::StepErrorKind), which the
/// executor turns into the run's rollback; otherwise it is the safety stop of `freeze`.
/// (In a rollback's waves no check is asked, so this never rolls back a rollback.)
pub async fn unhealthy(env: &Env, ctx: &StepContext, reasons: &[String]) -> StepError {
    let rolls_back =
        env.plan.spec().on_failure == OnFailure::Rollback && !super::rollback::rolling_back(ctx);
    if !rolls_back {
        return safety_stop(env, ctx, reasons).await;
    }
    let reason = reasons.join("; ");
    let replicas = match freeze(env, ctx).await {
        Ok(replicas) => replicas,
        Err(e) => return e,
    };
    env.recorder
        .publish(
            EventType::Warning,
            ROLLBACK,
            &format!("rolling back: {reason}"),
        )
        .await;
    StepError::unhealthy(format!(
        "{reason} (the rollout froze at partition {replicas} to roll back)"
    ))
}

/// One violation, for an operator.
pub fn describe(v: &Violation) -> String {
    match v {
        Violation::RevisionChanged { pod, from, to } => format!(
            "working pod {pod} changed revision from {} to {}",
            from.as_deref().unwrap_or("none"),
            to.as_deref().unwrap_or("none")
        ),
        Violation::Restarted { pod, before, after } => {
            format!("working pod {pod} restarted (restarts {before} -> {after})")
        }
        Violation::Terminating {
            pod,
            external: true,
        } => format!(
            "working pod {pod} is being deleted by someone else (an external deletion, not the \
             engine's doing; Kruise would recreate it at the update revision)"
        ),
        Violation::Terminating {
            pod,
            external: false,
        } => format!("working pod {pod} is being deleted"),
        Violation::Recreated {
            pod,
            external: true,
            revision: None,
        } => format!(
            "working pod {pod} was deleted by someone else and is not recreated yet \
             (an external deletion, not the engine's doing)"
        ),
        Violation::Recreated {
            pod,
            external: true,
            revision,
        } => format!(
            "working pod {pod} was deleted by someone else and recreated at revision {} \
             (an external recreation, not the engine's doing)",
            revision.as_deref().unwrap_or("none")
        ),
        Violation::Recreated {
            pod,
            external: false,
            revision,
        } => format!(
            "working pod {pod} was recreated at revision {}",
            revision.as_deref().unwrap_or("none")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_read_as_sentences_and_external_recreation_is_named() {
        let cases = [
            (
                Violation::RevisionChanged {
                    pod: "sample-0".into(),
                    from: Some("a".into()),
                    to: Some("b".into()),
                },
                "working pod sample-0 changed revision from a to b",
            ),
            (
                Violation::Restarted {
                    pod: "sample-2".into(),
                    before: 0,
                    after: 1,
                },
                "working pod sample-2 restarted (restarts 0 -> 1)",
            ),
            (
                Violation::Recreated {
                    pod: "sample-4".into(),
                    external: true,
                    revision: Some("b".into()),
                },
                "working pod sample-4 was deleted by someone else and recreated at revision b \
                 (an external recreation, not the engine's doing)",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(describe(&v), want);
        }
    }
}
