//! `onFailure: rollback` through the executor against sled on a real temp dir: an unhealthy
//! wave is recorded with its rollback, the rest of the wave is skipped, the `rollback` step and
//! the rollback's waves run, and the run ends `rolledBack`; without `rollback` the same failure
//! is a safety stop.

use std::collections::BTreeMap;
use std::sync::Arc;

use baton_engine::executor::{self, Outcome};
use baton_engine::plan::ValidPlan;
use baton_engine::step::StepErrorKind;
use baton_engine::store::{NodeState, RunState};
use baton_engine::test_util as support;
use support::WorldSteps;
use tokio_util::sync::CancellationToken;

use crate::exec_store::{events, fixture, opts};

const WAVES: u32 = 3;

fn plan(name: &str, on_failure: &str) -> ValidPlan {
    let text = format!(
        "{}  onFailure: {on_failure}\n",
        support::plan_text(name, "none")
    );
    ValidPlan::parse("plan.yaml", &text).unwrap()
}

fn unhealthy_at(world: &std::path::Path, step: &str) -> Arc<WorldSteps> {
    let mut s = WorldSteps::new(world.to_path_buf(), WAVES);
    s.failing = BTreeMap::from([(step.to_owned(), (1, StepErrorKind::Unhealthy))]);
    Arc::new(s)
}

#[tokio::test]
async fn an_unhealthy_wave_rolls_the_run_back_to_the_end() {
    let f = fixture();
    let p = plan("back", "rollback");
    let steps = unhealthy_at(&f.world, "wave-2/wait-updated");
    let outcome = executor::start(
        &p,
        steps.clone(),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        Outcome::RolledBack {
            step: "wave-2/wait-updated".into(),
            message: "wave-2/wait-updated fails on purpose".into()
        }
    );
    let view = executor::load_run(&f.state, "back").unwrap();
    assert_eq!(view.state, RunState::RolledBack);
    let state = |id: &str| {
        view.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
            .state
    };
    assert_eq!(state("wave-2/wait-updated"), NodeState::Failed);
    for skipped in [
        "wave-2/verify",
        "wave-2/hook/afterWaveReady/smoke",
        "wave-2/handover",
    ] {
        assert_eq!(state(skipped), NodeState::Skipped, "{skipped}");
    }
    for done in ["rollback", "wave-3/select", "finalize"] {
        assert_eq!(state(done), NodeState::Succeeded, "{done}");
    }
    // The rollback's wave 3 runs its writes (partition, handover) like any wave.
    assert_eq!(state("wave-3/handover"), NodeState::Succeeded);
    assert!(
        view.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("rolled back after wave-2/wait-updated")),
        "{:?}",
        view.reason
    );
    // A rolled-back run has ended: resume has nothing to do.
    let again = executor::resume(
        Some("back"),
        None,
        steps,
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        again,
        Outcome::AlreadyFinished {
            state: RunState::RolledBack
        }
    );
}

#[tokio::test]
async fn without_rollback_an_unhealthy_wave_is_a_safety_stop() {
    let f = fixture();
    let p = plan("frozen", "freeze");
    let steps = unhealthy_at(&f.world, "wave-2/wait-updated");
    let outcome = executor::start(
        &p,
        steps,
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcome, Outcome::SafetyStop { step, .. } if step == "wave-2/wait-updated"),
        "{outcome:?}"
    );
    let view = executor::load_run(&f.state, "frozen").unwrap();
    assert_eq!(view.state, RunState::SafetyStopped);
    let failed = view
        .nodes
        .iter()
        .find(|n| n.id == "wave-2/wait-updated")
        .unwrap();
    assert_eq!(
        failed.error.as_ref().map(|e| e.kind),
        Some(StepErrorKind::SafetyStop)
    );
    assert!(view.nodes.iter().all(|n| n.id != "rollback"));
}
