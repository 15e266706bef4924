//! `query-arbiter`: the arbiter's working and idle pods and epoch at the start of a
//! wave, with the working pods `verify` compares against at its end ([`baseline`]). Resolves
//! `safety.minWorking: 0` to the working count of the run's first query, once.

use baton_engine::dag::StepKind;
use baton_engine::decide::Refusal;
use baton_engine::event::RunEvent;
use baton_engine::snapshot::Role;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde::Deserialize as _;

use crate::baseline;
use crate::env::{Env, QueryOutput, QueryPrivate, to_value};
use crate::k8s::pod_rows;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let live = env.live().await?;
    let members = &live.snapshot.arbiter.members;
    let with_role = |role: Role| -> Vec<String> {
        members
            .iter()
            .filter(|(_, r)| **r == role)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let working = with_role(Role::Working);
    let idle = with_role(Role::Idle);
    let min_working = resolve_min_working(
        env.plan.spec().safety.min_working,
        earlier_min(ctx),
        working.len(),
    );
    ctx.journal.emit(RunEvent::Pods {
        pods: pod_rows(&live, &env.plan.spec().update.images),
    });
    let count = u32::try_from(working.len()).unwrap_or(u32::MAX);
    if count < min_working {
        return Err(StepError::failed(
            Refusal::BelowMinWorking {
                working: count,
                min: min_working,
            }
            .to_string(),
        ));
    }
    let wave = ctx.step.wave.unwrap_or(0);
    let baseline = baseline::encode(ctx, wave, &baseline::working_pods(&live.snapshot));
    let out = QueryOutput {
        epoch: live.snapshot.arbiter.epoch,
        working: working.len(),
        idle: idle.len(),
        min_working,
        private: QueryPrivate { baseline },
    };
    Ok(StepOutput::new(to_value(&out)))
}

/// The minimum the first query of the run resolved, if an earlier wave ran one.
fn earlier_min(ctx: &StepContext) -> Option<u32> {
    let current = ctx.step.wave.unwrap_or(u32::MAX);
    ctx.outputs
        .iter()
        .filter(|(id, _)| id.kind == StepKind::QueryArbiter && id.wave.is_some_and(|w| w < current))
        .min_by_key(|(id, _)| id.wave)
        .and_then(|(_, v)| QueryOutput::deserialize(&**v).ok())
        .map(|q| q.min_working)
}

/// The plan's minimum, or (0) the first query's, or the count seen now.
pub fn resolve_min_working(planned: u32, first: Option<u32>, working_now: usize) -> u32 {
    if planned > 0 {
        return planned;
    }
    first.unwrap_or_else(|| u32::try_from(working_now).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::resolve_min_working;

    #[test]
    fn min_working_zero_means_the_count_at_the_first_query() {
        let cases = [
            (2, None, 3, 2),
            (2, Some(3), 1, 2),
            (0, None, 3, 3),
            (0, Some(3), 2, 3),
            (0, None, 0, 0),
        ];
        for (planned, first, now, want) in cases {
            assert_eq!(
                resolve_min_working(planned, first, now),
                want,
                "{planned} {first:?} {now}"
            );
        }
    }
}
