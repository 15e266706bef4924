//! Operator experience through the real binary: the dry run writes nothing, a gated run
//! is visible from a second process and released by `engine approve`, the approval shows
//! in the history, metrics can be scraped mid-run, and `--output json` is one event per line.

mod support;

use std::time::Duration;

use baton_sim::store::Kind;
use serde_json::Value;
use support::{Env, NS, assert_exit, describe, path_str, seed_config, text};

const WRITE_VERBS: [&str; 4] = ["create", "update", "patch", "delete"];

fn writes(report: &Value) -> u64 {
    report["requests"]
        .as_object()
        .map(|requests| {
            requests
                .iter()
                .filter(|(key, _)| {
                    WRITE_VERBS
                        .iter()
                        .any(|verb| key.starts_with(&format!("{verb} ")))
                })
                .map(|(_, n)| n.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_plan_prints_the_seed_waves_and_makes_zero_writes() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("dry-run", |_| {});
    let before = writes(&env.report());

    let out = env.engine(&["plan", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("wave 1: update sample-1, sample-3 (partition 3)"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout.contains("wave 2: update sample-0, sample-2 (partition 1)"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout.contains("wave 3: update sample-4 (partition 0)"),
        "{}",
        describe(&out)
    );
    assert!(
        stdout.contains("promote sample-1, sample-3, demote sample-0, sample-2"),
        "{}",
        describe(&out)
    );

    let json = env
        .engine(&["plan", path_str(&plan), "--output", "json"])
        .await;
    assert_exit(&json, 0);
    let doc: Value = serde_json::from_slice(&json.stdout).expect("plan --output json is JSON");
    let partitions: Vec<u64> = doc["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| w["partition"].as_u64().expect("partition"))
        .collect();
    assert_eq!(partitions, [3, 1, 0]);

    assert_eq!(
        writes(&env.report()),
        before,
        "engine plan wrote to the cluster: {:#}",
        env.report()
    );
    assert_eq!(
        env.partition(),
        Some(5),
        "the seed's protect-all partition is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wave_waits_for_approval_visible_from_a_second_process() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("gated", |doc| {
        doc["spec"]["waves"]["approval"] = "everyWave".into();
    });
    let mut run = env
        .command(&["run", path_str(&plan)])
        .spawn()
        .expect("engine run starts");

    for wave in 1..=3u64 {
        // A second process sees the run waiting at this wave's gate.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = env.engine(&["status", "gated", "--output", "json"]).await;
            if status.status.code() == Some(0) {
                let view: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
                let waiting = view["waitingApproval"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if view["currentWave"] == wave && !waiting.is_empty() {
                    assert_eq!(view["state"], "running", "{view:#}");
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wave {wave} never reached its gate"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reason = format!("wave {wave} looks good");
        let approve = env.engine(&["approve", "gated", "--reason", &reason]).await;
        assert_exit(&approve, 0);
    }

    let finished = tokio::time::timeout(Duration::from_secs(120), run.wait())
        .await
        .expect("run ends after the last approval")
        .expect("wait for engine run");
    assert_eq!(finished.code(), Some(0));
    env.assert_finished_clean(5, 3);

    let history = env.engine(&["history", "gated", "--output", "json"]).await;
    assert_exit(&history, 0);
    let doc: Value = serde_json::from_slice(&history.stdout).expect("history JSON");
    let reasons: Vec<&str> = doc["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "wave 1 looks good",
            "wave 2 looks good",
            "wave 3 looks good"
        ]
    );
    let text_history = env.engine(&["history", "gated"]).await;
    assert!(
        text(&text_history.stdout).contains("wave 2 looks good"),
        "{}",
        describe(&text_history)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_scraped_while_a_run_waits() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("metered", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut run = env
        .command(&["run", path_str(&plan), "--metrics-addr", &addr])
        .spawn()
        .expect("engine run starts");

    let url = format!("http://{addr}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        if let Ok(response) = reqwest::get(&url).await {
            let body = response.text().await.unwrap_or_default();
            if body.contains("baton_current_wave 1") {
                break body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never showed wave 1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The exposition format: comments, then `name{labels} value` samples that parse.
    let mut samples = 0;
    for line in body.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line == "# EOF",
                "{line}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("sample has a value");
        assert!(name.starts_with("baton_"), "{line}");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number in {line}"));
        samples += 1;
    }
    assert!(samples >= 5, "{body}");
    assert!(body.contains("baton_waves_started_total 1"), "{body}");

    let approve = env.engine(&["approve", "metered"]).await;
    assert_exit(&approve, 0);
    let finished = tokio::time::timeout(Duration::from_secs(120), run.wait())
        .await
        .expect("run ends")
        .expect("wait for engine run");
    assert_eq!(finished.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_output_json_is_one_typed_event_per_line() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("json-events", |_| {});
    let out = env
        .engine(&["run", path_str(&plan), "--output", "json"])
        .await;
    assert_exit(&out, 0);
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.len(), events.len(), "every event has a type");
    assert_eq!(types.first(), Some(&"runStarted"));
    assert_eq!(types.last(), Some(&"runFinished"));
    let waves: Vec<(u64, u64)> = events
        .iter()
        .filter(|e| e["type"] == "wavePlanned")
        .map(|e| {
            (
                e["wave"].as_u64().unwrap_or(0),
                e["partition"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(waves, [(1, 3), (2, 1), (3, 0)]);
    assert_eq!(types.iter().filter(|t| **t == "handover").count(), 2);
    assert!(
        events.last().is_some_and(|e| e["outcome"] == "succeeded"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_of_a_crashed_run_freezes_the_partition_and_the_history_holds_the_write() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("halted", |doc| {
        doc["spec"]["waves"]["approval"] = "everyWave".into();
    });
    let mut run = env
        .command(&["run", path_str(&plan)])
        .spawn()
        .expect("engine run starts");
    // The run waits at the first wave's gate (a second process sees it).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = env.engine(&["status", "halted", "--output", "json"]).await;
        if status.status.code() == Some(0) {
            let view: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
            if view["waitingApproval"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
            {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached its gate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.partition(), Some(3));
    // The driving process dies at the gate; then someone raises the partition by hand.
    run.start_kill().expect("kill engine run");
    let _ = run.wait().await;
    env.sim
        .store()
        .modify(Kind::StatefulSet, NS, "sample", |sts| {
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 5.into();
            Ok(())
        })
        .unwrap();
    // Abort puts it at |P| - |U| = 5 - 2, where the rollout stands.
    let abort = env
        .engine(&["abort", "halted", "--reason", "latency spike"])
        .await;
    assert_exit(&abort, 0);
    assert!(
        text(&abort.stdout).contains("partition 5 -> 3"),
        "{}",
        describe(&abort)
    );
    assert_eq!(env.partition(), Some(3));

    let history = env.engine(&["history", "halted", "--output", "json"]).await;
    assert_exit(&history, 0);
    let doc: Value = serde_json::from_slice(&history.stdout).expect("history JSON");
    let frozen: Vec<&Value> = doc["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| {
            a["step"]
                .as_str()
                .is_some_and(|s| s.starts_with("abort by "))
        })
        .collect();
    assert_eq!(frozen.len(), 1, "{doc:#}");
    assert_eq!(frozen[0]["action"], "set partition");
    assert_eq!(frozen[0]["before"], 5);
    assert_eq!(frozen[0]["after"], 3);
    assert_eq!(frozen[0]["outcome"], "applied");
    // Every write of the run itself was answered, so none is left unconfirmed.
    assert!(
        doc["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "applied"),
        "{doc:#}"
    );
}

/// Issue #11, defect 3: `engine abort` of a run that already succeeded, or of an unfinished
/// run whose set another run holds now, writes nothing, leaves the live run alone and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_never_writes_under_another_run() {
    let env = Env::start(seed_config()).await;
    let done = env.plan("done", |_| {});
    assert_exit(&env.engine(&["run", path_str(&done)]).await, 0);
    let history_of_done = env.engine(&["history", "done", "--output", "json"]).await;

    // An unfinished run: killed at its first gate.
    let back = |name: &str| {
        env.plan(name, |doc| {
            doc["spec"]["update"]["images"]["main"] = support::OLD_IMAGE.into();
            doc["spec"]["waves"]["approval"] = "firstWave".into();
        })
    };
    let stale_plan = back("stale");
    let mut stale = env
        .command(&["run", path_str(&stale_plan)])
        .spawn()
        .expect("engine run starts");
    env.until_gate(&env.state, "stale").await;
    stale.start_kill().expect("kill engine run");
    let _ = stale.wait().await;

    // A live run from another machine holds the set, waiting at its gate.
    let other = env.dir.path().join("other-machine");
    let live_plan = back("live");
    let live = env
        .command_in(&other, &["run", path_str(&live_plan)])
        .spawn()
        .expect("engine run starts");
    env.until_gate(&other, "live").await;
    let partition = env.partition();
    let writes_before = writes(&env.report());

    let abort = env
        .engine(&["abort", "done", "--reason", "wrong run"])
        .await;
    assert_exit(&abort, 2);
    assert!(
        text(&abort.stderr).contains("already succeeded"),
        "{}",
        describe(&abort)
    );
    let abort = env
        .engine(&["abort", "stale", "--reason", "wrong run"])
        .await;
    assert_exit(&abort, 4);
    assert!(
        text(&abort.stderr).contains("live@"),
        "the refusal names the holder: {}",
        describe(&abort)
    );
    assert!(
        !text(&abort.stdout).contains("lock released"),
        "{}",
        describe(&abort)
    );

    assert_eq!(env.partition(), partition, "abort moved the partition");
    let writes_after = writes(&env.report());
    assert_eq!(writes_after, writes_before, "abort wrote to the cluster");
    assert_eq!(
        env.engine(&["history", "done", "--output", "json"])
            .await
            .stdout,
        history_of_done.stdout,
        "the finished run's history changed"
    );

    // The live run is untouched and finishes.
    assert_exit(&env.engine_in(&other, &["approve", "live"]).await, 0);
    let finished = tokio::time::timeout(Duration::from_secs(120), live.wait_with_output())
        .await
        .expect("the live run ends")
        .expect("wait for engine run");
    assert_exit(&finished, 0);
    for i in 0..5 {
        assert_eq!(
            env.image(&format!("sample-{i}")).as_deref(),
            Some(support::OLD_IMAGE)
        );
    }
    let report = env.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
}
