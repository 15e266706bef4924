//! `handover`: promote updated idle pods and demote old working ones through the
//! arbiter, never letting the working count drop (SPEC §1 step 8). A stale epoch (409)
//! means someone else changed roles: re-read, re-plan, retry. A 202 is polled until the
//! arbiter shows the roles. Then the role labels follow.

use baton_engine::decide::{Refusal, plan_gated_handover};
use baton_engine::event::RunEvent;
use baton_engine::step::{AuditWrite, StepContext, StepError, StepOutput, WriteOutcome};
use serde_json::json;

use super::{Selection, relabel_pods};
use crate::arbiter::{HandoverOutcome, HandoverRequest, shows_handover};
use crate::env::{Env, HandoverOutput, chain, refusal, to_value, write_ahead};
use crate::events::{EventType, HANDOVER};
use crate::k8s::{Live, pod_rows};

/// How many stale-epoch answers in a row before giving up for this attempt.
const MAX_STALE: u32 = 5;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let wave = ctx.step.wave.unwrap_or(0);
    let request_id = format!("{}/{wave}", ctx.run_id);
    let policy = env.policy(ctx);
    for _ in 0..MAX_STALE {
        let live = env.live().await?;
        let held = crate::gates::promote_held(env, ctx, &live.snapshot, &policy, wave, true).await;
        let planned = match plan_gated_handover(&live.snapshot, &policy, &held) {
            Ok(Some(h)) if !h.promote.is_empty() => h,
            Ok(_) => {
                let why = "no working pod runs the old revision".to_owned();
                return skipped(env, ctx, &live, why).await;
            }
            Err(r @ (Refusal::NoIdleToHandOver { .. } | Refusal::GatesHold { .. })) => {
                return skipped(env, ctx, &live, r.to_string()).await;
            }
            Err(r) => return Err(refusal(r)),
        };
        let req = HandoverRequest {
            epoch: live.snapshot.arbiter.epoch,
            promote: planned.promote.clone(),
            demote: planned.demote.clone(),
            request_id: request_id.clone(),
        };
        let audit = AuditWrite {
            object: format!("arbiter {}", env.arbiter.url()),
            action: "handover".to_owned(),
            before: json!({"epoch": req.epoch, "working": working(&live.snapshot.arbiter)}),
            after: to_value(&req),
        };
        let sent = write_ahead(ctx, audit, env.arbiter.handover(&req), |sent| match sent {
            Ok(HandoverOutcome::Applied(_) | HandoverOutcome::Accepted) => {
                Some(WriteOutcome::Applied)
            }
            Ok(HandoverOutcome::StaleEpoch(epoch)) => Some(WriteOutcome::Failed {
                error: match epoch {
                    Some(epoch) => format!("stale epoch (the arbiter is at epoch {epoch})"),
                    None => "stale epoch (the arbiter did not say which epoch it is at)".to_owned(),
                },
            }),
            Ok(HandoverOutcome::Refused(reason)) => Some(WriteOutcome::Failed {
                error: format!("refused: {reason}"),
            }),
            Err(e) if e.surely_not_applied() => Some(WriteOutcome::Failed { error: chain(e) }),
            Err(e) => Some(WriteOutcome::Unknown { error: chain(e) }),
        })
        .await?;
        let applied = match sent? {
            HandoverOutcome::StaleEpoch(epoch) => {
                tracing::info!(sent = req.epoch, current = ?epoch, "stale arbiter epoch; re-planning the handover");
                continue;
            }
            HandoverOutcome::Refused(reason) => {
                return Err(StepError::failed(format!(
                    "the arbiter refused the handover: {reason}"
                )));
            }
            HandoverOutcome::Applied(view) => Some(view),
            HandoverOutcome::Accepted => None,
        };
        let view = match applied {
            Some(view) if shows_handover(&view, &req.promote, &req.demote) => view,
            // "Applied", yet the roles say otherwise: the arbiter answered another request
            // with this id (it must not apply one id twice). Waiting would only time out.
            Some(view) => {
                return Err(StepError::failed(format!(
                    "the arbiter answered handover request {} as applied, but its roles (epoch {}) \
                     do not show it; it may be replaying its answer to an earlier request with \
                     this id, such as an earlier run of the same name. Check the arbiter, then \
                     `engine resume`",
                    req.request_id, view.epoch
                )));
            }
            None => {
                ctx.journal.emit(RunEvent::Waiting {
                    step: ctx.step.to_string(),
                    what: format!(
                        "the arbiter to apply the handover (request {})",
                        req.request_id
                    ),
                });
                let within = env.plan.spec().waves.ready_timeout.as_std();
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
                    view = env.arbiter.wait_roles(&req.promote, &req.demote, within) => view?,
                }
            }
        };
        ctx.journal.emit(RunEvent::Handover {
            wave,
            promote: req.promote.clone(),
            demote: req.demote.clone(),
            epoch: view.epoch,
        });
        let message = format!(
            "wave {wave}: promoted {}, demoted {}",
            req.promote.join(", "),
            req.demote.join(", ")
        );
        env.recorder
            .publish(EventType::Normal, HANDOVER, &message)
            .await;
        let live = env.live().await?;
        relabel_pods(env, ctx, &live, Selection::Keep).await?;
        ctx.journal.emit(RunEvent::Pods {
            pods: pod_rows(&live, &env.plan.spec().update.images),
        });
        let out = HandoverOutput {
            promote: req.promote,
            demote: req.demote,
            epoch: view.epoch,
            skipped: None,
        };
        return Ok(StepOutput::new(to_value(&out)));
    }
    Err(StepError::retryable(format!(
        "the arbiter epoch changed {MAX_STALE} times in a row while handing over"
    )))
}

fn working(view: &baton_engine::snapshot::ArbiterView) -> Vec<&String> {
    view.members
        .iter()
        .filter(|(_, r)| **r == baton_engine::snapshot::Role::Working)
        .map(|(n, _)| n)
        .collect()
}

/// Nothing to hand over: the role labels still follow the arbiter, from the same read the
/// decision was taken on (nothing was written since).
async fn skipped(
    env: &Env,
    ctx: &StepContext,
    live: &Live,
    why: String,
) -> Result<StepOutput, StepError> {
    relabel_pods(env, ctx, live, Selection::Keep).await?;
    let out = HandoverOutput {
        epoch: live.snapshot.arbiter.epoch,
        skipped: Some(why),
        ..HandoverOutput::default()
    };
    Ok(StepOutput::new(to_value(&out)))
}
