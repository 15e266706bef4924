//! Shared harness of the end-to-end tests: a simulator hosted in the test
//! process, served on 127.0.0.1, and the real `engine` binary run against it
//! with its own state directory, kubeconfig and plan file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use baton_sim::store::Kind;
use baton_sim::{Served, Sim, SimConfig};
use serde_json::Value;

/// The seed plan; each test rewrites the arbiter URL and whatever it varies.
const SEED_PLAN: &str = include_str!("../../../../plans/seed.yaml");

pub const NS: &str = "default";
pub const OLD_IMAGE: &str = "alpine:3.18.2";
pub const NEW_IMAGE: &str = "alpine:3.18.0";

/// One simulated cluster plus a private directory for state, kubeconfig and plans.
pub struct Env {
    pub sim: Sim,
    pub served: Served,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub state: PathBuf,
}

impl Env {
    pub async fn start(cfg: SimConfig) -> Env {
        let sim = Sim::new(cfg);
        let served = sim.serve().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        served.write_kubeconfig(&kubeconfig).unwrap();
        let state = dir.path().join("state");
        Env {
            sim,
            served,
            dir,
            kubeconfig,
            state,
        }
    }

    /// Writes the seed plan, pointed at this arbiter, after `edit` has changed
    /// it; returns its path. The run is named `name`.
    pub fn plan(&self, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(SEED_PLAN).unwrap();
        doc["metadata"]["name"] = name.into();
        doc["spec"]["arbiter"]["url"] = self.served.arbiter.clone().into();
        edit(&mut doc);
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        path
    }

    /// The engine command with this environment's kubeconfig and state dir.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_in(&self.state, args)
    }

    /// The engine command with another state dir, as if from another machine.
    pub fn command_in(&self, state: &Path, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_engine"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--state-dir")
            .arg(state)
            .env("NO_COLOR", "1")
            .env_remove("BATON_FAILPOINTS")
            .env_remove("BATON_FAILPOINTS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the engine to completion (at most two minutes).
    pub async fn engine(&self, args: &[&str]) -> Output {
        self.engine_env(args, &[]).await
    }

    pub async fn engine_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().unwrap();
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("engine {args:?} did not finish in two minutes"))
            .unwrap()
    }

    pub fn report(&self) -> Value {
        self.sim.report()
    }

    /// The pod's first container image, if the pod exists.
    pub fn image(&self, pod: &str) -> Option<String> {
        self.sim.store().get(Kind::Pod, NS, pod).and_then(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
    }

    pub fn pod(&self, pod: &str) -> Value {
        self.sim.store().get(Kind::Pod, NS, pod).unwrap()
    }

    pub fn asts(&self) -> Value {
        self.sim
            .store()
            .get(Kind::StatefulSet, NS, "sample")
            .unwrap()
    }

    pub fn partition(&self) -> Option<i64> {
        self.asts()["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64()
    }

    /// Waits (polling the store, at most `within`) until `cond` holds.
    pub async fn until(&self, within: Duration, what: &str, mut cond: impl FnMut(&Env) -> bool) {
        let deadline = Instant::now() + within;
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the engine with another state dir (as if from another machine) to completion.
    pub async fn engine_in(&self, state: &Path, args: &[&str]) -> Output {
        let child = self.command_in(state, args).spawn().unwrap();
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("engine {args:?} did not finish in two minutes"))
            .unwrap()
    }

    /// Waits (at most a minute) until run `run`, kept in `state`, waits at an approval gate,
    /// as a second process sees it through `engine status`.
    pub async fn until_gate(&self, state: &Path, run: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .engine_in(state, &["status", run, "--output", "json"])
                .await;
            if status.status.code() == Some(0) {
                let view: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
                if view["waitingApproval"]
                    .as_array()
                    .is_some_and(|w| !w.is_empty())
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{run} never reached its gate");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts every one of `replicas` pods runs the new image, the sim saw no
    /// violation and the working count never fell below `working_min`.
    pub fn assert_finished_clean(&self, replicas: u32, working_min: u64) {
        for i in 0..replicas {
            let pod = format!("sample-{i}");
            assert_eq!(
                self.image(&pod).as_deref(),
                Some(NEW_IMAGE),
                "{pod} is not updated"
            );
        }
        let report = self.report();
        assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
        assert_eq!(report["workingMin"], working_min, "{report:#}");
        assert_eq!(self.partition(), Some(0));
    }
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

/// The fast simulator every test starts from (pods ready at once).
pub fn seed_config() -> SimConfig {
    SimConfig {
        pod_ready_ms: 20,
        ..SimConfig::default()
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
