//! Issue #16's acceptance, in-cluster mode: `engine controller` as processes (two replicas,
//! one kubeconfig) runs an UpgradePlan to the end with 0 violations; with its leader killed
//! (`kill -9`) mid-wave three times the run still ends with 0 violations and no handover
//! applied twice; `kubectl get upgradeplans` shows phase, wave and progress. And the
//! API-server store below it: a record round-trips through its ConfigMaps (spanning several
//! log chunks), and a second writer's commit makes the first refuse further writes.
//! Each on the embedded simulator (`sim_*`) and the real control plane (`real_*`).

#[path = "scenarios/harness.rs"]
mod harness;

#[path = "in_cluster/store.rs"]
mod store;

/// The controller as the ServiceAccount of `deploy/rbac.yaml`, on the real control plane.
#[path = "in_cluster/rbac.rs"]
mod rbac;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use baton_testbed::backend::{BackendKind, Seed};
use harness::{Bed, NEW_IMAGE, bed, text};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

/// `case!(body, sim_name, real_name)`: one case on both backends.
macro_rules! case {
    ($name:ident, $sim:ident, $real:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sim() {
            $name(BackendKind::Sim).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $real() {
            $name(BackendKind::Real).await
        }
    };
}
pub(crate) use case;

case!(
    two_controllers_run_a_plan,
    sim_two_controllers_run_a_plan_to_the_end,
    real_two_controllers_run_a_plan_to_the_end
);
case!(
    operator_requests,
    sim_approve_abort_and_resume_requests_reach_the_run,
    real_approve_abort_and_resume_requests_reach_the_run
);
case!(
    paused_leader,
    sim_a_paused_leader_wakes_up_as_a_standby,
    real_a_paused_leader_wakes_up_as_a_standby
);
case!(
    killed_leaders,
    sim_a_plan_survives_its_leader_killed_three_times,
    real_a_plan_survives_its_leader_killed_three_times
);

/// Lease timing of the tests' controllers: a standby takes over about 3 s after a kill.
const LEASE: [&str; 4] = ["--lease-duration", "3s", "--renew-every", "1s"];

/// `kubectl --kubeconfig K ARGS`.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .expect("kubectl runs")
}

/// Installs the UpgradePlan CRD as `engine crd` prints it (`deploy/crd.yaml` is that
/// output, a test of its own says so) and waits until the API serves it.
pub(crate) async fn install_crd(bed: &Bed) {
    let kubeconfig = bed.backend.kubeconfig_path();
    let printed = bed.engine(&["crd"]).await;
    harness::assert_exit(&printed, 0);
    let crd = bed.dir.path().join("crd.yaml");
    std::fs::write(&crd, &printed.stdout).unwrap();
    let crd = crd.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kubectl(kubeconfig, &["apply", "-f", crd]).await;
        if out.status.success() {
            break;
        }
        // Two tests applying at once: one may get AlreadyExists or a conflict.
        assert!(
            Instant::now() < deadline,
            "kubectl apply {crd}: {}",
            text(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    loop {
        let out = kubectl(
            kubeconfig,
            &["get", "upgradeplans", "-n", bed.backend.namespace()],
        )
        .await;
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "upgradeplans never served: {}",
            text(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn plans(bed: &Bed) -> Api<DynamicObject> {
    Api::namespaced_with(
        bed.backend.client(),
        bed.backend.namespace(),
        &baton_controller::resource::api_resource(),
    )
}

/// Applies the seed plan named `name` as an UpgradePlan.
async fn apply_plan(bed: &Bed, name: &str) {
    apply_plan_with(bed, name, |_| {}).await;
}

/// As [`apply_plan`], after `edit` changed the plan.
async fn apply_plan_with(bed: &Bed, name: &str, edit: impl FnOnce(&mut serde_yaml::Value)) {
    let path = bed.plan(name, edit);
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut obj: DynamicObject = serde_json::from_value(doc).unwrap();
    obj.metadata.namespace = Some(bed.backend.namespace().to_owned());
    plans(bed)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
}

/// `engine controller` for this bed, in the background.
fn controller(bed: &Bed) -> tokio::process::Child {
    let ns = bed.backend.namespace();
    let mut args = vec![
        "controller",
        "--namespace",
        ns,
        "--watch-namespace",
        ns,
        "--log-chunk-bytes",
        "8192",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    args.extend(LEASE);
    let mut cmd = bed.command(&args);
    // Each replica's log, for a failure's message (see `logs`).
    let n = std::fs::read_dir(bed.dir.path()).map_or(0, |d| d.count());
    let log = std::fs::File::create(bed.dir.path().join(format!("controller-{n}.log"))).unwrap();
    cmd.env("RUST_LOG", "info").stderr(log);
    cmd.spawn().unwrap()
}

/// The controllers' logs.
fn logs(bed: &Bed) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(bed.dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("controller-") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.push_str(&format!("--- {name}\n{text}\n"));
        }
    }
    out
}

/// The plan's `status`, once it has one.
async fn status(bed: &Bed, name: &str) -> Value {
    let obj = plans(bed).get(name).await.unwrap();
    obj.data.get("status").cloned().unwrap_or(Value::Null)
}

/// Waits (at most `limit`) until `done` holds for the plan's status; returns it.
async fn until(bed: &Bed, name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(bed, name).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; status: {s:#}\n{}",
            logs(bed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase(s: &Value) -> &str {
    s["phase"].as_str().unwrap_or_default()
}

/// The pid in `status.leader` (`<host>/<pid>`).
fn leader_pid(s: &Value) -> Option<u32> {
    s["leader"].as_str()?.rsplit_once('/')?.1.parse().ok()
}

/// The run's record as the store holds it.
async fn record(bed: &Bed, name: &str) -> baton_engine::store::RunRecord {
    let location = store::location(bed, name, 8192).await;
    tokio::task::spawn_blocking(move || {
        use baton_engine::store::RunStore as _;
        baton_controller::store::KubeStore::open(location)
            .unwrap()
            .load()
            .unwrap()
            .expect("a record")
    })
    .await
    .unwrap()
}

/// Handovers the run recorded, by wave (each must be applied once).
fn handover_waves(record: &baton_engine::store::RunRecord) -> Vec<u32> {
    let mut waves: Vec<u32> = record
        .log
        .iter()
        .filter_map(|e| match &e.entry {
            baton_engine::store::LogKind::Event {
                event: baton_engine::event::RunEvent::Handover { wave, .. },
            } => Some(*wave),
            _ => None,
        })
        .collect();
    waves.dedup();
    waves
}

/// Asserts the end of a seed rollout: every pod on the new image while idle, the working
/// count never lower, two handovers each applied once, the status complete.
async fn assert_succeeded(bed: &Bed, name: &str, status: &Value) {
    bed.assert_finished(5, NEW_IMAGE, 0).await;
    assert_eq!(status["progress"], "5/5", "{status:#}");
    assert_eq!(status["run"], name, "{status:#}");
    assert!(
        status["observedGeneration"].as_i64().is_some(),
        "{status:#}"
    );
    assert!(
        status["checkpoint"]["configMap"]
            .as_str()
            .is_some_and(|c| c == format!("{name}.baton-run")),
        "{status:#}"
    );
    let waves = handover_waves(&record(bed, name).await);
    assert_eq!(waves.len(), 2, "handovers recorded: {waves:?}");
    assert_eq!(
        bed.epochs_moved(),
        2,
        "the arbiter applied a handover more than once (or missed one)"
    );
}

/// Two replicas; the plan runs to the end; `kubectl get upgradeplans` shows its columns.
async fn two_controllers_run_a_plan(kind: BackendKind) {
    let Some(bed) = bed(kind, harness::seed()).await else {
        return;
    };
    install_crd(&bed).await;
    let mut replicas = [controller(&bed), controller(&bed)];
    apply_plan(&bed, "seed").await;
    let done = until(&bed, "seed", Duration::from_secs(60), |s| {
        phase(s) == "Succeeded"
    })
    .await;
    assert_succeeded(&bed, "seed", &done).await;

    let out = kubectl(
        bed.backend.kubeconfig_path(),
        &["get", "upgradeplans", "-n", bed.backend.namespace()],
    )
    .await;
    let table = text(&out.stdout);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "WAVE", "PROGRESS", "AGE"],
        "{table}{}",
        text(&out.stderr)
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["seed", "Succeeded", "3", "5/5"], "{table}");

    // Events on the plan tell its story, as `kubectl describe upgradeplan` shows them.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(bed.backend.client(), bed.backend.namespace());
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind.as_deref() == Some("UpgradePlan"))
        .filter_map(|e| e.reason)
        .collect();
    for want in [
        "BatonStarted",
        "BatonWaveStarted",
        "BatonHandover",
        "BatonFinished",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} missing: {reasons:?}"
        );
    }

    // The replicas' metrics: the leader counted both handovers, the standby nothing.
    let mut handovers = Vec::new();
    for line in logs(&bed).lines() {
        if let Some(url) = line.strip_prefix("metrics on ") {
            let body = reqwest::get(url).await.unwrap().text().await.unwrap();
            let count = body
                .lines()
                .find_map(|l| l.strip_prefix("baton_handovers_total "))
                .unwrap_or_else(|| panic!("no handover count in {body}"))
                .to_owned();
            handovers.push(count);
        }
    }
    handovers.sort();
    assert_eq!(handovers, ["0", "2"], "per replica");

    // SIGTERM (a rolling update of the Deployment): the leader lets go of its Lease on the
    // way out, so the standby leads at its next ask instead of once the lease expires.
    let leader = leader_pid(&done).unwrap();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(bed.backend.client(), bed.backend.namespace());
    let holder = || async {
        leases
            .get("baton-controller")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default()
    };
    assert!(holder().await.ends_with(&format!("/{leader}")));
    signal("-TERM", leader).await;
    let stopping = replicas
        .iter_mut()
        .find(|c| c.id() == Some(leader))
        .unwrap();
    let exited = tokio::time::timeout(Duration::from_secs(10), stopping.wait())
        .await
        .expect("the leader exits on SIGTERM")
        .unwrap();
    assert_eq!(exited.code(), Some(0));
    // Released, not left to expire: the holder is gone (or already the standby) at once.
    let now = holder().await;
    assert!(
        !now.ends_with(&format!("/{leader}")),
        "the stopped leader still holds the lease: {now}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder().await.is_empty() {
        assert!(Instant::now() < deadline, "the standby never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in &mut replicas {
        let _ = r.start_kill();
    }
}

/// The seed plan applied under two controllers, its pods taking 1.5 s to become Ready so
/// that each wave lasts long enough to act on the leader in the middle of it.
async fn slow_plan_under_two_controllers(
    kind: BackendKind,
) -> Option<(Bed, Vec<tokio::process::Child>)> {
    let seed = Seed {
        ready_delay: Duration::from_millis(1500),
        ..harness::seed()
    };
    let bed = bed(kind, seed).await?;
    install_crd(&bed).await;
    let replicas = vec![controller(&bed), controller(&bed)];
    apply_plan(&bed, "seed").await;
    Some((bed, replicas))
}

/// The leader is killed (SIGKILL) while a wave is under way, three times; each time a new
/// standby is started. The others continue from the record.
async fn killed_leaders(kind: BackendKind) {
    let Some((bed, mut replicas)) = slow_plan_under_two_controllers(kind).await else {
        return;
    };
    let mut leaders = Vec::new();
    for wave in 1..=3u64 {
        let s = until(&bed, "seed", Duration::from_secs(60), |s| {
            phase(s) == "Running"
                && s["wave"].as_u64() == Some(wave)
                && leader_pid(s).is_some_and(|p| !leaders.contains(&p))
        })
        .await;
        let pid = leader_pid(&s).unwrap();
        let child = replicas
            .iter_mut()
            .find(|c| c.id() == Some(pid))
            .unwrap_or_else(|| panic!("the leader {pid} is not one of ours: {s:#}"));
        child.start_kill().unwrap();
        let killed = Instant::now();
        let _ = child.wait().await;
        leaders.push(pid);
        replicas.push(controller(&bed));
        // The standby takes over once the lease expires (3 s after its last renewal), asking
        // every second, and reports at once: 4 s at most, and some margin for a loaded machine.
        until(&bed, "seed", Duration::from_secs(30), |s| {
            leader_pid(s).is_some_and(|p| !leaders.contains(&p))
        })
        .await;
        let took = killed.elapsed();
        assert!(took < Duration::from_secs(8), "takeover took {took:?}");
    }
    let done = until(&bed, "seed", Duration::from_secs(90), |s| {
        phase(s) == "Succeeded"
    })
    .await;
    assert!(
        leader_pid(&done).is_some_and(|p| !leaders.contains(&p)),
        "finished by a killed leader? {done:#}"
    );
    assert_succeeded(&bed, "seed", &done).await;
    for r in &mut replicas {
        let _ = r.start_kill();
    }
}

/// `kubectl annotate` a request on the plan, as an operator would.
async fn annotate(bed: &Bed, name: &str, annotation: &str, value: &str) {
    let arg = format!("{annotation}={value}");
    let out = kubectl(
        bed.backend.kubeconfig_path(),
        &[
            "annotate",
            "upgradeplan",
            name,
            "-n",
            bed.backend.namespace(),
            &arg,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "kubectl annotate: {}",
        text(&out.stderr)
    );
}

/// A plan that asks approval at every wave: the first gate is approved through the
/// annotation, the second aborted; both are recorded with who asked, and the annotations go.
/// Then `engine resume --in-cluster` continues the aborted run to its end.
async fn operator_requests(kind: BackendKind) {
    let Some(bed) = bed(kind, harness::seed()).await else {
        return;
    };
    install_crd(&bed).await;
    let mut replicas = [controller(&bed), controller(&bed)];
    apply_plan_with(&bed, "gated", |doc| {
        doc["spec"]["waves"]["approval"] = "everyWave".into();
    })
    .await;
    let waiting = |s: &Value| phase(s) == "WaitingForApproval";
    let s = until(&bed, "gated", Duration::from_secs(60), waiting).await;
    assert_eq!(s["wave"], 1, "{s:#}");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("baton.dev/approve"),
        "{s:#}"
    );
    annotate(
        &bed,
        "gated",
        "baton.dev/approve",
        r#"{"by":"alice","reason":"green"}"#,
    )
    .await;
    until(&bed, "gated", Duration::from_secs(60), |s| {
        waiting(s) && s["wave"] == 2
    })
    .await;
    // The CLI's way: `engine abort --in-cluster` writes the annotation.
    let ns = bed.backend.namespace();
    let asked = bed
        .engine(&[
            "abort",
            "--in-cluster",
            "gated",
            "-n",
            ns,
            "--reason",
            "enough",
        ])
        .await;
    harness::assert_exit(&asked, 0);
    until(&bed, "gated", Duration::from_secs(60), |s| {
        phase(s) == "Aborted"
    })
    .await;

    let rec = record(&bed, "gated").await;
    let approval = rec
        .log
        .iter()
        .find_map(|e| match &e.entry {
            baton_engine::store::LogKind::Approval { approval, .. } => Some(approval.clone()),
            _ => None,
        })
        .expect("the approval is in the history");
    assert!(approval.by.starts_with("alice"), "{approval:?}");
    if kind == BackendKind::Real {
        // The simulator keeps no managedFields; kube-apiserver names kubectl's field manager.
        assert!(
            approval.by.contains("(field manager kubectl"),
            "{approval:?}"
        );
    }
    assert_eq!(approval.reason.as_deref(), Some("green"));
    let aborted = rec.log.iter().find_map(|e| match &e.entry {
        baton_engine::store::LogKind::Abort { by, reason } => Some((by.clone(), reason.clone())),
        _ => None,
    });
    let (by, reason) = aborted.expect("the abort is in the history");
    assert_eq!(reason.as_deref(), Some("enough"));
    assert!(by.contains('@'), "user@host: {by}");
    if kind == BackendKind::Real {
        assert!(by.ends_with("(field manager engine)"), "{by}");
    }

    // Status and history of the plan's run, through the CLI and as a kubectl plugin.
    let plugin = bed.dir.path().join("bin");
    std::fs::create_dir_all(&plugin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_engine"), plugin.join("kubectl-baton")).unwrap();
    let path = format!(
        "{}:{}",
        plugin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shown = tokio::process::Command::new("kubectl")
        .args(["baton", "status", "--in-cluster", "gated", "-n", ns])
        .arg("--kubeconfig")
        .arg(bed.backend.kubeconfig_path())
        .env("PATH", &path)
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    harness::assert_exit(&shown, 0);
    let shown = text(&shown.stdout);
    assert!(shown.contains("aborted"), "{shown}");
    assert!(shown.contains("controller: "), "{shown}");
    let history = bed
        .engine(&[
            "history",
            "--in-cluster",
            "gated",
            "-n",
            ns,
            "--output",
            "json",
        ])
        .await;
    harness::assert_exit(&history, 0);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let actions: Vec<&str> = history["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions.len(), 2, "approve and abort: {history:#}");
    let obj = plans(&bed).get("gated").await.unwrap();
    let annotations = obj.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("baton.dev/approve")
            && !annotations.contains_key("baton.dev/abort"),
        "handled requests are removed: {annotations:?}"
    );

    // The aborted run continues on `engine resume --in-cluster` (the controller leaves a
    // stopped plan alone until asked), waits at wave 2's gate again, and with the two
    // remaining approvals (the CLI's way) runs to the end.
    let resumed = bed
        .engine(&["resume", "--in-cluster", "gated", "-n", ns])
        .await;
    harness::assert_exit(&resumed, 0);
    for wave in [2, 3] {
        until(&bed, "gated", Duration::from_secs(60), |s| {
            waiting(s) && s["wave"] == wave
        })
        .await;
        let approved = bed
            .engine(&["approve", "--in-cluster", "gated", "-n", ns])
            .await;
        harness::assert_exit(&approved, 0);
    }
    let done = until(&bed, "gated", Duration::from_secs(60), |s| {
        phase(s) == "Succeeded"
    })
    .await;
    assert_succeeded(&bed, "gated", &done).await;
    let obj = plans(&bed).get("gated").await.unwrap();
    let annotations = obj.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("baton.dev/resume"),
        "the resume request is consumed: {annotations:?}"
    );
    // A finished run is not resumed again: the request is refused and removed.
    let again = bed
        .engine(&["resume", "--in-cluster", "gated", "-n", ns])
        .await;
    harness::assert_exit(&again, 0);
    for _ in 0..100 {
        let obj = plans(&bed).get("gated").await.unwrap();
        if !obj
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("baton.dev/resume")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let obj = plans(&bed).get("gated").await.unwrap();
    assert!(
        !obj.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("baton.dev/resume"),
        "a refused resume is removed too"
    );
    assert_eq!(phase(&status(&bed, "gated").await), "Succeeded");
    bed.assert_safe();
    for r in &mut replicas {
        let _ = r.start_kill();
    }
}

/// `kill -SIG pid`.
async fn signal(sig: &str, pid: u32) {
    let out = tokio::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "kill {sig} {pid}: {}",
        text(&out.stderr)
    );
}

/// The leader is frozen (SIGSTOP) mid-wave until the standby has taken over, then thawed:
/// it finds its lease gone, stops its run at once and stands by; the plan ends once, safely.
async fn paused_leader(kind: BackendKind) {
    let Some((bed, mut replicas)) = slow_plan_under_two_controllers(kind).await else {
        return;
    };
    let s = until(&bed, "seed", Duration::from_secs(60), |s| {
        phase(s) == "Running" && s["wave"] == 1
    })
    .await;
    let frozen = leader_pid(&s).unwrap();
    signal("-STOP", frozen).await;
    until(&bed, "seed", Duration::from_secs(30), |s| {
        leader_pid(s).is_some_and(|p| p != frozen)
    })
    .await;
    signal("-CONT", frozen).await;
    let done = until(&bed, "seed", Duration::from_secs(90), |s| {
        phase(s) == "Succeeded"
    })
    .await;
    assert_ne!(leader_pid(&done), Some(frozen), "{done:#}");
    assert_succeeded(&bed, "seed", &done).await;
    let thawed = replicas
        .iter_mut()
        .find(|c| c.id() == Some(frozen))
        .unwrap();
    assert!(
        thawed.try_wait().unwrap().is_none(),
        "the thawed leader lives on as a standby"
    );
    assert!(
        logs(&bed).contains("lost the controller lease"),
        "{}",
        logs(&bed)
    );
    for r in &mut replicas {
        let _ = r.start_kill();
    }
}
