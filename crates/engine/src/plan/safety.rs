//! The plan's application-aware safety (issue #15): per-pod gates, maintenance windows,
//! analysis during waves, and what a failure does. Doc comments here become the
//! descriptions of the JSON Schema (`engine schema`), so they speak to plan authors.

use serde::{Deserialize, Serialize};

use super::model::ExecHook;
use crate::duration::Duration;

/// A check of one pod, asked before the pod is selected for a wave and before it is
/// promoted. Every gate must pass; a pod that fails one is left out of the wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["http"]}, {"required": ["exec"]}, {"required": ["prometheus"]}
]))]
pub struct Gate {
    /// DNS-1123 label, unique among the gates; `--skip-gate NAME` overrides it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// GET a URL (may use `{{pod}}`) and expect a status.
    #[serde(default)]
    pub http: Option<HttpGate>,
    /// Run a local command (may use `{{pod}}`; gets `BATON_POD`); it must exit 0.
    #[serde(default)]
    pub exec: Option<ExecHook>,
    /// Ask Prometheus (the query may use `{{pod}}`) and compare the value with max and/or min.
    #[serde(default)]
    pub prometheus: Option<PrometheusQuery>,
    /// When the gate is asked: before `select`, before `promote`; default both.
    #[serde(default = "both_moments")]
    pub when: Vec<GateMoment>,
}

/// When a gate is asked.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum GateMoment {
    /// Before the pod is selected for a wave (updated).
    Select,
    /// Before the pod is promoted to working in a handover.
    Promote,
}

impl GateMoment {
    pub fn as_str(self) -> &'static str {
        match self {
            GateMoment::Select => "select",
            GateMoment::Promote => "promote",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGate {
    /// `http` or `https` URL; may use `{{pod}}`, `{{run}}`, `{{wave}}`.
    pub url: String,
    #[serde(default = "default_expect_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: u16,
    #[serde(default = "default_gate_timeout")]
    pub timeout: Duration,
}

/// An instant query of the Prometheus HTTP API (`GET /api/v1/query`). The answer must be
/// one number (a scalar, or a vector of one sample); it passes when it is at most `max`
/// and at least `min`. An empty answer fails: no data is not good news.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("anyOf" = [{"required": ["max"]}, {"required": ["min"]}]))]
pub struct PrometheusQuery {
    /// Base URL of the Prometheus server, e.g. `http://prometheus:9090`.
    pub url: String,
    /// PromQL; in a gate it may use `{{pod}}`.
    pub query: String,
    /// The largest value that passes.
    #[serde(default)]
    pub max: Option<f64>,
    /// The smallest value that passes.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default = "default_gate_timeout")]
    pub timeout: Duration,
}

/// When waves may start.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Schedule {
    /// Waves start only inside one of these; none = any time. A wave that started inside
    /// a window runs to its end.
    #[serde(default)]
    pub windows: Vec<Window>,
}

/// A weekly maintenance window, in a time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Window {
    /// Days the window opens on; default every day.
    #[serde(default = "every_day")]
    pub days: Vec<Weekday>,
    /// `HH:MM`, local time.
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// `HH:MM`, local time; before `start` means the next day (`22:00` to `02:00`).
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
    /// IANA time zone, e.g. `Europe/Berlin`; default `UTC`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "Mon",
            Weekday::Tue => "Tue",
            Weekday::Wed => "Wed",
            Weekday::Thu => "Thu",
            Weekday::Fri => "Fri",
            Weekday::Sat => "Sat",
            Weekday::Sun => "Sun",
        }
    }
}

/// Checks of the whole application, asked while each wave updates its pods and once it is
/// ready. A failed check stops the run as `onFailure` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Analysis {
    /// How often the checks are asked while a wave runs; default 10s.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Check {
    /// DNS-1123 label, unique among the checks.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    pub prometheus: PrometheusQuery,
}

impl Window {
    /// Start and end as minutes since local midnight (end may be 1440 for `24:00`);
    /// `None` only on an unvalidated plan.
    pub fn minutes(&self) -> Option<(u16, u16)> {
        let start = super::validate::clock_time(&self.start, false).ok()?;
        let end = super::validate::clock_time(&self.end, true).ok()?;
        Some((start, end))
    }
}

/// What a failed analysis check (or, with `rollback`, a failed wave) does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Freeze the partition at once (a safety stop); `engine resume --accept-risk` goes on.
    #[default]
    Freeze,
    /// Freeze the partition at once, then bring the updated pods back to the old revision
    /// standby-first: the template the run started from goes back, old-revision pods take
    /// the working role first, and waves update the rest. Also on a wave whose pods do not
    /// become ready or whose `afterWaveReady` hook fails. Never on a broken invariant (that
    /// stays a safety stop). The run ends `rolledBack` (exit 1).
    Rollback,
}

/// The action of a gate, once validation has proven exactly one is set.
#[derive(Debug, Clone, PartialEq)]
pub enum GateAction<'a> {
    Http(&'a HttpGate),
    Exec(&'a ExecHook),
    Prometheus(&'a PrometheusQuery),
}

impl Gate {
    /// The gate's action. Validation guarantees exactly one; `None` only on an unvalidated plan.
    pub fn action(&self) -> Option<GateAction<'_>> {
        match (&self.http, &self.exec, &self.prometheus) {
            (Some(h), None, None) => Some(GateAction::Http(h)),
            (None, Some(e), None) => Some(GateAction::Exec(e)),
            (None, None, Some(p)) => Some(GateAction::Prometheus(p)),
            _ => None,
        }
    }

    /// Whether the gate is asked at `moment`.
    pub fn asked_at(&self, moment: GateMoment) -> bool {
        self.when.contains(&moment)
    }
}

fn both_moments() -> Vec<GateMoment> {
    vec![GateMoment::Select, GateMoment::Promote]
}
fn every_day() -> Vec<Weekday> {
    Weekday::ALL.to_vec()
}
fn default_time_zone() -> String {
    "UTC".to_owned()
}
fn default_expect_status() -> u16 {
    200
}
fn default_gate_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
