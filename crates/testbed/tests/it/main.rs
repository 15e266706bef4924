//! The testbed's integration tests, one test binary: it links the dependency tree once and
//! starts one real control plane that every test shares, each in a namespace of its own.
//! Without `BATON_CONTROL_PLANE` (outside CI) the real tier's tests are skipped with one
//! line on stderr.

/// The launcher, the stand-in kubelet against real kube-apiserver and Kruise, the
/// two-backend glue.
mod controlplane;
/// In-cluster mode: the UpgradePlan CRD and `deploy/` against the real API server, and the
/// UpgradePlan on both backends.
mod in_cluster;
/// Simulator fidelity: every Kruise behaviour on both backends, with the same assertions.
mod kruise_fidelity;
/// The fault proxy in front of either API server.
mod proxy;
