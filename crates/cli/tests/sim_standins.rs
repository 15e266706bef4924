//! `engine sim arbiter` and `engine sim kubelet`, run as a user would: the real binary,
//! its one JSON line on stdout, the arbiter's HTTP API, a real API server (the shared real
//! control plane; the kubelet test is skipped without `BATON_CONTROL_PLANE` outside CI),
//! and SIGTERM ending each with exit 0.

use std::process::Stdio;
use std::time::Duration;

use baton_testbed::backend;
use baton_testbed::controlplane;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

fn engine() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engine"));
    cmd.env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The first stdout line, as JSON.
async fn first_line(child: &mut Child) -> Value {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .unwrap()
        .expect("a line before EOF");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// SIGTERM, then the exit code.
async fn terminate(mut child: Child) -> Option<i32> {
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .unwrap()
        .code()
}

#[tokio::test]
async fn the_arbiter_serves_its_members_and_enforces_the_quorum_rule() {
    let mut child = engine()
        .args(["sim", "arbiter", "--members", "a,b,c", "--working", "a,c"])
        .spawn()
        .unwrap();
    let ready = first_line(&mut child).await;
    let url = ready["arbiter"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{ready}");

    let http = reqwest::Client::new();
    let members: Value = http
        .get(format!("{url}/v1/members"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        members["members"],
        json!([
            {"name": "a", "role": "working"},
            {"name": "b", "role": "idle"},
            {"name": "c", "role": "working"},
        ])
    );
    let epoch = members["epoch"].clone();
    // Demoting without promoting would lower the working count.
    let refused = http
        .post(format!("{url}/v1/handover"))
        .json(&json!({"epoch": epoch, "demote": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let swapped = http
        .post(format!("{url}/v1/handover"))
        .json(&json!({"epoch": epoch, "promote": ["b"], "demote": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(swapped.status(), 200);
    let after: Value = swapped.json().await.unwrap();
    assert_eq!(after["members"][1], json!({"name": "b", "role": "working"}));

    assert_eq!(terminate(child).await, Some(0));
}

#[tokio::test]
async fn the_arbiter_refuses_a_working_pod_that_is_not_a_member() {
    let out = engine()
        .args(["sim", "arbiter", "--members", "a,b", "--working", "z"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--working names z"), "{stderr}");
}

#[tokio::test]
async fn the_kubelet_makes_pods_ready_on_a_real_api_server() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let ns = format!("cli-kubelet-{}", std::process::id());
    let client = cp.client_in(&ns).await.unwrap();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let mut child = engine()
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["sim", "kubelet", "--namespace", &ns, "--node", "cli-node"])
        .args(["--ready-delay-ms", "300"])
        .spawn()
        .unwrap();
    let ready = first_line(&mut child).await;
    assert_eq!(
        ready,
        json!({"kubelet": {"node": "cli-node", "namespace": ns}})
    );

    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod = json!({
        "metadata": {"name": "p", "labels": {"test": "p"}},
        "spec": {"containers": [{"name": "main", "image": "alpine:3.18.2"}]},
    });
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    let found = backend::wait_for_pods(&pods, "test=p", "p Ready", Duration::from_secs(60), |ps| {
        ps.iter().any(backend::is_ready)
    })
    .await
    .unwrap();
    let p = &found[0];
    assert_eq!(
        p.spec.as_ref().unwrap().node_name.as_deref(),
        Some("cli-node")
    );
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));

    assert_eq!(terminate(child).await, Some(0));
}
