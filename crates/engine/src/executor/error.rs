//! Why the executor could not run, and how each reason reads to an operator.

use std::path::PathBuf;

use crate::control;
use crate::store::{RunState, StoreError};

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
    /// Found when the record is read, before anything is written. Nothing more is written
    /// from a damaged record: what it says the run did may not be what it did.
    #[error(
        "run state at {} is damaged: {detail}. Nothing was written; a damaged run is not \
         resumed, aborted or approved. Check the cluster, then forget the run with \
         `engine delete {} --force`",
        path.display(),
        run_of(path)
    )]
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

/// The run whose directory holds `path` (`<state>/runs/<run>/db` or `.../status.json`).
fn run_of(path: &std::path::Path) -> String {
    path.parent().and_then(|dir| dir.file_name()).map_or_else(
        || "RUN".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}

pub(super) fn list_or_none(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    }
}

pub(super) fn pick_hint(unfinished: &[String]) -> String {
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
