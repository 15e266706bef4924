//! A standalone arbiter: the simulator's arbiter (SPEC §3, `GET /v1/members`,
//! `POST /v1/handover`) served on its own port, for clusters that have none (a real control
//! plane, a user's test cluster).

use std::io;

use axum::serve::ListenerExt as _;
use baton_sim::arbiter::{Arbiter, ArbiterConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A served arbiter; dropping it stops serving.
#[derive(Debug)]
pub struct ServedArbiter {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The arbiter itself: read its roles, change its behaviour.
    pub arbiter: Arbiter,
    task: JoinHandle<()>,
}

impl Drop for ServedArbiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An arbiter with `members` (`(pod, working)`) and the default (well-behaved) behaviour.
pub fn seeded(members: &[(String, bool)]) -> Arbiter {
    let arbiter = Arbiter::new(ArbiterConfig::default());
    arbiter.seed(members);
    arbiter
}

/// Serves `arbiter` on `127.0.0.1:port` (0 = any free port) in the current runtime.
pub async fn serve(arbiter: Arbiter, port: u16) -> io::Result<ServedArbiter> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    // Small answers must not wait for the peer's delayed ACK, as with the simulator.
    let listener = listener.tap_io(no_delay);
    let router = arbiter.router();
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "arbiter stopped");
        }
    });
    Ok(ServedArbiter { url, arbiter, task })
}

fn no_delay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
}
