//! Driving a run in this process: lease, steps, executor, signals, progress.
//! Shared by `engine run`, `engine resume` and `engine demo`.

use std::sync::Arc;

use anyhow::Context as _;
use baton_engine::event::PodRow;
use baton_engine::executor::{self, Outcome, RunOptions};
use baton_engine::plan::ValidPlan;
use baton_engine::store::RunState;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::exit::ExitStatus;
use crate::printer;

/// How to enter the executor, with the run's name (it also names the lock's holder).
pub enum Entry<'a> {
    /// A new run, named by [`executor::name_new_run`].
    Start { run: &'a str },
    Resume {
        run: &'a str,
        plan_override: Option<&'a ValidPlan>,
    },
}

impl Entry<'_> {
    fn run(&self) -> &str {
        match self {
            Entry::Start { run } | Entry::Resume { run, .. } => run,
        }
    }
}

/// What the caller gets back: the exit status and the last pod table.
pub struct Finished {
    pub status: ExitStatus,
    pub pods: Option<Vec<PodRow>>,
}

/// What a driving process offers besides the run: metrics, and the operator's gate overrides.
#[derive(Debug, Default)]
pub struct Serve {
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub safety: baton_steps::gates::SafetyOptions,
}

/// The gate overrides of `engine run|resume --skip-gate`, checked against the plan: a name
/// the plan does not have is a usage error (a typo would otherwise skip nothing, silently).
pub fn safety_options(
    plan: &ValidPlan,
    skip: &[String],
    reason: Option<&str>,
) -> Result<baton_steps::gates::SafetyOptions, String> {
    let known: Vec<&str> = plan.spec().gates.iter().map(|g| g.name.as_str()).collect();
    if let Some(unknown) = skip.iter().find(|s| !known.contains(&s.as_str())) {
        let have = if known.is_empty() {
            "it has none".to_owned()
        } else {
            format!("it has {}", known.join(", "))
        };
        return Err(format!(
            "error: --skip-gate {unknown}: the plan has no gate of that name ({have})"
        ));
    }
    let mut safety = baton_steps::gates::SafetyOptions {
        skip_gates: skip.iter().cloned().collect(),
        by: crate::commands::who(),
        reason: reason.map(str::to_owned),
        ..Default::default()
    };
    if let Some(clock) =
        baton_steps::gates::ShiftedClock::from_env().map_err(|e| format!("error: {e}"))?
    {
        safety.clock = std::sync::Arc::new(clock);
    }
    Ok(safety)
}

/// Run (or resume) `plan` against the cluster `client` points at, to the end.
pub async fn drive(
    client: kube::Client,
    plan: &ValidPlan,
    entry: Entry<'_>,
    opts: &RunOptions,
    json: bool,
    verbose: bool,
    serve: Serve,
) -> anyhow::Result<Finished> {
    let Serve {
        metrics_addr,
        safety,
    } = serve;
    let spec = plan.spec();
    let holder = baton_steps::lease::holder_identity(entry.run());
    let lease = match acquire_lease(&client, plan, &holder, entry.run()).await {
        Ok(lease) => lease,
        Err(baton_steps::lease::LeaseError::Held { holder }) => {
            printer::err(format!(
                "error: another run holds the lock on {}/{}: {holder}",
                spec.target.namespace, spec.target.name
            ));
            return Ok(Finished {
                status: ExitStatus::Locked,
                pods: None,
            });
        }
        Err(other) => return Err(other).context("cannot take the rollout lock (Lease)"),
    };

    let runner = Arc::new(
        baton_steps::runner::RolloutSteps::connect(plan, client.clone())
            .await
            .context("cannot prepare the rollout steps")?
            .with_safety(safety),
    );
    let (events, receiver) = broadcast::channel(4096);
    let printer_task = tokio::spawn(crate::progress::follow(receiver, json, verbose));
    if let Some(addr) = metrics_addr {
        let server = crate::metrics::serve(addr, events.subscribe()).await?;
        printer::err(format!("metrics on http://{}/metrics", server.addr));
    }

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    // A lost lease stops the run safely, like a signal.
    let lost = lease.lost();
    let on_lost = shutdown.clone();
    tokio::spawn(async move {
        lost.cancelled().await;
        on_lost.cancel();
    });

    let outcome = match entry {
        Entry::Start { run } => {
            executor::start_named(plan, run, runner, opts, events.clone(), shutdown.clone()).await
        }
        Entry::Resume { run, plan_override } => {
            executor::resume(
                Some(run),
                plan_override,
                runner,
                opts,
                events.clone(),
                shutdown.clone(),
            )
            .await
        }
    };
    drop(events);
    let pods = printer_task.await.ok().flatten();
    let lease_lost = lease.lost().is_cancelled();
    if let Err(error) = lease.release().await {
        tracing::warn!(error = %error, "could not release the lease; it expires on its own");
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            let status = crate::state::report_exec_error(error)?;
            return Ok(Finished { status, pods });
        }
    };
    let status = match outcome {
        Outcome::Succeeded => ExitStatus::Success,
        Outcome::AlreadyFinished {
            state: RunState::RolledBack,
        } => {
            // Not a success: the pods are back on the old template. Exit as the run did.
            printer::err(
                "the run already finished: it rolled back (the pods run the old template); nothing to resume",
            );
            printer::err("`engine history RUN` shows why; `engine run PLAN` starts a new attempt");
            ExitStatus::Failed
        }
        Outcome::AlreadyFinished { .. } => {
            printer::err("the run already finished: it succeeded; nothing to do");
            ExitStatus::Success
        }
        Outcome::Aborted { message } => {
            printer::err(format!("{message}; the rollout is frozen where it stood"));
            printer::err("`engine resume` continues it if you change your mind");
            ExitStatus::Failed
        }
        Outcome::Failed { step, message } => {
            printer::err(format!("error: step {step} failed: {message}"));
            printer::err("the run is resumable: fix the cause, then `engine resume`");
            ExitStatus::Failed
        }
        Outcome::SafetyStop { step, message } => {
            // The progress stream has shown the stop already, unless it was silenced.
            if json || printer::is_quiet() {
                printer::err(crate::progress::safety_stop_line(&step, &message));
            }
            printer::err(
                "the rollout is frozen (partition = replicas); inspect, then `engine resume --accept-risk`",
            );
            ExitStatus::Failed
        }
        Outcome::RolledBack { step, message } => {
            printer::err(format!("rolled back: step {step} failed: {message}"));
            printer::err(
                "the pods are back on the template the run started from, the working role on \
                 old-revision pods; the run has ended (start a new one with a fixed plan)",
            );
            ExitStatus::Failed
        }
        Outcome::Interrupted if lease_lost => {
            printer::err(
                "error: the rollout lock (Lease) was lost; the run stopped at a safe point and is resumable",
            );
            ExitStatus::Failed
        }
        Outcome::Interrupted => {
            printer::err("interrupted; state is checkpointed, continue with `engine resume`");
            ExitStatus::Interrupted
        }
    };
    Ok(Finished { status, pods })
}

/// Take the Lease, asking again with backoff while the API server fails transiently.
async fn acquire_lease(
    client: &kube::Client,
    plan: &ValidPlan,
    holder: &str,
    run: &str,
) -> Result<baton_steps::lease::LeaseGuard, baton_steps::lease::LeaseError> {
    let target = &plan.spec().target;
    let policy = baton_engine::retry::RetryPolicy::CALLER;
    let mut tries = 1;
    loop {
        match baton_steps::lease::acquire(client, &target.namespace, &target.name, holder, run)
            .await
        {
            Err(baton_steps::lease::LeaseError::Api { source, what })
                if policy.may_retry(tries) && baton_steps::k8s::kube_error_retryable(&source) =>
            {
                tracing::warn!(%what, tries, "taking the lease failed transiently; retrying");
                tokio::time::sleep(policy.ceiling(tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// [`drive`] for `engine run` and `engine resume`: progress as the global flags ask,
/// then the final pod table on a terminal-style (text) run.
pub async fn drive_and_report(
    client: kube::Client,
    plan: &ValidPlan,
    entry: Entry<'_>,
    opts: &RunOptions,
    global: &crate::args::GlobalArgs,
    metrics_addr: Option<std::net::SocketAddr>,
    safety: baton_steps::gates::SafetyOptions,
) -> anyhow::Result<ExitStatus> {
    let json = printer::is_json(global);
    let finished = drive(
        client.clone(),
        plan,
        entry,
        opts,
        json,
        global.verbose > 0,
        Serve {
            metrics_addr,
            safety,
        },
    )
    .await?;
    // `-q` keeps errors only: the table is a summary, not an error.
    if !json && !printer::is_quiet() {
        // What the cluster is now, not what the run last announced: after a failure, an
        // abort or a safety stop the events lag behind the pods.
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            baton_steps::read_pod_rows(&client, plan),
        )
        .await;
        match (read, &finished.pods) {
            (Ok(Ok(rows)), _) if !rows.is_empty() => {
                printer::err(crate::progress::pod_table(&rows));
            }
            (read, Some(pods)) => {
                let why = match read {
                    Ok(Err(e)) => baton_steps::env::chain(&e),
                    Ok(Ok(_)) => "no pods listed".to_owned(),
                    Err(_) => "the cluster did not answer within 10s".to_owned(),
                };
                printer::err(format!(
                    "(pods as the run last saw them; the cluster could not be read: {why})"
                ));
                printer::err(crate::progress::pod_table(pods));
            }
            (_, None) => {}
        }
    }
    Ok(finished.status)
}

/// First SIGINT/SIGTERM: cancel and let the executor checkpoint. Second: exit at once
/// (the checkpoint of the last transition is already on disk).
pub(crate) fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_signal().await;
            count += 1;
            if count == 1 {
                printer::err(
                    "signal received: stopping at the next safe point (again to exit now)",
                );
                shutdown.cancel();
            } else {
                printer::clear_live();
                #[allow(clippy::exit)]
                std::process::exit(ExitStatus::Interrupted as i32);
            }
        }
    });
}

#[cfg(unix)]
async fn wait_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
