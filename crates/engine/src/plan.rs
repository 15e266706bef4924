//! The upgrade plan (SPEC §2): what an operator writes, as typed serde structs.
//!
//! Parsing is strict (unknown fields are errors) and every error carries the file,
//! line, column and field path. Only a [`ValidPlan`] can be run: the constructor
//! [`ValidPlan::parse`] is the single door from text to a plan the engine trusts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// The `apiVersion` every plan must carry.
pub const API_VERSION: &str = "baton.dev/v1alpha1";
/// The `kind` every plan must carry.
pub const KIND: &str = "UpgradePlan";

/// A plan as written in YAML. Defaults are applied by serde, checks by [`ValidPlan::parse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plan {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// DNS-1123 label; with the target it names the run.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub target: Target,
    pub update: Update,
    #[serde(default)]
    pub roles: Roles,
    pub arbiter: ArbiterSpec,
    #[serde(default)]
    pub waves: Waves,
    #[serde(default)]
    pub safety: Safety,
    #[serde(default)]
    pub hooks: Hooks,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Name of the Advanced StatefulSet.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Update {
    /// Container name -> image.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Strategic-merge patch of `spec.template`.
    #[serde(default)]
    pub template_patch: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Roles {
    #[serde(default = "default_role_label")]
    pub label: String,
    #[serde(default = "default_working")]
    pub working: String,
    #[serde(default = "default_idle")]
    pub idle: String,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            label: default_role_label(),
            working: default_working(),
            idle: default_idle(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArbiterSpec {
    /// `http` or `https` base URL.
    pub url: String,
    #[serde(default = "default_arbiter_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Waves {
    /// 0 = every eligible idle pod at once.
    #[serde(default)]
    pub max_per_wave: u32,
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Duration,
    #[serde(default)]
    pub settle: Duration,
    #[serde(default)]
    pub approval: Approval,
}

impl Default for Waves {
    fn default() -> Self {
        Self {
            max_per_wave: 0,
            ready_timeout: default_ready_timeout(),
            settle: Duration::ZERO,
            approval: Approval::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Approval {
    #[default]
    None,
    FirstWave,
    EveryWave,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Safety {
    /// 0 = the working count seen at the start of the run.
    #[serde(default)]
    pub min_working: u32,
}

/// Extra DAG nodes at fixed points of the rollout. Hooks at one point run in parallel.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default)]
    pub before_rollout: Vec<Hook>,
    #[serde(default)]
    pub before_wave: Vec<Hook>,
    #[serde(default)]
    pub after_wave_ready: Vec<Hook>,
    #[serde(default)]
    pub before_handover: Vec<Hook>,
    #[serde(default)]
    pub after_handover: Vec<Hook>,
    #[serde(default)]
    pub after_rollout: Vec<Hook>,
}

/// One hook: a name (unique at its point) and exactly one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    pub name: String,
    #[serde(default)]
    pub http: Option<HttpHook>,
    #[serde(default)]
    pub exec: Option<ExecHook>,
    #[serde(default)]
    pub sleep: Option<SleepHook>,
    /// A manual gate: the run waits for `engine approve`.
    #[serde(default)]
    pub approval: Option<ApprovalHook>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHook {
    pub url: String,
    #[serde(default = "default_http_method")]
    pub method: String,
    #[serde(default = "default_expect_status")]
    pub expect_status: u16,
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecHook {
    pub command: Vec<String>,
    #[serde(default = "default_exec_timeout")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SleepHook {
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalHook {
    #[serde(default)]
    pub message: Option<String>,
}

/// The action of a hook, once validation has proven exactly one is set.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAction<'a> {
    Http(&'a HttpHook),
    Exec(&'a ExecHook),
    Sleep(&'a SleepHook),
    Approval(&'a ApprovalHook),
}

impl Hook {
    /// The hook's action. Validation guarantees exactly one; `None` only on an unvalidated plan.
    pub fn action(&self) -> Option<HookAction<'_>> {
        match (&self.http, &self.exec, &self.sleep, &self.approval) {
            (Some(h), None, None, None) => Some(HookAction::Http(h)),
            (None, Some(e), None, None) => Some(HookAction::Exec(e)),
            (None, None, Some(s), None) => Some(HookAction::Sleep(s)),
            (None, None, None, Some(a)) => Some(HookAction::Approval(a)),
            _ => None,
        }
    }
}

/// Where in the rollout a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPoint {
    BeforeRollout,
    BeforeWave,
    AfterWaveReady,
    BeforeHandover,
    AfterHandover,
    AfterRollout,
}

impl HookPoint {
    pub const ALL: [HookPoint; 6] = [
        HookPoint::BeforeRollout,
        HookPoint::BeforeWave,
        HookPoint::AfterWaveReady,
        HookPoint::BeforeHandover,
        HookPoint::AfterHandover,
        HookPoint::AfterRollout,
    ];

    /// The plan's field name for this point (`afterWaveReady`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeRollout => "beforeRollout",
            HookPoint::BeforeWave => "beforeWave",
            HookPoint::AfterWaveReady => "afterWaveReady",
            HookPoint::BeforeHandover => "beforeHandover",
            HookPoint::AfterHandover => "afterHandover",
            HookPoint::AfterRollout => "afterRollout",
        }
    }
}

impl Hooks {
    /// The hooks declared at one point, in plan order.
    pub fn at(&self, point: HookPoint) -> &[Hook] {
        match point {
            HookPoint::BeforeRollout => &self.before_rollout,
            HookPoint::BeforeWave => &self.before_wave,
            HookPoint::AfterWaveReady => &self.after_wave_ready,
            HookPoint::BeforeHandover => &self.before_handover,
            HookPoint::AfterHandover => &self.after_handover,
            HookPoint::AfterRollout => &self.after_rollout,
        }
    }
}

fn default_namespace() -> String {
    "default".to_owned()
}
fn default_role_label() -> String {
    "working".to_owned()
}
fn default_working() -> String {
    "true".to_owned()
}
fn default_idle() -> String {
    "false".to_owned()
}
fn default_arbiter_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_retries() -> u32 {
    3
}
fn default_ready_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_http_method() -> String {
    "GET".to_owned()
}
fn default_expect_status() -> u16 {
    200
}
fn default_hook_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_exec_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A plan that passed every check. The only kind of plan the engine runs.
#[derive(Debug, Clone)]
pub struct ValidPlan {
    plan: Plan,
    source: PlanSource,
}

/// Where a plan came from, kept so a resumed run can prove it runs the same text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    /// The file name as the user gave it (for messages).
    pub file: String,
    /// The exact text parsed.
    pub text: String,
    /// Hex SHA-256 of `text`.
    pub hash: String,
}

impl ValidPlan {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn spec(&self) -> &Spec {
        &self.plan.spec
    }
    pub fn source(&self) -> &PlanSource {
        &self.source
    }
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.plan.metadata.name
    }
}
