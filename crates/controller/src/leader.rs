//! Which replica drives the runs: the holder of the `coordination.k8s.io/v1` Lease
//! `baton-controller` in the controller's namespace. It is the run lock's Lease machinery
//! ([`baton_steps::lease`]) under another name: the same create-or-take-over on expiry
//! with `resourceVersion` preconditions, the same renewal that gives up trust one renewal
//! period before the server would let the lease expire. A replica that loses it sees its
//! guard's `lost` token cancelled and stops its runs at a safe point at once.

use std::time::Duration;

use baton_steps::lease::{self, LeaseConfig, LeaseError, LeaseGuard};
use tokio_util::sync::CancellationToken;

/// The Lease is `baton-<LEASE_SUFFIX>`, i.e. `baton-controller`.
pub const LEASE_SUFFIX: &str = "controller";

/// The Lease's name.
pub fn lease_name() -> String {
    lease::lease_name(LEASE_SUFFIX)
}

/// `<hostname>/<pid>`: this replica, as the Lease and the plans' `status.leader` name it.
pub fn identity() -> String {
    format!("{}/{}", baton_steps::events::hostname(), std::process::id())
}

/// Who competes for the Lease, and how.
#[derive(Clone)]
pub struct Election {
    pub client: kube::Client,
    pub namespace: String,
    pub identity: String,
    pub config: LeaseConfig,
}

impl Election {
    /// Waits until this replica holds the Lease (asking every renewal period while another
    /// replica holds it); `None` when `stop` is cancelled first.
    pub async fn lead(&self, stop: &CancellationToken) -> Option<LeaseGuard> {
        let mut said_held = false;
        loop {
            let asked = lease::acquire_with(
                &self.client,
                &self.namespace,
                LEASE_SUFFIX,
                &self.identity,
                LEASE_SUFFIX,
                self.config,
            )
            .await;
            match asked {
                Ok(guard) => {
                    tracing::info!(identity = %self.identity, lease = %lease_name(), "leading");
                    return Some(guard);
                }
                Err(LeaseError::Held { holder }) => {
                    if !said_held {
                        tracing::info!(%holder, "standing by: another replica leads");
                        said_held = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %baton_steps::env::chain(&error), "cannot ask for the controller lease");
                }
            }
            let pause = self.config.renew_every.max(Duration::from_millis(100));
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
