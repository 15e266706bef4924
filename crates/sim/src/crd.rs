//! CustomResourceDefinitions and the custom resources they define (issue #16's
//! UpgradePlan): what the apiextensions API server does in a real cluster, reduced to
//! what Baton's clients see.
//!
//! A CRD is stored as given, with the status the API server reports once it accepted the
//! names (`NamesAccepted`, `Established`). A custom resource is served only while its CRD
//! is stored: before that its URLs answer 404 and discovery does not list it, as a real
//! cluster does, so a client that forgot to install the CRD fails here too. Its spec and
//! status are opaque JSON; the `kubectl get` columns come from the CRD's
//! `additionalPrinterColumns`. The simulator never knows the UpgradePlan's schema itself.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::store::{ApiError, Kind, Store};

/// The custom resources the simulator can serve, each once its CRD is stored.
pub const CUSTOM: [Kind; 1] = [Kind::UpgradePlan];

/// `<plural>.<group>`: the name a kind's CRD must have.
pub fn crd_name(kind: Kind) -> String {
    format!("{}.{}", kind.plural(), kind.group())
}

/// The stored CRD that defines `kind` at its version, if `kind` is a custom resource whose
/// CRD is installed (and not being deleted) and serves that version.
pub fn definition(store: &Store, kind: Kind) -> Option<Arc<Value>> {
    if !CUSTOM.contains(&kind) {
        return None;
    }
    // Shared, not copied: a CRD is tens of kilobytes and this runs on every request.
    let crd = store.get_shared(Kind::CustomResourceDefinition, "", &crd_name(kind))?;
    let deleting = !crd["metadata"]["deletionTimestamp"].is_null();
    let served = version(&crd, kind.version()).is_some_and(|v| v["served"] == true);
    (served && !deleting).then_some(crd)
}

/// Whether `kind` is served now: every built-in kind, and a custom one once its CRD is.
pub fn served(store: &Store, kind: Kind) -> bool {
    !CUSTOM.contains(&kind) || definition(store, kind).is_some()
}

/// The kinds served now, in [`Kind::ALL`] order (what discovery lists).
pub fn served_kinds(store: &Store) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| served(store, *k))
        .collect()
}

/// One entry of `spec.versions`.
fn version<'a>(crd: &'a Value, name: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// The `additionalPrinterColumns` of `kind`'s version in its CRD (empty: none declared).
pub fn printer_columns(crd: &Value, kind: Kind) -> Vec<Value> {
    version(crd, kind.version())
        .and_then(|v| v["additionalPrinterColumns"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// The `openAPIV3Schema` of `kind`'s version in its CRD.
pub fn schema(crd: &Value, kind: Kind) -> Option<&Value> {
    version(crd, kind.version()).map(|v| &v["schema"]["openAPIV3Schema"])
}

/// The checks the API server makes on a CRD that Baton's files could get wrong: the name
/// is `<plural>.<group>`, and there is exactly one storage version.
///
/// # Errors
/// `422 Invalid` naming each problem.
pub fn validate(name: &str, crd: &Value) -> Result<(), ApiError> {
    let spec = &crd["spec"];
    let mut causes = Vec::new();
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() {
        causes.push("spec.group: Required value".to_string());
    }
    if plural.is_empty() {
        causes.push("spec.names.plural: Required value".to_string());
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        causes.push("spec.names.kind: Required value".to_string());
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        causes.push(format!(
            "spec.scope: Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
            spec["scope"]
        ));
    }
    if format!("{plural}.{group}") != name {
        causes.push(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let storage = spec["versions"]
        .as_array()
        .map_or(0, |vs| vs.iter().filter(|v| v["storage"] == true).count());
    if storage != 1 {
        causes.push(format!(
            "spec.versions: Invalid value: {}: must have exactly one version marked as storage version",
            spec["versions"]
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            Kind::CustomResourceDefinition,
            name,
            &causes,
        ))
    }
}

/// The status a real API server reports on a CRD it accepted: names accepted, established,
/// the storage version recorded.
pub fn accepted_status(crd: &Value, now: &str) -> Value {
    let condition = |ty: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": "True", "lastTransitionTime": now,
               "reason": reason, "message": message})
    };
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "acceptedNames": crd["spec"]["names"],
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

/// After a CRD is deleted, its custom resources go with it, as the API server's
/// finalizer removes them.
pub fn remove_instances(store: &Store, crd: &Value) {
    for kind in CUSTOM {
        if crd["metadata"]["name"] != crd_name(kind).as_str() {
            continue;
        }
        for object in store.list_shared(kind, None).0 {
            let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            // Another writer may have removed it meanwhile; that is fine.
            let _ = store.delete(kind, ns, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, storage: &[bool]) -> Value {
        let versions: Vec<Value> = storage
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"name": format!("v{i}"), "served": true, "storage": s}))
            .collect();
        json!({"metadata": {"name": name}, "spec": {
            "group": "baton.dev", "scope": "Namespaced",
            "names": {"plural": plural, "kind": "UpgradePlan"}, "versions": versions}})
    }

    #[test]
    fn a_crd_is_checked_for_its_name_and_one_storage_version() {
        assert_eq!(
            validate(
                "upgradeplans.baton.dev",
                &crd("upgradeplans.baton.dev", "upgradeplans", &[true])
            ),
            Ok(())
        );
        let wrong_name =
            validate("plans.baton.dev", &crd("x", "upgradeplans", &[true])).unwrap_err();
        assert_eq!(wrong_name.code, 422);
        assert!(
            wrong_name.causes[0].starts_with("metadata.name"),
            "{wrong_name:?}"
        );
        let two = validate(
            "upgradeplans.baton.dev",
            &crd("upgradeplans.baton.dev", "upgradeplans", &[true, true]),
        )
        .unwrap_err();
        assert!(two.causes[0].contains("exactly one version"), "{two:?}");
    }

    #[test]
    fn upgradeplans_are_served_only_while_their_crd_is_stored() {
        let store = Store::new();
        assert!(!served(&store, Kind::UpgradePlan));
        assert!(served(&store, Kind::ConfigMap));
        let mut definition = crd("upgradeplans.baton.dev", "upgradeplans", &[true]);
        definition["spec"]["versions"][0]["name"] = json!("v1alpha1");
        store
            .create(Kind::CustomResourceDefinition, "", definition)
            .unwrap();
        assert!(served(&store, Kind::UpgradePlan));
        assert!(served_kinds(&store).contains(&Kind::UpgradePlan));
        store
            .delete(Kind::CustomResourceDefinition, "", "upgradeplans.baton.dev")
            .unwrap();
        assert!(!served_kinds(&store).contains(&Kind::UpgradePlan));
    }
}
