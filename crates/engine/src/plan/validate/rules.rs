//! Rules for single values: names, labels, durations, counts and hook placeholders.

use super::{HTTP_METHODS, MAX_DURATION, MAX_RETRIES, PLACEHOLDERS, RESERVED_LABELS};
use crate::duration::Duration;
use crate::plan::error::quote;

const DNS_LABEL: &str = "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const DNS_SUBDOMAIN: &str = "a DNS-1123 subdomain: at most 253 characters, dot-separated lowercase labels of letters, digits or '-'";
const LABEL_VALUE: &str = "a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

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
pub(super) fn named_label(what: &str, s: &str) -> Result<(), String> {
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

pub(super) fn role_label(s: &str) -> Result<(), String> {
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
pub(super) fn positive(d: Duration) -> Result<(), String> {
    if d.as_std().is_zero() {
        Err("zero duration: expected a positive duration like 5s, 10m or 1h30m".to_owned())
    } else {
        bounded(d)
    }
}

/// At most [`MAX_DURATION`].
pub(super) fn bounded(d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        Err(format!(
            "duration {d} is too long: expected at most {MAX_DURATION} (7 days)"
        ))
    } else {
        Ok(())
    }
}

pub(super) fn retries(n: u32) -> Result<(), String> {
    if n > MAX_RETRIES {
        Err(format!(
            "too many retries ({n}): expected at most {MAX_RETRIES}"
        ))
    } else {
        Ok(())
    }
}

pub(super) fn expect_status(code: u16) -> Result<(), String> {
    if (100..=599).contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "invalid HTTP status {code}: expected a status from 100 to 599"
        ))
    }
}

pub(super) fn http_method(method: &str) -> Result<(), String> {
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

pub(super) fn non_empty_path(path: Option<&std::path::Path>) -> Result<(), String> {
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

/// `owner` (`hook "x"`, `gate "y"`) must set exactly one of `kinds`, each a kind's name and
/// whether it is set; `noun` names one kind in the message ("action", "check").
pub(super) fn exactly_one(owner: &str, noun: &str, kinds: &[(&str, bool)]) -> Result<(), String> {
    let set: Vec<&str> = kinds
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    if set.len() == 1 {
        return Ok(());
    }
    let found = if set.is_empty() {
        format!("no {noun}")
    } else {
        format!("{} {noun}s ({})", set.len(), set.join(", "))
    };
    let all: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    Err(format!(
        "{owner} has {found}: expected exactly one of {}",
        all.join(", ")
    ))
}
