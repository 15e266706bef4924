//! The run as a DAG of steps. Waves are appended as the run learns them, so the graph
//! grows; only [`StepId`]s are persisted, never petgraph indexes.
//!
//! - [`Dag`]: the graph itself, append-only, with readiness and rendering.
//! - [`prologue`], [`wave`], [`epilogue`], [`plan_graph`]: the nodes a plan asks for.

use std::collections::{HashMap, HashSet};
use std::fmt;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use serde::{Deserialize, Serialize};

use crate::plan::HookPoint;

mod build;
mod render;

pub use build::{epilogue, plan_graph, prologue, rollback_wave, tails, wave};
pub use render::GraphFormat;

/// What a step does. Tags are persisted: never rename a variant's serde name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    Protect,
    ApplyUpdate,
    QueryArbiter,
    Select,
    Relabel,
    SetPartition,
    WaitUpdated,
    Verify,
    /// `waves.settle` pause after a wave is ready.
    Settle,
    /// `waves.approval` gate.
    Approval,
    Handover,
    Finalize,
    /// Waits for a maintenance window (`schedule.windows`) before a wave starts.
    Window,
    /// `onFailure: rollback`: freezes the partition and writes back the template the run
    /// started from; the waves after it bring the pods back to it, standby-first.
    Rollback,
    /// A plan hook.
    Hook {
        point: HookPoint,
        name: String,
    },
}

/// Identity of one node: its kind and, for per-wave steps, the wave number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepId {
    pub wave: Option<u32>,
    pub kind: StepKind,
}

impl StepId {
    pub fn run_level(kind: StepKind) -> Self {
        StepId { wave: None, kind }
    }

    pub fn in_wave(wave: u32, kind: StepKind) -> Self {
        StepId {
            wave: Some(wave),
            kind,
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StepKind::Protect => "protect",
            StepKind::ApplyUpdate => "apply-update",
            StepKind::QueryArbiter => "query-arbiter",
            StepKind::Select => "select",
            StepKind::Relabel => "relabel",
            StepKind::SetPartition => "set-partition",
            StepKind::WaitUpdated => "wait-updated",
            StepKind::Verify => "verify",
            StepKind::Settle => "settle",
            StepKind::Approval => "approval",
            StepKind::Handover => "handover",
            StepKind::Finalize => "finalize",
            StepKind::Window => "window",
            StepKind::Rollback => "rollback",
            StepKind::Hook { point, name } => return write!(f, "hook/{}/{name}", point.as_str()),
        };
        f.write_str(s)
    }
}

/// `protect`, `wave-2/select`, `wave-1/hook/afterWaveReady/smoke`.
impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.wave {
            Some(w) => write!(f, "wave-{w}/{}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// A node to add: its id and the ids it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: StepId,
    pub deps: Vec<StepId>,
}

/// Why a node could not be added. Nothing is added when any node of a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    #[error("step {0} is already in the graph")]
    DuplicateStep(StepId),
    #[error("step {step} waits for {dep}, which is not in the graph")]
    UnknownDependency { step: StepId, dep: StepId },
    #[error("steps would wait for each other in a cycle: {}", join(.0))]
    Cycle(Vec<StepId>),
}

fn join(ids: &[StepId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The steps of one run and what each waits for.
///
/// Append-only: a node's dependencies must be in the graph before it, so insertion order
/// is a topological order and no cycle can form. Edges point from a dependency to the
/// step that waits for it.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    graph: StableDiGraph<NodeSpec, ()>,
    index: HashMap<StepId, NodeIndex>,
    /// Insertion order.
    order: Vec<NodeIndex>,
    /// A wave that stands for all of them (the static `engine graph` view).
    repeating: Option<u32>,
}

impl Dag {
    pub fn new() -> Dag {
        Dag::default()
    }

    /// Add one node. Its dependencies must already be in the graph.
    pub fn add(&mut self, spec: NodeSpec) -> Result<(), DagError> {
        self.check(&spec, |id| self.contains(id))?;
        self.insert(spec);
        Ok(())
    }

    /// Add nodes in order; a node may wait for one earlier in the same batch. All or nothing.
    pub fn extend(&mut self, specs: impl IntoIterator<Item = NodeSpec>) -> Result<(), DagError> {
        let specs: Vec<NodeSpec> = specs.into_iter().collect();
        let mut pending: HashSet<&StepId> = HashSet::new();
        for spec in &specs {
            self.check(spec, |id| self.contains(id) || pending.contains(id))?;
            pending.insert(&spec.id);
        }
        for spec in specs {
            self.insert(spec);
        }
        Ok(())
    }

    fn check(&self, spec: &NodeSpec, known: impl Fn(&StepId) -> bool) -> Result<(), DagError> {
        if known(&spec.id) {
            return Err(DagError::DuplicateStep(spec.id.clone()));
        }
        if spec.deps.contains(&spec.id) {
            return Err(DagError::Cycle(vec![spec.id.clone(), spec.id.clone()]));
        }
        match spec.deps.iter().find(|dep| !known(dep)) {
            Some(dep) => Err(DagError::UnknownDependency {
                step: spec.id.clone(),
                dep: dep.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Insert a checked node. Repeated dependencies collapse into one edge.
    fn insert(&mut self, mut spec: NodeSpec) {
        let mut seen = HashSet::new();
        spec.deps.retain(|dep| seen.insert(dep.clone()));
        let deps: Vec<NodeIndex> = spec
            .deps
            .iter()
            .filter_map(|dep| self.index.get(dep).copied())
            .collect();
        let id = spec.id.clone();
        let node = self.graph.add_node(spec);
        for dep in deps {
            self.graph.add_edge(dep, node, ());
        }
        self.index.insert(id, node);
        self.order.push(node);
    }

    pub fn contains(&self, id: &StepId) -> bool {
        self.index.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The node as it was added.
    pub fn get(&self, id: &StepId) -> Option<&NodeSpec> {
        self.index
            .get(id)
            .and_then(|ix| self.graph.node_weight(*ix))
    }

    fn nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        self.order
            .iter()
            .filter_map(|ix| self.graph.node_weight(*ix))
    }

    /// Every node in insertion order, which is topological: what to persist and replay.
    pub fn specs(&self) -> Vec<NodeSpec> {
        self.nodes().cloned().collect()
    }

    /// Steps that can start now: not done, every dependency done. In topological order.
    pub fn ready(&self, is_done: impl Fn(&StepId) -> bool) -> Vec<StepId> {
        self.nodes()
            .filter(|spec| !is_done(&spec.id) && spec.deps.iter().all(&is_done))
            .map(|spec| spec.id.clone())
            .collect()
    }

    /// Steps nothing waits for: where the next wave or the epilogue attaches.
    pub fn sinks(&self) -> Vec<StepId> {
        self.order
            .iter()
            .filter(|ix| {
                self.graph
                    .neighbors_directed(**ix, Direction::Outgoing)
                    .next()
                    .is_none()
            })
            .filter_map(|ix| self.graph.node_weight(*ix))
            .map(|spec| spec.id.clone())
            .collect()
    }

    /// Steps that wait directly for `id`, in insertion order.
    pub fn dependents(&self, id: &StepId) -> Vec<StepId> {
        let Some(&ix) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(ix, Direction::Outgoing)
            .collect();
        out.sort_by_key(|n| self.order.iter().position(|o| o == n));
        out.into_iter()
            .filter_map(|n| self.graph.node_weight(n))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Mark `wave` as standing for every wave (`engine graph` shows one wave of a plan).
    pub fn set_repeating(&mut self, wave: Option<u32>) {
        self.repeating = wave;
    }

    pub fn repeating(&self) -> Option<u32> {
        self.repeating
    }

    pub fn render(&self, format: GraphFormat) -> String {
        render::render(self, format)
    }
}
