//! `engine plan`.

use crate::args::{GlobalArgs, PlanArg};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &PlanArg) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine plan` is not available in this build yet")
}
