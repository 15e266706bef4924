//! `engine schema` as a process: valid JSON, the same schema the library builds, and
//! one the seed plan fits structurally.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn engine_schema_prints_the_plan_schema_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("engine schema prints JSON");
    assert_eq!(printed, baton_engine::plan::schema());
    assert_eq!(printed["title"], "UpgradePlan");
}

#[test]
fn the_seed_plan_has_every_key_the_schema_requires_and_no_other() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("schema")
        .output()
        .unwrap();
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plans/seed.yaml");
    let seed: Value = serde_yaml::from_str(&std::fs::read_to_string(seed_path).unwrap()).unwrap();

    // Walk the objects of the seed alongside the schema, following $refs.
    let mut todo = vec![(String::from("(root)"), &schema, &seed)];
    let mut checked = 0;
    while let Some((at, node, value)) = todo.pop() {
        let node = match node.get("$ref").and_then(Value::as_str) {
            Some(r) => schema.pointer(r.trim_start_matches('#')).unwrap(),
            None => node,
        };
        let Some(object) = value.as_object() else {
            continue;
        };
        checked += 1;
        for key in node["required"].as_array().into_iter().flatten() {
            assert!(
                object.contains_key(key.as_str().unwrap()),
                "{at}: required {key} missing"
            );
        }
        // A map (container name -> image) has no fixed properties.
        let Some(properties) = node["properties"].as_object() else {
            continue;
        };
        assert_eq!(node["additionalProperties"], false, "{at}");
        for (key, child) in object {
            let Some(child_schema) = properties.get(key) else {
                panic!("{at}: {key} is not in the schema");
            };
            todo.push((format!("{at}.{key}"), child_schema, child));
        }
    }
    assert!(checked >= 6, "walked {checked} objects");
}

/// `deploy/crd.yaml` is `engine crd`'s output: a change to the plan's types that is not
/// regenerated fails here. To regenerate: `engine crd > deploy/crd.yaml`.
#[test]
fn the_committed_crd_is_what_engine_crd_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine"))
        .arg("crd")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, baton_engine::plan::crd::crd_yaml().unwrap());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crd.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == printed,
        "{} differs from `engine crd`; regenerate it with `engine crd > deploy/crd.yaml`",
        path.display()
    );

    let json = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["crd", "--output", "json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&json.stdout).expect("engine crd --output json");
    assert_eq!(json, baton_engine::plan::crd::crd().unwrap());
}
