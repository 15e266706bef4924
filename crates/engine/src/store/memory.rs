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
            let bytes = records::encode(node);
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
            inner.log.push(records::encode(entry));
        }
        inner.meta = Some(records::encode(commit.meta));
        Ok(())
    }
}
