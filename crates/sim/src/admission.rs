//! Admission: what a real cluster does to an object between the request and
//! etcd. For the Advanced StatefulSet that is the CRD's structural schema
//! (types, formats, enums) plus Kruise's mutating webhook (defaults) and
//! validating webhook (the rules the engine depends on: `partition >= 0`,
//! `unorderedUpdate` only with `Parallel`, weights in 0..=100, the
//! `InPlaceUpdateReady` gate for in-place policies, immutable selector).
//!
//! A custom resource served from a stored CRD (the UpgradePlan) is pruned and checked
//! against that CRD's schema with the same functions ([`prune_with`], [`schema_errors`];
//! called by the API layer, which can read the CRD); a CRD itself gets the API server's
//! name and storage-version checks ([`crate::crd::validate`]).
//!
//! Other kinds are taken as they come, beyond a name check: the simulator's
//! own controller writes them, and clients rarely get them wrong.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::store::{ApiError, Kind};

mod bounds;
use bounds::{bounds, exactly_one_of};

/// The Kruise CRD as shipped, the source of the ASTS schema and of the OpenAPI document.
pub const ASTS_CRD_YAML: &str = include_str!("../crds/apps.kruise.io_statefulsets.yaml");

/// The `openAPIV3Schema` of the served version (`v1beta1`) of the ASTS CRD.
pub static ASTS_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let crd: Value = serde_yaml::from_str(ASTS_CRD_YAML).unwrap_or(Value::Null);
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "v1beta1"))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or(Value::Null)
});

/// Fills in what Kruise's mutating webhook defaults. Idempotent.
pub fn default(kind: Kind, obj: &mut Value) {
    if kind != Kind::StatefulSet {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("podManagementPolicy")
        .or_insert(json!("OrderedReady"));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    let retention = spec
        .entry("persistentVolumeClaimRetentionPolicy")
        .or_insert_with(|| json!({}));
    if let Some(r) = retention.as_object_mut() {
        r.entry("whenDeleted").or_insert(json!("Retain"));
        r.entry("whenScaled").or_insert(json!("Retain"));
    }
    if let Some(template) = spec.get_mut("template") {
        default_template(template);
    }
    let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
    let Some(strategy) = strategy.as_object_mut() else {
        return;
    };
    strategy.entry("type").or_insert(json!("RollingUpdate"));
    if strategy.get("type") == Some(&json!("RollingUpdate")) {
        let ru = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
        if let Some(ru) = ru.as_object_mut() {
            ru.entry("partition").or_insert(json!(0));
            ru.entry("maxUnavailable").or_insert(json!(1));
            ru.entry("podUpdatePolicy").or_insert(json!("ReCreate"));
            ru.entry("minReadySeconds").or_insert(json!(0));
        }
    }
}

/// The pod template defaults Kruise 1.5.5's webhook writes into a set (as read back from the
/// real controller): pod spec and container defaults, and `imagePullPolicy: Always` whatever
/// the tag.
fn default_template(template: &mut Value) {
    if let Some(meta) = template
        .as_object_mut()
        .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("securityContext").or_insert(json!({}));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("imagePullPolicy").or_insert(json!("Always"));
            c.entry("resources").or_insert(json!({}));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

/// Validates an object about to be stored; `old` is the stored version on update.
pub fn validate(kind: Kind, name: &str, old: Option<&Value>, obj: &Value) -> Result<(), ApiError> {
    if kind == Kind::CustomResourceDefinition {
        return crate::crd::validate(name, obj);
    }
    let mut causes = Vec::new();
    if kind == Kind::StatefulSet {
        schema_errors(&ASTS_SCHEMA, obj, "", &mut causes);
        if causes.is_empty() {
            asts_rules(obj, &mut causes);
            if let Some(old) = old {
                for (path, field) in [
                    ("spec.podManagementPolicy", "podManagementPolicy"),
                    ("spec.selector", "selector"),
                    ("spec.serviceName", "serviceName"),
                ] {
                    if old["spec"].get(field) != obj["spec"].get(field) {
                        causes.push(format!(
                            "{path}: Forbidden: updates to statefulset spec for fields other than \
                             'replicas', 'template', 'updateStrategy', 'reserveOrdinals', 'lifecycle', \
                             'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy', \
                             'volumeClaimTemplates' and 'minReadySeconds' are forbidden"
                        ));
                    }
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, name, &causes))
    }
}

/// Kruise's validating webhook, the part the engine relies on.
fn asts_rules(obj: &Value, causes: &mut Vec<String>) {
    let spec = &obj["spec"];
    if spec.is_null() {
        causes.push("spec: Required value".into());
        return;
    }
    if let Some(r) = spec["replicas"].as_i64()
        && r < 0
    {
        causes.push(format!(
            "spec.replicas: Invalid value: {r}: must be greater than or equal to 0"
        ));
    }
    let selector = &spec["selector"];
    if selector.is_null() {
        causes.push("spec.selector: Required value".into());
    } else if let Some(labels) = spec["template"]["metadata"]["labels"].as_object() {
        let labels: std::collections::BTreeMap<String, String> = labels
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        match crate::selector::from_label_selector(selector) {
            Ok(sel) if crate::selector::SelectorExt::matches(&sel, &labels) => {}
            Ok(_) => causes.push(
                "spec.template.metadata.labels: Invalid value: `selector` does not match \
                 template `labels`"
                    .into(),
            ),
            Err(e) => causes.push(format!("spec.selector: Invalid value: {e}")),
        }
    } else {
        causes.push(
            "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
                .into(),
        );
    }
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let strategy = &spec["updateStrategy"];
    let ru = &strategy["rollingUpdate"];
    if strategy["type"] == "OnDelete" && !ru.is_null() {
        causes.push(
            "spec.updateStrategy.rollingUpdate: Invalid value: only allowed for updateStrategy \
             'RollingUpdate'"
                .into(),
        );
    }
    if ru.is_null() {
        return;
    }
    if let Some(p) = ru["partition"].as_i64()
        && p < 0
    {
        causes.push(format!(
            "spec.updateStrategy.rollingUpdate.partition: Invalid value: {p}: must be greater than \
             or equal to 0"
        ));
    }
    if let Some(m) = ru["minReadySeconds"].as_i64()
        && !(0..=300).contains(&m)
    {
        causes.push(format!(
            "spec.updateStrategy.rollingUpdate.minReadySeconds: Invalid value: {m}: must be \
             between 0 and 300"
        ));
    }
    match &ru["maxUnavailable"] {
        Value::Null => {}
        Value::Number(n) => {
            if n.as_i64().is_none_or(|n| n < 1) {
                causes.push(format!(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: {n}: must \
                     be greater than 0"
                ));
            } else if !parallel && n.as_i64() != Some(1) {
                causes.push(format!(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: {n}: must \
                     be 1 when podManagementPolicy is not Parallel"
                ));
            }
        }
        Value::String(s) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<u32>().ok());
            match pct {
                Some(p) if (1..=100).contains(&p) && parallel => {}
                Some(_) if !parallel => causes.push(format!(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"{s}\": \
                     must be 1 when podManagementPolicy is not Parallel"
                )),
                _ => causes.push(format!(
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"{s}\": \
                     must be a positive integer or a percentage between 1% and 100%"
                )),
            }
        }
        other => causes.push(format!(
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: {other}"
        )),
    }
    let unordered = &ru["unorderedUpdate"];
    if !unordered.is_null() {
        if !parallel {
            causes.push(
                "spec.updateStrategy.rollingUpdate.unorderedUpdate: Invalid value: only allowed \
                 for podManagementPolicy 'Parallel'"
                    .into(),
            );
        }
        let ps = &unordered["priorityStrategy"];
        let weights = ps["weightPriority"].as_array();
        let orders = ps["orderPriority"].as_array();
        if weights.is_some_and(|w| !w.is_empty()) && orders.is_some_and(|o| !o.is_empty()) {
            causes.push(
                "spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy: Invalid \
                 value: only one of weightPriority and orderPriority can be used"
                    .into(),
            );
        }
        for (i, term) in weights.into_iter().flatten().enumerate() {
            let path = format!(
                "spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy.weightPriority[{i}]"
            );
            let w = term["weight"].as_i64().unwrap_or(-1);
            if !(0..=100).contains(&w) {
                causes.push(format!(
                    "{path}.weight: Invalid value: {}: weight must be in range 0-100",
                    term["weight"]
                ));
            }
            let sel = &term["matchSelector"];
            let empty = sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
                && sel["matchExpressions"]
                    .as_array()
                    .is_none_or(|m| m.is_empty());
            if empty {
                causes.push(format!(
                    "{path}.matchSelector: Invalid value: selector can not be empty"
                ));
            } else if let Err(e) = crate::selector::from_label_selector(sel) {
                causes.push(format!("{path}.matchSelector: Invalid value: {e}"));
            }
        }
        for (i, term) in orders.into_iter().flatten().enumerate() {
            if term["orderedKey"].as_str().is_none_or(str::is_empty) {
                causes.push(format!(
                    "spec.updateStrategy.rollingUpdate.unorderedUpdate.priorityStrategy.\
                     orderPriority[{i}].orderedKey: Invalid value: orderedKey can not be empty"
                ));
            }
        }
    }
    let policy = ru["podUpdatePolicy"].as_str().unwrap_or("ReCreate");
    if !matches!(policy, "ReCreate" | "InPlaceIfPossible" | "InPlaceOnly") {
        causes.push(format!(
            "spec.updateStrategy.rollingUpdate.podUpdatePolicy: Unsupported value: \"{policy}\": \
             supported values: \"ReCreate\", \"InPlaceIfPossible\", \"InPlaceOnly\""
        ));
    } else if policy != "ReCreate" {
        let has_gate = spec["template"]["spec"]["readinessGates"]
            .as_array()
            .is_some_and(|gs| {
                gs.iter()
                    .any(|g| g["conditionType"] == "InPlaceUpdateReady")
            });
        if !has_gate {
            causes.push(format!(
                "spec.template.spec.readinessGates: Required value: 'InPlaceUpdateReady' must be \
                 in readinessGates when podUpdatePolicy is {policy}"
            ));
        }
    }
}

/// Checks `value` against a structural OpenAPI v3 schema, the subset CRDs use.
/// Unknown fields are kept, as with `x-kubernetes-preserve-unknown-fields`;
/// `required` is not enforced under `.status`, which only controllers write.
pub fn schema_errors(schema: &Value, value: &Value, path: &str, causes: &mut Vec<String>) {
    if schema.is_null() || value.is_null() {
        return;
    }
    let shown = if path.is_empty() { "<root>" } else { path };
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            causes.push(format!(
                "{shown}: Invalid value: \"{}\": {shown} in body must be of type integer,string: \"{}\"",
                type_name(value),
                type_name(value)
            ));
        }
        return;
    }
    let want = schema["type"].as_str().unwrap_or("");
    let ok = match want {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !ok {
        causes.push(format!(
            "{shown}: Invalid value: \"{}\": {shown} in body must be of type {want}: \"{}\"",
            type_name(value),
            type_name(value)
        ));
        return;
    }
    if want == "integer" && schema["format"] == "int32" {
        let fits = value.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
        if !fits {
            causes.push(format!(
                "{shown}: Invalid value: {value}: {shown} in body should be less than or equal to 2147483647"
            ));
        }
    }
    if let Some(min) = schema["minimum"].as_f64()
        && value.as_f64().is_some_and(|v| v < min)
    {
        causes.push(format!(
            "{shown}: Invalid value: {value}: {shown} in body should be greater than or equal to {min}"
        ));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        causes.push(format!(
            "{shown}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    bounds(schema, value, shown, causes);
    match value {
        Value::Object(map) => {
            exactly_one_of(schema, map, shown, causes);
            if path != ".status"
                && !path.starts_with(".status.")
                && let Some(required) = schema["required"].as_array()
            {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        causes.push(format!(
                            "{}.{r}: Required value",
                            shown.trim_start_matches('.')
                        ));
                    }
                }
            }
            let props = schema["properties"].as_object();
            for (k, v) in map {
                let sub = props
                    .and_then(|p| p.get(k))
                    .unwrap_or(&schema["additionalProperties"]);
                if sub.is_object() {
                    // Only an object schema constrains; `additionalProperties: true` does not.
                    schema_errors(sub, v, &format!("{path}.{k}"), causes);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                schema_errors(&schema["items"], v, &format!("{path}[{i}]"), causes);
            }
        }
        _ => {}
    }
}

/// Removes the fields the kind's structural schema does not declare, as the
/// apiserver prunes custom resources, and returns their paths (for
/// `fieldValidation=Strict`, which refuses them instead). Kinds without a
/// schema here are left alone. `metadata` is never pruned.
pub fn prune_unknown(kind: Kind, obj: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    if kind == Kind::StatefulSet {
        prune(&ASTS_SCHEMA, obj, "", &mut removed);
    }
    removed
}

/// Removes from `obj` the fields a structural `schema` (a CRD's `openAPIV3Schema`) does not
/// know, as the API server prunes a custom resource, and names them.
pub fn prune_with(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    prune(schema, obj, "", &mut removed);
    removed
}

fn prune(schema: &Value, value: &mut Value, path: &str, removed: &mut Vec<String>) {
    if schema.is_null() || schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let extra = &schema["additionalProperties"];
            if props.is_none() && !extra.is_object() {
                // An open object (`type: object` alone, e.g. metadata): nothing to prune.
                return;
            }
            let mut unknown = Vec::new();
            for (k, v) in map.iter_mut() {
                let here = format!("{path}.{k}");
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => prune(sub, v, &here, removed),
                    None if extra.is_object() => prune(extra, v, &here, removed),
                    None => unknown.push(k.clone()),
                }
            }
            for k in unknown {
                map.remove(&k);
                removed.push(format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                prune(&schema["items"], v, &format!("{path}[{i}]"), removed);
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asts() -> Value {
        json!({
            "apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
            "metadata": {"name": "s"},
            "spec": {
                "replicas": 3, "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "s"}},
                "template": {"metadata": {"labels": {"app": "s"}},
                             "spec": {"containers": [{"name": "main", "image": "a"}],
                                      "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                    "partition": 3, "maxUnavailable": 1, "podUpdatePolicy": "InPlaceIfPossible",
                    "unorderedUpdate": {"priorityStrategy": {"weightPriority": [
                        {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}}]}}}}
            }
        })
    }

    fn set(obj: &mut Value, pointer: &str, v: Value) {
        *obj.pointer_mut(pointer).unwrap() = v;
    }

    #[test]
    fn the_schema_is_loaded_from_the_crd() {
        assert_eq!(ASTS_SCHEMA["type"], "object");
        assert!(ASTS_SCHEMA["properties"]["spec"]["properties"]["updateStrategy"].is_object());
    }

    #[test]
    fn asts_validation_table() {
        let p = "/spec/updateStrategy/rollingUpdate";
        let ru = |f: &str| format!("{p}/{f}");
        let cases: Vec<(&str, String, Value, Option<&str>)> = vec![
            (
                "a valid set passes",
                "/spec/replicas".into(),
                json!(3),
                None,
            ),
            (
                "a negative partition",
                ru("partition"),
                json!(-1),
                Some("partition: Invalid value: -1"),
            ),
            (
                "a percentage partition",
                ru("partition"),
                json!("50%"),
                Some("must be of type integer"),
            ),
            (
                "a fractional partition",
                ru("partition"),
                json!(1.5),
                Some("must be of type integer"),
            ),
            (
                "a weight over 100",
                ru("unorderedUpdate/priorityStrategy/weightPriority/0/weight"),
                json!(101),
                Some("weight must be in range"),
            ),
            (
                "OrderedReady with unorderedUpdate",
                "/spec/podManagementPolicy".into(),
                json!("OrderedReady"),
                Some("only allowed for podManagementPolicy 'Parallel'"),
            ),
            (
                "in-place without the gate",
                "/spec/template/spec/readinessGates".into(),
                json!([]),
                Some("InPlaceUpdateReady"),
            ),
            (
                "a selector that misses the template",
                "/spec/selector".into(),
                json!({"matchLabels": {"app": "x"}}),
                Some("does not match"),
            ),
            (
                "zero maxUnavailable",
                ru("maxUnavailable"),
                json!(0),
                Some("must be greater than 0"),
            ),
            (
                "a percentage maxUnavailable",
                ru("maxUnavailable"),
                json!("20%"),
                None,
            ),
        ];
        for (name, pointer, v, want) in cases {
            let mut obj = asts();
            set(&mut obj, &pointer, v);
            let got = validate(Kind::StatefulSet, "s", None, &obj);
            match (want, got) {
                (None, Ok(())) => {}
                (Some(w), Err(e)) => {
                    assert_eq!(e.code, 422, "{name}");
                    assert!(e.message.contains(w), "{name}: {}", e.message);
                }
                (w, g) => panic!("{name}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported_but_open_objects_are_kept() {
        let mut obj = asts();
        obj["spec"]["bogus"] = json!(1);
        obj["spec"]["updateStrategy"]["rollingUpdate"]["typo"] = json!("x");
        obj["spec"]["template"]["spec"]["anything"] = json!(true);
        obj["metadata"]["labels"] = json!({"a": "b"});
        let removed = prune_unknown(Kind::StatefulSet, &mut obj);
        assert_eq!(
            removed,
            [".spec.updateStrategy.rollingUpdate.typo", ".spec.bogus"]
        );
        assert!(obj["spec"].get("bogus").is_none());
        assert_eq!(obj["spec"]["template"]["spec"]["anything"], true);
        assert_eq!(obj["metadata"]["labels"]["a"], "b");
        assert!(prune_unknown(Kind::Pod, &mut json!({"x": 1})).is_empty());
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = asts();
        let mut new = asts();
        set(&mut new, "/spec/selector", json!({"matchLabels": {}}));
        let err = validate(Kind::StatefulSet, "s", Some(&old), &new).unwrap_err();
        assert!(
            err.message.contains("spec.selector: Forbidden"),
            "{}",
            err.message
        );
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut obj =
            json!({"spec": {"replicas": 2, "updateStrategy": {"rollingUpdate": {"partition": 2}}}});
        default(Kind::StatefulSet, &mut obj);
        assert_eq!(obj["spec"]["replicas"], 2);
        assert_eq!(obj["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(obj["spec"]["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(
            obj["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            2
        );
        assert_eq!(
            obj["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
            1
        );
    }

    #[test]
    fn bounds_and_exactly_one_of_are_checked_like_the_api_server() {
        let schema = json!({"type": "object", "properties": {
            "hooks": {"type": "array", "items": {
                "type": "object",
                "oneOf": [{"required": ["sleep"]}, {"required": ["approval"]}],
                "properties": {"name": {"type": "string", "maxLength": 3},
                               "sleep": {"type": "object"}, "approval": {"type": "object"}}}},
            "retries": {"type": "integer", "maximum": 10},
            "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "timeout": {"type": "string", "pattern": "^[0-9]+s$"},
            "port": {"x-kubernetes-int-or-string": true,
                     "anyOf": [{"type": "integer"}, {"type": "string"}]},
        }});
        let causes = |value: Value| {
            let mut causes = Vec::new();
            schema_errors(&schema, &value, "", &mut causes);
            causes
        };
        assert_eq!(
            causes(json!({"hooks": [{"name": "a", "sleep": {}}], "retries": 10,
                          "command": ["x"], "port": "http", "timeout": "5s"})),
            Vec::<String>::new()
        );
        let table = [
            (
                json!({"hooks": [{"sleep": {}, "approval": {}}]}),
                "Found 2 valid alternatives",
            ),
            (
                json!({"hooks": [{"name": "a"}]}),
                "Found 0 valid alternatives",
            ),
            (
                json!({"hooks": [{"name": "long", "sleep": {}}]}),
                "may not be longer than 3",
            ),
            (json!({"retries": 11}), "less than or equal to 10"),
            (json!({"command": []}), "at least 1 items"),
            (json!({"timeout": "10"}), "should match '^[0-9]+s$'"),
        ];
        for (value, want) in table {
            let got = causes(value.clone());
            assert_eq!(got.len(), 1, "{value}: {got:?}");
            assert!(got[0].contains(want), "{value}: {got:?}");
        }
    }
}
