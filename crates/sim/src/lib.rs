//! A simulated Kubernetes cluster for Baton's tests and demo: an API server
//! that real `kubectl` and kube-rs accept, the OpenKruise Advanced
//! StatefulSet controller, a kubelet, and an arbiter.

pub mod admission;
pub mod kruise;
pub mod selector;
pub mod store;

pub use store::{ApiError, Change, ChangeType, Kind, Store};
