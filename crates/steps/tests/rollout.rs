//! The seed rollout end to end, step by step, against the simulator.

mod common;

use baton_engine::dag::{StepId, StepKind};
use baton_engine::event::RunEvent;

#[tokio::test]
async fn the_seed_rollout_updates_every_pod_in_three_waves_without_touching_a_working_pod() {
    let mut h = common::seed("").await;
    let partitions = h.drive().await;
    assert_eq!(partitions, vec![3, 1, 0]);
    for i in 0..5 {
        let pod = format!("sample-{i}");
        assert_eq!(h.image(&pod).await, "alpine:3.18.0", "{pod}");
        assert_eq!(h.label(&pod, "baton.dev/selected").await, None, "{pod}");
    }
    assert_eq!(h.sts().await.partition(), Some(0));
    let report = h.sim.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["workingMin"], 3, "{report}");
    let handovers: Vec<(Vec<String>, Vec<String>)> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::Handover {
                promote, demote, ..
            } => Some((promote, demote)),
            _ => None,
        })
        .collect();
    assert_eq!(
        handovers,
        vec![
            (
                common::names(&["sample-1", "sample-3"]),
                common::names(&["sample-0", "sample-2"])
            ),
            (common::names(&["sample-0"]), common::names(&["sample-4"])),
        ]
    );
    // Every wave's writes were audited; the last wave needs no handover.
    assert!(
        !h.journal
            .writes_by(&StepId::in_wave(3, StepKind::SetPartition))
            .is_empty()
    );
    assert_eq!(
        h.journal.unsettled(),
        vec![],
        "every intended write is settled once the cluster answered"
    );
    assert!(h.outputs[&StepId::in_wave(3, StepKind::Handover)]["skipped"].is_string());
    assert!(
        h.outputs
            .contains_key(&StepId::in_wave(4, StepKind::Select)),
        "wave 4's select finishes the run"
    );
}

#[tokio::test]
async fn the_seed_rollout_leaves_kubernetes_events_on_the_statefulset() {
    let mut h = common::seed("").await;
    h.drive().await;
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(h.client.clone(), "default");
    let list = events.list(&Default::default()).await.unwrap();
    let reasons: Vec<String> = list
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("sample"))
        .filter_map(|e| e.reason.clone())
        .collect();
    let count = |r: &str| reasons.iter().filter(|x| *x == r).count();
    assert_eq!(count("BatonWaveStarted"), 3, "{reasons:?}");
    assert_eq!(count("BatonHandover"), 2, "{reasons:?}");
    assert_eq!(count("BatonFinished"), 1, "{reasons:?}");
}

#[tokio::test]
async fn the_seed_rollout_succeeds_through_the_real_executor() {
    let h = common::seed("").await;
    let dir = tempfile::tempdir().unwrap();
    let opts = baton_engine::executor::RunOptions {
        state_dir: dir.path().to_owned(),
        accept_risk: false,
        replan: false,
        operator: None,
    };
    let (events, _rx) = tokio::sync::broadcast::channel(4096);
    let outcome = baton_engine::executor::start(
        &h.plan,
        std::sync::Arc::new(h.steps.clone()),
        &opts,
        events,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome, baton_engine::executor::Outcome::Succeeded);
    for i in 0..5 {
        assert_eq!(h.image(&format!("sample-{i}")).await, "alpine:3.18.0");
    }
    let report = h.sim.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["workingMin"], 3, "{report}");
    assert_eq!(h.sts().await.partition(), Some(0));
}

#[tokio::test]
async fn max_per_wave_one_updates_one_pod_per_wave_and_never_drops_a_working_pod() {
    let mut h = common::seed("  waves:\n    maxPerWave: 1\n").await;
    let partitions = h.drive().await;
    assert_eq!(partitions, vec![4, 3, 2, 1, 0]);
    let report = h.sim.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["workingMin"], 3, "{report}");
    for i in 0..5 {
        assert_eq!(h.image(&format!("sample-{i}")).await, "alpine:3.18.0");
    }
}

#[tokio::test]
async fn a_set_with_a_single_idle_pod_rolls_through_it_one_wave_at_a_time() {
    let cfg = baton_sim::SimConfig {
        working: vec![0, 1, 2, 3],
        ..baton_sim::SimConfig::default()
    };
    let mut h = common::start(cfg, "alpine:3.18.0", "").await;
    let partitions = h.drive().await;
    assert_eq!(partitions, vec![4, 3, 2, 1, 0]);
    let report = h.sim.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["workingMin"], 4, "{report}");
}

/// A window closed when the wave is due makes it wait, saying for which window and how long,
/// and the wave goes once the (injected, manual) clock reaches the window; then the rollout
/// runs as always.
#[tokio::test]
async fn a_wave_waits_for_its_window_and_goes_when_it_opens() {
    use std::sync::Arc;
    use std::time::Duration;

    use baton_engine::clock::ManualClock;
    use baton_steps::gates::SafetyOptions;

    let mut h = common::seed(
        "  schedule:\n    windows:\n      - {days: [Mon], start: \"01:00\", end: \"05:00\", timeZone: Europe/Berlin}\n",
    )
    .await;
    // Sunday 2026-12-06 22:48 in Berlin: Monday 01:00 is 2h12m away.
    let clock = Arc::new(ManualClock::new("2026-12-06T21:48:00Z".parse().unwrap()));
    h.steps = baton_steps::RolloutSteps::connect(&h.plan, h.client.clone())
        .await
        .unwrap()
        .with_safety(SafetyOptions {
            clock: clock.clone(),
            ..Default::default()
        });
    h.prepare().await;
    let steps = h.steps.clone();
    let ctx = h.ctx(StepId::in_wave(1, StepKind::Window));
    let waiting = tokio::spawn(async move {
        use baton_engine::step::StepRunner as _;
        steps.run(ctx).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the wave must wait outside its window"
    );
    let told: Vec<String> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::Waiting { step, what } if step == "wave-1/window" => Some(what),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["window Mon 01:00 Europe/Berlin (in 2h12m)"]);
    // Nothing moved while waiting.
    assert_eq!(h.sts().await.partition(), Some(5));

    clock.advance(Duration::from_secs(2 * 3600 + 12 * 60));
    let out = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wave goes once the window opens")
        .unwrap()
        .unwrap();
    assert_eq!(out.value["opened"], "2026-12-07T00:00:00Z");
    assert_eq!(out.value["waited"], true);
    assert!(h.update_wave(1).await);
    assert_eq!(
        h.outputs[&StepId::in_wave(1, StepKind::SetPartition)]["partition"],
        3
    );
}
