//! `engine list`.

use crate::args::{GlobalArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    anyhow::bail!("`engine list` is not available in this build yet")
}
