//! What the API server does to a written object's fields before storing it: pruning what
//! the schema does not know (or refusing it under `fieldValidation=Strict`), and checking
//! a custom resource against its CRD's schema.

use serde_json::Value;

use super::ApiState;
use crate::store::{ApiError, Kind};

/// The structural schema of a custom resource, from its stored CRD; `None` for a built-in
/// kind (whose schema, if any, [`crate::admission`] knows).
pub(super) fn custom_schema(st: &ApiState, kind: Kind) -> Option<Value> {
    let crd = crate::crd::definition(&st.store, kind)?;
    crate::crd::schema(&crd, kind).cloned()
}

/// Prunes fields the schema (a custom resource's: `custom`) does not know; with
/// `fieldValidation=Strict` (kubectl's default) they are an error instead, as on a real
/// apiserver. `.status` is left alone: only controllers write it, through `/status`.
pub(super) fn check_fields(
    kind: Kind,
    strict: bool,
    custom: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let status = obj.as_object_mut().and_then(|m| m.remove("status"));
    let unknown = match custom {
        Some(schema) => crate::admission::prune_with(schema, obj),
        None => crate::admission::prune_unknown(kind, obj),
    };
    if let (Some(s), Some(m)) = (status, obj.as_object_mut()) {
        m.insert("status".into(), s);
    }
    if strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            kind.kind_name(),
            kind.version(),
            kind.kind_name(),
            fields.join(", ")
        )));
    }
    Ok(())
}

/// A custom resource as it will be stored, status included, checked against its CRD's
/// schema (types, enums, required fields, bounds), as the API server does before storing:
/// a status write with a phase the CRD does not list is `422 Invalid`. Unknown status
/// fields are pruned without a word, as there.
pub(super) fn check_custom(
    kind: Kind,
    custom: Option<&Value>,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let Some(schema) = custom else {
        return Ok(());
    };
    crate::admission::prune_with(schema, obj);
    let mut causes = Vec::new();
    crate::admission::schema_errors(schema, obj, "", &mut causes);
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::invalid(kind, name, &causes))
}
