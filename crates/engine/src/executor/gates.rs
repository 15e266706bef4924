//! Approval gates and the control socket: releasing a gate (and the steps waiting at
//! it), and answering `engine approve` / `engine abort` sent by other processes.

use crate::control::{ControlHandler, ControlRequest, ControlResponse};
use crate::dag::StepId;
use crate::step::Approval;
use crate::store::{LogKind, StoreError};

use super::ExecError;
use super::ledger::Shared;
use super::operator::abort_message;

#[derive(Debug)]
pub(super) enum ApproveError {
    Nothing,
    NoSuchGate(String),
    Store(StoreError),
}

impl ApproveError {
    pub(super) fn into_exec(self, run: &str) -> ExecError {
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
    pub(super) fn approve(
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
    pub(super) fn handle_request(&self, request: ControlRequest) -> ControlResponse {
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
