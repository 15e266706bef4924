//! `engine sim`.

use crate::args::{GlobalArgs, SimServeArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &SimServeArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine sim` is not available in this build yet")
}
