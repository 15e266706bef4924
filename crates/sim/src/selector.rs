//! Label and field selectors: the `labelSelector` / `fieldSelector` query strings of list
//! and watch, and `metav1.LabelSelector` objects (ASTS `spec.selector`, priority
//! `matchSelector`).
//!
//! Label selectors are kube's [`Selector`]: matching and rendering are kube's; this module
//! only reads the two forms it does not read, the query syntax ([`parse`]) and the stored
//! JSON object, checked as the API server checks it ([`from_label_selector`]).

use std::collections::{BTreeMap, BTreeSet};

pub use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0:?}")]
    Syntax(String),
    #[error("invalid label selector operator {0:?}")]
    Operator(String),
    #[error("field label not supported: {0}")]
    Field(String),
}

/// Whether an object's `metadata.labels` match.
pub fn matches_object(selector: &Selector, obj: &Value) -> bool {
    selector.matches(&labels_of(obj))
}

/// Parses the `labelSelector` query syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
/// `a notin (x)`, `a`, `!a`, joined by commas. The empty string selects everything.
pub fn parse(s: &str) -> Result<Selector, SelectorError> {
    split_terms(s)
        .into_iter()
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .map(parse_term)
        .collect()
}

/// Reads a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`), refusing what
/// `LabelSelectorAsSelector` refuses: an unknown operator, an empty key, values on
/// `Exists`/`DoesNotExist` or none on `In`/`NotIn`. Kruise skips a priority term whose
/// selector is refused, so such a term matches nothing.
pub fn from_label_selector(v: &Value) -> Result<Selector, SelectorError> {
    let mut selector: Selector = v["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, val)| Expression::Equal(k.clone(), val.as_str().unwrap_or_default().into()))
        .collect();
    for e in v["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default().to_string();
        let values: BTreeSet<String> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        let operator = e["operator"].as_str().unwrap_or_default();
        let needs_values = matches!(operator, "In" | "NotIn");
        let expression = match operator {
            "In" => Expression::In(key.clone(), values.clone()),
            "NotIn" => Expression::NotIn(key.clone(), values.clone()),
            "Exists" => Expression::Exists(key.clone()),
            "DoesNotExist" => Expression::DoesNotExist(key.clone()),
            other => return Err(SelectorError::Operator(other.to_string())),
        };
        if key.is_empty() || needs_values == values.is_empty() {
            return Err(SelectorError::Syntax(e.to_string()));
        }
        selector.extend(expression);
    }
    Ok(selector)
}

/// The selector in its string form (`status.labelSelector`, read by the scale
/// subresource): kube's rendering of each requirement, in sorted order.
pub fn render(selector: &Selector) -> String {
    let mut parts: Vec<String> = selector
        .clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect();
    parts.sort();
    parts.join(",")
}

/// `metadata.labels` as a map (non-string values are ignored).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_term(term: &str) -> Result<Expression, SelectorError> {
    let syntax = || SelectorError::Syntax(term.to_string());
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        valid_key(key).ok_or_else(syntax)?;
        return Ok(Expression::DoesNotExist(key.to_string()));
    }
    for (sep, equal) in [("!=", false), ("==", true), ("=", true)] {
        if let Some((k, v)) = term.split_once(sep) {
            let key = k.trim();
            valid_key(key).ok_or_else(syntax)?;
            let v = v.trim();
            if v.contains(['(', ')', ',', ' ', '=', '!']) {
                return Err(syntax());
            }
            let (key, v) = (key.to_string(), v.to_string());
            return Ok(if equal {
                Expression::Equal(key, v)
            } else {
                Expression::NotEqual(key, v)
            });
        }
    }
    if let Some(open) = term.find('(') {
        let close = term.rfind(')').ok_or_else(syntax)?;
        if close != term.len() - 1 || close < open {
            return Err(syntax());
        }
        let mut head = term[..open].split_whitespace();
        let (key, word) = (
            head.next().ok_or_else(syntax)?,
            head.next().ok_or_else(syntax)?,
        );
        if head.next().is_some() {
            return Err(syntax());
        }
        valid_key(key).ok_or_else(syntax)?;
        let values: BTreeSet<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        return match word {
            "in" => Ok(Expression::In(key.to_string(), values)),
            "notin" => Ok(Expression::NotIn(key.to_string(), values)),
            _ => Err(syntax()),
        };
    }
    valid_key(term).ok_or_else(syntax)?;
    Ok(Expression::Exists(term.to_string()))
}

fn valid_key(k: &str) -> Option<()> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then_some(())
}

/// A `fieldSelector`: `path=value` / `path!=value` terms over dotted paths
/// such as `metadata.name`, `metadata.namespace`, `status.phase`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, negate, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, false, v)
            } else {
                return Err(SelectorError::Syntax(term.to_string()));
            };
            let path = path.trim();
            if !path.starts_with("metadata.")
                && !path.starts_with("spec.")
                && !path.starts_with("status.")
                && !path.starts_with("involvedObject.")
                && !path.starts_with("regarding.")
                && path != "type"
                && path != "reason"
            {
                return Err(SelectorError::Field(path.to_string()));
            }
            terms.push((path.to_string(), negate, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, negate, want)| {
            let mut v = obj;
            for part in path.split('.') {
                v = &v[part];
            }
            let got = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_table() {
        let l = labels(&[("app", "sample"), ("working", "true")]);
        let cases = [
            ("", true),
            ("app=sample", true),
            ("app==sample", true),
            ("app!=sample", false),
            ("app=other", false),
            ("working in (true,false)", true),
            ("working in (false)", false),
            ("working notin (false)", true),
            ("app,working", true),
            ("!baton.dev/selected", true),
            ("baton.dev/selected", false),
            ("app=sample, working notin (true)", false),
            ("missing!=x", true),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s).unwrap().matches(&l), want, "{s}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for s in ["a in (x", "a foo (x)", "=x", "a=b=c", "!"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn label_selector_objects_combine_labels_and_expressions() {
        let sel = from_label_selector(&json!({
            "matchLabels": {"app": "sample"},
            "matchExpressions": [{"key": "working", "operator": "NotIn", "values": ["true"]}]
        }))
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "sample"), ("working", "false")])));
        assert!(!sel.matches(&labels(&[("app", "sample"), ("working", "true")])));
        assert!(
            from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Is"}]}))
                .is_err()
        );
    }

    #[test]
    fn expressions_and_labels_must_all_hold_and_render_sorted() {
        let sel = from_label_selector(&json!({
            "matchLabels": {"app": "db"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a"]},
                {"key": "drain", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "db"), ("zone", "a")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("zone", "c")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("zone", "a"), ("drain", "x")])));
        assert!(!sel.matches(&labels(&[("zone", "a")])));
        assert!(Selector::default().matches(&labels(&[])));
        assert_eq!(render(&sel), "!drain,app=db,zone in (a,b)");
    }

    #[test]
    fn field_selectors_match_dotted_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "status": {"phase": "Running"}});
        for (s, want) in [
            ("metadata.name=p", true),
            ("metadata.name=q", false),
            ("metadata.name!=q,status.phase=Running", true),
            ("metadata.namespace==default", true),
        ] {
            assert_eq!(FieldSelector::parse(s).unwrap().matches(&pod), want, "{s}");
        }
        assert!(FieldSelector::parse("bogus=1").is_err());
    }
}
