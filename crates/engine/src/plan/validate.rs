//! The rules a well-typed plan must still satisfy before the engine trusts it.
//!
//! Each rule is a pure function from a value to `Ok` or a message saying what is wrong
//! and what was expected; [`check`] applies them to every field and collects all the
//! problems at once, so an operator fixes a plan in one round rather than one per error.

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

const DNS_LABEL: &str = "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const DNS_SUBDOMAIN: &str = "a DNS-1123 subdomain: at most 253 characters, dot-separated lowercase labels of letters, digits or '-'";
const IMAGE: &str =
    "an image reference name[:tag][@digest] with a lowercase repository, e.g. alpine:3.18.0";
const LABEL_VALUE: &str = "a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

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
        let kinds: Vec<&str> = [
            hook.http.as_ref().map(|_| "http"),
            hook.exec.as_ref().map(|_| "exec"),
            hook.sleep.as_ref().map(|_| "sleep"),
            hook.approval.as_ref().map(|_| "approval"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kinds.len() != 1 {
            let found = if kinds.is_empty() {
                "no action".to_owned()
            } else {
                format!("{} actions ({})", kinds.len(), kinds.join(", "))
            };
            push(
                at.clone(),
                Err(format!(
                    "hook {} has {found}: expected exactly one of http, exec, sleep, approval",
                    quote(&hook.name)
                )),
            );
        }
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

pub(crate) fn exact(field: &str, value: &str, want: &str) -> Result<(), String> {
    if value == want {
        Ok(())
    } else {
        Err(format!(
            "unsupported {field} {}: expected {want}",
            quote(value)
        ))
    }
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Why `s` is not a DNS-1123 label part (lowercase alphanumerics and '-', alphanumeric at both ends).
fn dns_part_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("empty".to_owned());
    }
    if let Some(c) = s.chars().find(|&c| !is_alnum_lower(c) && c != '-') {
        return Some(format!("contains {c:?}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("starts or ends with '-'".to_owned());
    }
    None
}

pub(crate) fn dns1123_label(s: &str) -> Result<(), String> {
    named_label("name", s)
}

/// [`dns1123_label`] for a name of a particular kind (`container name`, `hook name`).
fn named_label(what: &str, s: &str) -> Result<(), String> {
    let problem = if s.chars().count() > 63 {
        Some("longer than 63 characters".to_owned())
    } else {
        dns_part_problem(s)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid {what} {} ({problem}): expected {DNS_LABEL}",
            quote(s)
        )),
    }
}

pub(crate) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    let problem = if s.chars().count() > 253 {
        Some("longer than 253 characters".to_owned())
    } else {
        s.split('.').find_map(dns_part_problem)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid name {} ({problem}): expected {DNS_SUBDOMAIN}",
            quote(s)
        )),
    }
}

/// The name part of a label key and a label value share one grammar.
fn label_name_problem(s: &str) -> Option<String> {
    if s.chars().count() > 63 {
        return Some("longer than 63 characters".to_owned());
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!("contains {c:?}"));
    }
    let edge_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
        return Some("starts or ends with a symbol".to_owned());
    }
    None
}

pub(crate) fn label_key(s: &str) -> Result<(), String> {
    let expected = "a label key: [prefix/]name, the prefix a DNS-1123 subdomain, the name at most 63 letters, digits, '-', '_' or '.'";
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let problem = if name.is_empty() {
        Some("empty name".to_owned())
    } else if let Some(problem) = label_name_problem(name) {
        Some(problem)
    } else {
        prefix.and_then(|p| {
            dns1123_subdomain(p)
                .err()
                .map(|_| format!("invalid prefix {}", quote(p)))
        })
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid label key {} ({problem}): expected {expected}",
            quote(s)
        )),
    }
}

fn role_label(s: &str) -> Result<(), String> {
    label_key(s)?;
    if RESERVED_LABELS.contains(&s) {
        return Err(format!(
            "label {} is owned by the engine or the StatefulSet controller: expected a label of your own, e.g. working",
            quote(s)
        ));
    }
    Ok(())
}

pub(crate) fn label_value(s: &str) -> Result<(), String> {
    match label_name_problem(s) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid label value {} ({problem}): expected {LABEL_VALUE}",
            quote(s)
        )),
    }
}

/// A positive duration of at most [`MAX_DURATION`] (timeouts, sleeps).
fn positive(d: Duration) -> Result<(), String> {
    if d.as_std().is_zero() {
        Err("zero duration: expected a positive duration like 5s, 10m or 1h30m".to_owned())
    } else {
        bounded(d)
    }
}

/// At most [`MAX_DURATION`].
fn bounded(d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        Err(format!(
            "duration {d} is too long: expected at most {MAX_DURATION} (7 days)"
        ))
    } else {
        Ok(())
    }
}

fn retries(n: u32) -> Result<(), String> {
    if n > MAX_RETRIES {
        Err(format!(
            "too many retries ({n}): expected at most {MAX_RETRIES}"
        ))
    } else {
        Ok(())
    }
}

fn expect_status(code: u16) -> Result<(), String> {
    if (100..=599).contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "invalid HTTP status {code}: expected a status from 100 to 599"
        ))
    }
}

fn http_method(method: &str) -> Result<(), String> {
    if HTTP_METHODS.contains(&method) {
        Ok(())
    } else {
        Err(format!(
            "unsupported HTTP method {}: expected one of {}",
            quote(method),
            HTTP_METHODS.join(", ")
        ))
    }
}

fn non_empty_path(path: Option<&std::path::Path>) -> Result<(), String> {
    match path {
        Some(p) if p.as_os_str().is_empty() => Err("empty path: expected a file path".to_owned()),
        _ => Ok(()),
    }
}

/// Every `{{...}}` must be one of [`PLACEHOLDERS`].
pub(crate) fn placeholders(s: &str) -> Result<(), String> {
    let expected = PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ");
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "unclosed placeholder in {}: expected one of {expected}",
                quote(s)
            ));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder \"{{{{{name}}}}}\": expected one of {expected}"
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

/// The parts of an `http(s)://` URL this crate cares about.
struct UrlParts<'a> {
    has_query_or_fragment: bool,
    has_credentials: bool,
    _host: &'a str,
}

fn parse_http_url(s: &str) -> Result<UrlParts<'_>, &'static str> {
    if s.chars().any(char::is_whitespace) {
        return Err("contains whitespace");
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("no scheme");
    };
    if scheme != "http" && scheme != "https" {
        return Err("scheme is not http or https");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (has_credentials, host_port) = match authority.rsplit_once('@') {
        Some((_, host_port)) => (true, host_port),
        None => (false, authority),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return Err("unclosed IPv6 address");
        };
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("invalid IPv6 address");
        }
        match after {
            "" => (inside, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => return Err("invalid port"),
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if host.starts_with(['-', '.'])
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("invalid host");
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err("invalid port");
    }
    Ok(UrlParts {
        has_query_or_fragment: tail.contains(['?', '#']),
        has_credentials,
        _host: host,
    })
}

const URL: &str = "an http:// or https:// URL with a host, e.g. http://arbiter.default.svc:8080";

pub(crate) fn arbiter_url(s: &str) -> Result<(), String> {
    let parts = parse_http_url(s)
        .map_err(|problem| format!("invalid URL {} ({problem}): expected {URL}", quote(s)))?;
    if parts.has_credentials {
        return Err(format!(
            "URL {} carries credentials, which would be logged: expected a URL without user or password (use tokenFile)",
            quote(s)
        ));
    }
    if parts.has_query_or_fragment {
        return Err(format!(
            "URL {} has a query or fragment: expected a base URL such as http://host:8080/prefix",
            quote(s)
        ));
    }
    Ok(())
}

pub(crate) fn hook_url(s: &str) -> Result<(), String> {
    placeholders(s)?;
    let filled = PLACEHOLDERS.iter().fold(s.to_owned(), |acc, p| {
        acc.replace(&format!("{{{{{p}}}}}"), "x")
    });
    let parts = parse_http_url(&filled)
        .map_err(|problem| format!("invalid URL {} ({problem}): expected {URL}", quote(s)))?;
    if parts.has_credentials {
        return Err(format!(
            "URL {} carries credentials, which would be logged: expected a URL without user or password",
            quote(s)
        ));
    }
    Ok(())
}

/// `[domain[:port]/]path[:tag][@digest]`, following the distribution reference grammar.
pub(crate) fn image_reference(s: &str) -> Result<(), String> {
    match image_problem(s) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "invalid image {} ({problem}): expected {IMAGE}",
            quote(s)
        )),
    }
}

fn image_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("empty");
    }
    if s.chars().any(char::is_whitespace) {
        return Some("contains whitespace");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    if let Some(digest) = digest
        && !is_digest(digest)
    {
        return Some("invalid digest");
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Some("invalid tag");
    }
    if name.is_empty() {
        return Some("no repository");
    }
    if name.len() > 255 {
        return Some("repository longer than 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()));
    if has_domain {
        if !is_domain(first) {
            return Some("invalid registry host");
        }
        components.remove(0);
    }
    if components
        .iter()
        .any(|c| c.chars().any(|ch| ch.is_ascii_uppercase()))
    {
        return Some("uppercase repository");
    }
    if !components.iter().all(|c| is_path_component(c)) {
        return Some("invalid repository");
    }
    None
}

/// `[a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let mut i = 0;
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|b| b == b'-'));
        if !ok {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    t.len() <= 128
        && t.chars().next().is_some_and(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// `algorithm:hex`, the hex part at least 32 characters.
fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
        && algorithm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'));
    algorithm_ok && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// `host[:port]`, the host DNS labels (any case) or a bracketed IPv6 address.
fn is_domain(d: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.parse::<u16>().is_ok();
    if let Some(v6) = d.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return false;
        };
        let inside_ok =
            !inside.is_empty() && inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        return inside_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match d.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (d, None),
    };
    let host_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    host_ok && port.is_none_or(port_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rule: fn(&str) -> Result<(), String>, good: &[&str], bad: &[&str]) {
        for s in good {
            assert_eq!(rule(s), Ok(()), "{s:?} should pass");
        }
        for s in bad {
            let err = rule(s).expect_err(&format!("{s:?} should fail"));
            assert!(
                err.contains("expected"),
                "message {err:?} should say what was expected"
            );
        }
    }

    #[test]
    fn dns1123_labels_are_short_lowercase_and_alphanumeric_at_both_ends() {
        table(
            dns1123_label,
            &["a", "sample", "sample-to-3-18-0", "0abc", &"a".repeat(63)],
            &[
                "",
                "Sample",
                "-a",
                "a-",
                "a.b",
                "a_b",
                "a b",
                &"a".repeat(64),
                "é",
            ],
        );
    }

    #[test]
    fn dns1123_subdomains_are_dot_separated_labels() {
        table(
            dns1123_subdomain,
            &[
                "sample",
                "my.app-1",
                "a.b.c",
                &format!("{}.{}", "a".repeat(100), "b".repeat(100)),
            ],
            &["", ".a", "a.", "a..b", "A.b", "a_b", &"a".repeat(254)],
        );
    }

    #[test]
    fn label_keys_take_an_optional_subdomain_prefix() {
        table(
            label_key,
            &[
                "working",
                "Working",
                "app.kubernetes.io/role",
                "example.com/x_y.z",
                "a",
            ],
            &[
                "",
                "/working",
                "a/",
                "Example.com/x",
                "a/b/c",
                "-x",
                "x-",
                "role label",
                &"a".repeat(64),
            ],
        );
    }

    #[test]
    fn label_values_may_be_empty_but_not_symbolic() {
        table(
            label_value,
            &["", "true", "false", "Leader", "a.b_c-d"],
            &["-x", "x.", "a/b", "a b", &"a".repeat(64)],
        );
    }

    #[test]
    fn role_labels_owned_by_others_are_refused() {
        assert!(role_label("working").is_ok());
        for reserved in RESERVED_LABELS {
            assert!(role_label(reserved).is_err(), "{reserved}");
        }
    }

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        table(
            image_reference,
            &[
                "alpine",
                "alpine:3.18.0",
                "library/alpine:3.18",
                "docker.io/library/alpine:latest",
                "localhost:5000/app",
                "registry.example.com:5000/team/app:v1_2-3",
                "Registry.Example.com/app",
                "my__app/x-y.z",
                "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "[::1]:5000/app",
            ],
            &[
                "",
                "Alpine",
                "alpine:",
                "alpine:3.18 ",
                "al pine",
                "alpine:-bad",
                "alpine@sha256:abc",
                "alpine@:0123456789abcdef0123456789abcdef",
                "/alpine",
                "alpine/",
                "a..b",
                "a___b",
                "-alpine",
                "registry.example.com/",
                "bad_host.com/app",
            ],
        );
    }

    #[test]
    fn arbiter_urls_are_plain_http_or_https_bases() {
        table(
            arbiter_url,
            &[
                "http://127.0.0.1:8080",
                "https://arbiter.default.svc",
                "http://arbiter:8080/prefix/",
                "http://[::1]:8080",
            ],
            &[
                "",
                "arbiter:8080",
                "ftp://arbiter",
                "http://",
                "http://:8080",
                "http://host:0",
                "http://host:99999",
                "http://host:port",
                "http://user:pw@host",
                "http://host/?x=1",
                "http://host/#frag",
                "http://ho st",
                "http://[::1",
            ],
        );
    }

    #[test]
    fn hook_urls_may_carry_placeholders_and_queries() {
        table(
            hook_url,
            &[
                "http://svc/health",
                "http://svc/check?wave={{wave}}&pods={{pods}}",
                "https://{{run}}.example.com/",
            ],
            &[
                "http://svc/{{wavee}}",
                "http://svc/{{wave",
                "svc/health",
                "http://a:b@svc/",
            ],
        );
    }

    #[test]
    fn only_the_five_placeholders_exist() {
        table(
            placeholders,
            &[
                "",
                "plain",
                "{{run}}",
                "{{run}}-{{wave}}-{{pods}}-{{promote}}-{{demote}}",
                "}}{",
                "{x}",
            ],
            &[
                "{{}}",
                "{{ wave }}",
                "{{Wave}}",
                "{{node}}",
                "{{wave}} {{",
                "a {{run",
            ],
        );
    }

    #[test]
    fn numeric_limits_hold() {
        assert!(retries(0).is_ok() && retries(MAX_RETRIES).is_ok());
        assert!(retries(MAX_RETRIES + 1).is_err());
        for code in [100, 200, 599] {
            assert!(expect_status(code).is_ok(), "{code}");
        }
        for code in [0, 99, 600, 65535] {
            assert!(expect_status(code).is_err(), "{code}");
        }
        assert!(positive(Duration::from_secs(1)).is_ok());
        assert!(positive(Duration::ZERO).is_err());
        assert!(http_method("POST").is_ok());
        assert!(http_method("post").is_err() && http_method("TRACE").is_err());
        assert!(exact("kind", "UpgradePlan", KIND).is_ok());
        assert!(exact("kind", "Deployment", KIND).is_err());
    }
}
