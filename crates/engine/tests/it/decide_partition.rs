//! The one partition arithmetic (`decide::partition_for`), by table, and the scale-down case
//! that once opened the partition under a working pod (issue #11, defect 1).

use crate::decide_support::*;
use baton_engine::decide::{Policy, WaveDecision, freeze_partition, partition_for, plan_wave};
use baton_engine::snapshot::Snapshot;

/// One row: a cluster, a selection, and the partition that must come out.
struct Case {
    what: &'static str,
    cluster: Snapshot,
    selected: Vec<String>,
    want: Option<u32>,
}

fn with(mut s: Snapshot, edit: impl FnOnce(&mut Snapshot)) -> Snapshot {
    edit(&mut s);
    s
}

#[test]
fn the_partition_counts_only_present_counted_pods_updated_or_selected() {
    let cases = [
        Case {
            what: "seed, first wave",
            cluster: seed(),
            selected: names(&[1, 3]),
            want: Some(3),
        },
        Case {
            what: "nothing selected freezes at |P| - |U|",
            cluster: with(seed(), |s| set_revision(s, &[1, 3], NEW)),
            selected: vec![],
            want: Some(3),
        },
        Case {
            what: "a selected pod already updated is counted once",
            cluster: with(seed(), |s| set_revision(s, &[1], NEW)),
            selected: names(&[1, 3]),
            want: Some(3),
        },
        Case {
            what: "an updated pod being scaled away is not counted",
            cluster: with(cluster(6, &[0, 2, 4]), |s| {
                set_revision(s, &[1, 3, 5], NEW);
                s.sts.replicas = 5;
                pod_mut(s, 5).terminating = true;
            }),
            selected: names(&[0, 2]),
            want: Some(1),
        },
        Case {
            what: "a selected pod being scaled away is not counted",
            cluster: with(seed(), |s| s.sts.replicas = 4),
            selected: names(&[1, 4]),
            want: Some(3),
        },
        Case {
            what: "a selected pod that does not exist right now is not counted",
            cluster: with(seed(), |s| s.pods.retain(|p| p.ordinal != 3)),
            selected: names(&[1, 3]),
            want: Some(4),
        },
        Case {
            what: "a pod selected twice is counted once",
            cluster: seed(),
            selected: names(&[1, 3, 1]),
            want: Some(3),
        },
        Case {
            what: "a selected name that is no pod of the set is not counted",
            cluster: seed(),
            selected: vec!["other-1".to_owned(), name(3)],
            want: Some(4),
        },
        Case {
            what: "every pod updated",
            cluster: with(seed(), |s| set_revision(s, &[0, 1, 2, 3, 4], NEW)),
            selected: vec![],
            want: Some(0),
        },
        Case {
            what: "an untrusted update revision counts nothing",
            cluster: with(seed(), |s| s.sts.observed_generation = Some(1)),
            selected: names(&[1]),
            want: None,
        },
    ];
    for c in cases {
        assert_eq!(partition_for(&c.cluster, &c.selected), c.want, "{}", c.what);
    }
}

#[test]
fn the_freeze_is_the_partition_of_an_empty_selection_or_every_pod_while_untrusted() {
    let s = with(seed(), |s| set_revision(s, &[1, 3], NEW));
    assert_eq!(freeze_partition(&s), 3);
    let untrusted = with(s, |s| s.sts.observed_generation = None);
    assert_eq!(freeze_partition(&untrusted), 5);
}

/// 6 replicas, working {0,2,4}. Wave 1 updates {1,3,5}; then the set is scaled to 5 while
/// sample-5 lingers Terminating at the new revision. Only 1 and 3 are counted as updated and
/// can be promoted, so the handover is {1,3} for {0,2}, wave 2 selects {0,2}, and the partition
/// must be 1: with 0 Kruise would also update working sample-4.
#[test]
fn a_pod_scaled_away_while_terminating_never_opens_the_partition_under_a_working_pod() {
    let policy = Policy {
        max_per_wave: 0,
        min_working: 3,
        expected_update_revision: None,
        prefer_handover: false,
    };
    let mut s = cluster(6, &[0, 2, 4]);
    let Ok(WaveDecision::Update { select, partition }) = plan_wave(&s, &policy) else {
        panic!("the first wave updates the idle pods");
    };
    assert_eq!((select.clone(), partition), (names(&[1, 3, 5]), 3));
    relabel(&mut s, &select);
    assert_eq!(kruise_rollout(&mut s, partition), vec![1, 3, 5]);
    s.sts.replicas = 5;
    pod_mut(&mut s, 5).terminating = true;
    pod_mut(&mut s, 5).ready = false;
    let h = baton_engine::decide::plan_handover(&s, &policy)
        .expect("a handover is possible")
        .expect("working pods are old");
    assert_eq!(
        (h.promote.clone(), h.demote.clone()),
        (names(&[1, 3]), names(&[0, 2]))
    );
    apply_handover(&mut s, &h);
    let Ok(WaveDecision::Update { select, partition }) = plan_wave(&s, &policy) else {
        panic!("the second wave updates the demoted pods");
    };
    assert_eq!((select.clone(), partition), (names(&[0, 2]), 1));
    assert_eq!(
        partition_for(&s, &select),
        Some(1),
        "what set-partition writes"
    );
    relabel(&mut s, &select);
    assert_eq!(
        kruise_rollout(&mut s, partition),
        vec![0, 2],
        "working sample-4 must stay old"
    );
}
