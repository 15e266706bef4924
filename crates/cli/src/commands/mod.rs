//! One module per subcommand. Each returns the exit status it wants; an `Err` is
//! reported with its chain and exits 2 (bad input, nothing changed) from a command that
//! cannot write, and 1 (failed, resumable) from one that can: after such an error nobody can
//! promise that nothing changed (a full disk, a cluster gone mid-write).

use crate::args::{Cli, Command, SimCommand};
use crate::exit::ExitStatus;
use crate::printer;

mod abort;
mod approve;
mod completions;
mod controller;
mod crd;
mod delete;
mod demo;
mod graph;
mod history;
mod in_cluster;
mod list;
mod plan;
mod plan_safety;
mod resume;
mod run;
mod schema;
mod sim;
mod status;
mod validate;

pub fn dispatch(cli: Cli) -> ExitStatus {
    let global = cli.global;
    let may_write = matches!(
        cli.command,
        Command::Run(_)
            | Command::Resume(_)
            | Command::Abort(_)
            | Command::Approve(_)
            | Command::Demo(_)
            | Command::Controller(_)
    );
    let result = match cli.command {
        Command::Validate(a) => validate::run(&global, &a),
        Command::Schema => schema::run(&global),
        Command::Crd => crd::run(&global),
        Command::Graph(a) => graph::run(&global, &a),
        Command::Plan(a) => plan::run(&global, &a),
        Command::Run(a) => run::run(&global, &a),
        Command::Resume(a) => resume::run(&global, &a),
        Command::Status(a) => status::run(&global, &a),
        Command::List => list::run(&global),
        Command::Abort(a) => abort::run(&global, &a),
        Command::Approve(a) => approve::run(&global, &a),
        Command::History(a) => history::run(&global, &a),
        Command::Delete(a) => delete::run(&global, &a),
        Command::Gc(a) => delete::gc(&global, &a),
        Command::Demo(a) => demo::run(&global, &a),
        Command::Controller(a) => controller::run(&global, &a),
        Command::Sim(SimCommand::Serve(a)) => sim::run(&global, &a),
        Command::Sim(SimCommand::Kubelet(a)) => sim::kubelet(&global, &a),
        Command::Sim(SimCommand::Arbiter(a)) => sim::arbiter(&global, &a),
        Command::Completions { shell } => completions::run(shell),
    };
    match result {
        Ok(status) => status,
        Err(error) => {
            printer::error_chain(&error);
            if let Some(exec) = error.downcast_ref::<baton_engine::executor::ExecError>() {
                crate::state::exec_error_status(exec)
            } else if may_write {
                ExitStatus::Failed
            } else {
                ExitStatus::Usage
            }
        }
    }
}

/// Who is acting, for audit records: `user@host`.
pub fn who() -> String {
    baton_engine::control::operator()
}
