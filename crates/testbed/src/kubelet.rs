//! A stand-in kubelet: a client of any API server that plays the node agent for clusters
//! that have none (the real control plane of [`crate::controlplane`], or a user's test
//! cluster without a container runtime). Nothing runs; pods only look as if they did.
//!
//! It keeps one Node Ready, binds every pending pod to it, reports each bound pod `Running`
//! with one container status per container, restarts a container (raising its
//! `restartCount`) when its image changes in the spec, which is how an in-place update looks,
//! and confirms deletions. `Ready` follows Kubernetes: every container ready **and** every
//! `readinessGates` condition `True`. Status is written with a strategic merge patch so that
//! conditions other parties own (Kruise's `InPlaceUpdateReady` and `KruisePodReady`, a
//! test's own gate) survive. A pod with finalizers lingers `Terminating` (not ready) until
//! they are gone, as on a real cluster.
//!
//! It is driven by a pod watch that resumes after errors; the only timers are those of the
//! ready delay.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the kubelet serves.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// Only pods of this namespace (`None`: every namespace).
    pub namespace: Option<String>,
    /// The Node pods are bound to; created if missing.
    pub node: String,
    /// How long a container takes to turn ready after it (re)starts.
    pub ready_delay: Duration,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            namespace: None,
            node: "baton-node".into(),
            ready_delay: Duration::ZERO,
        }
    }
}

/// How often the Node's Ready condition is renewed.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// Field manager of the kubelet's writes.
const MANAGER: &str = "baton-kubelet";

/// A running kubelet; dropping the handle stops it.
#[derive(Debug)]
pub struct KubeletHandle {
    node: String,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeletHandle {
    /// The Node's name.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for KubeletHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The stand-in kubelet.
pub struct Kubelet {
    client: kube::Client,
    opts: KubeletOptions,
    /// The latest pods seen, by namespace and name.
    pods: HashMap<Key, Pod>,
    /// What "runs", by pod UID: the kubelet's own record of each container, which the pod's
    /// status only reports.
    runtime: HashMap<String, BTreeMap<String, Container>>,
    wake: mpsc::UnboundedSender<Key>,
}

type Key = (String, String);

/// A container as the kubelet "runs" it.
#[derive(Debug, Clone)]
struct Container {
    image: String,
    restarts: i32,
    started: Instant,
    started_at: Timestamp,
    /// The run before the latest restart, if any: `(startedAt, finishedAt)`.
    last: Option<(Timestamp, Timestamp)>,
}

impl Kubelet {
    /// Starts the kubelet and its Node heartbeat in the current runtime.
    pub fn spawn(client: kube::Client, opts: KubeletOptions) -> KubeletHandle {
        let node = opts.node.clone();
        let heartbeat = tokio::spawn(keep_node_ready(client.clone(), opts.node.clone()));
        let pods = tokio::spawn(Kubelet::run_pods(client, opts));
        KubeletHandle {
            node,
            tasks: vec![heartbeat, pods],
        }
    }

    /// Runs the kubelet until the future is dropped (it never ends by itself: every error is
    /// logged and retried).
    pub async fn run(client: kube::Client, opts: KubeletOptions) {
        let heartbeat = keep_node_ready(client.clone(), opts.node.clone());
        tokio::join!(heartbeat, Kubelet::run_pods(client, opts));
    }

    async fn run_pods(client: kube::Client, opts: KubeletOptions) {
        let api: Api<Pod> = match &opts.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (wake, mut woken) = mpsc::unbounded_channel();
        let mut kubelet = Kubelet {
            client,
            opts,
            pods: HashMap::new(),
            runtime: HashMap::new(),
            wake,
        };
        let events = watcher(api, watcher::Config::default()).default_backoff();
        let mut events = std::pin::pin!(events);
        // Pods listed by the current (re)list; the others are gone.
        let mut listed: HashSet<Key> = HashSet::new();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::Apply(pod))) => kubelet.seen(pod).await,
                    Some(Ok(watcher::Event::Delete(pod))) => kubelet.forget(&pod),
                    Some(Ok(watcher::Event::Init)) => listed.clear(),
                    Some(Ok(watcher::Event::InitApply(pod))) => {
                        listed.insert(key(&pod));
                        kubelet.seen(pod).await;
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        let gone: Vec<Pod> = kubelet
                            .pods
                            .iter()
                            .filter(|(k, _)| !listed.contains(*k))
                            .map(|(_, p)| p.clone())
                            .collect();
                        for pod in gone {
                            kubelet.forget(&pod);
                        }
                    }
                    Some(Err(error)) => tracing::warn!(%error, "pod watch failed; resuming"),
                    None => {
                        tracing::error!("the pod watch ended; the kubelet stops");
                        return;
                    }
                },
                Some(k) = woken.recv() => {
                    if let Some(pod) = kubelet.pods.get(&k).cloned() {
                        kubelet.reconcile(pod).await;
                    }
                }
            }
        }
    }

    /// Records a pod version (unless an older one than what a write of ours returned) and acts.
    async fn seen(&mut self, pod: Pod) {
        let k = key(&pod);
        if let Some(cached) = self.pods.get(&k)
            && cached.metadata.uid == pod.metadata.uid
            && version(cached) > version(&pod)
        {
            return;
        }
        self.pods.insert(k, pod.clone());
        self.reconcile(pod).await;
    }

    fn forget(&mut self, pod: &Pod) {
        let k = key(pod);
        if self.pods.get(&k).map(|p| &p.metadata.uid) == Some(&pod.metadata.uid) {
            self.pods.remove(&k);
        }
        if let Some(uid) = &pod.metadata.uid {
            self.runtime.remove(uid);
        }
    }

    async fn reconcile(&mut self, pod: Pod) {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let ours = node == Some(self.opts.node.as_str());
        if pod.metadata.deletion_timestamp.is_some() {
            if ours {
                self.terminate(&pod).await;
            }
            if node.is_none() || ours {
                self.confirm_deletion(&pod).await;
            }
        } else if node.is_none() {
            self.bind(&pod).await;
        } else if ours {
            self.run_containers(&pod).await;
        }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        Api::namespaced(self.client.clone(), ns)
    }

    async fn bind(&self, pod: &Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.opts.node},
        });
        let bound: Result<Value, _> = self
            .api(pod)
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match bound {
            Ok(_) => tracing::debug!(pod = %name, node = %self.opts.node, "bound"),
            // Someone else bound it, or it is gone: the watch tells what happened.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(error) => tracing::warn!(pod = %name, %error, "binding failed"),
        }
    }

    /// Starts new containers, restarts those whose image changed, and reports the result.
    async fn run_containers(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let now = Instant::now();
        let stamp = Timestamp::now();
        let reported = reported_containers(pod);
        let delay = self.opts.ready_delay;
        let running = self.runtime.entry(uid).or_default();
        for (name, image) in spec_containers(pod) {
            match running.get_mut(&name) {
                None => {
                    // A container already reported running (by an earlier kubelet process) is
                    // taken as it is, and ready.
                    let c = match reported.get(&name) {
                        Some(r) if r.image == image && r.running => Container {
                            image,
                            restarts: r.restarts,
                            started: now.checked_sub(delay).unwrap_or(now),
                            started_at: r.started_at.unwrap_or(stamp),
                            last: None,
                        },
                        _ => Container {
                            image,
                            restarts: reported.get(&name).map_or(0, |r| r.restarts),
                            started: now,
                            started_at: stamp,
                            last: None,
                        },
                    };
                    running.insert(name, c);
                }
                Some(c) if c.image != image => {
                    c.last = Some((c.started_at, stamp));
                    c.image = image;
                    c.restarts += 1;
                    c.started = now;
                    c.started_at = stamp;
                }
                Some(_) => {}
            }
        }
        let running = running.clone();
        let mut wake_in: Option<Duration> = None;
        let statuses: Vec<Value> = running
            .iter()
            .map(|(name, c)| {
                let up = now.duration_since(c.started);
                let ready = up >= delay;
                if !ready {
                    let left = delay - up;
                    wake_in = Some(wake_in.map_or(left, |w| w.min(left)));
                }
                container_status(pod, name, c, ready)
            })
            .collect();
        if let Some(after) = wake_in {
            self.wake_after(pod, after);
        }
        let containers_ready = statuses.iter().all(|s| s["ready"] == true);
        self.report(pod, "Running", statuses, containers_ready)
            .await;
    }

    /// A deleted pod's containers stop: not ready, terminated.
    async fn terminate(&mut self, pod: &Pod) {
        let Some(running) = pod.metadata.uid.as_ref().and_then(|u| self.runtime.get(u)) else {
            return;
        };
        let stamp = Timestamp::now();
        let previous = reported_containers(pod);
        let statuses: Vec<Value> = running
            .iter()
            .map(|(name, c)| {
                let mut s = container_status(pod, name, c, false);
                let finished = previous
                    .get(name)
                    .and_then(|r| r.finished_at)
                    .unwrap_or(stamp);
                s["started"] = json!(false);
                s["state"] = json!({"terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": c.started_at.to_string(),
                    "finishedAt": finished.to_string(),
                }});
                s
            })
            .collect();
        self.report(pod, "Running", statuses, false).await;
    }

    /// Deletes a pod whose deletion is pending, with grace period 0, once nothing else holds
    /// it (no finalizers): what a kubelet does after its containers stopped.
    async fn confirm_deletion(&mut self, pod: &Pod) {
        if pod
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty())
        {
            return;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api(pod).delete(&name, &params).await {
            Ok(_) => tracing::debug!(pod = %name, "deletion confirmed"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(error) => tracing::warn!(pod = %name, %error, "confirming a deletion failed"),
        }
    }

    /// Writes phase, conditions and container statuses, if they differ from what is reported.
    async fn report(
        &mut self,
        pod: &Pod,
        phase: &str,
        statuses: Vec<Value>,
        containers_ready: bool,
    ) {
        let gates_ready = readiness_gates(pod)
            .iter()
            .all(|g| condition(pod, g) == Some("True"));
        let ready = containers_ready && gates_ready;
        let reason = |ok: bool, why: &str| if ok { Value::Null } else { json!(why) };
        let wanted = [
            ("PodScheduled", true, Value::Null),
            ("Initialized", true, Value::Null),
            (
                "ContainersReady",
                containers_ready,
                reason(containers_ready, "ContainersNotReady"),
            ),
            (
                "Ready",
                ready,
                reason(
                    ready,
                    if containers_ready {
                        "ReadinessGatesNotReady"
                    } else {
                        "ContainersNotReady"
                    },
                ),
            ),
        ];
        let current = pod.status.as_ref();
        let same_phase = current.and_then(|s| s.phase.as_deref()) == Some(phase);
        let same_conditions = wanted
            .iter()
            .all(|(t, ok, _)| condition(pod, t) == Some(if *ok { "True" } else { "False" }));
        let same_containers = current
            .and_then(|s| serde_json::to_value(&s.container_statuses).ok())
            .is_some_and(|v| same_statuses(&v, &statuses));
        if same_phase && same_conditions && same_containers {
            return;
        }
        let now = Timestamp::now().to_string();
        let conditions: Vec<Value> = wanted
            .iter()
            .map(|(t, ok, why)| {
                let status = if *ok { "True" } else { "False" };
                let since = if condition(pod, t) == Some(status) {
                    condition_time(pod, t).unwrap_or_else(|| now.clone())
                } else {
                    now.clone()
                };
                let mut c = json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
                if !why.is_null() {
                    c["reason"] = why.clone();
                }
                c
            })
            .collect();
        let start_time = current
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(|| now.clone(), |t| t.0.to_string());
        let patch = json!({"status": {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "startTime": start_time,
            "conditions": conditions,
            "containerStatuses": statuses,
        }});
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        match self
            .api(pod)
            .patch_status(&name, &params, &Patch::Strategic(&patch))
            .await
        {
            Ok(updated) => {
                tracing::debug!(pod = %name, ready, "status reported");
                let k = key(&updated);
                if self
                    .pods
                    .get(&k)
                    .is_none_or(|p| version(p) <= version(&updated))
                {
                    self.pods.insert(k, updated);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(error) => {
                tracing::warn!(pod = %name, %error, "status report failed; retrying");
                self.wake_after(pod, Duration::from_millis(500));
            }
        }
    }

    fn wake_after(&self, pod: &Pod, after: Duration) {
        let k = key(pod);
        let wake = self.wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after + Duration::from_millis(1)).await;
            let _ = wake.send(k);
        });
    }
}

fn key(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// A pod's resourceVersion as a number (etcd's revision), 0 when it is not one.
fn version(pod: &Pod) -> u64 {
    pod.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn spec_containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn readiness_gates(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|gs| gs.iter().map(|g| g.condition_type.clone()).collect())
        .unwrap_or_default()
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

fn condition_time(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0.to_string())
}

/// What a pod's status says of one container.
struct Reported {
    image: String,
    restarts: i32,
    running: bool,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

fn reported_containers(pod: &Pod) -> HashMap<String, Reported> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let state = c.state.as_ref();
                    let running = state.and_then(|s| s.running.as_ref());
                    let terminated = state.and_then(|s| s.terminated.as_ref());
                    (
                        c.name.clone(),
                        Reported {
                            image: c.image.clone(),
                            restarts: c.restart_count,
                            running: running.is_some(),
                            started_at: running.and_then(|r| r.started_at.as_ref()).map(|t| t.0),
                            finished_at: terminated
                                .and_then(|t| t.finished_at.as_ref())
                                .map(|t| t.0),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The status of a running container.
fn container_status(pod: &Pod, name: &str, c: &Container, ready: bool) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut s = json!({
        "name": name,
        "image": c.image,
        "imageID": image_id(&c.image),
        "containerID": format!("baton://{uid}/{name}/{}", c.restarts),
        "ready": ready,
        "started": true,
        "restartCount": c.restarts,
        "state": {"running": {"startedAt": c.started_at.to_string()}},
        "lastState": {},
    });
    if let Some((started, finished)) = c.last {
        s["lastState"] = json!({"terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": started.to_string(),
            "finishedAt": finished.to_string(),
        }});
    }
    s
}

/// The image ID a runtime would report for an image: stable per image, different for
/// different images (Kruise tells an in-place update has happened by the imageID changing).
pub fn image_id(image: &str) -> String {
    // FNV-1a, twice with different offsets, is enough to tell images apart.
    let fnv = |seed: u64| {
        image.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "baton-image://{image}@sha256:{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// Whether two `containerStatuses` lists say the same of what the kubelet owns (times aside).
fn same_statuses(current: &Value, wanted: &[Value]) -> bool {
    let view = |s: &Value| {
        (
            s["name"].clone(),
            s["image"].clone(),
            s["imageID"].clone(),
            s["ready"].clone(),
            s["restartCount"].clone(),
            s["state"]["running"].is_object(),
            s["state"]["terminated"].is_object(),
        )
    };
    let Some(current) = current.as_array() else {
        return wanted.is_empty();
    };
    current.len() == wanted.len() && current.iter().zip(wanted).all(|(a, b)| view(a) == view(b))
}

/// Creates the Node (if missing) and keeps its Ready condition fresh.
async fn keep_node_ready(client: kube::Client, name: String) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        match ensure_node(&nodes, &name).await {
            Ok(()) => tokio::time::sleep(HEARTBEAT).await,
            Err(error) => {
                tracing::warn!(node = %name, %error, "cannot keep the node ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn ensure_node(nodes: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    if nodes.get_opt(name).await?.is_none() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            }},
        }))
        .map_err(kube::Error::SerdeError)?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let now = Timestamp::now().to_string();
    let condition = |t: &str, status: &str, reason: &str| {
        json!({"type": t, "status": status, "reason": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
    let patch = json!({"status": {
        "conditions": [
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "capacity": capacity,
        "allocatable": capacity,
        "nodeInfo": {
            "kubeletVersion": "v1.20.2-baton-stand-in",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "baton://none",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "", "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
        },
    }});
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    };
    nodes
        .patch_status(name, &params, &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_differ_by_image_and_are_stable() {
        assert_eq!(image_id("alpine:3.18.2"), image_id("alpine:3.18.2"));
        assert_ne!(image_id("alpine:3.18.2"), image_id("alpine:3.18.0"));
        assert!(image_id("alpine:3.18.2").starts_with("baton-image://alpine:3.18.2@sha256:"));
    }

    #[test]
    fn statuses_compare_what_the_kubelet_owns() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"uid": "u"}})).unwrap();
        let c = Container {
            image: "a:1".into(),
            restarts: 1,
            started: Instant::now(),
            started_at: Timestamp::now(),
            last: None,
        };
        let wanted = vec![container_status(&pod, "main", &c, true)];
        let mut current = json!(wanted.clone());
        current[0]["state"]["running"]["startedAt"] = json!("2020-01-01T00:00:00Z");
        assert!(same_statuses(&current, &wanted));
        current[0]["restartCount"] = json!(2);
        assert!(!same_statuses(&current, &wanted));
        assert!(!same_statuses(&Value::Null, &wanted));
    }
}
