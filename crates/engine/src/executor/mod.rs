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
//!    run (resumable, after running siblings finish); `SafetyStop` (and `Unhealthy`)
//!    cancels siblings and stops the run until `--accept-risk`. With `onFailure: rollback`
//!    an unhealthy or failed wave instead records the rollback in the failure's own commit
//!    and cancels its siblings; the graph grows a `rollback` step and the rollback's waves,
//!    and the run ends [`Outcome::RolledBack`] (see `transition::rollback`).
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
//!
//! # Layout
//! `start` opens and resets a run and hands it to `drive`, which runs the DAG; every change
//! to the record is a pure `transition`, applied and committed by the `ledger`; steps reach
//! the ledger through the `journal`, operators through `gates` (the control socket) or
//! `operator` (offline); `runs` finds runs on disk; `environment` is what a run takes from
//! outside (store, clock, jitter).

mod drive;
mod environment;
mod error;
mod gates;
mod journal;
mod ledger;
mod operator;
mod runs;
mod start;
mod transition;

pub use environment::{Environment, Jitter, SledStores, StoreOpener};
pub use error::ExecError;
pub use operator::{
    ApproveReceipt, approve, intend_operator_write, mark_aborted, settle_operator_write,
};
pub use runs::{
    collectable_runs, delete_run, list_runs, load_run, name_new_run, pick_run, stored_plan,
};
pub use start::{resume, resume_in, start, start_in, start_named, start_named_in};

use std::path::PathBuf;
use std::time::Duration;

use crate::store::RunState;

/// The run refuses to grow past this many waves. A rollout needs at most one wave per
/// replica plus handover waves; a bound far above any real StatefulSet only stops a
/// runaway loop (a step that never says `Finish`).
pub const MAX_WAVES: u32 = 10_000;

/// How long a cancelled step may take to reach a safe point before it is abandoned.
pub const STEP_GRACE: Duration = Duration::from_secs(5);

/// Where runs live and how to treat stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    /// Continue after a safety stop (the stopped check is recorded `skipped`).
    pub accept_risk: bool,
    /// Accept a plan whose text changed since the run started.
    pub replan: bool,
    /// Who resumes, as the history records it (with `accept_risk`); `None`: this process's
    /// user (`user@host`). The in-cluster controller resumes on an operator's request.
    pub operator: Option<String>,
}

/// How a run ended in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The run had already finished (succeeded or rolled back, as `state` says); nothing ran.
    AlreadyFinished {
        state: RunState,
    },
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
    /// `onFailure: rollback`: `step` failed with `message`, and the run brought the pods
    /// back to the old template, standby-first. Ended for good (exit 1).
    RolledBack {
        step: String,
        message: String,
    },
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
