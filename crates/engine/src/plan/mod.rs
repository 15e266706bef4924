//! The upgrade plan (SPEC §2): what an operator writes, and the single door from that
//! text to a plan the engine trusts.
//!
//! ```text
//! text ─▶ yaml (located tree) ─▶ de (typed Plan) ─▶ validate (rules) ─▶ ValidPlan
//!              └──────── every error: file:line:column, field path, what was expected
//! ```
//!
//! Parsing is strict: unknown fields are errors, and a syntax or type error stops at the
//! first one, while the rules report every problem at once. Only a [`ValidPlan`] can be
//! run; [`ValidPlan::parse`] and [`ValidPlan::load`] are the only ways to get one.

pub mod crd;
mod de;
mod error;
mod model;
mod path;
mod safety;
mod schema;
mod validate;
mod yaml;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{Diagnostic, MAX_ECHO_CHARS, PlanError, quote};
pub use model::*;
pub use safety::*;
pub use schema::schema;
pub use validate::{GATE_PLACEHOLDERS, HTTP_METHODS, MAX_DURATION, MAX_RETRIES, PLACEHOLDERS};

use path::FieldPath;
use yaml::{Node, Span};

/// A plan that passed every check. The only kind of plan the engine runs.
#[derive(Debug, Clone)]
pub struct ValidPlan {
    plan: Plan,
    source: PlanSource,
}

/// Where a plan came from, kept so a resumed run can prove it runs the same text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    /// The file name as the user gave it (for messages).
    pub file: String,
    /// The exact text parsed.
    pub text: String,
    /// Hex SHA-256 of `text`.
    pub hash: String,
}

impl PlanSource {
    pub fn new(file: &str, text: &str) -> Self {
        PlanSource {
            file: file.to_owned(),
            text: text.to_owned(),
            hash: format!("{:x}", Sha256::digest(text.as_bytes())),
        }
    }
}

impl ValidPlan {
    /// Parses and checks a plan. `file` only names the text in messages.
    ///
    /// # Errors
    /// [`PlanError::Invalid`] with the first syntax or type error, or with every broken rule.
    pub fn parse(file: &str, text: &str) -> Result<ValidPlan, PlanError> {
        let invalid = |diagnostics: Vec<Diagnostic>| PlanError::Invalid {
            file: file.to_owned(),
            diagnostics,
        };
        let tree = yaml::parse(text)
            .map_err(|e| invalid(vec![Diagnostic::new(text, e.span, "", e.message)]))?;

        // A file that is not an UpgradePlan at all gets that one message, not a list of
        // unknown fields.
        let header = check_header(&tree, text);
        if !header.is_empty() {
            return Err(invalid(header));
        }

        let root = FieldPath::root();
        let plan = Plan::deserialize(de::NodeDe::root(&tree, &root)).map_err(|e| {
            let span = e.span.unwrap_or(Span::START);
            invalid(vec![Diagnostic::new(
                text,
                span,
                &e.path.to_string(),
                e.message,
            )])
        })?;

        let mut diagnostics: Vec<Diagnostic> = validate::check(&plan)
            .into_iter()
            .map(|issue| {
                let span = if issue.at_key {
                    tree.locate_key(&issue.path)
                } else {
                    tree.locate(&issue.path)
                };
                Diagnostic::new(text, span, &issue.path.to_string(), issue.message)
            })
            .collect();
        if !diagnostics.is_empty() {
            diagnostics.sort_by_key(|d| (d.line, d.column));
            return Err(invalid(diagnostics));
        }
        Ok(ValidPlan {
            plan,
            source: PlanSource::new(file, text),
        })
    }

    /// Reads and parses a plan file; the path as given names it in messages.
    ///
    /// # Errors
    /// As [`read_plan_text`], else as [`ValidPlan::parse`].
    pub fn load(path: &Path) -> Result<ValidPlan, PlanError> {
        let text = read_plan_text(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Checks what the plan names on this machine, which [`ValidPlan::parse`] cannot see:
    /// `spec.arbiter.tokenFile` must be readable, at most [`MAX_FILE_BYTES`], and hold a
    /// token (an empty file would send every arbiter request with an empty bearer token,
    /// refused only mid-rollout). `engine validate` runs this; the arbiter client applies
    /// the same rules at each request, since the file may change after validation.
    ///
    /// # Errors
    /// [`PlanError::Invalid`] located at the field.
    pub fn check_files(&self) -> Result<(), PlanError> {
        let Some(path) = &self.spec().arbiter.token_file else {
            return Ok(());
        };
        let Err(problem) = read_token(path) else {
            return Ok(());
        };
        let text = &self.source.text;
        let field = FieldPath::parse("spec.arbiter.tokenFile");
        let span = yaml::parse(text).map_or(Span::START, |tree| tree.locate(&field));
        Err(PlanError::Invalid {
            file: self.source.file.clone(),
            diagnostics: vec![Diagnostic::new(
                text,
                span,
                &field.to_string(),
                format!(
                    "cannot use token file {}: {problem}",
                    quote(&path.display().to_string())
                ),
            )],
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn spec(&self) -> &Spec {
        &self.plan.spec
    }
    pub fn source(&self) -> &PlanSource {
        &self.source
    }
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.plan.metadata.name
    }
}

/// The most bytes a plan file, or a file a plan names (`tokenFile`), may hold. A plan is
/// a few kilobytes; without a limit, `/dev/zero` or a log file given by mistake would be
/// read until memory runs out.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Read at most `max` bytes of `path`: a longer file is refused (its kind is
/// [`std::io::ErrorKind::FileTooLarge`]) after reading `max + 1` bytes, whatever it is.
///
/// # Errors
/// Any I/O error, or the file being too large.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {}, the most it may hold", bytes_text(max)),
        ));
    }
    Ok(bytes)
}

/// `1 MiB`, `64 KiB`, `300 bytes`.
fn bytes_text(n: u64) -> String {
    match n {
        n if n >= 1024 * 1024 && n % (1024 * 1024) == 0 => format!("{} MiB", n / (1024 * 1024)),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// The bearer token in the file at `path` (`spec.arbiter.tokenFile`), trimmed.
///
/// # Errors
/// Why it is not a token: unreadable, larger than [`MAX_FILE_BYTES`], not UTF-8, or empty.
pub fn read_token(path: &Path) -> std::io::Result<String> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let bytes = read_bounded(path, MAX_FILE_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8 text"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(invalid("it is empty: expected a bearer token"));
    }
    Ok(token.to_owned())
}

/// The text of the plan file at `path`, named in messages as given.
///
/// # Errors
/// [`PlanError::Read`] when it cannot be read or is larger than [`MAX_FILE_BYTES`];
/// [`PlanError::Invalid`] locating the first byte that is not UTF-8 (line and column).
pub fn read_plan_text(path: &Path) -> Result<String, PlanError> {
    let file = path.display().to_string();
    let bytes = read_bounded(path, MAX_FILE_BYTES).map_err(|source| PlanError::Read {
        file: file.clone(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let prefix = String::from_utf8_lossy(&bytes[..offset]);
        let span = Span::after(&prefix);
        PlanError::Invalid {
            file,
            diagnostics: vec![Diagnostic::new(
                &text,
                span,
                "",
                format!("invalid UTF-8 at byte {offset}: expected a plan in UTF-8 text"),
            )],
        }
    })
}

/// `apiVersion` and `kind`, read before anything else.
fn check_header(tree: &Node, text: &str) -> Vec<Diagnostic> {
    [("apiVersion", API_VERSION), ("kind", KIND)]
        .into_iter()
        .filter_map(|(field, want)| {
            let entry = tree.get(field)?;
            let scalar = entry.value.as_scalar()?;
            let message = validate::exact(field, &scalar.text, want).err()?;
            Some(Diagnostic::new(text, entry.value.span, field, message))
        })
        .collect()
}
