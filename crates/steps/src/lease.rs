//! The run lock: a `coordination.k8s.io/v1` Lease `baton-<asts>` in the target namespace.
//! It lives in the cluster, so a second run against the same ASTS is refused from any
//! machine. The holder renews it in the background with optimistic concurrency on
//! `resourceVersion`; if renewal fails for a whole lease duration (or someone else took
//! it), the guard's `lost` token is cancelled and the executor stops at a safe point.

use std::time::Duration;

use baton_engine::retry::RetryPolicy;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Annotation naming the run that holds the lease.
pub const RUN_ANNOTATION: &str = "baton.dev/run";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another run holds the lock on this statefulset: {holder}")]
    Held { holder: String },
    #[error("{what} got no answer within {}", baton_engine::text::span(*waited))]
    NoAnswer {
        what: &'static str,
        waited: Duration,
    },
    #[error("lease request failed: {what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl LeaseError {
    /// A request that failed transiently (see [`crate::k8s::kube_error_retryable`]); a lock
    /// held by another run and a request with no answer in time are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            LeaseError::Api { source, .. } => crate::k8s::kube_error_retryable(source),
            LeaseError::Held { .. } | LeaseError::NoAnswer { .. } => false,
        }
    }
}

/// How long releasing the lease may take, retries included, before the run gives up on it.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// How releasing the lease is asked again after a transient failure (5xx, 429, a conflict,
/// a dropped connection): 100 ms doubling, 5 tries, so the sleeps (1.5 s at most) leave
/// the requests room within [`RELEASE_TIMEOUT`].
pub const RELEASE_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(1),
    max_attempts: 5,
};

/// How long a lease lives without renewal, and how often the holder renews it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    pub duration: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// `<run>@<host>/<pid>`: who holds the lock, for the message a refused run prints.
pub fn holder_identity(run_id: &str) -> String {
    format!(
        "{run_id}@{}/{}",
        crate::events::hostname(),
        std::process::id()
    )
}

/// The lease name for an ASTS.
pub fn lease_name(sts: &str) -> String {
    format!("baton-{sts}")
}

/// Whether `spec` is free for `holder` at `now`: no holder, the same holder, or expired.
pub fn is_free(spec: Option<&LeaseSpec>, holder: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == holder => true,
        Some(_) => {
            let Some(MicroTime(renewed)) = spec.renew_time else {
                return true;
            };
            let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
            renewed + jiff::SignedDuration::from_secs(secs) < now
        }
    }
}

/// Whether `holder` (`<run>@<host>/<pid>`) names a process on this machine that no
/// longer exists. Such a lease is free at once: a run killed with SIGKILL and resumed
/// on the same machine must not wait for the lease to expire. Holders on other
/// machines are only ever judged by expiry.
pub fn holder_is_dead_here(holder: &str) -> bool {
    let Some((rest, pid)) = holder.rsplit_once('/') else {
        return false;
    };
    let Some((_, host)) = rest.rsplit_once('@') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == crate::events::hostname()
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !process_runs(pid)
}

/// Whether process `pid` exists and has not exited. A killed process whose parent has
/// not reaped it yet (a zombie, state `Z` in `/proc/<pid>/stat`) holds nothing any more.
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any byte.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// Clears the lease of run `run_id` when its holder is gone (expired, or a dead process on
/// this machine). Used by `engine abort`; a live holder releases its own lease when it stops.
/// Returns whether a holder was cleared.
pub async fn clear_stale(
    client: &kube::Client,
    namespace: &str,
    sts: &str,
    run_id: &str,
) -> Result<bool, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(sts);
    let api_err = |what: String| move |source| LeaseError::Api { what, source };
    let Some(mut lease) = api
        .get_opt(&name)
        .await
        .map_err(api_err(format!("get lease {namespace}/{name}")))?
    else {
        return Ok(false);
    };
    let ours = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RUN_ANNOTATION))
        .is_some_and(|r| r == run_id);
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    let expired = is_free(lease.spec.as_ref(), "", jiff::Timestamp::now());
    if !ours || holder.is_empty() || !(expired || holder_is_dead_here(&holder)) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&name, &PostParams::default(), &lease)
        .await
        .map_err(api_err(format!("clear lease {namespace}/{name}")))?;
    Ok(true)
}

/// The live holder of the lock on `sts` when it is another run than `run_id`; `None` when
/// the lock is free, expired, held by a dead process on this machine, or held by `run_id`
/// itself. `engine abort` asks this before it touches anything: an operator's command must
/// never write under a run it was not asked about.
pub async fn held_by_other_run(
    client: &kube::Client,
    namespace: &str,
    sts: &str,
    run_id: &str,
) -> Result<Option<String>, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(sts);
    let lease = api.get_opt(&name).await.map_err(|source| LeaseError::Api {
        what: format!("get lease {namespace}/{name}"),
        source,
    })?;
    let Some(lease) = lease else { return Ok(None) };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    let ours = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RUN_ANNOTATION))
        .is_some_and(|r| r == run_id);
    let free =
        is_free(lease.spec.as_ref(), "", jiff::Timestamp::now()) || holder_is_dead_here(&holder);
    Ok((!ours && !free).then_some(holder))
}

/// Takes the lock like [`acquire`], waiting up to `patience` while it is still held by
/// `run_id` itself (a process of that run that was just told to stop releases it on its way
/// out). A lock held by another run is refused at once.
pub async fn acquire_patiently(
    client: &kube::Client,
    namespace: &str,
    sts: &str,
    holder: &str,
    run_id: &str,
    patience: Duration,
) -> Result<LeaseGuard, LeaseError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match acquire(client, namespace, sts, holder, run_id).await {
            Err(LeaseError::Held { holder: other })
                if tokio::time::Instant::now() < deadline
                    && held_by_other_run(client, namespace, sts, run_id)
                        .await?
                        .is_none() =>
            {
                tracing::debug!(holder = %other, "waiting for the run's own process to release the lock");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// A held lease. Dropping it stops renewal (the lease then expires); prefer [`LeaseGuard::release`].
pub struct LeaseGuard {
    api: Api<Lease>,
    name: String,
    holder: String,
    lost: CancellationToken,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl LeaseGuard {
    /// Cancelled when the lease is lost: the run must stop at a safe point.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops renewal and clears the holder, so the next run can start at once. A transient
    /// failure is retried ([`RELEASE_RETRY`]), all of it bounded by [`RELEASE_TIMEOUT`]: an
    /// API server that keeps failing must not keep a finished run from exiting (the lease
    /// expires on its own).
    pub async fn release(mut self) -> Result<(), LeaseError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let retried = async {
            let mut tries = 1;
            loop {
                match self.clear().await {
                    Err(error) if error.is_retryable() && RELEASE_RETRY.may_retry(tries) => {
                        tracing::debug!(%error, tries, "releasing the lease failed; retrying");
                        tokio::time::sleep(RELEASE_RETRY.ceiling(tries)).await;
                        tries += 1;
                    }
                    other => return other,
                }
            }
        };
        tokio::time::timeout(RELEASE_TIMEOUT, retried)
            .await
            .unwrap_or(Err(LeaseError::NoAnswer {
                what: "release lease",
                waited: RELEASE_TIMEOUT,
            }))
    }

    async fn clear(&self) -> Result<(), LeaseError> {
        let api_err = |what: &str| {
            let what = what.to_owned();
            move |source| LeaseError::Api { what, source }
        };
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(api_err("get lease"))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(api_err("release lease"))?;
        Ok(())
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Takes the lock on `sts` for `holder`, with the default timing.
pub async fn acquire(
    client: &kube::Client,
    namespace: &str,
    sts: &str,
    holder: &str,
    run_id: &str,
) -> Result<LeaseGuard, LeaseError> {
    acquire_with(
        client,
        namespace,
        sts,
        holder,
        run_id,
        LeaseConfig::default(),
    )
    .await
}

/// Creates the lease, or takes it over when it is free (see [`is_free`]); else [`LeaseError::Held`].
pub async fn acquire_with(
    client: &kube::Client,
    namespace: &str,
    sts: &str,
    holder: &str,
    run_id: &str,
    config: LeaseConfig,
) -> Result<LeaseGuard, LeaseError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(sts);
    let now = jiff::Timestamp::now();
    let held = |lease: &Lease| LeaseError::Held {
        holder: lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default(),
    };
    let (written, what) = match api.get_opt(&name).await {
        Err(source) => {
            return Err(LeaseError::Api {
                what: format!("get lease {namespace}/{name}"),
                source,
            });
        }
        Ok(None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    annotations: Some([(RUN_ANNOTATION.to_owned(), run_id.to_owned())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(held_spec(None, holder, now, config)),
            };
            (api.create(&PostParams::default(), &lease).await, "create")
        }
        Ok(Some(mut lease)) => {
            let dead = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(holder_is_dead_here);
            if !dead && !is_free(lease.spec.as_ref(), holder, now) {
                return Err(held(&lease));
            }
            lease.spec = Some(held_spec(lease.spec.as_ref(), holder, now, config));
            lease
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(RUN_ANNOTATION.to_owned(), run_id.to_owned());
            let replaced = api.replace(&name, &PostParams::default(), &lease).await;
            (replaced, "take over")
        }
    };
    let taken = match written {
        Ok(l) => l,
        // Another run created or took it between our read and our write.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let current = api.get(&name).await.map_err(|source| LeaseError::Api {
                what: format!("get lease {namespace}/{name}"),
                source,
            })?;
            return Err(held(&current));
        }
        Err(source) => {
            return Err(LeaseError::Api {
                what: format!("{what} lease {namespace}/{name}"),
                source,
            });
        }
    };
    let lost = CancellationToken::new();
    let stop = CancellationToken::new();
    let task = tokio::spawn(renew(
        api.clone(),
        taken,
        holder.to_owned(),
        config,
        lost.clone(),
        stop.clone(),
    ));
    Ok(LeaseGuard {
        api,
        name,
        holder: holder.to_owned(),
        lost,
        stop,
        task: Some(task),
    })
}

fn held_spec(
    previous: Option<&LeaseSpec>,
    holder: &str,
    now: jiff::Timestamp,
    config: LeaseConfig,
) -> LeaseSpec {
    let same = previous.and_then(|p| p.holder_identity.as_deref()) == Some(holder);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(
            i32::try_from(config.duration.as_secs())
                .unwrap_or(i32::MAX)
                .max(1),
        ),
        acquire_time: if same {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same || previous.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// Renews until stopped; cancels `lost` when another holder took the lease, or when no
/// renewal has succeeded for so long that the lease could expire before the next one.
///
/// The server keeps the lease `duration` past the last renewal it accepted. The run must
/// be stopped *before* that, with time left to reach a safe point, so trust ends one renewal
/// period earlier (as client-go's renew deadline precedes its lease duration). Each request
/// is bounded by that deadline: a client that retries a failing API server on its own (kube's
/// retry layer backs off for minutes on 503) must not hold the verdict back past expiry.
async fn renew(
    api: Api<Lease>,
    mut lease: Lease,
    holder: String,
    config: LeaseConfig,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let name = lease.metadata.name.clone().unwrap_or_default();
    let mut last_ok = tokio::time::Instant::now();
    let mut pause = config.renew_every;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        let trust_until = last_ok + config.duration.saturating_sub(config.renew_every);
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        let attempt = tokio::time::timeout_at(trust_until, async {
            match api.replace(&name, &PostParams::default(), &lease).await {
                Ok(renewed) => Renewal::Renewed(renewed),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                    match api.get_opt(&name).await {
                        Ok(Some(current))
                            if current
                                .spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.as_deref())
                                == Some(holder.as_str()) =>
                        {
                            Renewal::Reread(current)
                        }
                        Ok(_) => Renewal::Taken,
                        Err(error) => {
                            tracing::warn!(%error, lease = %name, "cannot re-read the run lock");
                            Renewal::Failed
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %name, "cannot renew the run lock");
                    Renewal::Failed
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(lease = %name, "renewing the run lock got no answer in time");
            Renewal::Failed
        });
        match attempt {
            Renewal::Renewed(renewed) => {
                lease = renewed;
                last_ok = tokio::time::Instant::now();
                pause = config.renew_every;
                continue;
            }
            Renewal::Reread(current) => lease = current,
            Renewal::Taken => {
                tracing::error!(lease = %name, "the run lock was taken by someone else");
                lost.cancel();
                return;
            }
            Renewal::Failed => {}
        }
        if tokio::time::Instant::now() >= trust_until {
            tracing::error!(lease = %name, "the run lock may expire: renewal kept failing");
            lost.cancel();
            return;
        }
        // Try again soon: the time left before expiry is what matters now.
        pause = (config.renew_every / 5).max(std::time::Duration::from_millis(50));
    }
}

/// What one renewal attempt came to.
enum Renewal {
    Renewed(Lease),
    /// A conflict, and the lease is still ours: renew from what the server holds.
    Reread(Lease),
    Taken,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(
                now - jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_holder_that_exited_is_dead_even_before_its_parent_reaps_it() {
        let host = crate::events::hostname();
        let mut sleeping = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let holder = format!("run@{host}/{}", sleeping.id());
        assert!(
            !holder_is_dead_here(&holder),
            "a running process holds its lease"
        );
        sleeping.kill().unwrap();
        // Killed, not yet waited for: a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !holder_is_dead_here(&holder) {
            assert!(
                std::time::Instant::now() < deadline,
                "a zombie still counts as alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        sleeping.wait().unwrap();
        assert!(holder_is_dead_here(&holder));
        assert!(!holder_is_dead_here(&format!(
            "run@another-host/{}",
            sleeping.id()
        )));
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let cases = [
            (None, true),
            (Some(spec(None, 0, 15)), true),
            (Some(spec(Some("me"), 0, 15)), true),
            (Some(spec(Some("other"), 5, 15)), false),
            (Some(spec(Some("other"), 15, 15)), false),
            (Some(spec(Some("other"), 16, 15)), true),
        ];
        for (s, want) in cases {
            assert_eq!(is_free(s.as_ref(), "me", now), want, "{s:?}");
        }
    }
}
