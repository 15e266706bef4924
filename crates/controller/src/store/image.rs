//! The store's picture of what the API server holds for one run, and the writes that bring
//! the server up to date after a batch of commits. Pure data, no I/O: the writer thread
//! ([`super`]) sends what [`Image::writes`] returns and reports back what the server said.
//!
//! Layout, per UpgradePlan `<plan>`:
//! - `<plan>.baton-run`: `meta` (the [`RunMeta`](baton_engine::store::RunMeta) envelope,
//!   which holds the log cursor `logLen`), one key `node-NNNNNN` per node, `chunks` (how
//!   many log ConfigMaps the record spans) and `sequence` (commits so far). Writing it is
//!   the commit point: what it does not reference is not part of the record.
//! - `<plan>.baton-log-<n>`: log entries `first..`, one envelope per line under `entries`,
//!   append-only; a chunk takes entries until it holds [`Image::budget`] bytes.
//!
//! Log entries past `meta.logLen` (a commit whose run ConfigMap never landed) are ignored
//! on load and overwritten by the next append; a chunk ConfigMap that no commit references
//! (an *orphan*) is taken over by the next commit that needs its index.

use std::collections::BTreeMap;

/// Keys of the ConfigMaps.
pub const META: &str = "meta";
pub const CHUNKS: &str = "chunks";
pub const SEQUENCE: &str = "sequence";
pub const FORMAT: &str = "format";
pub const FIRST: &str = "first";
pub const ENTRIES: &str = "entries";
/// The layout version written under [`FORMAT`].
pub const LAYOUT: &str = "1";

/// The default byte budget of one log chunk: well below the API server's 1 MiB limit on
/// an object, so a chunk plus its metadata always fits.
pub const DEFAULT_CHUNK_BUDGET: usize = 512 * 1024;

/// Largest run ConfigMap the store sends; past it the commit fails with a clear error
/// rather than the API server's "request entity too large".
pub const MAX_RUN_BYTES: usize = 900 * 1024;

/// The run ConfigMap of UpgradePlan `plan`.
pub fn run_name(plan: &str) -> String {
    format!("{plan}.baton-run")
}

/// Log chunk `n` of UpgradePlan `plan`.
pub fn chunk_name(plan: &str, n: usize) -> String {
    format!("{plan}.baton-log-{n}")
}

/// The key of node `i` (zero-padded so `kubectl get -o yaml` lists nodes in order).
pub fn node_key(i: usize) -> String {
    format!("node-{i:06}")
}

/// One commit, encoded on the caller's thread (a [`Commit`](baton_engine::store::Commit)
/// borrows the executor's record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub meta: String,
    pub nodes: Vec<(usize, String)>,
    /// `(seq, envelope)`, in order.
    pub log: Vec<(u64, String)>,
}

/// A log chunk as the store believes the server holds it (plus unsent appends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub first: u64,
    pub lines: Vec<String>,
    pub bytes: usize,
    /// The server's `resourceVersion`; `None` while it does not exist there.
    pub version: Option<String>,
    pub dirty: bool,
}

/// What the store believes the server holds for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub meta: Option<String>,
    pub nodes: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// Chunks the server holds that no commit references, by index, with their version.
    pub orphans: BTreeMap<usize, String>,
    pub sequence: u64,
    /// The run ConfigMap's `resourceVersion`; `None` while it does not exist.
    pub version: Option<String>,
    pub budget: usize,
}

/// One write the server must accept for the image to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `Some(n)` for log chunk `n`, `None` for the run ConfigMap.
    pub chunk: Option<usize>,
    pub data: BTreeMap<String, String>,
    /// Replace at this `resourceVersion`; `None`: create.
    pub version: Option<String>,
}

impl Image {
    /// A run the server holds nothing of.
    pub fn empty(budget: usize) -> Image {
        Image {
            meta: None,
            nodes: Vec::new(),
            chunks: Vec::new(),
            orphans: BTreeMap::new(),
            sequence: 0,
            version: None,
            budget: budget.max(1),
        }
    }

    /// Log entries held (appended ones included).
    pub fn log_len(&self) -> u64 {
        self.chunks
            .last()
            .map_or(0, |c| c.first + c.lines.len() as u64)
    }

    /// Add one commit. Refuses (with why) a node written past the end or a log entry out
    /// of sequence, as the other stores do.
    pub fn apply(&mut self, commit: Encoded) -> Result<(), String> {
        for (i, node) in commit.nodes {
            match i.cmp(&self.nodes.len()) {
                std::cmp::Ordering::Less => self.nodes[i] = node,
                std::cmp::Ordering::Equal => self.nodes.push(node),
                std::cmp::Ordering::Greater => {
                    return Err(format!("node {i} written before node {}", self.nodes.len()));
                }
            }
        }
        for (seq, line) in commit.log {
            let next = self.log_len();
            if seq != next {
                return Err(format!("log entry {seq} appended at {next}"));
            }
            let fits = self
                .chunks
                .last()
                .is_some_and(|c| c.lines.is_empty() || c.bytes + line.len() < self.budget);
            if !fits {
                let index = self.chunks.len();
                self.chunks.push(Chunk {
                    first: seq,
                    lines: Vec::new(),
                    bytes: 0,
                    version: self.orphans.remove(&index),
                    dirty: true,
                });
            }
            let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
            chunk.bytes += line.len() + 1;
            chunk.lines.push(line);
            chunk.dirty = true;
        }
        self.meta = Some(commit.meta);
        self.sequence += 1;
        Ok(())
    }

    /// The writes that store the image: dirty chunks first, in order, then the run
    /// ConfigMap (the commit point). Fails when the run ConfigMap would be too large.
    pub fn writes(&self) -> Result<Vec<Write>, String> {
        let mut out: Vec<Write> = self
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.dirty)
            .map(|(n, c)| Write {
                chunk: Some(n),
                data: BTreeMap::from([
                    (FIRST.to_owned(), c.first.to_string()),
                    (ENTRIES.to_owned(), c.lines.join("\n")),
                ]),
                version: c.version.clone(),
            })
            .collect();
        let mut data = BTreeMap::from([
            (FORMAT.to_owned(), LAYOUT.to_owned()),
            (CHUNKS.to_owned(), self.chunks.len().to_string()),
            (SEQUENCE.to_owned(), self.sequence.to_string()),
        ]);
        if let Some(meta) = &self.meta {
            data.insert(META.to_owned(), meta.clone());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            data.insert(node_key(i), node.clone());
        }
        let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_RUN_BYTES {
            return Err(format!(
                "the run record's meta and nodes take {bytes} bytes, more than one ConfigMap \
                 holds ({MAX_RUN_BYTES})"
            ));
        }
        out.push(Write {
            chunk: None,
            data,
            version: self.version.clone(),
        });
        Ok(out)
    }

    /// The server accepted `write`, now at `version`.
    pub fn stored(&mut self, chunk: Option<usize>, version: String) {
        match chunk.and_then(|n| self.chunks.get_mut(n)) {
            Some(c) => {
                c.version = Some(version);
                c.dirty = false;
            }
            None => self.version = Some(version),
        }
    }

    /// The image of a run ConfigMap's `data` at `version` and its chunks' (`data`,
    /// version), in order; `orphans` are chunk ConfigMaps past the referenced ones.
    pub fn load(
        run: &BTreeMap<String, String>,
        version: String,
        chunks: Vec<(BTreeMap<String, String>, String)>,
        orphans: BTreeMap<usize, String>,
        log_len: u64,
        budget: usize,
    ) -> Result<Image, String> {
        let count = referenced_chunks(run)?;
        if chunks.len() != count {
            return Err(format!(
                "the record spans {count} log chunks, {} were read",
                chunks.len()
            ));
        }
        let mut image = Image::empty(budget);
        image.meta = run.get(META).cloned();
        image.version = Some(version);
        image.orphans = orphans;
        image.sequence = number(run, SEQUENCE, "the run ConfigMap")?;
        image.nodes = run
            .iter()
            .filter(|(k, _)| k.starts_with("node-"))
            .map(|(_, v)| v.clone())
            .collect();
        for (n, (data, version)) in chunks.into_iter().enumerate() {
            let first = number(&data, FIRST, &format!("log chunk {n}"))?;
            let expected = image.log_len();
            if first != expected {
                return Err(format!(
                    "log chunk {n} starts at entry {first}, expected {expected}"
                ));
            }
            let lines: Vec<String> = data
                .get(ENTRIES)
                .map(|e| e.lines().map(str::to_owned).collect())
                .unwrap_or_default();
            // Entries past the committed cursor belong to a commit that never landed.
            let keep = usize::try_from(log_len.saturating_sub(first))
                .unwrap_or(usize::MAX)
                .min(lines.len());
            let lines: Vec<String> = lines.into_iter().take(keep).collect();
            let bytes = lines.iter().map(|l| l.len() + 1).sum();
            image.chunks.push(Chunk {
                first,
                lines,
                bytes,
                version: Some(version),
                dirty: false,
            });
        }
        if image.log_len() != log_len {
            return Err(format!(
                "the record has {log_len} log entries, its chunks hold {}",
                image.log_len()
            ));
        }
        Ok(image)
    }
}

/// How many log chunks a run ConfigMap's `data` references.
pub fn referenced_chunks(run: &BTreeMap<String, String>) -> Result<usize, String> {
    usize::try_from(number(run, CHUNKS, "the run ConfigMap")?)
        .map_err(|_| "too many log chunks".to_owned())
}

fn number(data: &BTreeMap<String, String>, key: &str, what: &str) -> Result<u64, String> {
    data.get(key)
        .ok_or_else(|| format!("{what} has no {key:?}"))?
        .parse()
        .map_err(|e| format!("{what}: {key:?} is not a number: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(meta: &str, nodes: &[(usize, &str)], log: &[(u64, &str)]) -> Encoded {
        Encoded {
            meta: meta.to_owned(),
            nodes: nodes.iter().map(|(i, n)| (*i, (*n).to_owned())).collect(),
            log: log.iter().map(|(s, l)| (*s, (*l).to_owned())).collect(),
        }
    }

    fn chunk_lines(image: &Image) -> Vec<Vec<&str>> {
        image
            .chunks
            .iter()
            .map(|c| c.lines.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn entries_fill_a_chunk_up_to_its_budget_then_open_the_next() {
        // (budget, entries, chunks expected)
        type Case<'a> = (usize, &'a [&'a str], &'a [&'a [&'a str]]);
        let cases: [Case; 4] = [
            (100, &["a", "b", "c"], &[&["a", "b", "c"]]),
            (4, &["a", "b", "c"], &[&["a", "b"], &["c"]]),
            (1, &["aaaa", "b"], &[&["aaaa"], &["b"]]),
            (
                6,
                &["aaaaaaaaaa", "b", "c"],
                &[&["aaaaaaaaaa"], &["b", "c"]],
            ),
        ];
        for (budget, entries, want) in cases {
            let mut image = Image::empty(budget);
            let log: Vec<(u64, &str)> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| (i as u64, *e))
                .collect();
            image.apply(commit("m", &[], &log)).unwrap();
            assert_eq!(chunk_lines(&image), want, "budget {budget}");
            let firsts: Vec<u64> = image.chunks.iter().map(|c| c.first).collect();
            let mut expected = 0;
            for (c, first) in want.iter().zip(&firsts) {
                assert_eq!(*first, expected);
                expected += c.len() as u64;
            }
        }
    }

    #[test]
    fn writes_send_dirty_chunks_before_the_run_config_map_then_nothing_is_dirty() {
        let mut image = Image::empty(4);
        image
            .apply(commit("m1", &[(0, "n0")], &[(0, "a"), (1, "b"), (2, "c")]))
            .unwrap();
        let writes = image.writes().unwrap();
        let order: Vec<Option<usize>> = writes.iter().map(|w| w.chunk).collect();
        assert_eq!(order, [Some(0), Some(1), None]);
        assert!(writes.iter().all(|w| w.version.is_none()), "all created");
        let run = &writes[2].data;
        assert_eq!(run[CHUNKS], "2");
        assert_eq!(run[META], "m1");
        assert_eq!(run["node-000000"], "n0");
        for w in writes {
            image.stored(w.chunk, format!("v{:?}", w.chunk));
        }
        image.apply(commit("m2", &[(0, "n0b")], &[])).unwrap();
        let writes = image.writes().unwrap();
        assert_eq!(writes.len(), 1, "only the run ConfigMap: {writes:?}");
        assert_eq!(writes[0].version.as_deref(), Some("vNone"));
        assert_eq!(writes[0].data[SEQUENCE], "2");
    }

    #[test]
    fn out_of_order_writes_are_refused() {
        let mut image = Image::empty(100);
        assert!(image.apply(commit("m", &[(1, "n")], &[])).is_err());
        assert!(image.apply(commit("m", &[], &[(3, "x")])).is_err());
    }

    #[test]
    fn a_load_drops_entries_past_the_cursor_and_takes_over_orphans() {
        let run = BTreeMap::from([
            (META.to_owned(), "m".to_owned()),
            (CHUNKS.to_owned(), "1".to_owned()),
            (SEQUENCE.to_owned(), "7".to_owned()),
            (node_key(0), "n0".to_owned()),
            (node_key(1), "n1".to_owned()),
        ]);
        let chunk = BTreeMap::from([
            (FIRST.to_owned(), "0".to_owned()),
            (ENTRIES.to_owned(), "a\nb\nlost".to_owned()),
        ]);
        let orphans = BTreeMap::from([(1, "o1".to_owned())]);
        let mut image =
            Image::load(&run, "r".into(), vec![(chunk, "c0".into())], orphans, 2, 2).unwrap();
        assert_eq!(chunk_lines(&image), [["a", "b"]]);
        assert_eq!(image.nodes, ["n0", "n1"]);
        assert_eq!(image.sequence, 7);
        image.apply(commit("m", &[], &[(2, "c")])).unwrap();
        let writes = image.writes().unwrap();
        assert_eq!(writes[0].chunk, Some(1));
        assert_eq!(
            writes[0].version.as_deref(),
            Some("o1"),
            "the orphan is replaced, not created"
        );
    }

    #[test]
    fn a_load_refuses_chunks_that_do_not_add_up() {
        let run = BTreeMap::from([
            (CHUNKS.to_owned(), "1".to_owned()),
            (SEQUENCE.to_owned(), "1".to_owned()),
        ]);
        let chunk = |first: &str, entries: &str| {
            BTreeMap::from([
                (FIRST.to_owned(), first.to_owned()),
                (ENTRIES.to_owned(), entries.to_owned()),
            ])
        };
        let load =
            |chunks, log_len| Image::load(&run, "r".into(), chunks, BTreeMap::new(), log_len, 10);
        assert!(load(vec![(chunk("1", "a"), "c".into())], 1).is_err(), "gap");
        assert!(
            load(vec![(chunk("0", "a"), "c".into())], 3).is_err(),
            "short"
        );
        assert!(load(vec![], 0).is_err(), "missing chunk");
        assert!(load(vec![(chunk("0", "a"), "c".into())], 1).is_ok());
    }

    #[test]
    fn a_run_config_map_past_the_limit_is_refused_before_it_is_sent() {
        let mut image = Image::empty(100);
        let big = "x".repeat(MAX_RUN_BYTES);
        image.apply(commit("m", &[(0, &big)], &[])).unwrap();
        let error = image.writes().unwrap_err();
        assert!(error.contains("more than one ConfigMap"), "{error}");
    }
}
