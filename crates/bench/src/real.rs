//! `baton-bench --real`: the engine side by side with the seed's procedure scripted with
//! kubectl (`scripts/seed-by-hand.sh`), on the real control plane of `BATON_CONTROL_PLANE`
//! (etcd, kube-apiserver 1.20, OpenKruise 1.5.5, a stand-in kubelet and an arbiter, all from
//! `baton_testbed`).
//!
//! Each run gets a freshly seeded namespace (half the pods working, the ASTS `maxUnavailable`
//! raised to the replica count so Kruise's budget never holds a wave back) and its own
//! counting proxy in front of the API server, so the tool's requests, and only its requests,
//! are counted: the kubelet, Kruise and the outside observer talk to the API server directly.
//! kubectl's discovery cache is warmed through the proxy before counting starts, as an
//! operator's would be. Every run is judged from outside the same way for both tools: no
//! update began on a working pod, the working count never dropped, and the set ends fully
//! updated, Ready, with partition 0 and role labels as the arbiter says; a run that fails
//! any of these fails the benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use baton_sim::arbiter::Role;
use baton_testbed::backend::{self, Backend, BackendKind, Seed};
use baton_testbed::observer::{Observer, REVISION_LABEL};
use baton_testbed::proxy::{Proxy, Stats, Upstream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;

use crate::Case;

const OLD_IMAGE: &str = "alpine:3.18.2";
const NEW_IMAGE: &str = "alpine:3.18.0";
const SEED_PLAN: &str = include_str!("../../../plans/seed.yaml");
/// How long the outside observer may lag behind a finished run.
const SETTLE: Duration = Duration::from_secs(10);

/// Which procedure a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool {
    Engine,
    Script,
}

/// What the side-by-side mode needs beyond the engine binary.
#[derive(Debug)]
pub struct RealOptions {
    pub cases: Vec<Case>,
    pub runs: u32,
    pub script: PathBuf,
    pub pod_ready: Duration,
    pub timeout: Duration,
    pub out: PathBuf,
    pub markdown: Option<PathBuf>,
}

/// One tool's run on one freshly seeded set.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RealRun {
    pub tool: Tool,
    pub replicas: u32,
    pub max_per_wave: u32,
    pub run: u32,
    pub wall_ms: f64,
    /// API requests through the proxy, by `"<verb> <resource>"` (discovery by path).
    pub requests: BTreeMap<String, u64>,
    pub counts: Counts,
    /// Pod updates the outside observer saw begin (each pod once when all is well).
    pub updates: usize,
}

/// A run's API requests, split the way the comparison reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total: u64,
    /// get, list, watch of resources.
    pub reads: u64,
    /// create, update, patch, delete.
    pub writes: u64,
    /// Requests for paths that name no resource (`/api`, `/apis/…`, `/openapi/…`, `/version`).
    pub discovery: u64,
}

/// The requests one tool sent: `after` minus `before` of the proxy's counters.
pub fn requests_between(before: &Stats, after: &Stats) -> BTreeMap<String, u64> {
    after
        .requests
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.requests(k));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Splits requests named by the proxy (`"patch pods"`, `"get /apis/apps/v1"`).
pub fn counts(requests: &BTreeMap<String, u64>) -> Counts {
    let mut c = Counts::default();
    for (key, n) in requests {
        c.total += n;
        let (verb, resource) = key.split_once(' ').unwrap_or((key.as_str(), ""));
        if resource.starts_with('/') {
            c.discovery += n;
        } else if matches!(verb, "get" | "list" | "watch") {
            c.reads += n;
        } else if matches!(verb, "create" | "update" | "patch" | "delete") {
            c.writes += n;
        }
    }
    c
}

/// One size's comparison: medians over its runs, and script ÷ engine.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub replicas: u32,
    pub max_per_wave: u32,
    pub runs: usize,
    pub engine_wall_ms: f64,
    pub script_wall_ms: f64,
    pub wall_ratio: f64,
    pub engine_wall_range_ms: (f64, f64),
    pub script_wall_range_ms: (f64, f64),
    pub engine_requests: f64,
    pub script_requests: f64,
    pub requests_ratio: f64,
    pub engine_reads_writes: (f64, f64),
    pub script_reads_writes: (f64, f64),
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn range(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// The comparison of each size that has runs of both tools, in the order sizes first appear.
pub fn compare(runs: &[RealRun]) -> Vec<Comparison> {
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for r in runs {
        if !sizes.contains(&(r.replicas, r.max_per_wave)) {
            sizes.push((r.replicas, r.max_per_wave));
        }
    }
    sizes
        .into_iter()
        .filter_map(|(replicas, max_per_wave)| {
            let of = |tool: Tool| -> Vec<&RealRun> {
                runs.iter()
                    .filter(|r| {
                        r.tool == tool && r.replicas == replicas && r.max_per_wave == max_per_wave
                    })
                    .collect()
            };
            let (e, s) = (of(Tool::Engine), of(Tool::Script));
            if e.is_empty() || s.is_empty() {
                return None;
            }
            let walls = |rs: &[&RealRun]| rs.iter().map(|r| r.wall_ms).collect::<Vec<_>>();
            let med = |rs: &[&RealRun], f: fn(&Counts) -> u64| {
                median(rs.iter().map(|r| f(&r.counts) as f64).collect())
            };
            let (ew, sw) = (median(walls(&e)), median(walls(&s)));
            let (er, sr) = (med(&e, |c| c.total), med(&s, |c| c.total));
            Some(Comparison {
                replicas,
                max_per_wave,
                runs: e.len().min(s.len()),
                engine_wall_ms: ew,
                script_wall_ms: sw,
                wall_ratio: sw / ew,
                engine_wall_range_ms: range(&walls(&e)),
                script_wall_range_ms: range(&walls(&s)),
                engine_requests: er,
                script_requests: sr,
                requests_ratio: sr / er,
                engine_reads_writes: (med(&e, |c| c.reads), med(&e, |c| c.writes)),
                script_reads_writes: (med(&s, |c| c.reads), med(&s, |c| c.writes)),
            })
        })
        .collect()
}

/// The results as markdown: the comparison, then every run with its requests by verb.
pub fn markdown(comparisons: &[Comparison], runs: &[RealRun]) -> String {
    let mut s = String::from(
        "| replicas | maxPerWave | runs | wall: engine | wall: script | script ÷ engine | requests: engine (reads/writes) | requests: script (reads/writes) | script ÷ engine |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in comparisons {
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} s ({:.2}–{:.2}) | {:.2} s ({:.2}–{:.2}) | **{:.1}×** | {:.0} ({:.0}/{:.0}) | {:.0} ({:.0}/{:.0}) | **{:.1}×** |\n",
            c.replicas,
            c.max_per_wave,
            c.runs,
            c.engine_wall_ms / 1000.0,
            c.engine_wall_range_ms.0 / 1000.0,
            c.engine_wall_range_ms.1 / 1000.0,
            c.script_wall_ms / 1000.0,
            c.script_wall_range_ms.0 / 1000.0,
            c.script_wall_range_ms.1 / 1000.0,
            c.wall_ratio,
            c.engine_requests,
            c.engine_reads_writes.0,
            c.engine_reads_writes.1,
            c.script_requests,
            c.script_reads_writes.0,
            c.script_reads_writes.1,
            c.requests_ratio,
        ));
    }
    s.push_str("\n| tool | replicas | run | wall | requests | discovery | by verb |\n|---|---:|---:|---:|---:|---:|---|\n");
    for r in runs {
        let by: Vec<String> = r
            .requests
            .iter()
            .filter(|(k, _)| !k.contains(" /"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        s.push_str(&format!(
            "| {:?} | {} | {} | {:.2} s | {} | {} | {} |\n",
            r.tool,
            r.replicas,
            r.run,
            r.wall_ms / 1000.0,
            r.counts.total,
            r.counts.discovery,
            by.join(", ")
        ));
    }
    s
}

/// Runs every case `opts.runs` times with each tool (alternating which goes first), writes
/// the JSON and markdown, prints the markdown.
pub async fn bench(engine: &Path, opts: RealOptions) -> Result<()> {
    if !opts.script.is_file() {
        bail!(
            "the kubectl script is not at {} (pass --script)",
            opts.script.display()
        );
    }
    let mut runs = Vec::new();
    for case in &opts.cases {
        for run in 1..=opts.runs {
            let order = if run % 2 == 1 {
                [Tool::Engine, Tool::Script]
            } else {
                [Tool::Script, Tool::Engine]
            };
            for tool in order {
                eprintln!(
                    "bench --real: {tool:?}, {} replicas, maxPerWave {}, run {run}",
                    case.replicas, case.max_per_wave
                );
                let r = run_one(engine, &opts, *case, tool, run).await?;
                eprintln!(
                    "bench --real: {:.2} s, {} requests",
                    r.wall_ms / 1000.0,
                    r.counts.total
                );
                runs.push(r);
            }
        }
    }
    let comparisons = compare(&runs);
    let doc = json!({
        "date": jiff::Timestamp::now().to_string(),
        "engine": engine.display().to_string(),
        "script": opts.script.display().to_string(),
        "podReadyMs": opts.pod_ready.as_millis() as u64,
        "comparisons": comparisons,
        "runs": runs,
    });
    std::fs::write(&opts.out, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", opts.out.display()))?;
    let md = markdown(&comparisons, &runs);
    if let Some(p) = &opts.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{md}");
    Ok(())
}

/// A seeded namespace on the shared real control plane, with `maxUnavailable` = replicas.
async fn seeded(case: Case, pod_ready: Duration) -> Result<Backend> {
    let seed = Seed {
        replicas: case.replicas,
        working: (0..case.replicas).filter(|i| i % 2 == 0).collect(),
        image: OLD_IMAGE.into(),
        ready_delay: pod_ready,
        readiness_gates: Vec::new(),
    };
    let backend = Backend::start(BackendKind::Real, seed)
        .await
        .map_err(|e| anyhow::anyhow!(baton_testbed::controlplane::chain(&e)))?
        .context(
            "the real control plane is not configured: set BATON_CONTROL_PLANE to its assets \
             folder (shared/realcp/README.md)",
        )?;
    let patch =
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": case.replicas}}}});
    backend
        .statefulsets()
        .patch(
            backend::NAME,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context("raising maxUnavailable")?;
    Ok(backend)
}

async fn run_one(
    engine: &Path,
    opts: &RealOptions,
    case: Case,
    tool: Tool,
    run: u32,
) -> Result<RealRun> {
    let backend = seeded(case, opts.pod_ready).await?;
    let upstream = Upstream::from_kubeconfig(backend.kubeconfig())?;
    let proxy = Proxy::start(upstream).await?;
    let mut dir = tempfile::Builder::new()
        .prefix("baton-bench-real-")
        .tempdir()?;
    if std::env::var_os("BATON_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("bench --real: keeping {}", dir.path().display());
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, proxy.kubeconfig())?;
    let mut cmd = match tool {
        Tool::Engine => {
            let plan = dir.path().join("plan.yaml");
            std::fs::write(&plan, plan_text(&backend, case)?)?;
            let mut c = tokio::process::Command::new(engine);
            c.arg("run")
                .arg(&plan)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--state-dir")
                .arg(dir.path().join("state"));
            c
        }
        Tool::Script => {
            // The operator's kubectl has its discovery cached already.
            let cache = dir.path().join("kube-cache");
            let warm = tokio::process::Command::new("kubectl")
                .args(["api-resources", "--kubeconfig"])
                .arg(&kubeconfig)
                .env("KUBECACHEDIR", &cache)
                .stdout(Stdio::null())
                .output()
                .await
                .context("running kubectl")?;
            if !warm.status.success() {
                bail!(
                    "kubectl api-resources failed: {}",
                    String::from_utf8_lossy(&warm.stderr)
                );
            }
            let mut c = tokio::process::Command::new("bash");
            c.arg(&opts.script)
                .args(["--namespace", backend.namespace(), "--name", backend::NAME])
                .args(["--arbiter", backend.arbiter_url()])
                .args(["--image", &format!("main={NEW_IMAGE}")])
                .args(["--max-per-wave", &case.max_per_wave.to_string()])
                .env("KUBECONFIG", &kubeconfig)
                .env("KUBECACHEDIR", &cache);
            c
        }
    };
    let log = |ext: &str| std::fs::File::create(dir.path().join(format!("{tool:?}.{ext}")));
    cmd.stdin(Stdio::null())
        .stdout(log("out")?)
        .stderr(log("err")?)
        .kill_on_drop(true);
    let observer = Observer::start(&backend).await;
    let before = proxy.faults().stats();
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {tool:?}"))?;
    let status = match tokio::time::timeout(opts.timeout, child.wait()).await {
        Ok(s) => s?,
        Err(_) => {
            let _ = child.kill().await;
            bail!(
                "{tool:?} did not finish in {:?}:\n{}",
                opts.timeout,
                tail(dir.path(), tool)
            );
        }
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let requests = requests_between(&before, &proxy.faults().stats());
    if !status.success() {
        bail!("{tool:?} exited with {status}:\n{}", tail(dir.path(), tool));
    }
    let replicas = usize::try_from(case.replicas)?;
    let verdict = observer
        .until(SETTLE, |v| v.updates.len() >= replicas)
        .await
        .unwrap_or_else(|v| v);
    verdict
        .safe()
        .map_err(|e| anyhow::anyhow!("{tool:?} was unsafe: {e}"))?;
    if verdict.updates.len() != replicas {
        bail!(
            "{tool:?}: the observer saw {} pod update(s) for {replicas} pods: {:?}",
            verdict.updates.len(),
            verdict.updated_pods()
        );
    }
    check_final(&backend, case)
        .await
        .with_context(|| format!("{tool:?} left the set unfinished"))?;
    Ok(RealRun {
        tool,
        replicas: case.replicas,
        max_per_wave: case.max_per_wave,
        run,
        wall_ms,
        counts: counts(&requests),
        requests,
        updates: verdict.updates.len(),
    })
}

/// The seed plan (plans/seed.yaml) pointed at this backend's namespace and arbiter.
fn plan_text(backend: &Backend, case: Case) -> Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(SEED_PLAN)?;
    doc["metadata"]["name"] = format!("bench-real-{}", case.replicas).into();
    doc["spec"]["target"]["namespace"] = backend.namespace().into();
    doc["spec"]["arbiter"]["url"] = backend.arbiter_url().into();
    doc["spec"]["update"]["images"]["main"] = NEW_IMAGE.into();
    doc["spec"]["waves"]["maxPerWave"] = case.max_per_wave.into();
    Ok(serde_yaml::to_string(&doc)?)
}

/// The end state both tools promise, read from the cluster and the arbiter: partition 0,
/// every pod of the set at the update revision, on the new image and Ready, no
/// `baton.dev/selected` label left, every role label as the arbiter says, and as many
/// working pods as at the start.
async fn check_final(backend: &Backend, case: Case) -> Result<()> {
    let sts = backend.statefulset().await?;
    let partition = &sts.data["spec"]["updateStrategy"]["rollingUpdate"]["partition"];
    if partition.as_u64() != Some(0) {
        bail!("partition is {partition}, not 0");
    }
    let revision = sts.data["status"]["updateRevision"]
        .as_str()
        .context("the set has no updateRevision")?;
    let pods = backend
        .pods()
        .list(&ListParams::default().labels(&format!("app={}", backend::NAME)))
        .await?;
    let roles = backend.arbiter().roles();
    let mut wrong = Vec::new();
    for p in &pods.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let labels = p.metadata.labels.clone().unwrap_or_default();
        let want_label = match roles.get(&name) {
            Some(Role::Working) => "true",
            Some(Role::Idle) => "false",
            None => "?",
        };
        if labels.get(REVISION_LABEL).map(String::as_str) != Some(revision)
            || image(p) != Some(NEW_IMAGE)
            || !backend::is_ready(p)
            || labels.contains_key("baton.dev/selected")
            || labels.get("working").map(String::as_str) != Some(want_label)
        {
            wrong.push(backend::describe([p]));
        }
    }
    if pods.items.len() != usize::try_from(case.replicas)? || !wrong.is_empty() {
        bail!(
            "{} pods, not as promised: {}",
            pods.items.len(),
            wrong.join("; ")
        );
    }
    let working = roles.values().filter(|r| **r == Role::Working).count();
    let started = usize::try_from(case.replicas.div_ceil(2))?;
    if working != started {
        bail!("{working} working pods at the end, {started} at the start");
    }
    Ok(())
}

fn image(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "main")?
        .image
        .as_deref()
}

fn tail(dir: &Path, tool: Tool) -> String {
    let err = std::fs::read_to_string(dir.join(format!("{tool:?}.err"))).unwrap_or_default();
    let lines: Vec<&str> = err.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, u64)]) -> Stats {
        Stats {
            requests: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Stats::default()
        }
    }

    #[test]
    fn requests_are_split_into_reads_writes_and_discovery() {
        let cases: [(&[(&str, u64)], Counts); 3] = [
            (&[], Counts::default()),
            (
                &[
                    ("get pods", 2),
                    ("list pods", 3),
                    ("watch pods", 1),
                    ("patch pods", 4),
                    ("create events", 1),
                    ("update leases", 1),
                    ("get /apis", 1),
                    ("get /api/v1", 2),
                ],
                Counts {
                    total: 15,
                    reads: 6,
                    writes: 6,
                    discovery: 3,
                },
            ),
            (
                &[("delete pods", 1), ("get /openapi/v2", 1)],
                Counts {
                    total: 2,
                    reads: 0,
                    writes: 1,
                    discovery: 1,
                },
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(counts(&stats(pairs).requests), want, "{pairs:?}");
        }
    }

    #[test]
    fn a_run_counts_only_the_requests_sent_after_the_first_snapshot() {
        let before = stats(&[("get /apis", 5), ("list pods", 1)]);
        let after = stats(&[("get /apis", 5), ("list pods", 4), ("patch pods", 2)]);
        let want: BTreeMap<String, u64> =
            [("list pods".to_string(), 3), ("patch pods".to_string(), 2)].into();
        assert_eq!(requests_between(&before, &after), want);
    }

    fn run(tool: Tool, replicas: u32, wall_ms: f64, total: u64) -> RealRun {
        RealRun {
            tool,
            replicas,
            max_per_wave: 0,
            run: 1,
            wall_ms,
            requests: BTreeMap::new(),
            counts: Counts {
                total,
                reads: total / 2,
                writes: total - total / 2,
                discovery: 0,
            },
            updates: replicas as usize,
        }
    }

    #[test]
    fn comparisons_take_medians_per_size_and_divide_script_by_engine() {
        let runs = vec![
            run(Tool::Engine, 20, 1000.0, 100),
            run(Tool::Script, 20, 9000.0, 700),
            run(Tool::Engine, 20, 3000.0, 120),
            run(Tool::Script, 20, 5000.0, 500),
            run(Tool::Engine, 20, 2000.0, 110),
            run(Tool::Script, 20, 6000.0, 600),
            run(Tool::Engine, 100, 4000.0, 400),
            // A size with one tool only is left out.
            run(Tool::Script, 5, 1.0, 1),
        ];
        let got = compare(&runs);
        assert_eq!(got.len(), 1, "{got:?}");
        let c = &got[0];
        assert_eq!((c.replicas, c.runs), (20, 3));
        assert_eq!((c.engine_wall_ms, c.script_wall_ms), (2000.0, 6000.0));
        assert_eq!(c.wall_ratio, 3.0);
        assert_eq!(c.engine_wall_range_ms, (1000.0, 3000.0));
        assert_eq!((c.engine_requests, c.script_requests), (110.0, 600.0));
        assert!((c.requests_ratio - 600.0 / 110.0).abs() < 1e-9);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
