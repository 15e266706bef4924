//! Table tests of the decision core (SPEC §1), driven wave by wave against snapshots
//! mutated the way the controller and the arbiter would.

use crate::decide_support::*;
use baton_engine::decide::{
    Handover, Policy, Refusal, Warning, WaveDecision, WaveForecast, check_preconditions,
    finalize_partition, forecast, judge_wave, plan_handover, plan_wave,
};
use baton_engine::snapshot::{PodManagementPolicy, Snapshot, UpdateStrategyType};

fn policy(max_per_wave: u32, min_working: u32) -> Policy {
    Policy {
        max_per_wave,
        min_working,
        expected_update_revision: Some(NEW.to_owned()),
        prefer_handover: false,
    }
}

fn update(select: &[u32], partition: u32) -> WaveDecision {
    WaveDecision::Update {
        select: names(select),
        partition,
    }
}

fn handover(promote: &[u32], demote: &[u32]) -> Handover {
    Handover {
        promote: names(promote),
        demote: names(demote),
    }
}

fn wave(wave: u32, select: &[u32], partition: u32, h: Option<(&[u32], &[u32])>) -> WaveForecast {
    WaveForecast {
        wave,
        select: names(select),
        partition,
        handover: h.map(|(p, d)| handover(p, d)),
    }
}

/// One wave as a run does it: decide, relabel, let the controller roll, judge, hand over.
/// Returns the decision and the handover, and checks the wave was safe.
fn drive_wave(s: &mut Snapshot, policy: &Policy) -> (WaveDecision, Option<Handover>) {
    let decision = plan_wave(s, policy).expect("a wave decision");
    let before = s.clone();
    match &decision {
        WaveDecision::Done => return (decision, None),
        WaveDecision::Update { select, partition } => {
            relabel(s, select);
            let before = s.clone();
            let rolled = kruise_rollout(s, *partition);
            assert_eq!(
                names(&rolled),
                *select,
                "the controller updated exactly the selected pods"
            );
            assert!(
                judge_wave(&before, s).is_safe(),
                "no working pod was touched: {:?}",
                judge_wave(&before, s)
            );
        }
        WaveDecision::HandoverFirst(_) => {}
    }
    let count = working(s).len();
    let h = plan_handover(s, policy).expect("a handover decision");
    if let Some(h) = &h {
        apply_handover(s, h);
    }
    assert_eq!(
        working(s).len(),
        count,
        "the working count never drops across a handover"
    );
    assert!(judge_wave(&before, s).is_safe());
    (decision, h)
}

#[test]
fn the_seed_case_runs_three_waves_handing_over_between_them() {
    let mut s = seed();
    let p = policy(0, 3);

    assert_eq!(plan_wave(&s, &p), Ok(update(&[1, 3], 3)));
    relabel(&mut s, &names(&[1, 3]));
    assert_eq!(kruise_rollout(&mut s, 3), vec![1, 3]);
    let h = plan_handover(&s, &p)
        .unwrap()
        .expect("working pods are old");
    assert_eq!(h, handover(&[1, 3], &[0, 2]));
    apply_handover(&mut s, &h);
    assert_eq!(working(&s), vec![1, 3, 4]);

    assert_eq!(plan_wave(&s, &p), Ok(update(&[0, 2], 1)));
    relabel(&mut s, &names(&[0, 2]));
    assert_eq!(kruise_rollout(&mut s, 1), vec![0, 2]);
    let h = plan_handover(&s, &p)
        .unwrap()
        .expect("pod 4 works and is old");
    assert_eq!(h, handover(&[0], &[4]));
    apply_handover(&mut s, &h);
    assert_eq!(working(&s), vec![0, 1, 3]);

    assert_eq!(plan_wave(&s, &p), Ok(update(&[4], 0)));
    relabel(&mut s, &names(&[4]));
    assert_eq!(kruise_rollout(&mut s, 0), vec![4]);
    assert_eq!(plan_handover(&s, &p), Ok(None));

    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
    assert_eq!(updated(&s), vec![0, 1, 2, 3, 4]);
    assert_eq!(finalize_partition(&s, &p), Ok(0));
}

#[test]
fn the_seed_case_forecast_matches_the_waves_a_run_takes() {
    let expected = vec![
        wave(1, &[1, 3], 3, Some((&[1, 3], &[0, 2]))),
        wave(2, &[0, 2], 1, Some((&[0], &[4]))),
        wave(3, &[4], 0, None),
    ];
    assert_eq!(forecast(&seed(), &policy(0, 3)), Ok(expected));
}

#[test]
fn one_pod_per_wave_with_seven_replicas_rotates_the_working_role_through_every_pod() {
    let expected = vec![
        wave(1, &[3], 6, Some((&[3], &[0]))),
        wave(2, &[0], 5, Some((&[0], &[1]))),
        wave(3, &[1], 4, Some((&[1], &[2]))),
        wave(4, &[2], 3, None),
        wave(5, &[4], 2, None),
        wave(6, &[5], 1, None),
        wave(7, &[6], 0, None),
    ];
    let s = cluster(7, &[0, 1, 2]);
    let p = policy(1, 3);
    assert_eq!(forecast(&s, &p), Ok(expected.clone()));

    let mut s = s;
    for want in &expected {
        let (decision, h) = drive_wave(&mut s, &p);
        assert_eq!(
            decision,
            WaveDecision::Update {
                select: want.select.clone(),
                partition: want.partition
            }
        );
        assert_eq!(h, want.handover);
        assert_eq!(working(&s).len(), 3);
    }
    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
}

#[test]
fn a_pod_the_arbiter_does_not_list_is_protected_and_stays_old() {
    let mut s = seed();
    s.arbiter.members.remove(&name(3));
    let p = policy(0, 3);
    assert_eq!(
        check_preconditions(&s),
        Ok(vec![Warning::Protected { pods: names(&[3]) }])
    );
    assert_eq!(
        forecast(&s, &p),
        Ok(vec![
            wave(1, &[1], 4, Some((&[1], &[0]))),
            wave(2, &[0], 3, Some((&[0], &[2]))),
            wave(3, &[2], 2, Some((&[2], &[4]))),
            wave(4, &[4], 1, None),
        ])
    );
    for _ in 0..4 {
        drive_wave(&mut s, &p);
    }
    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
    assert_eq!(updated(&s), vec![0, 1, 2, 4], "pod 3 was never updated");
    assert_eq!(
        finalize_partition(&s, &p),
        Ok(1),
        "finalize keeps the protected pod old"
    );
    let mut after = s.clone();
    assert_eq!(kruise_rollout(&mut after, 1), Vec::<u32>::new());
}

#[test]
fn every_pod_working_is_refused_because_nothing_can_update_first() {
    let s = cluster(3, &[0, 1, 2]);
    assert_eq!(plan_wave(&s, &policy(0, 3)), Err(Refusal::AllWorking));
    assert_eq!(forecast(&s, &policy(0, 3)), Err(Refusal::AllWorking));
}

#[test]
fn roles_changed_by_someone_else_between_waves_are_followed() {
    let mut s = seed();
    let p = policy(0, 3);
    assert_eq!(plan_wave(&s, &p), Ok(update(&[1, 3], 3)));
    relabel(&mut s, &names(&[1, 3]));
    kruise_rollout(&mut s, 3);
    // The arbiter moved the working role from 0 to 1 on its own before our handover.
    set_roles(&mut s, &[1, 2, 4]);
    assert_eq!(plan_handover(&s, &p), Ok(Some(handover(&[3], &[2]))));
    apply_handover(&mut s, &handover(&[3], &[2]));
    assert_eq!(plan_wave(&s, &p), Ok(update(&[0, 2], 1)));
}

#[test]
fn a_run_resumed_after_updating_but_before_handing_over_hands_over_first() {
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    let p = policy(0, 3);
    assert_eq!(
        plan_wave(&s, &p),
        Ok(WaveDecision::HandoverFirst(handover(&[1, 3], &[0, 2])))
    );
    let (_, h) = drive_wave(&mut s, &p);
    assert_eq!(h, Some(handover(&[1, 3], &[0, 2])));
    assert_eq!(plan_wave(&s, &p), Ok(update(&[0, 2], 1)));
}

#[test]
fn a_run_resumed_after_the_first_handover_continues_with_the_second_wave() {
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    set_roles(&mut s, &[1, 3, 4]);
    let p = policy(0, 3);
    assert_eq!(
        forecast(&s, &p),
        Ok(vec![
            wave(1, &[0, 2], 1, Some((&[0], &[4]))),
            wave(2, &[4], 0, None)
        ])
    );
}

#[test]
fn a_rollback_counts_pods_at_the_old_template_as_updated() {
    let mut s = seed();
    // Pods 1 and 3 took the new template; then the template went back, so the update
    // revision is the revision pods 0, 2 and 4 never left.
    set_revision(&mut s, &[1, 3], NEW);
    s.sts.update_revision = Some(OLD.to_owned());
    s.sts.current_revision = Some(NEW.to_owned());
    let p = Policy {
        expected_update_revision: Some(OLD.to_owned()),
        prefer_handover: false,
        ..policy(0, 3)
    };
    assert_eq!(plan_wave(&s, &p), Ok(update(&[1, 3], 0)));
    let (_, h) = drive_wave(&mut s, &p);
    assert_eq!(h, None, "no working pod runs the abandoned revision");
    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
}

/// A rollback mid-wave-2 of the seed case: wave 1 updated pods 1 and 3 and handed the working
/// role to them; wave 2 had updated pod 0 (pod 2 not yet) when the template went back.
fn rolled_back_mid_wave_two() -> Snapshot {
    let mut s = seed();
    set_revision(&mut s, &[0, 1, 3], NEW);
    set_roles(&mut s, &[1, 3, 4]);
    s.sts.update_revision = Some(OLD.to_owned());
    s.sts.current_revision = Some(OLD.to_owned());
    s
}

#[test]
fn a_rollback_prefers_reversing_the_handovers_before_updating() {
    let s = rolled_back_mid_wave_two();
    let back = |prefer_handover| Policy {
        expected_update_revision: Some(OLD.to_owned()),
        prefer_handover,
        ..policy(0, 3)
    };
    // (prefer handover, first decision)
    let table = [
        // The forward rule updates idle pods first: pod 0 goes back while pods 1 and 3,
        // of the failed revision, keep working.
        (false, update(&[0], 2)),
        // A rollback hands the working role back to a settled old-revision pod first.
        (true, WaveDecision::HandoverFirst(handover(&[2], &[1]))),
    ];
    for (prefer, want) in table {
        assert_eq!(plan_wave(&s, &back(prefer)), Ok(want), "prefer {prefer}");
    }
    // With no idle old-revision pod able to take over, the rollback updates as usual.
    let mut none_ready = s.clone();
    pod_mut(&mut none_ready, 2).ready = false;
    assert_eq!(plan_wave(&none_ready, &back(true)), Ok(update(&[0], 2)));
}

#[test]
fn a_rollback_runs_standby_first_to_every_pod_on_the_old_revision() {
    let mut s = rolled_back_mid_wave_two();
    let p = Policy {
        expected_update_revision: Some(OLD.to_owned()),
        prefer_handover: true,
        ..policy(0, 3)
    };
    let mut waves = Vec::new();
    loop {
        let (decision, h) = drive_wave(&mut s, &p);
        if decision == WaveDecision::Done {
            break;
        }
        waves.push((decision, h));
        assert!(waves.len() < 10, "the rollback ends");
    }
    assert_eq!(
        waves,
        [
            (
                WaveDecision::HandoverFirst(handover(&[2], &[1])),
                Some(handover(&[2], &[1]))
            ),
            (update(&[0, 1], 1), Some(handover(&[0], &[3]))),
            (update(&[3], 0), None),
        ]
    );
    assert_eq!(updated(&s), vec![0, 1, 2, 3, 4]);
    assert_eq!(working(&s), vec![0, 2, 4]);
    assert_eq!(finalize_partition(&s, &p), Ok(0));
}

#[test]
fn a_scale_up_during_the_run_leaves_the_new_unlisted_pod_alone() {
    let mut s = seed();
    let p = policy(0, 3);
    drive_wave(&mut s, &p);
    s.sts.replicas = 6;
    s.pods.push(pod(5, OLD));
    assert_eq!(
        check_preconditions(&s),
        Ok(vec![Warning::Protected { pods: names(&[5]) }])
    );
    assert_eq!(plan_wave(&s, &p), Ok(update(&[0, 2], 2)));
    drive_wave(&mut s, &p);
    drive_wave(&mut s, &p);
    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
    assert_eq!(finalize_partition(&s, &p), Ok(1));
}

#[test]
fn a_scale_down_during_the_run_ignores_the_pod_being_removed() {
    let mut s = seed();
    let p = policy(0, 3);
    drive_wave(&mut s, &p);
    assert_eq!(working(&s), vec![1, 3, 4]);
    // replicas 5 -> 4: pod 4 is outside the set now, still listed by the arbiter.
    s.sts.replicas = 4;
    assert_eq!(plan_wave(&s, &p), Ok(update(&[0, 2], 0)));
    let (_, h) = drive_wave(&mut s, &p);
    assert_eq!(h, None, "the pod being scaled away is not demoted");
    assert_eq!(plan_wave(&s, &p), Ok(WaveDecision::Done));
    assert_eq!(
        s.pods
            .iter()
            .find(|p| p.ordinal == 4)
            .unwrap()
            .revision
            .as_deref(),
        Some(OLD)
    );
}

#[test]
fn a_missing_pod_still_counts_in_replicas_but_is_never_selected() {
    let mut s = seed();
    s.pods.retain(|p| p.ordinal != 3);
    s.arbiter.members.remove(&name(3));
    assert_eq!(plan_wave(&s, &policy(0, 3)), Ok(update(&[1], 4)));
}

#[test]
fn a_terminating_working_pod_is_demoted_but_never_selected() {
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    pod_mut(&mut s, 0).terminating = true;
    pod_mut(&mut s, 0).ready = false;
    assert_eq!(
        plan_wave(&s, &policy(0, 3)),
        Ok(WaveDecision::HandoverFirst(handover(&[1, 3], &[0, 2])))
    );
}

#[test]
fn an_updated_idle_pod_that_is_not_ready_is_not_promoted() {
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    pod_mut(&mut s, 1).ready = false;
    pod_mut(&mut s, 3).lifecycle_state = Some("PreparingUpdate".to_owned());
    let p = policy(0, 3);
    let refusal = Refusal::NoIdleToHandOver {
        working: names(&[0, 2, 4]),
    };
    assert_eq!(plan_wave(&s, &p), Err(refusal.clone()));
    assert_eq!(plan_handover(&s, &p), Err(refusal));
    pod_mut(&mut s, 3).lifecycle_state = None;
    assert_eq!(plan_handover(&s, &p), Ok(Some(handover(&[3], &[0]))));
}

#[test]
fn preconditions_and_revision_checks_refuse_with_a_reason() {
    type Edit = fn(&mut Snapshot);
    let cases: Vec<(&str, Edit, Refusal)> = vec![
        (
            "OrderedReady",
            |s| s.sts.pod_management_policy = PodManagementPolicy::OrderedReady,
            Refusal::OrderedReady,
        ),
        ("paused", |s| s.sts.paused = true, Refusal::Paused),
        (
            "OnDelete",
            |s| s.sts.update_type = UpdateStrategyType::OnDelete,
            Refusal::NotRollingUpdate {
                found: "OnDelete".to_owned(),
            },
        ),
        (
            "revision not observed",
            |s| s.sts.observed_generation = Some(1),
            Refusal::RevisionNotObserved,
        ),
        (
            "never observed",
            |s| s.sts.observed_generation = None,
            Refusal::RevisionNotObserved,
        ),
        (
            "revision changed",
            |s| s.sts.update_revision = Some("sample-other".to_owned()),
            Refusal::UpdateRevisionChanged {
                expected: NEW.to_owned(),
                found: "sample-other".to_owned(),
            },
        ),
        (
            "unknown member",
            |s| {
                s.arbiter
                    .members
                    .insert("other-0".to_owned(), baton_engine::snapshot::Role::Idle);
            },
            Refusal::UnknownPods {
                pods: vec!["other-0".to_owned()],
            },
        ),
        (
            "below min working",
            |s| set_roles(s, &[0, 2]),
            Refusal::BelowMinWorking { working: 2, min: 3 },
        ),
    ];
    for (what, edit, refusal) in cases {
        let mut s = seed();
        edit(&mut s);
        let p = policy(0, 3);
        assert_eq!(plan_wave(&s, &p), Err(refusal.clone()), "plan_wave: {what}");
        assert_eq!(forecast(&s, &p), Err(refusal.clone()), "forecast: {what}");
        if !matches!(refusal, Refusal::BelowMinWorking { .. }) {
            assert_eq!(
                plan_handover(&s, &p),
                Err(refusal.clone()),
                "plan_handover: {what}"
            );
        }
    }
}

#[test]
fn an_unexpected_revision_is_accepted_when_the_run_has_not_recorded_one() {
    let mut s = seed();
    s.sts.update_revision = Some("sample-other".to_owned());
    let p = Policy {
        expected_update_revision: None,
        prefer_handover: false,
        ..policy(0, 3)
    };
    assert_eq!(plan_wave(&s, &p), Ok(update(&[1, 3], 3)));
}

mod judge {
    use super::*;
    use baton_engine::decide::{Violation, WaveVerdict};

    fn after_wave() -> (Snapshot, Snapshot) {
        let mut before = seed();
        relabel(&mut before, &names(&[1, 3]));
        let mut after = before.clone();
        kruise_rollout(&mut after, 3);
        (before, after)
    }

    #[test]
    fn a_wave_that_updates_only_idle_pods_is_clean() {
        let (before, after) = after_wave();
        assert_eq!(judge_wave(&before, &after), WaveVerdict::default());
    }

    #[test]
    fn violations_name_each_disturbed_working_pod() {
        type Edit = fn(&mut Snapshot);
        let cases: Vec<(&str, Edit, Vec<Violation>)> = vec![
            (
                "updated in place",
                |s| set_revision(s, &[2], NEW),
                vec![Violation::RevisionChanged {
                    pod: name(2),
                    from: Some(OLD.to_owned()),
                    to: Some(NEW.to_owned()),
                }],
            ),
            (
                "restarted",
                |s| pod_mut(s, 4).restarts = 2,
                vec![Violation::Restarted {
                    pod: name(4),
                    before: 0,
                    after: 2,
                }],
            ),
            (
                "updated in place with a restart",
                |s| {
                    set_revision(s, &[0], NEW);
                    pod_mut(s, 0).restarts = 1;
                },
                vec![
                    Violation::RevisionChanged {
                        pod: name(0),
                        from: Some(OLD.to_owned()),
                        to: Some(NEW.to_owned()),
                    },
                    Violation::Restarted {
                        pod: name(0),
                        before: 0,
                        after: 1,
                    },
                ],
            ),
            (
                "deleted by someone and recreated at the update revision",
                |s| {
                    let p = pod_mut(s, 0);
                    p.uid = "uid-0-b".to_owned();
                    p.revision = Some(NEW.to_owned());
                },
                vec![Violation::Recreated {
                    pod: name(0),
                    external: true,
                    revision: Some(NEW.to_owned()),
                }],
            ),
            (
                "deleted and not back yet",
                |s| s.pods.retain(|p| p.ordinal != 2),
                vec![Violation::Recreated {
                    pod: name(2),
                    external: true,
                    revision: None,
                }],
            ),
            (
                "being deleted by someone",
                |s| pod_mut(s, 4).terminating = true,
                vec![Violation::Terminating {
                    pod: name(4),
                    external: true,
                }],
            ),
            (
                "an idle pod restarted",
                |s| pod_mut(s, 1).restarts = 5,
                vec![],
            ),
            (
                "listed in another order, nothing disturbed",
                |s| s.pods.reverse(),
                vec![],
            ),
            (
                "listed in another order, one working pod restarted",
                |s| {
                    s.pods.reverse();
                    pod_mut(s, 2).restarts = 1;
                },
                vec![Violation::Restarted {
                    pod: name(2),
                    before: 0,
                    after: 1,
                }],
            ),
            (
                "a working pod's slot taken by a pod of another name",
                |s| pod_mut(s, 4).name = "sample-40".to_owned(),
                vec![Violation::Recreated {
                    pod: name(4),
                    external: true,
                    revision: None,
                }],
            ),
        ];
        for (what, edit, expected) in cases {
            let (before, mut after) = after_wave();
            edit(&mut after);
            let verdict = judge_wave(&before, &after);
            assert_eq!(verdict.violations, expected, "{what}");
            assert_eq!(verdict.is_safe(), expected.is_empty(), "{what}");
        }
    }

    #[test]
    fn a_recreated_pod_the_engine_selected_is_not_external() {
        let (mut before, mut after) = after_wave();
        pod_mut(&mut before, 2).selected = true;
        pod_mut(&mut after, 2).uid = "uid-2-b".to_owned();
        assert_eq!(
            judge_wave(&before, &after).violations,
            vec![Violation::Recreated {
                pod: name(2),
                external: false,
                revision: Some(OLD.to_owned())
            }]
        );
    }

    #[test]
    fn roles_are_judged_as_the_arbiter_held_them_when_the_wave_began() {
        let (before, mut after) = after_wave();
        // A handover that already happened does not excuse an update of a formerly working pod.
        set_roles(&mut after, &[1, 3, 4]);
        set_revision(&mut after, &[0], NEW);
        assert_eq!(judge_wave(&before, &after).violations.len(), 1);
    }
}

/// `Snapshot::index`, the by-name look-up decisions use instead of searching the pod list.
mod index {
    use super::*;
    use baton_engine::snapshot::Role;

    #[test]
    fn the_index_finds_the_pods_the_list_holds_and_nothing_else() {
        type Edit = fn(&mut Snapshot);
        let cases: Vec<(&str, Edit, &str, Option<u32>)> = vec![
            ("in ordinal order", |_| {}, "sample-3", Some(3)),
            (
                "in reverse order",
                |s| s.pods.reverse(),
                "sample-3",
                Some(3),
            ),
            ("absent", |_| {}, "sample-9", None),
            ("a prefix of a name", |_| {}, "sample-", None),
            (
                "removed",
                |s| s.pods.retain(|p| p.ordinal != 3),
                "sample-3",
                None,
            ),
            (
                "two pods of one name: the first, as Snapshot::pod finds it",
                |s| {
                    let mut twin = pod(7, NEW);
                    twin.name = name(3);
                    s.pods.insert(0, twin);
                },
                "sample-3",
                Some(7),
            ),
            ("no pods", |s| s.pods.clear(), "sample-0", None),
        ];
        for (what, edit, look_up, want) in cases {
            let mut s = seed();
            edit(&mut s);
            let index = s.index();
            assert_eq!(index.get(look_up).map(|p| p.ordinal), want, "{what}");
            assert_eq!(index.contains(look_up), want.is_some(), "{what}");
            assert_eq!(
                index.get(look_up).map(|p| p.ordinal),
                s.pod(look_up).map(|p| p.ordinal),
                "{what}: the index agrees with the list"
            );
        }
    }

    #[test]
    fn members_without_a_pod_are_unknown_in_name_order() {
        type Edit = fn(&mut Snapshot);
        let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
            ("every member a pod", |_| {}, vec![]),
            ("pods listed in reverse", |s| s.pods.reverse(), vec![]),
            (
                "two members gone",
                |s| s.pods.retain(|p| p.ordinal != 1 && p.ordinal != 4),
                vec!["sample-1", "sample-4"],
            ),
            (
                "a member of another set",
                |s| {
                    s.arbiter.members.insert("other-0".to_owned(), Role::Idle);
                },
                vec!["other-0"],
            ),
        ];
        for (what, edit, want) in cases {
            let mut s = seed();
            edit(&mut s);
            assert_eq!(s.unknown_members(), want, "{what}");
        }
    }
}
