//! The proxy's fault rules and what they did: a [`FaultConfig`] is plain serde
//! data (set from a test, or from a JSON file), held in a [`Faults`] handle the
//! proxy consults on every request and a test may change while it runs.
//!
//! JSON shape (every field optional). `errors`, `latency` and `watchCutAfter`
//! mean what they mean in `baton_sim::faults`, so a fault file using only
//! those drives the simulator and this proxy alike:
//! ```json
//! {"errors":  [{"verb": "patch", "resource": "statefulsets", "code": 503,
//!               "rate": 1.0, "count": 2, "retryAfterSeconds": 1}],
//!  "drops":   [{"verb": "patch", "resource": "statefulsets", "count": 1}],
//!  "expire":  [{"resource": "pods", "count": 1}],
//!  "latency": [{"verb": "*", "resource": "pods", "ms": 200}],
//!  "watchCutAfter": 3}
//! ```
//! - `errors`: answer with a Kubernetes `Status` and `code`, without forwarding.
//! - `drops`: forward, let the API server apply the request, then close the
//!   client's connection without an answer (a write that happened, unacknowledged).
//! - `expire`: answer a watch that names a `resourceVersion` with the `410 Expired`
//!   `ERROR` event a real apiserver sends when that version is too old.
//! - `latency`: delay matching requests (delays of several rules add up).
//! - `watchCutAfter`: end every JSON watch stream after this many events
//!   (bookmarks not counted); [`Faults::cut_watches`] ends the open ones, any
//!   encoding, at once.
//!
//! `verb` is the audit verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
//! `delete`, `deletecollection`) and `resource` the plural, with its subresource
//! if any (`statefulsets/status`); absent or `"*"` matches all, and a resource
//! without a subresource also matches its subresources. `rate` is the
//! probability a matching request is hit (default 1); `count` caps how many
//! requests the rule hits in total (default: no cap).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// Patterns, rates and counts are read by the simulator's rules.
use baton_sim::faults::{covers, fires};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Fail matching requests with an HTTP error, without forwarding them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// 500, 503, 429, 409, or any other error code.
    pub code: u16,
    #[serde(default = "one")]
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// Forward matching requests, then drop the client's connection unanswered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default = "one")]
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// Answer matching watches that resume from a `resourceVersion` with `410 Expired`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpireRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default = "one")]
    pub rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// Delay matching requests before forwarding (or failing) them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub ms: u64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<DropRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expire: Vec<ExpireRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<LatencyRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_cut_after: Option<u32>,
}

/// What the proxy does with one request, besides delaying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Forward,
    Error {
        code: u16,
        retry_after_seconds: Option<u64>,
    },
    /// Forward, then close the client's connection unanswered.
    Drop,
    /// Answer with a `410 Expired` watch event.
    Expire,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub delay: Duration,
    pub action: Action,
}

/// Every request the proxy saw and every fault it injected, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests by `"<verb> <resource>"`, e.g. `"patch statefulsets"`.
    pub requests: BTreeMap<String, u64>,
    /// Injected faults by `"<fault> <verb> <resource>"`, where the fault is the
    /// error code (`"503 patch statefulsets"`), `drop`, `expire`, `cut` (a watch
    /// stream the proxy ended) or `delay`.
    pub injected: BTreeMap<String, u64>,
}

impl Stats {
    pub fn requests(&self, verb_resource: &str) -> u64 {
        self.requests.get(verb_resource).copied().unwrap_or(0)
    }

    pub fn injected(&self, key: &str) -> u64 {
        self.injected.get(key).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct State {
    config: FaultConfig,
    stats: Stats,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped by [`Faults::cut_watches`]; every open watch stream listens.
    cut: watch::Sender<u64>,
}

/// The live fault configuration and counters, shared by the proxy and its
/// owner. Cloning shares the same state.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    pub fn new(config: FaultConfig) -> Faults {
        Faults {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    config,
                    stats: Stats::default(),
                }),
                cut: watch::Sender::new(0),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rules as they are now (counts already spent are gone).
    pub fn get(&self) -> FaultConfig {
        self.state().config.clone()
    }

    /// Replaces every rule; counters are kept.
    pub fn set(&self, config: FaultConfig) {
        self.state().config = config;
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    /// Ends every watch stream open through the proxy now, at an event
    /// boundary, as an apiserver does when a watch times out or it restarts.
    pub fn cut_watches(&self) {
        self.inner.cut.send_modify(|n| *n += 1);
    }

    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    pub(crate) fn cuts(&self) -> watch::Receiver<u64> {
        self.inner.cut.subscribe()
    }

    pub(crate) fn watch_cut_after(&self) -> Option<u32> {
        self.state().config.watch_cut_after
    }

    pub(crate) fn record(&self, fault: &str, verb: &str, resource: &str) {
        *self
            .state()
            .stats
            .injected
            .entry(format!("{fault} {verb} {resource}"))
            .or_default() += 1;
    }

    /// Counts one request and decides its fate, spending the `count` of the
    /// rule that hits it. `resumes` says whether it is a watch from a given
    /// `resourceVersion` (the only kind an apiserver can expire).
    pub(crate) fn judge(&self, verb: &str, resource: &str, resumes: bool) -> Verdict {
        let mut guard = self.state();
        let State { config, stats } = &mut *guard;
        *stats
            .requests
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
        let delay: Duration = config
            .latency
            .iter()
            .filter(|l| covers(l.verb.as_deref(), verb) && covers(l.resource.as_deref(), resource))
            .map(|l| Duration::from_millis(l.ms))
            .sum();
        let hit = |v: &Option<String>, r: &Option<String>| {
            covers(v.as_deref(), verb) && covers(r.as_deref(), resource)
        };
        let action =
            if let Some(rule) = config.errors.iter_mut().find_map(|e| {
                (hit(&e.verb, &e.resource) && fires(e.rate, &mut e.count)).then_some(e)
            }) {
                Action::Error {
                    code: rule.code,
                    retry_after_seconds: rule.retry_after_seconds,
                }
            } else if verb == "watch"
                && resumes
                && config
                    .expire
                    .iter_mut()
                    .any(|e| hit(&None, &e.resource) && fires(e.rate, &mut e.count))
            {
                Action::Expire
            } else if config
                .drops
                .iter_mut()
                .any(|d| hit(&d.verb, &d.resource) && fires(d.rate, &mut d.count))
            {
                Action::Drop
            } else {
                Action::Forward
            };
        let fault = match &action {
            Action::Forward => None,
            Action::Error { code, .. } => Some(code.to_string()),
            Action::Drop => Some("drop".to_string()),
            Action::Expire => Some("expire".to_string()),
        };
        let key = |f: &str| format!("{f} {verb} {resource}");
        if let Some(f) = fault {
            *stats.injected.entry(key(&f)).or_default() += 1;
        }
        if !delay.is_zero() {
            *stats.injected.entry(key("delay")).or_default() += 1;
        }
        Verdict { delay, action }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(json: &str) -> Faults {
        Faults::new(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn counted_rules_run_out_and_errors_win_over_drops() {
        let f = faults(
            r#"{"errors": [{"verb": "patch", "code": 503, "count": 1}],
                "drops": [{"verb": "patch", "resource": "pods", "count": 1}]}"#,
        );
        let actions: Vec<_> = (0..3)
            .map(|_| f.judge("patch", "pods", false).action)
            .collect();
        assert_eq!(
            actions,
            [
                Action::Error {
                    code: 503,
                    retry_after_seconds: None
                },
                Action::Drop,
                Action::Forward
            ]
        );
        let stats = f.stats();
        assert_eq!(stats.requests("patch pods"), 3);
        assert_eq!(stats.injected("503 patch pods"), 1);
        assert_eq!(stats.injected("drop patch pods"), 1);
        assert!(f.get().errors[0].count == Some(0));
    }

    #[test]
    fn only_watches_that_resume_expire() {
        let f = faults(r#"{"expire": [{"resource": "pods", "count": 1}]}"#);
        assert_eq!(f.judge("list", "pods", true).action, Action::Forward);
        assert_eq!(f.judge("watch", "pods", false).action, Action::Forward);
        assert_eq!(f.judge("watch", "leases", true).action, Action::Forward);
        assert_eq!(f.judge("watch", "pods", true).action, Action::Expire);
        assert_eq!(f.judge("watch", "pods", true).action, Action::Forward);
    }

    #[test]
    fn a_zero_rate_never_fires_and_latency_adds_up() {
        let f = faults(
            r#"{"errors": [{"code": 500, "rate": 0.0}],
                "latency": [{"ms": 5}, {"resource": "pods", "ms": 7}]}"#,
        );
        let v = f.judge("get", "pods", false);
        assert_eq!(v.action, Action::Forward);
        assert_eq!(v.delay, Duration::from_millis(12));
        assert_eq!(
            f.judge("get", "leases", false).delay,
            Duration::from_millis(5)
        );
        assert_eq!(f.stats().injected("delay get pods"), 1);
    }

    #[test]
    fn the_config_round_trips_through_json_and_rejects_unknown_fields() {
        let json = r#"{"errors": [{"verb": "patch", "code": 429, "retryAfterSeconds": 2}],
                       "drops": [{"resource": "leases", "rate": 0.5}],
                       "expire": [{"count": 1}], "watchCutAfter": 3}"#;
        let cfg: FaultConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.errors[0].rate, 1.0);
        let back: FaultConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(serde_json::from_str::<FaultConfig>(r#"{"bogus": 1}"#).is_err());
        assert!(serde_json::from_str::<FaultConfig>(r#"{"expire": [{"verb": "get"}]}"#).is_err());
    }
}
