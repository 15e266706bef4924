//! What every step shares: the plan, the target's API handles, the arbiter client and
//! the event recorder, plus the write path (failpoint, patch, audit record) and the
//! typed outputs steps hand to later steps.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use baton_engine::dag::{StepId, StepKind};
use baton_engine::decide::{Policy, Refusal, WaveDecision};
use baton_engine::plan::ValidPlan;
use baton_engine::snapshot::{ArbiterView, Role, Snapshot};
use baton_engine::step::{
    AuditWrite, JournalError, StepContext, StepError, StepErrorKind, WriteOutcome,
};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::arbiter::{ArbiterClient, ArbiterError};
use crate::baseline::Baseline;
use crate::events::Recorder;
use crate::k8s::{KubeError, Live, Target, read_view, snapshot_of};
use crate::patch::{JsonPatch, PatchError};
use crate::view::{ClusterView, Kind, Written};

/// Shared, read-only state of a rollout's steps.
pub struct Env {
    pub plan: Arc<ValidPlan>,
    pub target: Target,
    pub arbiter: ArbiterClient,
    pub recorder: Recorder,
    /// The run's watch-fed view of the ASTS and its pods, started by the first step.
    pub view: OnceLock<ClusterView>,
    /// Gate overrides and the clock of maintenance windows (issue #15).
    pub safety: crate::gates::SafetyOptions,
}

impl Env {
    pub fn new(
        plan: Arc<ValidPlan>,
        target: Target,
        arbiter: ArbiterClient,
        recorder: Recorder,
    ) -> Self {
        Env {
            plan,
            target,
            arbiter,
            recorder,
            view: OnceLock::new(),
            safety: crate::gates::SafetyOptions::default(),
        }
    }

    /// The run's view of the cluster, started on first use.
    pub fn view(&self) -> &ClusterView {
        self.view.get_or_init(|| ClusterView::start(&self.target))
    }

    /// The ASTS and its pods as the run's view shows them now (with every write of this
    /// run in it), and the arbiter asked now.
    pub async fn live(&self) -> Result<Live, StepError> {
        Ok(read_view(self.view(), &self.plan.spec().roles, &self.arbiter).await?)
    }

    /// The ASTS and its pods as the run's view shows them now, without asking the arbiter
    /// (the snapshot's arbiter part is empty). For judgements that take roles from the
    /// wave's baseline, not from the arbiter now (`verify`): the arbiter's 1000 members were
    /// a request and a decode on the way from a wave's last Ready pod to its handover.
    pub async fn pods_now(&self) -> Result<Snapshot, StepError> {
        let objects = self.view().read().await?;
        Ok(snapshot_of(
            &objects.sts,
            objects.pods.iter().map(|p| &**p),
            ArbiterView::default(),
            &self.plan.spec().roles,
        ))
    }

    /// The role label value that mirrors an arbiter role.
    pub fn role_value(&self, role: Role) -> &str {
        let roles = &self.plan.spec().roles;
        match role {
            Role::Working => &roles.working,
            Role::Idle => &roles.idle,
        }
    }

    /// The decision policy for a wave, from the plan and earlier outputs. In a rollback's
    /// waves the revision to reach is the one the `rollback` step recorded (the old one),
    /// and handovers are reversed first.
    pub fn policy(&self, ctx: &StepContext) -> Policy {
        let min_working =
            wave_output::<QueryOutput>(ctx, StepKind::QueryArbiter).map(|q| q.min_working);
        let rollback = output::<RollbackOutput>(ctx, &StepId::run_level(StepKind::Rollback));
        let expected_update_revision = match &rollback {
            Some(r) => Some(r.update_revision.clone()),
            None => output::<ApplyOutput>(ctx, &StepId::run_level(StepKind::ApplyUpdate))
                .and_then(|a| a.update_revision),
        };
        Policy {
            max_per_wave: self.plan.spec().waves.max_per_wave,
            min_working: min_working.unwrap_or(self.plan.spec().safety.min_working),
            expected_update_revision,
            prefer_handover: rollback.is_some(),
        }
    }

    /// Patches the ASTS, write-ahead logged.
    pub async fn write_sts(
        &self,
        ctx: &StepContext,
        action: &str,
        patch: JsonPatch,
        before: Value,
        after: Value,
    ) -> Result<(), StepError> {
        self.write_all(
            ctx,
            vec![Write {
                object: Object::Sts,
                action: action.to_owned(),
                patch,
                before,
                after,
            }],
        )
        .await
    }

    /// The one path of every Kubernetes write. The whole batch is logged as intents
    /// (one flushed checkpoint, which also carries every transition before it), then
    /// sent, up to [`IN_FLIGHT`] at a time, and settled in the log as the answers arrive
    /// (those that arrived together in one commit): the log tells when each write was
    /// acknowledged, not when the last of its batch was.
    /// Crash tests rely on the failpoints standing around every single write.
    pub async fn write_all(&self, ctx: &StepContext, writes: Vec<Write>) -> Result<(), StepError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut sends = Vec::with_capacity(writes.len());
        let mut audit = Vec::with_capacity(writes.len());
        for w in writes {
            let json = w.patch.into_patch().map_err(step_err)?;
            let object = match &w.object {
                Object::Sts => self.target.sts_object(),
                Object::Pod(pod) => self.target.pod_object(pod),
            };
            audit.push(AuditWrite {
                object,
                action: w.action.clone(),
                before: w.before,
                after: w.after,
            });
            sends.push((w.object, w.action, json));
        }
        let intents = ctx.journal.intend(&ctx.step, audit).map_err(journal_err)?;
        // Answers are settled as they arrive, those that arrived together in one commit.
        let mut answers = futures::stream::iter(intents.into_iter().zip(sends))
            .map(|(intent, (object, action, json))| async move {
                failpoint(&ctx.step);
                let written = self.send(object, &action, json).await;
                if written.is_ok() {
                    failpoint_after(&ctx.step);
                }
                (intent, written)
            })
            .buffered(IN_FLIGHT)
            .ready_chunks(IN_FLIGHT);
        let mut results: Vec<Sent> = Vec::new();
        let mut settle_error = None;
        while let Some(chunk) = answers.next().await {
            let outcomes = chunk
                .iter()
                .filter_map(|(id, r)| {
                    outcome_of(r, KubeError::surely_not_applied).map(|o| (*id, o))
                })
                .collect();
            if let Err(e) = ctx.journal.settle(outcomes) {
                settle_error.get_or_insert(e);
            }
            results.extend(chunk.into_iter().map(|(_, r)| r));
        }
        if let Some(e) = settle_error {
            return Err(journal_err(e));
        }
        // Read-your-writes: whoever reads next sees these writes (or later) in the view.
        let written: Vec<Written> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned().flatten())
            .collect();
        let seen = self.view().wait_seen(&written).await;
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(e.into()),
            None => Ok(seen?),
        }
    }

    /// Sends one patch; the resourceVersion the API server answered with, for read-your-writes.
    async fn send(&self, object: Object, action: &str, json: json_patch::Patch) -> Sent {
        Ok(match object {
            Object::Sts => {
                let sts = self.target.patch_sts(action, json).await?;
                sts.metadata.resource_version.map(|rv| Written {
                    kind: Kind::Sts,
                    name: self.target.name.clone(),
                    resource_version: rv,
                })
            }
            Object::Pod(pod) => {
                let answer = self.target.patch_pod(&pod, action, json).await?;
                answer.metadata.resource_version.map(|rv| Written {
                    kind: Kind::Pod,
                    name: pod,
                    resource_version: rv,
                })
            }
        })
    }
}

/// Makes one external call (an arbiter request, a hook), write-ahead logged like the
/// Kubernetes writes of [`Env::write_all`]: `audit` is durable before `call` starts, and
/// `outcome` says what the answer means for the history (`None`: nobody can tell).
pub async fn write_ahead<T>(
    ctx: &StepContext,
    audit: AuditWrite,
    call: impl Future<Output = T>,
    outcome: impl FnOnce(&T) -> Option<WriteOutcome>,
) -> Result<T, StepError> {
    let intents = ctx
        .journal
        .intend(&ctx.step, vec![audit])
        .map_err(journal_err)?;
    failpoint(&ctx.step);
    let answer = call.await;
    if let Some(outcome) = outcome(&answer) {
        if matches!(
            outcome,
            WriteOutcome::Applied | WriteOutcome::Completed { .. }
        ) {
            failpoint_after(&ctx.step);
        }
        let settle = intents.into_iter().map(|i| (i, outcome.clone())).collect();
        ctx.journal.settle(settle).map_err(journal_err)?;
    }
    Ok(answer)
}

/// One write's answer: the version to wait for in the view, or why it failed.
type Sent = Result<Option<Written>, KubeError>;

/// How many patches one step keeps in flight. Enough to hide the API server's latency
/// for a wave of a hundred pods, few enough not to look like a storm to it.
pub const IN_FLIGHT: usize = 16;

/// One Kubernetes write a step wants to make: an absolute patch plus what the audit
/// log shows of it.
pub struct Write {
    pub object: Object,
    pub action: String,
    pub patch: JsonPatch,
    pub before: Value,
    pub after: Value,
}

/// What a write patches.
pub enum Object {
    Sts,
    Pod(String),
}

/// What the log says of a write's result: applied, refused (`Failed`), or an answer that
/// leaves it open (`Unknown`: the step that runs next re-reads the world). Only a process
/// that stops before any answer leaves the intent unconfirmed.
pub fn outcome_of<T, E: std::error::Error + 'static>(
    result: &Result<T, E>,
    surely_not_applied: impl Fn(&E) -> bool,
) -> Option<WriteOutcome> {
    match result {
        Ok(_) => Some(WriteOutcome::Applied),
        Err(e) if surely_not_applied(e) => Some(WriteOutcome::Failed { error: chain(e) }),
        Err(e) => Some(WriteOutcome::Unknown { error: chain(e) }),
    }
}

/// The crash-test hook right before every external write (`before-write:wave-1/relabel`).
pub fn failpoint(step: &StepId) {
    baton_engine::failpoint::hit(&format!("before-write:{step}"));
}

/// The crash-test hook between a write's acknowledgement and its settlement in the log.
pub fn failpoint_after(step: &StepId) {
    baton_engine::failpoint::hit(&format!("after-write:{step}"));
}

pub fn journal_err(e: JournalError) -> StepError {
    StepError::failed(format!(
        "recording the write in the audit log failed: {}",
        e.0
    ))
}

/// Output of `apply-update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyOutput {
    /// Whether this run changed the template (false: it already matched).
    pub changed: bool,
    /// `status.updateRevision` once the controller observed the template.
    pub update_revision: Option<String>,
}

/// Output of `rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOutput {
    /// Whether this run wrote the old template back (false: it was already there).
    pub changed: bool,
    /// `status.updateRevision` once the controller observed the old template: the revision
    /// the rollback's waves bring every pod to.
    pub update_revision: String,
    /// The old template's images by container, for the operator.
    pub images: Value,
}

/// Output of `query-arbiter`: the arbiter's epoch and counts, the run's minimum, and what
/// `verify` compares against at the end of the wave (the working pods, [`Baseline`]).
/// Small on purpose: every output stays in the run's state for its whole life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryOutput {
    pub epoch: u64,
    /// How many pods the arbiter reported working and idle.
    pub working: usize,
    pub idle: usize,
    /// `safety.minWorking`, resolved once per run (0 = the working count at the first query).
    pub min_working: u32,
    /// Kept for the run's steps, left out of the published status
    /// ([`PRIVATE_OUTPUT`](baton_engine::step::PRIVATE_OUTPUT)).
    pub private: QueryPrivate,
}

/// The part of [`QueryOutput`] only the run's own steps read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPrivate {
    pub baseline: Baseline,
}

/// The snapshot `verify` compares against in the current step's wave: its working pods
/// when the wave began.
pub fn wave_baseline(
    ctx: &StepContext,
    sts: &baton_engine::snapshot::StsView,
) -> Result<Snapshot, StepError> {
    let missing = || {
        StepError::failed(format!(
            "{} needs this wave's query-arbiter output",
            ctx.step
        ))
    };
    let wave = ctx.step.wave.ok_or_else(missing)?;
    let query: QueryOutput = wave_output(ctx, StepKind::QueryArbiter).ok_or_else(missing)?;
    let pods = crate::baseline::resolve(ctx, wave).map_err(|e| {
        StepError::failed(format!(
            "cannot rebuild the pods working when wave {wave} began: {e}"
        ))
    })?;
    Ok(crate::baseline::snapshot(sts, query.epoch, pods))
}

/// Output of `select`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectOutput {
    pub decision: WaveDecision,
    pub select: Vec<String>,
    pub partition: u32,
    /// What the per-pod gates answered before the wave chose its pods (issue #15).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<baton_engine::decide::GateAnswer>,
    /// Gates the operator skipped for this wave (`--skip-gate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_gates: Vec<String>,
}

/// Output of `handover`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverOutput {
    pub promote: Vec<String>,
    pub demote: Vec<String>,
    pub epoch: u64,
    /// Why nothing was handed over, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A typed earlier output, if that step succeeded and its output parses.
pub fn output<T: DeserializeOwned>(ctx: &StepContext, id: &StepId) -> Option<T> {
    ctx.output_of(id).and_then(|v| T::deserialize(v).ok())
}

/// The output of `kind` in the current step's wave.
pub fn wave_output<T: DeserializeOwned>(ctx: &StepContext, kind: StepKind) -> Option<T> {
    let wave = ctx.step.wave?;
    output(ctx, &StepId::in_wave(wave, kind))
}

pub fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// An error and its sources, joined for an operator (the top error never repeats its source).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let (mut out, mut last) = cause_text(e);
    let mut cur = e.source().filter(|_| !last);
    while let Some(s) = cur {
        let (text, ends) = cause_text(s);
        out.push_str(": ");
        out.push_str(&text);
        last = ends;
        cur = s.source().filter(|_| !last);
    }
    out
}

/// One error of a chain in an operator's words, and whether its sources only repeat it.
///
/// kube's `Error::Api` displays the API server's `Status` answer with Rust's debug format
/// (`Status { status: Some(Failure), … ListMeta { continue_: None … } }`), and then again as
/// its source: it is told here once, as the answer it is.
pub fn cause_text(e: &(dyn std::error::Error + 'static)) -> (String, bool) {
    match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => {
            let code = reqwest::StatusCode::from_u16(status.code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .map(|reason| format!("{} {reason}", status.code))
                .unwrap_or_else(|| status.code.to_string());
            let mut text = format!("the API server answered {code}");
            if !status.message.is_empty() {
                text.push_str(&format!(": {}", status.message));
            }
            if !status.reason.is_empty() && !status.message.contains(&status.reason) {
                text.push_str(&format!(" ({})", status.reason));
            }
            (text, true)
        }
        _ => (e.to_string(), false),
    }
}

fn step_err(e: PatchError) -> StepError {
    StepError::failed(chain(&e))
}

/// A step error that keeps `e` as its source and retries exactly what `e` calls transient.
fn classified(retryable: bool, e: impl std::error::Error + Send + Sync + 'static) -> StepError {
    let kind = if retryable {
        StepErrorKind::Retryable
    } else {
        StepErrorKind::Failed
    };
    StepError::new(kind, chain(&e)).with_source(e)
}

impl From<KubeError> for StepError {
    fn from(e: KubeError) -> Self {
        classified(e.is_retryable(), e)
    }
}

impl From<ArbiterError> for StepError {
    fn from(e: ArbiterError) -> Self {
        classified(e.is_retryable(), e)
    }
}

impl From<PatchError> for StepError {
    fn from(e: PatchError) -> Self {
        step_err(e)
    }
}

/// A refusal from the decision core: the controller lagging is transient, the rest is not.
pub fn refusal(r: Refusal) -> StepError {
    let kind = match r {
        Refusal::RevisionNotObserved => StepErrorKind::Retryable,
        _ => StepErrorKind::Failed,
    };
    StepError::new(kind, r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_baseline_sits_under_the_member_the_published_status_leaves_out() {
        let q = QueryOutput {
            epoch: 1,
            working: 0,
            idle: 0,
            min_working: 0,
            private: QueryPrivate {
                baseline: Baseline::default(),
            },
        };
        let v = to_value(&q);
        assert!(
            v[baton_engine::step::PRIVATE_OUTPUT]
                .get("baseline")
                .is_some(),
            "{v}"
        );
    }
}
