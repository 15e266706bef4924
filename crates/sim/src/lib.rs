//! A simulated Kubernetes cluster for Baton's tests and demo: an API server
//! that real `kubectl` and kube-rs accept ([`api`], [`discovery`]), backed by
//! an object [`store`]; the OpenKruise Advanced StatefulSet controller and a
//! kubelet ([`controller`], [`kruise`], [`kubelet`]); an [`arbiter`]; a
//! [`report`] of what happened; and [`faults`] to inject.
//!
//! [`Sim`] assembles them. `Sim::router()` is the API server as an axum
//! router, usable in-process with `kube::Client::new(router, "default")`;
//! `Sim::serve()` binds it and the arbiter to 127.0.0.1 for `kubectl` and the
//! CLI. The simulator never depends on the engine.

#![warn(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod admission;
pub mod api;
pub mod arbiter;
pub mod control;
pub mod controller;
pub mod crd;
pub mod discovery;
pub mod faults;
pub mod kruise;
pub mod kubelet;
pub mod patch;
pub mod report;
pub mod seed;
pub mod selector;
pub mod serve;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use faults::{FaultConfig, Faults};
pub use serve::Served;
pub use store::{ApiError, Change, ChangeType, Kind, Store};

/// What to simulate. `Default` is the seed case of SPEC §7.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub replicas: u32,
    /// Ordinals of the pods the arbiter starts with as working.
    pub working: Vec<u32>,
    pub image: String,
    /// How long a pod takes to become Ready after (re)starting.
    pub pod_ready_ms: u64,
    /// No ASTS; the arbiter lists whatever pods exist, all idle.
    pub empty: bool,
    /// 0 = any free port.
    pub api_port: u16,
    /// 0 = any free port.
    pub arbiter_port: u16,
    pub arbiter: arbiter::ArbiterConfig,
    pub faults: FaultConfig,
    /// How many changes watches can resume from.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_every: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            replicas: 5,
            working: vec![0, 2, 4],
            image: "alpine:3.18.2".into(),
            pod_ready_ms: 0,
            empty: false,
            api_port: 0,
            arbiter_port: 0,
            arbiter: arbiter::ArbiterConfig::default(),
            faults: FaultConfig::default(),
            watch_history: 10_000,
            bookmark_every: Duration::from_secs(1),
        }
    }
}

/// A running simulated cluster. Cloning shares it.
#[derive(Clone)]
pub struct Sim {
    cfg: Arc<SimConfig>,
    store: Store,
    report: report::Report,
    arbiter: arbiter::Arbiter,
    faults: Faults,
}

impl Sim {
    /// Builds the store, report and arbiter, seeds the case unless `empty`,
    /// and starts the controller. Needs a tokio runtime.
    pub fn new(cfg: SimConfig) -> Sim {
        let store = Store::with_history(cfg.watch_history);
        let report = report::Report::new();
        let mut arbiter_cfg = cfg.arbiter.clone();
        arbiter_cfg.empty |= cfg.empty;
        let arbiter = arbiter::Arbiter::new(arbiter_cfg);
        if !cfg.empty {
            let members: Vec<(String, bool)> = seed::roles(&cfg).into_iter().collect();
            arbiter.seed(&members);
            seed::spawn_labeller(&store, &cfg);
        }
        if let Err(e) = seed::seed_case(&store, &cfg) {
            // The seed is built from a checked-in manifest; failing is a bug here.
            tracing::error!(error = %e, "seeding the simulator failed");
        }
        let kubelet = kubelet::KubeletConfig {
            pod_ready_ms: cfg.pod_ready_ms,
            ..kubelet::KubeletConfig::default()
        };
        controller::spawn(store.clone(), report.clone(), arbiter.clone(), kubelet);
        Sim {
            faults: Faults::new(cfg.faults.clone()),
            cfg: Arc::new(cfg),
            store,
            report,
            arbiter,
        }
    }

    /// The API server (plus the `/sim/v1` control endpoint), usable in-process.
    pub fn router(&self) -> axum::Router {
        let report = self.report.clone();
        let state = api::ApiState {
            store: self.store.clone(),
            faults: self.faults.clone(),
            observer: Arc::new(move |verb: &str, resource: &str| {
                report.count_request(verb, resource)
            }),
            bookmark_every: self.cfg.bookmark_every,
            pages: api::pages::Pages::default(),
        };
        axum::Router::new()
            .nest("/sim/v1", control::router(self.clone()))
            .merge(api::router(state))
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// SPEC §7's report document.
    pub fn report(&self) -> Value {
        self.report.to_json()
    }

    pub fn arbiter(&self) -> &arbiter::Arbiter {
        &self.arbiter
    }

    /// The live fault knobs.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Waits until every seed pod exists, carries its role label and is Ready.
    pub async fn settled(&self) {
        if self.cfg.empty {
            return;
        }
        let mut rx = self.store.subscribe();
        // Seed pods not settled yet; each change re-checks only the pod it touched.
        let all = seed::roles(&self.cfg);
        let mut pending = std::collections::BTreeMap::new();
        loop {
            if pending.is_empty() {
                // Every pod at once, not just each in turn.
                pending = all.clone();
                pending.retain(|name, working| !self.pod_settled(name, *working));
                if pending.is_empty() {
                    return;
                }
            }
            match rx.recv().await {
                Ok(c) if c.kind == Kind::Pod && c.namespace == seed::NAMESPACE => {
                    if let Some(&working) = pending.get(&c.name)
                        && self.pod_settled(&c.name, working)
                    {
                        pending.remove(&c.name);
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    pending.retain(|name, working| !self.pod_settled(name, *working));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Whether a seed pod exists, carries its role label and is Ready.
    fn pod_settled(&self, name: &str, working: bool) -> bool {
        self.store
            .get_shared(Kind::Pod, seed::NAMESPACE, name)
            .is_some_and(|p| {
                let labelled = p["metadata"]["labels"][controller::ROLE_LABEL].as_str()
                    == Some(if working { "true" } else { "false" });
                let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                labelled && ready
            })
    }

    /// Serves the API server and the arbiter on 127.0.0.1 (ports from the
    /// config, 0 = any), once the seed case has settled (at most 30 s).
    pub async fn serve(&self) -> std::io::Result<Served> {
        let _ = tokio::time::timeout(Duration::from_secs(30), self.settled()).await;
        Served::start(
            self.router(),
            self.cfg.api_port,
            self.arbiter.router(),
            self.cfg.arbiter_port,
        )
        .await
    }
}
