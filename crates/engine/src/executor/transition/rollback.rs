//! `onFailure: rollback` in the run's state machine: which failure starts a rollback, how
//! the record remembers it (durably, in the same commit as the failure, so a crash resumes
//! into the rollback and never into the forward rollout), and how the graph grows the
//! `rollback` step after the failed wave. The rollback's waves are ordinary waves numbered
//! after the failed one (see [`Blueprint::rollback_wave`]).

use jiff::Timestamp;

use crate::dag::{NodeSpec, StepId, StepKind};
use crate::event::RunEvent;
use crate::plan::HookPoint;
use crate::step::StepErrorKind;
use crate::store::{NodeState, Phase, Rollback, RunRecord};

use super::{Effect, GraphError, add_nodes, graph, skip_pending_of_phase};

#[cfg(doc)]
use super::Blueprint;

/// Whether a failure of step `id` with `kind` starts the rollback of a run whose plan says
/// `onFailure: rollback`: an unhealthy application (a failed analysis check) anywhere in a
/// wave, or a wave whose pods did not come up (`wait-updated` failing for good, e.g. its
/// `readyTimeout`) or whose `afterWaveReady` hook failed. Never a broken invariant (a
/// safety stop: someone else is changing the set, a human must look), never a failure
/// outside a wave, and never once the run rolls back: a second failure stops it as
/// `freeze` would, it does not roll back the rollback.
pub(super) fn starts_rollback(rec: &RunRecord, id: &StepId, kind: StepErrorKind) -> bool {
    if rec.meta.rollback.is_some() || id.wave.is_none() {
        return false;
    }
    match kind {
        StepErrorKind::Unhealthy => true,
        StepErrorKind::Failed => matches!(
            id.kind,
            StepKind::WaitUpdated
                | StepKind::Hook {
                    point: HookPoint::AfterWaveReady,
                    ..
                }
        ),
        StepErrorKind::Retryable | StepErrorKind::SafetyStop | StepErrorKind::Interrupted => false,
    }
}

/// Records the rollback started by the failure of node `idx`: its pending siblings of the
/// wave will not run (those still running are cancelled by the executor and skipped when
/// the graph grows), and the event says so.
pub(super) fn start(
    rec: &mut RunRecord,
    now: Timestamp,
    idx: usize,
    reason: &str,
    fx: &mut Vec<Effect>,
) {
    let id = rec.nodes[idx].spec.id.clone();
    let wave = id.wave.unwrap_or_default();
    rec.meta.rollback = Some(Rollback {
        step: id.to_string(),
        reason: reason.to_owned(),
        wave,
        node: None,
    });
    skip_pending_of_phase(rec, now, fx);
    fx.push(Effect::Event(RunEvent::RollbackStarted {
        step: id.to_string(),
        reason: reason.to_owned(),
        wave,
    }));
}

/// A rollback was started and its step is not in the graph yet.
pub(super) fn pending(rec: &RunRecord) -> bool {
    rec.meta
        .rollback
        .as_ref()
        .is_some_and(|rb| rb.node.is_none())
}

/// Nodes before this index belong to the forward rollout a rollback replaced (all of them
/// while the rollback step is not in the graph yet); 0 without a rollback.
pub(super) fn cut(rec: &RunRecord) -> usize {
    match &rec.meta.rollback {
        None => 0,
        Some(Rollback { node: None, .. }) => rec.nodes.len(),
        Some(Rollback { node: Some(n), .. }) => *n as usize,
    }
}

/// Node `i` failed before the rollback that replaced it: it never runs again and the graph
/// grows past it.
pub(super) fn replaced(rec: &RunRecord, i: usize) -> bool {
    i < cut(rec) && rec.nodes[i].state == NodeState::Failed
}

/// The steps nothing waits for that are done: where the next part attaches. A failed step
/// the rollback replaced is left out (nothing could ever follow it).
pub(super) fn done_sinks(rec: &RunRecord) -> Result<Vec<StepId>, GraphError> {
    Ok(graph(rec)?
        .sinks()
        .into_iter()
        .filter(|id| {
            rec.position(id)
                .is_some_and(|i| rec.nodes[i].state.is_done())
        })
        .collect())
}

/// The graph grows the `rollback` step: what was left of the failed wave is skipped (its
/// failed step stays failed), and the step follows the wave's done ends.
pub(super) fn grow_rollback(
    rec: &mut RunRecord,
    now: Timestamp,
    fx: &mut Vec<Effect>,
) -> Result<(), GraphError> {
    let id = StepId::run_level(StepKind::Rollback);
    if rec.position(&id).is_some() {
        return Err(GraphError(format!("step {id} would be added twice")));
    }
    for (i, n) in rec.nodes.iter_mut().enumerate() {
        if matches!(
            n.state,
            NodeState::Pending | NodeState::Running | NodeState::Interrupted
        ) {
            n.state = NodeState::Skipped;
            n.finished_at = Some(now);
            fx.push(Effect::Node(i));
        }
    }
    let deps = done_sinks(rec)?;
    let start = rec.nodes.len();
    let wave = rec.meta.rollback.as_ref().map_or(0, |rb| rb.wave);
    add_nodes(rec, vec![NodeSpec { id, deps }], fx);
    if let Some(rb) = &mut rec.meta.rollback {
        rb.node = Some(start as u32);
    }
    // The next wave is numbered after the failed one.
    rec.meta.phase = Phase::Wave { wave };
    rec.meta.phase_start = start as u32;
    rec.meta.finishing = false;
    Ok(())
}
