//! The persisted records of a run. Every value on disk is an [`Envelope`] `{v, body}`;
//! enum tags are part of the format: never rename, reorder or reuse one.
//!
//! Format version 1 (*since v0.1*).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::dag::{NodeSpec, StepId};
use crate::event::RunEvent;
use crate::plan::PlanSource;
use crate::step::{Approval, AuditWrite, IntentId, StepErrorKind, WriteOutcome};

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// A versioned value, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u16,
    pub body: T,
}

/// Why a stored value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is not a valid record: {detail}")]
    Invalid { what: String, detail: String },
    #[error(
        "{what} was written by a newer baton (format {found}; this build reads {FORMAT_VERSION})"
    )]
    Newer { what: String, found: u16 },
}

/// Serialize `body` in the current envelope. Plain data structs do not fail to serialize,
/// but if one ever did, the commit fails rather than storing empty bytes that a later load
/// would call corrupt.
pub fn encode<T: Serialize>(body: &T, what: &'static str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Envelope {
        v: FORMAT_VERSION,
        body,
    })
    .map_err(|source| StoreError::Encode { what, source })
}

/// Read an envelope, refusing unknown versions and malformed bodies.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u16,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid {
        what: what.to_owned(),
        detail: e.to_string(),
    })?;
    if version.v > FORMAT_VERSION {
        return Err(DecodeError::Newer {
            what: what.to_owned(),
            found: version.v,
        });
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(envelope.body)
}

/// The state of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    /// A process is driving it (or died doing so: see the node states).
    Running,
    Succeeded,
    /// A step failed; `engine resume` retries it.
    Failed,
    /// A safety invariant broke; `engine resume --accept-risk` continues.
    SafetyStopped,
    /// Stopped by a signal at a checkpoint; `engine resume` continues.
    Interrupted,
    /// An operator ran `engine abort`; `engine resume` continues if they change their mind.
    Aborted,
    /// `onFailure: rollback`: a failure sent the run back to the revision it started from,
    /// and it got there (every listed pod on the old template). Ended for good, exit 1.
    RolledBack,
}

impl RunState {
    /// Whether the run has ended for good.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::RolledBack)
    }

    /// Whether the run still claims its target: it is being driven, or stopped in a way that
    /// `engine resume` continues. An aborted run was let go of by an operator.
    pub fn is_unfinished(self) -> bool {
        !matches!(
            self,
            RunState::Succeeded | RunState::Aborted | RunState::RolledBack
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::SafetyStopped => "safetyStopped",
            RunState::Interrupted => "interrupted",
            RunState::Aborted => "aborted",
            RunState::RolledBack => "rolledBack",
        }
    }
}

/// The state of one node of the DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeState {
    Pending,
    /// Durably marked before the step's first side effect; still `running` after a crash.
    Running,
    Succeeded,
    Failed,
    /// Not needed: the wave ended early (`Control::Finish`) or a safety stop was accepted.
    Skipped,
    /// Cancelled by a signal or an abort; runs again on resume.
    Interrupted,
}

impl NodeState {
    /// Dependents may start.
    pub fn is_done(self) -> bool {
        matches!(self, NodeState::Succeeded | NodeState::Skipped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Interrupted => "interrupted",
        }
    }
}

/// Which part of the DAG was appended last; drives how the graph grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "camelCase")]
pub enum Phase {
    Prologue,
    Wave { wave: u32 },
    Epilogue,
}

/// Run-level record: everything but the nodes and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMeta {
    pub run_id: String,
    pub plan: PlanSource,
    /// `namespace/name` of the StatefulSet.
    pub target: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub state: RunState,
    /// Why the run is in its state (failure message, abort reason), for `status`.
    #[serde(default)]
    pub reason: Option<String>,
    pub phase: Phase,
    /// Index of the first node of the current phase.
    #[serde(default)]
    pub phase_start: u32,
    /// A step of the current phase returned `Control::Finish`: the epilogue comes next.
    #[serde(default)]
    pub finishing: bool,
    /// Values steps publish for the whole run (e.g. the resolved `minWorking`): the
    /// object under `vars` in any step output is merged here.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Set once a failure started a rollback (`onFailure: rollback`): from then on the run
    /// goes back to the old template, and a crash resumes into the rollback. Absent in
    /// records written before rollbacks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Number of log entries; the log cursor, committed with every change.
    pub log_len: u64,
    /// Number of nodes.
    pub node_count: u32,
}

/// Why and from where a run rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    /// The step whose failure started it (`wave-2/wait-updated`).
    pub step: String,
    /// What failed, for the operator.
    pub reason: String,
    /// The wave that failed; the rollback's waves are numbered after it.
    pub wave: u32,
    /// Index of the `rollback` node once the graph grew it (`None`: not yet). Nodes before
    /// it that failed stay failed: the rollback replaced them, nothing runs them again.
    #[serde(default)]
    pub node: Option<u32>,
}

/// A step failure as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeError {
    pub kind: StepErrorKind,
    pub message: String,
}

/// One node of the DAG with its execution state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub spec: NodeSpec,
    pub state: NodeState,
    /// Attempts started so far over the whole run (a count for operators and retries; the
    /// cluster never sees it, so it fences nothing).
    pub attempts: u32,
    /// Shared, not copied: every later step's context holds all earlier outputs, and
    /// a wave's query output carries a snapshot of every pod.
    #[serde(default, with = "shared_value")]
    pub output: Option<Arc<serde_json::Value>>,
    #[serde(default)]
    pub error: Option<NodeError>,
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
}

impl NodeRecord {
    pub fn pending(spec: NodeSpec) -> Self {
        NodeRecord {
            spec,
            state: NodeState::Pending,
            attempts: 0,
            output: None,
            error: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// One entry of the append-only run log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub entry: LogKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LogKind {
    /// A progress event worth keeping (step transitions, waves, handovers, stops).
    Event { event: RunEvent },
    /// A write to the cluster or the arbiter, recorded after it was acknowledged.
    /// Written by earlier versions only; still read, as an applied write.
    Audit {
        step: StepId,
        attempt: u32,
        write: AuditWrite,
    },
    /// A write a step is about to make (write-ahead): durable before the write is sent.
    Intent {
        step: StepId,
        attempt: u32,
        write: AuditWrite,
    },
    /// A write an operator's command is about to make (`engine abort` freezing the
    /// partition), write-ahead like a step's; `label` names the command.
    OperatorIntent {
        label: String,
        by: String,
        write: AuditWrite,
    },
    /// What became of the intent at log position `intent`.
    Settled {
        intent: IntentId,
        outcome: WriteOutcome,
    },
    /// An operator released an approval gate.
    Approval { gate: StepId, approval: Approval },
    /// A step is waiting for an approval of `gate`.
    ApprovalRequested { gate: StepId },
    /// An operator aborted the run.
    Abort { by: String, reason: Option<String> },
    /// An operator resumed after a safety stop.
    RiskAccepted { step: StepId, by: String },
}

/// A whole run as held in memory: what the store loads and the executor mutates.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub meta: RunMeta,
    pub nodes: Vec<NodeRecord>,
    pub log: Vec<LogEntry>,
}

impl RunRecord {
    /// The index of node `id`.
    pub fn position(&self, id: &StepId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.spec.id == id)
    }

    /// Outputs of every succeeded node, for [`StepContext::outputs`](crate::step::StepContext).
    pub fn outputs(&self) -> BTreeMap<StepId, Arc<serde_json::Value>> {
        self.nodes
            .iter()
            .filter(|n| n.state == NodeState::Succeeded)
            .filter_map(|n| n.output.clone().map(|o| (n.spec.id.clone(), o)))
            .collect()
    }

    /// The approval recorded for `gate`, if any.
    pub fn approval_of(&self, gate: &StepId) -> Option<&Approval> {
        self.log.iter().rev().find_map(|e| match &e.entry {
            LogKind::Approval { gate: g, approval } if g == gate => Some(approval),
            _ => None,
        })
    }

    /// Gates a step asked approval for that are neither approved nor finished.
    pub fn open_gates(&self) -> Vec<StepId> {
        let mut gates: Vec<StepId> = Vec::new();
        for e in &self.log {
            if let LogKind::ApprovalRequested { gate } = &e.entry
                && !gates.contains(gate)
            {
                gates.push(gate.clone());
            }
        }
        gates.retain(|g| {
            self.approval_of(g).is_none()
                && self
                    .position(g)
                    .is_some_and(|i| !self.nodes[i].state.is_done())
        });
        gates
    }

    /// The wave the run is in, if it is in one.
    pub fn current_wave(&self) -> Option<u32> {
        match self.meta.phase {
            Phase::Wave { wave } => Some(wave),
            Phase::Prologue | Phase::Epilogue => None,
        }
    }
}

/// Serde for an optional shared JSON value, written exactly as the plain value.
pub(crate) mod shared_value {
    use std::sync::Arc;

    use serde::{Deserialize as _, Deserializer, Serialize as _, Serializer};

    pub fn serialize<S: Serializer>(
        v: &Option<Arc<serde_json::Value>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<serde_json::Value>>, D::Error> {
        Ok(Option::<serde_json::Value>::deserialize(d)?.map(Arc::new))
    }
}
