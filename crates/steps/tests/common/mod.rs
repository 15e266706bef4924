//! A simulator, a plan against it, a recording journal and a minimal sequential driver:
//! enough to run any step through the real `StepRunner` over HTTP.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use baton_engine::dag::{StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::plan::ValidPlan;
use baton_engine::step::{
    Approval, AuditWrite, BoxFuture, Control, IntentId, Journal, JournalError, StepContext,
    StepError, StepOutput, StepRunner, WriteOutcome,
};
use baton_sim::{Served, Sim, SimConfig};
use baton_steps::RolloutSteps;
use baton_steps::k8s::Asts;
use baton_steps::view::{Kind, Written};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const RUN: &str = "run-1";

/// Records what steps report: every intended write and what became of it.
#[derive(Default)]
pub struct TestJournal {
    pub intents: Mutex<Vec<(StepId, AuditWrite, Option<WriteOutcome>)>>,
    pub events: Mutex<Vec<RunEvent>>,
}

impl Journal for TestJournal {
    fn intend(
        &self,
        step: &StepId,
        writes: Vec<AuditWrite>,
    ) -> Result<Vec<IntentId>, JournalError> {
        let mut intents = self.intents.lock().unwrap();
        Ok(writes
            .into_iter()
            .map(|w| {
                intents.push((step.clone(), w, None));
                IntentId(intents.len() as u64 - 1)
            })
            .collect())
    }
    fn settle(&self, outcomes: Vec<(IntentId, WriteOutcome)>) -> Result<(), JournalError> {
        let mut intents = self.intents.lock().unwrap();
        for (id, outcome) in outcomes {
            let entry = &mut intents[id.0 as usize];
            assert!(entry.2.is_none(), "intent {id:?} settled twice");
            entry.2 = Some(outcome);
        }
        Ok(())
    }
    fn emit(&self, event: RunEvent) {
        self.events.lock().unwrap().push(event);
    }
    fn wait_approval(&self, _gate: StepId) -> BoxFuture<'static, Result<Approval, JournalError>> {
        Box::pin(async {
            Ok(Approval {
                by: "test".into(),
                reason: None,
                at: "2026-01-01T00:00:00Z".into(),
            })
        })
    }
}

impl TestJournal {
    /// The writes `step` made that the world acknowledged.
    pub fn writes_by(&self, step: &StepId) -> Vec<AuditWrite> {
        self.intents
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, o)| s == step && *o == Some(WriteOutcome::Applied))
            .map(|(_, w, _)| w.clone())
            .collect()
    }
    /// Intents never settled: a write whose fate nobody recorded.
    pub fn unsettled(&self) -> Vec<AuditWrite> {
        self.intents
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, o)| o.is_none())
            .map(|(_, w, _)| w.clone())
            .collect()
    }
    pub fn events(&self) -> Vec<RunEvent> {
        self.events.lock().unwrap().clone()
    }
}

pub struct Harness {
    pub sim: Sim,
    pub served: Served,
    pub client: kube::Client,
    pub plan: ValidPlan,
    pub steps: RolloutSteps,
    pub journal: Arc<TestJournal>,
    pub outputs: BTreeMap<StepId, Value>,
}

/// The seed plan against `arbiter`, with extra `spec` lines (indented two spaces).
pub fn plan_text(arbiter: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: sample-upgrade
spec:
  target:
    namespace: default
    name: sample
  update:
    images:
      main: {image}
  arbiter:
    url: {arbiter}
    timeout: 2s
    retries: 2
{}",
        extra.replace("ARBITER_URL", arbiter)
    )
}

pub async fn start(cfg: SimConfig, image: &str, extra: &str) -> Harness {
    let sim = Sim::new(cfg);
    let served = sim.serve().await.unwrap();
    let client = kube::Client::new(sim.router(), "default");
    let text = plan_text(&served.arbiter, image, extra);
    let plan = ValidPlan::parse("plan.yaml", &text).unwrap();
    let steps = RolloutSteps::connect(&plan, client.clone()).await.unwrap();
    Harness {
        sim,
        served,
        client,
        plan,
        steps,
        journal: Arc::default(),
        outputs: BTreeMap::new(),
    }
}

pub async fn seed(extra: &str) -> Harness {
    start(SimConfig::default(), "alpine:3.18.0", extra).await
}

impl Harness {
    pub fn ctx(&self, step: StepId) -> StepContext {
        StepContext {
            run_id: RUN.into(),
            step,
            attempt: 1,
            outputs: Arc::new(
                self.outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
                    .collect(),
            ),
            journal: self.journal.clone(),
            cancel: CancellationToken::new(),
        }
    }

    /// Runs one step; keeps its output for later steps when it succeeds.
    pub async fn run(&mut self, step: StepId) -> Result<StepOutput, StepError> {
        let out = self.steps.run(self.ctx(step.clone())).await;
        if let Ok(o) = &out {
            self.outputs.insert(step, o.value.clone());
        }
        out
    }

    pub async fn ok(&mut self, step: StepId) -> StepOutput {
        let name = step.to_string();
        match self.run(step).await {
            Ok(o) => o,
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    pub async fn run_level(&mut self, kind: StepKind) -> StepOutput {
        self.ok(StepId::run_level(kind)).await
    }

    pub async fn wave(&mut self, wave: u32, kind: StepKind) -> StepOutput {
        self.ok(StepId::in_wave(wave, kind)).await
    }

    /// `protect` and `apply-update`.
    pub async fn prepare(&mut self) {
        self.run_level(StepKind::Protect).await;
        self.run_level(StepKind::ApplyUpdate).await;
    }

    /// One wave up to `wait-updated`. Returns false when select said the rollout is done.
    pub async fn update_wave(&mut self, wave: u32) -> bool {
        self.wave(wave, StepKind::QueryArbiter).await;
        if self.wave(wave, StepKind::Select).await.control == Control::Finish {
            return false;
        }
        self.wave(wave, StepKind::Relabel).await;
        self.wave(wave, StepKind::SetPartition).await;
        self.wave(wave, StepKind::WaitUpdated).await;
        true
    }

    /// The whole rollout, one step at a time. Returns the partition each wave set.
    pub async fn drive(&mut self) -> Vec<u64> {
        self.prepare().await;
        let mut partitions = Vec::new();
        for wave in 1..=10 {
            if !self.update_wave(wave).await {
                break;
            }
            let set = self.outputs[&StepId::in_wave(wave, StepKind::SetPartition)]["partition"]
                .as_u64()
                .unwrap();
            partitions.push(set);
            self.wave(wave, StepKind::Verify).await;
            self.wave(wave, StepKind::Settle).await;
            self.wave(wave, StepKind::Handover).await;
        }
        self.run_level(StepKind::Finalize).await;
        partitions
    }

    pub fn sts_api(&self) -> Api<Asts> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn sts(&self) -> Asts {
        self.sts_api().get("sample").await.unwrap()
    }

    pub async fn sts_json(&self) -> Value {
        serde_json::to_value(self.sts().await).unwrap()
    }

    pub async fn pod(&self, name: &str) -> Pod {
        self.pod_api().get(name).await.unwrap()
    }

    pub async fn label(&self, pod: &str, key: &str) -> Option<String> {
        self.pod(pod)
            .await
            .metadata
            .labels
            .unwrap_or_default()
            .get(key)
            .cloned()
    }

    pub async fn image(&self, pod: &str) -> String {
        self.pod(pod).await.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    }

    /// Merge-patches the ASTS as an outside actor would.
    /// Waits (at most five seconds) until the controller has observed the ASTS's spec.
    pub async fn observed(&self) {
        for _ in 0..500 {
            let sts = self.sts_json().await;
            if sts["status"]["observedGeneration"] == sts["metadata"]["generation"] {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the controller never observed the statefulset");
    }

    /// Someone else patches the set; the step run next must see it, so this returns once
    /// the run's view (when started) shows it, as it would before a later step began.
    pub async fn outside_patch_sts(&self, patch: Value) {
        let sts = self
            .sts_api()
            .patch(
                "sample",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .unwrap();
        self.view_shows(Kind::Sts, "sample", sts.metadata.resource_version)
            .await;
    }

    /// Someone else patches a pod; returns once the run's view (when started) shows it.
    pub async fn outside_patch_pod(&self, name: &str, patch: Value) {
        let pod = self
            .pod_api()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .unwrap();
        self.view_shows(Kind::Pod, name, pod.metadata.resource_version)
            .await;
    }

    /// Returns once the run's view (when started) shows `name` at `rv`.
    pub async fn view_shows(&self, kind: Kind, name: &str, rv: Option<String>) {
        if let Some(view) = self.steps.env().view.get() {
            let written = Written {
                kind,
                name: name.to_owned(),
                resource_version: rv.unwrap(),
            };
            view.wait_seen(&[written]).await.unwrap();
        }
    }
}

pub fn names(pods: &[&str]) -> Vec<String> {
    pods.iter().map(|p| (*p).to_owned()).collect()
}
