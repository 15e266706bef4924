//! Issue #12: the README's operator tour works verbatim on a fresh machine. The commands are
//! read from README.md itself, so a tour that drifts from the program fails here.
//!
//! Only the kubeconfig path of the `engine sim serve` line is swapped for a private one, and the
//! state directory comes from `ENGINE_STATE_DIR`, as an operator's environment would give it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The README's `$ engine …` commands, each with the output lines it shows under it.
fn tour() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_text = false;
    for line in README.lines() {
        if line.starts_with("```") {
            in_text = line == "```text";
            continue;
        }
        if !in_text {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push((cmd.to_owned(), Vec::new()));
        } else if let Some((_, shown)) = out.last_mut() {
            shown.push(line.to_owned());
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn engine(args: &[&str], kubeconfig: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env("ENGINE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("engine runs")
}

/// Kills the simulator when the test ends, however it ends.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_tour_runs_verbatim_against_engine_sim_serve() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let state = dir.path().join("state");

    let serve_line = README
        .lines()
        .find(|l| l.starts_with("engine sim serve"))
        .expect("the README starts the simulator");
    let serve_cmd = serve_line
        .split(" &")
        .next()
        .unwrap()
        .replace("/tmp/sim.kubeconfig", kubeconfig.to_str().unwrap());
    let args: Vec<&str> = serve_cmd.split_whitespace().skip(1).collect();
    let serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "engine sim serve never got ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let tour = tour();
    let wanted = [
        "engine validate plans/seed.yaml",
        "engine plan plans/seed.yaml",
        "engine run plans/seed.yaml",
        "engine status sample-to-3-18-0",
        "engine history sample-to-3-18-0",
    ];
    for cmd in wanted {
        let (_, shown) = tour
            .iter()
            .find(|(c, _)| c == cmd)
            .unwrap_or_else(|| panic!("the README tour no longer shows `{cmd}`"));
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let out = engine(&args, &kubeconfig, &state);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "`{cmd}` failed:\n{all}");
        // The dry run and the check are deterministic: every line the README shows is printed.
        if cmd.contains("validate") || cmd.contains(" plan ") {
            for line in shown.iter().filter(|l| !l.trim().is_empty()) {
                assert!(
                    all.lines().any(|l| l.trim_end() == line.trim_end()),
                    "`{cmd}` does not print the README's line {line:?}:\n{all}"
                );
            }
        }
    }
    drop(serve);
}
