//! `wait-updated`: watch until every pod of the wave runs the update revision and is
//! settled (SPEC §1 step 5). Judges the pods themselves: Kruise's counters lag.
//!
//! The same watch also keeps an eye on the pods that were working when the wave began. A
//! working pod deleted by someone else mid-wave is recreated by Kruise at the *update*
//! revision while the partition is open, so waiting for `verify` at the end of the wave is
//! too late (and the wave may never end: the selected pods can be held by the recreation).
//! Any violation seen here is the safety stop of `verify`, at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use baton_engine::dag::StepKind;
use baton_engine::event::RunEvent;
use baton_engine::snapshot::{ArbiterView, PodView, Snapshot};
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use super::verify::{safety_stop, unhealthy, unsafe_reasons};
use super::wait::{Progress, ViewCache, progress, watch_until};
use crate::env::{Env, SelectOutput, wave_baseline, wave_output};
use crate::k8s::{Asts, sts_view};

/// How the watch of a wave ends.
enum Outcome {
    /// Every selected pod runs this update revision and is settled.
    Done(String),
    /// A working pod was disturbed (or the template changed): stop for safety.
    Unsafe(Vec<String>),
    /// An analysis check failed: freeze, then stop or roll back (`onFailure`).
    Unhealthy(Vec<String>),
}

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let select: SelectOutput = wave_output(ctx, StepKind::Select).ok_or_else(|| {
        StepError::failed("wait-updated needs the output of this wave's select step")
    })?;
    ctx.journal.emit(RunEvent::Waiting {
        step: ctx.step.to_string(),
        what: if select.select.is_empty() {
            "the controller to observe the partition".to_owned()
        } else {
            format!(
                "{} to run the update revision and be ready",
                select.select.join(", ")
            )
        },
    });
    let mut named = sts_view(&Asts::default());
    named.name.clone_from(&env.target.name);
    let before = wave_baseline(ctx, &named)?;
    let expected = env.policy(ctx).expected_update_revision;
    let mut announced = BTreeSet::new();
    let selected: HashSet<&str> = select.select.iter().map(String::as_str).collect();
    let baseline: HashMap<&str, &PodView> =
        before.pods.iter().map(|p| (p.name.as_str(), p)).collect();
    let no_pods = Snapshot {
        sts: before.sts.clone(),
        pods: Vec::new(),
        arbiter: ArbiterView::default(),
    };
    // The plan's analysis races the watch: a failed check stops the wave mid-way.
    let mut views = ViewCache::default();
    let watched = watch_until(
        env,
        ctx,
        true,
        |w| {
            // Roles are the baseline's (`before`): the judgement never reads `now`'s arbiter.
            let now = views.snapshot(w);
            // The judgement is asked at every change: when every working pod is exactly as
            // the wave began, only the revision check can object, so the pod-by-pod
            // judgement is skipped.
            let reasons = if as_it_began(&baseline, &now.pods) {
                unsafe_reasons(&no_pods, now, expected.as_deref())
            } else {
                unsafe_reasons(&before, now, expected.as_deref())
            };
            if !reasons.is_empty() {
                return Some(Outcome::Unsafe(reasons));
            }
            let want = now.sts.trusted_update_revision()?;
            let mut settled: Vec<&PodView> = now
                .pods
                .iter()
                .filter(|p| selected.contains(p.name.as_str()))
                .filter(|p| p.revision.as_deref() == Some(want) && p.is_settled())
                .filter(|p| !announced.contains(&p.name))
                .collect();
            // Told by ordinal, as the wave's pods were named.
            settled.sort_by_key(|p| p.ordinal);
            for p in settled {
                announced.insert(p.name.clone());
                ctx.journal.emit(RunEvent::PodUpdated {
                    pod: p.name.clone(),
                    revision: want.to_owned(),
                });
            }
            matches!(
                progress(&now.sts, &now.pods, &select.select),
                Progress::Done
            )
            .then(|| Outcome::Done(want.to_owned()))
        },
        |w| {
            let (sts, pods) = w.views();
            progress(&sts, &pods, &select.select).explain()
        },
    );
    let outcome = tokio::select! {
        outcome = watched => outcome?,
        failed = crate::analysis::until_failing(crate::analysis::checked(env, ctx)) => Outcome::Unhealthy(failed),
    };
    // And once more when the wave is ready.
    let outcome = match outcome {
        Outcome::Done(revision) => {
            let failed = crate::analysis::failing_checks(crate::analysis::checked(env, ctx)).await;
            if failed.is_empty() {
                Outcome::Done(revision)
            } else {
                Outcome::Unhealthy(failed)
            }
        }
        unsafe_ => unsafe_,
    };
    let revision = match outcome {
        Outcome::Done(revision) => revision,
        Outcome::Unsafe(reasons) => return Err(safety_stop(env, ctx, &reasons).await),
        Outcome::Unhealthy(reasons) => return Err(unhealthy(env, ctx, &reasons).await),
    };
    Ok(StepOutput::new(
        json!({"pods": select.select, "revision": revision}),
    ))
}

/// Whether every pod of the wave's baseline exists now with the uid, revision, restart
/// count and terminating state it had when the wave began: then the judgement of
/// [`unsafe_reasons`] can find no violation among them.
fn as_it_began(baseline: &HashMap<&str, &PodView>, now: &[PodView]) -> bool {
    let mut found = 0;
    for p in now {
        if let Some(b) = baseline.get(p.name.as_str()) {
            if p.uid != b.uid
                || p.revision != b.revision
                || p.restarts != b.restarts
                || p.terminating != b.terminating
            {
                return false;
            }
            found += 1;
        }
    }
    found == baseline.len()
}
