//! Kubernetes Events (core/v1) on the ASTS, so `kubectl describe` tells the story of a
//! rollout: wave start, handover, safety stop, finish. Best effort: a failed Event is
//! logged and never fails a step.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};

/// Reasons, as `kubectl get events` shows them.
pub const WAVE_STARTED: &str = "BatonWaveStarted";
pub const HANDOVER: &str = "BatonHandover";
pub const SAFETY_STOP: &str = "BatonSafetyStop";
pub const FINISHED: &str = "BatonFinished";
pub const ROLLBACK: &str = "BatonRollback";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Creates Events about one ASTS.
#[derive(Clone)]
pub struct Recorder {
    api: Api<Event>,
    namespace: String,
    name: String,
}

impl Recorder {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Recorder {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Publishes one Event; logs instead of failing.
    pub async fn publish(&self, kind: EventType, reason: &str, message: &str) {
        let event = self.event(kind, reason, message);
        if let Err(error) = self.api.create(&PostParams::default(), &event).await {
            tracing::warn!(%error, reason, "cannot create a kubernetes event on the statefulset");
        }
    }

    /// The Event object, named like client-go names them (`<object>.<hex nanos>`).
    pub fn event(&self, kind: EventType, reason: &str, message: &str) -> Event {
        let now = jiff::Timestamp::now();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", self.name, now.as_nanosecond())),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("apps.kruise.io/v1beta1".into()),
                kind: Some("StatefulSet".into()),
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(match kind {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some(reason.trim_start_matches("Baton").to_owned()),
            reporting_component: Some("baton".into()),
            reporting_instance: Some(hostname()),
            source: Some(EventSource {
                component: Some("baton".into()),
                host: None,
            }),
            ..Event::default()
        }
    }
}

/// This machine's name, for lease holders and event instances.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
