//! Plain data the decision core reasons about: the ASTS, its pods and the arbiter's view,
//! as read at one moment. Built by `baton-steps` from the live cluster; built by hand in tests.
//! Nothing here knows about Kubernetes client types.

use std::collections::{BTreeMap, HashMap};

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
            && matches!(
                self.lifecycle_state.as_deref(),
                None | Some("") | Some("Normal")
            )
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

impl ArbiterView {
    /// The arbiter's role for a pod; `None` when it does not list the pod (protected).
    pub fn role_of(&self, pod: &str) -> Option<Role> {
        self.members.get(pod).copied()
    }

    /// Names the arbiter reports with `role`, in name order.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(move |(_, r)| **r == role)
            .map(|(name, _)| name.as_str())
    }
}

/// The pods of one snapshot by name. Decisions that look many pods up by name (the judgement
/// of a wave, the arbiter's members against the set) build one of these: a search of the pod
/// list per name was quadratic, and at 1000 pods it was the engine's largest cost between a
/// wave's last pod becoming Ready and the handover.
#[derive(Debug)]
pub struct PodIndex<'a> {
    by_name: HashMap<&'a str, &'a PodView>,
}

impl<'a> PodIndex<'a> {
    /// The pod with this name, if it exists. With duplicate names (never on a real set) the
    /// first pod of the snapshot wins, as [`Snapshot::pod`] finds it.
    pub fn get(&self, name: &str) -> Option<&'a PodView> {
        self.by_name.get(name).copied()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

impl Snapshot {
    /// The pod with this name, if it exists. For many look-ups, [`Snapshot::index`].
    pub fn pod(&self, name: &str) -> Option<&PodView> {
        self.pods.iter().find(|p| p.name == name)
    }

    /// The pods by name, for many look-ups in one decision.
    pub fn index(&self) -> PodIndex<'_> {
        let mut by_name = HashMap::with_capacity(self.pods.len());
        for p in &self.pods {
            by_name.entry(p.name.as_str()).or_insert(p);
        }
        PodIndex { by_name }
    }

    /// Pods by ascending ordinal (name breaks ties), whatever order the snapshot holds them in.
    pub fn pods_by_ordinal(&self) -> Vec<&PodView> {
        let mut pods: Vec<&PodView> = self.pods.iter().collect();
        pods.sort_by(|a, b| (a.ordinal, &a.name).cmp(&(b.ordinal, &b.name)));
        pods
    }

    /// Whether the controller still counts the pod as one of `spec.replicas`.
    ///
    /// A pod at or above `spec.replicas` is being scaled away: the controller neither updates
    /// nor counts it, so neither do decisions. (Kruise's `reserveOrdinals` shifts slots above
    /// `replicas`; Baton does not support it.)
    pub fn in_range(&self, pod: &PodView) -> bool {
        pod.ordinal < self.sts.replicas
    }

    /// Pods the arbiter does not list, by ordinal: never selected (SPEC §1).
    pub fn protected(&self) -> Vec<&PodView> {
        self.pods_by_ordinal()
            .into_iter()
            .filter(|p| self.arbiter.role_of(&p.name).is_none())
            .collect()
    }

    /// Names the arbiter lists that are not pods of the set, in name order.
    pub fn unknown_members(&self) -> Vec<&str> {
        let pods = self.index();
        self.arbiter
            .members
            .keys()
            .filter(|name| !pods.contains(name))
            .map(String::as_str)
            .collect()
    }

    /// Whether the pod carries the trusted update revision. `false` while the revision
    /// is not trusted: nothing counts as updated until the controller has caught up.
    pub fn is_updated(&self, pod: &PodView) -> bool {
        match (self.sts.trusted_update_revision(), pod.revision.as_deref()) {
            (Some(update), Some(rev)) => update == rev,
            _ => false,
        }
    }
}
