//! Custom resources (issue #16): the UpgradePlan CRD stored as given, the UpgradePlan
//! served only while it is, and the ConfigMaps the controller checkpoints into, through
//! kube-rs in-process and the `kubectl` binary. Their behaviour against real
//! kube-apiserver is compared in `crates/testbed/tests/it/in_cluster`.

use std::path::Path;

use baton_sim::SimConfig;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde_json::{Value, json};

use super::common::{client, code, seeded};

fn repo_file(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn crds(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    Api::all_with(client.clone(), &resource)
}

fn plans(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("baton.dev", "v1alpha1", "UpgradePlan"),
        "upgradeplans",
    );
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

/// The group-versions `/apis` lists.
async fn groups(client: &kube::Client) -> Vec<String> {
    let list = client.list_api_groups().await.unwrap();
    list.groups.iter().map(|g| g.name.clone()).collect()
}

#[tokio::test]
async fn upgradeplans_are_served_while_their_crd_is_stored() {
    let sim = seeded(SimConfig::default()).await;
    let client = client(&sim);
    let plan = object(repo_file("plans/seed.yaml"));
    let name = "sample-to-3-18-0";

    // Before the CRD: no such resource, not in discovery.
    assert_eq!(
        code(plans(&client).list(&Default::default()).await.unwrap_err()),
        404
    );
    assert_eq!(
        code(
            plans(&client)
                .create(&PostParams::default(), &plan)
                .await
                .unwrap_err()
        ),
        404
    );
    assert!(!groups(&client).await.contains(&"baton.dev".to_string()));

    let crd = crds(&client)
        .create(
            &PostParams::default(),
            &object(repo_file("deploy/crd.yaml")),
        )
        .await
        .unwrap();
    let conditions: Vec<(&str, &str)> = crd.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conditions,
        [("NamesAccepted", "True"), ("Established", "True")]
    );
    assert_eq!(crd.data["status"]["storedVersions"], json!(["v1alpha1"]));
    assert_eq!(crd.metadata.generation, Some(1));
    assert!(groups(&client).await.contains(&"baton.dev".to_string()));
    let resources = client
        .list_api_group_resources("baton.dev/v1alpha1")
        .await
        .unwrap();
    let names: Vec<&str> = resources
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["upgradeplans", "upgradeplans/status"]);
    assert_eq!(
        resources.resources[0].short_names,
        Some(vec!["bup".to_string()])
    );

    let created = plans(&client)
        .create(&PostParams::default(), &plan)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.data["spec"], repo_file("plans/seed.yaml")["spec"]);
    // Status is the status subresource's: a create drops it.
    let mut with_status = plan.clone();
    with_status.metadata.name = Some("with-status".into());
    with_status.data["status"] = json!({"phase": "Succeeded"});
    let created = plans(&client)
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(created.data.get("status").is_none(), "{:?}", created.data);

    // A second CRD of the same name, and a CRD whose name is not plural.group, are refused.
    assert_eq!(
        code(
            crds(&client)
                .create(
                    &PostParams::default(),
                    &object(repo_file("deploy/crd.yaml"))
                )
                .await
                .unwrap_err()
        ),
        409
    );
    let mut misnamed = repo_file("deploy/crd.yaml");
    misnamed["metadata"]["name"] = json!("plans.baton.dev");
    assert_eq!(
        code(
            crds(&client)
                .create(&PostParams::default(), &object(misnamed))
                .await
                .unwrap_err()
        ),
        422
    );

    // Deleting the CRD takes its resources with it.
    crds(&client)
        .delete("upgradeplans.baton.dev", &Default::default())
        .await
        .unwrap();
    assert_eq!(code(plans(&client).get(name).await.unwrap_err()), 404);
    assert!(
        sim.store()
            .list(baton_sim::Kind::UpgradePlan, None)
            .0
            .is_empty()
    );
}

#[tokio::test]
async fn configmaps_take_every_verb_and_watches_see_them() {
    let sim = seeded(SimConfig::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&sim));
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "p.baton-run"}, "data": {"meta": "1"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &map).await.unwrap();
    assert_eq!(created.metadata.generation, None, "configmaps have none");
    let patched = api
        .patch(
            "p.baton-run",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"nodes": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);
    // A patch carrying an old resourceVersion is a precondition that fails.
    let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version},
                       "data": {"meta": "9"}});
    let err = api
        .patch("p.baton-run", &PatchParams::default(), &Patch::Merge(stale))
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    api.delete("p.baton-run", &Default::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events.try_next().await.unwrap() {
            Some(WatchEvent::Added(_)) => seen.push("ADDED"),
            Some(WatchEvent::Modified(_)) => seen.push("MODIFIED"),
            Some(WatchEvent::Deleted(_)) => seen.push("DELETED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_finds_upgradeplans_once_the_crd_is_applied() {
    let sim = seeded(SimConfig::default()).await;
    let served = sim.serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    served.write_kubeconfig(&kubeconfig).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let kubectl = async |args: &[&str]| {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = kubectl(&["get", "upgradeplans"]).await;
    assert!(!ok);
    assert!(
        err.contains("the server doesn't have a resource type \"upgradeplans\""),
        "{err}"
    );
    let crd = repo.join("deploy/crd.yaml");
    let (ok, out, err) = kubectl(&["apply", "-f", crd.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/upgradeplans.baton.dev created"
    );
    let (ok, out, _) = kubectl(&["apply", "-f", crd.to_str().unwrap()]).await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/upgradeplans.baton.dev unchanged"
    );
    let (ok, out, err) = kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "crd/upgradeplans.baton.dev",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("condition met"), "{out}");
    let seed = repo.join("plans/seed.yaml");
    let (ok, out, err) = kubectl(&["apply", "-f", seed.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "upgradeplan.baton.dev/sample-to-3-18-0 created");
    let (ok, out, _) = kubectl(&["apply", "-f", seed.to_str().unwrap()]).await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        "upgradeplan.baton.dev/sample-to-3-18-0 unchanged"
    );
    let (ok, out, err) = kubectl(&["get", "bup"]).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "WAVE", "PROGRESS", "AGE"]);
    let (ok, out, err) = kubectl(&["explain", "upgradeplan.spec.waves.maxPerWave"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("0 = every eligible idle pod at once."),
        "{out}"
    );
    let (ok, out, _) = kubectl(&["get", "crd"]).await;
    assert!(ok);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("upgradeplans.baton.dev"), "{out}");
    served.shutdown();
}
