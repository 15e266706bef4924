//! Shared set-up: a settled seed case and clients for it.

use std::time::Duration;

use baton_sim::{Sim, SimConfig};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

/// The seed case, settled (pods exist, labelled, Ready).
pub async fn seeded(cfg: SimConfig) -> Sim {
    let sim = Sim::new(cfg);
    tokio::time::timeout(Duration::from_secs(30), sim.settled())
        .await
        .expect("the seed case settles");
    sim
}

/// A kube client talking to the simulator in-process.
pub fn client(sim: &Sim) -> Client {
    Client::new(sim.router(), "default")
}

pub fn asts_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps.kruise.io", "v1beta1", "StatefulSet"),
        "statefulsets",
    )
}

pub fn asts(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &asts_resource())
}

/// The HTTP status code of a kube error, or panics.
pub fn code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The API error's Status, or panics.
pub fn status(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `f` until it holds (the controller works asynchronously).
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
