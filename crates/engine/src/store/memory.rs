//! An in-memory [`RunStore`] for tests: same contract as sled, no disk.
//!
//! It stores encoded envelopes, so records round-trip through the on-disk format.

use std::sync::Mutex;

use super::records::{self, LogEntry, NodeRecord, RunMeta, RunRecord};
use super::{Commit, RunStore, StoreError};

/// Encoded records behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Encoded>,
}

#[derive(Debug, Default)]
struct Encoded {
    meta: Option<Vec<u8>>,
    nodes: Vec<Vec<u8>>,
    log: Vec<Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        path: "<memory>".into(),
        detail,
    }
}

impl RunStore for MemoryStore {
    fn load(&self) -> Result<Option<RunRecord>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(meta) = &inner.meta else {
            return Ok(None);
        };
        let meta: RunMeta =
            records::decode(meta, "the run record").map_err(|e| corrupt(e.to_string()))?;
        let nodes = inner
            .nodes
            .iter()
            .map(|n| records::decode::<NodeRecord>(n, "a node"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let log = inner
            .log
            .iter()
            .map(|e| records::decode::<LogEntry>(e, "a log entry"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(RunRecord { meta, nodes, log }))
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (i, node) in &commit.nodes {
            let i = *i as usize;
            if i > inner.nodes.len() {
                return Err(corrupt(format!(
                    "node {i} written before node {}",
                    inner.nodes.len()
                )));
            }
            let bytes = records::encode(node, "node")?;
            if i == inner.nodes.len() {
                inner.nodes.push(bytes);
            } else {
                inner.nodes[i] = bytes;
            }
        }
        for entry in commit.log {
            if entry.seq as usize != inner.log.len() {
                return Err(corrupt(format!(
                    "log entry {} appended at {}",
                    entry.seq,
                    inner.log.len()
                )));
            }
            inner.log.push(records::encode(entry, "log")?);
        }
        inner.meta = Some(records::encode(commit.meta, "meta")?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{NodeSpec, StepId, StepKind};
    use crate::event::RunEvent;
    use crate::plan::PlanSource;
    use crate::store::Durability;
    use crate::store::records::{LogKind, NodeState, Phase, RunState};

    fn record() -> RunRecord {
        let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let spec = NodeSpec {
            id: StepId::run_level(StepKind::Protect),
            deps: vec![],
        };
        RunRecord {
            meta: RunMeta {
                run_id: "r".into(),
                plan: PlanSource {
                    file: "p.yaml".into(),
                    text: "x".into(),
                    hash: "h".into(),
                },
                target: "default/sample".into(),
                created_at: at,
                updated_at: at,
                state: RunState::Running,
                reason: None,
                phase: Phase::Prologue,
                phase_start: 0,
                finishing: false,
                vars: Default::default(),
                rollback: None,
                log_len: 1,
                node_count: 1,
            },
            nodes: vec![NodeRecord {
                state: NodeState::Running,
                attempts: 1,
                ..NodeRecord::pending(spec)
            }],
            log: vec![LogEntry {
                seq: 0,
                at,
                entry: LogKind::Event {
                    event: RunEvent::StepStarted {
                        step: "protect".into(),
                        attempt: 1,
                    },
                },
            }],
        }
    }

    #[test]
    fn a_committed_record_loads_back_equal_through_the_envelope_format() {
        let store = MemoryStore::new();
        assert_eq!(store.load().unwrap(), None);
        let rec = record();
        let commit = Commit {
            label: "t",
            durability: Durability::Flush,
            meta: &rec.meta,
            nodes: vec![(0, &rec.nodes[0])],
            log: &rec.log,
        };
        store.commit(&commit).unwrap();
        assert_eq!(store.load().unwrap(), Some(rec));
    }

    #[test]
    fn log_entries_out_of_sequence_are_refused() {
        let store = MemoryStore::new();
        let mut rec = record();
        rec.log[0].seq = 5;
        let commit = Commit {
            label: "t",
            durability: Durability::Flush,
            meta: &rec.meta,
            nodes: vec![],
            log: &rec.log,
        };
        assert!(matches!(
            store.commit(&commit),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
