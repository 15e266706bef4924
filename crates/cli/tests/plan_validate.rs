//! `engine validate` as a process, on every plan in `plans/` (all valid) and every
//! fixture in `tests/plans/invalid/` (each names the problems it must produce in
//! `# expect: LINE:COLUMN PATH | MESSAGE PART` header lines; `-` for no path).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `engine` from the workspace root so file names print as `tests/plans/...`.
fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("engine runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `.yaml` files of a workspace directory, as workspace-relative paths, sorted.
fn yaml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(workspace().join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

#[derive(Debug)]
struct Expect {
    line: u64,
    column: u64,
    path: String,
    message: String,
}

fn expectations(file: &str) -> Vec<Expect> {
    let source = std::fs::read_to_string(workspace().join(file)).unwrap();
    source
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (place, message) = rest.split_once(" | ").expect("`LINE:COL PATH | MESSAGE`");
            let (position, path) = place.split_once(' ').expect("`LINE:COL PATH`");
            let (line, column) = position.split_once(':').expect("`LINE:COL`");
            Expect {
                line: line.parse().unwrap(),
                column: column.parse().unwrap(),
                path: if path == "-" {
                    String::new()
                } else {
                    path.to_owned()
                },
                message: message.to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_example_plan_validates() {
    let plans = yaml_files("plans");
    assert!(plans.len() >= 3, "{plans:?}");
    for plan in &plans {
        let out = engine(&["validate", plan]);
        assert_eq!(out.status.code(), Some(0), "{plan}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with(&format!("ok: {plan} (")), "{stdout}");
        assert!(
            stdout.trim_end().ends_with(", target default/sample)"),
            "{stdout}"
        );
    }
    let out = engine(&["validate", "plans/seed.yaml"]);
    assert_eq!(
        text(&out.stdout),
        "ok: plans/seed.yaml (sample-to-3-18-0, target default/sample)\n"
    );

    let out = engine(&["validate", "plans/seed.yaml", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["name"], "sample-to-3-18-0");
    assert_eq!(json["target"]["namespace"], "default");
    assert_eq!(json["target"]["name"], "sample");
    assert_eq!(json["hash"].as_str().unwrap().len(), 64);
}

#[test]
fn every_invalid_plan_fails_with_its_expected_problems_located() {
    let fixtures = yaml_files("tests/plans/invalid");
    assert!(
        fixtures.len() >= 25,
        "at least 25 invalid plans, found {}",
        fixtures.len()
    );
    for file in &fixtures {
        let expected = expectations(file);
        assert!(!expected.is_empty(), "{file} has no `# expect:` line");

        let out = engine(&["validate", file]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}: nothing on stdout");
        for e in &expected {
            let arrow = format!("--> {file}:{}:{}\n", e.line, e.column);
            assert!(
                stderr.contains(&arrow),
                "{file}: expected {arrow:?} in\n{stderr}"
            );
            assert!(
                stderr.contains(&e.message),
                "{file}: expected {:?} in\n{stderr}",
                e.message
            );
            if !e.path.is_empty() {
                assert!(
                    stderr.contains(&format!("^ {}", e.path)),
                    "{file}: {} labelled in\n{stderr}",
                    e.path
                );
            }
        }

        let out = engine(&["validate", file, "--output", "json"]);
        assert_eq!(out.status.code(), Some(2), "{file} (json)");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["valid"], false);
        let errors = json["errors"].as_array().unwrap();
        assert_eq!(errors.len(), expected.len(), "{file}: {errors:#?}");
        for (got, want) in errors.iter().zip(&expected) {
            assert_eq!(got["file"], file.as_str());
            assert_eq!(got["line"], want.line, "{file}: {got}");
            assert_eq!(got["column"], want.column, "{file}: {got}");
            assert_eq!(got["path"], want.path.as_str(), "{file}: {got}");
            let message = got["message"].as_str().unwrap();
            assert!(
                message.contains(&want.message),
                "{file}: {message:?} should contain {:?}",
                want.message
            );
            // The YAML parser words its own messages; every other message says what was expected.
            let says_expected = message.contains("expected") || message.contains("required");
            assert!(
                says_expected || message.starts_with("invalid YAML"),
                "{file}: {message:?} says what was expected"
            );
        }
    }
}

#[test]
fn invalid_plan_reports_match_their_snapshots() {
    for file in yaml_files("tests/plans/invalid") {
        let out = engine(&["validate", &file]);
        let stem = Path::new(&file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        insta::assert_snapshot!(format!("invalid__{stem}"), text(&out.stderr));
    }
}

#[test]
fn an_unreadable_plan_is_a_usage_error() {
    let out = engine(&["validate", "tests/plans/no-such-plan.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read plan file tests/plans/no-such-plan.yaml: "),
        "{stderr}"
    );

    let out = engine(&[
        "validate",
        "tests/plans/no-such-plan.yaml",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"][0]["line"], Value::Null);
    assert_eq!(json["errors"][0]["file"], "tests/plans/no-such-plan.yaml");
}

/// The seed plan with `edit` applied to its text, in a temp dir; returns the dir and path.
fn seed_with(edit: impl FnOnce(String) -> Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let seed = std::fs::read_to_string(workspace().join("plans/seed.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, edit(seed)).unwrap();
    (dir, path)
}

/// `validate PATH --output json`: exit code and the first error.
fn first_error(path: &Path) -> (Option<i32>, Value) {
    let out = engine(&["validate", path.to_str().unwrap(), "--output", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json["errors"][0].clone())
}

/// Issue #12 item 10: a plan that is not UTF-8 is located (line:column of the first bad
/// byte, which the message names); a plan file larger than 1 MiB (or endless, /dev/zero)
/// is refused without reading it whole; a value quoted back is cut to 200 characters, and
/// so is the source line under the report; an empty token file and a duration beyond
/// any rollout (`584942417355h`) are refused by `validate`.
#[test]
fn bad_input_is_located_bounded_and_cut() {
    // Not UTF-8: line 11, column 14 of the seed plan (`    name: sam\xffple`).
    let (_dir, plan) = seed_with(|seed| {
        seed.into_bytes()
            .replace_first(b"name: sample\n", b"name: sam\xffple\n")
    });
    let (code, error) = first_error(&plan);
    assert_eq!(code, Some(2));
    let offset = std::fs::read(&plan)
        .unwrap()
        .iter()
        .position(|&b| b == 0xff)
        .unwrap();
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(11), Some(14)),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("byte {offset}"))),
        "{error}"
    );

    // Too large: a valid plan followed by 2 MiB of comments, and /dev/zero.
    let (_dir, plan) = seed_with(|seed| {
        let mut text = seed;
        for _ in 0..2048 {
            text.push('#');
            text.push_str(&"x".repeat(1023));
            text.push('\n');
        }
        text.into_bytes()
    });
    for path in [plan.as_path(), Path::new("/dev/zero")] {
        let out = engine(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{path:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("larger than 1 MiB"), "{path:?}: {stderr}");
    }

    // A 5000-character image is quoted back cut to 200 characters, on every line.
    let long = "a".repeat(5000);
    let (_dir, plan) = seed_with(|seed| {
        seed.replacen("main: alpine:3.18.0", &format!("main: {long}"), 1)
            .into_bytes()
    });
    let out = engine(&["validate", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("(5000 characters)"), "{stderr}");
    for line in stderr.lines() {
        let run = line
            .split(|c: char| c != 'a')
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(
            run <= 200,
            "a line echoes {run} characters of the value: {line:.300}"
        );
    }

    // An empty token file, and absurd durations.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let (_dir, plan) = seed_with(|seed| {
        seed.replacen(
            "    timeout: 5s\n",
            &format!("    timeout: 5s\n    tokenFile: {}\n", token.display()),
            1,
        )
        .into_bytes()
    });
    let (code, error) = first_error(&plan);
    assert_eq!(code, Some(2));
    assert_eq!(error["path"], "spec.arbiter.tokenFile", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("empty")),
        "{error}"
    );
    std::fs::write(&token, "s3cr3t\n").unwrap();
    assert_eq!(
        first_error(&plan).0,
        Some(0),
        "a token file with a token is fine"
    );

    for (field, from) in [
        ("spec.arbiter.timeout", "    timeout: 5s\n"),
        ("spec.waves.readyTimeout", "    readyTimeout: 10m\n"),
        ("spec.waves.settle", "    settle: 0s\n"),
    ] {
        let key = from.trim().split(':').next().unwrap();
        let (_dir, plan) = seed_with(|seed| {
            seed.replacen(from, &format!("    {key}: 584942417355h\n"), 1)
                .into_bytes()
        });
        let (code, error) = first_error(&plan);
        assert_eq!(code, Some(2), "{field}");
        assert_eq!(error["path"], field, "{error}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("too long")),
            "{error}"
        );
    }
}

/// `replacen` for bytes: the first occurrence only.
trait ReplaceFirst {
    fn replace_first(self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(self, from: &[u8], to: &[u8]) -> Vec<u8> {
        match self.windows(from.len()).position(|w| w == from) {
            Some(at) => [&self[..at], to, &self[at + from.len()..]].concat(),
            None => panic!("{:?} not found", String::from_utf8_lossy(from)),
        }
    }
}
