//! What `engine status|history|approve|abort --in-cluster NAME` need: the run's record as
//! the controller stored it, and the annotation that carries an operator's request.

use baton_engine::store::{RunStore as _, RunView, StoreError};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::requests::Kind;
use crate::resource;
use crate::store::{KubeStore, Location, image};

/// The run of UpgradePlan `namespace/name` as its ConfigMaps hold it; `None` before the
/// controller started it.
///
/// # Errors
/// Store errors (the API server, a damaged record).
pub async fn load_view(
    config: kube::Config,
    namespace: &str,
    name: &str,
) -> Result<Option<RunView>, StoreError> {
    let location = Location {
        config,
        namespace: namespace.to_owned(),
        plan: name.to_owned(),
        owner: None,
        chunk_budget: image::DEFAULT_CHUNK_BUDGET,
    };
    let described = location.describe();
    tokio::task::spawn_blocking(move || {
        let record = KubeStore::open(location)?.load()?;
        Ok(record.map(|r| RunView::of(&r, None)))
    })
    .await
    .unwrap_or_else(|e| {
        Err(StoreError::Remote {
            location: described,
            what: "read".to_owned(),
            source: e.to_string().into(),
        })
    })
}

/// How `engine` names itself in `managedFields`.
pub const FIELD_MANAGER: &str = "engine";

/// What an operator asks, as the annotation carries it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub kind: Kind,
    pub by: &'a str,
    pub reason: Option<&'a str>,
    /// Only for a resume: go on past a safety stop.
    pub accept_risk: bool,
}

/// The merge patch that puts a request on a plan: `{"by", "reason", "at"}` (and
/// `"acceptRisk": true` for a resume that accepts the risk) as JSON.
pub fn request_patch(ask: Ask<'_>, at: jiff::Timestamp) -> Value {
    let Ask {
        kind,
        by,
        reason,
        accept_risk,
    } = ask;
    let mut body = json!({"by": by, "reason": reason, "at": at.to_string()});
    if accept_risk {
        body["acceptRisk"] = true.into();
    }
    json!({"metadata": {"annotations": {kind.annotation(): body.to_string()}}})
}

/// Puts request `kind` on UpgradePlan `namespace/name` (the controller hands it to the run
/// and removes it). Returns the plan as it is now.
///
/// # Errors
/// The API server's (404 when there is no such plan).
pub async fn send_request(
    client: kube::Client,
    namespace: &str,
    name: &str,
    ask: Ask<'_>,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, namespace, &resource::api_resource());
    let patch = request_patch(ask, jiff::Timestamp::now());
    // The field manager names the client in the plan's managedFields, which the
    // controller records with the request.
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_an_annotation_holding_json_that_the_controller_parses_back() {
        let at: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let cases = [
            (Kind::Approve, Some("green"), false),
            (Kind::Abort, None, false),
            (Kind::Resume, Some("fixed"), true),
            (Kind::Resume, None, false),
        ];
        for (kind, reason, accept_risk) in cases {
            let ask = Ask {
                kind,
                by: "alice@laptop",
                reason,
                accept_risk,
            };
            let patch = request_patch(ask, at);
            let raw = patch["metadata"]["annotations"][kind.annotation()]
                .as_str()
                .unwrap();
            let back = crate::requests::parse(kind, raw, None);
            assert_eq!(back.by, "alice@laptop");
            assert_eq!(back.reason.as_deref(), reason);
            assert_eq!(back.accept_risk, accept_risk, "{raw}");
            let body: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(body["at"], "2026-01-01T00:00:00Z");
        }
    }
}
