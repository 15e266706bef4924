//! The rules a well-typed plan must still satisfy before the engine trusts it.
//!
//! Each rule is a pure function from a value to `Ok` or a message saying what is wrong
//! and what was expected; [`check`] applies them to every field and collects all the
//! problems at once, so an operator fixes a plan in one round rather than one per error.
//! The rules for single values live in `rules`, those for URLs and images in `reference`.

use std::collections::BTreeSet;

use super::error::quote;
use super::model::{API_VERSION, Hook, HookPoint, KIND, Plan};
use super::path::FieldPath;
use crate::duration::Duration;

/// One broken rule: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub path: FieldPath,
    pub message: String,
    /// Point at the mapping key rather than its value (a bad container name, say).
    pub at_key: bool,
}

/// Placeholders hook URLs and commands may use (SPEC §2).
pub const PLACEHOLDERS: [&str; 5] = ["run", "wave", "pods", "promote", "demote"];

/// HTTP methods a hook may use.
pub const HTTP_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Most retries the arbiter client may be told to make; beyond this a broken arbiter
/// stalls a rollout for a long time instead of failing it.
pub const MAX_RETRIES: u32 = 10;

/// The longest duration a plan may give. Waits and timeouts of a rollout are seconds to
/// hours; a value beyond a week is a typo, and one beyond the clock's range (`584942417355h`)
/// would overflow the deadline computed from it.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Labels the engine or the StatefulSet controller own; mirroring roles into them would fight.
const RESERVED_LABELS: [&str; 4] = [
    "baton.dev/selected",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

mod reference;
mod rules;
mod safety;
#[cfg(test)]
mod tests;

use reference::*;
pub(crate) use rules::exact;
use rules::*;
pub use safety::GATE_PLACEHOLDERS;
pub(crate) use safety::clock_time;

/// Applies every rule to a plan, in document order.
pub(crate) fn check(plan: &Plan) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut push = |path: &str, result: Result<(), String>| {
        if let Err(message) = result {
            issues.push(Issue {
                path: FieldPath::parse(path),
                message,
                at_key: false,
            });
        }
    };

    push(
        "apiVersion",
        exact("apiVersion", &plan.api_version, API_VERSION),
    );
    push("kind", exact("kind", &plan.kind, KIND));
    push("metadata.name", dns1123_label(&plan.metadata.name));

    let spec = &plan.spec;
    push(
        "spec.target.namespace",
        dns1123_label(&spec.target.namespace),
    );
    push("spec.target.name", dns1123_subdomain(&spec.target.name));

    let patch = spec.update.template_patch.as_ref();
    match patch {
        Some(value) if !value.is_object() => push(
            "spec.update.templatePatch",
            Err("invalid templatePatch: expected a mapping (a strategic-merge patch of spec.template)".to_owned()),
        ),
        _ => {}
    }
    let patch_empty = patch
        .and_then(|v| v.as_object())
        .is_none_or(|o| o.is_empty());
    if spec.update.images.is_empty() && patch_empty {
        push(
            "spec.update",
            Err("nothing to update: expected at least one image in images or a non-empty templatePatch".to_owned()),
        );
    }

    push("spec.roles.label", role_label(&spec.roles.label));
    push("spec.roles.working", label_value(&spec.roles.working));
    push("spec.roles.idle", label_value(&spec.roles.idle));
    if spec.roles.working == spec.roles.idle {
        push(
            "spec.roles.idle",
            Err(format!(
                "working and idle are both {}: expected two different label values",
                quote(&spec.roles.idle)
            )),
        );
    }

    push("spec.arbiter.url", arbiter_url(&spec.arbiter.url));
    push("spec.arbiter.timeout", positive(spec.arbiter.timeout));
    push("spec.arbiter.retries", retries(spec.arbiter.retries));
    push(
        "spec.arbiter.tokenFile",
        non_empty_path(spec.arbiter.token_file.as_deref()),
    );
    push(
        "spec.arbiter.caFile",
        non_empty_path(spec.arbiter.ca_file.as_deref()),
    );

    push(
        "spec.waves.readyTimeout",
        positive(spec.waves.ready_timeout),
    );
    push("spec.waves.settle", bounded(spec.waves.settle));

    // Container names are keys: point at the key, then check the image it maps to.
    for (container, image) in &spec.update.images {
        let path = FieldPath::parse("spec.update.images").key(container);
        if let Err(message) = named_label("container name", container) {
            issues.push(Issue {
                path: path.clone(),
                message,
                at_key: true,
            });
        }
        if let Err(message) = image_reference(image) {
            issues.push(Issue {
                path,
                message,
                at_key: false,
            });
        }
    }

    for point in HookPoint::ALL {
        let base = FieldPath::parse("spec.hooks").key(point.as_str());
        check_hooks(&base, spec.hooks.at(point), &mut issues);
    }
    safety::check(spec, &mut issues);
    issues
}

fn check_hooks(base: &FieldPath, hooks: &[Hook], issues: &mut Vec<Issue>) {
    let mut seen = BTreeSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let at = base.index(i);
        let mut push = |path: FieldPath, result: Result<(), String>| {
            if let Err(message) = result {
                issues.push(Issue {
                    path,
                    message,
                    at_key: false,
                });
            }
        };
        push(at.key("name"), named_label("hook name", &hook.name));
        if !seen.insert(hook.name.as_str()) {
            push(
                at.key("name"),
                Err(format!(
                    "duplicate hook name {}: expected unique names at one hook point",
                    quote(&hook.name)
                )),
            );
        }
        push(
            at.clone(),
            exactly_one(
                &format!("hook {}", quote(&hook.name)),
                "action",
                &[
                    ("http", hook.http.is_some()),
                    ("exec", hook.exec.is_some()),
                    ("sleep", hook.sleep.is_some()),
                    ("approval", hook.approval.is_some()),
                ],
            ),
        );
        if let Some(http) = &hook.http {
            let here = at.key("http");
            push(here.key("url"), hook_url(&http.url));
            push(here.key("method"), http_method(&http.method));
            push(here.key("expectStatus"), expect_status(http.expect_status));
            push(here.key("timeout"), positive(http.timeout));
        }
        if let Some(exec) = &hook.exec {
            let here = at.key("exec");
            if exec
                .command
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                push(
                    here.key("command"),
                    Err("empty command: expected a program and its arguments, e.g. [\"./check.sh\", \"{{wave}}\"]".to_owned()),
                );
            }
            for (j, arg) in exec.command.iter().enumerate() {
                push(here.key("command").index(j), placeholders(arg));
            }
            push(here.key("timeout"), positive(exec.timeout));
        }
        if let Some(sleep) = &hook.sleep {
            push(at.key("sleep").key("duration"), positive(sleep.duration));
        }
    }
}
