//! [`SlimPod`]: a pod as Baton reads it, decoded straight from the API's JSON with only the
//! fields decisions and displays use. A full `k8s_openapi` `Pod` builds every container,
//! volume, managed field and status entry; at 1000 pods that decoding was most of the
//! engine's CPU. Readiness, restarts and the not-ready reason are worked out once, when the
//! object is decoded (once per list item or watch event), never per read.

use std::borrow::Cow;
use std::collections::BTreeMap;

use baton_engine::plan::Roles;
use baton_engine::snapshot::PodView;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::k8s::{INPLACE_READY, LIFECYCLE_LABEL, REVISION_LABEL, SELECTED_LABEL, ordinal_of};

/// A core/v1 Pod reduced to what Baton reads. `metadata` holds only the name, namespace,
/// uid, resourceVersion and labels (all labels: an operator's update priority terms may
/// select on any of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlimPod {
    pub metadata: ObjectMeta,
    /// The uids of the pod's controllers (a StatefulSet pod has one).
    pub controllers: Vec<String>,
    /// `deletionTimestamp` is set.
    pub terminating: bool,
    /// Ready condition True and, when the pod has the `InPlaceUpdateReady` gate, that too.
    pub ready: bool,
    /// Sum of the containers' restart counts.
    pub restarts: u32,
    /// The most specific reason the pod is not ready; `None` when it is.
    pub not_ready_reason: Option<String>,
    /// Container name and image, in spec order.
    pub images: Vec<(String, Option<String>)>,
}

impl SlimPod {
    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.metadata.labels.as_ref()
    }

    pub fn label(&self, key: &str) -> Option<&String> {
        self.labels().and_then(|l| l.get(key))
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.controllers.iter().any(|c| c == uid)
    }

    /// The image of the first container the plan names, else of the first container.
    pub fn image_for(&self, images: &BTreeMap<String, String>) -> Option<String> {
        let named = self.images.iter().find(|(n, _)| images.contains_key(n));
        named
            .or(self.images.first())
            .and_then(|(_, image)| image.clone())
    }

    /// The decision core's view of the pod; `None` when its name is not `<sts>-<ordinal>`.
    pub fn view(&self, sts: &str, roles: &Roles) -> Option<PodView> {
        let name = self.metadata.name.clone()?;
        let ordinal = ordinal_of(&name, sts)?;
        Some(PodView {
            ordinal,
            uid: self.metadata.uid.clone().unwrap_or_default(),
            revision: self.label(REVISION_LABEL).cloned(),
            ready: self.ready,
            terminating: self.terminating,
            lifecycle_state: self.label(LIFECYCLE_LABEL).cloned(),
            role_label: self.label(&roles.label).cloned(),
            selected: self.label(SELECTED_LABEL).is_some_and(|v| v == "true"),
            restarts: self.restarts,
            not_ready_reason: self.not_ready_reason.clone(),
            name,
        })
    }
}

impl kube::Resource for SlimPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for SlimPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawPod::deserialize(d).map(SlimPod::from)
    }
}

/// The wire shape, only the fields read; serde skips the rest without building it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPod {
    metadata: RawMeta,
    spec: RawSpec,
    status: RawStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    deletion_timestamp: Option<IgnoredAny>,
    owner_references: Vec<RawOwner>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwner {
    uid: String,
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSpec {
    containers: Vec<RawContainer>,
    readiness_gates: Vec<RawGate>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContainer {
    name: String,
    image: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawGate {
    condition_type: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawStatus {
    phase: Option<String>,
    conditions: Vec<RawCondition>,
    container_statuses: Vec<RawContainerStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawContainerStatus {
    restart_count: i64,
    state: Option<RawState>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawState {
    waiting: Option<RawWaiting>,
    terminated: Option<RawTerminated>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawWaiting {
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawTerminated {
    reason: Option<String>,
    exit_code: i64,
}

impl From<RawPod> for SlimPod {
    fn from(raw: RawPod) -> Self {
        let ready = raw.ready();
        let not_ready_reason = if ready { None } else { raw.not_ready_reason() };
        let restarts = raw
            .status
            .container_statuses
            .iter()
            .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
            .fold(0u32, u32::saturating_add);
        let RawPod {
            metadata: m, spec, ..
        } = raw;
        SlimPod {
            controllers: m
                .owner_references
                .into_iter()
                .filter(|o| o.controller == Some(true))
                .map(|o| o.uid)
                .collect(),
            terminating: m.deletion_timestamp.is_some(),
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                labels: m.labels,
                ..ObjectMeta::default()
            },
            ready,
            restarts,
            not_ready_reason,
            images: spec
                .containers
                .into_iter()
                .map(|c| (c.name, c.image))
                .collect(),
        }
    }
}

impl RawPod {
    fn condition_true(&self, kind: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    }

    fn ready(&self) -> bool {
        let gated = self
            .spec
            .readiness_gates
            .iter()
            .any(|g| g.condition_type == INPLACE_READY);
        self.condition_true("Ready") && (!gated || self.condition_true(INPLACE_READY))
    }

    /// The most specific reason a pod is not ready, for operators.
    fn not_ready_reason(&self) -> Option<String> {
        if self.metadata.deletion_timestamp.is_some() {
            return Some("Terminating".to_owned());
        }
        let containers = &self.status.container_statuses;
        let states = || containers.iter().filter_map(|c| c.state.as_ref());
        if let Some(reason) = states().find_map(|s| s.waiting.as_ref()?.reason.clone()) {
            return Some(reason);
        }
        if let Some(t) = states().find_map(|s| s.terminated.as_ref()) {
            return Some(
                t.reason
                    .clone()
                    .unwrap_or_else(|| format!("exited with {}", t.exit_code)),
            );
        }
        let conditions = &self.status.conditions;
        // A readiness gate not True holds the pod unready whatever its containers say: name it
        // (Kruise's InPlaceUpdateReady, or the application's own gate).
        for gate in &self.spec.readiness_gates {
            let kind = &gate.condition_type;
            match conditions.iter().find(|c| &c.type_ == kind) {
                Some(c) if c.status == "True" => {}
                Some(c) => {
                    let why = c
                        .reason
                        .as_deref()
                        .or(c.message.as_deref())
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default();
                    return Some(format!("readiness gate {kind} is {}{why}", c.status));
                }
                None => return Some(format!("readiness gate {kind} has no condition yet")),
            }
        }
        if let Some(reason) = conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status != "True")
            .and_then(|c| c.reason.clone())
        {
            return Some(reason);
        }
        self.status
            .phase
            .clone()
            .filter(|p| p != "Running")
            .or_else(|| Some("NotReady".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(j: serde_json::Value) -> SlimPod {
        serde_json::from_value(j).expect("a pod")
    }

    #[test]
    fn readiness_needs_the_inplace_gate_when_the_pod_has_it() {
        let gated = |inplace: &str| {
            pod(json!({
                "metadata": {"name": "sample-1"},
                "spec": {"containers": [], "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "InPlaceUpdateReady", "status": inplace, "reason": "StartingContainers"}]}
            }))
        };
        assert!(gated("True").ready);
        let held = gated("False");
        assert!(!held.ready);
        assert_eq!(
            held.not_ready_reason.as_deref(),
            Some("readiness gate InPlaceUpdateReady is False (StartingContainers)")
        );
        let ungated = pod(json!({
            "metadata": {"name": "sample-1"},
            "spec": {"containers": []},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert!(ungated.ready);
        assert_eq!(ungated.not_ready_reason, None);
    }

    #[test]
    fn pod_views_carry_role_lifecycle_selection_and_summed_restarts() {
        let p = pod(json!({
            "metadata": {"name": "sample-2", "uid": "u2", "resourceVersion": "7",
                "deletionTimestamp": null,
                "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
                    "name": "sample", "uid": "set-uid", "controller": true}],
                "managedFields": [{"manager": "x", "fieldsV1": {"f:metadata": {}}}],
                "labels": {
                "working": "true", "baton.dev/selected": "true",
                "controller-revision-hash": "sample-abc", "lifecycle.apps.kruise.io/state": "Updating"}},
            "spec": {"containers": [{"name": "main", "image": "alpine:1", "env": [{"name": "A", "value": "b"}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [
                    {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "side", "image": "y", "imageID": "", "ready": true, "restartCount": 1}]}
        }));
        assert!(p.is_controlled_by("set-uid"));
        assert!(!p.terminating);
        assert_eq!(p.resource_version(), Some("7"));
        assert_eq!(p.image_for(&BTreeMap::new()).as_deref(), Some("alpine:1"));
        let v = p.view("sample", &Roles::default()).expect("a view");
        assert_eq!(v.ordinal, 2);
        assert_eq!(v.uid, "u2");
        assert_eq!(v.revision.as_deref(), Some("sample-abc"));
        assert_eq!(v.role_label.as_deref(), Some("true"));
        assert!(v.selected);
        assert_eq!(v.lifecycle_state.as_deref(), Some("Updating"));
        assert_eq!(v.restarts, 3);
        assert!(!v.ready);
        assert_eq!(v.not_ready_reason.as_deref(), Some("CrashLoopBackOff"));
    }

    #[test]
    fn a_deletion_timestamp_means_terminating() {
        let p = pod(json!({
            "metadata": {"name": "sample-0", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }));
        assert!(p.terminating);
        assert_eq!(p.not_ready_reason.as_deref(), Some("Terminating"));
    }
}
