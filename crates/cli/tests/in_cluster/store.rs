//! The API-server store (`baton_controller::store`) through a real client: ConfigMaps on
//! the simulator and on kube-apiserver.

use baton_controller::store::{KubeStore, Location, image};
use baton_engine::dag::{NodeSpec, StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::store::{
    Commit, Durability, LogEntry, LogKind, NodeRecord, NodeState, Phase, RunMeta, RunRecord,
    RunState, RunStore, StoreError,
};
use baton_testbed::backend::BackendKind;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use super::harness::{self, Bed};

super::case!(
    the_store_keeps_a_record_and_fences_a_second_writer,
    sim_the_store_keeps_a_record_and_fences_a_second_writer,
    real_the_store_keeps_a_record_and_fences_a_second_writer
);

/// Where plan `plan`'s record lives on this bed, with `budget` bytes per log chunk.
pub async fn location(bed: &Bed, plan: &str, budget: usize) -> Location {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(bed.backend.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Location {
        config,
        namespace: bed.backend.namespace().to_owned(),
        plan: plan.to_owned(),
        owner: None,
        chunk_budget: budget,
    }
}

fn at() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Built from JSON: the fields a test does not care about take their defaults.
fn meta(log_len: u64, node_count: u32) -> RunMeta {
    serde_json::from_value(serde_json::json!({
        "runId": "r",
        "plan": {"file": "p.yaml", "text": "x", "hash": "h"},
        "target": "default/sample",
        "createdAt": at(),
        "updatedAt": at(),
        "state": RunState::Running,
        "phase": Phase::Prologue,
        "logLen": log_len,
        "nodeCount": node_count,
    }))
    .unwrap()
}

fn entry(seq: u64) -> LogEntry {
    LogEntry {
        seq,
        at: at(),
        entry: LogKind::Event {
            event: RunEvent::StepStarted {
                // Long enough that a few entries fill a small chunk.
                step: format!("wave-{seq}/wait-updated-{}", "x".repeat(200)),
                attempt: 1,
            },
        },
    }
}

fn node(state: NodeState) -> NodeRecord {
    NodeRecord {
        state,
        attempts: 1,
        ..NodeRecord::pending(NodeSpec {
            id: StepId::run_level(StepKind::Protect),
            deps: vec![],
        })
    }
}

fn commit<'a>(
    durability: Durability,
    meta: &'a RunMeta,
    nodes: Vec<(u32, &'a NodeRecord)>,
    log: &'a [LogEntry],
) -> Commit<'a> {
    Commit {
        label: "t",
        durability,
        meta,
        nodes,
        log,
    }
}

/// The blocking store, off the test's runtime (the simulator may serve from it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn the_store_keeps_a_record_and_fences_a_second_writer(kind: BackendKind) {
    let Some(bed) = harness::bed(kind, harness::seed()).await else {
        return;
    };
    let loc = location(&bed, "store", 1024).await;

    // Lazy commits then a flushing one, spanning several log chunks.
    let log: Vec<LogEntry> = (0..24).map(entry).collect();
    let running = node(NodeState::Running);
    let done = node(NodeState::Succeeded);
    let first = loc.clone();
    let (log2, running2, done2) = (log.clone(), running.clone(), done.clone());
    blocking(move || {
        let store = KubeStore::open(first).unwrap();
        assert_eq!(store.load().unwrap(), None, "a new run has no record");
        let m = meta(10, 1);
        store
            .commit(&commit(
                Durability::Lazy,
                &m,
                vec![(0, &running2)],
                &log2[..10],
            ))
            .unwrap();
        let m = meta(24, 1);
        store
            .commit(&commit(
                Durability::Flush,
                &m,
                vec![(0, &done2)],
                &log2[10..],
            ))
            .unwrap();
        let checkpoint = store.checkpoint().lock().unwrap().clone();
        assert_eq!(checkpoint.config_map, "store.baton-run");
        assert_eq!(checkpoint.sequence, 2);
    })
    .await;
    let want = RunRecord {
        meta: meta(24, 1),
        nodes: vec![done.clone()],
        log: log.clone(),
    };
    let again = loc.clone();
    let loaded = blocking(move || KubeStore::open(again).unwrap().load().unwrap()).await;
    assert_eq!(loaded.as_ref(), Some(&want), "the record reads back equal");
    let maps: Api<ConfigMap> = Api::namespaced(bed.backend.client(), bed.backend.namespace());
    let listed = maps
        .list(&ListParams::default().labels("baton.dev/upgradeplan=store"))
        .await
        .unwrap();
    let chunks = listed
        .items
        .iter()
        .filter(|m| {
            m.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("store.baton-log-"))
        })
        .count();
    assert!(chunks >= 3, "the log spans several ConfigMaps: {chunks}");
    let run = maps.get(&image::run_name("store")).await.unwrap();
    assert_eq!(
        run.data.unwrap()[image::CHUNKS],
        chunks.to_string(),
        "the run ConfigMap references every chunk"
    );

    // Two writers that both loaded the record: the second commit to land wins, the other
    // is refused and refuses everything after.
    let (a_loc, b_loc) = (loc.clone(), loc.clone());
    let fenced = blocking(move || {
        let a = KubeStore::open(a_loc).unwrap();
        let b = KubeStore::open(b_loc).unwrap();
        a.load().unwrap();
        b.load().unwrap();
        let more = [entry(24)];
        let m = meta(25, 1);
        b.commit(&commit(Durability::Flush, &m, vec![], &more))
            .unwrap();
        let first = a.commit(&commit(Durability::Flush, &m, vec![], &more));
        let after = a.commit(&commit(Durability::Lazy, &meta(25, 1), vec![], &[]));
        (first, after)
    })
    .await;
    assert!(
        matches!(fenced.0, Err(StoreError::Conflict { .. })),
        "{:?}",
        fenced.0
    );
    assert!(
        matches!(fenced.1, Err(StoreError::Conflict { .. })),
        "{:?}",
        fenced.1
    );
    let last = loc.clone();
    let loaded = blocking(move || KubeStore::open(last).unwrap().load().unwrap().unwrap()).await;
    assert_eq!(loaded.log.len(), 25, "the winner's commit stands");
    assert_eq!(loaded.log[24], entry(24));

    // A writer that died between its log chunks and its run ConfigMap left a chunk no
    // commit references: the record reads without it, and the next commit takes it over.
    let run = maps.get(&image::run_name("store")).await.unwrap();
    let count: usize = run.data.unwrap()[image::CHUNKS].parse().unwrap();
    let orphan = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(image::chunk_name("store", count)),
            ..Default::default()
        },
        data: Some(
            [
                (image::FIRST.to_owned(), "25".to_owned()),
                (image::ENTRIES.to_owned(), "{\"lost\": true}".to_owned()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    maps.create(&Default::default(), &orphan).await.unwrap();
    let resumed = loc.clone();
    let loaded = blocking(move || {
        let store = KubeStore::open(resumed).unwrap();
        let before = store.load().unwrap().unwrap();
        let more: Vec<LogEntry> = (25..30).map(entry).collect();
        let m = meta(30, 1);
        store
            .commit(&commit(Durability::Flush, &m, vec![], &more))
            .unwrap();
        (before, store.load().unwrap().unwrap())
    })
    .await;
    assert_eq!(
        loaded.0.log.len(),
        25,
        "the orphan is not part of the record"
    );
    assert_eq!(loaded.1.log.len(), 30);
    assert_eq!(loaded.1.log[29], entry(29));
}
