//! In-cluster mode's files against real kube-apiserver 1.20 (issue #16): the UpgradePlan
//! CRD (`deploy/crd.yaml`) is a structural schema the API server accepts, every plan file
//! under `plans/` is an UpgradePlan it stores unchanged, and `deploy/` is accepted by a
//! server-side dry run with RBAC that grants what the controller needs and nothing more.
//! Then the same UpgradePlan assertions on both backends ([`fidelity`]), so the simulator
//! serves the CRD as a real cluster does.
//!
//! What the API server does with a field the CRD does not know (Kubernetes 1.20, no
//! server-side field validation yet): the API **prunes** it silently — the object is
//! stored without it — and kubectl's client-side validation (what kubectl 1.32 falls back
//! to against a server that has no `fieldValidation`) **rejects** it before sending.
//! `engine validate` rejects it too; the controller parses the stored spec with the same
//! parser, so a pruned typo is a field left at its default, which the stored object shows.

mod fidelity;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use baton_testbed::controlplane::{self, ControlPlane};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

/// The repository's root, where `deploy/` and `plans/` are.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl --kubeconfig KUBECONFIG ARGS...`, without blocking the runtime (the simulator
/// serves from the test's own).
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

/// Stdout of a kubectl call that must succeed.
async fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = kubectl(kubeconfig, args).await;
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The UpgradePlan resource, for the dynamic client.
fn upgradeplans() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("baton.dev", "v1alpha1", "UpgradePlan"),
        "upgradeplans",
    )
}

/// Installs `deploy/crd.yaml` and waits until it is established and its schema published.
/// Every test of the binary may call it: the CRD is cluster-wide, and `kubectl apply` of
/// the same file converges.
async fn install_crd(kubeconfig: &Path) {
    let crd = repo().join("deploy/crd.yaml");
    let crd = crd.to_str().expect("a UTF-8 path");
    // Two tests applying at once may both try to create it: one gets AlreadyExists.
    let mut tries = 0;
    loop {
        let out = kubectl(kubeconfig, &["apply", "-f", crd]).await;
        if out.status.success() {
            break;
        }
        tries += 1;
        assert!(
            tries < 5,
            "kubectl apply -f deploy/crd.yaml: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kubectl_ok(
        kubeconfig,
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "crd/upgradeplans.baton.dev",
        ],
    )
    .await;
    // kube-apiserver publishes the schema in its OpenAPI document a moment after the CRD
    // is established; kubectl's client-side validation and `kubectl explain` read it there.
    let published = std::time::Instant::now();
    while !kubectl(kubeconfig, &["explain", "upgradeplan.spec.waves.approval"])
        .await
        .status
        .success()
    {
        assert!(
            published.elapsed() < Duration::from_secs(30),
            "the UpgradePlan schema was not published in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace of its own on the shared control plane.
async fn namespace(cp: &ControlPlane, name: &str) -> String {
    let ns = format!("{name}-{}", std::process::id());
    kubectl_ok(cp.kubeconfig_path(), &["create", "namespace", &ns]).await;
    ns
}

/// Every plan file under `plans/`.
fn plan_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("plans"))
        .expect("plans/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_yaml::from_str(&text).expect("YAML")
}

#[tokio::test]
async fn the_crd_is_established_and_every_plan_is_stored_as_written() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let kubeconfig = cp.kubeconfig_path();
    install_crd(kubeconfig).await;
    let crd: Value = serde_json::from_str(
        &kubectl_ok(
            kubeconfig,
            &["get", "crd", "upgradeplans.baton.dev", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    let status = |ty: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == ty)
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(status("Established").as_deref(), Some("True"), "{crd:#}");
    assert_eq!(status("NamesAccepted").as_deref(), Some("True"));
    assert_eq!(status("NonStructuralSchema"), None, "{conditions:?}");

    let ns = namespace(&cp, "plans").await;
    for file in plan_files() {
        let path = file.to_str().unwrap();
        let out = kubectl_ok(kubeconfig, &["apply", "-n", &ns, "-f", path]).await;
        assert!(out.contains("upgradeplan.baton.dev/"), "{out}");
        let plan = read_yaml(&file);
        let name = plan["metadata"]["name"].as_str().unwrap();
        let stored: Value = serde_json::from_str(
            &kubectl_ok(
                kubeconfig,
                &["get", "upgradeplan", name, "-n", &ns, "-o", "json"],
            )
            .await,
        )
        .unwrap();
        // Nothing pruned, nothing defaulted: the spec is the file's.
        assert_eq!(stored["spec"], plan["spec"], "{}", file.display());
        assert_eq!(stored["metadata"]["generation"], 1);
    }
    // By short name and category, as the CRD declares.
    let names = kubectl_ok(kubeconfig, &["get", "bup", "-n", &ns, "-o", "name"]).await;
    assert_eq!(names.lines().count(), plan_files().len(), "{names}");
    let baton = kubectl_ok(kubeconfig, &["get", "baton", "-n", &ns, "-o", "name"]).await;
    assert_eq!(baton, names);
}

/// RFC 7386 merge of `patch` into `target` (null removes).
fn json_patch_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[tokio::test]
async fn deploy_passes_a_server_dry_run_and_grants_only_what_the_controller_needs() {
    let Some(cp) = controlplane::shared_or_skip().await else {
        return;
    };
    let kubeconfig = cp.kubeconfig_path();
    install_crd(kubeconfig).await;
    // The namespace and the RBAC for real: a dry run of the Deployment needs its
    // namespace, and `kubectl auth can-i` the bindings.
    let rbac = repo().join("deploy/rbac.yaml");
    kubectl_ok(kubeconfig, &["apply", "-f", rbac.to_str().unwrap()]).await;
    let deploy = repo().join("deploy");
    let out = kubectl_ok(
        kubeconfig,
        &["apply", "--dry-run=server", "-f", deploy.to_str().unwrap()],
    )
    .await;
    for object in [
        "customresourcedefinition.apiextensions.k8s.io/upgradeplans.baton.dev",
        "namespace/baton-system",
        "serviceaccount/baton-controller",
        "clusterrole.rbac.authorization.k8s.io/baton-controller",
        "clusterrolebinding.rbac.authorization.k8s.io/baton-controller",
        "deployment.apps/baton-controller",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(object) && l.ends_with("(server dry run)")),
            "{object} in:\n{out}"
        );
    }
    let deployment: Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy.join("controller.yaml")).unwrap())
            .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["controller"])
    );

    // What the controller may do, in a namespace of any plan, as its ServiceAccount.
    let ns = namespace(&cp, "rbac").await;
    let table: [(&str, &str, bool); 22] = [
        ("watch", "upgradeplans.baton.dev", true),
        ("patch", "upgradeplans.baton.dev", true),
        ("update", "upgradeplans.baton.dev/status", true),
        ("patch", "upgradeplans.baton.dev/status", true),
        ("create", "upgradeplans.baton.dev", false),
        ("delete", "upgradeplans.baton.dev", false),
        ("create", "configmaps", true),
        ("update", "configmaps", true),
        ("delete", "configmaps", true),
        ("get", "leases.coordination.k8s.io", true),
        ("update", "leases.coordination.k8s.io", true),
        ("delete", "leases.coordination.k8s.io", false),
        ("create", "events", true),
        ("patch", "pods", true),
        ("watch", "pods", true),
        ("delete", "pods", false),
        ("create", "pods", false),
        ("update", "pods", false),
        ("patch", "statefulsets.apps.kruise.io", true),
        ("delete", "statefulsets.apps.kruise.io", false),
        ("get", "secrets", false),
        ("patch", "statefulsets.apps", false),
    ];
    let user = "system:serviceaccount:baton-system:baton-controller";
    for (verb, resource, allowed) in table {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let mut args = vec!["auth", "can-i", verb, resource, "-n", &ns, "--as", user];
        if !subresource.is_empty() {
            args.extend(["--subresource", subresource]);
        }
        let out = kubectl(kubeconfig, &args).await;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let want = if allowed { "yes" } else { "no" };
        assert_eq!(answer, want, "{verb} {resource} {subresource}");
    }
}
