//! Steps under the simulator's injected faults: cut watches, API errors, an arbiter outage.

mod common;

use baton_engine::dag::{StepId, StepKind};
use baton_engine::step::{StepErrorKind, WriteOutcome};
use baton_sim::faults::{ErrorFault, Target};
use baton_sim::{FaultConfig, SimConfig};

#[tokio::test]
async fn wait_updated_resumes_watches_cut_after_every_two_events() {
    let faults = FaultConfig {
        watch_cut_after: Some(2),
        ..FaultConfig::default()
    };
    let mut h = common::start(
        SimConfig {
            faults,
            ..SimConfig::default()
        },
        "alpine:3.18.0",
        "",
    )
    .await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    h.wave(1, StepKind::Relabel).await;
    // Start waiting before the partition opens, so the wait has to follow the pods by watch.
    let wait = {
        let (steps, ctx) = (
            h.steps.clone(),
            h.ctx(StepId::in_wave(1, StepKind::WaitUpdated)),
        );
        tokio::spawn(async move { baton_engine::step::StepRunner::run(&steps, ctx).await })
    };
    h.wave(1, StepKind::SetPartition).await;
    let out = wait.await.unwrap().unwrap();
    assert_eq!(
        out.value["pods"],
        serde_json::json!(["sample-1", "sample-3"])
    );
    let report = h.sim.report();
    let watches = report["requests"]["watch pods"].as_u64().unwrap_or(0);
    assert!(
        watches >= 2,
        "a cut pod watch must have been resumed: {}",
        report["requests"]
    );
}

#[tokio::test]
async fn the_seed_rollout_completes_when_every_watch_is_cut_after_a_few_events() {
    let faults = FaultConfig {
        watch_cut_after: Some(3),
        ..FaultConfig::default()
    };
    let mut h = common::start(
        SimConfig {
            faults,
            ..SimConfig::default()
        },
        "alpine:3.18.0",
        "",
    )
    .await;
    assert_eq!(h.drive().await, vec![3, 1, 0]);
    let report = h.sim.report();
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    assert_eq!(report["workingMin"], 3, "{report}");
}

#[tokio::test]
async fn a_server_error_on_a_pod_patch_is_retryable_and_the_rerun_converges() {
    let patch_pods = ErrorFault {
        target: Target {
            verb: Some("patch".into()),
            resource: Some("pods".into()),
        },
        code: 500,
        rate: 1.0,
        count: Some(1),
        retry_after_seconds: None,
    };
    let faults = FaultConfig {
        errors: vec![patch_pods],
        ..FaultConfig::default()
    };
    let mut h = common::start(
        SimConfig {
            faults,
            ..SimConfig::default()
        },
        "alpine:3.18.0",
        "",
    )
    .await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    let relabel = StepId::in_wave(1, StepKind::Relabel);
    let err = h.run(relabel.clone()).await.unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Retryable, "{}", err.message);
    // Patches go out together: the one the server failed is the one the rerun sends. The
    // server answered it with a 500 Status, a refusal: the history says `failed`, not that
    // the answer never came (issue #12).
    assert_eq!(failed_writes(&h, &relabel), 1, "exactly one patch failed");
    assert_eq!(
        h.journal.unsettled().len(),
        0,
        "a refused write left unconfirmed"
    );
    let out = h.ok(relabel).await;
    let patched = out.value["patched"].as_array().unwrap().len();
    assert_eq!(patched, 1, "{}", out.value);
    for pod in ["sample-1", "sample-3"] {
        assert_eq!(
            h.label(pod, "baton.dev/selected").await.as_deref(),
            Some("true"),
            "{pod}"
        );
    }
}

fn failed_writes(h: &common::Harness, step: &StepId) -> usize {
    h.journal
        .intents
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _, o)| s == step && matches!(o, Some(WriteOutcome::Failed { .. })))
        .count()
}

#[tokio::test]
async fn an_arbiter_outage_fails_query_arbiter_as_retryable() {
    let mut h = common::seed("").await;
    h.prepare().await;
    h.sim.arbiter().outage(std::time::Duration::from_secs(60));
    let err = h
        .run(StepId::in_wave(1, StepKind::QueryArbiter))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Retryable, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    h.sim.arbiter().outage(std::time::Duration::ZERO);
    h.wave(1, StepKind::QueryArbiter).await;
}

/// `verify` judges the pods against the wave's baseline and does not ask the arbiter: an
/// outage after the wave does not hold the judgement up, and the handover, which needs the
/// arbiter now, waits for it as a retryable failure (issue 13: one request less between a
/// wave's last Ready pod and its handover).
#[tokio::test]
async fn an_arbiter_outage_after_a_wave_leaves_verify_to_judge_and_holds_the_handover() {
    let mut h = common::seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    h.sim.arbiter().outage(std::time::Duration::from_secs(60));
    let verdict = h.wave(1, StepKind::Verify).await;
    assert_eq!(verdict.value["safe"], true, "{:?}", verdict.value);
    let err = h
        .run(StepId::in_wave(1, StepKind::Handover))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Retryable, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);
    h.sim.arbiter().outage(std::time::Duration::ZERO);
    let out = h.wave(1, StepKind::Handover).await;
    assert_eq!(
        out.value["promote"],
        serde_json::json!(["sample-1", "sample-3"])
    );
    let members = h.steps.env().arbiter.members().await.unwrap().members;
    let working: Vec<&str> = members
        .iter()
        .filter(|(_, r)| **r == baton_engine::snapshot::Role::Working)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(working, ["sample-1", "sample-3", "sample-4"]);
}
