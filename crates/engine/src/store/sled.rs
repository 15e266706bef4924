//! The on-disk store: one sled database per run.
//!
//! Trees: `meta` (key `run`: [`RunMeta`]; key `commit`: the number of the last commit as
//! big-endian u64), `nodes` (key: index as big-endian u32), `log` (key: sequence as
//! big-endian u64). A [`Commit`] writes all three in one sled transaction, so a node's
//! state and the log cursor never disagree after a crash, then flushes (fsync) and seals
//! (see [`seal`](super::seal)) before returning. Loading checks the database against its
//! seal, so a database sled opened as an older prefix of itself is reported, not used.
//!
//! The process driving a run holds `<db>.lock` exclusively, and only it opens the
//! database in place. Readers ([`SledStore::read_detached`]) take the lock shared and read a
//! copy: opening a sled database writes to it (recovery, a snapshot), which a read-only
//! state directory refuses and which would overwrite the evidence of damage.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::records::{self, LogEntry, NodeRecord, RunMeta, RunRecord};
use super::seal::{self, Seal, SealError};
use super::{Commit, Durability, RunStore, StoreError};
use crate::failpoint;

/// sled's page cache for one run's database.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// sled's segment for a new database. sled's default (512 KiB) is sized for databases of
/// gigabytes; a run's record is a few MB, rewritten a few KB at a time and flushed before
/// every side effect, and with large segments the file held 2.5–3 times the record
/// (10.6 MB for 3.7 MB at 400 waves; BENCHMARKS.md, issue 13). Smaller segments are
/// reclaimed sooner, and each of sled's write buffers is one segment.
const SEGMENT_BYTES: usize = 64 * 1024;

/// The segment of databases created before [`SEGMENT_BYTES`] (sled's default), which sled
/// refuses to open with any other.
const SLED_DEFAULT_SEGMENT_BYTES: usize = 512 * 1024;

const META_KEY: &[u8] = b"run";
/// Where the number of the last commit is kept, in the `meta` tree beside the record.
const COMMIT_KEY: &[u8] = b"commit";

/// A run's sled database.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    nodes: sled::Tree,
    log: sled::Tree,
    /// `<db>.seal` of the database this store reads (for a detached copy, the original's).
    seal: PathBuf,
    /// The number of the last commit in the database, and the highest number the seal
    /// on disk named when the store was opened: held across a whole commit, so commits
    /// and their seals are numbered in order.
    counters: std::sync::Mutex<Counters>,
    /// Our own exclusive lock beside the database, declared last so it is released after
    /// sled's: sled reports its own held lock only as an `Other` error with a message, and a
    /// message is no contract. `try_lock` says `WouldBlock`. `None` for a detached copy.
    _lock: Option<std::fs::File>,
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    committed: u64,
    sealed: u64,
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
    /// A database without a seal and without numbered commits (new, or written before
    /// seals) is given a baseline seal, so from now on losing its whole content shows.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let lock = take_lock(path)?;
        let db = open_db(path, path)?;
        let store = SledStore::on(path, db, seal::seal_path(path), Some(lock))?;
        let counters = store.counters();
        if counters.committed == 0
            && seal::read(&store.seal)
                .map_err(|e| store.seal_error(e))?
                .is_none()
        {
            seal::write(&store.seal, &Seal::baseline()).map_err(|e| store.write_error(e))?;
        }
        Ok(store)
    }

    /// The record of the database at `path`, read without writing anything beside it:
    /// under `<db>.lock` taken shared (so no process drives the run meanwhile), the
    /// database is copied to a temporary directory and opened there, then checked against
    /// the original's seal. `Ok(None)` when there is no record and no seal says there was.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when a process drives the run; [`StoreError::Corrupt`] when
    /// the database or its seal is damaged, or the database lost checkpoints its seal
    /// names; [`StoreError::Open`]/[`StoreError::Read`] for I/O failures.
    pub fn read_detached(path: &Path) -> Result<Option<RunRecord>, StoreError> {
        let _shared = share_lock(path)?;
        let seal_path = seal::seal_path(path);
        if !path.exists() {
            // Nothing to open: whether that is fine is the seal's to say.
            return match seal::read(&seal_path) {
                Ok(Some(seal)) if seal.commit > 0 => Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    detail: format!(
                        "the database is gone, but its seal names checkpoint {}",
                        seal.commit
                    ),
                }),
                Ok(_) => Ok(None),
                Err(e) => Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    detail: e.to_string(),
                }),
            };
        }
        let io_err = |e: std::io::Error| StoreError::Open {
            path: path.to_owned(),
            source: sled::Error::Io(e),
        };
        let scratch = tempfile::Builder::new()
            .prefix("baton-read-")
            .tempdir()
            .map_err(io_err)?;
        let copy = scratch.path().join("db");
        copy_tree(path, &copy).map_err(io_err)?;
        let db = open_db(&copy, path)?;
        let store = SledStore::on(path, db, seal_path, None)?;
        let record = store.load();
        // sled's files go before the directory they are in.
        drop(store);
        drop(scratch);
        record
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

    /// A store over the opened `db`, reporting as `path` and checked against `seal`.
    fn on(
        path: &Path,
        db: sled::Db,
        seal: PathBuf,
        lock: Option<std::fs::File>,
    ) -> Result<SledStore, StoreError> {
        let tree = |name: &str| {
            db.open_tree(name).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })
        };
        let meta = tree("meta")?;
        let nodes = tree("nodes")?;
        let log = tree("log")?;
        let store = SledStore {
            meta,
            nodes,
            log,
            path: path.to_owned(),
            db,
            counters: std::sync::Mutex::new(Counters {
                committed: 0,
                sealed: 0,
            }),
            seal,
            _lock: lock,
        };
        let committed = store.stored_commit()?;
        // An unreadable seal is reported by `load`; a writer that skipped `load` is still
        // stopped by `commit`, which finds this number ahead of the database.
        let sealed = match seal::read(&store.seal) {
            Ok(Some(seal)) => seal.commit,
            Ok(None) => 0,
            Err(_) => u64::MAX,
        };
        *store.counters_mut() = Counters { committed, sealed };
        Ok(store)
    }

    fn counters_mut(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counters(&self) -> Counters {
        *self.counters_mut()
    }

    /// The number of the last commit stored in the database (0: none numbered).
    fn stored_commit(&self) -> Result<u64, StoreError> {
        let bytes = self
            .meta
            .get(COMMIT_KEY)
            .map_err(|source| StoreError::Read {
                path: self.path.clone(),
                source,
            })?;
        match bytes {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("the commit counter is not a number")),
        }
    }

    fn seal_error(&self, e: SealError) -> StoreError {
        match e {
            SealError::Io { source, .. } => StoreError::Read {
                path: self.path.clone(),
                source: sled::Error::Io(source),
            },
            damaged @ SealError::Damaged { .. } => self.corrupt(damaged.to_string()),
        }
    }

    fn write_error(&self, e: std::io::Error) -> StoreError {
        StoreError::Write {
            path: self.path.clone(),
            source: sled::Error::Io(e),
        }
    }

    /// Compare what the database returned with the seal of its latest flushed checkpoint.
    /// `meta_bytes` are the stored run record's bytes, `meta` the record decoded from them.
    fn verify(&self, committed: u64, meta: Option<(&RunMeta, &[u8])>) -> Result<(), StoreError> {
        let seal = seal::read(&self.seal).map_err(|e| self.seal_error(e))?;
        let Some(seal) = seal else {
            if committed > 0 {
                return Err(self.corrupt(format!(
                    "its seal {} is missing (the database has {committed} numbered checkpoints)",
                    self.seal.display()
                )));
            }
            // Written before seals existed, or a new database: nothing to compare.
            return Ok(());
        };
        if committed < seal.commit {
            return Err(self.corrupt(format!(
                "the database ends at checkpoint {committed}, but checkpoint {} was flushed \
                 (its seal says the run was {} with {} log entries): its newest records are \
                 lost, as happens to a truncated or damaged file",
                seal.commit,
                seal.state.map_or("unknown", |s| s.as_str()),
                seal.log_len,
            )));
        }
        if seal.commit == 0 {
            return Ok(());
        }
        let Some((meta, bytes)) = meta else {
            return Err(self.corrupt(format!(
                "the run record is missing, but checkpoint {} was flushed",
                seal.commit
            )));
        };
        if committed == seal.commit && seal.meta.as_deref() != Some(&seal::digest(bytes)) {
            return Err(self.corrupt(format!(
                "the run record differs from the one sealed at checkpoint {}",
                seal.commit
            )));
        }
        if meta.log_len < seal.log_len || meta.node_count < seal.node_count {
            return Err(self.corrupt(format!(
                "the database holds {} log entries and {} nodes, fewer than the {} and {} \
                 sealed at checkpoint {}",
                meta.log_len, meta.node_count, seal.log_len, seal.node_count, seal.commit
            )));
        }
        Ok(())
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
        let committed = self.stored_commit()?;
        let Some(meta_bytes) = self.meta.get(META_KEY).map_err(read_err)? else {
            if !self.nodes.is_empty() || !self.log.is_empty() {
                return Err(self.corrupt("nodes or log entries without a run record"));
            }
            self.verify(committed, None)?;
            return Ok(None);
        };
        let meta: RunMeta = records::decode(&meta_bytes, "the run record")
            .map_err(|e| self.corrupt(e.to_string()))?;
        self.verify(committed, Some((&meta, &meta_bytes)))?;
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
        let mut counters = self.counters_mut();
        if counters.committed < counters.sealed {
            // `load` reports this; a writer must not build on a database that lost
            // checkpoints, nor move the seal back to match it.
            return Err(self.corrupt(format!(
                "the database ends at checkpoint {}, behind its seal; nothing more is written",
                counters.committed
            )));
        }
        let number = counters.committed + 1;
        let number_bytes = number.to_be_bytes();
        let result: Result<(), TransactionError<()>> = (&self.meta, &self.nodes, &self.log)
            .transaction(|(meta, node_tree, log_tree)| {
                for (key, value) in &nodes {
                    node_tree.insert(&key[..], value.as_slice())?;
                }
                for (key, value) in &log {
                    log_tree.insert(&key[..], value.as_slice())?;
                }
                meta.insert(META_KEY, meta_bytes.as_slice())?;
                meta.insert(COMMIT_KEY, &number_bytes[..])?;
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
        counters.committed = number;
        if commit.durability == Durability::Flush {
            self.db.flush().map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })?;
            let sealed = Seal::of(
                number,
                commit.meta.log_len,
                commit.meta.node_count,
                commit.meta.state,
                &meta_bytes,
            );
            seal::write(&self.seal, &sealed).map_err(|e| self.write_error(e))?;
            counters.sealed = number;
        }
        Ok(())
    }
}

/// sled's database at `path`, errors naming `shown` (the original of a copy).
fn open_db(path: &Path, shown: &Path) -> Result<sled::Db, StoreError> {
    let config = config(path).map_err(|e| StoreError::Open {
        path: shown.to_owned(),
        source: sled::Error::Io(e),
    })?;
    let opened = catch_unwind(AssertUnwindSafe(|| config.open()));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(classify_open_error(shown, e)),
        Err(panic) => Err(StoreError::Corrupt {
            path: shown.to_owned(),
            detail: panic_detail(&panic),
        }),
    }
}

/// How the store opens the sled database at `path`. Public for tools and tests that edit
/// a run's database below the store: sled refuses to open it with its own defaults.
pub fn config(path: &Path) -> std::io::Result<sled::Config> {
    let conf = match std::fs::read(path.join("conf")) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(sled::Config::new()
        .path(path)
        .segment_size(segment_bytes(conf.as_deref()))
        .flush_every_ms(None)
        .mode(sled::Mode::LowSpace)
        // The executor keeps the whole record in memory and reads the database only when
        // it opens it: sled's 1 GiB default page cache buys nothing.
        .cache_capacity(CACHE_BYTES))
}

/// The segment size to open a database with, from its `conf` file (`None`: a new
/// database): sled refuses to open a database with another segment than it was made with.
/// A `conf` without a readable size is left to sled to report, with the size it had
/// before this setting existed.
fn segment_bytes(conf: Option<&[u8]>) -> usize {
    let Some(conf) = conf else {
        return SEGMENT_BYTES;
    };
    // sled's format: `key: value` lines, then a 4-byte checksum.
    String::from_utf8_lossy(conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(SLED_DEFAULT_SEGMENT_BYTES)
}

/// `<db>.lock` taken shared, for a reader: `None` when there is no lock file (no process
/// ever drove this database, so none drives it now). Opened read-only, so a read-only
/// state directory can still be read.
fn share_lock(path: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let open_err = |e: std::io::Error| StoreError::Open {
        path: path.to_owned(),
        source: sled::Error::Io(e),
    };
    let file = match std::fs::File::open(path.with_extension("lock")) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_err(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(open_err(e)),
    }
}

/// Copy the directory `from` (sled's files: `conf`, `db`, snapshots, `blobs/`) to `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
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
    fn a_database_opens_with_the_segment_it_was_made_with() {
        let cases: [(Option<&[u8]>, usize); 5] = [
            (None, SEGMENT_BYTES),
            (
                Some(b"segment_size: 524288\nuse_compression: false\nversion: 0.34\n\x01\x02\x03\x04"),
                524_288,
            ),
            (
                Some(b"segment_size: 65536\nuse_compression: false\nversion: 0.34\n\xff\xfe\x00\x01"),
                65_536,
            ),
            (Some(b"use_compression: false\n"), SLED_DEFAULT_SEGMENT_BYTES),
            (Some(b"segment_size: lots\n"), SLED_DEFAULT_SEGMENT_BYTES),
        ];
        for (conf, want) in cases {
            assert_eq!(segment_bytes(conf), want, "{conf:?}");
        }
    }

    #[test]
    fn a_database_made_with_sleds_default_segment_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = sled::Config::new().path(&path).open().unwrap();
        old.insert(b"k", b"v").unwrap();
        old.flush().unwrap();
        drop(old);
        let store = SledStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), None);
        drop(store);
        let new = dir.path().join("new");
        drop(SledStore::open(&new).unwrap());
        let conf = std::fs::read(new.join("conf")).unwrap();
        assert_eq!(segment_bytes(Some(&conf)), SEGMENT_BYTES);
    }

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
