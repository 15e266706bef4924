//! Gates, windows, analysis and onFailure through `ValidPlan::parse`: the example plan is
//! valid with its defaults, and each broken rule names its field, line and what was expected.

use baton_engine::duration::Duration;
use baton_engine::plan::{GateAction, GateMoment, OnFailure, ValidPlan, Weekday};

const SEED: &str = include_str!("../../../../plans/seed.yaml");
const SAFETY: &str = include_str!("../../../../plans/app-safety.yaml");

fn problems(text: &str) -> Vec<(String, usize, String)> {
    match ValidPlan::parse("t.yaml", text) {
        Ok(_) => Vec::new(),
        Err(error) => error
            .diagnostics()
            .iter()
            .map(|d| (d.path.clone(), d.line, d.message.clone()))
            .collect(),
    }
}

#[test]
fn the_safety_example_is_valid_and_carries_its_defaults() {
    let plan = ValidPlan::parse("plans/app-safety.yaml", SAFETY).unwrap();
    let spec = plan.spec();
    assert_eq!(spec.gates.len(), 2);
    let caught_up = &spec.gates[0];
    assert_eq!(caught_up.when, [GateMoment::Select, GateMoment::Promote]);
    let Some(GateAction::Http(http)) = caught_up.action() else {
        panic!("an http gate: {caught_up:?}");
    };
    assert_eq!(http.timeout, Duration::from_secs(2));
    let Some(GateAction::Prometheus(lag)) = spec.gates[1].action() else {
        panic!("a prometheus gate");
    };
    assert_eq!((lag.max, lag.min), (Some(5.0), None));
    assert_eq!(lag.timeout, Duration::from_secs(5), "default timeout");
    assert!(!spec.gates[1].asked_at(GateMoment::Select));
    let window = &spec.schedule.windows[0];
    assert_eq!(window.minutes(), Some((60, 300)));
    assert_eq!(window.days.len(), 4);
    let analysis = spec.analysis.as_ref().unwrap();
    assert_eq!(analysis.interval, Duration::from_secs(10));
    assert_eq!(analysis.checks[0].prometheus.max, Some(0.01));
    assert_eq!(spec.on_failure, OnFailure::Freeze);

    // Everything left out: no gates, any time, no analysis, freeze.
    let seed = ValidPlan::parse("seed.yaml", SEED).unwrap();
    assert!(seed.spec().gates.is_empty() && seed.spec().schedule.windows.is_empty());
    assert_eq!(seed.spec().analysis, None);
    assert_eq!(seed.spec().on_failure, OnFailure::Freeze);

    // A window with only start and end opens every day, in UTC.
    let text = format!("{SEED}  schedule:\n    windows: [{{start: \"22:00\", end: \"02:00\"}}]\n");
    let plan = ValidPlan::parse("t.yaml", &text).unwrap();
    let w = &plan.spec().schedule.windows[0];
    assert_eq!(w.days, Weekday::ALL);
    assert_eq!(w.time_zone, "UTC");
    assert_eq!(w.minutes(), Some((22 * 60, 2 * 60)));
}

#[test]
fn each_safety_rule_names_its_field_line_and_what_was_expected() {
    // (appended to the seed plan's spec, the field, the line inside the snippet (1-based),
    // a piece of the message)
    let table: &[(&str, &str, usize, &str)] = &[
        (
            "  gates:\n    - name: a\n",
            "spec.gates[0]",
            2,
            "expected exactly one of http, exec, prometheus",
        ),
        (
            "  gates:\n    - name: a\n      exec: {command: [x]}\n      http: {url: \"http://x\"}\n",
            "spec.gates[0]",
            2,
            "2 checks (http, exec)",
        ),
        (
            "  gates:\n    - {name: a, exec: {command: [x]}}\n    - {name: a, exec: {command: [y]}}\n",
            "spec.gates[1].name",
            3,
            "duplicate gate name",
        ),
        (
            "  gates:\n    - {name: Caught Up, exec: {command: [x]}}\n",
            "spec.gates[0].name",
            2,
            "invalid gate name",
        ),
        (
            "  gates:\n    - {name: a, http: {url: \"http://{{pods}}/x\"}}\n",
            "spec.gates[0].http.url",
            2,
            "expected one of {{pod}}, {{run}}, {{wave}}",
        ),
        (
            "  gates:\n    - {name: a, http: {url: \"svc/x\"}}\n",
            "spec.gates[0].http.url",
            2,
            "expected an http:// or https:// URL",
        ),
        (
            "  gates:\n    - {name: a, exec: {command: []}}\n",
            "spec.gates[0].exec.command",
            2,
            "empty command",
        ),
        (
            "  gates:\n    - {name: a, exec: {command: [x]}, when: []}\n",
            "spec.gates[0].when",
            2,
            "expected [select], [promote] or both",
        ),
        (
            "  gates:\n    - {name: a, exec: {command: [x]}, when: [select, select]}\n",
            "spec.gates[0].when",
            2,
            "listed twice",
        ),
        (
            "  gates:\n    - name: a\n      prometheus: {url: \"http://p:9090\", query: up}\n",
            "spec.gates[0].prometheus",
            3,
            "expected max, min or both",
        ),
        (
            "  gates:\n    - name: a\n      prometheus: {url: \"http://p:9090\", query: up, min: 2, max: 1}\n",
            "spec.gates[0].prometheus.min",
            3,
            "expected min <= max",
        ),
        (
            "  gates:\n    - name: a\n      prometheus: {url: \"http://p:9090?x=1\", query: up, max: 1}\n",
            "spec.gates[0].prometheus.url",
            3,
            "expected a base URL",
        ),
        (
            "  gates:\n    - name: a\n      prometheus: {url: \"http://p:9090\", query: \" \", max: 1}\n",
            "spec.gates[0].prometheus.query",
            3,
            "expected PromQL",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"1:00\", end: \"05:00\"}\n",
            "spec.schedule.windows[0].start",
            3,
            "expected HH:MM from 00:00 to 23:59",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"01:00\", end: \"25:00\"}\n",
            "spec.schedule.windows[0].end",
            3,
            "expected HH:MM from 00:00 to 24:00",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"01:00\", end: \"01:00\"}\n",
            "spec.schedule.windows[0].end",
            3,
            "expected an end that differs from start",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"01:00\", end: \"02:00\", timeZone: Mars/Olympus}\n",
            "spec.schedule.windows[0].timeZone",
            3,
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"01:00\", end: \"02:00\", days: []}\n",
            "spec.schedule.windows[0].days",
            3,
            "expected days such as [Mon, Tue]",
        ),
        (
            "  analysis:\n    interval: 0s\n    checks: []\n",
            "spec.analysis.interval",
            2,
            "zero duration",
        ),
        (
            "  analysis:\n    checks: []\n",
            "spec.analysis.checks",
            2,
            "expected at least one check",
        ),
        (
            "  analysis:\n    checks:\n      - {name: e, prometheus: {url: \"http://p\", query: \"x{pod='{{pod}}'}\", max: 1}}\n",
            "spec.analysis.checks[0].prometheus.query",
            3,
            "expected no placeholder here",
        ),
    ];
    let base = SEED.lines().count();
    for (snippet, path, line, message) in table {
        let text = format!("{SEED}{snippet}");
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|(p, l, m)| p == path && *l == base + line && m.contains(message)),
            "{snippet}: want {path} at line {} with {message:?}, got {found:#?}",
            base + line
        );
    }
}

#[test]
fn on_failure_rollback_is_accepted() {
    let text = format!("{SEED}  onFailure: rollback\n");
    let plan = ValidPlan::parse("plan.yaml", &text).expect("onFailure: rollback is valid");
    assert_eq!(plan.spec().on_failure, OnFailure::Rollback);
}

#[test]
fn unknown_fields_and_wrong_types_stay_located_errors() {
    let table: &[(&str, &str, &str)] = &[
        (
            "  gates:\n    - {name: a, exec: {command: [x]}, retries: 3}\n",
            "spec.gates[0]",
            "unknown field \"retries\"",
        ),
        (
            "  gates:\n    - {name: a, exec: {command: [x]}, when: [update]}\n",
            "spec.gates[0].when[0]",
            "select",
        ),
        (
            "  schedule:\n    windows:\n      - {start: \"01:00\", end: \"02:00\", days: [Monday]}\n",
            "spec.schedule.windows[0].days[0]",
            "Mon",
        ),
        (
            "  schedule:\n    window: []\n",
            "spec.schedule",
            "unknown field \"window\"",
        ),
        (
            "  analysis:\n    checks:\n      - {name: e, prometheus: {url: \"http://p\", query: up, max: lots}}\n",
            "spec.analysis.checks[0].prometheus.max",
            "",
        ),
        ("  onFailure: retry\n", "spec.onFailure", "freeze"),
    ];
    for (snippet, path, message) in table {
        let text = format!("{SEED}{snippet}");
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|(p, l, m)| p.starts_with(path) && *l > 0 && m.contains(message)),
            "{snippet}: want {path} with {message:?}, got {found:#?}"
        );
    }
}

#[test]
fn the_schema_describes_gates_windows_analysis_and_on_failure() {
    let schema = baton_engine::plan::schema();
    let defs = &schema["$defs"];
    let spec = &defs["Spec"]["properties"];
    for field in ["gates", "schedule", "analysis", "onFailure"] {
        assert!(spec.get(field).is_some(), "spec.{field} in the schema");
    }
    for def in [
        "Gate",
        "HttpGate",
        "PrometheusQuery",
        "Window",
        "Analysis",
        "Check",
    ] {
        assert_eq!(defs[def]["additionalProperties"], false, "{def}");
    }
    let text = schema.to_string();
    for word in [
        "\"select\"",
        "\"promote\"",
        "\"Mon\"",
        "\"rollback\"",
        "\"freeze\"",
    ] {
        assert!(text.contains(word), "{word} in the schema");
    }
}
