//! Driving one UpgradePlan on the leader: read its record, take the StatefulSet's run lock,
//! run it through the executor with the real steps and the API-server store, and keep its
//! `status` and Events current. The same executor entry points as `engine run|resume`
//! (`start_named_in`, `resume_in`), so a new leader continues a run exactly as `engine
//! resume` would: nodes left running run again, steps being idempotent.
//!
//! The executor also serves its control socket and publishes its live view under a
//! scratch run directory on this machine (`<state>/<namespace>/runs/<plan>`): the driver
//! reads the view for `status` and sends operators' requests through the socket, so an
//! approval is recorded exactly as `engine approve` records it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_engine::event::RunEvent;
use baton_engine::executor::{self, Environment, Outcome, RunOptions};
use baton_engine::plan::ValidPlan;
use baton_engine::store::{self, RunState, RunStore, RunView};
use baton_steps::events::EventType;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::requests::Request;
use crate::resource;
use crate::status::{self, Summary};
use crate::store::{CheckpointCell, KubeStore, KubeStores, Location};

/// Least time between two status writes of one plan, except at transitions.
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// What every run of this controller shares.
pub struct Context {
    pub client: kube::Client,
    /// For the stores' own clients (see [`crate::store`]).
    pub config: kube::Config,
    pub identity: String,
    /// The scratch state directory of this replica.
    pub state_dir: PathBuf,
    /// Every run's events, for metrics.
    pub events: broadcast::Sender<RunEvent>,
    pub chunk_budget: usize,
}

/// How one drive ended, for the controller's loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The plan needs nothing more from the controller (finished, or stopped until an
    /// operator acts).
    Settled,
    /// Stopped because leadership (or the plan) went: the next leader continues.
    Stopped,
    /// Failed for a reason that may pass (the API server, the store): try again later.
    Retry(String),
}

/// Drive the plan `obj` until it settles, `stop` is cancelled, or something fails.
/// `resume` is an operator's `baton.dev/resume` request found on the plan: it starts a run
/// that stopped (failed, aborted, or stopped for safety with `acceptRisk`) again, as
/// `engine resume` would; the drive consumes it (removes the annotation) either way.
pub async fn drive(
    ctx: Arc<Context>,
    obj: DynamicObject,
    stop: CancellationToken,
    mut requests: mpsc::UnboundedReceiver<Request>,
    resume: Option<Request>,
) -> End {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let name = resource::name(&obj).to_owned();
    let plans: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &resource::api_resource());
    let reporter = Reporter {
        plans: plans.clone(),
        ctx: ctx.clone(),
        obj: obj.clone(),
        stop: stop.clone(),
    };
    let plan = match ValidPlan::parse(
        &resource::plan_file(&namespace, &obj),
        &resource::plan_text(&obj, &namespace),
    ) {
        Ok(plan) => plan,
        Err(error) => {
            let summary = Summary {
                phase: status::phase::FAILED.to_owned(),
                message: Some(format!("the plan is not valid: {}", error.render())),
                ..Summary::default()
            };
            reporter.status(&summary, None).await;
            return End::Settled;
        }
    };
    let checkpoint = CheckpointCell::default();
    let location = Location {
        config: ctx.config.clone(),
        namespace: namespace.clone(),
        plan: name.clone(),
        owner: resource::owner(&obj),
        chunk_budget: ctx.chunk_budget,
    };
    let found = match read_record(location.clone(), checkpoint.clone()).await {
        Ok(found) => found,
        Err(why) => return End::Retry(why),
    };
    if let Some(request) = &resume {
        reporter.clear_request(request.kind.annotation()).await;
    }
    let state = found.as_ref().map(|view| view.state);
    let asked = match (&resume, state) {
        (Some(request), Some(state)) => match resume_answer(state, request.accept_risk) {
            Ok(()) => Some(request),
            Err(why) => {
                reporter.refused(request, why).await;
                None
            }
        },
        _ => None,
    };
    let resuming = match &found {
        None => false,
        Some(view) if matches!(view.state, RunState::Running | RunState::Interrupted) => true,
        Some(_) if asked.is_some() => true,
        Some(view) => {
            let summary = Summary::of(view, None);
            reporter.status(&summary, Some(&checkpoint)).await;
            return End::Settled;
        }
    };

    let target = &plan.spec().target;
    let holder = baton_steps::lease::holder_identity(&name);
    let lease = loop {
        match baton_steps::lease::acquire(
            &ctx.client,
            &target.namespace,
            &target.name,
            &holder,
            &name,
        )
        .await
        {
            Ok(lease) => break lease,
            Err(error) => {
                let why = baton_steps::env::chain(&error);
                tracing::info!(plan = %name, error = %why, "waiting for the run lock");
                // Said while it lasts (a run just taken over usually gets the lock at once).
                let waiting =
                    Summary::pending(format!("waiting for the StatefulSet's run lock: {why}"));
                let summary = match &found {
                    Some(view) => Summary {
                        message: waiting.message,
                        ..Summary::of(view, None)
                    },
                    None => waiting,
                };
                reporter.status(&summary, Some(&checkpoint)).await;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return End::Stopped,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    let runner = match baton_steps::runner::RolloutSteps::connect(&plan, ctx.client.clone()).await {
        Ok(runner) => Arc::new(runner),
        Err(error) => {
            let _ = lease.release().await;
            return End::Retry(format!("cannot prepare the steps: {error}"));
        }
    };
    let shutdown = stop.child_token();
    let lost = lease.lost();
    let on_lost = shutdown.clone();
    tokio::spawn(async move {
        lost.cancelled().await;
        on_lost.cancel();
    });

    let scratch = ctx.state_dir.join(&namespace);
    let run_dir = store::run_dir(&scratch, &name);
    if let Err(error) = std::fs::create_dir_all(&run_dir) {
        let _ = lease.release().await;
        return End::Retry(format!("cannot create {}: {error}", run_dir.display()));
    }
    let opts = RunOptions {
        state_dir: scratch,
        accept_risk: asked.is_some_and(|r| r.accept_risk),
        replan: false,
        operator: asked.map(|r| r.by.clone()),
    };
    let env = Environment {
        stores: Arc::new(KubeStores {
            location: location.clone(),
            checkpoint: checkpoint.clone(),
        }),
        ..Environment::default()
    };
    let (events, mut receiver) = broadcast::channel::<RunEvent>(4096);
    let (reason, verb) = if resuming {
        ("BatonResumed", "resumes")
    } else {
        ("BatonStarted", "starts")
    };
    let asked_by = match asked {
        Some(r) if r.accept_risk => format!(", accepting the risk, as {} asked", r.by),
        Some(r) => format!(", as {} asked", r.by),
        None => String::new(),
    };
    reporter
        .event(
            EventType::Normal,
            reason,
            &format!("{} {verb} the run{asked_by}", ctx.identity),
        )
        .await;

    let executing = {
        let (env, plan, runner, opts, events, shutdown, name) = (
            env.clone(),
            plan.clone(),
            runner.clone(),
            opts.clone(),
            events.clone(),
            shutdown.clone(),
            name.clone(),
        );
        tokio::spawn(async move {
            if resuming {
                executor::resume_in(&env, Some(&name), None, runner, &opts, events, shutdown).await
            } else {
                executor::start_named_in(&env, &plan, &name, runner, &opts, events, shutdown).await
            }
        })
    };
    drop(events);
    tokio::pin!(executing);
    let mut last: Option<Summary> = None;
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    let outcome = loop {
        tokio::select! {
            done = &mut executing => break done,
            event = receiver.recv() => match event {
                Ok(event) => {
                    let _ = ctx.events.send(event.clone());
                    reporter.announce(&event).await;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    // The executor has ended; its task is about to resolve.
                    break (&mut executing).await;
                }
            },
            Some(request) = requests.recv() => {
                deliver(&reporter, &run_dir, request).await;
            }
            _ = tick.tick() => {
                if let Some(view) = live_view(&run_dir)
                    && view.live_pid.is_some()
                {
                    let summary = Summary::of(&view, last.as_ref());
                    if last.as_ref() != Some(&summary) {
                        reporter.status(&summary, Some(&checkpoint)).await;
                        last = Some(summary);
                    }
                }
            }
        }
    };
    let lease_lost = lease.lost().is_cancelled();
    if let Err(error) = lease.release().await {
        tracing::warn!(error = %baton_steps::env::chain(&error), "cannot release the run lock; it expires on its own");
    }
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => return End::Retry(baton_steps::env::chain(&error)),
        Err(join) => return End::Retry(format!("the run's task ended: {join}")),
    };
    if stop.is_cancelled() || lease_lost {
        // Not the leader any more (or the plan is gone): the next leader reports.
        return End::Stopped;
    }
    // The final status from what the store holds, with the pods as they are now.
    tracing::info!(plan = %name, ?outcome, "the run ended");
    let mut summary = match read_record(location, checkpoint.clone()).await {
        Ok(Some(view)) => Summary::of(&view, last.as_ref()),
        other => {
            tracing::warn!(plan = %name, read = ?other.map(|v| v.map(|v| v.state)), "cannot read the ended run's record back; its status comes from the outcome");
            Summary::of_outcome(&outcome, last.as_ref())
        }
    };
    if let Ok(Ok(rows)) = tokio::time::timeout(
        Duration::from_secs(5),
        baton_steps::read_pod_rows(&ctx.client, &plan),
    )
    .await
        && !rows.is_empty()
    {
        let updated = rows.iter().filter(|r| r.updated).count();
        summary.progress = Some(format!("{updated}/{}", rows.len()));
    }
    reporter.status(&summary, Some(&checkpoint)).await;
    let (kind, message) = match &outcome {
        Outcome::Succeeded
        | Outcome::AlreadyFinished {
            state: RunState::Succeeded,
        } => (EventType::Normal, "the run succeeded".to_owned()),
        Outcome::AlreadyFinished { state } => (
            EventType::Warning,
            format!("the run had already ended: {}", state.as_str()),
        ),
        Outcome::Interrupted => (EventType::Warning, "the run was interrupted".to_owned()),
        Outcome::Aborted { message } => (EventType::Warning, message.clone()),
        Outcome::Failed { step, message }
        | Outcome::SafetyStop { step, message }
        | Outcome::RolledBack { step, message } => {
            (EventType::Warning, format!("{step}: {message}"))
        }
    };
    reporter
        .event(kind, baton_steps::events::FINISHED, &message)
        .await;
    match outcome {
        Outcome::Interrupted => End::Retry("the run was interrupted".to_owned()),
        _ => End::Settled,
    }
}

/// The record in the store, as a view (`None`: no run yet). Blocking reads, off the runtime.
async fn read_record(
    location: Location,
    checkpoint: CheckpointCell,
) -> Result<Option<RunView>, String> {
    let described = location.describe();
    tokio::task::spawn_blocking(move || {
        let store =
            KubeStore::open_with(location, checkpoint).map_err(|e| baton_steps::env::chain(&e))?;
        let record = store.load().map_err(|e| baton_steps::env::chain(&e))?;
        Ok(record.map(|r| RunView::of(&r, None)))
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading {described}: {e}")))
}

/// The view the executor publishes while it drives the run.
fn live_view(run_dir: &std::path::Path) -> Option<RunView> {
    let bytes = std::fs::read(store::status_path(run_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether an operator's resume may start a run that ended in `state` again: a failed or
/// aborted run may, one stopped for safety only when the request accepts the risk (as
/// `engine resume --accept-risk`), a finished one never.
pub fn resume_answer(state: RunState, accept_risk: bool) -> Result<(), &'static str> {
    match state {
        RunState::Failed | RunState::Aborted | RunState::Running | RunState::Interrupted => Ok(()),
        RunState::SafetyStopped if accept_risk => Ok(()),
        RunState::SafetyStopped => Err(
            "the run stopped for safety: resuming it needs acceptRisk (engine resume --in-cluster NAME --accept-risk)",
        ),
        RunState::Succeeded | RunState::RolledBack => {
            Err("the run has finished; apply a new UpgradePlan for another rollout")
        }
    }
}

/// Hands an operator's request to the run (its control socket), then removes the
/// annotation it came in.
async fn deliver(reporter: &Reporter, run_dir: &std::path::Path, request: Request) {
    let socket = store::socket_path(run_dir);
    let Some(control) = request.control() else {
        // A resume of a run that is going on: nothing to resume.
        reporter.refused(&request, "the run is going on").await;
        reporter.clear_request(request.kind.annotation()).await;
        return;
    };
    let answer = tokio::task::spawn_blocking(move || {
        baton_engine::control::send(&socket, &control, Duration::from_secs(5))
    })
    .await;
    let refused = match answer {
        Ok(Ok(baton_engine::control::ControlResponse::Refused { message })) => Some(message),
        Ok(Ok(answer)) => {
            tracing::info!(?request, ?answer, "operator request delivered");
            None
        }
        Ok(Err(error)) => Some(format!(
            "not delivered: {}",
            baton_steps::env::chain(&error)
        )),
        Err(error) => Some(format!("not delivered: {error}")),
    };
    if let Some(why) = refused {
        tracing::warn!(?request, %why, "operator request refused");
        reporter.refused(&request, &why).await;
    }
    reporter.clear_request(request.kind.annotation()).await;
}

/// Writes what the plan's readers see: its `status` and its Events. Best effort: a write
/// that fails is logged, the run goes on.
pub(crate) struct Reporter {
    pub(crate) plans: Api<DynamicObject>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) obj: DynamicObject,
    /// Cancelled when this replica stops leading: it then writes nothing more.
    pub(crate) stop: CancellationToken,
}

impl Reporter {
    /// Says on the plan (a Warning Event) that `request` was refused, and why.
    pub(crate) async fn refused(&self, request: &Request, why: &str) {
        let message = format!("{} by {}: {why}", request.kind.annotation(), request.by);
        self.event(EventType::Warning, "BatonRequestRefused", &message)
            .await;
    }

    pub(crate) async fn status(&self, summary: &Summary, checkpoint: Option<&CheckpointCell>) {
        if self.stop.is_cancelled() {
            return;
        }
        let checkpoint = checkpoint.map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone());
        let doc = status::document(
            summary,
            self.obj.metadata.generation,
            &self.ctx.identity,
            checkpoint.as_ref(),
            jiff::Timestamp::now(),
        );
        let patch = serde_json::json!({"status": doc});
        let name = resource::name(&self.obj);
        if let Err(error) = self
            .plans
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(plan = %name, %error, "cannot write the plan's status");
        }
    }

    /// Removes an operator's request annotation once it was handled.
    pub(crate) async fn clear_request(&self, annotation: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {annotation: null}}});
        let name = resource::name(&self.obj);
        if let Err(error) = self
            .plans
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(plan = %name, %error, "cannot remove a handled request");
        }
    }

    /// Events worth an Event on the plan: waves, handovers, safety stops.
    async fn announce(&self, event: &RunEvent) {
        match event {
            RunEvent::WavePlanned {
                wave,
                pods,
                partition,
            } => {
                let message = format!("wave {wave}: {} (partition {partition})", pods.join(", "));
                self.event(
                    EventType::Normal,
                    baton_steps::events::WAVE_STARTED,
                    &message,
                )
                .await;
            }
            RunEvent::Handover {
                wave,
                promote,
                demote,
                epoch,
            } => {
                let message = format!(
                    "wave {wave}: promote {}, demote {} (epoch {epoch})",
                    promote.join(", "),
                    demote.join(", ")
                );
                self.event(EventType::Normal, baton_steps::events::HANDOVER, &message)
                    .await;
            }
            RunEvent::SafetyStop { step, reason } => {
                let message = format!("{step}: {reason}");
                self.event(
                    EventType::Warning,
                    baton_steps::events::SAFETY_STOP,
                    &message,
                )
                .await;
            }
            _ => {}
        }
    }

    /// One Event on the plan, built like the run's Events on its StatefulSet.
    pub(crate) async fn event(&self, kind: EventType, reason: &str, message: &str) {
        if self.stop.is_cancelled() {
            return;
        }
        let namespace = self.obj.metadata.namespace.clone().unwrap_or_default();
        let name = resource::name(&self.obj);
        let recorder =
            baton_steps::events::Recorder::new(self.ctx.client.clone(), &namespace, name);
        let mut event = recorder.event(kind, reason, message);
        event.involved_object = ObjectReference {
            api_version: Some(format!("{}/{}", resource::GROUP, resource::VERSION)),
            kind: Some(resource::KIND.to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.clone()),
            uid: self.obj.metadata.uid.clone(),
            ..ObjectReference::default()
        };
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.ctx.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(%error, reason, "cannot create an event on the plan");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_starts_what_engine_resume_would_and_nothing_else() {
        use RunState::*;
        let cases = [
            (Failed, false, true),
            (Aborted, false, true),
            (Interrupted, false, true),
            (SafetyStopped, false, false),
            (SafetyStopped, true, true),
            (Succeeded, true, false),
            (RolledBack, true, false),
        ];
        for (state, accept_risk, allowed) in cases {
            assert_eq!(
                resume_answer(state, accept_risk).is_ok(),
                allowed,
                "{state:?} accept_risk={accept_risk}"
            );
        }
    }
}
