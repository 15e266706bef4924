//! Issue 4 acceptance, crash safety with the real steps: the seed rollout (the
//! `engine` binary against a simulator hosted in this process) is made to die
//! and `engine resume` must finish it as if nothing had happened.
//!
//! Two families of crashes:
//! - at every failpoint a clean run reaches (`BATON_FAILPOINTS=<name>`, a real
//!   `abort()`), at its first hit and, for points hit more than once, at its last;
//! - SIGKILL at seeded pseudo-random moments within a clean run's duration.
//!
//! After each crash the run is resumed (or, when it died before it was recorded,
//! started again) and judged against a clean run: exit 0, every pod on the new
//! image, no violation, the working count never below three, every pod updated
//! exactly once while idle and never recreated, the arbiter at the same epoch
//! (no handover applied twice), and every external write of the clean run in
//! the audit log.
//!
//! Cases run [`CASES_AT_ONCE`] at a time, each with its own simulator and state
//! directory. `BATON_CRASH_CASE=<substring>` runs only the matching cases, to
//! reproduce one (`BATON_CRASH_CASE='failpoint after-write:wave-1/handover@5'`,
//! `BATON_CRASH_CASE='kill #17 '`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::process::ExitStatusExt as _;
use std::panic::AssertUnwindSafe;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, describe, path_str, seed_config, text};
use tokio::io::AsyncReadExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The run's name (the plan's `metadata.name`).
const RUN: &str = "seed";
const REPLICAS: u32 = 5;
/// The seed case keeps three pods working at every moment.
const WORKING: u64 = 3;

/// How many crash cases run at once, across both tests of this file: each is an
/// engine process plus a simulator in this process, and CI has two cores.
const CASES_AT_ONCE: usize = 4;
static SLOTS: Semaphore = Semaphore::const_new(CASES_AT_ONCE);

/// SIGKILL runs, each killed at its own seeded moment.
const KILLS: u64 = 50;
/// The seed of the kill moments; case `i` draws from `KILL_SEED + i`.
const KILL_SEED: u64 = 0x0BA7_0C4A_5E5E_ED00;

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// Cases expected to fail because of a known engine bug: `(case, reproduction)`.
/// They still run and are reported, but do not fail the test; one that passes is
/// reported too, so it can be taken off the list.
const KNOWN: &[(&str, &str)] = &[];

/// One external write as the audit log names it: object, action, value after.
type Write = (String, String, String);

/// What a clean seed run did, to judge crashed ones by.
struct Clean {
    /// Every failpoint reached, in first-hit order, with how often it was hit.
    points: Vec<(String, u64)>,
    /// The arbiter's epoch at the end: one step per applied handover.
    epoch: u64,
    writes: BTreeSet<Write>,
    /// From spawning `engine run` to its exit.
    took: Duration,
}

/// How a case makes the run die.
#[derive(Clone, Debug)]
enum Crash {
    /// `BATON_FAILPOINTS=<spec>`: `name` or `name@N`.
    Failpoint(String),
    /// SIGKILL `after` the spawn of `engine run`, a moment drawn from `seed`
    /// (none: chosen to fall after the run's end).
    Kill {
        case: u64,
        seed: Option<u64>,
        after: Duration,
    },
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crash::Failpoint(spec) => write!(f, "failpoint {spec}"),
            Crash::Kill { case, seed, after } => {
                let ms = after.as_millis();
                match seed {
                    Some(seed) => write!(
                        f,
                        "kill #{case} (seed {seed:#018x}, SIGKILL {ms} ms after spawn)"
                    ),
                    None => write!(
                        f,
                        "kill #{case} (SIGKILL {ms} ms after spawn, past the end)"
                    ),
                }
            }
        }
    }
}

/// What one case found. `problems` empty means it passed.
struct Verdict {
    crash: Crash,
    problems: Vec<String>,
    /// The crash came before the run was recorded: `resume` did not know it.
    started_again: bool,
    /// A kill that came after the run had finished on its own.
    finished_first: bool,
    transcript: String,
}

// --- the clean reference run ---------------------------------------------------------

async fn clean_run() -> Clean {
    let env = Env::start(seed_config()).await;
    let plan = env.plan(RUN, |_| {});
    let log = env.dir.path().join("failpoints.log");
    let mut cmd = env.command(&["run", path_str(&plan)]);
    cmd.env("BATON_FAILPOINTS_LOG", &log);
    let started = Instant::now();
    let out = cmd.spawn().unwrap().wait_with_output().await.unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "clean run\n{}", describe(&out));
    env.assert_finished_clean(REPLICAS, WORKING);
    let mut points: Vec<(String, u64)> = Vec::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        if line.is_empty() {
            continue;
        }
        match points.iter_mut().find(|(name, _)| name == line) {
            Some((_, hits)) => *hits += 1,
            None => points.push((line.to_owned(), 1)),
        }
    }
    let writes = history(&env).await.unwrap();
    assert!(!writes.is_empty(), "the clean run recorded no write");
    Clean {
        points,
        epoch: env.sim.arbiter().epoch(),
        writes,
        took,
    }
}

/// The run's audit log as a set of writes, the arbiter named without its port.
async fn history(env: &Env) -> Result<BTreeSet<Write>, String> {
    let out = env.engine(&["history", RUN, "--output", "json"]).await;
    if out.status.code() != Some(0) {
        return Err(format!("engine history failed\n{}", describe(&out)));
    }
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("engine history printed no JSON ({e})\n{}", describe(&out)))?;
    let audit = doc["audit"]
        .as_array()
        .ok_or_else(|| format!("no audit list in {doc}"))?;
    Ok(audit
        .iter()
        .map(|a| {
            (
                a["object"]
                    .as_str()
                    .unwrap_or_default()
                    .replace(&env.served.arbiter, "<arbiter>"),
                a["action"].as_str().unwrap_or_default().to_owned(),
                a["after"].to_string(),
            )
        })
        .collect())
}

// --- one case ------------------------------------------------------------------------

async fn crash_and_resume(crash: Crash, clean: Arc<Clean>) -> Verdict {
    let _slot = SLOTS.acquire().await.unwrap();
    let env = Env::start(seed_config()).await;
    let plan = env.plan(RUN, |_| {});
    let uids = pod_uids(&env);
    let mut v = Verdict {
        crash: crash.clone(),
        problems: Vec::new(),
        started_again: false,
        finished_first: false,
        transcript: String::new(),
    };

    let first = match &crash {
        Crash::Failpoint(spec) => {
            env.engine_env(&["run", path_str(&plan)], &[("BATON_FAILPOINTS", spec)])
                .await
        }
        Crash::Kill { after, .. } => kill_run(&env, path_str(&plan), *after).await,
    };
    v.transcript += &format!("=== engine run\n{}\n", describe(&first));
    let wrote_before_resume = cluster_writes(&env.report()) > 0;
    match (&crash, first.status.code(), first.status.signal()) {
        (Crash::Failpoint(_), _, Some(SIGABRT)) | (Crash::Kill { .. }, _, Some(SIGKILL)) => {}
        (Crash::Kill { .. }, Some(0), _) => v.finished_first = true,
        (Crash::Failpoint(spec), Some(0), _) if hits_vary(spec) => v.finished_first = true,
        _ => v.problems.push(format!(
            "the run did not die as planned: {:?}",
            first.status
        )),
    }

    let resumed = env.engine(&["resume", RUN]).await;
    v.transcript += &format!("=== engine resume {RUN}\n{}\n", describe(&resumed));
    let stderr = text(&resumed.stderr);
    if v.finished_first {
        if resumed.status.code() != Some(0) || !stderr.contains("already finished") {
            v.problems
                .push("resuming a finished run must say it already finished and exit 0".into());
        }
    } else if resumed.status.code() == Some(2)
        && (stderr.contains("unknown run") || stderr.contains("has no record"))
    {
        // Died before the run was recorded: nothing to resume, start it again.
        v.started_again = true;
        if wrote_before_resume || !died_before_the_record(&crash, &clean) {
            v.problems
                .push("resume does not know a run that was recorded before the crash".into());
        }
        let again = env.engine(&["run", path_str(&plan)]).await;
        v.transcript += &format!("=== engine run (again)\n{}\n", describe(&again));
        if again.status.code() != Some(0) {
            v.problems
                .push("the run started again after the crash did not finish".into());
        }
    } else if resumed.status.code() != Some(0) {
        v.problems.push("resume did not finish the run".into());
    }

    judge_the_finish(&env, &clean, &uids, &mut v).await;
    v
}

/// Runs `engine run PLAN` and sends it SIGKILL `after` its spawn, unless it has
/// exited by then.
async fn kill_run(env: &Env, plan: &str, after: Duration) -> Output {
    let mut child = env.command(&["run", plan]).spawn().unwrap();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match tokio::time::timeout(after, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            // Fails only if the child is already reaped, which `wait` above did not do.
            child.start_kill().unwrap();
            tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("a killed engine is reaped within 30 s")
                .unwrap()
        }
    };
    Output {
        status,
        stdout: stdout.await.unwrap(),
        stderr: stderr.await.unwrap(),
    }
}

fn drain(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A pipe cut by the kill ends the read; what came before is kept.
            let _ = pipe.read_to_end(&mut buf).await;
        }
        buf
    })
}

/// Patch requests the simulator served: the run writes to the cluster only after
/// its first checkpoint, so a run that did is recorded.
fn cluster_writes(report: &Value) -> u64 {
    report["requests"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(request, _)| request.starts_with("patch "))
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

/// Whether `resume` may rightly not know the run: a failpoint reached before the
/// run's first checkpoint committed, or a kill (its moment is unknown).
fn died_before_the_record(crash: &Crash, clean: &Clean) -> bool {
    match crash {
        Crash::Kill { .. } => true,
        Crash::Failpoint(spec) => {
            clean.points.first().map(|(name, _)| name.as_str()) == Some(spec.as_str())
        }
    }
}

fn pod_uids(env: &Env) -> BTreeMap<String, String> {
    (0..REPLICAS)
        .map(|i| {
            let pod = format!("sample-{i}");
            let uid = env.pod(&pod)["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (pod, uid)
        })
        .collect()
}

/// Compares the finished rollout with the clean run; adds what differs to `v`.
async fn judge_the_finish(
    env: &Env,
    clean: &Clean,
    uids_before: &BTreeMap<String, String>,
    v: &mut Verdict,
) {
    // Images, violations, workingMin, partition 0: the harness' own judgement.
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| {
        env.assert_finished_clean(REPLICAS, WORKING)
    })) {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        v.problems.push(format!("not finished clean: {msg}"));
    }

    // Exactly one update per pod, begun while the arbiter had it idle and its
    // role label said so. The simulator records a violation for a working pod
    // too; this also catches a pod the arbiter did not know, and a second update.
    let report = env.report();
    let mut updates: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for u in report["updates"].as_array().into_iter().flatten() {
        let pod = u["pod"].as_str().unwrap_or_default().to_owned();
        updates.entry(pod).or_default().push(u);
    }
    for pod in uids_before.keys() {
        match updates.get(pod).map(Vec::as_slice) {
            Some([u]) => {
                if u["role"] != "idle" || u["label"] != "false" {
                    v.problems
                        .push(format!("{pod} was updated while not idle: {u}"));
                }
            }
            Some(many) => v
                .problems
                .push(format!("{pod} was updated {} times: {many:?}", many.len())),
            None => v.problems.push(format!("{pod} was never updated")),
        }
    }
    if let Some(stray) = updates.keys().find(|p| !uids_before.contains_key(*p)) {
        v.problems
            .push(format!("an unknown pod {stray} was updated"));
    }
    // In-place updates keep the pod; a recreated one has a new uid.
    let uids_after = pod_uids(env);
    if &uids_after != uids_before {
        v.problems.push(format!(
            "pods were recreated: uids {uids_before:?} became {uids_after:?}"
        ));
    }

    let epoch = env.sim.arbiter().epoch();
    if epoch != clean.epoch {
        v.problems.push(format!(
            "the arbiter ends at epoch {epoch}, a clean run at {}: a handover was applied twice or never",
            clean.epoch
        ));
    }

    match history(env).await {
        Err(e) => v.problems.push(e),
        Ok(writes) => {
            // The audit log records an intent ahead of every write: a crash between
            // the write and its outcome must still leave the write in the history.
            let lost: Vec<&Write> = clean.writes.difference(&writes).collect();
            if !lost.is_empty() {
                v.problems.push(format!(
                    "engine history lacks writes of the clean run: {lost:?}"
                ));
            }
        }
    }
    v.transcript += &format!("=== sim report\n{report:#}\n");
}

/// Whether the `@N` hit of a failpoint may not come in another run: write answers that
/// arrive together are settled in one commit, so how many `settled` commits a run makes
/// depends on timing. Such a case that finishes instead is judged as a finished run.
fn hits_vary(spec: &str) -> bool {
    spec.starts_with("in-checkpoint:settled@")
}

// --- running many cases --------------------------------------------------------------

/// Runs every case, prints a summary, and fails with every unexpected problem.
async fn run_all(title: &str, crashes: Vec<Crash>, clean: Arc<Clean>) -> Vec<Verdict> {
    let only = std::env::var("BATON_CRASH_CASE").ok();
    let crashes: Vec<Crash> = crashes
        .into_iter()
        .filter(|c| {
            only.as_ref()
                .is_none_or(|o| c.to_string().contains(o.as_str()))
        })
        .collect();
    let started = Instant::now();
    let mut set = JoinSet::new();
    let mut names = BTreeMap::new();
    for crash in crashes {
        let name = crash.to_string();
        let id = set.spawn(crash_and_resume(crash, clean.clone())).id();
        names.insert(id, name);
    }
    let mut verdicts = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((_, v)) => verdicts.push(v),
            Err(e) => failures.push(format!("{}: the case panicked: {e}", names[&e.id()])),
        }
    }
    verdicts.sort_by_key(|v| v.crash.to_string());

    let known = |v: &Verdict| KNOWN.iter().find(|(case, _)| *case == v.crash.to_string());
    let mut lines = vec![format!(
        "{title}: {} cases in {:.1} s ({} at once)",
        verdicts.len() + failures.len(),
        started.elapsed().as_secs_f64(),
        CASES_AT_ONCE
    )];
    let again = verdicts.iter().filter(|v| v.started_again).count();
    let finished = verdicts.iter().filter(|v| v.finished_first).count();
    lines.push(format!(
        "  {again} died before the run was recorded (started again), {finished} finished before the kill"
    ));
    for v in &verdicts {
        match (known(v), v.problems.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "{}: {}\n{}",
                v.crash,
                v.problems.join("\n"),
                v.transcript
            )),
            (Some((_, repro)), false) => lines.push(format!(
                "  KNOWN {} ({repro}): {}",
                v.crash,
                v.problems.join("; ")
            )),
            (Some(_), true) => lines.push(format!(
                "  KNOWN {} now passes: take it off the list",
                v.crash
            )),
        }
    }
    eprintln!("{}", lines.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        verdicts.len(),
        failures.join("\n\n")
    );
    verdicts
}

/// A fixed-seed generator (splitmix64): the same kill moments on every machine.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// --- the tests -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_rollout_aborted_at_any_failpoint_resumes_to_the_clean_finish() {
    let clean = Arc::new(clean_run().await);
    let mut crashes: Vec<Crash> = Vec::new();
    for (name, hits) in &clean.points {
        crashes.push(Crash::Failpoint(name.clone()));
        if *hits > 1 {
            crashes.push(Crash::Failpoint(format!("{name}@{hits}")));
        }
    }
    assert!(
        clean.points.len() >= 100,
        "a clean seed run reaches only {} failpoints: {:?}",
        clean.points.len(),
        clean.points
    );
    run_all("failpoints", crashes, clean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_rollout_killed_at_fifty_seeded_moments_resumes_to_the_clean_finish() {
    let clean = Arc::new(clean_run().await);
    let window = u64::try_from(clean.took.as_micros()).unwrap().max(1);
    eprintln!("kills: moments drawn uniformly from [0, {window} µs), a clean run's duration");
    let mut crashes: Vec<Crash> = (0..KILLS)
        .map(|case| {
            let seed = KILL_SEED.wrapping_add(case);
            let mut state = seed;
            let after = Duration::from_micros(splitmix64(&mut state) % window);
            Crash::Kill {
                case,
                seed: Some(seed),
                after,
            }
        })
        .collect();
    // And once long after the end, so that resuming a finished run is judged too.
    crashes.push(Crash::Kill {
        case: KILLS,
        seed: None,
        after: (clean.took * 20).max(Duration::from_secs(10)),
    });
    let filtered = std::env::var_os("BATON_CRASH_CASE").is_some();
    let verdicts = run_all("kills", crashes, clean).await;
    assert!(
        filtered || verdicts.iter().any(|v| v.finished_first),
        "no run finished before its kill: the case past the end did not happen"
    );
}
