//! Properties of the decision core over random clusters and arbiter states, driven
//! against a cluster that reacts to partitions as Kruise's unordered rolling update does.

use crate::decide_support::*;
use baton_engine::decide::{
    Handover, Policy, WaveDecision, forecast, judge_wave, plan_handover, plan_wave,
};
use baton_engine::snapshot::{Role, Snapshot};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct PodSeed {
    exists: bool,
    updated: bool,
    ready: bool,
    /// `None`: the arbiter does not list it.
    role: Option<Role>,
}

fn pod_seed() -> impl Strategy<Value = PodSeed> {
    (
        prop::bool::weighted(0.9),
        any::<bool>(),
        prop::bool::weighted(0.8),
        prop_oneof![4 => Just(Some(Role::Working)), 5 => Just(Some(Role::Idle)), 1 => Just(None)],
    )
        .prop_map(|(exists, updated, ready, role)| PodSeed {
            exists,
            updated,
            ready,
            role,
        })
}

/// A random set of 1..=9 slots, sometimes with one pod above `replicas` being scaled away.
fn random_cluster() -> impl Strategy<Value = (Snapshot, Policy)> {
    (
        prop::collection::vec(pod_seed(), 1..=9),
        prop::option::weighted(0.2, pod_seed()),
        0u32..=3,
        any::<bool>(),
    )
        .prop_map(|(seeds, leaving, max_per_wave, strict)| {
            let replicas = u32::try_from(seeds.len()).unwrap();
            let mut s = cluster(replicas, &[]);
            s.pods.clear();
            s.arbiter.members.clear();
            let leaving = leaving.map(|l| PodSeed { exists: true, ..l });
            for (ordinal, seed) in (0..).zip(seeds.iter().chain(leaving.iter())) {
                if !seed.exists {
                    continue;
                }
                let mut p = pod(ordinal, if seed.updated { NEW } else { OLD });
                p.ready = seed.ready;
                if let Some(role) = seed.role {
                    s.arbiter.members.insert(p.name.clone(), role);
                }
                s.pods.push(p);
            }
            let working = u32::try_from(working(&s).len()).unwrap();
            let policy = Policy {
                max_per_wave,
                min_working: if strict { working } else { 0 },
                expected_update_revision: Some(NEW.to_owned()),
                prefer_handover: false,
            };
            (s, policy)
        })
}

fn in_range(s: &Snapshot) -> impl Iterator<Item = &baton_engine::snapshot::PodView> {
    s.pods.iter().filter(|p| p.ordinal < s.sts.replicas)
}

fn role(s: &Snapshot, pod: &str) -> Option<Role> {
    s.arbiter.members.get(pod).copied()
}

fn is_new(s: &Snapshot, pod: &str) -> bool {
    s.pods
        .iter()
        .any(|p| p.name == pod && p.revision.as_deref() == Some(NEW))
}

/// Checks a handover against the snapshot it was planned on, applies it, and checks the
/// working count did not move.
fn check_and_apply_handover(
    s: &mut Snapshot,
    h: &Handover,
    policy: &Policy,
) -> Result<(), TestCaseError> {
    prop_assert!(!h.promote.is_empty());
    prop_assert_eq!(h.promote.len(), h.demote.len());
    if policy.max_per_wave > 0 {
        prop_assert!(h.promote.len() <= usize::try_from(policy.max_per_wave).unwrap());
    }
    for name in &h.promote {
        let pod = in_range(s).find(|p| &p.name == name);
        prop_assert!(
            pod.is_some_and(|p| p.is_settled()),
            "promoted {} is a settled pod of the set",
            name
        );
        prop_assert_eq!(role(s, name), Some(Role::Idle));
        prop_assert!(
            is_new(s, name),
            "promoted {} runs the update revision",
            name
        );
    }
    for name in &h.demote {
        prop_assert_eq!(role(s, name), Some(Role::Working));
        prop_assert!(
            !is_new(s, name),
            "demoted {} still runs the old revision",
            name
        );
    }
    let before = working(s).len();
    apply_handover(s, h);
    prop_assert_eq!(working(s).len(), before, "the working count never drops");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decisions_never_touch_a_working_pod_and_a_perfect_cluster_finishes(
        (start, policy) in random_cluster()
    ) {
        let mut s = start.clone();
        let replicas = s.sts.replicas;
        let first = plan_wave(&s, &policy);
        prop_assume!(first.is_ok());
        let mut decisions = 0u32;
        loop {
            decisions += 1;
            prop_assert!(decisions <= replicas + 1, "finished within |P| + 1 decisions");
            let decision = plan_wave(&s, &policy);
            prop_assert!(decision.is_ok(), "no refusal after a good start: {:?}", decision);
            match decision.unwrap() {
                WaveDecision::Done => break,
                WaveDecision::Update { select, partition } => {
                    prop_assert!(!select.is_empty());
                    if policy.max_per_wave > 0 {
                        prop_assert!(select.len() <= usize::try_from(policy.max_per_wave).unwrap());
                    }
                    for name in &select {
                        prop_assert!(in_range(&s).any(|p| &p.name == name), "{} is a pod of the set", name);
                        prop_assert_eq!(role(&s, name), Some(Role::Idle), "{} is idle", name);
                        prop_assert!(!is_new(&s, name), "{} is old", name);
                    }
                    let updated = u32::try_from(in_range(&s).filter(|p| is_new(&s, &p.name)).count()).unwrap();
                    let selected = u32::try_from(select.len()).unwrap();
                    prop_assert_eq!(replicas - partition, updated + selected, "|P| - partition = |U| + |S|");

                    relabel(&mut s, &select);
                    let before = s.clone();
                    let rolled = kruise_rollout(&mut s, partition);
                    prop_assert_eq!(names(&rolled), select, "the controller updates exactly the selected pods");
                    let verdict = judge_wave(&before, &s);
                    prop_assert!(verdict.is_safe(), "{:?}", verdict);
                    match plan_handover(&s, &policy) {
                        Ok(Some(h)) => check_and_apply_handover(&mut s, &h, &policy)?,
                        Ok(None) => prop_assert!(
                            in_range(&s).all(|p| role(&s, &p.name) != Some(Role::Working) || is_new(&s, &p.name))
                        ),
                        Err(refusal) => prop_assert!(false, "handover refused after a good wave: {}", refusal),
                    }
                }
                WaveDecision::HandoverFirst(h) => {
                    prop_assert!(in_range(&s).all(|p| role(&s, &p.name) != Some(Role::Idle) || is_new(&s, &p.name)));
                    check_and_apply_handover(&mut s, &h, &policy)?;
                }
            }
        }
        for p in in_range(&s) {
            if role(&s, &p.name).is_some() {
                prop_assert!(is_new(&s, &p.name), "{} is updated at the end", p.name);
            } else {
                let was = start.pods.iter().find(|q| q.name == p.name).and_then(|q| q.revision.clone());
                prop_assert_eq!(p.revision.clone(), was, "protected {} is untouched", p.name);
            }
        }

        let projected = forecast(&start, &policy);
        prop_assert!(projected.is_ok());
        prop_assert_eq!(projected.unwrap().len() + 1, usize::try_from(decisions).unwrap(), "one forecast wave per decision before Done");
    }

    #[test]
    fn the_forecast_is_what_driving_the_decisions_produces(
        (start, policy) in random_cluster()
    ) {
        let Ok(projected) = forecast(&start, &policy) else { return Ok(()) };
        let mut s = start;
        for wave in &projected {
            match plan_wave(&s, &policy) {
                Ok(WaveDecision::Update { select, partition }) => {
                    prop_assert_eq!(&select, &wave.select);
                    prop_assert_eq!(partition, wave.partition);
                    relabel(&mut s, &select);
                    kruise_rollout(&mut s, partition);
                }
                Ok(WaveDecision::HandoverFirst(_)) => prop_assert!(wave.select.is_empty()),
                other => prop_assert!(false, "wave {} expected, got {:?}", wave.wave, other),
            }
            let h = plan_handover(&s, &policy);
            prop_assert_eq!(h.as_ref().ok(), Some(&wave.handover));
            if let Some(h) = &wave.handover {
                apply_handover(&mut s, h);
            }
        }
        prop_assert_eq!(plan_wave(&s, &policy), Ok(WaveDecision::Done));
    }
}
