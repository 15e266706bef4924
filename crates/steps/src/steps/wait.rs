//! Waiting until a condition holds over the ASTS and its pods: the run's watch-fed
//! [`ClusterView`](crate::view::ClusterView) wakes the wait at every change, never a
//! polling loop. The judgement of a wave's pods is pure ([`progress`]) and explains every
//! pod still in the way.

use std::fmt;
use std::sync::Arc;

use baton_engine::event::RunEvent;
use baton_engine::plan::Roles;
use baton_engine::snapshot::{ArbiterView, PodView, Snapshot, StsView};
use baton_engine::step::{StepContext, StepError};

use crate::env::Env;
use crate::k8s::{Asts, KubeError, ordinal_of, sts_view};
use crate::pods::SlimPod;

/// Why one pod of a wave is not done yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    /// The pod does not exist (being recreated).
    Missing,
    Terminating,
    /// It still carries another revision.
    WrongRevision {
        found: Option<String>,
        want: String,
    },
    /// Its containers keep crashing.
    CrashLooping {
        reason: String,
        restarts: u32,
    },
    NotReady {
        reason: Option<String>,
    },
    /// Kruise lifecycle state other than `Normal`.
    Lifecycle(String),
    /// Still old and available: the controller will not start it while `unavailable` pods
    /// already use the set's `maxUnavailable` budget.
    HeldByMaxUnavailable {
        unavailable: usize,
        max: u32,
    },
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stuck::Missing => f.write_str("missing (not recreated yet)"),
            Stuck::Terminating => f.write_str("terminating"),
            Stuck::WrongRevision { found, want } => {
                write!(
                    f,
                    "wrong revision: has {}, want {want}",
                    found.as_deref().unwrap_or("none")
                )
            }
            Stuck::CrashLooping { reason, restarts } => {
                let restarts = usize::try_from(*restarts).unwrap_or(usize::MAX);
                let restarts = baton_engine::text::count(restarts, "restart", "restarts");
                write!(f, "crash looping ({reason}, {restarts})")
            }
            Stuck::NotReady { reason } => write!(
                f,
                "not ready ({})",
                reason.as_deref().unwrap_or("no reason given")
            ),
            Stuck::Lifecycle(state) => write!(f, "lifecycle state {state}"),
            Stuck::HeldByMaxUnavailable { unavailable, max } => {
                let unavailable = baton_engine::text::count(*unavailable, "pod is", "pods are");
                write!(
                    f,
                    "waiting its turn: maxUnavailable is {max} and {unavailable} unavailable"
                )
            }
        }
    }
}

/// A wave's progress at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The controller has not observed the latest generation yet.
    NotObserved {
        generation: i64,
        observed: Option<i64>,
    },
    /// Pods still in the way, each with its first blocking reason.
    Waiting(Vec<(String, Stuck)>),
    Done,
}

impl Progress {
    /// One line for an operator.
    pub fn explain(&self) -> String {
        match self {
            Progress::NotObserved {
                generation,
                observed,
            } => format!(
                "the controller has not observed generation {generation} (observed {})",
                observed.map_or_else(|| "none".to_owned(), |o| o.to_string())
            ),
            Progress::Waiting(stuck) => stuck
                .iter()
                .map(|(p, why)| format!("{p}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
            Progress::Done => "done".to_owned(),
        }
    }
}

/// Reasons that mean the containers keep failing rather than still starting.
const CRASH_REASONS: [&str; 4] = [
    "CrashLoopBackOff",
    "Error",
    "ImagePullBackOff",
    "ErrImagePull",
];

/// Whether every pod of `selected` runs the update revision and is settled.
pub fn progress(sts: &StsView, pods: &[PodView], selected: &[String]) -> Progress {
    let Some(want) = sts.trusted_update_revision() else {
        return Progress::NotObserved {
            generation: sts.generation,
            observed: sts.observed_generation,
        };
    };
    let mut stuck = Vec::new();
    // Kruise counts every counted pod that is not available against the budget.
    let unavailable = pods
        .iter()
        .filter(|p| p.ordinal < sts.replicas && (!p.ready || p.terminating))
        .count();
    let budget_full = unavailable >= usize::try_from(sts.max_unavailable.max(1)).unwrap_or(1);
    let by_name: std::collections::HashMap<&str, &PodView> =
        pods.iter().map(|p| (p.name.as_str(), p)).collect();
    for name in selected {
        let Some(p) = by_name.get(name.as_str()) else {
            stuck.push((name.clone(), Stuck::Missing));
            continue;
        };
        let why = if p.terminating {
            Some(Stuck::Terminating)
        } else if p
            .not_ready_reason
            .as_deref()
            .is_some_and(|r| CRASH_REASONS.contains(&r))
        {
            Some(Stuck::CrashLooping {
                reason: p.not_ready_reason.clone().unwrap_or_default(),
                restarts: p.restarts,
            })
        } else if p.revision.as_deref() != Some(want) && p.ready && budget_full {
            Some(Stuck::HeldByMaxUnavailable {
                unavailable,
                max: sts.max_unavailable,
            })
        } else if p.revision.as_deref() != Some(want) {
            Some(Stuck::WrongRevision {
                found: p.revision.clone(),
                want: want.to_owned(),
            })
        } else if !p.ready {
            Some(Stuck::NotReady {
                reason: p.not_ready_reason.clone(),
            })
        } else if !p.is_settled() {
            Some(Stuck::Lifecycle(
                p.lifecycle_state.clone().unwrap_or_default(),
            ))
        } else {
            None
        };
        if let Some(why) = why {
            stuck.push((name.clone(), why));
        }
    }
    if stuck.is_empty() {
        Progress::Done
    } else {
        Progress::Waiting(stuck)
    }
}

/// The ASTS and its pods as the run's view shows them at one change, for a wait to judge.
pub struct Watched {
    pub sts: Option<std::sync::Arc<Asts>>,
    pods: Vec<std::sync::Arc<SlimPod>>,
    roles: Roles,
}

impl Watched {
    /// The views of the owned pods, by ordinal.
    pub fn views(&self) -> (StsView, Vec<PodView>) {
        let Some(sts) = &self.sts else {
            return (sts_view(&Asts::default()), Vec::new());
        };
        let name = sts.metadata.name.as_deref().unwrap_or_default();
        let mut pods: Vec<PodView> = self
            .pods
            .iter()
            .filter_map(|p| p.view(name, &self.roles))
            .collect();
        pods.sort_by_key(|p| p.ordinal);
        (sts_view(sts), pods)
    }
}

/// The decision core's view of the pods of successive changes of one wait, rebuilt only for
/// pods whose object changed. A wave's wait is asked at every batch of changes, and
/// building every pod's [`PodView`] each time was most of its cost at 1000 pods, where one
/// change touches a few pods. The view's store hands out the same `Arc` for an object until
/// an event replaces it, so an unchanged pod is told by pointer.
#[derive(Default)]
pub struct ViewCache {
    /// The pods `snapshot.pods` were built from, in the same order.
    from: Vec<Arc<SlimPod>>,
    snapshot: Option<Snapshot>,
}

impl ViewCache {
    /// The ASTS and the views of its owned pods at this change: the pods of
    /// [`Watched::views`], in name order instead of by ordinal. The arbiter part is empty: a
    /// wait judges roles as the wave's baseline holds them.
    pub fn snapshot(&mut self, w: &Watched) -> &Snapshot {
        let (sts, name) = match &w.sts {
            Some(sts) => (
                sts_view(sts),
                sts.metadata.name.as_deref().unwrap_or_default(),
            ),
            None => (sts_view(&Asts::default()), ""),
        };
        let roles = &w.roles;
        let pods = w
            .pods
            .iter()
            .filter(|p| p.name().is_some_and(|n| ordinal_of(n, name).is_some()));
        let snapshot = self.snapshot.get_or_insert_with(|| Snapshot {
            sts: sts.clone(),
            pods: Vec::new(),
            arbiter: ArbiterView::default(),
        });
        snapshot.sts = sts;
        // The same pods by name as last time: rebuild the changed ones in place.
        let mut same = 0;
        for p in pods.clone() {
            let Some(old) = self.from.get(same) else {
                break;
            };
            if !Arc::ptr_eq(old, p) {
                if old.name() != p.name() {
                    break;
                }
                let Some(view) = p.view(name, roles) else {
                    break;
                };
                snapshot.pods[same] = view;
                self.from[same] = p.clone();
            }
            same += 1;
        }
        if same != self.from.len() || same != pods.clone().count() {
            self.from.clear();
            snapshot.pods.clear();
            for p in pods {
                if let Some(view) = p.view(name, roles) {
                    self.from.push(p.clone());
                    snapshot.pods.push(view);
                }
            }
        }
        snapshot
    }
}

/// The shortest time between two `Waiting` events of one wait.
const WAIT_NEWS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Follows the run's view until `done` returns `Some`, bounded by `waves.readyTimeout` and
/// the run's cancellation. On timeout, `explain` says what was still missing. `done` is
/// asked once per batch of changes (a wave's pods change together). With `with_pods`
/// false, only the ASTS matters and the pods' first list is not waited for.
pub async fn watch_until<T>(
    env: &Env,
    ctx: &StepContext,
    with_pods: bool,
    mut done: impl FnMut(&Watched) -> Option<T>,
    explain: impl Fn(&Watched) -> String,
) -> Result<T, StepError> {
    let timeout = env.plan.spec().waves.ready_timeout.as_std();
    let view = env.view();
    let mut changes = view.subscribe();
    let roles = &env.plan.spec().roles;
    let current = || -> Result<Option<Watched>, KubeError> {
        if with_pods {
            return match view.now() {
                None => Ok(None),
                Some(Err(e)) => Err(e),
                Some(Ok(o)) => Ok(Some(Watched {
                    sts: Some(o.sts),
                    pods: o.pods,
                    roles: roles.clone(),
                })),
            };
        }
        Ok(view.sts_now().transpose()?.map(|sts| Watched {
            sts: Some(sts),
            pods: Vec::new(),
            roles: roles.clone(),
        }))
    };
    let mut state = Watched {
        sts: None,
        pods: Vec::new(),
        roles: roles.clone(),
    };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // What the wait is held by, told whenever it changes (at most every WAIT_NEWS_EVERY):
    // status, the live view and piped progress name each pod in the way and why.
    // A short wait tells nothing: the first news comes once it has lasted WAIT_NEWS_EVERY.
    let mut told: Option<String> = None;
    let mut told_at = tokio::time::Instant::now();
    let mut news_due = Some(told_at + WAIT_NEWS_EVERY);
    let mut ready = false;
    let mut look = true;
    loop {
        if look {
            changes.borrow_and_update();
            if let Some(now) = current()? {
                state = now;
                ready = true;
                if let Some(out) = done(&state) {
                    return Ok(out);
                }
                // Something changed: tell it once the last news is old enough.
                if news_due.is_none() {
                    news_due = Some((told_at + WAIT_NEWS_EVERY).max(tokio::time::Instant::now()));
                }
            }
            look = false;
        }
        let news = async {
            match news_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
            () = news => {
                news_due = None;
                if ready {
                    let what = explain(&state);
                    if told.as_ref() != Some(&what) {
                        ctx.journal.emit(RunEvent::Waiting {
                            step: ctx.step.to_string(),
                            what: what.clone(),
                        });
                        told = Some(what);
                        told_at = tokio::time::Instant::now();
                    }
                }
            }
            () = &mut deadline => {
                return Err(StepError::failed(format!(
                    "{} did not finish within {}: {}",
                    ctx.step,
                    env.plan.spec().waves.ready_timeout,
                    explain(&state)
                )));
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(StepError::retryable("the cluster view stopped"));
                }
                look = true;
            }
        }
    }
}

/// Waits until the controller has observed the ASTS's generation; returns `updateRevision`.
pub async fn observed_revision(env: &Env, ctx: &StepContext) -> Result<String, StepError> {
    watch_until(
        env,
        ctx,
        false,
        |w| w.views().0.trusted_update_revision().map(str::to_owned),
        |w| {
            let (sts, _) = w.views();
            Progress::NotObserved {
                generation: sts.generation,
                observed: sts.observed_generation,
            }
            .explain()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_engine::snapshot::{PodManagementPolicy, UpdateStrategyType};

    fn sts(generation: i64, observed: Option<i64>) -> StsView {
        StsView {
            namespace: "default".into(),
            name: "sample".into(),
            replicas: 3,
            partition: Some(1),
            generation,
            observed_generation: observed,
            update_revision: Some("sample-new".into()),
            current_revision: Some("sample-old".into()),
            pod_management_policy: PodManagementPolicy::Parallel,
            update_type: UpdateStrategyType::RollingUpdate,
            paused: false,
            unordered: true,
            max_unavailable: 1,
        }
    }

    fn pod(name: &str, rev: &str, ready: bool) -> PodView {
        PodView {
            name: name.into(),
            ordinal: name
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .unwrap_or(0),
            uid: format!("uid-{name}"),
            revision: Some(rev.into()),
            ready,
            terminating: false,
            lifecycle_state: Some("Normal".into()),
            role_label: None,
            selected: true,
            restarts: 0,
            not_ready_reason: (!ready).then(|| "ContainersNotReady".into()),
        }
    }

    #[test]
    fn each_stuck_pod_is_explained_by_its_first_blocking_reason() {
        let crash = PodView {
            not_ready_reason: Some("CrashLoopBackOff".into()),
            restarts: 4,
            ..pod("sample-1", "sample-new", false)
        };
        let terminating = PodView {
            terminating: true,
            ..pod("sample-2", "sample-old", true)
        };
        let updating = PodView {
            lifecycle_state: Some("Updating".into()),
            ..pod("sample-3", "sample-new", true)
        };
        let cases: Vec<(Vec<PodView>, &str, Progress)> = vec![
            (
                vec![pod("sample-1", "sample-new", true)],
                "sample-1",
                Progress::Done,
            ),
            (
                vec![pod("sample-1", "sample-old", true)],
                "sample-1",
                Progress::Waiting(vec![(
                    "sample-1".into(),
                    Stuck::WrongRevision {
                        found: Some("sample-old".into()),
                        want: "sample-new".into(),
                    },
                )]),
            ),
            (
                vec![pod("sample-1", "sample-new", false)],
                "sample-1",
                Progress::Waiting(vec![(
                    "sample-1".into(),
                    Stuck::NotReady {
                        reason: Some("ContainersNotReady".into()),
                    },
                )]),
            ),
            (
                vec![crash],
                "sample-1",
                Progress::Waiting(vec![(
                    "sample-1".into(),
                    Stuck::CrashLooping {
                        reason: "CrashLoopBackOff".into(),
                        restarts: 4,
                    },
                )]),
            ),
            (
                vec![terminating],
                "sample-2",
                Progress::Waiting(vec![("sample-2".into(), Stuck::Terminating)]),
            ),
            (
                vec![updating],
                "sample-3",
                Progress::Waiting(vec![(
                    "sample-3".into(),
                    Stuck::Lifecycle("Updating".into()),
                )]),
            ),
            (
                vec![],
                "sample-4",
                Progress::Waiting(vec![("sample-4".into(), Stuck::Missing)]),
            ),
            (
                vec![
                    pod("sample-1", "sample-old", true),
                    pod("sample-2", "sample-new", false),
                ],
                "sample-1",
                Progress::Waiting(vec![(
                    "sample-1".into(),
                    Stuck::HeldByMaxUnavailable {
                        unavailable: 1,
                        max: 1,
                    },
                )]),
            ),
        ];
        for (pods, selected, want) in cases {
            assert_eq!(
                progress(&sts(2, Some(2)), &pods, &[selected.to_owned()]),
                want,
                "{selected}"
            );
        }
    }

    #[test]
    fn nothing_is_judged_before_the_controller_observed_the_generation() {
        let pods = vec![pod("sample-1", "sample-new", true)];
        assert_eq!(
            progress(&sts(3, Some(2)), &pods, &["sample-1".into()]),
            Progress::NotObserved {
                generation: 3,
                observed: Some(2)
            }
        );
    }

    #[test]
    fn explanations_name_each_pod_and_why() {
        let p = Progress::Waiting(vec![
            (
                "sample-1".into(),
                Stuck::CrashLooping {
                    reason: "CrashLoopBackOff".into(),
                    restarts: 3,
                },
            ),
            (
                "sample-3".into(),
                Stuck::WrongRevision {
                    found: None,
                    want: "sample-new".into(),
                },
            ),
            ("sample-4".into(), Stuck::NotReady { reason: None }),
            (
                "sample-5".into(),
                Stuck::Lifecycle("PreparingUpdate".into()),
            ),
        ]);
        assert_eq!(
            p.explain(),
            "sample-1: crash looping (CrashLoopBackOff, 3 restarts); sample-3: wrong revision: has none, want sample-new; \
             sample-4: not ready (no reason given); sample-5: lifecycle state PreparingUpdate"
        );
        assert_eq!(
            Progress::NotObserved {
                generation: 4,
                observed: None
            }
            .explain(),
            "the controller has not observed generation 4 (observed none)"
        );
    }

    fn slim(name: &str, revision: &str) -> Arc<SlimPod> {
        let labels = [(crate::k8s::REVISION_LABEL.to_owned(), revision.to_owned())];
        Arc::new(SlimPod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_owned()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            },
            ready: true,
            ..SlimPod::default()
        })
    }

    #[test]
    fn the_view_cache_shows_what_a_fresh_build_shows_change_after_change() {
        let mut set = Asts::default();
        set.metadata.name = Some("sample".to_owned());
        let set = Some(Arc::new(set));
        let (a, b, c) = (
            slim("sample-0", "old"),
            slim("sample-1", "old"),
            slim("sample-2", "old"),
        );
        let stranger = slim("other-7", "old");
        // One wait's successive changes, each as the view would hand them over (name order).
        type Change = (&'static str, Option<Arc<Asts>>, Vec<Arc<SlimPod>>);
        let changes: Vec<Change> = vec![
            (
                "first look",
                set.clone(),
                vec![a.clone(), b.clone(), c.clone()],
            ),
            (
                "nothing changed",
                set.clone(),
                vec![a.clone(), b.clone(), c.clone()],
            ),
            (
                "one pod replaced by an event",
                set.clone(),
                vec![a.clone(), slim("sample-1", "new"), c.clone()],
            ),
            ("a pod gone", set.clone(), vec![a.clone(), c.clone()]),
            (
                "a pod back",
                set.clone(),
                vec![a.clone(), slim("sample-1", "new"), c.clone()],
            ),
            (
                "a pod whose name is no ordinal of the set",
                set.clone(),
                vec![stranger.clone(), a.clone(), c.clone()],
            ),
            (
                "another pod in a slot",
                set.clone(),
                vec![a.clone(), slim("sample-3", "new")],
            ),
            ("no set yet", None, vec![a.clone()]),
            ("the set again", set.clone(), vec![a.clone(), b.clone()]),
        ];
        let mut cache = ViewCache::default();
        for (what, sts, pods) in changes {
            let w = Watched {
                sts,
                pods,
                roles: Roles::default(),
            };
            let (want_sts, want_pods) = w.views();
            let got = cache.snapshot(&w);
            let mut got_pods = got.pods.clone();
            got_pods.sort_by_key(|p| p.ordinal);
            assert_eq!(got.sts, want_sts, "{what}");
            assert_eq!(got_pods, want_pods, "{what}");
            assert!(got.arbiter.members.is_empty(), "{what}");
        }
    }
}
