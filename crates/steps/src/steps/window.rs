//! `window`: a wave starts only inside a maintenance window (`schedule.windows`). Outside
//! one it waits, saying for which window and how long (`window Mon 01:00 Europe/Berlin (in
//! 3h12m)`), and re-reads the clock often, so a clock that jumps (or a test's manual clock)
//! is noticed within a second. A wave that started inside a window runs to its end.

use std::time::Duration;

use baton_engine::decide::{WindowState, window_state};
use baton_engine::event::RunEvent;
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::json;

use crate::env::Env;

/// How often the clock is read while waiting.
pub const WINDOW_POLL: Duration = Duration::from_secs(1);

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let windows = &env.plan.spec().schedule.windows;
    let clock = &env.safety.clock;
    let mut told: Option<String> = None;
    let mut waited = false;
    loop {
        let now = clock.now();
        let next = match window_state(windows, now) {
            WindowState::Open => {
                return Ok(StepOutput::new(
                    json!({"opened": now.to_string(), "waited": waited}),
                ));
            }
            WindowState::Closed { next: None } => {
                return Err(StepError::failed(
                    "no maintenance window can open: none of the plan's time zones is known to this system",
                ));
            }
            WindowState::Closed { next: Some(next) } => next,
        };
        let what = next.waiting_for(now);
        if told.as_deref() != Some(what.as_str()) {
            ctx.journal.emit(RunEvent::Waiting {
                step: ctx.step.to_string(),
                what: what.clone(),
            });
            told = Some(what);
        }
        waited = true;
        let left = std::time::Duration::try_from(next.at.duration_since(now)).unwrap_or_default();
        tokio::select! {
            () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
            () = tokio::time::sleep(left.clamp(Duration::from_millis(10), WINDOW_POLL)) => {}
        }
    }
}
