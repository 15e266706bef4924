//! Kubernetes and arbiter steps of a Baton rollout.
