//! The terminal writer for commands: data goes to stdout; warnings and errors go to stderr.
//! `NO_COLOR` is respected. (The piped progress stream in `progress` and the live display
//! in `progress::live` write to stderr themselves.)
//!
//! While a live progress display owns the bottom of the terminal (see `live`), every
//! line for stderr, log lines included, is printed above it through the display, so
//! messages and the redrawn area never overwrite each other.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, OutputFormat};
use crate::progress::QuietEcho;

/// The output flags of this process, recorded once by [`init_tracing`].
#[derive(Debug, Clone, Copy)]
struct Settings {
    quiet: bool,
    json: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The live display currently drawn on stderr, if any, with the terminal modes it
/// changed (restored when it is dropped).
static LIVE: Mutex<Option<(MultiProgress, QuietEcho)>> = Mutex::new(None);

/// Logs go to stderr; `RUST_LOG` wins over `-v`/`-q`.
pub fn init_tracing(global: &GlobalArgs) {
    let _ = SETTINGS.set(Settings {
        quiet: global.quiet,
        json: is_json(global),
    });
    // kube's client logs every failed request as an ERROR, including the ones the engine
    // retries and reports itself (`… (retrying)`, or the step's failure): below `-vv` those
    // lines only repeat, in Rust's words, what the progress already says.
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error,kube_client=off",
        (false, 0) => "warn,kube_client=off",
        (false, 1) => "info,baton_engine=info,baton_steps=info,kube_client=off",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| StderrLine(Vec::new()))
        .with_ansi(color_enabled())
        .try_init();
}

/// `-q`: progress lines are not printed, only errors.
pub fn is_quiet() -> bool {
    SETTINGS.get().is_some_and(|s| s.quiet)
}

/// Colour only on a terminal and when `NO_COLOR` is unset.
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Whether a run may draw a live display: stderr is a terminal that can move its
/// cursor, and neither `-q` nor `--output json` asked for plain output.
pub fn live_wanted() -> bool {
    let settings = SETTINGS.get().copied().unwrap_or(Settings {
        quiet: false,
        json: false,
    });
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    !settings.quiet && !settings.json && !dumb && std::io::stderr().is_terminal()
}

/// From now on, stderr lines go above `display` until [`detach_live`]; `modes` is
/// dropped (restoring the terminal) then.
pub fn attach_live(display: MultiProgress, modes: QuietEcho) {
    if let Ok(mut live) = LIVE.lock() {
        *live = Some((display, modes));
    }
}

/// Stderr lines go straight to stderr again; the terminal's modes are restored.
pub fn detach_live() {
    let attached = LIVE.lock().ok().and_then(|mut live| live.take());
    drop(attached);
}

/// Erase the live display, if one is drawn, restore the terminal and forget both. For
/// exits that skip the display's own orderly end (a second Ctrl-C).
pub fn clear_live() {
    let attached = LIVE.lock().ok().and_then(|mut live| live.take());
    if let Some((display, modes)) = attached {
        let _ = display.clear();
        drop(modes);
    }
}

/// The live display, when one is drawn on a terminal.
fn live() -> Option<MultiProgress> {
    LIVE.lock()
        .ok()
        .and_then(|live| live.as_ref().map(|(display, _)| display.clone()))
        .filter(|display| !display.is_hidden())
}

/// A time for a person: RFC 3339 in UTC, to the second. (JSON keeps the stored precision.)
pub fn time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// [`time`] of a time stored as text; the text itself when it is not RFC 3339.
pub fn time_text(at: &str) -> String {
    at.parse().map_or_else(|_| at.to_owned(), time)
}

/// Print a data line on stdout. A closed pipe (`engine history | head`) is not an
/// error: the reader has all it wanted, so the process exits quietly with success.
pub fn out(line: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}")
        && error.kind() == std::io::ErrorKind::BrokenPipe
    {
        #[allow(clippy::exit)]
        std::process::exit(0);
    }
}

/// Print a JSON value on stdout, one line.
pub fn out_json(value: &serde_json::Value) {
    out(value);
}

/// Print a message for the operator on stderr (above the live display, if any).
pub fn err(line: impl std::fmt::Display) {
    let line = line.to_string();
    match live() {
        Some(display) => {
            if display.println(&line).is_err() {
                eprintln!("{line}");
            }
        }
        None => eprintln!("{line}"),
    }
}

/// An error and its causes on one line, `: `-joined, in an operator's words.
pub fn chain_text(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        let (line, last) = baton_steps::env::cause_text(cause);
        parts.push(line);
        if last {
            break;
        }
    }
    parts.join(": ")
}

/// Print an error with its whole chain of causes, one per line.
pub fn error_chain(error: &anyhow::Error) {
    let mut text = String::from("error: ");
    for (i, cause) in error.chain().enumerate() {
        if i > 0 {
            text.push_str("\n  caused by: ");
        }
        // An API server's answer is told in words, once (its own sources repeat it).
        let (line, last) = baton_steps::env::cause_text(cause);
        text.push_str(&line);
        if last {
            break;
        }
    }
    err(text);
}

/// Whether data should be JSON.
pub fn is_json(global: &GlobalArgs) -> bool {
    global.output == OutputFormat::Json
}

/// One log record on its way to stderr. The formatter writes a record in pieces; it
/// is printed whole when dropped, so it can be put above the live display in one go.
struct StderrLine(Vec<u8>);

impl std::io::Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let record = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&record);
        };
        match live() {
            Some(display) => display.suspend(write),
            None => write(),
        }
    }
}
