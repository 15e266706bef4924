//! `engine run`.

use crate::args::{GlobalArgs, RunArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine run` is not available in this build yet")
}
