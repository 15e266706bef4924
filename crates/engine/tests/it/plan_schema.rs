//! The JSON Schema describes the plans the parser accepts: the example plans satisfy it
//! (checked by a small structural validator below), and typical mistakes do not.

use baton_engine::plan::schema;
use serde_json::{Value, json};

const PLANS: [(&str, &str); 4] = [
    ("seed.yaml", include_str!("../../../../plans/seed.yaml")),
    (
        "rollback.yaml",
        include_str!("../../../../plans/rollback.yaml"),
    ),
    (
        "with-hooks.yaml",
        include_str!("../../../../plans/with-hooks.yaml"),
    ),
    (
        "app-safety.yaml",
        include_str!("../../../../plans/app-safety.yaml"),
    ),
];

/// Follows `$ref: "#/$defs/X"`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                root,
                root.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => schema,
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Checks `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`,
/// `items`, `minimum`/`maximum`, `anyOf` and `oneOf`; collects every violation.
fn violations(root: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if schema == &Value::Bool(true) {
        return;
    }
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            _ => true,
        };
        if !ok {
            out.push(format!("{at}: {value} is not of type {ty}"));
            return;
        }
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push(format!("{at}: {value} is not {c}"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(max), Some(n)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n > max
    {
        out.push(format!("{at}: {n} > {max}"));
    }
    for (keyword, need) in [("anyOf", 1..=usize::MAX), ("oneOf", 1..=1)] {
        if let Some(Value::Array(options)) = schema.get(keyword) {
            let passing = options
                .iter()
                .filter(|option| {
                    let mut sub = Vec::new();
                    violations(root, option, value, at, &mut sub);
                    sub.is_empty()
                })
                .count();
            if !need.contains(&passing) {
                out.push(format!(
                    "{at}: {passing} of the {keyword} alternatives match"
                ));
            }
        }
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    out.push(format!("{at}: missing required {key}"));
                }
            }
        }
        for (key, child) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(child_schema) => {
                    violations(root, child_schema, child, &format!("{at}.{key}"), out)
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: unknown property {key}")),
                    Some(extra) => violations(root, extra, child, &format!("{at}.{key}"), out),
                    None => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            violations(root, item_schema, item, &format!("{at}[{i}]"), out);
        }
    }
}

fn check(document: &Value) -> Vec<String> {
    let schema = schema();
    let mut out = Vec::new();
    violations(&schema, &schema, document, "", &mut out);
    out
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn the_schema_is_a_json_schema_with_the_plan_header_required() {
    let schema = schema();
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap()
            .contains("json-schema.org")
    );
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["required"],
        json!(["apiVersion", "kind", "metadata", "spec"])
    );
    assert_eq!(
        schema["properties"]["apiVersion"]["const"],
        "baton.dev/v1alpha1"
    );
    let text = serde_json::to_string_pretty(&schema).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, schema);
}

#[test]
fn every_object_in_the_schema_forbids_unknown_properties() {
    let schema = schema();
    let defs = schema["$defs"].as_object().unwrap();
    for (name, def) in defs {
        if def.get("properties").is_some() {
            assert_eq!(def["additionalProperties"], false, "{name}");
        }
    }
    let approval = &defs["Approval"];
    let text = approval.to_string();
    for value in ["none", "firstWave", "everyWave"] {
        assert!(text.contains(value), "{value} in {text}");
    }
    assert_eq!(
        defs["Target"]["properties"]["namespace"]["default"],
        "default"
    );
    assert_eq!(
        defs["Waves"]["properties"]["readyTimeout"]["default"],
        "10m"
    );
    assert_eq!(defs["ArbiterSpec"]["required"], json!(["url"]));
}

#[test]
fn the_example_plans_satisfy_the_schema() {
    for (name, text) in PLANS {
        assert_eq!(check(&yaml(text)), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn typical_mistakes_break_the_schema() {
    let seed = PLANS[0].1;
    let cases = [
        ("  target:\n", "  taget:\n", "unknown property taget"),
        (
            "kind: UpgradePlan",
            "kind: Deployment",
            "is not \"UpgradePlan\"",
        ),
        ("retries: 3", "retries: 11", "11 > 10"),
        ("retries: 3", "retries: three", "is not of type"),
        (
            "approval: none",
            "approval: sometimes",
            ".spec.waves.approval:",
        ),
        (
            "    url: http://127.0.0.1:8080\n",
            "",
            "missing required url",
        ),
    ];
    for (from, to, want) in cases {
        let found = check(&yaml(&seed.replacen(from, to, 1)));
        assert!(
            found.iter().any(|v| v.contains(want)),
            "{from:?} -> {to:?}: {found:?}"
        );
    }
    let no_action = format!("{seed}  hooks:\n    beforeWave:\n      - name: a\n");
    assert!(check(&yaml(&no_action)).iter().any(|v| v.contains("oneOf")));
}
