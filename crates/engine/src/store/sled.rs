//! The on-disk store: one sled database per run.
//!
//! Trees: `meta` (key `run`: [`RunMeta`]), `nodes` (key: index as big-endian u32),
//! `log` (key: sequence as big-endian u64). A [`Commit`] writes all three in one sled
//! transaction, so a node's state and the log cursor never disagree after a crash, then
//! flushes (fsync) before returning. sled takes an exclusive file lock: one process
//! per run at a time.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::records::{self, LogEntry, NodeRecord, RunMeta, RunRecord};
use super::{Commit, Durability, RunStore, StoreError};
use crate::failpoint;

/// sled's page cache for one run's database.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

const META_KEY: &[u8] = b"run";

/// A run's sled database.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    nodes: sled::Tree,
    log: sled::Tree,
    /// Our own exclusive lock beside the database, declared last so it is released after
    /// sled's: sled reports its own held lock only as an `Other` error with a message, and a
    /// message is no contract. `try_lock` says `WouldBlock`.
    _lock: std::fs::File,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open (or create) the database at `path`. A database locked by another process
    /// gives [`StoreError::Locked`]; a damaged one [`StoreError::Corrupt`], never a panic.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let lock = take_lock(path)?;
        let opened = catch_unwind(AssertUnwindSafe(|| {
            sled::Config::new()
                .path(path)
                .flush_every_ms(None)
                .mode(sled::Mode::LowSpace)
                // The executor keeps the whole record in memory and reads the database
                // only when it opens it: sled's 1 GiB default page cache buys nothing.
                .cache_capacity(CACHE_BYTES)
                .open()
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(classify_open_error(path, e)),
            Err(panic) => {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    detail: panic_detail(&panic),
                });
            }
        };
        let tree = |name: &str| {
            db.open_tree(name).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })
        };
        Ok(SledStore {
            meta: tree("meta")?,
            nodes: tree("nodes")?,
            log: tree("log")?,
            path: path.to_owned(),
            db,
            _lock: lock,
        })
    }

    /// Open, waiting up to `patience` for another process to release the lock
    /// (`engine status` holds it for a few milliseconds while it reads).
    pub fn open_patiently(
        path: &Path,
        patience: std::time::Duration,
    ) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match SledStore::open(path) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => return other,
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn read_all(&self) -> Result<Option<RunRecord>, StoreError> {
        let read_err = |source| StoreError::Read {
            path: self.path.clone(),
            source,
        };
        let Some(meta_bytes) = self.meta.get(META_KEY).map_err(read_err)? else {
            if !self.nodes.is_empty() || !self.log.is_empty() {
                return Err(self.corrupt("nodes or log entries without a run record"));
            }
            return Ok(None);
        };
        let meta: RunMeta = records::decode(&meta_bytes, "the run record")
            .map_err(|e| self.corrupt(e.to_string()))?;
        let mut nodes = Vec::with_capacity(meta.node_count as usize);
        for (i, item) in self.nodes.iter().enumerate() {
            let (key, value) = item.map_err(read_err)?;
            if key.as_ref() != (i as u32).to_be_bytes() {
                return Err(self.corrupt(format!("node {i} is missing")));
            }
            let node: NodeRecord = records::decode(&value, &format!("node {i}"))
                .map_err(|e| self.corrupt(e.to_string()))?;
            nodes.push(node);
        }
        if nodes.len() != meta.node_count as usize {
            return Err(self.corrupt(format!(
                "{} nodes stored, the run record says {}",
                nodes.len(),
                meta.node_count
            )));
        }
        let mut log = Vec::with_capacity(meta.log_len as usize);
        for (i, item) in self.log.iter().enumerate() {
            let (key, value) = item.map_err(read_err)?;
            if key.as_ref() != (i as u64).to_be_bytes() {
                return Err(self.corrupt(format!("log entry {i} is missing")));
            }
            let entry: LogEntry = records::decode(&value, &format!("log entry {i}"))
                .map_err(|e| self.corrupt(e.to_string()))?;
            log.push(entry);
        }
        if log.len() as u64 != meta.log_len {
            return Err(self.corrupt(format!(
                "{} log entries stored, the run record says {}",
                log.len(),
                meta.log_len
            )));
        }
        Ok(Some(RunRecord { meta, nodes, log }))
    }
}

impl RunStore for SledStore {
    fn load(&self) -> Result<Option<RunRecord>, StoreError> {
        match catch_unwind(AssertUnwindSafe(|| self.read_all())) {
            Ok(result) => result,
            Err(panic) => Err(self.corrupt(panic_detail(&panic))),
        }
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        let meta_bytes = records::encode(commit.meta, "meta")?;
        let nodes: Vec<([u8; 4], Vec<u8>)> = commit
            .nodes
            .iter()
            .map(|(i, n)| Ok((i.to_be_bytes(), records::encode(n, "node")?)))
            .collect::<Result<_, StoreError>>()?;
        let log: Vec<([u8; 8], Vec<u8>)> = commit
            .log
            .iter()
            .map(|e| Ok((e.seq.to_be_bytes(), records::encode(e, "log")?)))
            .collect::<Result<_, StoreError>>()?;
        let checkpoint = format!("in-checkpoint:{}", commit.label);
        let result: Result<(), TransactionError<()>> = (&self.meta, &self.nodes, &self.log)
            .transaction(|(meta, node_tree, log_tree)| {
                for (key, value) in &nodes {
                    node_tree.insert(&key[..], value.as_slice())?;
                }
                for (key, value) in &log {
                    log_tree.insert(&key[..], value.as_slice())?;
                }
                meta.insert(META_KEY, meta_bytes.as_slice())?;
                failpoint::hit(&checkpoint);
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(source)) => {
                return Err(StoreError::Write {
                    path: self.path.clone(),
                    source,
                });
            }
            Err(TransactionError::Abort(())) => {
                return Err(self.corrupt("the store aborted a transaction"));
            }
        }
        if commit.durability == Durability::Flush {
            self.db.flush().map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The exclusive lock on `<db>.lock`, taken before sled opens the database.
fn take_lock(path: &Path) -> Result<std::fs::File, StoreError> {
    let open_err = |e: std::io::Error| StoreError::Open {
        path: path.to_owned(),
        source: sled::Error::Io(e),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(open_err)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))
        .map_err(open_err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(open_err(e)),
    }
}

fn classify_open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        // We hold our own lock here, so no other process holds sled's: a handle of ours
        // that was just dropped still does (sled's threads let go of the file a moment
        // later). sled reports its lock only as an `Other` I/O error; every other I/O
        // failure carries a kind of its own. Locked is retried by `open_patiently`.
        sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::Other => StoreError::Locked {
            path: path.to_owned(),
        },
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            path: path.to_owned(),
            detail: "the database fails its checksums".to_owned(),
        },
        sled::Error::Unsupported(detail) | sled::Error::ReportableBug(detail) => {
            StoreError::Corrupt {
                path: path.to_owned(),
                detail,
            }
        }
        other => StoreError::Open {
            path: path.to_owned(),
            source: other,
        },
    }
}

fn panic_detail(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unreadable data".to_owned());
    format!("the database could not be read ({what})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_held_open_is_locked_and_free_again_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let first = SledStore::open(&path).unwrap();
        assert!(
            matches!(SledStore::open(&path), Err(StoreError::Locked { .. })),
            "a second open of a held database must say Locked"
        );
        drop(first);
        assert!(
            SledStore::open(&path).is_ok(),
            "the lock outlived the store"
        );
    }
}
