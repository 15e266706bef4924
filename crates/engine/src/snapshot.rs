//! Plain data the decision core reasons about: the ASTS, its pods and the arbiter's view,
//! as read at one moment. Built by `baton-steps` from the live cluster; built by hand in tests.
//! Nothing here knows about Kubernetes client types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the decision core needs at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub sts: StsView,
    /// Pods owned by the ASTS and matching its selector, in any order.
    pub pods: Vec<PodView>,
    pub arbiter: ArbiterView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodManagementPolicy {
    OrderedReady,
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStrategyType {
    RollingUpdate,
    OnDelete,
    Other(String),
}

/// The Advanced StatefulSet as the decision core sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StsView {
    pub namespace: String,
    pub name: String,
    /// `spec.replicas` (|P|).
    pub replicas: u32,
    /// `spec.updateStrategy.rollingUpdate.partition`, `None` when unset.
    pub partition: Option<u32>,
    pub generation: i64,
    /// `status.observedGeneration`, `None` when the controller never reported.
    pub observed_generation: Option<i64>,
    /// `status.updateRevision`; trusted only when observed == generation.
    pub update_revision: Option<String>,
    pub current_revision: Option<String>,
    pub pod_management_policy: PodManagementPolicy,
    pub update_type: UpdateStrategyType,
    /// `rollingUpdate.paused`.
    pub paused: bool,
    /// Whether `rollingUpdate.unorderedUpdate` is set.
    pub unordered: bool,
    /// `rollingUpdate.maxUnavailable` resolved to a pod count (default 1, percent floored, min 1).
    pub max_unavailable: u32,
}

impl StsView {
    /// `status.updateRevision` when the controller has observed the current generation.
    pub fn trusted_update_revision(&self) -> Option<&str> {
        match self.observed_generation {
            Some(seen) if seen == self.generation => self.update_revision.as_deref(),
            _ => None,
        }
    }
}

/// One pod, reduced to what decisions depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    pub name: String,
    pub ordinal: u32,
    pub uid: String,
    /// `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Ready condition True, including the `InPlaceUpdateReady` gate when present.
    pub ready: bool,
    /// `deletionTimestamp` is set.
    pub terminating: bool,
    /// `lifecycle.apps.kruise.io/state`, `None` when absent.
    pub lifecycle_state: Option<String>,
    /// The role label's value (`roles.label`), `None` when absent.
    pub role_label: Option<String>,
    /// `baton.dev/selected == "true"`.
    pub selected: bool,
    /// Sum of container restart counts.
    pub restarts: u32,
    /// Human readable reason when not ready (`CrashLoopBackOff`, `ContainersNotReady`, …).
    pub not_ready_reason: Option<String>,
}

impl PodView {
    /// Kruise's notion of a settled pod: ready, not terminating, lifecycle `Normal` or none.
    pub fn is_settled(&self) -> bool {
        self.ready
            && !self.terminating
            && matches!(self.lifecycle_state.as_deref(), None | Some("") | Some("Normal"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Working,
    Idle,
}

/// The arbiter's answer to `GET /v1/members`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ArbiterView {
    pub epoch: u64,
    /// Pod name -> role. A pod missing here is *protected*.
    pub members: BTreeMap<String, Role>,
}
