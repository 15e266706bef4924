//! The benchmark's shape without the engine: the seed set at a thousand replicas (in-place
//! updates, priority by role, pods Ready at once, `maxUnavailable` raised to the replica count)
//! gets a new image and then has its partition lowered by a hundred each time the previous
//! wave is Ready. This is the simulator's share of a 1000x100 rollout. No timing assertion:
//! the figures are printed for the record (run with `--release --test it -- wave_scale --nocapture`).

use std::time::{Duration, Instant};

use baton_sim::{Kind, Sim, SimConfig};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

const REPLICAS: u32 = 1000;
const WAVE: u32 = 100;
const NS: &str = "default";
const SET: &str = "sample";

/// Waits, looking only at the set's status on set changes, until `f` holds for it.
async fn wait_for_set(sim: &Sim, what: &str, mut f: impl FnMut(&Value) -> bool) {
    let mut rx = sim.store().subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let set = sim.store().get_shared(Kind::StatefulSet, NS, SET).unwrap();
        if set["status"]["observedGeneration"] == set["metadata"]["generation"] && f(&set["status"])
        {
            return;
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => panic!("gave up waiting for {what}: {}", set["status"]),
                Ok(Ok(c)) if c.kind == Kind::StatefulSet => break,
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => panic!("store closed"),
            }
        }
    }
}

fn set_spec(sim: &Sim, f: impl FnOnce(&mut Value)) {
    sim.store()
        .modify(Kind::StatefulSet, NS, SET, |s| {
            f(s);
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_set_at_a_thousand_replicas_rolls_in_waves_of_a_hundred() {
    let started = Instant::now();
    let sim = Sim::new(SimConfig {
        replicas: REPLICAS,
        working: vec![],
        ..SimConfig::default()
    });
    set_spec(&sim, |s| {
        s["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = json!(REPLICAS);
    });
    tokio::time::timeout(Duration::from_secs(300), sim.settled())
        .await
        .expect("the seed settles");
    let seeded = started.elapsed();

    set_spec(&sim, |s| {
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine:3.18.0");
    });
    let rv_before = sim.store().resource_version();
    let rolled = Instant::now();
    let mut waves = Vec::new();
    for wave in 1..=REPLICAS / WAVE {
        let partition = REPLICAS - wave * WAVE;
        let opened = Instant::now();
        set_spec(&sim, |s| {
            s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(partition);
        });
        let want = wave * WAVE;
        wait_for_set(&sim, &format!("wave {wave} ready"), |st| {
            st["updatedReadyReplicas"] == want && st["readyReplicas"] == REPLICAS
        })
        .await;
        waves.push(opened.elapsed());
    }
    let elapsed = rolled.elapsed();
    let writes = sim.store().resource_version() - rv_before;

    let report = sim.report();
    let updates = report["updates"].as_array().unwrap();
    assert_eq!(updates.len(), REPLICAS as usize);
    assert!(report["violations"].as_array().unwrap().is_empty());
    let set = sim.store().get_shared(Kind::StatefulSet, NS, SET).unwrap();
    assert_eq!(set["status"]["updatedReadyReplicas"], REPLICAS);
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let per_wave: Vec<String> = waves.iter().map(|d| format!("{:.1}", ms(d))).collect();
    let slowest = waves.iter().max().unwrap();
    eprintln!(
        "{REPLICAS} replicas, waves of {WAVE}: seeded and settled in {seeded:?}; \
         rolled in {elapsed:?} with {writes} writes; partition write to wave Ready (ms): [{}]; \
         slowest {:.1} ms",
        per_wave.join(", "),
        ms(slowest)
    );
}
