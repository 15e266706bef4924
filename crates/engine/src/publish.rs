//! The live `status.json` of a driving process, written off the executor's path.
//!
//! Other processes (`engine status`, `engine list`) cannot open a run's database while a
//! process drives it, so the driver publishes a [`RunView`]. Serializing the whole view
//! at every transition made a run's status I/O grow with the square of its length and
//! put a file rewrite between a pod becoming Ready and the engine's next write. Instead
//! the executor only marks the view stale, and one thread publishes the newest view at
//! most every [`PERIOD`]: readers lag by at most that, and the cost per run stays flat.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::{self, RunView};

/// The shortest time between two writes of `status.json`.
pub(crate) const PERIOD: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Flags {
    stale: bool,
    stopped: bool,
}

type Signal = Arc<(Mutex<Flags>, Condvar)>;

fn flags(signal: &Signal) -> MutexGuard<'_, Flags> {
    signal.0.lock().unwrap_or_else(|p| p.into_inner())
}

type ViewFn = dyn Fn() -> Option<RunView> + Send + Sync;

/// Builds and writes one view. Shared by the thread and [`Publisher::publish_now`]; its
/// lock makes the later writer also the one with the later view.
struct Writer {
    path: PathBuf,
    view: Box<ViewFn>,
    lock: Mutex<()>,
}

impl Writer {
    /// Writes the current view; false when the run is gone.
    fn write(&self) -> bool {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut view) = (self.view)() else {
            return false;
        };
        without_private_outputs(&mut view);
        match serde_json::to_vec(&view) {
            Ok(bytes) => {
                if let Err(error) = store::write_atomic(&self.path, &bytes) {
                    tracing::warn!(%error, "cannot publish the run status");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot serialize the run status"),
        }
        true
    }
}

/// Drops every output's [`PRIVATE_OUTPUT`](crate::step::PRIVATE_OUTPUT) member: it is
/// for the run's own steps, not for the published status.
pub(crate) fn without_private_outputs(view: &mut RunView) {
    for node in &mut view.nodes {
        let Some(out) = &node.output else { continue };
        let Some(obj) = out.as_object() else { continue };
        if obj.contains_key(crate::step::PRIVATE_OUTPUT) {
            let public: serde_json::Map<String, serde_json::Value> = obj
                .iter()
                .filter(|(k, _)| k.as_str() != crate::step::PRIVATE_OUTPUT)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            node.output = Some(std::sync::Arc::new(serde_json::Value::Object(public)));
        }
    }
}

pub(crate) struct Publisher {
    signal: Signal,
    writer: Arc<Writer>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Publisher {
    /// Start publishing to `path` whatever `view` returns when called; `None` ends the
    /// thread (the run is gone).
    pub(crate) fn start(
        path: PathBuf,
        view: impl Fn() -> Option<RunView> + Send + Sync + 'static,
    ) -> Publisher {
        let signal: Signal = Arc::default();
        let writer = Arc::new(Writer {
            path,
            view: Box::new(view),
            lock: Mutex::new(()),
        });
        let (theirs, their_writer) = (signal.clone(), writer.clone());
        let thread = std::thread::Builder::new()
            .name("baton-status".to_owned())
            .spawn(move || publish_loop(&theirs, &their_writer));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(error) => {
                tracing::warn!(%error, "cannot start the status publisher: status.json stays stale");
                None
            }
        };
        Publisher {
            signal,
            writer,
            thread: Mutex::new(thread),
        }
    }

    /// Publish right now, on this thread: after an operator's request, whose effect the
    /// operator's next `engine status` must show.
    pub(crate) fn publish_now(&self) {
        self.writer.write();
    }

    /// The run changed: publish it soon.
    pub(crate) fn mark_stale(&self) {
        flags(&self.signal).stale = true;
        self.signal.1.notify_one();
    }

    /// Stop publishing and wait for a write in progress, so a final view written after
    /// this cannot be overwritten by an older one.
    pub(crate) fn stop(&self) {
        flags(&self.signal).stopped = true;
        self.signal.1.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // No join here: the last reference may be dropped on the publishing thread itself.
        flags(&self.signal).stopped = true;
        self.signal.1.notify_one();
    }
}

fn publish_loop(signal: &Signal, writer: &Writer) {
    let mut last: Option<Instant> = None;
    loop {
        {
            let mut f = flags(signal);
            while !f.stale && !f.stopped {
                f = signal.1.wait(f).unwrap_or_else(|p| p.into_inner());
            }
            // Rate limit: wait out the period since the last write, unless stopped.
            if let Some(at) = last {
                let due = at + PERIOD;
                while !f.stopped {
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    f = signal
                        .1
                        .wait_timeout(f, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
            if f.stopped {
                return;
            }
            f.stale = false;
        }
        if !writer.write() {
            return;
        }
        last = Some(Instant::now());
    }
}
