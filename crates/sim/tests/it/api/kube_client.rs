//! kube-rs against the simulator: selectors, watches, conflicts, the four
//! patch types, the status subresource, CRD validation, discovery, events,
//! and the same client over TCP with a kubeconfig.

use std::time::Duration;

use baton_sim::SimConfig;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ListParams, ObjectList, Patch, PatchParams, PostParams, ResourceExt, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

use super::common::{asts, client, code, eventually, seeded, status};

fn names(list: ObjectList<Pod>) -> Vec<String> {
    list.items.iter().map(|p| p.name_any()).collect()
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let lp = ListParams::default();
    let cases: [(&str, &str, &[&str]); 6] = [
        ("working=true", "", &["sample-0", "sample-2", "sample-4"]),
        (
            "working in (false),app=sample",
            "",
            &["sample-1", "sample-3"],
        ),
        ("working notin (true)", "", &["sample-1", "sample-3"]),
        ("!working", "", &[]),
        ("", "metadata.name=sample-2", &["sample-2"]),
        (
            "working=true",
            "metadata.name!=sample-0",
            &["sample-2", "sample-4"],
        ),
    ];
    for (labels, fields, want) in cases {
        let got = names(
            pods.list(&lp.clone().labels(labels).fields(fields))
                .await
                .unwrap(),
        );
        assert_eq!(got, want, "labels {labels:?} fields {fields:?}");
    }
    let err = pods
        .list(&lp.clone().labels("working in ("))
        .await
        .unwrap_err();
    assert_eq!(code(err), 400);
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = pods
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(first), ["sample-0", "sample-1"]);
    assert_eq!(names(second), ["sample-2", "sample-3", "sample-4"]);
}

#[tokio::test]
async fn a_paged_list_is_one_snapshot_and_a_watch_from_it_sees_writes_between_pages() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Written after the first page: the rest of the list still shows the pod as it was.
    let patch = Patch::Merge(json!({"metadata": {"labels": {"between": "pages"}}}));
    pods.patch("sample-3", &PatchParams::default(), &patch)
        .await
        .unwrap();
    let rest = pods
        .list(&ListParams::default().continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let listed = rest
        .items
        .iter()
        .find(|p| p.name_any() == "sample-3")
        .unwrap();
    assert!(!listed.labels().contains_key("between"));
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Modified(p)) => {
            assert_eq!(p.name_any(), "sample-3");
            assert_eq!(p.labels()["between"], "pages");
        }
        other => panic!("expected the write between the pages, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for name in ["sample-1", "sample-3"] {
        let patch = Patch::Merge(json!({"metadata": {"labels": {"seen": name}}}));
        pods.patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    for want in ["sample-1", "sample-3"] {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Modified(p)) => assert_eq!(p.name_any(), want),
            other => panic!("expected a modification of {want}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let patch = Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}));
    pods.patch("sample-1", &PatchParams::default(), &patch)
        .await
        .unwrap();
    sim.store().compact();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn the_runtime_watcher_relists_after_410_and_sees_later_changes() {
    let sim = seeded(SimConfig::default()).await;
    // Each watch stream ends after one event; re-watches wait 400 ms, long
    // enough for the history to be compacted in between.
    sim.faults().set(
        serde_json::from_value(json!({
            "watchCutAfter": 1,
            "latency": [{"verb": "watch", "resource": "pods", "ms": 400}]
        }))
        .unwrap(),
    );
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(pods.clone(), watcher::Config::default());
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    let mut inits = 0;
    while inits == 0 {
        if let Ok(watcher::Event::InitDone) = rx.recv().await.unwrap() {
            inits += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"step": v}}}));
    pods.patch("sample-1", &PatchParams::default(), &label("one"))
        .await
        .unwrap();
    // The stream is cut after sample-1's event. The next change is forgotten
    // before the watcher resumes, so its resumption is too old: it gets 410,
    // lists again, and sees sample-3's latest label in the relist.
    pods.patch("sample-3", &PatchParams::default(), &label("lost"))
        .await
        .unwrap();
    sim.store().compact();
    pods.patch("sample-3", &PatchParams::default(), &label("two"))
        .await
        .unwrap();
    let mut relisted_with_two = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !relisted_with_two {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the watcher relists")
            .unwrap();
        if let Ok(watcher::Event::InitApply(p)) = ev {
            relisted_with_two |= p.name_any() == "sample-3"
                && p.labels().get("step").map(String::as_str) == Some("two");
        }
    }
    let lists = sim.report()["requests"]["list pods"].as_u64().unwrap();
    assert!(lists >= 2, "the watcher listed {lists} times");
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_conflicts() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let stale = pods.get("sample-1").await.unwrap();
    let mut fresh = stale.clone();
    fresh.labels_mut().insert("v".into(), "1".into());
    pods.replace("sample-1", &PostParams::default(), &fresh)
        .await
        .unwrap();
    let err = status(
        pods.replace("sample-1", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    let leases: Api<Lease> = Api::default_namespaced(client(&sim));
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "baton-sample"}, "spec": {"holderIdentity": "a"}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut taken = created.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("baton-sample", &PostParams::default(), &taken)
        .await
        .unwrap();
    let mut late = created;
    late.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("baton-sample", &PostParams::default(), &late)
        .await
        .unwrap_err();
    assert_eq!(code(err), 409);
    let err = leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert_eq!(status(err).reason, "AlreadyExists");
}

#[tokio::test]
async fn merge_and_strategic_patches_differ_on_containers() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let pp = PatchParams::default();
    let strategic = Patch::Strategic(
        json!({"spec": {"containers": [{"name": "main", "image": "alpine:3.19"}]}}),
    );
    let p = pods.patch("sample-1", &pp, &strategic).await.unwrap();
    let main = &p.spec.unwrap().containers[0];
    assert_eq!(main.image.as_deref(), Some("alpine:3.19"));
    assert!(
        main.command.is_some(),
        "strategic merge keeps the other container fields"
    );

    let merge = Patch::Merge(json!({"metadata": {"labels": {"working": null, "m": "1"}}}));
    let p = pods.patch("sample-3", &pp, &merge).await.unwrap();
    assert_eq!(p.labels().get("m").map(String::as_str), Some("1"));
    assert!(!p.labels().contains_key("working"));

    // A custom resource takes no strategic merge patch, as on a real cluster.
    let err = asts(&client(&sim))
        .patch("sample", &pp, &Patch::Strategic(json!({"spec": {}})))
        .await
        .unwrap_err();
    assert_eq!(code(err), 415);
}

#[tokio::test]
async fn json_patches_apply_and_a_failing_test_op_is_invalid() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let pp = PatchParams::default();
    let ops = |v: serde_json::Value| Patch::<()>::Json(serde_json::from_value(v).unwrap());
    let ok = ops(json!([
        {"op": "test", "path": "/metadata/labels/working", "value": "false"},
        {"op": "add", "path": "/metadata/labels/baton.dev~1selected", "value": "true"}
    ]));
    let p = pods.patch("sample-1", &pp, &ok).await.unwrap();
    assert_eq!(
        p.labels().get("baton.dev/selected").map(String::as_str),
        Some("true")
    );
    let failing = ops(json!([{"op": "test", "path": "/metadata/labels/working", "value": "true"}]));
    let err = pods.patch("sample-1", &pp, &failing).await.unwrap_err();
    assert_eq!(code(err), 422);
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let sim = seeded(SimConfig::default()).await;
    let leases: Api<Lease> = Api::default_namespaced(client(&sim));
    let pp = PatchParams::apply("baton-test").force();
    let apply = |holder: &str| {
        Patch::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "applied", "labels": {"holder": holder}},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}
        }))
    };
    let first = leases.patch("applied", &pp, &apply("a")).await.unwrap();
    assert_eq!(first.spec.unwrap().holder_identity.as_deref(), Some("a"));
    let second = leases.patch("applied", &pp, &apply("b")).await.unwrap();
    assert_eq!(second.spec.unwrap().holder_identity.as_deref(), Some("b"));
    assert_ne!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
    let err = leases
        .patch("applied", &PatchParams::default(), &apply("c"))
        .await
        .unwrap_err();
    assert_eq!(code(err), 400, "apply needs a field manager");
}

#[tokio::test]
async fn the_status_subresource_splits_spec_from_status() {
    let sim = seeded(SimConfig::default()).await;
    let sets = asts(&client(&sim));
    let pp = PatchParams::default();
    let before = sets.get("sample").await.unwrap();
    let generation = before.metadata.generation.unwrap();

    // Status sent to the main resource is ignored.
    let p = sets
        .patch(
            "sample",
            &pp,
            &Patch::Merge(json!({"status": {"labelSelector": "ignored"}})),
        )
        .await
        .unwrap();
    assert_ne!(p.data["status"]["labelSelector"], "ignored");
    assert_eq!(p.metadata.generation, Some(generation));

    // Spec sent to /status is ignored; status is taken.
    let p = sets
        .patch_status(
            "sample",
            &pp,
            &Patch::Merge(
                json!({"spec": {"replicas": 9}, "status": {"labelSelector": "via-status"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.data["spec"]["replicas"], 5);
    assert_eq!(p.data["status"]["labelSelector"], "via-status");
    assert_eq!(p.metadata.generation, Some(generation));

    // A spec change bumps the generation.
    let partition =
        Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 4}}}}));
    let p = sets.patch("sample", &pp, &partition).await.unwrap();
    assert_eq!(p.metadata.generation, Some(generation + 1));
}

#[tokio::test]
async fn the_asts_schema_and_webhook_rules_reject_bad_specs() {
    let sim = seeded(SimConfig::default()).await;
    let sets = asts(&client(&sim));
    let pp = PatchParams::default();
    let ru = |v: serde_json::Value| {
        Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": v}}}))
    };
    let cases = [
        (
            "a negative partition",
            ru(json!({"partition": -1})),
            "partition",
        ),
        (
            "a percentage partition",
            ru(json!({"partition": "50%"})),
            "partition",
        ),
        (
            "a weight above 100",
            ru(
                json!({"unorderedUpdate": {"priorityStrategy": {"weightPriority": [
            {"weight": 101, "matchSelector": {"matchLabels": {"working": "false"}}}]}}}),
            ),
            "weight",
        ),
        (
            "OrderedReady",
            Patch::Merge(json!({"spec": {"podManagementPolicy": "OrderedReady"}})),
            "podManagementPolicy",
        ),
    ];
    for (name, patch, field) in cases {
        let s = status(sets.patch("sample", &pp, &patch).await.unwrap_err());
        assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{name}");
        let causes = s.details.unwrap().causes;
        assert!(
            causes.iter().any(|c| c.field.contains(field)),
            "{name}: {causes:?}"
        );
    }
    let s = sets.get("sample").await.unwrap();
    assert_eq!(
        s.data["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 5,
        "nothing was written"
    );
}

#[tokio::test]
async fn discovery_finds_every_served_resource() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    assert_eq!(c.apiserver_version().await.unwrap().minor, "32");
    let discovery = kube::Discovery::new(c).run().await.unwrap();
    for (group, kind) in [
        ("", "Pod"),
        ("apps.kruise.io", "StatefulSet"),
        ("coordination.k8s.io", "Lease"),
        ("events.k8s.io", "Event"),
        ("", "Namespace"),
    ] {
        let found = discovery
            .groups()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, _)| ar.kind == kind);
        assert!(found, "{group}/{kind}");
    }
}

#[tokio::test]
async fn events_are_recorded_through_the_events_api() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    let set = asts(&c).get("sample").await.unwrap();
    let recorder = Recorder::new(c.clone(), Reporter::from("baton-test"));
    let event = Event {
        type_: EventType::Normal,
        reason: "WaveStarted".into(),
        note: Some("wave 1".into()),
        action: "Rollout".into(),
        secondary: None,
    };
    recorder
        .publish(&event, &set.object_ref(&super::common::asts_resource()))
        .await
        .unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::default_namespaced(c);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("WaveStarted"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_the_written_kubeconfig_works_over_tcp() {
    let sim = seeded(SimConfig::default()).await;
    let served = sim.serve().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    served.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let c = kube::Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        5
    );
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let p = Patch::Merge(json!({"metadata": {"labels": {"tcp": "yes"}}}));
    pods.patch("sample-4", &PatchParams::default(), &p)
        .await
        .unwrap();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Modified(p)) => {
            assert_eq!(p.labels().get("tcp").map(String::as_str), Some("yes"))
        }
        other => panic!("expected the label change, got {other:?}"),
    }
    eventually("the report to count the requests", async || {
        sim.report()["requests"]["watch pods"].as_u64() == Some(1)
    })
    .await;
    served.shutdown();
}

#[tokio::test]
async fn a_label_selected_watch_sees_objects_enter_and_leave_the_selection() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().labels("working=true"), &rv)
        .await
        .unwrap()
        .boxed();
    let relabel = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"working": v}}}));
    pods.patch("sample-0", &PatchParams::default(), &relabel("false"))
        .await
        .unwrap();
    pods.patch("sample-1", &PatchParams::default(), &relabel("true"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Deleted(p)) => seen.push(format!("DELETED {}", p.name_any())),
            Some(WatchEvent::Added(p)) => seen.push(format!("ADDED {}", p.name_any())),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["DELETED sample-0", "ADDED sample-1"]);
}

#[tokio::test]
async fn watches_get_bookmarks_when_they_allow_them() {
    let sim = seeded(SimConfig {
        bookmark_every: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Bookmark(b)) => {
            let at: u64 = b.metadata.resource_version.parse().unwrap();
            assert!(at >= rv.parse::<u64>().unwrap());
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn the_watcher_can_use_streaming_lists() {
    let sim = seeded(SimConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(client(&sim));
    let mut stream = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    let mut applied = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::InitApply(_)) => applied += 1,
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => panic!("the watcher ended"),
        }
    }
    assert_eq!(applied, 5);
    assert_eq!(
        sim.report()["requests"]["list pods"],
        serde_json::Value::Null,
        "no list was needed"
    );
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found_and_dry_runs_write_nothing() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}})).unwrap();
    let elsewhere: Api<Lease> = Api::namespaced(c.clone(), "nowhere");
    let s = status(
        elsewhere
            .create(&PostParams::default(), &lease)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    let here: Api<Lease> = Api::default_namespaced(c);
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    here.create(&pp, &lease).await.unwrap();
    assert_eq!(code(here.get("l").await.unwrap_err()), 404);
}
