//! A kubelet for simulated pods: starts them, restarts containers after an in-place image
//! change, keeps crash-looping images unready, and honours a forced-unready switch.
//!
//! [`act`] is pure: given a pod, how long the kubelet has seen its current container images,
//! and the time, it rewrites the pod's status if something is due and says when to look
//! again. The controller driver keeps the clock per pod and writes the result to the store.
//! Readiness follows Kubernetes: `Ready` is `ContainersReady` and every readiness gate's
//! condition `True` (a gate without its condition is not ready).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kruise::pod::{containers, set_condition};

/// Pod annotation that keeps every container unready while its value is `"true"`
/// (what [`crate::controller::set_pod_ready`] writes).
pub const UNREADY_ANNOTATION: &str = "sim.baton.dev/unready";

/// How long a crash-looping container waits between restarts, at least.
const MIN_CRASH_BACKOFF: Duration = Duration::from_millis(1000);

/// Kubelet behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfig {
    /// Delay before a new pod runs and turns Ready, and before a container restarts with a new
    /// image after an in-place update. 0 is allowed.
    pub pod_ready_ms: u64,
    /// Images whose name contains this never become Ready: the container is in
    /// `CrashLoopBackOff` and its `restartCount` keeps growing. Empty disables it.
    pub crash_image_marker: String,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            pod_ready_ms: 0,
            crash_image_marker: "crashloop".into(),
        }
    }
}

impl KubeletConfig {
    fn delay(&self) -> Duration {
        Duration::from_millis(self.pod_ready_ms)
    }

    fn crashes(&self, image: &str) -> bool {
        !self.crash_image_marker.is_empty() && image.contains(&self.crash_image_marker)
    }

    fn crash_backoff(&self) -> Duration {
        self.delay().max(MIN_CRASH_BACKOFF)
    }
}

/// The images of a pod's containers, in spec order: when this changes, the kubelet's clock for
/// the pod restarts.
pub fn image_signature(pod: &Value) -> String {
    containers(pod)
        .map(|(_, image)| image)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `imageID` the simulated runtime reports for an image.
pub fn image_id(image: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(image.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("docker.io/library/{image}@sha256:{hex}")
}

/// Advances `pod` by what the kubelet does after it has seen the current images for `waited`.
/// Returns how long until something else becomes due, if anything will.
pub fn act(
    pod: &mut Value,
    cfg: &KubeletConfig,
    waited: Duration,
    now: Timestamp,
) -> Option<Duration> {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return None;
    }
    let delay = cfg.delay();
    let phase = pod["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if phase.is_empty() || phase == "Pending" {
        if waited < delay {
            if phase.is_empty() {
                pod["status"] = json!({"phase": "Pending"});
                set_condition(pod, "PodScheduled", true, "", now);
            }
            return Some(delay - waited);
        }
        start(pod, cfg, now);
        recompute_ready(pod, now);
        return next_crash(pod, cfg, waited);
    }
    if phase != "Running" {
        return None;
    }
    // In-place image changes: restart the changed containers once the delay has passed.
    let specs: Vec<(String, String)> = containers(pod)
        .map(|(name, image)| (name.to_string(), image.to_string()))
        .collect();
    let mut pending = false;
    for (name, image) in &specs {
        let Some(cs) = container_status_mut(pod, name) else {
            continue;
        };
        if cs["image"].as_str() == Some(image.as_str()) {
            continue;
        }
        if waited < delay {
            pending = true;
            continue;
        }
        let restarts = cs["restartCount"].as_i64().unwrap_or(0) + 1;
        let previous = cs["state"].clone();
        *cs = container_status(name, image, cfg, restarts, now);
        cs["lastState"] = json!({"terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "finishedAt": now.to_string(),
            "startedAt": previous["running"]["startedAt"].clone(),
        }});
    }
    // Crash loops: one more restart per backoff period.
    let backoff = cfg.crash_backoff();
    for (name, image) in &specs {
        if !cfg.crashes(image) {
            continue;
        }
        let Some(cs) = container_status_mut(pod, name) else {
            continue;
        };
        if cs["image"].as_str() != Some(image.as_str()) {
            continue;
        }
        let restarts = cs["restartCount"].as_i64().unwrap_or(0);
        let due = backoff.saturating_mul(u32::try_from(restarts + 1).unwrap_or(u32::MAX));
        if waited >= due {
            cs["restartCount"] = json!(restarts + 1);
        }
    }
    recompute_ready(pod, now);
    let wake_inplace = pending.then(|| delay.saturating_sub(waited));
    match (wake_inplace, next_crash(pod, cfg, waited)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the next crash-loop restart is due.
fn next_crash(pod: &Value, cfg: &KubeletConfig, waited: Duration) -> Option<Duration> {
    let backoff = cfg.crash_backoff();
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .filter(|cs| cfg.crashes(cs["image"].as_str().unwrap_or_default()))
        .map(|cs| {
            let restarts = cs["restartCount"].as_i64().unwrap_or(0);
            let due = backoff.saturating_mul(u32::try_from(restarts + 1).unwrap_or(u32::MAX));
            due.saturating_sub(waited).max(Duration::from_millis(1))
        })
        .min()
}

fn container_status_mut<'a>(pod: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    pod["status"]["containerStatuses"]
        .as_array_mut()?
        .iter_mut()
        .find(|cs| cs["name"] == name)
}

fn container_status(
    name: &str,
    image: &str,
    cfg: &KubeletConfig,
    restarts: i64,
    now: Timestamp,
) -> Value {
    let crash = cfg.crashes(image);
    let state = if crash {
        json!({"waiting": {"reason": "CrashLoopBackOff",
                            "message": "back-off restarting failed container"}})
    } else {
        json!({"running": {"startedAt": now.to_string()}})
    };
    json!({
        "name": name,
        "image": image,
        "imageID": image_id(image),
        "containerID": container_id(&format!("{name}/{image}/{restarts}/{now}")),
        "ready": !crash,
        "started": !crash,
        "restartCount": restarts,
        "state": state,
    })
}

fn container_id(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("containerd://{hex}")
}

/// Runs a pending pod: phase Running, IPs, container statuses.
fn start(pod: &mut Value, cfg: &KubeletConfig, now: Timestamp) {
    let statuses: Vec<Value> = containers(pod)
        .map(|(name, image)| container_status(name, image, cfg, 0, now))
        .collect();
    let ordinal = pod["metadata"]["name"]
        .as_str()
        .and_then(|n| n.rsplit_once('-'))
        .and_then(|(_, o)| o.parse::<u32>().ok())
        .unwrap_or(0);
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let status = &mut pod["status"];
    status["phase"] = "Running".into();
    status["hostIP"] = "10.0.0.1".into();
    status["podIP"] = format!("10.244.{}.{}", (ordinal / 250) % 250, ordinal % 250 + 2).into();
    status["startTime"] = now.to_string().into();
    status["qosClass"] = "BestEffort".into();
    status["containerStatuses"] = Value::Array(statuses);
    set_condition(pod, "PodScheduled", true, "", now);
    set_condition(pod, "Initialized", true, "", now);
}

/// A deleted pod's containers stop at once (no grace period here): each reports
/// `terminated`, not ready, and so does the pod. Only a pod that finalizers keep around is
/// ever seen like this; the testbed's stand-in kubelet reports the same.
pub fn terminate(pod: &mut Value, now: Timestamp) {
    if pod["status"]["phase"] != "Running" {
        return;
    }
    if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
        for c in cs.iter_mut().filter(|c| c["state"]["terminated"].is_null()) {
            let started = c["state"]["running"]["startedAt"].clone();
            c["state"] = json!({"terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": started,
                "finishedAt": now.to_string(),
            }});
            c["started"] = json!(false);
        }
    }
    recompute_ready(pod, now);
}

/// Whether every `readinessGates` condition is `True` (a gate without its condition is not).
pub fn gates_ready(pod: &Value) -> bool {
    let conditions = pod["status"]["conditions"].as_array();
    pod["spec"]["readinessGates"].as_array().is_none_or(|gs| {
        gs.iter().all(|g| {
            conditions.is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            })
        })
    })
}

/// Whether the stored `Ready` condition is what [`recompute_ready`] would write for a running
/// pod whose containers all run: clients flip gate conditions either way at any time, and a
/// real kubelet follows them.
pub fn ready_settled(pod: &Value) -> bool {
    let containers_ready = pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["ready"] == true));
    let want = containers_ready && gates_ready(pod);
    let has = pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    want == has
}

/// Recomputes `ContainersReady` and `Ready` from the container statuses, the forced-unready
/// annotation and the readiness gates.
pub fn recompute_ready(pod: &mut Value, now: Timestamp) {
    if pod["status"]["phase"] != "Running" {
        return;
    }
    let forced_unready = pod["metadata"]["annotations"][UNREADY_ANNOTATION] == "true";
    if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
        for c in cs.iter_mut() {
            let running = !c["state"]["running"].is_null();
            c["ready"] = json!(running && !forced_unready);
        }
    }
    let containers_ready = pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["ready"] == true));
    let gates_ready = gates_ready(pod);
    set_condition(
        pod,
        "ContainersReady",
        containers_ready,
        if containers_ready {
            ""
        } else {
            "ContainersNotReady"
        },
        now,
    );
    let ready = containers_ready && gates_ready;
    let reason = if !containers_ready {
        "ContainersNotReady"
    } else if !gates_ready {
        "ReadinessGatesNotReady"
    } else {
        ""
    };
    set_condition(pod, "Ready", ready, reason, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str) -> Value {
        json!({"metadata": {"name": "web-0"},
               "spec": {"containers": [{"name": "main", "image": image}]}})
    }

    fn ready(p: &Value) -> bool {
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }

    #[test]
    fn a_pod_becomes_ready_only_after_the_delay() {
        let cfg = KubeletConfig {
            pod_ready_ms: 500,
            ..KubeletConfig::default()
        };
        let now = Timestamp::now();
        let mut p = pod("alpine:1");
        let wake = act(&mut p, &cfg, Duration::from_millis(100), now);
        assert_eq!(wake, Some(Duration::from_millis(400)));
        assert_eq!(p["status"]["phase"], "Pending");
        act(&mut p, &cfg, Duration::from_millis(500), now);
        assert_eq!(p["status"]["phase"], "Running");
        assert!(ready(&p));
    }

    #[test]
    fn a_crashing_image_stays_unready_and_keeps_restarting() {
        let cfg = KubeletConfig::default();
        let now = Timestamp::now();
        let mut p = pod("registry/crashloop:1");
        act(&mut p, &cfg, Duration::ZERO, now);
        assert!(!ready(&p));
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        act(&mut p, &cfg, Duration::from_millis(2500), now);
        act(&mut p, &cfg, Duration::from_millis(2500), now);
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 2);
    }

    #[test]
    fn an_image_change_restarts_the_container_with_a_new_image_id() {
        let cfg = KubeletConfig::default();
        let now = Timestamp::now();
        let mut p = pod("alpine:1");
        act(&mut p, &cfg, Duration::ZERO, now);
        let before = p["status"]["containerStatuses"][0]["imageID"].clone();
        p["spec"]["containers"][0]["image"] = "alpine:2".into();
        act(&mut p, &cfg, Duration::ZERO, now);
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["image"], "alpine:2");
        assert_eq!(cs["restartCount"], 1);
        assert_ne!(cs["imageID"], before);
        assert!(ready(&p));
    }

    #[test]
    fn a_readiness_gate_without_its_condition_keeps_the_pod_unready() {
        let cfg = KubeletConfig::default();
        let now = Timestamp::now();
        let mut p = pod("alpine:1");
        p["spec"]["readinessGates"] = json!([{"conditionType": "InPlaceUpdateReady"}]);
        act(&mut p, &cfg, Duration::ZERO, now);
        assert!(!ready(&p));
        set_condition(&mut p, "InPlaceUpdateReady", true, "", now);
        recompute_ready(&mut p, now);
        assert!(ready(&p));
    }
}
