//! What every command prints, text and `--output json`, as snapshots: the help of each
//! command, the plan-only commands on the repository's plans, and the cluster commands
//! against a simulator hosted in this process (the seed rollout, an interrupted gated
//! run approved offline and resumed, an abort, the demo).
//!
//! Each snapshot is a transcript: the command, its exit code, stdout and stderr, with
//! what varies between runs masked by [`mask`] (paths, times, durations, pids, the
//! operator, ports, hashes) and the lines of pods updated at the same moment sorted.
//! Review a changed snapshot as an operator would read it, then accept it
//! (`cargo insta review`, or `INSTA_UPDATE=always cargo test -p baton-cli --test cli_output`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use support::{Env, path_str, seed_config, text};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What varies from one run to the next, and what stands for it in a snapshot.
/// Applied in order, after the literal replacements in [`mask`].
static MASKS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // RFC 3339 times: JSON keeps the stored precision; text says them to the second, so
        // a text time with a fraction is left unmasked and shows in the snapshot.
        (
            r#""\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})""#,
            r#""[TIME]""#,
        ),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})",
            "[TIME]",
        ),
        // `engine plan`'s estimate rests on the pods' measured ready times.
        (r"about (a second or less|[0-9hms.]+)", "about [EST]"),
        (r"at [0-9hms.]+ each", "at [EST] each"),
        (
            r#""(seconds|podReadySeconds)": ?[0-9.e-]+"#,
            r#""$1": "[EST]""#,
        ),
        // Loopback addresses carry random ports.
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        // Temporary files and directories not under the test's own directory.
        (r"/tmp/[^\s\x22',)]+", "[TMP]"),
        // Plan hashes (they cover the arbiter URL, whose port varies).
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r"sha256 [0-9a-f]{12}\b", "sha256 [SHA256]"),
        // Handover request ids and other UUIDs.
        (
            r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
            "[UUID]",
        ),
        // Measured durations: `12 ms`, `123ms`, `1.2s`, JSON `"ms": 12`. Whole seconds
        // (`5s`) are configuration, not measurements, and stay.
        (r"\b\d+ ?ms\b", "[DUR]"),
        (r"\b\d+\.\d+s\b", "[DUR]"),
        (r#""ms": ?\d+"#, r#""ms": "[MS]""#),
        // Log sequence numbers: their order shows in the order of the entries; the
        // numbers themselves follow how many records the engine keeps per step.
        (r#""seq": ?\d+"#, r#""seq": "[SEQ]""#),
        // Process ids.
        (r"\bpid \d+", "pid [PID]"),
        (r#""(livePid|pid)": ?\d+"#, r#""$1": "[PID]""#),
    ]
    .into_iter()
    .map(|(re, to)| (Regex::new(re).unwrap(), to))
    .collect()
});

/// How much of an output varies from run to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Varies {
    /// Plan-only commands: only the checkout's path and content hashes.
    Little,
    /// Commands against the simulator: times, ports, pids, temp paths, durations too.
    Much,
}

/// Masks what varies in `text`: `dirs` (longest first) become `[DIR]`, the operator
/// (`user@host`) `[OPERATOR]`, plan hashes `[SHA256]`, and with [`Varies::Much`] the
/// [`MASKS`] table applies too.
fn mask(text: &str, dirs: &[&Path], varies: Varies) -> String {
    let mut out = text.to_owned();
    let mut dirs: Vec<&str> = dirs.iter().map(|d| path_str(d)).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for dir in dirs {
        out = out.replace(dir, "[DIR]");
    }
    out = out.replace(&baton_engine::control::operator(), "[OPERATOR]");
    let masks = MASKS
        .iter()
        .filter(|(_, to)| varies == Varies::Much || to.contains("[SHA256]"));
    for (re, to) in masks {
        out = re.replace_all(&out, *to).into_owned();
    }
    sort_simultaneous(&out)
}

/// A whole stdout that is one JSON document, pretty-printed so a snapshot reads well;
/// anything else (text, JSON lines) as it is.
fn readable(stdout: &str) -> String {
    match serde_json::from_str::<Value>(stdout) {
        Ok(doc) if stdout.trim_end().lines().count() == 1 => {
            serde_json::to_string_pretty(&doc).unwrap() + "\n"
        }
        _ => stdout.to_owned(),
    }
}

/// Shell-style quoting for the transcript's command line.
fn quoted(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pods of one wave become ready in no fixed order: sort each run of adjacent
/// "updated" lines (text) or `podUpdated` events (JSON) so the snapshot is stable.
fn sort_simultaneous(text: &str) -> String {
    let updated = |line: &str| {
        (line.starts_with("  ") && line.contains(" updated to "))
            || line.contains(r#""type":"podUpdated""#)
    };
    let mut lines: Vec<&str> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if updated(line) {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        lines.append(&mut run);
        lines.push(line);
    }
    run.sort_unstable();
    lines.append(&mut run);
    lines.join("\n")
}

/// A transcript of one command for a snapshot.
fn transcript(args: &[&str], out: &Output, dirs: &[&Path], varies: Varies) -> String {
    let mut s = format!(
        "$ engine {}\nexit: {}\n",
        mask(&quoted(args), dirs, varies),
        out.status
            .code()
            .map_or_else(|| "killed".to_owned(), |c| c.to_string())
    );
    for (name, body) in [
        ("stdout", readable(&text(&out.stdout))),
        ("stderr", text(&out.stderr)),
    ] {
        if !body.is_empty() {
            s.push_str(&format!("--- {name}\n{}", mask(&body, dirs, varies)));
            if !body.ends_with('\n') {
                s.push('\n');
            }
        }
    }
    s
}

/// [`transcript`] of a command run against the simulator. Revision names are the
/// simulator's hash of the template, which follows Kruise's defaulting, not the CLI: each
/// distinct one becomes `sample-[rev-N]` in order of appearance, so what the CLI prints
/// (which revision goes where) stays checked while the hash itself may change.
fn cluster_transcript(args: &[&str], out: &Output, env: &Env) -> String {
    let raw = transcript(args, out, &[env.dir.path()], Varies::Much);
    // What a wave waits for pod by pod depends on timing: such lines are left out.
    let raw: String = raw
        .lines()
        .filter(|l| {
            let timed = l.contains(r#""type":"waiting""#)
                && (l.contains(": ") || l.contains("has not observed"));
            !(l.contains(": waiting for ") || timed)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let hashes = regex::Regex::new(r"\bsample-([0-9a-f]{8,10})\b").unwrap();
    let mut seen: Vec<String> = Vec::new();
    hashes
        .replace_all(&raw, |c: &regex::Captures<'_>| {
            let hash = c[1].to_owned();
            let n = match seen.iter().position(|h| *h == hash) {
                Some(i) => i + 1,
                None => {
                    seen.push(hash);
                    seen.len()
                }
            };
            format!("sample-[rev-{n}]")
        })
        .into_owned()
}

/// The engine, from the workspace root, for commands that need no cluster.
fn offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("ENGINE_STATE_DIR")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn snapshot_offline(name: &str, args: &[&str]) -> Output {
    let out = offline(args);
    insta::assert_snapshot!(
        name,
        transcript(args, &out, &[&workspace()], Varies::Little)
    );
    out
}

/// Runs `args` against the environment and snapshots the transcript.
async fn snapshot(env: &Env, name: &str, args: &[&str]) -> Output {
    let out = env.engine(args).await;
    insta::assert_snapshot!(name, cluster_transcript(args, &out, env));
    out
}

fn assert_json_lines(out: &Output) {
    for line in text(&out.stdout).lines() {
        let _: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON document per line ({e}): {line}"));
    }
}

/// Polls `engine status RUN --output json` until a process drives the run and it
/// waits at a gate.
async fn until_gate(env: &Env, run: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.engine(&["status", run, "--output", "json"]).await;
        if out.status.success() {
            let view: Value = serde_json::from_slice(&out.stdout).unwrap();
            let waiting = view["waitingApproval"]
                .as_array()
                .is_some_and(|gates| !gates.is_empty());
            // A stopped run keeps its gate on record: wait for the process driving it.
            if waiting && view["livePid"].is_u64() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{run} never reached its gate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGINT to a child, as Ctrl-C would send.
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
}

const COMMANDS: &[&[&str]] = &[
    &[],
    &["validate"],
    &["schema"],
    &["graph"],
    &["plan"],
    &["run"],
    &["resume"],
    &["status"],
    &["list"],
    &["abort"],
    &["approve"],
    &["history"],
    &["demo"],
    &["controller"],
    &["sim"],
    &["sim", "serve"],
    &["completions"],
];

#[test]
fn every_command_explains_itself_with_help() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let name = format!("help-{}", command.join("-"))
            .trim_end_matches('-')
            .to_owned();
        let out = snapshot_offline(&name, &args);
        assert_eq!(out.status.code(), Some(0), "{name}");
    }
}

#[test]
fn validate_prints_ok_or_every_problem_in_text_and_json() {
    let ok = snapshot_offline("validate-ok", &["validate", "plans/seed.yaml"]);
    assert_eq!(ok.status.code(), Some(0));
    let ok = snapshot_offline(
        "validate-ok-json",
        &["validate", "plans/seed.yaml", "--output", "json"],
    );
    assert_eq!(ok.status.code(), Some(0));
    let bad = "tests/plans/invalid/several-problems.yaml";
    let out = snapshot_offline("validate-invalid", &["validate", bad]);
    assert_eq!(out.status.code(), Some(2));
    let out = snapshot_offline(
        "validate-invalid-json",
        &["validate", bad, "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = snapshot_offline("validate-missing-file", &["validate", "plans/nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn schema_is_a_json_schema_of_the_plan_with_a_stable_outline() {
    let out = offline(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The outline: schema dialect, title, and the property names at each level the
    // plan format documents. The full text changes with every doc comment.
    let mut outline = String::new();
    for key in ["$schema", "title", "type"] {
        outline.push_str(&format!("{key}: {}\n", schema[key]));
    }
    outline.push_str(&format!("required: {}\n", schema["required"]));
    let properties = |v: &Value| -> Vec<String> {
        v["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    };
    outline.push_str(&format!("properties: {}\n", properties(&schema).join(", ")));
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, def) in &defs {
        let props = properties(def);
        if !props.is_empty() {
            outline.push_str(&format!("{name}: {}\n", props.join(", ")));
        }
    }
    insta::assert_snapshot!("schema-outline", outline);
    assert!(
        text(&out.stdout).lines().count() > 50,
        "the schema is pretty-printed"
    );
}

#[test]
fn graph_prints_the_seed_dag_in_every_format() {
    for (name, format) in [
        ("graph-text", "text"),
        ("graph-dot", "dot"),
        ("graph-mermaid", "mermaid"),
    ] {
        let out = snapshot_offline(name, &["graph", "plans/seed.yaml", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{name}");
    }
    let out = snapshot_offline(
        "graph-json",
        &["graph", "plans/seed.yaml", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn completions_cover_every_command_in_every_shell() {
    let names = [
        "validate",
        "schema",
        "graph",
        "plan",
        "run",
        "resume",
        "status",
        "list",
        "abort",
        "approve",
        "history",
        "demo",
        "sim",
        "completions",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = offline(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for name in names {
            assert!(script.contains(name), "{shell} completions lack {name}");
        }
    }
    // Fish's is one line per word with its help: the most readable of them.
    snapshot_offline("completions-fish", &["completions", "fish"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_run_and_the_records_of_a_finished_run() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("seed", |_| {});
    let plan = path_str(&plan);

    let out = snapshot(&env, "plan", &["plan", plan]).await;
    support::assert_exit(&out, 0);
    let out = snapshot(&env, "plan-json", &["plan", plan, "--output", "json"]).await;
    support::assert_exit(&out, 0);

    let out = snapshot(&env, "list-empty", &["list"]).await;
    support::assert_exit(&out, 0);
    let out = snapshot(&env, "run", &["run", plan]).await;
    support::assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);

    for (name, args) in [
        ("status", &["status", "seed"][..]),
        ("status-json", &["status", "seed", "--output", "json"]),
        ("list", &["list"]),
        ("list-json", &["list", "--output", "json"]),
        ("history", &["history", "seed"]),
        ("history-json", &["history", "seed", "--output", "json"]),
    ] {
        let out = snapshot(&env, name, args).await;
        support::assert_exit(&out, 0);
    }
    let out = snapshot(&env, "run-again", &["run", plan]).await;
    support::assert_exit(&out, 0);
    let out = snapshot(&env, "status-unknown-run", &["status", "nope"]).await;
    support::assert_exit(&out, 2);
    let out = snapshot(&env, "resume-nothing-to-resume", &["resume"]).await;
    assert_ne!(out.status.code(), Some(0), "{}", support::describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_json_output_prints_one_event_per_line() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("seed", |_| {});
    let out = snapshot(
        &env,
        "run-json",
        &["run", path_str(&plan), "--output", "json"],
    )
    .await;
    support::assert_exit(&out, 0);
    assert_json_lines(&out);
    env.assert_finished_clean(5, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_gated_run_is_approved_offline_and_resumed() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("gated", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let child = env.command(&["run", path_str(&plan)]).spawn().unwrap();
    until_gate(&env, "gated").await;
    let out = snapshot(&env, "status-at-a-gate", &["status", "gated"]).await;
    support::assert_exit(&out, 0);
    let out = snapshot(&env, "list-live", &["list"]).await;
    support::assert_exit(&out, 0);

    interrupt(&child);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    insta::assert_snapshot!(
        "run-interrupted-at-a-gate",
        cluster_transcript(&["run", "gated.yaml"], &out, &env)
    );
    support::assert_exit(&out, 130);

    let out = snapshot(&env, "status-interrupted", &["status", "gated"]).await;
    support::assert_exit(&out, 0);

    // Resumed, the run asks for the approval again; it is given while it waits.
    let resume = env.command(&["resume"]).spawn().unwrap();
    until_gate(&env, "gated").await;
    let out = snapshot(
        &env,
        "approve",
        &["approve", "gated", "--reason", "dashboards green"],
    )
    .await;
    support::assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), resume.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    insta::assert_snapshot!("resume", cluster_transcript(&["resume"], &out, &env));
    support::assert_exit(&out, 0);
    env.assert_finished_clean(5, 3);

    let out = snapshot(
        &env,
        "approve-finished-run-json",
        &["approve", "gated", "--output", "json"],
    )
    .await;
    support::assert_exit(&out, 2);
    let out = snapshot(&env, "history-with-approval", &["history", "gated"]).await;
    support::assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_json_output_prints_one_event_per_line() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("gated", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let child = env.command(&["run", path_str(&plan)]).spawn().unwrap();
    until_gate(&env, "gated").await;
    interrupt(&child);
    let out = child.wait_with_output().await.unwrap();
    support::assert_exit(&out, 130);
    let args = ["resume", "gated", "--output", "json"];
    let resume = env.command(&args).spawn().unwrap();
    until_gate(&env, "gated").await;
    let out = snapshot(
        &env,
        "approve-json",
        &["approve", "gated", "--output", "json"],
    )
    .await;
    support::assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), resume.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    insta::assert_snapshot!("resume-json", cluster_transcript(&args, &out, &env));
    support::assert_exit(&out, 0);
    assert_json_lines(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_freezes_a_run_waiting_at_its_gate() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("stopped", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let child = env.command(&["run", path_str(&plan)]).spawn().unwrap();
    until_gate(&env, "stopped").await;
    let out = snapshot(
        &env,
        "abort",
        &["abort", "stopped", "--reason", "latency spike"],
    )
    .await;
    support::assert_exit(&out, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    insta::assert_snapshot!(
        "run-aborted",
        cluster_transcript(&["run", "stopped.yaml"], &out, &env)
    );
    let out = snapshot(&env, "status-aborted", &["status", "stopped"]).await;
    support::assert_exit(&out, 0);
    let out = snapshot(
        &env,
        "abort-again-json",
        &["abort", "stopped", "--output", "json"],
    )
    .await;
    support::assert_exit(&out, 0);
}

#[test]
fn demo_runs_the_seed_case_and_says_what_it_did() {
    let state = tempfile::tempdir().unwrap();
    let args = ["demo", "--pod-ready-ms", "20"];
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .arg("--state-dir")
        .arg(state.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    insta::assert_snapshot!(
        "demo",
        transcript(&args, &out, &[state.path()], Varies::Much)
    );
    assert_eq!(out.status.code(), Some(0));
}

/// Issue #12, item 11: `-q` keeps errors only. The API server fails the first two writes
/// to the StatefulSet with 503; the engine retries them and succeeds, so there is no
/// error to tell: kube's own ERROR log line for each failed request and the final pod
/// table were printed before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_run_that_retries_and_succeeds_prints_nothing() {
    let env = Env::start(seed_config()).await;
    env.sim.faults().set(baton_sim::faults::FaultConfig {
        errors: vec![baton_sim::faults::ErrorFault {
            target: baton_sim::faults::Target {
                verb: Some("patch".into()),
                resource: Some("statefulsets".into()),
            },
            code: 503,
            rate: 1.0,
            count: Some(2),
            retry_after_seconds: None,
        }],
        ..Default::default()
    });
    let plan = env.plan("quiet", |_| {});
    let out = env.engine(&["run", path_str(&plan), "-q"]).await;
    support::assert_exit(&out, 0);
    assert_eq!(text(&out.stderr), "", "{}", support::describe(&out));
    assert_eq!(text(&out.stdout), "", "{}", support::describe(&out));
    env.assert_finished_clean(5, 3);
}

/// Issue #12, item 11: an API server's refusal is told in words, once. kube's error
/// displays the answer with Rust's debug format (`Status { status: Some(Failure), …
/// ListMeta { continue_: None … } }`) and then again as its cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_refusal_is_told_in_words_without_rust_debug_text() {
    let env = Env::start(seed_config()).await;
    env.sim.faults().set(baton_sim::faults::FaultConfig {
        errors: vec![baton_sim::faults::ErrorFault {
            target: baton_sim::faults::Target {
                verb: Some("list".into()),
                resource: Some("pods".into()),
            },
            code: 403,
            rate: 1.0,
            count: None,
            retry_after_seconds: None,
        }],
        ..Default::default()
    });
    let plan = env.plan("refused", |_| {});
    let out = snapshot(&env, "plan-api-refused", &["plan", path_str(&plan)]).await;
    support::assert_exit(&out, 2);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for debug in ["Status {", "Some(", "None", "ListMeta", "ApiError"] {
        assert!(!all.contains(debug), "{debug:?} in: {all}");
    }
}

/// Issue #12, item 11: after `kill -9`, the run's record still says `running` (nothing
/// could record the stop); `list` and `status` say its process is gone and how to go on,
/// instead of `running`. An approval given without `$USER` records the uid's name, not
/// `unknown`, and the history reads as a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_process_was_killed_is_shown_as_gone() {
    let env = Env::start(seed_config()).await;
    let plan = env.plan("killed", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
    });
    let mut child = env.command(&["run", path_str(&plan)]).spawn().unwrap();
    until_gate(&env, "killed").await;
    child.start_kill().unwrap();
    let _ = child.wait().await.unwrap();

    // The table's columns are as wide as the pid's digits; compare them with their padding
    // as two spaces, so the snapshot does not depend on the pid the kernel gave.
    let out = env.engine(&["list"]).await;
    let padded = Regex::new(r"(\S) {2,}").unwrap();
    insta::assert_snapshot!(
        "list-process-gone",
        padded.replace_all(&cluster_transcript(&["list"], &out, &env), "$1  ")
    );
    support::assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("gone"),
        "{}",
        support::describe(&out)
    );
    let out = snapshot(&env, "status-process-gone", &["status", "killed"]).await;
    support::assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("pid [PID]") || text(&out.stdout).contains("is gone"),
        "{}",
        support::describe(&out)
    );

    let mut approve = env.command(&["approve", "killed", "--reason", "checked"]);
    approve.env_remove("USER").env_remove("LOGNAME");
    let out = approve.spawn().unwrap().wait_with_output().await.unwrap();
    support::assert_exit(&out, 0);
    let whoami = Command::new("id").arg("-un").output().unwrap();
    let user = text(&whoami.stdout).trim().to_owned();
    let out = env.engine(&["history", "killed"]).await;
    support::assert_exit(&out, 0);
    let history = text(&out.stdout);
    assert!(
        history.contains(&format!("by {user}@")) && !history.contains("unknown@"),
        "{history}"
    );
    insta::assert_snapshot!(
        "history-process-gone",
        cluster_transcript(&["history", "killed"], &out, &env)
    );
}

/// Issue #12, item 11 and #13: `engine plan` shows the image change, every hook and gate
/// where it runs, the partition `finalize` really writes (1 here: a pod the arbiter does
/// not list keeps the old revision), the waves `maxUnavailable: 1` splits into rounds, and
/// an estimate with what it rests on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_image_hooks_gates_the_real_end_and_an_estimate() {
    let env = Env::start(seed_config()).await;
    // sample-3 is left out of the arbiter's members: it is protected.
    let members: Vec<(String, bool)> = [(0, true), (1, false), (2, true), (4, true)]
        .into_iter()
        .map(|(i, working)| (format!("sample-{i}"), working))
        .collect();
    env.sim.arbiter().seed(&members);
    let plan = env.plan("detailed", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into();
        doc["spec"]["waves"]["settle"] = "2s".into();
        doc["spec"]["hooks"] = serde_yaml::from_str(
            r#"
beforeRollout: [{name: announce, exec: {command: ["echo", "starting"]}}]
beforeWave: [{name: pause, sleep: {duration: 1s}}]
afterWaveReady: [{name: smoke, exec: {command: ["true"]}}]
afterRollout: [{name: sign-off, approval: {message: "check the dashboards"}}]
"#,
        )
        .unwrap();
    });
    let out = snapshot(&env, "plan-detailed", &["plan", path_str(&plan)]).await;
    support::assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("(finalize: partition 1,"),
        "{}",
        support::describe(&out)
    );
    let out = snapshot(
        &env,
        "plan-detailed-json",
        &["plan", path_str(&plan), "--output", "json"],
    )
    .await;
    support::assert_exit(&out, 0);
}
