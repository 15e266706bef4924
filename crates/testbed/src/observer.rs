//! The outside observer of a scenario: it watches the set's pods through the API (as any
//! client would) and reads the arbiter in-process, so a scenario's safety verdict is made the
//! same way on the simulator and on the real control plane, without trusting the engine's own
//! account of what it did.
//!
//! An *update* begins when a pod's `controller-revision-hash` label changes (in place), when
//! it gets a `deletionTimestamp`, or when it disappears or comes back with a new uid without
//! either having been seen (recreate). Each update is recorded with the role the arbiter held
//! for the pod at that moment; one on a working pod is a *violation*, unless the test itself
//! disturbs that pod ([`Observer::exclude`]). The arbiter's working count is sampled on every
//! pod event and every few milliseconds, so a dip below its starting value is seen.
//!
//! The bookkeeping is the pure [`Ledger`], table-tested without a cluster; [`Observer`] feeds
//! it from a kube-rs watcher.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use baton_sim::arbiter::{Arbiter, Role};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

use crate::backend::{Backend, NAME};

/// The pod label Kruise (and the simulator) stamp with the pod's revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// How often the arbiter's working count is sampled between pod events.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// What the ledger needs of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub uid: String,
    pub revision: Option<String>,
    /// It has a `deletionTimestamp`.
    pub deleting: bool,
}

impl PodView {
    pub fn of(pod: &Pod) -> PodView {
        PodView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            revision: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL))
                .cloned(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// One change the watch reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The pod as it is now (listed, added or modified).
    Seen(PodView),
    /// The pod is gone from the API.
    Gone(PodView),
}

impl Change {
    pub fn pod(&self) -> &str {
        match self {
            Change::Seen(v) | Change::Gone(v) => &v.name,
        }
    }
}

/// How an update began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The revision label changed on the same pod.
    InPlace,
    /// The pod got a deletionTimestamp.
    Deleting,
    /// The pod vanished, or came back with a new uid, before a deletion was seen.
    Replaced,
}

/// One pod update, as it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub pod: String,
    /// The revision before.
    pub from: Option<String>,
    /// The revision after (in place or replaced), `None` while it is being deleted.
    pub to: Option<String>,
    pub how: How,
    /// The arbiter's role for the pod at that moment (`None`: not a member).
    pub role: Option<Role>,
    /// When it was seen, from the observer's start.
    pub at: Duration,
}

/// What a scenario's run looked like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub updates: Vec<Update>,
    /// Updates that began on a working pod the test did not disturb itself.
    pub violations: Vec<Update>,
    /// The lowest working count sampled.
    pub working_min: usize,
    /// The working count when observation began.
    pub working_start: usize,
}

impl Verdict {
    /// The pods updated, in order, each once per update.
    pub fn updated_pods(&self) -> Vec<&str> {
        self.updates.iter().map(|u| u.pod.as_str()).collect()
    }

    /// The safety promise: no violation and the working count never below its start.
    /// `Err` describes what broke it.
    pub fn safe(&self) -> Result<(), String> {
        if !self.violations.is_empty() {
            return Err(format!(
                "{} update(s) began on a working pod: {:#?}",
                self.violations.len(),
                self.violations
            ));
        }
        if self.working_min < self.working_start {
            return Err(format!(
                "the working count fell to {} from {}",
                self.working_min, self.working_start
            ));
        }
        Ok(())
    }
}

/// The last state seen of one pod.
#[derive(Debug, Clone)]
struct Known {
    uid: String,
    revision: Option<String>,
    deleting: bool,
}

/// Turns pod changes and the roles of their moment into updates and violations.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pods: BTreeMap<String, Known>,
    excluded: BTreeSet<String>,
    updates: Vec<Update>,
    violations: Vec<Update>,
    working_start: Option<usize>,
    working_min: usize,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Pods the test disturbs on purpose: their updates are recorded, never violations.
    pub fn exclude(&mut self, pod: &str) {
        self.excluded.insert(pod.to_string());
    }

    /// Counts `pod`'s updates as violations again (after the disturbance is over).
    pub fn readmit(&mut self, pod: &str) {
        self.excluded.remove(pod);
    }

    /// A working-count sample; the first one is the start.
    pub fn sample_working(&mut self, working: usize) {
        match self.working_start {
            None => {
                self.working_start = Some(working);
                self.working_min = working;
            }
            Some(_) => self.working_min = self.working_min.min(working),
        }
    }

    /// One watch change, with the arbiter's role for its pod at the moment it was seen.
    /// Returns the update it began, if any.
    pub fn observe(&mut self, change: &Change, role: Option<Role>, at: Duration) -> Option<Update> {
        let update = match change {
            Change::Seen(view) => {
                let now = Known {
                    uid: view.uid.clone(),
                    revision: view.revision.clone(),
                    deleting: view.deleting,
                };
                let before = self.pods.insert(view.name.clone(), now);
                let before = before?;
                let how = if before.uid != view.uid {
                    // A deletion already seen began this replacement.
                    (!before.deleting).then_some(How::Replaced)
                } else if !before.deleting && view.deleting {
                    Some(How::Deleting)
                } else if !view.deleting && before.revision != view.revision {
                    Some(How::InPlace)
                } else {
                    None
                };
                how.map(|how| Update {
                    pod: view.name.clone(),
                    from: before.revision,
                    to: if how == How::Deleting {
                        None
                    } else {
                        view.revision.clone()
                    },
                    how,
                    role,
                    at,
                })
            }
            Change::Gone(view) => {
                let before = self.pods.remove(&view.name)?;
                (!before.deleting).then(|| Update {
                    pod: view.name.clone(),
                    from: before.revision,
                    to: None,
                    how: How::Replaced,
                    role,
                    at,
                })
            }
        };
        let update = update?;
        if update.role == Some(Role::Working) && !self.excluded.contains(&update.pod) {
            self.violations.push(update.clone());
        }
        self.updates.push(update.clone());
        Some(update)
    }

    pub fn verdict(&self) -> Verdict {
        Verdict {
            updates: self.updates.clone(),
            violations: self.violations.clone(),
            working_min: self.working_min,
            working_start: self.working_start.unwrap_or(0),
        }
    }
}

/// Watches one backend's set; dropping it stops watching.
#[derive(Debug)]
pub struct Observer {
    ledger: Arc<Mutex<Ledger>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    // Every change keeps the ledger whole, so a poisoned lock is still usable.
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

fn working(arbiter: &Arbiter) -> usize {
    arbiter
        .roles()
        .values()
        .filter(|r| **r == Role::Working)
        .count()
}

impl Observer {
    /// Starts watching the pods of the backend's set (label `app=sample`) and sampling its
    /// arbiter; returns once the pods present now are listed, so that whatever a test does
    /// next is seen as a change.
    pub async fn start(backend: &Backend) -> Observer {
        Observer::watch(backend.pods(), backend.arbiter().clone()).await
    }

    /// As [`Observer::start`], for any pods API and arbiter.
    pub async fn watch(pods: Api<Pod>, arbiter: Arbiter) -> Observer {
        let began = Instant::now();
        let ledger = Arc::new(Mutex::new(Ledger::new()));
        lock(&ledger).sample_working(working(&arbiter));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let watch = tokio::spawn(follow(
            pods,
            arbiter.clone(),
            ledger.clone(),
            began,
            listed_tx,
        ));
        let sampler = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    tick.tick().await;
                    let n = working(&arbiter);
                    lock(&ledger).sample_working(n);
                }
            })
        };
        // A watch that ends before listing leaves the ledger empty; the verdict then shows it.
        let _ = listed_rx.await;
        Observer {
            ledger,
            tasks: vec![watch, sampler],
        }
    }

    /// A pod the test disturbs on purpose (see [`Ledger::exclude`]).
    pub fn exclude(&self, pod: &str) {
        lock(&self.ledger).exclude(pod);
    }

    /// See [`Ledger::readmit`].
    pub fn readmit(&self, pod: &str) {
        lock(&self.ledger).readmit(pod);
    }

    /// What has been seen so far.
    pub fn verdict(&self) -> Verdict {
        lock(&self.ledger).verdict()
    }

    /// Waits (at most `timeout`) until `done` holds for the verdict so far; returns it, or
    /// `Err` with the last one.
    pub async fn until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Verdict) -> bool,
    ) -> Result<Verdict, Verdict> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.verdict();
            if done(&v) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(v);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Feeds the ledger from a watch of the set's pods, each change with the role of its moment.
async fn follow(
    pods: Api<Pod>,
    arbiter: Arbiter,
    ledger: Arc<Mutex<Ledger>>,
    began: Instant,
    listed: tokio::sync::oneshot::Sender<()>,
) {
    let config = watcher::Config::default().labels(&format!("app={NAME}"));
    let stream = watcher(pods, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listed = Some(listed);
    // A relist (after a watch error) is compared with what was known: pods missing from it
    // are gone.
    let mut listing: Option<BTreeSet<String>> = None;
    while let Some(event) = stream.next().await {
        let changes: Vec<Change> = match event {
            Ok(watcher::Event::Init) => {
                listing = Some(BTreeSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(p)) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(p.metadata.name.clone().unwrap_or_default());
                }
                vec![Change::Seen(PodView::of(&p))]
            }
            Ok(watcher::Event::InitDone) => {
                let seen = listing.take().unwrap_or_default();
                let known: Vec<String> = lock(&ledger).pods.keys().cloned().collect();
                if let Some(tx) = listed.take() {
                    let _ = tx.send(());
                }
                known
                    .into_iter()
                    .filter(|k| !seen.contains(k))
                    .map(|name| {
                        Change::Gone(PodView {
                            name,
                            uid: String::new(),
                            revision: None,
                            deleting: false,
                        })
                    })
                    .collect()
            }
            Ok(watcher::Event::Apply(p)) => vec![Change::Seen(PodView::of(&p))],
            Ok(watcher::Event::Delete(p)) => vec![Change::Gone(PodView::of(&p))],
            Err(error) => {
                tracing::debug!(%error, "observer's pod watch failed; resuming");
                continue;
            }
        };
        for change in changes {
            let role = arbiter.role(change.pod());
            let n = working(&arbiter);
            let mut l = lock(&ledger);
            l.sample_working(n);
            if let Some(u) = l.observe(&change, role, began.elapsed()) {
                tracing::debug!(?u, "observed an update");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, uid: &str, rev: &str, deleting: bool) -> Change {
        Change::Seen(PodView {
            name: name.into(),
            uid: uid.into(),
            revision: Some(rev.into()),
            deleting,
        })
    }

    fn gone(name: &str, uid: &str, rev: &str) -> Change {
        Change::Gone(PodView {
            name: name.into(),
            uid: uid.into(),
            revision: Some(rev.into()),
            deleting: true,
        })
    }

    const W: Option<Role> = Some(Role::Working);
    const I: Option<Role> = Some(Role::Idle);

    /// Feeds `changes` (each with its role) and returns `(pod, how, violation?)` per update.
    fn run(excluded: &[&str], changes: &[(Change, Option<Role>)]) -> Vec<(String, How, bool)> {
        let mut l = Ledger::new();
        for e in excluded {
            l.exclude(e);
        }
        for (i, (c, role)) in changes.iter().enumerate() {
            l.observe(c, *role, Duration::from_millis(i as u64));
        }
        let v = l.verdict();
        v.updates
            .iter()
            .map(|u| (u.pod.clone(), u.how, v.violations.contains(u)))
            .collect()
    }

    fn ups(list: &[(&str, How, bool)]) -> Vec<(String, How, bool)> {
        list.iter()
            .map(|(p, h, v)| (p.to_string(), *h, *v))
            .collect()
    }

    /// What a case is, which pods it excludes, its changes, and the updates it must yield.
    type Case = (
        &'static str,
        Vec<&'static str>,
        Vec<(Change, Option<Role>)>,
        Vec<(&'static str, How, bool)>,
    );

    #[test]
    fn pod_histories_become_updates_and_violations() {
        let cases: Vec<Case> = vec![
            (
                "listing alone is no update",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("b", "u2", "r1", false), I),
                ],
                vec![],
            ),
            (
                "status-only changes are no update",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("a", "u1", "r1", false), W),
                ],
                vec![],
            ),
            (
                "in place on an idle pod",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("a", "u1", "r2", false), I),
                ],
                vec![("a", How::InPlace, false)],
            ),
            (
                "in place on a working pod",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("a", "u1", "r2", false), W),
                ],
                vec![("a", How::InPlace, true)],
            ),
            (
                "recreate: deletion, gone, new uid is one update",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), I),
                    (seen("a", "u1", "r1", true), I),
                    (gone("a", "u1", "r1"), I),
                    (seen("a", "u9", "r2", false), W),
                ],
                vec![("a", How::Deleting, false)],
            ),
            (
                "a new uid with no deletion seen is a replacement",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("a", "u9", "r2", false), W),
                ],
                vec![("a", How::Replaced, true)],
            ),
            (
                "gone without a deletion seen is a replacement",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (gone("a", "u1", "r1"), W),
                ],
                vec![("a", How::Replaced, true)],
            ),
            (
                "a terminating pod's label changes are not a second update",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), I),
                    (seen("a", "u1", "r1", true), I),
                    (seen("a", "u1", "r2", true), W),
                ],
                vec![("a", How::Deleting, false)],
            ),
            (
                "an excluded pod is recorded, not a violation",
                vec!["a"],
                vec![
                    (seen("a", "u1", "r1", false), W),
                    (seen("a", "u1", "r1", true), W),
                    (seen("b", "u2", "r1", false), W),
                    (seen("b", "u2", "r2", false), W),
                ],
                vec![("a", How::Deleting, false), ("b", How::InPlace, true)],
            ),
            (
                "a pod created later is no update",
                vec![],
                vec![
                    (seen("a", "u1", "r1", false), I),
                    (seen("c", "u3", "r2", false), W),
                ],
                vec![],
            ),
        ];
        for (what, excluded, changes, want) in cases {
            assert_eq!(run(&excluded, &changes), ups(&want), "{what}");
        }
    }

    #[test]
    fn an_update_keeps_its_revisions_role_and_moment() {
        let mut l = Ledger::new();
        l.observe(&seen("a", "u1", "r1", false), I, Duration::ZERO);
        let u = l
            .observe(&seen("a", "u1", "r2", false), I, Duration::from_millis(7))
            .unwrap();
        assert_eq!(
            u,
            Update {
                pod: "a".into(),
                from: Some("r1".into()),
                to: Some("r2".into()),
                how: How::InPlace,
                role: I,
                at: Duration::from_millis(7),
            }
        );
    }

    #[test]
    fn the_working_count_is_judged_against_its_first_sample() {
        let mut l = Ledger::new();
        for n in [3, 4, 3, 3] {
            l.sample_working(n);
        }
        let v = l.verdict();
        assert_eq!((v.working_start, v.working_min), (3, 3));
        assert!(v.safe().is_ok());
        l.sample_working(2);
        let v = l.verdict();
        assert_eq!(v.working_min, 2);
        assert!(v.safe().unwrap_err().contains("fell to 2 from 3"));
    }

    #[test]
    fn readmitting_a_pod_counts_its_later_updates_again() {
        let mut l = Ledger::new();
        l.exclude("a");
        l.observe(&seen("a", "u1", "r1", false), W, Duration::ZERO);
        l.observe(&seen("a", "u1", "r2", false), W, Duration::ZERO);
        l.readmit("a");
        l.observe(&seen("a", "u1", "r3", false), W, Duration::ZERO);
        let v = l.verdict();
        assert_eq!(v.updates.len(), 2);
        assert_eq!(v.violations.len(), 1);
        assert_eq!(v.violations[0].to.as_deref(), Some("r3"));
        assert!(v.safe().is_err());
    }
}
