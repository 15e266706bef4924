//! What a run takes from outside its own logic: where its record is stored, what time it
//! is, and the randomness that spreads retries. [`Environment::default`] is the real one
//! (sled, the system clock, `rand`); tests pass their own to run without disk or wall time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::retry::RetryPolicy;
use crate::store::{self, RunStore, SledStore, StoreError};

/// How long to wait for another process (a quick `engine status`) to release a run's lock.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Opens the store of the run whose directory is `dir`, for the one process driving it.
pub trait StoreOpener: Send + Sync {
    /// # Errors
    /// [`StoreError::Locked`] when another process holds the run; any other store error.
    fn open(&self, dir: &Path) -> Result<Box<dyn RunStore>, StoreError>;
}

/// The real store: sled under `<dir>/db`, waiting a little for a reader to let go.
#[derive(Debug, Clone, Copy, Default)]
pub struct SledStores;

impl StoreOpener for SledStores {
    fn open(&self, dir: &Path) -> Result<Box<dyn RunStore>, StoreError> {
        let store = SledStore::open_patiently(&store::db_dir(dir), LOCK_PATIENCE)?;
        Ok(Box::new(store))
    }
}

/// A number in `[0, 1]` for each retry's delay (see [`RetryPolicy::delay`]).
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The outside world of [`start_in`](super::start_in) and [`resume_in`](super::resume_in).
#[derive(Clone)]
pub struct Environment {
    pub stores: Arc<dyn StoreOpener>,
    pub clock: Arc<dyn Clock>,
    pub jitter: Jitter,
    pub retry: RetryPolicy,
}

impl Default for Environment {
    fn default() -> Self {
        Environment {
            stores: Arc::new(SledStores),
            clock: Arc::new(SystemClock),
            jitter: Arc::new(rand::random::<f64>),
            retry: RetryPolicy::DEFAULT,
        }
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
