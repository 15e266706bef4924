//! The real control plane tier's own tests: the launcher, the stand-in kubelet against real
//! kube-apiserver and Kruise, and the two-backend glue. They share one control plane per
//! test binary, each in its own namespace, and are skipped (one line on stderr) without
//! `BATON_CONTROL_PLANE` outside CI.
//!
//! The kubelet is not tested against the simulator: the simulator has its own kubelet (and
//! no `binding` subresource), so a second one there would only fight it.

use std::time::{Duration, Instant};

use baton_testbed::backend::{self, Backend, BackendKind, Seed};
use baton_testbed::controlplane::{self, ControlPlane};
use baton_testbed::kubelet::{Kubelet, KubeletHandle, KubeletOptions};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// A namespace of its own on the shared control plane, with a kubelet serving it.
struct Bed {
    client: kube::Client,
    pods: Api<Pod>,
    _kubelet: KubeletHandle,
}

async fn bed(cp: &ControlPlane, name: &str) -> Bed {
    let ns = format!("{name}-{}", std::process::id());
    let client = cp.client_in(&ns).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let kubelet = Kubelet::spawn(
        client.clone(),
        KubeletOptions {
            namespace: Some(ns.clone()),
            node: format!("node-{ns}"),
            ready_delay: Duration::ZERO,
        },
    );
    Bed {
        pods: Api::namespaced(client.clone(), &ns),
        client,
        _kubelet: kubelet,
    }
}

/// A bare pod labelled `test=<name>`, with optional readiness gate and finalizer.
fn pod(name: &str, gate: Option<&str>, finalizer: Option<&str>) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "labels": {"test": name}},
        "spec": {"containers": [{"name": "main", "image": "alpine:3.18.2", "command": ["sleep", "infinity"]}]},
    });
    if let Some(g) = gate {
        p["spec"]["readinessGates"] = json!([{"conditionType": g}]);
    }
    if let Some(f) = finalizer {
        p["metadata"]["finalizers"] = json!([f]);
    }
    serde_json::from_value(p).unwrap()
}

fn condition<'a>(p: &'a Pod, t: &str) -> Option<&'a str> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.as_str())
}

async fn wait_one(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    mut done: impl FnMut(&Pod) -> bool,
) -> Pod {
    let selector = format!("test={name}");
    let found = backend::wait_for_pods(pods, &selector, what, WAIT, |ps| {
        ps.iter()
            .any(|p| p.metadata.name.as_deref() == Some(name) && done(p))
    })
    .await
    .unwrap();
    found
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn revision(p: &Pod) -> String {
    p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone()
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .restart_count
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap()
}

#[tokio::test]
async fn the_seed_gets_every_pod_ready_then_updates_in_place() {
    let began = Instant::now();
    let Some(b) = Backend::start(
        BackendKind::Real,
        Seed {
            replicas: 5,
            ..Seed::default()
        },
    )
    .await
    .unwrap() else {
        return;
    };
    let seeded = began.elapsed();
    let pods = b.pods().list(&Default::default()).await.unwrap().items;
    assert_eq!(pods.len(), 5, "{}", backend::describe(&pods));
    let node_name = format!("node-{}", b.namespace());
    for p in &pods {
        assert!(backend::is_ready(p), "{}", backend::describe([p]));
        // Kruise's own gates are honoured, and their conditions survived the kubelet's writes.
        assert_eq!(condition(p, "KruisePodReady"), Some("True"));
        assert_eq!(condition(p, "InPlaceUpdateReady"), Some("True"));
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some(&*node_name)
        );
        assert_eq!(restarts(p), 0);
    }
    let node: Api<Node> = Api::all(b.client());
    let node = node.get(&node_name).await.unwrap();
    let ready = node.status.unwrap().conditions.unwrap();
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let before: Vec<(String, String, String)> = pods
        .iter()
        .map(|p| (p.metadata.name.clone().unwrap(), uid(p), revision(p)))
        .collect();

    // An image change with partition 0: Kruise updates every pod in place.
    let updated_at = Instant::now();
    b.statefulsets()
        .patch(
            backend::NAME,
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 0},
                    {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "alpine:3.18.0"},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let after = b
        .wait_for_pods("every pod updated in place and Ready", WAIT, |ps| {
            ps.len() == 5
                && ps.iter().all(|p| {
                    let spec = &p.spec.as_ref().unwrap().containers[0];
                    spec.image.as_deref() == Some("alpine:3.18.0")
                        && p.status
                            .as_ref()
                            .and_then(|s| s.container_statuses.as_ref())
                            .is_some_and(|cs| cs[0].image == "alpine:3.18.0")
                        && condition(p, "InPlaceUpdateReady") == Some("True")
                        && backend::is_ready(p)
                })
        })
        .await
        .unwrap();
    let sts = b.statefulsets().get(backend::NAME).await.unwrap();
    let update_revision = sts.data["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    for p in &after {
        let name = p.metadata.name.clone().unwrap();
        let (_, old_uid, old_revision) = before.iter().find(|(n, _, _)| *n == name).unwrap();
        assert_eq!(
            &uid(p),
            old_uid,
            "{name} was recreated, not updated in place"
        );
        assert_ne!(&revision(p), old_revision);
        assert!(
            update_revision.ends_with(&revision(p)),
            "{name} at {} not {update_revision}",
            revision(p)
        );
        assert_eq!(restarts(p), 1, "{name}: one restart for the new image");
        let cs = &p
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            cs.image_id,
            baton_testbed::kubelet::image_id("alpine:3.18.0")
        );
    }
    eprintln!(
        "Backend::start (5 replicas, waits for the shared control plane) took {:.1} s; the in-place update of 5 pods {:.1} s",
        seeded.as_secs_f64(),
        updated_at.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_custom_readiness_gate_holds_a_pod_unready_until_its_condition_is_true() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let bed = bed(&cp, "gate").await;
    let gate = "baton.dev/ready";
    bed.pods
        .create(&PostParams::default(), &pod("gated", Some(gate), None))
        .await
        .unwrap();
    let p = wait_one(&bed.pods, "gated", "containers ready", |p| {
        condition(p, "ContainersReady") == Some("True")
    })
    .await;
    assert_eq!(
        condition(&p, "Ready"),
        Some("False"),
        "no gate condition yet"
    );

    let set_gate = |status: &'static str| {
        let pods = bed.pods.clone();
        async move {
            let patch = json!({"status": {"conditions": [{"type": gate, "status": status}]}});
            pods.patch_status("gated", &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .unwrap();
        }
    };
    set_gate("False").await;
    // The kubelet looks at the pod again after this write; it must stay unready.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = bed.pods.get("gated").await.unwrap();
    assert_eq!(condition(&p, "Ready"), Some("False"));
    assert_eq!(
        condition(&p, gate),
        Some("False"),
        "the test's condition survives"
    );

    set_gate("True").await;
    let p = wait_one(
        &bed.pods,
        "gated",
        "Ready once the gate is True",
        backend::is_ready,
    )
    .await;
    assert_eq!(condition(&p, gate), Some("True"));

    set_gate("False").await;
    wait_one(&bed.pods, "gated", "unready again", |p| {
        condition(p, "Ready") == Some("False")
    })
    .await;
    drop(bed.client);
}

#[tokio::test]
async fn a_deleted_pod_with_a_finalizer_lingers_terminating_until_it_is_removed() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let bed = bed(&cp, "finalizer").await;
    for (name, finalizer) in [("held", Some("baton.dev/hold")), ("free", None)] {
        bed.pods
            .create(&PostParams::default(), &pod(name, None, finalizer))
            .await
            .unwrap();
        wait_one(&bed.pods, name, "Ready", backend::is_ready).await;
        bed.pods
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    // Without a finalizer the kubelet confirms the deletion.
    backend::wait_for_pods(&bed.pods, "test=free", "free deleted", WAIT, |ps| {
        ps.is_empty()
    })
    .await
    .unwrap();
    // With one, the pod stays, terminating and not ready.
    let held = wait_one(&bed.pods, "held", "held terminating and unready", |p| {
        p.metadata.deletion_timestamp.is_some() && condition(p, "Ready") == Some("False")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = bed.pods.get("held").await.unwrap();
    assert_eq!(uid(&still), uid(&held), "still there after 0.5 s");

    bed.pods
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    backend::wait_for_pods(&bed.pods, "test=held", "held deleted", WAIT, |ps| {
        ps.is_empty()
    })
    .await
    .unwrap();
    assert!(bed.pods.get_opt("held").await.unwrap().is_none());
}

/// The glue scenario tests use: the same seed on both kinds, seen from outside through the
/// kubeconfig file (kubectl), the client and the arbiter's HTTP API.
async fn backend_seeds(kind: BackendKind) {
    let seed = Seed {
        replicas: 3,
        working: vec![1],
        image: "alpine:3.18.2".into(),
        ready_delay: Duration::from_millis(200),
        readiness_gates: Vec::new(),
    };
    let Some(b) = Backend::start(kind, seed).await.unwrap() else {
        return;
    };
    match kind {
        BackendKind::Sim => assert_eq!(b.namespace(), "default"),
        BackendKind::Real => assert!(b.namespace().starts_with("baton-")),
    }
    assert_eq!(b.sim().is_some(), kind == BackendKind::Sim);
    assert_eq!(b.control_plane().is_some(), kind == BackendKind::Real);

    // Not std's Command: the simulator serves from this test's runtime, which must not block.
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(b.kubeconfig_path())
        .args(["get", "pods", "-l", "working=true", "-o", "name"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod/sample-1");

    let pods = b.pods().list(&Default::default()).await.unwrap().items;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter().all(backend::is_ready),
        "{}",
        backend::describe(&pods)
    );

    let members: serde_json::Value = reqwest::get(format!("{}/v1/members", b.arbiter_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |n: &str, r: &str| (n.to_string(), r.to_string());
    assert_eq!(
        roles,
        [
            expect("sample-0", "idle"),
            expect("sample-1", "working"),
            expect("sample-2", "idle")
        ]
    );
    assert_eq!(b.arbiter().roles().len(), 3);

    let sts = b.statefulsets().get(backend::NAME).await.unwrap();
    assert_eq!(sts.data["spec"]["replicas"], 3);
    assert_eq!(
        sts.data["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        3
    );
}

#[tokio::test]
async fn the_backend_seeds_the_simulator() {
    backend_seeds(BackendKind::Sim).await;
}

#[tokio::test]
async fn the_backend_seeds_the_real_control_plane() {
    backend_seeds(BackendKind::Real).await;
}

#[tokio::test]
async fn kubectl_and_a_second_client_use_the_shared_control_plane() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["get", "mutatingwebhookconfiguration", "-o", "name"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kruise-mutating-webhook-configuration"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(cp.dir().join("kube-apiserver.log").exists());
    assert!(cp.started_in() > Duration::ZERO);
}

/// Writes an executable shell script.
fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_process_that_dies_at_start_is_named_with_its_log_and_the_others_are_stopped() {
    let assets = tempfile::tempdir().unwrap();
    let dir = assets.path();
    let pid_file = dir.join("etcd.pid");
    script(
        &dir.join("etcd"),
        &format!("echo $$ > {}\nexec sleep 60", pid_file.display()),
    );
    script(
        &dir.join("kube-apiserver"),
        // Late enough for the fake etcd to have written its pid.
        "echo 'starting'\nsleep 0.5\necho 'error: unknown flag --frobnicate' >&2\nexit 3",
    );
    script(&dir.join("kruise-manager"), "exit 0");
    std::fs::create_dir(dir.join("kruise-crds")).unwrap();
    std::fs::write(dir.join("kruise-webhooks.yaml"), "").unwrap();

    let assets = controlplane::Assets::in_dir(dir).unwrap();
    assert_eq!(assets.etcd, dir.join("etcd"), "etcd from the folder first");
    let err = ControlPlane::start_with(&assets).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            &err,
            controlplane::Error::Exited {
                process: "kube-apiserver",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("kube-apiserver exited"), "{text}");
    assert!(
        text.contains("error: unknown flag --frobnicate"),
        "the log's tail is quoted: {text}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = std::path::Path::new("/proc").join(pid.trim());
    assert!(!proc_dir.exists(), "etcd (pid {pid}) is still running");
}
