//! The value checks of a structural schema beyond type and enum, worded like the API
//! server: bounds (`maximum`, lengths, item counts), `pattern`s, and `oneOf`/`anyOf` that
//! list required fields ("exactly one action"). The ASTS schema has none of these; a custom
//! resource's (the UpgradePlan's) has all of them.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::Value;

/// `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, worded like the API server.
pub(super) fn bounds(schema: &Value, value: &Value, shown: &str, causes: &mut Vec<String>) {
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
        && n > max
    {
        causes.push(format!(
            "{shown}: Invalid value: {value}: {shown} in body should be less than or equal to {max}"
        ));
    }
    if let Some(text) = value.as_str() {
        if let Some(pattern) = schema["pattern"].as_str()
            && matches(pattern, text) == Some(false)
        {
            causes.push(format!(
                "{shown}: Invalid value: {value}: {shown} in body should match '{pattern}'"
            ));
        }
        let len = text.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            causes.push(format!(
                "{shown}: Invalid value: {value}: {shown} in body should be at least {min} chars long"
            ));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            causes.push(format!("{shown}: Too long: may not be longer than {max}"));
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64()
            && len < min
        {
            causes.push(format!(
                "{shown}: Invalid value: {len}: {shown} in body should have at least {min} items"
            ));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && len > max
        {
            causes.push(format!(
                "{shown}: Too many: {len}: must have at most {max} items"
            ));
        }
    }
}

/// Whether `text` matches a schema `pattern`; `None` for a pattern that does not compile
/// (not checked, as nothing could match it). Compiled once per pattern.
fn matches(pattern: &str, text: &str) -> Option<bool> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    let regex = compiled
        .entry(pattern.to_owned())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    regex.as_ref().map(|r| r.is_match(text))
}

/// `oneOf`/`anyOf` whose branches only list required fields ("exactly one action"): how
/// many branches the object's keys satisfy. Branches with other keywords (int-or-string's
/// types) are the type check's business.
pub(super) fn exactly_one_of(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    shown: &str,
    causes: &mut Vec<String>,
) {
    for (keyword, what) in [
        ("oneOf", "must validate one and only one schema (oneOf)"),
        ("anyOf", "must validate at least one schema (anyOf)"),
    ] {
        let Some(branches) = schema[keyword].as_array() else {
            continue;
        };
        let required_only = branches.iter().all(|b| {
            b.as_object()
                .is_some_and(|o| o.keys().all(|k| k == "required"))
        });
        if !required_only {
            continue;
        }
        let valid = branches
            .iter()
            .filter(|b| {
                b["required"].as_array().is_some_and(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .all(|k| map.contains_key(k))
                })
            })
            .count();
        let ok = if keyword == "oneOf" {
            valid == 1
        } else {
            valid >= 1
        };
        if !ok {
            let path = shown.trim_start_matches('.');
            causes.push(format!(
                "<nil>: Invalid value: \"\": \"{path}\" {what}. Found {valid} valid alternatives"
            ));
        }
    }
}
