//! Benchmark of the executor's durability costs; prints one JSON object.
//!
//! ```text
//! cargo run --release -p baton-engine --example exec_bench
//! strace -f -c -e trace=fsync,fdatasync,sync_file_range,pwrite64,write \
//!     target/release/examples/exec_bench -- commits   # syscalls per commit
//! ```
//!
//! - `commit`: one node transition (node record + log entry + run meta, one sled
//!   transaction, one flush) on a run of realistic size: time, bytes written to disk.
//! - `run`: a whole run through the executor with no-op steps: time per node (two
//!   transitions each, plus the status file).
//! - `resume`: from spawning a process to its first step running, on a run with
//!   hundreds of finished nodes (process start, lock, load, recovery commit).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton_engine::dag::{NodeSpec, StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::executor::{self, Outcome, RunOptions};
use baton_engine::plan::ValidPlan;
use baton_engine::step::{Control, StepContext, StepError, StepOutput, StepRunner};
use baton_engine::store::records::{LogEntry, LogKind, NodeRecord, NodeState};
use baton_engine::store::{Commit, Durability, RunStore, SledStore};
use tokio_util::sync::CancellationToken;

const PLAN: &str = r#"apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: bench
spec:
  target: {namespace: default, name: sample}
  update: {images: {main: alpine:3.18.0}}
  arbiter: {url: "http://127.0.0.1:9/"}
  waves: {approval: firstWave}
"#;

/// No-op steps: `waves` waves, then `Finish`. The approval gate interrupts the process
/// in `prepare` mode; in `resume` mode the first step prints a line and exits.
struct Noop {
    waves: u32,
    announce_first: bool,
    first: AtomicBool,
}

impl StepRunner for Noop {
    async fn run(&self, ctx: StepContext) -> Result<StepOutput, StepError> {
        if self.announce_first && !self.first.swap(true, Ordering::SeqCst) {
            println!("FIRST-STEP {}", ctx.step);
            std::process::exit(0);
        }
        match ctx.step.kind {
            StepKind::Select if ctx.step.wave.unwrap_or(0) > self.waves => Ok(StepOutput {
                value: serde_json::Value::Null,
                control: Control::Finish,
            }),
            StepKind::Approval => {
                tokio::select! {
                    approval = ctx.journal.wait_approval(ctx.step.clone()) => {
                        approval.map_err(|e| StepError::failed(e.to_string()))?;
                        Ok(StepOutput::empty())
                    }
                    () = ctx.cancel.cancelled() => Err(StepError::interrupted()),
                }
            }
            _ => Ok(StepOutput::new(
                serde_json::json!({"step": ctx.step.to_string()}),
            )),
        }
    }
}

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("write_bytes: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn opts(dir: &Path) -> RunOptions {
    RunOptions {
        state_dir: dir.to_owned(),
        accept_risk: false,
        replan: false,
        operator: None,
    }
}

async fn run_plan(dir: &Path, waves: u32, shutdown: CancellationToken, announce: bool) -> Outcome {
    let plan = ValidPlan::parse("bench.yaml", PLAN).expect("bench plan is valid");
    let runner = Arc::new(Noop {
        waves,
        announce_first: announce,
        first: AtomicBool::new(false),
    });
    let (events, _) = tokio::sync::broadcast::channel::<RunEvent>(64);
    let result = if announce {
        executor::resume(Some("bench"), None, runner, &opts(dir), events, shutdown).await
    } else {
        executor::start(&plan, runner, &opts(dir), events, shutdown).await
    };
    result.expect("bench run works")
}

fn bench_commits(dir: &Path, count: u32) -> serde_json::Value {
    // A run of 300 nodes and 1000 log entries, then `count` transitions of one node.
    let store = SledStore::open(&dir.join("commits")).expect("open");
    let plan = ValidPlan::parse("bench.yaml", PLAN).expect("bench plan is valid");
    let now = jiff::Timestamp::now();
    let mut meta = baton_engine::store::RunMeta {
        run_id: "bench".into(),
        plan: plan.source().clone(),
        target: "default/sample".into(),
        created_at: now,
        updated_at: now,
        state: baton_engine::store::RunState::Running,
        reason: None,
        phase: baton_engine::store::Phase::Wave { wave: 30 },
        phase_start: 0,
        finishing: false,
        vars: Default::default(),
        rollback: None,
        log_len: 0,
        node_count: 0,
    };
    let node = |i: u32| {
        NodeRecord::pending(NodeSpec {
            id: StepId::in_wave(i / 10 + 1, StepKind::Verify),
            deps: vec![],
        })
    };
    let nodes: Vec<NodeRecord> = (0..300).map(node).collect();
    let entry = |seq: u64| LogEntry {
        seq,
        at: now,
        entry: LogKind::Event {
            event: RunEvent::StepStarted {
                step: "wave-30/verify".into(),
                attempt: 1,
            },
        },
    };
    let log: Vec<LogEntry> = (0..1000).map(entry).collect();
    meta.node_count = 300;
    meta.log_len = 1000;
    store
        .commit(&Commit {
            label: "bench-setup",
            durability: Durability::Flush,
            meta: &meta,
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u32, n))
                .collect(),
            log: &log,
        })
        .expect("setup commit");
    let mut node = nodes[299].clone();
    let bytes_before = written_bytes();
    let began = Instant::now();
    for k in 0..count {
        node.state = if k % 2 == 0 {
            NodeState::Running
        } else {
            NodeState::Succeeded
        };
        node.attempts = k + 1;
        let e = [entry(meta.log_len)];
        meta.log_len += 1;
        store
            .commit(&Commit {
                label: "bench",
                durability: Durability::Flush,
                meta: &meta,
                nodes: vec![(299, &node)],
                log: &e,
            })
            .expect("commit");
    }
    let elapsed = began.elapsed();
    let bytes = written_bytes().saturating_sub(bytes_before);
    let record_bytes = baton_engine::store::records::encode(&node, "node").map_or(0, |b| b.len())
        + baton_engine::store::records::encode(&entry(0), "log").map_or(0, |b| b.len())
        + baton_engine::store::records::encode(&meta, "meta").map_or(0, |b| b.len());
    serde_json::json!({
        "commits": count,
        "us_per_commit": elapsed.as_micros() as f64 / f64::from(count),
        "disk_bytes_per_commit": bytes as f64 / f64::from(count),
        "record_bytes_per_commit": record_bytes,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        // Child modes.
        Some("resume-child") => {
            let dir = Path::new(&args[2]);
            runtime.block_on(run_plan(dir, 0, CancellationToken::new(), true));
            return;
        }
        Some("commits") => {
            let tmp = tempfile::tempdir().expect("tempdir");
            println!("{}", bench_commits(tmp.path(), 200));
            return;
        }
        _ => {}
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let commit = bench_commits(tmp.path(), 500);

    // A whole run: 30 waves of no-op steps.
    let run_dir = tmp.path().join("run");
    let bytes_before = written_bytes();
    let began = Instant::now();
    let outcome = runtime.block_on(async {
        let dir = run_dir.clone();
        let shutdown = CancellationToken::new();
        // The gate of wave 1 waits until the shutdown below: the run is then resumed
        // and finishes, so both paths are timed together.
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.cancel();
        });
        run_plan(&dir, 30, shutdown, false).await
    });
    assert_eq!(outcome, Outcome::Interrupted);
    let gate_wait = Duration::from_millis(200);
    let approve = executor::approve(&run_dir, "bench", None, "bench@host", None).expect("approve");
    assert!(!approve.live);
    let outcome = runtime.block_on(async {
        let plan = ValidPlan::parse("bench.yaml", PLAN).expect("valid");
        let runner = Arc::new(Noop {
            waves: 30,
            announce_first: false,
            first: AtomicBool::new(false),
        });
        let (events, _) = tokio::sync::broadcast::channel::<RunEvent>(64);
        executor::resume(
            Some("bench"),
            Some(&plan),
            runner,
            &opts(&run_dir),
            events,
            CancellationToken::new(),
        )
        .await
    });
    assert_eq!(outcome.expect("resume"), Outcome::Succeeded);
    let run_elapsed = began.elapsed().saturating_sub(gate_wait);
    let view = executor::load_run(&run_dir, "bench").expect("load");
    let nodes_run = view
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Succeeded)
        .count();
    let run_bytes = written_bytes().saturating_sub(bytes_before);

    // Resume: interrupt a run with ~300 finished nodes at a gate, then time a fresh
    // process from spawn to its first step.
    let mut samples = Vec::new();
    for _ in 0..5 {
        let dir = tmp.path().join(format!("resume-{}", samples.len()));
        runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let s = shutdown.clone();
            let d = dir.clone();
            let run = tokio::spawn(async move {
                let plan = ValidPlan::parse(
                    "bench.yaml",
                    PLAN.replace("firstWave", "everyWave").as_str(),
                )
                .expect("valid");
                // 31 waves: after 30 approvals the run waits at the 31st gate.
                let runner = Arc::new(Noop {
                    waves: 31,
                    announce_first: false,
                    first: AtomicBool::new(false),
                });
                let (events, _) = tokio::sync::broadcast::channel::<RunEvent>(64);
                executor::start(&plan, runner, &opts(&d), events, s).await
            });
            // Approve 30 gates as they come, then interrupt at the 31st wave's gate.
            for _ in 0..30 {
                loop {
                    let d = dir.clone();
                    let ok = tokio::task::spawn_blocking(move || {
                        executor::approve(&d, "bench", None, "bench@host", None)
                    })
                    .await
                    .expect("join");
                    if ok.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            shutdown.cancel();
            let _ = run.await;
        });
        let nodes = executor::load_run(&dir, "bench").expect("load").nodes.len();
        let began = Instant::now();
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["resume-child", dir.to_str().expect("utf-8 path")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let elapsed = began.elapsed();
        let _ = child.wait();
        assert!(line.starts_with("FIRST-STEP"), "child said {line:?}");
        samples.push((elapsed.as_secs_f64() * 1000.0, nodes));
    }
    let mut ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "commit": commit,
            "run": {
                "nodes_succeeded": nodes_run,
                "ms_total": run_elapsed.as_secs_f64() * 1000.0,
                "us_per_node": run_elapsed.as_micros() as f64 / nodes_run as f64,
                "disk_bytes_per_node": run_bytes as f64 / nodes_run as f64,
            },
            "resume": {
                "nodes_in_record": samples[0].1,
                "spawn_to_first_step_ms_median": ms[ms.len() / 2],
                "spawn_to_first_step_ms_min": ms[0],
                "spawn_to_first_step_ms_max": ms[ms.len() - 1],
            },
        })
    );
}
