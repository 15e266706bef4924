//! The four PATCH flavours of the Kubernetes API, as pure functions over JSON:
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902, `test` included),
//! strategic merge patch and server-side apply.
//!
//! Strategic merge knows list merge keys by field name (containers by
//! `name`, readinessGates by `conditionType`, ...) instead of from Go struct
//! tags, which is exact for the pod fields Baton and kubectl touch. It
//! honours the `$patch` (replace, delete, merge), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
//! directives. As on a real apiserver it is refused for custom resources.
//!
//! Server-side apply is reduced to what clients observe on a single field
//! manager: the applied configuration is merged into the live object with the
//! same list merge keys. Field ownership (removing fields a manager stopped
//! applying, conflicts between managers) is not tracked.

use serde_json::{Map, Value};

use crate::store::ApiError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// From the request's `Content-Type`.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies `body` (the raw request body) to `target` in place.
pub fn apply(pt: PatchType, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    match pt {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })
        }
        PatchType::Merge => {
            let patch = parse_object(body)?;
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchType::Strategic => {
            let patch = parse_object(body)?;
            strategic_merge(target, &patch);
            Ok(())
        }
        PatchType::Apply => {
            let patch = parse_apply(body)?;
            server_side_apply(target, &patch);
            Ok(())
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the patch must be a JSON object"));
    }
    Ok(v)
}

/// An apply configuration: YAML or JSON (JSON is YAML).
pub fn parse_apply(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    Ok(v)
}

/// The merge key of a list field, as the Kubernetes types declare it.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "readinessGates" => "conditionType",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars merged as sets rather than replaced.
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Strategic merge patch of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    merge_map(target, patch, true);
}

/// Server-side apply of one manager's configuration (see the module doc).
pub fn server_side_apply(target: &mut Value, config: &Value) {
    merge_map(target, config, false);
}

fn merge_map(target: &mut Value, patch: &Value, directives: bool) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if directives && pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tmap) = target.as_object_mut() else {
        return;
    };
    for (k, v) in pmap {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tmap.remove(k);
            }
            Value::Object(o)
                if directives && o.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                tmap.remove(k);
            }
            Value::Object(_) => {
                let entry = tmap.entry(k.clone()).or_insert(Value::Null);
                merge_map(entry, v, directives);
            }
            Value::Array(items) => {
                let current = tmap.get(k).and_then(Value::as_array).cloned();
                let merged = match (current, merge_key(k)) {
                    (Some(cur), Some(key)) => merge_keyed_list(cur, items, key, directives),
                    (Some(cur), None) if is_set_list(k) => {
                        let mut cur = cur;
                        for item in items {
                            if !cur.contains(item) {
                                cur.push(item.clone());
                            }
                        }
                        cur
                    }
                    _ => items
                        .iter()
                        .filter(|i| !is_directive_element(i))
                        .map(strip)
                        .collect(),
                };
                tmap.insert(k.clone(), Value::Array(merged));
            }
            other => {
                tmap.insert(k.clone(), other.clone());
            }
        }
    }
    if directives {
        for (k, v) in pmap {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/")
                && let (Some(list), Some(remove)) = (
                    tmap.get_mut(field).and_then(Value::as_array_mut),
                    v.as_array(),
                )
            {
                list.retain(|x| !remove.contains(x));
            }
        }
        if let Some(keep) = pmap.get("$retainKeys").and_then(Value::as_array) {
            tmap.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
        }
    }
}

fn is_directive_element(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.contains_key("$patch"))
}

fn merge_keyed_list(
    mut cur: Vec<Value>,
    patch: &[Value],
    key: &str,
    directives: bool,
) -> Vec<Value> {
    if directives
        && patch
            .iter()
            .any(|e| is_directive_element(e) && e["$patch"] == "replace")
    {
        return patch
            .iter()
            .filter(|e| !is_directive_element(e))
            .map(strip)
            .collect();
    }
    for e in patch {
        if is_directive_element(e) {
            continue;
        }
        let id = &e[key];
        let pos = cur.iter().position(|c| !id.is_null() && c[key] == *id);
        let delete = directives && e["$patch"] == "delete";
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => merge_map(&mut cur[i], e, directives),
            (None, false) => cur.push(strip(e)),
        }
    }
    cur
}

/// A patch value with its `$` directives removed, to be stored as is.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"labels": {"app": "a", "working": "true"}, "finalizers": ["x"]},
               "spec": {"containers": [{"name": "main", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
                                       {"name": "side", "image": "s:1"}],
                        "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]}})
    }

    #[test]
    fn strategic_merge_table() {
        let cases = [
            (
                "containers merge by name",
                json!({"spec": {"containers": [{"name": "main", "image": "a:2"}]}}),
                "/spec/containers",
                json!([{"name": "main", "image": "a:2", "env": [{"name": "A", "value": "1"}]},
                       {"name": "side", "image": "s:1"}]),
            ),
            (
                "a new container is appended",
                json!({"spec": {"containers": [{"name": "third", "image": "t"}]}}),
                "/spec/containers/2/name",
                json!("third"),
            ),
            (
                "$patch delete removes one element",
                json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
                "/spec/containers/1",
                Value::Null,
            ),
            (
                "$patch replace on a list replaces it",
                json!({"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}}),
                "/spec/containers",
                json!([{"name": "only", "image": "o"}]),
            ),
            (
                "null deletes a label",
                json!({"metadata": {"labels": {"working": null}}}),
                "/metadata/labels",
                json!({"app": "a"}),
            ),
            (
                "finalizers merge as a set",
                json!({"metadata": {"finalizers": ["y", "x"]}}),
                "/metadata/finalizers",
                json!(["x", "y"]),
            ),
            (
                "$deleteFromPrimitiveList removes values",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
                "/metadata/finalizers",
                json!([]),
            ),
            (
                "$patch replace on a map replaces it",
                json!({"metadata": {"labels": {"b": "c", "$patch": "replace"}}}),
                "/metadata/labels",
                json!({"b": "c"}),
            ),
        ];
        for (name, patch, pointer, want) in cases {
            let mut p = pod();
            apply(PatchType::Strategic, &mut p, patch.to_string().as_bytes()).unwrap();
            assert_eq!(
                p.pointer(pointer).cloned().unwrap_or(Value::Null),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn merge_patch_replaces_lists() {
        let mut p = pod();
        let patch = json!({"spec": {"containers": [{"name": "main", "image": "b"}]}});
        apply(PatchType::Merge, &mut p, patch.to_string().as_bytes()).unwrap();
        assert_eq!(
            p["spec"]["containers"],
            json!([{"name": "main", "image": "b"}])
        );
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let mut p = pod();
        let ok = json!([{"op": "test", "path": "/metadata/labels/app", "value": "a"},
                        {"op": "replace", "path": "/metadata/labels/app", "value": "b"}]);
        apply(PatchType::Json, &mut p, ok.to_string().as_bytes()).unwrap();
        assert_eq!(p["metadata"]["labels"]["app"], "b");
        let bad = json!([{"op": "test", "path": "/metadata/labels/app", "value": "a"}]);
        let err = apply(PatchType::Json, &mut p, bad.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code, 422);
        let err = apply(PatchType::Json, &mut p, b"{").unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn apply_accepts_yaml_and_merges_containers_by_name() {
        let mut p = pod();
        let yaml = "spec:\n  containers:\n  - name: main\n    image: a:3\n";
        apply(PatchType::Apply, &mut p, yaml.as_bytes()).unwrap();
        assert_eq!(p["spec"]["containers"][0]["image"], "a:3");
        assert_eq!(p["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
