//! Kruise's own unit tests for update order and revision choice, restated as tables against the
//! simulator's pure Kruise logic. Each case names the Kruise test (file::function, case) it
//! restates; the inputs and expectations are Kruise's (master), except where Kruise 1.5.5, the
//! version the simulator agrees with, was measured to differ: those cases say so.

use std::collections::BTreeMap;

use baton_sim::kruise::pod::PodView;
use baton_sim::kruise::types::{Asts, IntOrString, PriorityStrategy, RollingUpdate};
use baton_sim::kruise::update::{
    compare, is_current_revision_needed, priority_sort, scaled_max_unavailable,
    sort_pods_to_update, trailing_int,
};
use serde_json::{Value, json};

fn pod_at(name: &str, rev: &str) -> Option<PodView> {
    Some(PodView {
        name: name.to_string(),
        labels: [("controller-revision-hash".to_string(), rev.to_string())].into(),
        ..PodView::default()
    })
}

/// Slots from a compact spec: "r0", "r1" or "-" (nil).
fn slots(revs: &[&str]) -> Vec<Option<PodView>> {
    revs.iter()
        .enumerate()
        .map(|(i, r)| {
            if *r == "-" {
                None
            } else {
                pod_at(&format!("p-{i}"), r)
            }
        })
        .collect()
}

fn rolling(v: Value) -> RollingUpdate {
    serde_json::from_value(v).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn weights_k_v1_20_v2_10() -> Value {
    json!({"unorderedUpdate": {"priorityStrategy": {"weightPriority": [
        {"weight": 20, "matchSelector": {"matchLabels": {"k": "v1"}}},
        {"weight": 10, "matchSelector": {"matchLabels": {"k": "v2"}}},
    ]}}, "partition": 6})
}

#[test]
fn sort_pods_to_update_matches_kruise_test_sort_pods_to_update() {
    // (Kruise case, strategy, update revision, total replicas, slots, expected order)
    type Case = (
        &'static str,
        Option<RollingUpdate>,
        i64,
        Vec<&'static str>,
        Vec<usize>,
    );
    let cases: Vec<Case> = vec![
        (
            "TestSortPodsToUpdate #0: no strategy, all old: every slot, highest first",
            None,
            3,
            vec!["r0", "r0", "r0"],
            vec![2, 1, 0],
        ),
        (
            "TestSortPodsToUpdate #1: unordered with weights, partition 6: updated pods first, then waiting by slot",
            Some(rolling(weights_k_v1_20_v2_10())),
            10,
            vec!["r0", "r0", "r0", "r0", "r0", "r0", "r1", "r1", "r0", "r0"],
            vec![7, 6, 9, 8],
        ),
        (
            "TestSortPodsToUpdate #2: no strategy, already-updated pods stay in the list",
            None,
            3,
            vec!["r1", "r1", "r0"],
            vec![2, 1, 0],
        ),
        (
            // Kruise master expects [4] (at most replicas - partition targets, #1813); Kruise
            // 1.5.5 takes every slot from the top down to slot `partition` (measured).
            "TestSortPodsToUpdate #3: ordered, partition 2 over 3 replicas with nil slots: slots 4 and 2 (1.5.5)",
            Some(rolling(json!({"partition": 2}))),
            3,
            vec!["r0", "-", "r0", "-", "r0"],
            vec![4, 2],
        ),
        (
            "TestSortPodsToUpdate #4: unordered with weights and nil slots, partition 6",
            Some(rolling(weights_k_v1_20_v2_10())),
            10,
            vec![
                "r0", "r0", "r0", "-", "r0", "r0", "r0", "r1", "r1", "r0", "-", "r0",
            ],
            vec![8, 7, 11, 9],
        ),
    ];
    for (name, ru, total, revs, expected) in cases {
        let got = sort_pods_to_update(ru.as_ref(), "r1", total, &slots(&revs));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn priority_compare_matches_kruise_test_compare() {
    let weights2 = || -> PriorityStrategy {
        serde_json::from_value(json!({"weightPriority": [
            {"weight": 20, "matchSelector": {"matchLabels": {"key": "foo"}}},
            {"weight": 10, "matchSelector": {"matchLabels": {"key": "bar"}}},
        ]}))
        .unwrap()
    };
    let weights3 = |w3: i64| -> PriorityStrategy {
        serde_json::from_value(json!({"weightPriority": [
            {"weight": 20, "matchSelector": {"matchLabels": {"key1": "foo"}}},
            {"weight": 10, "matchSelector": {"matchLabels": {"key2": "bar"}}},
            {"weight": w3, "matchSelector": {"matchLabels": {"key3": "baz"}}},
        ]}))
        .unwrap()
    };
    let orders = || -> PriorityStrategy {
        serde_json::from_value(
            json!({"orderPriority": [{"orderedKey": "key1"}, {"orderedKey": "key2"}]}),
        )
        .unwrap()
    };
    type Case = (
        &'static str,
        PriorityStrategy,
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "TestCompare #0: weights, both unlabelled: tie keeps the default",
            weights2(),
            vec![],
            vec![],
            true,
        ),
        (
            "TestCompare #1: weights, equal labels: tie",
            weights2(),
            vec![("key", "foo")],
            vec![("key", "foo")],
            true,
        ),
        (
            "TestCompare #2: weights, bar(10) after foo(20)",
            weights2(),
            vec![("key", "bar")],
            vec![("key", "foo")],
            false,
        ),
        (
            "TestCompare #3: weights, none(0) after bar(10)",
            weights2(),
            vec![],
            vec![("key", "bar")],
            false,
        ),
        (
            "TestCompare #4: weights, none(0) after foo(20)",
            weights2(),
            vec![],
            vec![("key", "foo")],
            false,
        ),
        (
            "TestCompare #5: weights add up: 20 after 10+15",
            weights3(15),
            vec![("key1", "foo")],
            vec![("key2", "bar"), ("key3", "baz")],
            false,
        ),
        (
            "TestCompare #6: weights add up: 10+5 after 20",
            weights3(5),
            vec![("key2", "bar"), ("key3", "baz")],
            vec![("key1", "foo")],
            false,
        ),
        (
            "TestCompare #7: order keys, both unlabelled: tie",
            orders(),
            vec![],
            vec![],
            true,
        ),
        (
            "TestCompare #8: order keys, o-10 before o-5",
            orders(),
            vec![("key1", "o-10")],
            vec![("key1", "o-5")],
            true,
        ),
        (
            "TestCompare #9: order keys, equal values: tie",
            orders(),
            vec![("key1", "o-10")],
            vec![("key1", "o-10")],
            true,
        ),
        (
            "TestCompare #10: order keys, o-10 after o-20",
            orders(),
            vec![("key1", "o-10")],
            vec![("key1", "o-20")],
            false,
        ),
        (
            "TestCompare #11: order keys, key2 after key1 whatever the number",
            orders(),
            vec![("key2", "o-20")],
            vec![("key1", "o-10")],
            false,
        ),
        (
            "TestCompare #12: order keys, key2 o-20 before o-10",
            orders(),
            vec![("key2", "o-20")],
            vec![("key2", "o-10")],
            true,
        ),
    ];
    for (name, strategy, i, j, expected) in cases {
        assert_eq!(
            compare(&strategy, &labels(&i), &labels(&j), true),
            expected,
            "{name}"
        );
    }
}

#[test]
fn priority_sort_matches_kruise_test_priority_sort_sort() {
    let named = |pairs: &[&[(&str, &str)]]| -> Vec<Option<PodView>> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Some(PodView {
                    name: format!("pod-{i}"),
                    labels: labels(l),
                    ..PodView::default()
                })
            })
            .collect()
    };
    type Case = (&'static str, Value, Vec<Option<PodView>>, Vec<usize>);
    let cases: Vec<Case> = vec![
        (
            "Test_prioritySort_Sort: empty priority strategy",
            json!({}),
            named(&[&[], &[], &[]]),
            vec![0, 1, 2],
        ),
        (
            "Test_prioritySort_Sort: keep original order if not match any priority rule",
            json!({"weightPriority": [
                {"weight": 100, "matchSelector": {"matchLabels": {"foo": "bar"}}},
                {"weight": 90, "matchSelector": {"matchLabels": {"hello": "world"}}}]}),
            named(&[&[("hello", "world")], &[], &[("foo", "bar")], &[]]),
            vec![2, 0, 1, 3],
        ),
        (
            "Test_prioritySort_Sort: no Pods matched any priority rule, keep original order",
            json!({"weightPriority": [
                {"weight": 100, "matchSelector": {"matchLabels": {"not": "match"}}},
                {"weight": 90, "matchSelector": {"matchLabels": {"not1": "match1"}}}]}),
            named(&[&[("hello", "world")], &[], &[("foo", "bar")], &[]]),
            vec![0, 1, 2, 3],
        ),
    ];
    for (name, strategy, pods, expected) in cases {
        let strategy: PriorityStrategy = serde_json::from_value(strategy).unwrap();
        let idxs: Vec<usize> = (0..pods.len()).collect();
        assert_eq!(priority_sort(&strategy, &pods, idxs), expected, "{name}");
    }
}

#[test]
fn order_priority_puts_pods_without_any_key_first_as_kruise_md_example_4() {
    // kruise.md §2.7 example 4 (derived from priority_sort.go): p3{zone:z-1}, p2{}, p1{zone:z-7}.
    let strategy: PriorityStrategy =
        serde_json::from_value(json!({"orderPriority": [{"orderedKey": "zone"}]})).unwrap();
    let mut pods = vec![None; 4];
    pods[3] = Some(PodView {
        labels: labels(&[("zone", "z-1")]),
        ..PodView::default()
    });
    pods[2] = Some(PodView::default());
    pods[1] = Some(PodView {
        labels: labels(&[("zone", "z-7")]),
        ..PodView::default()
    });
    assert_eq!(
        priority_sort(&strategy, &pods, vec![3, 2, 1]),
        vec![2, 1, 3]
    );
    assert_eq!(trailing_int("sts-10"), 10);
    assert_eq!(trailing_int("v10-a"), 0);
    assert_eq!(trailing_int("abc"), 0);
}

/// A set for `TestIsCurrentRevisionNeeded`: name "ss", replicas 3.
fn icrn_set(
    start: i64,
    reserve: &[i64],
    partition: Option<i64>,
    unordered: bool,
    current_replicas: i64,
) -> Asts {
    let mut spec = json!({
        "replicas": 3,
        "reserveOrdinals": reserve,
        "ordinals": {"start": start},
        "updateStrategy": {"type": "RollingUpdate"},
    });
    if let Some(p) = partition {
        let mut ru = json!({"partition": p});
        if unordered {
            ru["unorderedUpdate"] = json!({"priorityStrategy": {"weightPriority": [
                {"weight": 10, "matchSelector": {"matchLabels": {"k": "v"}}}]}});
        }
        spec["updateStrategy"]["rollingUpdate"] = ru;
    }
    Asts::from_value(&json!({
        "metadata": {"name": "ss"},
        "spec": spec,
        "status": {"currentReplicas": current_replicas},
    }))
    .unwrap()
}

#[test]
fn is_current_revision_needed_matches_kruise_test_is_current_revision_needed() {
    // Slots run from the start ordinal; "1" is the current revision, "2" the update revision,
    // "-" an empty slot (the pod being created, or a reserved ordinal). As in Kruise's test,
    // status.currentReplicas is the number of pods at "1".
    type Case = (
        &'static str,
        i64,
        &'static [i64],
        Option<i64>,
        bool,
        i64,
        &'static [&'static str],
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "Ordinals start 0, no partition with update 0",
            0,
            &[],
            None,
            false,
            1,
            &["1", "-", "1"],
            true,
        ),
        (
            "Ordinals start 0, no partition with update 1",
            0,
            &[],
            None,
            false,
            1,
            &["1", "-", "2"],
            false,
        ),
        (
            "Ordinals start 0, partition 1 with update 0",
            0,
            &[],
            Some(1),
            false,
            1,
            &["1", "-", "1"],
            false,
        ),
        (
            "Ordinals start 0, partition 1 with update 1",
            0,
            &[],
            Some(1),
            false,
            1,
            &["1", "-", "2"],
            false,
        ),
        (
            "Ordinals start 0, partition 1, create current pod1",
            0,
            &[],
            Some(1),
            false,
            0,
            &["-", "1", "1"],
            true,
        ),
        (
            "Ordinals start 0, partition 1, create current pod2",
            0,
            &[],
            Some(1),
            false,
            0,
            &["-", "2", "2"],
            true,
        ),
        (
            "ReservedId 1, partition 2, create current pod1",
            0,
            &[1],
            Some(2),
            false,
            0,
            &["-", "-", "1", "1"],
            true,
        ),
        (
            "Ordinals start 2, no partition with update 0",
            2,
            &[],
            None,
            false,
            3,
            &["1", "-", "1"],
            true,
        ),
        (
            "Ordinals start 2, no partition with update 1",
            2,
            &[],
            None,
            false,
            3,
            &["1", "-", "2"],
            false,
        ),
        (
            "Ordinals start 2, partition 1 with update 0",
            2,
            &[],
            Some(1),
            false,
            3,
            &["1", "-", "1"],
            false,
        ),
        (
            "Ordinals start 2, partition 1, create current pod1",
            2,
            &[],
            Some(1),
            false,
            2,
            &["-", "1", "1"],
            true,
        ),
        (
            "UnorderedUpdate, partition 1 with update 1 (0 old, 2 new)",
            0,
            &[],
            Some(1),
            true,
            1,
            &["1", "-", "2"],
            false,
        ),
        (
            "UnorderedUpdate, partition 1 with update 1 (0 and 2 new)",
            0,
            &[],
            Some(1),
            true,
            1,
            &["2", "-", "2"],
            true,
        ),
        (
            "UnorderedUpdate, start 2, partition 1 (2 old, 4 new)",
            2,
            &[],
            Some(1),
            true,
            3,
            &["1", "-", "2"],
            false,
        ),
        (
            "UnorderedUpdate, start 2, partition 1 (2 and 4 new)",
            2,
            &[],
            Some(1),
            true,
            3,
            &["2", "-", "2"],
            true,
        ),
        (
            "ReservedIds 1, UnorderedUpdate (0 old, 3 new)",
            0,
            &[1],
            Some(1),
            true,
            2,
            &["1", "-", "-", "2"],
            false,
        ),
        (
            "ReservedIds 1, UnorderedUpdate (0 and 3 new)",
            0,
            &[1],
            Some(1),
            true,
            2,
            &["2", "-", "-", "2"],
            true,
        ),
        (
            // Kruise master (#1813) ranks live pods: rank 1 < 2 keeps the current revision.
            // Kruise 1.5.5 compares the slot (measured): slot 2 is not below 2.
            "Ordinals start 2, reserved, partition 2: slot 2 gets the update revision (1.5.5)",
            2,
            &[1],
            Some(2),
            false,
            4,
            &["1", "-", "-", "2"],
            false,
        ),
    ];
    for (name, start, reserve, partition, unordered, ordinal, revs, expected) in cases {
        let slots: Vec<Option<PodView>> = revs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if *r == "-" {
                    None
                } else {
                    pod_at(&format!("ss-{}", i as i64 + start), r)
                }
            })
            .collect();
        let current = revs.iter().filter(|r| **r == "1").count() as i64;
        let set = icrn_set(start, reserve, partition, unordered, current);
        assert_eq!(
            is_current_revision_needed(&set, "2", ordinal, &slots),
            expected,
            "{name}"
        );
    }
}

#[test]
fn max_unavailable_scales_like_kruise_floor_with_a_minimum_of_one() {
    // stateful_set_control.go rollingUpdateStatefulsetPods: intstr.GetScaledValueFromIntOrPercent(
    // maxUnavailable, replicas, false) then max(1, .): percentages round down.
    let cases: Vec<(Option<IntOrString>, i64, i64)> = vec![
        (None, 5, 1),
        (Some(IntOrString::Int(2)), 5, 2),
        (Some(IntOrString::Str("50%".into())), 5, 2),
        (Some(IntOrString::Str("10%".into())), 5, 1),
        (Some(IntOrString::Str("100%".into())), 1000, 1000),
        (Some(IntOrString::Str("33%".into())), 10, 3),
    ];
    for (value, replicas, expected) in cases {
        assert_eq!(
            scaled_max_unavailable(value.as_ref(), replicas),
            expected,
            "{value:?} of {replicas}"
        );
    }
}
