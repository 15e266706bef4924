//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as the controller uses them
//! for the set's pod selector and for priority weight terms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether the selector is well formed (known operators, values where required). Kruise
    /// skips weight terms whose selector does not convert, so callers check this first.
    pub fn is_valid(&self) -> bool {
        self.match_expressions.iter().all(|r| {
            !r.key.is_empty()
                && match r.operator.as_str() {
                    "In" | "NotIn" => !r.values.is_empty(),
                    "Exists" | "DoesNotExist" => r.values.is_empty(),
                    _ => false,
                }
        })
    }

    /// Whether `labels` satisfy every requirement. An empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// The selector in its string form (`status.labelSelector`, used by the scale subresource).
    pub fn render(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            let mut values = r.values.clone();
            values.sort();
            parts.push(match r.operator.as_str() {
                "In" => format!("{} in ({})", r.key, values.join(",")),
                "NotIn" => format!("{} notin ({})", r.key, values.join(",")),
                "Exists" => r.key.clone(),
                "DoesNotExist" => format!("!{}", r.key),
                other => format!("{} {other}", r.key),
            });
        }
        parts.sort();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expressions_and_labels_must_all_hold() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "db")]),
            match_expressions: vec![
                Requirement {
                    key: "zone".into(),
                    operator: "In".into(),
                    values: vec!["a".into(), "b".into()],
                },
                Requirement {
                    key: "drain".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ],
        };
        assert!(sel.matches(&labels(&[("app", "db"), ("zone", "a")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("zone", "c")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("zone", "a"), ("drain", "x")])));
        assert!(!sel.matches(&labels(&[("zone", "a")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert_eq!(sel.render(), "!drain,app=db,zone in (a,b)");
    }
}
