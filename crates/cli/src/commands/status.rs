//! `engine status`.

use crate::args::{GlobalArgs, OptRunArg};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &OptRunArg) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine status` is not available in this build yet")
}
