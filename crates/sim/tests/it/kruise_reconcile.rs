//! One reconcile pass at a time, as tables: the worked examples of kruise.md §2.7 and the
//! single-reconcile cases of Kruise's `stateful_set_control_test.go` (paused, maxUnavailable,
//! blocked by maxUnavailable, OrderedReady, in-place, rollback, scale down).

use baton_sim::kruise::pod::PodView;
use baton_sim::kruise::reconcile::{DeleteReason, Input, Plan, reconcile};
use baton_sim::kruise::revision::{Resolved, Revision, RevisionChange};
use baton_sim::kruise::types::Asts;
use jiff::Timestamp;
use serde_json::{Value, json};

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
                    "containers": [{"name": "main", "image": image}]}})
}

fn rev(name: &str, number: i64, image: &str) -> Revision {
    Revision {
        name: name.into(),
        number,
        template: template(image),
    }
}

fn set(replicas: i64, parallel: bool, rolling: Value) -> Asts {
    Asts::from_value(&json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": if parallel { "Parallel" } else { "OrderedReady" },
            "template": template("img:2"),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
        },
        "status": {"currentRevision": "web-old", "updateRevision": "web-new", "observedGeneration": 1},
    }))
    .unwrap()
    .defaulted()
}

/// A running pod `web-<ord>` at revision `r` ("old" / "new"), Ready unless `ready` is false.
fn pod(ord: i64, r: &str, ready: bool) -> PodView {
    let image = if r == "old" { "img:1" } else { "img:2" };
    PodView::from_value(&json!({
        "metadata": {"name": format!("web-{ord}"), "uid": format!("uid-{ord}-{r}"),
                     "labels": {"app": "web", "controller-revision-hash": format!("web-{r}"),
                                "lifecycle.apps.kruise.io/state": "Normal"}},
        "spec": {"readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
                 "containers": [{"name": "main", "image": image}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                   "lastTransitionTime": "2020-01-01T00:00:00Z"},
                                  {"type": "InPlaceUpdateReady", "status": "True"}],
                   "containerStatuses": [{"name": "main", "image": image, "imageID": format!("id-{image}")}]},
    }))
}

fn resolved() -> (Vec<Revision>, Resolved) {
    let old = rev("web-old", 1, "img:1");
    let new = rev("web-new", 2, "img:2");
    let resolved = Resolved {
        current: old.clone(),
        update: new.clone(),
        change: RevisionChange::None,
        collision_count: 0,
    };
    (vec![old, new], resolved)
}

fn run(set: &Asts, pods: &[PodView]) -> Plan {
    let (revisions, resolved) = resolved();
    reconcile(Input {
        set,
        pods,
        revisions: &revisions,
        resolved: &resolved,
        service_name: Some("web"),
        now: Timestamp::now(),
    })
}

fn updated(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .delete
        .iter()
        .filter(|d| matches!(d.reason, DeleteReason::Update { .. }))
        .map(|d| d.name.clone())
        .chain(plan.in_place.iter().map(|u| u.name.clone()))
        .collect();
    out.sort();
    out
}

fn created(plan: &Plan) -> Vec<(String, String)> {
    plan.create
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["metadata"]["labels"]["controller-revision-hash"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn all(r: &str, n: i64) -> Vec<PodView> {
    (0..n).map(|o| pod(o, r, true)).collect()
}

#[test]
fn each_pass_updates_exactly_the_pods_kruise_would() {
    let old5 = all("old", 5);
    let mut zero_unready = old5.clone();
    zero_unready[0] = pod(0, "old", false);
    let mut zero_new = old5.clone();
    zero_new[0] = pod(0, "new", true);
    let unordered =
        |p: i64, mu: i64| json!({"partition": p, "maxUnavailable": mu, "unorderedUpdate": {}});
    let cases: Vec<(&str, Asts, Vec<PodView>, Vec<&str>)> = vec![
        (
            "kruise.md 2.7 #1: ordered, partition 2, maxUnavailable 2: the two highest",
            set(5, true, json!({"partition": 2, "maxUnavailable": 2})),
            old5.clone(),
            vec!["web-3", "web-4"],
        ),
        (
            "kruise.md 2.7 #2: an unready pod below the partition uses one budget slot",
            set(5, true, json!({"partition": 2, "maxUnavailable": 2})),
            zero_unready.clone(),
            vec!["web-4"],
        ),
        (
            "kruise.md 2.7 #3: unordered, partition 2: the updated pod fills the quota first",
            set(5, true, unordered(2, 3)),
            zero_new,
            vec!["web-3", "web-4"],
        ),
        (
            "TestStatefulSetControlRollingUpdateWithPaused: paused updates nothing",
            set(
                5,
                true,
                json!({"partition": 0, "maxUnavailable": 5, "paused": true}),
            ),
            old5.clone(),
            vec![],
        ),
        (
            "TestStatefulSetControlRollingUpdateWithPartition: partition 5 of 5 updates nothing",
            set(5, true, json!({"partition": 5, "maxUnavailable": 5})),
            old5.clone(),
            vec![],
        ),
        (
            "maxUnavailable 50% of 5 is 2",
            set(5, true, json!({"partition": 0, "maxUnavailable": "50%"})),
            old5.clone(),
            vec!["web-3", "web-4"],
        ),
        (
            "TestStatefulSetControlRollingUpdateWithMaxUnavailable step 1: 6 pods, partition 3, maxUnavailable 2: pods 4 and 5",
            set(6, true, json!({"partition": 3, "maxUnavailable": 2})),
            all("old", 6),
            vec!["web-4", "web-5"],
        ),
        (
            "TestStatefulSetControlRollingUpdateWithMaxUnavailable step 2: 4 ready and 5 not: only pod 3",
            set(6, true, json!({"partition": 3, "maxUnavailable": 2})),
            {
                let mut p = all("old", 4);
                p.push(pod(4, "new", true));
                p.push(pod(5, "new", false));
                p
            },
            vec!["web-3"],
        ),
        (
            "TestStatefulSetControlRollingUpdateWithMaxUnavailable step 3: 3, 4, 5 updated and ready: nothing more",
            set(6, true, json!({"partition": 3, "maxUnavailable": 2})),
            {
                let mut p = all("old", 3);
                p.extend((3..6).map(|o| pod(o, "new", true)));
                p
            },
            vec![],
        ),
        (
            "TestStatefulSetControlRollingUpdateBlockByMaxUnavailable: pod 0 terminating: only pod 5",
            set(6, true, json!({"partition": 3, "maxUnavailable": 2})),
            {
                let mut p = all("old", 6);
                p[0].terminating = true;
                p
            },
            vec!["web-5"],
        ),
        (
            "an unavailable target is processed even when the budget is full",
            set(5, true, json!({"partition": 0, "maxUnavailable": 1})),
            {
                let mut p = old5.clone();
                p[4] = pod(4, "old", false);
                p
            },
            vec!["web-4"],
        ),
        (
            "blocked by maxUnavailable: a budget full of other unready pods stops at the first available target",
            set(5, true, json!({"partition": 0, "maxUnavailable": 1})),
            zero_unready,
            vec![],
        ),
        (
            "OrderedReady: one pod at a time, highest ordinal first",
            set(5, false, json!({"partition": 0})),
            old5.clone(),
            vec!["web-4"],
        ),
        (
            "OrderedReady: nothing updates while any pod is unready",
            set(5, false, json!({"partition": 0})),
            {
                let mut p = old5.clone();
                p[2] = pod(2, "old", false);
                p
            },
            vec![],
        ),
        (
            "unordered priority: the heavier pod goes first, ties go to the higher ordinal",
            set(
                5,
                true,
                json!({"partition": 3, "maxUnavailable": 2, "unorderedUpdate": {"priorityStrategy": {"weightPriority": [
                {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}}]}}}),
            ),
            {
                let mut p = old5.clone();
                for (i, w) in ["true", "false", "true", "false", "true"]
                    .iter()
                    .enumerate()
                {
                    p[i].labels.insert("working".into(), w.to_string());
                }
                p
            },
            vec!["web-1", "web-3"],
        ),
    ];
    for (name, set, pods, expected) in cases {
        let plan = run(&set, &pods);
        assert_eq!(updated(&plan), expected, "{name}");
    }
}

#[test]
fn a_missing_pod_is_created_at_the_revision_kruise_would_choose() {
    // (case, set, pods present, expected creations)
    let without = |n: i64, missing: i64, new_from: i64| -> Vec<PodView> {
        (0..n)
            .filter(|o| *o != missing)
            .map(|o| pod(o, if o >= new_from { "new" } else { "old" }, true))
            .collect()
    };
    let unordered = |p: i64| json!({"partition": p, "unorderedUpdate": {}});
    type Case = (
        &'static str,
        Asts,
        Vec<PodView>,
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "e2e canary: ordered partition 2, pod 0 comes back at the current revision",
            set(3, true, json!({"partition": 2})),
            without(3, 0, 2),
            vec![("web-0", "web-old")],
        ),
        (
            "e2e canary: ordered partition 2, pod 2 comes back at the update revision",
            set(3, true, json!({"partition": 2})),
            without(3, 2, 2),
            vec![("web-2", "web-new")],
        ),
        (
            "kruise.md 3: unordered partition 2, {0,1} old: deleted pod 0 comes back old",
            set(5, true, unordered(2)),
            without(5, 0, 2),
            vec![("web-0", "web-old")],
        ),
        (
            "kruise.md 3: unordered partition 2, {0,1} old: deleted pod 3 comes back new",
            set(5, true, unordered(2)),
            without(5, 3, 2),
            vec![("web-3", "web-new")],
        ),
        (
            "OrderedReady scale up from 2 to 4: only the next ordinal is created",
            set(4, false, json!({"partition": 0})),
            without(2, 99, 0),
            vec![("web-2", "web-new")],
        ),
        (
            "Parallel scale up from 2 to 4: both at once",
            set(4, true, json!({"partition": 0})),
            without(2, 99, 0),
            vec![("web-2", "web-new"), ("web-3", "web-new")],
        ),
    ];
    for (name, set, pods, expected) in cases {
        let plan = run(&set, &pods);
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(created(&plan), expected, "{name}");
        for p in &plan.create {
            assert_eq!(
                p["metadata"]["ownerReferences"][0]["uid"], "set-uid",
                "{name}"
            );
            assert_eq!(
                p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
                p["metadata"]["name"],
                "{name}"
            );
            assert_eq!(
                p["metadata"]["labels"]["lifecycle.apps.kruise.io/state"], "Normal",
                "{name}"
            );
            assert_eq!(p["spec"]["hostname"], p["metadata"]["name"], "{name}");
        }
    }
}

#[test]
fn scale_down_condemns_the_highest_ordinals_one_at_a_time_under_ordered_ready() {
    let pods = all("new", 5);
    let ordered = run(&set(3, false, json!({"partition": 0})), &pods);
    let names: Vec<&str> = ordered.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["web-4"]);
    assert!(
        ordered
            .delete
            .iter()
            .all(|d| d.reason == DeleteReason::Condemned)
    );
    let parallel = run(&set(3, true, json!({"partition": 0})), &pods);
    let names: Vec<&str> = parallel.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["web-4", "web-3"]);
}

#[test]
fn an_image_only_change_is_updated_in_place_with_the_policy_and_recreated_without() {
    let pods = all("old", 3);
    let in_place = run(
        &set(
            3,
            true,
            json!({"partition": 2, "podUpdatePolicy": "InPlaceIfPossible"}),
        ),
        &pods,
    );
    assert_eq!(in_place.in_place.len(), 1);
    assert_eq!(in_place.in_place[0].name, "web-2");
    assert_eq!(
        (
            in_place.in_place[0].from.as_str(),
            in_place.in_place[0].to.as_str()
        ),
        ("web-old", "web-new")
    );
    assert!(in_place.delete.is_empty());
    let recreate = run(&set(3, true, json!({"partition": 2})), &pods);
    assert!(recreate.in_place.is_empty());
    assert_eq!(updated(&recreate), vec!["web-2"]);
}

#[test]
fn status_counts_pods_and_promotes_the_current_revision_when_all_are_updated() {
    let mut pods = all("old", 3);
    pods[2] = pod(2, "new", true);
    let plan = run(&set(3, true, json!({"partition": 1})), &pods);
    let s = &plan.status;
    assert_eq!(
        (s.replicas, s.ready_replicas, s.available_replicas),
        (3, 3, 3)
    );
    assert_eq!(
        (
            s.current_replicas,
            s.updated_replicas,
            s.updated_ready_replicas
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (s.current_revision.as_str(), s.update_revision.as_str()),
        ("web-old", "web-new")
    );
    assert_eq!(s.observed_generation, 2);
    assert!(plan.write_status);
    // web-1 is deleted in this pass: Kruise decrements currentReplicas for it.
    assert_eq!(updated(&plan), vec!["web-1"]);

    let done = run(&set(3, true, json!({"partition": 0})), &all("new", 3));
    assert_eq!(done.status.current_revision, "web-new");
    assert_eq!(done.status.current_replicas, 3);
}

#[test]
fn min_ready_seconds_keeps_a_fresh_pod_unavailable_and_asks_for_a_requeue() {
    let mut fresh = pod(2, "new", true);
    fresh.ready_since = Some(Timestamp::now());
    let pods = vec![pod(0, "old", true), pod(1, "old", true), fresh];
    let plan = run(
        &set(3, true, json!({"partition": 0, "minReadySeconds": 30})),
        &pods,
    );
    assert!(
        updated(&plan).is_empty(),
        "the fresh pod fills the budget of 1"
    );
    let wait = plan
        .requeue_after
        .expect("a requeue for the minReadySeconds wait");
    assert!(wait.as_secs() <= 30 && wait.as_secs() >= 28, "{wait:?}");
    assert_eq!(plan.status.available_replicas, 2);
}

#[test]
fn a_pre_delete_hook_parks_the_pod_instead_of_deleting_it() {
    let mut s = set(3, true, json!({"partition": 2}));
    s.spec.lifecycle = Some(
        serde_json::from_value(json!({"preDelete": {"labelsHandler": {"hold": "true"}}})).unwrap(),
    );
    let mut pods = all("old", 3);
    pods[2].labels.insert("hold".into(), "true".into());
    let plan = run(&s, &pods);
    assert!(plan.delete.is_empty());
    assert_eq!(plan.park.len(), 1);
    assert_eq!(
        (plan.park[0].name.as_str(), plan.park[0].state.as_str()),
        ("web-2", "PreparingDelete")
    );
    // Parked and still held: nothing more happens, and the parked pod fills the budget.
    pods[2].labels.insert(
        "lifecycle.apps.kruise.io/state".into(),
        "PreparingDelete".into(),
    );
    let mut held = set(3, true, json!({"partition": 1}));
    held.spec.lifecycle = s.spec.lifecycle.clone();
    let plan = run(&held, &pods);
    assert!(plan.delete.is_empty() && plan.park.is_empty(), "{plan:?}");
    // Released: deleted for the update.
    pods[2].labels.remove("hold");
    let plan = run(&held, &pods);
    assert_eq!(updated(&plan), ["web-2"]);
}

#[test]
fn a_specified_delete_ignores_the_partition_but_respects_the_budget() {
    let mut pods = all("old", 3);
    pods[0]
        .labels
        .insert("apps.kruise.io/specified-delete".into(), "true".into());
    let plan = run(
        &set(3, true, json!({"partition": 3, "maxUnavailable": 1})),
        &pods,
    );
    let deleted: Vec<(&str, &DeleteReason)> = plan
        .delete
        .iter()
        .map(|d| (d.name.as_str(), &d.reason))
        .collect();
    assert_eq!(deleted, [("web-0", &DeleteReason::Specified)]);
    pods[1] = pod(1, "old", false);
    let plan = run(
        &set(3, true, json!({"partition": 3, "maxUnavailable": 1})),
        &pods,
    );
    assert!(
        plan.delete.is_empty(),
        "the budget is full and web-0 is available"
    );
}
