//! Crash-resume: real child processes die at every failpoint of a run, and at random
//! moments under SIGKILL; each run is resumed to the end and its effects checked.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use baton_engine::executor::{self, ExecError, Outcome};
use baton_engine::failpoint;
use baton_engine::test_util as support;
use rand::{Rng as _, SeedableRng as _};
use support::{Job, World};
use tokio_util::sync::CancellationToken;

/// The entry test's path in this binary (the child is started with `--exact`).
const ENTRY: &str = "exec_crash::child_process_entry";
const RUN: &str = "crash-test";
const WAVES: u32 = 2;

#[test]
#[ignore = "entry point of the child processes the crash tests start, not a test"]
fn child_process_entry() {
    support::child_main();
}

fn job(dir: &Path) -> Job {
    Job {
        state_dir: dir.join("state"),
        world: dir.join("world.json"),
        plan_text: support::plan_text(RUN, "none"),
        waves: WAVES,
        resume: false,
    }
}

/// Resume in this process (or start, when the child died before creating the run) and
/// check the run against its world.
fn recover_and_check(job: &Job, context: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resumed = Job {
        resume: true,
        ..job.clone()
    };
    let outcome = runtime.block_on(async {
        match support::run_job(&resumed, CancellationToken::new()).await {
            Err(ExecError::UnknownRun { .. }) => {
                support::run_job(job, CancellationToken::new()).await
            }
            other => other,
        }
    });
    assert!(
        matches!(
            outcome,
            Ok(Outcome::Succeeded | Outcome::AlreadyFinished { .. })
        ),
        "{context}: resume ended with {outcome:?}"
    );
    let view = executor::load_run(&job.state_dir, RUN).unwrap();
    assert_eq!(
        view.state,
        baton_engine::store::RunState::Succeeded,
        "{context}"
    );
    support::assert_applied_exactly_once(&view, &World::load(&job.world), WAVES, context);
}

/// Run `work(i)` for `i in 0..n` on two threads (the machine has two cores).
fn in_parallel(n: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
}

#[test]
fn a_crash_at_every_failpoint_resumes_to_the_end_with_every_effect_applied_once() {
    let tmp = tempfile::tempdir().unwrap();
    let full = job(tmp.path());
    let log = tmp.path().join("failpoints.log");
    let out = support::spawn_child(ENTRY, &full, &[(failpoint::LOG_ENV, log.to_str().unwrap())])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "full run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD-OUTCOME Ok(Succeeded)"));
    recover_and_check(&full, "uninterrupted run");

    let points = failpoint::enumerate(&std::fs::read_to_string(&log).unwrap());
    for expected in [
        "in-checkpoint:create@1",
        "before-step:protect@1",
        "in-checkpoint:protect=running@1",
        "before-write:wave-1/set-partition:partition@1",
        "after-write:wave-1/set-partition:partition@1",
        "in-checkpoint:intent:wave-2/hook/afterWaveReady/lag@1",
        "before-write:wave-2/hook/afterWaveReady/lag:hook/lag@1",
        "after-step:wave-3/select@1",
        "in-checkpoint:wave-3/select=succeeded@1",
        "in-checkpoint:grow@4",
        "after-step:finalize@1",
        "in-checkpoint:grow@5",
    ] {
        assert!(
            points.iter().any(|p| p == expected),
            "failpoint {expected} not reached; got {points:#?}"
        );
    }

    let failures = Mutex::new(Vec::new());
    in_parallel(points.len(), |i| {
        let point = &points[i];
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path());
        let out = support::spawn_child(ENTRY, &job, &[(failpoint::ENV, point)])
            .wait_with_output()
            .unwrap();
        if out.status.signal() != Some(6) {
            failures
                .lock()
                .unwrap()
                .push(format!("{point}: child did not abort: {:?}", out.status));
            return;
        }
        let checked =
            std::panic::catch_unwind(|| recover_and_check(&job, &format!("crash at {point}")));
        if let Err(panic) = checked {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.lock().unwrap().push(message);
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} crash points failed:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
}

#[test]
fn fifty_runs_killed_at_random_moments_resume_to_the_end_with_every_effect_applied_once() {
    // Calibrate: how long a whole child run takes here, process start included.
    let tmp = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let out = support::spawn_child(ENTRY, &job(tmp.path()), &[])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "full run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = began.elapsed();

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0BA7_0404);
    let delays: Vec<Duration> = (0..50)
        .map(|_| whole.mul_f64(rng.random_range(0.0..1.0)))
        .collect();
    let killed_mid_run = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    in_parallel(delays.len(), |i| {
        let dir = tempfile::tempdir().unwrap();
        let job = job(dir.path());
        let mut child = support::spawn_child(ENTRY, &job, &[]);
        std::thread::sleep(delays[i]);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed_mid_run.fetch_add(1, Ordering::Relaxed);
        }
        let context = format!("run {i} killed after {:?}", delays[i]);
        if let Err(panic) = std::panic::catch_unwind(|| recover_and_check(&job, &context)) {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.lock().unwrap().push(message);
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of 50 runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let killed = killed_mid_run.load(Ordering::Relaxed);
    assert!(
        killed >= 25,
        "only {killed} of 50 children were still running when killed: the test proves little"
    );
}
