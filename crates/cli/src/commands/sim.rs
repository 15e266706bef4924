//! `engine sim serve`: the simulator for kubectl and other tools.

use anyhow::Context as _;
use baton_sim::{Sim, SimConfig};

use crate::args::{GlobalArgs, SimServeArgs};
use crate::cluster;
use crate::exit::ExitStatus;

pub fn run(global: &GlobalArgs, args: &SimServeArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    let mut config = SimConfig {
        replicas: args.replicas,
        working: args.working.clone(),
        image: args.image.clone(),
        pod_ready_ms: args.pod_ready_ms,
        empty: args.empty,
        api_port: args.port,
        arbiter_port: args.arbiter_port,
        ..SimConfig::default()
    };
    if let Some(faults) = &args.faults {
        config.faults = serde_json::from_str(faults).context("--faults is not valid fault JSON")?;
    }
    if let Some(arbiter) = &args.arbiter {
        config.arbiter =
            serde_json::from_str(arbiter).context("--arbiter is not valid arbiter JSON")?;
    }
    cluster::runtime()?.block_on(async {
        let sim = Sim::new(config);
        let served = sim.serve().await.context("cannot bind the simulator")?;
        let kubeconfig = match &args.kubeconfig_out {
            Some(path) => path.clone(),
            None => {
                std::env::temp_dir().join(format!("baton-sim-{}.kubeconfig", std::process::id()))
            }
        };
        served
            .write_kubeconfig(&kubeconfig)
            .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
        let ready = serde_json::json!({
            "kubeconfig": kubeconfig,
            "apiserver": served.apiserver,
            "arbiter": served.arbiter,
        });
        crate::printer::out(ready);
        wait_for_stop().await;
        Ok(ExitStatus::Success)
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
