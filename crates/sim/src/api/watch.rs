//! Watch streams: newline-delimited `WatchEvent` JSON over a chunked
//! response, like `GET ...?watch=true` on a real apiserver.
//!
//! Without a `resourceVersion` (or with `"0"`) the stream starts with a
//! synthetic `ADDED` for every matching object; with one it replays the
//! store's history after that version, or sends a single `ERROR` event
//! carrying a `410 Expired` Status when the history no longer reaches back
//! (as the real apiserver does; kube-runtime's watcher then relists).
//! Objects that start or stop matching a label selector show up as `ADDED`
//! and `DELETED`. Bookmarks are sent every [`WatchOptions::bookmark_every`]
//! when asked for, and after the initial events with `sendInitialEvents`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::response::status_body;
use super::table::{self, Include};
use crate::selector::{self, FieldSelector, Selector};
use crate::store::{Change, ChangeType, Encoded, Kind, Store, Stored};

#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: FieldSelector,
    /// `None` or `Some(0)`: start with the current state.
    pub resource_version: Option<u64>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    pub bookmark_every: Duration,
    /// Render objects as `Table` rows (kubectl get -w).
    pub table: Option<(table::Printer, Include)>,
    /// End the stream after this many events (a fault knob).
    pub cut_after: Option<u32>,
}

struct Filter {
    opts: WatchOptions,
    /// Objects the client currently believes match.
    matching: HashSet<(String, String)>,
}

impl Filter {
    fn selects(&self, o: &Value) -> bool {
        selector::matches_object(&self.opts.labels, o) && self.opts.fields.matches(o)
    }

    fn in_scope(&self, c: &Change) -> bool {
        c.kind == self.opts.kind
            && self
                .opts
                .namespace
                .as_deref()
                .is_none_or(|ns| c.namespace == ns)
    }

    /// The event type the client should see for a change, if any.
    fn translate(&mut self, c: &Change) -> Option<&'static str> {
        if !self.in_scope(c) {
            return None;
        }
        let key = (c.namespace.clone(), c.name.clone());
        let now = self.selects(&c.object);
        let was = self.matching.contains(&key);
        match c.change {
            ChangeType::Added if now => {
                self.matching.insert(key);
                Some("ADDED")
            }
            ChangeType::Modified if now => {
                self.matching.insert(key);
                Some(if was { "MODIFIED" } else { "ADDED" })
            }
            ChangeType::Modified if was => {
                self.matching.remove(&key);
                Some("DELETED")
            }
            ChangeType::Deleted if was || now => {
                self.matching.remove(&key);
                Some("DELETED")
            }
            _ => None,
        }
    }
}

/// An object's `(namespace, name)`, as [`Filter::matching`] holds it.
fn key_of(o: &Value) -> (String, String) {
    let field = |f: &str| o["metadata"][f].as_str().unwrap_or_default().to_string();
    (field("namespace"), field("name"))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// `{"type":ty,"object":object}` and a newline, around an encoded object.
fn event_line(ty: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":");
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, ty);
    out.extend_from_slice(b",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Starts a watch and returns the streaming response.
pub fn serve(store: &Store, opts: WatchOptions) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let start = match opts.resource_version {
        None | Some(0) => {
            let (items, rv, sub) = store.list_and_subscribe(opts.kind, opts.namespace.as_deref());
            Ok((Start::Snapshot(items), rv, sub))
        }
        Some(rv) => store.watch_from(rv).map(|(past, sub)| {
            (
                Start::Replay(
                    past,
                    store.list_shared(opts.kind, opts.namespace.as_deref()).0,
                ),
                rv,
                sub,
            )
        }),
    };
    match start {
        Ok((start, rv, sub)) => {
            tokio::spawn(pump(tx, opts, start, rv, sub));
        }
        Err(e) => {
            let ev = json!({"type": "ERROR", "object": status_body(&e, None, None)});
            // The channel has room for one event; the receiver is not gone yet.
            let _ = tx.try_send(Ok(line(&ev)));
        }
    }
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    resp
}

enum Start {
    Snapshot(Vec<Stored>),
    /// History after the requested version, and the current objects (to
    /// know which ones the client already has).
    Replay(Vec<Change>, Vec<Arc<Value>>),
}

struct Sender {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    opts: WatchOptions,
    sent: u32,
    columns_sent: bool,
}

impl Sender {
    /// Sends one event; false when the stream must end.
    /// Sends one event for a stored object version; false when the stream must end.
    async fn event(&mut self, ty: &str, object: &Value, encoded: &Encoded) -> bool {
        let bytes = match &self.opts.table {
            Some((printer, include)) => {
                let t = table::table(
                    printer,
                    std::slice::from_ref(object),
                    None,
                    *include,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                event_line(ty, t.to_string().as_bytes())
            }
            None => event_line(ty, &encoded.get(object)),
        };
        if self.tx.send(Ok(bytes)).await.is_err() {
            return false;
        }
        self.sent += 1;
        self.opts.cut_after.is_none_or(|n| self.sent < n)
    }

    async fn bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let kind = self.opts.kind;
        let object = json!({"kind": kind.kind_name(), "apiVersion": kind.api_version(), "metadata": metadata});
        self.tx
            .send(Ok(line(&json!({"type": "BOOKMARK", "object": object}))))
            .await
            .is_ok()
    }
}

async fn pump(
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    opts: WatchOptions,
    start: Start,
    start_rv: u64,
    mut sub: broadcast::Receiver<Change>,
) {
    if opts.cut_after == Some(0) {
        return;
    }
    let mut filter = Filter {
        opts: opts.clone(),
        matching: HashSet::new(),
    };
    let mut out = Sender {
        tx,
        opts: opts.clone(),
        sent: 0,
        columns_sent: false,
    };
    let mut last_rv = start_rv;
    match start {
        Start::Snapshot(items) => {
            for (o, encoded) in items.iter() {
                if !filter.selects(o) {
                    continue;
                }
                filter.matching.insert(key_of(o));
                if !out.event("ADDED", o, encoded).await {
                    return;
                }
            }
            if opts.send_initial_events && !out.bookmark(last_rv, true).await {
                return;
            }
        }
        Start::Replay(past, current) => {
            // Assume the client has what matches now; replay then corrects it.
            for o in current.iter() {
                if !filter.selects(o) {
                    continue;
                }
                filter.matching.insert(key_of(o));
            }
            for c in past {
                last_rv = c.resource_version;
                if let Some(ty) = filter.translate(&c)
                    && !out.event(ty, &c.object, &c.encoded).await
                {
                    return;
                }
            }
        }
    }
    let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut ticker = tokio::time::interval(opts.bookmark_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            change = sub.recv() => match change {
                Ok(c) => {
                    if c.resource_version <= last_rv {
                        continue;
                    }
                    last_rv = c.resource_version;
                    if let Some(ty) = filter.translate(&c)
                        && !out.event(ty, &c.object, &c.encoded).await
                    {
                        return;
                    }
                }
                // Fell too far behind or the store is gone: end the stream; the
                // client re-watches from the last version it saw.
                Err(_) => return,
            },
            _ = ticker.tick(), if opts.bookmarks => {
                if !out.bookmark(last_rv, false).await {
                    return;
                }
            }
            _ = sleep_until(deadline) => return,
            _ = out.tx.closed() => return,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
