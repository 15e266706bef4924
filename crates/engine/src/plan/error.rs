//! Plan errors. Each problem names the file, line, column and field path and says what
//! was expected, in one line ([`Display`](std::fmt::Display)) or as a rustc-style
//! report with the offending line underlined ([`PlanError::render`]).

use std::fmt;

use serde::Serialize;

use super::yaml::Span;

/// One problem in a plan, located in its source text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The field, such as `spec.waves.readyTimeout`; empty for the document as a whole.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// The source line the problem is on, for [`PlanError::render`].
    #[serde(skip)]
    pub source_line: String,
    /// How many characters to underline.
    #[serde(skip)]
    pub width: usize,
    /// Where in `source_line` the underline starts (0-based, in characters): `column - 1`,
    /// unless a long line was cut to the part around the problem.
    #[serde(skip)]
    pub caret_at: usize,
}

/// The most characters of the user's input a message quotes back: a value, or the source
/// line under a report. A plan may hold a megabyte on one line, and an error that repeats
/// it buries what it says.
pub const MAX_ECHO_CHARS: usize = 200;

/// `value` quoted (`"..."`, escaped as Rust does), cut to [`MAX_ECHO_CHARS`] characters;
/// a cut value is followed by `…` and its full length.
pub fn quote(value: &str) -> String {
    let total = value.chars().count();
    if total <= MAX_ECHO_CHARS {
        return format!("{value:?}");
    }
    let cut: String = value.chars().take(MAX_ECHO_CHARS).collect();
    format!("{cut:?}… ({total} characters)")
}

/// `text` unquoted, cut like [`quote`]: for parser messages and names shown as written.
pub fn cut(text: &str) -> String {
    let total = text.chars().count();
    if total <= MAX_ECHO_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_ECHO_CHARS).collect();
    format!("{cut}… ({total} characters)")
}

/// The part of a long `line` shown under a report: [`MAX_ECHO_CHARS`] characters around
/// the 0-based character `at`, with `…` where it was cut; returns it and where `at` is in it.
fn window(line: &str, at: usize) -> (String, usize) {
    let total = line.chars().count();
    if total <= MAX_ECHO_CHARS {
        return (line.to_owned(), at);
    }
    let start = at
        .saturating_sub(MAX_ECHO_CHARS / 4)
        .min(total - MAX_ECHO_CHARS);
    let end = start + MAX_ECHO_CHARS;
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(line.chars().skip(start).take(MAX_ECHO_CHARS));
    if end < total {
        shown.push('…');
    }
    (shown, at - start + usize::from(start > 0))
}

/// Splits text into lines the way YAML counts them (`\n`, `\r\n` or a lone `\r`).
fn nth_line(text: &str, line: usize) -> &str {
    let mut rest = text;
    for _ in 1..line {
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => return "",
        }
    }
    let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
    &rest[..end]
}

impl Diagnostic {
    pub(crate) fn new(text: &str, span: Span, path: &str, message: impl Into<String>) -> Self {
        let full_line = nth_line(text, span.line);
        let line_chars = full_line.chars().count();
        let column = span.column.clamp(1, line_chars + 1);
        let to_line_end = (line_chars + 1).saturating_sub(column);
        let width = if span.end_line == span.line && span.end_column > column {
            (span.end_column - column).min(to_line_end)
        } else {
            to_line_end
        };
        let (source_line, caret_at) = window(full_line, column - 1);
        let shown_to_end = (source_line.chars().count() + 1).saturating_sub(caret_at + 1);
        Diagnostic {
            line: span.line,
            column,
            path: path.to_owned(),
            message: message.into(),
            source_line,
            width: width.min(shown_to_end).max(1),
            caret_at,
        }
    }

    /// The rustc-style report for this problem, without a trailing newline.
    pub fn render(&self, file: &str) -> String {
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        // Keep tabs so the carets line up under tabbed text.
        let indent: String = self
            .source_line
            .chars()
            .take(self.caret_at)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let label = if self.path.is_empty() {
            String::new()
        } else {
            format!(" {}", self.path)
        };
        format!(
            "error: {message}\n{pad}--> {file}:{line}:{column}\n{pad} |\n{line:>gutter$} | {source}\n{pad} | {indent}{carets}{label}",
            message = self.message,
            line = self.line,
            column = self.column,
            source = self.source_line,
            carets = "^".repeat(self.width),
        )
    }

    /// The one-line form: `file:line:column: path: message`.
    pub fn one_line(&self, file: &str) -> String {
        if self.path.is_empty() {
            format!("{file}:{}:{}: {}", self.line, self.column, self.message)
        } else {
            format!(
                "{file}:{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// Why a plan was refused. Nothing was changed anywhere when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read (missing, unreadable, larger than
    /// [`MAX_FILE_BYTES`](super::MAX_FILE_BYTES)). Text that is not UTF-8 is
    /// [`PlanError::Invalid`], located at its first bad byte.
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid plan. Holds every problem the checks found (sorted by
    /// position), or the first syntax or type error, which stops parsing.
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl PlanError {
    /// The file name as the user gave it.
    pub fn file(&self) -> &str {
        match self {
            PlanError::Read { file, .. } | PlanError::Invalid { file, .. } => file,
        }
    }

    /// The located problems; empty when the file could not be read at all.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PlanError::Read { .. } => &[],
            PlanError::Invalid { diagnostics, .. } => diagnostics,
        }
    }

    /// Every problem as a rustc-style report, blank-line separated, no trailing newline.
    pub fn render(&self) -> String {
        match self {
            PlanError::Read { file, source } => {
                format!("error: cannot read plan file {file}: {source}")
            }
            PlanError::Invalid { file, diagnostics } => {
                let mut blocks: Vec<String> = diagnostics.iter().map(|d| d.render(file)).collect();
                if diagnostics.len() > 1 {
                    blocks.push(format!("error: {} problems in {file}", diagnostics.len()));
                }
                blocks.join("\n\n")
            }
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Read { file, .. } => write!(f, "cannot read plan file {file}"),
            PlanError::Invalid { file, diagnostics } => match diagnostics.split_first() {
                None => write!(f, "{file}: invalid plan"),
                Some((first, [])) => f.write_str(&first.one_line(file)),
                Some((first, rest)) => write!(
                    f,
                    "{} (and {} more problems)",
                    first.one_line(file),
                    rest.len()
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_renders_like_rustc_with_the_value_underlined() {
        let text = "a: 1\n".repeat(11) + "    readyTimeout: 10x\n";
        let span = Span {
            line: 12,
            column: 19,
            end_line: 12,
            end_column: 22,
        };
        let d = Diagnostic::new(
            &text,
            span,
            "spec.waves.readyTimeout",
            "invalid duration \"10x\"",
        );
        let want = "error: invalid duration \"10x\"\n  --> plans/bad.yaml:12:19\n   |\n12 |     readyTimeout: 10x\n   |                   ^^^ spec.waves.readyTimeout";
        assert_eq!(d.render("plans/bad.yaml"), want);
        assert_eq!(
            d.one_line("plans/bad.yaml"),
            "plans/bad.yaml:12:19: spec.waves.readyTimeout: invalid duration \"10x\""
        );
    }

    #[test]
    fn multi_line_spans_are_underlined_to_the_end_of_their_first_line() {
        let text = "key: {a: 1,\n  b: 2}\n";
        let span = Span {
            line: 1,
            column: 6,
            end_line: 2,
            end_column: 8,
        };
        let d = Diagnostic::new(text, span, "key", "bad");
        assert_eq!(d.width, "{a: 1,".len());
    }

    #[test]
    fn lines_are_counted_as_yaml_counts_them() {
        assert_eq!(nth_line("a\r\nb\rc\nd", 1), "a");
        assert_eq!(nth_line("a\r\nb\rc\nd", 2), "b");
        assert_eq!(nth_line("a\r\nb\rc\nd", 3), "c");
        assert_eq!(nth_line("a\r\nb\rc\nd", 4), "d");
        assert_eq!(nth_line("a", 9), "");
    }

    #[test]
    fn long_values_and_lines_are_cut_to_the_part_that_matters() {
        let long = "x".repeat(5000);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&format!("\"{}\"", "x".repeat(MAX_ECHO_CHARS))));
        assert!(quoted.ends_with("… (5000 characters)"), "{quoted}");
        assert_eq!(quote("short"), "\"short\"");

        let text = format!("key: {long}bad\n");
        let at = 5 + 5000;
        let span = Span {
            line: 1,
            column: at + 1,
            end_line: 1,
            end_column: at + 4,
        };
        let d = Diagnostic::new(&text, span, "key", "bad");
        assert_eq!(d.column, at + 1, "the column is the real one");
        let rendered = d.render("f");
        assert!(rendered.contains("--> f:1:5006"), "{rendered}");
        assert!(rendered.len() < 3 * MAX_ECHO_CHARS, "{rendered}");
        let (source, carets) = {
            let lines: Vec<&str> = rendered.lines().collect();
            (lines[3].to_owned(), lines[4].to_owned())
        };
        let under = carets.find('^').unwrap() - carets.find('|').unwrap();
        let in_source = source.find('|').unwrap();
        assert_eq!(
            source[in_source..].chars().nth(under),
            Some('b'),
            "the carets stand under the problem:\n{rendered}"
        );
    }

    #[test]
    fn spans_past_the_end_of_the_text_still_render() {
        let span = Span {
            line: 40,
            column: 99,
            end_line: 40,
            end_column: 100,
        };
        let d = Diagnostic::new("a: 1\n", span, "", "late");
        assert_eq!((d.column, d.width), (1, 1));
        assert!(d.render("f").contains("--> f:40:1"));
    }
}
