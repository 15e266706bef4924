//! Each step against the simulator: a real API server, the Kruise controller, a kubelet
//! and an arbiter, through the real `StepRunner`.

mod common;

use std::time::Duration;

use baton_engine::dag::{StepId, StepKind};
use baton_engine::event::RunEvent;
use baton_engine::snapshot::Role;
use baton_engine::step::StepErrorKind;
use baton_sim::SimConfig;
use baton_sim::arbiter::{ArbiterConfig, Mode};
use baton_steps::k8s::{REVISION_LABEL, SELECTED_LABEL};
use baton_steps::view::Kind;
use common::{Harness, names, seed, start};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::wait::await_condition;
use serde_json::json;

fn set_partition_of(h: &Harness, wave: u32) -> u64 {
    h.outputs[&StepId::in_wave(wave, StepKind::SetPartition)]["partition"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn protect_sets_the_partition_to_the_replica_count_and_rewrites_nothing_when_run_again() {
    let mut h = seed("").await;
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}))
        .await;
    h.run_level(StepKind::Protect).await;
    assert_eq!(h.sts().await.partition(), Some(5));
    let protect = StepId::run_level(StepKind::Protect);
    let writes = h.journal.writes_by(&protect);
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].before.clone(), writes[0].after.clone()),
        (json!(2), json!(5))
    );
    h.run_level(StepKind::Protect).await;
    assert_eq!(
        h.journal.writes_by(&protect).len(),
        1,
        "a second protect must not write"
    );
}

#[tokio::test]
async fn apply_update_patches_the_image_once_and_records_the_update_revision() {
    let mut h = seed("").await;
    h.run_level(StepKind::Protect).await;
    let before = h.sts().await.status.unwrap().update_revision;
    let out = h.run_level(StepKind::ApplyUpdate).await;
    let sts = h.sts().await;
    assert_eq!(
        sts.spec.template["spec"]["containers"][0]["image"],
        "alpine:3.18.0"
    );
    let rev = sts.status.unwrap().update_revision;
    assert_ne!(rev, before);
    assert_eq!(out.value["updateRevision"], json!(rev));
    assert_eq!(out.value["changed"], json!(true));
    let again = h.run_level(StepKind::ApplyUpdate).await;
    assert_eq!(again.value["changed"], json!(false));
    assert_eq!(
        h.journal
            .writes_by(&StepId::run_level(StepKind::ApplyUpdate))
            .len(),
        1
    );
    // Partition = |P| held every pod at the old image.
    for i in 0..5 {
        assert_eq!(h.image(&format!("sample-{i}")).await, "alpine:3.18.2");
    }
}

#[tokio::test]
async fn relabel_patches_only_the_pods_that_differ() {
    let mut h = seed("").await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    let out = h.wave(1, StepKind::Relabel).await;
    assert_eq!(out.value["patched"], json!(["sample-1", "sample-3"]));
    for (pod, selected) in [
        ("sample-0", None),
        ("sample-1", Some("true")),
        ("sample-3", Some("true")),
    ] {
        assert_eq!(
            h.label(pod, SELECTED_LABEL).await.as_deref(),
            selected,
            "{pod}"
        );
    }
    // Someone flips a role label: only that pod is patched back.
    let patch = json!({"metadata": {"labels": {"working": "false"}}});
    h.outside_patch_pod("sample-2", patch).await;
    h.outputs.remove(&StepId::in_wave(1, StepKind::Relabel));
    let again = h.wave(1, StepKind::Relabel).await;
    assert_eq!(again.value["patched"], json!(["sample-2"]));
    assert_eq!(
        h.label("sample-2", "working").await.as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn set_partition_ranks_the_wave_first_and_keeps_other_priority_terms() {
    let mut h = seed("").await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    h.wave(1, StepKind::Relabel).await;
    h.wave(1, StepKind::SetPartition).await;
    let sts = h.sts_json().await;
    let terms = &sts["spec"]["updateStrategy"]["rollingUpdate"]["unorderedUpdate"]["priorityStrategy"]
        ["weightPriority"];
    assert_eq!(
        terms,
        &json!([
            {"weight": 100, "matchSelector": {"matchLabels": {"baton.dev/selected": "true"}}},
            {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}},
            {"weight": 30, "matchSelector": {"matchLabels": {"working": "true"}}},
        ])
    );
    assert_eq!(h.sts().await.partition(), Some(3));
    assert_eq!(set_partition_of(&h, 1), 3);
}

#[tokio::test]
async fn wait_updated_finishes_when_the_wave_runs_the_update_revision() {
    let mut h = seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    let rev = h.sts().await.status.unwrap().update_revision.unwrap();
    for pod in ["sample-1", "sample-3"] {
        assert_eq!(
            h.label(pod, REVISION_LABEL).await.as_deref(),
            Some(rev.as_str()),
            "{pod}"
        );
        assert_eq!(h.image(pod).await, "alpine:3.18.0");
    }
    for pod in ["sample-0", "sample-2", "sample-4"] {
        assert_eq!(
            h.image(pod).await,
            "alpine:3.18.2",
            "{pod} works and must not update"
        );
    }
    let updated: Vec<String> = h
        .journal
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::PodUpdated { pod, .. } => Some(pod),
            _ => None,
        })
        .collect();
    assert_eq!(updated.len(), 2, "{updated:?}");
}

#[tokio::test]
async fn wait_updated_times_out_naming_a_crash_looping_pod() {
    let mut h = start(
        SimConfig::default(),
        "alpine:crashloop",
        "  waves:\n    readyTimeout: 4s\n",
    )
    .await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    h.wave(1, StepKind::Relabel).await;
    h.wave(1, StepKind::SetPartition).await;
    let err = h
        .run(StepId::in_wave(1, StepKind::WaitUpdated))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Failed);
    assert!(
        err.message.contains("did not finish within 4s"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("crash looping (CrashLoopBackOff"),
        "the error must say which pod crash-loops: {}",
        err.message
    );
    // With maxUnavailable 1 the second pod of the wave never started: it is named too.
    assert!(
        err.message.contains("sample-1") && err.message.contains("sample-3"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn verify_stops_the_rollout_when_an_outside_write_updates_a_working_pod() {
    let mut h = seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    // Someone opens the partition completely: working pods update.
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}))
        .await;
    let rev = h.sts().await.status.unwrap().update_revision.unwrap();
    let cond = move |p: Option<&Pod>| {
        p.and_then(|p| p.metadata.labels.as_ref())
            .and_then(|l| l.get(REVISION_LABEL))
            == Some(&rev)
    };
    let updated = tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(h.pod_api(), "sample-0", cond),
    )
    .await
    .unwrap()
    .unwrap();
    let rv = updated.and_then(|p| p.metadata.resource_version);
    h.view_shows(Kind::Pod, "sample-0", rv).await;
    let err = h
        .run(StepId::in_wave(1, StepKind::Verify))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::SafetyStop);
    assert!(
        err.message
            .contains("working pod sample-0 changed revision"),
        "{}",
        err.message
    );
    assert_eq!(
        h.sts().await.partition(),
        Some(5),
        "verify freezes the rollout"
    );
    assert!(
        h.journal
            .events()
            .iter()
            .any(|e| matches!(e, RunEvent::SafetyStop { .. }))
    );
}

#[tokio::test]
async fn verify_reports_a_working_pod_deleted_by_someone_else_as_an_external_recreation() {
    let mut h = seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    let old_uid = h.pod("sample-4").await.metadata.uid.unwrap();
    h.pod_api()
        .delete("sample-4", &Default::default())
        .await
        .unwrap();
    let cond = move |p: Option<&Pod>| {
        p.is_some_and(|p| p.metadata.uid.as_deref() != Some(old_uid.as_str()))
    };
    let recreated = tokio::time::timeout(
        Duration::from_secs(20),
        await_condition(h.pod_api(), "sample-4", cond),
    )
    .await
    .unwrap()
    .unwrap();
    let rv = recreated.and_then(|p| p.metadata.resource_version);
    h.view_shows(Kind::Pod, "sample-4", rv).await;
    let err = h
        .run(StepId::in_wave(1, StepKind::Verify))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::SafetyStop);
    assert!(
        err.message.contains("sample-4 was deleted by someone else"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("external recreation"),
        "{}",
        err.message
    );
}

async fn handover_after_wave_one(arbiter: ArbiterConfig) -> Harness {
    let cfg = SimConfig {
        arbiter,
        ..SimConfig::default()
    };
    let mut h = start(cfg, "alpine:3.18.0", "").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    h.wave(1, StepKind::Verify).await;
    let out = h.wave(1, StepKind::Handover).await;
    assert_eq!(
        out.value["promote"],
        json!(names(&["sample-1", "sample-3"]))
    );
    assert_eq!(out.value["demote"], json!(names(&["sample-0", "sample-2"])));
    let members = h.steps.env().arbiter.members().await.unwrap().members;
    for (pod, role, label) in [
        ("sample-0", Role::Idle, "false"),
        ("sample-1", Role::Working, "true"),
        ("sample-2", Role::Idle, "false"),
        ("sample-3", Role::Working, "true"),
        ("sample-4", Role::Working, "true"),
    ] {
        assert_eq!(members[pod], role, "{pod}");
        assert_eq!(
            h.label(pod, "working").await.as_deref(),
            Some(label),
            "{pod}"
        );
    }
    let audit = h.journal.writes_by(&StepId::in_wave(1, StepKind::Handover));
    assert!(
        audit
            .iter()
            .any(|w| w.action == "handover" && w.after["requestId"] == "run-1/1"),
        "{audit:?}"
    );
    h
}

#[tokio::test]
async fn handover_with_a_synchronous_arbiter_applies_roles_and_relabels() {
    handover_after_wave_one(ArbiterConfig::default()).await;
}

#[tokio::test]
async fn handover_with_an_asynchronous_arbiter_waits_until_the_roles_show() {
    handover_after_wave_one(ArbiterConfig {
        mode: Mode::Async,
        async_delay_ms: 300,
        ..ArbiterConfig::default()
    })
    .await;
}

#[tokio::test]
async fn handover_fails_fast_when_the_arbiter_replays_an_answer_that_does_not_show_it() {
    let mut h = start(SimConfig::default(), "alpine:3.18.0", "").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    h.wave(1, StepKind::Verify).await;
    // An earlier run of the same name used request id run-1/1 for another handover.
    let epoch = h.steps.env().arbiter.members().await.unwrap().epoch;
    let earlier = reqwest::Client::new()
        .post(format!("{}/v1/handover", h.served.arbiter))
        .json(
            &json!({"epoch": epoch, "promote": ["sample-1"], "demote": ["sample-0"],
                      "requestId": "run-1/1"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(earlier.status(), 200);
    let started = std::time::Instant::now();
    let err = h
        .run(StepId::in_wave(1, StepKind::Handover))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Failed, "{}", err.message);
    assert!(err.message.contains("run-1/1"), "{}", err.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it waited for roles that never come"
    );
}

#[tokio::test]
async fn handover_after_a_stale_epoch_rereads_and_retries() {
    let h = handover_after_wave_one(ArbiterConfig {
        conflict_on_nth_handover: Some(1),
        ..ArbiterConfig::default()
    })
    .await;
    assert_eq!(
        h.journal
            .writes_by(&StepId::in_wave(1, StepKind::Handover))
            .iter()
            .filter(|w| w.action == "handover")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_arbiter_client_sends_the_bearer_token_from_the_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let cfg = SimConfig {
        arbiter: ArbiterConfig {
            token: Some("t0ken".into()),
            ..ArbiterConfig::default()
        },
        ..SimConfig::default()
    };
    let h = start(cfg, "alpine:3.18.0", "").await;
    let mut spec = h.plan.spec().arbiter.clone();
    let without = baton_steps::ArbiterClient::new(&spec).unwrap();
    let err = without.members().await.unwrap_err();
    assert!(!err.is_retryable(), "a 401 is not retried: {err}");
    spec.token_file = Some(token);
    let with = baton_steps::ArbiterClient::new(&spec).unwrap();
    assert_eq!(with.members().await.unwrap().members.len(), 5);
    assert!(!format!("{with:?}").contains("t0ken"));
}

#[tokio::test]
async fn set_partition_run_again_after_the_wave_updated_keeps_the_same_partition() {
    let mut h = seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    let step = StepId::in_wave(1, StepKind::SetPartition);
    let writes = h.journal.writes_by(&step).len();
    let again = h.ok(step.clone()).await;
    assert_eq!(
        again.value["partition"],
        json!(3),
        "U ∪ S counts each updated pod once"
    );
    assert_eq!(h.sts().await.partition(), Some(3));
    assert_eq!(
        h.journal.writes_by(&step).len(),
        writes,
        "nothing to write the second time"
    );
}

#[tokio::test]
async fn handover_run_again_after_it_applied_changes_no_role() {
    let mut h = handover_after_wave_one(ArbiterConfig::default()).await;
    let epoch = h.steps.env().arbiter.members().await.unwrap().epoch;
    let again = h.ok(StepId::in_wave(1, StepKind::Handover)).await;
    assert!(again.value["skipped"].is_string(), "{}", again.value);
    assert_eq!(h.steps.env().arbiter.members().await.unwrap().epoch, epoch);
}

#[tokio::test]
async fn set_partition_refuses_when_an_operator_priority_term_outranks_the_wave() {
    let mut h = seed("").await;
    h.prepare().await;
    h.wave(1, StepKind::QueryArbiter).await;
    h.wave(1, StepKind::Select).await;
    h.wave(1, StepKind::Relabel).await;
    let terms = json!([
        {"weight": 100, "matchSelector": {"matchLabels": {"working": "true"}}},
        {"weight": 100, "matchSelector": {"matchLabels": {"statefulset.kubernetes.io/pod-name": "sample-0"}}},
    ]);
    let strategy = json!({"unorderedUpdate": {"priorityStrategy": {"weightPriority": terms}}});
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": strategy}}}))
        .await;
    let err = h
        .run(StepId::in_wave(1, StepKind::SetPartition))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Failed);
    assert!(err.message.contains("rank sample-0"), "{}", err.message);
    assert_eq!(h.sts().await.partition(), Some(5), "nothing opened");
}
