//! Per-pod gates in the decision core, as tables: a held pod is left out, the wave takes
//! the pods that pass, and when gates hold every pod the refusal names them and why.

use std::collections::BTreeSet;

use crate::decide_support::*;
use baton_engine::decide::{
    GateAnswer, Handover, Held, Policy, Refusal, WaveDecision, gates_at, plan_gated_handover,
    plan_gated_wave, promote_candidates, select_candidates,
};
use baton_engine::plan::{GateMoment, ValidPlan};

fn policy(max_per_wave: u32) -> Policy {
    Policy {
        max_per_wave,
        min_working: 0,
        expected_update_revision: Some(NEW.to_owned()),
        prefer_handover: false,
    }
}

fn held(select: &[u32], promote: &[u32]) -> Held {
    let mut answers = Vec::new();
    for (ordinals, moment) in [(select, GateMoment::Select), (promote, GateMoment::Promote)] {
        for &o in ordinals {
            answers.push(GateAnswer {
                pod: name(o),
                gate: "caught-up".into(),
                moment,
                passed: false,
                answer: "HTTP 503, expected 200".into(),
            });
        }
    }
    // A passing answer holds nothing.
    answers.push(GateAnswer {
        pod: name(1),
        gate: "lag".into(),
        moment: GateMoment::Select,
        passed: true,
        answer: "0.2 <= 5".into(),
    });
    Held::from_answers(&answers)
}

#[test]
fn a_held_idle_pod_is_left_out_and_the_wave_takes_the_others() {
    // (held for select, maxPerWave, wanted selection, wanted partition)
    let table: &[(&[u32], u32, &[u32], u32)] = &[
        (&[], 0, &[1, 3], 3),
        (&[3], 0, &[1], 4),
        (&[1], 0, &[3], 4),
        (&[1], 1, &[3], 4),
        (&[0, 2], 0, &[1, 3], 3),
    ];
    for (held_select, max, want, partition) in table {
        let s = seed();
        let decision = plan_gated_wave(&s, &policy(*max), &held(held_select, &[])).unwrap();
        assert_eq!(
            decision,
            WaveDecision::Update {
                select: names(want),
                partition: *partition
            },
            "held {held_select:?}, maxPerWave {max}"
        );
    }
}

#[test]
fn gates_holding_every_candidate_refuse_with_the_pods_and_answers() {
    let s = seed();
    let err = plan_gated_wave(&s, &policy(0), &held(&[1, 3], &[])).unwrap_err();
    assert_eq!(
        err,
        Refusal::GatesHold {
            pods: vec![
                "sample-1 (caught-up: HTTP 503, expected 200)".into(),
                "sample-3 (caught-up: HTTP 503, expected 200)".into(),
            ]
        }
    );
    assert!(
        err.to_string()
            .starts_with("gates hold every pod this wave could take: sample-1")
    );
}

#[test]
fn every_idle_pod_held_but_updated_ones_ready_means_hand_over_first() {
    // Wave 1 updated 1 and 3; 1 and 3 were promoted; 0 and 2 idle-old, both held.
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    set_roles(&mut s, &[1, 3, 4]);
    let err = plan_gated_wave(&s, &policy(0), &held(&[0, 2], &[])).unwrap_err();
    assert!(matches!(err, Refusal::GatesHold { .. }), "{err:?}");

    // Updated 1 is idle and ready, 0 and 2 (idle, old) are held: hand over first.
    let mut s = seed();
    set_revision(&mut s, &[1], NEW);
    set_roles(&mut s, &[0, 2, 4]);
    // idle: 1 (updated), 3 (old, held)
    let decision = plan_gated_wave(&s, &policy(0), &held(&[3], &[])).unwrap();
    assert_eq!(
        decision,
        WaveDecision::HandoverFirst(Handover {
            promote: names(&[1]),
            demote: names(&[0]),
        })
    );
    // ... unless 1's promote gate holds it too.
    let err = plan_gated_wave(&s, &policy(0), &held(&[3], &[1])).unwrap_err();
    assert_eq!(
        err,
        Refusal::GatesHold {
            pods: vec![
                "sample-3 (caught-up: HTTP 503, expected 200)".into(),
                "sample-1 (caught-up: HTTP 503, expected 200, not promoted)".into(),
            ]
        }
    );
}

#[test]
fn a_held_pod_is_not_promoted_and_the_others_are() {
    let mut s = seed();
    set_revision(&mut s, &[1, 3], NEW);
    // (held for promote, wanted promote and demote, or a refusal)
    type Want<'a> = Option<(&'a [u32], &'a [u32])>;
    let table: &[(&[u32], Want)] = &[
        (&[], Some((&[1, 3], &[0, 2]))),
        (&[1], Some((&[3], &[0]))),
        (&[3], Some((&[1], &[0]))),
        (&[1, 3], None),
    ];
    for (held_promote, want) in table {
        let got = plan_gated_handover(&s, &policy(0), &held(&[], held_promote));
        match want {
            Some((p, d)) => assert_eq!(
                got,
                Ok(Some(Handover {
                    promote: names(p),
                    demote: names(d)
                })),
                "{held_promote:?}"
            ),
            None => assert!(
                matches!(got, Err(Refusal::GatesHold { ref pods }) if pods.len() == 2),
                "{held_promote:?}: {got:?}"
            ),
        }
    }
}

#[test]
fn candidates_are_the_pods_each_moment_asks_about() {
    let mut s = seed();
    assert_eq!(select_candidates(&s, &policy(0)).unwrap(), names(&[1, 3]));
    assert!(promote_candidates(&s, &policy(0)).unwrap().is_empty());
    set_revision(&mut s, &[1], NEW);
    assert_eq!(select_candidates(&s, &policy(0)).unwrap(), names(&[3]));
    assert_eq!(promote_candidates(&s, &policy(0)).unwrap(), names(&[1]));
}

#[test]
fn skipped_gates_and_moments_decide_which_gates_are_asked() {
    let text = include_str!("../../../../plans/app-safety.yaml");
    let plan = ValidPlan::parse("app-safety.yaml", text).unwrap();
    let gates = &plan.spec().gates;
    let asked = |moment, skipped: &[&str]| -> Vec<String> {
        let skipped: BTreeSet<String> = skipped.iter().map(|s| s.to_string()).collect();
        gates_at(gates, moment, &skipped)
            .iter()
            .map(|g| g.name.clone())
            .collect()
    };
    assert_eq!(asked(GateMoment::Select, &[]), ["caught-up"]);
    assert_eq!(
        asked(GateMoment::Promote, &[]),
        ["caught-up", "replication-lag"]
    );
    assert_eq!(
        asked(GateMoment::Promote, &["caught-up"]),
        ["replication-lag"]
    );
    assert!(asked(GateMoment::Select, &["caught-up"]).is_empty());
}
