//! Test doubles for the executor: steps whose effects land in a "world" file, written
//! the way the real steps write the cluster (absolute values, idempotent), plus helpers
//! to run them in a child process that a test can crash.
//!
//! The world is one JSON file replaced atomically (write + rename), so an effect is
//! either wholly applied or not at all, whenever the process dies. Each effect has an
//! idempotency key `<step>:<key>`; the world counts how often each key actually changed
//! the world. A correct executor over idempotent steps leaves every count at exactly 1:
//! re-running an unrecorded step finds its value in place and changes nothing, while
//! re-running a step that already succeeded *after* a later step moved the same key
//! (e.g. `partition`) changes it back and is caught as a count of 2.
//!
//! Behind the `test-util` feature, for the engine's and the CLI's tests.

// A child process reports its outcome on stdout.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::dag::{StepId, StepKind};
use crate::event::RunEvent;
use crate::executor::{self, Outcome, RunOptions};
use crate::failpoint;
use crate::plan::ValidPlan;
use crate::step::{
    AuditWrite, StepContext, StepError, StepErrorKind, StepOutput, StepRunner, WriteOutcome,
};
use crate::store::{AuditOutcome, NodeState, RunView};

/// Replicas of the pretend StatefulSet: partitions count down from here.
pub const REPLICAS: u32 = 5;

/// A plan with two parallel hooks after each wave is ready.
pub fn plan_text(name: &str, approval: &str) -> String {
    format!(
        r#"apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: {name}
spec:
  target:
    namespace: default
    name: sample
  update:
    images:
      main: alpine:3.18.0
  arbiter:
    url: http://127.0.0.1:9/
  waves:
    approval: {approval}
  hooks:
    afterWaveReady:
      - name: smoke
        sleep: {{duration: 1ms}}
      - name: lag
        sleep: {{duration: 1ms}}
"#
    )
}

pub fn plan(name: &str, approval: &str) -> ValidPlan {
    ValidPlan::parse("plan.yaml", &plan_text(name, approval)).expect("test plan is valid")
}

/// The world the test steps act on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub values: BTreeMap<String, String>,
    /// Idempotency key → how many times it changed the world.
    pub applies: BTreeMap<String, u32>,
    /// Step → the attempt numbers it was invoked with, in order.
    pub invocations: BTreeMap<String, Vec<u32>>,
    /// Step → `(invocation, attempt)` of every change it made, in order: the fencing
    /// token as the world saw it.
    #[serde(default)]
    pub fenced: BTreeMap<String, Vec<(usize, u32)>>,
}

impl World {
    pub fn load(path: &Path) -> World {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).expect("world file is valid JSON"),
            Err(_) => World::default(),
        }
    }

    fn store(&self, path: &Path) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap()).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

/// What a child process should do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub state_dir: PathBuf,
    pub world: PathBuf,
    pub plan_text: String,
    /// Waves with work; the select of the next wave says `Finish`.
    pub waves: u32,
    pub resume: bool,
}

/// Steps that write the world.
pub struct WorldSteps {
    pub world: PathBuf,
    pub waves: u32,
    /// Step id → how many times it fails, and how, before it works.
    pub failing: BTreeMap<String, (u32, StepErrorKind)>,
    lock: Mutex<()>,
}

impl WorldSteps {
    pub fn new(world: PathBuf, waves: u32) -> Self {
        WorldSteps {
            world,
            waves,
            failing: BTreeMap::new(),
            lock: Mutex::new(()),
        }
    }

    /// Record the invocation; returns how many times this step ran before.
    fn invoked(&self, step: &str, attempt: u32) -> usize {
        let _guard = self.lock.lock().unwrap();
        let mut world = World::load(&self.world);
        let calls = world.invocations.entry(step.to_owned()).or_default();
        calls.push(attempt);
        let before = calls.len() - 1;
        world.store(&self.world);
        before
    }

    /// Set `key` to `value` (absolute), counting a real change under `<step>:<key>`.
    fn set(
        &self,
        ctx: &StepContext,
        invocation: usize,
        key: &str,
        value: &str,
    ) -> Result<(), StepError> {
        let step = ctx.step.to_string();
        // Write-ahead, as the real steps do: the intent is durable before the effect.
        let intent = {
            let _guard = self.lock.lock().unwrap();
            let mut world = World::load(&self.world);
            let before = world.values.get(key).cloned();
            if before.as_deref() == Some(value) {
                return Ok(());
            }
            let intent = ctx
                .journal
                .intend(
                    &ctx.step,
                    vec![AuditWrite {
                        object: key.to_owned(),
                        action: "set".to_owned(),
                        before: json!(before),
                        after: json!(value),
                    }],
                )
                .map_err(|e| StepError::failed(e.to_string()))?;
            failpoint::hit(&format!("before-write:{step}:{key}"));
            world.values.insert(key.to_owned(), value.to_owned());
            *world.applies.entry(format!("{step}:{key}")).or_default() += 1;
            world
                .fenced
                .entry(step.clone())
                .or_default()
                .push((invocation, ctx.attempt));
            world.store(&self.world);
            intent
        };
        ctx.journal
            .settle(
                intent
                    .into_iter()
                    .map(|i| (i, WriteOutcome::Applied))
                    .collect(),
            )
            .map_err(|e| StepError::failed(e.to_string()))?;
        failpoint::hit(&format!("after-write:{step}:{key}"));
        Ok(())
    }
}

/// The effects a succeeded step has on the world, as `(key, value)`.
pub fn effects(id: &StepId, waves: u32) -> Vec<(String, String)> {
    let k = id.wave.unwrap_or(0);
    let kv = |k: &str, v: String| (k.to_owned(), v);
    match &id.kind {
        StepKind::Protect => vec![kv("partition", REPLICAS.to_string())],
        StepKind::ApplyUpdate => vec![kv("template", "v2".into())],
        StepKind::Relabel => vec![kv("selected", format!("pod-{k}"))],
        StepKind::SetPartition => vec![kv("partition", (REPLICAS - k).to_string())],
        StepKind::Handover => vec![kv("working", format!("wave-{k}"))],
        StepKind::Hook { name, .. } => vec![kv(&format!("hook/{name}"), format!("wave-{k}"))],
        StepKind::Finalize => vec![kv("partition", "0".into()), kv("selected", String::new())],
        _ => {
            let _ = waves;
            vec![]
        }
    }
}

impl StepRunner for WorldSteps {
    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        let step = ctx.step.to_string();
        let before = self.invoked(&step, ctx.attempt);
        if let Some((n, kind)) = self.failing.get(&step)
            && before < *n as usize
        {
            return Err(StepError::new(*kind, format!("{step} fails on purpose")));
        }
        let k = ctx.step.wave.unwrap_or(0);
        match &ctx.step.kind {
            StepKind::Select if k > self.waves => {
                let mut out = StepOutput::new(json!({"pods": []}));
                out.control = crate::step::Control::Finish;
                return Ok(out);
            }
            StepKind::Select => {
                return Ok(StepOutput::new(
                    json!({"pods": [format!("pod-{k}")], "vars": {"minWorking": 3}}),
                ));
            }
            StepKind::Relabel | StepKind::SetPartition => {
                // Later steps depend on earlier outputs, which must survive a restart.
                let select = StepId::in_wave(k, StepKind::Select);
                if ctx.output_of(&select).and_then(|o| o.get("pods")).is_none() {
                    return Err(StepError::failed(format!(
                        "{step}: the output of {select} is missing"
                    )));
                }
            }
            StepKind::Approval => {
                let approval = ctx.journal.wait_approval(ctx.step.clone());
                tokio::select! {
                    a = approval => {
                        let a = a.map_err(|e| StepError::failed(e.to_string()))?;
                        return Ok(StepOutput::new(json!({"approvedBy": a.by})));
                    }
                    () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
                }
            }
            _ => {}
        }
        for (key, value) in effects(&ctx.step, self.waves) {
            self.set(&ctx, before, &key, &value)?;
        }
        Ok(StepOutput::new(json!({"step": step})))
    }
}

pub fn options(state_dir: &Path) -> RunOptions {
    RunOptions {
        state_dir: state_dir.to_owned(),
        accept_risk: false,
        replan: false,
        operator: None,
    }
}

/// Run (or resume) `job` in this process.
pub async fn run_job(
    job: &Job,
    shutdown: CancellationToken,
) -> Result<Outcome, executor::ExecError> {
    let plan = ValidPlan::parse("plan.yaml", &job.plan_text).expect("test plan is valid");
    let steps = Arc::new(WorldSteps::new(job.world.clone(), job.waves));
    let (events, _) = tokio::sync::broadcast::channel::<RunEvent>(1024);
    let opts = options(&job.state_dir);
    if job.resume {
        executor::resume(
            Some(plan.name()),
            Some(&plan),
            steps,
            &opts,
            events,
            shutdown,
        )
        .await
    } else {
        executor::start(&plan, steps, &opts, events, shutdown).await
    }
}

pub const CHILD_ENV: &str = "BATON_TEST_CHILD";

/// The body of a child process: run the job in `$BATON_TEST_CHILD`, print the outcome.
pub fn child_main() {
    let job: Job =
        serde_json::from_str(&std::env::var(CHILD_ENV).expect("BATON_TEST_CHILD names the job"))
            .expect("job is valid JSON");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(run_job(&job, CancellationToken::new()));
    println!("CHILD-OUTCOME {outcome:?}");
}

/// Start this test binary again as a child running `job` (entry test `entry`).
pub fn spawn_child(entry: &str, job: &Job, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        entry,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, serde_json::to_string(job).unwrap())
    .env_remove(failpoint::ENV)
    .env_remove(failpoint::LOG_ENV)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Check the invariants of a finished run against its world; panics with a
/// description of the first violation.
pub fn assert_applied_exactly_once(view: &RunView, world: &World, waves: u32, context: &str) {
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    for node in &view.nodes {
        assert!(
            matches!(node.state, NodeState::Succeeded | NodeState::Skipped),
            "{context}: node {} ended {:?}",
            node.id,
            node.state
        );
        if node.state == NodeState::Succeeded {
            for (key, value) in effects(&node.step, waves) {
                keys.push(format!("{}:{key}", node.id));
                expected.insert(key, value);
            }
        }
    }
    // Every effect of this plan moves its key to a new value, so each succeeded step
    // applies each of its effects exactly once: no more (a replay), no less (a skip).
    keys.sort();
    let applied: Vec<String> = world.applies.keys().cloned().collect();
    assert_eq!(
        applied, keys,
        "{context}: applied effects differ from the succeeded steps' effects"
    );
    for (key, count) in &world.applies {
        assert_eq!(
            *count, 1,
            "{context}: effect {key} applied {count} times; world = {world:#?}"
        );
    }
    assert_eq!(world.values, expected, "{context}: final world differs");
    // An attempt that changed nothing may reuse the number of one a crash lost before
    // its first write; attempts that changed the world must carry rising tokens.
    for (step, fenced) in &world.fenced {
        assert!(
            fenced
                .windows(2)
                .all(|w| w[0].0 == w[1].0 || w[0].1 < w[1].1),
            "{context}: step {step} acted twice under one attempt number (fencing token): {fenced:?}"
        );
    }
    // Write-ahead: every change in the world has its intent in the history (applied,
    // or unconfirmed when the process died before the answer), and no write was
    // acknowledged twice.
    for key in world.applies.keys() {
        assert!(
            view.audit
                .iter()
                .any(|a| format!("{}:{}", a.step, a.write.object) == *key),
            "{context}: the change {key} is missing from the history"
        );
    }
    let mut applied: Vec<(String, String)> = view
        .audit
        .iter()
        .filter(|a| a.outcome == AuditOutcome::Applied)
        .map(|a| (a.step.clone(), a.write.object.clone()))
        .collect();
    let total = applied.len();
    applied.sort();
    applied.dedup();
    assert_eq!(applied.len(), total, "{context}: a write was applied twice");
}
