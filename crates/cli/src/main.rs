//! The `engine` binary: parse flags, call the library, map the outcome to an exit code.

use std::process::ExitCode;

mod alloc;
mod args;
mod cluster;
mod commands;
mod exit;
mod metrics;
mod printer;
mod progress;
mod rollout;
mod state;

fn main() -> ExitCode {
    let refused = alloc::tune();
    let cli = args::parse();
    printer::init_tracing(&cli.global);
    if !refused.is_empty() {
        tracing::debug!(?refused, "malloc settings not applied");
    }
    let status = commands::dispatch(cli);
    ExitCode::from(status as u8)
}
