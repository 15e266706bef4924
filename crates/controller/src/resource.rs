//! The UpgradePlan resource as the controller sees it: untyped (`DynamicObject`), since its
//! `spec` is the plan file's spec and the plan parser is the one judge of it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

pub const GROUP: &str = "baton.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "UpgradePlan";
pub const PLURAL: &str = "upgradeplans";

/// `baton.dev/v1alpha1 upgradeplans`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The object's name (`""` for a nameless one, which the API server never serves).
pub fn name(obj: &DynamicObject) -> &str {
    obj.metadata.name.as_deref().unwrap_or_default()
}

/// The plan file an UpgradePlan stands for: its name and spec, the target's namespace
/// defaulting to the plan's own (a plan file defaults to `default`; in the cluster the
/// namespace the plan was applied in is what its author means).
pub fn plan_text(obj: &DynamicObject, namespace: &str) -> String {
    let mut spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(target) = spec.get_mut("target").and_then(Value::as_object_mut) {
        target
            .entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_owned()));
    }
    let doc = serde_json::json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {"name": name(obj)},
        "spec": spec,
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// The file name plans of this object are reported under: `upgradeplan/<ns>/<name>`.
pub fn plan_file(namespace: &str, obj: &DynamicObject) -> String {
    format!("upgradeplan/{namespace}/{}", name(obj))
}

/// An owner reference to the plan, so its ConfigMaps go with it.
pub fn owner(obj: &DynamicObject) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.to_owned(),
        name: obj.metadata.name.clone()?,
        uid: obj.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// `status.phase`, if any.
pub fn phase(obj: &DynamicObject) -> Option<&str> {
    obj.data.get("status")?.get("phase")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: Value) -> DynamicObject {
        let mut obj = DynamicObject::new("p", &api_resource()).within("team");
        obj.data = serde_json::json!({"spec": spec});
        obj
    }

    #[test]
    fn the_plan_text_is_a_plan_file_whose_target_defaults_to_the_plans_namespace() {
        let cases = [
            (serde_json::json!({"target": {"name": "s"}}), "team"),
            (
                serde_json::json!({"target": {"name": "s", "namespace": "db"}}),
                "db",
            ),
        ];
        for (spec, want) in cases {
            let text = plan_text(&object(spec), "team");
            let doc: Value = serde_yaml::from_str(&text).unwrap();
            assert_eq!(doc["apiVersion"], "baton.dev/v1alpha1");
            assert_eq!(doc["kind"], "UpgradePlan");
            assert_eq!(doc["metadata"]["name"], "p");
            assert_eq!(doc["spec"]["target"]["namespace"], want, "{text}");
        }
    }
}
