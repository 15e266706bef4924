//! `engine graph`.

use crate::args::{GlobalArgs, GraphArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &GraphArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine graph` is not available in this build yet")
}
