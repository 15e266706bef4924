//! `engine demo`.

use crate::args::{GlobalArgs, DemoArgs};
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let _ = args;
    anyhow::bail!("`engine demo` is not available in this build yet")
}
