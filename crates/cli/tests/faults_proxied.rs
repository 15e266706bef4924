//! Issue 11: the API fault scenarios, run through the fault proxy
//! (`baton_testbed::proxy`) in front of the simulator AND the real apiserver with real
//! OpenKruise 1.5.5, so the engine is proven against real failures and not only against
//! the simulator's idea of them.
//!
//! Every scenario runs the real `engine` binary with the proxy's kubeconfig, the seed plan
//! (arbiter URL and target namespace rewritten) and its own state dir. It is judged from
//! outside, alike on both backends: the testbed's [`Observer`] watches the set's pods with
//! the backend's own client (never through the proxy) and records every update as it begins
//! with the role the arbiter held for that pod at that moment, and samples the arbiter's
//! working count; the
//! final pods, partition and role labels are read back; `engine history` is checked for
//! what it claims about the writes the faults hit.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse as _;
use baton_sim::arbiter::{Arbiter, Role};
use baton_testbed::backend::{self, Backend, BackendKind, Seed};
use baton_testbed::observer::Observer;
use baton_testbed::proxy::{DropRule, ErrorRule, ExpireRule, FaultConfig, Faults, Proxy, Upstream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;
use support::{assert_exit, describe};

const OLD_IMAGE: &str = "alpine:3.18.2";
const NEW_IMAGE: &str = "alpine:3.18.0";
const SEED_PLAN: &str = include_str!("../../../plans/seed.yaml");
const REVISION: &str = "controller-revision-hash";

/// One scenario's world: a seeded backend, the proxy in front of its API server, and a
/// folder for the proxy's kubeconfig, the plan and the engine's state.
struct Bed {
    backend: Backend,
    proxy: Proxy,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    state: PathBuf,
    observer: Observer,
}

impl Bed {
    /// `None` when the real tier is skipped here.
    async fn start(kind: BackendKind) -> Option<Bed> {
        let seed = Seed {
            image: OLD_IMAGE.into(),
            // Long enough that waves really wait on the watch, short enough to stay fast.
            ready_delay: Duration::from_millis(300),
            ..Seed::default()
        };
        let backend = Backend::start(kind, seed)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {}", baton_testbed::controlplane::chain(&e)))?;
        let upstream = Upstream::from_kubeconfig(backend.kubeconfig()).expect("upstream");
        let proxy = Proxy::start(upstream).await.expect("the fault proxy");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("proxy-kubeconfig");
        std::fs::write(&kubeconfig, proxy.kubeconfig()).unwrap();
        let state = dir.path().join("state");
        let observer = Observer::start(&backend).await;
        Some(Bed {
            backend,
            proxy,
            dir,
            kubeconfig,
            state,
            observer,
        })
    }

    fn faults(&self) -> &Faults {
        self.proxy.faults()
    }

    /// The seed plan named `name`, pointed at this arbiter and namespace, after `edit`.
    fn plan(&self, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) -> PathBuf {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(SEED_PLAN).unwrap();
        doc["metadata"]["name"] = name.into();
        doc["spec"]["arbiter"]["url"] = self.backend.arbiter_url().into();
        doc["spec"]["target"]["namespace"] = self.backend.namespace().into();
        edit(&mut doc);
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        path
    }

    /// The engine, through the proxy, with this bed's state dir.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_engine"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--state-dir")
            .arg(&self.state)
            .env("NO_COLOR", "1")
            .env_remove("BATON_FAILPOINTS")
            .env_remove("BATON_FAILPOINTS_LOG")
            .env_remove("ENGINE_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the engine to completion (at most two minutes; on timeout the panic quotes
    /// what it printed so far, which it writes to files for that reason).
    async fn engine(&self, args: &[&str]) -> Output {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.engine_to(args, &self.dir.path().join(format!("engine-{n}.out")))
            .await
    }

    /// [`Bed::engine`] with its stdout written to `out_path`, which a test may read while
    /// it runs.
    async fn engine_to(&self, args: &[&str], out_path: &Path) -> Output {
        let err_path = out_path.with_extension("err");
        let mut cmd = self.command(args);
        cmd.stdout(std::fs::File::create(out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap());
        let mut child = cmd.spawn().unwrap();
        let status = match tokio::time::timeout(Duration::from_secs(120), child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "engine {args:?} did not finish in two minutes\n--- stdout\n{}\n--- stderr\n{}",
                    std::fs::read_to_string(out_path).unwrap_or_default(),
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
        };
        Output {
            status,
            stdout: std::fs::read(out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        }
    }

    async fn run(&self, plan: &Path) -> Output {
        self.engine(&["run", plan.to_str().unwrap(), "-v"]).await
    }

    /// `engine history RUN --output json`'s audit entries.
    async fn history(&self, run: &str) -> Vec<Value> {
        let out = self.engine(&["history", run, "--output", "json"]).await;
        assert_exit(&out, 0);
        let doc: Value = serde_json::from_slice(&out.stdout).expect("history JSON");
        doc["audit"].as_array().cloned().unwrap_or_default()
    }

    fn partition(&self, sts: &Value) -> Option<i64> {
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"].as_i64()
    }

    /// The verdict of SPEC §1 from outside: no update began on a working pod, the
    /// working count never fell below its start, every pod runs the new image at the
    /// update revision, the partition is 0 and the role labels match the arbiter.
    async fn assert_finished_clean(&self, out: &Output) {
        let verdict = self.observer.verdict();
        if let Err(broken) = verdict.safe() {
            panic!("{broken}\n{}", describe(out));
        }
        let sts = self
            .backend
            .statefulsets()
            .get(backend::NAME)
            .await
            .expect("the ASTS");
        let sts = serde_json::to_value(&sts).unwrap();
        assert_eq!(self.partition(&sts), Some(0), "{}", describe(out));
        let update_revision = sts["status"]["updateRevision"].as_str().unwrap_or_default();
        let pods = self.backend.pods().list(&Default::default()).await.unwrap();
        let replicas = self.backend.seed().replicas as usize;
        assert_eq!(
            pods.items.len(),
            replicas,
            "{}",
            backend::describe(&pods.items)
        );
        let roles = self.backend.arbiter().roles();
        for pod in &pods.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let image = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers[0].image.clone());
            assert_eq!(image.as_deref(), Some(NEW_IMAGE), "{name} is not updated");
            assert_eq!(label(pod, REVISION), Some(update_revision), "{name}");
            assert!(backend::is_ready(pod), "{name} is not Ready");
            let working = roles.get(&name) == Some(&Role::Working);
            assert_eq!(
                label(pod, "working"),
                Some(if working { "true" } else { "false" }),
                "{name}'s role label does not match the arbiter"
            );
            assert_eq!(label(pod, "baton.dev/selected"), None, "{name}");
        }
        let mut updated = verdict.updated_pods();
        updated.sort_unstable();
        updated.dedup();
        assert_eq!(
            (verdict.updates.len(), updated.len()),
            (replicas, replicas),
            "every pod updated once: {verdict:?}"
        );
    }
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// Outcomes of the audit entries of `engine history`, by `"<outcome>"`.
fn outcomes(audit: &[Value]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for a in audit {
        *by.entry(a["outcome"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    by
}

fn is_write_to(a: &Value, kind: &str) -> bool {
    a["object"]
        .as_str()
        .is_some_and(|o| o.starts_with(&format!("{kind} ")))
}

fn show(audit: &[Value]) -> String {
    audit
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} -> {} [{}{}]",
                a["step"].as_str().unwrap_or("?"),
                a["object"].as_str().unwrap_or("?"),
                a["action"].as_str().unwrap_or("?"),
                a["before"],
                a["after"],
                a["outcome"].as_str().unwrap_or("?"),
                a["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

mod scenarios {
    use super::*;

    /// Scenario 1: A few 500/503 answers on pod and ASTS patches, never forwarded: the run
    /// retries and finishes; the history never calls a refused write applied.
    pub async fn server_errors_on_writes(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        let rule = |resource: &str, code| ErrorRule {
            verb: Some("patch".into()),
            resource: Some(resource.into()),
            code,
            rate: 1.0,
            count: Some(2),
            retry_after_seconds: None,
        };
        bed.faults().set(FaultConfig {
            errors: vec![rule("pods", 500), rule("statefulsets", 503)],
            ..FaultConfig::default()
        });
        let plan = bed.plan("errors", |_| {});
        let out = bed.run(&plan).await;
        assert_exit(&out, 0);
        bed.assert_finished_clean(&out).await;
        let stats = bed.faults().stats();
        assert_eq!(stats.injected("500 patch pods"), 2, "{stats:?}");
        assert_eq!(stats.injected("503 patch statefulsets"), 2, "{stats:?}");
        let audit = bed.history("errors").await;
        let by = outcomes(&audit);
        for a in &audit {
            assert!(
                a["outcome"] == "applied" || a["outcome"] == "failed",
                "a 5xx answer is applied or failed, never open: {a}"
            );
        }
        // Each injected 500 or 503 was a patch the proxy answered without forwarding: the
        // history must call it failed, never applied, and the rerun step applied it. The
        // client has no retry layer of its own (a retry the history cannot see), so every
        // attempt the proxy saw is an entry: two failed pod patches, two failed ASTS patches.
        let failed: Vec<&Value> = audit.iter().filter(|a| a["outcome"] == "failed").collect();
        assert_eq!(failed.len(), 4, "{by:?}\n{}", show(&audit));
        let refused = |object: &str, code: &str| {
            failed
                .iter()
                .filter(|a| {
                    is_write_to(a, object) && a["error"].as_str().is_some_and(|e| e.contains(code))
                })
                .count()
        };
        assert_eq!(refused("pod", "500"), 2, "{}", show(&audit));
        assert_eq!(refused("statefulset", "503"), 2, "{}", show(&audit));
        for writes in ["patch pods", "patch statefulsets"] {
            let object = if writes == "patch pods" {
                "pod"
            } else {
                "statefulset"
            };
            let entries = audit.iter().filter(|a| is_write_to(a, object)).count();
            assert_eq!(
                stats.requests(writes),
                entries as u64,
                "every {writes} request the proxy saw is one history entry\n{stats:?}\n{}",
                show(&audit)
            );
        }
    }

    /// Scenario 2: A partition patch and a pod label patch are applied and then their answers
    /// lost: the run still finishes, nothing is applied twice in a harmful way, and the
    /// history does not claim to know how those writes ended.
    pub async fn apply_then_drop(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        // The first ASTS patch is apply-update's template; once it has gone through, the
        // next two are dropped: wave 1's update priority, then (the rerun step finding the
        // priority in place) its partition.
        bed.faults().set(FaultConfig {
            drops: vec![DropRule {
                verb: Some("patch".into()),
                resource: Some("pods".into()),
                rate: 1.0,
                count: Some(1),
            }],
            ..FaultConfig::default()
        });
        let faults = bed.faults().clone();
        let armer = tokio::spawn(async move {
            while faults.stats().requests("patch statefulsets") < 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut cfg = faults.get();
            cfg.drops.push(DropRule {
                verb: Some("patch".into()),
                resource: Some("statefulsets".into()),
                rate: 1.0,
                count: Some(2),
            });
            faults.set(cfg);
        });
        let plan = bed.plan("drops", |_| {});
        let out = bed.run(&plan).await;
        armer.abort();
        assert_exit(&out, 0);
        bed.assert_finished_clean(&out).await;
        let stats = bed.faults().stats();
        assert_eq!(stats.injected("drop patch pods"), 1, "{stats:?}");
        assert_eq!(stats.injected("drop patch statefulsets"), 2, "{stats:?}");
        let audit = bed.history("drops").await;
        eprintln!("history under apply-then-drop:\n{}", show(&audit));
        // The dropped writes happened, but the engine never heard back: the history must
        // not call them failed (they landed) nor applied (nobody said so): `unknown`.
        assert!(
            !audit.iter().any(|a| a["outcome"] == "failed"),
            "a write that landed is shown as failed:\n{}",
            show(&audit)
        );
        let unknown: Vec<&Value> = audit.iter().filter(|a| a["outcome"] == "unknown").collect();
        let actions: Vec<&str> = unknown
            .iter()
            .map(|a| a["action"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(
            actions,
            ["patch labels", "set update priority", "set partition"],
            "{}",
            show(&audit)
        );
        // Absolute values: every partition written is one of the plan's, in order.
        let partitions: Vec<i64> = audit
            .iter()
            .filter(|a| a["step"].as_str().unwrap_or("").ends_with("/set-partition"))
            .filter_map(|a| a["after"].as_i64().or(a["after"]["partition"].as_i64()))
            .collect();
        let mut distinct = partitions.clone();
        distinct.dedup();
        assert_eq!(distinct, [3, 1, 0], "{}", show(&audit));
    }

    /// Scenario 3: Every watch through the proxy is cut every ~300 ms while waves wait.
    pub async fn cut_watches(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        let faults = bed.faults().clone();
        let cutter = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                faults.cut_watches();
            }
        });
        let plan = bed.plan("cuts", |_| {});
        let out = bed.run(&plan).await;
        cutter.abort();
        assert_exit(&out, 0);
        bed.assert_finished_clean(&out).await;
        let stats = bed.faults().stats();
        assert!(stats.injected("cut watch pods") >= 1, "{stats:?}");
        assert!(
            stats.requests("watch pods") > stats.injected("cut watch pods"),
            "cut watches were resumed: {stats:?}"
        );
    }

    /// Scenario 4: Watches that resume from a resourceVersion are answered `410 Expired`.
    pub async fn expired_watches(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        bed.faults().set(FaultConfig {
            expire: vec![ExpireRule {
                resource: None,
                rate: 1.0,
                count: Some(6),
            }],
            // Short watch streams, so watches resume (and can expire) while waves wait.
            watch_cut_after: Some(2),
            ..FaultConfig::default()
        });
        let plan = bed.plan("expire", |_| {});
        let out = bed.run(&plan).await;
        assert_exit(&out, 0);
        bed.assert_finished_clean(&out).await;
        let stats = bed.faults().stats();
        let expired: u64 = stats
            .injected
            .iter()
            .filter(|(k, _)| k.starts_with("expire "))
            .map(|(_, n)| n)
            .sum();
        assert!(expired >= 1, "{stats:?}");
    }

    /// Scenario 5: the Lease API fails: two reads at the start (the run retries), then
    /// every update, so no renewal lands while the run waits at its approval gate after
    /// wave 1. The run must give the lease up at a safe point before it can expire (exit 1)
    /// and write nothing after; approved and resumed once the API answers, it finishes.
    pub async fn lease_api_errors(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        let lease_rule = |verb: &str, count| ErrorRule {
            verb: Some(verb.into()),
            resource: Some("leases".into()),
            code: 503,
            rate: 1.0,
            count,
            retry_after_seconds: None,
        };
        bed.faults().set(FaultConfig {
            errors: vec![lease_rule("get", Some(2)), lease_rule("update", None)],
            ..FaultConfig::default()
        });
        let plan = bed.plan("lease", |doc| {
            doc["spec"]["waves"]["approval"] = "firstWave".into()
        });
        let leases: Api<Lease> = Api::namespaced(bed.backend.client(), bed.backend.namespace());
        let writes = WriteLog::start(bed.faults().clone());
        let out = bed.run(&plan).await;
        let log = writes.stop();
        assert_exit(&out, 1);
        let stderr = support::text(&out.stderr);
        assert!(stderr.contains("Lease) was lost"), "{}", describe(&out));
        // Never renewed, and not released (its update fails too): its renew time is when
        // the run took it, and it expires `leaseDurationSeconds` after that.
        let lease = leases.get("baton-sample").await.expect("the lease");
        let spec = lease.spec.expect("a lease spec");
        let renewed = spec.renew_time.expect("a renew time").0;
        let expires = renewed
            + jiff::SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
        // When the engine gave the lease up: its log line's timestamp.
        let lost_at: jiff::Timestamp = stderr
            .lines()
            .find(|l| l.contains("the run lock may expire"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no lost-lease line\n{}", describe(&out)));
        assert!(
            lost_at + jiff::SignedDuration::from_secs(2) < expires,
            "the engine gave the lease up at {lost_at}, too close to its expiry at {expires}"
        );
        // Wave 1 wrote; nothing was written to pods or the set after the lease was given up.
        let writes_by = |t: jiff::Timestamp| {
            log.iter()
                .take_while(|(at, _)| *at <= t)
                .last()
                .map_or(0, |(_, n)| *n)
        };
        let total = log.last().map_or(0, |(_, n)| *n);
        assert!(total > 0, "wave 1 wrote");
        assert_eq!(
            writes_by(lost_at),
            total,
            "writes after the lease was given up at {lost_at}: {log:?}"
        );
        let partial = bed.observer.verdict();
        partial.safe().unwrap();
        let mut wave_one = partial.updated_pods();
        wave_one.sort_unstable();
        assert_eq!(
            wave_one,
            ["sample-1", "sample-3"],
            "wave 1 updated its two pods: {partial:?}"
        );
        bed.faults().clear();
        assert_exit(&bed.engine(&["approve", "lease"]).await, 0);
        let resumed = bed.engine(&["resume", "lease"]).await;
        assert_exit(&resumed, 0);
        bed.assert_finished_clean(&resumed).await;
        let stats = bed.faults().stats();
        assert_eq!(stats.injected("503 get leases"), 2, "{stats:?}");
        assert!(stats.injected("503 update leases") >= 1, "{stats:?}");
    }

    /// Scenario 6: The arbiter goes down for a second at the moment the first handover reaches
    /// it (a relay in front of it sees the request and starts the outage before passing
    /// it on): the handover step retries and the run finishes.
    pub async fn arbiter_outage_during_handover(kind: BackendKind) {
        let Some(bed) = Bed::start(kind).await else {
            return;
        };
        let relay =
            OutageRelay::start(bed.backend.arbiter().clone(), bed.backend.arbiter_url()).await;
        let plan = bed.plan("outage", |doc| {
            doc["spec"]["arbiter"]["url"] = relay.url.clone().into()
        });
        let out = bed
            .engine(&["run", plan.to_str().unwrap(), "--output", "json"])
            .await;
        assert_exit(&out, 0);
        assert!(relay.struck(), "no handover reached the arbiter");
        bed.assert_finished_clean(&out).await;
        let events: Vec<Value> = support::text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            events.iter().any(|e| e["type"] == "stepFailed"
                && e["step"] == "wave-1/handover"
                && e["retrying"] == true),
            "the first handover met the outage and was retried:\n{}",
            support::text(&out.stdout)
        );
        let audit = bed.history("outage").await;
        let handovers: Vec<&Value> = audit
            .iter()
            .filter(|a| a["step"] == "wave-1/handover" && is_write_to(a, "arbiter"))
            .collect();
        // The arbiter answered 503: a 5xx leaves a handover open (`unknown`); the retry,
        // deduplicated by its requestId, is applied.
        assert!(
            handovers.len() >= 2
                && handovers[..handovers.len() - 1]
                    .iter()
                    .all(|a| a["outcome"] == "unknown")
                && handovers.last().is_some_and(|a| a["outcome"] == "applied"),
            "{}",
            show(&audit)
        );
    }
}

/// A relay in front of the arbiter that starts a one-second arbiter outage when the first
/// `POST /v1/handover` comes through, then passes that request on (so the arbiter itself
/// answers it 503).
struct OutageRelay {
    url: String,
    struck: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OutageRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OutageRelay {
    async fn start(arbiter: Arbiter, upstream: &str) -> OutageRelay {
        let struck = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = (
            arbiter,
            upstream.to_string(),
            reqwest::Client::new(),
            struck.clone(),
        );
        let app = axum::Router::new()
            .fallback(relay_request)
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OutageRelay { url, struck, task }
    }

    fn struck(&self) -> bool {
        self.struck.load(std::sync::atomic::Ordering::SeqCst)
    }
}

type RelayState = (
    Arbiter,
    String,
    reqwest::Client,
    Arc<std::sync::atomic::AtomicBool>,
);

async fn relay_request(
    axum::extract::State((arbiter, upstream, client, struck)): axum::extract::State<RelayState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if parts.method == axum::http::Method::POST
        && parts.uri.path() == "/v1/handover"
        && !struck.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        arbiter.outage(Duration::from_secs(1));
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = client.request(parts.method.clone(), format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.body(body).send().await {
        Ok(answer) => answer,
        Err(_) => return axum::http::StatusCode::BAD_GATEWAY.into_response(),
    };
    let mut response = axum::http::Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONNECTION {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response
        .body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
}

/// The proxy's count of writes to pods and ASTSs over time, sampled every 20 ms.
struct WriteLog {
    task: tokio::task::JoinHandle<()>,
    log: Arc<Mutex<Vec<(jiff::Timestamp, u64)>>>,
}

impl WriteLog {
    fn start(faults: Faults) -> WriteLog {
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    let stats = faults.stats();
                    let n: u64 = stats
                        .requests
                        .iter()
                        .filter(|(k, _)| {
                            let (verb, resource) = k.split_once(' ').unwrap_or(("", ""));
                            matches!(verb, "patch" | "update" | "create" | "delete")
                                && (resource.starts_with("pods")
                                    || resource.starts_with("statefulsets"))
                        })
                        .map(|(_, n)| n)
                        .sum();
                    log.lock().unwrap().push((jiff::Timestamp::now(), n));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        WriteLog { task, log }
    }

    fn stop(self) -> Vec<(jiff::Timestamp, u64)> {
        self.task.abort();
        self.log.lock().unwrap().clone()
    }
}

/// `sim_<name>` and `real_<name>` for every scenario (macro_rules cannot glue names, so
/// each line spells both).
macro_rules! on_both {
    ($($name:ident: $sim:ident, $real:ident;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $sim() {
                scenarios::$name(BackendKind::Sim).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $real() {
                scenarios::$name(BackendKind::Real).await;
            }
        )*
    };
}

on_both! {
    server_errors_on_writes: sim_server_errors_on_writes, real_server_errors_on_writes;
    apply_then_drop: sim_apply_then_drop, real_apply_then_drop;
    cut_watches: sim_cut_watches, real_cut_watches;
    expired_watches: sim_expired_watches, real_expired_watches;
    lease_api_errors: sim_lease_api_errors, real_lease_api_errors;
    arbiter_outage_during_handover: sim_arbiter_outage_during_handover, real_arbiter_outage_during_handover;
}
