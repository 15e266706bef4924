//! The UpgradePlan on both backends with the same assertions: the simulator serves the
//! CRD, the custom resource and the ConfigMaps the controller checkpoints into as real
//! kube-apiserver 1.20 does, as far as the controller and `kubectl` can tell.
//!
//! What was compared ("fixed": the simulator differed and now agrees; "agreed": it already
//! did once it served the kinds at all):
//!
//! | behaviour | kube-apiserver 1.20 | simulator | outcome |
//! |---|---|---|---|
//! | `kubectl get upgradeplans`: NAME PHASE WAVE PROGRESS AGE, values from status | yes | yes | agreed |
//! | a column whose status field is absent | empty cell | empty cell | agreed |
//! | status through the main resource; spec through `/status` | ignored | ignored | agreed |
//! | generation: spec changes only, not annotations or status | yes | yes | agreed |
//! | replace / replace_status with a stale resourceVersion | 409 | 409 | agreed |
//! | a field the CRD does not know, through the API | pruned | stored | fixed |
//! | the same through `kubectl apply` | refused (client-side validation) | refused (server-side, `Strict`) | agreed |
//! | enum, `oneOf` of required fields, `maximum`, `maxLength`, `minItems`, `pattern`, a wrong type | 422 naming the field | stored | fixed |
//! | a status phase the CRD does not list; an unknown status field | 422; pruned | stored | fixed |
//! | `kubectl explain upgradeplan…` | the CRD's schema (published a moment after Established) | nothing | fixed |
//! | ConfigMaps: create/AlreadyExists/replace/stale 409/list by label/delete, `kubectl get cm` | yes | yes | agreed |

use baton_testbed::backend::{Backend, BackendKind, Seed};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};

use super::*;

const SEED_PLAN: &str = "sample-to-3-18-0";
const HOOKS_PLAN: &str = "sample-hooks";

async fn backend(kind: BackendKind) -> Option<Backend> {
    let seed = Seed {
        replicas: 1,
        working: vec![0],
        ..Seed::default()
    };
    Backend::start(kind, seed).await.unwrap_or_else(|e| {
        panic!(
            "{kind:?} backend: {}",
            baton_testbed::controlplane::chain(&e)
        )
    })
}

fn api_code(result: Result<impl std::fmt::Debug, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// `kubectl get upgradeplans` as rows of words.
async fn rows(b: &Backend) -> Vec<Vec<String>> {
    let out = kubectl_ok(
        b.kubeconfig_path(),
        &["get", "upgradeplans", "-n", b.namespace()],
    )
    .await;
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

async fn upgradeplans_behave(kind: BackendKind) {
    let Some(b) = backend(kind).await else {
        return;
    };
    let ns = b.namespace();
    install_crd(b.kubeconfig_path()).await;
    for plan in ["seed.yaml", "with-hooks.yaml"] {
        let file = repo().join("plans").join(plan);
        let out = kubectl_ok(
            b.kubeconfig_path(),
            &["apply", "-n", ns, "-f", file.to_str().unwrap()],
        )
        .await;
        assert!(out.ends_with(" created\n"), "{out}");
    }
    // `kubectl explain` reads the CRD's schema, the plan's own doc comments.
    let explained = kubectl_ok(
        b.kubeconfig_path(),
        &["explain", "upgradeplan.spec.waves.approval"],
    )
    .await;
    assert!(
        explained.contains("When to wait for `engine approve`."),
        "{explained}"
    );
    let api: Api<DynamicObject> = Api::namespaced_with(b.client(), ns, &upgradeplans());
    let first = api.get(SEED_PLAN).await.unwrap();
    assert_eq!(first.metadata.generation, Some(1));
    assert!(first.data.get("status").is_none(), "{:?}", first.data);

    // Status only through /status; the main resource ignores it, and it is no spec change.
    let params = PatchParams::default();
    let status = json!({"status": {"phase": "Running", "wave": 2, "progress": "3/5",
                                   "message": "waiting for sample-1 to be Ready"}});
    let patched = api
        .patch_status(SEED_PLAN, &params, &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Running");
    assert_eq!(patched.metadata.generation, Some(1));
    let ignored = api
        .patch(
            SEED_PLAN,
            &params,
            &Patch::Merge(json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.data["status"]["phase"], "Running");
    // The status is checked against the CRD too: a phase it does not list is refused, a
    // field it does not know pruned.
    assert_eq!(
        api_code(
            api.patch_status(
                SEED_PLAN,
                &params,
                &Patch::Merge(json!({"status": {"phase": "Paused"}})),
            )
            .await
        ),
        422
    );
    let pruned = api
        .patch_status(
            SEED_PLAN,
            &params,
            &Patch::Merge(json!({"status": {"lastWave": 1}})),
        )
        .await
        .unwrap();
    assert!(
        pruned.data["status"].get("lastWave").is_none(),
        "{:?}",
        pruned.data
    );
    let spec_only = api
        .patch_status(
            SEED_PLAN,
            &params,
            &Patch::Merge(json!({"spec": {"waves": {"maxPerWave": 7}}})),
        )
        .await
        .unwrap();
    assert_eq!(spec_only.data["spec"]["waves"]["maxPerWave"], 0);

    // The generation counts spec changes only: not annotations (approve/abort requests).
    let annotated = api
        .patch(
            SEED_PLAN,
            &params,
            &Patch::Merge(
                json!({"metadata": {"annotations": {"baton.dev/approve": "{\"by\":\"ann\"}"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(annotated.metadata.generation, Some(1));
    let respecced = api
        .patch(
            SEED_PLAN,
            &params,
            &Patch::Merge(json!({"spec": {"waves": {"maxPerWave": 1}}})),
        )
        .await
        .unwrap();
    assert_eq!(respecced.metadata.generation, Some(2));

    // A write from a stale read is refused.
    let mut stale = first.clone();
    stale.data["spec"]["waves"]["maxPerWave"] = json!(2);
    assert_eq!(
        api_code(api.replace(SEED_PLAN, &PostParams::default(), &stale).await),
        409
    );
    assert_eq!(
        api_code(
            api.replace_status(SEED_PLAN, &PostParams::default(), &stale)
                .await
        ),
        409
    );

    // kubectl shows the CRD's columns with the status's values.
    let table = rows(&b).await;
    assert_eq!(table[0], ["NAME", "PHASE", "WAVE", "PROGRESS", "AGE"]);
    let row = |name: &str| {
        table
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} in {table:?}"))
            .clone()
    };
    let seed_row = row(SEED_PLAN);
    assert_eq!(seed_row[..4], [SEED_PLAN, "Running", "2", "3/5"]);
    assert!(seed_row[4].ends_with('s'), "{seed_row:?}");
    assert_eq!(row(HOOKS_PLAN)[..1], [HOOKS_PLAN]);
    assert_eq!(row(HOOKS_PLAN).len(), 2, "no status: empty cells");

    // A watch sees status writes.
    let rv = respecced.metadata.resource_version.clone().unwrap();
    let mut watch = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch_status(
        SEED_PLAN,
        &params,
        &Patch::Merge(json!({"status": {"phase": "Succeeded", "progress": "5/5"}})),
    )
    .await
    .unwrap();
    let seen = loop {
        match watch.try_next().await.unwrap() {
            Some(WatchEvent::Modified(o)) if o.metadata.name.as_deref() == Some(SEED_PLAN) => {
                break o;
            }
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("expected the status change, got {other:?}"),
        }
    };
    assert_eq!(seen.data["status"]["phase"], "Succeeded");
    assert_eq!(seen.data["status"]["wave"], 2, "a merge keeps the rest");

    checkpoint_configmaps(&b, &respecced).await;
    refusals(&b).await;
}

/// What the API server does with a plan it cannot take: an unknown field is pruned (and
/// refused by kubectl), a value the schema forbids is `422 Invalid` naming the field.
async fn refusals(b: &Backend) {
    let ns = b.namespace();
    let api: Api<DynamicObject> = Api::namespaced_with(b.client(), ns, &upgradeplans());
    let seed = read_yaml(&repo().join("plans/seed.yaml"));

    let mut plan = seed.clone();
    plan["metadata"]["name"] = json!("typo");
    plan["spec"]["waves"]["maxPerWaev"] = json!(1);
    plan["spec"]["bogus"] = json!({"a": 1});
    let object: DynamicObject = serde_json::from_value(plan.clone()).unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    let stored = serde_json::to_value(&created).unwrap();
    assert!(stored["spec"].get("bogus").is_none(), "{stored:#}");
    assert!(stored["spec"]["waves"].get("maxPerWaev").is_none());
    assert_eq!(stored["spec"]["waves"]["maxPerWave"], 0);
    // kubectl refuses it: on the client against 1.20 (no server-side field validation),
    // on the server against the simulator (which claims 1.32).
    let file = tempfile::NamedTempFile::new().unwrap();
    plan["metadata"]["name"] = json!("typo-kubectl");
    std::fs::write(file.path(), serde_yaml::to_string(&plan).unwrap()).unwrap();
    let out = kubectl(
        b.kubeconfig_path(),
        &["apply", "-n", ns, "-f", file.path().to_str().unwrap()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
    assert!(stderr.contains("maxPerWaev"), "{stderr}");

    // `approval:` alone (null) is a hook: the one action, kept as written.
    let mut bare = seed.clone();
    bare["metadata"]["name"] = json!("bare-approval");
    bare["spec"]["hooks"] = json!({"afterRollout": [{"name": "sign-off", "approval": null}]});
    let object: DynamicObject = serde_json::from_value(bare).unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(
        created.data["spec"]["hooks"]["afterRollout"],
        json!([{"name": "sign-off", "approval": null}])
    );

    let table: Vec<(&str, Value, &str)> = vec![
        (
            "an approval mode that does not exist",
            json!({"waves": {"approval": "sometimes"}}),
            "spec.waves.approval",
        ),
        (
            "a hook with two actions",
            json!({"hooks": {"beforeWave": [{"name": "two", "sleep": {"duration": "1s"}, "approval": {}}]}}),
            "spec.hooks.beforeWave",
        ),
        (
            "a hook with no action",
            json!({"hooks": {"afterRollout": [{"name": "none"}]}}),
            "spec.hooks.afterRollout",
        ),
        ("no arbiter", json!({"arbiter": null}), "spec.arbiter"),
        (
            "too many retries",
            json!({"arbiter": {"retries": 11}}),
            "spec.arbiter.retries",
        ),
        (
            "a count of the wrong type",
            json!({"waves": {"maxPerWave": "two"}}),
            "spec.waves.maxPerWave",
        ),
        (
            "a duration without a unit",
            json!({"waves": {"readyTimeout": "10"}}),
            "spec.waves.readyTimeout",
        ),
        (
            "a name longer than a DNS label",
            json!({"target": {"namespace": "n".repeat(64)}}),
            "spec.target.namespace",
        ),
        (
            "an exec hook without a command",
            json!({"hooks": {"beforeWave": [{"name": "x", "exec": {"command": []}}]}}),
            "spec.hooks.beforeWave",
        ),
    ];
    for (i, (what, change, field)) in table.into_iter().enumerate() {
        let mut plan = seed.clone();
        plan["metadata"]["name"] = json!(format!("invalid-{i}"));
        json_patch_merge(&mut plan["spec"], &change);
        let object: DynamicObject = serde_json::from_value(plan).unwrap();
        let err = api
            .create(&PostParams::default(), &object)
            .await
            .expect_err(what);
        let kube::Error::Api(status) = err else {
            panic!("{what}: {err}");
        };
        assert_eq!(status.code, 422, "{what}: {status:?}");
        assert!(status.message.contains(field), "{what}: {}", status.message);
    }
}

/// What the run store does with its companion ConfigMaps: create them owned by the plan,
/// update with a resourceVersion precondition (409 for a second writer), list, delete.
async fn checkpoint_configmaps(b: &Backend, plan: &DynamicObject) {
    let api: Api<ConfigMap> = Api::namespaced(b.client(), b.namespace());
    let name = format!("{SEED_PLAN}.baton-run");
    let owner = json!({"apiVersion": "baton.dev/v1alpha1", "kind": "UpgradePlan",
                       "name": SEED_PLAN, "uid": plan.metadata.uid, "controller": true});
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"baton.dev/plan": SEED_PLAN},
                     "ownerReferences": [owner]},
        "data": {"meta": "{\"seq\":1}"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &map).await.unwrap();
    assert_eq!(
        api_code(api.create(&PostParams::default(), &map).await),
        409,
        "AlreadyExists"
    );
    let mut next = created.clone();
    next.data = Some([("meta".to_string(), "{\"seq\":2}".to_string())].into());
    let updated = api
        .replace(&name, &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // Another writer still holding the first version.
    let mut late = created.clone();
    late.data = Some([("meta".to_string(), "{\"seq\":9}".to_string())].into());
    assert_eq!(
        api_code(api.replace(&name, &PostParams::default(), &late).await),
        409
    );
    let listed = api
        .list(&ListParams::default().labels(&format!("baton.dev/plan={SEED_PLAN}")))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].data.as_ref().unwrap()["meta"],
        "{\"seq\":2}"
    );
    let words = kubectl_ok(
        b.kubeconfig_path(),
        &["get", "cm", &name, "-n", b.namespace()],
    )
    .await;
    let header: Vec<&str> = words.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"]);
    api.delete(&name, &Default::default()).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgradeplans_on_the_simulator() {
    upgradeplans_behave(BackendKind::Sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgradeplans_on_the_real_control_plane() {
    upgradeplans_behave(BackendKind::Real).await;
}
