//! `engine sim serve`: the simulator for kubectl and other tools; `engine sim kubelet` and
//! `engine sim arbiter`: the stand-ins a real cluster without them needs (baton-testbed's).

use std::time::Duration;

use anyhow::Context as _;
use baton_sim::{Sim, SimConfig};
use baton_testbed::kubelet::{Kubelet, KubeletOptions};

use crate::args::{GlobalArgs, SimArbiterArgs, SimKubeletArgs, SimServeArgs};
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
        let served = sim.serve().await.with_context(|| {
            format!(
                "cannot bind the simulator (API port {}, arbiter port {}); is another simulator \
                 running? Pass --arbiter-port 0 for any free port and point the plan's \
                 arbiter.url at the printed URL",
                args.port, args.arbiter_port
            )
        })?;
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

/// The stand-in kubelet until SIGINT or SIGTERM.
pub fn kubelet(global: &GlobalArgs, args: &SimKubeletArgs) -> anyhow::Result<ExitStatus> {
    let options = KubeletOptions {
        namespace: args.namespace.clone(),
        node: args.node.clone(),
        ready_delay: Duration::from_millis(args.ready_delay_ms),
    };
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        // Fail now on a cluster that cannot be reached, rather than retrying in silence.
        client
            .apiserver_version()
            .await
            .context("cannot reach the API server")?;
        crate::printer::out(serde_json::json!({
            "kubelet": {"node": options.node, "namespace": options.namespace},
        }));
        tokio::select! {
            () = Kubelet::run(client, options) => {}
            () = wait_for_stop() => {}
        }
        Ok(ExitStatus::Success)
    })
}

/// A standalone arbiter until SIGINT or SIGTERM.
pub fn arbiter(global: &GlobalArgs, args: &SimArbiterArgs) -> anyhow::Result<ExitStatus> {
    let _ = global;
    if let Some(stranger) = args.working.iter().find(|w| !args.members.contains(w)) {
        anyhow::bail!("--working names {stranger}, which is not in --members");
    }
    let members: Vec<(String, bool)> = args
        .members
        .iter()
        .map(|m| (m.clone(), args.working.contains(m)))
        .collect();
    cluster::runtime()?.block_on(async {
        let served =
            baton_testbed::arbiter::serve(baton_testbed::arbiter::seeded(&members), args.port)
                .await
                .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
        crate::printer::out(serde_json::json!({ "arbiter": served.url }));
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
