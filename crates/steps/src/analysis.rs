//! Analysis (issue #15): the plan's checks of the whole application, asked every
//! `analysis.interval` while a wave's pods update and while it settles, and once when it is
//! ready. A failed check is a safety stop (`onFailure: freeze`): the partition is frozen at
//! once, before anything else, by the same path as a violation.

use std::time::Duration;

use baton_engine::plan::{Analysis, Spec};
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::Env;
use crate::prometheus;

/// Asks every check once, together; the failures as sentences (empty: all passed, or the
/// plan has no analysis).
pub async fn failing_checks(spec: &Spec) -> Vec<String> {
    let Some(analysis) = &spec.analysis else {
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
pub async fn until_failing(spec: &Spec) -> Vec<String> {
    let Some(Analysis { interval, .. }) = &spec.analysis else {
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

/// The `settle` pause, with the checks asked throughout: a failure stops it as a safety stop.
pub async fn settle(
    env: &Env,
    ctx: &StepContext,
    pause: Duration,
) -> Result<StepOutput, StepError> {
    let spec = env.plan.spec();
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(StepError::interrupted()),
        () = tokio::time::sleep(pause) => {
            let failed = failing_checks(spec).await;
            if failed.is_empty() {
                Ok(StepOutput::new(json!({"slept_ms": pause.as_millis() as u64})))
            } else {
                Err(crate::steps::verify::safety_stop(env, ctx, &failed).await)
            }
        }
        failed = until_failing(spec) => Err(crate::steps::verify::safety_stop(env, ctx, &failed).await),
    }
}
