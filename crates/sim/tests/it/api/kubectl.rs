//! The real `kubectl` binary against the simulator served on 127.0.0.1:
//! tables, labels, apply, patch, watch, and the seed walkthrough with the
//! Kruise controller doing the rollout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton_sim::{Served, Sim, SimConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::common::seeded;

struct Kubectl {
    dir: tempfile::TempDir,
    sim: Sim,
    served: Served,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    async fn start() -> Kubectl {
        let sim = seeded(SimConfig::default()).await;
        let served = sim.serve().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        served
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Kubectl { dir, sim, served }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().await.expect("kubectl runs");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and returns its stdout; panics with stderr on failure.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all).await).unwrap()
    }

    /// A manifest file in the test's directory.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_pods_and_advanced_statefulsets_as_tables() {
    let k = Kubectl::start().await;
    let pods = k.ok(&["get", "pods"]).await;
    let lines: Vec<&str> = pods.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("READY") && lines[0].contains("STATUS")
    );
    for i in 0..5 {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&format!("sample-{i} ")))
            .unwrap();
        assert!(row.contains("1/1") && row.contains("Running"), "{row}");
    }
    let sets = k
        .ok(&["get", "statefulsets.apps.kruise.io", "sample"])
        .await;
    let row: Vec<&str> = sets.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], ["sample", "5", "5", "5", "5"]);
    let by_short_name = k.json(&["get", "asts", "sample"]).await;
    assert_eq!(by_short_name["spec"]["podManagementPolicy"], "Parallel");
    let list = k.json(&["get", "pods", "-l", "working=true"]).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    k.served.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_labels_and_patches() {
    let k = Kubectl::start().await;
    assert!(
        k.ok(&["label", "pod", "sample-1", "baton.dev/selected=true"])
            .await
            .contains("labeled")
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "baton.dev/selected=true", "-o", "name"])
            .await
            .trim(),
        "pod/sample-1"
    );
    k.ok(&["label", "pod", "sample-1", "working=true", "--overwrite"])
        .await;
    let p = k.json(&["get", "pod", "sample-1"]).await;
    assert_eq!(p["metadata"]["labels"]["working"], "true");

    let partition = r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":4}}}}"#;
    k.ok(&[
        "patch", "asts", "sample", "--type", "merge", "-p", partition,
    ])
    .await;
    let s = k.json(&["get", "asts", "sample"]).await;
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 4);
    assert_eq!(s["metadata"]["generation"], 2);

    let bad = r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":-2}}}}"#;
    let out = k
        .run(&["patch", "asts", "sample", "--type", "merge", "-p", bad])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("is invalid") && out.stderr.contains("partition"),
        "{}",
        out.stderr
    );

    let json = r#"[{"op":"test","path":"/spec/replicas","value":4}]"#;
    let out = k
        .run(&["patch", "asts", "sample", "--type", "json", "-p", json])
        .await;
    assert!(!out.ok, "a failing test op is refused");

    // The default patch type for a pod is strategic: containers merge by name.
    let image = r#"{"spec":{"containers":[{"name":"main","image":"alpine:3.19.0"}]}}"#;
    k.ok(&["patch", "pod", "sample-3", "-p", image]).await;
    let p = k.json(&["get", "pod", "sample-3"]).await;
    assert_eq!(p["spec"]["containers"][0]["image"], "alpine:3.19.0");
    assert!(p["spec"]["containers"][0]["command"].is_array());
    k.served.shutdown();
}

const OTHER: &str = "apiVersion: apps.kruise.io/v1beta1
kind: StatefulSet
metadata:
  name: other
spec:
  replicas: 2
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
      - name: main
        image: alpine:3.18.2
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      partition: PARTITION
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_creates_configures_and_reapplies_without_a_new_generation() {
    let k = Kubectl::start().await;
    let f = k.file("other.yaml", &OTHER.replace("PARTITION", "2"));
    assert!(
        k.ok(&["apply", "-f", path_str(&f)])
            .await
            .contains("created")
    );
    // As on Kruise 1.5.5: the webhook defaults the template's containers, so kubectl's merge
    // patch sends the list again and says "configured"; the defaults fill it back in, and
    // the spec (and generation) stay as they were.
    assert!(
        k.ok(&["apply", "-f", path_str(&f)])
            .await
            .contains("configured")
    );
    let s = k.json(&["get", "asts", "other"]).await;
    assert_eq!(s["metadata"]["generation"], 1);
    assert_eq!(
        s["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    let f = k.file("other.yaml", &OTHER.replace("PARTITION", "1"));
    assert!(
        k.ok(&["apply", "-f", path_str(&f)])
            .await
            .contains("configured")
    );
    let s = k.json(&["get", "asts", "other"]).await;
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 1);
    assert!(
        s["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // Server-side apply works too.
    let f = k.file("other.yaml", &OTHER.replace("PARTITION", "0"));
    k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path_str(&f),
    ])
    .await;
    let s = k.json(&["get", "asts", "other"]).await;
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    // The CRD schema refuses a percentage partition.
    let f = k.file("bad.yaml", &OTHER.replace("PARTITION", "\"20%\""));
    let out = k.run(&["apply", "-f", path_str(&f)]).await;
    assert!(
        !out.ok && out.stderr.contains("partition"),
        "{}",
        out.stderr
    );
    k.served.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scales_through_the_scale_subresource() {
    let k = Kubectl::start().await;
    assert!(
        k.ok(&["scale", "asts", "sample", "--replicas", "6"])
            .await
            .contains("scaled")
    );
    let s = k.json(&["get", "asts", "sample"]).await;
    assert_eq!(s["spec"]["replicas"], 6);
    let out = k
        .run(&[
            "scale",
            "asts",
            "sample",
            "--replicas",
            "6",
            "--current-replicas",
            "2",
        ])
        .await;
    assert!(!out.ok, "a wrong --current-replicas precondition fails");
    let report = k.sim.report();
    let requests = report["requests"].as_object().unwrap();
    assert!(
        requests.keys().any(|r| r.ends_with(" statefulsets/scale")),
        "{requests:?}"
    );
    k.served.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_streams_changes() {
    let k = Kubectl::start().await;
    let mut child = k
        .command(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The initial list comes first.
    let mut seen = 0;
    while seen < 5 {
        let line = lines.next_line().await.unwrap().unwrap();
        if line.contains("sample-") {
            seen += 1;
        }
    }
    k.ok(&["label", "pod", "sample-2", "touched=yes"]).await;
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("MODIFIED") && line.contains("sample-2") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "kubectl get -w printed the change");
    child.kill().await.unwrap();
    let report = k.sim.report();
    assert!(report["requests"]["watch pods"].as_u64().unwrap() >= 1);
    k.served.shutdown();
}

/// Pods that run `image` and are Ready, by name, read with `kubectl get pods -o json`.
async fn ready_on(k: &Kubectl, image: &str) -> Vec<String> {
    let pods = k.json(&["get", "pods"]).await;
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["spec"]["containers"][0]["image"] == image
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Waits (at most 30 s) until exactly `want` run `image` and are Ready.
async fn wait_ready_on(k: &Kubectl, image: &str, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = ready_on(k, image).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout stuck: {now:?} on {image}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_walkthrough_updates_idle_pods_first_under_partition() {
    let k = Kubectl::start().await;
    // Table 1: the seed manifest with partition 3 (weights working=false:50, true:30),
    // and the working label on sample-0, -2 and -4.
    let manifest = baton_sim::seed::MANIFEST.replace("partition: 5", "partition: 3");
    let f = k.file("statefulset.yaml", &manifest);
    k.ok(&["apply", "-f", path_str(&f)]).await;
    k.ok(&[
        "label",
        "pods",
        "sample-0",
        "sample-2",
        "sample-4",
        "working=true",
        "--overwrite",
    ])
    .await;
    // Table 2: the new image, applied; replicas 5 - partition 3 = two pods update, the
    // idle ones (weight 50) first.
    let f = k.file(
        "statefulset-new.yaml",
        &manifest.replace("alpine:3.18.2", "alpine:3.18.0"),
    );
    assert!(
        k.ok(&["apply", "-f", path_str(&f)])
            .await
            .contains("configured")
    );
    wait_ready_on(&k, "alpine:3.18.0", &["sample-1", "sample-3"]).await;
    let sets = k.ok(&["get", "asts", "sample"]).await;
    let row: Vec<&str> = sets.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "sample");
    let report = k.sim.report();
    let updates = report["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{report}");
    assert!(updates.iter().all(|u| u["role"] == "idle"));
    assert_eq!(report["violations"], serde_json::json!([]));
    assert!(report["requests"]["patch statefulsets"].as_u64().unwrap() >= 1);

    // Table 3: hand the working label from sample-4 to sample-1 by hand and open the
    // partition to 2: sample-4 (now weight 50) is updated too, and only sample-0 and
    // sample-2 keep alpine:3.18.2.
    k.ok(&["label", "pods", "sample-1", "working=true", "--overwrite"])
        .await;
    k.ok(&["label", "pods", "sample-4", "working=false", "--overwrite"])
        .await;
    let partition = r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#;
    k.ok(&[
        "patch", "asts", "sample", "--type", "merge", "-p", partition,
    ])
    .await;
    wait_ready_on(&k, "alpine:3.18.0", &["sample-1", "sample-3", "sample-4"]).await;
    assert_eq!(
        ready_on(&k, "alpine:3.18.2").await,
        ["sample-0", "sample-2"]
    );
    // kubectl moved only the label; the arbiter still holds sample-4 as working, so the
    // report must call that update a violation: it judges by the arbiter, not the label.
    let report = k.sim.report();
    let violated: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pod"].as_str().unwrap())
        .collect();
    assert_eq!(violated, ["sample-4"], "{report}");
    k.served.shutdown();
}
