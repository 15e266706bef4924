//! Rules for the application-aware safety of a plan: gates, windows, analysis, onFailure.

use std::collections::BTreeSet;

use super::Issue;
use super::reference::parse_http_url;
use super::rules::{exactly_one, expect_status, named_label, positive};
use crate::plan::Spec;
use crate::plan::error::quote;
use crate::plan::path::FieldPath;
use crate::plan::safety::{Analysis, Gate, PrometheusQuery, Window};

/// Placeholders gate URLs, commands and queries may use.
pub const GATE_PLACEHOLDERS: [&str; 3] = ["pod", "run", "wave"];

pub(super) fn check(spec: &Spec, issues: &mut Vec<Issue>) {
    let mut push = |path: FieldPath, result: Result<(), String>| {
        if let Err(message) = result {
            issues.push(Issue {
                path,
                message,
                at_key: false,
            });
        }
    };
    let gates = FieldPath::parse("spec.gates");
    let mut seen = BTreeSet::new();
    for (i, gate) in spec.gates.iter().enumerate() {
        check_gate(&gates.index(i), gate, &mut seen, &mut push);
    }
    let windows = FieldPath::parse("spec.schedule.windows");
    for (i, window) in spec.schedule.windows.iter().enumerate() {
        check_window(&windows.index(i), window, &mut push);
    }
    if let Some(analysis) = &spec.analysis {
        check_analysis(analysis, &mut push);
    }
}

fn check_gate(
    at: &FieldPath,
    gate: &Gate,
    seen: &mut BTreeSet<String>,
    push: &mut impl FnMut(FieldPath, Result<(), String>),
) {
    push(at.key("name"), named_label("gate name", &gate.name));
    if !seen.insert(gate.name.clone()) {
        push(
            at.key("name"),
            Err(format!(
                "duplicate gate name {}: expected unique gate names",
                quote(&gate.name)
            )),
        );
    }
    push(
        at.clone(),
        exactly_one(
            &format!("gate {}", quote(&gate.name)),
            "check",
            &[
                ("http", gate.http.is_some()),
                ("exec", gate.exec.is_some()),
                ("prometheus", gate.prometheus.is_some()),
            ],
        ),
    );
    if let Some(http) = &gate.http {
        let here = at.key("http");
        push(here.key("url"), url_with(&http.url, &GATE_PLACEHOLDERS));
        push(here.key("expectStatus"), expect_status(http.expect_status));
        push(here.key("timeout"), positive(http.timeout));
    }
    if let Some(exec) = &gate.exec {
        let here = at.key("exec");
        if exec.command.first().is_none_or(|p| p.trim().is_empty()) {
            push(
                here.key("command"),
                Err("empty command: expected a program and its arguments, e.g. [\"./caught-up.sh\", \"{{pod}}\"]".to_owned()),
            );
        }
        for (j, arg) in exec.command.iter().enumerate() {
            push(
                here.key("command").index(j),
                placeholders_in(arg, &GATE_PLACEHOLDERS),
            );
        }
        push(here.key("timeout"), positive(exec.timeout));
    }
    if let Some(prometheus) = &gate.prometheus {
        check_query(&at.key("prometheus"), prometheus, &GATE_PLACEHOLDERS, push);
    }
    if gate.when.is_empty() {
        push(
            at.key("when"),
            Err("no moment: expected [select], [promote] or both (the default)".to_owned()),
        );
    }
    let moments: BTreeSet<_> = gate.when.iter().collect();
    if moments.len() != gate.when.len() {
        push(
            at.key("when"),
            Err(
                "a moment is listed twice: expected select and promote at most once each"
                    .to_owned(),
            ),
        );
    }
}

fn check_query(
    at: &FieldPath,
    q: &PrometheusQuery,
    allowed: &[&str],
    push: &mut impl FnMut(FieldPath, Result<(), String>),
) {
    push(at.key("url"), prometheus_url(&q.url));
    let query = if q.query.trim().is_empty() {
        Err("empty query: expected PromQL, e.g. sum(rate(errors_total[1m]))".to_owned())
    } else {
        placeholders_in(&q.query, allowed)
    };
    push(at.key("query"), query);
    push(at.key("timeout"), positive(q.timeout));
    for (field, bound) in [("max", q.max), ("min", q.min)] {
        if let Some(v) = bound
            && !v.is_finite()
        {
            push(
                at.key(field),
                Err(format!("{field} is {v}: expected a finite number")),
            );
        }
    }
    match (q.min, q.max) {
        (None, None) => push(
            at.clone(),
            Err("no bound: expected max, min or both (the value that passes)".to_owned()),
        ),
        (Some(min), Some(max)) if min > max => push(
            at.key("min"),
            Err(format!(
                "min {min} is above max {max}: expected min <= max, or no value could pass"
            )),
        ),
        _ => {}
    }
}

fn check_window(at: &FieldPath, w: &Window, push: &mut impl FnMut(FieldPath, Result<(), String>)) {
    let start = clock_time(&w.start, false);
    let end = clock_time(&w.end, true);
    push(at.key("start"), start.clone().map(|_| ()));
    push(at.key("end"), end.clone().map(|_| ()));
    if let (Ok(s), Ok(e)) = (start, end)
        && (s == e || (s == 0 && e == 24 * 60))
    {
        push(
            at.key("end"),
            Err(format!(
                "the window {}-{} is empty or the whole day: expected an end that differs \
                 from start (leave out schedule.windows for any time)",
                w.start, w.end
            )),
        );
    }
    if w.days.is_empty() {
        push(
            at.key("days"),
            Err("no day: expected days such as [Mon, Tue] (default every day)".to_owned()),
        );
    }
    push(at.key("timeZone"), time_zone(&w.time_zone));
}

fn check_analysis(a: &Analysis, push: &mut impl FnMut(FieldPath, Result<(), String>)) {
    let at = FieldPath::parse("spec.analysis");
    push(at.key("interval"), positive(a.interval));
    if a.checks.is_empty() {
        push(
            at.key("checks"),
            Err("no check: expected at least one check (or leave out analysis)".to_owned()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, check) in a.checks.iter().enumerate() {
        let here = at.key("checks").index(i);
        push(here.key("name"), named_label("check name", &check.name));
        if !seen.insert(check.name.as_str()) {
            push(
                here.key("name"),
                Err(format!(
                    "duplicate check name {}: expected unique check names",
                    quote(&check.name)
                )),
            );
        }
        check_query(&here.key("prometheus"), &check.prometheus, &[], push);
    }
}

/// Minutes since midnight of `HH:MM`; `24:00` only as an end.
pub(crate) fn clock_time(s: &str, end: bool) -> Result<u16, String> {
    let expected = if end {
        "expected HH:MM from 00:00 to 24:00, e.g. \"05:00\""
    } else {
        "expected HH:MM from 00:00 to 23:59, e.g. \"01:00\""
    };
    let bad = || Err(format!("invalid time {}: {expected}", quote(s)));
    let Some((h, m)) = s.split_once(':') else {
        return bad();
    };
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return bad();
    }
    let (Ok(h), Ok(m)) = (h.parse::<u16>(), m.parse::<u16>()) else {
        return bad();
    };
    match (h, m) {
        (24, 0) if end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => bad(),
    }
}

pub(super) fn time_zone(name: &str) -> Result<(), String> {
    match jiff::tz::TimeZone::get(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "unknown time zone {}: expected an IANA name such as Europe/Berlin or UTC",
            quote(name)
        )),
    }
}

fn prometheus_url(s: &str) -> Result<(), String> {
    let parts = parse_http_url(s).map_err(|problem| {
        format!(
            "invalid URL {} ({problem}): expected the Prometheus server's base URL, e.g. http://prometheus:9090",
            quote(s)
        )
    })?;
    if parts.has_credentials || parts.has_query_or_fragment {
        return Err(format!(
            "URL {} has credentials, a query or a fragment: expected a base URL such as http://prometheus:9090",
            quote(s)
        ));
    }
    Ok(())
}

/// An `http(s)` URL once every allowed placeholder is filled in.
fn url_with(s: &str, allowed: &[&str]) -> Result<(), String> {
    placeholders_in(s, allowed)?;
    let filled = allowed.iter().fold(s.to_owned(), |acc, p| {
        acc.replace(&format!("{{{{{p}}}}}"), "x")
    });
    let parts = parse_http_url(&filled).map_err(|problem| {
        format!(
            "invalid URL {} ({problem}): expected an http:// or https:// URL, e.g. http://{{{{pod}}}}.app:8080/caught-up",
            quote(s)
        )
    })?;
    if parts.has_credentials {
        return Err(format!(
            "URL {} carries credentials, which would be logged: expected a URL without user or password",
            quote(s)
        ));
    }
    Ok(())
}

/// Every `{{...}}` must be one of `allowed`.
pub(crate) fn placeholders_in(s: &str, allowed: &[&str]) -> Result<(), String> {
    let expected = if allowed.is_empty() {
        "no placeholder here".to_owned()
    } else {
        format!(
            "one of {}",
            allowed
                .iter()
                .map(|p| format!("{{{{{p}}}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "unclosed placeholder in {}: expected {expected}",
                quote(s)
            ));
        };
        let name = &after[..close];
        if !allowed.contains(&name) {
            return Err(format!(
                "unknown placeholder \"{{{{{name}}}}}\": expected {expected}"
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}
