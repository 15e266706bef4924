//! In-cluster mode: UpgradePlan custom resources run by `engine controller`.
//!
//! The controller is a second way to drive the same executor as `engine run`: the same plan
//! (an UpgradePlan object *is* a plan file), the same DAG, steps and decisions, the same
//! per-StatefulSet run lock. What changes is where things live:
//! - the run's record goes to the API server instead of sled ([`store`]: companion
//!   ConfigMaps written with `resourceVersion` preconditions);
//! - one of several replicas drives the runs, elected with a Lease ([`leader`]); the next
//!   leader resumes from the record (running nodes run again; steps are idempotent);
//! - operators approve and abort through annotations on the UpgradePlan ([`requests`]),
//!   and read progress from its `status` ([`status`]); `engine status|history|approve|abort
//!   --in-cluster` read the record and write those annotations ([`inspect`]).
//!
//! Boundary: this crate decides nothing about rollouts. It feeds `baton-engine`'s executor
//! and `baton-steps`' steps; the CLI (`crates/cli`) only parses flags and serves metrics.

pub mod controller;
pub mod drive;
pub mod inspect;
pub mod leader;
pub mod requests;
pub mod resource;
pub mod status;
pub mod store;
