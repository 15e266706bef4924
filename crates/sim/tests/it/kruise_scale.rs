//! A thousand-replica set rolls to a new template through the controller and kubelet with
//! pods that are ready at once. No timing assertion: the elapsed time is printed for the
//! record (run with `--nocapture`).

use std::time::{Duration, Instant};

use baton_sim::arbiter::{Arbiter, ArbiterConfig};
use baton_sim::controller;
use baton_sim::kubelet::KubeletConfig;
use baton_sim::report::Report;
use baton_sim::store::{Kind, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

const REPLICAS: usize = 1000;

fn state(store: &Store) -> (usize, usize, String, Value) {
    let set = store.get(Kind::StatefulSet, "default", "big").unwrap();
    let update = set["status"]["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pods = store.list(Kind::Pod, Some("default")).0;
    let ready = |p: &Value| {
        p["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    };
    let ready_n = pods.iter().filter(|p| ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| {
            ready(p) && p["metadata"]["labels"]["controller-revision-hash"] == update.as_str()
        })
        .count();
    (ready_n, updated, update, set["status"].clone())
}

/// Waits, looking only at the set's status on set changes (listing a thousand pods on every
/// change would cost more than the controller), until `f` holds for the set.
async fn wait_for_set(store: &Store, what: &str, mut f: impl FnMut(&Value) -> bool) {
    let mut rx = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let check = |f: &mut dyn FnMut(&Value) -> bool| {
        let set = store.get(Kind::StatefulSet, "default", "big").unwrap();
        set["status"]["observedGeneration"] == set["metadata"]["generation"] && f(&set["status"])
    };
    loop {
        if check(&mut f) {
            return;
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => panic!("gave up waiting for {what}: {:?}", state(store).3),
                Ok(Ok(c)) if c.kind == Kind::StatefulSet => break,
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => panic!("store closed"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_replica_set_rolls_to_a_new_template() {
    let store = Store::new();
    let report = Report::new();
    controller::spawn(
        store.clone(),
        report.clone(),
        Arbiter::new(ArbiterConfig::default()),
        KubeletConfig {
            pod_ready_ms: 0,
            ..KubeletConfig::default()
        },
    );
    let started = Instant::now();
    store
        .create(
            Kind::StatefulSet,
            "default",
            json!({
                "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
                "metadata": {"name": "big", "namespace": "default"},
                "spec": {
                    "replicas": REPLICAS,
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": "big"}},
                    "template": {"metadata": {"labels": {"app": "big"}},
                                 "spec": {"containers": [{"name": "main", "image": "alpine:3.18.2"}]}},
                    "updateStrategy": {"type": "RollingUpdate",
                                       "rollingUpdate": {"partition": 0, "maxUnavailable": "10%"}},
                },
            }),
        )
        .unwrap();
    wait_for_set(&store, "every pod ready", |st| {
        st["readyReplicas"] == REPLICAS
    })
    .await;
    assert_eq!(state(&store).0, REPLICAS);
    let created = started.elapsed();
    let first = state(&store).2;

    let rv_before = store.resource_version();
    let rolled = Instant::now();
    store
        .modify(Kind::StatefulSet, "default", "big", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine:3.19.0".into();
            Ok(())
        })
        .unwrap();
    // completeRollingUpdate moves currentRevision only once every pod is updated and ready.
    wait_for_set(&store, "every pod updated and ready", |st| {
        st["updateRevision"] != first.as_str()
            && st["currentRevision"] == st["updateRevision"]
            && st["readyReplicas"] == REPLICAS
    })
    .await;
    let elapsed = rolled.elapsed();
    let writes = store.resource_version() - rv_before;
    let (ready, updated, _, _) = state(&store);
    assert_eq!((ready, updated), (REPLICAS, REPLICAS));
    eprintln!(
        "{REPLICAS} replicas: created and ready in {created:?}; rolled (ReCreate, maxUnavailable 10%) in {elapsed:?} with {writes} writes"
    );
    assert_eq!(report.updates().len(), REPLICAS);
    assert!(report.violations().is_empty());
}
