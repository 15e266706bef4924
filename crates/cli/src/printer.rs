//! The only place that writes to the terminal. Data goes to stdout; progress, warnings
//! and errors go to stderr. `NO_COLOR` is respected.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, OutputFormat};

/// Logs go to stderr; `RUST_LOG` wins over `-v`/`-q`.
pub fn init_tracing(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,baton_engine=info,baton_steps=info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_enabled())
        .try_init();
}

/// Colour only on a terminal and when `NO_COLOR` is unset.
pub fn color_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Print a data line on stdout. A closed pipe (`engine history | head`) is not an
/// error: the reader has all it wanted, so the process exits quietly with success.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write as _;
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

/// Print a message for the operator on stderr.
pub fn err(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

/// Print an error with its whole chain of causes, one per line.
pub fn error_chain(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Whether data should be JSON.
pub fn is_json(global: &GlobalArgs) -> bool {
    global.output == OutputFormat::Json
}
