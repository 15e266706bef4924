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

mod de;
mod error;
mod model;
mod path;
mod schema;
mod validate;
mod yaml;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{Diagnostic, PlanError};
pub use model::*;
pub use schema::schema;
pub use validate::{HTTP_METHODS, MAX_RETRIES, PLACEHOLDERS};

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
    /// [`PlanError::Read`] when the file cannot be read as UTF-8 text, else as [`ValidPlan::parse`].
    pub fn load(path: &Path) -> Result<ValidPlan, PlanError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &text)
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
