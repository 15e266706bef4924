//! Paged lists (`limit` and `continue`) served from one snapshot, as the apiserver serves every
//! page of a list at the first page's resourceVersion: a client that lists in pages and then
//! watches from the list's version misses nothing written between its pages (kube-runtime's
//! watcher lists 500 at a time, kubectl too).
//!
//! The first page of a list that needs more pages keeps the whole result here (shared objects,
//! no copies); the continue token names that snapshot and the offset reached. Only the latest
//! snapshots are kept: a token for a forgotten one answers `410 Expired`, like a continue token
//! whose version was compacted, and the client lists again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{ApiError, Stored};

/// How many paged lists can be continued at once.
const KEPT: usize = 64;

/// The snapshots behind continue tokens. Cloning shares them.
#[derive(Clone, Default)]
pub struct Pages(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    next_id: u64,
    kept: VecDeque<Snapshot>,
}

struct Snapshot {
    id: u64,
    rv: u64,
    items: Arc<Vec<Stored>>,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Stored>,
    /// The list's resourceVersion: the snapshot's, on every page.
    pub rv: u64,
    /// The continue token for the rest, if any remains.
    pub next: Option<String>,
}

impl Pages {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is a single push or pop, so a poisoned lock still holds whole entries.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first page of `all` (a whole list taken at `rv`), at most `limit` items; keeps the
    /// snapshot when more pages follow.
    pub fn first(&self, all: Vec<Stored>, rv: u64, limit: Option<usize>) -> Page {
        let Some(limit) = limit.filter(|l| all.len() > *l) else {
            return Page {
                items: all,
                rv,
                next: None,
            };
        };
        let items = all[..limit].to_vec();
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if inner.kept.len() >= KEPT {
            inner.kept.pop_front();
        }
        inner.kept.push_back(Snapshot {
            id,
            rv,
            items: Arc::new(all),
        });
        Page {
            items,
            rv,
            next: Some(token(id, limit)),
        }
    }

    /// The page a continue token points at, at most `limit` items.
    pub fn next(&self, continue_token: &str, limit: Option<usize>) -> Result<Page, ApiError> {
        let (id, offset) = parse(continue_token)
            .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
        let (rv, items) = {
            let inner = self.lock();
            let snap = inner.kept.iter().find(|s| s.id == id).ok_or_else(|| {
                ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list \
                     result. You can start a new list without the continue parameter.",
                )
            })?;
            (snap.rv, snap.items.clone())
        };
        let offset = offset.min(items.len());
        let end = limit.map_or(items.len(), |l| offset.saturating_add(l).min(items.len()));
        Ok(Page {
            items: items[offset..end].to_vec(),
            rv,
            next: (end < items.len()).then(|| token(id, end)),
        })
    }
}

fn token(id: u64, offset: usize) -> String {
    format!("{id}.{offset}")
}

fn parse(token: &str) -> Option<(u64, usize)> {
    let (id, offset) = token.split_once('.')?;
    Some((id.parse().ok()?, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Kind, Store};
    use serde_json::json;

    fn pods(store: &Store, names: &[&str]) {
        for n in names {
            store
                .create(Kind::Pod, "default", json!({"metadata": {"name": n}}))
                .unwrap();
        }
    }

    fn names(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|(o, _)| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn later_pages_come_from_the_first_pages_snapshot() {
        let store = Store::new();
        pods(&store, &["a", "b", "c"]);
        let pages = Pages::default();
        let (all, rv) = store.list_encoded(Kind::Pod, Some("default"));
        let first = pages.first(all, rv, Some(2));
        assert_eq!(names(&first), ["a", "b"]);
        // Written between the pages: not part of this list (a watch from `rv` brings it).
        store.delete(Kind::Pod, "default", "c").unwrap();
        pods(&store, &["d"]);
        let second = pages.next(first.next.as_deref().unwrap(), Some(2)).unwrap();
        assert_eq!(names(&second), ["c"]);
        assert_eq!((second.rv, second.next), (rv, None));
    }

    #[test]
    fn a_list_that_fits_keeps_no_snapshot_and_bad_or_forgotten_tokens_are_refused() {
        let store = Store::new();
        pods(&store, &["a", "b"]);
        let pages = Pages::default();
        let (all, rv) = store.list_encoded(Kind::Pod, Some("default"));
        assert!(pages.first(all, rv, Some(2)).next.is_none());
        assert_eq!(pages.next("nonsense", None).err().unwrap().code, 400);
        assert_eq!(pages.next("7.1", None).err().unwrap().code, 410);
    }
}
