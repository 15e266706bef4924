//! A [`RunStore`] kept by the API server: the record of an UpgradePlan's run lives in
//! companion ConfigMaps in the plan's namespace (layout in [`image`]), owned by the plan,
//! each written with a `resourceVersion` precondition. A `409` means another writer: the
//! store refuses every later write ([`StoreError::Conflict`]) and the controller lets go
//! of the run.
//!
//! # Sync trait, async client
//! The executor calls [`RunStore::commit`] synchronously, from async tasks, while it holds
//! the run's record lock. Blocking on a kube request from there is unsound on a shared
//! runtime: `block_in_place` plus `Handle::block_on` waits for I/O that only the runtime's
//! workers drive, and every worker may be blocked on that same record lock (steps report
//! progress through it), so nobody would poll the response. The store therefore owns a
//! thread with its own single-threaded runtime and its own client: callers only encode
//! the commit and hand it over a channel, so the wait never depends on the caller's runtime.
//!
//! # Durability
//! The channel keeps commits in order. A [`Durability::Lazy`] commit returns at once; the
//! writer folds every commit waiting in the channel into one image and sends it with the
//! next round of writes. A [`Durability::Flush`] commit returns only once the server
//! accepted the run ConfigMap that holds it (and with it everything before it): the write-
//! ahead rule of SPEC §6 (an intent is stored before its side effect) holds. A failed write
//! breaks the store: the failure is returned by the commit that waits for it or by the next
//! commit, and nothing is written afterwards.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_engine::store::records::{self, LogEntry, NodeRecord, RunMeta, RunRecord};
use baton_engine::store::{Commit, Durability, RunStore, StoreError};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};

pub mod image;

use image::{Encoded, Image, Write};

/// Where one run's record lives.
#[derive(Clone)]
pub struct Location {
    /// How the writer thread builds its own client.
    pub config: kube::Config,
    pub namespace: String,
    /// The UpgradePlan's name: the ConfigMaps are named after it.
    pub plan: String,
    /// The UpgradePlan, so the ConfigMaps go when it goes.
    pub owner: Option<OwnerReference>,
    /// Bytes per log chunk ([`image::DEFAULT_CHUNK_BUDGET`]).
    pub chunk_budget: usize,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("namespace", &self.namespace)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Location {
    /// `namespace/<plan>.baton-run`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.namespace, image::run_name(&self.plan))
    }
}

/// The last commit the server accepted, for the UpgradePlan's `status.checkpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub config_map: String,
    pub chunks: usize,
    pub sequence: u64,
}

/// A shared view of the latest [`Checkpoint`].
pub type CheckpointCell = Arc<Mutex<Checkpoint>>;

/// Why the store stopped writing: kept so every later call says so.
#[derive(Debug, Clone)]
struct Broken {
    conflict: bool,
    message: String,
}

impl Broken {
    fn error(&self, location: &str) -> StoreError {
        if self.conflict {
            StoreError::Conflict {
                location: location.to_owned(),
            }
        } else {
            StoreError::Remote {
                location: location.to_owned(),
                what: "write (an earlier write failed)".to_owned(),
                source: self.message.clone().into(),
            }
        }
    }
}

type Reply<T> = mpsc::SyncSender<Result<T, StoreError>>;

/// How long dropping a store waits for its writer to send what it was handed. A run's last
/// checkpoints are lazy (its end among them); like sled flushing on close, they should be
/// on the server when the run's process reads the record back or lets another leader go
/// on. Bounded, so an unreachable API server cannot hold the caller: what is lost then is
/// only transitions of idempotent steps (SPEC §6).
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);

enum Op {
    Load(Reply<Option<RunRecord>>),
    Commit(Encoded, Option<Reply<()>>),
}

/// The API-server store of one run. Dropping it lets the writer finish what was handed to
/// it (waiting for that, up to [`DRAIN_WAIT`]), then stop.
pub struct KubeStore {
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    /// Disconnected when the writer thread has ended (nothing is ever sent on it).
    ended: Mutex<mpsc::Receiver<()>>,
    broken: Arc<Mutex<Option<Broken>>>,
    location: String,
    checkpoint: CheckpointCell,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl KubeStore {
    /// Starts the writer thread for `location`. Nothing is read until [`RunStore::load`].
    ///
    /// # Errors
    /// [`StoreError::Remote`] when the thread, its runtime or its client cannot start.
    pub fn open(location: Location) -> Result<KubeStore, StoreError> {
        Self::open_with(location, CheckpointCell::default())
    }

    /// [`KubeStore::open`], publishing each accepted commit into `checkpoint`.
    ///
    /// # Errors
    /// As [`KubeStore::open`].
    pub fn open_with(
        location: Location,
        checkpoint: CheckpointCell,
    ) -> Result<KubeStore, StoreError> {
        let described = location.describe();
        let remote =
            |what: &str, source: Box<dyn std::error::Error + Send + Sync>| StoreError::Remote {
                location: described.clone(),
                what: what.to_owned(),
                source,
            };
        let (sender, receiver) = mpsc::channel();
        let broken = Arc::new(Mutex::new(None));
        // The runtime and the client are made on the writer's thread: the caller may be
        // inside a runtime, where another one cannot be entered.
        let (ready, started) = mpsc::sync_channel(1);
        let (alive, ended) = mpsc::channel::<()>();
        let (shared, cell) = (broken.clone(), checkpoint.clone());
        let thread_name = format!("store-{}", location.plan);
        let described_here = described.clone();
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let _alive = alive;
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(("start the writer of", e.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = match kube::Client::try_from(location.config.clone()) {
                        Ok(client) => client,
                        Err(e) => {
                            let _ = ready.send(Err(("connect to", e.to_string())));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let mut writer = Writer {
                        api: Api::namespaced(client, &location.namespace),
                        image: None,
                        broken: shared,
                        checkpoint: cell,
                        location,
                        described: described_here,
                    };
                    writer.serve(receiver).await;
                });
            })
            .map_err(|e| remote("start the writer of", e.into()))?;
        match started.recv() {
            Ok(Ok(())) => {}
            Ok(Err((what, why))) => return Err(remote(what, why.into())),
            Err(_) => {
                return Err(remote(
                    "start the writer of",
                    "the writer thread ended".into(),
                ));
            }
        }
        Ok(KubeStore {
            ops: Mutex::new(Some(sender)),
            ended: Mutex::new(ended),
            broken,
            location: described,
            checkpoint,
        })
    }

    /// The latest accepted commit.
    pub fn checkpoint(&self) -> CheckpointCell {
        self.checkpoint.clone()
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.as_ref()
            .and_then(|s| s.send(op).ok())
            .ok_or_else(|| self.gone())
    }

    fn gone(&self) -> StoreError {
        StoreError::Remote {
            location: self.location.clone(),
            what: "reach the writer of".to_owned(),
            source: "the writer thread stopped".into(),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        match &*self.broken.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(broken) => Err(broken.error(&self.location)),
            None => Ok(()),
        }
    }
}

impl RunStore for KubeStore {
    fn load(&self) -> Result<Option<RunRecord>, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Op::Load(reply))?;
        answer.recv().map_err(|_| self.gone())?
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        self.check()?;
        let encoded = encode(commit)?;
        match commit.durability {
            Durability::Lazy => self.send(Op::Commit(encoded, None)),
            Durability::Flush => {
                let (reply, answer) = mpsc::sync_channel(1);
                self.send(Op::Commit(encoded, Some(reply)))?;
                answer.recv().map_err(|_| self.gone())?
            }
        }
    }
}

impl Drop for KubeStore {
    fn drop(&mut self) {
        // Closing the channel: the writer sends what it holds, then its thread ends.
        drop(self.ops.lock().unwrap_or_else(|p| p.into_inner()).take());
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(mpsc::RecvTimeoutError::Timeout) = ended.recv_timeout(DRAIN_WAIT) {
            tracing::warn!(location = %self.location, "the store's writer did not finish within 5 s; its last lazy checkpoints may be lost (steps are idempotent)");
        }
    }
}

fn encode(commit: &Commit<'_>) -> Result<Encoded, StoreError> {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap_or_default();
    Ok(Encoded {
        meta: text(records::encode(commit.meta, "meta")?),
        nodes: commit
            .nodes
            .iter()
            .map(|(i, n)| Ok((*i as usize, text(records::encode(*n, "node")?))))
            .collect::<Result<_, StoreError>>()?,
        log: commit
            .log
            .iter()
            .map(|e| Ok((e.seq, text(records::encode(e, "log")?))))
            .collect::<Result<_, StoreError>>()?,
    })
}

/// How often a write that failed transiently is sent again, and how long apart.
const WRITE_TRIES: u32 = 5;
const WRITE_PAUSE: Duration = Duration::from_millis(200);

struct Writer {
    api: Api<ConfigMap>,
    /// `None` until the server was read.
    image: Option<Image>,
    broken: Arc<Mutex<Option<Broken>>>,
    checkpoint: CheckpointCell,
    location: Location,
    described: String,
}

impl Writer {
    async fn serve(&mut self, ops: mpsc::Receiver<Op>) {
        let mut held: Option<Op> = None;
        loop {
            let op = match held.take() {
                Some(op) => op,
                None => match ops.recv() {
                    Ok(op) => op,
                    Err(_) => return,
                },
            };
            match op {
                Op::Load(reply) => {
                    let loaded = self.load().await;
                    let _ = reply.send(loaded);
                }
                Op::Commit(first, reply) => {
                    // Fold every commit already waiting into this round, up to a load.
                    let mut batch = vec![first];
                    let mut replies: Vec<Reply<()>> = reply.into_iter().collect();
                    while let Ok(next) = ops.try_recv() {
                        match next {
                            Op::Commit(c, r) => {
                                batch.push(c);
                                replies.extend(r);
                            }
                            load @ Op::Load(_) => {
                                held = Some(load);
                                break;
                            }
                        }
                    }
                    let result = self.commit(batch).await;
                    for reply in replies {
                        let _ = reply.send(match &result {
                            Ok(()) => Ok(()),
                            Err(broken) => Err(broken.error(&self.described)),
                        });
                    }
                }
            }
        }
    }

    fn is_broken(&self) -> Option<Broken> {
        self.broken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remote(
        &self,
        what: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Remote {
            location: self.described.clone(),
            what: what.to_owned(),
            source: source.into(),
        }
    }

    async fn commit(&mut self, batch: Vec<Encoded>) -> Result<(), Broken> {
        if let Some(broken) = self.is_broken() {
            return Err(broken);
        }
        let result = self.commit_unchecked(batch).await;
        if let Err(broken) = &result {
            tracing::error!(store = %self.described, error = %broken.message, "the run's store stops writing");
            *self.broken.lock().unwrap_or_else(|p| p.into_inner()) = Some(broken.clone());
        }
        result
    }

    async fn commit_unchecked(&mut self, batch: Vec<Encoded>) -> Result<(), Broken> {
        let failed = |message: String| Broken {
            conflict: false,
            message,
        };
        if self.image.is_none() {
            self.load().await.map_err(|e| Broken {
                conflict: matches!(e, StoreError::Conflict { .. }),
                message: baton_steps::env::chain(&e),
            })?;
        }
        let image = self
            .image
            .as_mut()
            .ok_or_else(|| failed("no image".into()))?;
        for commit in batch {
            image.apply(commit).map_err(failed)?;
        }
        let writes = image.writes().map_err(failed)?;
        for write in writes {
            let version = self.send(&write).await?;
            if let Some(image) = self.image.as_mut() {
                image.stored(write.chunk, version);
            }
        }
        if let Some(image) = &self.image {
            *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Checkpoint {
                config_map: image::run_name(&self.location.plan),
                chunks: image.chunks.len(),
                sequence: image.sequence,
            };
        }
        Ok(())
    }

    fn name_of(&self, chunk: Option<usize>) -> String {
        match chunk {
            Some(n) => image::chunk_name(&self.location.plan, n),
            None => image::run_name(&self.location.plan),
        }
    }

    /// Sends one write, again after a transient failure. A write whose answer was lost
    /// may have landed: a conflict on a later try is checked against what the server holds.
    async fn send(&self, write: &Write) -> Result<String, Broken> {
        let name = self.name_of(write.chunk);
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.location.namespace.clone()),
                resource_version: write.version.clone(),
                owner_references: self.location.owner.clone().map(|o| vec![o]),
                labels: Some(BTreeMap::from([(
                    "baton.dev/upgradeplan".to_owned(),
                    self.location.plan.clone(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(write.data.clone()),
            ..ConfigMap::default()
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = match &write.version {
                Some(_) => self.api.replace(&name, &PostParams::default(), &map).await,
                None => self.api.create(&PostParams::default(), &map).await,
            };
            match sent {
                Ok(stored) => return Ok(stored.metadata.resource_version.unwrap_or_default()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    if tries > 1
                        && let Ok(current) = self.api.get(&name).await
                        && current.data.as_ref() == Some(&write.data)
                    {
                        return Ok(current.metadata.resource_version.unwrap_or_default());
                    }
                    return Err(Broken {
                        conflict: true,
                        message: format!("{name}: another writer changed it ({})", s.message),
                    });
                }
                Err(e) if tries < WRITE_TRIES && baton_steps::k8s::kube_error_retryable(&e) => {
                    tracing::warn!(error = %e, %name, tries, "writing the run's record failed; retrying");
                    tokio::time::sleep(WRITE_PAUSE * tries).await;
                }
                Err(e) => {
                    return Err(Broken {
                        conflict: false,
                        message: format!("write {name}: {}", baton_steps::env::chain(&e)),
                    });
                }
            }
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ConfigMap>, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.api.get_opt(name).await {
                Ok(found) => return Ok(found),
                Err(e) if tries < WRITE_TRIES && baton_steps::k8s::kube_error_retryable(&e) => {
                    tokio::time::sleep(WRITE_PAUSE * tries).await;
                }
                Err(e) => return Err(self.remote(&format!("read {name} of"), e)),
            }
        }
    }

    /// Reads the record from the server and makes it this writer's image.
    async fn load(&mut self) -> Result<Option<RunRecord>, StoreError> {
        let budget = self.location.chunk_budget;
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.described.clone().into(),
            detail,
        };
        let run_name = image::run_name(&self.location.plan);
        let Some(run) = self.get(&run_name).await? else {
            let orphans = self.orphans(0).await?;
            let mut empty = Image::empty(budget);
            empty.orphans = orphans;
            self.image = Some(empty);
            return Ok(None);
        };
        let version = run.metadata.resource_version.clone().unwrap_or_default();
        let data = run.data.unwrap_or_default();
        let meta_text = data
            .get(image::META)
            .ok_or_else(|| corrupt("the run ConfigMap has no meta".into()))?;
        let meta: RunMeta = records::decode(meta_text.as_bytes(), "the run record")
            .map_err(|e| corrupt(e.to_string()))?;
        let count = image::referenced_chunks(&data).map_err(corrupt)?;
        let mut chunks = Vec::with_capacity(count);
        for n in 0..count {
            let name = image::chunk_name(&self.location.plan, n);
            let chunk = self
                .get(&name)
                .await?
                .ok_or_else(|| corrupt(format!("log chunk {name} is missing")))?;
            chunks.push((
                chunk.data.unwrap_or_default(),
                chunk.metadata.resource_version.unwrap_or_default(),
            ));
        }
        let orphans = self.orphans(count).await?;
        // An orphan read while another writer committed it would be taken for garbage:
        // the run ConfigMap must not have moved while the chunks were read.
        let again = self.get(&run_name).await?;
        if again.and_then(|r| r.metadata.resource_version) != Some(version.clone()) {
            return Err(StoreError::Conflict {
                location: self.described.clone(),
            });
        }
        let image =
            Image::load(&data, version, chunks, orphans, meta.log_len, budget).map_err(corrupt)?;
        let nodes = image
            .nodes
            .iter()
            .map(|n| records::decode::<NodeRecord>(n.as_bytes(), "a node"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let log = image
            .chunks
            .iter()
            .flat_map(|c| c.lines.iter())
            .map(|l| records::decode::<LogEntry>(l.as_bytes(), "a log entry"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Checkpoint {
            config_map: run_name,
            chunks: image.chunks.len(),
            sequence: image.sequence,
        };
        self.image = Some(image);
        Ok(Some(RunRecord { meta, nodes, log }))
    }

    /// Chunk ConfigMaps from index `from` on that exist without being referenced.
    async fn orphans(&self, from: usize) -> Result<BTreeMap<usize, String>, StoreError> {
        let mut out = BTreeMap::new();
        for n in from.. {
            match self.get(&image::chunk_name(&self.location.plan, n)).await? {
                Some(orphan) => {
                    out.insert(n, orphan.metadata.resource_version.unwrap_or_default());
                }
                None => break,
            }
        }
        Ok(out)
    }
}

/// Opens the API-server store of one plan for the executor (which names the run by a
/// directory on this machine: the store ignores it, the plan is fixed).
pub struct KubeStores {
    pub location: Location,
    pub checkpoint: CheckpointCell,
}

impl baton_engine::executor::StoreOpener for KubeStores {
    fn open(&self, _dir: &std::path::Path) -> Result<Box<dyn RunStore>, StoreError> {
        let store = KubeStore::open_with(self.location.clone(), self.checkpoint.clone())?;
        Ok(Box::new(store))
    }
}
