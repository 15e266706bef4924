//! `preflight` and `abort`, and plan hooks, against the simulator.

mod common;

use baton_engine::dag::{StepId, StepKind};
use baton_engine::plan::HookPoint;
use baton_engine::step::StepErrorKind;
use baton_sim::SimConfig;
use baton_steps::PreflightError;
use serde_json::json;

#[tokio::test]
async fn preflight_reads_the_seed_case_and_writes_nothing() {
    let h = common::seed("").await;
    let before = h.sts().await.metadata.resource_version;
    let (snapshot, warnings) = baton_steps::preflight(&h.client, &h.plan).await.unwrap();
    assert_eq!(snapshot.pods.len(), 5);
    assert_eq!(snapshot.arbiter.members.len(), 5);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(h.sts().await.metadata.resource_version, before);
}

#[tokio::test]
async fn preflight_refuses_an_image_for_a_container_the_template_lacks() {
    let sim = baton_sim::Sim::new(SimConfig::default());
    let served = sim.serve().await.unwrap();
    let client = kube::Client::new(sim.router(), "default");
    let text = common::plan_text(&served.arbiter, "alpine:3.18.0", "")
        .replace("main: alpine", "db: alpine");
    let plan = baton_engine::plan::ValidPlan::parse("plan.yaml", &text).unwrap();
    let err = baton_steps::preflight(&client, &plan).await.unwrap_err();
    assert!(matches!(err, PreflightError::Template(_)), "{err:?}");
}

#[tokio::test]
async fn preflight_says_when_the_arbiter_is_unreachable() {
    let sim = baton_sim::Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    let text = common::plan_text("http://127.0.0.1:9", "alpine:3.18.0", "");
    let plan = baton_engine::plan::ValidPlan::parse("plan.yaml", &text).unwrap();
    let err = baton_steps::preflight(&client, &plan).await.unwrap_err();
    assert!(matches!(err, PreflightError::Arbiter(_)), "{err:?}");
}

#[tokio::test]
async fn a_guarded_write_fails_as_a_retryable_conflict_when_the_value_changed_underneath() {
    let h = common::seed("").await;
    let stale = serde_json::to_value(h.sts().await).unwrap();
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 4}}}}))
        .await;
    let patch = baton_steps::patch::partition_patch(&stale, 3)
        .unwrap()
        .into_patch()
        .unwrap();
    let err = h
        .steps
        .env()
        .target
        .patch_sts("set partition", patch)
        .await
        .unwrap_err();
    assert!(
        matches!(err, baton_steps::KubeError::Conflict { .. }),
        "{err:?}"
    );
    assert_eq!(
        baton_engine::step::StepError::from(err).kind,
        StepErrorKind::Retryable
    );
    assert_eq!(
        h.sts().await.partition(),
        Some(4),
        "the stale write changed nothing"
    );
}

/// Wave 1 updated (two new pods), then someone moved the partition to 4 by hand.
async fn wave_one_then_partition_moved_to_four() -> common::Harness {
    let mut h = common::seed("").await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 4}}}}))
        .await;
    h.observed().await;
    h
}

#[tokio::test]
async fn abort_freezes_the_partition_at_the_count_of_old_pods() {
    let h = wave_one_then_partition_moved_to_four().await;
    let freeze = baton_steps::plan_freeze(&h.client, &h.plan).await.unwrap();
    assert_eq!(freeze.before, Some(4));
    assert_eq!(freeze.partition, 3);
    assert!(freeze.changes());
    assert_eq!(freeze.audit().after, json!(3));
    baton_steps::apply_freeze(&h.client, &h.plan, &freeze)
        .await
        .unwrap();
    assert_eq!(h.sts().await.partition(), Some(3));
    h.observed().await;
    let again = baton_steps::plan_freeze(&h.client, &h.plan).await.unwrap();
    assert!(!again.changes());
}

#[tokio::test]
async fn a_freeze_planned_before_someone_moved_the_partition_is_refused_not_applied() {
    let h = wave_one_then_partition_moved_to_four().await;
    let freeze = baton_steps::plan_freeze(&h.client, &h.plan).await.unwrap();
    h.outside_patch_sts(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}))
        .await;
    let err = baton_steps::apply_freeze(&h.client, &h.plan, &freeze)
        .await
        .unwrap_err();
    assert!(
        matches!(err, baton_steps::k8s::KubeError::Conflict { .. }),
        "{err:?}"
    );
    assert_eq!(h.sts().await.partition(), Some(2));
}

const HOOKS: &str = "  hooks:
    afterWaveReady:
      - name: env
        exec:
          command:
            - sh
            - -c
            - 'echo \"$BATON_RUN $BATON_WAVE $BATON_PODS {{wave}}\" > OUTFILE'
      - name: fails
        exec:
          command:
            - sh
            - -c
            - 'echo broken >&2; exit 3'
      - name: members
        http:
          url: 'ARBITER_URL/v1/members?wave={{wave}}'
      - name: wrong-status
        http:
          url: 'ARBITER_URL/v1/members'
          expectStatus: 204
";

#[tokio::test]
async fn hooks_expand_placeholders_and_fail_on_bad_exits_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hooks = HOOKS.replace("OUTFILE", &out.display().to_string());
    let mut h = common::start(SimConfig::default(), "alpine:3.18.0", &hooks).await;
    h.prepare().await;
    assert!(h.update_wave(1).await);
    let hook = |name: &str| {
        StepId::in_wave(
            1,
            StepKind::Hook {
                point: HookPoint::AfterWaveReady,
                name: name.to_owned(),
            },
        )
    };
    h.ok(hook("env")).await;
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.trim(), "run-1 1 sample-1,sample-3 1");
    let err = h.run(hook("fails")).await.unwrap_err();
    assert_eq!(err.kind, StepErrorKind::Failed);
    assert!(
        err.message.contains("exited with") && err.message.contains("broken"),
        "{}",
        err.message
    );
    let ok = h.ok(hook("members")).await;
    assert_eq!(ok.value["status"], 200);
    assert!(
        ok.value["url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/members?wave=1")
    );
    let err = h.run(hook("wrong-status")).await.unwrap_err();
    assert!(
        err.message.contains("answered 200, expected 204"),
        "{}",
        err.message
    );
}
