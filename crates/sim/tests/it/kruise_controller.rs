//! The Kruise controller and kubelet running against the store (no HTTP): rollouts driven the
//! way the engine drives them, checked on the pods themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_sim::arbiter::{Arbiter, ArbiterConfig};
use baton_sim::controller;
use baton_sim::kubelet::KubeletConfig;
use baton_sim::report::Report;
use baton_sim::store::{ChangeType, Kind, Store};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

const NS: &str = "default";

struct Sim {
    store: Store,
    report: Report,
    arbiter: Arbiter,
}

fn start(pod_ready_ms: u64) -> Sim {
    let store = Store::new();
    let report = Report::new();
    let arbiter = Arbiter::new(ArbiterConfig::default());
    controller::spawn(
        store.clone(),
        report.clone(),
        arbiter.clone(),
        KubeletConfig {
            pod_ready_ms,
            ..KubeletConfig::default()
        },
    );
    Sim {
        store,
        report,
        arbiter,
    }
}

/// An ASTS `web` with the example's template and the given update strategy.
fn asts(replicas: i64, parallel: bool, rolling: Value) -> Value {
    json!({
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "podManagementPolicy": if parallel { "Parallel" } else { "OrderedReady" },
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
                                  "containers": [{"name": "main", "image": "alpine:3.18.2"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
        },
    })
}

fn pods(store: &Store) -> BTreeMap<String, Value> {
    store
        .list(Kind::Pod, Some(NS))
        .0
        .into_iter()
        .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p))
        .collect()
}

fn set(store: &Store) -> Value {
    store.get(Kind::StatefulSet, NS, "web").unwrap()
}

fn rev(p: &Value) -> String {
    p["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap().to_string()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn update_revision(store: &Store) -> String {
    set(store)["status"]["updateRevision"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits (on store changes, bounded so a broken controller fails instead of hanging) until
/// `f` holds.
async fn wait_until(store: &Store, what: &str, mut f: impl FnMut(&Store) -> bool) {
    let mut rx = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if f(store) {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!(
                "gave up waiting for {what}; set status {}, pods {:#?}",
                set(store)["status"],
                pods(store)
                    .values()
                    .map(|p| (p["metadata"]["name"].clone(), rev(p), ready(p)))
                    .collect::<Vec<_>>()
            ),
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => panic!("store closed"),
        }
    }
}

/// Waits until the set's status has observed its generation and `n` pods are Ready.
async fn settle(store: &Store, n: usize) {
    wait_until(store, "the set to settle", |s| {
        let set = set(s);
        set["status"]["observedGeneration"] == set["metadata"]["generation"]
            && pods(s).values().filter(|p| ready(p)).count() == n
            && pods(s).len() == n
    })
    .await;
}

/// Follows the store's change stream from now until `done` holds, replaying every pod change
/// onto a local copy; returns the most pods of `total` that were missing or unready at once.
async fn worst_unavailable(
    store: &Store,
    total: usize,
    start: impl FnOnce(),
    mut done: impl FnMut(&Store) -> bool,
) -> usize {
    let mut rx = store.subscribe();
    let mut local: BTreeMap<String, bool> = pods(store)
        .iter()
        .map(|(n, p)| (n.clone(), ready(p)))
        .collect();
    start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut worst = 0;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("the rollout did not finish: {:?}", updated(store)),
            Ok(Err(RecvError::Lagged(_))) => panic!("lagged behind the store"),
            Ok(Err(RecvError::Closed)) => panic!("store closed"),
            Ok(Ok(c)) => {
                if c.kind == Kind::Pod {
                    if c.change == ChangeType::Deleted {
                        local.remove(&c.name);
                    } else {
                        local.insert(c.name.clone(), ready(&c.object));
                    }
                    let up = local.values().filter(|r| **r).count();
                    worst = worst.max(total - up);
                }
            }
        }
        if rx.is_empty() && done(store) {
            return worst;
        }
    }
}

/// Waits until the controller has reconciled the set after every write made so far, so a
/// check that nothing happened needs no sleep: bumps the generation with a spec change the
/// controller acts on no differently (`revisionHistoryLimit` one higher, with one or two
/// revisions around) and waits until `status.observedGeneration` reaches it. A pass writes
/// pods before the set's status, so whatever the controller was going to do to pods given
/// what was written before is done by then.
async fn controller_caught_up(store: &Store) {
    patch_set(store, |v| {
        let limit = v["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10);
        v["spec"]["revisionHistoryLimit"] = (limit + 1).into();
    });
    let generation = set(store)["metadata"]["generation"].clone();
    wait_until(store, "the controller to observe the later write", |s| {
        set(s)["status"]["observedGeneration"] == generation
    })
    .await;
}

fn patch_set(store: &Store, f: impl FnOnce(&mut Value)) {
    store
        .modify(Kind::StatefulSet, NS, "web", |s| {
            f(s);
            Ok(())
        })
        .unwrap();
}

fn label(store: &Store, pod: &str, key: &str, value: Option<&str>) {
    store
        .modify(Kind::Pod, NS, pod, |p| {
            match value {
                Some(v) => p["metadata"]["labels"][key] = v.into(),
                None => {
                    p["metadata"]["labels"].as_object_mut().unwrap().remove(key);
                }
            }
            Ok(())
        })
        .unwrap();
}

fn set_image(store: &Store, image: &str) {
    patch_set(store, |s| {
        s["spec"]["template"]["spec"]["containers"][0]["image"] = image.into()
    });
}

fn set_partition(store: &Store, p: i64) {
    patch_set(store, |s| {
        s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = p.into()
    });
}

/// Names of the pods at the update revision.
fn updated(store: &Store) -> Vec<String> {
    let u = update_revision(store);
    pods(store)
        .into_iter()
        .filter(|(_, p)| rev(p) == u)
        .map(|(n, _)| n)
        .collect()
}

/// Waits until exactly `names` are at the update revision and every pod is Ready.
async fn wait_updated(store: &Store, names: &[&str], total: usize) {
    let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    wait_until(store, &format!("exactly {want:?} updated and ready"), |s| {
        let set = set(s);
        set["status"]["observedGeneration"] == set["metadata"]["generation"]
            && updated(s) == want
            && pods(s).len() == total
            && pods(s).values().all(ready)
    })
    .await;
}

fn seed_roles(sim: &Sim, working: &[usize], replicas: usize) {
    let members: Vec<(String, bool)> = (0..replicas)
        .map(|i| (format!("web-{i}"), working.contains(&i)))
        .collect();
    sim.arbiter.seed(&members);
    for (name, w) in &members {
        label(
            &sim.store,
            name,
            "working",
            Some(if *w { "true" } else { "false" }),
        );
    }
}

fn select(store: &Store, selected: &[usize], replicas: usize) {
    for i in 0..replicas {
        let name = format!("web-{i}");
        label(
            store,
            &name,
            "baton.dev/selected",
            selected.contains(&i).then_some("true"),
        );
    }
}

fn seed_strategy(partition: i64, max_unavailable: Value) -> Value {
    json!({
        "partition": partition,
        "maxUnavailable": max_unavailable,
        "podUpdatePolicy": "InPlaceIfPossible",
        "unorderedUpdate": {"priorityStrategy": {"weightPriority": [
            {"weight": 100, "matchSelector": {"matchLabels": {"baton.dev/selected": "true"}}},
            {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}},
            {"weight": 30, "matchSelector": {"matchLabels": {"working": "true"}}},
        ]}},
    })
}

#[tokio::test]
async fn the_seed_walkthrough_updates_exactly_the_selected_idle_pods_in_each_wave() {
    let sim = start(0);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(5, true, seed_strategy(5, json!(1))),
    )
    .unwrap();
    settle(s, 5).await;
    seed_roles(&sim, &[0, 2, 4], 5);
    let before: BTreeMap<String, String> =
        pods(s).iter().map(|(n, p)| (n.clone(), uid(p))).collect();
    let old_rev = update_revision(s);

    // protect + apply-update: nothing moves.
    set_image(s, "alpine:3.18.0");
    wait_until(s, "a new update revision", |s| {
        update_revision(s) != old_rev
    })
    .await;
    wait_updated(s, &[], 5).await;

    // Wave 1: idle {1,3}.
    select(s, &[1, 3], 5);
    set_partition(s, 3);
    wait_updated(s, &["web-1", "web-3"], 5).await;

    // Handover: promote {1,3}, demote {0,2}; wave 2: {0,2}.
    seed_roles(&sim, &[1, 3, 4], 5);
    select(s, &[0, 2], 5);
    set_partition(s, 1);
    wait_updated(s, &["web-0", "web-1", "web-2", "web-3"], 5).await;

    // Handover: promote {0}, demote {4}; wave 3: {4}.
    seed_roles(&sim, &[0, 1, 3], 5);
    select(s, &[4], 5);
    set_partition(s, 0);
    wait_updated(s, &["web-0", "web-1", "web-2", "web-3", "web-4"], 5).await;

    // In place: same pods, same UIDs; the rollout completed in Kruise's eyes.
    let after: BTreeMap<String, String> =
        pods(s).iter().map(|(n, p)| (n.clone(), uid(p))).collect();
    assert_eq!(before, after);
    wait_until(s, "currentRevision to catch up", |s| {
        set(s)["status"]["currentRevision"] == set(s)["status"]["updateRevision"]
    })
    .await;
    let order: Vec<String> = sim.report.updates().iter().map(|u| u.pod.clone()).collect();
    assert_eq!(order.len(), 5);
    let mut wave1 = order[..2].to_vec();
    wave1.sort();
    assert_eq!(wave1, ["web-1", "web-3"]);
    assert_eq!(order[4], "web-4");
    assert!(
        sim.report.violations().is_empty(),
        "{:?}",
        sim.report.violations()
    );
    assert!(
        sim.report
            .updates()
            .iter()
            .all(|u| u.label.as_deref() == Some("false"))
    );
}

#[tokio::test]
async fn an_in_place_update_keeps_the_uid_and_restarts_the_container() {
    let sim = start(50);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(3, true, seed_strategy(0, json!(1))),
    )
    .unwrap();
    settle(s, 3).await;
    let before = pods(s);
    set_image(s, "alpine:3.19.0");
    wait_updated(s, &["web-0", "web-1", "web-2"], 3).await;
    for (name, p) in pods(s) {
        let old = &before[&name];
        assert_eq!(uid(&p), uid(old), "{name} kept its UID");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["image"], "alpine:3.19.0");
        assert_eq!(cs["restartCount"], 1);
        assert_ne!(
            cs["imageID"],
            old["status"]["containerStatuses"][0]["imageID"]
        );
        let gate = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "InPlaceUpdateReady")
            .cloned()
            .unwrap();
        assert_eq!(gate["status"], "True");
        assert!(p["metadata"]["annotations"]["apps.kruise.io/inplace-update-state"].is_string());
    }
}

#[tokio::test]
async fn a_working_pod_deleted_mid_rollout_comes_back_at_the_revision_kruise_chooses() {
    let sim = start(0);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(5, true, seed_strategy(5, json!(1))),
    )
    .unwrap();
    settle(s, 5).await;
    seed_roles(&sim, &[0, 2, 4], 5);
    let old_rev = update_revision(s);
    set_image(s, "alpine:3.18.0");
    wait_until(s, "a new update revision", |s| {
        update_revision(s) != old_rev
    })
    .await;
    select(s, &[1, 3], 5);
    set_partition(s, 3);
    wait_updated(s, &["web-1", "web-3"], 5).await;

    // Partition 3, other old pods {2,4}: 2 < 3, so pod 0 returns at the current revision.
    let uid0 = uid(&pods(s)["web-0"]);
    controller::delete_pod(s, NS, "web-0").unwrap();
    wait_until(s, "web-0 recreated", |s| {
        pods(s)
            .get("web-0")
            .is_some_and(|p| uid(p) != uid0 && ready(p))
    })
    .await;
    assert_eq!(rev(&pods(s)["web-0"]), old_rev);

    // Paused with partition 2: nothing updates, but a deleted pod is recreated by the
    // partition rule: other old pods {0,2} = 2, not < 2, so pod 4 returns updated.
    patch_set(s, |v| {
        v["spec"]["updateStrategy"]["rollingUpdate"]["paused"] = true.into();
        v["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2.into();
    });
    wait_updated(s, &["web-1", "web-3"], 5).await;
    let uid4 = uid(&pods(s)["web-4"]);
    controller::delete_pod(s, NS, "web-4").unwrap();
    wait_until(s, "web-4 recreated", |s| {
        pods(s)
            .get("web-4")
            .is_some_and(|p| uid(p) != uid4 && ready(p))
    })
    .await;
    assert_eq!(rev(&pods(s)["web-4"]), update_revision(s));
    // The controller did not update it: no update record, so no violation either.
    assert!(sim.report.updates().iter().all(|u| u.pod != "web-4"));
}

#[tokio::test]
async fn ordered_ready_updates_one_pod_at_a_time_from_the_highest_ordinal() {
    let sim = start(100);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(3, false, json!({"partition": 0})),
    )
    .unwrap();
    settle(s, 3).await;
    let old = update_revision(s);
    let worst = worst_unavailable(
        s,
        3,
        || set_image(s, "alpine:3.19.0"),
        |s| update_revision(s) != old && updated(s).len() == 3 && pods(s).values().all(ready),
    )
    .await;
    assert_eq!(worst, 1);
    let order: Vec<String> = sim.report.updates().iter().map(|u| u.pod.clone()).collect();
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
}

#[tokio::test]
async fn paused_halts_the_rollout_until_resumed() {
    let sim = start(0);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(
            3,
            true,
            json!({"partition": 0, "maxUnavailable": 3, "paused": true}),
        ),
    )
    .unwrap();
    settle(s, 3).await;
    let old_rev = update_revision(s);
    set_image(s, "alpine:3.19.0");
    wait_until(s, "the new revision observed", |s| {
        update_revision(s) != old_rev
            && set(s)["status"]["observedGeneration"] == set(s)["metadata"]["generation"]
    })
    .await;
    // Give the controller further passes (a label change triggers one) and check again.
    label(s, "web-0", "poke", Some("1"));
    controller_caught_up(s).await;
    assert!(updated(s).is_empty(), "paused set updated {:?}", updated(s));
    assert!(sim.report.updates().is_empty());
    patch_set(s, |v| {
        v["spec"]["updateStrategy"]["rollingUpdate"]["paused"] = false.into()
    });
    wait_updated(s, &["web-0", "web-1", "web-2"], 3).await;
}

#[tokio::test]
async fn max_unavailable_two_updates_two_pods_at_a_time() {
    let sim = start(150);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(6, true, json!({"partition": 0, "maxUnavailable": 2})),
    )
    .unwrap();
    settle(s, 6).await;
    let old = update_revision(s);
    let worst = worst_unavailable(
        s,
        6,
        || set_image(s, "alpine:3.19.0"),
        |s| update_revision(s) != old && updated(s).len() == 6 && pods(s).values().all(ready),
    )
    .await;
    assert_eq!(worst, 2, "two pods down at a time, never more");
    let order: Vec<String> = sim.report.updates().iter().map(|u| u.pod.clone()).collect();
    assert_eq!(order.len(), 6);
    let mut first_two = order[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["web-4", "web-5"]);
}

#[tokio::test]
async fn scaling_down_and_up_removes_the_highest_ordinals_and_recreates_them() {
    let sim = start(0);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(4, true, json!({"partition": 0})),
    )
    .unwrap();
    settle(s, 4).await;
    patch_set(s, |v| v["spec"]["replicas"] = 2.into());
    settle(s, 2).await;
    assert_eq!(
        pods(s).keys().cloned().collect::<Vec<_>>(),
        ["web-0", "web-1"]
    );
    assert_eq!(set(s)["status"]["replicas"], 2);
    patch_set(s, |v| v["spec"]["replicas"] = 3.into());
    settle(s, 3).await;
    assert_eq!(set(s)["status"]["readyReplicas"], 3);
    let revisions = s.list(Kind::ControllerRevision, Some(NS)).0;
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        revisions[0]["metadata"]["name"],
        set(s)["status"]["updateRevision"]
    );
}

#[tokio::test]
async fn a_rollback_reuses_the_old_revision_and_a_crashing_image_never_becomes_ready() {
    let sim = start(0);
    let s = &sim.store;
    s.create(
        Kind::StatefulSet,
        NS,
        asts(2, true, json!({"partition": 0, "maxUnavailable": 1})),
    )
    .unwrap();
    settle(s, 2).await;
    let first = update_revision(s);
    set_image(s, "example/crashloop:1");
    wait_until(s, "web-1 crash-looping", |s| {
        pods(s).get("web-1").is_some_and(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    })
    .await;
    // maxUnavailable 1 and web-1 never Ready: web-0 is never touched.
    controller_caught_up(s).await;
    assert_eq!(rev(&pods(s)["web-0"]), first);
    set_image(s, "alpine:3.18.2");
    wait_until(s, "the rollback", |s| {
        update_revision(s) == first && pods(s).values().all(|p| rev(p) == first && ready(p))
    })
    .await;
    assert_eq!(s.list(Kind::ControllerRevision, Some(NS)).0.len(), 2);
}

fn lifecycle_state(store: &Store, pod: &str) -> String {
    pods(store)
        .get(pod)
        .and_then(|p| {
            p["metadata"]["labels"]["lifecycle.apps.kruise.io/state"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_in_place_update_hook_label_holds_a_pod_in_preparing_update_until_removed() {
    let sim = start(0);
    let s = &sim.store;
    let mut strategy = seed_strategy(0, json!(1));
    strategy["unorderedUpdate"] = json!(null);
    let mut obj = asts(2, true, strategy);
    obj["spec"]["lifecycle"] = json!({"inPlaceUpdate": {"labelsHandler": {"hold": "true"}}});
    s.create(Kind::StatefulSet, NS, obj).unwrap();
    settle(s, 2).await;
    let old = update_revision(s);
    label(s, "web-1", "hold", Some("true"));
    set_image(s, "alpine:3.19.0");
    wait_until(s, "web-1 parked", |s| {
        lifecycle_state(s, "web-1") == "PreparingUpdate"
    })
    .await;
    label(s, "web-0", "poke", Some("1"));
    controller_caught_up(s).await;
    assert_eq!(rev(&pods(s)["web-1"]), old, "a held pod is not updated");
    assert_eq!(rev(&pods(s)["web-0"]), old, "the held pod fills the budget");
    assert!(sim.report.updates().is_empty());

    // Released: updated in place, then held in Updated until the label is back.
    label(s, "web-1", "hold", None);
    wait_until(s, "web-1 updated", |s| {
        rev(&pods(s)["web-1"]) == update_revision(s) && lifecycle_state(s, "web-1") == "Updated"
    })
    .await;
    label(s, "web-1", "hold", Some("true"));
    wait_until(s, "web-0 updated after web-1 is Normal again", |s| {
        lifecycle_state(s, "web-1") == "Normal" && lifecycle_state(s, "web-0") == "Updated"
    })
    .await;
    label(s, "web-0", "hold", Some("true"));
    wait_updated(s, &["web-0", "web-1"], 2).await;
    wait_until(s, "web-0 Normal", |s| {
        lifecycle_state(s, "web-0") == "Normal"
    })
    .await;
    let order: Vec<String> = sim.report.updates().iter().map(|u| u.pod.clone()).collect();
    assert_eq!(order, ["web-1", "web-0"]);
}
