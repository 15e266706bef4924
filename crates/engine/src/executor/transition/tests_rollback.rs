//! Table tests of `onFailure: rollback` in the state machine: which failure starts it, the
//! record it leaves (one commit with the failure), the graph it grows, how a resume treats
//! it, and how the run ends.

use super::tests::{at, created, idx, resume};
use super::*;
use crate::dag::StepId;
use crate::plan::HookPoint;
use crate::step::StepError;
use crate::store::Rollback;

const ROLLBACK_PLAN: &str = "apiVersion: baton.dev/v1alpha1\nkind: UpgradePlan\nmetadata:\n  name: r\nspec:\n  target:\n    namespace: default\n    name: sample\n  update:\n    images:\n      main: alpine:3.18.0\n  arbiter:\n    url: http://127.0.0.1:9/\n  hooks:\n    afterWaveReady:\n      - name: smoke\n        sleep: {duration: 1ms}\n  schedule:\n    windows:\n      - {start: \"01:00\", end: \"05:00\", timeZone: UTC}\n  onFailure: rollback\n";

fn rollback_plan() -> ValidPlan {
    ValidPlan::parse("plan.yaml", ROLLBACK_PLAN).unwrap()
}

/// Every pending or running node succeeds (failed ones stay failed).
fn pending_done(rec: &mut RunRecord) {
    for n in &mut rec.nodes {
        if matches!(n.state, NodeState::Pending | NodeState::Running) {
            n.state = NodeState::Succeeded;
        }
    }
}

fn grow_ok(rec: &mut RunRecord, p: &ValidPlan) -> Vec<Effect> {
    apply(rec, at(20), Transition::Grow { blueprint: p }).unwrap()
}

/// A run of the rollback plan in wave 2, its steps up to `select` done.
fn in_wave_two(p: &ValidPlan) -> RunRecord {
    let mut rec = created(p);
    pending_done(&mut rec);
    grow_ok(&mut rec, p);
    pending_done(&mut rec);
    grow_ok(&mut rec, p);
    assert_eq!(rec.meta.phase, Phase::Wave { wave: 2 });
    let select = idx(&rec, "wave-2/select");
    for n in &mut rec.nodes[..=select] {
        n.state = NodeState::Succeeded;
    }
    rec
}

fn fail(rec: &mut RunRecord, step: &str, error: StepError, rolls_back: bool) -> Vec<Effect> {
    let i = idx(rec, step);
    apply(
        rec,
        at(10),
        Transition::Failed {
            idx: i,
            error,
            rolls_back,
        },
    )
    .unwrap()
}

#[test]
fn which_failures_start_a_rollback() {
    let p = rollback_plan();
    assert!(Blueprint::rolls_back(&p));
    let wave = |kind| StepId::in_wave(2, kind);
    let hook = |point| StepKind::Hook {
        point,
        name: "smoke".into(),
    };
    // (step, kind, already rolling back, starts)
    let table = [
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Unhealthy,
            false,
            true,
        ),
        (
            wave(StepKind::Settle),
            StepErrorKind::Unhealthy,
            false,
            true,
        ),
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Failed,
            false,
            true,
        ),
        (
            wave(hook(HookPoint::AfterWaveReady)),
            StepErrorKind::Failed,
            false,
            true,
        ),
        // A broken invariant stays a safety stop: a human must look.
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::SafetyStop,
            false,
            false,
        ),
        (
            wave(StepKind::Verify),
            StepErrorKind::SafetyStop,
            false,
            false,
        ),
        // Failures that say nothing about the new revision.
        (wave(StepKind::Select), StepErrorKind::Failed, false, false),
        (
            wave(StepKind::Handover),
            StepErrorKind::Failed,
            false,
            false,
        ),
        (
            wave(hook(HookPoint::BeforeWave)),
            StepErrorKind::Failed,
            false,
            false,
        ),
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Retryable,
            false,
            false,
        ),
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Interrupted,
            false,
            false,
        ),
        (
            StepId::run_level(StepKind::ApplyUpdate),
            StepErrorKind::Failed,
            false,
            false,
        ),
        // Never a rollback of the rollback.
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Unhealthy,
            true,
            false,
        ),
        (
            wave(StepKind::WaitUpdated),
            StepErrorKind::Failed,
            true,
            false,
        ),
    ];
    for (id, kind, rolling, want) in table {
        let mut rec = created(&p);
        if rolling {
            rec.meta.rollback = Some(Rollback {
                step: "wave-1/wait-updated".into(),
                reason: "x".into(),
                wave: 1,
                node: Some(3),
            });
        }
        assert_eq!(
            rollback::starts_rollback(&rec, &id, kind),
            want,
            "{id} {kind:?} rolling={rolling}"
        );
    }
}

#[test]
fn an_unhealthy_wave_records_the_rollback_with_its_failure() {
    let p = rollback_plan();
    let mut rec = in_wave_two(&p);
    let failed = idx(&rec, "wave-2/wait-updated");
    let fx = fail(
        &mut rec,
        "wave-2/wait-updated",
        StepError::unhealthy("analysis check error-rate failed: 0.2 > 0.01"),
        true,
    );
    let n = &rec.nodes[failed];
    assert_eq!(n.state, NodeState::Failed);
    assert_eq!(
        n.error.as_ref().map(|e| e.kind),
        Some(StepErrorKind::Unhealthy)
    );
    assert_eq!(
        rec.meta.rollback,
        Some(Rollback {
            step: "wave-2/wait-updated".into(),
            reason: "analysis check error-rate failed: 0.2 > 0.01".into(),
            wave: 2,
            node: None,
        })
    );
    // The rest of the wave will not run.
    assert!(
        rec.nodes[failed + 1..]
            .iter()
            .all(|n| n.state == NodeState::Skipped),
        "{:?}",
        rec.nodes
    );
    let events: Vec<&RunEvent> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev),
            _ => None,
        })
        .collect();
    assert!(matches!(
        events[0],
        RunEvent::StepFailed {
            retrying: false,
            ..
        }
    ));
    assert_eq!(
        events[1],
        &RunEvent::RollbackStarted {
            step: "wave-2/wait-updated".into(),
            reason: "analysis check error-rate failed: 0.2 > 0.01".into(),
            wave: 2,
        }
    );
}

#[test]
fn without_rollback_an_unhealthy_application_is_a_safety_stop() {
    let p = rollback_plan();
    // (rolls back, already rolling back): a plan with `freeze`, or a second failure.
    for (rolls_back, rolling) in [(false, false), (true, true)] {
        let mut rec = in_wave_two(&p);
        let marker = rolling.then(|| Rollback {
            step: "wave-1/wait-updated".into(),
            reason: "x".into(),
            wave: 1,
            node: Some(0),
        });
        rec.meta.rollback.clone_from(&marker);
        let fx = fail(
            &mut rec,
            "wave-2/wait-updated",
            StepError::unhealthy("bad"),
            rolls_back,
        );
        let n = &rec.nodes[idx(&rec, "wave-2/wait-updated")];
        assert_eq!(
            n.error.as_ref().map(|e| e.kind),
            Some(StepErrorKind::SafetyStop)
        );
        assert_eq!(rec.meta.rollback, marker);
        assert!(fx.contains(&Effect::Event(RunEvent::SafetyStop {
            step: "wave-2/wait-updated".into(),
            reason: "bad".into()
        })));
        assert_eq!(
            rec.nodes[idx(&rec, "wave-2/verify")].state,
            NodeState::Pending
        );
    }
}

#[test]
fn the_rollback_grows_its_step_then_windowless_waves_and_ends_rolled_back() {
    let p = rollback_plan();
    let mut rec = in_wave_two(&p);
    let failed = idx(&rec, "wave-2/wait-updated");
    fail(
        &mut rec,
        "wave-2/wait-updated",
        StepError::unhealthy("bad"),
        true,
    );
    // A sibling still running when the executor grew the rollback is skipped.
    let verify = idx(&rec, "wave-2/verify");
    rec.nodes[verify].state = NodeState::Interrupted;

    let fx = grow_ok(&mut rec, &p);
    let rb = idx(&rec, "rollback");
    assert_eq!(rb, rec.nodes.len() - 1);
    assert_eq!(rec.nodes[verify].state, NodeState::Skipped);
    assert_eq!(rec.nodes[failed].state, NodeState::Failed);
    assert!(fx.contains(&Effect::Node(rb)));
    assert!(fx.contains(&Effect::Node(verify)));
    assert_eq!(
        rec.meta.rollback.as_ref().and_then(|r| r.node),
        Some(rb as u32)
    );
    assert_eq!(rec.meta.phase, Phase::Wave { wave: 2 });
    assert_eq!(rec.meta.phase_start, rb as u32);
    // It follows the failed wave's end, never the failed step.
    let deps: Vec<String> = rec.nodes[rb]
        .spec
        .deps
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(deps, ["wave-2/handover"]);
    // Growing again before the rollback step is done is refused.
    let before = rec.clone();
    assert!(apply(&mut rec, at(21), Transition::Grow { blueprint: &p }).is_err());
    assert_eq!(rec, before);

    // The rollback's first wave is numbered after the failed one and waits for no window.
    pending_done(&mut rec);
    grow_ok(&mut rec, &p);
    assert_eq!(rec.meta.phase, Phase::Wave { wave: 3 });
    let first = rec.meta.phase_start as usize;
    assert_eq!(
        rec.nodes[first].spec.id,
        StepId::in_wave(3, StepKind::QueryArbiter)
    );
    assert_eq!(
        rec.nodes[first].spec.deps,
        [StepId::run_level(StepKind::Rollback)]
    );
    assert!(
        rec.nodes[first..]
            .iter()
            .all(|n| n.spec.id.kind != StepKind::Window)
    );
    assert!(
        rec.position(&StepId::in_wave(
            3,
            StepKind::Hook {
                point: HookPoint::AfterWaveReady,
                name: "smoke".into()
            }
        ))
        .is_some()
    );

    // Its select finds nothing left: the epilogue, then the run ends rolled back.
    pending_done(&mut rec);
    rec.meta.finishing = true;
    grow_ok(&mut rec, &p);
    assert_eq!(rec.meta.phase, Phase::Epilogue);
    pending_done(&mut rec);
    let fx = grow_ok(&mut rec, &p);
    assert_eq!(rec.meta.state, RunState::RolledBack);
    assert_eq!(
        rec.meta.reason.as_deref(),
        Some("rolled back after wave-2/wait-updated: bad")
    );
    assert_eq!(
        fx,
        [
            Effect::Event(RunEvent::RunFinished {
                run: "r".into(),
                outcome: "rolledBack".into()
            }),
            Effect::Complete
        ]
    );
    assert!(rec.meta.state.is_finished() && !rec.meta.state.is_unfinished());
}

#[test]
fn a_resume_goes_on_with_the_rollback_never_the_failed_wave() {
    let p = rollback_plan();
    // Killed after the failure's commit, before the rollback step was grown: the failed
    // step stays failed, a sibling left running is skipped, and the next grow adds the
    // rollback step.
    let mut rec = in_wave_two(&p);
    let failed = idx(&rec, "wave-2/wait-updated");
    fail(
        &mut rec,
        "wave-2/wait-updated",
        StepError::unhealthy("bad"),
        true,
    );
    let verify = idx(&rec, "wave-2/verify");
    rec.nodes[verify].state = NodeState::Running;
    rec.meta.state = RunState::Running;
    resume(&mut rec, &p, false);
    assert_eq!(rec.nodes[failed].state, NodeState::Failed);
    assert_eq!(rec.nodes[verify].state, NodeState::Skipped);
    grow_ok(&mut rec, &p);
    let rb = idx(&rec, "rollback");

    // Killed while the rollback step ran: it runs again; the failed step still does not.
    rec.nodes[rb].state = NodeState::Running;
    resume(&mut rec, &p, false);
    assert_eq!(rec.nodes[rb].state, NodeState::Pending);
    assert_eq!(rec.nodes[failed].state, NodeState::Failed);

    // Killed in a rollback wave: that wave's step runs again as in any wave.
    pending_done(&mut rec);
    grow_ok(&mut rec, &p);
    let select = idx(&rec, "wave-3/select");
    rec.nodes[select].state = NodeState::Failed;
    rec.meta.state = RunState::Failed;
    resume(&mut rec, &p, false);
    assert_eq!(rec.nodes[select].state, NodeState::Pending);
    assert_eq!(rec.nodes[failed].state, NodeState::Failed);
    assert!(rec.meta.rollback.is_some());
}

#[test]
fn the_rollback_marker_survives_the_store_format_and_old_records_have_none() {
    let p = rollback_plan();
    let mut rec = in_wave_two(&p);
    fail(
        &mut rec,
        "wave-2/wait-updated",
        StepError::unhealthy("bad"),
        true,
    );
    let json = serde_json::to_value(&rec.meta).unwrap();
    let back: RunMeta = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.rollback, rec.meta.rollback);
    let mut old = json;
    old.as_object_mut().unwrap().remove("rollback");
    let back: RunMeta = serde_json::from_value(old).unwrap();
    assert_eq!(back.rollback, None);
}

#[test]
fn accepting_a_safety_stop_beside_the_rollback_goes_on_with_the_rollback() {
    let p = rollback_plan();
    let mut rec = in_wave_two(&p);
    fail(
        &mut rec,
        "wave-2/wait-updated",
        StepError::unhealthy("bad"),
        true,
    );
    // A parallel step of the same wave stopped for safety before the rollback grew.
    let verify = idx(&rec, "wave-2/verify");
    rec.nodes[verify].state = NodeState::Failed;
    rec.nodes[verify].error = Some(NodeError {
        kind: StepErrorKind::SafetyStop,
        message: "working pod sample-0 restarted".into(),
    });
    rec.meta.state = RunState::SafetyStopped;
    let fx = resume(&mut rec, &p, true);
    assert!(fx.contains(&Effect::Log(LogKind::RiskAccepted {
        step: StepId::in_wave(2, StepKind::Verify),
        by: "op".into()
    })));
    // Nothing of the failed wave runs again; the rollback grows next.
    assert_eq!(rec.nodes[verify].state, NodeState::Failed);
    assert!(rec.nodes.iter().all(|n| n.state != NodeState::Pending));
    grow_ok(&mut rec, &p);
    assert!(
        rec.position(&StepId::run_level(StepKind::Rollback))
            .is_some()
    );
}
