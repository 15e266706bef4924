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

/// Requests the simulator served that change something (create, update, patch, delete).
fn writes(env: &Env) -> u64 {
    let report = env.report();
    report["requests"]
        .as_object()
        .expect("request counts")
        .iter()
        .filter(|(what, _)| {
            ["create ", "update ", "patch ", "delete "]
                .iter()
                .any(|verb| what.starts_with(verb))
        })
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Makes `dir` read-only for this process until dropped: `chmod`, and for root (whom
/// `chmod` does not stop) the immutable attribute. Panics if neither holds.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(dir: &std::path::Path) -> ReadOnly {
        let guard = ReadOnly(dir.to_owned());
        let probe = dir.join("probe");
        let run = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        run("chmod", &["-R", "a-w"]);
        if std::fs::write(&probe, b"").is_ok() {
            let _ = std::fs::remove_file(&probe);
            run("chattr", &["-R", "+i"]);
        }
        assert!(
            std::fs::write(&probe, b"").is_err(),
            "cannot make {} read-only (neither chmod nor chattr +i holds)",
            dir.display()
        );
        guard
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&self.0)
            .status();
    }
}

/// Issue #12 item 9: a truncated state database was read back as an older state (`status`
/// said `running` for a run that succeeded, its history shrank, and a resume acted on the
/// old state). Now every command reports the damage: status and history exit 2, list shows
/// the run unreadable, and resume, abort and approve refuse (exit 2) without a request that
/// writes to the cluster. An intact state directory made read-only still serves status,
/// history and list, and reading it changes none of its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_database_is_reported_and_refused_and_a_read_only_one_is_still_read() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("sealed", |_| {});
    assert_exit(&env.engine(&["run", path_str(&plan)]).await, 0);
    let history = env.engine(&["history", "sealed", "--output", "json"]).await;
    assert_exit(&history, 0);
    let audit = |out: &std::process::Output| -> usize {
        let doc: Value = serde_json::from_slice(&out.stdout).expect("history JSON");
        doc["audit"].as_array().map_or(0, Vec::len)
    };
    let entries = audit(&history);
    assert!(entries > 5, "{}", describe(&history));

    // Read-only: everything readable, nothing changed.
    let runs_dir = env.state.join("runs");
    let before = tree(&env.state);
    {
        let _read_only = ReadOnly::new(&env.state);
        let status = env.engine(&["status", "sealed", "--output", "json"]).await;
        assert_exit(&status, 0);
        let doc: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
        assert_eq!(doc["state"], "succeeded", "{}", describe(&status));
        let again = env.engine(&["history", "sealed", "--output", "json"]).await;
        assert_exit(&again, 0);
        assert_eq!(audit(&again), entries);
        assert_eq!(
            runs(&env).await,
            vec![("sealed".to_owned(), "succeeded".to_owned())]
        );
    }
    assert!(
        before == tree(&env.state),
        "reading the run changed its state directory"
    );

    // Truncated to half: the prefix sled recovers is an older, unfinished state.
    let data = runs_dir.join("sealed").join("db").join("db");
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let written = writes(&env);
    for args in [
        &["status", "sealed"][..],
        &["history", "sealed"],
        &["resume", "sealed"],
        &["abort", "sealed"],
        &["approve", "sealed"],
    ] {
        let out = env.engine(args).await;
        assert_exit(&out, 2);
        let err = text(&out.stderr);
        assert!(
            err.contains("damaged") && err.contains("checkpoint"),
            "{args:?} did not report the damage: {}",
            describe(&out)
        );
    }
    let list = env.engine(&["list", "--output", "json"]).await;
    assert_exit(&list, 0);
    let doc: Value = serde_json::from_slice(&list.stdout).expect("list JSON");
    let listed = &doc[0];
    assert_eq!(listed["run"], "sealed");
    assert!(
        listed["state"].is_null()
            && listed["problem"]
                .as_str()
                .is_some_and(|p| p.contains("damaged")),
        "{listed}"
    );
    assert_eq!(writes(&env), written, "a command wrote to the cluster");

    // Its history is gone from view, so forgetting it takes --force.
    let kept = env.engine(&["delete", "sealed"]).await;
    assert_exit(&kept, 2);
    assert!(
        text(&kept.stderr).contains("--force"),
        "{}",
        describe(&kept)
    );
    assert!(
        runs_dir.join("sealed").exists(),
        "delete without --force removed it"
    );
    assert_exit(&env.engine(&["delete", "sealed", "--force"]).await, 0);
    assert!(!runs_dir.join("sealed").exists());
    env.assert_finished_clean(5, 3);
}
