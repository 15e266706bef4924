//! Typed views of the Advanced StatefulSet, read from the stored JSON.
//!
//! Only the fields the controller acts on are modelled; unknown fields are ignored so that
//! any object the CRD accepts can be read. Kruise fills defaults in a mutating webhook that
//! the simulator does not have, so the accessors below apply those defaults
//! (`SetDefaultsStatefulSet`) when a field is absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An `int-or-string` field (`maxUnavailable`, `reserveOrdinals` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

/// The metadata the controller needs from any object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub deletion_timestamp: Option<String>,
}

/// An Advanced StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Asts {
    pub metadata: Meta,
    pub spec: AstsSpec,
    pub status: Option<AstsStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AstsSpec {
    pub replicas: Option<i64>,
    /// `metav1.LabelSelector`, as stored (read by [`crate::selector::from_label_selector`]).
    pub selector: serde_json::Value,
    pub template: serde_json::Value,
    pub pod_management_policy: Option<String>,
    pub update_strategy: UpdateStrategy,
    pub reserve_ordinals: Vec<IntOrString>,
    pub ordinals: Option<Ordinals>,
    pub revision_history_limit: Option<i64>,
    pub lifecycle: Option<Lifecycle>,
    pub scale_strategy: Option<ScaleStrategy>,
}

/// `spec.scaleStrategy`: how many pods may be unavailable while Parallel creation goes on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScaleStrategy {
    pub max_unavailable: Option<IntOrString>,
}

/// `spec.lifecycle`: hooks that hold a pod in a `Preparing*` state while a label or finalizer
/// of the handler is on it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Lifecycle {
    pub pre_delete: Option<LifecycleHook>,
    pub in_place_update: Option<LifecycleHook>,
    pub pre_normal: Option<LifecycleHook>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LifecycleHook {
    pub labels_handler: BTreeMap<String, String>,
    pub finalizers_handler: Vec<String>,
    pub mark_pod_not_ready: bool,
}

impl LifecycleHook {
    /// `IsPodHooked`: any handler label (with its value) or finalizer is on the pod.
    pub fn is_hooked(&self, labels: &BTreeMap<String, String>, finalizers: &[String]) -> bool {
        self.labels_handler
            .iter()
            .any(|(k, v)| labels.get(k) == Some(v))
            || self
                .finalizers_handler
                .iter()
                .any(|f| finalizers.contains(f))
    }

    /// `IsPodAllHooked`: every handler label and finalizer is on the pod.
    pub fn all_hooked(&self, labels: &BTreeMap<String, String>, finalizers: &[String]) -> bool {
        self.labels_handler
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .finalizers_handler
                .iter()
                .all(|f| finalizers.contains(f))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ordinals {
    pub start: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateStrategy {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdate {
    pub partition: Option<i64>,
    pub max_unavailable: Option<IntOrString>,
    pub pod_update_policy: Option<String>,
    pub paused: bool,
    pub unordered_update: Option<UnorderedUpdate>,
    pub min_ready_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UnorderedUpdate {
    pub priority_strategy: Option<PriorityStrategy>,
}

/// `UpdatePriorityStrategy`: weight terms, or ordered keys (weights win when both are set).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PriorityStrategy {
    pub weight_priority: Vec<WeightTerm>,
    pub order_priority: Vec<OrderTerm>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WeightTerm {
    pub weight: i64,
    /// `metav1.LabelSelector`, as stored (read by [`crate::selector::from_label_selector`]).
    pub match_selector: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderTerm {
    pub ordered_key: String,
}

/// The status subresource, written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AstsStatus {
    pub observed_generation: i64,
    pub replicas: i64,
    pub ready_replicas: i64,
    pub available_replicas: i64,
    pub current_replicas: i64,
    pub updated_replicas: i64,
    /// Omitted when 0, as Kruise 1.5.5 writes it (`omitempty`).
    #[serde(skip_serializing_if = "is_zero")]
    pub updated_ready_replicas: i64,
    /// Omitted when 0, as Kruise 1.5.5 writes it (`omitempty`).
    #[serde(skip_serializing_if = "is_zero")]
    pub updated_available_replicas: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label_selector: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AstsStatus {
    /// Kruise's `inconsistentStatus`: only these fields decide whether status is written.
    /// `updatedReadyReplicas` and `updatedAvailableReplicas` are deliberately absent.
    pub fn differs_from(&self, old: &AstsStatus) -> bool {
        self.observed_generation > old.observed_generation
            || self.replicas != old.replicas
            || self.current_replicas != old.current_replicas
            || self.ready_replicas != old.ready_replicas
            || self.available_replicas != old.available_replicas
            || self.updated_replicas != old.updated_replicas
            || self.current_revision != old.current_revision
            || self.update_revision != old.update_revision
            || self.label_selector != old.label_selector
    }
}

/// `podUpdatePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodUpdatePolicy {
    ReCreate,
    InPlaceIfPossible,
    InPlaceOnly,
}

impl Asts {
    /// Parses a stored object.
    pub fn from_value(v: &serde_json::Value) -> Result<Asts, serde_json::Error> {
        Asts::deserialize(v)
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `spec.replicas`, default 1.
    pub fn replicas(&self) -> i64 {
        self.spec.replicas.unwrap_or(1).max(0)
    }

    /// `podManagementPolicy: Parallel`; the default is OrderedReady.
    pub fn is_parallel(&self) -> bool {
        self.spec.pod_management_policy.as_deref() == Some("Parallel")
    }

    /// `updateStrategy.type == RollingUpdate` (the default).
    pub fn is_rolling_update(&self) -> bool {
        matches!(
            self.spec.update_strategy.type_.as_deref(),
            None | Some("RollingUpdate")
        )
    }

    /// The set as Kruise's mutating webhook would have stored it (`SetDefaultsStatefulSet`):
    /// update type RollingUpdate with a `rollingUpdate` block, partition 0, maxUnavailable 1,
    /// podUpdatePolicy ReCreate, replicas 1. The simulator has no webhook, so the controller
    /// reconciles this view.
    pub fn defaulted(&self) -> Asts {
        let mut set = self.clone();
        if set.spec.replicas.is_none() {
            set.spec.replicas = Some(1);
        }
        if set.spec.pod_management_policy.is_none() {
            set.spec.pod_management_policy = Some("OrderedReady".into());
        }
        let strategy = &mut set.spec.update_strategy;
        if strategy.type_.is_none() {
            strategy.type_ = Some("RollingUpdate".into());
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdate::default);
            ru.partition.get_or_insert(0);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.pod_update_policy
                .get_or_insert_with(|| "ReCreate".into());
            ru.min_ready_seconds.get_or_insert(0);
        }
        set
    }

    /// The `rollingUpdate` block as stored (see [`Asts::defaulted`]), only for RollingUpdate.
    pub fn rolling_update(&self) -> Option<RollingUpdate> {
        if !self.is_rolling_update() {
            return None;
        }
        self.spec.update_strategy.rolling_update.clone()
    }

    pub fn partition(&self) -> i64 {
        self.rolling_update()
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0)
    }

    pub fn paused(&self) -> bool {
        self.rolling_update().is_some_and(|r| r.paused)
    }

    pub fn min_ready_seconds(&self) -> i64 {
        self.rolling_update()
            .and_then(|r| r.min_ready_seconds)
            .unwrap_or(0)
            .clamp(0, 300)
    }

    pub fn pod_update_policy(&self) -> PodUpdatePolicy {
        match self
            .rolling_update()
            .and_then(|r| r.pod_update_policy)
            .as_deref()
        {
            Some("InPlaceIfPossible") => PodUpdatePolicy::InPlaceIfPossible,
            Some("InPlaceOnly") => PodUpdatePolicy::InPlaceOnly,
            _ => PodUpdatePolicy::ReCreate,
        }
    }

    pub fn start_ordinal(&self) -> i64 {
        self.spec.ordinals.as_ref().map_or(0, |o| o.start.max(0))
    }

    pub fn generation(&self) -> i64 {
        self.metadata.generation.unwrap_or(0)
    }

    pub fn status_or_default(&self) -> AstsStatus {
        self.status.clone().unwrap_or_default()
    }

    /// The reserved ordinals, with `"a-b"` ranges expanded. Unparsable entries are ignored,
    /// as Kruise's `ParseRange` errors are.
    pub fn reserved_ordinals(&self) -> std::collections::BTreeSet<i64> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.spec.reserve_ordinals {
            match r {
                IntOrString::Int(i) => {
                    out.insert(*i);
                }
                IntOrString::Str(s) => {
                    if let Ok(i) = s.trim().parse::<i64>() {
                        out.insert(i);
                    } else if let Some((a, b)) = s.split_once('-')
                        && let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>())
                        && a <= b
                        && b - a < 100_000
                    {
                        out.extend(a..=b);
                    }
                }
            }
        }
        out
    }

    /// Kruise's `getStatefulSetReplicasRange`: walk ordinals up from `start`, skipping reserved
    /// ones, until `replicas` live ordinals are found. Returns `(start, end_exclusive)`.
    pub fn replicas_range(&self) -> (i64, i64) {
        let start = self.start_ordinal();
        let reserved = self.reserved_ordinals();
        let mut live = 0;
        let mut end = start;
        while live < self.replicas() {
            if !reserved.contains(&end) {
                live += 1;
            }
            end += 1;
        }
        (start, end)
    }
}
