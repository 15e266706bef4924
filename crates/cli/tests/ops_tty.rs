//! The live progress display under a real pseudo-terminal. tmux runs `engine run`
//! against a simulator hosted in this process; the pane is read while the run goes on
//! (the live display must be there) and after it ends (it must be gone without a trace:
//! no spinner, no half-erased lines, no raw escape sequences, the summary intact, the
//! cursor shown and the terminal's modes as they were).
//!
//! Needs `tmux` on the PATH (`apt-get install -y tmux`); without it these tests fail.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use baton_sim::SimConfig;
use regex::Regex;
use support::{Env, path_str, seed_config};

/// The spinner's frames (indicatif's default) and the blank it ends on.
fn is_spinner_char(c: char) -> bool {
    ('\u{2800}'..='\u{28ff}').contains(&c)
}

/// A tmux server of this test's own (`-L`), killed and its socket removed when dropped.
struct Tmux {
    socket: String,
    socket_path: Option<PathBuf>,
}

impl Tmux {
    /// Start a detached 120×40 session running `script`.
    fn start(name: &str, script: &Path) -> Tmux {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.as_ref().is_ok_and(|out| out.status.success()),
            "tmux is needed to test the live display under a terminal, and it is not on \
             the PATH ({version:?}); install it: apt-get install -y tmux"
        );
        let mut tmux = Tmux {
            socket: format!("baton-tty-{}-{name}", std::process::id()),
            socket_path: None,
        };
        let out = tmux
            .command()
            .args(["new-session", "-d", "-s", "run", "-x", "120", "-y", "40"])
            .arg(format!("sh {}", path_str(script)))
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let path = tmux.tmux(&["display-message", "-p", "#{socket_path}"]);
        tmux.socket_path = Some(PathBuf::from(path.trim()));
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"])
            .env_remove("TMUX");
        cmd
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen as text (escape sequences interpreted by tmux).
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "run"])
    }

    /// The visible screen with its colour and attribute sequences.
    fn screen_with_escapes(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "run"])
    }

    /// Everything the pane showed, scroll-back included, as text.
    fn history(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-", "-E", "-", "-t", "run"])
    }

    fn send_keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "run", keys]);
    }

    fn cursor_visible(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "run", "#{cursor_flag}"])
            .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A shell script that runs `engine run PLAN` with the environment's kubeconfig and
/// state dir, records the terminal's modes before and after and the exit code, then
/// stays so the pane can still be read. A typed Ctrl-C reaches the script too: it
/// traps it, so only the engine acts on it.
fn run_script(env: &Env, plan: &Path) -> (PathBuf, PathBuf) {
    let dir = env.dir.path();
    let exit = dir.join("exit-code");
    let script = dir.join("run.sh");
    let text = format!(
        "cd '{dir}'\n\
         trap : INT\n\
         stty -a > stty-before\n\
         NO_COLOR=1 '{engine}' run '{plan}' --kubeconfig '{kubeconfig}' --state-dir '{state}'\n\
         echo $? > exit-code.tmp\n\
         stty -a > stty-after\n\
         mv exit-code.tmp '{exit}'\n\
         exec sleep 600\n",
        dir = path_str(dir),
        engine = env!("CARGO_BIN_EXE_engine"),
        plan = path_str(plan),
        kubeconfig = path_str(&env.kubeconfig),
        state = path_str(&env.state),
        exit = path_str(&exit),
    );
    std::fs::write(&script, text).unwrap();
    (script, exit)
}

/// Polls the screen until `found` accepts it; returns that screen.
async fn screen_until(tmux: &Tmux, what: &str, found: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let screen = tmux.screen();
        if found(&screen) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the screen:\n{screen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the script to record the engine's exit code.
async fn exit_code(tmux: &Tmux, exit: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(code) = std::fs::read_to_string(exit) {
            return code.trim().parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end; the screen:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live header: a spinner frame, the run, the target and the wave.
fn live_header(run: &str) -> Regex {
    Regex::new(&format!(
        r"(?m)^[\u{{2800}}-\u{{28ff}}] {run} on default/sample · wave \d+ \(partition \d+\)  \d+\.\ds$"
    ))
    .unwrap()
}

/// What must never be left on the screen once the run is over.
fn assert_no_garbage(history: &str) {
    let escape_tail = Regex::new(r"\[[0-9;?]*[ABCDGHJKlhm]").unwrap();
    for (n, line) in history.lines().enumerate() {
        assert!(
            !line.chars().any(is_spinner_char),
            "line {n} keeps a spinner frame: {line:?}\n{history}"
        );
        assert!(
            !line.contains('\u{1b}') && !line.contains("^["),
            "line {n} shows a raw escape sequence: {line:?}\n{history}"
        );
        assert!(
            !escape_tail.is_match(line),
            "line {n} shows the tail of an escape sequence: {line:?}\n{history}"
        );
        for live_only in [
            "POD       ROLE",
            ": waiting for ",
            "updating in wave",
            ": running",
        ] {
            assert!(
                !line.contains(live_only),
                "line {n} is left over from the live display: {line:?}\n{history}"
            );
        }
    }
}

/// The lines of `history` that match each pattern, in order; fails naming the first
/// pattern with no matching line after the previous one.
fn assert_lines_in_order(history: &str, patterns: &[&str]) {
    let lines: Vec<&str> = history.lines().collect();
    let mut from = 0;
    for pattern in patterns {
        let re = Regex::new(&format!("^{pattern}$")).unwrap();
        match lines[from..].iter().position(|l| re.is_match(l)) {
            Some(at) => from += at + 1,
            None => panic!("no line matching {pattern:?} after line {from}:\n{history}"),
        }
    }
}

/// Whether the terminal echoes typed keys, control characters as `^C`.
fn echoes_control_chars(stty: &str) -> bool {
    let on = |name: &str| stty.split_whitespace().any(|flag| flag == name);
    on("echo") && on("echoctl")
}

fn slow_pods() -> SimConfig {
    SimConfig {
        pod_ready_ms: 700,
        ..seed_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_display_shows_the_wave_and_pods_then_leaves_only_the_summary() {
    let env = Env::start(slow_pods()).await;
    let plan = env.plan("tty", |_| {});
    let (script, exit) = run_script(&env, &plan);
    let tmux = Tmux::start("ok", &script);

    let header = live_header("tty");
    // A wave's pods take 700 ms to be ready: the display shows the wait, first as the wave's
    // pods, then as each pod in the way and why.
    let waiting = Regex::new(
        r"(?m)^  wave-\d+/wait-updated: waiting for sample-\d(.* to run the update revision and be ready|: .*)$",
    )
    .unwrap();
    // One row per pod: role, revision (old/new), readiness, the wave's note.
    let pod_row = Regex::new(
        r"(?m)^  sample-[0-4]  (working|idle)  +(old|new)  +(ready|not ready|-)( +(updating|updated) in wave \d)?$",
    )
    .unwrap();
    // Polled until one capture holds all of it (a capture may catch a redraw midway).
    screen_until(&tmux, "the live display of a wave's wait", |s| {
        header.is_match(s)
            && s.contains("POD       ROLE     REVISION  READY")
            && waiting.is_match(s)
            && pod_row.find_iter(s).count() == 5
    })
    .await;
    // Keys typed while the display is drawn must not scribble over it.
    tmux.send_keys("typed ahead");
    tmux.send_keys("Enter");
    let coloured = tmux.screen_with_escapes();
    assert!(
        !Regex::new(r"\x1b\[[0-9;]*m").unwrap().is_match(
            &coloured
                .replace("\x1b[0m", "")
                .replace("\x1b[39m", "")
                .replace("\x1b[49m", "")
        ),
        "NO_COLOR is set, yet the display is coloured:\n{coloured:?}"
    );

    assert_eq!(exit_code(&tmux, &exit).await, 0, "{}", tmux.history());
    env.assert_finished_clean(5, 3);
    let history = tmux.history();
    assert_no_garbage(&history);
    assert_lines_in_order(
        &history,
        &[
            "run tty: upgrading default/sample",
            r"wave 1: updating sample-1, sample-3 \(partition 3\)",
            r"wave 2: updating sample-0, sample-2 \(partition 1\)",
            r"wave 3: updating sample-4 \(partition 0\)",
            "run tty: succeeded",
            "NAME      ROLE     IMAGE          REVISION +READY",
            r"sample-0  working  alpine:3\.18\.0  sample-[0-9a-z]+  true",
            r"sample-1  working  alpine:3\.18\.0  sample-[0-9a-z]+  true",
            r"sample-2  idle     alpine:3\.18\.0  sample-[0-9a-z]+  true",
            r"sample-3  working  alpine:3\.18\.0  sample-[0-9a-z]+  true",
            r"sample-4  idle     alpine:3\.18\.0  sample-[0-9a-z]+  true",
        ],
    );
    assert!(
        !history.contains("typed ahead"),
        "keys typed during the run were echoed into the display:\n{history}"
    );
    assert!(tmux.cursor_visible(), "the cursor stays hidden");
    let dir = env.dir.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("stty-after")).unwrap(),
        std::fs::read_to_string(dir.join("stty-before")).unwrap(),
        "the terminal's modes changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_a_terminal_erases_the_live_display_and_exits_130() {
    let env = Env::start(slow_pods()).await;
    let plan = env.plan("tty-int", |_| {});
    let (script, exit) = run_script(&env, &plan);
    let tmux = Tmux::start("int", &script);
    let dir = env.dir.path();

    let header = live_header("tty-int");
    screen_until(&tmux, "the live display of a wave", |s| header.is_match(s)).await;
    let before = std::fs::read_to_string(dir.join("stty-before")).unwrap();
    assert!(
        echoes_control_chars(&before),
        "the pane's terminal does not echo control characters, so this test proves \
         nothing about a typed ^C:\n{before}"
    );
    tmux.send_keys("C-c");

    assert_eq!(exit_code(&tmux, &exit).await, 130, "{}", tmux.history());
    let history = tmux.history();
    assert_no_garbage(&history);
    assert_lines_in_order(
        &history,
        &[
            "run tty-int: upgrading default/sample",
            r"signal received: stopping at the next safe point \(again to exit now\)",
            "run tty-int: interrupted",
            "interrupted; state is checkpointed, continue with `engine resume`",
            "NAME      ROLE     IMAGE          REVISION +READY",
        ],
    );
    assert!(tmux.cursor_visible(), "the cursor stays hidden");
    assert_eq!(
        std::fs::read_to_string(dir.join("stty-after")).unwrap(),
        before,
        "the terminal's modes were not restored"
    );

    let resumed = env.engine(&["resume", "tty-int"]).await;
    support::assert_exit(&resumed, 0);
    env.assert_finished_clean(5, 3);
}
