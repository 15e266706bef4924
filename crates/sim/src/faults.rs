//! Fault injection on the simulated API: error responses (500, 503, 429 with
//! `Retry-After`, or any code), added latency, and watch streams cut after a
//! number of events. A [`FaultConfig`] is plain serde data, so it comes from
//! `SimConfig`, from a JSON file behind an `engine sim serve` flag, or from
//! `PUT /sim/v1/faults` at runtime.
//!
//! JSON shape (every field optional):
//! ```json
//! {"errors":  [{"verb": "patch", "resource": "statefulsets", "code": 503,
//!               "rate": 1.0, "count": 2, "retryAfterSeconds": 1}],
//!  "latency": [{"verb": "*", "resource": "pods", "ms": 200}],
//!  "watchCutAfter": 3}
//! ```
//! `verb` and `resource` match the audit verb and the resource (`pods`,
//! `statefulsets`, `statefulsets/status`, ...); absent or `"*"` matches all.
//! `rate` is the probability of failing a matching request (default 1);
//! `count` limits how many requests the rule fails in total (default: no limit).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which requests a rule applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Target {
    fn matches(&self, verb: &str, resource: &str) -> bool {
        covers(self.verb.as_deref(), verb) && covers(self.resource.as_deref(), resource)
    }
}

/// Whether a rule's `verb` or `resource` pattern covers a request's: absent or `"*"` covers
/// everything, and a resource without a subresource also covers its subresources. The
/// testbed's fault proxy reads its rules the same way.
pub fn covers(want: Option<&str>, got: &str) -> bool {
    want.is_none_or(|w| {
        w == "*" || w == got || !w.contains('/') && got.split('/').next() == Some(w)
    })
}

/// Rolls a rule's `rate` and spends its `count`: whether the rule hits this request.
pub fn fires(rate: f64, count: &mut Option<u32>) -> bool {
    if *count == Some(0) || rate < 1.0 && rand::random::<f64>() >= rate {
        return false;
    }
    if let Some(c) = count.as_mut() {
        *c -= 1;
    }
    true
}

/// Fail matching requests with an HTTP error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorFault {
    #[serde(flatten)]
    pub target: Target,
    /// 500, 503, 429, or any other error code.
    pub code: u16,
    #[serde(default = "one")]
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// Delay matching requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyFault {
    #[serde(flatten)]
    pub target: Target,
    pub ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub errors: Vec<ErrorFault>,
    #[serde(default)]
    pub latency: Vec<LatencyFault>,
    /// End every watch stream after this many events (bookmarks not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_cut_after: Option<u32>,
}

/// An error to answer instead of serving the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedError {
    pub code: u16,
    pub retry_after_seconds: Option<u64>,
}

/// What the API server should do to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub delay: Duration,
    pub error: Option<InjectedError>,
}

/// The live fault configuration, shared by the API server and the control endpoint.
#[derive(Clone, Default)]
pub struct Faults {
    config: Arc<Mutex<FaultConfig>>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Faults {
        Faults {
            config: Arc::new(Mutex::new(config)),
        }
    }

    pub fn get(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, config: FaultConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn watch_cut_after(&self) -> Option<u32> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watch_cut_after
    }

    /// Decides the fate of one request and uses up a rule's `count`.
    pub fn judge(&self, verb: &str, resource: &str) -> Verdict {
        let mut cfg = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let delay = cfg
            .latency
            .iter()
            .filter(|l| l.target.matches(verb, resource))
            .map(|l| Duration::from_millis(l.ms))
            .sum();
        let error = cfg.errors.iter_mut().find_map(|rule| {
            (rule.target.matches(verb, resource) && fires(rule.rate, &mut rule.count)).then_some(
                InjectedError {
                    code: rule.code,
                    retry_after_seconds: rule.retry_after_seconds,
                },
            )
        });
        Verdict { delay, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(verb: Option<&str>, resource: Option<&str>, count: Option<u32>) -> ErrorFault {
        ErrorFault {
            target: Target {
                verb: verb.map(Into::into),
                resource: resource.map(Into::into),
            },
            code: 503,
            rate: 1.0,
            count,
            retry_after_seconds: None,
        }
    }

    #[test]
    fn patterns_cover_verbs_resources_and_subresources() {
        let cases = [
            (None, "pods", true),
            (Some("*"), "pods", true),
            (Some("pods"), "pods", true),
            (Some("pods"), "leases", false),
            (Some("statefulsets"), "statefulsets/status", true),
            (Some("statefulsets/status"), "statefulsets", false),
            (Some("statefulsets/status"), "statefulsets/status", true),
            (Some("statefulsets/scale"), "statefulsets/status", false),
        ];
        for (want, got, expected) in cases {
            assert_eq!(covers(want, got), expected, "{want:?} {got}");
        }
    }

    #[test]
    fn targets_match_verbs_resources_and_subresources() {
        let t = |v: Option<&str>, r: Option<&str>| Target {
            verb: v.map(Into::into),
            resource: r.map(Into::into),
        };
        let cases = [
            (t(None, None), "get", "pods", true),
            (t(Some("*"), Some("pods")), "get", "pods", true),
            (t(Some("patch"), None), "get", "pods", false),
            (
                t(None, Some("statefulsets")),
                "update",
                "statefulsets/status",
                true,
            ),
            (
                t(None, Some("statefulsets/status")),
                "update",
                "statefulsets",
                false,
            ),
            (
                t(None, Some("statefulsets/status")),
                "update",
                "statefulsets/status",
                true,
            ),
        ];
        for (target, verb, resource, want) in cases {
            assert_eq!(
                target.matches(verb, resource),
                want,
                "{target:?} {verb} {resource}"
            );
        }
    }

    #[test]
    fn counted_rules_run_out() {
        let f = Faults::new(FaultConfig {
            errors: vec![err(Some("get"), None, Some(2))],
            ..FaultConfig::default()
        });
        let codes: Vec<_> = (0..3)
            .map(|_| f.judge("get", "pods").error.map(|e| e.code))
            .collect();
        assert_eq!(codes, [Some(503), Some(503), None]);
    }

    #[test]
    fn latency_adds_up_and_config_round_trips_through_json() {
        let json = r#"{"errors": [{"verb": "patch", "code": 429, "retryAfterSeconds": 2}],
                       "latency": [{"ms": 5}, {"resource": "pods", "ms": 7}], "watchCutAfter": 3}"#;
        let cfg: FaultConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.errors[0].rate, 1.0);
        let f = Faults::new(cfg.clone());
        assert_eq!(f.judge("get", "pods").delay, Duration::from_millis(12));
        assert_eq!(
            f.judge("patch", "leases").error,
            Some(InjectedError {
                code: 429,
                retry_after_seconds: Some(2)
            })
        );
        let back: FaultConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"bogus": 1}"#).is_err());
    }
}
