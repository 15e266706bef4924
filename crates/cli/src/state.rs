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
        operator: None,
    })
}

/// Print an executor error for the operator and pick its exit code.
pub fn report_exec_error(error: ExecError) -> anyhow::Result<ExitStatus> {
    let status = exec_error_status(&error);
    printer::error_chain(&anyhow::Error::new(error));
    Ok(status)
}

/// Exit 2 is the contract's "nothing changed": only refusals that are decided before
/// anything is written get it. A store, graph or control failure can strike mid-run (a full
/// disk), so it is 1: the run failed and is resumable.
pub fn exec_error_status(error: &ExecError) -> ExitStatus {
    match error {
        ExecError::NeedsAcceptRisk { .. }
        | ExecError::Store(_)
        | ExecError::Graph { .. }
        | ExecError::Control { .. }
        | ExecError::Refused { .. } => ExitStatus::Failed,
        ExecError::Locked { .. } => ExitStatus::Locked,
        ExecError::UnknownRun { .. }
        | ExecError::AmbiguousRun { .. }
        | ExecError::PlanChanged { .. }
        | ExecError::RunExists { .. }
        | ExecError::UnfinishedOnTarget { .. }
        | ExecError::NoRecord { .. }
        | ExecError::Finished { .. }
        | ExecError::StoredPlan { .. }
        | ExecError::NothingToApprove { .. }
        | ExecError::NoSuchGate { .. }
        | ExecError::StateDir { .. }
        // Found when the record is opened, before anything is written.
        | ExecError::Corrupt { .. } => ExitStatus::Usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_engine::store::StoreError;

    #[test]
    fn only_refusals_decided_before_any_write_exit_2() {
        let run = || "r".to_owned();
        let cases = [
            (
                ExecError::UnknownRun {
                    run: run(),
                    known: vec![],
                },
                ExitStatus::Usage,
            ),
            (ExecError::Finished { run: run() }, ExitStatus::Usage),
            (ExecError::Locked { run: run() }, ExitStatus::Locked),
            (
                ExecError::Store(StoreError::Write {
                    path: "state".into(),
                    source: sled::Error::Io(std::io::Error::other("No space left on device")),
                }),
                ExitStatus::Failed,
            ),
            (ExecError::Graph { detail: "x".into() }, ExitStatus::Failed),
        ];
        for (error, want) in cases {
            assert_eq!(exec_error_status(&error), want, "{error}");
        }
    }
}
