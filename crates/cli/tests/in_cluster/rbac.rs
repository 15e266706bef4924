//! `deploy/rbac.yaml` is all the controller needs: `engine controller` as the
//! ServiceAccount the Deployment runs as (`system:serviceaccount:baton-system:
//! baton-controller`, by impersonation from the test's admin kubeconfig) runs a plan to the
//! end on the real control plane, its Lease in `baton-system`; and that identity is really
//! the one in use, since it may not delete a pod. The simulator has no RBAC: real only.

use super::*;

const SERVICE_ACCOUNT: &str = "system:serviceaccount:baton-system:baton-controller";

/// The bed's kubeconfig with every user acting as the controller's ServiceAccount.
fn as_service_account(bed: &Bed) -> std::path::PathBuf {
    let mut config: serde_yaml::Value = serde_yaml::from_str(bed.backend.kubeconfig()).unwrap();
    let users = config["users"].as_sequence_mut().expect("kubeconfig users");
    for user in users {
        user["user"]["as"] = SERVICE_ACCOUNT.into();
    }
    let path = bed.dir.path().join("controller.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_the_controller_runs_a_plan_with_only_the_rights_of_deploy_rbac() {
    let Some(bed) = bed(BackendKind::Real, harness::seed()).await else {
        return;
    };
    install_crd(&bed).await;
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let applied = kubectl(
        bed.backend.kubeconfig_path(),
        &["apply", "-f", rbac.to_str().unwrap()],
    )
    .await;
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let kubeconfig = as_service_account(&bed);
    let denied = kubectl(
        &kubeconfig,
        &[
            "delete",
            "pod",
            "sample-0",
            "-n",
            bed.backend.namespace(),
            "--dry-run=server",
        ],
    )
    .await;
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("forbidden"),
        "{}",
        text(&denied.stderr)
    );
    // And a client built as the engine builds its own honours the impersonation too.
    let yaml = std::fs::read_to_string(&kubeconfig).unwrap();
    let client = baton_testbed::controlplane::client_from_kubeconfig(&yaml)
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(client, bed.backend.namespace());
    let dry = kube::api::DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    match pods.delete("sample-0", &dry).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the ServiceAccount deleted a pod: {other:?}"),
    }

    let log = std::fs::File::create(bed.dir.path().join("controller-sa.log")).unwrap();
    let mut args = vec![
        "controller",
        "--namespace",
        "baton-system",
        "--watch-namespace",
        bed.backend.namespace(),
    ];
    args.extend(LEASE);
    let _controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(&args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--state-dir")
        .arg(bed.dir.path().join("sa-state"))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    apply_plan(&bed, "least-privilege").await;
    let done = |s: &Value| harness_settled(phase(s));
    let s = until(&bed, "least-privilege", Duration::from_secs(120), done).await;
    assert_eq!(phase(&s), "Succeeded", "{s:#}\n{}", logs(&bed));
    assert_eq!(s["progress"], "5/5", "{s:#}");
}

/// A phase the controller leaves alone.
fn harness_settled(phase: &str) -> bool {
    matches!(
        phase,
        "Succeeded" | "Failed" | "SafetyStopped" | "Aborted" | "RolledBack"
    )
}
