//! `engine approve RUN`: release the approval gate the run waits at. Recorded with the
//! operator (`$USER@hostname`), the reason and the time. Goes through the process driving
//! the run when there is one, else into the run's database for the next `resume`.

use baton_engine::{control, executor};

use crate::args::{GateArgs, GlobalArgs};
use crate::commands::status::state_dir;
use crate::exit::ExitStatus;
use crate::printer;

pub fn run(global: &GlobalArgs, args: &GateArgs) -> anyhow::Result<ExitStatus> {
    if args.cluster.in_cluster {
        return crate::commands::in_cluster::request(
            global,
            args,
            baton_controller::requests::Kind::Approve,
        );
    }
    let by = control::operator();
    let receipt = executor::approve(
        &state_dir(global)?,
        &args.run,
        None,
        &by,
        args.reason.as_deref(),
    )?;
    if printer::is_json(global) {
        printer::out_json(&serde_json::json!({
            "run": args.run,
            "gate": receipt.gate.to_string(),
            "by": by,
            "already": receipt.already,
            "live": receipt.live,
        }));
    } else if receipt.already {
        printer::out(format!(
            "{} of {} was already approved",
            receipt.gate, args.run
        ));
    } else if receipt.live {
        printer::out(format!(
            "approved {} of {} as {by}; the run continues",
            receipt.gate, args.run
        ));
    } else {
        printer::out(format!(
            "approved {} of {} as {by}; it applies on `engine resume {}`",
            receipt.gate, args.run, args.run
        ));
    }
    Ok(ExitStatus::Success)
}
