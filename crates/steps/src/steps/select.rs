//! `select`: the wave's pods, from the decision core over a fresh snapshot.

use baton_engine::decide::{WaveDecision, freeze_partition, plan_wave};
use baton_engine::event::RunEvent;
use baton_engine::step::{Control, StepContext, StepError, StepOutput};

use crate::env::{Env, SelectOutput, refusal, to_value};
use crate::events::{EventType, WAVE_STARTED};

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let live = env.live().await?;
    let policy = env.policy(ctx);
    let decision = plan_wave(&live.snapshot, &policy).map_err(refusal)?;
    let wave = ctx.step.wave.unwrap_or(0);
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
    };
    Ok(StepOutput {
        value: to_value(&out),
        control,
    })
}
