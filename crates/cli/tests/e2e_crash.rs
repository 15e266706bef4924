//! Issue 5 acceptance, crash safety with the real steps: the seed rollout is
//! aborted for real (`BATON_FAILPOINTS`) at representative points, then
//! `engine resume` must finish it with every pod updated, no violation and no
//! arbiter handover applied twice.

mod support;

use support::{Env, assert_exit, describe, path_str, seed_config};

/// Every failpoint a clean seed run reaches, in first-hit order, and the
/// arbiter epoch it ends at.
async fn clean_run_points() -> (Vec<String>, u64) {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("seed", |_| {});
    let log = env.dir.path().join("failpoints.log");
    let out = env
        .engine_env(
            &["run", path_str(&plan)],
            &[("BATON_FAILPOINTS_LOG", path_str(&log))],
        )
        .await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
    let mut points: Vec<String> = Vec::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        if !line.is_empty() && !points.iter().any(|p| p == line) {
            points.push(line.to_owned());
        }
    }
    (points, env.sim.arbiter().epoch())
}

/// Representative points: around every external write of the first wave, the
/// handovers and finalize, plus each executor point kind on a few steps.
fn representative(points: &[String]) -> Vec<String> {
    let wanted = |p: &str| {
        let write = p.starts_with("before-write:") || p.starts_with("after-write:");
        (write
            && ["handover", "wave-1/", "protect", "finalize"]
                .iter()
                .any(|s| p.contains(s)))
            || p == "before-step:protect"
            || p == "after-step:wave-1/wait-updated"
            || p == "in-checkpoint:wave-1/handover=succeeded"
            || p == "in-checkpoint:audit:wave-2/set-partition"
            || p == "after-step:wave-3/verify"
    };
    points.iter().filter(|p| wanted(p)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_rollout_aborted_at_any_representative_point_resumes_to_a_clean_finish() {
    let (points, clean_epoch) = clean_run_points().await;
    let chosen = representative(&points);
    assert!(
        chosen.len() >= 10,
        "too few representative points {chosen:?} among {points:?}"
    );
    for point in &chosen {
        let env = Env::start(seed_config()).await;
        let plan = env.plan("seed", |_| {});
        let out = env
            .engine_env(&["run", path_str(&plan)], &[("BATON_FAILPOINTS", point)])
            .await;
        assert_eq!(
            out.status.code(),
            None,
            "{point}: the run did not abort\n{}",
            describe(&out)
        );
        let out = env.engine(&["resume", "seed"]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{point}: resume failed\n{}",
            describe(&out)
        );
        env.assert_finished_clean(5, 3);
        assert_eq!(
            env.sim.arbiter().epoch(),
            clean_epoch,
            "{point}: the arbiter's roles changed a different number of times than in a clean run"
        );
    }
}
