//! Connecting to a cluster: kubeconfig and context from the common flags.

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::args::GlobalArgs;

/// A client for the cluster the flags name (`--kubeconfig`, `--context`, `$KUBECONFIG`,
/// then the usual defaults, in-cluster config included).
pub async fn client(global: &GlobalArgs) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config(global).await?).context("cannot build a Kubernetes client")
}

/// The configuration [`client`] builds its client from (`engine controller` builds more
/// than one client from it), without kube's own retry layer: that layer resends 429/503/504
/// answers unseen, while the engine retries by its own policy, step by step, and audits
/// each attempt of a write; a second, silent retry underneath would send a write the
/// history shows once.
pub async fn config(global: &GlobalArgs) -> anyhow::Result<kube::Config> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match &global.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .or_else(|_| kube::Config::incluster())
            .context("no usable kubeconfig found (use --kubeconfig)")?,
    };
    config.default_retry = false;
    Ok(config)
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
