//! The seed case: namespace `default` and the ASTS `sample` exactly as
//! `examples/statefulset.yaml` declares it (with the replica count, image and
//! protect-all partition from [`SimConfig`]), and the role labels the
//! arbiter's initial members call for, put on the pods once the controller
//! has created them.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::controller::ROLE_LABEL;
use crate::store::{ChangeType, Kind, Store};
use crate::{SimConfig, store::ApiError};

/// The manifest the seed case follows (also what users `kubectl apply`).
pub const MANIFEST: &str = include_str!("../../../examples/statefulset.yaml");
pub const NAMESPACE: &str = "default";
pub const NAME: &str = "sample";

/// The seed ASTS for `cfg`.
pub fn statefulset(cfg: &SimConfig) -> Value {
    let mut sts: Value = serde_yaml::from_str(MANIFEST).unwrap_or(Value::Null);
    sts["spec"]["replicas"] = json!(cfg.replicas);
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(cfg.replicas);
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!(cfg.image);
    // As `kubectl apply` leaves it, so that a later apply computes a clean diff.
    let applied = format!("{sts}\n");
    sts["metadata"]["annotations"] = json!({ LAST_APPLIED: applied });
    sts
}

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which seed pods are working: `sample-<i>` for `i` in `cfg.working`.
pub fn roles(cfg: &SimConfig) -> BTreeMap<String, bool> {
    (0..cfg.replicas)
        .map(|i| (format!("{NAME}-{i}"), cfg.working.contains(&i)))
        .collect()
}

/// Creates the namespaces and, unless `cfg.empty`, the seed ASTS.
/// Existing objects are left alone.
pub fn seed_case(store: &Store, cfg: &SimConfig) -> Result<(), ApiError> {
    ensure_namespace(store, NAMESPACE)?;
    if !cfg.empty {
        match store.create(Kind::StatefulSet, NAMESPACE, statefulset(cfg)) {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn ensure_namespace(store: &Store, name: &str) -> Result<(), ApiError> {
    let ns = json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    match store.create(Kind::Namespace, "", ns) {
        Err(e) if e.reason != "AlreadyExists" => Err(e),
        _ => Ok(()),
    }
}

/// Puts `working=true|false` on each seed pod the first time it appears,
/// then ends. Start it before the controller so no creation is missed.
pub fn spawn_labeller(store: &Store, cfg: &SimConfig) -> tokio::task::JoinHandle<()> {
    let mut pending = roles(cfg);
    let mut rx = store.subscribe();
    let store = store.clone();
    tokio::spawn(async move {
        // Pods that already exist (a reused store) are labelled first.
        pending.retain(|name, working| !label(&store, name, *working));
        while !pending.is_empty() {
            match rx.recv().await {
                Ok(c)
                    if c.kind == Kind::Pod
                        && c.change != ChangeType::Deleted
                        && c.namespace == NAMESPACE =>
                {
                    if let Some(&working) = pending.get(&c.name)
                        && label(&store, &c.name, working)
                    {
                        pending.remove(&c.name);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    pending.retain(|name, working| !label(&store, name, *working));
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// Labels one pod; false if it does not exist (yet).
fn label(store: &Store, name: &str, working: bool) -> bool {
    store
        .modify(Kind::Pod, NAMESPACE, name, |p| {
            if !p["metadata"]["labels"].is_object() {
                p["metadata"]["labels"] = json!({});
            }
            p["metadata"]["labels"][ROLE_LABEL] = json!(working.to_string());
            Ok(())
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_follows_the_example_manifest() {
        let cfg = SimConfig::default();
        let sts = statefulset(&cfg);
        assert_eq!(sts["metadata"]["name"], NAME);
        assert_eq!(sts["spec"]["replicas"], 5);
        assert_eq!(
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            5
        );
        assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
        assert_eq!(
            sts["spec"]["template"]["spec"]["containers"][0]["image"],
            "alpine:3.18.2"
        );
        let store = Store::new();
        seed_case(&store, &cfg).unwrap();
        seed_case(&store, &cfg).unwrap();
        assert!(store.get(Kind::StatefulSet, NAMESPACE, NAME).is_some());
        let working: Vec<String> = roles(&cfg)
            .into_iter()
            .filter(|(_, w)| *w)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(working, ["sample-0", "sample-2", "sample-4"]);
    }
}
