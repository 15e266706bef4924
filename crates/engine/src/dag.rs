//! The run as a DAG of steps. Waves are appended as the run learns them, so the graph
//! grows; only [`StepId`]s are persisted, never petgraph indexes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::HookPoint;

/// What a step does. Tags are persisted: never rename a variant's serde name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    Protect,
    ApplyUpdate,
    QueryArbiter,
    Select,
    Relabel,
    SetPartition,
    WaitUpdated,
    Verify,
    /// `waves.settle` pause after a wave is ready.
    Settle,
    /// `waves.approval` gate.
    Approval,
    Handover,
    Finalize,
    /// A plan hook.
    Hook { point: HookPoint, name: String },
}

/// Identity of one node: its kind and, for per-wave steps, the wave number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepId {
    pub wave: Option<u32>,
    pub kind: StepKind,
}

impl StepId {
    pub fn run_level(kind: StepKind) -> Self {
        StepId { wave: None, kind }
    }

    pub fn in_wave(wave: u32, kind: StepKind) -> Self {
        StepId { wave: Some(wave), kind }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StepKind::Protect => "protect",
            StepKind::ApplyUpdate => "apply-update",
            StepKind::QueryArbiter => "query-arbiter",
            StepKind::Select => "select",
            StepKind::Relabel => "relabel",
            StepKind::SetPartition => "set-partition",
            StepKind::WaitUpdated => "wait-updated",
            StepKind::Verify => "verify",
            StepKind::Settle => "settle",
            StepKind::Approval => "approval",
            StepKind::Handover => "handover",
            StepKind::Finalize => "finalize",
            StepKind::Hook { point, name } => return write!(f, "hook/{}/{name}", point.as_str()),
        };
        f.write_str(s)
    }
}

/// `protect`, `wave-2/select`, `wave-1/hook/afterWaveReady/smoke`.
impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wave {
            Some(w) => write!(f, "wave-{w}/{}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// A node to add: its id and the ids it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: StepId,
    pub deps: Vec<StepId>,
}
