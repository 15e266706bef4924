//! Kubernetes and arbiter steps of a Baton rollout.
//!
//! The engine decides and persists; this crate touches the world. Each DAG node is a
//! module under [`steps`] that re-reads the ASTS, its pods and the arbiter
//! ([`k8s::read_snapshot`]), asks the engine's pure decision core what to do, and writes
//! absolute values through guarded JSON patches ([`patch`]), recording every write in the
//! run's audit log. [`RolloutSteps`] is the [`baton_engine::step::StepRunner`] the executor
//! drives; [`lease`] is the run lock; [`preflight`] and [`abort`] serve `engine plan` and
//! `engine abort`.
//!
//! The ASTS type, the pod views and every API read live in [`k8s`]; [`lease`] and
//! [`events`] own their own resource types; the rest works on the engine's plain data.

#![warn(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod analysis;
pub mod arbiter;
pub mod baseline;
pub mod env;
pub mod events;
pub mod gates;
pub mod k8s;
pub mod lease;
pub mod patch;
pub mod pods;
pub mod prometheus;
pub mod runner;
pub mod steps;
pub mod view;

use baton_engine::decide::{Refusal, Warning, check_preconditions};
use baton_engine::plan::ValidPlan;
use baton_engine::snapshot::Snapshot;

pub use arbiter::{ArbiterClient, ArbiterError};
pub use k8s::{KubeError, read_snapshot};
pub use lease::{LeaseError, LeaseGuard, acquire};
pub use runner::RolloutSteps;

use crate::k8s::Target;
use crate::patch::{PatchError, partition_patch, updated_template};

/// Why `engine plan` / `engine run` refuse to start. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("cannot reach the arbiter")]
    Arbiter(#[source] ArbiterError),
    #[error("cannot read the statefulset")]
    Kube(#[source] KubeError),
    #[error(transparent)]
    Refused(Refusal),
    #[error("the plan's update does not fit the statefulset's template")]
    Template(#[source] PatchError),
}

impl PreflightError {
    /// Transient API or arbiter trouble (5xx, 429, timeouts, connection errors): worth
    /// asking again. Refusals and a plan that does not fit are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            PreflightError::Arbiter(e) => e.is_retryable(),
            PreflightError::Kube(e) => e.is_retryable(),
            PreflightError::Refused(_) | PreflightError::Template(_) => false,
        }
    }
}

/// [`preflight`], asked again with backoff (200 ms doubling, 5 tries) while it fails
/// transiently, so a flaky API server does not turn into "bad input".
pub async fn preflight_with_retries(
    client: &kube::Client,
    plan: &ValidPlan,
) -> Result<(Snapshot, Vec<Warning>), PreflightError> {
    let policy = baton_engine::retry::RetryPolicy::CALLER;
    let mut tries = 1;
    loop {
        match preflight(client, plan).await {
            Err(error) if error.is_retryable() && policy.may_retry(tries) => {
                tracing::warn!(%error, tries, "preflight failed transiently; retrying");
                tokio::time::sleep(policy.ceiling(tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// The update revision a dry run assumes while the plan's template is not applied yet:
/// no pod carries it, so every pod counts as old, as it will once `apply-update` runs.
pub const PENDING_REVISION: &str = "(pending: the plan's template)";

/// Reads the cluster and the arbiter and checks the preconditions. Writes nothing.
///
/// The snapshot is the run's starting point as `apply-update` will leave it: when the
/// plan would change the template, its update revision is [`PENDING_REVISION`]. A plan
/// whose template is already applied (a resumed or re-run rollout) sees the live one.
pub async fn preflight(
    client: &kube::Client,
    plan: &ValidPlan,
) -> Result<(Snapshot, Vec<Warning>), PreflightError> {
    let arbiter = ArbiterClient::new(&plan.spec().arbiter).map_err(PreflightError::Arbiter)?;
    let target = Target::from_plan(client.clone(), plan);
    let sts = target.get_sts().await.map_err(PreflightError::Kube)?;
    let update = &plan.spec().update;
    let new_template = updated_template(
        &sts.spec.template,
        &update.images,
        update.template_patch.as_ref(),
    )
    .map_err(PreflightError::Template)?;
    let pending = patch::template_patch(&env::to_value(&sts), new_template).is_some();
    let mut snapshot = match k8s::read_target(&target, &plan.spec().roles, &arbiter).await {
        Ok(s) => s,
        Err(KubeError::Arbiter(e)) => return Err(PreflightError::Arbiter(e)),
        Err(e) => return Err(PreflightError::Kube(e)),
    };
    let warnings = check_preconditions(&snapshot).map_err(PreflightError::Refused)?;
    if pending {
        snapshot.sts.update_revision = Some(PENDING_REVISION.to_owned());
        snapshot.sts.observed_generation = Some(snapshot.sts.generation);
    }
    Ok((snapshot, warnings))
}

/// How `engine abort` freezes the rollout: computed from a fresh read, applied by
/// [`apply_freeze`] once the caller has logged the write.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub before: Option<i32>,
    pub partition: u32,
    /// `None` when the partition already is `partition`.
    patch: Option<json_patch::Patch>,
    target: String,
}

impl Freeze {
    pub fn changes(&self) -> bool {
        self.patch.is_some()
    }

    /// The audit record of the write.
    pub fn audit(&self) -> baton_engine::step::AuditWrite {
        baton_engine::step::AuditWrite {
            object: self.target.clone(),
            action: "set partition".to_owned(),
            before: serde_json::json!(self.before),
            after: serde_json::json!(self.partition),
        }
    }
}

/// The freeze of the rollout where it stands: `partition = |P| - |U|` (or |P| while the
/// update revision is not trusted), so no further pod updates.
pub async fn plan_freeze(client: &kube::Client, plan: &ValidPlan) -> Result<Freeze, KubeError> {
    let target = Target::from_plan(client.clone(), plan);
    let sts = target.get_sts().await?;
    let pods = target.owned_pods(&sts).await?;
    let snapshot = k8s::snapshot_of(&sts, &pods, Default::default(), &plan.spec().roles);
    let partition = baton_engine::decide::freeze_partition(&snapshot);
    let patch = match partition_patch(&env::to_value(&sts), partition) {
        None => None,
        Some(patch) => Some(patch.into_patch().map_err(|source| KubeError::Patch {
            what: target.sts_object(),
            source,
        })?),
    };
    Ok(Freeze {
        before: sts.partition(),
        partition,
        patch,
        target: target.sts_object(),
    })
}

/// Writes the freeze (guarded: it fails with a conflict if the partition moved since
/// [`plan_freeze`] read it).
pub async fn apply_freeze(
    client: &kube::Client,
    plan: &ValidPlan,
    freeze: &Freeze,
) -> Result<(), KubeError> {
    let Some(patch) = &freeze.patch else {
        return Ok(());
    };
    let target = Target::from_plan(client.clone(), plan);
    target.patch_sts("set partition", patch.clone()).await?;
    Ok(())
}

/// The set's pods as the cluster and the arbiter have them now: the table a command prints
/// when a run ends, whatever way it ended (the events a run emitted can be stale by then).
pub async fn read_pod_rows(
    client: &kube::Client,
    plan: &ValidPlan,
) -> Result<Vec<baton_engine::event::PodRow>, KubeError> {
    let target = Target::from_plan(client.clone(), plan);
    let arbiter = ArbiterClient::new(&plan.spec().arbiter).map_err(KubeError::Arbiter)?;
    let live = k8s::read_live(&target, &plan.spec().roles, &arbiter).await?;
    Ok(k8s::pod_rows(&live, &plan.spec().update.images))
}
