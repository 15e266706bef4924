//! `engine history`.

use crate::args::{GlobalArgs, RunArg};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &RunArg) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine history` is not available in this build yet")
}
