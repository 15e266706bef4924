//! The Events the Advanced StatefulSet controller records on its set, as Kruise 1.5.5 writes
//! them (core/v1, source `statefulset-controller`, one Event per pod action, named the way
//! client-go's recorder names them: `<set>.<hex nanoseconds>`).

use jiff::Timestamp;
use serde_json::{Value, json};

use super::types::Asts;
use super::{API_VERSION, KIND};

/// What the controller did to a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodAction<'a> {
    Created,
    Deleted,
    /// Updated in place to this revision.
    InPlace {
        revision: &'a str,
    },
}

/// The Event object for one pod action. `stamp` names it (client-go uses the time in
/// nanoseconds); the caller keeps stamps unique.
pub fn pod_event(
    set: &Asts,
    pod: &str,
    action: PodAction<'_>,
    now: Timestamp,
    stamp: u64,
) -> Value {
    let set_name = set.name();
    let (reason, message) = match action {
        PodAction::Created => (
            "SuccessfulCreate",
            format!("create Pod {pod} in StatefulSet {set_name} successful"),
        ),
        PodAction::Deleted => (
            "SuccessfulDelete",
            format!("delete Pod {pod} in StatefulSet {set_name} successful"),
        ),
        PodAction::InPlace { revision } => (
            "SuccessfulUpdatePodInPlace",
            format!("successfully update pod {pod} in-place(revision {revision})"),
        ),
    };
    let at = Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{set_name}.{stamp:x}"),
            "namespace": set.namespace(),
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": set_name,
            "namespace": set.namespace(),
            "uid": set.metadata.uid.clone().unwrap_or_default(),
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "statefulset-controller"},
        "count": 1,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "eventTime": null,
        "reportingComponent": "",
        "reportingInstance": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_set_and_the_pod() {
        let set = Asts::from_value(&json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {}, "template": {}},
        }))
        .unwrap();
        let now: Timestamp = "2026-01-01T00:00:00.4Z".parse().unwrap();
        let e = pod_event(
            &set,
            "web-3",
            PodAction::InPlace {
                revision: "web-abc",
            },
            now,
            1,
        );
        assert_eq!(e["reason"], "SuccessfulUpdatePodInPlace");
        assert_eq!(
            e["message"],
            "successfully update pod web-3 in-place(revision web-abc)"
        );
        assert_eq!(e["involvedObject"]["uid"], "u1");
        assert_eq!(e["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert!(e["metadata"]["name"].as_str().unwrap().starts_with("web."));
        let d = pod_event(&set, "web-3", PodAction::Deleted, now, 2);
        assert_ne!(d["metadata"]["name"], e["metadata"]["name"]);
    }
}
