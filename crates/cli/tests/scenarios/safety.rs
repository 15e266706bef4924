//! Issue #15's scenarios: per-pod gates and analysis, through the real `engine` binary on
//! both backends, judged from outside (the observer's pod updates and roles) and by the
//! run's own output and history.

use super::harness::{
    Bed, NEW_IMAGE, OLD_IMAGE, TEST_GATE, all_output, assert_exit, bed, describe, path_str, seed,
    wave_partitions,
};
use super::stub::Stub;
use baton_sim::arbiter::Role;
use baton_testbed::backend::{BackendKind, Seed};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn gate(stub: &Stub) -> serde_yaml::Value {
    serde_yaml::from_str(&format!(
        "[{{name: caught-up, http: {{url: \"{}/gate/{{{{pod}}}}\", timeout: 2s}}}}]",
        stub.url
    ))
    .unwrap()
}

/// A gate failing for one idle pod leaves that pod out of the wave and names it; the wave
/// takes the other idle pod, and the run completes (the pod passes when asked again).
async fn gate_holds_one_pod(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let stub = Stub::start().await;
    // Once for `engine plan`, once for the run's first wave.
    stub.fail("sample-3", 2);
    let plan = bed.plan("gated", |doc| doc["spec"]["gates"] = gate(&stub));
    // `engine plan` asks the gates now and shows each pod's answer; it writes nothing.
    let before = (bed.partition().await, bed.generation().await);
    let dry = bed.engine(&["plan", path_str(&plan)]).await;
    assert_exit(&dry, 0);
    let shown = super::harness::text(&dry.stdout);
    assert!(
        shown.contains(
            "  sample-3: caught-up FAIL (HTTP 503, expected 200) -- held back while it fails"
        ),
        "{}",
        describe(&dry)
    );
    assert!(
        shown.contains("  sample-1: caught-up pass (HTTP 200)\n"),
        "{shown}"
    );
    assert_eq!(
        (bed.partition().await, bed.generation().await),
        before,
        "plan wrote nothing"
    );
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let text = all_output(&out);
    assert!(
        text.contains("wave 1: sample-3 left out: gate caught-up: HTTP 503, expected 200"),
        "{}",
        describe(&out)
    );
    bed.assert_finished(5, NEW_IMAGE, 0).await;
    // Wave 1 took sample-1 alone (partition 4); sample-3 went with wave 2.
    assert_eq!(
        wave_partitions(&bed.history("gated").await),
        [4, 2, 0],
        "{}",
        describe(&out)
    );
    let status = bed.engine(&["status", "gated"]).await;
    assert!(
        super::harness::text(&status.stdout).contains(
            "held:    wave 1: sample-3 by gate caught-up (select): HTTP 503, expected 200"
        ),
        "{}",
        describe(&status)
    );
    let v = bed.assert_safe();
    assert_eq!(v.updated_pods()[0], "sample-1", "{:#?}", v.updates);
    assert!(stub.asked("sample-3") >= 2, "asked again in wave 2");
    // Promotion asks the gate too.
    assert!(
        stub.asked("sample-1") >= 2,
        "asked before select and promote"
    );
}

/// `--skip-gate` overrides the gate for the run and the history says who and why.
async fn skip_gate_is_recorded(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let stub = Stub::start().await;
    stub.fail("sample-3", 1000);
    let plan = bed.plan("skipped", |doc| doc["spec"]["gates"] = gate(&stub));
    let out = bed
        .engine(&[
            "run",
            path_str(&plan),
            "--skip-gate",
            "caught-up",
            "--reason",
            "endpoint broken, checked by hand",
        ])
        .await;
    assert_exit(&out, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
    assert_eq!(stub.asked("sample-3"), 0, "a skipped gate is not asked");
    let history = bed.engine(&["history", "skipped"]).await;
    let table = super::harness::text(&history.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("gate caught-up"))
        .unwrap_or_else(|| panic!("no skip in the history:\n{table}"));
    assert!(
        row.contains("skip gate") && row.contains("endpoint broken, checked by hand"),
        "{row}"
    );
    // A gate the plan does not have is a usage error, before anything is written.
    let out = bed
        .engine(&["run", path_str(&plan), "--skip-gate", "caugth-up"])
        .await;
    assert_exit(&out, 2);
    assert!(
        all_output(&out).contains("the plan has no gate of that name (it has caught-up)"),
        "{}",
        describe(&out)
    );
}

/// A failing analysis check mid-wave freezes the partition at once, with no working pod
/// touched; the run stops as a safety stop (exit 1).
async fn analysis_freezes_mid_wave(kind: BackendKind) {
    let Some(bed) = bed(
        kind,
        Seed {
            ready_delay: Duration::from_millis(1500),
            ..seed()
        },
    )
    .await
    else {
        return;
    };
    let stub = Stub::start().await;
    let plan = bed.plan("analysed", |doc| {
        doc["spec"]["analysis"] = serde_yaml::from_str(&format!(
            "{{interval: 200ms, checks: [{{name: error-rate, prometheus: {{url: \"{}\", query: \"sum(rate(errors_total[1m]))\", max: 0.01}}}}]}}",
            stub.url
        ))
        .unwrap();
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    bed.observer
        .until(Duration::from_secs(60), |v| !v.updates.is_empty())
        .await
        .unwrap_or_else(|v| panic!("no update began: {v:#?}"));
    stub.set_value(0.5);
    let out = super::harness::finish(run, &["run", "analysed"]).await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    assert!(
        text.contains("analysis check error-rate failed: 0.5 > 0.01 (max)"),
        "{}",
        describe(&out)
    );
    assert!(text.contains("SAFETY STOP"), "{}", describe(&out));
    assert_eq!(
        bed.partition().await,
        Some(5),
        "frozen: partition = replicas"
    );
    let v = bed.assert_safe();
    assert!(
        v.updated_pods().len() < 5,
        "the run stopped: {:#?}",
        v.updates
    );
    assert!(stub.queries() > 0);
}

/// A bed whose plan `rollback` has an analysis check (every 200 ms, against `stub`) and
/// `onFailure: rollback`; pods are Ready 1.5 s after a (re)start, so wave 2 is caught midway.
async fn rollback_bed(kind: BackendKind) -> Option<(Bed, Stub, PathBuf)> {
    let bed = bed(
        kind,
        Seed {
            ready_delay: Duration::from_millis(1500),
            ..seed()
        },
    )
    .await?;
    let stub = Stub::start().await;
    let plan = bed.plan("rollback", |doc| {
        doc["spec"]["analysis"] = serde_yaml::from_str(&format!(
            "{{interval: 200ms, checks: [{{name: error-rate, prometheus: {{url: \"{}\", query: \"sum(rate(errors_total[1m]))\", max: 0.01}}}}]}}",
            stub.url
        ))
        .unwrap();
        doc["spec"]["onFailure"] = "rollback".into();
    });
    Some((bed, stub, plan))
}

/// Runs `engine run` with `failpoints` (if any) and makes the check fail once wave 2 began
/// (wave 1 updates two pods; the third update is wave 2's). It keeps failing: a rollback's
/// waves do not ask it.
async fn run_until_unhealthy(bed: &Bed, stub: &Stub, plan: &Path, failpoints: &str) -> Output {
    let mut cmd = bed.command(&["run", path_str(plan)]);
    if !failpoints.is_empty() {
        cmd.env("BATON_FAILPOINTS", failpoints);
    }
    let run = cmd.spawn().unwrap();
    bed.observer
        .until(Duration::from_secs(60), |v| v.updates.len() >= 3)
        .await
        .unwrap_or_else(|v| panic!("wave 2 never began: {v:#?}"));
    stub.set_value(0.5);
    super::harness::finish(run, &["run", "rollback"]).await
}

/// The end of a rollback, judged from outside and by the run: every pod back on the old
/// template and Ready, role labels as the arbiter says, three pods working (all of the old
/// revision), partition 0, no working pod updated nor the working count lowered (the
/// observer), and the run `rolledBack` with its template write in the history.
async fn assert_rolled_back(bed: &Bed) {
    let v = bed.assert_finished(5, OLD_IMAGE, 0).await;
    assert!(
        v.updated_pods().len() > 3,
        "pods went back: {:#?}",
        v.updates
    );
    let roles = bed.backend.arbiter().roles();
    assert_eq!(
        roles.values().filter(|r| **r == Role::Working).count(),
        3,
        "{roles:?}"
    );
    let status = bed
        .engine(&["status", "rollback", "--output", "json"])
        .await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["state"], "rolledBack", "{status:#}");
    let history = bed.history("rollback").await.to_string();
    assert!(history.contains("roll back template"), "{history}");
}

/// `onFailure: rollback`: an analysis check failing mid-wave-2 freezes the partition and the
/// run goes back standby-first: old-revision pods take the working role back before any
/// working pod could be touched, the updated pods return to the old template, and the run
/// ends `rolledBack` (exit 1) with no violation seen from outside.
async fn analysis_rolls_back_mid_wave(kind: BackendKind) {
    let Some((bed, stub, plan)) = rollback_bed(kind).await else {
        return;
    };
    let out = run_until_unhealthy(&bed, &stub, &plan, "").await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    for want in [
        "analysis check error-rate failed: 0.5 > 0.01 (max)",
        "ROLLBACK after wave-2/",
        "run rollback: rolled back",
    ] {
        assert!(text.contains(want), "{want:?}: {}", describe(&out));
    }
    assert!(!text.contains("SAFETY STOP"), "{}", describe(&out));
    assert_rolled_back(&bed).await;
}

/// A crash anywhere in a rollback resumes into the rollback, never into the forward rollout:
/// the process aborts (no unwinding, no flush) as the failure is being recorded (the checkpoint
/// that starts the rollback is lost: the resumed wave fails again and rolls back), and right
/// after the old template was written; `engine resume` then ends the run `rolledBack`.
/// Simulator only (each case is a whole rollout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_crashed_rollback_resumes_into_the_rollback() {
    let kind = BackendKind::Sim;
    let points = [
        "in-checkpoint:wave-2/wait-updated=failed",
        "after-write:rollback",
    ];
    for point in points {
        let Some((bed, stub, plan)) = rollback_bed(kind).await else {
            return;
        };
        let out = run_until_unhealthy(&bed, &stub, &plan, point).await;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: the run did not abort: {}",
            describe(&out)
        );
        let resumed = bed.engine(&["resume", "rollback"]).await;
        assert_exit(&resumed, 1);
        let text = all_output(&resumed);
        assert!(
            text.contains("run rollback: rolled back"),
            "{point}: {}",
            describe(&resumed)
        );
        assert_rolled_back(&bed).await;
        // The run has ended; a second resume says how, and is no success either.
        let again = bed.engine(&["resume", "rollback"]).await;
        assert_exit(&again, 1);
        let text = all_output(&again);
        assert!(
            text.contains("already finished: it rolled back"),
            "{point}: {}",
            describe(&again)
        );
    }
}

/// `onFailure: rollback` on a failed wave: a pod of wave 1 held unready makes `wait-updated`
/// fail at `readyTimeout`, and the run rolls back. The held pod stays unready, so the
/// rollback's wave fails too: that second failure stops the run (exit 1, resumable), it does
/// not roll back the rollback. Once the pod is let go, `engine resume` continues the rollback
/// to its end. Simulator only (two readiness timeouts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_wave_past_its_ready_timeout_rolls_back_and_a_second_failure_stops() {
    let Some(bed) = bed(BackendKind::Sim, super::gated_seed()).await else {
        return;
    };
    let plan = bed.plan("rollback", |doc| {
        doc["spec"]["waves"]["readyTimeout"] = "4s".into();
        doc["spec"]["onFailure"] = "rollback".into();
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    let held = super::hold_first_updated(&bed).await;
    let out = super::harness::finish(run, &["run", "rollback"]).await;
    assert_exit(&out, 1);
    let text = all_output(&out);
    for want in [
        "ROLLBACK after wave-1/wait-updated (wave 1): wave-1/wait-updated did not finish within 4s",
        "step wave-2/wait-updated failed",
        "the run is resumable",
    ] {
        assert!(text.contains(want), "{want:?}: {}", describe(&out));
    }
    assert!(
        !text.contains("ROLLBACK after wave-2"),
        "{}",
        describe(&out)
    );
    bed.assert_safe();
    let status = bed.engine(&["status", "rollback"]).await;
    assert!(
        all_output(&status).contains(
            "rolling back to the old template, standby-first, since wave-1/wait-updated failed"
        ),
        "{}",
        describe(&status)
    );

    bed.backend
        .set_condition(&held, TEST_GATE, true)
        .await
        .unwrap();
    let out = bed.engine(&["resume", "rollback"]).await;
    assert_exit(&out, 1);
    assert!(
        all_output(&out).contains("run rollback: rolled back"),
        "{}",
        describe(&out)
    );
    let v = bed.assert_finished(5, OLD_IMAGE, 0).await;
    // Only wave 1's pods were ever touched: there and back.
    assert!(
        v.updates
            .iter()
            .all(|u| u.pod == "sample-1" || u.pod == "sample-3"),
        "{:#?}",
        v.updates
    );
}

/// A window closed at the start makes the run wait, saying for which window, and then go.
/// The clock is injected (`BATON_TEST_CLOCK`): two seconds before Monday 00:00 in Berlin.
async fn window_waits_then_goes(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("windowed", |doc| {
        doc["spec"]["schedule"] = serde_yaml::from_str(
            "{windows: [{days: [Mon], start: \"00:00\", end: \"05:00\", timeZone: Europe/Berlin}]}",
        )
        .unwrap();
    });
    // `engine plan` tells when each wave can start, on the same injected clock.
    let mut cmd = bed.command(&["plan", path_str(&plan)]);
    cmd.env("BATON_TEST_CLOCK", "2026-12-06T22:00:30+01:00");
    let dry = super::harness::finish(cmd.spawn().unwrap(), &["plan", "windowed"]).await;
    assert_exit(&dry, 0);
    let shown = super::harness::text(&dry.stdout);
    for line in [
        "window: Mon 00:00-05:00 Europe/Berlin\n",
        "wave 1 waits for window Mon 00:00 Europe/Berlin (in 1h59m); each later wave starts only inside a window\n",
        "wave 1: update sample-1, sample-3 (partition 3)\n        starts: Mon 00:00 Europe/Berlin (in 1h59m)\n",
    ] {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    let mut cmd = bed.command(&["run", path_str(&plan), "--output", "json"]);
    cmd.env(
        "BATON_TEST_CLOCK",
        "2026-12-06T23:59:58+01:00", // Sunday, Berlin
    );
    let out = super::harness::finish(cmd.spawn().unwrap(), &["run", "windowed"]).await;
    assert_exit(&out, 0);
    let waits: Vec<String> = super::harness::events(&out)
        .iter()
        .filter(|e| e["type"] == "waiting" && e["step"] == "wave-1/window")
        .filter_map(|e| e["what"].as_str().map(str::to_owned))
        .collect();
    assert!(
        waits
            .first()
            .is_some_and(|w| w.starts_with("window Mon 00:00 Europe/Berlin (in ")),
        "{waits:?}\n{}",
        describe(&out)
    );
    // Later waves start inside the window: no more waits.
    let later = super::harness::events(&out)
        .iter()
        .filter(|e| e["type"] == "waiting" && e["step"] == "wave-2/window")
        .count();
    assert_eq!(later, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}

/// Gates holding every idle pod: the wave waits, asking again, and says which pods and why
/// (in the progress stream and in `engine status` from another process); at
/// `waves.readyTimeout` the run fails, resumable, having updated nothing.
async fn gates_hold_every_pod(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let stub = Stub::start().await;
    stub.fail("sample-1", 1000);
    stub.fail("sample-3", 1000);
    let plan = bed.plan("held", |doc| {
        doc["spec"]["gates"] = gate(&stub);
        doc["spec"]["waves"]["readyTimeout"] = "3s".into();
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let view = bed.status_in(&bed.state, "held").await;
        let what = view.as_ref().and_then(|v| {
            v["waiting"]
                .as_array()?
                .iter()
                .find_map(|w| w["what"].as_str().map(str::to_owned))
        });
        if let Some(what) = what {
            break what;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never waited for gates"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        waiting,
        "gates to pass: sample-1 (caught-up: HTTP 503, expected 200), \
         sample-3 (caught-up: HTTP 503, expected 200)"
    );
    let out = super::harness::finish(run, &["run", "held"]).await;
    assert_exit(&out, 1);
    assert!(
        all_output(&out).contains("gates hold every pod this wave could take: sample-1"),
        "{}",
        describe(&out)
    );
    assert!(stub.asked("sample-1") >= 2, "asked again while waiting");
    let v = bed.assert_safe();
    assert_eq!(v.updates, [], "nothing updated");
}

/// A promote gate failing for one updated pod: the handover promotes the others (and the
/// `beforeHandover` hooks see that handover in `{{promote}}`); the pod is promoted later.
async fn promote_gate_holds_one_pod(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let stub = Stub::start().await;
    // Asked by the beforeHandover hook's placeholders and by the handover of wave 1.
    stub.fail("promote-sample-1", 2);
    let log = bed.dir.path().join("promote.log");
    let plan = bed.plan("promoted", |doc| {
        doc["spec"]["gates"] = serde_yaml::from_str(&format!(
            "[{{name: lag, http: {{url: \"{}/gate/promote-{{{{pod}}}}\"}}, when: [promote]}}]",
            stub.url
        ))
        .unwrap();
        doc["spec"]["hooks"] = serde_yaml::from_str(&format!(
            "{{beforeHandover: [{{name: note, exec: {{command: [sh, -c, \"echo {{{{promote}}}} >> {}\"]}}}}]}}",
            log.display()
        ))
        .unwrap();
    });
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    assert!(
        all_output(&out)
            .contains("wave 1: sample-1 not promoted: gate lag: HTTP 503, expected 200"),
        "{}",
        describe(&out)
    );
    bed.assert_finished(5, NEW_IMAGE, 0).await;
    let promoted = std::fs::read_to_string(&log).unwrap();
    assert_eq!(promoted.lines().next(), Some("sample-3"), "{promoted}");
    assert_eq!(
        wave_partitions(&bed.history("promoted").await),
        [3, 2, 0],
        "{}",
        describe(&out)
    );
    bed.assert_safe();
}

scenario!(
    gate_holds_one_pod,
    sim_gate_holds_one_pod,
    real_gate_holds_one_pod
);
scenario!(
    gates_hold_every_pod,
    sim_gates_hold_every_pod,
    real_gates_hold_every_pod
);
scenario!(
    skip_gate_is_recorded,
    sim_skip_gate_is_recorded,
    real_skip_gate_is_recorded
);
scenario!(
    window_waits_then_goes,
    sim_window_waits_then_goes,
    real_window_waits_then_goes
);
scenario!(
    analysis_freezes_mid_wave,
    sim_analysis_freezes_mid_wave,
    real_analysis_freezes_mid_wave
);
scenario!(
    analysis_rolls_back_mid_wave,
    sim_analysis_rolls_back_mid_wave,
    real_analysis_rolls_back_mid_wave
);
scenario!(
    promote_gate_holds_one_pod,
    sim_promote_gate_holds_one_pod,
    real_promote_gate_holds_one_pod
);
