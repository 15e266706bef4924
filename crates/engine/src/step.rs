//! The seam between the executor (this crate) and the steps that touch the world
//! (`baton-steps`). The executor owns ordering, persistence and retries; a step owns
//! one idempotent effect and reports what it did through its [`StepContext`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::dag::StepId;
use crate::event::RunEvent;

/// Runs the steps of a run. Implemented by `baton-steps` for real rollouts and by test doubles.
pub trait StepRunner: Send + Sync + 'static {
    /// Run one step to completion. Must be idempotent: it may run again after a crash
    /// with the same inputs, and must then converge on the same effect.
    fn run(&self, ctx: StepContext) -> impl Future<Output = Result<StepOutput, StepError>> + Send;
}

/// What a step gets: who it is, what earlier steps produced, and where to record effects.
#[derive(Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step: StepId,
    /// 1 for the first attempt. Recorded with each write-ahead intent; not a fencing token
    /// (no write carries it to the cluster; the Lease is what keeps a second run out).
    pub attempt: u32,
    /// Outputs of every step that succeeded so far in this run.
    pub outputs: Arc<BTreeMap<StepId, Arc<serde_json::Value>>>,
    pub journal: Arc<dyn Journal>,
    /// Cancelled on SIGINT/SIGTERM or a lost lease: reach a safe point and return
    /// [`StepErrorKind::Interrupted`].
    pub cancel: CancellationToken,
}

impl StepContext {
    /// The output of an earlier step, if it succeeded.
    pub fn output_of(&self, id: &StepId) -> Option<&serde_json::Value> {
        self.outputs.get(id).map(|v| &**v)
    }
}

/// A boxed future, for the object-safe [`Journal`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Persistence and notification services the executor offers to steps.
pub trait Journal: Send + Sync {
    /// Log `writes` as about to be made, durably, before any of them is sent: the
    /// write-ahead rule that keeps a crash from hiding a write that reached the world.
    /// Everything the run recorded before is made durable with them. Returns one
    /// [`IntentId`] per write, in order, to [`settle`](Journal::settle) later.
    fn intend(&self, step: &StepId, writes: Vec<AuditWrite>)
    -> Result<Vec<IntentId>, JournalError>;
    /// Record what became of earlier intents. Not flushed on its own (the next
    /// checkpoint carries it): after a crash an intent may stay unconfirmed, and the
    /// history says so rather than guess.
    fn settle(&self, outcomes: Vec<(IntentId, WriteOutcome)>) -> Result<(), JournalError>;
    /// Publish a progress event (live display, `--output json`, metrics). Never fails.
    fn emit(&self, event: RunEvent);
    /// Resolve when an operator approves `gate` (`engine approve`), or at once if already approved.
    fn wait_approval(&self, gate: StepId) -> BoxFuture<'static, Result<Approval, JournalError>>;
}

/// One write to the cluster or the arbiter, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditWrite {
    /// `pod default/sample-1`, `statefulset default/sample`, `arbiter http://…`.
    pub object: String,
    /// `patch labels`, `set partition`, `handover`, …
    pub action: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// Names one write-ahead intent: its position in the run's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IntentId(pub u64);

/// What became of an intended write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum WriteOutcome {
    /// The cluster or the arbiter acknowledged it.
    Applied,
    /// A call that acts on the world (a hook) completed; `answer` is what it answered (an
    /// http status, an exit code with the tails of its output), for the history.
    Completed { answer: serde_json::Value },
    /// It was refused or failed to send; `error` says why.
    Failed { error: String },
    /// An answer came that does not say whether the write landed (a server timeout, a
    /// connection broken after the request was sent); `error` says what came. The step that
    /// runs next re-reads the cluster, so nothing relies on either guess.
    Unknown { error: String },
    /// The call was cancelled before its answer (a sibling hook failed, or the run was
    /// interrupted); what it did before that is unknown.
    Cancelled,
}

/// An operator's approval of a gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub reason: Option<String>,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
#[error("journal write failed: {0}")]
pub struct JournalError(pub String);

/// The member of an object output that only the run's later steps read (what a resume
/// rebuilds from, such as the pods working when a wave began). It is persisted with the
/// node like the rest, but the published status (`status.json`, the live view) leaves it
/// out, so that view does not grow with pods × waves.
pub const PRIVATE_OUTPUT: &str = "private";

/// What a step returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    /// Persisted with the node; later steps read it via [`StepContext::output_of`].
    pub value: serde_json::Value,
    pub control: Control,
}

impl StepOutput {
    pub fn new(value: serde_json::Value) -> Self {
        StepOutput {
            value,
            control: Control::Continue,
        }
    }

    pub fn empty() -> Self {
        Self::new(serde_json::Value::Null)
    }
}

/// How the run goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Control {
    Continue,
    /// No old pod is left: skip the rest of this wave and go to finalize.
    Finish,
}

/// How the executor must treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepErrorKind {
    /// Transient (timeouts, 5xx, conflicts): retry with backoff, within the step's budget.
    Retryable,
    /// The step failed; the run stops, resumable (exit 1).
    Failed,
    /// A safety invariant broke: the step already froze the rollout; resume needs `--accept-risk`.
    SafetyStop,
    /// Cancelled at a safe point; resumable (exit 130).
    Interrupted,
    /// The application failed a check (an analysis check): the step froze the rollout.
    /// With `onFailure: rollback` the executor rolls the run back; otherwise (or during a
    /// rollback) it is recorded as a [`StepErrorKind::SafetyStop`]. Never a broken
    /// invariant: those are always safety stops.
    Unhealthy,
}

/// A step failure with a message written for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub kind: StepErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    pub fn new(kind: StepErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::Retryable, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::Failed, message)
    }
    pub fn safety_stop(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::SafetyStop, message)
    }
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self::new(StepErrorKind::Unhealthy, message)
    }
    pub fn interrupted() -> Self {
        Self::new(StepErrorKind::Interrupted, "interrupted")
    }
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}
