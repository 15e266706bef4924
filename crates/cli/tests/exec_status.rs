//! `engine status`, `list`, `history` and `approve` as processes, against a run held
//! open by another process (a child running the executor with test steps).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use baton_engine::test_util as support;
use serde_json::Value;
use support::Job;

const ENTRY: &str = "child_process_entry";

#[test]
#[ignore = "entry point of the child process the status tests start, not a test"]
fn child_process_entry() {
    support::child_main();
}

fn engine(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "engine failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn status_list_approve_and_history_work_on_a_run_another_process_is_driving() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let job = Job {
        state_dir: state.clone(),
        world: tmp.path().join("world.json"),
        plan_text: support::plan_text("held", "firstWave"),
        waves: 2,
        resume: false,
    };
    let child = support::spawn_child(ENTRY, &job, &[]);
    let pid = child.id();

    // The child holds the run (and its database lock) at the first wave's approval gate.
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let out = engine(&state, &["status", "held", "--output", "json"]);
        if out.status.success() {
            let view = json(&out);
            if view["waitingApproval"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
            {
                break view;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the child never reached its gate: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(view["run"], "held");
    assert_eq!(view["state"], "running");
    assert_eq!(view["livePid"], pid);
    assert_eq!(view["currentWave"], 1);
    assert_eq!(view["waitingApproval"][0], "wave-1/approval");
    let node = |view: &Value, id: &str| {
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
    };
    assert_eq!(node(&view, "protect").unwrap()["state"], "succeeded");
    assert_eq!(node(&view, "wave-1/approval").unwrap()["state"], "running");

    let text = engine(&state, &["status"]);
    assert!(text.status.success());
    let text = stdout(&text);
    assert!(
        text.contains(&format!("state:   running (driven by pid {pid})")),
        "{text}"
    );
    assert!(
        text.contains("waiting: approval of wave-1/approval: run `engine approve held`"),
        "{text}"
    );

    let list = json(&engine(&state, &["list", "--output", "json"]));
    assert_eq!(list[0]["run"], "held");
    assert_eq!(list[0]["live"], true);

    let approved = engine(&state, &["approve", "held", "--reason", "looks good"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(
        stdout(&approved).contains("approved wave-1/approval of held as tester@"),
        "{}",
        stdout(&approved)
    );

    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD-OUTCOME Ok(Succeeded)"));

    let done = json(&engine(&state, &["status", "held", "--output", "json"]));
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["livePid"], Value::Null);
    let history = engine(&state, &["history", "held"]);
    let history = stdout(&history);
    // The table pads its columns; compare each line with its runs of spaces as one.
    let rows: Vec<String> = history
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let has = |needle: &str| rows.iter().any(|r| r.contains(needle));
    assert!(
        has("wave-1/approval run held approve by tester@"),
        "{history}"
    );
    assert!(history.contains(": looks good"), "{history}");
    assert!(
        has("wave-1/set-partition partition set \"5\" → \"4\""),
        "{history}"
    );
    let audit = json(&engine(&state, &["history", "held", "--output", "json"]));
    // One line per write and per approval, under one header line.
    assert_eq!(
        audit["audit"].as_array().unwrap().len() + audit["approvals"].as_array().unwrap().len(),
        history.lines().count() - 1
    );
}

#[test]
fn unknown_and_damaged_runs_exit_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let job = Job {
        state_dir: state.clone(),
        world: tmp.path().join("world.json"),
        plan_text: support::plan_text("fine", "none"),
        waves: 1,
        resume: false,
    };
    let out = support::spawn_child(ENTRY, &job, &[])
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let unknown = engine(&state, &["status", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown run \"nope\"; known runs: fine"),
        "{}",
        stderr(&unknown)
    );
    let unknown = engine(&state, &["approve", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    let nothing = engine(&state, &["approve", "fine"]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        stderr(&nothing).contains("run fine waits for no approval"),
        "{}",
        stderr(&nothing)
    );

    let db = state.join("runs/fine/db/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0u8; len]).unwrap();
    for args in [
        &["status", "fine"][..],
        &["history", "fine"],
        &["status", "fine", "--output", "json"],
    ] {
        let out = engine(&state, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("run fine") || err.contains("runs/fine"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let list = engine(&state, &["list"]);
    assert!(list.status.success());
    assert!(stdout(&list).contains("unreadable"), "{}", stdout(&list));
}
