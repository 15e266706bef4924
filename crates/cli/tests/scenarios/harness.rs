//! The scenario harness: a [`Bed`] is one backend (simulator or real control plane) with an
//! outside [`Observer`] on its set, a private folder for state and plans, and the real
//! `engine` binary run against it. Every assertion it offers reads the cluster through the API
//! and the arbiter through its handle, so it means the same on both backends.
//!
//! `BATON_SCENARIO_ENGINE=PATH` runs another build of `engine` instead of this one (an older
//! commit, to show that a regression scenario fails without its fix).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use baton_sim::arbiter::Role;
use baton_sim::controller::ROLE_LABEL;
use baton_testbed::backend::{self, Backend, BackendKind, Seed};
use baton_testbed::observer::{Observer, REVISION_LABEL, Verdict};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The seed plan; each scenario rewrites the arbiter URL, the namespace and what it varies.
const SEED_PLAN: &str = include_str!("../../../../plans/seed.yaml");

pub const OLD_IMAGE: &str = "alpine:3.18.2";
pub const NEW_IMAGE: &str = "alpine:3.18.0";

/// The readiness gate scenarios hold pods unready with.
pub const TEST_GATE: &str = "baton.dev/test-ready";

/// How long any one engine command may take before the scenario fails.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(120);

/// The scenarios' default seed: the seed case, pods Ready 100 ms after a (re)start. The delay
/// keeps a pod's promotion well after the moment its update began, so the role the observer
/// reads when the update's watch event arrives is the role of that moment.
pub fn seed() -> Seed {
    Seed {
        ready_delay: Duration::from_millis(100),
        ..Seed::default()
    }
}

/// One scenario's world.
pub struct Bed {
    pub backend: Backend,
    pub observer: Observer,
    pub dir: tempfile::TempDir,
    /// The state folder of "this machine".
    pub state: PathBuf,
    /// Pod uids when the bed was ready.
    pub uids: BTreeMap<String, String>,
    /// The arbiter's epoch when the bed was ready.
    pub epoch: u64,
}

/// The bed for `kind`, or `None` when the real tier is skipped here (the launcher has said so
/// on stderr, once).
pub async fn bed(kind: BackendKind, seed: Seed) -> Option<Bed> {
    let backend = match Backend::start(kind, seed).await {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => panic!(
            "{kind:?} backend: {}",
            baton_testbed::controlplane::chain(&e)
        ),
    };
    let observer = Observer::start(&backend).await;
    let dir = tempfile::Builder::new()
        .prefix("baton-scenario-")
        .tempdir()
        .unwrap();
    let state = dir.path().join("state");
    let epoch = backend.arbiter().epoch();
    let mut bed = Bed {
        backend,
        observer,
        dir,
        state,
        uids: BTreeMap::new(),
        epoch,
    };
    bed.uids = bed
        .pods()
        .await
        .iter()
        .map(|p| (name(p).to_string(), uid(p).to_string()))
        .collect();
    Some(bed)
}

pub fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or_default()
}

pub fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or_default()
}

pub fn image(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .unwrap_or_default()
}

pub fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code and both streams, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
}

/// Stdout and stderr together (for "the message names …" checks).
pub fn all_output(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl Bed {
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Writes the seed plan named `name`, pointed at this backend's arbiter and namespace,
    /// after `edit` has changed it; returns its path.
    pub fn plan(&self, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
        self.plan_with_arbiter(name, self.backend.arbiter_url(), edit)
    }

    /// As [`Bed::plan`], with another arbiter URL (a refusing front, say).
    pub fn plan_with_arbiter(
        &self,
        name: &str,
        arbiter: &str,
        edit: impl FnOnce(&mut serde_yaml::Value),
    ) -> PathBuf {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(SEED_PLAN).unwrap();
        doc["metadata"]["name"] = name.into();
        doc["spec"]["arbiter"]["url"] = arbiter.into();
        doc["spec"]["target"]["namespace"] = self.backend.namespace().into();
        edit(&mut doc);
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        path
    }

    /// The engine command with this bed's kubeconfig and the state folder `state`.
    pub fn command_in(&self, state: &Path, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(engine_binary());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(self.backend.kubeconfig_path())
            .arg("--state-dir")
            .arg(state)
            .env("NO_COLOR", "1")
            .env_remove("BATON_FAILPOINTS")
            .env_remove("BATON_FAILPOINTS_LOG")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_in(&self.state, args)
    }

    /// Starts `engine args` in the background.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args).spawn().unwrap()
    }

    /// Runs `engine args` to completion.
    pub async fn engine(&self, args: &[&str]) -> Output {
        self.engine_in(&self.state, args).await
    }

    pub async fn engine_in(&self, state: &Path, args: &[&str]) -> Output {
        let child = self.command_in(state, args).spawn().unwrap();
        finish(child, args).await
    }

    /// The seed ASTS's `spec.updateStrategy.rollingUpdate.partition`.
    pub async fn partition(&self) -> Option<i64> {
        let sts = self.backend.statefulset().await.unwrap();
        sts.data["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64()
    }

    /// The seed ASTS's `metadata.generation` (moves with every spec write).
    pub async fn generation(&self) -> Option<i64> {
        self.backend
            .statefulset()
            .await
            .unwrap()
            .metadata
            .generation
    }

    /// The set's pods, by name.
    pub async fn pods(&self) -> Vec<Pod> {
        let lp = ListParams::default().labels(&format!("app={}", backend::NAME));
        self.backend.pods().list(&lp).await.unwrap().items
    }

    pub async fn pod(&self, name: &str) -> Option<Pod> {
        self.backend.pods().get_opt(name).await.unwrap()
    }

    /// Images by pod name.
    pub async fn images(&self) -> BTreeMap<String, String> {
        self.pods()
            .await
            .iter()
            .map(|p| (name(p).to_string(), image(p).to_string()))
            .collect()
    }

    /// Waits (at most a minute) until run `run`, kept in `state`, waits at an approval gate,
    /// as a second process sees it through `engine status`; returns the status view.
    pub async fn until_gate(&self, state: &Path, run: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(view) = self.status_in(state, run).await
                && view["waitingApproval"]
                    .as_array()
                    .is_some_and(|w| !w.is_empty())
            {
                return view;
            }
            assert!(Instant::now() < deadline, "{run} never reached its gate");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// `engine status RUN --output json`, if it answers.
    pub async fn status_in(&self, state: &Path, run: &str) -> Option<Value> {
        let status = self
            .engine_in(state, &["status", run, "--output", "json"])
            .await;
        (status.status.code() == Some(0))
            .then(|| serde_json::from_slice(&status.stdout).expect("status JSON"))
    }

    /// `engine history RUN --output json`.
    pub async fn history(&self, run: &str) -> Value {
        let out = self.engine(&["history", run, "--output", "json"]).await;
        assert_exit(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Asserts the safety verdict: no update began on a working pod (other than the excluded
    /// ones) and the working count never fell below its start. Returns the verdict.
    pub fn assert_safe(&self) -> Verdict {
        let v = self.observer.verdict();
        if let Err(e) = v.safe() {
            panic!("{:?}: {e}\nupdates: {:#?}", self.kind(), v.updates);
        }
        v
    }

    /// Asserts the end state of a finished rollout to `image`: the set's pods `0..replicas`
    /// exist, run `image` at the set's update revision, are Ready and not terminating, their
    /// role labels match the arbiter, the partition is `partition`, and the run was safe.
    pub async fn assert_finished(&self, replicas: u32, image_: &str, partition: i64) -> Verdict {
        let sts = self.backend.statefulset().await.unwrap();
        let revision = sts.data["status"]["updateRevision"]
            .as_str()
            .map(String::from);
        let pods = self.pods().await;
        let roles = self.backend.arbiter().roles();
        let seen = backend::describe(&pods);
        for i in 0..replicas {
            let want = format!("{}-{i}", backend::NAME);
            let p = pods
                .iter()
                .find(|p| name(p) == want)
                .unwrap_or_else(|| panic!("{want} is missing: {seen}"));
            assert_eq!(image(p), image_, "{want}: {seen}");
            assert_eq!(
                label(p, REVISION_LABEL).map(String::from),
                revision,
                "{want} is not at the update revision: {seen}"
            );
            assert!(backend::is_ready(p), "{want} is not Ready: {seen}");
            assert!(
                p.metadata.deletion_timestamp.is_none(),
                "{want} is terminating"
            );
            let working = roles.get(&want) == Some(&Role::Working);
            assert_eq!(
                label(p, ROLE_LABEL),
                Some(if working { "true" } else { "false" }),
                "{want}'s role label disagrees with the arbiter ({:?}): {seen}",
                roles.get(&want)
            );
        }
        assert_eq!(self.partition().await, Some(partition), "partition");
        self.assert_safe()
    }

    /// The arbiter's handovers applied since the bed was ready (each moves the epoch once).
    pub fn epochs_moved(&self) -> u64 {
        self.backend.arbiter().epoch() - self.epoch
    }

    /// Puts a finalizer on `pod` (`Some`) or removes them all (`None`).
    pub async fn finalizer(&self, pod: &str, finalizer: Option<&str>) {
        let patch = json!({"metadata": {"finalizers": finalizer.map(|f| vec![f])}});
        self.backend
            .pods()
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

/// The `engine` under test: `BATON_SCENARIO_ENGINE`, else this package's build.
fn engine_binary() -> PathBuf {
    std::env::var_os("BATON_SCENARIO_ENGINE")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_engine")),
            PathBuf::from,
        )
}

/// Waits for an engine process to end (at most [`ENGINE_TIMEOUT`]).
pub async fn finish(child: tokio::process::Child, args: &[&str]) -> Output {
    tokio::time::timeout(ENGINE_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("engine {args:?} did not finish in {ENGINE_TIMEOUT:?}"))
        .unwrap()
}

/// The partitions the run's `set partition` writes left, in order, with their steps.
pub fn partition_writes(history: &Value) -> Vec<(String, i64)> {
    history["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "set partition")
        .map(|a| {
            (
                a["step"].as_str().unwrap_or_default().to_string(),
                a["after"]
                    .as_i64()
                    .or_else(|| a["after"]["partition"].as_i64())
                    .unwrap_or_else(|| panic!("no partition in {a}")),
            )
        })
        .collect()
}

/// The partitions of the run's `wave-N/set-partition` writes, in order.
pub fn wave_partitions(history: &Value) -> Vec<i64> {
    partition_writes(history)
        .into_iter()
        .filter(|(step, _)| step.starts_with("wave-") && step.ends_with("/set-partition"))
        .map(|(_, p)| p)
        .collect()
}

/// The events of a `--output json` run's stdout.
pub fn events(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// An arbiter front that answers every handover `422`, as an arbiter's quorum rule would,
/// and passes everything else to the real arbiter; dropping it stops serving.
pub struct RefusingArbiter {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefusingArbiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn refusing_arbiter(arbiter: baton_sim::arbiter::Arbiter) -> RefusingArbiter {
    use axum::extract::Request;
    use axum::middleware::Next;
    use axum::response::IntoResponse as _;

    async fn refuse(req: Request, next: Next) -> axum::response::Response {
        if req.uri().path() == "/v1/handover" {
            return (
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"error": "quorum: the test's arbiter refuses every handover"})),
            )
                .into_response();
        }
        next.run(req).await
    }

    let router = arbiter.router().layer(axum::middleware::from_fn(refuse));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    RefusingArbiter { url, task }
}
