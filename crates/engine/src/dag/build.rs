//! The nodes a plan asks for (SPEC §1 "Steps of a run"), as [`NodeSpec`] lists the
//! executor appends to its [`Dag`] as it learns how many waves the run needs.
//!
//! Hooks declared at one point become parallel nodes that all wait for the step before
//! the point; the step after the point waits for all of them.

use crate::plan::{Approval, HookPoint, Spec, ValidPlan};

use super::{Dag, NodeSpec, StepId, StepKind};

/// A linear chain of steps with parallel layers, tracking what the next step waits for.
struct Chain {
    wave: Option<u32>,
    specs: Vec<NodeSpec>,
    tail: Vec<StepId>,
}

impl Chain {
    fn new(wave: Option<u32>, after: &[StepId]) -> Self {
        Chain {
            wave,
            specs: Vec::new(),
            tail: after.to_vec(),
        }
    }

    fn id(&self, kind: StepKind) -> StepId {
        StepId {
            wave: self.wave,
            kind,
        }
    }

    fn step(&mut self, kind: StepKind) {
        let id = self.id(kind);
        self.specs.push(NodeSpec {
            id: id.clone(),
            deps: std::mem::take(&mut self.tail),
        });
        self.tail = vec![id];
    }

    /// The plan's hooks at `point`, in plan order. A name repeated at one point (which plan
    /// validation refuses) would be the same step, so it appears once.
    fn hooks(&mut self, spec: &Spec, point: HookPoint) {
        let mut layer: Vec<StepId> = Vec::new();
        for hook in spec.hooks.at(point) {
            let id = self.id(StepKind::Hook {
                point,
                name: hook.name.clone(),
            });
            if !layer.contains(&id) {
                layer.push(id);
            }
        }
        if layer.is_empty() {
            return;
        }
        for id in &layer {
            self.specs.push(NodeSpec {
                id: id.clone(),
                deps: self.tail.clone(),
            });
        }
        self.tail = layer;
    }
}

/// Before the first wave: `beforeRollout` hooks (parallel), then `protect`, then
/// `apply-update`. `protect` always precedes `apply-update`, so no pod updates early.
pub fn prologue(plan: &ValidPlan) -> Vec<NodeSpec> {
    prologue_of(plan.spec())
}

/// Wave `k` (from 1), attached after `after`: `window` (with `schedule.windows`), `beforeWave` hooks, `query-arbiter`,
/// `select`, `relabel`, `set-partition`, `wait-updated`, `verify`, `afterWaveReady` hooks,
/// `settle` (when `waves.settle > 0`), `approval` (per `waves.approval`), `beforeHandover`
/// hooks, `handover`, `afterHandover` hooks.
pub fn wave(plan: &ValidPlan, k: u32, after: &[StepId]) -> Vec<NodeSpec> {
    wave_of(plan.spec(), k, after)
}

/// Wave `k` of a rollback (`onFailure: rollback`): the steps of [`wave`] without `window`.
/// A rollback goes back to the revision known to work and does not wait for a maintenance
/// window; hooks, approvals and per-pod gates apply as in any wave.
pub fn rollback_wave(plan: &ValidPlan, k: u32, after: &[StepId]) -> Vec<NodeSpec> {
    wave_steps(plan.spec(), k, after, false)
}

/// After the last wave: `finalize`, then `afterRollout` hooks (parallel).
pub fn epilogue(plan: &ValidPlan, after: &[StepId]) -> Vec<NodeSpec> {
    epilogue_of(plan.spec(), after)
}

/// The graph `engine graph` shows: prologue, wave 1 standing for every wave, epilogue.
pub fn plan_graph(plan: &ValidPlan) -> Dag {
    graph_of(plan.spec())
}

/// Steps of `specs` that no other step of `specs` waits for: what the next part attaches to.
pub fn tails(specs: &[NodeSpec]) -> Vec<StepId> {
    specs
        .iter()
        .filter(|s| !specs.iter().any(|other| other.deps.contains(&s.id)))
        .map(|s| s.id.clone())
        .collect()
}

pub(super) fn prologue_of(spec: &Spec) -> Vec<NodeSpec> {
    let mut chain = Chain::new(None, &[]);
    chain.hooks(spec, HookPoint::BeforeRollout);
    chain.step(StepKind::Protect);
    chain.step(StepKind::ApplyUpdate);
    chain.specs
}

pub(super) fn wave_of(spec: &Spec, k: u32, after: &[StepId]) -> Vec<NodeSpec> {
    wave_steps(spec, k, after, true)
}

fn wave_steps(spec: &Spec, k: u32, after: &[StepId], windowed: bool) -> Vec<NodeSpec> {
    let mut chain = Chain::new(Some(k), after);
    // A wave starts only inside a window: before anything of the wave, its hooks included.
    if windowed && !spec.schedule.windows.is_empty() {
        chain.step(StepKind::Window);
    }
    chain.hooks(spec, HookPoint::BeforeWave);
    for kind in [
        StepKind::QueryArbiter,
        StepKind::Select,
        StepKind::Relabel,
        StepKind::SetPartition,
        StepKind::WaitUpdated,
        StepKind::Verify,
    ] {
        chain.step(kind);
    }
    chain.hooks(spec, HookPoint::AfterWaveReady);
    if spec.waves.settle.as_std() > std::time::Duration::ZERO {
        chain.step(StepKind::Settle);
    }
    let gated = match spec.waves.approval {
        Approval::None => false,
        Approval::FirstWave => k == 1,
        Approval::EveryWave => true,
    };
    if gated {
        chain.step(StepKind::Approval);
    }
    chain.hooks(spec, HookPoint::BeforeHandover);
    chain.step(StepKind::Handover);
    chain.hooks(spec, HookPoint::AfterHandover);
    chain.specs
}

pub(super) fn epilogue_of(spec: &Spec, after: &[StepId]) -> Vec<NodeSpec> {
    let mut chain = Chain::new(None, after);
    chain.step(StepKind::Finalize);
    chain.hooks(spec, HookPoint::AfterRollout);
    chain.specs
}

pub(super) fn graph_of(spec: &Spec) -> Dag {
    let mut specs = prologue_of(spec);
    let first = wave_of(spec, 1, &tails(&specs));
    let last = epilogue_of(spec, &tails(&first));
    specs.extend(first);
    specs.extend(last);
    let mut dag = Dag::new();
    // Built in dependency order with unique ids, so adding cannot fail; should it ever,
    // the graph shows what was added rather than nothing.
    for spec in specs {
        if let Err(error) = dag.add(spec) {
            tracing::error!(%error, "plan graph node refused");
        }
    }
    dag.set_repeating(Some(1));
    dag
}
