//! Field paths such as `spec.hooks.afterWaveReady[0].http.url`: how errors name a field.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to one field; empty for the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses the dotted form used in this crate's own rules (`spec.waves.readyTimeout`).
    pub fn parse(dotted: &str) -> Self {
        dotted
            .split('.')
            .filter(|s| !s.is_empty())
            .fold(Self::root(), |p, k| p.key(k))
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_owned()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_keys_with_dots_and_indexes_in_brackets() {
        let path = FieldPath::parse("spec.hooks.afterWaveReady")
            .index(0)
            .key("http")
            .key("url");
        assert_eq!(path.to_string(), "spec.hooks.afterWaveReady[0].http.url");
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
