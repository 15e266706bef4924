//! `engine controller`: the in-cluster mode's controller (logic in `baton-controller`).
//! Flags, the cluster's configuration, signals and metrics are this command's; electing
//! a leader and driving UpgradePlans are the library's.

use anyhow::Context as _;
use baton_controller::controller::{self, Options};
use baton_steps::lease::LeaseConfig;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::args::{ControllerArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::{cluster, printer};

pub fn run(global: &GlobalArgs, args: &ControllerArgs) -> anyhow::Result<ExitStatus> {
    let lease = LeaseConfig {
        duration: args.lease_duration.as_std(),
        renew_every: args.renew_every.as_std(),
    };
    if lease.renew_every.is_zero() || lease.renew_every >= lease.duration {
        printer::err("error: --renew-every must be shorter than --lease-duration (and not zero)");
        return Ok(ExitStatus::Usage);
    }
    // Scratch space of this process: the runs' live views and control sockets.
    let base = global
        .state_dir
        .clone()
        .or_else(baton_engine::executor::default_state_dir)
        .unwrap_or_else(std::env::temp_dir);
    let state_dir = base.join("controller").join(std::process::id().to_string());
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let result = cluster::runtime()?.block_on(async {
        let mut config = cluster::config(global).await?;
        // As every client of the engine: no silent resends under the steps' own retries.
        config.default_retry = false;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let (events, _) = broadcast::channel(4096);
        if let Some(addr) = args.metrics_addr {
            let server = crate::metrics::serve(addr, events.subscribe()).await?;
            printer::err(format!("metrics on http://{}/metrics", server.addr));
        }
        let shutdown = CancellationToken::new();
        crate::rollout::spawn_signal_handler(shutdown.clone());
        let options = Options {
            namespace,
            watch_namespace: args.watch_namespace.clone(),
            identity: baton_controller::leader::identity(),
            state_dir: state_dir.clone(),
            lease,
            chunk_budget: args.log_chunk_bytes,
        };
        printer::err(format!(
            "controller {} in namespace {} (lease {})",
            options.identity,
            options.namespace,
            baton_controller::leader::lease_name()
        ));
        controller::run(config, options, events, shutdown)
            .await
            .context("the controller stopped")
    });
    let _ = std::fs::remove_dir_all(&state_dir);
    result.map(|()| ExitStatus::Success)
}
