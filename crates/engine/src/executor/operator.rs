//! What an operator does to a run from another process: approve a gate, abort, and log
//! the writes an abort makes. Goes through the driving process's control socket when one
//! holds the run, else writes the database directly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::clock::SystemClock;
use crate::control::{self, ControlRequest, ControlResponse};
use crate::dag::StepId;
use crate::step::{AuditWrite, IntentId, WriteOutcome};
use crate::store::{self, LogKind, RunState, RunStore, SledStore, StoreError};

use super::ExecError;
use super::ledger::Shared;
use super::runs::known_run;

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
pub(super) const OPERATOR_PATIENCE: Duration = Duration::from_secs(10);

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

pub(super) fn offline_patiently(
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

pub(super) fn abort_message(by: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("aborted by {by}: {r}"),
        None => format!("aborted by {by}"),
    }
}

/// Open a run's database for a one-off write, or `None` when a process holds it.
pub(super) fn offline(state_dir: &Path, run_id: &str) -> Result<Option<Arc<Shared>>, ExecError> {
    open_offline(state_dir, run_id, Duration::from_millis(300))
}

pub(super) fn open_offline(
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

pub(super) fn ask(
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
