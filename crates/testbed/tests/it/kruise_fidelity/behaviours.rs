//! Advanced StatefulSet behaviours observed on real Kruise 1.5.5, written against nothing but
//! the Kubernetes API so that the same assertions run on the simulator and on a real control
//! plane (the two backends of [`super`]).
//!
//! Each behaviour gets a client and a namespace of its own. It relies on a kubelet that binds
//! and runs pods, computes `Ready` from the containers and every `readinessGates` condition,
//! and confirms deletions (the simulator's, or the testbed's stand-in). Readiness is steered
//! through a custom gate, `example.com/caught-up`, whose condition only the test writes: a pod
//! without it stays unready, which makes "how many pods move at once" observable by polling.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

/// The custom readiness gate the tests own.
pub const GATE: &str = "example.com/caught-up";
const LIFECYCLE: &str = "lifecycle.apps.kruise.io/state";
const REVISION: &str = "controller-revision-hash";

/// How long a behaviour waits for something Kruise does promptly.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long "nothing more happens" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

/// A client and the namespace a behaviour works in.
#[derive(Clone)]
pub struct Env {
    pub client: Client,
    pub ns: String,
}

fn asts_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps.kruise.io", "v1beta1", "StatefulSet"),
        "statefulsets",
    )
}

fn pod_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Pod"), "pods")
}

fn revision_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps", "v1", "ControllerRevision"),
        "controllerrevisions",
    )
}

impl Env {
    /// Creates the namespace (an existing one is fine).
    pub async fn new(client: Client, ns: &str) -> Env {
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("", "v1", "Namespace"),
                "namespaces",
            ),
        );
        let obj: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("cannot create namespace {ns}: {e}"),
        }
        Env {
            client,
            ns: ns.to_string(),
        }
    }

    fn sets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &asts_resource())
    }

    fn pod_api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &pod_resource())
    }

    pub async fn create_set(&self, obj: Value) {
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        self.sets()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create set: {e}"));
    }

    pub async fn patch_set(&self, name: &str, merge: Value) {
        self.sets()
            .patch(name, &PatchParams::default(), &Patch::Merge(&merge))
            .await
            .unwrap_or_else(|e| panic!("patch set {name}: {e}"));
    }

    pub async fn set(&self, name: &str) -> Value {
        serde_json::to_value(self.sets().get(name).await.unwrap()).unwrap()
    }

    /// The set's pods by name.
    pub async fn pods(&self, app: &str) -> BTreeMap<String, Value> {
        let lp = kube::api::ListParams::default().labels(&format!("app={app}"));
        self.pod_api()
            .list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|p| {
                let v = serde_json::to_value(p).unwrap();
                (v["metadata"]["name"].as_str().unwrap().to_string(), v)
            })
            .collect()
    }

    pub async fn pod(&self, name: &str) -> Option<Value> {
        self.pod_api()
            .get_opt(name)
            .await
            .unwrap()
            .map(|p| serde_json::to_value(p).unwrap())
    }

    /// Writes one pod condition through `pods/status` with a strategic merge patch, as a
    /// client that owns a readiness gate does.
    pub async fn set_condition(&self, pod: &str, ty: &str, status: bool) {
        let patch = json!({"status": {"conditions": [{
            "type": ty, "status": if status { "True" } else { "False" },
        }]}});
        self.pod_api()
            .patch_status(pod, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {pod} status: {e}"));
    }

    /// Sets (`Some`) or removes (`None`) a pod label.
    pub async fn label(&self, pod: &str, key: &str, value: Option<&str>) {
        let patch = json!({"metadata": {"labels": {key: value}}});
        self.pod_api()
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("label {pod}: {e}"));
    }

    pub async fn set_finalizers(&self, pod: &str, finalizers: &[&str]) {
        let patch = json!({"metadata": {"finalizers": finalizers}});
        self.pod_api()
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("finalizers of {pod}: {e}"));
    }

    pub async fn delete_pod(&self, pod: &str) {
        self.pod_api()
            .delete(pod, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {pod}: {e}"));
    }

    /// ControllerRevisions owned by the set `app` (they carry its template labels).
    pub async fn revisions(&self, app: &str) -> Vec<Value> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &revision_resource());
        let lp = kube::api::ListParams::default().labels(&format!("app={app}"));
        api.list(&lp)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }

    /// `(reason, message, source component)` of the core/v1 Events on the set `app`.
    pub async fn events(&self, app: &str) -> Vec<(String, String, String)> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events"),
        );
        let mut out: Vec<(String, String, String)> = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .filter(|e| {
                e["involvedObject"]["name"] == app && e["involvedObject"]["kind"] == "StatefulSet"
            })
            .map(|e| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&e["reason"]),
                    s(&e["message"]),
                    s(&e["source"]["component"]),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Polls until `f` holds over the set's pods and the set; panics with both after
    /// [`DEADLINE`].
    pub async fn until(
        &self,
        app: &str,
        what: &str,
        mut f: impl FnMut(&BTreeMap<String, Value>, &Value) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let pods = self.pods(app).await;
            let set = self.set(app).await;
            if f(&pods, &set) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "gave up waiting for {what}\nstatus: {}\npods: {:#?}",
                    set["status"],
                    summary(&pods)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `f` holds (the status may lag the pods), then polls for [`QUIET`] and
    /// panics as soon as it stops holding.
    pub async fn stays(
        &self,
        app: &str,
        what: &str,
        mut f: impl FnMut(&BTreeMap<String, Value>, &Value) -> bool,
    ) {
        self.until(app, what, &mut f).await;
        let end = tokio::time::Instant::now() + QUIET;
        while tokio::time::Instant::now() < end {
            let pods = self.pods(app).await;
            let set = self.set(app).await;
            assert!(
                f(&pods, &set),
                "{what} stopped holding\nstatus: {}\npods: {:#?}",
                set["status"],
                summary(&pods)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One line per pod, for failure messages.
pub fn summary(pods: &BTreeMap<String, Value>) -> Vec<String> {
    pods.iter()
        .map(|(n, p)| {
            format!(
                "{n} uid={} rev={} state={} ready={} del={} image={}",
                &uid(p)[..uid(p).len().min(8)],
                rev(p),
                state(p),
                ready(p),
                terminating(p),
                p["spec"]["containers"][0]["image"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

pub fn rev(p: &Value) -> String {
    p["metadata"]["labels"][REVISION]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn uid(p: &Value) -> String {
    p["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn state(p: &Value) -> String {
    p["metadata"]["labels"][LIFECYCLE]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn terminating(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

/// The status of condition `ty`, if the pod has it.
pub fn condition(p: &Value, ty: &str) -> Option<String> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

pub fn ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && condition(p, "Ready").as_deref() == Some("True")
}

fn st(set: &Value, field: &str) -> i64 {
    set["status"][field].as_i64().unwrap_or(0)
}

fn update_revision(set: &Value) -> String {
    set["status"]["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Pods at the set's update revision.
fn updated(pods: &BTreeMap<String, Value>, set: &Value) -> BTreeSet<String> {
    let u = update_revision(set);
    pods.iter()
        .filter(|(_, p)| rev(p) == u)
        .map(|(n, _)| n.clone())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A Parallel set `name` (label `app: name`) with the given readiness gates, update strategy
/// and extra spec fields.
pub fn asts(name: &str, replicas: i64, gates: &[&str], rolling: Value, extra: Value) -> Value {
    let gates: Vec<Value> = gates.iter().map(|g| json!({"conditionType": g})).collect();
    let mut obj = json!({
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"readinessGates": gates,
                                  "containers": [{"name": "main", "image": "alpine:1",
                                                  "command": ["sleep", "infinity"]}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
        },
    });
    if let (Some(spec), Some(extra)) = (obj["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    obj
}

/// The example's priority: idle pods (`working=false`) before working ones.
fn weights() -> Value {
    json!({"priorityStrategy": {"weightPriority": [
        {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}},
        {"weight": 30, "matchSelector": {"matchLabels": {"working": "true"}}},
    ]}})
}

fn image(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": image, "command": ["sleep", "infinity"]}]}}}})
}

/// A template change that cannot be applied in place (the command differs).
fn command(arg: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "alpine:1", "command": ["sleep", arg]}]}}}})
}

/// Waits until all `n` pods exist, run and are Ready, and the set has observed its spec.
async fn settled(env: &Env, app: &str, n: usize) {
    env.until(app, "the set to settle", |pods, set| {
        pods.len() == n
            && pods.values().all(ready)
            && set["status"]["observedGeneration"] == set["metadata"]["generation"]
            && st(set, "readyReplicas") == n as i64
    })
    .await;
}

/// Opens every pod's custom gate.
async fn open_gates(env: &Env, app: &str, ordinals: impl IntoIterator<Item = usize>) {
    for i in ordinals {
        env.set_condition(&format!("{app}-{i}"), GATE, true).await;
    }
}

async fn roles(env: &Env, app: &str, working: &[usize], replicas: usize) {
    for i in 0..replicas {
        let w = if working.contains(&i) {
            "true"
        } else {
            "false"
        };
        env.label(&format!("{app}-{i}"), "working", Some(w)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The behaviours.
// ---------------------------------------------------------------------------------------------

/// (a) A pod with a custom readiness gate is not Ready while the gate's condition is absent or
/// False, and is Ready while a client holds it True (written through `pods/status`, merged by
/// type so that the kubelet's and Kruise's conditions survive). Kruise's pod webhook adds its
/// own `KruisePodReady` gate, which Kruise holds True.
pub async fn custom_readiness_gate(env: &Env) {
    let app = "ga";
    env.create_set(asts(
        app,
        2,
        &[GATE],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    env.until(app, "two running pods, not Ready", |pods, _| {
        pods.len() == 2
            && pods.values().all(|p| {
                p["status"]["phase"] == "Running"
                    && condition(p, "ContainersReady").as_deref() == Some("True")
                    && condition(p, "Ready").as_deref() == Some("False")
                    && condition(p, "KruisePodReady").as_deref() == Some("True")
            })
    })
    .await;
    let p = env.pod("ga-0").await.unwrap();
    let gates: Vec<&str> = p["spec"]["readinessGates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["conditionType"].as_str())
        .collect();
    assert_eq!(gates, [GATE, "KruisePodReady"]);
    env.stays(app, "no pod Ready without its gate", |pods, set| {
        pods.values().all(|p| !ready(p)) && st(set, "readyReplicas") == 0
    })
    .await;
    let set = env.set(app).await;
    assert_eq!(set["status"]["availableReplicas"], 0, "written when 0");
    assert!(
        set["status"].get("updatedReadyReplicas").is_none()
            && set["status"].get("updatedAvailableReplicas").is_none(),
        "omitted when 0: {}",
        set["status"]
    );

    env.set_condition("ga-0", GATE, true).await;
    env.until(app, "ga-0 Ready once its gate is True", |pods, set| {
        ready(&pods["ga-0"])
            && !ready(&pods["ga-1"])
            && st(set, "readyReplicas") == 1
            && st(set, "availableReplicas") == 1
    })
    .await;
    let p = env.pod("ga-0").await.unwrap();
    for ty in ["ContainersReady", "KruisePodReady", "PodScheduled", GATE] {
        assert_eq!(condition(&p, ty).as_deref(), Some("True"), "{ty} kept");
    }
    // Status written through the pod itself (not `pods/status`) is ignored.
    let patch = json!({"status": {"conditions": [{"type": GATE, "status": "False"}]}});
    env.pod_api()
        .patch("ga-0", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let p = env.pod("ga-0").await.unwrap();
    assert_eq!(
        condition(&p, GATE).as_deref(),
        Some("True"),
        "not through the pod"
    );

    env.set_condition("ga-0", GATE, false).await;
    env.until(app, "ga-0 unready once its gate is False", |pods, set| {
        !ready(&pods["ga-0"])
            && condition(&pods["ga-0"], "Ready").as_deref() == Some("False")
            && st(set, "readyReplicas") == 0
    })
    .await;
}

/// (b) `lifecycle.inPlaceUpdate.labelsHandler`: a hooked pod reached by the update is parked
/// in `PreparingUpdate` at its old revision and image until the label goes; pods not hooked
/// are updated and left in `Updated` (the hook exists but they are not all-hooked) until the
/// label is put back. Status counts do not look at lifecycle states: parked and `Updated`
/// pods that are Ready count as available, and the rollout completes with pods in `Updated`.
pub async fn in_place_update_hook(env: &Env) {
    let app = "lc";
    env.create_set(asts(
        app,
        3,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 3, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"}},
                             "preDelete": {"labelsHandler": {"hold": "true"}}}}),
    ))
    .await;
    settled(env, app, 3).await;
    let before = env.pods(app).await;
    assert!(before.values().all(|p| state(p) == "Normal"));
    let old = rev(&before["lc-0"]);
    env.label("lc-2", "hold", Some("true")).await;
    env.patch_set(app, image("alpine:2")).await;

    env.until(app, "lc-0/1 Updated, lc-2 parked", |pods, set| {
        updated(pods, set) == names(&["lc-0", "lc-1"])
            && state(&pods["lc-0"]) == "Updated"
            && state(&pods["lc-1"]) == "Updated"
            && state(&pods["lc-2"]) == "PreparingUpdate"
            && pods.values().all(ready)
    })
    .await;
    env.stays(app, "lc-2 parked at its old revision", |pods, set| {
        let p = &pods["lc-2"];
        state(p) == "PreparingUpdate"
            && rev(p) == old
            && p["spec"]["containers"][0]["image"] == "alpine:1"
            && uid(p) == uid(&before["lc-2"])
            && st(set, "updatedReplicas") == 2
            && st(set, "availableReplicas") == 3
            && st(set, "readyReplicas") == 3
            && set["status"]["currentRevision"] == old.as_str()
    })
    .await;

    env.label("lc-2", "hold", None).await;
    env.until(app, "lc-2 updated in place once released", |pods, set| {
        let p = &pods["lc-2"];
        rev(p) == update_revision(set)
            && state(p) == "Updated"
            && uid(p) == uid(&before["lc-2"])
            && p["spec"]["containers"][0]["image"] == "alpine:2"
    })
    .await;
    env.until(
        app,
        "the rollout to complete with pods in Updated",
        |pods, set| {
            set["status"]["currentRevision"] == set["status"]["updateRevision"]
                && st(set, "currentReplicas") == 3
                && st(set, "availableReplicas") == 3
                && pods.values().all(|p| state(p) == "Updated")
        },
    )
    .await;

    env.label("lc-2", "hold", Some("true")).await;
    env.until(app, "lc-2 Normal once all-hooked again", |pods, _| {
        state(&pods["lc-2"]) == "Normal"
    })
    .await;
    env.stays(app, "unhooked pods stay Updated", |pods, _| {
        state(&pods["lc-0"]) == "Updated" && state(&pods["lc-1"]) == "Updated"
    })
    .await;
}

/// (b) A pod left in `Updated` by the in-place hook is Ready and counts in
/// `availableReplicas`, but it holds the update budget: with `maxUnavailable: 1` nothing else
/// is updated until the hook label is on it again.
pub async fn updated_state_holds_the_budget(env: &Env) {
    let app = "up";
    env.create_set(asts(
        app,
        3,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"}}}}),
    ))
    .await;
    settled(env, app, 3).await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "up-2 Updated and Ready", |pods, set| {
        updated(pods, set) == names(&["up-2"])
            && state(&pods["up-2"]) == "Updated"
            && ready(&pods["up-2"])
    })
    .await;
    env.stays(app, "up-2 in Updated holds the budget", |pods, set| {
        updated(pods, set) == names(&["up-2"])
            && st(set, "availableReplicas") == 3
            && st(set, "updatedReplicas") == 1
    })
    .await;
    env.label("up-2", "hold", Some("true")).await;
    env.until(app, "up-1 next once up-2 is Normal", |pods, set| {
        state(&pods["up-2"]) == "Normal" && updated(pods, set) == names(&["up-1", "up-2"])
    })
    .await;
}

/// (b) `lifecycle.preDelete.labelsHandler` on the recreate path: the hooked pod is parked in
/// `PreparingDelete`, not deleted; it uses the single `maxUnavailable` slot, so nothing else
/// moves; `currentReplicas` is not decremented for it. Released, it is deleted and recreated
/// at the update revision, and the rollout goes on.
pub async fn pre_delete_hook(env: &Env) {
    let app = "pd";
    env.create_set(asts(
        app,
        3,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"}},
                             "preDelete": {"labelsHandler": {"hold": "true"}}}}),
    ))
    .await;
    settled(env, app, 3).await;
    let before = env.pods(app).await;
    let old = rev(&before["pd-0"]);
    env.label("pd-2", "hold", Some("true")).await;
    env.patch_set(app, command("1000")).await;

    env.until(app, "pd-2 parked in PreparingDelete", |pods, _| {
        state(&pods["pd-2"]) == "PreparingDelete"
    })
    .await;
    env.stays(app, "the parked pod holds the budget", |pods, set| {
        pods.len() == 3
            && pods.iter().all(|(n, p)| {
                uid(p) == uid(&before[n]) && rev(p) == old && !terminating(p) && ready(p)
            })
            && update_revision(set) != old
            && st(set, "updatedReplicas") == 0
            && st(set, "currentReplicas") == 3
            && st(set, "availableReplicas") == 3
    })
    .await;

    env.label("pd-2", "hold", None).await;
    env.until(
        app,
        "every pod recreated at the update revision",
        |pods, set| {
            pods.len() == 3
                && pods.iter().all(|(n, p)| {
                    uid(p) != uid(&before[n])
                        && rev(p) == update_revision(set)
                        && ready(p)
                        && state(p) == "Normal"
                })
                && set["status"]["currentRevision"] == set["status"]["updateRevision"]
        },
    )
    .await;
}

/// (c) `scaleStrategy.maxUnavailable: 1` in Parallel mode: pods are created one at a time,
/// the next only once the previous one is available, on creation and on scale-up. Scale-down
/// removes every condemned pod at once.
pub async fn scale_max_unavailable(env: &Env) {
    let app = "sc";
    env.create_set(asts(
        app,
        2,
        &[GATE],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({"scaleStrategy": {"maxUnavailable": 1}}),
    ))
    .await;
    env.until(app, "sc-0 created", |pods, _| pods.contains_key("sc-0"))
        .await;
    env.stays(app, "one unready pod at a time", |pods, _| {
        pods.keys().cloned().collect::<Vec<_>>() == ["sc-0"]
    })
    .await;
    open_gates(env, app, [0]).await;
    env.until(app, "sc-1 created once sc-0 is Ready", |pods, _| {
        pods.len() == 2
    })
    .await;
    open_gates(env, app, [1]).await;
    settled(env, app, 2).await;

    env.patch_set(app, json!({"spec": {"replicas": 4}})).await;
    env.until(app, "sc-2 created", |pods, _| pods.len() == 3)
        .await;
    env.stays(app, "sc-3 waits for sc-2", |pods, set| {
        pods.len() == 3 && st(set, "replicas") == 3
    })
    .await;
    open_gates(env, app, [2]).await;
    env.until(app, "sc-3 created", |pods, _| pods.len() == 4)
        .await;
    open_gates(env, app, [3]).await;
    settled(env, app, 4).await;

    env.patch_set(app, json!({"spec": {"replicas": 1}})).await;
    env.until(app, "every condemned pod deleted", |pods, set| {
        pods.keys().cloned().collect::<Vec<_>>() == ["sc-0"] && st(set, "replicas") == 1
    })
    .await;
}

/// Without `scaleStrategy`, Parallel creates every missing pod at once, Ready or not.
pub async fn parallel_scale_up_creates_all_at_once(env: &Env) {
    let app = "sp";
    env.create_set(asts(
        app,
        3,
        &[GATE],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    env.until(app, "three unready pods", |pods, set| {
        pods.len() == 3 && pods.values().all(|p| !ready(p)) && st(set, "replicas") == 3
    })
    .await;
}

/// (d) Scale-down while the highest pod lingers Terminating (a finalizer holds it; the
/// kubelet has stopped its containers, so it is not Ready): the lingering pod still counts in
/// `status.replicas` but not in ready/current/updated; it is not an update target, and `partition` applies to the in-range
/// pods only: 5 replicas, partition 2 updates exactly 3 pods, idle ones first.
pub async fn scale_down_with_a_lingering_pod(env: &Env) {
    let app = "dd";
    env.create_set(asts(
        app,
        6,
        &["InPlaceUpdateReady"],
        json!({"partition": 6, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": weights()}),
        json!({}),
    ))
    .await;
    settled(env, app, 6).await;
    roles(env, app, &[0, 2, 4], 6).await;
    let old = rev(&env.pod("dd-0").await.unwrap());
    env.set_finalizers("dd-5", &["example.com/hold"]).await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "a new update revision", |_, set| {
        update_revision(set) != old && set["status"]["observedGeneration"] == 2
    })
    .await;

    env.patch_set(app, json!({"spec": {"replicas": 5}})).await;
    env.until(
        app,
        "dd-5 lingering Terminating, its containers stopped",
        |pods, set| {
            terminating(&pods["dd-5"])
                && !ready(&pods["dd-5"])
                && st(set, "readyReplicas") == 5
                && set["status"]["observedGeneration"] == 3
                && st(set, "replicas") == 6
                && st(set, "currentReplicas") == 5
                && st(set, "updatedReplicas") == 0
        },
    )
    .await;

    env.patch_set(
        app,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}),
    )
    .await;
    env.until(app, "three in-range pods updated", |pods, set| {
        updated(pods, set) == names(&["dd-1", "dd-3", "dd-4"])
            && ["dd-1", "dd-3", "dd-4"].iter().all(|n| ready(&pods[*n]))
    })
    .await;
    env.stays(app, "partition 2 keeps dd-0 and dd-2 old", |pods, set| {
        updated(pods, set) == names(&["dd-1", "dd-3", "dd-4"])
            && terminating(&pods["dd-5"])
            && rev(&pods["dd-5"]) == old
            && st(set, "replicas") == 6
            && st(set, "updatedReplicas") == 3
            && st(set, "currentReplicas") == 2
    })
    .await;

    env.set_finalizers("dd-5", &[]).await;
    env.until(app, "dd-5 gone", |pods, set| {
        pods.len() == 5 && st(set, "replicas") == 5
    })
    .await;
    env.stays(app, "still three updated", |pods, set| {
        updated(pods, set) == names(&["dd-1", "dd-3", "dd-4"])
    })
    .await;
}

/// (e) Unordered mode: a deleted pod comes back at the current revision iff fewer than
/// `partition` OTHER pods are not at the update revision (the rule is the same in 1.5.5 and
/// master). 5 pods, partition 3, maxUnavailable 1, recreate: idle web-3 is recreated first
/// and held unready, so idle web-1 waits old. Deleting working web-0 (others old: 1,2,4 = 3,
/// not < 3) brings it back at the UPDATE revision; then deleting web-4 (others old: 1,2)
/// brings it back at the CURRENT one.
pub async fn recreation_revision(env: &Env) {
    let app = "ff";
    env.create_set(asts(
        app,
        5,
        &[GATE],
        json!({"partition": 5, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate",
               "unorderedUpdate": weights()}),
        json!({}),
    ))
    .await;
    env.until(app, "five pods", |pods, _| pods.len() == 5).await;
    open_gates(env, app, 0..5).await;
    settled(env, app, 5).await;
    roles(env, app, &[0, 2, 4], 5).await;
    let old = rev(&env.pod("ff-0").await.unwrap());

    let mut patch = command("1000");
    patch["spec"]["updateStrategy"] = json!({"rollingUpdate": {"partition": 3}});
    env.patch_set(app, patch).await;
    env.until(app, "ff-3 recreated at the update revision", |pods, set| {
        updated(pods, set) == names(&["ff-3"])
    })
    .await;
    env.stays(app, "ff-1 waits behind unready ff-3", |pods, set| {
        updated(pods, set) == names(&["ff-3"]) && !ready(&pods["ff-3"])
    })
    .await;

    let uid0 = uid(&env.pod("ff-0").await.unwrap());
    env.delete_pod("ff-0").await;
    env.until(app, "ff-0 back", |pods, _| {
        pods.get("ff-0").is_some_and(|p| uid(p) != uid0)
    })
    .await;
    let set = env.set(app).await;
    let p = env.pod("ff-0").await.unwrap();
    assert_eq!(
        rev(&p),
        update_revision(&set),
        "ff-0 at the update revision"
    );
    assert!(
        p["metadata"]["labels"]["working"].is_null(),
        "template labels only"
    );

    // Updated: {0,3}; others old for ff-4: {1,2}, 2 < 3.
    let uid4 = uid(&env.pod("ff-4").await.unwrap());
    env.delete_pod("ff-4").await;
    env.until(app, "ff-4 back", |pods, _| {
        pods.get("ff-4").is_some_and(|p| uid(p) != uid4)
    })
    .await;
    assert_eq!(
        rev(&env.pod("ff-4").await.unwrap()),
        old,
        "ff-4 at the current revision"
    );
    // Two pods updated already fill replicas - partition: ff-1 is never a target.
    open_gates(env, app, [0, 3, 4]).await;
    settled(env, app, 5).await;
    env.stays(app, "ff-1, ff-2, ff-4 stay old", |pods, set| {
        updated(pods, set) == names(&["ff-0", "ff-3"])
    })
    .await;
}

/// Priority and partition (the seed case's waves): idle pods first, then working ones, ties
/// to the higher ordinal; in place, the same UIDs, a container restart, `InPlaceUpdateReady`
/// back to True and the in-place state annotation.
pub async fn priority_partition_in_place(env: &Env) {
    let app = "pp";
    env.create_set(asts(
        app,
        5,
        &["InPlaceUpdateReady"],
        json!({"partition": 5, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": weights()}),
        json!({}),
    ))
    .await;
    settled(env, app, 5).await;
    roles(env, app, &[0, 2, 4], 5).await;
    let before = env.pods(app).await;
    env.patch_set(app, image("alpine:2")).await;
    env.stays(app, "partition 5 updates nothing", |pods, set| {
        updated(pods, set).is_empty() || update_revision(set) == rev(&before["pp-0"])
    })
    .await;

    env.patch_set(
        app,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 3}}}}),
    )
    .await;
    env.until(app, "idle pods 1 and 3 updated", |pods, set| {
        updated(pods, set) == names(&["pp-1", "pp-3"]) && pods.values().all(ready)
    })
    .await;
    env.stays(app, "working pods stay old", |pods, set| {
        updated(pods, set) == names(&["pp-1", "pp-3"])
    })
    .await;
    env.patch_set(
        app,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}),
    )
    .await;
    env.until(app, "then the highest working pod", |pods, set| {
        updated(pods, set) == names(&["pp-1", "pp-3", "pp-4"]) && pods.values().all(ready)
    })
    .await;
    env.patch_set(
        app,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
    )
    .await;
    env.until(app, "all updated, rollout complete", |pods, set| {
        updated(pods, set).len() == 5
            && pods.values().all(ready)
            && set["status"]["currentRevision"] == set["status"]["updateRevision"]
            && st(set, "updatedReadyReplicas") == 5
    })
    .await;
    for (n, p) in env.pods(app).await {
        assert_eq!(uid(&p), uid(&before[&n]), "{n} kept its UID");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["image"], "alpine:2");
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(condition(&p, "InPlaceUpdateReady").as_deref(), Some("True"));
        let s: Value = serde_json::from_str(
            p["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(s["revision"], rev(&p));
        assert_eq!(state(&p), "Normal");
    }
}

/// `maxUnavailable: 2` on the recreate path: exactly two pods are taken down at once, and no
/// third while both replacements are unready. Ordered mode (no `unorderedUpdate`): the
/// highest ordinals first, and `partition` keeps the lowest ones.
pub async fn max_unavailable_and_ordered_partition(env: &Env) {
    let app = "mu";
    env.create_set(asts(
        app,
        5,
        &[GATE],
        json!({"partition": 1, "maxUnavailable": 2, "podUpdatePolicy": "ReCreate"}),
        json!({}),
    ))
    .await;
    env.until(app, "five pods", |pods, _| pods.len() == 5).await;
    open_gates(env, app, 0..5).await;
    settled(env, app, 5).await;
    env.patch_set(app, command("1000")).await;
    env.until(app, "mu-4 and mu-3 recreated", |pods, set| {
        updated(pods, set) == names(&["mu-3", "mu-4"]) && pods.len() == 5
    })
    .await;
    env.stays(app, "no third pod while two are unready", |pods, set| {
        updated(pods, set) == names(&["mu-3", "mu-4"])
            && pods.values().filter(|p| !ready(p)).count() == 2
    })
    .await;
    open_gates(env, app, [4]).await;
    env.until(app, "mu-2 next", |pods, set| {
        updated(pods, set) == names(&["mu-2", "mu-3", "mu-4"])
    })
    .await;
    open_gates(env, app, [3]).await;
    env.until(app, "mu-1 next", |pods, set| {
        updated(pods, set) == names(&["mu-1", "mu-2", "mu-3", "mu-4"])
    })
    .await;
    open_gates(env, app, [1, 2]).await;
    env.stays(app, "partition 1 keeps mu-0", |pods, set| {
        updated(pods, set) == names(&["mu-1", "mu-2", "mu-3", "mu-4"])
    })
    .await;
    env.until(app, "status counts", |_, set| {
        st(set, "updatedReplicas") == 4
            && st(set, "currentReplicas") == 1
            && st(set, "readyReplicas") == 5
            && set["status"]["currentRevision"] != set["status"]["updateRevision"]
    })
    .await;
}

/// What the controller writes on pods and revisions: the pod-name label (no
/// `apps.kubernetes.io/pod-index` in 1.5.5), `generateName`, hostname and subdomain, the
/// lifecycle state `Normal` with its timestamp; revisions named `<set>-<hash>` whose
/// `controller.kubernetes.io/hash` label is the hash.
pub async fn pod_and_revision_shape(env: &Env) {
    let app = "sh";
    env.create_set(asts(
        app,
        1,
        &[],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    settled(env, app, 1).await;
    let p = env.pod("sh-0").await.unwrap();
    let labels = p["metadata"]["labels"].as_object().unwrap();
    let mut keys: Vec<&str> = labels.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "app",
            "controller-revision-hash",
            "lifecycle.apps.kruise.io/state",
            "statefulset.kubernetes.io/pod-name"
        ]
    );
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "sh-0");
    assert_eq!(p["metadata"]["generateName"], "sh-");
    assert_eq!(p["spec"]["hostname"], "sh-0");
    assert_eq!(p["spec"]["subdomain"], "sh");
    assert!(p["metadata"]["annotations"]["lifecycle.apps.kruise.io/timestamp"].is_string());
    let owner = &p["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "StatefulSet");
    assert_eq!(owner["apiVersion"], "apps.kruise.io/v1beta1");
    assert_eq!(owner["controller"], true);

    let set = env.set(app).await;
    let revs = env.revisions(app).await;
    assert_eq!(revs.len(), 1);
    let r = &revs[0];
    let name = r["metadata"]["name"].as_str().unwrap();
    assert_eq!(set["status"]["updateRevision"], name);
    assert_eq!(rev(&p), name);
    let hash = r["metadata"]["labels"]["controller.kubernetes.io/hash"]
        .as_str()
        .unwrap();
    assert_eq!(name, format!("sh-{hash}"));
    assert!(
        (1..=10).contains(&hash.len()) && hash.chars().all(|c| c.is_ascii_alphanumeric()),
        "{hash}"
    );
    assert_eq!(r["revision"], 1);
    assert_eq!(
        r["data"]["spec"]["template"]["$patch"], "replace",
        "revision data is a strategic merge patch of the template"
    );
    assert_eq!(set["status"]["labelSelector"], "app=sh");
    assert_eq!(set["status"]["collisionCount"], 0);
}

/// The Events Kruise records on the set: one per pod created, updated in place or deleted.
pub async fn events_on_the_set(env: &Env) {
    let app = "ev";
    env.create_set(asts(
        app,
        2,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 2, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    settled(env, app, 2).await;
    let old = rev(&env.pod("ev-0").await.unwrap());
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "both updated", |pods, set| {
        update_revision(set) != old && updated(pods, set).len() == 2 && pods.values().all(ready)
    })
    .await;
    env.patch_set(app, json!({"spec": {"replicas": 1}})).await;
    env.until(app, "ev-1 gone", |pods, _| pods.len() == 1).await;
    let set = env.set(app).await;
    let to = update_revision(&set);
    let c = "statefulset-controller".to_string();
    let mut want = vec![
        (
            "SuccessfulCreate".to_string(),
            "create Pod ev-0 in StatefulSet ev successful".to_string(),
            c.clone(),
        ),
        (
            "SuccessfulCreate".into(),
            "create Pod ev-1 in StatefulSet ev successful".into(),
            c.clone(),
        ),
        (
            "SuccessfulDelete".into(),
            "delete Pod ev-1 in StatefulSet ev successful".into(),
            c.clone(),
        ),
        (
            "SuccessfulUpdatePodInPlace".into(),
            format!("successfully update pod ev-0 in-place(revision {to})"),
            c.clone(),
        ),
        (
            "SuccessfulUpdatePodInPlace".into(),
            format!("successfully update pod ev-1 in-place(revision {to})"),
            c,
        ),
    ];
    want.sort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = env.events(app).await;
        if got == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events: {got:#?}\npods: {:#?}",
            summary(&env.pods(app).await)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ordered mode over a reserved ordinal (Kruise 1.5.5): `partition` compares ordinals, not
/// ranks. Replicas 3 with reserveOrdinals [0] run pods 1, 2, 3; partition 1 updates all three
/// (more than replicas - partition); partition 2 updates 2 and 3, keeps 1, and a deleted pod 2
/// comes back at the update revision (its ordinal is not below 2).
pub async fn ordered_partition_over_a_reserved_ordinal(env: &Env) {
    let app = "ro";
    env.create_set(asts(
        app,
        3,
        &[],
        json!({"partition": 1, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate"}),
        json!({"reserveOrdinals": [0]}),
    ))
    .await;
    settled(env, app, 3).await;
    assert_eq!(
        env.pods(app).await.keys().cloned().collect::<Vec<_>>(),
        ["ro-1", "ro-2", "ro-3"]
    );
    env.patch_set(app, command("1000")).await;
    env.until(app, "all three updated", |pods, set| {
        updated(pods, set) == names(&["ro-1", "ro-2", "ro-3"])
            && pods.values().all(ready)
            && set["status"]["currentRevision"] == set["status"]["updateRevision"]
    })
    .await;

    let mut patch = command("2000");
    patch["spec"]["updateStrategy"] = json!({"rollingUpdate": {"partition": 2}});
    env.patch_set(app, patch).await;
    env.until(app, "ro-2 and ro-3 updated", |pods, set| {
        updated(pods, set) == names(&["ro-2", "ro-3"]) && pods.values().all(ready)
    })
    .await;
    env.stays(app, "ro-1 kept", |pods, set| {
        updated(pods, set) == names(&["ro-2", "ro-3"])
    })
    .await;
    let uid2 = uid(&env.pod("ro-2").await.unwrap());
    env.delete_pod("ro-2").await;
    env.until(app, "ro-2 back at the update revision", |pods, set| {
        pods.get("ro-2")
            .is_some_and(|p| uid(p) != uid2 && rev(p) == update_revision(set) && ready(p))
    })
    .await;
}

/// OrderedReady: a pod left in `Updated` by the in-place hook is Ready, so it does not stop
/// the replica loop (a scale-up still creates the next pod), but it holds the update budget.
pub async fn ordered_ready_scales_past_an_updated_pod(env: &Env) {
    let app = "or";
    let mut obj = asts(
        app,
        3,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible"}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"}}}}),
    );
    obj["spec"]["podManagementPolicy"] = json!("OrderedReady");
    env.create_set(obj).await;
    settled(env, app, 3).await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "or-2 Updated", |pods, set| {
        updated(pods, set) == names(&["or-2"])
            && state(&pods["or-2"]) == "Updated"
            && ready(&pods["or-2"])
    })
    .await;
    env.patch_set(app, json!({"spec": {"replicas": 4}})).await;
    env.until(app, "or-3 created at the update revision", |pods, set| {
        pods.get("or-3")
            .is_some_and(|p| rev(p) == update_revision(set) && ready(p))
    })
    .await;
    env.stays(app, "or-1 and or-0 wait behind or-2", |pods, set| {
        updated(pods, set) == names(&["or-2", "or-3"])
    })
    .await;
}

/// The `apps.kruise.io/specified-delete` label deletes a pod whatever the partition; it comes
/// back without the label, at the revision the partition rule picks (ordered: its ordinal 1
/// is below partition 3, so the current one).
pub async fn specified_delete(env: &Env) {
    let app = "sd";
    env.create_set(asts(
        app,
        3,
        &[],
        json!({"partition": 3, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate"}),
        json!({}),
    ))
    .await;
    settled(env, app, 3).await;
    let before = env.pods(app).await;
    let old = rev(&before["sd-1"]);
    env.patch_set(app, command("1000")).await;
    env.until(app, "a new update revision", |_, set| {
        update_revision(set) != old
    })
    .await;
    env.label("sd-1", "apps.kruise.io/specified-delete", Some("true"))
        .await;
    env.until(app, "sd-1 recreated", |pods, _| {
        pods.get("sd-1")
            .is_some_and(|p| uid(p) != uid(&before["sd-1"]) && ready(p))
    })
    .await;
    let p = env.pod("sd-1").await.unwrap();
    assert_eq!(rev(&p), old, "below the partition: the current revision");
    assert!(p["metadata"]["labels"]["apps.kruise.io/specified-delete"].is_null());
    env.stays(app, "the others untouched", |pods, _| {
        ["sd-0", "sd-2"]
            .iter()
            .all(|n| uid(&pods[*n]) == uid(&before[*n]))
    })
    .await;
}

/// `paused`: nothing is updated while paused, but a deleted pod is recreated (at the update
/// revision: ordinal 2 is not below partition 0); unpaused, the rest is updated.
pub async fn paused(env: &Env) {
    let app = "pa";
    env.create_set(asts(
        app,
        3,
        &[],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate",
               "paused": true}),
        json!({}),
    ))
    .await;
    settled(env, app, 3).await;
    let old = rev(&env.pod("pa-0").await.unwrap());
    env.patch_set(app, command("1000")).await;
    env.until(app, "a new update revision", |_, set| {
        update_revision(set) != old
    })
    .await;
    env.stays(app, "nothing updated while paused", |pods, _| {
        pods.values().all(|p| rev(p) == old)
    })
    .await;
    let uid1 = uid(&env.pod("pa-1").await.unwrap());
    env.delete_pod("pa-1").await;
    env.until(app, "pa-1 recreated at the update revision", |pods, set| {
        pods.get("pa-1")
            .is_some_and(|p| uid(p) != uid1 && rev(p) == update_revision(set) && ready(p))
    })
    .await;
    env.stays(app, "pa-0 and pa-2 still old", |pods, _| {
        rev(&pods["pa-0"]) == old && rev(&pods["pa-2"]) == old
    })
    .await;
    env.patch_set(
        app,
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"paused": false}}}}),
    )
    .await;
    env.until(app, "all updated once resumed", |pods, set| {
        updated(pods, set).len() == 3
            && pods.values().all(ready)
            && set["status"]["currentRevision"] == set["status"]["updateRevision"]
    })
    .await;
}

/// `markPodNotReady`: a pod parked by the inPlaceUpdate hook gets `KruisePodReady=False` and
/// so is not Ready while parked; released and updated, it is Ready again.
pub async fn mark_pod_not_ready(env: &Env) {
    let app = "mn";
    env.create_set(asts(
        app,
        2,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"},
                                               "markPodNotReady": true}}}),
    ))
    .await;
    settled(env, app, 2).await;
    env.label("mn-1", "hold", Some("true")).await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "mn-1 parked and not Ready", |pods, _| {
        let p = &pods["mn-1"];
        state(p) == "PreparingUpdate"
            && condition(p, "KruisePodReady").as_deref() == Some("False")
            && !ready(p)
    })
    .await;
    env.label("mn-1", "hold", None).await;
    env.until(app, "mn-1 updated and Ready again", |pods, set| {
        let p = &pods["mn-1"];
        rev(p) == update_revision(set)
            && condition(p, "KruisePodReady").as_deref() == Some("True")
            && ready(p)
    })
    .await;
}

/// A new template while a pod sits in `Updated`: Kruise puts the hook's labels back on the pod
/// itself and parks it in `PreparingUpdate` (so it is all-hooked and waits to be released).
pub async fn new_revision_while_updated(env: &Env) {
    let app = "nr";
    env.create_set(asts(
        app,
        1,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({"lifecycle": {"inPlaceUpdate": {"labelsHandler": {"hold": "true"}}}}),
    ))
    .await;
    settled(env, app, 1).await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "nr-0 Updated", |pods, set| {
        updated(pods, set).len() == 1 && state(&pods["nr-0"]) == "Updated"
    })
    .await;
    let second = rev(&env.pod("nr-0").await.unwrap());
    env.patch_set(app, image("alpine:3")).await;
    env.until(
        app,
        "nr-0 parked with the hook label put back",
        |pods, set| {
            let p = &pods["nr-0"];
            update_revision(set) != second
                && state(p) == "PreparingUpdate"
                && p["metadata"]["labels"]["hold"] == "true"
                && rev(p) == second
        },
    )
    .await;
    env.label("nr-0", "hold", None).await;
    env.until(app, "nr-0 at the third revision", |pods, set| {
        rev(&pods["nr-0"]) == update_revision(set) && state(&pods["nr-0"]) == "Updated"
    })
    .await;
}

/// The preDelete hook on scale-down: the condemned pod is parked in `PreparingDelete`, not
/// deleted, and still counted; released, it is deleted.
pub async fn pre_delete_on_scale_down(env: &Env) {
    let app = "ps";
    env.create_set(asts(
        app,
        3,
        &[],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({"lifecycle": {"preDelete": {"labelsHandler": {"hold": "true"}}}}),
    ))
    .await;
    settled(env, app, 3).await;
    env.label("ps-2", "hold", Some("true")).await;
    env.patch_set(app, json!({"spec": {"replicas": 1}})).await;
    env.until(app, "ps-1 deleted, ps-2 parked", |pods, _| {
        !pods.contains_key("ps-1")
            && pods
                .get("ps-2")
                .is_some_and(|p| state(p) == "PreparingDelete" && !terminating(p))
    })
    .await;
    env.stays(app, "ps-2 parked and counted", |pods, set| {
        pods.len() == 2 && st(set, "replicas") == 2 && state(&pods["ps-2"]) == "PreparingDelete"
    })
    .await;
    env.label("ps-2", "hold", None).await;
    env.until(app, "ps-2 deleted", |pods, set| {
        pods.len() == 1 && st(set, "replicas") == 1
    })
    .await;
}

/// `minReadySeconds: 2`: a pod counts as available two seconds after it is Ready, so the next
/// one waits that long (and `availableReplicas` lags `readyReplicas`).
pub async fn min_ready_seconds(env: &Env) {
    let app = "mr";
    env.create_set(asts(
        app,
        2,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "minReadySeconds": 2, "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    env.until(app, "both available", |pods, set| {
        pods.len() == 2 && st(set, "availableReplicas") == 2
    })
    .await;
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "mr-1 updated and Ready", |pods, set| {
        updated(pods, set) == names(&["mr-1"]) && ready(&pods["mr-1"])
    })
    .await;
    let ready_at = tokio::time::Instant::now();
    env.until(app, "mr-0 updated", |pods, set| {
        updated(pods, set).len() == 2
    })
    .await;
    let waited = ready_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "mr-0 was updated {waited:?} after mr-1 turned Ready"
    );
}

/// What Kruise's webhook fills into a set: the strategy, history and PVC retention defaults,
/// and the pod template's (pod spec and container defaults, `imagePullPolicy: Always` whatever
/// the tag, port protocol), as read back from Kruise 1.5.5.
pub async fn set_defaults(env: &Env) {
    let app = "df";
    env.create_set(json!({
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
        "metadata": {"name": app},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                         "spec": {"containers": [
                             {"name": "a", "image": "alpine:3.18.2"},
                             {"name": "b", "image": "alpine:latest",
                              "ports": [{"containerPort": 80}]},
                             {"name": "c", "image": "alpine", "imagePullPolicy": "Never"},
                         ]}},
        },
    }))
    .await;
    let container = |name: &str, image: &str, policy: &str| {
        json!({"name": name, "image": image, "imagePullPolicy": policy, "resources": {},
               "terminationMessagePath": "/dev/termination-log",
               "terminationMessagePolicy": "File"})
    };
    let mut b = container("b", "alpine:latest", "Always");
    b["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    let want = json!({
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "podManagementPolicy": "OrderedReady",
        "replicas": 0,
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": app}},
        "template": {
            "metadata": {"creationTimestamp": null, "labels": {"app": app}},
            "spec": {
                "containers": [
                    container("a", "alpine:3.18.2", "Always"),
                    b,
                    container("c", "alpine", "Never"),
                ],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
            },
        },
        "updateStrategy": {
            "rollingUpdate": {"maxUnavailable": 1, "minReadySeconds": 0, "partition": 0,
                              "podUpdatePolicy": "ReCreate"},
            "type": "RollingUpdate",
        },
    });
    assert_eq!(env.set(app).await["spec"], want);
}

/// The writes of an in-place update, in the order a watch sees them: `InPlaceUpdateReady`
/// goes False at the old revision first (a status write), then the revision label, image
/// and `Updating` state arrive together; once the container restarted, `InPlaceUpdateReady`
/// goes True, and only then the state `Normal`.
pub async fn in_place_write_order(env: &Env) {
    use futures::StreamExt as _;
    use kube::api::{WatchEvent, WatchParams};

    let app = "wo";
    env.create_set(asts(
        app,
        1,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    settled(env, app, 1).await;
    let list = env
        .pod_api()
        .list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let from = list.metadata.resource_version.unwrap();
    let old = rev(&env.pod("wo-0").await.unwrap());
    let stream = env
        .pod_api()
        .watch(&WatchParams::default().labels(&format!("app={app}")), &from)
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    env.patch_set(app, image("alpine:2")).await;
    let mut seen: Vec<(bool, String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no end to the update: {seen:?}"))
            .expect("the watch ended")
            .unwrap();
        let WatchEvent::Modified(obj) = event else {
            continue;
        };
        let p = serde_json::to_value(obj).unwrap();
        let step = (
            rev(&p) != old,
            condition(&p, "InPlaceUpdateReady").unwrap_or_default(),
            state(&p),
        );
        if seen.last() != Some(&step) {
            seen.push(step);
        }
        if rev(&p) != old && state(&p) == "Normal" && ready(&p) {
            break;
        }
    }
    let want: Vec<(bool, String, String)> = [
        (false, "False", "Normal"),
        (true, "False", "Updating"),
        (true, "True", "Updating"),
        (true, "True", "Normal"),
    ]
    .into_iter()
    .map(|(r, c, s)| (r, c.to_string(), s.to_string()))
    .collect();
    assert_eq!(seen, want);
}

/// Revision names: `<set>-<hash>` where the hash is Kruise's FNV-1 over the revision data
/// (the template with the webhook's defaults) and the collision count; the same template gets
/// the same name on both backends.
pub async fn revision_names(env: &Env) {
    let app = "rn";
    env.create_set(asts(
        app,
        1,
        &["InPlaceUpdateReady"],
        json!({"partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
               "unorderedUpdate": {}}),
        json!({}),
    ))
    .await;
    settled(env, app, 1).await;
    let first = update_revision(&env.set(app).await);
    env.patch_set(app, image("alpine:2")).await;
    env.until(app, "the second revision", |_, set| {
        update_revision(set) != first
    })
    .await;
    let second = update_revision(&env.set(app).await);
    assert_eq!((first.as_str(), second.as_str()), (REVISION_1, REVISION_2));
}

/// The names real Kruise 1.5.5 gives [`revision_names`]'s two templates.
const REVISION_1: &str = "rn-6cbfd78dc7";
const REVISION_2: &str = "rn-5bb5fccbb6";

/// `scaleStrategy.maxUnavailable: 1` on scale-down while an in-range pod is unavailable.
pub async fn scale_down_with_an_unavailable_pod(env: &Env) {
    let app = "su";
    env.create_set(asts(
        app,
        4,
        &[GATE],
        json!({"partition": 0, "maxUnavailable": 1, "unorderedUpdate": {}}),
        json!({"scaleStrategy": {"maxUnavailable": 1}}),
    ))
    .await;
    for i in 0..4 {
        let name = format!("su-{i}");
        env.until(app, "the next pod", |pods, _| pods.contains_key(&name))
            .await;
        open_gates(env, app, [i]).await;
    }
    settled(env, app, 4).await;
    env.set_condition("su-0", GATE, false).await;
    env.until(app, "su-0 unready", |pods, set| {
        !ready(&pods["su-0"]) && st(set, "readyReplicas") == 3
    })
    .await;
    env.patch_set(app, json!({"spec": {"replicas": 2}})).await;
    env.until(app, "both condemned pods deleted", |pods, set| {
        pods.len() == 2 && st(set, "replicas") == 2
    })
    .await;
}

/// `updateStrategy.type: OnDelete`: a new template changes no pod until one is deleted; the
/// replacement gets the update revision, and `currentRevision` stays until all pods have it.
pub async fn on_delete(env: &Env) {
    let app = "od";
    let mut obj = asts(app, 2, &[], json!(null), json!({}));
    obj["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    env.create_set(obj).await;
    settled(env, app, 2).await;
    let old = rev(&env.pod("od-0").await.unwrap());
    env.patch_set(app, command("1000")).await;
    env.stays(app, "no pod updated", |pods, set| {
        update_revision(set) != old && pods.values().all(|p| rev(p) == old)
    })
    .await;
    let uid1 = uid(&env.pod("od-1").await.unwrap());
    env.delete_pod("od-1").await;
    env.until(app, "od-1 back at the update revision", |pods, set| {
        pods.get("od-1")
            .is_some_and(|p| uid(p) != uid1 && rev(p) == update_revision(set) && ready(p))
            && set["status"]["currentRevision"] == old.as_str()
            && st(set, "updatedReplicas") == 1
    })
    .await;
}
