//! `select`: the wave's pods, from the decision core over a fresh snapshot, leaving out the
//! pods whose per-pod gates fail. When gates hold every pod the wave could take, it asks
//! again until `waves.readyTimeout`, saying which pods and why.

use std::time::Duration;

use baton_engine::decide::{
    GateAnswer, Held, Policy, Refusal, WaveDecision, freeze_partition, plan_gated_wave, plan_wave,
    promote_candidates, select_candidates,
};
use baton_engine::event::RunEvent;
use baton_engine::plan::GateMoment;
use baton_engine::snapshot::Snapshot;
use baton_engine::step::{AuditWrite, Control, StepContext, StepError, StepOutput, WriteOutcome};
use serde_json::json;

use crate::env::{Env, SelectOutput, refusal, to_value, write_ahead};
use crate::events::{EventType, WAVE_STARTED};
use crate::gates::ask_all;

/// How long to wait before asking gates again while they hold every candidate.
pub const GATE_RETRY: Duration = Duration::from_secs(2);

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let policy = env.policy(ctx);
    let wave = ctx.step.wave.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + env.plan.spec().waves.ready_timeout.as_std();
    let (live, decision, answers) = loop {
        let live = env.live().await?;
        let (decision, answers) = gated_decision(env, ctx, &live.snapshot, &policy, wave).await;
        match decision {
            Err(Refusal::GatesHold { pods }) if tokio::time::Instant::now() < deadline => {
                ctx.journal.emit(RunEvent::Waiting {
                    step: ctx.step.to_string(),
                    what: format!("gates to pass: {}", pods.join(", ")),
                });
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
                    () = tokio::time::sleep(GATE_RETRY) => {}
                }
            }
            other => break (live, other.map_err(refusal)?, answers),
        }
    };
    let skipped_gates = record_skips(env, ctx).await?;
    let (select, partition, control) = match &decision {
        WaveDecision::Done => (Vec::new(), 0, Control::Finish),
        WaveDecision::Update { select, partition } => {
            (select.clone(), *partition, Control::Continue)
        }
        WaveDecision::HandoverFirst(_) => (
            Vec::new(),
            freeze_partition(&live.snapshot),
            Control::Continue,
        ),
    };
    for (pod, why) in &Held::from_answers(&answers).select {
        ctx.journal.emit(RunEvent::Warning {
            message: format!("wave {wave}: {pod} left out: gate {why}"),
        });
    }
    if control == Control::Continue {
        ctx.journal.emit(RunEvent::WavePlanned {
            wave,
            pods: select.clone(),
            partition,
        });
        let what = match &decision {
            WaveDecision::HandoverFirst(h) => {
                format!(
                    "wave {wave}: hand over first (promote {}, demote {})",
                    h.promote.join(", "),
                    h.demote.join(", ")
                )
            }
            _ => format!(
                "wave {wave}: updating {} (partition {partition})",
                select.join(", ")
            ),
        };
        env.recorder
            .publish(EventType::Normal, WAVE_STARTED, &what)
            .await;
    }
    let out = SelectOutput {
        decision,
        select,
        partition,
        gates: answers,
        skipped_gates,
    };
    Ok(StepOutput {
        value: to_value(&out),
        control,
    })
}

/// The wave decision with the plan's gates asked: select gates about every idle old pod,
/// then, when the wave must hand over first (or gates hold everything), promote gates about
/// the pods it would promote. Without gates, exactly [`plan_wave`].
pub async fn gated_decision(
    env: &Env,
    ctx: &StepContext,
    s: &Snapshot,
    policy: &Policy,
    wave: u32,
) -> (Result<WaveDecision, Refusal>, Vec<GateAnswer>) {
    let spec = env.plan.spec();
    let skipped = &env.safety.skip_gates;
    if spec.gates.iter().all(|g| skipped.contains(&g.name)) {
        return (plan_wave(s, policy), Vec::new());
    }
    let candidates = match select_candidates(s, policy) {
        Ok(c) => c,
        Err(r) => return (Err(r), Vec::new()),
    };
    let mut answers = ask_all(
        spec,
        GateMoment::Select,
        skipped,
        &candidates,
        &ctx.run_id,
        wave,
    )
    .await;
    let decision = plan_gated_wave(s, policy, &Held::from_answers(&answers));
    if !matches!(
        decision,
        Ok(WaveDecision::HandoverFirst(_)) | Err(Refusal::GatesHold { .. })
    ) {
        return (decision, answers);
    }
    let promote = match promote_candidates(s, policy) {
        Ok(c) => c,
        Err(r) => return (Err(r), answers),
    };
    answers.extend(
        ask_all(
            spec,
            GateMoment::Promote,
            skipped,
            &promote,
            &ctx.run_id,
            wave,
        )
        .await,
    );
    let decision = plan_gated_wave(s, policy, &Held::from_answers(&answers));
    (decision, answers)
}

/// Writes each gate the operator skips to the history, once per process: who and why.
async fn record_skips(env: &Env, ctx: &StepContext) -> Result<Vec<String>, StepError> {
    let safety = &env.safety;
    let skipped: Vec<String> = env
        .plan
        .spec()
        .gates
        .iter()
        .filter(|g| safety.skip_gates.contains(&g.name))
        .map(|g| g.name.clone())
        .collect();
    for gate in &skipped {
        let first = safety
            .recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(gate.clone());
        if !first {
            continue;
        }
        let why = safety.reason.as_deref().unwrap_or("no reason given");
        let audit = AuditWrite {
            object: format!("gate {gate}"),
            action: "skip gate (--skip-gate)".to_owned(),
            before: json!("asked"),
            after: json!(format!("skipped by {}: {why}", safety.by)),
        };
        write_ahead(ctx, audit, async {}, |()| Some(WriteOutcome::Applied)).await?;
        ctx.journal.emit(RunEvent::Warning {
            message: format!(
                "gate {gate} is skipped for this run by {}: {why}",
                safety.by
            ),
        });
    }
    Ok(skipped)
}
