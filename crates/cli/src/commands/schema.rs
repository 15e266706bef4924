//! `engine schema`.

use crate::args::{GlobalArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    anyhow::bail!("`engine schema` is not available in this build yet")
}
