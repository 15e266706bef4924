//! The state directory and how executor errors become exit codes.

use std::path::PathBuf;

use baton_engine::executor::{ExecError, RunOptions};

use crate::args::GlobalArgs;
use crate::exit::ExitStatus;
use crate::printer;

/// `--state-dir`, `$ENGINE_STATE_DIR`, then the XDG default.
pub fn state_dir(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    match &global.state_dir {
        Some(dir) => Ok(dir.clone()),
        None => baton_engine::executor::default_state_dir().ok_or_else(|| {
            anyhow::anyhow!("cannot find a state directory: set --state-dir or ENGINE_STATE_DIR")
        }),
    }
}

pub fn run_options(
    global: &GlobalArgs,
    accept_risk: bool,
    replan: bool,
) -> anyhow::Result<RunOptions> {
    Ok(RunOptions {
        state_dir: state_dir(global)?,
        accept_risk,
        replan,
    })
}

/// Print an executor error for the operator and pick its exit code.
pub fn report_exec_error(error: ExecError) -> anyhow::Result<ExitStatus> {
    let status = exec_error_status(&error);
    printer::error_chain(&anyhow::Error::new(error));
    Ok(status)
}

pub fn exec_error_status(error: &ExecError) -> ExitStatus {
    match error {
        ExecError::NeedsAcceptRisk { .. } => ExitStatus::Failed,
        ExecError::Locked { .. } => ExitStatus::Locked,
        _ => ExitStatus::Usage,
    }
}
