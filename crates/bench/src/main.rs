//! `baton-bench`: runs the real `engine` binary against the simulator hosted in this
//! process and measures reaction latency, overhead, API economy, resume time and peak
//! RSS. It reports figures and whether each target is met; it never fails on a missed
//! target (speed goals belong in benchmarks, not in tests). Exit 1 means the benchmark
//! itself could not run (an engine run failed, the simulator broke).

mod analysis;
mod real;
mod rss;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use baton_sim::{Kind, Sim, SimConfig};
use clap::Parser;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use analysis::Target;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks `engine run` against the in-process simulator")]
struct Args {
    /// The `engine` binary (default: `engine` next to this binary).
    #[arg(long)]
    engine: Option<PathBuf>,
    /// Smallest size only (5 replicas, waves of 1), for CI.
    #[arg(long)]
    smoke: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Where to write the markdown table (also printed on stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Give up on one engine run after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Skip sizes above this many replicas (for slow machines or debug builds).
    #[arg(long)]
    max_replicas: Option<u32>,
    /// Run these sizes instead of the default ones, as REPLICASxMAXPERWAVE (repeatable).
    #[arg(long = "case", value_parser = parse_case)]
    cases: Vec<Case>,
    /// Side by side on the real control plane of BATON_CONTROL_PLANE: the engine against the
    /// seed's procedure scripted with kubectl (default sizes 20x0 and 100x0).
    #[arg(long)]
    real: bool,
    /// With --real: runs of each tool per size.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// With --real: the kubectl script (default: scripts/seed-by-hand.sh of this workspace).
    #[arg(long)]
    script: Option<PathBuf>,
    /// With --real: how long the stand-in kubelet takes to report a (re)started container Ready.
    #[arg(long, default_value_t = 0)]
    pod_ready_ms: u64,
}

fn parse_case(s: &str) -> Result<Case, String> {
    let (r, w) = s
        .split_once('x')
        .ok_or_else(|| format!("{s}: expected REPLICASxMAXPERWAVE, such as 100x10"))?;
    Ok(Case {
        replicas: r.parse().map_err(|e| format!("{s}: {e}"))?,
        max_per_wave: w.parse().map_err(|e| format!("{s}: {e}"))?,
    })
}

/// One benchmark size.
#[derive(Clone, Copy, Debug, Serialize)]
struct Case {
    replicas: u32,
    max_per_wave: u32,
}

const FULL: &[Case] = &[
    Case {
        replicas: 5,
        max_per_wave: 1,
    },
    Case {
        replicas: 100,
        max_per_wave: 10,
    },
    Case {
        replicas: 1000,
        max_per_wave: 100,
    },
    // Many waves: the run's state must grow with its progress, not with waves × pods.
    Case {
        replicas: 400,
        max_per_wave: 1,
    },
];
/// Side by side on the real control plane (issue 13): every idle pod in one wave, Kruise's
/// budget as large as the set.
const REAL: &[Case] = &[
    Case {
        replicas: 20,
        max_per_wave: 0,
    },
    Case {
        replicas: 100,
        max_per_wave: 0,
    },
];
const SMOKE: &[Case] = &[Case {
    replicas: 5,
    max_per_wave: 1,
}];

/// How long pods take to become Ready in the run that checks for polling reads.
const SLOW_POD_READY_MS: u64 = 300;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CaseResult {
    replicas: u32,
    max_per_wave: u32,
    waves: u32,
    updated_pods: u64,
    violations: usize,
    wall_ms: f64,
    wall_ms_per_wave: f64,
    wall_ms_per_pod: f64,
    reaction_ms: Vec<f64>,
    reaction_p50_ms: Option<f64>,
    reaction_p99_ms: Option<f64>,
    requests: std::collections::BTreeMap<String, u64>,
    writes: u64,
    writes_per_pod: f64,
    write_budget: u64,
    requests_per_pod: f64,
    /// Gets, lists and watches (lease included) over the whole run.
    reads: u64,
    peak_rss_kib: u64,
    /// The run's state directory after the run (database and status.json).
    state_dir_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PollingCheck {
    replicas: u32,
    max_per_wave: u32,
    pod_ready_ms: u64,
    pod_reads_fast: u64,
    pod_reads_slow: u64,
    /// Extra pod reads when pods take longer to become Ready: 0 means no polling.
    polling_reads: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResumeResult {
    replicas: u32,
    max_per_wave: u32,
    /// Pod label patches the killed run had made (it dies in wave 1's `relabel`).
    killed_after_pod_patches: u64,
    /// Pod updates the controller had begun by then (0: nothing to wait for on resume).
    killed_after_updates: usize,
    spawn_to_first_write_ms: Option<f64>,
    resume_wall_ms: f64,
    resume_exit: Option<i32>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let engine = match &args.engine {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench binary has no directory")?
            .join("engine"),
    };
    if !engine.is_file() {
        bail!(
            "engine binary not found at {} (pass --engine)",
            engine.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.real {
        let opts = real::RealOptions {
            cases: if args.cases.is_empty() {
                REAL.to_vec()
            } else {
                args.cases.clone()
            },
            runs: args.runs.max(1),
            script: args.script.clone().unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/seed-by-hand.sh")
            }),
            pod_ready: Duration::from_millis(args.pod_ready_ms),
            timeout: Duration::from_secs(args.timeout_secs),
            out: args.out.clone(),
            markdown: args.markdown.clone(),
        };
        return rt.block_on(real::bench(&engine, opts));
    }
    rt.block_on(bench(args, engine))
}

async fn bench(args: Args, engine: PathBuf) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let cases = if !args.cases.is_empty() {
        &args.cases[..]
    } else if args.smoke {
        SMOKE
    } else {
        FULL
    };
    let cases: Vec<Case> = cases
        .iter()
        .copied()
        .filter(|c| args.max_replicas.is_none_or(|m| c.replicas <= m))
        .collect();
    let mut results = Vec::new();
    // A size that fails or overruns the timeout is reported, not fatal: the smaller sizes'
    // figures are still worth having.
    let mut failures = Vec::new();
    for case in &cases {
        eprintln!(
            "bench: {} replicas, waves of {}",
            case.replicas, case.max_per_wave
        );
        match run_case(&engine, *case, 0, timeout).await {
            Ok((r, _)) => results.push(r),
            Err(e) => {
                let head = format!("{e:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                eprintln!("bench: {head}");
                failures.push(json!({"replicas": case.replicas, "maxPerWave": case.max_per_wave, "error": head}));
            }
        }
    }
    if results.is_empty() {
        bail!("no size completed");
    }

    let small = cases[0];
    eprintln!("bench: polling check with pods Ready after {SLOW_POD_READY_MS} ms");
    let (_, slow_report) = run_case(&engine, small, SLOW_POD_READY_MS, timeout).await?;
    let slow_reads = analysis::pod_reads(&analysis::requests(&slow_report));
    let fast_reads = analysis::pod_reads(&results[0].requests);
    let polling = PollingCheck {
        replicas: small.replicas,
        max_per_wave: small.max_per_wave,
        pod_ready_ms: SLOW_POD_READY_MS,
        pod_reads_fast: fast_reads,
        pod_reads_slow: slow_reads,
        polling_reads: slow_reads as i64 - fast_reads as i64,
    };

    let resume_case = if args.smoke {
        small
    } else {
        cases.get(1).copied().unwrap_or(small)
    };
    eprintln!(
        "bench: resume after SIGKILL, {} replicas, waves of {}",
        resume_case.replicas, resume_case.max_per_wave
    );
    let resume = run_resume(&engine, resume_case, timeout).await?;

    let targets = targets(&results, &polling, &resume);
    let doc = json!({
        "date": Timestamp::now().to_string(),
        "engine": engine.display().to_string(),
        "smoke": args.smoke,
        "cases": results,
        "failures": failures,
        "polling": polling,
        "resume": resume,
        "targets": targets,
    });
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let mut md = markdown(&results, &polling, &resume, &targets);
    for f in &failures {
        md.push_str(&format!(
            "\nNot completed: {} replicas, waves of {}: {}\n",
            f["replicas"],
            f["maxPerWave"],
            f["error"].as_str().unwrap_or_default()
        ));
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{md}");
    Ok(())
}

/// A fresh simulator for `case`, served on 127.0.0.1, with half the pods working (even
/// ordinals, like the seed case) and `maxUnavailable` = replicas so that the Kruise budget
/// never holds a wave back: the benchmark measures the engine, not the budget.
async fn start_sim(case: Case, pod_ready_ms: u64) -> Result<(Sim, baton_sim::Served)> {
    let sim = Sim::new(SimConfig {
        replicas: case.replicas,
        working: (0..case.replicas).filter(|i| i % 2 == 0).collect(),
        pod_ready_ms,
        ..SimConfig::default()
    });
    let replicas = case.replicas;
    sim.store()
        .modify(Kind::StatefulSet, "default", "sample", |o| {
            o["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(replicas);
            Ok(())
        })
        .map_err(|e| anyhow::anyhow!("raising maxUnavailable: {}", e.message))?;
    let served = sim.serve().await?;
    Ok((sim, served))
}

fn plan_text(case: Case, arbiter: &str, name: &str) -> String {
    format!(
        "apiVersion: baton.dev/v1alpha1
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
    url: {arbiter}
  waves:
    maxPerWave: {mpw}
    readyTimeout: 10m
",
        mpw = case.max_per_wave
    )
}

struct Workdir {
    _tmp: tempfile::TempDir,
    plan: PathBuf,
    state: PathBuf,
    kubeconfig: PathBuf,
    run: String,
}

fn workdir(case: Case, served: &baton_sim::Served) -> Result<Workdir> {
    let mut tmp = tempfile::tempdir()?;
    // For profiling: keep the plan, logs and state directory of every run.
    if std::env::var_os("BATON_BENCH_KEEP").is_some() {
        tmp.disable_cleanup(true);
        eprintln!("bench: keeping {}", tmp.path().display());
    }
    let run = format!("bench-{}-{}", case.replicas, case.max_per_wave);
    let plan = tmp.path().join("plan.yaml");
    std::fs::write(&plan, plan_text(case, &served.arbiter, &run))?;
    let kubeconfig = tmp.path().join("kubeconfig");
    served.write_kubeconfig(&kubeconfig)?;
    Ok(Workdir {
        state: tmp.path().join("state"),
        plan,
        kubeconfig,
        run,
        _tmp: tmp,
    })
}

fn engine_cmd(engine: &Path, w: &Workdir, sub: &[&str], log: &str) -> Result<Command> {
    let mut c = Command::new(engine);
    c.args(sub)
        .arg("--state-dir")
        .arg(&w.state)
        .arg("--kubeconfig")
        .arg(&w.kubeconfig)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(
            w.state.with_file_name(format!("{log}.out")),
        )?)
        .stderr(std::fs::File::create(
            w.state.with_file_name(format!("{log}.err")),
        )?);
    Ok(c)
}

fn history(engine: &Path, w: &Workdir) -> Result<Value> {
    let out = Command::new(engine)
        .args(["history", &w.run, "--output", "json", "--state-dir"])
        .arg(&w.state)
        .output()?;
    if !out.status.success() {
        bail!(
            "engine history failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn tail(w: &Workdir, log: &str) -> String {
    let err =
        std::fs::read_to_string(w.state.with_file_name(format!("{log}.err"))).unwrap_or_default();
    err.lines().rev().take(10).collect::<Vec<_>>().join("\n")
}

/// Runs `engine run` for `case` to the end and measures it.
async fn run_case(
    engine: &Path,
    case: Case,
    pod_ready_ms: u64,
    timeout: Duration,
) -> Result<(CaseResult, Value)> {
    let (sim, served) = start_sim(case, pod_ready_ms).await?;
    let w = workdir(case, &served)?;
    let plan = w.plan.display().to_string();
    let mut child = engine_cmd(engine, &w, &["run", &plan], "run")?.spawn()?;
    let started = Instant::now();
    let (status, peak) = tokio::task::spawn_blocking(move || {
        rss::wait_sampling(
            &mut child,
            Duration::from_millis(2),
            Instant::now() + timeout,
        )
    })
    .await??;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!(
            "engine run ({} replicas, waves of {}) exited with {status}:\n{}",
            case.replicas,
            case.max_per_wave,
            tail(&w, "run")
        );
    }
    let report = sim.report();
    served.shutdown();
    let state_dir_bytes = dir_size(&w.state);
    let hist = history(engine, &w)?;
    let writes = analysis::audit_writes(&hist);
    let waves = analysis::waves(&writes).max(1);
    let reaction = analysis::reaction_latencies_ms(&report, &writes);
    let requests = analysis::requests(&report);
    let updated = report["updates"].as_array().map_or(0, Vec::len) as u64;
    let total_requests: u64 = requests.values().sum();
    let cluster_writes = analysis::cluster_writes(&requests);
    let per = |x: f64| {
        if updated == 0 {
            0.0
        } else {
            x / updated as f64
        }
    };
    Ok((
        CaseResult {
            replicas: case.replicas,
            max_per_wave: case.max_per_wave,
            waves,
            updated_pods: updated,
            violations: report["violations"].as_array().map_or(0, Vec::len),
            wall_ms: wall,
            wall_ms_per_wave: wall / f64::from(waves),
            wall_ms_per_pod: per(wall),
            reaction_p50_ms: analysis::percentile(&reaction, 50.0),
            reaction_p99_ms: analysis::percentile(&reaction, 99.0),
            reaction_ms: reaction,
            writes: cluster_writes,
            writes_per_pod: per(cluster_writes as f64),
            write_budget: 3 * updated + 6 * u64::from(waves),
            requests_per_pod: per(total_requests as f64),
            reads: analysis::cluster_reads(&requests),
            requests,
            peak_rss_kib: peak,
            state_dir_bytes,
        },
        report,
    ))
}

/// Bytes of the files under `dir` (0 when it cannot be read).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Starts a run, SIGKILLs it once it has begun patching pod labels in wave 1 (before the
/// partition opens), then measures `engine resume` from spawn to its first acknowledged
/// write. Killing it there matters: killed while pods restart, the resumed run first
/// waits for them, and the figure would measure the pods, not the engine.
async fn run_resume(engine: &Path, case: Case, timeout: Duration) -> Result<ResumeResult> {
    // Slow pods keep the first run inside a wave long enough to kill it there.
    let (sim, served) = start_sim(case, 200).await?;
    let w = workdir(case, &served)?;
    let plan = w.plan.display().to_string();
    let mut child = engine_cmd(engine, &w, &["run", &plan], "run")?.spawn()?;
    let deadline = Instant::now() + timeout;
    let (patches, updates) = loop {
        let report = sim.report();
        let patches = report["requests"]["patch pods"].as_u64().unwrap_or(0);
        if patches > 0 {
            break (patches, report["updates"].as_array().map_or(0, Vec::len));
        }
        if child.try_wait()?.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the run to kill ended or stalled before patching a pod:\n{}",
                tail(&w, "run")
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.kill()?; // SIGKILL
    child.wait()?;

    let spawned_at = Timestamp::now();
    let started = Instant::now();
    let mut child = engine_cmd(engine, &w, &["resume", &w.run], "resume")?.spawn()?;
    let status = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        loop {
            if let Some(s) = child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .await??;
    let resume_wall = started.elapsed().as_secs_f64() * 1000.0;
    served.shutdown();
    let hist = history(engine, &w)?;
    let first = analysis::audit_writes(&hist)
        .into_iter()
        .find(|x| x.at >= spawned_at)
        .map(|x| analysis::ms_between(spawned_at, x.acked));
    if !status.success() {
        eprintln!(
            "bench: engine resume exited with {status}:\n{}",
            tail(&w, "resume")
        );
    }
    Ok(ResumeResult {
        replicas: case.replicas,
        max_per_wave: case.max_per_wave,
        killed_after_pod_patches: patches,
        killed_after_updates: updates,
        spawn_to_first_write_ms: first,
        resume_wall_ms: resume_wall,
        resume_exit: status.code(),
    })
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

fn targets(cases: &[CaseResult], polling: &PollingCheck, resume: &ResumeResult) -> Vec<Target> {
    let mut t = Vec::new();
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let all: Vec<f64> = cases.iter().flat_map(|c| c.reaction_ms.clone()).collect();
    let p50 = analysis::percentile(&all, 50.0);
    t.push(Target {
        name: "reaction p50 (all waves)",
        limit: "<= 5 ms".into(),
        value: fmt_ms(p50),
        met: p50.is_some_and(|v| v <= 5.0),
    });
    for c in cases {
        let limit = match (c.replicas, c.max_per_wave) {
            (100, 10) => 20.0,
            (1000, 100) => 50.0,
            _ => continue,
        };
        t.push(Target {
            name: "reaction p99",
            limit: format!("{}x{}: <= {limit} ms", c.replicas, c.max_per_wave),
            value: fmt_ms(c.reaction_p99_ms),
            met: c.reaction_p99_ms.is_some_and(|v| v <= limit),
        });
    }
    for c in cases {
        t.push(Target {
            name: "writes <= 3/pod + 6/wave",
            limit: format!("{}x{}: <= {}", c.replicas, c.max_per_wave, c.write_budget),
            value: c.writes.to_string(),
            met: c.writes <= c.write_budget,
        });
    }
    for c in cases {
        t.push(Target {
            name: "reads per run (lists + watches + gets, lease included)",
            limit: format!("{}x{}: <= 12", c.replicas, c.max_per_wave),
            value: c.reads.to_string(),
            met: c.reads <= 12,
        });
    }
    t.push(Target {
        name: "polling reads",
        limit: "0".into(),
        value: polling.polling_reads.to_string(),
        met: polling.polling_reads <= 0,
    });
    if let Some(c) = cases
        .iter()
        .find(|c| c.replicas == 1000 && c.max_per_wave == 100)
    {
        t.push(Target {
            name: "1000 replicas, waves of 100",
            limit: "<= 2.5 s".into(),
            value: format!("{:.2} s", c.wall_ms / 1000.0),
            met: c.wall_ms <= 2500.0,
        });
        t.push(Target {
            name: "peak RSS, 1000 x 100",
            limit: "<= 48 MiB".into(),
            value: mib(c.peak_rss_kib),
            met: c.peak_rss_kib <= 48 * 1024,
        });
    }
    if let Some(c) = cases
        .iter()
        .find(|c| c.replicas == 400 && c.max_per_wave == 1)
    {
        t.push(Target {
            name: "peak RSS, 400 x 1",
            limit: "<= 64 MiB".into(),
            value: mib(c.peak_rss_kib),
            met: c.peak_rss_kib <= 64 * 1024,
        });
        t.push(Target {
            name: "state dir, 400 x 1",
            limit: "<= 5 MB".into(),
            value: format!("{:.2} MB", c.state_dir_bytes as f64 / 1e6),
            met: c.state_dir_bytes <= 5_000_000,
        });
    }
    let rss = cases.iter().map(|c| c.peak_rss_kib).max().unwrap_or(0);
    t.push(Target {
        name: "peak RSS (largest of all sizes)",
        limit: "<= 64 MiB".into(),
        value: mib(rss),
        met: rss <= 64 * 1024,
    });
    t.push(Target {
        name: "resume: spawn to first write",
        limit: "<= 200 ms".into(),
        value: fmt_ms(resume.spawn_to_first_write_ms),
        met: resume.spawn_to_first_write_ms.is_some_and(|v| v <= 200.0),
    });
    t
}

fn markdown(
    cases: &[CaseResult],
    polling: &PollingCheck,
    resume: &ResumeResult,
    targets: &[Target],
) -> String {
    let mut s = String::new();
    s.push_str("| replicas | maxPerWave | waves | pods updated | wall | per wave | per pod | reaction p50 | reaction p99 | writes (budget) | writes/pod | reads | requests/pod | peak RSS | state dir | violations |\n");
    s.push_str(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cases {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} ms | {:.1} ms | {:.2} ms | {} | {} | {} ({}) | {:.2} | {} | {:.2} | {:.1} MiB | {:.2} MB | {} |\n",
            c.replicas,
            c.max_per_wave,
            c.waves,
            c.updated_pods,
            c.wall_ms,
            c.wall_ms_per_wave,
            c.wall_ms_per_pod,
            fmt_ms(c.reaction_p50_ms),
            fmt_ms(c.reaction_p99_ms),
            c.writes,
            c.write_budget,
            c.writes_per_pod,
            c.reads,
            c.requests_per_pod,
            c.peak_rss_kib as f64 / 1024.0,
            c.state_dir_bytes as f64 / 1e6,
            c.violations,
        ));
    }
    s.push_str("\nRequests by verb per rollout:\n\n| replicas | maxPerWave | requests |\n|---:|---:|---|\n");
    for c in cases {
        let r: Vec<String> = c.requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            c.replicas,
            c.max_per_wave,
            r.join(", ")
        ));
    }
    s.push_str(&format!(
        "\nPolling check ({}x{}, pods Ready after {} ms vs 0 ms): pod get/list {} vs {} → {} polling reads.\n",
        polling.replicas,
        polling.max_per_wave,
        polling.pod_ready_ms,
        polling.pod_reads_slow,
        polling.pod_reads_fast,
        polling.polling_reads
    ));
    s.push_str(&format!(
        "\nResume ({}x{}, SIGKILL in wave 1 after {} pod label patch(es), {} pod update(s) begun): spawn to first write {}, resume to completion {:.0} ms, exit {}.\n",
        resume.replicas,
        resume.max_per_wave,
        resume.killed_after_pod_patches,
        resume.killed_after_updates,
        fmt_ms(resume.spawn_to_first_write_ms),
        resume.resume_wall_ms,
        resume.resume_exit.map_or("signal".into(), |c| c.to_string()),
    ));
    s.push_str("\n| target | limit | measured | met |\n|---|---|---|---|\n");
    for t in targets {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            t.name,
            t.limit,
            t.value,
            if t.met { "met" } else { "**missed**" }
        ));
    }
    s
}
