//! The [`Journal`] steps see: intents before external writes, their outcomes, events,
//! and waiting at approval gates.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::dag::StepId;
use crate::event::RunEvent;
use crate::step::{Approval, AuditWrite, BoxFuture, IntentId, Journal, JournalError, WriteOutcome};
use crate::store::LogKind;

use super::ledger::Shared;

/// The [`Journal`] steps see.
pub(super) struct RunJournal(pub(super) Arc<Shared>);

/// Step events worth keeping in the run's log (the rest only go to live subscribers).
pub(super) fn persisted(event: &RunEvent) -> bool {
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
