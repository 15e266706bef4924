//! Every plan rule, through the public door `ValidPlan::parse`: the seed plan with one
//! edit must fail at the right field, line and column, saying what was expected.

use baton_engine::duration::Duration;
use baton_engine::plan::{Approval, HookAction, HookPoint, PlanError, ValidPlan};

const SEED: &str = include_str!("../../../../plans/seed.yaml");
const WITH_HOOKS: &str = include_str!("../../../../plans/with-hooks.yaml");
const ROLLBACK: &str = include_str!("../../../../plans/rollback.yaml");

fn edit(from: &str, to: &str) -> String {
    assert!(SEED.contains(from), "seed.yaml should contain {from:?}");
    SEED.replacen(from, to, 1)
}

fn problems(text: &str) -> Vec<(String, String)> {
    match ValidPlan::parse("t.yaml", text) {
        Ok(_) => Vec::new(),
        Err(error) => error
            .diagnostics()
            .iter()
            .map(|d| (d.path.clone(), d.message.clone()))
            .collect(),
    }
}

#[test]
fn the_example_plans_are_valid_and_carry_their_defaults() {
    let seed = ValidPlan::parse("plans/seed.yaml", SEED).unwrap();
    assert_eq!(seed.name(), "sample-to-3-18-0");
    assert_eq!(seed.spec().target.name, "sample");
    assert_eq!(seed.spec().update.images["main"], "alpine:3.18.0");
    assert_eq!(seed.spec().waves.ready_timeout, Duration::from_secs(600));
    assert_eq!(seed.source().file, "plans/seed.yaml");
    assert_eq!(seed.source().hash.len(), 64);

    let rollback = ValidPlan::parse("plans/rollback.yaml", ROLLBACK).unwrap();
    assert_eq!(rollback.spec().target.namespace, "default");
    assert_eq!(rollback.spec().roles.label, "working");
    assert_eq!(rollback.spec().arbiter.retries, 3);
    assert_eq!(rollback.spec().arbiter.timeout, Duration::from_secs(5));

    let hooks = ValidPlan::parse("plans/with-hooks.yaml", WITH_HOOKS).unwrap();
    assert_eq!(hooks.spec().waves.approval, Approval::FirstWave);
    assert_eq!(hooks.spec().waves.ready_timeout, Duration::from_secs(5400));
    let kinds: Vec<&str> = HookPoint::ALL
        .iter()
        .flat_map(|p| hooks.spec().hooks.at(*p))
        .map(|h| match h.action() {
            Some(HookAction::Http(_)) => "http",
            Some(HookAction::Exec(_)) => "exec",
            Some(HookAction::Sleep(_)) => "sleep",
            Some(HookAction::Approval(_)) => "approval",
            None => "none",
        })
        .collect();
    for kind in ["http", "exec", "sleep", "approval"] {
        assert!(
            kinds.contains(&kind),
            "with-hooks.yaml should use a {kind} hook"
        );
    }
    assert!(!kinds.contains(&"none"));
}

#[test]
fn each_rule_names_its_field_and_what_was_expected() {
    // (edit from, edit to, field path, part of the message)
    let table: &[(&str, &str, &str, &str)] = &[
        (
            "apiVersion: baton.dev/v1alpha1",
            "apiVersion: baton.dev/v1",
            "apiVersion",
            "expected baton.dev/v1alpha1",
        ),
        (
            "kind: UpgradePlan",
            "kind: Deployment",
            "kind",
            "expected UpgradePlan",
        ),
        (
            "name: sample-to-3-18-0",
            "name: Sample_To",
            "metadata.name",
            "DNS-1123 label",
        ),
        (
            "namespace: default",
            "namespace: my.ns",
            "spec.target.namespace",
            "DNS-1123 label",
        ),
        (
            "name: sample\n",
            "name: sample_1\n",
            "spec.target.name",
            "DNS-1123 subdomain",
        ),
        (
            "    images:\n      main: alpine:3.18.0\n",
            "    images: {}\n",
            "spec.update",
            "nothing to update",
        ),
        (
            "main: alpine:3.18.0",
            "main: Alpine:3.18.0",
            "spec.update.images.main",
            "uppercase repository",
        ),
        (
            "main: alpine:3.18.0",
            "main: \"alpine: 3.18\"",
            "spec.update.images.main",
            "whitespace",
        ),
        (
            "main: alpine:3.18.0",
            "Main_1: alpine:3.18.0",
            "spec.update.images.Main_1",
            "container name",
        ),
        (
            "label: working",
            "label: baton.dev/selected",
            "spec.roles.label",
            "owned by the engine",
        ),
        (
            "label: working",
            "label: \"bad key/x/y\"",
            "spec.roles.label",
            "label key",
        ),
        (
            "working: \"true\"",
            "working: \"yes please\"",
            "spec.roles.working",
            "label value",
        ),
        (
            "working: \"true\"",
            "working: \"false\"",
            "spec.roles.idle",
            "two different label values",
        ),
        (
            "url: http://127.0.0.1:8080",
            "url: ftp://127.0.0.1",
            "spec.arbiter.url",
            "http:// or https://",
        ),
        (
            "url: http://127.0.0.1:8080",
            "url: http://",
            "spec.arbiter.url",
            "no host",
        ),
        (
            "retries: 3",
            "retries: 11",
            "spec.arbiter.retries",
            "at most 10",
        ),
        (
            "timeout: 5s",
            "timeout: 0s",
            "spec.arbiter.timeout",
            "positive duration",
        ),
        (
            "readyTimeout: 10m",
            "readyTimeout: 0",
            "spec.waves.readyTimeout",
            "positive duration",
        ),
        (
            "readyTimeout: 10m",
            "readyTimeout: 10x",
            "spec.waves.readyTimeout",
            "expected a duration like 5s",
        ),
        (
            "approval: none",
            "approval: sometimes",
            "spec.waves.approval",
            "one of none, firstWave, everyWave",
        ),
        (
            "maxPerWave: 0",
            "maxPerWave: -1",
            "spec.waves.maxPerWave",
            "non-negative integer",
        ),
        (
            "maxPerWave: 0",
            "maxPerWave: \"2\"",
            "spec.waves.maxPerWave",
            "non-negative integer",
        ),
        (
            "minWorking: 0",
            "minWorking: 0\n    maxDown: 1",
            "spec.safety.maxDown",
            "unknown field",
        ),
        ("  target:\n", "  taget:\n", "spec.taget", "unknown field"),
        (
            "    name: sample\n",
            "    nam: sample\n",
            "spec.target.nam",
            "unknown field",
        ),
    ];
    for (from, to, path, fragment) in table {
        let found = problems(&edit(from, to));
        assert!(
            found.iter().any(|(p, m)| p == path && m.contains(fragment)),
            "editing {from:?} to {to:?}: expected a problem at {path} containing {fragment:?}, got {found:?}"
        );
    }
}

#[test]
fn each_hook_rule_names_its_field() {
    let hooks = |yaml: &str| {
        let text = format!("{SEED}  hooks:\n{yaml}");
        problems(&text)
    };
    let table: &[(&str, &str, &str)] = &[
        (
            "    afterWaveReady:\n      - name: a\n",
            "spec.hooks.afterWaveReady[0]",
            "expected exactly one of http, exec, sleep, approval",
        ),
        (
            "    afterWaveReady:\n      - name: a\n        sleep: {duration: 1s}\n        exec: {command: [x]}\n",
            "spec.hooks.afterWaveReady[0]",
            "2 actions (exec, sleep)",
        ),
        (
            "    beforeWave:\n      - {name: a, sleep: {duration: 1s}}\n      - {name: a, sleep: {duration: 2s}}\n",
            "spec.hooks.beforeWave[1].name",
            "duplicate hook name",
        ),
        (
            "    beforeWave:\n      - {name: Smoke Test, sleep: {duration: 1s}}\n",
            "spec.hooks.beforeWave[0].name",
            "invalid hook name",
        ),
        (
            "    afterRollout:\n      - {name: a, http: {url: \"svc/health\"}}\n",
            "spec.hooks.afterRollout[0].http.url",
            "http:// or https://",
        ),
        (
            "    afterRollout:\n      - {name: a, http: {url: \"http://svc/{{node}}\"}}\n",
            "spec.hooks.afterRollout[0].http.url",
            "unknown placeholder \"{{node}}\"",
        ),
        (
            "    afterRollout:\n      - {name: a, http: {url: \"http://svc/\", expectStatus: 700}}\n",
            "spec.hooks.afterRollout[0].http.expectStatus",
            "from 100 to 599",
        ),
        (
            "    afterRollout:\n      - {name: a, http: {url: \"http://svc/\", method: FETCH}}\n",
            "spec.hooks.afterRollout[0].http.method",
            "one of GET",
        ),
        (
            "    afterRollout:\n      - {name: a, http: {url: \"http://svc/\", timeout: 0s}}\n",
            "spec.hooks.afterRollout[0].http.timeout",
            "positive duration",
        ),
        (
            "    beforeHandover:\n      - {name: a, exec: {command: []}}\n",
            "spec.hooks.beforeHandover[0].exec.command",
            "empty command",
        ),
        (
            "    beforeHandover:\n      - {name: a, exec: {command: [\"./x\", \"{{wave\"]}}\n",
            "spec.hooks.beforeHandover[0].exec.command[1]",
            "unclosed placeholder",
        ),
        (
            "    afterHandover:\n      - {name: a, sleep: {duration: 0s}}\n",
            "spec.hooks.afterHandover[0].sleep.duration",
            "positive duration",
        ),
        (
            "    afterHandover:\n      - {name: a, sleep: {}}\n",
            "spec.hooks.afterHandover[0].sleep.duration",
            "missing field",
        ),
        (
            "    duringWave: []\n",
            "spec.hooks.duringWave",
            "unknown field",
        ),
    ];
    for (yaml, path, fragment) in table {
        let found = hooks(yaml);
        assert!(
            found.iter().any(|(p, m)| p == path && m.contains(fragment)),
            "hooks {yaml:?}: expected a problem at {path} containing {fragment:?}, got {found:?}"
        );
    }
}

#[test]
fn an_approval_hook_may_be_written_as_an_empty_key() {
    let text =
        format!("{SEED}  hooks:\n    afterWaveReady:\n      - name: gate\n        approval:\n");
    let plan = ValidPlan::parse("t.yaml", &text).unwrap();
    let hook = &plan.spec().hooks.at(HookPoint::AfterWaveReady)[0];
    assert!(matches!(hook.action(), Some(HookAction::Approval(a)) if a.message.is_none()));
}

#[test]
fn all_broken_rules_are_reported_at_once_in_document_order() {
    let text = edit("name: sample-to-3-18-0", "name: BAD")
        .replacen("retries: 3", "retries: 99", 1)
        .replacen("readyTimeout: 10m", "readyTimeout: 0s", 1);
    let Err(PlanError::Invalid { diagnostics, .. }) = ValidPlan::parse("t.yaml", &text) else {
        panic!("three broken rules should be refused");
    };
    let paths: Vec<&str> = diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.arbiter.retries",
            "spec.waves.readyTimeout"
        ]
    );
    let lines: Vec<usize> = diagnostics.iter().map(|d| d.line).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
}

#[test]
fn errors_point_at_the_offending_value() {
    let text = edit("readyTimeout: 10m", "readyTimeout: 10x");
    let error = ValidPlan::parse("plans/bad.yaml", &text).unwrap_err();
    let line = text.lines().position(|l| l.contains("10x")).unwrap() + 1;
    assert_eq!(
        error.to_string(),
        format!(
            "plans/bad.yaml:{line}:19: spec.waves.readyTimeout: invalid duration \"10x\": expected a duration like 5s, 10m or 1h30m"
        )
    );
    let rendered = error.render();
    assert!(
        rendered.contains(&format!("--> plans/bad.yaml:{line}:19")),
        "{rendered}"
    );
    assert!(rendered.contains("    readyTimeout: 10x\n"), "{rendered}");
    assert!(
        rendered.ends_with("^^^ spec.waves.readyTimeout"),
        "{rendered}"
    );
}

#[test]
fn a_missing_field_points_at_the_mapping_that_lacks_it() {
    let text = edit("    url: http://127.0.0.1:8080\n", "");
    let error = ValidPlan::parse("t.yaml", &text).unwrap_err();
    let d = &error.diagnostics()[0];
    assert_eq!(d.path, "spec.arbiter.url");
    assert!(d.message.contains("missing field \"url\""), "{}", d.message);
    let arbiter_line = text.lines().position(|l| l == "  arbiter:").unwrap() + 1;
    assert_eq!((d.line, d.column), (arbiter_line, 3));
}

#[test]
fn yaml_syntax_errors_are_located() {
    let text = edit("    retries: 3\n", "    retries: [3\n");
    let error = ValidPlan::parse("t.yaml", &text).unwrap_err();
    let d = &error.diagnostics()[0];
    assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
    assert!(d.line > 1, "{d:?}");
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    for text in ["", "just a string\n", "- a\n- b\n", "42\n"] {
        let error = ValidPlan::parse("t.yaml", text).unwrap_err();
        assert_eq!(error.diagnostics().len(), 1, "{text:?}");
        assert_eq!(error.diagnostics()[0].line, 1, "{text:?}");
    }
}

#[test]
fn loading_reads_the_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, SEED).unwrap();
    let plan = ValidPlan::load(&path).unwrap();
    assert_eq!(plan.source().text, SEED);
    assert_eq!(plan.source().file, path.display().to_string());

    let missing = dir.path().join("missing.yaml");
    let error = ValidPlan::load(&missing).unwrap_err();
    assert!(matches!(error, PlanError::Read { .. }));
    assert!(error.render().contains("cannot read plan file"));

    // Not UTF-8: located at the first bad byte, which the message names.
    std::fs::write(&path, b"a: 1\nb: \"x\xff\"\n").unwrap();
    let Err(PlanError::Invalid { diagnostics, .. }) = ValidPlan::load(&path) else {
        panic!("non-UTF-8 text must be an invalid plan, located");
    };
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (2, 6));
    assert!(
        diagnostics[0].message.contains("byte 10"),
        "{diagnostics:?}"
    );
}

#[test]
fn the_same_text_has_the_same_hash_and_any_edit_changes_it() {
    let a = ValidPlan::parse("a.yaml", SEED).unwrap();
    let b = ValidPlan::parse("b.yaml", SEED).unwrap();
    let c = ValidPlan::parse("a.yaml", &format!("{SEED}# a comment\n")).unwrap();
    assert_eq!(a.source().hash, b.source().hash);
    assert_ne!(a.source().hash, c.source().hash);
}
