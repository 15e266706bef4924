//! Where a run's record lives: a trait with two implementations, sled on disk
//! ([`SledStore`]) and memory for tests ([`MemoryStore`]).
//!
//! The executor keeps the authoritative [`RunRecord`] in memory and hands the store a
//! [`Commit`] per transition: changed nodes, new log entries and the run meta (which
//! holds the log cursor), applied atomically; flushed before `commit` returns when it
//! guards a side effect ([`Durability`]).
//!
//! On disk, one run is one directory `<state-dir>/runs/<run-id>/`:
//! - `db/`: the sled database (trees `meta`, `nodes`, `log`), locked by its process
//!   through `db.lock`;
//! - `db.seal`: the number and digest of the latest flushed checkpoint, so a database
//!   that lost its newest records reads as damaged rather than as an older run ([`seal`]);
//! - `status.json`: a [`RunView`] the driving process rewrites after transitions (at
//!   most every 50 ms), so other processes can read a live run without the lock; removed
//!   when the process lets go of the run (readers then open the database), left by a
//!   process that was killed;
//! - `control.sock`: where that process takes `approve`/`abort` requests.

use std::path::{Path, PathBuf};

pub mod memory;
pub mod records;
pub mod seal;
pub mod sled;
pub mod view;

pub use memory::MemoryStore;
pub use records::{
    LogEntry, LogKind, NodeRecord, NodeState, Phase, Rollback, RunMeta, RunRecord, RunState,
};
pub use sled::SledStore;
pub use view::{AuditEntry, AuditOutcome, RunSummary, RunView, WaitingEntry};

/// When a commit must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before `commit` returns, together with every commit before it: for what guards
    /// a side effect (write-ahead intents) and what an operator did.
    Flush,
    /// Atomic and ordered, durable with the next `Flush`: for transitions a crash may
    /// lose because the step they describe is idempotent and will simply run again.
    Lazy,
}

/// One atomic change of a run record.
#[derive(Debug)]
pub struct Commit<'a> {
    /// Names the checkpoint for failpoints (`in-checkpoint:<label>`) and logs.
    pub label: &'a str,
    pub durability: Durability,
    pub meta: &'a RunMeta,
    /// Changed nodes with their indexes.
    pub nodes: Vec<(u32, &'a NodeRecord)>,
    /// Log entries appended by this change, in order.
    pub log: &'a [LogEntry],
}

/// Storage of one run.
pub trait RunStore: Send + Sync {
    /// The stored record, or `None` for a new run.
    fn load(&self) -> Result<Option<RunRecord>, StoreError>;
    /// Apply `commit` atomically, in order after every earlier commit; with
    /// [`Durability::Flush`], make it and them durable before returning.
    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError>;
}

/// Why the store failed. Messages describe this layer; causes are chained.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run state at {} is held by another process", path.display())]
    Locked { path: PathBuf },
    #[error("run state at {} is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot open run state at {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: ::sled::Error,
    },
    #[error("cannot write run state at {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: ::sled::Error,
    },
    #[error("cannot read run state at {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: ::sled::Error,
    },
    /// The run's store takes no more writes (closed, or broken by an earlier failed write).
    /// Nothing on disk is damaged: `engine resume` reloads the last checkpoint.
    #[error("run {run} records nothing more: {why}; the state on disk is intact")]
    Unavailable { run: String, why: &'static str },
    /// A remote store (the API server, for in-cluster runs) found that another writer
    /// changed the run's record since this process read it: this process must stop
    /// writing, since two writers would interleave their checkpoints.
    #[error(
        "run state {location} was changed by another writer; this process records nothing more"
    )]
    Conflict { location: String },
    /// A remote store failed to read or write (`what`), or refused the record.
    #[error("cannot {what} run state {location}")]
    Remote {
        location: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record could not be serialized: a bug, never written as empty bytes.
    #[error("cannot encode a {what} record")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// `<state-dir>/runs`.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// `<state-dir>/runs/<run-id>`.
pub fn run_dir(state_dir: &Path, run_id: &str) -> PathBuf {
    runs_dir(state_dir).join(run_id)
}

/// The sled database of a run directory.
pub fn db_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("db")
}

/// The live status file of a run directory.
pub fn status_path(run_dir: &Path) -> PathBuf {
    run_dir.join("status.json")
}

/// The control socket of a run directory.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// Write `bytes` to `path` atomically: a reader sees the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}
