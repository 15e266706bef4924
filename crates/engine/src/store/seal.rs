//! The seal: a small file beside a run's database naming its latest flushed checkpoint.
//!
//! sled checks each of its log messages, but on a truncated or bit-flipped file it does
//! what it does after a crash: it stops at the first bad message and opens the prefix
//! before it as the whole database. A succeeded run then reads back as `running` with part
//! of its history, and a resume acts on that older state. Nothing inside the database can
//! tell a lost suffix from one that was never written, so the seal is kept outside it:
//! every flushing commit numbers itself (a counter stored with the record, in the same
//! sled transaction) and then rewrites `<db>.seal` atomically with that number, the record's
//! counts and a digest of the run record, the whole file under a checksum of its own.
//!
//! Reading compares the two. The database may be *ahead* of the seal (lazy commits sled
//! wrote on its own, or a crash between sled's flush and the seal's rename), never behind:
//! behind means flushed checkpoints are gone, and the store reports it as corrupt.
//!
//! File format (version 1), two lines: the JSON of [`Seal`], then `sha256:<hex>` of the
//! first line's bytes.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::records::RunState;

/// The seal format this build writes and reads.
const SEAL_VERSION: u16 = 1;

/// A seal is a few hundred bytes; anything much larger is not one, and is not read whole.
const MAX_SEAL_BYTES: u64 = 64 * 1024;

/// The seal of the database at `db`: `<db>.seal`, beside its `<db>.lock`.
pub fn seal_path(db: &Path) -> PathBuf {
    db.with_extension("seal")
}

/// What the latest flushed checkpoint held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seal {
    pub v: u16,
    /// The number of the commit, counted from 1; 0 seals a database no commit of this
    /// format has reached yet (a new run, or one written before seals existed).
    pub commit: u64,
    pub log_len: u64,
    pub node_count: u32,
    /// For operators reading the file; the digest is what is checked.
    pub state: Option<RunState>,
    /// SHA-256 of the stored run record's bytes at `commit`.
    pub meta: Option<String>,
}

impl Seal {
    /// The seal of a database no commit has been numbered in.
    pub fn baseline() -> Seal {
        Seal {
            v: SEAL_VERSION,
            commit: 0,
            log_len: 0,
            node_count: 0,
            state: None,
            meta: None,
        }
    }

    /// The seal of commit `commit`, whose run record encodes to `meta_bytes`.
    pub fn of(
        commit: u64,
        log_len: u64,
        node_count: u32,
        state: RunState,
        meta_bytes: &[u8],
    ) -> Seal {
        Seal {
            v: SEAL_VERSION,
            commit,
            log_len,
            node_count,
            state: Some(state),
            meta: Some(digest(meta_bytes)),
        }
    }
}

/// Hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Why a seal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read its seal {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("its seal {} is damaged: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
}

/// The seal at `path`, or `None` when there is none.
///
/// # Errors
/// [`SealError::Io`] when it exists but cannot be read, [`SealError::Damaged`] when its
/// checksum, format or version is wrong.
pub fn read(path: &Path) -> Result<Option<Seal>, SealError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SealError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_SEAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SealError::Io {
            path: path.to_owned(),
            source,
        })?;
    let damaged = |detail: String| SealError::Damaged {
        path: path.to_owned(),
        detail,
    };
    if bytes.len() as u64 > MAX_SEAL_BYTES {
        return Err(damaged(format!("larger than {MAX_SEAL_BYTES} bytes")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| damaged("not text".to_owned()))?;
    let Some((body, sum)) = text.split_once('\n') else {
        return Err(damaged("no checksum line".to_owned()));
    };
    let Some(sum) = sum.trim_end_matches('\n').strip_prefix("sha256:") else {
        return Err(damaged("no checksum line".to_owned()));
    };
    if sum != digest(body.as_bytes()) {
        return Err(damaged("its checksum does not match".to_owned()));
    }
    let seal: Seal = serde_json::from_str(body).map_err(|e| damaged(e.to_string()))?;
    if seal.v != SEAL_VERSION {
        return Err(damaged(format!(
            "format {} (this build reads {SEAL_VERSION})",
            seal.v
        )));
    }
    Ok(Some(seal))
}

/// Replace the seal at `path` with `seal`: written to a temporary file, synced, then
/// renamed over the old one, so a reader (or a crash) sees the old seal or the new one,
/// never a torn one. The rename itself may be lost in a crash; an older seal is accepted.
///
/// # Errors
/// Any I/O error (the commit it seals then fails like a failed flush).
pub fn write(path: &Path, seal: &Seal) -> std::io::Result<()> {
    let body = serde_json::to_string(seal).map_err(std::io::Error::other)?;
    let text = format!("{body}\nsha256:{}\n", digest(body.as_bytes()));
    let tmp = path.with_extension(format!("seal.tmp.{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_reads_back_and_any_changed_byte_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = seal_path(&dir.path().join("db"));
        assert_eq!(read(&path).unwrap(), None);
        let seal = Seal::of(7, 29, 20, RunState::Succeeded, b"{\"v\":1}");
        write(&path, &seal).unwrap();
        assert_eq!(read(&path).unwrap(), Some(seal));
        let bytes = std::fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x04;
            std::fs::write(&path, &flipped).unwrap();
            assert!(
                matches!(read(&path), Err(SealError::Damaged { .. })),
                "byte {i} flipped went unnoticed"
            );
        }
    }
}
