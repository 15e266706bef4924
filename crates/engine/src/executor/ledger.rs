//! The run's shared state: the in-memory record, its store, and the approval waiters;
//! every change to the record is one transaction committed as one checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

use super::transition::{self, Effect, GraphError, Transition};
use crate::dag::StepId;
use crate::event::RunEvent;
use crate::publish::Publisher;
use crate::step::Approval;
use crate::store::{
    self, Commit, Durability, LogEntry, LogKind, NodeState, RunRecord, RunStore, RunView,
    StoreError, WaitingEntry,
};

pub(super) struct Inner {
    pub(super) rec: RunRecord,
    /// The latest `Waiting` of each step, and the latest pod table: live-only facts for
    /// the published view, never persisted (they are stale the moment the process stops).
    pub(super) waiting: BTreeMap<String, String>,
    pub(super) pods: Option<Vec<crate::event::PodRow>>,
    pub(super) waiters: Vec<(StepId, oneshot::Sender<Approval>)>,
    /// A commit failed: memory and disk may disagree, so nothing more is written.
    pub(super) broken: bool,
}

impl Inner {
    /// The view a driving process publishes: the record plus what its steps wait for now
    /// (only steps still running) and the latest pods.
    pub(super) fn live_view(&self, pid: u32) -> RunView {
        let mut view = RunView::of(&self.rec, Some(pid));
        let running: BTreeSet<String> = self
            .rec
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Running)
            .map(|n| n.spec.id.to_string())
            .collect();
        view.waiting = self
            .waiting
            .iter()
            .filter(|(step, _)| running.contains(*step))
            .map(|(step, what)| WaitingEntry {
                step: step.clone(),
                what: what.clone(),
            })
            .collect();
        view.pods.clone_from(&self.pods);
        view
    }
}

pub(super) struct Shared {
    pub(super) run_id: String,
    /// `None` once the run is closed: its database lock is released at once, even if a
    /// step still holds a journal.
    pub(super) store: Mutex<Option<Box<dyn RunStore>>>,
    pub(super) inner: Mutex<Inner>,
    /// Where the run directory is, for `status.json` and `control.sock`.
    pub(super) dir: Option<PathBuf>,
    /// Writes `status.json` for other processes; `None` without a directory.
    pub(super) status: Option<Publisher>,
    pub(super) events: broadcast::Sender<RunEvent>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) abort: CancellationToken,
    pub(super) abort_by: Mutex<Option<String>>,
}

/// One transition being built: mutate the record, remember what changed.
pub(super) struct Tx<'a> {
    pub(super) rec: &'a mut RunRecord,
    pub(super) waiters: &'a mut Vec<(StepId, oneshot::Sender<Approval>)>,
    pub(super) changed: BTreeSet<usize>,
    pub(super) log_from: usize,
    pub(super) dirty: bool,
    pub(super) now: Timestamp,
}

impl Tx<'_> {
    pub(super) fn log(&mut self, entry: LogKind) {
        let seq = self.rec.log.len() as u64;
        self.rec.log.push(LogEntry {
            seq,
            at: self.now,
            entry,
        });
        self.dirty = true;
    }

    pub(super) fn event(&mut self, event: RunEvent) {
        self.log(LogKind::Event { event });
    }

    /// Apply `transition` to the record and carry out its effects: changed nodes go into
    /// this checkpoint, log entries and events are appended (events are sent once committed).
    pub(super) fn apply(&mut self, transition: Transition<'_>) -> Result<Vec<Effect>, GraphError> {
        let effects = transition::apply(self.rec, self.now, transition)?;
        for effect in &effects {
            match effect {
                Effect::Node(i) => {
                    self.changed.insert(*i);
                    self.dirty = true;
                }
                Effect::Log(entry) => self.log(entry.clone()),
                Effect::Event(event) => self.event(event.clone()),
                Effect::Complete => self.dirty = true,
            }
        }
        Ok(effects)
    }

    /// [`apply`](Self::apply) for the transitions of nodes and stops, which the graph
    /// never refuses (only [`Transition::Grow`] can be).
    pub(super) fn record(&mut self, transition: Transition<'_>) {
        if let Err(error) = self.apply(transition) {
            tracing::error!(%error, "the run's graph refused a node transition");
        }
    }
}

impl Shared {
    pub(super) fn new(
        run_id: String,
        store: Box<dyn RunStore>,
        rec: RunRecord,
        dir: Option<PathBuf>,
        events: broadcast::Sender<RunEvent>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Shared> {
        Arc::new_cyclic(|me: &std::sync::Weak<Shared>| {
            let status = dir.as_deref().map(|d| {
                let me = me.clone();
                let pid = std::process::id();
                Publisher::start(store::status_path(d), move || {
                    me.upgrade().map(|s| s.lock().live_view(pid))
                })
            });
            Shared {
                run_id,
                store: Mutex::new(Some(store)),
                inner: Mutex::new(Inner {
                    rec,
                    waiting: BTreeMap::new(),
                    pods: None,
                    waiters: Vec::new(),
                    broken: false,
                }),
                dir,
                status,
                events,
                clock,
                abort: CancellationToken::new(),
                abort_by: Mutex::new(None),
            }
        })
    }

    /// Ask the publisher for a new `status.json` (live-only facts changed).
    pub(super) fn mark_stale(&self) {
        if let Some(status) = &self.status {
            status.mark_stale();
        }
    }

    /// Release the store (and with it the database lock).
    pub(super) fn close(&self) {
        drop(self.store.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `f` to the record and commit what it changed as one checkpoint named
    /// `label`, durable before this returns (with everything committed before it).
    /// Commits nothing when `f` changed nothing.
    pub(super) fn transact<T>(
        &self,
        label: &str,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> Result<T, StoreError> {
        self.commit_tx(label, Durability::Flush, f)
    }

    /// Like [`transact`](Self::transact), for changes a crash may lose: the commit is
    /// atomic and ordered, but made durable by the next flushing checkpoint. Losing one
    /// only makes an idempotent step run again; every external write is preceded by a
    /// flushing intent, which carries all lazy commits before it to disk.
    pub(super) fn transact_lazy<T>(
        &self,
        label: &str,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> Result<T, StoreError> {
        self.commit_tx(label, Durability::Lazy, f)
    }

    pub(super) fn commit_tx<T>(
        &self,
        label: &str,
        durability: Durability,
        f: impl FnOnce(&mut Tx<'_>) -> T,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.broken {
            return Err(StoreError::Unavailable {
                run: self.run_id.clone(),
                why: "an earlier write failed, so memory and disk may disagree",
            });
        }
        let log_from = inner.rec.log.len();
        let mut tx = Tx {
            rec: &mut inner.rec,
            waiters: &mut inner.waiters,
            changed: BTreeSet::new(),
            log_from,
            dirty: false,
            now: self.clock.now(),
        };
        let out = f(&mut tx);
        let (changed, dirty, now) = (tx.changed, tx.dirty, tx.now);
        let log_from = tx.log_from;
        if !dirty {
            return Ok(out);
        }
        let rec = &mut inner.rec;
        rec.meta.updated_at = now;
        rec.meta.log_len = rec.log.len() as u64;
        rec.meta.node_count = rec.nodes.len() as u32;
        let commit = Commit {
            label,
            durability,
            meta: &rec.meta,
            nodes: changed.iter().map(|&i| (i as u32, &rec.nodes[i])).collect(),
            log: &rec.log[log_from..],
        };
        let committed = match &*self.store.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(store) => store.commit(&commit),
            None => Err(StoreError::Unavailable {
                run: self.run_id.clone(),
                why: "the run was closed",
            }),
        };
        if let Err(e) = committed {
            inner.broken = true;
            return Err(e);
        }
        for entry in &rec.log[log_from..] {
            if let LogKind::Event { event } = &entry.entry {
                let _ = self.events.send(event.clone());
            }
        }
        if let Some(status) = &self.status {
            status.mark_stale();
        }
        Ok(out)
    }
}
