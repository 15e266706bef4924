use serde_json::{Value, json};

use super::*;

fn convert(node: Value, defs: Value) -> Result<Value, CrdError> {
    structural(&node, &defs, "x")
}

#[test]
fn the_converter_turns_json_schema_constructs_into_structural_ones() {
    let defs = json!({
        "Roles": {"type": "object", "description": "from the def",
                  "properties": {"label": {"type": "string"}}, "additionalProperties": false},
        "Approval": {"description": "gates", "oneOf": [
            {"type": "string", "const": "none", "description": "Never wait."},
            {"type": "string", "const": "firstWave", "description": "Once."},
        ]},
    });
    let table: Vec<(&str, Value, Value)> = vec![
        (
            "Option<String> becomes nullable",
            json!({"type": ["string", "null"], "description": "d"}),
            json!({"type": "string", "description": "d", "nullable": true}),
        ),
        (
            "Option<struct> is inlined, the field's description wins",
            json!({"anyOf": [{"$ref": "#/$defs/Roles"}, {"type": "null"}], "description": "field"}),
            json!({"type": "object", "description": "field", "nullable": true,
                   "properties": {"label": {"type": "string"}}}),
        ),
        (
            "a $ref is inlined and additionalProperties: false dropped",
            json!({"$ref": "#/$defs/Roles"}),
            json!({"type": "object", "description": "from the def",
                   "properties": {"label": {"type": "string"}}}),
        ),
        (
            "an enum documented per variant becomes one enum",
            json!({"$ref": "#/$defs/Approval", "default": "none"}),
            json!({"type": "string", "enum": ["none", "firstWave"],
                   "description": "gates `none`: Never wait; `firstWave`: Once. Default: `none`."}),
        ),
        (
            "a const becomes a one-value enum",
            json!({"type": "string", "const": "UpgradePlan"}),
            json!({"type": "string", "enum": ["UpgradePlan"]}),
        ),
        (
            "unsigned formats go, minimum stays, a default is named",
            json!({"type": "integer", "format": "uint32", "minimum": 0, "default": 3}),
            json!({"type": "integer", "minimum": 0, "description": "Default: `3`."}),
        ),
        (
            "a list default is named, an empty one is not",
            json!({"type": "object", "properties": {
                "when": {"type": "array", "items": {"type": "string"}, "default": ["select", "promote"]},
                "gates": {"type": "array", "items": {"type": "string"}, "default": []},
            }}),
            json!({"type": "object", "properties": {
                "when": {"type": "array", "items": {"type": "string"},
                         "description": "Default: `[select, promote]`."},
                "gates": {"type": "array", "items": {"type": "string"}},
            }}),
        ),
        (
            "a map of strings keeps its value schema",
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        ),
        (
            "free-form data is preserved",
            json!({"type": ["object", "null"], "additionalProperties": true}),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "nullable": true}),
        ),
        (
            "a map of anything is preserved as a whole",
            json!({"type": "object", "additionalProperties": {}}),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        ),
        (
            "exactly-one-of by required fields stays",
            json!({"type": "object", "oneOf": [{"required": ["http"]}, {"required": ["exec"]}]}),
            json!({"type": "object", "oneOf": [{"required": ["http"]}, {"required": ["exec"]}]}),
        ),
        (
            "schema metadata goes",
            json!({"$schema": "s", "$id": "i", "title": "t", "type": "string"}),
            json!({"type": "string"}),
        ),
    ];
    for (what, input, want) in table {
        assert_eq!(convert(input, defs.clone()), Ok(want), "{what}");
    }
}

#[test]
fn the_converter_refuses_what_it_cannot_express() {
    let table: Vec<(&str, Value, CrdError)> = vec![
        (
            "a $ref to nothing",
            json!({"$ref": "#/$defs/Missing"}),
            CrdError::Ref {
                at: "x".into(),
                reference: "#/$defs/Missing".into(),
            },
        ),
        (
            "an unknown keyword",
            json!({"type": "string", "if": {}}),
            CrdError::Keyword {
                at: "x.if".into(),
                keyword: "if".into(),
            },
        ),
        (
            "a node without a type",
            json!({"description": "anything"}),
            CrdError::Shape {
                at: "x".into(),
                what: "no type (a structural schema needs one on every node)".into(),
            },
        ),
        (
            "a union of two types",
            json!({"type": ["string", "integer"]}),
            CrdError::Shape {
                at: "x".into(),
                what: "type [String(\"string\"), String(\"integer\")] is not one type".into(),
            },
        ),
        (
            "a oneOf of schemas",
            json!({"type": "object", "oneOf": [{"type": "string"}, {"required": ["a"]}]}),
            CrdError::Shape {
                at: "x.oneOf".into(),
                what: "oneOf/anyOf other than a list of required fields".into(),
            },
        ),
    ];
    for (what, input, want) in table {
        assert_eq!(convert(input, json!({})), Err(want), "{what}");
    }
}

/// Every node the API server will see: no `$ref`, a type (or preserved free-form data),
/// no `additionalProperties` beside `properties`, value validations that only require.
fn assert_structural(node: &Value, at: &str) {
    let object = node
        .as_object()
        .unwrap_or_else(|| panic!("{at}: not an object"));
    for key in object.keys() {
        assert!(
            !["$ref", "$defs", "const", "default", "title", "$schema"].contains(&key.as_str()),
            "{at}: {key}"
        );
    }
    let free = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    assert!(
        object.get("type").is_some_and(Value::is_string) || free,
        "{at}: no type"
    );
    assert!(
        !(object.contains_key("properties") && object.contains_key("additionalProperties")),
        "{at}: properties and additionalProperties"
    );
    for (name, child) in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        assert_structural(child, &format!("{at}.{name}"));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get(key) {
            assert_structural(child, &format!("{at}.{key}"));
        }
    }
}

#[test]
fn the_crd_holds_the_whole_plan_spec_as_a_structural_schema() {
    let crd = crd().unwrap();
    assert_eq!(crd["metadata"]["name"], CRD_NAME);
    assert_eq!(crd["spec"]["names"]["shortNames"], json!([SHORT_NAME]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], VERSION);
    assert_eq!(version["subresources"], json!({"status": {}}));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Phase", "Wave", "Progress", "Age"]);

    let schema = &version["schema"]["openAPIV3Schema"];
    assert_structural(schema, "(root)");
    let spec = &schema["properties"]["spec"];
    // Every field of the plan's spec is there, with the plan's own rules.
    let plan = crate::plan::schema();
    let plan_spec = plan["$defs"]["Spec"]["properties"].as_object().unwrap();
    let crd_spec = spec["properties"].as_object().unwrap();
    assert_eq!(
        plan_spec.keys().collect::<Vec<_>>(),
        crd_spec.keys().collect::<Vec<_>>()
    );
    assert_eq!(spec["required"], json!(["target", "update", "arbiter"]));
    let approval = &spec["properties"]["waves"]["properties"]["approval"];
    assert_eq!(approval["enum"], json!(["none", "firstWave", "everyWave"]));
    let hook = &spec["properties"]["hooks"]["properties"]["afterRollout"]["items"];
    assert_eq!(hook["oneOf"].as_array().unwrap().len(), 4);
    assert_eq!(
        hook["properties"]["approval"]["nullable"], true,
        "`approval:` alone is a hook"
    );
    let patch = &spec["properties"]["update"]["properties"]["templatePatch"];
    assert_eq!(patch["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        schema["properties"]["metadata"]["properties"]["name"]["maxLength"],
        63
    );
    assert_eq!(
        schema["properties"]["status"]["properties"]["phase"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        PHASES.len()
    );
}

#[test]
fn the_yaml_starts_with_its_header_and_reads_back_as_the_crd() {
    let yaml = crd_yaml().unwrap();
    assert!(yaml.starts_with("# The UpgradePlan CustomResourceDefinition."));
    let back: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, crd().unwrap());
}
