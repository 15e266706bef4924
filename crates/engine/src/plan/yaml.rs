//! A YAML document as a small tree whose nodes remember where they were written.
//!
//! serde_yaml forgets positions once a value is built, yet every plan error, including
//! the ones found by the checks after parsing, must name a line and column. So the text
//! is read with an event parser (`granit-parser`, pure Rust) into this tree, which the
//! deserializer (`de`) and the checks (`validate`) walk. The tree is bounded (depth and
//! node count, aliases included) so hostile input cannot exhaust the stack or memory.
//!
//! Considered and declined (issue #14): `serde-saphyr`, which is in the lockfile (kube-client
//! uses it) and reports spans for its own parse errors. The checks after parsing
//! (`validate`: cross-field rules, unknown placeholders, hook names) need the position of
//! any node, not only of the first serde error, and they report every problem at once;
//! with serde-saphyr that would still need a second, positioned tree, so this one stays.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};

use super::path::{FieldPath, Segment};

/// Deepest nesting accepted; a plan needs about six levels.
const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, aliases included ("billion laughs").
const MAX_NODES: usize = 10_000;

/// Where something was written: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Span {
    fn from_parser(span: &granit_parser::Span) -> Self {
        Span {
            line: span.start.line().max(1),
            column: span.start.col() + 1,
            end_line: span.end.line().max(1),
            end_column: span.end.col() + 1,
        }
    }

    fn at(marker: &granit_parser::Marker) -> Self {
        let line = marker.line().max(1);
        let column = marker.col() + 1;
        Span {
            line,
            column,
            end_line: line,
            end_column: column + 1,
        }
    }

    /// The one character right after `prefix`, lines counted as YAML counts them (`\n`,
    /// `\r\n` or a lone `\r`) and columns in characters.
    pub fn after(prefix: &str) -> Self {
        let mut line = 1;
        let mut column = 1;
        let mut chars = prefix.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => {
                    line += 1;
                    column = 1;
                }
                _ => column += 1,
            }
        }
        Span {
            line,
            column,
            end_line: line,
            end_column: column + 1,
        }
    }

    /// The start of the document, for problems that belong to no particular node.
    pub const START: Span = Span {
        line: 1,
        column: 1,
        end_line: 1,
        end_column: 2,
    };
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Plain scalars are resolved (null, bool, int, float); quoted ones are strings.
    pub plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// A scalar's value under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Resolved<'_> {
        if !self.plain {
            return Resolved::Str(&self.text);
        }
        resolve_plain(&self.text)
    }

    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Resolved::Null)
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(int) = resolve_int(text) {
        return int;
    }
    if looks_like_float(text)
        && let Ok(value) = text.parse::<f64>()
    {
        return Resolved::Float(value);
    }
    Resolved::Str(text)
}

fn resolve_int(text: &str) -> Option<Resolved<'_>> {
    let radix_digits = |prefix: &str, radix: u32| {
        let digits = text.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u64::from_str_radix(digits, radix)
            .ok()
            .map(Resolved::Unsigned)
    };
    if text.starts_with("0x") {
        return radix_digits("0x", 16);
    }
    if text.starts_with("0o") {
        return radix_digits("0o", 8);
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if negative {
        text.parse::<i64>().ok().map(Resolved::Signed)
    } else {
        digits.parse::<u64>().ok().map(Resolved::Unsigned)
    }
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(frac) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exponent_ok = match exponent {
        Some(exp) => {
            let exp = exp.strip_prefix(['-', '+']).unwrap_or(exp);
            !exp.is_empty() && digits(exp)
        }
        None => true,
    };
    mantissa_ok && exponent_ok
}

/// A document that could not be read as YAML, or not as a single bounded tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub message: String,
    pub span: Span,
}

impl SyntaxError {
    fn new(message: impl Into<String>, span: Span) -> Self {
        SyntaxError {
            message: message.into(),
            span,
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        key: Option<(String, Span)>,
        span: Span,
        anchor: usize,
    },
}

/// Builds the tree from parser events with an explicit stack (no recursion).
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl Builder {
    fn count(&mut self, added: usize, span: Span) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError::new(
                format!(
                    "document too large: expected at most {MAX_NODES} values, aliases included"
                ),
                span,
            ));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, span: Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError::new(
                format!("nesting too deep: expected at most {MAX_DEPTH} levels"),
                span,
            ));
        }
        self.count(1, span)?;
        self.stack.push(frame);
        Ok(())
    }

    /// A finished node goes into its parent: a sequence item, a mapping key or value, or the root.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((key, key_span)) => {
                    entries.push(Entry {
                        key,
                        key_span,
                        value: node,
                    });
                    Ok(())
                }
                None => {
                    let NodeKind::Scalar(scalar) = node.kind else {
                        return Err(SyntaxError::new(
                            "unsupported mapping key: expected a plain or quoted string",
                            node.span,
                        ));
                    };
                    if entries.iter().any(|e| e.key == scalar.text) {
                        return Err(SyntaxError::new(
                            format!(
                                "duplicate key {}: expected each key once per mapping",
                                super::error::quote(&scalar.text)
                            ),
                            node.span,
                        ));
                    }
                    *key = Some((scalar.text, node.span));
                    Ok(())
                }
            },
        }
    }
}

/// Counts the nodes of a subtree, to charge alias expansions against [`MAX_NODES`].
fn size(node: &Node) -> usize {
    let mut total = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        total += 1;
        match &n.kind {
            NodeKind::Scalar(_) => {}
            NodeKind::Seq(items) => todo.extend(items),
            NodeKind::Map(entries) => todo.extend(entries.iter().map(|e| &e.value)),
        }
    }
    total
}

/// Only the core schema's own tags are accepted; anything else is a mistake in a plan.
fn check_tag(
    tag: Option<&granit_parser::Tag>,
    allowed: &[&str],
    span: Span,
) -> Result<Option<String>, SyntaxError> {
    let Some(tag) = tag else { return Ok(None) };
    match tag.core_suffix() {
        Some(suffix) if allowed.contains(&suffix) => Ok(Some(suffix.to_owned())),
        _ => Err(SyntaxError::new(
            format!(
                "unsupported tag {}: expected no tag",
                super::error::cut(&tag.original())
            ),
            span,
        )),
    }
}

/// Parses one YAML document into a tree.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut documents = 0usize;
    for next in Parser::new_from_str(text) {
        let (event, raw_span) = next.map_err(|e| {
            SyntaxError::new(
                format!("invalid YAML: {}", super::error::cut(&e.info())),
                Span::at(e.marker()),
            )
        })?;
        let span = Span::from_parser(&raw_span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::Comment(..) | Event::Anchor(..) => {}
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError::new(
                        "a second YAML document: expected exactly one plan per file",
                        span,
                    ));
                }
            }
            Event::Alias(id) => {
                let Some(target) = builder.anchors.get(&id) else {
                    return Err(SyntaxError::new(
                        "unknown alias: expected a defined anchor",
                        span,
                    ));
                };
                let mut node = target.clone();
                builder.count(size(&node), span)?;
                node.span = span;
                builder.finish(node, 0)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(SyntaxError::new(
                    format!(
                        "unknown alias *{}: expected a defined anchor",
                        super::error::cut(&name)
                    ),
                    span,
                ));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = check_tag(
                    tag.as_deref(),
                    &["str", "int", "bool", "null", "float"],
                    span,
                )?;
                let plain = style == ScalarStyle::Plain && tag.as_deref() != Some("str");
                builder.count(1, span)?;
                let node = Node {
                    kind: NodeKind::Scalar(Scalar {
                        text: value.into_owned(),
                        plain,
                    }),
                    span,
                };
                builder.finish(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_tag(tag.as_deref(), &["seq"], span)?;
                builder.open(
                    Frame::Seq {
                        items: Vec::new(),
                        span,
                        anchor,
                    },
                    span,
                )?;
            }
            Event::MappingStart(_, anchor, tag) => {
                check_tag(tag.as_deref(), &["map"], span)?;
                builder.open(
                    Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        span,
                        anchor,
                    },
                    span,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match builder.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        span,
                        anchor,
                    }) => (
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        entries,
                        span,
                        anchor,
                        ..
                    }) => (
                        Node {
                            kind: NodeKind::Map(entries),
                            span,
                        },
                        anchor,
                    ),
                    None => {
                        return Err(SyntaxError::new(
                            "invalid YAML: unbalanced collection end",
                            span,
                        ));
                    }
                };
                builder.finish(node, anchor)?;
            }
            _ => {
                return Err(SyntaxError::new(
                    "unsupported YAML construct: expected plain YAML data",
                    span,
                ));
            }
        }
    }
    builder.root.ok_or_else(|| {
        SyntaxError::new(
            "the plan is empty: expected a mapping with apiVersion, kind, metadata and spec",
            Span::START,
        )
    })
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Where to point for a problem at `path`: a scalar's value, or the key that
    /// introduced a collection (a whole block mapping is too much to underline). A path
    /// that does not exist in the text (a defaulted field) points at its nearest
    /// ancestor that does.
    pub fn locate(&self, path: &FieldPath) -> Span {
        let mut node = self;
        let mut key_span: Option<Span> = None;
        for segment in path.segments() {
            let next = match (segment, &node.kind) {
                (Segment::Key(key), NodeKind::Map(entries)) => entries
                    .iter()
                    .find(|e| e.key == *key)
                    .map(|e| (&e.value, Some(e.key_span))),
                (Segment::Index(i), NodeKind::Seq(items)) => items.get(*i).map(|n| (n, None)),
                _ => None,
            };
            match next {
                Some((child, child_key)) => {
                    node = child;
                    key_span = child_key;
                }
                None => break,
            }
        }
        node.point(key_span)
    }

    /// Like [`Node::locate`], but points at the key of the last field when it is written.
    pub fn locate_key(&self, path: &FieldPath) -> Span {
        let Some((Segment::Key(key), parent)) = path.segments().split_last() else {
            return self.locate(path);
        };
        let mut node = self;
        for segment in parent {
            let next = match (segment, &node.kind) {
                (Segment::Key(k), NodeKind::Map(entries)) => {
                    entries.iter().find(|e| e.key == *k).map(|e| &e.value)
                }
                (Segment::Index(i), NodeKind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => return self.locate(path),
            }
        }
        node.get(key)
            .map_or_else(|| self.locate(path), |e| e.key_span)
    }

    /// The span to underline for this node, given the key it sits under.
    pub fn point(&self, key_span: Option<Span>) -> Span {
        match (&self.kind, key_span) {
            (NodeKind::Scalar(_), _) | (_, None) => self.span,
            (_, Some(key)) => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        let cases: &[(&str, Resolved<'_>)] = &[
            ("", Resolved::Null),
            ("~", Resolved::Null),
            ("null", Resolved::Null),
            ("true", Resolved::Bool(true)),
            ("False", Resolved::Bool(false)),
            ("yes", Resolved::Str("yes")),
            ("3", Resolved::Unsigned(3)),
            ("+3", Resolved::Unsigned(3)),
            ("-3", Resolved::Signed(-3)),
            ("0x1f", Resolved::Unsigned(31)),
            ("0o17", Resolved::Unsigned(15)),
            ("0x", Resolved::Str("0x")),
            ("1.5", Resolved::Float(1.5)),
            (".5", Resolved::Float(0.5)),
            ("1e3", Resolved::Float(1000.0)),
            ("1.2.3", Resolved::Str("1.2.3")),
            ("inf", Resolved::Str("inf")),
            ("5s", Resolved::Str("5s")),
            (
                "99999999999999999999",
                Resolved::Float(99999999999999999999.0),
            ),
        ];
        for (text, want) in cases {
            let got = resolve_plain(text);
            assert_eq!(&got, want, "resolving {text:?}");
        }
        assert!(matches!(resolve_plain(".nan"), Resolved::Float(f) if f.is_nan()));
    }

    #[test]
    fn nodes_carry_one_based_lines_and_columns() {
        let tree = parse("a:\n  b: hello\n  c: [1, 2]\n").unwrap();
        let b = FieldPath::root().key("a").key("b");
        assert_eq!(
            tree.locate(&b),
            Span {
                line: 2,
                column: 6,
                end_line: 2,
                end_column: 11
            }
        );
        let c1 = FieldPath::root().key("a").key("c").index(1);
        assert_eq!((tree.locate(&c1).line, tree.locate(&c1).column), (3, 10));
        // A collection is pointed at through its key.
        let c = FieldPath::root().key("a").key("c");
        assert_eq!((tree.locate(&c).line, tree.locate(&c).column), (3, 3));
        // A missing field points at its nearest written ancestor.
        let missing = FieldPath::root().key("a").key("zzz");
        assert_eq!(
            (tree.locate(&missing).line, tree.locate(&missing).column),
            (1, 1)
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_the_second_key() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            err.message.starts_with("duplicate key \"a\""),
            "{}",
            err.message
        );
        assert_eq!((err.span.line, err.span.column), (3, 1));
    }

    #[test]
    fn aliases_expand_but_not_without_bound() {
        let tree = parse("a: &x {k: v}\nb: *x\n").unwrap();
        assert!(tree.get("b").is_some_and(|e| e.value.get("k").is_some()));

        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            bomb.push_str(&format!(
                "l{i}: &l{i} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n"
            ));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(
            err.message.starts_with("document too large"),
            "{}",
            err.message
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let closed = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(&closed).unwrap_err();
        assert!(
            err.message.starts_with("nesting too deep"),
            "{}",
            err.message
        );
        // The parser has its own, higher, limit for runaway input.
        assert!(parse(&"[".repeat(100_000)).is_err());
    }

    #[test]
    fn documents_other_than_exactly_one_are_refused() {
        assert!(
            parse("")
                .unwrap_err()
                .message
                .starts_with("the plan is empty")
        );
        assert!(
            parse("# only a comment\n")
                .unwrap_err()
                .message
                .starts_with("the plan is empty")
        );
        let two = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(two.span.line, 2);
    }

    #[test]
    fn quoted_and_str_tagged_scalars_stay_strings() {
        let tree = parse("a: \"1\"\nb: !!str true\nc: 1\n").unwrap();
        let scalar = |k: &str| {
            tree.get(k)
                .and_then(|e| e.value.as_scalar())
                .unwrap()
                .resolve()
        };
        assert_eq!(scalar("a"), Resolved::Str("1"));
        assert_eq!(scalar("b"), Resolved::Str("true"));
        assert_eq!(scalar("c"), Resolved::Unsigned(1));
        assert!(
            parse("a: !custom 1\n")
                .unwrap_err()
                .message
                .starts_with("unsupported tag")
        );
    }
}
