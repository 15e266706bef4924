//! Label and field selectors: the `labelSelector` / `fieldSelector` query
//! strings of list and watch, and `metav1.LabelSelector` objects (ASTS
//! `spec.selector`, priority `matchSelector`). Both parse into one
//! [`Selector`], a conjunction of requirements, so matching is written once.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => v.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
        }
    }
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0:?}")]
    Syntax(String),
    #[error("invalid label selector operator {0:?}")]
    Operator(String),
    #[error("field label not supported: {0}")]
    Field(String),
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }

    /// Parses the `labelSelector` query syntax: `a=b`, `a==b`, `a!=b`,
    /// `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Selector { requirements })
    }

    /// Reads a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`).
    pub fn from_label_selector(v: &Value) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(m) = v["matchLabels"].as_object() {
            for (k, val) in m {
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Op::Equals,
                    values: vec![val.as_str().unwrap_or_default().to_string()],
                });
            }
        }
        for e in v["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            let op = match e["operator"].as_str().unwrap_or_default() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError::Operator(other.to_string())),
            };
            let needs_values = matches!(op, Op::In | Op::NotIn);
            if key.is_empty() || needs_values == values.is_empty() {
                return Err(SelectorError::Syntax(e.to_string()));
            }
            requirements.push(Requirement { key, op, values });
        }
        Ok(Selector { requirements })
    }
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

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    let syntax = || SelectorError::Syntax(term.to_string());
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        valid_key(key).ok_or_else(syntax)?;
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
            values: vec![],
        });
    }
    for (sep, op) in [("!=", Op::NotEquals), ("==", Op::Equals), ("=", Op::Equals)] {
        if let Some((k, v)) = term.split_once(sep) {
            let key = k.trim();
            valid_key(key).ok_or_else(syntax)?;
            let v = v.trim();
            if v.contains(['(', ')', ',', ' ', '=', '!']) {
                return Err(syntax());
            }
            return Ok(Requirement {
                key: key.to_string(),
                op,
                values: vec![v.to_string()],
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
        let op = match word {
            "in" => Op::In,
            "notin" => Op::NotIn,
            _ => return Err(syntax()),
        };
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        return Ok(Requirement {
            key: key.to_string(),
            op,
            values,
        });
    }
    valid_key(term).ok_or_else(syntax)?;
    Ok(Requirement {
        key: term.to_string(),
        op: Op::Exists,
        values: vec![],
    })
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
            assert_eq!(Selector::parse(s).unwrap().matches(&l), want, "{s}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for s in ["a in (x", "a foo (x)", "=x", "a=b=c", "!"] {
            assert!(Selector::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn label_selector_objects_combine_labels_and_expressions() {
        let sel = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "sample"},
            "matchExpressions": [{"key": "working", "operator": "NotIn", "values": ["true"]}]
        }))
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "sample"), ("working", "false")])));
        assert!(!sel.matches(&labels(&[("app", "sample"), ("working", "true")])));
        assert!(
            Selector::from_label_selector(
                &json!({"matchExpressions": [{"key": "a", "operator": "Is"}]})
            )
            .is_err()
        );
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
