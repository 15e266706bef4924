//! Issue #12: a run is an event, not a plan. Running a plan again is a new run that does the
//! work the cluster needs; a new run never starts over an unfinished one on the same set;
//! old runs can be forgotten with `engine delete` and `engine gc`.

mod support;

use serde_json::Value;
use support::{Env, NEW_IMAGE, OLD_IMAGE, assert_exit, describe, path_str, seed_config, text};

fn images(env: &Env) -> Vec<Option<String>> {
    (0..5).map(|i| env.image(&format!("sample-{i}"))).collect()
}

async fn runs(env: &Env) -> Vec<(String, String)> {
    let out = env.engine(&["list", "--output", "json"]).await;
    assert_exit(&out, 0);
    let list: Value = serde_json::from_slice(&out.stdout).expect("list JSON");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["run"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_run_again_after_its_run_finished_is_a_new_run_that_does_the_work() {
    let env = Env::start(seed_config()).await;
    let forward = env.plan("forward", |_| {});
    let back = env.plan("back", |doc| {
        doc["spec"]["update"]["images"]["main"] = OLD_IMAGE.into();
    });
    assert_exit(&env.engine(&["run", path_str(&forward)]).await, 0);
    assert_exit(&env.engine(&["run", path_str(&back)]).await, 0);
    assert!(images(&env).iter().all(|i| i.as_deref() == Some(OLD_IMAGE)));

    // The cluster is back on the old image: the same plan has three waves to do again.
    let again = env
        .engine(&["run", path_str(&forward), "--output", "json"])
        .await;
    assert_exit(&again, 0);
    let started: Vec<Value> = text(&again.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["type"] == "runStarted")
        .collect();
    assert_eq!(started.len(), 1, "{}", describe(&again));
    assert_eq!(started[0]["run"], "forward-2");
    assert!(
        images(&env).iter().all(|i| i.as_deref() == Some(NEW_IMAGE)),
        "{:?}",
        images(&env)
    );
    let report = env.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
    let names: Vec<String> = runs(&env).await.into_iter().map(|(r, _)| r).collect();
    for want in ["forward", "back", "forward-2"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }

    // An explicit name is used as given, and refused once taken.
    assert_exit(
        &env.engine(&["run", path_str(&back), "--name", "back-by-hand"])
            .await,
        0,
    );
    let taken = env
        .engine(&["run", path_str(&back), "--name", "back-by-hand"])
        .await;
    assert_exit(&taken, 2);
    assert!(
        text(&taken.stderr).contains("already exists"),
        "{}",
        describe(&taken)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_in_the_same_state_dir_does_the_work_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for round in 1..=2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(["demo", "--state-dir"])
            .arg(&state)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert_exit(&out, 0);
        let updates = text(&out.stderr).matches(" updated to ").count();
        assert_eq!(
            updates,
            5,
            "demo {round} updated {updates} pods:\n{}",
            describe(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_is_refused_while_an_unfinished_run_holds_the_set_and_delete_forgets_it() {
    let env = Env::start(seed_config()).await;
    let stale_plan = env.plan("stale", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let mut stale = env
        .command(&["run", path_str(&stale_plan)])
        .spawn()
        .expect("engine run starts");
    env.until_gate(&env.state, "stale").await;
    stale.start_kill().expect("kill engine run");
    let _ = stale.wait().await;
    let partition = env.partition();

    let other = env.plan("other", |doc| {
        doc["spec"]["update"]["images"]["main"] = OLD_IMAGE.into();
    });
    let refused = env.engine(&["run", path_str(&other)]).await;
    assert_exit(&refused, 2);
    let message = text(&refused.stderr);
    for hint in [
        "stale",
        "engine resume stale",
        "engine abort stale",
        "engine delete stale",
    ] {
        assert!(
            message.contains(hint),
            "no {hint:?}: {}",
            describe(&refused)
        );
    }
    assert_eq!(env.partition(), partition, "a refused run wrote");

    let kept = env.engine(&["delete", "stale"]).await;
    assert_exit(&kept, 2);
    assert_exit(&env.engine(&["delete", "stale", "--force"]).await, 0);
    assert!(runs(&env).await.iter().all(|(r, _)| r != "stale"));
    let out = env.engine(&["run", path_str(&other)]).await;
    assert_exit(&out, 0);
    assert!(images(&env).iter().all(|i| i.as_deref() == Some(OLD_IMAGE)));

    // gc forgets finished runs only; a dry run lists them first.
    let dry = env.engine(&["gc", "--older-than", "0s", "--dry-run"]).await;
    assert_exit(&dry, 0);
    assert!(
        text(&dry.stdout).contains("would delete run other"),
        "{}",
        describe(&dry)
    );
    assert_eq!(runs(&env).await.len(), 1);
    assert_exit(&env.engine(&["gc", "--older-than", "0s"]).await, 0);
    assert!(runs(&env).await.is_empty());
}

/// Issue #12: `engine resume` notices an edited plan file (a diff, not two hashes), and
/// `--replan` without `--plan` takes the edited file, even when it drops the hook that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_an_edited_plan_with_a_diff_and_replan_takes_it_without_the_removed_hook() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("lagging", |doc| {
        doc["spec"]["hooks"] = serde_yaml::from_str(
            "afterWaveReady:\n  - name: lag\n    exec: {command: [\"false\"], timeout: 5s}\n",
        )
        .unwrap();
    });
    let failed = env.engine(&["run", path_str(&plan)]).await;
    assert_exit(&failed, 1);
    assert!(
        text(&failed.stderr).contains("lag"),
        "{}",
        describe(&failed)
    );

    // The operator drops the failing hook from the file.
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    doc["spec"]
        .as_mapping_mut()
        .unwrap()
        .remove(serde_yaml::Value::from("hooks"));
    std::fs::write(&plan, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let partition = env.partition();

    let refused = env.engine(&["resume", "lagging"]).await;
    assert_exit(&refused, 2);
    let err = text(&refused.stderr);
    let removed = err
        .lines()
        .any(|l| l.starts_with('-') && l.contains("afterWaveReady:"));
    assert!(
        err.contains("--replan") && removed,
        "no diff of the removed hook: {}",
        describe(&refused)
    );
    assert_eq!(env.partition(), partition, "a refused resume wrote");

    let resumed = env.engine(&["resume", "lagging", "--replan"]).await;
    assert_exit(&resumed, 0);
    env.assert_finished_clean(5, 3);
}
