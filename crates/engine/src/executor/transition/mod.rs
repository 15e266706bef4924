//! The run's state machine: every change the executor makes to a run's record, as a pure
//! function of the record, the time and a [`Transition`]. It does no I/O: what must happen
//! around a change (the nodes to checkpoint, log entries, events to send once committed) is
//! returned as [`Effect`]s, which the ledger carries out. Being pure, each rule is tested by
//! a table of records in and records out.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::dag::{Dag, NodeSpec, StepKind};
use crate::event::RunEvent;
use crate::plan::ValidPlan;
use crate::step::{Control, StepError, StepErrorKind, StepOutput};
use crate::store::records::NodeError;
use crate::store::{LogKind, NodeRecord, NodeState, Phase, RunMeta, RunRecord, RunState};

use super::MAX_WAVES;
use super::drive::Blueprint;

/// One change to a run's record.
pub(crate) enum Transition<'a> {
    /// A new run: its first nodes (the prologue).
    Create { prologue: Vec<NodeSpec> },
    /// A process takes the run over: nodes a dead process left `running` run again, failed
    /// and interrupted ones are retried, hooks `plan` no longer has are skipped, and with
    /// `accept_risk` a safety stop is recorded as accepted by `by` (its wave planned again).
    Resume {
        plan: &'a ValidPlan,
        accept_risk: bool,
        by: String,
    },
    /// Node `idx` begins an attempt.
    Started { idx: usize },
    /// Node `idx` failed with a retryable error and waits to run again.
    Retrying { idx: usize, error: NodeError },
    /// Node `idx` succeeded; a [`Control::Finish`] skips the rest of its wave.
    Succeeded {
        idx: usize,
        output: StepOutput,
        ms: u64,
    },
    /// Node `idx` ended with `error` and will not be retried in this process. With
    /// `rolls_back` (the plan says `onFailure: rollback`) a failure that
    /// [`rollback::starts_rollback`] starts the run's rollback in the same commit.
    Failed {
        idx: usize,
        error: StepError,
        rolls_back: bool,
    },
    /// The task of node `idx` ended without recording it: abandoned after the grace period
    /// (`panic: None`) or panicked.
    Abandoned { idx: usize, panic: Option<String> },
    /// Every node is done: append the next part of the graph, or finish the run.
    Grow { blueprint: &'a dyn Blueprint },
    /// The run stops early in `state`.
    Stop {
        state: RunState,
        reason: Option<String>,
    },
}

/// What the ledger does around a change, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Node `idx` changed (or was added): it goes into the checkpoint.
    Node(usize),
    /// Append to the run's log.
    Log(LogKind),
    /// Append to the run's log, and send to subscribers once committed.
    Event(RunEvent),
    /// The run succeeded (after [`Transition::Grow`]).
    Complete,
}

/// A change the graph does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct GraphError(pub(crate) String);

impl From<GraphError> for super::ExecError {
    fn from(e: GraphError) -> Self {
        super::ExecError::Graph { detail: e.0 }
    }
}

/// Apply `transition` to `rec` at time `now`.
///
/// # Errors
/// [`GraphError`] from [`Transition::Grow`] when a node is not done, a step would be added
/// twice, or the run reached [`MAX_WAVES`]; `rec` is then unchanged.
pub(crate) fn apply(
    rec: &mut RunRecord,
    now: Timestamp,
    transition: Transition<'_>,
) -> Result<Vec<Effect>, GraphError> {
    let mut fx = Vec::new();
    match transition {
        Transition::Create { prologue } => {
            add_nodes(rec, prologue, &mut fx);
            fx.push(Effect::Event(started(rec)));
        }
        Transition::Resume {
            plan,
            accept_risk,
            by,
        } => resume(rec, now, plan, accept_risk, &by, &mut fx),
        Transition::Started { idx } => {
            let n = &mut rec.nodes[idx];
            n.state = NodeState::Running;
            n.attempts += 1;
            n.started_at = Some(now);
            n.finished_at = None;
            fx.push(Effect::Node(idx));
            fx.push(Effect::Event(RunEvent::StepStarted {
                step: n.spec.id.to_string(),
                attempt: n.attempts,
            }));
        }
        Transition::Retrying { idx, error } => {
            let n = &mut rec.nodes[idx];
            n.state = NodeState::Pending;
            let message = error.message.clone();
            n.error = Some(error);
            fx.push(Effect::Node(idx));
            fx.push(Effect::Event(RunEvent::StepFailed {
                step: n.spec.id.to_string(),
                error: message,
                retrying: true,
            }));
        }
        Transition::Succeeded { idx, output, ms } => succeeded(rec, now, idx, output, ms, &mut fx),
        Transition::Failed {
            idx,
            error,
            rolls_back,
        } => failed(rec, now, idx, &error, rolls_back, &mut fx),
        Transition::Abandoned { idx, panic } => {
            let (state, error) = match panic {
                Some(message) => (
                    NodeState::Failed,
                    Some(NodeError {
                        kind: StepErrorKind::Failed,
                        message,
                    }),
                ),
                None => (NodeState::Interrupted, None),
            };
            let n = &mut rec.nodes[idx];
            fx.push(Effect::Node(idx));
            if n.state == NodeState::Running || n.state == NodeState::Pending {
                n.state = state;
                n.error = error;
                n.finished_at = Some(now);
            }
        }
        Transition::Grow { blueprint } => grow(rec, now, blueprint, &mut fx)?,
        Transition::Stop { state, reason } => {
            rec.meta.state = state;
            rec.meta.reason = reason;
            fx.push(Effect::Event(RunEvent::RunFinished {
                run: rec.meta.run_id.clone(),
                outcome: state.as_str().to_owned(),
            }));
        }
    }
    Ok(fx)
}

fn started(rec: &RunRecord) -> RunEvent {
    RunEvent::RunStarted {
        run: rec.meta.run_id.clone(),
        plan: rec.meta.plan.file.clone(),
        target: rec.meta.target.clone(),
    }
}

/// Skips what the current phase (the nodes from `phase_start`) has not started: a wave
/// that learns it has nothing left to do, or one a rollback replaces.
pub(super) fn skip_pending_of_phase(rec: &mut RunRecord, now: Timestamp, fx: &mut Vec<Effect>) {
    let start = rec.meta.phase_start as usize;
    for i in start..rec.nodes.len() {
        let n = &mut rec.nodes[i];
        if n.state == NodeState::Pending {
            n.state = NodeState::Skipped;
            n.finished_at = Some(now);
            fx.push(Effect::Node(i));
        }
    }
}

pub(super) fn add_nodes(rec: &mut RunRecord, specs: Vec<NodeSpec>, fx: &mut Vec<Effect>) {
    for spec in specs {
        fx.push(Effect::Node(rec.nodes.len()));
        rec.nodes.push(NodeRecord::pending(spec));
    }
}

/// The node that stopped the run for safety, if any.
pub(super) fn safety_stopped_node(record: &RunRecord) -> Option<usize> {
    record.nodes.iter().position(|n| {
        n.state == NodeState::Failed
            && n.error
                .as_ref()
                .is_some_and(|e| e.kind == StepErrorKind::SafetyStop)
    })
}

fn resume(
    rec: &mut RunRecord,
    now: Timestamp,
    plan: &ValidPlan,
    accept: bool,
    by: &str,
    fx: &mut Vec<Effect>,
) {
    let stopped_at = safety_stopped_node(rec);
    // A hook the new plan no longer has cannot run: its node is skipped, not failed
    // over and over (the graph was built from the old plan).
    for (i, n) in rec.nodes.iter_mut().enumerate() {
        let gone = match &n.spec.id.kind {
            StepKind::Hook { point, name } => {
                !n.state.is_done() && !plan.spec().hooks.at(*point).iter().any(|h| &h.name == name)
            }
            _ => false,
        };
        if gone {
            n.state = NodeState::Skipped;
            n.error = None;
            n.finished_at = Some(now);
            fx.push(Effect::Node(i));
            fx.push(Effect::Event(RunEvent::Warning {
                message: format!("{} is not in the plan any more; skipped", n.spec.id),
            }));
        }
    }
    // Accepting the risk of a stop inside a wave plans that wave again from the cluster
    // as it stands: its baseline (the working pods `verify` and `wait-updated` compare
    // against) is taken anew, or the accepted violation would stop the wave again. Every
    // step recomputes its target from the live cluster, so re-running them is safe, and
    // a stop always comes before the wave's handover, so no handover is sent twice.
    let replanned_wave = stopped_at
        .filter(|_| accept)
        .and_then(|i| rec.nodes[i].spec.id.wave);
    // A rollback replaced what was left of the failed wave: nothing of it runs again (the
    // failed step stays failed, as the record of why the run went back).
    let cut = rollback::cut(rec);
    for (i, n) in rec.nodes.iter_mut().enumerate() {
        let id = n.spec.id.clone();
        if i < cut {
            // A safety stop beside the failure that started the rollback: accepting it
            // goes on with the rollback, and the history says who accepted it.
            let safety = n
                .error
                .as_ref()
                .is_some_and(|e| e.kind == StepErrorKind::SafetyStop);
            if accept && safety && n.state == NodeState::Failed {
                fx.push(Effect::Log(LogKind::RiskAccepted {
                    step: id,
                    by: by.to_owned(),
                }));
            }
            if matches!(
                n.state,
                NodeState::Pending | NodeState::Running | NodeState::Interrupted
            ) {
                n.state = NodeState::Skipped;
                n.finished_at = Some(now);
                fx.push(Effect::Node(i));
            }
            continue;
        }
        if let Some(wave) = replanned_wave
            && id.wave == Some(wave)
        {
            if Some(i) == stopped_at {
                fx.push(Effect::Log(LogKind::RiskAccepted {
                    step: id,
                    by: by.to_owned(),
                }));
            }
            n.state = NodeState::Pending;
            n.output = None;
            n.error = None;
            n.started_at = None;
            n.finished_at = None;
            fx.push(Effect::Node(i));
            continue;
        }
        let safety = n
            .error
            .as_ref()
            .is_some_and(|e| e.kind == StepErrorKind::SafetyStop);
        match n.state {
            NodeState::Failed if safety && accept => {
                n.state = NodeState::Skipped;
                n.finished_at = Some(now);
                fx.push(Effect::Node(i));
                fx.push(Effect::Log(LogKind::RiskAccepted {
                    step: id,
                    by: by.to_owned(),
                }));
            }
            NodeState::Running => {
                n.state = NodeState::Pending;
                fx.push(Effect::Node(i));
                fx.push(Effect::Event(RunEvent::Warning {
                    message: format!("{id} was running when its process stopped; running it again"),
                }));
            }
            NodeState::Failed | NodeState::Interrupted => {
                n.state = NodeState::Pending;
                fx.push(Effect::Node(i));
            }
            NodeState::Pending | NodeState::Succeeded | NodeState::Skipped => {}
        }
    }
    rec.meta.state = RunState::Running;
    rec.meta.reason = None;
    fx.push(Effect::Event(started(rec)));
}

fn succeeded(
    rec: &mut RunRecord,
    now: Timestamp,
    idx: usize,
    output: StepOutput,
    ms: u64,
    fx: &mut Vec<Effect>,
) {
    let n = &mut rec.nodes[idx];
    n.state = NodeState::Succeeded;
    n.output = Some(Arc::new(output.value.clone()));
    n.error = None;
    n.finished_at = Some(now);
    let step = n.spec.id.to_string();
    fx.push(Effect::Node(idx));
    if let Some(serde_json::Value::Object(vars)) = output.value.get("vars") {
        rec.meta.vars.extend(vars.clone());
    }
    fx.push(Effect::Event(RunEvent::StepFinished { step, ms }));
    if output.control == Control::Finish && rec.meta.phase != Phase::Epilogue {
        rec.meta.finishing = true;
        skip_pending_of_phase(rec, now, fx);
    }
}

fn failed(
    rec: &mut RunRecord,
    now: Timestamp,
    idx: usize,
    error: &StepError,
    rolls_back: bool,
    fx: &mut Vec<Effect>,
) {
    let rollback =
        rolls_back && rollback::starts_rollback(rec, &rec.nodes[idx].spec.id, error.kind);
    // An unhealthy application that does not roll the run back freezes it: a safety stop.
    let kind = match error.kind {
        StepErrorKind::Unhealthy if !rollback => StepErrorKind::SafetyStop,
        kind => kind,
    };
    let n = &mut rec.nodes[idx];
    n.state = if kind == StepErrorKind::Interrupted {
        NodeState::Interrupted
    } else {
        NodeState::Failed
    };
    n.error = Some(NodeError {
        kind,
        message: error.message.clone(),
    });
    n.finished_at = Some(now);
    let step = n.spec.id.to_string();
    fx.push(Effect::Node(idx));
    if rollback {
        fx.push(Effect::Event(RunEvent::StepFailed {
            step,
            error: error.message.clone(),
            retrying: false,
        }));
        rollback::start(rec, now, idx, &error.message, fx);
        return;
    }
    match kind {
        StepErrorKind::Interrupted => {}
        StepErrorKind::SafetyStop | StepErrorKind::Unhealthy => {
            fx.push(Effect::Event(RunEvent::SafetyStop {
                step,
                reason: error.message.clone(),
            }));
        }
        StepErrorKind::Failed | StepErrorKind::Retryable => {
            fx.push(Effect::Event(RunEvent::StepFailed {
                step,
                error: error.message.clone(),
                retrying: false,
            }));
        }
    }
}

/// The record's graph, as [`Dag`] checks it: nodes in insertion order, dependencies first.
pub(super) fn graph(rec: &RunRecord) -> Result<Dag, GraphError> {
    let mut dag = Dag::new();
    dag.extend(rec.nodes.iter().map(|n| n.spec.clone()))
        .map_err(|e| GraphError(e.to_string()))?;
    Ok(dag)
}

fn grow(
    rec: &mut RunRecord,
    now: Timestamp,
    blueprint: &dyn Blueprint,
    fx: &mut Vec<Effect>,
) -> Result<(), GraphError> {
    if rollback::pending(rec) {
        return rollback::grow_rollback(rec, now, fx);
    }
    if let Some(n) = rec
        .nodes
        .iter()
        .enumerate()
        .find(|(i, n)| !n.state.is_done() && !rollback::replaced(rec, *i))
        .map(|(_, n)| n)
    {
        return Err(GraphError(format!(
            "{} is {} but nothing can run",
            n.spec.id,
            n.state.as_str()
        )));
    }
    let after = rollback::done_sinks(rec)?;
    let (phase, finishing) = (rec.meta.phase, rec.meta.finishing);
    let rolling_back = rec.meta.rollback.is_some();
    let wave = |k: u32| {
        if rolling_back {
            blueprint.rollback_wave(k, &after)
        } else {
            blueprint.wave(k, &after)
        }
    };
    let (next_phase, specs) = match (phase, finishing) {
        (Phase::Epilogue, _) => {
            let state = if rolling_back {
                RunState::RolledBack
            } else {
                RunState::Succeeded
            };
            rec.meta.state = state;
            if let Some(rb) = &rec.meta.rollback {
                rec.meta.reason = Some(format!("rolled back after {}: {}", rb.step, rb.reason));
            }
            fx.push(Effect::Event(RunEvent::RunFinished {
                run: rec.meta.run_id.clone(),
                outcome: state.as_str().to_owned(),
            }));
            fx.push(Effect::Complete);
            return Ok(());
        }
        (_, true) => (Phase::Epilogue, blueprint.epilogue(&after)),
        (Phase::Prologue, false) => (Phase::Wave { wave: 1 }, wave(1)),
        (Phase::Wave { wave: k }, false) if k >= MAX_WAVES => {
            return Err(GraphError(format!(
                "the run reached {MAX_WAVES} waves without finishing"
            )));
        }
        (Phase::Wave { wave: k }, false) => (Phase::Wave { wave: k + 1 }, wave(k + 1)),
    };
    // A blueprint with nothing more for this wave means the rollout has nothing left.
    let (next_phase, specs) = if specs.is_empty() && next_phase != Phase::Epilogue {
        (Phase::Epilogue, blueprint.epilogue(&after))
    } else {
        (next_phase, specs)
    };
    if let Some(dup) = specs.iter().find(|s| rec.position(&s.id).is_some()) {
        return Err(GraphError(format!("step {} would be added twice", dup.id)));
    }
    let start = rec.nodes.len() as u32;
    add_nodes(rec, specs, fx);
    rec.meta.phase = next_phase;
    rec.meta.phase_start = start;
    rec.meta.finishing = false;
    Ok(())
}

/// The record of a new run of `plan`, before its first node.
pub(super) fn new_record(plan: &ValidPlan, run_id: &str, now: Timestamp) -> RunRecord {
    let target = &plan.spec().target;
    RunRecord {
        meta: RunMeta {
            run_id: run_id.to_owned(),
            plan: plan.source().clone(),
            target: format!("{}/{}", target.namespace, target.name),
            created_at: now,
            updated_at: now,
            state: RunState::Running,
            reason: None,
            phase: Phase::Prologue,
            phase_start: 0,
            finishing: false,
            vars: BTreeMap::new(),
            rollback: None,
            log_len: 0,
            node_count: 0,
        },
        nodes: Vec::new(),
        log: Vec::new(),
    }
}

mod rollback;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rollback;
