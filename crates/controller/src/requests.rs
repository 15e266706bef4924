//! Operators' requests on an UpgradePlan: the annotations `baton.dev/approve`,
//! `baton.dev/abort` and `baton.dev/resume`, each a JSON `{"by", "reason", "at"}` (a resume
//! may add `"acceptRisk": true`). The controller hands approve and abort to the run exactly
//! as `engine approve|abort` do (the run's control socket), so they are recorded in the
//! run's history the same way, then removes the annotation. A resume starts a stopped run
//! again, as `engine resume [--accept-risk]` does.
//!
//! Who asked: the API server tells a controller nothing about the user who wrote an
//! annotation (that takes an admission webhook). The request's own `by` (the CLI fills
//! in the kubeconfig user and `$USER@host`) is recorded, with the field manager the
//! server noted for the annotation in `managedFields`, which at least names the client.

use baton_engine::control::ControlRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::DynamicObject;
use serde::Deserialize;

pub const APPROVE: &str = "baton.dev/approve";
pub const ABORT: &str = "baton.dev/abort";
pub const RESUME: &str = "baton.dev/resume";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Approve,
    Abort,
    /// Continue a run that stopped (failed, aborted, stopped for safety).
    Resume,
}

impl Kind {
    pub fn annotation(self) -> &'static str {
        match self {
            Kind::Approve => APPROVE,
            Kind::Abort => ABORT,
            Kind::Resume => RESUME,
        }
    }

    /// The verb, as messages say it.
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Approve => "approve",
            Kind::Abort => "abort",
            Kind::Resume => "resume",
        }
    }
}

/// One request found on the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    /// Who, as recorded: the request's `by` and the field manager that wrote it.
    pub by: String,
    pub reason: Option<String>,
    /// A resume past a safety stop (`engine resume --accept-risk`); false for the others.
    pub accept_risk: bool,
}

impl Request {
    /// What the run's control socket takes; `None` for a resume, which is no request to a
    /// running run but the start of a stopped one.
    pub fn control(&self) -> Option<ControlRequest> {
        match self.kind {
            Kind::Approve => Some(ControlRequest::Approve {
                gate: None,
                by: self.by.clone(),
                reason: self.reason.clone(),
            }),
            Kind::Abort => Some(ControlRequest::Abort {
                by: self.by.clone(),
                reason: self.reason.clone(),
            }),
            Kind::Resume => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    accept_risk: bool,
}

/// The requests on `obj`, an abort before an approval (an abort wins), a resume last.
pub fn requests(obj: &DynamicObject) -> Vec<Request> {
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();
    let managed = obj.metadata.managed_fields.as_deref().unwrap_or_default();
    [Kind::Abort, Kind::Approve, Kind::Resume]
        .into_iter()
        .filter_map(|kind| {
            let raw = annotations.get(kind.annotation())?;
            Some(parse(kind, raw, field_manager(managed, kind.annotation())))
        })
        .collect()
}

/// A request from the annotation's value; a value that is not the JSON object asked for is
/// still a request (an operator typed `kubectl annotate … baton.dev/abort=now`), with the
/// text as its reason.
pub fn parse(kind: Kind, raw: &str, manager: Option<String>) -> Request {
    let body = match serde_json::from_str::<Body>(raw) {
        Ok(body) => body,
        Err(_) => Body {
            by: None,
            reason: Some(raw.to_owned()).filter(|r| !r.trim().is_empty()),
            accept_risk: false,
        },
    };
    let by = body.by.filter(|b| !b.trim().is_empty());
    let by = match (by, manager) {
        (Some(by), Some(m)) => format!("{by} (field manager {m})"),
        (Some(by), None) => by,
        (None, Some(m)) => format!("field manager {m}"),
        (None, None) => "unknown".to_owned(),
    };
    Request {
        kind,
        by,
        reason: body.reason.filter(|r| !r.trim().is_empty()),
        // Only a resume can accept a risk; said anywhere else it means nothing.
        accept_risk: kind == Kind::Resume && body.accept_risk,
    }
}

/// The manager that last wrote `annotation`, as `managedFields` records it.
pub fn field_manager(managed: &[ManagedFieldsEntry], annotation: &str) -> Option<String> {
    let key = format!("f:{annotation}");
    managed
        .iter()
        .filter(|m| {
            m.fields_v1.as_ref().is_some_and(|f| {
                f.0.get("f:metadata")
                    .and_then(|m| m.get("f:annotations"))
                    .and_then(|a| a.get(&key))
                    .is_some()
            })
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};

    #[test]
    fn a_request_records_its_author_and_the_field_manager() {
        let cases = [
            (
                r#"{"by":"alice (ctx admin) alice@laptop","reason":"green","at":"2026-01-01T00:00:00Z"}"#,
                Some("kubectl-annotate"),
                "alice (ctx admin) alice@laptop (field manager kubectl-annotate)",
                Some("green"),
            ),
            (r#"{"by":"bob"}"#, None, "bob", None),
            (
                "now please",
                Some("kubectl"),
                "field manager kubectl",
                Some("now please"),
            ),
            ("", None, "unknown", None),
        ];
        for (raw, manager, by, reason) in cases {
            let r = parse(Kind::Abort, raw, manager.map(str::to_owned));
            assert_eq!(r.by, by, "{raw}");
            assert_eq!(r.reason.as_deref(), reason, "{raw}");
        }
    }

    #[test]
    fn the_field_manager_is_the_latest_writer_of_that_annotation() {
        let entry = |manager: &str, secs: i64, annotation: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(Time(jiff::Timestamp::from_second(secs).unwrap())),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:metadata": {"f:annotations": {format!("f:{annotation}"): {}}}
            }))),
            ..ManagedFieldsEntry::default()
        };
        let managed = [
            entry("old", 1, APPROVE),
            entry("new", 2, APPROVE),
            entry("other", 3, ABORT),
        ];
        assert_eq!(field_manager(&managed, APPROVE).as_deref(), Some("new"));
        assert_eq!(field_manager(&managed, ABORT).as_deref(), Some("other"));
        assert_eq!(field_manager(&managed[..0], ABORT), None);
    }

    #[test]
    fn an_abort_comes_before_an_approval() {
        let mut obj = DynamicObject::new("p", &crate::resource::api_resource());
        obj.metadata.annotations = Some(
            [
                (APPROVE.to_owned(), r#"{"by":"a"}"#.to_owned()),
                (ABORT.to_owned(), r#"{"by":"b"}"#.to_owned()),
            ]
            .into(),
        );
        let kinds: Vec<Kind> = requests(&obj).iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Abort, Kind::Approve]);
    }
}
