//! Serving the simulator over TCP on 127.0.0.1, and the kubeconfig that
//! points `kubectl` and kube-rs at it (plain HTTP, no credentials).

use std::path::Path;

use axum::serve::ListenerExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running simulator: the API server and the arbiter, each on its own port.
/// The servers run until [`Served::shutdown`] or until the runtime ends.
pub struct Served {
    /// `http://127.0.0.1:<port>`
    pub apiserver: String,
    /// `http://127.0.0.1:<port>`
    pub arbiter: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Served {
    /// Binds both listeners, then serves in background tasks.
    pub(crate) async fn start(
        api: axum::Router,
        api_port: u16,
        arbiter: axum::Router,
        arbiter_port: u16,
    ) -> std::io::Result<Served> {
        let api_listener = TcpListener::bind(("127.0.0.1", api_port)).await?;
        let arbiter_listener = TcpListener::bind(("127.0.0.1", arbiter_port)).await?;
        let apiserver = format!("http://{}", api_listener.local_addr()?);
        let arbiter_url = format!("http://{}", arbiter_listener.local_addr()?);
        // Like a real API server: watch events are small writes that must not wait
        // for the peer's delayed ACK (Nagle's algorithm would hold them ~40 ms).
        let api_listener = api_listener.tap_io(no_delay);
        let arbiter_listener = arbiter_listener.tap_io(no_delay);
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(e) = axum::serve(api_listener, api).await {
                    tracing::error!(error = %e, "simulated apiserver stopped");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = axum::serve(arbiter_listener, arbiter).await {
                    tracing::error!(error = %e, "simulated arbiter stopped");
                }
            }),
        ];
        Ok(Served {
            apiserver,
            arbiter: arbiter_url,
            tasks,
        })
    }

    /// A kubeconfig with one cluster, user and context (`baton-sim`,
    /// namespace `default`) pointing at the API server.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.apiserver)
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.kubeconfig())
    }

    /// Stops serving (open connections are dropped).
    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The kubeconfig YAML for an API server URL.
pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: baton-sim
  cluster:
    server: {server}
users:
- name: baton-sim
  user: {{}}
contexts:
- name: baton-sim
  context:
    cluster: baton-sim
    user: baton-sim
    namespace: default
current-context: baton-sim
preferences: {{}}
"
    )
}

fn no_delay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kubeconfig_is_yaml_naming_the_server() {
        let v: serde_json::Value =
            serde_yaml::from_str(&super::kubeconfig("http://127.0.0.1:1")).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["server"], "http://127.0.0.1:1");
        assert_eq!(v["current-context"], "baton-sim");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
    }
}
