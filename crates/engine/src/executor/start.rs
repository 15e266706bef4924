//! Starting a run and resuming one: open its store, check it may go on, reset what a
//! dead process left behind, and hand it to the driver.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::control;
use crate::event::RunEvent;
use crate::plan::ValidPlan;
use crate::step::StepRunner;
use crate::store::{self, RunRecord, RunState, RunStore, StoreError};

use super::drive::{Blueprint, drive_live};
use super::environment::Environment;
use super::ledger::Shared;
use super::runs::{known_run, only_unfinished};
use super::transition::{Transition, new_record, safety_stopped_node};
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
        Some(rec) if rec.meta.state.is_finished() => {
            return Ok(Outcome::AlreadyFinished {
                state: rec.meta.state,
            });
        }
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
        tx.record(Transition::Create {
            prologue: Blueprint::prologue(plan),
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
    if record.meta.state.is_finished() {
        return Ok(Outcome::AlreadyFinished {
            state: record.meta.state,
        });
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
    shared.transact("resume", |tx| {
        tx.record(Transition::Resume {
            plan: &plan,
            accept_risk: opts.accept_risk,
            by: opts.operator.clone().unwrap_or_else(control::operator),
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
