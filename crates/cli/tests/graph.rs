//! `engine graph` as a process: formats, Graphviz acceptance, errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PLAN: &str = "\
apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: graph-test
spec:
  target: {name: sample}
  update:
    images: {main: alpine:3.18.0}
  arbiter: {url: http://127.0.0.1:8080}
  waves:
    settle: 10s
    approval: firstWave
  hooks:
    beforeRollout:
      - name: announce
        sleep: {duration: 1s}
    afterWaveReady:
      - name: smoke
        http: {url: http://svc/health}
      - name: check-lag
        exec: {command: [./check.sh, '{{wave}}']}
    beforeHandover:
      - name: caught-up
        exec: {command: [./caught-up.sh, '{{promote}}']}
";

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .env_remove("ENGINE_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("engine runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn plan_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).expect("write plan");
    path
}

/// The repository's seed plan when present, else the plan of this file.
fn seed_plan(dir: &Path) -> PathBuf {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plans/seed.yaml");
    if seed.exists() {
        seed
    } else {
        plan_file(dir, PLAN)
    }
}

#[test]
fn the_text_graph_lists_every_step_with_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path(), PLAN);
    let out = engine(&["graph", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn the_dot_graph_is_accepted_by_graphviz() {
    let dir = tempfile::tempdir().unwrap();
    let path = seed_plan(dir.path());
    let out = engine(&["graph", path.to_str().unwrap(), "--format", "dot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = stdout(&out);
    assert!(dot.contains("until every pod runs the update revision"));

    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("notice: `dot` (graphviz) is not installed; skipping the Graphviz check");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let rendered = child.wait_with_output().unwrap();
    assert!(
        rendered.status.success(),
        "dot rejected the graph: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let svg = String::from_utf8_lossy(&rendered.stdout);
    assert!(svg.contains("<svg"));
    assert!(svg.contains("wave&#45;1/select") || svg.contains("select"));
}

#[test]
fn the_mermaid_graph_is_a_top_down_flowchart() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path(), PLAN);
    let out = engine(&["graph", path.to_str().unwrap(), "--format", "mermaid"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with("flowchart TD\n"));
    assert!(text.contains("  subgraph wave_1 "));
    assert!(text.contains("  wave_1_select --> wave_1_relabel\n"));
}

#[test]
fn json_output_lists_steps_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path(), PLAN);
    let out = engine(&["--output", "json", "graph", path.to_str().unwrap()]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(doc["plan"], "graph-test");
    assert_eq!(doc["repeatingWave"], 1);
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps[0]["id"], "hook/beforeRollout/announce");
    assert_eq!(steps[1]["id"], "protect");
    assert_eq!(
        steps[1]["after"],
        serde_json::json!(["hook/beforeRollout/announce"])
    );
    assert_eq!(steps.last().unwrap()["id"], "finalize");
}

#[test]
fn a_bad_plan_is_reported_with_its_location_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = plan_file(dir.path(), &PLAN.replace("settle: 10s", "settle: 10x"));
    let out = engine(&["graph", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan.yaml:11:"), "{err}");
    assert!(err.contains("spec.waves.settle"), "{err}");

    let missing = engine(&["graph", dir.path().join("absent.yaml").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
}
