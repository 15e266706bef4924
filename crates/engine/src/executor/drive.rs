//! Driving the DAG: start every ready node, retry and record each node's end, grow the
//! graph when all is done, and stop (with a grace period) on failure, abort or shutdown.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::control::{self, ControlHandler};
use crate::dag::{self, Dag, NodeSpec, StepId};
use crate::failpoint;
use crate::plan::ValidPlan;
use crate::retry::RetryPolicy;
use crate::step::{Journal, StepContext, StepError, StepErrorKind, StepOutput, StepRunner};
use crate::store::records::NodeError;
use crate::store::{self, NodeState, RunRecord, RunState, StoreError};

use super::environment::Jitter;
use super::journal::RunJournal;
use super::ledger::Shared;
use super::transition::{Effect, Transition};
use super::{ExecError, Outcome, STEP_GRACE};

/// How the DAG grows. [`ValidPlan`] is the real one (through [`crate::dag`]); tests use
/// smaller ones.
pub(super) trait Blueprint: Send + Sync {
    fn prologue(&self) -> Vec<NodeSpec>;
    fn wave(&self, wave: u32, after: &[StepId]) -> Vec<NodeSpec>;
    fn epilogue(&self, after: &[StepId]) -> Vec<NodeSpec>;
    /// A wave of a rollback (`onFailure: rollback`); by default an ordinary wave.
    fn rollback_wave(&self, wave: u32, after: &[StepId]) -> Vec<NodeSpec> {
        self.wave(wave, after)
    }
    /// Whether a failed wave rolls the run back (`onFailure: rollback`).
    fn rolls_back(&self) -> bool {
        false
    }
}

impl Blueprint for ValidPlan {
    fn prologue(&self) -> Vec<NodeSpec> {
        dag::prologue(self)
    }
    fn wave(&self, wave: u32, after: &[StepId]) -> Vec<NodeSpec> {
        dag::wave(self, wave, after)
    }
    fn epilogue(&self, after: &[StepId]) -> Vec<NodeSpec> {
        dag::epilogue(self, after)
    }
    fn rollback_wave(&self, wave: u32, after: &[StepId]) -> Vec<NodeSpec> {
        dag::rollback_wave(self, wave, after)
    }
    fn rolls_back(&self) -> bool {
        self.spec().on_failure == crate::plan::OnFailure::Rollback
    }
}

/// How one node's execution ended in this process.
#[derive(Debug)]
pub(super) enum NodeEnd {
    Succeeded,
    Failed(String),
    SafetyStop(String),
    /// The failure started the run's rollback (recorded with it).
    Rollback(String),
    Interrupted,
    Store(StoreError),
}

/// Why the run stops before its end, by precedence (a later variant wins).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stop {
    Interrupted,
    Aborted(String),
    Failed {
        step: String,
        message: String,
    },
    /// Not an end: once the wave's other steps stopped, the graph grows the rollback.
    Rollback,
    Safety {
        step: String,
        message: String,
    },
}

pub(super) async fn drive_live<R: StepRunner>(
    shared: Arc<Shared>,
    blueprint: &dyn Blueprint,
    runner: Arc<R>,
    shutdown: CancellationToken,
    policy: RetryPolicy,
    jitter: Jitter,
) -> Result<Outcome, ExecError> {
    let serving = CancellationToken::new();
    let socket = shared.dir.as_deref().map(store::socket_path);
    if let Some(path) = &socket {
        // We hold the database lock, so a socket file left here belongs to a dead process.
        let _ = std::fs::remove_file(path);
        match tokio::net::UnixListener::bind(path) {
            Ok(listener) => {
                let handler: Arc<dyn ControlHandler> = shared.clone();
                tokio::spawn(control::serve(listener, handler, serving.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "no control socket: approve and abort must wait for this process to stop")
            }
        }
    }
    let outcome = drive(shared.clone(), blueprint, runner, shutdown, policy, jitter).await;
    serving.cancel();
    if let Some(status) = &shared.status {
        status.stop();
    }
    shared.close();
    if let Some(path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    // Nobody drives the run any more, so readers open its database (which holds all the
    // record) and `status.json` has no reader: it goes, instead of keeping a second copy of
    // the audit log and the node outputs at rest (3 MB of 14 at 400 waves). A reader that
    // found the database locked a moment ago finds no file and reads the database again.
    // A process that is killed leaves its last live view, whose pid tells it is gone.
    if let Some(dir) = &shared.dir {
        match std::fs::remove_file(store::status_path(dir)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, "cannot remove the run's live status"),
        }
    }
    outcome
}

pub(super) async fn drive<R: StepRunner>(
    shared: Arc<Shared>,
    blueprint: &dyn Blueprint,
    runner: Arc<R>,
    shutdown: CancellationToken,
    policy: RetryPolicy,
    jitter: Jitter,
) -> Result<Outcome, ExecError> {
    let journal: Arc<dyn Journal> = Arc::new(RunJournal(shared.clone()));
    let mut step_cancel = CancellationToken::new();
    let rolls_back = blueprint.rolls_back();
    let mut tasks: JoinSet<(usize, NodeEnd)> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut stop: Option<Stop> = None;
    let mut grace: Option<tokio::time::Instant> = None;
    let mut store_error: Option<StoreError> = None;
    let mut graph = Dag::new();
    let halt = |stop: &mut Option<Stop>, why: Stop| {
        if stop.as_ref().is_none_or(|s| *s < why) {
            *stop = Some(why);
        }
    };

    loop {
        if shutdown.is_cancelled() {
            halt(&mut stop, Stop::Interrupted);
        }
        if shared.abort.is_cancelled() {
            let by = shared
                .abort_by
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            halt(&mut stop, Stop::Aborted(by));
        }
        if stop.is_some() && grace.is_none() && !tasks.is_empty() {
            step_cancel.cancel();
            grace = Some(tokio::time::Instant::now() + STEP_GRACE);
        }
        if stop.is_none() && store_error.is_none() {
            let busy: BTreeSet<usize> = in_flight.values().copied().collect();
            let ready = {
                let inner = shared.lock();
                // Nodes are only added while nothing runs (create, grow), so a graph the
                // record cannot form stops no step midway.
                follow(&mut graph, &inner.rec)?;
                ready_nodes(&graph, &inner.rec, &busy)
            };
            for idx in ready {
                let task = run_node(
                    shared.clone(),
                    runner.clone(),
                    journal.clone(),
                    idx,
                    step_cancel.child_token(),
                    Rules {
                        policy,
                        jitter: jitter.clone(),
                        rolls_back,
                    },
                );
                let handle = tasks.spawn(async move { (idx, task.await) });
                in_flight.insert(handle.id(), idx);
            }
        }
        if tasks.is_empty() {
            if let Some(e) = store_error {
                return Err(e.into());
            }
            match stop.take() {
                // The wave's steps have stopped: the graph grows the rollback, and its steps
                // run under a fresh token (the old one cancelled the failed wave).
                Some(Stop::Rollback) => {
                    step_cancel = CancellationToken::new();
                    grace = None;
                }
                Some(stop) => return finish(&shared, stop).map_err(ExecError::from),
                None => {}
            }
            match grow(&shared, blueprint)? {
                Grown::More => continue,
                Grown::Complete => return Ok(completed(&shared)),
            }
        }
        tokio::select! {
            // Cancel safety: every branch only observes; a join result not taken this
            // round stays in the set for the next one.
            () = shutdown.cancelled(), if stop.is_none() => {}
            () = shared.abort.cancelled(), if stop.is_none() => {}
            () = sleep_until(grace), if grace.is_some() => {
                tracing::warn!(run = %shared.run_id, "steps did not stop within the grace period; abandoning them");
                tasks.abort_all();
                grace = None;
            }
            joined = tasks.join_next_with_id() => {
                let Some(joined) = joined else { continue };
                let (idx, end) = match joined {
                    Ok((id, (idx, end))) => {
                        in_flight.remove(&id);
                        (idx, end)
                    }
                    Err(e) => {
                        let Some(idx) = in_flight.remove(&e.id()) else { continue };
                        let end = if e.is_panic() {
                            NodeEnd::Failed("the step panicked".to_owned())
                        } else {
                            NodeEnd::Interrupted
                        };
                        if let Err(err) = record_abandoned(&shared, idx, &end) {
                            store_error.get_or_insert(err);
                        }
                        (idx, end)
                    }
                };
                let id = shared.lock().rec.nodes[idx].spec.id.to_string();
                match end {
                    NodeEnd::Succeeded | NodeEnd::Interrupted => {}
                    NodeEnd::Failed(message) => halt(&mut stop, Stop::Failed { step: id, message }),
                    NodeEnd::SafetyStop(message) => {
                        halt(&mut stop, Stop::Safety { step: id, message });
                    }
                    NodeEnd::Rollback(message) => {
                        tracing::debug!(step = %id, %message, "rolling back");
                        halt(&mut stop, Stop::Rollback);
                    }
                    NodeEnd::Store(e) => {
                        store_error.get_or_insert(e);
                        step_cancel.cancel();
                    }
                }
            }
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Add to `graph` the nodes of `rec` it does not have yet (the record only grows).
pub(super) fn follow(graph: &mut Dag, rec: &RunRecord) -> Result<(), ExecError> {
    let known = graph.len();
    if rec.nodes.len() > known {
        graph
            .extend(rec.nodes[known..].iter().map(|n| n.spec.clone()))
            .map_err(|e| ExecError::Graph {
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// Pending nodes not yet started here whose dependencies are all done, in insertion order.
pub(super) fn ready_nodes(graph: &Dag, rec: &RunRecord, busy: &BTreeSet<usize>) -> Vec<usize> {
    let index: HashMap<&StepId, usize> = rec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (&n.spec.id, i))
        .collect();
    let done = |id: &StepId| index.get(id).is_some_and(|&i| rec.nodes[i].state.is_done());
    graph
        .ready(done)
        .iter()
        .filter_map(|id| index.get(id).copied())
        .filter(|i| rec.nodes[*i].state == NodeState::Pending && !busy.contains(i))
        .collect()
}

pub(super) enum Grown {
    More,
    Complete,
}

/// Every node is done: append the next part of the DAG, or finish the run.
pub(super) fn grow(shared: &Shared, blueprint: &dyn Blueprint) -> Result<Grown, ExecError> {
    let effects = shared.transact_lazy("grow", |tx| tx.apply(Transition::Grow { blueprint }))??;
    Ok(if effects.contains(&Effect::Complete) {
        Grown::Complete
    } else {
        Grown::More
    })
}

/// How a run whose graph is complete ended: succeeded, or rolled back.
fn completed(shared: &Shared) -> Outcome {
    let inner = shared.lock();
    match &inner.rec.meta.rollback {
        Some(rb) => Outcome::RolledBack {
            step: rb.step.clone(),
            message: rb.reason.clone(),
        },
        None => Outcome::Succeeded,
    }
}

/// Record the end of a run that stopped early and say how it ended.
pub(super) fn finish(shared: &Shared, stop: Stop) -> Result<Outcome, StoreError> {
    let (state, reason, outcome) = match stop {
        Stop::Interrupted => (
            RunState::Interrupted,
            Some("interrupted".to_owned()),
            Outcome::Interrupted,
        ),
        Stop::Aborted(by) => (
            RunState::Aborted,
            Some(by.clone()),
            Outcome::Aborted { message: by },
        ),
        Stop::Failed { step, message } => (
            RunState::Failed,
            Some(format!("{step}: {message}")),
            Outcome::Failed { step, message },
        ),
        // Never reaches here: `drive` grows the rollback instead of finishing.
        Stop::Rollback => (
            RunState::Interrupted,
            Some("interrupted".to_owned()),
            Outcome::Interrupted,
        ),
        Stop::Safety { step, message } => (
            RunState::SafetyStopped,
            Some(format!("{step}: {message}")),
            Outcome::SafetyStop { step, message },
        ),
    };
    shared.transact("stop", |tx| tx.record(Transition::Stop { state, reason }))?;
    Ok(outcome)
}

/// A task that ended without recording its node (abandoned or panicked).
pub(super) fn record_abandoned(
    shared: &Shared,
    idx: usize,
    end: &NodeEnd,
) -> Result<(), StoreError> {
    let id = shared.lock().rec.nodes[idx].spec.id.clone();
    let (state, panic) = match end {
        NodeEnd::Failed(message) => (NodeState::Failed, Some(message.clone())),
        _ => (NodeState::Interrupted, None),
    };
    shared.transact_lazy(&format!("{id}={}", state.as_str()), |tx| {
        tx.record(Transition::Abandoned { idx, panic });
    })
}

/// How a node's failures are treated: retried with `policy` (and `jitter`), and whether a
/// failure may start the run's rollback (`onFailure: rollback`).
pub(super) struct Rules {
    pub policy: RetryPolicy,
    pub jitter: Jitter,
    pub rolls_back: bool,
}

/// Run one node to its end in this process: attempts, retries, checkpoints.
pub(super) async fn run_node<R: StepRunner>(
    shared: Arc<Shared>,
    runner: Arc<R>,
    journal: Arc<dyn Journal>,
    idx: usize,
    cancel: CancellationToken,
    rules: Rules,
) -> NodeEnd {
    let Rules {
        policy,
        jitter,
        rolls_back,
    } = rules;
    let id = shared.lock().rec.nodes[idx].spec.id.clone();
    let mut tries = 0;
    loop {
        tries += 1;
        let begun = shared.transact_lazy(&format!("{id}=running"), |tx| {
            tx.record(Transition::Started { idx });
            (tx.rec.nodes[idx].attempts, tx.rec.outputs())
        });
        let (attempt, outputs) = match begun {
            Ok(b) => b,
            Err(e) => return NodeEnd::Store(e),
        };
        failpoint::hit(&format!("before-step:{id}"));
        let ctx = StepContext {
            run_id: shared.run_id.clone(),
            step: id.clone(),
            attempt,
            outputs: Arc::new(outputs),
            journal: journal.clone(),
            cancel: cancel.clone(),
        };
        let clock = std::time::Instant::now();
        let result = runner.run(ctx).await;
        failpoint::hit(&format!("after-step:{id}"));
        let ms = clock.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        let error = match result {
            Ok(output) => {
                return match record_success(&shared, idx, &id, output, ms) {
                    Ok(()) => NodeEnd::Succeeded,
                    Err(e) => NodeEnd::Store(e),
                };
            }
            Err(error) => error,
        };
        let retry = error.kind == StepErrorKind::Retryable
            && policy.may_retry(tries)
            && !cancel.is_cancelled();
        if retry {
            let delay = policy.delay(tries, jitter());
            let recorded = shared.transact_lazy(&format!("{id}=retrying"), |tx| {
                tx.record(Transition::Retrying {
                    idx,
                    error: NodeError {
                        kind: error.kind,
                        message: error.message.clone(),
                    },
                });
            });
            if let Err(e) = recorded {
                return NodeEnd::Store(e);
            }
            tracing::info!(step = %id, attempt, ?delay, error = %error, "step failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => continue,
                () = cancel.cancelled() => {
                    return match record_failure(&shared, idx, &id, StepError::interrupted(), false) {
                        Ok(end) => end,
                        Err(e) => NodeEnd::Store(e),
                    };
                }
            }
        }
        return match record_failure(&shared, idx, &id, error, rolls_back) {
            Ok(end) => end,
            Err(e) => NodeEnd::Store(e),
        };
    }
}

pub(super) fn record_success(
    shared: &Shared,
    idx: usize,
    id: &StepId,
    output: StepOutput,
    ms: u64,
) -> Result<(), StoreError> {
    shared.transact_lazy(&format!("{id}=succeeded"), |tx| {
        tx.record(Transition::Succeeded { idx, output, ms });
    })
}

pub(super) fn record_failure(
    shared: &Shared,
    idx: usize,
    id: &StepId,
    error: StepError,
    rolls_back: bool,
) -> Result<NodeEnd, StoreError> {
    let message = error.message.clone();
    let label = if error.kind == StepErrorKind::Interrupted {
        NodeState::Interrupted
    } else {
        NodeState::Failed
    };
    // The failure and (with `onFailure: rollback`) the rollback it starts: one commit.
    let (kind, rollback) = shared.transact_lazy(&format!("{id}={}", label.as_str()), |tx| {
        let before = tx.rec.meta.rollback.is_some();
        tx.record(Transition::Failed {
            idx,
            error,
            rolls_back,
        });
        let kind = tx.rec.nodes[idx].error.as_ref().map(|e| e.kind);
        (kind, !before && tx.rec.meta.rollback.is_some())
    })?;
    if rollback {
        return Ok(NodeEnd::Rollback(message));
    }
    Ok(match kind {
        Some(StepErrorKind::Interrupted) => NodeEnd::Interrupted,
        Some(StepErrorKind::SafetyStop | StepErrorKind::Unhealthy) => NodeEnd::SafetyStop(message),
        Some(StepErrorKind::Failed | StepErrorKind::Retryable) | None => NodeEnd::Failed(message),
    })
}
