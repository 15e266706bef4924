//! The rollout decision core (SPEC §1): pure functions over a
//! [`Snapshot`](crate::snapshot::Snapshot).
//!
//! No I/O, no clocks, no async. Steps read the cluster and the arbiter into a snapshot,
//! ask here what to do, and write the answer as absolute values. Every function re-derives
//! its sets from the snapshot it is given, so a decision taken after a crash is the same
//! decision a step would have taken without one.
//!
//! - [`check_preconditions`]: may a run touch this set at all?
//! - [`plan_wave`] / [`plan_handover`]: the next wave and the handover after it.
//! - [`finalize_partition`]: the partition that ends a run without touching protected pods.
//! - [`partition_for`] / [`freeze_partition`]: the one partition arithmetic (`|P| - |U ∪ S|`).
//! - [`plan_gated_wave`] / [`plan_gated_handover`]: the same, leaving out pods whose per-pod
//!   gates failed ([`Held`]).
//! - [`window_state`]: may a wave start now (maintenance windows), else when.
//! - [`judge_wave`]: did a wave disturb a working pod?
//! - [`forecast`]: every wave, assuming each succeeds (`engine plan`); [`forecast_run`] adds
//!   how the run ends, [`estimate`] how long it may take.

use serde::{Deserialize, Serialize};

mod estimate;
mod forecast;
mod gates;
mod judge;
mod partition;
mod sets;
mod wave;
mod window;

pub use estimate::{Estimate, Timing, WaveTiming, estimate, typical_ready};
pub use forecast::{forecast, forecast_run};
pub use gates::{
    GateAnswer, Held, gates_at, plan_gated_handover, plan_gated_wave, promote_candidates,
    select_candidates,
};
pub use judge::judge_wave;
pub use partition::{freeze_partition, partition_for};
pub use wave::{check_preconditions, finalize_partition, plan_handover, plan_wave};
pub use window::{Opening, WindowState, wave_starts, window_state};

/// The knobs of the plan that decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// `waves.maxPerWave`; 0 = unlimited.
    pub max_per_wave: u32,
    /// Resolved `safety.minWorking` (never 0 once a run started: 0 means "the count seen at start").
    pub min_working: u32,
    /// The `updateRevision` recorded when the run applied its template; a different one later
    /// means someone changed the template under the run.
    pub expected_update_revision: Option<String>,
    /// A rollback (`onFailure: rollback`) reverses the handovers first: while a working pod
    /// is not at the update revision and an idle one that is can take over, the wave hands
    /// over before it updates anything, so the old revision holds the working role as soon
    /// as it can.
    #[serde(default)]
    pub prefer_handover: bool,
}

/// A promotion/demotion pair list for `POST /v1/handover`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Handover {
    pub promote: Vec<String>,
    pub demote: Vec<String>,
}

/// What the next wave should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum WaveDecision {
    /// Every pod the arbiter lists runs the update revision: finalize (with
    /// [`finalize_partition`], which keeps protected pods as they are).
    Done,
    /// Mark `select` and set the partition to `partition` (= |P| - |U| - |S|).
    Update { select: Vec<String>, partition: u32 },
    /// No idle pod is old but working pods are: hand over before updating anything.
    HandoverFirst(Handover),
}

/// Why the engine refuses to go on. Each is a clear operator-facing condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Refusal {
    #[error(
        "podManagementPolicy is OrderedReady; Kruise forbids unorderedUpdate there, set it to Parallel"
    )]
    OrderedReady,
    #[error("the StatefulSet's rolling update is paused")]
    Paused,
    #[error("update strategy type is {found}, expected RollingUpdate")]
    NotRollingUpdate { found: String },
    #[error(
        "the arbiter names pods that do not belong to the StatefulSet: {}",
        crate::text::names(pods)
    )]
    UnknownPods { pods: Vec<String> },
    #[error(
        "the arbiter reports {}, below the minimum of {min}",
        crate::text::count(usize::try_from(*working).unwrap_or(usize::MAX), "working pod", "working pods")
    )]
    BelowMinWorking { working: u32, min: u32 },
    #[error(
        "working pods {} still run the old revision and no updated idle pod is ready to take over",
        crate::text::names(working)
    )]
    NoIdleToHandOver { working: Vec<String> },
    #[error("every pod is working; there is no idle pod to update first")]
    AllWorking,
    #[error(
        "the controller has not observed the latest generation yet; the update revision is unknown"
    )]
    RevisionNotObserved,
    #[error("the update revision changed under the run: expected {expected}, found {found}")]
    UpdateRevisionChanged { expected: String, found: String },
    #[error(
        "gates hold every pod this wave could take: {}",
        pods.join(", ")
    )]
    GatesHold { pods: Vec<String> },
}

/// A non-fatal observation to report to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Warning {
    /// Pods of the set the arbiter does not list: never selected.
    Protected { pods: Vec<String> },
}

/// One projected wave, for `engine plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveForecast {
    pub wave: u32,
    pub select: Vec<String>,
    pub partition: u32,
    pub handover: Option<Handover>,
}

/// A whole run as `engine plan` projects it: its waves, and how it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunForecast {
    pub waves: Vec<WaveForecast>,
    /// The partition `finalize` writes: the protected pods still old, 0 in an ordinary run.
    pub finalize_partition: u32,
    /// The pods that keep the old revision after the run (the arbiter does not list them).
    pub kept_old: Vec<String>,
}

/// What a wave did to working pods, judged from snapshots before and after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WaveVerdict {
    pub violations: Vec<Violation>,
}

impl WaveVerdict {
    pub fn is_safe(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Violation {
    /// A working pod now carries another revision (same UID: updated in place).
    RevisionChanged {
        pod: String,
        from: Option<String>,
        to: Option<String>,
    },
    /// A working pod's containers restarted.
    Restarted {
        pod: String,
        before: u32,
        after: u32,
    },
    /// A working pod is being deleted (same UID, `deletionTimestamp` set). Caught while a
    /// wave waits, this is the earliest sign of the recreation below: Kruise would bring the
    /// pod back at the update revision if the partition stayed open. `external` as below.
    Terminating { pod: String, external: bool },
    /// A working pod has a new UID: it was deleted and recreated. `external` when the
    /// engine selected no such pod, i.e. someone else deleted it.
    Recreated {
        pod: String,
        external: bool,
        revision: Option<String>,
    },
}
