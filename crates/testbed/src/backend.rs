//! One scenario, two backends: a [`Backend`] is either the embedded simulator or the real
//! control plane (shared per test binary) with a stand-in kubelet and a standalone arbiter,
//! seeded the same way, so a scenario test runs unchanged on both and makes its assertions
//! from outside (a kubeconfig, a client, the arbiter's URL and roles).
//!
//! The seed is the ASTS of `examples/statefulset.yaml` with replicas, working ordinals and
//! image as parameters, the arbiter seeded with those roles, and each pod labelled
//! `working: "true"/"false"` when it first appears, as the simulator's seed does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use baton_sim::arbiter::Arbiter;
use baton_sim::controller::ROLE_LABEL;
use baton_sim::{Served, Sim, SimConfig};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use serde_json::json;

use crate::arbiter::{self, ServedArbiter};
use crate::controlplane::{self, ControlPlane};
use crate::kubelet::{Kubelet, KubeletHandle, KubeletOptions};

/// The seed ASTS's name (as in `examples/statefulset.yaml`).
pub const NAME: &str = baton_sim::seed::NAME;

/// How long the seed's pods may take to be labelled and Ready.
const SEED_TIMEOUT: Duration = Duration::from_secs(60);

/// Which backend a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded simulator, served over HTTP.
    Sim,
    /// The real control plane of `BATON_CONTROL_PLANE`.
    Real,
}

/// What to seed: the parameters of `examples/statefulset.yaml` and the arbiter's roles.
#[derive(Debug, Clone)]
pub struct Seed {
    pub replicas: u32,
    /// Ordinals of the pods the arbiter starts with as working.
    pub working: Vec<u32>,
    pub image: String,
    /// How long a container takes to turn Ready after it (re)starts.
    pub ready_delay: Duration,
    /// Extra `readinessGates` condition types in the pod template, beyond the example's.
    /// Each seed pod gets the condition `True` when it first appears, so the seed is Ready;
    /// a test holds a pod unready with [`Backend::set_condition`].
    pub readiness_gates: Vec<String>,
}

impl Default for Seed {
    /// The seed case of SPEC §7 (what [`SimConfig::default`] seeds).
    fn default() -> Self {
        let cfg = SimConfig::default();
        Seed {
            replicas: cfg.replicas,
            working: cfg.working,
            image: cfg.image,
            ready_delay: Duration::from_millis(cfg.pod_ready_ms),
            readiness_gates: Vec::new(),
        }
    }
}

impl Seed {
    fn sim_config(&self) -> SimConfig {
        SimConfig {
            replicas: self.replicas,
            working: self.working.clone(),
            image: self.image.clone(),
            pod_ready_ms: u64::try_from(self.ready_delay.as_millis()).unwrap_or(u64::MAX),
            ..SimConfig::default()
        }
    }

    /// `(pod, working)` for every seed pod.
    pub fn roles(&self) -> Vec<(String, bool)> {
        baton_sim::seed::roles(&self.sim_config())
            .into_iter()
            .collect()
    }
}

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the real control plane is not usable")]
    ControlPlane(#[source] controlplane::Error),
    #[error("cannot serve {what}")]
    Serve {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("timed out after {waited:?} waiting for {what}; last seen: {seen}")]
    Timeout {
        what: String,
        waited: Duration,
        seen: String,
    },
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

enum Parts {
    Sim {
        sim: Sim,
        served: Option<Served>,
    },
    Real {
        control_plane: Arc<ControlPlane>,
        _kubelet: KubeletHandle,
        _arbiter: ServedArbiter,
    },
}

/// A seeded cluster and arbiter for one test. Dropping it stops what it started (the shared
/// control plane stays up for the other tests; its namespace is left behind).
pub struct Backend {
    kind: BackendKind,
    namespace: String,
    kubeconfig: String,
    kubeconfig_path: PathBuf,
    client: kube::Client,
    arbiter: Arbiter,
    arbiter_url: String,
    seed: Seed,
    parts: Parts,
    _dir: tempfile::TempDir,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Parts::Sim { served, .. } = &mut self.parts
            && let Some(s) = served.take()
        {
            s.shutdown();
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("namespace", &self.namespace)
            .field("kubeconfig", &self.kubeconfig_path)
            .field("arbiter", &self.arbiter_url)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Starts `kind` with `seed` applied and every seed pod labelled and Ready.
    ///
    /// `Ok(None)`: the real control plane tier is skipped here (no `BATON_CONTROL_PLANE`
    /// outside CI; see [`controlplane::shared_or_skip`], which also says when it panics).
    pub async fn start(kind: BackendKind, seed: Seed) -> Result<Option<Backend>, Error> {
        let dir = tempfile::Builder::new()
            .prefix("baton-backend-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create a temporary folder".into(),
                source,
            })?;
        let kubeconfig_path = dir.path().join("kubeconfig");
        let (namespace, kubeconfig, arbiter, arbiter_url, parts) = match kind {
            BackendKind::Sim => {
                // Extra readiness gates are not a simulator setting: the set is then created
                // through the API, as on the real control plane, with the arbiter seeded here.
                let gated = !seed.readiness_gates.is_empty();
                let sim = Sim::new(SimConfig {
                    empty: gated,
                    ..seed.sim_config()
                });
                if gated {
                    sim.arbiter().set_config(Default::default());
                    sim.arbiter().seed(&seed.roles());
                }
                let served = sim.serve().await.map_err(|source| Error::Serve {
                    what: "the simulator",
                    source,
                })?;
                (
                    baton_sim::seed::NAMESPACE.to_string(),
                    served.kubeconfig(),
                    sim.arbiter().clone(),
                    served.arbiter.clone(),
                    Parts::Sim {
                        sim,
                        served: Some(served),
                    },
                )
            }
            BackendKind::Real => {
                let Some(control_plane) = controlplane::shared_or_skip().await else {
                    return Ok(None);
                };
                let namespace = unique_namespace();
                let client = control_plane
                    .client_in(&namespace)
                    .await
                    .map_err(Error::ControlPlane)?;
                create_namespace(&client, &namespace).await?;
                let kubelet = Kubelet::spawn(
                    client.clone(),
                    KubeletOptions {
                        namespace: Some(namespace.clone()),
                        node: format!("node-{namespace}"),
                        ready_delay: seed.ready_delay,
                    },
                );
                let served = arbiter::serve(arbiter::seeded(&seed.roles()), 0)
                    .await
                    .map_err(|source| Error::Serve {
                        what: "the arbiter",
                        source,
                    })?;
                create_seed(&client, &namespace, &seed).await?;
                (
                    namespace.clone(),
                    control_plane.kubeconfig_in(&namespace),
                    served.arbiter.clone(),
                    served.url.clone(),
                    Parts::Real {
                        control_plane,
                        _kubelet: kubelet,
                        _arbiter: served,
                    },
                )
            }
        };
        std::fs::write(&kubeconfig_path, &kubeconfig).map_err(|source| Error::Io {
            what: format!("write {}", kubeconfig_path.display()),
            source,
        })?;
        let client = controlplane::client_from_kubeconfig(&kubeconfig)
            .await
            .map_err(Error::ControlPlane)?;
        if kind == BackendKind::Sim && !seed.readiness_gates.is_empty() {
            create_seed(&client, &namespace, &seed).await?;
        }
        let backend = Backend {
            kind,
            namespace,
            kubeconfig,
            kubeconfig_path,
            client,
            arbiter,
            arbiter_url,
            seed,
            parts,
            _dir: dir,
        };
        backend.settle_seed().await?;
        Ok(Some(backend))
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The namespace of the seed (Sim: `default`; Real: a fresh one per backend).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A kubeconfig file whose context's namespace is [`Backend::namespace`].
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The YAML of [`Backend::kubeconfig_path`].
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// A client (created in the runtime that started the backend), default namespace
    /// [`Backend::namespace`].
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The arbiter's base URL (`http://127.0.0.1:PORT`).
    pub fn arbiter_url(&self) -> &str {
        &self.arbiter_url
    }

    /// The arbiter: its roles, epoch and behaviour knobs.
    pub fn arbiter(&self) -> &Arbiter {
        &self.arbiter
    }

    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The simulator, on [`BackendKind::Sim`] (its faults and report).
    pub fn sim(&self) -> Option<&Sim> {
        match &self.parts {
            Parts::Sim { sim, .. } => Some(sim),
            Parts::Real { .. } => None,
        }
    }

    /// The control plane, on [`BackendKind::Real`] (its logs, another client).
    pub fn control_plane(&self) -> Option<&Arc<ControlPlane>> {
        match &self.parts {
            Parts::Real { control_plane, .. } => Some(control_plane),
            Parts::Sim { .. } => None,
        }
    }

    /// Pods of the namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Advanced StatefulSets of the namespace.
    pub fn statefulsets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &asts_resource())
    }

    /// Sets the pod condition `condition_type` (one of the seed's readiness gates) to `status`,
    /// as the component owning a readiness gate would.
    pub async fn set_condition(
        &self,
        pod: &str,
        condition_type: &str,
        status: bool,
    ) -> Result<(), Error> {
        let patch = conditions_patch(&[condition_type.to_string()], status);
        self.pods()
            .patch_status(pod, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(api_err(format!("set {condition_type} on {pod}")))?;
        Ok(())
    }

    /// Scales the seed's ASTS to `replicas` (as `kubectl scale` would).
    pub async fn scale(&self, replicas: u32) -> Result<(), Error> {
        let patch = json!({"spec": {"replicas": replicas}});
        self.statefulsets()
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("scale {NAME} to {replicas}")))?;
        Ok(())
    }

    /// The seed ASTS as it is now.
    pub async fn statefulset(&self) -> Result<DynamicObject, Error> {
        self.statefulsets()
            .get(NAME)
            .await
            .map_err(api_err(format!("get ASTS {NAME}")))
    }

    /// Waits (watching, not polling) until `done` holds for the pods of the seed's ASTS
    /// (label `app=sample`), for at most `timeout`.
    pub async fn wait_for_pods(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Pod]) -> bool,
    ) -> Result<Vec<Pod>, Error> {
        let selector = format!("app={NAME}");
        wait_for_pods(&self.pods(), &selector, what, timeout, |pods| done(pods)).await
    }

    /// Labels each seed pod with its role when it first appears, and waits until every
    /// seed pod carries its label and is Ready.
    async fn settle_seed(&self) -> Result<(), Error> {
        let roles = self.seed.roles();
        let labeller = Labeller(tokio::spawn(label_seed_pods(
            self.pods(),
            roles.clone(),
            self.seed.readiness_gates.clone(),
        )));
        self.wait_for_pods(
            "the seed's pods to be labelled and Ready",
            SEED_TIMEOUT,
            |ps| {
                roles.iter().all(|(name, working)| {
                    ps.iter().any(|p| {
                        p.metadata.name.as_deref() == Some(name)
                            && role_label(p) == Some(if *working { "true" } else { "false" })
                            && is_ready(p)
                    })
                })
            },
        )
        .await?;
        drop(labeller);
        Ok(())
    }
}

/// Stops the labeller when the wait ends, however it ends.
struct Labeller(tokio::task::JoinHandle<()>);

impl Drop for Labeller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Puts `working=true|false` on each seed pod the first time it is seen, then ends (what the
/// simulator's seed labeller does); with extra readiness `gates`, also sets their conditions
/// `True`, again on every event that shows one of them missing (a kubelet that writes a new
/// pod's first status may replace a condition written before it).
async fn label_seed_pods(pods: Api<Pod>, roles: Vec<(String, bool)>, gates: Vec<String>) {
    let mut unlabelled: std::collections::BTreeMap<String, bool> = roles.iter().cloned().collect();
    let mut ungated: std::collections::BTreeSet<String> = if gates.is_empty() {
        Default::default()
    } else {
        roles.into_iter().map(|(name, _)| name).collect()
    };
    let config = watcher::Config::default().labels(&format!("app={NAME}"));
    let events = watcher(pods.clone(), config).default_backoff();
    let mut events = std::pin::pin!(events);
    while !unlabelled.is_empty() || !ungated.is_empty() {
        let pod = match events.next().await {
            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                tracing::debug!(%error, "pod watch failed; resuming");
                continue;
            }
            None => return,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(&working) = unlabelled.get(&name) {
            let patch = json!({"metadata": {"labels": {ROLE_LABEL: working.to_string()}}});
            match pods
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    unlabelled.remove(&name);
                }
                Err(error) => tracing::warn!(pod = %name, %error, "cannot label a seed pod"),
            }
        }
        if ungated.contains(&name) {
            if gates.iter().all(|g| condition_true(&pod, g)) {
                ungated.remove(&name);
                continue;
            }
            let patch = conditions_patch(&gates, true);
            if let Err(error) = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::warn!(pod = %name, %error, "cannot open a seed pod's readiness gates");
            }
        }
    }
}

/// Whether the pod's condition `condition_type` is `True`.
fn condition_true(pod: &Pod, condition_type: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == condition_type && c.status == "True")
        })
}

/// A status patch setting each of `types` to `status`.
fn conditions_patch(types: &[String], status: bool) -> serde_json::Value {
    let status = if status { "True" } else { "False" };
    let conditions: Vec<serde_json::Value> = types
        .iter()
        .map(|t| json!({"type": t, "status": status, "reason": "BatonTest"}))
        .collect();
    json!({"status": {"conditions": conditions}})
}

fn role_label(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ROLE_LABEL))
        .map(String::as_str)
}

/// Whether a pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Kruise Advanced StatefulSet resource (`apps.kruise.io/v1beta1`).
pub fn asts_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps.kruise.io", "v1beta1", "StatefulSet"),
        "statefulsets",
    )
}

/// A namespace name unique to this process and call.
fn unique_namespace() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!(
        "baton-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
        .map_err(|e| api_err(format!("create namespace {name}"))(kube::Error::SerdeError(e)))?;
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(api_err(format!("create namespace {name}")))?;
    Ok(())
}

/// The seed ASTS in `namespace`, as `kubectl apply` of the example manifest leaves it.
pub fn seed_statefulset(seed: &Seed, namespace: &str) -> serde_json::Value {
    let mut sts = baton_sim::seed::statefulset(&seed.sim_config());
    sts["metadata"]["namespace"] = json!(namespace);
    if !seed.readiness_gates.is_empty() {
        let spec = &mut sts["spec"]["template"]["spec"];
        let mut gates = spec["readinessGates"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        gates.extend(
            seed.readiness_gates
                .iter()
                .map(|g| json!({ "conditionType": g })),
        );
        spec["readinessGates"] = json!(gates);
    }
    if let Some(annotations) = sts["metadata"]["annotations"].as_object_mut() {
        annotations.remove(baton_sim::seed::LAST_APPLIED);
    }
    let applied = format!("{sts}\n");
    sts["metadata"]["annotations"] = json!({ baton_sim::seed::LAST_APPLIED: applied });
    sts
}

async fn create_seed(client: &kube::Client, namespace: &str, seed: &Seed) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &asts_resource());
    let sts: DynamicObject = serde_json::from_value(seed_statefulset(seed, namespace))
        .map_err(|e| api_err("build the seed ASTS")(kube::Error::SerdeError(e)))?;
    api.create(&PostParams::default(), &sts)
        .await
        .map_err(api_err(format!("create ASTS {namespace}/{NAME}")))?;
    Ok(())
}

/// Waits (watching, not polling) until `done` holds for the pods that match the label
/// `selector` in `api`'s namespace, for at most `timeout`; returns those pods.
pub async fn wait_for_pods(
    api: &Api<Pod>,
    selector: &str,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[Pod]) -> bool,
) -> Result<Vec<Pod>, Error> {
    let began = Instant::now();
    let config = watcher::Config::default().labels(selector);
    let stream = watcher(api.clone(), config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut pods: std::collections::BTreeMap<String, Pod> = Default::default();
    let mut listing: std::collections::BTreeMap<String, Pod> = Default::default();
    let mut listed = false;
    loop {
        let left = timeout.saturating_sub(began.elapsed());
        let event = match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(event)) => event,
            Ok(None) | Err(_) => {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    waited: began.elapsed(),
                    seen: describe(pods.values()),
                });
            }
        };
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(p)) => {
                listing.insert(p.metadata.name.clone().unwrap_or_default(), p);
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                pods = std::mem::take(&mut listing);
                listed = true;
            }
            Ok(watcher::Event::Apply(p)) => {
                pods.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            Ok(watcher::Event::Delete(p)) => {
                pods.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
            Err(error) => {
                tracing::debug!(%error, "pod watch failed; resuming");
                continue;
            }
        }
        if !listed {
            continue;
        }
        let current: Vec<Pod> = pods.values().cloned().collect();
        if done(&current) {
            return Ok(current);
        }
    }
}

/// One line per pod: name, role label, Ready, image, restarts (for timeout messages).
pub fn describe<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> String {
    let lines: Vec<String> = pods
        .into_iter()
        .map(|p| {
            let role = role_label(p).unwrap_or("-");
            let image = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.as_deref())
                .unwrap_or("-");
            let restarts: i32 = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
            format!(
                "{} working={role} ready={} image={image} restarts={restarts}{}",
                p.metadata.name.as_deref().unwrap_or("?"),
                is_ready(p),
                if p.metadata.deletion_timestamp.is_some() {
                    " terminating"
                } else {
                    ""
                },
            )
        })
        .collect();
    if lines.is_empty() {
        "no pods".into()
    } else {
        lines.join("; ")
    }
}
