//! Talking to the process that drives a run: `engine approve` and `engine abort` from
//! another terminal.
//!
//! sled locks a run's database while a process drives it, so other processes cannot
//! write it. That process listens on `<run-dir>/control.sock` (a unix socket) for one
//! JSON request per connection, newline-terminated, and answers with one JSON line.
//! When no process holds the run, callers write the database directly instead.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::dag::StepId;

/// A request to the driving process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum ControlRequest {
    /// Release `gate` (or the gate the run waits at, when `None`).
    Approve {
        gate: Option<StepId>,
        by: String,
        reason: Option<String>,
    },
    /// Stop the run at once; the steps are cancelled and the run is marked aborted.
    Abort { by: String, reason: Option<String> },
}

/// The driving process's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum ControlResponse {
    Approved { gate: StepId, already: bool },
    Aborted,
    Refused { message: String },
}

/// Why a control request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot connect to {}", path.display())]
    Connect {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the driving process did not answer")]
    Exchange(#[source] std::io::Error),
    #[error("the driving process sent an unreadable answer")]
    BadAnswer(#[source] serde_json::Error),
}

/// Send `request` to the process listening on `socket`, waiting up to `patience` for it
/// to start listening (a process that just took the lock binds its socket right after).
pub fn send(
    socket: &Path,
    request: &ControlRequest,
    patience: Duration,
) -> Result<ControlResponse, ControlError> {
    let deadline = std::time::Instant::now() + patience;
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(source) if std::time::Instant::now() >= deadline => {
                return Err(ControlError::Connect {
                    path: socket.to_owned(),
                    source,
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(ControlError::Exchange)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(ControlError::Exchange)?;
    let mut line = serde_json::to_vec(request).map_err(ControlError::BadAnswer)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(ControlError::Exchange)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(ControlError::Exchange)?;
    serde_json::from_str(&answer).map_err(ControlError::BadAnswer)
}

/// What the server does with a request.
pub(crate) trait ControlHandler: Send + Sync + 'static {
    fn handle(&self, request: ControlRequest) -> ControlResponse;
}

/// Longest request line accepted; a request is a few hundred bytes.
const MAX_REQUEST: u64 = 64 * 1024;

/// Serve requests on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::UnixListener,
    handler: Arc<dyn ControlHandler>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            // Cancel safety: `accept` loses nothing when dropped before it resolves.
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "control socket accept failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader =
                tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
            let mut line = String::new();
            if let Err(error) = reader.read_line(&mut line).await {
                tracing::warn!(%error, "control request unreadable");
                return;
            }
            let response = match serde_json::from_str::<ControlRequest>(&line) {
                Ok(request) => handler.handle(request),
                Err(error) => ControlResponse::Refused {
                    message: format!("malformed request: {error}"),
                },
            };
            let mut answer = serde_json::to_vec(&response).unwrap_or_default();
            answer.push(b'\n');
            if let Err(error) = write.write_all(&answer).await {
                tracing::warn!(%error, "control answer not delivered");
            }
        });
    }
}

/// `user@host` for audit records: `$USER` (or `$LOGNAME`), else the name of the process's
/// user id (cron jobs, containers and `env -i` set no `$USER`, and an audit record that
/// says `unknown` proves nothing), and the kernel's hostname.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(uid_name);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}")
}

/// The name `/etc/passwd` gives this process's user id, else `uid-N`. (Names served by
/// other NSS sources, such as LDAP, are not looked up: that would need the C library.)
fn uid_name() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // `/proc/self` belongs to the process's effective user.
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return "unknown".to_owned();
        };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_owned())
            })
            .next()
            .unwrap_or_else(|| format!("uid-{uid}"))
    }
    #[cfg(not(unix))]
    {
        "unknown".to_owned()
    }
}
