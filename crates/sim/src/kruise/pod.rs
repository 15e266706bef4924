//! Pods as the controller sees them, and the pod objects it writes.
//!
//! [`PodView`] reduces a stored pod to the facts Kruise's decisions use (revision label,
//! phase, readiness, lifecycle state, in-place progress). [`new_pod`] builds the object
//! `newVersionedStatefulSetPod` would create, and [`in_place_update`] rewrites a pod the way
//! `inplaceupdate.Update` does.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::types::Asts;
use super::{
    API_VERSION, INPLACE_READY_CONDITION, INPLACE_STATE_ANNOTATION, KIND, KRUISE_READY_CONDITION,
    LIFECYCLE_STATE_LABEL, LIFECYCLE_TIMESTAMP_ANNOTATION, POD_NAME_LABEL, REVISION_LABEL,
};

/// The `apps.kruise.io/inplace-update-state` annotation (the part the simulator uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InPlaceUpdateState {
    pub revision: String,
    pub update_timestamp: String,
    /// Container name -> the `imageID` it reported before the update.
    pub last_container_statuses: BTreeMap<String, LastContainerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LastContainerStatus {
    #[serde(rename = "imageID")]
    pub image_id: String,
}

/// Status of one container as the kubelet reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub image: String,
    pub image_id: String,
}

/// What the controller needs to know about one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodView {
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub finalizers: Vec<String>,
    pub phase: String,
    pub ready: bool,
    /// `lastTransitionTime` of `Ready=True`.
    pub ready_since: Option<Timestamp>,
    pub terminating: bool,
    /// Condition `InPlaceUpdateReady`, when the pod has it.
    pub inplace_ready: Option<bool>,
    /// `spec.readinessGates` lists `InPlaceUpdateReady`.
    pub inplace_gate: bool,
    /// Condition `KruisePodReady`, when the pod has it.
    pub kruise_ready: Option<bool>,
    /// `spec.readinessGates` lists `KruisePodReady`.
    pub kruise_gate: bool,
    pub inplace_state: Option<InPlaceUpdateState>,
    pub spec_images: BTreeMap<String, String>,
    pub container_states: BTreeMap<String, ContainerState>,
}

impl PodView {
    /// Reads a stored pod; missing fields read as their zero values.
    pub fn from_value(v: &Value) -> PodView {
        let meta = &v["metadata"];
        let str_map = |m: &Value| -> BTreeMap<String, String> {
            m.as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let annotations = str_map(&meta["annotations"]);
        let conditions = v["status"]["conditions"].as_array();
        let condition =
            |ty: &str| conditions.and_then(|cs| cs.iter().find(|c| c["type"] == ty).cloned());
        let ready_cond = condition("Ready");
        let ready = ready_cond.as_ref().is_some_and(|c| c["status"] == "True");
        let ready_since = ready_cond
            .as_ref()
            .filter(|_| ready)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .and_then(|s| s.parse::<Timestamp>().ok());
        let inplace_ready = condition(INPLACE_READY_CONDITION).map(|c| c["status"] == "True");
        let spec_images = containers(v)
            .map(|(name, image)| (name.to_string(), image.to_string()))
            .collect();
        let container_states = v["status"]["containerStatuses"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        Some((
                            c["name"].as_str()?.to_string(),
                            ContainerState {
                                image: c["image"].as_str().unwrap_or_default().to_string(),
                                image_id: c["imageID"].as_str().unwrap_or_default().to_string(),
                            },
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        PodView {
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            labels: str_map(&meta["labels"]),
            finalizers: meta["finalizers"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            // The API server sets `Pending` on create; a stored pod always has a phase.
            phase: v["status"]["phase"]
                .as_str()
                .unwrap_or("Pending")
                .to_string(),
            ready,
            ready_since,
            terminating: !meta["deletionTimestamp"].is_null(),
            inplace_ready,
            inplace_gate: has_readiness_gate(v, INPLACE_READY_CONDITION),
            kruise_ready: condition(KRUISE_READY_CONDITION).map(|c| c["status"] == "True"),
            kruise_gate: has_readiness_gate(v, KRUISE_READY_CONDITION),
            inplace_state: annotations
                .get(INPLACE_STATE_ANNOTATION)
                .and_then(|s| serde_json::from_str(s).ok()),
            spec_images,
            container_states,
        }
    }

    /// The pod's `controller-revision-hash` label, or "".
    pub fn revision(&self) -> &str {
        self.labels
            .get(REVISION_LABEL)
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn lifecycle_state(&self) -> &str {
        self.labels
            .get(LIFECYCLE_STATE_LABEL)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The ordinal in `<set>-<ordinal>`, if the name has that shape.
    pub fn ordinal(&self, set_name: &str) -> Option<i64> {
        ordinal_of(set_name, &self.name)
    }

    /// `isCreated`: the kubelet has given it a phase.
    pub fn is_created(&self) -> bool {
        !self.phase.is_empty()
    }

    pub fn is_failed(&self) -> bool {
        self.phase == "Failed" || self.phase == "Succeeded"
    }

    fn lifecycle_normal(&self) -> bool {
        matches!(self.lifecycle_state(), "" | "Normal")
    }

    /// `isHealthy`: Running, Ready, not terminating, lifecycle Normal (or none).
    pub fn is_healthy(&self) -> bool {
        self.phase == "Running" && self.ready && !self.terminating && self.lifecycle_normal()
    }

    /// `isRunningAndAvailable`: Running, Ready, and Ready for `min_ready_seconds`. On `Err`, the
    /// pod becomes available after that long.
    ///
    /// The lifecycle state plays no part: on Kruise 1.5.5 a Ready pod parked in
    /// `PreparingUpdate`/`PreparingDelete` or left in `Updated` counts in
    /// `status.availableReplicas` (measured), while [`PodView::is_healthy`], which the update
    /// budget uses, does require `Normal`.
    pub fn available(
        &self,
        min_ready_seconds: i64,
        now: Timestamp,
    ) -> Result<(), Option<jiff::SignedDuration>> {
        if !(self.phase == "Running" && self.ready) {
            return Err(None);
        }
        if min_ready_seconds <= 0 {
            return Ok(());
        }
        let Some(since) = self.ready_since else {
            return Err(None);
        };
        let wait = jiff::SignedDuration::from_secs(min_ready_seconds);
        let elapsed = now.duration_since(since);
        if elapsed >= wait {
            Ok(())
        } else {
            Err(Some(wait - elapsed))
        }
    }

    /// `DefaultCheckInPlaceUpdateCompleted`: every container recorded before the update reports
    /// a different `imageID` now, or already runs the image its spec asks for.
    pub fn in_place_completed(&self) -> bool {
        let Some(state) = &self.inplace_state else {
            return true;
        };
        state.last_container_statuses.iter().all(|(name, last)| {
            self.container_states.get(name).is_some_and(|cs| {
                cs.image_id != last.image_id
                    || self
                        .spec_images
                        .get(name)
                        .is_none_or(|image| image == &cs.image)
            })
        })
    }
}

/// The ordinal in `<set>-<ordinal>`.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i64> {
    let rest = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Whether a stored pod is owned (as controller) by the set with this UID.
pub fn is_owned_by(pod: &Value, set_uid: &str) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == set_uid && r["controller"] == true)
        })
}

/// The owner reference every object the controller creates carries.
pub fn owner_reference(set: &Asts) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": set.name(),
        "uid": set.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The pod `newVersionedStatefulSetPod` creates for `ordinal` from a revision's template:
/// template metadata and spec, identity (name, `generateName`, hostname, subdomain, the
/// pod-name label), the revision label, lifecycle state `Normal`, the owner reference, and the
/// `KruisePodReady` readiness gate Kruise's pod webhook appends.
///
/// Kruise 1.5.5 writes no `apps.kubernetes.io/pod-index` label (measured on the real 1.5.5
/// controller); newer releases do, following upstream StatefulSets.
pub fn new_pod(
    set: &Asts,
    ordinal: i64,
    revision: &str,
    template: &Value,
    service_name: Option<&str>,
    now: Timestamp,
) -> Value {
    let name = format!("{}-{ordinal}", set.name());
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), name.clone().into());
    labels.insert(LIFECYCLE_STATE_LABEL.into(), "Normal".into());
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert(
        LIFECYCLE_TIMESTAMP_ANNOTATION.into(),
        now.to_string().into(),
    );
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    if !spec["readinessGates"].is_array() {
        spec["readinessGates"] = json!([]);
    }
    if let Some(gates) = spec["readinessGates"].as_array_mut()
        && !gates
            .iter()
            .any(|g| g["conditionType"] == KRUISE_READY_CONDITION)
    {
        gates.push(json!({"conditionType": KRUISE_READY_CONDITION}));
    }
    spec["hostname"] = name.clone().into();
    if let Some(svc) = service_name.filter(|s| !s.is_empty()) {
        spec["subdomain"] = svc.into();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{}-", set.name()),
            "namespace": set.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(set)],
        },
        "spec": spec,
    })
}

/// The containers of a pod or a pod template (`spec.containers`) as `(name, image)`, in spec
/// order: a container without a name is skipped, one without an image reads as "".
pub fn containers(v: &Value) -> impl Iterator<Item = (&str, &str)> {
    v["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["image"].as_str().unwrap_or_default())))
}

/// Whether the template change from `old` to `new` can be applied in place
/// (`CanUpdateInPlace` without feature gates): only container images and template metadata
/// (labels, annotations) differ.
pub fn can_update_in_place(old: &Value, new: &Value) -> bool {
    fn strip(t: &Value) -> Value {
        let mut t = t.clone();
        if let Some(obj) = t.as_object_mut() {
            obj.remove("metadata");
        }
        if let Some(cs) = t["spec"]["containers"].as_array_mut() {
            for c in cs {
                if let Some(c) = c.as_object_mut() {
                    c.remove("image");
                }
            }
        }
        t
    }
    let (o, n) = (&old["spec"]["containers"], &new["spec"]["containers"]);
    let same_shape = match (o.as_array(), n.as_array()) {
        (Some(a), Some(b)) => a.len() == b.len(),
        _ => false,
    };
    same_shape && strip(old) == strip(new)
}

/// Rewrites `pod` for an in-place update from the `old` template to the `new` one at
/// revision `to` (`inplaceupdate.Update`): new images, template label/annotation changes,
/// the revision label, the in-place state annotation with the images' previous `imageID`s,
/// lifecycle `Updating` when the pod has a state, and `InPlaceUpdateReady=False` (with
/// `Ready=False`) when the pod carries the readiness gate.
pub fn in_place_update(pod: &mut Value, old: &Value, new: &Value, to: &str, now: Timestamp) {
    let view = PodView::from_value(pod);
    // A template container without an image leaves the pod's as it is.
    let new_images: BTreeMap<String, String> = containers(new)
        .filter(|(_, image)| !image.is_empty())
        .map(|(name, image)| (name.to_string(), image.to_string()))
        .collect();
    let mut last = BTreeMap::new();
    if let Some(cs) = pod["spec"]["containers"].as_array_mut() {
        for c in cs {
            let Some(name) = c["name"].as_str().map(str::to_string) else {
                continue;
            };
            if let Some(image) = new_images.get(&name)
                && c["image"].as_str() != Some(image.as_str())
            {
                c["image"] = image.clone().into();
                let image_id = view
                    .container_states
                    .get(&name)
                    .map(|s| s.image_id.clone())
                    .unwrap_or_default();
                last.insert(name, LastContainerStatus { image_id });
            }
        }
    }
    for field in ["labels", "annotations"] {
        let old_m = old["metadata"][field]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let new_m = new["metadata"][field]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if !pod["metadata"][field].is_object() {
            pod["metadata"][field] = json!({});
        }
        if let Some(target) = pod["metadata"][field].as_object_mut() {
            for k in old_m.keys().filter(|k| !new_m.contains_key(*k)) {
                target.remove(k);
            }
            for (k, v) in new_m {
                target.insert(k, v);
            }
        }
    }
    let state = InPlaceUpdateState {
        revision: to.to_string(),
        update_timestamp: now.to_string(),
        last_container_statuses: last,
    };
    pod["metadata"]["labels"][REVISION_LABEL] = to.into();
    if !view.lifecycle_state().is_empty() {
        pod["metadata"]["labels"][LIFECYCLE_STATE_LABEL] = "Updating".into();
        pod["metadata"]["annotations"][LIFECYCLE_TIMESTAMP_ANNOTATION] = now.to_string().into();
    }
    pod["metadata"]["annotations"][INPLACE_STATE_ANNOTATION] =
        serde_json::to_string(&state).unwrap_or_default().into();
    if has_readiness_gate(pod, INPLACE_READY_CONDITION) {
        set_condition(
            pod,
            INPLACE_READY_CONDITION,
            false,
            "StartInPlaceUpdate",
            now,
        );
        set_condition(pod, "Ready", false, "ReadinessGatesNotReady", now);
    }
}

/// Whether `spec.readinessGates` lists `condition`.
pub fn has_readiness_gate(pod: &Value, condition: &str) -> bool {
    pod["spec"]["readinessGates"]
        .as_array()
        .is_some_and(|gs| gs.iter().any(|g| g["conditionType"] == condition))
}

/// Sets a pod condition, moving `lastTransitionTime` only when the status flips.
pub fn set_condition(pod: &mut Value, ty: &str, status: bool, reason: &str, now: Timestamp) {
    let status_str = if status { "True" } else { "False" };
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conds) = pod["status"]["conditions"].as_array_mut() else {
        return;
    };
    if let Some(c) = conds.iter_mut().find(|c| c["type"] == ty) {
        if c["status"] != status_str {
            c["status"] = status_str.into();
            c["lastTransitionTime"] = now.to_string().into();
            c["reason"] = reason.into();
        }
    } else {
        conds.push(json!({
            "type": ty,
            "status": status_str,
            "reason": reason,
            "lastTransitionTime": now.to_string(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_parsed_only_from_the_set_prefix() {
        assert_eq!(ordinal_of("web", "web-3"), Some(3));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn only_image_and_metadata_changes_are_in_place_able() {
        let t = |image: &str, env: &str, label: &str| {
            json!({"metadata": {"labels": {"l": label}},
                   "spec": {"containers": [{"name": "main", "image": image, "env": [{"name": "E", "value": env}]}]}})
        };
        assert!(can_update_in_place(
            &t("a:1", "x", "1"),
            &t("a:2", "x", "1")
        ));
        assert!(can_update_in_place(
            &t("a:1", "x", "1"),
            &t("a:1", "x", "2")
        ));
        assert!(!can_update_in_place(
            &t("a:1", "x", "1"),
            &t("a:2", "y", "1")
        ));
    }
}
