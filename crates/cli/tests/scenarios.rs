//! Issue #11's scenario suite: each scenario runs the real `engine` binary on the embedded
//! simulator (`sim_*`) and on the real control plane (`real_*`: kube-apiserver, etcd and the
//! real OpenKruise 1.5.5 controller, shared by this one test binary; skipped with one line when
//! `BATON_CONTROL_PLANE` is unset outside CI). Assertions are made from outside, identically
//! on both: an observer watching the pods records every update with the arbiter's role of that
//! moment, plus the final state, the exit codes and the run's own history.

#[path = "scenarios/harness.rs"]
mod harness;
#[path = "scenarios/stub.rs"]
mod stub;

use std::time::{Duration, Instant};

use baton_sim::arbiter::{ArbiterConfig, Role};
use baton_testbed::backend::{BackendKind, Seed};
use baton_testbed::observer::How;
use harness::{
    NEW_IMAGE, OLD_IMAGE, TEST_GATE, all_output, assert_exit, bed, describe, events, finish,
    path_str, seed, text, wave_partitions,
};
use kube::api::DeleteParams;

/// `scenario!(name, sim_name, real_name)`: the two tests of one scenario. Attributes before a
/// test's name (an `#[ignore = "…"]`) apply to that test only.
macro_rules! scenario {
    ($name:ident, $(#[$sim_attr:meta])* $sim:ident, $(#[$real_attr:meta])* $real:ident) => {
        $(#[$sim_attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sim() {
            $name(BackendKind::Sim).await
        }

        $(#[$real_attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $real() {
            $name(BackendKind::Real).await
        }
    };
}

// Issue #15: application-aware safety; its scenarios use the macro above.
#[path = "scenarios/safety.rs"]
mod safety;

fn pod(i: u32) -> String {
    format!("sample-{i}")
}

/// (a) + (c) The seed case: three waves (partitions 3, 1, 0), every pod updated once, in
/// place (same uid), while idle; two handovers.
async fn seed_case(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("seed", |_| {});
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(5, NEW_IMAGE, 0).await;
    assert_eq!(
        wave_partitions(&bed.history("seed").await),
        [3, 1, 0],
        "{}",
        describe(&out)
    );
    let mut updated = v.updated_pods();
    let first_wave: std::collections::BTreeSet<&str> = updated[..2].iter().copied().collect();
    assert_eq!(
        first_wave,
        ["sample-1", "sample-3"].into(),
        "{:#?}",
        v.updates
    );
    updated.sort();
    assert_eq!(updated, (0..5).map(pod).collect::<Vec<_>>(), "{v:#?}");
    for u in &v.updates {
        assert_eq!(u.how, How::InPlace, "{u:?}");
        assert_eq!(u.role, Some(Role::Idle), "{u:?}");
    }
    // In place: the pods are the same objects.
    let uids: std::collections::BTreeMap<String, String> = bed
        .pods()
        .await
        .iter()
        .map(|p| (harness::name(p).to_string(), harness::uid(p).to_string()))
        .collect();
    assert_eq!(uids, bed.uids, "a pod was recreated");
    assert_eq!(bed.epochs_moved(), 2, "handovers applied");
}
scenario!(seed_case, sim_seed_case, real_seed_case);

/// (b) One pod per wave: five waves, each writing a lower partition, down to 0.
async fn max_per_wave_one(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("narrow", |doc| {
        doc["spec"]["waves"]["maxPerWave"] = 1.into()
    });
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(5, NEW_IMAGE, 0).await;
    let partitions = wave_partitions(&bed.history("narrow").await);
    assert_eq!(partitions, [4, 3, 2, 1, 0], "{}", describe(&out));
    let mut updated = v.updated_pods();
    updated.sort();
    assert_eq!(updated, (0..5).map(pod).collect::<Vec<_>>(), "{v:#?}");
}
scenario!(
    max_per_wave_one,
    sim_max_per_wave_one,
    real_max_per_wave_one
);

/// (d) Twenty replicas, every even ordinal working.
async fn twenty_replicas(kind: BackendKind) {
    let seed = Seed {
        replicas: 20,
        working: (0..20).filter(|i| i % 2 == 0).collect(),
        ..seed()
    };
    let Some(bed) = bed(kind, seed).await else {
        return;
    };
    let plan = bed.plan("twenty", |_| {});
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(20, NEW_IMAGE, 0).await;
    let mut updated = v.updated_pods();
    updated.sort_by_key(|p| p.trim_start_matches("sample-").parse::<u32>().unwrap_or(99));
    assert_eq!(updated, (0..20).map(pod).collect::<Vec<_>>(), "{v:#?}");
    assert_eq!(v.working_start, 10);
}
scenario!(twenty_replicas, sim_twenty_replicas, real_twenty_replicas);

/// (e) SIGKILL once the first pod update is seen, and the resumed run again right after its
/// first handover; the last `engine resume` finishes with no update repeated and no handover
/// applied twice.
async fn kill_and_resume(kind: BackendKind) {
    let Some(bed) = bed(
        kind,
        Seed {
            ready_delay: Duration::from_millis(300),
            ..seed()
        },
    )
    .await
    else {
        return;
    };
    let plan = bed.plan("killed", |_| {});
    let mut run = bed.spawn(&["run", path_str(&plan)]);
    bed.observer
        .until(Duration::from_secs(60), |v| !v.updates.is_empty())
        .await
        .unwrap_or_else(|v| panic!("no update began: {v:#?}"));
    run.start_kill().unwrap();
    let killed = run.wait().await.unwrap();
    assert_eq!(killed.code(), None, "not killed by the signal: {killed:?}");

    // Again, right after the resumed run's first handover is applied.
    let mut resumed = bed.spawn(&["resume", "killed"]);
    let arbiter = bed.backend.arbiter().clone();
    let first = bed.epoch;
    let deadline = Instant::now() + Duration::from_secs(60);
    while arbiter.epoch() == first {
        assert!(Instant::now() < deadline, "no handover after the resume");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    resumed.start_kill().unwrap();
    let killed = resumed.wait().await.unwrap();
    assert_eq!(killed.code(), None, "not killed by the signal: {killed:?}");

    let out = bed.engine(&["resume", "killed"]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(5, NEW_IMAGE, 0).await;
    let mut updated = v.updated_pods();
    updated.sort();
    assert_eq!(
        updated,
        (0..5).map(pod).collect::<Vec<_>>(),
        "each pod updated exactly once: {v:#?}"
    );
    assert_eq!(bed.epochs_moved(), 2, "a handover was applied twice");
}
scenario!(kill_and_resume, sim_kill_and_resume, real_kill_and_resume);

/// (f) `approval: firstWave`: the run waits after the canary wave (a second process sees it)
/// and nothing more is updated until `engine approve`.
async fn approval(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("gated", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into()
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    let view = bed.until_gate(&bed.state, "gated").await;
    assert_eq!(view["state"], "running", "{view:#}");
    // Held: nothing beyond the first wave moves while the gate is closed.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut so_far = bed.observer.verdict().updated_pods().join(",");
    so_far = so_far.replace("sample-3,sample-1", "sample-1,sample-3");
    assert_eq!(so_far, "sample-1,sample-3");
    assert_eq!(bed.partition().await, Some(3));

    assert_exit(
        &bed.engine(&["approve", "gated", "--reason", "ok"]).await,
        0,
    );
    let out = finish(run, &["run"]).await;
    assert_exit(&out, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}
scenario!(approval, sim_approval, real_approval);

/// (g) `engine abort` of a run waiting at its gate: the partition stays frozen at
/// |P| - |U| = 5 - 2 and the set's lease is free for a new run, which finishes.
async fn abort_at_gate(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("halted", |doc| {
        doc["spec"]["waves"]["approval"] = "firstWave".into()
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    bed.until_gate(&bed.state, "halted").await;
    let abort = bed
        .engine(&["abort", "halted", "--reason", "latency spike"])
        .await;
    assert_exit(&abort, 0);
    assert!(
        text(&abort.stdout).contains("lock released"),
        "{}",
        describe(&abort)
    );
    let ended = finish(run, &["run"]).await;
    // The waiting process sees the abort and ends as a failed, resumable run.
    assert_exit(&ended, 1);
    assert!(
        text(&ended.stderr).contains("aborted"),
        "{}",
        describe(&ended)
    );
    assert_eq!(bed.partition().await, Some(3));
    let status = bed.status_in(&bed.state, "halted").await.unwrap();
    assert_eq!(status["state"], "aborted", "{status:#}");

    let next = bed.plan("next", |_| {});
    let out = bed.engine(&["run", path_str(&next)]).await;
    assert_exit(&out, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}
scenario!(abort_at_gate, sim_abort_at_gate, real_abort_at_gate);

/// (g) Issue #11, defect 3: aborting a run that already succeeded (exit 2), or an unfinished
/// one whose set another live run holds (exit 4), writes nothing and leaves the live run alone.
/// Against the engine before 7f27018 the first abort exits 0, on both backends.
async fn abort_never_writes_under_another_run(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let done = bed.plan("done", |_| {});
    assert_exit(&bed.engine(&["run", path_str(&done)]).await, 0);
    let history_of_done = bed.history("done").await;
    let back = |name: &str| {
        bed.plan(name, |doc| {
            doc["spec"]["update"]["images"]["main"] = OLD_IMAGE.into();
            doc["spec"]["waves"]["approval"] = "firstWave".into();
        })
    };
    // An unfinished run: killed at its first gate.
    let stale_plan = back("stale");
    let mut stale = bed.spawn(&["run", path_str(&stale_plan)]);
    bed.until_gate(&bed.state, "stale").await;
    stale.start_kill().unwrap();
    let _ = stale.wait().await;
    // A live run from another machine holds the set, waiting at its gate.
    let other = bed.dir.path().join("other-machine");
    let live_plan = back("live");
    let live = bed
        .command_in(&other, &["run", path_str(&live_plan)])
        .spawn()
        .unwrap();
    bed.until_gate(&other, "live").await;
    let partition = bed.partition().await;
    let generation = bed.generation().await;
    let updates = bed.observer.verdict().updates.len();

    let abort = bed
        .engine(&["abort", "done", "--reason", "wrong run"])
        .await;
    assert_exit(&abort, 2);
    assert!(
        text(&abort.stderr).contains("already succeeded"),
        "{}",
        describe(&abort)
    );
    let abort = bed
        .engine(&["abort", "stale", "--reason", "wrong run"])
        .await;
    assert_exit(&abort, 4);
    assert!(
        text(&abort.stderr).contains("live@"),
        "the refusal names the holder: {}",
        describe(&abort)
    );
    assert!(
        !text(&abort.stdout).contains("lock released"),
        "{}",
        describe(&abort)
    );
    assert_eq!(
        bed.partition().await,
        partition,
        "abort moved the partition"
    );
    assert_eq!(bed.generation().await, generation, "abort wrote the set");
    assert_eq!(bed.observer.verdict().updates.len(), updates);
    assert_eq!(
        bed.history("done").await,
        history_of_done,
        "the finished run's history changed"
    );

    assert_exit(&bed.engine_in(&other, &["approve", "live"]).await, 0);
    let finished = finish(live, &["run", "live"]).await;
    assert_exit(&finished, 0);
    bed.assert_finished(5, OLD_IMAGE, 0).await;
}
scenario!(
    abort_never_writes_under_another_run,
    sim_abort_never_writes_under_another_run,
    real_abort_never_writes_under_another_run
);

/// (h) A rollback after the seed case (the old image, one pod per wave) is as safe as the
/// upgrade: standby pods first, every update on an idle pod.
async fn rollback(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let up = bed.plan("up", |_| {});
    assert_exit(&bed.engine(&["run", path_str(&up)]).await, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
    let back = bed.plan("back", |doc| {
        doc["spec"]["update"]["images"]["main"] = OLD_IMAGE.into();
        doc["spec"]["waves"]["maxPerWave"] = 1.into();
    });
    let out = bed.engine(&["run", path_str(&back)]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(5, OLD_IMAGE, 0).await;
    assert_eq!(v.updates.len(), 10, "{v:#?}");
    for u in &v.updates {
        assert_eq!(u.role, Some(Role::Idle), "{u:?}");
    }
    assert_eq!(wave_partitions(&bed.history("back").await), [4, 3, 2, 1, 0]);
}
scenario!(rollback, sim_rollback, real_rollback);

/// (i) Two runs of one plan started at once from two machines: one proceeds, the other
/// exits 4 (locked).
async fn two_runs(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let plan = bed.plan("twin", |_| {});
    let other = bed.dir.path().join("other-state");
    let a = bed.spawn(&["run", path_str(&plan)]);
    let b = bed
        .command_in(&other, &["run", path_str(&plan)])
        .spawn()
        .unwrap();
    let (a, b) = tokio::join!(finish(a, &["run"]), finish(b, &["run"]));
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(4)],
        "\n{}\n{}",
        describe(&a),
        describe(&b)
    );
    let v = bed.assert_finished(5, NEW_IMAGE, 0).await;
    assert_eq!(v.updates.len(), 5, "{v:#?}");
}
scenario!(two_runs, sim_two_runs, real_two_runs);

/// A seed whose pods also wait for [`TEST_GATE`], and take 1.5 s to be Ready after a
/// (re)start: the window in which a test closes the gate of a pod whose update it has seen.
fn gated_seed() -> Seed {
    Seed {
        readiness_gates: vec![TEST_GATE.into()],
        ready_delay: Duration::from_millis(1500),
        ..seed()
    }
}

/// Waits for the first update of the run, closes that pod's [`TEST_GATE`] before its
/// container is ready, and returns the pod (held unready from then on).
async fn hold_first_updated(bed: &harness::Bed) -> String {
    let v = bed
        .observer
        .until(Duration::from_secs(60), |v| !v.updates.is_empty())
        .await
        .unwrap_or_else(|v| panic!("no update began: {v:#?}"));
    let held = v.updates[0].pod.clone();
    bed.backend
        .set_condition(&held, TEST_GATE, false)
        .await
        .unwrap();
    // Still unready: the gate was closed within the container's start-up delay.
    let p = bed.pod(&held).await.unwrap();
    assert!(
        !baton_testbed::backend::is_ready(&p),
        "{held} turned Ready before its gate closed"
    );
    held
}

/// (j) A pod of wave 1 held unready by its own readiness gate: the run fails within
/// `readyTimeout`, naming the pod and why; once the gate is True, `resume` finishes.
async fn held_by_readiness_gate(kind: BackendKind) {
    let Some(bed) = bed(kind, gated_seed()).await else {
        return;
    };
    let plan = bed.plan("stuck", |doc| {
        doc["spec"]["waves"]["readyTimeout"] = "5s".into()
    });
    let began = Instant::now();
    let run = bed.spawn(&["run", path_str(&plan)]);
    let held = hold_first_updated(&bed).await;
    let out = finish(run, &["run"]).await;
    let took = began.elapsed();
    assert_exit(&out, 1);
    assert!(took < Duration::from_secs(40), "took {took:?}");
    let all = all_output(&out);
    // The pod, and why: its gate (or at least the kubelet's reason, the same on both backends).
    assert!(
        all.contains(&format!("{held}: not ready (")),
        "names no pod: {}",
        describe(&out)
    );
    assert!(
        all.contains(TEST_GATE) || all.contains("ReadinessGatesNotReady"),
        "gives no reason: {}",
        describe(&out)
    );
    let v = bed.assert_safe();
    for u in &v.updates {
        assert!(
            u.pod == "sample-1" || u.pod == "sample-3",
            "{u:?} updated outside the stuck wave"
        );
    }

    bed.backend
        .set_condition(&held, TEST_GATE, true)
        .await
        .unwrap();
    let out = bed.engine(&["resume", "stuck"]).await;
    assert_exit(&out, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}
scenario!(
    held_by_readiness_gate,
    sim_held_by_readiness_gate,
    real_held_by_readiness_gate
);

/// (k) Issue #11, defect 1: scaling 6 -> 5 while wave 1 waits at its gate, with sample-5
/// lingering Terminating (a finalizer), must not make the engine write a partition lower than
/// it announced (which let Kruise update working sample-4). Against the engine before 6b829e6
/// it fails on both backends: real Kruise updates working sample-4 and the run exits 0 (a
/// violation); on the simulator the same update happens and the engine's verify stops.
async fn scale_down_mid_run(kind: BackendKind) {
    let Some(bed) = bed(
        kind,
        Seed {
            replicas: 6,
            working: vec![0, 2, 4],
            ..seed()
        },
    )
    .await
    else {
        return;
    };
    let plan = bed.plan("shrink", |doc| {
        doc["spec"]["waves"]["maxPerWave"] = 0.into();
        doc["spec"]["waves"]["approval"] = "everyWave".into();
    });
    let run = bed.spawn(&["run", path_str(&plan), "--output", "json"]);
    bed.until_gate(&bed.state, "shrink").await;
    bed.observer.exclude("sample-5");
    bed.finalizer("sample-5", Some("baton.dev/hold")).await;
    bed.backend.scale(5).await.unwrap();
    bed.backend
        .wait_for_pods("sample-5 terminating", Duration::from_secs(30), |ps| {
            ps.iter()
                .any(|p| harness::name(p) == "sample-5" && p.metadata.deletion_timestamp.is_some())
        })
        .await
        .unwrap();

    // Approve each gate as it comes, until the run ends.
    let mut run = Some(run);
    let mut approved = 0u64;
    let deadline = Instant::now() + Duration::from_secs(90);
    let out = loop {
        assert!(Instant::now() < deadline, "the run did not finish");
        let child = run.as_mut().unwrap();
        if child.try_wait().unwrap().is_some() {
            break finish(run.take().unwrap(), &["run"]).await;
        }
        if let Some(view) = bed.status_in(&bed.state, "shrink").await
            && view["waitingApproval"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
            && view["currentWave"].as_u64().unwrap_or(0) > approved
        {
            approved = view["currentWave"].as_u64().unwrap_or(0);
            assert_exit(&bed.engine(&["approve", "shrink"]).await, 0);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    assert_exit(&out, 0);
    let v = bed.assert_safe();
    for u in v.updates.iter().filter(|u| u.pod == "sample-4") {
        assert_eq!(u.role, Some(Role::Idle), "{u:?}");
    }
    // Every partition the run wrote is the one it announced for that wave.
    let announced: Vec<i64> = events(&out)
        .iter()
        .filter(|e| e["type"] == "wavePlanned")
        .map(|e| e["partition"].as_i64().unwrap())
        .collect();
    let history = bed.history("shrink").await;
    let written = wave_partitions(&history);
    assert_eq!(written, announced, "{history:#}");
    assert_eq!(announced, [3, 1, 0], "{}", describe(&out));
    let lingering = bed.pod("sample-5").await;
    assert!(
        lingering.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "sample-5 did not linger Terminating through the run"
    );

    bed.finalizer("sample-5", None).await;
    bed.backend
        .wait_for_pods("sample-5 gone", Duration::from_secs(30), |ps| {
            ps.iter().all(|p| harness::name(p) != "sample-5")
        })
        .await
        .unwrap();
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}
scenario!(
    scale_down_mid_run,
    sim_scale_down_mid_run,
    real_scale_down_mid_run
);

/// (l) Issue #11, defect 2: a working pod deleted while a wave waits (its first pod held
/// unready by a readiness gate) is a safety stop within seconds, not at `readyTimeout`: the
/// partition is frozen at the replica count, `resume` refuses without `--accept-risk` and
/// writes nothing, and with it the run finishes. Against the engine before 6b829e6
/// (`BATON_SCENARIO_ENGINE`) the run waits on past the deletion, on both backends.
async fn working_pod_deleted_mid_wave(kind: BackendKind) {
    let Some(bed) = bed(kind, gated_seed()).await else {
        return;
    };
    let plan = bed.plan("meddled", |doc| {
        doc["spec"]["waves"]["readyTimeout"] = "5m".into()
    });
    let run = bed.spawn(&["run", path_str(&plan)]);
    let held = hold_first_updated(&bed).await;
    let before = bed.pod("sample-2").await.unwrap();
    bed.observer.exclude("sample-2");
    bed.backend
        .pods()
        .delete("sample-2", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .expect("the run went on waiting after a working pod was deleted")
        .unwrap();
    let took = deleted.elapsed();
    assert_exit(&out, 1);
    assert!(
        took < Duration::from_secs(15),
        "stopped {took:?} after the deletion"
    );
    let all = all_output(&out);
    assert!(
        all.contains("safety stop") && all.contains("sample-2"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        bed.partition().await,
        Some(5),
        "the partition is not frozen"
    );

    // The recreated pod passes its gate, as its owner would; the held pod heals.
    let recreated = bed
        .backend
        .wait_for_pods("sample-2 recreated", Duration::from_secs(30), |ps| {
            ps.iter()
                .any(|p| harness::name(p) == "sample-2" && harness::uid(p) != harness::uid(&before))
        })
        .await
        .unwrap();
    let _ = recreated;
    for p in ["sample-2", held.as_str()] {
        bed.backend.set_condition(p, TEST_GATE, true).await.unwrap();
    }
    let generation = bed.generation().await;
    let out = bed.engine(&["resume", "meddled"]).await;
    assert_exit(&out, 1);
    assert_eq!(
        bed.partition().await,
        Some(5),
        "resume without --accept-risk wrote"
    );
    assert_eq!(
        bed.generation().await,
        generation,
        "resume without --accept-risk wrote"
    );

    bed.observer.readmit("sample-2");
    let out = bed.engine(&["resume", "meddled", "--accept-risk"]).await;
    assert_exit(&out, 0);
    bed.assert_finished(5, NEW_IMAGE, 0).await;
}
scenario!(
    working_pod_deleted_mid_wave,
    sim_working_pod_deleted_mid_wave,
    real_working_pod_deleted_mid_wave
);

/// (m) A stale epoch on the first handover (409): the run re-plans and succeeds.
async fn arbiter_conflict(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    bed.backend.arbiter().set_config(ArbiterConfig {
        conflict_on_nth_handover: Some(1),
        ..ArbiterConfig::default()
    });
    let plan = bed.plan("stale", |_| {});
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 0);
    let v = bed.assert_finished(5, NEW_IMAGE, 0).await;
    assert_eq!(v.updates.len(), 5, "{v:#?}");
}
scenario!(
    arbiter_conflict,
    sim_arbiter_conflict,
    real_arbiter_conflict
);

/// (m) An arbiter that refuses every handover (422, as its quorum rule would): the run fails
/// after the first wave, and no working pod is touched.
async fn arbiter_refuses(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let front = harness::refusing_arbiter(bed.backend.arbiter().clone()).await;
    let plan = bed.plan_with_arbiter("refused", &front.url, |_| {});
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 1);
    let all = all_output(&out);
    assert!(
        all.contains("422") || all.contains("quorum"),
        "{}",
        describe(&out)
    );
    let v = bed.assert_safe();
    let mut updated = v.updated_pods();
    updated.sort();
    assert_eq!(updated, ["sample-1", "sample-3"], "{v:#?}");
    let images = bed.images().await;
    for i in [0, 2, 4] {
        assert_eq!(images[&pod(i)], OLD_IMAGE, "{images:?}");
    }
    assert_eq!(bed.epochs_moved(), 0);
}
scenario!(arbiter_refuses, sim_arbiter_refuses, real_arbiter_refuses);

/// The suite's own control: a careless operator who opens the partition to 0 without
/// handing anything over makes the controller update the working pods, and the observer
/// must report each of those as a violation (else every "0 violations" above means nothing).
async fn observer_sees_working_pods_updated(kind: BackendKind) {
    let Some(bed) = bed(kind, seed()).await else {
        return;
    };
    let patch = serde_json::json!({
        "spec": {
            "template": {"spec": {"containers": [{"name": "main", "image": NEW_IMAGE}]}},
            "updateStrategy": {"rollingUpdate": {"partition": 0}},
        }
    });
    bed.backend
        .statefulsets()
        .patch(
            baton_testbed::backend::NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let v = bed
        .observer
        .until(Duration::from_secs(60), |v| v.updates.len() == 5)
        .await
        .unwrap_or_else(|v| panic!("not every pod was updated: {v:#?}"));
    let mut violated: Vec<&str> = v.violations.iter().map(|u| u.pod.as_str()).collect();
    violated.sort();
    assert_eq!(violated, ["sample-0", "sample-2", "sample-4"], "{v:#?}");
    assert!(v.safe().is_err());
}
scenario!(
    observer_sees_working_pods_updated,
    sim_observer_sees_working_pods_updated,
    real_observer_sees_working_pods_updated
);

/// An idle pod of wave 1 already unready (its readiness gate closed) when the run starts: the
/// run fails within `readyTimeout`, naming it, and touches no pod.
async fn unready_before_the_run(kind: BackendKind) {
    let Some(bed) = bed(kind, gated_seed()).await else {
        return;
    };
    bed.backend
        .set_condition("sample-1", TEST_GATE, false)
        .await
        .unwrap();
    bed.backend
        .wait_for_pods("sample-1 unready", Duration::from_secs(30), |ps| {
            ps.iter()
                .any(|p| harness::name(p) == "sample-1" && !baton_testbed::backend::is_ready(p))
        })
        .await
        .unwrap();
    let plan = bed.plan("unready", |doc| {
        doc["spec"]["waves"]["readyTimeout"] = "5s".into()
    });
    let out = bed.engine(&["run", path_str(&plan)]).await;
    assert_exit(&out, 1);
    assert!(all_output(&out).contains("sample-1"), "{}", describe(&out));
    // Kruise 1.5.5 (and the simulator) update nothing: with `maxUnavailable: 1` the one
    // unready pod uses the whole budget, so the wave's pods stay at the old revision.
    let v = bed.assert_safe();
    assert_eq!(v.updates, [], "{}", describe(&out));
}
scenario!(
    unready_before_the_run,
    sim_unready_before_the_run,
    real_unready_before_the_run
);
