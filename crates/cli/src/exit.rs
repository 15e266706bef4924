//! Exit codes are part of the contract (SPEC §5).

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Done.
    Success = 0,
    /// The run failed or hit a safety stop; resumable.
    Failed = 1,
    /// Bad usage, bad plan or unknown run; nothing changed.
    Usage = 2,
    /// Another run holds the lock.
    Locked = 4,
    /// Interrupted by a signal after checkpointing; resumable.
    Interrupted = 130,
}
