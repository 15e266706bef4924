//! Snapshots built by hand, and a cluster that reacts to a partition the way Kruise's
//! unordered rolling update does, for the decision-core tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use baton_engine::decide::Handover;
use baton_engine::snapshot::{
    ArbiterView, PodManagementPolicy, PodView, Role, Snapshot, StsView, UpdateStrategyType,
};

pub const OLD: &str = "sample-5d9c7b";
pub const NEW: &str = "sample-7f6a2e";

pub fn name(ordinal: u32) -> String {
    format!("sample-{ordinal}")
}

pub fn names(ordinals: &[u32]) -> Vec<String> {
    ordinals.iter().map(|o| name(*o)).collect()
}

pub fn pod(ordinal: u32, revision: &str) -> PodView {
    PodView {
        name: name(ordinal),
        ordinal,
        uid: format!("uid-{ordinal}-a"),
        revision: Some(revision.to_owned()),
        ready: true,
        terminating: false,
        lifecycle_state: Some("Normal".to_owned()),
        role_label: None,
        selected: false,
        restarts: 0,
        not_ready_reason: None,
    }
}

/// `replicas` Ready pods at the old revision, the new template applied (the controller has
/// observed it), the arbiter listing `working` as working and every other pod as idle.
pub fn cluster(replicas: u32, working: &[u32]) -> Snapshot {
    let pods: Vec<PodView> = (0..replicas).map(|o| pod(o, OLD)).collect();
    let mut s = Snapshot {
        sts: StsView {
            namespace: "default".to_owned(),
            name: "sample".to_owned(),
            replicas,
            partition: Some(replicas),
            generation: 2,
            observed_generation: Some(2),
            update_revision: Some(NEW.to_owned()),
            current_revision: Some(OLD.to_owned()),
            pod_management_policy: PodManagementPolicy::Parallel,
            update_type: UpdateStrategyType::RollingUpdate,
            paused: false,
            unordered: true,
            max_unavailable: 1,
        },
        pods,
        arbiter: ArbiterView::default(),
    };
    set_roles(&mut s, working);
    s
}

/// The seed case of SPEC §1: 5 replicas, working {0,2,4}.
pub fn seed() -> Snapshot {
    cluster(5, &[0, 2, 4])
}

/// The arbiter lists every existing pod: `working` as working, the rest idle. Bumps the epoch.
pub fn set_roles(s: &mut Snapshot, working: &[u32]) {
    s.arbiter.members = s
        .pods
        .iter()
        .map(|p| {
            let role = if working.contains(&p.ordinal) {
                Role::Working
            } else {
                Role::Idle
            };
            (p.name.clone(), role)
        })
        .collect::<BTreeMap<_, _>>();
    s.arbiter.epoch += 1;
}

pub fn set_revision(s: &mut Snapshot, ordinals: &[u32], revision: &str) {
    for p in s.pods.iter_mut().filter(|p| ordinals.contains(&p.ordinal)) {
        p.revision = Some(revision.to_owned());
    }
}

pub fn pod_mut(s: &mut Snapshot, ordinal: u32) -> &mut PodView {
    s.pods
        .iter_mut()
        .find(|p| p.ordinal == ordinal)
        .expect("pod exists")
}

pub fn working(s: &Snapshot) -> Vec<u32> {
    ordinals_with(s, Role::Working)
}

pub fn idle(s: &Snapshot) -> Vec<u32> {
    ordinals_with(s, Role::Idle)
}

fn ordinals_with(s: &Snapshot, role: Role) -> Vec<u32> {
    let mut out: Vec<u32> = s
        .pods
        .iter()
        .filter(|p| s.arbiter.members.get(&p.name) == Some(&role))
        .map(|p| p.ordinal)
        .collect();
    out.sort_unstable();
    out
}

pub fn updated(s: &Snapshot) -> Vec<u32> {
    let update = s.sts.update_revision.clone();
    let mut out: Vec<u32> = s
        .pods
        .iter()
        .filter(|p| p.revision == update)
        .map(|p| p.ordinal)
        .collect();
    out.sort_unstable();
    out
}

/// What the `relabel` step does: `baton.dev/selected` on exactly `select`.
pub fn relabel(s: &mut Snapshot, select: &[String]) {
    for p in &mut s.pods {
        p.selected = select.contains(&p.name);
    }
}

/// What Kruise's unordered rolling update does with `partition`, when every update
/// succeeds: targets are `done ++ waiting`, where `done` = pods at the update revision or
/// terminating, `waiting` = the rest with `baton.dev/selected` ranked first (stable, from
/// the highest slot down), cut to `replicas - partition`. Only pods with a slot
/// (ordinal < replicas) take part. Returns the ordinals it updated.
pub fn kruise_rollout(s: &mut Snapshot, partition: u32) -> Vec<u32> {
    s.sts.partition = Some(partition);
    let update = s.sts.update_revision.clone();
    let replicas = s.sts.replicas;
    let mut slots: Vec<&PodView> = s.pods.iter().filter(|p| p.ordinal < replicas).collect();
    slots.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
    let (done, mut waiting): (Vec<&PodView>, Vec<&PodView>) = slots
        .into_iter()
        .partition(|p| p.terminating || p.revision == update);
    waiting.sort_by_key(|p| !p.selected);
    let quota = usize::try_from(replicas.saturating_sub(partition)).unwrap();
    let targets: Vec<u32> = done
        .iter()
        .chain(waiting.iter())
        .take(quota)
        .filter(|p| !p.terminating && p.revision != update)
        .map(|p| p.ordinal)
        .collect();
    for p in s.pods.iter_mut().filter(|p| targets.contains(&p.ordinal)) {
        p.revision = update.clone();
        p.ready = true;
        p.lifecycle_state = Some("Normal".to_owned());
        p.not_ready_reason = None;
        p.restarts += 1;
    }
    let mut targets = targets;
    targets.sort_unstable();
    targets
}

/// What the arbiter does with an accepted handover.
pub fn apply_handover(s: &mut Snapshot, h: &Handover) {
    for n in &h.promote {
        s.arbiter.members.insert(n.clone(), Role::Working);
    }
    for n in &h.demote {
        s.arbiter.members.insert(n.clone(), Role::Idle);
    }
    s.arbiter.epoch += 1;
}
