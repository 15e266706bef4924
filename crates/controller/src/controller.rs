//! The controller's loop: stand by until this replica leads, then watch the UpgradePlans of
//! its namespace and drive each plan that is not settled ([`crate::drive`]); when the lead
//! is lost, cancel every run at once (they stop at a safe point) and stand by again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_engine::event::RunEvent;
use baton_steps::lease::LeaseConfig;
use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::drive::{self, Context, End, Reporter};
use crate::leader::Election;
use crate::requests::{self, Kind, Request};
use crate::{resource, status};

/// How long a run may take to reach a safe point once leadership is lost (the executor's
/// own grace for steps, plus its last checkpoint).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long after a drive that failed (the API server, the store) the plan is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What `engine controller` is given.
#[derive(Debug, Clone)]
pub struct Options {
    /// The controller's namespace: where its Lease lives.
    pub namespace: String,
    /// Watch the UpgradePlans of this namespace only (default: every namespace).
    pub watch_namespace: Option<String>,
    /// `<hostname>/<pid>` unless told otherwise.
    pub identity: String,
    /// Scratch state on this machine (live views and control sockets of the runs).
    pub state_dir: PathBuf,
    pub lease: LeaseConfig,
    pub chunk_budget: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Runs the controller until `shutdown` is cancelled; `events` receives every run's events.
///
/// # Errors
/// [`Error::Client`] when no client can be built from `config`.
pub async fn run(
    config: kube::Config,
    options: Options,
    events: broadcast::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let client = kube::Client::try_from(config.clone()).map_err(Error::Client)?;
    let election = Election {
        client: client.clone(),
        namespace: options.namespace.clone(),
        identity: options.identity.clone(),
        config: options.lease,
    };
    let ctx = Arc::new(Context {
        client,
        config,
        identity: options.identity.clone(),
        state_dir: options.state_dir.clone(),
        events,
        chunk_budget: options.chunk_budget,
    });
    loop {
        let Some(guard) = election.lead(&shutdown).await else {
            return Ok(());
        };
        let leading = shutdown.child_token();
        let lost = guard.lost();
        let on_lost = leading.clone();
        let watch_lost = tokio::spawn(async move {
            lost.cancelled().await;
            on_lost.cancel();
        });
        lead(ctx.clone(), options.watch_namespace.as_deref(), leading).await;
        watch_lost.abort();
        if shutdown.is_cancelled() {
            if let Err(error) = guard.release().await {
                tracing::warn!(error = %baton_steps::env::chain(&error), "cannot release the controller lease; it expires on its own");
            }
            return Ok(());
        }
        tracing::error!("lost the controller lease: runs stopped; standing by");
        drop(guard);
    }
}

/// One plan the leader drives.
struct Driving {
    task: JoinHandle<End>,
    requests: mpsc::UnboundedSender<Request>,
    stop: CancellationToken,
}

/// What the leader knows of a plan.
#[derive(Default)]
struct Plan {
    latest: Option<DynamicObject>,
    driving: Option<Driving>,
    /// Not before this instant (after a failed drive).
    not_before: Option<Instant>,
    /// The last drive ended settled for this generation.
    settled: Option<Option<i64>>,
    /// Requests handed to the running drive whose annotation is still on the plan (the
    /// driver removes it): each is handed once.
    handed: Vec<Request>,
}

/// Leads until `leading` is cancelled.
async fn lead(ctx: Arc<Context>, namespace: Option<&str>, leading: CancellationToken) {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource::api_resource()),
        None => Api::all_with(ctx.client.clone(), &resource::api_resource()),
    };
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut plans: HashMap<String, Plan> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = leading.cancelled() => break,
            event = stream.next() => match event {
                Some(Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj))) => {
                    let plan = plans.entry(key(&obj)).or_default();
                    plan.latest = Some(obj);
                    consider(&ctx, plan, &leading).await;
                }
                Some(Ok(watcher::Event::Delete(obj))) => {
                    if let Some(plan) = plans.remove(&key(&obj))
                        && let Some(driving) = plan.driving
                    {
                        driving.stop.cancel();
                    }
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "watching UpgradePlans failed; the watch restarts");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => break,
            },
            _ = tick.tick() => {
                for plan in plans.values_mut() {
                    consider(&ctx, plan, &leading).await;
                }
            }
        }
    }
    // Stop every run at a safe point, at once, and wait for them (bounded).
    let mut tasks = Vec::new();
    for plan in plans.into_values() {
        if let Some(driving) = plan.driving {
            driving.stop.cancel();
            tasks.push(driving.task);
        }
    }
    let _ = tokio::time::timeout(STOP_GRACE, futures::future::join_all(tasks)).await;
}

/// `namespace/name`: plans are told apart across namespaces.
fn key(obj: &DynamicObject) -> String {
    format!(
        "{}/{}",
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        resource::name(obj)
    )
}

/// Reaps a finished drive, hands requests to a running one, and starts a drive when the
/// plan needs one.
async fn consider(ctx: &Arc<Context>, plan: &mut Plan, leading: &CancellationToken) {
    let Some(obj) = plan.latest.clone() else {
        return;
    };
    if let Some(driving) = &mut plan.driving
        && driving.task.is_finished()
    {
        let end = (&mut driving.task)
            .await
            .unwrap_or_else(|e| End::Retry(e.to_string()));
        plan.driving = None;
        match end {
            End::Settled => plan.settled = Some(obj.metadata.generation),
            End::Stopped => {}
            End::Retry(why) => {
                tracing::warn!(plan = %resource::name(&obj), %why, "the drive failed; trying again");
                plan.not_before = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }
    let found = requests::requests(&obj);
    plan.handed.retain(|h| found.contains(h));
    if let Some(driving) = &plan.driving {
        for request in found {
            if !plan.handed.contains(&request) {
                let _ = driving.requests.send(request.clone());
                plan.handed.push(request);
            }
        }
        return;
    }
    let settled_phase = resource::phase(&obj).is_some_and(status::is_settled);
    let settled_here = plan.settled == Some(obj.metadata.generation);
    // A resume is no request to a run but the start of a drive, which decides on it from
    // the run's record (and consumes it); approve and abort of a stopped run are refused.
    let resume = found.iter().find(|r| r.kind == Kind::Resume).cloned();
    let mut found: Vec<Request> = found
        .into_iter()
        .filter(|r| r.kind != Kind::Resume)
        .collect();
    if !found.is_empty() && (settled_phase || settled_here) {
        let namespace = obj.metadata.namespace.clone().unwrap_or_default();
        let reporter = Reporter {
            plans: Api::namespaced_with(ctx.client.clone(), &namespace, &resource::api_resource()),
            ctx: ctx.clone(),
            obj: obj.clone(),
            stop: leading.clone(),
        };
        for request in found.drain(..) {
            reporter.refused(&request, "no run is going on").await;
            reporter.clear_request(request.kind.annotation()).await;
        }
        plan.handed = requests::requests(&obj);
        if resume.is_none() {
            return;
        }
    }
    let waiting = plan.not_before.is_some_and(|t| Instant::now() < t);
    if waiting || ((settled_phase || settled_here) && resume.is_none()) {
        return;
    }
    let stop = leading.child_token();
    let (sender, receiver) = mpsc::unbounded_channel();
    for request in found {
        let _ = sender.send(request.clone());
        plan.handed.push(request);
    }
    if let Some(request) = &resume {
        // Handed to this drive: not to be sent to it again while its annotation lasts.
        plan.handed.push(request.clone());
    }
    let task = tokio::spawn(drive::drive(
        ctx.clone(),
        obj,
        stop.clone(),
        receiver,
        resume,
    ));
    plan.driving = Some(Driving {
        task,
        requests: sender,
        stop,
    });
}
