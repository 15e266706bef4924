//! Read-only snapshots of a run for `engine status`, `list` and `history`, and for the
//! `status.json` a live run publishes. JSON field names are a public schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::records::{LogKind, NodeError, NodeState, Phase, RunRecord, RunState};
use crate::dag::StepId;
use crate::event::RunEvent;
use crate::step::{Approval, AuditWrite, WriteOutcome};

/// Everything `status` and `history` show about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub run: String,
    pub state: RunState,
    #[serde(default)]
    pub reason: Option<String>,
    /// `namespace/name`.
    pub target: String,
    pub plan_file: String,
    pub plan_hash: String,
    /// The plan text the run executes (so a process without the lock can resume-check it).
    pub plan_text: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub phase: Phase,
    #[serde(default)]
    pub current_wave: Option<u32>,
    /// Pid of the process driving the run when this view was published by it; `None`
    /// when read from the store (no process holds the run).
    #[serde(default)]
    pub live_pid: Option<u32>,
    /// Gates waiting for `engine approve`.
    #[serde(default)]
    pub waiting_approval: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// What running steps wait for now, each pod still in the way and why. Only a driving
    /// process knows; a view read from the store has none.
    #[serde(default)]
    pub waiting: Vec<WaitingEntry>,
    /// The set's pods as the driving process last read them (role from the arbiter). `None`
    /// in a view read from the store: `engine status` then reads the cluster itself.
    #[serde(default)]
    pub pods: Option<Vec<crate::event::PodRow>>,
    pub nodes: Vec<NodeView>,
    pub audit: Vec<AuditEntry>,
    pub approvals: Vec<ApprovalEntry>,
    pub events: Vec<EventEntry>,
}

/// One running step's current wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingEntry {
    pub step: String,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// `wave-1/select`.
    pub id: String,
    pub step: StepId,
    pub deps: Vec<String>,
    pub state: NodeState,
    pub attempts: u32,
    #[serde(default, with = "super::records::shared_value")]
    pub output: Option<Arc<serde_json::Value>>,
    #[serde(default)]
    pub error: Option<NodeError>,
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub step: String,
    pub attempt: u32,
    #[serde(flatten)]
    pub write: AuditWrite,
    /// Whether the write is known to have landed: `"outcome": "applied"`, `"failed"`
    /// (with `"error"`) or `"unconfirmed"`.
    #[serde(flatten)]
    pub outcome: AuditOutcome,
    /// When the answer came (`at` is when the write was logged, just before it was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<Timestamp>,
}

/// What the history knows of one write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum AuditOutcome {
    /// Acknowledged by the cluster or the arbiter.
    Applied,
    /// Refused, or failed to send (`error` on the entry says why).
    Failed { error: String },
    /// An answer came that does not say whether it landed (`error` says what came).
    Unknown { error: String },
    /// Cancelled before its answer (a sibling hook failed, or the run was interrupted).
    Cancelled,
    /// Logged as about to be sent, with no answer recorded: the process stopped in
    /// between. It may or may not have landed; the resumed step re-read the world.
    Unconfirmed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalEntry {
    pub seq: u64,
    /// The gate, or `abort` / `accept-risk` for those operator actions.
    pub gate: String,
    pub action: String,
    #[serde(flatten)]
    pub approval: Approval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub event: RunEvent,
}

/// One line of `engine list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run: String,
    /// `None` when the record could not be read (see `problem`).
    pub state: Option<RunState>,
    pub target: Option<String>,
    pub updated_at: Option<Timestamp>,
    pub current_wave: Option<u32>,
    pub live: bool,
    #[serde(default)]
    pub problem: Option<String>,
}

impl RunView {
    /// The view of `record`; `live_pid` is set by the process publishing it.
    pub fn of(record: &RunRecord, live_pid: Option<u32>) -> RunView {
        let meta = &record.meta;
        let nodes = record
            .nodes
            .iter()
            .map(|n| NodeView {
                id: n.spec.id.to_string(),
                step: n.spec.id.clone(),
                deps: n.spec.deps.iter().map(ToString::to_string).collect(),
                state: n.state,
                attempts: n.attempts,
                output: n.output.clone(),
                error: n.error.clone(),
                started_at: n.started_at,
                finished_at: n.finished_at,
            })
            .collect();
        let mut audit = Vec::new();
        let mut approvals = Vec::new();
        let mut events = Vec::new();
        for e in &record.log {
            match &e.entry {
                LogKind::Audit {
                    step,
                    attempt,
                    write,
                }
                | LogKind::Intent {
                    step,
                    attempt,
                    write,
                } => {
                    // Older versions logged a write once it was acknowledged; an intent
                    // stays unconfirmed until its settlement below.
                    let acknowledged = matches!(e.entry, LogKind::Audit { .. });
                    audit.push(AuditEntry {
                        seq: e.seq,
                        at: e.at,
                        step: step.to_string(),
                        attempt: *attempt,
                        write: write.clone(),
                        outcome: if acknowledged {
                            AuditOutcome::Applied
                        } else {
                            AuditOutcome::Unconfirmed
                        },
                        settled_at: acknowledged.then_some(e.at),
                    });
                }
                LogKind::OperatorIntent { label, by, write } => audit.push(AuditEntry {
                    seq: e.seq,
                    at: e.at,
                    step: format!("{label} by {by}"),
                    attempt: 0,
                    write: write.clone(),
                    outcome: AuditOutcome::Unconfirmed,
                    settled_at: None,
                }),
                LogKind::Settled { intent, outcome } => {
                    // An intent always precedes its settlement in the log.
                    if let Some(entry) = audit.iter_mut().rev().find(|a| a.seq == intent.0) {
                        entry.outcome = match outcome {
                            WriteOutcome::Applied => AuditOutcome::Applied,
                            WriteOutcome::Completed { answer } => {
                                entry.write.after = answer.clone();
                                AuditOutcome::Applied
                            }
                            WriteOutcome::Failed { error } => AuditOutcome::Failed {
                                error: error.clone(),
                            },
                            WriteOutcome::Unknown { error } => AuditOutcome::Unknown {
                                error: error.clone(),
                            },
                            WriteOutcome::Cancelled => AuditOutcome::Cancelled,
                        };
                        entry.settled_at = Some(e.at);
                    }
                }
                LogKind::Approval { gate, approval } => approvals.push(ApprovalEntry {
                    seq: e.seq,
                    gate: gate.to_string(),
                    action: "approve".to_owned(),
                    approval: approval.clone(),
                }),
                LogKind::Abort { by, reason } => approvals.push(ApprovalEntry {
                    seq: e.seq,
                    gate: String::new(),
                    action: "abort".to_owned(),
                    approval: Approval {
                        by: by.clone(),
                        reason: reason.clone(),
                        at: e.at.to_string(),
                    },
                }),
                LogKind::RiskAccepted { step, by } => approvals.push(ApprovalEntry {
                    seq: e.seq,
                    gate: step.to_string(),
                    action: "accept-risk".to_owned(),
                    approval: Approval {
                        by: by.clone(),
                        reason: None,
                        at: e.at.to_string(),
                    },
                }),
                LogKind::Event { event } => events.push(EventEntry {
                    seq: e.seq,
                    at: e.at,
                    event: event.clone(),
                }),
                LogKind::ApprovalRequested { .. } => {}
            }
        }
        RunView {
            run: meta.run_id.clone(),
            state: meta.state,
            reason: meta.reason.clone(),
            target: meta.target.clone(),
            plan_file: meta.plan.file.clone(),
            plan_hash: meta.plan.hash.clone(),
            plan_text: meta.plan.text.clone(),
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            phase: meta.phase,
            current_wave: record.current_wave(),
            live_pid,
            waiting_approval: record
                .open_gates()
                .iter()
                .map(ToString::to_string)
                .collect(),
            vars: meta.vars.clone(),
            waiting: Vec::new(),
            pods: None,
            nodes,
            audit,
            approvals,
            events,
        }
    }

    /// The one-line summary of this run.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            run: self.run.clone(),
            state: Some(self.state),
            target: Some(self.target.clone()),
            updated_at: Some(self.updated_at),
            current_wave: self.current_wave,
            live: self.live_pid.is_some(),
            problem: None,
        }
    }
}
