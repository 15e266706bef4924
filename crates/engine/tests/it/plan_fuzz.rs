//! `ValidPlan::parse` never panics, whatever it is fed, and every error it returns
//! points inside the text it was given.

use baton_engine::plan::ValidPlan;
use proptest::prelude::*;

const SEED: &str = include_str!("../../../../plans/seed.yaml");
const WITH_HOOKS: &str = include_str!("../../../../plans/with-hooks.yaml");

/// One edit of a plan's text, by characters or by whole lines.
#[derive(Debug, Clone)]
enum Edit {
    DeleteChar(usize),
    DuplicateChar(usize),
    ReplaceChar(usize, char),
    InsertChar(usize, char),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    IndentLine(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Characters that change YAML structure, plus a few that do not.
    let special = prop::sample::select(vec![
        ':', '-', '{', '}', '[', ']', '"', '\'', '#', '&', '*', '!', '|', '>', ' ', '\t', '\n',
        '\r', '%', '@', '`', ',', '?', '\\', 'a', '0', 'é', '\u{feff}', '\u{0}',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteChar),
        any::<usize>().prop_map(Edit::DuplicateChar),
        (any::<usize>(), special.clone()).prop_map(|(i, c)| Edit::ReplaceChar(i, c)),
        (any::<usize>(), special).prop_map(|(i, c)| Edit::InsertChar(i, c)),
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), 0..6usize).prop_map(|(i, n)| Edit::IndentLine(i, n)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::DeleteChar(i) if !chars.is_empty() => {
            chars.remove(at(i, chars.len()));
        }
        Edit::DuplicateChar(i) if !chars.is_empty() => {
            let i = at(i, chars.len());
            chars.insert(i, chars[i]);
        }
        Edit::ReplaceChar(i, c) if !chars.is_empty() => {
            let i = at(i, chars.len());
            chars[i] = c;
        }
        Edit::InsertChar(i, c) => {
            let i = at(i, chars.len() + 1);
            chars.insert(i, c);
        }
        Edit::DeleteLine(i) => {
            lines.remove(at(i, lines.len()));
            return lines.join("\n");
        }
        Edit::DuplicateLine(i) => {
            let i = at(i, lines.len());
            lines.insert(i, lines[i].clone());
            return lines.join("\n");
        }
        Edit::SwapLines(a, b) => {
            let (a, b) = (at(a, lines.len()), at(b, lines.len()));
            lines.swap(a, b);
            return lines.join("\n");
        }
        Edit::IndentLine(i, n) => {
            let i = at(i, lines.len());
            lines[i] = format!("{}{}", " ".repeat(n), lines[i]);
            return lines.join("\n");
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// Parses, and checks that an error is fully formed and renders.
fn parse_never_panics(text: &str) {
    match ValidPlan::parse("fuzz.yaml", text) {
        Ok(plan) => assert_eq!(plan.source().text, text),
        Err(error) => {
            assert!(!error.diagnostics().is_empty(), "an invalid plan says why");
            let line_count = text.split(['\n', '\r']).count().max(1);
            for d in error.diagnostics() {
                assert!(d.line >= 1 && d.column >= 1, "{d:?}");
                assert!(
                    d.line <= line_count + 1,
                    "line {} of {line_count}: {d:?}",
                    d.line
                );
                assert!(!d.message.is_empty());
            }
            let rendered = error.render();
            assert!(rendered.starts_with("error: "), "{rendered}");
            let _ = error.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_yaml_like_text_never_panics(text in "[a-z: \\-{}\\[\\]\"'#&*!|>\n\t,?0-9]{0,300}") {
        parse_never_panics(&text);
    }

    #[test]
    fn mutated_plans_never_panic(
        edits in prop::collection::vec(edit(), 1..8),
        hooks in any::<bool>(),
    ) {
        let mut text = if hooks { WITH_HOOKS.to_owned() } else { SEED.to_owned() };
        for e in &edits {
            text = apply(&text, e);
        }
        parse_never_panics(&text);
    }
}
