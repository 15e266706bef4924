//! Table tests of the plan rules.

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
