//! Test beds the engine is proven on, beside the embedded simulator.
//!
//! - [`controlplane`]: starts a real etcd, kube-apiserver and OpenKruise `kruise-manager` from
//!   an assets folder named by `BATON_CONTROL_PLANE` (in the spirit of envtest's
//!   `KUBEBUILDER_ASSETS`), and stops them on drop.
//! - [`kubelet`]: a stand-in kubelet, a client of any API server, for clusters that have no
//!   real one (the control plane above, or a user's own test cluster).
//! - [`proxy`]: a fault-injecting proxy in front of any API server.
//! - [`arbiter`]: the simulator's arbiter served on its own port, for clusters without one.
//! - [`backend`]: runs one scenario on the simulator or on the real control plane, seeded alike.
//! - [`observer`]: watches a backend's set from outside and judges a run's safety.
//!
//! Nothing here is linked into the engine: the engine's crates never depend on this one,
//! only tests and the CLI's `engine sim …` commands do.

pub mod arbiter;
pub mod backend;
pub mod controlplane;
pub mod kubelet;
pub mod observer;
pub mod proxy;
