//! The JSON Schema of the plan format, for editors and for `engine schema`.

use super::model::Plan;

/// The plan's JSON Schema (draft 2020-12): required fields, enums, defaults, and
/// `additionalProperties: false` everywhere, as the parser enforces. Rules the schema
/// language cannot say (two role values differ, hook names unique) are only in the parser.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Plan).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".to_owned(),
            "https://baton.dev/schemas/v1alpha1/upgradeplan.json".into(),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_forbids_unknown_fields_and_requires_the_header() {
        let schema = schema();
        assert_eq!(schema["additionalProperties"], false);
        let required = schema["required"].as_array().unwrap();
        for key in ["apiVersion", "kind", "metadata", "spec"] {
            assert!(required.iter().any(|r| r == key), "{key} required");
        }
        assert_eq!(schema["properties"]["kind"]["const"], "UpgradePlan");
    }
}
