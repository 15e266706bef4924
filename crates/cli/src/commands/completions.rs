//! `engine completions SHELL`.

use clap::CommandFactory;

use crate::args::Cli;
use crate::exit::ExitStatus;

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<ExitStatus> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "engine", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}
