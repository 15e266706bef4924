//! `engine resume`.

use crate::args::{GlobalArgs, ResumeArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &ResumeArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine resume` is not available in this build yet")
}
