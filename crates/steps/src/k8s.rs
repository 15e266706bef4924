//! Where the steps meet the Kubernetes client: the Advanced StatefulSet as a typed
//! resource, the pure conversion of live objects into an engine [`Snapshot`], and the
//! write helpers every step goes through (JSON patches guarded by `test` ops). The lease,
//! the events and the watches name kube types too, each in its own module.
//!
//! The ASTS type is hand-written with only the fields Baton reads; unknown fields are
//! ignored on read and never written back (every write is a patch of named paths).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use baton_engine::plan::{Roles, ValidPlan};
use baton_engine::snapshot::{
    ArbiterView, PodManagementPolicy, PodView, Snapshot, StsView, UpdateStrategyType,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::arbiter::{ArbiterClient, ArbiterError};

/// The label that marks the pods of the current wave.
pub const SELECTED_LABEL: &str = "baton.dev/selected";
/// Kruise's pod lifecycle state label.
pub const LIFECYCLE_LABEL: &str = "lifecycle.apps.kruise.io/state";
/// The pod label carrying the full ControllerRevision name.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Kruise's readiness gate for in-place updates.
pub const INPLACE_READY: &str = "InPlaceUpdateReady";
/// Field manager for every write Baton makes.
pub const FIELD_MANAGER: &str = "baton";

/// `apps.kruise.io/v1beta1` StatefulSet, reduced to the fields Baton reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Asts {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: AstsSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AstsStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AstsSpec {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Kept as raw JSON: `apply-update` edits it and compares it as a value.
    #[serde(default)]
    pub template: serde_json::Value,
    #[serde(default)]
    pub pod_management_policy: Option<String>,
    #[serde(default)]
    pub update_strategy: Option<AstsUpdateStrategy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AstsUpdateStrategy {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub rolling_update: Option<AstsRollingUpdate>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AstsRollingUpdate {
    #[serde(default)]
    pub partition: Option<i32>,
    #[serde(default)]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default)]
    pub paused: Option<bool>,
    /// Kept raw so other priority terms survive untouched.
    #[serde(default)]
    pub unordered_update: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AstsStatus {
    #[serde(default)]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub update_revision: Option<String>,
    #[serde(default)]
    pub current_revision: Option<String>,
}

impl kube::Resource for Asts {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "StatefulSet".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "apps.kruise.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "statefulsets".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Asts {
    pub fn rolling_update(&self) -> Option<&AstsRollingUpdate> {
        self.spec.update_strategy.as_ref()?.rolling_update.as_ref()
    }

    pub fn partition(&self) -> Option<i32> {
        self.rolling_update()?.partition
    }

    pub fn replicas(&self) -> u32 {
        u32::try_from(self.spec.replicas.unwrap_or(1)).unwrap_or(0)
    }
}

/// Failures reading or writing the cluster.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("advanced statefulset {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("advanced statefulset {0} has no usable spec.selector")]
    NoSelector(String),
    #[error("kubernetes api request failed: {what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the object changed while it was being written ({what}); re-read and retry")]
    Conflict { what: String },
    #[error("reading the arbiter failed")]
    Arbiter(#[from] ArbiterError),
    /// The engine could not build the patch it meant to send: a bug, not a race, so it is
    /// never retried as if the object had changed.
    #[error("cannot build the patch for {what}")]
    Patch {
        what: String,
        #[source]
        source: crate::patch::PatchError,
    },
}

impl KubeError {
    pub fn api(what: impl Into<String>, source: kube::Error) -> Self {
        let what = what.into();
        if let kube::Error::Api(status) = &source
            && is_conflict(status.code, &status.message)
        {
            return KubeError::Conflict { what };
        }
        KubeError::Api { what, source }
    }

    /// Whether a write that failed with this surely did not land: the API server
    /// answered with a refusal, a 4xx or a 5xx `Status` (an internal error, unavailable,
    /// throttled). A timeout answer (504, or a `Timeout`/`ServerTimeout` reason: "the request
    /// may still complete") and a broken connection leave it open.
    pub fn surely_not_applied(&self) -> bool {
        match self {
            KubeError::Conflict { .. } => true,
            KubeError::Api {
                source: kube::Error::Api(status),
                ..
            } => {
                status.code != 504 && !matches!(status.reason.as_str(), "Timeout" | "ServerTimeout")
            }
            KubeError::Arbiter(e) => e.surely_not_applied(),
            // Nothing was sent.
            KubeError::Patch { .. } => true,
            KubeError::Api { .. } | KubeError::NotFound { .. } | KubeError::NoSelector(_) => false,
        }
    }

    /// Whether the executor should retry the step that hit this.
    pub fn is_retryable(&self) -> bool {
        match self {
            KubeError::Conflict { .. } => true,
            KubeError::Api { source, .. } => kube_error_retryable(source),
            KubeError::Arbiter(e) => e.is_retryable(),
            KubeError::NotFound { .. } | KubeError::NoSelector(_) | KubeError::Patch { .. } => {
                false
            }
        }
    }
}

/// Whether an API answer means "the object changed under us": a resourceVersion conflict,
/// or a failed JSON-patch `test` op (422; the API server says "test failed", the
/// simulator "value did not match").
pub fn is_conflict(code: u16, message: &str) -> bool {
    code == 409 || (code == 422 && (message.contains("test") || message.contains("did not match")))
}

/// 5xx, 429, 409 and transport failures are transient; other API answers are not.
pub fn kube_error_retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 409,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Typed handles on the target's ASTS and pods.
#[derive(Clone)]
pub struct Target {
    pub client: kube::Client,
    pub namespace: String,
    pub name: String,
    pub sts: Api<Asts>,
    pub pods: Api<Pod>,
    /// The ASTS's pod selector once read. A StatefulSet's selector is immutable, so
    /// later reads can list pods at the same time as they get the set.
    selector: OnceLock<String>,
}

impl Target {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Target {
            sts: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
            selector: OnceLock::new(),
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn from_plan(client: kube::Client, plan: &ValidPlan) -> Self {
        let t = &plan.spec().target;
        Self::new(client, &t.namespace, &t.name)
    }

    /// `statefulset default/sample`, as audit records name it.
    pub fn sts_object(&self) -> String {
        format!("statefulset {}/{}", self.namespace, self.name)
    }

    pub fn pod_object(&self, pod: &str) -> String {
        format!("pod {}/{pod}", self.namespace)
    }

    pub async fn get_sts(&self) -> Result<Asts, KubeError> {
        match self.sts.get_opt(&self.name).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(KubeError::NotFound {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            }),
            Err(e) => Err(KubeError::api(format!("get {}", self.sts_object()), e)),
        }
    }

    /// The pods selected by the ASTS selector and controlled by it.
    pub async fn owned_pods(&self, sts: &Asts) -> Result<Vec<Pod>, KubeError> {
        let selector = self.selector_of(sts)?;
        let pods = self.list_selected(&selector).await?;
        Ok(owned_by(pods, sts))
    }

    /// The ASTS's pod selector, read once per process (it is immutable).
    pub async fn pod_selector(&self) -> Result<String, KubeError> {
        if let Some(known) = self.selector.get() {
            return Ok(known.clone());
        }
        let sts = self.get_sts().await?;
        self.selector_of(&sts)
    }

    fn selector_of(&self, sts: &Asts) -> Result<String, KubeError> {
        let selector = sts
            .spec
            .selector
            .as_ref()
            .and_then(render_selector)
            .ok_or_else(|| KubeError::NoSelector(self.name.clone()))?;
        let _ = self.selector.set(selector.clone());
        Ok(selector)
    }

    async fn list_selected(&self, selector: &str) -> Result<Vec<Pod>, KubeError> {
        let list = self
            .pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| KubeError::api(format!("list pods of {}", self.sts_object()), e))?;
        Ok(list.items)
    }

    /// The ASTS and its pods. Once the selector is known both requests go out at once
    /// (they are never one atomic read either way).
    pub async fn sts_and_pods(&self) -> Result<(Asts, Vec<Pod>), KubeError> {
        let Some(known) = self.selector.get() else {
            let sts = self.get_sts().await?;
            let pods = self.owned_pods(&sts).await?;
            return Ok((sts, pods));
        };
        let (sts, pods) = tokio::join!(self.get_sts(), self.list_selected(known));
        let sts = sts?;
        if self.selector_of(&sts)? != *known {
            // Cannot happen on a real API server (the selector is immutable): read again.
            let pods = self.owned_pods(&sts).await?;
            return Ok((sts, pods));
        }
        let pods = owned_by(pods?, &sts);
        Ok((sts, pods))
    }

    /// Apply a JSON patch to the ASTS. A failed `test` op comes back as [`KubeError::Conflict`].
    pub async fn patch_sts(&self, what: &str, patch: json_patch::Patch) -> Result<Asts, KubeError> {
        self.sts
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|e| KubeError::api(format!("{what} on {}", self.sts_object()), e))
    }

    pub async fn patch_pod(
        &self,
        pod: &str,
        what: &str,
        patch: json_patch::Patch,
    ) -> Result<Pod, KubeError> {
        self.pods
            .patch(pod, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map_err(|e| KubeError::api(format!("{what} on {}", self.pod_object(pod)), e))
    }
}

/// Reads the ASTS, its pods and the arbiter into one [`Snapshot`]. Writes nothing.
pub async fn read_snapshot(
    client: &kube::Client,
    plan: &ValidPlan,
    arbiter: &ArbiterClient,
) -> Result<Snapshot, KubeError> {
    let target = Target::from_plan(client.clone(), plan);
    read_target(&target, &plan.spec().roles, arbiter).await
}

/// [`read_snapshot`] with ready-made handles, plus the raw objects for steps that patch them.
pub async fn read_target(
    target: &Target,
    roles: &Roles,
    arbiter: &ArbiterClient,
) -> Result<Snapshot, KubeError> {
    Ok(read_live(target, roles, arbiter).await?.snapshot)
}

/// A snapshot together with the objects it was built from.
pub struct Live {
    pub sts: Asts,
    pub pods: Vec<Pod>,
    pub snapshot: Snapshot,
}

pub async fn read_live(
    target: &Target,
    roles: &Roles,
    arbiter: &ArbiterClient,
) -> Result<Live, KubeError> {
    let (objects, view) = tokio::join!(target.sts_and_pods(), arbiter.members());
    let (sts, pods) = objects?;
    let snapshot = snapshot_of(&sts, &pods, view?, roles);
    Ok(Live {
        sts,
        pods,
        snapshot,
    })
}

/// The pure conversion from live objects to the decision core's view.
pub fn snapshot_of(sts: &Asts, pods: &[Pod], arbiter: ArbiterView, roles: &Roles) -> Snapshot {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let mut views: Vec<PodView> = pods
        .iter()
        .filter_map(|p| pod_view(p, &name, roles))
        .collect();
    views.sort_by_key(|p| p.ordinal);
    Snapshot {
        sts: sts_view(sts),
        pods: views,
        arbiter,
    }
}

pub fn sts_view(sts: &Asts) -> StsView {
    let ru = sts.rolling_update();
    let replicas = sts.replicas();
    let status = sts.status.clone().unwrap_or_default();
    StsView {
        namespace: sts.metadata.namespace.clone().unwrap_or_default(),
        name: sts.metadata.name.clone().unwrap_or_default(),
        replicas,
        partition: ru
            .and_then(|r| r.partition)
            .map(|p| u32::try_from(p).unwrap_or(0)),
        generation: sts.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation,
        update_revision: status.update_revision,
        current_revision: status.current_revision,
        pod_management_policy: match sts.spec.pod_management_policy.as_deref() {
            Some("Parallel") => PodManagementPolicy::Parallel,
            _ => PodManagementPolicy::OrderedReady,
        },
        update_type: match sts
            .spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
        {
            None | Some("RollingUpdate") => UpdateStrategyType::RollingUpdate,
            Some("OnDelete") => UpdateStrategyType::OnDelete,
            Some(other) => UpdateStrategyType::Other(other.to_owned()),
        },
        paused: ru.and_then(|r| r.paused).unwrap_or(false),
        unordered: ru.is_some_and(|r| r.unordered_update.is_some()),
        max_unavailable: resolve_max_unavailable(
            ru.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        ),
    }
}

/// `maxUnavailable` as a pod count: default 1, percentages of replicas floored, at least 1.
pub fn resolve_max_unavailable(value: Option<&IntOrString>, replicas: u32) -> u32 {
    let n = match value {
        None => 1,
        Some(IntOrString::Int(i)) => u32::try_from(*i).unwrap_or(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').map(str::parse::<u64>) {
            Some(Ok(pct)) => u32::try_from(u64::from(replicas) * pct / 100).unwrap_or(u32::MAX),
            _ => s.parse().unwrap_or(1),
        },
    };
    n.max(1)
}

/// The pod's ordinal from its name `<sts>-<n>`.
pub fn ordinal_of(pod: &str, sts: &str) -> Option<u32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

/// The pods of `pods` the ASTS controls (a selector may match strangers).
fn owned_by(pods: Vec<Pod>, sts: &Asts) -> Vec<Pod> {
    let uid = sts.metadata.uid.as_deref().unwrap_or_default();
    pods.into_iter().filter(|p| is_owned_by(p, uid)).collect()
}

pub fn is_owned_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

pub fn pod_view(pod: &Pod, sts: &str, roles: &Roles) -> Option<PodView> {
    let name = pod.metadata.name.clone()?;
    let ordinal = ordinal_of(&name, sts)?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let ready = pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Some(PodView {
        ordinal,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        revision: labels.get(REVISION_LABEL).cloned(),
        ready,
        terminating,
        lifecycle_state: labels.get(LIFECYCLE_LABEL).cloned(),
        role_label: labels.get(&roles.label).cloned(),
        selected: labels.get(SELECTED_LABEL).is_some_and(|v| v == "true"),
        restarts,
        not_ready_reason: if ready { None } else { not_ready_reason(pod) },
        name,
    })
}

fn condition_true(pod: &Pod, kind: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

fn has_inplace_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == INPLACE_READY))
}

/// Ready condition True and, when the pod has the `InPlaceUpdateReady` gate, that too.
pub fn pod_ready(pod: &Pod) -> bool {
    condition_true(pod, "Ready") && (!has_inplace_gate(pod) || condition_true(pod, INPLACE_READY))
}

/// The most specific reason a pod is not ready, for operators.
pub fn not_ready_reason(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("Terminating".to_owned());
    }
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = &w.reason
        {
            return Some(reason.clone());
        }
    }
    for c in containers {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            return Some(
                t.reason
                    .clone()
                    .unwrap_or_else(|| format!("exited with {}", t.exit_code)),
            );
        }
    }
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    // A readiness gate not True holds the pod unready whatever its containers say: name it
    // (Kruise's InPlaceUpdateReady, or the application's own gate).
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    for gate in gates {
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
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status != "True")
        && let Some(reason) = &c.reason
    {
        return Some(reason.clone());
    }
    status
        .and_then(|s| s.phase.clone())
        .filter(|p| p != "Running")
        .or_else(|| Some("NotReady".to_owned()))
}

/// A label selector rendered in the `k=v,k in (a,b)` list form, `None` when it is empty or invalid.
pub fn render_selector(sel: &LabelSelector) -> Option<String> {
    // kube's `Selector` is the one reading of a label selector (it refuses unknown
    // operators); an empty selector would select every pod of the namespace: refused too.
    kube::core::Selector::try_from(sel.clone())
        .ok()
        .filter(|s| !s.selects_all())
        .map(|s| s.to_string())
}

/// Whether `selector` (a `LabelSelector` as JSON, as the priority terms of a raw ASTS hold
/// it) matches `labels`. A selector that does not parse matches nothing, as Kruise skips a
/// priority term whose selector is invalid.
pub fn selector_matches(selector: &serde_json::Value, labels: &BTreeMap<String, String>) -> bool {
    use kube::core::SelectorExt as _;
    serde_json::from_value::<LabelSelector>(selector.clone())
        .ok()
        .and_then(|s| kube::core::Selector::try_from(s).ok())
        .is_some_and(|s| s.matches(labels))
}

/// The pod's labels, for patch builders.
pub fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

/// Progress rows for live displays: one per pod, with the arbiter's role.
pub fn pod_rows(
    live: &Live,
    images: &BTreeMap<String, String>,
) -> Vec<baton_engine::event::PodRow> {
    let update = live.snapshot.sts.trusted_update_revision();
    live.snapshot
        .pods
        .iter()
        .map(|v| {
            let spec = live
                .pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(v.name.as_str()))
                .and_then(|p| p.spec.as_ref());
            let image = spec.and_then(|s| {
                let named = s.containers.iter().find(|c| images.contains_key(&c.name));
                named.or(s.containers.first()).and_then(|c| c.image.clone())
            });
            baton_engine::event::PodRow {
                name: v.name.clone(),
                role: live.snapshot.arbiter.members.get(&v.name).map(|r| match r {
                    baton_engine::snapshot::Role::Working => "working".to_owned(),
                    baton_engine::snapshot::Role::Idle => "idle".to_owned(),
                }),
                revision: v.revision.clone(),
                image,
                ready: v.ready,
                updated: update.is_some() && v.revision.as_deref() == update,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn max_unavailable_resolves_counts_and_floored_percentages_with_a_floor_of_one() {
        let cases: &[(Option<IntOrString>, u32, u32)] = &[
            (None, 5, 1),
            (Some(IntOrString::Int(2)), 5, 2),
            (Some(IntOrString::Int(0)), 5, 1),
            (Some(IntOrString::String("50%".into())), 5, 2),
            (Some(IntOrString::String("10%".into())), 5, 1),
            (Some(IntOrString::String("100%".into())), 5, 5),
            (Some(IntOrString::String("3".into())), 5, 3),
        ];
        for (value, replicas, want) in cases {
            assert_eq!(
                resolve_max_unavailable(value.as_ref(), *replicas),
                *want,
                "{value:?} of {replicas}"
            );
        }
    }

    #[test]
    fn failed_test_ops_and_version_conflicts_are_conflicts() {
        let cases = [
            (409, "Operation cannot be fulfilled", true),
            (422, "testing value /spec/x failed: test failed", true),
            (
                422,
                "operation '/0' failed at path '/spec/x': value did not match",
                true,
            ),
            (422, "spec.replicas: Invalid value: -1", false),
            (500, "test", false),
            (404, "not found", false),
        ];
        for (code, message, want) in cases {
            assert_eq!(is_conflict(code, message), want, "{code} {message}");
        }
    }

    #[test]
    fn ordinals_come_only_from_names_of_the_form_set_dash_number() {
        assert_eq!(ordinal_of("sample-3", "sample"), Some(3));
        assert_eq!(ordinal_of("sample-10", "sample"), Some(10));
        assert_eq!(ordinal_of("sample-x", "sample"), None);
        assert_eq!(ordinal_of("other-1", "sample"), None);
        assert_eq!(ordinal_of("sample-db-1", "sample"), None);
    }

    #[test]
    fn selectors_render_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_owned(), "sample".to_owned())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "gone".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            render_selector(&sel).as_deref(),
            Some("app=sample,tier in (a,b),!gone")
        );
        assert_eq!(render_selector(&LabelSelector::default()), None);
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn readiness_needs_the_inplace_gate_when_the_pod_has_it() {
        let gated = |inplace: &str| {
            pod(serde_json::json!({
                "metadata": {"name": "sample-1"},
                "spec": {"containers": [], "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "InPlaceUpdateReady", "status": inplace, "reason": "StartingContainers"}]}
            }))
        };
        assert!(pod_ready(&gated("True")));
        assert!(!pod_ready(&gated("False")));
        assert_eq!(
            not_ready_reason(&gated("False")).as_deref(),
            Some("readiness gate InPlaceUpdateReady is False (StartingContainers)")
        );
        let ungated = pod(serde_json::json!({
            "metadata": {"name": "sample-1"},
            "spec": {"containers": []},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert!(pod_ready(&ungated));
    }

    #[test]
    fn pod_views_carry_role_lifecycle_selection_and_summed_restarts() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "sample-2", "uid": "u2", "labels": {
                "working": "true", "baton.dev/selected": "true",
                "controller-revision-hash": "sample-abc", "lifecycle.apps.kruise.io/state": "Updating"}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [
                    {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "side", "image": "y", "imageID": "", "ready": true, "restartCount": 1}]}
        }));
        let v = pod_view(&p, "sample", &Roles::default()).unwrap();
        assert_eq!(v.ordinal, 2);
        assert_eq!(v.revision.as_deref(), Some("sample-abc"));
        assert_eq!(v.role_label.as_deref(), Some("true"));
        assert!(v.selected);
        assert_eq!(v.lifecycle_state.as_deref(), Some("Updating"));
        assert_eq!(v.restarts, 3);
        assert!(!v.ready);
        assert_eq!(v.not_ready_reason.as_deref(), Some("CrashLoopBackOff"));
    }
}
