//! Issue 5 acceptance: the seed rollout and its variations, as the real
//! `engine` binary against a simulator hosted in the test process.

mod support;

use std::time::Duration;

use baton_sim::SimConfig;
use baton_sim::arbiter::{ArbiterConfig, Mode};
use baton_sim::faults::{ErrorFault, FaultConfig, Target};
use serde_json::Value;
use support::{Env, assert_exit, describe, path_str, seed_config};

/// The partitions the run's `wave-N/set-partition` steps wrote, in order.
async fn wave_partitions(env: &Env, run: &str) -> Vec<i64> {
    let out = env.engine(&["history", run, "--output", "json"]).await;
    assert_exit(&out, 0);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    history["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            let step = a["step"].as_str().unwrap_or_default();
            step.starts_with("wave-") && step.ends_with("/set-partition")
        })
        .filter(|a| {
            a["action"]
                .as_str()
                .unwrap_or_default()
                .contains("partition")
        })
        .map(|a| {
            a["after"]
                .as_i64()
                .or_else(|| a["after"]["partition"].as_i64())
                .unwrap_or_else(|| panic!("no partition in {a}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_rollout_updates_every_pod_in_three_waves_without_a_violation() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("seed", |_| {});
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
    assert_eq!(
        wave_partitions(&env, "seed").await,
        [3, 1, 0],
        "{}",
        describe(&out)
    );
    let report = env.report();
    let updated: Vec<&str> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["role"], "idle", "{u}");
            u["pod"].as_str().unwrap()
        })
        .collect();
    assert_eq!(updated.len(), 5, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_runs_print_no_progress_lines() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("seed", |_| {});
    let out = env.engine(&["run", path_str(&plan), "-q"]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
    let stderr = support::text(&out.stderr);
    assert!(!stderr.contains("wave 1"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_wave_over_seven_replicas_keeps_three_working() {
    let env = Env::start(SimConfig {
        replicas: 7,
        working: vec![0, 1, 2],
        ..seed_config()
    })
    .await;
    let plan = env.plan("narrow", |doc| {
        doc["spec"]["waves"]["maxPerWave"] = 1.into()
    });
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(7, 3);
    let partitions = wave_partitions(&env, "narrow").await;
    assert_eq!(partitions, [6, 5, 4, 3, 2, 1, 0], "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_arbiter_is_polled_until_the_handover_shows() {
    let env = Env::start(SimConfig {
        arbiter: ArbiterConfig {
            mode: Mode::Async,
            async_delay_ms: 300,
            ..ArbiterConfig::default()
        },
        ..seed_config()
    })
    .await;
    let plan = env.plan("async", |_| {});
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_epoch_on_the_first_handover_is_re_planned() {
    let env = Env::start(SimConfig {
        arbiter: ArbiterConfig {
            conflict_on_nth_handover: Some(1),
            ..ArbiterConfig::default()
        },
        ..seed_config()
    })
    .await;
    let plan = env.plan("stale", |_| {});
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arbiter_down_for_three_seconds_mid_run_is_waited_out() {
    let env = Env::start(SimConfig {
        pod_ready_ms: 50,
        ..seed_config()
    })
    .await;
    let plan = env.plan("outage", |doc| {
        doc["spec"]["arbiter"]["timeout"] = "1s".into();
        doc["spec"]["arbiter"]["retries"] = 8.into();
    });
    let child = env.command(&["run", path_str(&plan)]).spawn().unwrap();
    let run = tokio::spawn(child.wait_with_output());
    // Mid-run: once the first wave's pods are updating.
    env.until(Duration::from_secs(30), "the first wave to start", |e| {
        e.report()["updates"]
            .as_array()
            .is_some_and(|u| !u.is_empty())
    })
    .await;
    env.sim.arbiter().outage(Duration::from_secs(3));
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_cut_watches_do_not_stop_the_rollout() {
    let env = Env::start(SimConfig {
        faults: FaultConfig {
            errors: vec![ErrorFault {
                target: Target::default(),
                code: 500,
                rate: 0.1,
                count: None,
                retry_after_seconds: None,
            }],
            watch_cut_after: Some(20),
            ..FaultConfig::default()
        },
        ..seed_config()
    })
    .await;
    let plan = env.plan("faulty", |_| {});
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);
}

/// Issue #12: a beforeHandover hook runs only in waves that hand over (waves 1 and 2 of the
/// seed case), never in the last wave, which has nothing to hand over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_hooks_run_only_in_waves_with_a_handover() {
    let env = Env::start(seed_config()).await;
    let log = env.dir.path().join("handovers.log");
    let script = format!(
        "echo \"$BATON_WAVE $BATON_PROMOTE\" >> {}; echo noted",
        log.display()
    );
    let plan = env.plan("hooked", |doc| {
        doc["spec"]["hooks"] = serde_yaml::from_str(&format!(
            "beforeHandover:\n  - name: note\n    exec: {{command: [\"sh\", \"-c\", {script:?}], timeout: 5s}}\n"
        ))
        .unwrap();
    });
    let out = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        ["1 sample-1,sample-3", "2 sample-0"],
        "{}",
        describe(&out)
    );
    env.assert_finished_clean(5, 3);
    // The history records what each hook call answered, not `null → null`.
    let history = env.engine(&["history", "hooked", "--output", "json"]).await;
    let doc: Value = serde_json::from_slice(&history.stdout).expect("history JSON");
    let calls: Vec<&Value> = doc["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| a["object"] == "hook note")
        .collect();
    assert_eq!(calls.len(), 2, "{doc:#}");
    for call in calls {
        assert_eq!(call["outcome"], "applied", "{call:#}");
        assert_eq!(call["after"]["exit"], 0, "{call:#}");
        assert_eq!(call["after"]["stdout"], "noted", "{call:#}");
    }
}
