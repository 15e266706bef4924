//! Pure builders of the writes Baton makes, as values: JSON patches whose first op
//! `test`s the value being replaced (or, when the field is absent, the object's
//! `resourceVersion`), so a concurrent change fails the write instead of being
//! overwritten. Also the local strategic merge of `spec.template`: a CRD does not
//! accept strategic-merge patches, so Baton computes the new template itself and
//! writes it whole, guarded by a `test` of the old one.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::k8s::SELECTED_LABEL;

/// A JSON patch as plain values (RFC 6902 ops), comparable in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPatch(pub Vec<Value>);

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("container {0:?} named in update.images is not in the pod template")]
    UnknownContainer(String),
    #[error("the pod template is not an object")]
    BadTemplate,
    #[error("update.templatePatch must be an object")]
    BadTemplatePatch,
    #[error(
        "the statefulset uses orderPriority; baton ranks the wave with weightPriority, which Kruise forbids alongside it"
    )]
    OrderPriority,
    #[error("internal: built an invalid json patch")]
    Invalid(#[source] serde_json::Error),
}

impl JsonPatch {
    pub fn into_patch(self) -> Result<json_patch::Patch, PatchError> {
        serde_json::from_value(Value::Array(self.0)).map_err(PatchError::Invalid)
    }
}

/// Escapes one JSON-pointer segment (`baton.dev/selected` -> `baton.dev~1selected`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer(path: &[&str]) -> String {
    path.iter().map(|s| format!("/{}", escape(s))).collect()
}

fn lookup<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(doc, |v, k| v.get(*k))
        .filter(|v| !v.is_null())
}

fn resource_version(doc: &Value) -> Value {
    lookup(doc, &["metadata", "resourceVersion"])
        .cloned()
        .unwrap_or(Value::Null)
}

/// Ops setting `path` in `doc` to `new`; `None` when it already holds it.
pub fn set_ops(doc: &Value, path: &[&str], new: Value) -> Option<Vec<Value>> {
    if let Some(cur) = lookup(doc, path) {
        if *cur == new {
            return None;
        }
        let p = pointer(path);
        return Some(vec![
            json!({"op": "test", "path": p, "value": cur}),
            json!({"op": "replace", "path": p, "value": new}),
        ]);
    }
    // The deepest existing ancestor gets the missing levels as one nested object.
    let existing = (0..path.len())
        .rev()
        .find(|&n| lookup(doc, &path[..n]).is_some_and(Value::is_object))
        .unwrap_or(0);
    let value = path[existing + 1..]
        .iter()
        .rev()
        .fold(new, |v, k| json!({ *k: v }));
    Some(vec![
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version(doc)}),
        json!({"op": "add", "path": pointer(&path[..=existing]), "value": value}),
    ])
}

/// Ops removing `path` from `doc`; `None` when it is absent.
pub fn remove_ops(doc: &Value, path: &[&str]) -> Option<Vec<Value>> {
    let cur = lookup(doc, path)?;
    let p = pointer(path);
    Some(vec![
        json!({"op": "test", "path": p, "value": cur}),
        json!({"op": "remove", "path": p}),
    ])
}

const PARTITION: [&str; 4] = ["spec", "updateStrategy", "rollingUpdate", "partition"];
const UNORDERED: [&str; 4] = ["spec", "updateStrategy", "rollingUpdate", "unorderedUpdate"];

/// The current partition of an ASTS document, `None` when unset.
pub fn partition_of(sts: &Value) -> Option<u64> {
    lookup(sts, &PARTITION).and_then(Value::as_u64)
}

/// Set `rollingUpdate.partition` to `target`; `None` when it already is.
pub fn partition_patch(sts: &Value, target: u32) -> Option<JsonPatch> {
    set_ops(sts, &PARTITION, json!(target)).map(JsonPatch)
}

/// The weight-priority term that ranks the wave's pods first.
pub fn selected_term() -> Value {
    json!({"weight": 100, "matchSelector": {"matchLabels": {SELECTED_LABEL: "true"}}})
}

fn is_selected_term(term: &Value) -> bool {
    term.pointer("/matchSelector/matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| m.len() == 1 && m.get(SELECTED_LABEL).is_some())
        && term
            .pointer("/matchSelector/matchExpressions")
            .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty))
}

/// `unorderedUpdate` with Baton's term first (weight 100) and every other term kept in order.
pub fn desired_unordered(current: Option<&Value>) -> Result<Value, PatchError> {
    let mut unordered = current
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let strategy = unordered
        .as_object_mut()
        .ok_or(PatchError::BadTemplate)?
        .entry("priorityStrategy")
        .or_insert_with(|| json!({}));
    if !strategy.is_object() {
        *strategy = json!({});
    }
    if strategy
        .get("orderPriority")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(PatchError::OrderPriority);
    }
    let others: Vec<Value> = strategy
        .get("weightPriority")
        .and_then(Value::as_array)
        .map(|terms| {
            terms
                .iter()
                .filter(|t| !is_selected_term(t))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut terms = vec![selected_term()];
    terms.extend(others);
    if let Some(s) = strategy.as_object_mut() {
        s.remove("orderPriority");
        s.insert("weightPriority".into(), Value::Array(terms));
    }
    Ok(unordered)
}

/// Make the ASTS rank `baton.dev/selected=true` above everything; `None` when it already does.
pub fn priority_patch(sts: &Value) -> Result<Option<JsonPatch>, PatchError> {
    let desired = desired_unordered(lookup(sts, &UNORDERED))?;
    Ok(set_ops(sts, &UNORDERED, desired).map(JsonPatch))
}

/// Set (`Some`) or remove (`None`) pod labels; `None` when every label already matches.
pub fn label_patch(pod: &Value, desired: &BTreeMap<String, Option<String>>) -> Option<JsonPatch> {
    let mut ops = Vec::new();
    let has_labels = lookup(pod, &["metadata", "labels"]).is_some_and(Value::is_object);
    let mut fresh = Map::new();
    for (key, want) in desired {
        let path = ["metadata", "labels", key.as_str()];
        match want {
            Some(v) if !has_labels => {
                fresh.insert(key.clone(), json!(v));
            }
            Some(v) => ops.extend(set_ops(pod, &path, json!(v)).unwrap_or_default()),
            None => ops.extend(remove_ops(pod, &path).unwrap_or_default()),
        }
    }
    if !fresh.is_empty() {
        ops.extend(set_ops(pod, &["metadata", "labels"], Value::Object(fresh)).unwrap_or_default());
    }
    (!ops.is_empty()).then_some(JsonPatch(ops))
}

/// Replace `spec.template` (guarded by a test of the old one); `None` when it already matches.
pub fn template_patch(sts: &Value, new_template: Value) -> Option<JsonPatch> {
    set_ops(sts, &["spec", "template"], new_template).map(JsonPatch)
}

/// The template after setting images by container name and merging the template patch.
pub fn updated_template(
    template: &Value,
    images: &BTreeMap<String, String>,
    template_patch: Option<&Value>,
) -> Result<Value, PatchError> {
    let mut out = template.clone();
    if !out.is_object() {
        return Err(PatchError::BadTemplate);
    }
    if let Some(p) = template_patch.filter(|p| !p.is_null()) {
        if !p.is_object() {
            return Err(PatchError::BadTemplatePatch);
        }
        strategic_merge(&mut out, p);
    }
    for (container, image) in images {
        let mut found = false;
        for list in ["containers", "initContainers"] {
            if let Some(cs) = out
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Value::as_array_mut)
            {
                for c in cs
                    .iter_mut()
                    .filter(|c| c.get("name").and_then(Value::as_str) == Some(container))
                {
                    c["image"] = json!(image);
                    found = true;
                }
            }
        }
        if !found {
            return Err(PatchError::UnknownContainer(container.clone()));
        }
    }
    Ok(out)
}

/// Merge key of the lists of a pod template that strategic merge merges by key.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "readinessGates" => "conditionType",
        "hostAliases" => "ip",
        _ => return None,
    })
}

/// A strategic merge of `patch` into `target`, for the fields a pod template has: maps
/// merge, `null` deletes, keyed lists merge by their key (`$patch: delete` removes an
/// element), other lists are replaced, and `$patch: replace` replaces a map.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch_map.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Array(items) => match (
                merge_key(key),
                target_map.get_mut(key).and_then(Value::as_array_mut),
            ) {
                (Some(mk), Some(existing)) => merge_list(existing, items, mk),
                _ => {
                    let kept = items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .cloned()
                        .collect();
                    target_map.insert(key.clone(), Value::Array(kept));
                }
            },
            Value::Object(_) => {
                strategic_merge(target_map.entry(key.clone()).or_insert(Value::Null), value)
            }
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, false) => existing.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(rolling: Value) -> Value {
        json!({"metadata": {"name": "sample", "resourceVersion": "41"},
               "spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}})
    }

    #[test]
    fn partition_patches_test_the_old_value_or_the_resource_version() {
        let cases = vec![
            (
                sts(json!({"partition": 5})),
                3,
                Some(vec![
                    json!({"op": "test", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 5}),
                    json!({"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 3}),
                ]),
            ),
            (sts(json!({"partition": 3})), 3, None),
            (
                sts(json!({})),
                5,
                Some(vec![
                    json!({"op": "test", "path": "/metadata/resourceVersion", "value": "41"}),
                    json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 5}),
                ]),
            ),
            (
                json!({"metadata": {"resourceVersion": "7"}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
                5,
                Some(vec![
                    json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"}),
                    json!({"op": "add", "path": "/spec/updateStrategy/rollingUpdate", "value": {"partition": 5}}),
                ]),
            ),
        ];
        for (doc, target, want) in cases {
            assert_eq!(
                partition_patch(&doc, target).map(|p| p.0),
                want,
                "{doc} -> {target}"
            );
        }
    }

    #[test]
    fn the_selected_term_goes_first_and_other_terms_are_kept() {
        let other = json!({"weight": 50, "matchSelector": {"matchLabels": {"zone": "a"}}});
        let cases = vec![
            (
                None,
                json!({"priorityStrategy": {"weightPriority": [selected_term()]}}),
            ),
            (
                Some(json!({"priorityStrategy": {"weightPriority": [other.clone()]}})),
                json!({"priorityStrategy": {"weightPriority": [selected_term(), other.clone()]}}),
            ),
            (
                Some(
                    json!({"priorityStrategy": {"weightPriority": [other.clone(),
                    {"weight": 10, "matchSelector": {"matchLabels": {"baton.dev/selected": "true"}}}]}}),
                ),
                json!({"priorityStrategy": {"weightPriority": [selected_term(), other.clone()]}}),
            ),
            (
                Some(json!({})),
                json!({"priorityStrategy": {"weightPriority": [selected_term()]}}),
            ),
        ];
        for (current, want) in cases {
            assert_eq!(
                desired_unordered(current.as_ref()).unwrap(),
                want,
                "{current:?}"
            );
        }
        let ordered = json!({"priorityStrategy": {"orderPriority": [{"orderedKey": "x"}]}});
        assert!(matches!(
            desired_unordered(Some(&ordered)),
            Err(PatchError::OrderPriority)
        ));
    }

    #[test]
    fn priority_patch_is_absent_when_the_term_is_already_first() {
        let done = sts(
            json!({"unorderedUpdate": {"priorityStrategy": {"weightPriority": [selected_term()]}}}),
        );
        assert_eq!(priority_patch(&done).unwrap(), None);
        let missing = sts(json!({"partition": 5}));
        let ops = priority_patch(&missing).unwrap().unwrap().0;
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "41"})
        );
        assert_eq!(
            ops[1]["path"],
            "/spec/updateStrategy/rollingUpdate/unorderedUpdate"
        );
    }

    #[test]
    fn label_patches_touch_only_labels_that_differ() {
        let pod = json!({"metadata": {"name": "sample-1", "resourceVersion": "9",
            "labels": {"working": "true", "baton.dev/selected": "true", "app": "sample"}}});
        let want = |pairs: &[(&str, Option<&str>)]| -> BTreeMap<String, Option<String>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect()
        };
        let cases = vec![
            (
                want(&[
                    ("working", Some("true")),
                    ("baton.dev/selected", Some("true")),
                ]),
                None,
            ),
            (
                want(&[("working", Some("false"))]),
                Some(vec![
                    json!({"op": "test", "path": "/metadata/labels/working", "value": "true"}),
                    json!({"op": "replace", "path": "/metadata/labels/working", "value": "false"}),
                ]),
            ),
            (
                want(&[("baton.dev/selected", None)]),
                Some(vec![
                    json!({"op": "test", "path": "/metadata/labels/baton.dev~1selected", "value": "true"}),
                    json!({"op": "remove", "path": "/metadata/labels/baton.dev~1selected"}),
                ]),
            ),
            (
                want(&[("tier", Some("db")), ("gone", None)]),
                Some(vec![
                    json!({"op": "test", "path": "/metadata/resourceVersion", "value": "9"}),
                    json!({"op": "add", "path": "/metadata/labels/tier", "value": "db"}),
                ]),
            ),
        ];
        for (desired, ops) in cases {
            assert_eq!(label_patch(&pod, &desired).map(|p| p.0), ops, "{desired:?}");
        }
        let bare = json!({"metadata": {"name": "x", "resourceVersion": "1"}});
        assert_eq!(
            label_patch(&bare, &want(&[("working", Some("true"))])).map(|p| p.0),
            Some(vec![
                json!({"op": "test", "path": "/metadata/resourceVersion", "value": "1"}),
                json!({"op": "add", "path": "/metadata/labels", "value": {"working": "true"}}),
            ])
        );
    }

    #[test]
    fn built_patches_are_valid_rfc6902() {
        let ops = partition_patch(&sts(json!({"partition": 5})), 3).unwrap();
        let mut doc = sts(json!({"partition": 5}));
        json_patch::patch(&mut doc, &ops.into_patch().unwrap()).unwrap();
        assert_eq!(partition_of(&doc), Some(3));
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "sample"}},
               "spec": {"containers": [
                   {"name": "main", "image": "alpine:3.18.2", "env": [{"name": "A", "value": "1"}]},
                   {"name": "side", "image": "busybox:1"}]}})
    }

    #[test]
    fn images_are_set_by_container_name() {
        let images = BTreeMap::from([("main".to_owned(), "alpine:3.18.0".to_owned())]);
        let out = updated_template(&template(), &images, None).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "alpine:3.18.0");
        assert_eq!(out["spec"]["containers"][1]["image"], "busybox:1");
        let same = BTreeMap::from([("main".to_owned(), "alpine:3.18.2".to_owned())]);
        assert_eq!(
            updated_template(&template(), &same, None).unwrap(),
            template()
        );
        let unknown = BTreeMap::from([("db".to_owned(), "x".to_owned())]);
        assert!(
            matches!(updated_template(&template(), &unknown, None), Err(PatchError::UnknownContainer(c)) if c == "db")
        );
    }

    #[test]
    fn template_patches_merge_strategically() {
        let cases = vec![
            (
                json!({"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}}),
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ),
            (
                json!({"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": "9"}]}]}}),
                json!([{"name": "A", "value": "9"}]),
            ),
            (
                json!({"spec": {"containers": [{"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}}),
                json!([]),
            ),
        ];
        for (patch, env) in cases {
            let out = updated_template(&template(), &BTreeMap::new(), Some(&patch)).unwrap();
            assert_eq!(out["spec"]["containers"][0]["env"], env, "{patch}");
            assert_eq!(out["spec"]["containers"][1]["name"], "side");
        }
        let labels = updated_template(
            &template(),
            &BTreeMap::new(),
            Some(&json!({"metadata": {"labels": {"app": null, "v": "2"}}})),
        )
        .unwrap();
        assert_eq!(labels["metadata"]["labels"], json!({"v": "2"}));
    }
}
