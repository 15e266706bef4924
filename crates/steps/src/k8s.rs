//! Where the steps meet the Kubernetes client: the Advanced StatefulSet as a typed
//! resource, the pure conversion of live objects into an engine [`Snapshot`], and the
//! write helpers every step goes through (JSON patches guarded by `test` ops). The lease,
//! the events and the watches name kube types too, each in its own module.
//!
//! The ASTS type is hand-written with only the fields Baton reads; unknown fields are
//! ignored on read and never written back (every write is a patch of named paths).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use baton_engine::plan::{Roles, ValidPlan};
use baton_engine::snapshot::{
    ArbiterView, PodManagementPolicy, PodView, Snapshot, StsView, UpdateStrategyType,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::arbiter::{ArbiterClient, ArbiterError};
use crate::pods::SlimPod;
use crate::view::ClusterView;

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
    /// The run's watch-fed view of the cluster did not catch up in time.
    #[error("the cluster view is behind: {what}{}", last_error.as_deref().map(|e| format!(" (last watch error: {e})")).unwrap_or_default())]
    View {
        what: String,
        last_error: Option<String>,
    },
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
            KubeError::Api { .. }
            | KubeError::NotFound { .. }
            | KubeError::NoSelector(_)
            | KubeError::View { .. } => false,
        }
    }

    /// Whether the executor should retry the step that hit this.
    pub fn is_retryable(&self) -> bool {
        match self {
            KubeError::Conflict { .. } | KubeError::View { .. } => true,
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
    /// Pods, decoded slim ([`SlimPod`]).
    pub pods: Api<SlimPod>,
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
    pub async fn owned_pods(&self, sts: &Asts) -> Result<Vec<SlimPod>, KubeError> {
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

    async fn list_selected(&self, selector: &str) -> Result<Vec<SlimPod>, KubeError> {
        let list = self
            .pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| KubeError::api(format!("list pods of {}", self.sts_object()), e))?;
        Ok(list.items)
    }

    /// The ASTS and its pods. Once the selector is known both requests go out at once
    /// (they are never one atomic read either way).
    pub async fn sts_and_pods(&self) -> Result<(Asts, Vec<SlimPod>), KubeError> {
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
    ) -> Result<SlimPod, KubeError> {
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
    pub pods: Vec<Arc<SlimPod>>,
    pub snapshot: Snapshot,
}

/// One-shot read (commands outside a run): get the ASTS, list its pods, ask the arbiter.
pub async fn read_live(
    target: &Target,
    roles: &Roles,
    arbiter: &ArbiterClient,
) -> Result<Live, KubeError> {
    let (objects, view) = tokio::join!(target.sts_and_pods(), arbiter.members());
    let (sts, pods) = objects?;
    let pods: Vec<Arc<SlimPod>> = pods.into_iter().map(Arc::new).collect();
    let snapshot = snapshot_of(&sts, pods.iter().map(|p| &**p), view?, roles);
    Ok(Live {
        sts,
        pods,
        snapshot,
    })
}

/// A run's read: the ASTS and its pods from the run's [`ClusterView`], the arbiter asked now.
pub async fn read_view(
    view: &ClusterView,
    roles: &Roles,
    arbiter: &ArbiterClient,
) -> Result<Live, KubeError> {
    let (objects, members) = tokio::join!(view.read(), arbiter.members());
    let objects = objects?;
    let snapshot = snapshot_of(
        &objects.sts,
        objects.pods.iter().map(|p| &**p),
        members?,
        roles,
    );
    Ok(Live {
        sts: Asts::clone(&objects.sts),
        pods: objects.pods,
        snapshot,
    })
}

/// The pure conversion from live objects to the decision core's view.
pub fn snapshot_of<'a>(
    sts: &Asts,
    pods: impl IntoIterator<Item = &'a SlimPod>,
    arbiter: ArbiterView,
    roles: &Roles,
) -> Snapshot {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let mut views: Vec<PodView> = pods
        .into_iter()
        .filter_map(|p| p.view(&name, roles))
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
fn owned_by(pods: Vec<SlimPod>, sts: &Asts) -> Vec<SlimPod> {
    let uid = sts.metadata.uid.as_deref().unwrap_or_default();
    pods.into_iter()
        .filter(|p| p.is_controlled_by(uid))
        .collect()
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

/// Progress rows for live displays: one per pod, with the arbiter's role.
pub fn pod_rows(
    live: &Live,
    images: &BTreeMap<String, String>,
) -> Vec<baton_engine::event::PodRow> {
    let update = live.snapshot.sts.trusted_update_revision();
    // By name: a search of the pod list per row was quadratic (1000 pods, every wave).
    let by_name: std::collections::HashMap<&str, &SlimPod> = live
        .pods
        .iter()
        .filter_map(|p| Some((p.name()?, &**p)))
        .collect();
    live.snapshot
        .pods
        .iter()
        .map(|v| {
            let image = by_name
                .get(v.name.as_str())
                .and_then(|p| p.image_for(images));
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
}
