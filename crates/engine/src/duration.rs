//! Durations as operators write them: `5s`, `10m`, `1h30m`, `250ms`.
//!
//! The grammar is a sequence of `<digits><unit>` with units `ms`, `s`, `m`, `h` (summed),
//! or a bare `0`. No signs, fractions, spaces or days: a plan is read by people at 3 a.m.,
//! and one obvious spelling per value is worth more than flexibility.

use serde::{Deserialize, Serialize};

/// A non-negative duration that round-trips through its `1h30m` text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    #[error("empty duration: expected a duration like 5s, 10m or 1h30m")]
    Empty,
    #[error(
        "invalid duration {}: expected a duration like 5s, 10m or 1h30m",
        crate::plan::quote(.0)
    )]
    Invalid(String),
    #[error(
        "duration {} is too large: expected at most about 584 million years",
        crate::plan::quote(.0)
    )]
    Overflow(String),
}

impl std::str::FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(ParseDurationError::Empty);
        }
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        let invalid = || ParseDurationError::Invalid(s.to_owned());
        let mut total_ms: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let value: u64 = rest[..digits]
                .parse()
                .map_err(|_| ParseDurationError::Overflow(s.to_owned()))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit_ms: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(invalid()),
            };
            rest = &rest[unit_len..];
            total_ms = value
                .checked_mul(unit_ms)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(|| ParseDurationError::Overflow(s.to_owned()))?;
        }
        Ok(Duration(std::time::Duration::from_millis(total_ms)))
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$|^0$",
            "description": "A duration such as 5s, 10m or 1h30m"
        })
    }
}
