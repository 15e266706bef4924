//! The plan as typed serde structs, with their defaults. Doc comments here become the
//! descriptions of the JSON Schema (`engine schema`), so they speak to plan authors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// The `apiVersion` every plan must carry.
pub const API_VERSION: &str = "baton.dev/v1alpha1";
/// The `kind` every plan must carry.
pub const KIND: &str = "UpgradePlan";

/// A Baton upgrade plan: which Advanced StatefulSet to update, to what, and how.
///
/// Defaults are applied by serde, checks by [`ValidPlan::parse`](super::ValidPlan::parse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "UpgradePlan")]
pub struct Plan {
    /// Always `baton.dev/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Always `UpgradePlan`.
    #[schemars(extend("const" = KIND))]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// DNS-1123 label; with the target it names the run.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The Advanced StatefulSet to upgrade.
    pub target: Target,
    /// The new pod template: images and/or a template patch.
    pub update: Update,
    /// The pod label that mirrors the arbiter's roles.
    #[serde(default)]
    pub roles: Roles,
    /// The service that decides which pods are working and which are idle.
    pub arbiter: ArbiterSpec,
    /// How many pods to update at once and how long to wait for them.
    #[serde(default)]
    pub waves: Waves,
    /// Limits that stop the rollout.
    #[serde(default)]
    pub safety: Safety,
    /// Extra steps at fixed points of the rollout.
    #[serde(default)]
    pub hooks: Hooks,
    /// Per-pod checks: a pod that fails one is not selected, or not promoted.
    #[serde(default)]
    pub gates: Vec<super::safety::Gate>,
    /// When waves may start.
    #[serde(default)]
    pub schedule: super::safety::Schedule,
    /// Checks of the application while waves run.
    #[serde(default)]
    pub analysis: Option<super::safety::Analysis>,
    /// What a failed analysis check does: `freeze` (default) or `rollback` (which also
    /// rolls back a failed wave).
    #[serde(default)]
    pub on_failure: super::safety::OnFailure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    /// DNS-1123 label.
    #[serde(default = "default_namespace")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: String,
    /// Name of the Advanced StatefulSet (DNS-1123 subdomain).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// At least one of `images` and `templatePatch` must say what to change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("anyOf" = [{"required": ["images"]}, {"required": ["templatePatch"]}]))]
pub struct Update {
    /// Container name -> image (`name[:tag][@digest]`).
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Strategic-merge patch of `spec.template`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub template_patch: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Roles {
    /// Label key (`[prefix/]name`).
    #[serde(default = "default_role_label")]
    pub label: String,
    /// Label value of working pods.
    #[serde(default = "default_working")]
    pub working: String,
    /// Label value of idle pods; must differ from `working`.
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
    #[schemars(regex(pattern = r"^https?://[^\s/?#@]+[^\s?#]*$"))]
    pub url: String,
    /// Per request.
    #[serde(default = "default_arbiter_timeout")]
    pub timeout: Duration,
    /// Retries with exponential backoff and jitter.
    #[serde(default = "default_retries")]
    #[schemars(range(max = 10))]
    pub retries: u32,
    /// File holding a bearer token (never logged).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra CA bundle for https.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Waves {
    /// 0 = every eligible idle pod at once.
    #[serde(default)]
    pub max_per_wave: u32,
    /// How long a wave may take to become ready.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: Duration,
    /// Wait after a wave is ready.
    #[serde(default)]
    pub settle: Duration,
    /// When to wait for `engine approve`.
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

/// Manual approval gates between waves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Approval {
    /// Never wait.
    #[default]
    None,
    /// Wait once, after the first wave is ready.
    FirstWave,
    /// Wait after every wave.
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
#[schemars(extend("oneOf" = [
    {"required": ["http"]}, {"required": ["exec"]}, {"required": ["sleep"]}, {"required": ["approval"]}
]))]
pub struct Hook {
    /// DNS-1123 label, unique at its hook point.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// Call a URL and expect a status.
    #[serde(default)]
    pub http: Option<HttpHook>,
    /// Run a local command; it must exit 0.
    #[serde(default)]
    pub exec: Option<ExecHook>,
    /// Wait a fixed time.
    #[serde(default)]
    pub sleep: Option<SleepHook>,
    /// A manual gate: the run waits for `engine approve`. `approval: {}` or just `approval:`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub approval: Option<ApprovalHook>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHook {
    /// `http` or `https` URL; may use the placeholders.
    pub url: String,
    #[serde(default = "default_http_method")]
    #[schemars(extend("enum" = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]))]
    pub method: String,
    #[serde(default = "default_expect_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: u16,
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecHook {
    /// Program and arguments (no shell); may use the placeholders.
    #[schemars(length(min = 1))]
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
    /// Shown to the operator while the run waits.
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

/// A DNS-1123 label, for the schema (the parser checks the same rule in code).
const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An explicit null (`approval:`) means "present with defaults", not "absent".
fn null_as_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
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
