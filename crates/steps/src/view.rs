//! [`ClusterView`]: one watch-fed view of the target ASTS and its pods per run, which every
//! step reads instead of listing the cluster again.
//!
//! Two `kube::runtime` reflectors keep the objects: the ASTS (by name) and its pods (by the
//! ASTS's label selector, [`SlimPod`]s decoded once per list item or event). The watcher
//! resumes a cut watch from its last resourceVersion, and lists again (a quorum read, never
//! the API server's cache) after a 410 Expired; the store keeps serving the previous state
//! until the new list is complete.
//!
//! Read-your-writes: a step that wrote waits ([`ClusterView::wait_seen`]) until the view has
//! shown the resourceVersion its write returned, so neither it nor the next step judges the
//! world from before its own write. resourceVersions are opaque (the API contract forbids
//! ordering them), so the view remembers the last few versions it saw of each object, and a
//! re-list that began after the write counts as having seen it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::k8s::{Asts, KubeError, Target, render_selector};
use crate::pods::SlimPod;

/// How many resourceVersions of one object the view remembers for [`ClusterView::wait_seen`].
const REMEMBERED_VERSIONS: usize = 16;

/// How long a read waits for the view's first list, and a writer for its write to show,
/// before the step fails as retryable (the API server or the watch is in trouble).
pub const VIEW_PATIENCE: Duration = Duration::from_secs(30);

/// Which of the two watched kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sts,
    Pod,
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Sts => 0,
            Kind::Pod => 1,
        }
    }
}

/// One write whose effect the writer waits to see: the object and the resourceVersion the
/// API server answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub kind: Kind,
    pub name: String,
    pub resource_version: String,
}

/// What one watched kind has shown so far.
#[derive(Default)]
struct Feed {
    /// The first list completed.
    synced: bool,
    /// Lists begun (each `Init` event); the watcher sends `Init` before it lists.
    lists_begun: u64,
    /// The number of the last list that completed (its `InitDone`).
    list_done: u64,
    /// Versions seen during a list in progress: they count once the store shows them.
    listing: Vec<(String, String)>,
}

#[derive(Default)]
struct Track {
    feeds: [Feed; 2],
    /// The last resourceVersions seen per object.
    seen: HashMap<(Kind, String), VecDeque<Box<str>>>,
    /// The latest watch error, for a read that waited in vain.
    last_error: Option<String>,
}

impl Track {
    fn remember(&mut self, kind: Kind, name: String, rv: String) {
        let versions = self.seen.entry((kind, name)).or_default();
        if versions.len() == REMEMBERED_VERSIONS {
            versions.pop_front();
        }
        versions.push_back(rv.into_boxed_str());
    }

    fn apply<K: kube::Resource>(&mut self, kind: Kind, event: &watcher::Event<K>) {
        let versioned = |o: &K| {
            let m = o.meta();
            Some((m.name.clone()?, m.resource_version.clone()?))
        };
        match event {
            watcher::Event::Init => {
                let feed = &mut self.feeds[kind.index()];
                feed.lists_begun += 1;
                feed.listing.clear();
            }
            watcher::Event::InitApply(o) => {
                if let Some(v) = versioned(o) {
                    self.feeds[kind.index()].listing.push(v);
                }
            }
            watcher::Event::InitDone => {
                let feed = &mut self.feeds[kind.index()];
                feed.synced = true;
                feed.list_done = feed.lists_begun;
                for (name, rv) in std::mem::take(&mut feed.listing) {
                    self.remember(kind, name, rv);
                }
                self.last_error = None;
            }
            watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                if let Some((name, rv)) = versioned(o) {
                    self.remember(kind, name, rv);
                }
            }
        }
    }

    /// Whether the view shows `w` (or something later: a list begun after `marks`).
    fn shows(&self, w: &Written, marks: [u64; 2]) -> bool {
        self.feeds[w.kind.index()].list_done > marks[w.kind.index()]
            || self
                .seen
                .get(&(w.kind, w.name.clone()))
                .is_some_and(|v| v.iter().any(|rv| **rv == *w.resource_version))
    }
}

struct Shared {
    sts: Store<Asts>,
    pods: Store<SlimPod>,
    track: Mutex<Track>,
    /// Bumped after every event the view took in.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn track(&self) -> MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The ASTS and its pods as the run's watches keep them. Dropping it stops the watches.
pub struct ClusterView {
    shared: Arc<Shared>,
    namespace: String,
    name: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ClusterView {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The objects of one read: the ASTS and the pods it controls.
#[derive(Clone)]
pub struct Objects {
    pub sts: Arc<Asts>,
    /// Owned by the ASTS and matching its selector, by name.
    pub pods: Vec<Arc<SlimPod>>,
}

impl ClusterView {
    /// Starts the watches. Returns at once; reads wait for the first lists.
    pub fn start(target: &Target) -> ClusterView {
        let sts_writer = reflector::store::Writer::<Asts>::default();
        let pods_writer = reflector::store::Writer::<SlimPod>::default();
        let shared = Arc::new(Shared {
            sts: sts_writer.as_reader(),
            pods: pods_writer.as_reader(),
            track: Mutex::default(),
            changed: watch::Sender::new(0),
        });
        let sts_cfg = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
        let sts_feed = feed(
            shared.clone(),
            Kind::Sts,
            reflector(
                sts_writer,
                watcher(target.sts.clone(), sts_cfg).default_backoff(),
            ),
        );
        let pods_api = target.pods.clone();
        let pods_feed = {
            let shared = shared.clone();
            async move {
                // The selector is immutable: the first ASTS the view shows gives it.
                let mut changes = shared.changed.subscribe();
                let selector = loop {
                    if let Some(sel) = shared
                        .sts
                        .state()
                        .first()
                        .and_then(|s| s.spec.selector.as_ref().and_then(render_selector))
                    {
                        break sel;
                    }
                    if changes.changed().await.is_err() {
                        return;
                    }
                };
                let cfg = watcher::Config::default().labels(&selector);
                feed(
                    shared,
                    Kind::Pod,
                    reflector(pods_writer, watcher(pods_api, cfg).default_backoff()),
                )
                .await;
            }
        };
        ClusterView {
            tasks: vec![tokio::spawn(sts_feed), tokio::spawn(pods_feed)],
            shared,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        }
    }

    /// Notifications: the value changes after every event the view took in.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// The ASTS and its pods now, or `None` while the first lists are not complete.
    /// [`KubeError::NotFound`] once the ASTS is listed and absent.
    pub fn now(&self) -> Option<Result<Objects, KubeError>> {
        let (sts_synced, pods_synced) = {
            let t = self.shared.track();
            (t.feeds[0].synced, t.feeds[1].synced)
        };
        if !sts_synced {
            return None;
        }
        let Some(sts) = self.shared.sts.state().into_iter().next() else {
            return Some(Err(KubeError::NotFound {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            }));
        };
        if sts
            .spec
            .selector
            .as_ref()
            .and_then(render_selector)
            .is_none()
        {
            return Some(Err(KubeError::NoSelector(self.name.clone())));
        }
        if !pods_synced {
            return None;
        }
        let uid = sts.metadata.uid.as_deref().unwrap_or_default();
        let mut pods: Vec<Arc<SlimPod>> = self
            .shared
            .pods
            .state()
            .into_iter()
            .filter(|p| p.is_controlled_by(uid))
            .collect();
        // In name order, as the API server lists them (the store is a hash map).
        pods.sort_unstable_by(|a, b| a.name().cmp(&b.name()));
        Some(Ok(Objects { sts, pods }))
    }

    /// The ASTS and its pods, waiting (at most [`VIEW_PATIENCE`]) for the first lists.
    pub async fn read(&self) -> Result<Objects, KubeError> {
        let mut changes = self.subscribe();
        let patience = tokio::time::sleep(VIEW_PATIENCE);
        tokio::pin!(patience);
        loop {
            if let Some(now) = self.now() {
                return now;
            }
            tokio::select! {
                () = &mut patience => return Err(self.unavailable("the first list of the statefulset and its pods")),
                r = changes.changed() => if r.is_err() {
                    return Err(self.unavailable("the first list (the watch stopped)"));
                },
            }
        }
    }

    /// The ASTS now, `None` while its first list is not complete.
    pub fn sts_now(&self) -> Option<Result<Arc<Asts>, KubeError>> {
        if !self.shared.track().feeds[0].synced {
            return None;
        }
        Some(
            self.shared
                .sts
                .state()
                .into_iter()
                .next()
                .ok_or_else(|| KubeError::NotFound {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                }),
        )
    }

    /// The ASTS alone, waiting like [`read`](Self::read) (the pods need not be listed yet).
    pub async fn sts(&self) -> Result<Arc<Asts>, KubeError> {
        let mut changes = self.subscribe();
        let patience = tokio::time::sleep(VIEW_PATIENCE);
        tokio::pin!(patience);
        loop {
            if let Some(sts) = self.sts_now() {
                return sts;
            }
            tokio::select! {
                () = &mut patience => return Err(self.unavailable("the first list of the statefulset")),
                r = changes.changed() => if r.is_err() {
                    return Err(self.unavailable("the first list (the watch stopped)"));
                },
            }
        }
    }

    /// Waits until the view shows every write of `writes` (at most [`VIEW_PATIENCE`]).
    pub async fn wait_seen(&self, writes: &[Written]) -> Result<(), KubeError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut changes = self.subscribe();
        // Taken after the writes were answered: a list begun later shows them.
        let marks = {
            let t = self.shared.track();
            [t.feeds[0].lists_begun, t.feeds[1].lists_begun]
        };
        let patience = tokio::time::sleep(VIEW_PATIENCE);
        tokio::pin!(patience);
        let mut pending: Vec<&Written> = writes.iter().collect();
        loop {
            {
                let t = self.shared.track();
                pending.retain(|w| !t.shows(w, marks));
            }
            if pending.is_empty() {
                return Ok(());
            }
            tokio::select! {
                () = &mut patience => {
                    let missing: Vec<String> = pending
                        .iter()
                        .map(|w| format!("{} at resourceVersion {}", w.name, w.resource_version))
                        .collect();
                    return Err(self.unavailable(&format!("the watch to show the run's own write ({})", missing.join(", "))));
                }
                r = changes.changed() => if r.is_err() {
                    return Err(self.unavailable("the run's own write (the watch stopped)"));
                },
            }
        }
    }

    fn unavailable(&self, what: &str) -> KubeError {
        KubeError::View {
            what: format!(
                "waited {}s for {what} of statefulset {}/{}",
                VIEW_PATIENCE.as_secs(),
                self.namespace,
                self.name
            ),
            last_error: self.shared.track().last_error.clone(),
        }
    }
}

/// Runs one reflector stream, keeping the view's bookkeeping and waking its readers.
async fn feed<K, S>(shared: Arc<Shared>, kind: Kind, stream: S)
where
    K: kube::Resource,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => shared.track().apply(kind, &event),
            Err(error) => {
                tracing::warn!(%error, ?kind, "watch interrupted; resuming");
                shared.track().last_error = Some(crate::env::chain(&error));
            }
        }
        shared.bump();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, rv: &str) -> SlimPod {
        SlimPod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            ..SlimPod::default()
        }
    }

    fn written(name: &str, rv: &str) -> Written {
        Written {
            kind: Kind::Pod,
            name: name.into(),
            resource_version: rv.into(),
        }
    }

    #[test]
    fn a_write_shows_once_its_version_was_seen_or_a_later_list_completed() {
        let mut t = Track::default();
        t.apply(Kind::Pod, &watcher::Event::<SlimPod>::Init);
        t.apply(Kind::Pod, &watcher::Event::InitApply(pod("p-1", "10")));
        // Versions seen while listing count only once the store has the list.
        assert!(!t.shows(&written("p-1", "10"), [0, 0]));
        t.apply(Kind::Pod, &watcher::Event::<SlimPod>::InitDone);
        assert!(t.shows(&written("p-1", "10"), [0, 1]));
        // Our write answered "12": not shown until its event, whatever else comes.
        let marks = [0, t.feeds[1].lists_begun];
        t.apply(Kind::Pod, &watcher::Event::Apply(pod("p-2", "12")));
        assert!(!t.shows(&written("p-1", "12"), marks));
        t.apply(Kind::Pod, &watcher::Event::Apply(pod("p-1", "12")));
        t.apply(Kind::Pod, &watcher::Event::Apply(pod("p-1", "13")));
        assert!(t.shows(&written("p-1", "12"), marks));
        // A write the watch skipped (410, then a list begun after the write) shows with that list.
        assert!(!t.shows(&written("p-1", "20"), marks));
        t.apply(Kind::Pod, &watcher::Event::<SlimPod>::Init);
        assert!(!t.shows(&written("p-1", "20"), marks));
        t.apply(Kind::Pod, &watcher::Event::<SlimPod>::InitDone);
        assert!(t.shows(&written("p-1", "20"), marks));
        // ... but not a list that had begun before the write was answered.
        let later = [0, t.feeds[1].lists_begun];
        assert!(!t.shows(&written("p-1", "21"), later));
    }

    #[test]
    fn only_the_last_versions_of_an_object_are_remembered() {
        let mut t = Track::default();
        for rv in 0..40 {
            t.apply(Kind::Sts, &watcher::Event::Apply(pod("s", &rv.to_string())));
        }
        let sts = |rv: &str| Written {
            kind: Kind::Sts,
            ..written("s", rv)
        };
        assert!(t.shows(&sts("39"), [0, 0]));
        assert!(t.shows(&sts("24"), [0, 0]));
        assert!(!t.shows(&sts("23"), [0, 0]));
        assert_eq!(t.seen.len(), 1);
    }
}
