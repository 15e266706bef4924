//! The simulator's integration tests, one test binary (each binary links the whole
//! dependency tree). Pure tables first, then the controller against the store, then the API
//! server through real clients.

/// The simulated API server seen through kube-rs (in-process and over TCP) and `kubectl`.
mod api;
/// The arbiter over real HTTP, each behaviour a client can meet.
mod arbiter_http;
/// The Kruise controller and kubelet against the store, rollouts checked on the pods.
mod kruise_controller;
/// One reconcile pass at a time, as tables.
mod kruise_reconcile;
/// A thousand-replica rollout through the controller (figures printed, not asserted).
mod kruise_scale;
/// Kruise's own unit tests for update order and revision choice, as tables.
mod kruise_tables;
/// The benchmark's wave shape at a thousand replicas, without the engine.
mod wave_scale;
