//! `engine approve`.

use crate::args::{GlobalArgs, GateArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &GateArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine approve` is not available in this build yet")
}
