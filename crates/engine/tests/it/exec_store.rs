//! The executor against sled on a real temp dir, in one process: restarts, approvals,
//! retries, failures, safety stops and plan changes (damaged state: `exec_damage`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton_engine::clock::ManualClock;
use baton_engine::dag::{StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::executor::{self, Environment, ExecError, Outcome, RunOptions, StoreOpener};
use baton_engine::plan::ValidPlan;
use baton_engine::step::{StepContext, StepError, StepErrorKind, StepOutput, StepRunner};
use baton_engine::store::{
    self, Commit, MemoryStore, NodeState, RunRecord, RunState, RunStore, StoreError,
};
use baton_engine::test_util as support;
use support::{World, WorldSteps};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const WAVES: u32 = 2;

pub(crate) struct Fixture {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) state: std::path::PathBuf,
    pub(crate) world: std::path::PathBuf,
}

pub(crate) fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    Fixture {
        state: tmp.path().join("state"),
        world: tmp.path().join("world.json"),
        _tmp: tmp,
    }
}

pub(crate) fn opts(state: &Path) -> RunOptions {
    support::options(state)
}

pub(crate) fn steps(f: &Fixture) -> Arc<WorldSteps> {
    Arc::new(WorldSteps::new(f.world.clone(), WAVES))
}

fn failing(f: &Fixture, step: &str, times: u32, kind: StepErrorKind) -> Arc<WorldSteps> {
    let mut s = WorldSteps::new(f.world.clone(), WAVES);
    s.failing = BTreeMap::from([(step.to_owned(), (times, kind))]);
    Arc::new(s)
}

pub(crate) fn events() -> broadcast::Sender<RunEvent> {
    broadcast::channel(1024).0
}

fn check(f: &Fixture, run: &str) {
    let view = executor::load_run(&f.state, run).unwrap();
    assert_eq!(view.state, RunState::Succeeded);
    support::assert_applied_exactly_once(&view, &World::load(&f.world), WAVES, run);
}

async fn wait_for_gate(state: &Path, run: &str) -> String {
    for _ in 0..400 {
        if let Ok(view) = executor::load_run(state, run)
            && let Some(gate) = view.waiting_approval.first()
        {
            return gate.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never waited for an approval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_reads_back_after_a_restart_and_resumes_after_an_offline_approval() {
    let f = fixture();
    let plan = support::plan("gated", "firstWave");
    let shutdown = CancellationToken::new();
    let run = tokio::spawn({
        let (plan, steps, opts, shutdown) =
            (plan.clone(), steps(&f), opts(&f.state), shutdown.clone());
        async move { executor::start(&plan, steps, &opts, events(), shutdown).await }
    });
    let gate = wait_for_gate(&f.state, "gated").await;
    assert_eq!(gate, "wave-1/approval");
    let live = tokio::task::spawn_blocking({
        let state = f.state.clone();
        move || executor::load_run(&state, "gated")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        live.live_pid,
        Some(std::process::id()),
        "a held run is read from its status file"
    );
    shutdown.cancel();
    assert_eq!(run.await.unwrap().unwrap(), Outcome::Interrupted);

    // "Restart": everything below reads what the dead executor left on disk.
    let view = executor::load_run(&f.state, "gated").unwrap();
    assert_eq!(view.state, RunState::Interrupted);
    assert_eq!(view.live_pid, None);
    assert_eq!(view.waiting_approval, ["wave-1/approval"]);
    let gate_node = view
        .nodes
        .iter()
        .find(|n| n.id == "wave-1/approval")
        .unwrap();
    assert_eq!(
        (gate_node.state, gate_node.attempts),
        (NodeState::Interrupted, 1)
    );
    assert_eq!(view.plan_hash, plan.source().hash);

    let receipt = executor::approve(
        &f.state,
        "gated",
        None,
        "alice@host",
        Some("dashboards green"),
    )
    .unwrap();
    assert_eq!(receipt.gate, StepId::in_wave(1, StepKind::Approval));
    assert!(!receipt.live && !receipt.already);
    let again = executor::approve(&f.state, "gated", None, "bob@host", None);
    assert!(
        matches!(again, Err(ExecError::NothingToApprove { .. })),
        "{again:?}"
    );

    let outcome = executor::resume(
        Some("gated"),
        None,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    check(&f, "gated");
    let view = executor::load_run(&f.state, "gated").unwrap();
    assert_eq!(view.approvals.len(), 1);
    assert_eq!(view.approvals[0].approval.by, "alice@host");
    assert_eq!(
        view.approvals[0].approval.reason.as_deref(),
        Some("dashboards green")
    );
    assert_eq!(
        view.nodes
            .iter()
            .find(|n| n.id == "wave-1/approval")
            .unwrap()
            .attempts,
        2
    );

    // A finished run stays finished, whichever way it is entered.
    let again = executor::resume(
        Some("gated"),
        None,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        again.unwrap(),
        Outcome::AlreadyFinished {
            state: RunState::Succeeded
        }
    );
    let again = executor::start(
        &plan,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        again.unwrap(),
        Outcome::AlreadyFinished {
            state: RunState::Succeeded
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_from_another_caller_releases_a_live_gate_through_the_control_socket() {
    let f = fixture();
    let plan = support::plan("live", "everyWave");
    let run = tokio::spawn({
        let (plan, steps, opts) = (plan.clone(), steps(&f), opts(&f.state));
        async move { executor::start(&plan, steps, &opts, events(), CancellationToken::new()).await }
    });
    for wave in 1..=WAVES {
        let gate = wait_for_gate(&f.state, "live").await;
        assert_eq!(gate, format!("wave-{wave}/approval"));
        let state = f.state.clone();
        let receipt = tokio::task::spawn_blocking(move || {
            executor::approve(&state, "live", None, "carol@host", None)
        })
        .await
        .unwrap()
        .unwrap();
        assert!(receipt.live, "approval went through the running process");
    }
    assert_eq!(run.await.unwrap().unwrap(), Outcome::Succeeded);
    check(&f, "live");
    let view = executor::load_run(&f.state, "live").unwrap();
    let gates: Vec<&str> = view.approvals.iter().map(|a| a.gate.as_str()).collect();
    assert_eq!(gates, ["wave-1/approval", "wave-2/approval"]);
    assert!(
        !store::socket_path(&store::run_dir(&f.state, "live")).exists(),
        "socket removed at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_from_another_caller_stops_a_live_run_and_resume_continues_it() {
    let f = fixture();
    let plan = support::plan("aborted", "firstWave");
    let run = tokio::spawn({
        let (plan, steps, opts) = (plan.clone(), steps(&f), opts(&f.state));
        async move { executor::start(&plan, steps, &opts, events(), CancellationToken::new()).await }
    });
    wait_for_gate(&f.state, "aborted").await;
    let state = f.state.clone();
    tokio::task::spawn_blocking(move || {
        executor::mark_aborted(&state, "aborted", "dave@host", Some("latency"))
    })
    .await
    .unwrap()
    .unwrap();
    let outcome = run.await.unwrap().unwrap();
    assert!(matches!(&outcome, Outcome::Aborted { message } if message.contains("latency")));
    let view = executor::load_run(&f.state, "aborted").unwrap();
    assert_eq!(view.state, RunState::Aborted);
    assert_eq!(view.approvals[0].action, "abort");

    executor::approve(&f.state, "aborted", None, "dave@host", None).unwrap();
    let outcome = executor::resume(
        Some("aborted"),
        None,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    check(&f, "aborted");
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_with_new_attempt_numbers_until_the_step_works() {
    let f = fixture();
    let plan = support::plan("flaky", "none");
    let steps = failing(&f, "wave-1/set-partition", 2, StepErrorKind::Retryable);
    // Full jitter: the two retries wait the policy's whole 200 ms and 400 ms, in paused time.
    let env = Environment {
        jitter: Arc::new(|| 1.0),
        ..Environment::default()
    };
    let began = tokio::time::Instant::now();
    let outcome = executor::start_in(
        &env,
        &plan,
        steps,
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_millis(1200),
        "retries waited {waited:?}"
    );
    check(&f, "flaky");
    let world = World::load(&f.world);
    assert_eq!(world.invocations["wave-1/set-partition"], [1, 2, 3]);
    let view = executor::load_run(&f.state, "flaky").unwrap();
    let retried = view
        .events
        .iter()
        .filter(|e| matches!(&e.event, RunEvent::StepFailed { step, retrying: true, .. } if step == "wave-1/set-partition"))
        .count();
    assert_eq!(retried, 2);
}

#[tokio::test]
async fn a_failed_step_stops_the_run_and_resume_runs_it_again() {
    let f = fixture();
    let plan = support::plan("broken", "none");
    let steps = failing(&f, "wave-2/relabel", 1, StepErrorKind::Failed);
    let outcome = executor::start(
        &plan,
        steps.clone(),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(&outcome, Ok(Outcome::Failed { step, .. }) if step == "wave-2/relabel"),
        "{outcome:?}"
    );
    let view = executor::load_run(&f.state, "broken").unwrap();
    assert_eq!(view.state, RunState::Failed);
    let node = view
        .nodes
        .iter()
        .find(|n| n.id == "wave-2/relabel")
        .unwrap();
    assert_eq!(node.state, NodeState::Failed);
    assert!(
        node.error
            .as_ref()
            .unwrap()
            .message
            .contains("fails on purpose")
    );
    assert!(
        view.nodes.iter().all(|n| n.id != "wave-3/query-arbiter"),
        "nothing after the failure was added"
    );

    let outcome = executor::resume(
        None,
        None,
        steps,
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    check(&f, "broken");
}

#[tokio::test]
async fn a_safety_stop_needs_accept_risk_and_then_replans_the_stopped_wave() {
    let f = fixture();
    let plan = support::plan("unsafe", "none");
    let steps = failing(&f, "wave-1/verify", 1, StepErrorKind::SafetyStop);
    let outcome = executor::start(
        &plan,
        steps.clone(),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(&outcome, Ok(Outcome::SafetyStop { step, .. }) if step == "wave-1/verify"),
        "{outcome:?}"
    );

    let refused = executor::resume(
        Some("unsafe"),
        None,
        steps.clone(),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(&refused, Err(ExecError::NeedsAcceptRisk { step, .. }) if step == "wave-1/verify"),
        "{refused:?}"
    );

    let accept = RunOptions {
        accept_risk: true,
        ..opts(&f.state)
    };
    let outcome = executor::resume(
        Some("unsafe"),
        None,
        steps,
        &accept,
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    let view = executor::load_run(&f.state, "unsafe").unwrap();
    let node = |id: &str| view.nodes.iter().find(|n| n.id == id).unwrap();
    // The whole wave ran again from its first step, so the judgement has a fresh baseline.
    assert_eq!(node("wave-1/verify").state, NodeState::Succeeded);
    assert_eq!(node("wave-1/verify").attempts, 2);
    assert_eq!(node("wave-1/query-arbiter").attempts, 2);
    assert_eq!(
        node("apply-update").attempts,
        1,
        "steps before the wave stay done"
    );
    assert_eq!(
        view.approvals
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["accept-risk"]
    );
    check(&f, "unsafe");
}

#[tokio::test]
async fn resume_refuses_a_changed_plan_unless_replan_and_then_records_the_new_one() {
    let f = fixture();
    let plan = support::plan("changing", "firstWave");
    let shutdown = CancellationToken::new();
    let run = tokio::spawn({
        let (plan, steps, opts, shutdown) =
            (plan.clone(), steps(&f), opts(&f.state), shutdown.clone());
        async move { executor::start(&plan, steps, &opts, events(), shutdown).await }
    });
    wait_for_gate(&f.state, "changing").await;
    shutdown.cancel();
    assert_eq!(run.await.unwrap().unwrap(), Outcome::Interrupted);

    let changed = ValidPlan::parse("plan.yaml", &support::plan_text("changing", "none")).unwrap();
    let refused = executor::resume(
        None,
        Some(&changed),
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(refused, Err(ExecError::PlanChanged { .. })),
        "{refused:?}"
    );
    let started = executor::start(
        &changed,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(
            started,
            Err(ExecError::RunExists {
                state: RunState::Interrupted,
                ..
            })
        ),
        "{started:?}"
    );

    let replan = RunOptions {
        replan: true,
        ..opts(&f.state)
    };
    executor::approve(&f.state, "changing", None, "erin@host", None).unwrap();
    let outcome = executor::resume(
        None,
        Some(&changed),
        steps(&f),
        &replan,
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    assert_eq!(
        executor::load_run(&f.state, "changing").unwrap().plan_hash,
        changed.source().hash
    );
    assert_eq!(
        executor::stored_plan(&f.state, Some("changing"))
            .unwrap()
            .source()
            .hash,
        changed.source().hash
    );
}

#[test]
fn unknown_runs_are_refused_with_the_list_of_known_ones() {
    let f = fixture();
    std::fs::create_dir_all(store::run_dir(&f.state, "alpha")).unwrap();
    std::fs::create_dir_all(store::run_dir(&f.state, "beta")).unwrap();
    for name in ["gamma", "../alpha", ""] {
        match executor::load_run(&f.state, name) {
            Err(ExecError::UnknownRun { run, known }) => {
                assert_eq!(run, name);
                assert_eq!(known, ["alpha", "beta"]);
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let message = executor::load_run(&f.state, "gamma")
        .unwrap_err()
        .to_string();
    assert_eq!(message, "unknown run \"gamma\"; known runs: alpha, beta");
}

/// A step that never reaches a safe point: it ignores cancellation.
struct Stubborn;

impl StepRunner for Stubborn {
    async fn run(&self, _ctx: StepContext) -> Result<StepOutput, StepError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_that_ignores_shutdown_is_abandoned_after_the_grace_period_and_recorded_interrupted()
{
    let f = fixture();
    let plan = support::plan("stubborn", "none");
    let opts = opts(&f.state);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let began = tokio::time::Instant::now();
    let run = tokio::spawn(async move {
        executor::start(&plan, Arc::new(Stubborn), &opts, events(), shutdown).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let outcome = run.await.unwrap();
    assert_eq!(outcome.unwrap(), Outcome::Interrupted);
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(1) + executor::STEP_GRACE
            && waited < Duration::from_secs(2) + executor::STEP_GRACE,
        "the run stopped after {waited:?}"
    );
    let view = executor::load_run(&f.state, "stubborn").unwrap();
    assert_eq!(view.state, RunState::Interrupted);
    let states: Vec<(&str, NodeState)> = view
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.state))
        .collect();
    assert_eq!(
        states,
        [
            ("protect", NodeState::Interrupted),
            ("apply-update", NodeState::Pending)
        ]
    );
}

/// Hands every open the same in-memory store, as one sled database would be reopened.
struct OneMemoryStore(Arc<MemoryStore>);

struct Handle(Arc<MemoryStore>);

impl RunStore for Handle {
    fn load(&self) -> Result<Option<RunRecord>, StoreError> {
        self.0.load()
    }
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        self.0.commit(commit)
    }
}

impl StoreOpener for OneMemoryStore {
    fn open(&self, _dir: &Path) -> Result<Box<dyn RunStore>, StoreError> {
        Ok(Box::new(Handle(self.0.clone())))
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_in_an_injected_store_and_clock_writes_there_and_at_that_time() {
    let f = fixture();
    let plan = support::plan("memory", "none");
    let memory = Arc::new(MemoryStore::new());
    let t0: jiff::Timestamp = "2030-01-02T03:04:05Z".parse().unwrap();
    let env = Environment {
        stores: Arc::new(OneMemoryStore(memory.clone())),
        clock: Arc::new(ManualClock::new(t0)),
        ..Environment::default()
    };
    let outcome = executor::start_in(
        &env,
        &plan,
        steps(&f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    let rec = memory
        .load()
        .unwrap()
        .expect("the run was recorded in memory");
    assert_eq!(rec.meta.state, RunState::Succeeded);
    assert_eq!((rec.meta.created_at, rec.meta.updated_at), (t0, t0));
    assert!(rec.nodes.iter().all(|n| n.finished_at == Some(t0)));
    support::assert_applied_exactly_once(
        &baton_engine::store::RunView::of(&rec, None),
        &World::load(&f.world),
        WAVES,
        "memory",
    );
    // Nothing went to sled.
    let db = store::db_dir(&store::run_dir(&f.state, "memory"));
    assert!(!db.join("db").exists() && !db.join("conf").exists());
}
