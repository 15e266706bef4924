//! [`RolloutSteps`]: the real [`StepRunner`], dispatching each DAG node to its step.

use std::sync::Arc;

use baton_engine::dag::StepKind;
use baton_engine::plan::ValidPlan;
use baton_engine::step::{StepContext, StepError, StepOutput, StepRunner};

use crate::arbiter::{ArbiterClient, ArbiterError};
use crate::env::Env;
use crate::events::Recorder;
use crate::k8s::Target;
use crate::steps;

/// Runs the steps of one plan against one cluster and arbiter.
#[derive(Clone)]
pub struct RolloutSteps {
    env: Arc<Env>,
}

impl RolloutSteps {
    /// Builds the clients. Reads nothing from the cluster yet.
    pub async fn connect(
        plan: &ValidPlan,
        client: kube::Client,
    ) -> Result<RolloutSteps, ArbiterError> {
        let arbiter = ArbiterClient::new(&plan.spec().arbiter)?;
        let target = Target::from_plan(client.clone(), plan);
        let recorder = Recorder::new(client, &target.namespace, &target.name);
        Ok(RolloutSteps {
            env: Arc::new(Env::new(Arc::new(plan.clone()), target, arbiter, recorder)),
        })
    }

    /// Gate overrides and the windows' clock for this process. Call before the run starts
    /// (while nothing else holds the steps).
    pub fn with_safety(mut self, safety: crate::gates::SafetyOptions) -> Self {
        if let Some(env) = Arc::get_mut(&mut self.env) {
            env.safety = safety;
        }
        self
    }

    pub fn env(&self) -> &Env {
        &self.env
    }
}

impl StepRunner for RolloutSteps {
    fn run(&self, ctx: StepContext) -> impl Future<Output = Result<StepOutput, StepError>> + Send {
        let env = Arc::clone(&self.env);
        async move { dispatch(&env, &ctx).await }
    }
}

/// Runs one node.
pub async fn dispatch(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    match &ctx.step.kind {
        StepKind::Protect => steps::protect::run(env, ctx).await,
        StepKind::ApplyUpdate => steps::apply_update::run(env, ctx).await,
        StepKind::QueryArbiter => steps::query_arbiter::run(env, ctx).await,
        StepKind::Select => steps::select::run(env, ctx).await,
        StepKind::Relabel => steps::relabel::run(env, ctx).await,
        StepKind::SetPartition => steps::set_partition::run(env, ctx).await,
        StepKind::WaitUpdated => steps::wait_updated::run(env, ctx).await,
        StepKind::Verify => steps::verify::run(env, ctx).await,
        StepKind::Settle => {
            crate::analysis::settle(env, ctx, env.plan.spec().waves.settle.as_std()).await
        }
        StepKind::Approval => steps::hooks::approval(ctx).await,
        StepKind::Handover => steps::handover::run(env, ctx).await,
        StepKind::Finalize => steps::finalize::run(env, ctx).await,
        StepKind::Window => steps::window::run(env, ctx).await,
        StepKind::Rollback => steps::rollback::run(env, ctx).await,
        StepKind::Hook { point, name } => steps::hooks::run_hook(env, ctx, *point, name).await,
    }
}
