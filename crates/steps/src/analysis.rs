//! Analysis (issue #15): the plan's checks of the whole application, asked every
//! `analysis.interval` while a wave's pods update and while it settles, and once when it is
//! ready. A failed check freezes the partition at once, before anything else, by the same
//! path as a violation; then the run stops (`onFailure: freeze`, a safety stop) or rolls back
//! (`onFailure: rollback`, see [`crate::steps::rollback`]).
//!
//! A rollback's waves ask no check: they go back to the revision that worked, and a metric
//! that stays bad until the bad pods are gone must not stop the rollback halfway.

use std::time::Duration;

use baton_engine::plan::{Analysis, Spec};
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::Env;
use crate::prometheus;

/// Asks every check once, together; the failures as sentences (empty: all passed, or the
/// plan has no analysis).
pub async fn failing_checks(spec: Option<&Spec>) -> Vec<String> {
    let Some(analysis) = spec.and_then(|s| s.analysis.as_ref()) else {
        return Vec::new();
    };
    // Owned, so the futures borrow nothing (the step's future must be Send for any lifetime).
    let asks = analysis.checks.iter().cloned().map(|check| async move {
        let q = &check.prometheus;
        let (passed, answer) = match prometheus::query_value(q, &q.query).await {
            Ok(value) => prometheus::judge(q, value),
            Err(e) => (false, crate::env::chain(&e)),
        };
        (!passed).then(|| format!("analysis check {} failed: {answer}", check.name))
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Asks the checks every interval and returns the first failures; never returns while they
/// pass, nor without analysis. Meant to race the work it watches.
pub async fn until_failing(spec: Option<&Spec>) -> Vec<String> {
    let Some(Analysis { interval, .. }) = spec.and_then(|s| s.analysis.as_ref()) else {
        return std::future::pending().await;
    };
    loop {
        let failed = failing_checks(spec).await;
        if !failed.is_empty() {
            return failed;
        }
        tokio::time::sleep(interval.as_std()).await;
    }
}

/// The checks a step asks: the plan's, except in a rollback's waves (none).
pub fn checked<'a>(env: &'a Env, ctx: &StepContext) -> Option<&'a Spec> {
    (!crate::steps::rollback::rolling_back(ctx)).then(|| env.plan.spec())
}

/// The `settle` pause, with the checks asked throughout: a failure freezes the rollout
/// ([`crate::steps::verify::unhealthy`]).
pub async fn settle(
    env: &Env,
    ctx: &StepContext,
    pause: Duration,
) -> Result<StepOutput, StepError> {
    let spec = checked(env, ctx);
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(StepError::interrupted()),
        () = tokio::time::sleep(pause) => {
            let failed = failing_checks(spec).await;
            if failed.is_empty() {
                Ok(StepOutput::new(json!({"slept_ms": pause.as_millis() as u64})))
            } else {
                Err(crate::steps::verify::unhealthy(env, ctx, &failed).await)
            }
        }
        failed = until_failing(spec) => Err(crate::steps::verify::unhealthy(env, ctx, &failed).await),
    }
}
