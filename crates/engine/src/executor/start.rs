//! Starting a run and resuming one: open its store, check it may go on, reset what a
//! dead process left behind, and hand it to the driver.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::control;
use crate::dag;
use crate::event::RunEvent;
use crate::plan::ValidPlan;
use crate::step::{StepErrorKind, StepRunner};
use crate::store::{self, LogKind, NodeState, RunRecord, RunState, RunStore, StoreError};

use super::drive::{Blueprint, drive_live};
use super::environment::Environment;
use super::ledger::Shared;
use super::runs::{known_run, only_unfinished};
use super::transition::new_record;
use super::{ExecError, Outcome, RunOptions};

/// Start a new run of `plan`.
///
/// # Errors
/// [`ExecError::RunExists`] when a run of that name exists and has not succeeded (a run
/// that succeeded gives `Ok(Outcome::AlreadyFinished)`); store errors.
pub async fn start<R: StepRunner>(
    plan: &ValidPlan,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    start_named(plan, plan.name(), runner, opts, events, shutdown).await
}

/// Start a new run of `plan` named `run_id` (see [`name_new_run`]).
///
/// # Errors
/// As [`start`].
pub async fn start_named<R: StepRunner>(
    plan: &ValidPlan,
    run_id: &str,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    let env = Environment::default();
    start_named_in(&env, plan, run_id, runner, opts, events, shutdown).await
}

/// [`start`] in `env`.
///
/// # Errors
/// As [`start`].
pub async fn start_in<R: StepRunner>(
    env: &Environment,
    plan: &ValidPlan,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    start_named_in(env, plan, plan.name(), runner, opts, events, shutdown).await
}

/// [`start_named`] in `env`.
///
/// # Errors
/// As [`start`].
pub async fn start_named_in<R: StepRunner>(
    env: &Environment,
    plan: &ValidPlan,
    run_id: &str,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    let run_id = run_id.to_owned();
    let dir = store::run_dir(&opts.state_dir, &run_id);
    std::fs::create_dir_all(&dir).map_err(|source| ExecError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let store = open_for_driving(env, &dir, &run_id)?;
    match store.load()? {
        Some(rec) if rec.meta.state == RunState::Succeeded => return Ok(Outcome::AlreadyFinished),
        Some(rec) => {
            return Err(ExecError::RunExists {
                run: run_id,
                state: rec.meta.state,
            });
        }
        None => {}
    }
    let clock = env.clock.clone();
    let record = new_record(plan, &run_id, clock.now());
    let shared = Shared::new(run_id, store, record, Some(dir), events, clock);
    shared.transact("create", |tx| {
        tx.add_nodes(Blueprint::prologue(plan));
        tx.event(RunEvent::RunStarted {
            run: tx.rec.meta.run_id.clone(),
            plan: tx.rec.meta.plan.file.clone(),
            target: tx.rec.meta.target.clone(),
        });
    })?;
    drive_live(
        shared,
        plan,
        runner,
        shutdown,
        env.retry,
        env.jitter.clone(),
    )
    .await
}

/// Continue a run from its last checkpoint.
///
/// `run_id` may be `None` when exactly one run is unfinished. Without `plan_override` the
/// plan text stored with the run is used.
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::PlanChanged`] (without `replan`),
/// [`ExecError::NeedsAcceptRisk`] (after a safety stop, without `accept_risk`),
/// [`ExecError::Locked`], [`ExecError::Corrupt`].
pub async fn resume<R: StepRunner>(
    run_id: Option<&str>,
    plan_override: Option<&ValidPlan>,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    let env = Environment::default();
    resume_in(&env, run_id, plan_override, runner, opts, events, shutdown).await
}

/// [`resume`] in `env`.
///
/// # Errors
/// As [`resume`].
pub async fn resume_in<R: StepRunner>(
    env: &Environment,
    run_id: Option<&str>,
    plan_override: Option<&ValidPlan>,
    runner: Arc<R>,
    opts: &RunOptions,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<Outcome, ExecError> {
    let run_id = match (run_id, plan_override) {
        (Some(id), _) => known_run(&opts.state_dir, id)?,
        (None, _) => only_unfinished(&opts.state_dir)?,
    };
    let dir = store::run_dir(&opts.state_dir, &run_id);
    let store = open_for_driving(env, &dir, &run_id)?;
    let Some(mut record) = store.load()? else {
        // A crash before the first checkpoint leaves an empty database: with the plan in
        // hand, that is simply a start.
        return match plan_override {
            Some(plan) if plan.name() == run_id => {
                drop(store);
                start_in(env, plan, runner, opts, events, shutdown).await
            }
            _ => Err(ExecError::NoRecord { run: run_id }),
        };
    };
    if record.meta.state == RunState::Succeeded {
        return Ok(Outcome::AlreadyFinished);
    }
    let stopped_at = safety_stopped_node(&record);
    if record.meta.state == RunState::SafetyStopped && !opts.accept_risk {
        let (step, reason) = stopped_at
            .map(|i| {
                let n = &record.nodes[i];
                (
                    n.spec.id.to_string(),
                    n.error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                )
            })
            .unwrap_or_else(|| {
                (
                    "?".to_owned(),
                    record.meta.reason.clone().unwrap_or_default(),
                )
            });
        return Err(ExecError::NeedsAcceptRisk {
            run: run_id,
            step,
            reason,
        });
    }
    let stored = parse_stored_plan(&record)?;
    let plan = match plan_override {
        Some(given) if given.source().hash != record.meta.plan.hash => {
            if !opts.replan {
                return Err(ExecError::PlanChanged {
                    run: run_id,
                    stored: record.meta.plan.hash.clone(),
                    given: given.source().hash.clone(),
                });
            }
            record.meta.plan = given.source().clone();
            given.clone()
        }
        Some(given) => given.clone(),
        None => stored,
    };
    let clock = env.clock.clone();
    let shared = Shared::new(run_id, store, record, Some(dir), events, clock);
    let accept = opts.accept_risk;
    shared.transact("resume", |tx| {
        let now = tx.now;
        // A hook the new plan no longer has cannot run: its node is skipped, not failed
        // over and over (the graph was built from the old plan).
        for i in 0..tx.rec.nodes.len() {
            let n = &tx.rec.nodes[i];
            let gone = match &n.spec.id.kind {
                dag::StepKind::Hook { point, name } => {
                    !n.state.is_done()
                        && !plan.spec().hooks.at(*point).iter().any(|h| &h.name == name)
                }
                _ => false,
            };
            if gone {
                let id = n.spec.id.clone();
                let node = tx.node(i);
                node.state = NodeState::Skipped;
                node.error = None;
                node.finished_at = Some(now);
                tx.event(RunEvent::Warning {
                    message: format!("{id} is not in the plan any more; skipped"),
                });
            }
        }
        // Accepting the risk of a stop inside a wave plans that wave again from the cluster
        // as it stands: its baseline (the working pods `verify` and `wait-updated` compare
        // against) is taken anew, or the accepted violation would stop the wave again. Every
        // step recomputes its target from the live cluster, so re-running them is safe, and
        // a stop always comes before the wave's handover, so no handover is sent twice.
        let replanned_wave = stopped_at
            .filter(|_| accept)
            .and_then(|i| tx.rec.nodes[i].spec.id.wave);
        for i in 0..tx.rec.nodes.len() {
            if let Some(wave) = replanned_wave
                && tx.rec.nodes[i].spec.id.wave == Some(wave)
            {
                let id = tx.rec.nodes[i].spec.id.clone();
                if Some(i) == stopped_at {
                    tx.log(LogKind::RiskAccepted {
                        step: id.clone(),
                        by: control::operator(),
                    });
                }
                let n = tx.node(i);
                n.state = NodeState::Pending;
                n.output = None;
                n.error = None;
                n.started_at = None;
                n.finished_at = None;
                continue;
            }
            let (state, id) = (tx.rec.nodes[i].state, tx.rec.nodes[i].spec.id.clone());
            let safety = tx.rec.nodes[i]
                .error
                .as_ref()
                .is_some_and(|e| e.kind == StepErrorKind::SafetyStop);
            match state {
                NodeState::Failed if safety && accept => {
                    let n = tx.node(i);
                    n.state = NodeState::Skipped;
                    n.finished_at = Some(now);
                    tx.log(LogKind::RiskAccepted {
                        step: id,
                        by: control::operator(),
                    });
                }
                NodeState::Running => {
                    tx.node(i).state = NodeState::Pending;
                    tx.event(RunEvent::Warning {
                        message: format!(
                            "{id} was running when its process stopped; running it again"
                        ),
                    });
                }
                NodeState::Failed | NodeState::Interrupted => tx.node(i).state = NodeState::Pending,
                NodeState::Pending | NodeState::Succeeded | NodeState::Skipped => {}
            }
        }
        tx.rec.meta.state = RunState::Running;
        tx.rec.meta.reason = None;
        tx.event(RunEvent::RunStarted {
            run: tx.rec.meta.run_id.clone(),
            plan: tx.rec.meta.plan.file.clone(),
            target: tx.rec.meta.target.clone(),
        });
    })?;
    drive_live(
        shared,
        &plan,
        runner,
        shutdown,
        env.retry,
        env.jitter.clone(),
    )
    .await
}

pub(super) fn open_for_driving(
    env: &Environment,
    dir: &Path,
    run_id: &str,
) -> Result<Box<dyn RunStore>, ExecError> {
    match env.stores.open(dir) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { .. }) => Err(ExecError::Locked {
            run: run_id.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn parse_stored_plan(record: &RunRecord) -> Result<ValidPlan, ExecError> {
    ValidPlan::parse(&record.meta.plan.file, &record.meta.plan.text).map_err(|e| {
        ExecError::StoredPlan {
            run: record.meta.run_id.clone(),
            detail: e.to_string(),
        }
    })
}

pub(super) fn safety_stopped_node(record: &RunRecord) -> Option<usize> {
    record.nodes.iter().position(|n| {
        n.state == NodeState::Failed
            && n.error
                .as_ref()
                .is_some_and(|e| e.kind == StepErrorKind::SafetyStop)
    })
}
