//! Baton's engine: the upgrade plan, the pure rollout decisions, and the persisted
//! DAG executor that drives a run crash-safely.
//!
//! ```text
//! plan (YAML) ─▶ ValidPlan ─▶ dag (StepIds) ─▶ executor ──▶ StepRunner (baton-steps)
//!                                   │              │
//!                     decide (pure) ◀── snapshot   └──▶ store (sled) + events
//! ```
//!
//! Start with [`plan::ValidPlan::parse`] and [`executor`]. This crate does no
//! Kubernetes or HTTP I/O: that lives in `baton-steps`, behind [`step::StepRunner`].

#![warn(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod clock;
pub mod control;
pub mod dag;
pub mod decide;
pub mod duration;
pub mod event;
pub mod executor;
pub mod failpoint;
pub mod plan;
mod publish;
pub mod retry;
pub mod snapshot;
pub mod step;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod text;
