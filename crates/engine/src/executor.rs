//! The durable executor: drives a run's DAG to the end, one checkpoint per transition,
//! so a crash at any instant resumes where it stopped.
//!
//! # Expected flow
//! 1. [`start`] creates `<state-dir>/runs/<run-id>/` (run id = plan `metadata.name`) with
//!    the plan text, its hash and the prologue nodes; [`resume`] loads it back, turns
//!    nodes left `running` by a dead process into `pending` (steps are idempotent), and
//!    refuses a changed plan unless `replan`, or a safety stop unless `accept_risk`.
//! 2. Every node whose dependencies are done is started (nodes at one point, such as
//!    hooks, run concurrently). Before the step runs its node is committed `running`
//!    with `attempts + 1` (the fencing token); after it returns, `succeeded` with its
//!    output. Each commit writes the node and the log cursor in one sled transaction
//!    and fsyncs before the step is told to go on.
//! 3. `Retryable` errors are retried with [`RetryPolicy::DEFAULT`]; `Failed` stops the
//!    run (resumable, after running siblings finish); `SafetyStop` cancels siblings and
//!    stops the run until `--accept-risk`.
//! 4. When every node is done the DAG grows: the prologue is followed by wave 1, each
//!    wave by the next one. A step returning [`Control::Finish`] skips the rest of its
//!    wave, and the epilogue follows; when the epilogue is done the run has succeeded.
//!    As a safety bound the run refuses to grow past [`MAX_WAVES`] waves.
//! 5. On `shutdown` every step is cancelled and given [`STEP_GRACE`] to return; steps
//!    still running after that are abandoned. Their nodes are recorded `interrupted`
//!    and the run returns [`Outcome::Interrupted`].
//!
//! While it drives a run, the process keeps `status.json` current and serves
//! `control.sock` (see [`crate::control`]), so `engine status`, `engine approve` and
//! `engine abort` work from other processes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::control::{self, ControlHandler, ControlRequest, ControlResponse};
use crate::dag::{self, NodeSpec, StepId};
use crate::event::RunEvent;
use crate::failpoint;
use crate::plan::ValidPlan;
use crate::publish::Publisher;
use crate::retry::RetryPolicy;
use crate::step::{
    Approval, AuditWrite, BoxFuture, Control, IntentId, Journal, JournalError, StepContext,
    StepError, StepErrorKind, StepOutput, StepRunner, WriteOutcome,
};
use crate::store::records::NodeError;
use crate::store::{
    self, Commit, Durability, LogEntry, LogKind, NodeRecord, NodeState, Phase, RunMeta, RunRecord,
    RunState, RunStore, RunSummary, RunView, SledStore, StoreError, WaitingEntry,
};

/// The run refuses to grow past this many waves. A rollout needs at most one wave per
/// replica plus handover waves; a bound far above any real StatefulSet only stops a
/// runaway loop (a step that never says `Finish`).
pub const MAX_WAVES: u32 = 10_000;

/// How long a cancelled step may take to reach a safe point before it is abandoned.
pub const STEP_GRACE: Duration = Duration::from_secs(5);

/// How long to wait for another process (a quick `engine status`) to release a run's lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Where runs live and how to treat stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    /// Continue after a safety stop (the stopped check is recorded `skipped`).
    pub accept_risk: bool,
    /// Accept a plan whose text changed since the run started.
    pub replan: bool,
}

/// How a run ended in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The run had already succeeded; nothing ran.
    AlreadyFinished,
    /// A step failed; resumable.
    Failed {
        step: String,
        message: String,
    },
    /// An operator aborted the run (`engine abort`); `message` says who and why. The
    /// rollout stays frozen; `resume` continues it.
    Aborted {
        message: String,
    },
    /// A safety invariant broke; `resume` needs `accept_risk`.
    SafetyStop {
        step: String,
        message: String,
    },
    /// Stopped by `shutdown` after checkpointing; resumable.
    Interrupted,
}

/// Why the executor could not run. The CLI maps these to exit codes: `NeedsAcceptRisk`
/// is a refusal of a well-formed request (exit 1, like the safety stop it continues);
/// `Locked` means another process drives the run (exit 4); the rest are bad input or
/// unreadable state (exit 2), never a panic.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("unknown run {run:?}; known runs: {}", list_or_none(known))]
    UnknownRun { run: String, known: Vec<String> },
    #[error("which run? {}", pick_hint(unfinished))]
    AmbiguousRun { unfinished: Vec<String> },
    #[error(
        "the plan changed since run {run} started (sha256 {stored} then, {given} now); pass --replan to continue with the new plan"
    )]
    PlanChanged {
        run: String,
        stored: String,
        given: String,
    },
    #[error(
        "run {run} stopped for safety at {step}: {reason}; inspect the cluster, then resume with --accept-risk"
    )]
    NeedsAcceptRisk {
        run: String,
        step: String,
        reason: String,
    },
    #[error(
        "run {run} already exists and is {}; continue it with `engine resume {run}`, or name the new run otherwise (--name)",
        state.as_str()
    )]
    RunExists { run: String, state: RunState },
    #[error(
        "run {run} on {target} is {} and not finished; a new run would work against it. \
         Continue it with `engine resume {run}`, stop it with `engine abort {run}`, or forget it with `engine delete {run}`",
        state.as_str()
    )]
    UnfinishedOnTarget {
        run: String,
        state: RunState,
        target: String,
    },
    #[error(
        "run {run} has no record (it stopped before its first checkpoint); start it again with `engine run PLAN`"
    )]
    NoRecord { run: String },
    #[error("run {run} is driven by another process")]
    Locked { run: String },
    #[error(
        "run {run} already succeeded; there is nothing to abort (it would write under whatever runs on the set now)"
    )]
    Finished { run: String },
    #[error("run state at {} is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("the plan stored with run {run} is no longer valid: {detail}")]
    StoredPlan { run: String, detail: String },
    #[error("run {run} waits for no approval")]
    NothingToApprove { run: String },
    #[error("run {run} has no step {gate} to approve")]
    NoSuchGate { run: String, gate: String },
    #[error("the process driving run {run} refused: {message}")]
    Refused { run: String, message: String },
    #[error("cannot reach the process driving run {run}")]
    Control {
        run: String,
        #[source]
        source: control::ControlError,
    },
    #[error("the run's graph is inconsistent: {detail}")]
    Graph { detail: String },
    #[error("cannot create the state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run state store failed")]
    Store(#[source] StoreError),
}

fn list_or_none(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    }
}

fn pick_hint(unfinished: &[String]) -> String {
    if unfinished.is_empty() {
        "no run is unfinished; name one (see `engine list`)".to_owned()
    } else {
        format!(
            "several runs are unfinished ({}); name one",
            unfinished.join(", ")
        )
    }
}

impl From<StoreError> for ExecError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { path, detail } => ExecError::Corrupt { path, detail },
            other => ExecError::Store(other),
        }
    }
}

/// The default state directory: `$ENGINE_STATE_DIR`, else `$XDG_STATE_HOME/baton`, else
/// `~/.local/state/baton`; `None` when none of them is set.
pub fn default_state_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("ENGINE_STATE_DIR")
        .or_else(|| var("XDG_STATE_HOME").map(|d| d.join("baton")))
        .or_else(|| var("HOME").map(|h| h.join(".local/state/baton")))
}

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
    let run_id = run_id.to_owned();
    let dir = store::run_dir(&opts.state_dir, &run_id);
    std::fs::create_dir_all(&dir).map_err(|source| ExecError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let store = open_for_driving(&dir, &run_id)?;
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let record = new_record(plan, &run_id, clock.now());
    let shared = Shared::new(run_id, Box::new(store), record, Some(dir), events, clock);
    shared.transact("create", |tx| {
        tx.add_nodes(Blueprint::prologue(plan));
        tx.event(RunEvent::RunStarted {
            run: tx.rec.meta.run_id.clone(),
            plan: tx.rec.meta.plan.file.clone(),
            target: tx.rec.meta.target.clone(),
        });
    })?;
    drive_live(shared, plan, runner, shutdown, RetryPolicy::DEFAULT).await
}

/// The name of a new run of `plan`: `requested` (`engine run --name`), else the plan's name,
/// else the plan's name with the first free suffix (`-2`, `-3`, …). A run is an event, not a
/// plan: running a plan again after its run finished is a new run (the target may have been
/// changed back since), never a silent no-op.
///
/// # Errors
/// [`ExecError::UnfinishedOnTarget`] when a run of this state directory on the same target has
/// not finished (a new run would work against it, and a bare `engine resume` of the old one
/// would undo the new one); [`ExecError::RunExists`] when `requested` is taken; store errors.
pub fn name_new_run(
    state_dir: &Path,
    plan: &ValidPlan,
    requested: Option<&str>,
) -> Result<String, ExecError> {
    let runs = list_runs(state_dir)?;
    let target = &plan.spec().target;
    let target = format!("{}/{}", target.namespace, target.name);
    if let Some(open) = runs.iter().find(|r| {
        r.target.as_deref() == Some(target.as_str()) && r.state.is_some_and(|s| s.is_unfinished())
    }) {
        return Err(ExecError::UnfinishedOnTarget {
            run: open.run.clone(),
            state: open.state.unwrap_or(RunState::Running),
            target,
        });
    }
    // A run directory without a record is a start that died before its first checkpoint:
    // the name is still free, and `start` takes the directory over.
    let taken = |name: &str| {
        runs.iter().find(|r| {
            r.run == name && !matches!(load_run(state_dir, name), Err(ExecError::NoRecord { .. }))
        })
    };
    if let Some(name) = requested {
        return match taken(name) {
            Some(existing) => Err(ExecError::RunExists {
                run: name.to_owned(),
                state: existing.state.unwrap_or(RunState::Running),
            }),
            None => Ok(name.to_owned()),
        };
    }
    let base = plan.name();
    if taken(base).is_none() {
        return Ok(base.to_owned());
    }
    (2u32..)
        .map(|k| {
            let suffix = format!("-{k}");
            // Run names stay DNS labels (63 characters), like the plan names they come from.
            let keep = base.len().min(63usize.saturating_sub(suffix.len()));
            format!("{}{suffix}", base[..keep].trim_end_matches('-'))
        })
        .find(|name| taken(name).is_none())
        .ok_or_else(|| ExecError::Graph {
            detail: "no free run name".to_owned(),
        })
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
    let run_id = match (run_id, plan_override) {
        (Some(id), _) => known_run(&opts.state_dir, id)?,
        (None, _) => only_unfinished(&opts.state_dir)?,
    };
    let dir = store::run_dir(&opts.state_dir, &run_id);
    let store = open_for_driving(&dir, &run_id)?;
    let Some(mut record) = store.load()? else {
        // A crash before the first checkpoint leaves an empty database: with the plan in
        // hand, that is simply a start.
        return match plan_override {
            Some(plan) if plan.name() == run_id => {
                drop(store);
                start(plan, runner, opts, events, shutdown).await
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
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shared = Shared::new(run_id, Box::new(store), record, Some(dir), events, clock);
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
    drive_live(shared, &plan, runner, shutdown, RetryPolicy::DEFAULT).await
}

/// The plan a run was started with (or last replanned to).
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::AmbiguousRun`] (no `run_id` and not exactly one
/// unfinished run), [`ExecError::StoredPlan`], store errors.
pub fn stored_plan(state_dir: &Path, run_id: Option<&str>) -> Result<ValidPlan, ExecError> {
    let run_id = match run_id {
        Some(id) => known_run(state_dir, id)?,
        None => only_unfinished(state_dir)?,
    };
    let view = load_run(state_dir, &run_id)?;
    ValidPlan::parse(&view.plan_file, &view.plan_text).map_err(|e| ExecError::StoredPlan {
        run: run_id,
        detail: e.to_string(),
    })
}

/// The run a command means: `run_id` when given (it must exist), else the only
/// unfinished run, else the only run.
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::AmbiguousRun`].
pub fn pick_run(state_dir: &Path, run_id: Option<&str>) -> Result<String, ExecError> {
    if let Some(id) = run_id {
        return known_run(state_dir, id);
    }
    match only_unfinished(state_dir) {
        Err(ExecError::AmbiguousRun { unfinished }) if unfinished.is_empty() => {
            match <[String; 1]>::try_from(run_names(state_dir)) {
                Ok([one]) => Ok(one),
                Err(_) => Err(ExecError::AmbiguousRun { unfinished }),
            }
        }
        other => other,
    }
}

/// Every run in `state_dir`, by name. A run whose record cannot be read is listed with
/// its problem rather than failing the whole list.
pub fn list_runs(state_dir: &Path) -> Result<Vec<RunSummary>, ExecError> {
    let mut out = Vec::new();
    for run in run_names(state_dir) {
        match load_run(state_dir, &run) {
            Ok(view) => out.push(view.summary()),
            Err(e) => out.push(RunSummary {
                run,
                state: None,
                target: None,
                updated_at: None,
                current_wave: None,
                live: false,
                problem: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// A snapshot of run `run_id`: from its database when no process holds it, else from the
/// `status.json` the driving process keeps current.
///
/// # Errors
/// [`ExecError::UnknownRun`] (with the known runs), [`ExecError::Corrupt`],
/// [`ExecError::NoRecord`].
pub fn load_run(state_dir: &Path, run_id: &str) -> Result<RunView, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    let dir = store::run_dir(state_dir, &run_id);
    let db = store::db_dir(&dir);
    if !db.join("conf").exists() && !db.join("db").exists() {
        return Err(ExecError::NoRecord { run: run_id });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match SledStore::open(&db) {
            Ok(store) => {
                return match store.load()? {
                    Some(rec) => Ok(RunView::of(&rec, None)),
                    None => Err(ExecError::NoRecord { run: run_id }),
                };
            }
            Err(StoreError::Locked { .. }) => {
                let path = store::status_path(&dir);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        return serde_json::from_slice(&bytes).map_err(|e| ExecError::Corrupt {
                            path,
                            detail: e.to_string(),
                        });
                    }
                    // The driving process publishes its status right after taking the lock.
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(25))
                    }
                    Err(_) => return Err(ExecError::Locked { run: run_id }),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`approve`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproveReceipt {
    pub gate: StepId,
    /// The gate was approved before; nothing changed.
    pub already: bool,
    /// A running process took the approval (else it was written to the database).
    pub live: bool,
}

/// Release approval gate `gate`, or when `None` the gate the run waits at.
///
/// # Errors
/// [`ExecError::NothingToApprove`], [`ExecError::NoSuchGate`], [`ExecError::UnknownRun`],
/// [`ExecError::Control`] when a process holds the run but does not answer.
pub fn approve(
    state_dir: &Path,
    run_id: &str,
    gate: Option<StepId>,
    by: &str,
    reason: Option<&str>,
) -> Result<ApproveReceipt, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    let request = ControlRequest::Approve {
        gate: gate.clone(),
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
    };
    match offline(state_dir, &run_id)? {
        Some(shared) => {
            let (gate, already) = shared
                .approve(gate, by, reason)
                .map_err(|e| e.into_exec(&run_id))?;
            Ok(ApproveReceipt {
                gate,
                already,
                live: false,
            })
        }
        None => match ask(state_dir, &run_id, &request)? {
            ControlResponse::Approved { gate, already } => Ok(ApproveReceipt {
                gate,
                already,
                live: true,
            }),
            ControlResponse::Aborted => Err(ExecError::Refused {
                run: run_id,
                message: "unexpected answer".into(),
            }),
            ControlResponse::Refused { message } => Err(ExecError::Refused {
                run: run_id,
                message,
            }),
        },
    }
}

/// Forget run `run_id`: its state directory (record, audit log, status) is removed. The
/// cluster is not touched. A run a process drives is refused ([`ExecError::Locked`]); an
/// unfinished one only with `force`, since its history is the only record of what it wrote.
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::Locked`], [`ExecError::UnfinishedOnTarget`]
/// (without `force`), [`ExecError::StateDir`] when the directory cannot be removed.
pub fn delete_run(state_dir: &Path, run_id: &str, force: bool) -> Result<RunSummary, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    let summary = list_runs(state_dir)?
        .into_iter()
        .find(|r| r.run == run_id)
        .ok_or_else(|| ExecError::UnknownRun {
            run: run_id.clone(),
            known: Vec::new(),
        })?;
    if summary.live {
        return Err(ExecError::Locked { run: run_id });
    }
    if !force && let Some(state) = summary.state.filter(|s| s.is_unfinished()) {
        return Err(ExecError::UnfinishedOnTarget {
            run: run_id,
            state,
            target: summary.target.clone().unwrap_or_default(),
        });
    }
    // Taking the database proves no process holds it while the directory goes away.
    let held = offline(state_dir, &run_id);
    match held {
        Ok(shared) => drop(shared),
        Err(ExecError::NoRecord { .. } | ExecError::Corrupt { .. }) => {}
        Err(other) => return Err(other),
    }
    let dir = store::run_dir(state_dir, &run_id);
    std::fs::remove_dir_all(&dir).map_err(|source| ExecError::StateDir { path: dir, source })?;
    Ok(summary)
}

/// The finished runs (succeeded or aborted) last updated before `before`, for `engine gc`;
/// [`delete_run`] removes each. Unfinished runs are never collected.
///
/// # Errors
/// Store errors while listing.
pub fn collectable_runs(state_dir: &Path, before: Timestamp) -> Result<Vec<RunSummary>, ExecError> {
    Ok(list_runs(state_dir)?
        .into_iter()
        .filter(|r| !r.live)
        .filter(|r| r.state.is_some_and(|s| !s.is_unfinished()))
        .filter(|r| r.updated_at.is_some_and(|t| t < before))
        .collect())
}

/// Record that an operator aborted run `run_id`. A process driving it cancels its steps
/// and stops; otherwise the database is marked `aborted` directly.
pub fn mark_aborted(
    state_dir: &Path,
    run_id: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<(), ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    match offline(state_dir, &run_id)? {
        Some(shared) => {
            // A finished run has nothing left to freeze: its partition and its lease belong
            // to whatever runs on the set now, and its history stays as it ended.
            let finished = shared.transact("abort", |tx| {
                if tx.rec.meta.state.is_finished() {
                    return true;
                }
                tx.log(LogKind::Abort {
                    by: by.to_owned(),
                    reason: reason.map(str::to_owned),
                });
                tx.rec.meta.state = RunState::Aborted;
                tx.rec.meta.reason = Some(abort_message(by, reason));
                false
            })?;
            if finished {
                return Err(ExecError::Finished { run: run_id });
            }
            Ok(())
        }
        None => {
            let request = ControlRequest::Abort {
                by: by.to_owned(),
                reason: reason.map(str::to_owned),
            };
            match ask(state_dir, &run_id, &request)? {
                ControlResponse::Aborted => Ok(()),
                ControlResponse::Refused { message } => Err(ExecError::Refused {
                    run: run_id,
                    message,
                }),
                ControlResponse::Approved { .. } => Err(ExecError::Refused {
                    run: run_id,
                    message: "unexpected answer".into(),
                }),
            }
        }
    }
}

/// How long an operator's command waits for the process that drove a run to let go
/// of its database (it was just told to stop).
const OPERATOR_PATIENCE: Duration = Duration::from_secs(10);

/// Log, durably, a write an operator's command is about to make to the cluster (the
/// partition `engine abort` freezes), so the history holds it even if the command dies
/// before the answer. The run must not be driven any more (see [`mark_aborted`]).
///
/// # Errors
/// [`ExecError::Locked`] when a process still holds the run after a while; store errors.
pub fn intend_operator_write(
    state_dir: &Path,
    run_id: &str,
    label: &str,
    by: &str,
    write: AuditWrite,
) -> Result<IntentId, ExecError> {
    let shared = offline_patiently(state_dir, run_id, OPERATOR_PATIENCE)?;
    Ok(shared.transact(&format!("operator-intent:{label}"), |tx| {
        let id = IntentId(tx.rec.log.len() as u64);
        tx.log(LogKind::OperatorIntent {
            label: label.to_owned(),
            by: by.to_owned(),
            write,
        });
        id
    })?)
}

/// Record what became of an operator's write logged by [`intend_operator_write`].
///
/// # Errors
/// As [`intend_operator_write`].
pub fn settle_operator_write(
    state_dir: &Path,
    run_id: &str,
    intent: IntentId,
    outcome: WriteOutcome,
) -> Result<(), ExecError> {
    let shared = offline_patiently(state_dir, run_id, OPERATOR_PATIENCE)?;
    Ok(shared.transact("operator-settled", |tx| {
        tx.log(LogKind::Settled { intent, outcome });
    })?)
}

fn offline_patiently(
    state_dir: &Path,
    run_id: &str,
    patience: Duration,
) -> Result<Arc<Shared>, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    match open_offline(state_dir, &run_id, patience)? {
        Some(shared) => Ok(shared),
        None => Err(ExecError::Locked { run: run_id }),
    }
}

fn abort_message(by: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("aborted by {by}: {r}"),
        None => format!("aborted by {by}"),
    }
}

/// Open a run's database for a one-off write, or `None` when a process holds it.
fn offline(state_dir: &Path, run_id: &str) -> Result<Option<Arc<Shared>>, ExecError> {
    open_offline(state_dir, run_id, Duration::from_millis(300))
}

fn open_offline(
    state_dir: &Path,
    run_id: &str,
    patience: Duration,
) -> Result<Option<Arc<Shared>>, ExecError> {
    let dir = store::run_dir(state_dir, run_id);
    match SledStore::open_patiently(&store::db_dir(&dir), patience) {
        Ok(store) => {
            let Some(record) = store.load()? else {
                return Err(ExecError::NoRecord {
                    run: run_id.to_owned(),
                });
            };
            let (events, _) = broadcast::channel(1);
            Ok(Some(Shared::new(
                run_id.to_owned(),
                Box::new(store),
                record,
                None,
                events,
                Arc::new(SystemClock),
            )))
        }
        Err(StoreError::Locked { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn ask(
    state_dir: &Path,
    run_id: &str,
    request: &ControlRequest,
) -> Result<ControlResponse, ExecError> {
    let socket = store::socket_path(&store::run_dir(state_dir, run_id));
    control::send(&socket, request, Duration::from_secs(3)).map_err(|source| ExecError::Control {
        run: run_id.to_owned(),
        source,
    })
}

fn open_for_driving(dir: &Path, run_id: &str) -> Result<SledStore, ExecError> {
    match SledStore::open_patiently(&store::db_dir(dir), LOCK_PATIENCE) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { .. }) => Err(ExecError::Locked {
            run: run_id.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Run ids are DNS labels; anything else cannot name a run directory.
fn plausible_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn run_names(state_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store::runs_dir(state_dir))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| plausible_run_id(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn known_run(state_dir: &Path, run_id: &str) -> Result<String, ExecError> {
    if plausible_run_id(run_id) && store::run_dir(state_dir, run_id).is_dir() {
        Ok(run_id.to_owned())
    } else {
        Err(ExecError::UnknownRun {
            run: run_id.to_owned(),
            known: run_names(state_dir),
        })
    }
}

fn only_unfinished(state_dir: &Path) -> Result<String, ExecError> {
    let unfinished: Vec<String> = list_runs(state_dir)?
        .into_iter()
        .filter(|s| s.state.is_some_and(|st| st != RunState::Succeeded))
        .map(|s| s.run)
        .collect();
    match <[String; 1]>::try_from(unfinished) {
        Ok([one]) => Ok(one),
        Err(unfinished) => Err(ExecError::AmbiguousRun { unfinished }),
    }
}

fn parse_stored_plan(record: &RunRecord) -> Result<ValidPlan, ExecError> {
    ValidPlan::parse(&record.meta.plan.file, &record.meta.plan.text).map_err(|e| {
        ExecError::StoredPlan {
            run: record.meta.run_id.clone(),
            detail: e.to_string(),
        }
    })
}

fn safety_stopped_node(record: &RunRecord) -> Option<usize> {
    record.nodes.iter().position(|n| {
        n.state == NodeState::Failed
            && n.error
                .as_ref()
                .is_some_and(|e| e.kind == StepErrorKind::SafetyStop)
    })
}

fn new_record(plan: &ValidPlan, run_id: &str, now: Timestamp) -> RunRecord {
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
            log_len: 0,
            node_count: 0,
        },
        nodes: Vec::new(),
        log: Vec::new(),
    }
}

/// How the DAG grows. [`ValidPlan`] is the real one (through [`crate::dag`]); tests use
/// smaller ones.
pub(crate) trait Blueprint: Send + Sync {
    fn prologue(&self) -> Vec<NodeSpec>;
    fn wave(&self, wave: u32, after: &[StepId]) -> Vec<NodeSpec>;
    fn epilogue(&self, after: &[StepId]) -> Vec<NodeSpec>;
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
}

// ---------------------------------------------------------------------------------------
// Shared run state: the in-memory record, its store, and the approval waiters.

struct Inner {
    rec: RunRecord,
    /// The latest `Waiting` of each step, and the latest pod table: live-only facts for
    /// the published view, never persisted (they are stale the moment the process stops).
    waiting: BTreeMap<String, String>,
    pods: Option<Vec<crate::event::PodRow>>,
    waiters: Vec<(StepId, oneshot::Sender<Approval>)>,
    /// A commit failed: memory and disk may disagree, so nothing more is written.
    broken: bool,
}

impl Inner {
    /// The view a driving process publishes: the record plus what its steps wait for now
    /// (only steps still running) and the latest pods.
    fn live_view(&self, pid: u32) -> RunView {
        let mut view = RunView::of(&self.rec, Some(pid));
        let running: BTreeSet<String> = self
            .rec
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Running)
            .map(|n| n.spec.id.to_string())
            .collect();
        view.waiting = self
            .waiting
            .iter()
            .filter(|(step, _)| running.contains(*step))
            .map(|(step, what)| WaitingEntry {
                step: step.clone(),
                what: what.clone(),
            })
            .collect();
        view.pods.clone_from(&self.pods);
        view
    }
}

pub(crate) struct Shared {
    run_id: String,
    /// `None` once the run is closed: its database lock is released at once, even if a
    /// step still holds a journal.
    store: Mutex<Option<Box<dyn RunStore>>>,
    inner: Mutex<Inner>,
    /// Where the run directory is, for `status.json` and `control.sock`.
    dir: Option<PathBuf>,
    /// Writes `status.json` for other processes; `None` without a directory.
    status: Option<Publisher>,
    events: broadcast::Sender<RunEvent>,
    clock: Arc<dyn Clock>,
    abort: CancellationToken,
    abort_by: Mutex<Option<String>>,
}

/// One transition being built: mutate the record, remember what changed.
struct Tx<'a> {
    rec: &'a mut RunRecord,
    waiters: &'a mut Vec<(StepId, oneshot::Sender<Approval>)>,
    changed: BTreeSet<usize>,
    log_from: usize,
    dirty: bool,
    now: Timestamp,
}

impl Tx<'_> {
    fn node(&mut self, i: usize) -> &mut NodeRecord {
        self.changed.insert(i);
        self.dirty = true;
        &mut self.rec.nodes[i]
    }

    fn add_nodes(&mut self, specs: Vec<NodeSpec>) -> usize {
        let count = specs.len();
        for spec in specs {
            self.changed.insert(self.rec.nodes.len());
            self.rec.nodes.push(NodeRecord::pending(spec));
        }
        self.dirty = true;
        count
    }

    fn log(&mut self, entry: LogKind) {
        let seq = self.rec.log.len() as u64;
        self.rec.log.push(LogEntry {
            seq,
            at: self.now,
            entry,
        });
        self.dirty = true;
    }

    fn event(&mut self, event: RunEvent) {
        self.log(LogKind::Event { event });
    }

    fn meta(&mut self) -> &mut RunMeta {
        self.dirty = true;
        &mut self.rec.meta
    }
}

#[derive(Debug)]
enum ApproveError {
    Nothing,
    NoSuchGate(String),
    Store(StoreError),
}

impl ApproveError {
    fn into_exec(self, run: &str) -> ExecError {
        match self {
            ApproveError::Nothing => ExecError::NothingToApprove {
                run: run.to_owned(),
            },
            ApproveError::NoSuchGate(gate) => ExecError::NoSuchGate {
                run: run.to_owned(),
                gate,
            },
            ApproveError::Store(e) => e.into(),
        }
    }
}

impl Shared {
    fn new(
        run_id: String,
        store: Box<dyn RunStore>,
        rec: RunRecord,
        dir: Option<PathBuf>,
        events: broadcast::Sender<RunEvent>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Shared> {
        Arc::new_cyclic(|me: &std::sync::Weak<Shared>| {
            let status = dir.as_deref().map(|d| {
                let me = me.clone();
                let pid = std::process::id();
                Publisher::start(store::status_path(d), move || {
                    me.upgrade().map(|s| s.lock().live_view(pid))
                })
            });
            Shared {
                run_id,
                store: Mutex::new(Some(store)),
                inner: Mutex::new(Inner {
                    rec,
                    waiting: BTreeMap::new(),
                    pods: None,
                    waiters: Vec::new(),
                    broken: false,
                }),
                dir,
                status,
                events,
                clock,
                abort: CancellationToken::new(),
                abort_by: Mutex::new(None),
            }
        })
    }

    /// Ask the publisher for a new `status.json` (live-only facts changed).
    fn mark_stale(&self) {
        if let Some(status) = &self.status {
            status.mark_stale();
        }
    }

    /// Release the store (and with it the database lock).
    fn close(&self) {
        drop(self.store.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `f` to the record and commit what it changed as one checkpoint named
    /// `label`, durable before this returns (with everything committed before it).
    /// Commits nothing when `f` changed nothing.
    fn transact<T>(&self, label: &str, f: impl FnOnce(&mut Tx<'_>) -> T) -> Result<T, StoreError> {
        self.commit_tx(label, Durability::Flush, f)
    }

    /// Like [`transact`](Self::transact), for changes a crash may lose: the commit is
    /// atomic and ordered, but made durable by the next flushing checkpoint. Losing one
    /// only makes an idempotent step run again; every external write is preceded by a
    /// flushing intent, which carries all lazy commits before it to disk.
    fn transact_lazy<T>(
        &self,
        label: &str,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> Result<T, StoreError> {
        self.commit_tx(label, Durability::Lazy, f)
    }

    fn commit_tx<T>(
        &self,
        label: &str,
        durability: Durability,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.broken {
            return Err(StoreError::Corrupt {
                path: self.dir.clone().unwrap_or_default(),
                detail: "an earlier write failed; the run stopped writing".to_owned(),
            });
        }
        let log_from = inner.rec.log.len();
        let mut tx = Tx {
            rec: &mut inner.rec,
            waiters: &mut inner.waiters,
            changed: BTreeSet::new(),
            log_from,
            dirty: false,
            now: self.clock.now(),
        };
        let out = f(&mut tx);
        let (changed, dirty, now) = (tx.changed, tx.dirty, tx.now);
        let log_from = tx.log_from;
        if !dirty {
            return Ok(out);
        }
        let rec = &mut inner.rec;
        rec.meta.updated_at = now;
        rec.meta.log_len = rec.log.len() as u64;
        rec.meta.node_count = rec.nodes.len() as u32;
        let commit = Commit {
            label,
            durability,
            meta: &rec.meta,
            nodes: changed.iter().map(|&i| (i as u32, &rec.nodes[i])).collect(),
            log: &rec.log[log_from..],
        };
        let committed = match &*self.store.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(store) => store.commit(&commit),
            None => Err(StoreError::Corrupt {
                path: self.dir.clone().unwrap_or_default(),
                detail: "the run was closed; nothing more is recorded".to_owned(),
            }),
        };
        if let Err(e) = committed {
            inner.broken = true;
            return Err(e);
        }
        for entry in &rec.log[log_from..] {
            if let LogKind::Event { event } = &entry.entry {
                let _ = self.events.send(event.clone());
            }
        }
        if let Some(status) = &self.status {
            status.mark_stale();
        }
        Ok(out)
    }

    fn approve(
        &self,
        gate: Option<StepId>,
        by: &str,
        reason: Option<&str>,
    ) -> Result<(StepId, bool), ApproveError> {
        let now = self.clock.now();
        let outcome = self
            .transact("approve", |tx| {
                let gate = match gate {
                    Some(g) => {
                        let open = tx
                            .rec
                            .position(&g)
                            .is_some_and(|i| !tx.rec.nodes[i].state.is_done());
                        if !open && tx.rec.approval_of(&g).is_none() {
                            return Err(ApproveError::NoSuchGate(g.to_string()));
                        }
                        g
                    }
                    None => tx
                        .rec
                        .open_gates()
                        .into_iter()
                        .next()
                        .ok_or(ApproveError::Nothing)?,
                };
                if tx.rec.approval_of(&gate).is_some() {
                    return Ok((gate, true, Vec::new()));
                }
                let approval = Approval {
                    by: by.to_owned(),
                    reason: reason.map(str::to_owned),
                    at: now.to_string(),
                };
                tx.log(LogKind::Approval {
                    gate: gate.clone(),
                    approval: approval.clone(),
                });
                let mut wake = Vec::new();
                let mut keep = Vec::new();
                for (g, sender) in tx.waiters.drain(..) {
                    if g == gate {
                        wake.push((sender, approval.clone()))
                    } else {
                        keep.push((g, sender))
                    }
                }
                *tx.waiters = keep;
                Ok((gate, false, wake))
            })
            .map_err(ApproveError::Store)??;
        let (gate, already, wake) = outcome;
        for (sender, approval) in wake {
            let _ = sender.send(approval);
        }
        Ok((gate, already))
    }
}

impl ControlHandler for Shared {
    fn handle(&self, request: ControlRequest) -> ControlResponse {
        let response = self.handle_request(request);
        // The operator's next `engine status` must already show what they just did.
        if let Some(status) = &self.status {
            status.publish_now();
        }
        response
    }
}

impl Shared {
    fn handle_request(&self, request: ControlRequest) -> ControlResponse {
        match request {
            ControlRequest::Approve { gate, by, reason } => {
                match self.approve(gate, &by, reason.as_deref()) {
                    Ok((gate, already)) => ControlResponse::Approved { gate, already },
                    Err(e) => ControlResponse::Refused {
                        message: e.into_exec(&self.run_id).to_string(),
                    },
                }
            }
            ControlRequest::Abort { by, reason } => {
                let logged = self.transact("abort", |tx| {
                    tx.log(LogKind::Abort {
                        by: by.clone(),
                        reason: reason.clone(),
                    });
                });
                match logged {
                    Ok(()) => {
                        *self.abort_by.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(abort_message(&by, reason.as_deref()));
                        self.abort.cancel();
                        ControlResponse::Aborted
                    }
                    Err(e) => ControlResponse::Refused {
                        message: e.to_string(),
                    },
                }
            }
        }
    }
}

/// The [`Journal`] steps see.
struct RunJournal(Arc<Shared>);

/// Step events worth keeping in the run's log (the rest only go to live subscribers).
fn persisted(event: &RunEvent) -> bool {
    matches!(
        event,
        RunEvent::WavePlanned { .. }
            | RunEvent::Handover { .. }
            | RunEvent::SafetyStop { .. }
            | RunEvent::Warning { .. }
    )
}

impl Journal for RunJournal {
    fn intend(
        &self,
        step: &StepId,
        writes: Vec<AuditWrite>,
    ) -> Result<Vec<IntentId>, JournalError> {
        self.0
            .transact(&format!("intent:{step}"), |tx| {
                let attempt = tx
                    .rec
                    .position(step)
                    .map_or(0, |i| tx.rec.nodes[i].attempts);
                writes
                    .into_iter()
                    .map(|write| {
                        let id = IntentId(tx.rec.log.len() as u64);
                        tx.log(LogKind::Intent {
                            step: step.clone(),
                            attempt,
                            write,
                        });
                        id
                    })
                    .collect()
            })
            .map_err(|e| JournalError(e.to_string()))
    }

    fn settle(&self, outcomes: Vec<(IntentId, WriteOutcome)>) -> Result<(), JournalError> {
        self.0
            .transact_lazy("settled", |tx| {
                for (intent, outcome) in outcomes {
                    tx.log(LogKind::Settled { intent, outcome });
                }
            })
            .map_err(|e| JournalError(e.to_string()))
    }

    fn emit(&self, event: RunEvent) {
        if persisted(&event) {
            if let Err(error) = self.0.transact_lazy("event", |tx| tx.event(event)) {
                tracing::warn!(%error, "cannot record a run event");
            }
        } else {
            match &event {
                RunEvent::Waiting { step, what } => {
                    self.0.lock().waiting.insert(step.clone(), what.clone());
                    self.0.mark_stale();
                }
                RunEvent::Pods { pods } => {
                    self.0.lock().pods = Some(pods.clone());
                    self.0.mark_stale();
                }
                _ => {}
            }
            let _ = self.0.events.send(event);
        }
    }

    fn wait_approval(&self, gate: StepId) -> BoxFuture<'static, Result<Approval, JournalError>> {
        let shared = self.0.clone();
        Box::pin(async move {
            let label = format!("approval-requested:{gate}");
            let waiting = shared
                .transact(&label, |tx| {
                    if let Some(approval) = tx.rec.approval_of(&gate) {
                        return Ok(approval.clone());
                    }
                    let (sender, receiver) = oneshot::channel();
                    tx.waiters.push((gate.clone(), sender));
                    if !tx.rec.open_gates().contains(&gate) {
                        tx.log(LogKind::ApprovalRequested { gate: gate.clone() });
                        tx.event(RunEvent::Waiting {
                            step: gate.to_string(),
                            what: format!("approval: engine approve {}", tx.rec.meta.run_id),
                        });
                    }
                    Err(receiver)
                })
                .map_err(|e| JournalError(e.to_string()))?;
            match waiting {
                Ok(approval) => Ok(approval),
                Err(receiver) => receiver.await.map_err(|_| {
                    JournalError("the run stopped before the gate was approved".to_owned())
                }),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// The drive loop.

/// How one node's execution ended in this process.
#[derive(Debug)]
enum NodeEnd {
    Succeeded,
    Failed(String),
    SafetyStop(String),
    Interrupted,
    Store(StoreError),
}

/// Why the run stops before its end, by precedence (a later variant wins).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Interrupted,
    Aborted(String),
    Failed { step: String, message: String },
    Safety { step: String, message: String },
}

async fn drive_live<R: StepRunner>(
    shared: Arc<Shared>,
    blueprint: &dyn Blueprint,
    runner: Arc<R>,
    shutdown: CancellationToken,
    policy: RetryPolicy,
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
    let outcome = drive(shared.clone(), blueprint, runner, shutdown, policy).await;
    serving.cancel();
    if let Some(status) = &shared.status {
        status.stop();
    }
    shared.close();
    if let Some(path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    let rec = shared.lock().rec.clone();
    // The final view is published without a live pid: nobody drives the run any more.
    if let Some(dir) = &shared.dir
        && let Ok(bytes) = serde_json::to_vec(&RunView::of(&rec, None))
        && let Err(error) = store::write_atomic(&store::status_path(dir), &bytes)
    {
        tracing::warn!(%error, "cannot publish the final run status");
    }
    outcome
}

async fn drive<R: StepRunner>(
    shared: Arc<Shared>,
    blueprint: &dyn Blueprint,
    runner: Arc<R>,
    shutdown: CancellationToken,
    policy: RetryPolicy,
) -> Result<Outcome, ExecError> {
    let journal: Arc<dyn Journal> = Arc::new(RunJournal(shared.clone()));
    let step_cancel = CancellationToken::new();
    let mut tasks: JoinSet<(usize, NodeEnd)> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut stop: Option<Stop> = None;
    let mut grace: Option<tokio::time::Instant> = None;
    let mut store_error: Option<StoreError> = None;
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
            for idx in ready_nodes(&shared.lock().rec, &busy) {
                let task = run_node(
                    shared.clone(),
                    runner.clone(),
                    journal.clone(),
                    idx,
                    step_cancel.child_token(),
                    policy,
                );
                let handle = tasks.spawn(async move { (idx, task.await) });
                in_flight.insert(handle.id(), idx);
            }
        }
        if tasks.is_empty() {
            if let Some(e) = store_error {
                return Err(e.into());
            }
            if let Some(stop) = stop {
                return finish(&shared, stop).map_err(ExecError::from);
            }
            match grow(&shared, blueprint)? {
                Grown::More => continue,
                Grown::Complete => return Ok(Outcome::Succeeded),
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
                    NodeEnd::Store(e) => {
                        store_error.get_or_insert(e);
                        step_cancel.cancel();
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Pending nodes whose dependencies are all done, in insertion order.
fn ready_nodes(rec: &RunRecord, busy: &BTreeSet<usize>) -> Vec<usize> {
    let done: BTreeSet<&StepId> = rec
        .nodes
        .iter()
        .filter(|n| n.state.is_done())
        .map(|n| &n.spec.id)
        .collect();
    rec.nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| n.state == NodeState::Pending && !busy.contains(i))
        .filter(|(_, n)| n.spec.deps.iter().all(|d| done.contains(d)))
        .map(|(i, _)| i)
        .collect()
}

/// Nodes no other node depends on.
fn sinks(rec: &RunRecord) -> Vec<StepId> {
    let depended: BTreeSet<&StepId> = rec.nodes.iter().flat_map(|n| n.spec.deps.iter()).collect();
    rec.nodes
        .iter()
        .map(|n| &n.spec.id)
        .filter(|id| !depended.contains(id))
        .cloned()
        .collect()
}

enum Grown {
    More,
    Complete,
}

/// Every node is done: append the next part of the DAG, or finish the run.
fn grow(shared: &Shared, blueprint: &dyn Blueprint) -> Result<Grown, ExecError> {
    shared.transact_lazy("grow", |tx| {
        if let Some(n) = tx.rec.nodes.iter().find(|n| !n.state.is_done()) {
            return Err(ExecError::Graph {
                detail: format!("{} is {} but nothing can run", n.spec.id, n.state.as_str()),
            });
        }
        let after = sinks(tx.rec);
        let (phase, finishing) = (tx.rec.meta.phase, tx.rec.meta.finishing);
        let (next_phase, specs) = match (phase, finishing) {
            (Phase::Epilogue, _) => {
                let meta = tx.meta();
                meta.state = RunState::Succeeded;
                let run = meta.run_id.clone();
                tx.event(RunEvent::RunFinished {
                    run,
                    outcome: "succeeded".to_owned(),
                });
                return Ok(Grown::Complete);
            }
            (_, true) => (Phase::Epilogue, blueprint.epilogue(&after)),
            (Phase::Prologue, false) => (Phase::Wave { wave: 1 }, blueprint.wave(1, &after)),
            (Phase::Wave { wave }, false) if wave >= MAX_WAVES => {
                return Err(ExecError::Graph {
                    detail: format!("the run reached {MAX_WAVES} waves without finishing"),
                });
            }
            (Phase::Wave { wave }, false) => (
                Phase::Wave { wave: wave + 1 },
                blueprint.wave(wave + 1, &after),
            ),
        };
        // A blueprint with nothing more for this wave means the rollout has nothing left.
        let (next_phase, specs) = if specs.is_empty() && next_phase != Phase::Epilogue {
            (Phase::Epilogue, blueprint.epilogue(&after))
        } else {
            (next_phase, specs)
        };
        if let Some(dup) = specs.iter().find(|s| tx.rec.position(&s.id).is_some()) {
            return Err(ExecError::Graph {
                detail: format!("step {} would be added twice", dup.id),
            });
        }
        let start = tx.rec.nodes.len() as u32;
        tx.add_nodes(specs);
        let meta = tx.meta();
        meta.phase = next_phase;
        meta.phase_start = start;
        meta.finishing = false;
        Ok(Grown::More)
    })?
}

/// Record the end of a run that stopped early and say how it ended.
fn finish(shared: &Shared, stop: Stop) -> Result<Outcome, StoreError> {
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
        Stop::Safety { step, message } => (
            RunState::SafetyStopped,
            Some(format!("{step}: {message}")),
            Outcome::SafetyStop { step, message },
        ),
    };
    shared.transact("stop", |tx| {
        let meta = tx.meta();
        meta.state = state;
        meta.reason = reason;
        let run = meta.run_id.clone();
        tx.event(RunEvent::RunFinished {
            run,
            outcome: state.as_str().to_owned(),
        });
    })?;
    Ok(outcome)
}

/// A task that ended without recording its node (abandoned or panicked).
fn record_abandoned(shared: &Shared, idx: usize, end: &NodeEnd) -> Result<(), StoreError> {
    let id = shared.lock().rec.nodes[idx].spec.id.clone();
    let (state, error) = match end {
        NodeEnd::Failed(message) => (
            NodeState::Failed,
            Some(NodeError {
                kind: StepErrorKind::Failed,
                message: message.clone(),
            }),
        ),
        _ => (NodeState::Interrupted, None),
    };
    shared.transact_lazy(&format!("{id}={}", state.as_str()), |tx| {
        let now = tx.now;
        let n = tx.node(idx);
        if n.state == NodeState::Running || n.state == NodeState::Pending {
            n.state = state;
            n.error = error;
            n.finished_at = Some(now);
        }
    })
}

/// Run one node to its end in this process: attempts, retries, checkpoints.
async fn run_node<R: StepRunner>(
    shared: Arc<Shared>,
    runner: Arc<R>,
    journal: Arc<dyn Journal>,
    idx: usize,
    cancel: CancellationToken,
    policy: RetryPolicy,
) -> NodeEnd {
    let id = shared.lock().rec.nodes[idx].spec.id.clone();
    let mut tries = 0;
    loop {
        tries += 1;
        let begun = shared.transact_lazy(&format!("{id}=running"), |tx| {
            let now = tx.now;
            let n = tx.node(idx);
            n.state = NodeState::Running;
            n.attempts += 1;
            n.started_at = Some(now);
            n.finished_at = None;
            let attempt = n.attempts;
            tx.event(RunEvent::StepStarted {
                step: id.to_string(),
                attempt,
            });
            (attempt, tx.rec.outputs())
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
            let delay = policy.delay(tries, rand::random::<f64>());
            let recorded = shared.transact_lazy(&format!("{id}=retrying"), |tx| {
                let n = tx.node(idx);
                n.state = NodeState::Pending;
                n.error = Some(NodeError {
                    kind: error.kind,
                    message: error.message.clone(),
                });
                tx.event(RunEvent::StepFailed {
                    step: id.to_string(),
                    error: error.message.clone(),
                    retrying: true,
                });
            });
            if let Err(e) = recorded {
                return NodeEnd::Store(e);
            }
            tracing::info!(step = %id, attempt, ?delay, error = %error, "step failed; retrying");
            tokio::select! {
                () = tokio::time::sleep(delay) => continue,
                () = cancel.cancelled() => {
                    return match record_failure(&shared, idx, &id, StepError::interrupted()) {
                        Ok(end) => end,
                        Err(e) => NodeEnd::Store(e),
                    };
                }
            }
        }
        return match record_failure(&shared, idx, &id, error) {
            Ok(end) => end,
            Err(e) => NodeEnd::Store(e),
        };
    }
}

fn record_success(
    shared: &Shared,
    idx: usize,
    id: &StepId,
    output: StepOutput,
    ms: u64,
) -> Result<(), StoreError> {
    shared.transact_lazy(&format!("{id}=succeeded"), |tx| {
        let now = tx.now;
        let n = tx.node(idx);
        n.state = NodeState::Succeeded;
        n.output = Some(Arc::new(output.value.clone()));
        n.error = None;
        n.finished_at = Some(now);
        if let Some(serde_json::Value::Object(vars)) = output.value.get("vars") {
            let vars = vars.clone();
            tx.meta().vars.extend(vars);
        }
        tx.event(RunEvent::StepFinished {
            step: id.to_string(),
            ms,
        });
        if output.control == Control::Finish && tx.rec.meta.phase != Phase::Epilogue {
            tx.meta().finishing = true;
            let start = tx.rec.meta.phase_start as usize;
            for i in start..tx.rec.nodes.len() {
                if tx.rec.nodes[i].state == NodeState::Pending {
                    let n = tx.node(i);
                    n.state = NodeState::Skipped;
                    n.finished_at = Some(now);
                }
            }
        }
    })
}

fn record_failure(
    shared: &Shared,
    idx: usize,
    id: &StepId,
    error: StepError,
) -> Result<NodeEnd, StoreError> {
    let state = if error.kind == StepErrorKind::Interrupted {
        NodeState::Interrupted
    } else {
        NodeState::Failed
    };
    shared.transact_lazy(&format!("{id}={}", state.as_str()), |tx| {
        let now = tx.now;
        let n = tx.node(idx);
        n.state = state;
        n.error = Some(NodeError {
            kind: error.kind,
            message: error.message.clone(),
        });
        n.finished_at = Some(now);
        match error.kind {
            StepErrorKind::Interrupted => {}
            StepErrorKind::SafetyStop => {
                tx.event(RunEvent::SafetyStop {
                    step: id.to_string(),
                    reason: error.message.clone(),
                });
            }
            StepErrorKind::Failed | StepErrorKind::Retryable => {
                tx.event(RunEvent::StepFailed {
                    step: id.to_string(),
                    error: error.message.clone(),
                    retrying: false,
                });
            }
        }
    })?;
    Ok(match error.kind {
        StepErrorKind::Interrupted => NodeEnd::Interrupted,
        StepErrorKind::SafetyStop => NodeEnd::SafetyStop(error.message),
        StepErrorKind::Failed | StepErrorKind::Retryable => NodeEnd::Failed(error.message),
    })
}
