//! Crash injection: named points where a test can make the process abort for real.
//!
//! `BATON_FAILPOINTS=before-step:wave-1/select,in-checkpoint:protect@2` aborts the
//! process (`std::process::abort`, no unwinding, no flush) at the first hit of
//! `before-step:wave-1/select`, or at the second hit of `in-checkpoint:protect`.
//! `BATON_FAILPOINTS_LOG=/path` appends the name of every point reached, one per line,
//! so a test can enumerate the failpoints of a whole run and then crash at each.
//!
//! Points the executor defines (`<id>` is a step id such as `wave-2/set-partition`):
//! - `before-step:<id>`: the node is `running` in the store, the step has not started
//!   (committed, not yet fsynced: the step's first write-ahead intent flushes it);
//! - `after-step:<id>`: the step returned, its result is not recorded yet;
//! - `in-checkpoint:<label>`: inside the store transaction, before it commits
//!   (labels: `<id>=running`, `<id>=succeeded`, `<id>=failed`, `intent:<id>`, `grow`, …).
//!
//! Steps add their own with [`hit`] (for instance `before-write:<id>` and `after-write:<id>`
//! around an external write). With neither variable set, [`hit`] costs one atomic load.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Names the points to abort at.
pub const ENV: &str = "BATON_FAILPOINTS";
/// Names a file to append every reached point to.
pub const LOG_ENV: &str = "BATON_FAILPOINTS_LOG";

struct Config {
    targets: Vec<Target>,
    log: Option<PathBuf>,
    hits: Mutex<HashMap<String, u64>>,
}

/// One configured point: a name and, optionally, which hit (1-based) aborts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub nth: Option<u64>,
}

/// Parse a `BATON_FAILPOINTS` value: comma-separated `name` or `name@N`.
pub fn parse(spec: &str) -> Vec<Target> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.rsplit_once('@') {
            Some((name, n)) if !name.is_empty() && n.parse::<u64>().is_ok() => Target {
                name: name.to_owned(),
                nth: n.parse().ok(),
            },
            _ => Target {
                name: item.to_owned(),
                nth: None,
            },
        })
        .collect()
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        targets: std::env::var(ENV).map(|s| parse(&s)).unwrap_or_default(),
        log: std::env::var_os(LOG_ENV)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        hits: Mutex::new(HashMap::new()),
    })
}

/// Whether any failpoint or the failpoint log is configured in this process.
pub fn enabled() -> bool {
    let c = config();
    !c.targets.is_empty() || c.log.is_some()
}

/// Pass the failpoint `name`: log it if asked, abort the process if it is a target.
pub fn hit(name: &str) {
    let c = config();
    if c.targets.is_empty() && c.log.is_none() {
        return;
    }
    let nth = {
        let mut hits = c
            .hits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = hits.entry(name.to_owned()).or_insert(0);
        *n += 1;
        *n
    };
    if let Some(path) = &c.log {
        // One `write` on an O_APPEND file: the line survives the abort below.
        let line = format!("{name}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(error) = written {
            tracing::warn!(%error, path = %path.display(), "cannot append to the failpoint log");
        }
    }
    if c.targets
        .iter()
        .any(|t| t.name == name && t.nth.is_none_or(|want| want == nth))
    {
        tracing::error!(
            failpoint = name,
            hit = nth,
            "failpoint reached: aborting the process"
        );
        std::process::abort();
    }
}

/// The `name@N` form naming each line of a failpoint log: the N-th hit of that name.
/// Feed the result back through [`ENV`] to crash at exactly that moment.
pub fn enumerate(log: &str) -> Vec<String> {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    log.lines()
        .filter(|l| !l.is_empty())
        .map(|name| {
            let n = seen.entry(name).or_insert(0);
            *n += 1;
            format!("{name}@{n}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_names_and_hit_numbers() {
        let table: [(&str, Vec<Target>); 4] = [
            ("", vec![]),
            (
                "before-step:protect",
                vec![Target {
                    name: "before-step:protect".into(),
                    nth: None,
                }],
            ),
            (
                "in-checkpoint:wave-1/select=running@2, after-step:finalize",
                vec![
                    Target {
                        name: "in-checkpoint:wave-1/select=running".into(),
                        nth: Some(2),
                    },
                    Target {
                        name: "after-step:finalize".into(),
                        nth: None,
                    },
                ],
            ),
            (
                "odd@name",
                vec![Target {
                    name: "odd@name".into(),
                    nth: None,
                }],
            ),
        ];
        for (spec, want) in table {
            assert_eq!(parse(spec), want, "spec {spec:?}");
        }
    }

    #[test]
    fn enumerate_numbers_repeated_points() {
        let log = "a\nb\na\n\nc\na\n";
        assert_eq!(enumerate(log), ["a@1", "b@1", "a@2", "c@1", "a@3"]);
    }
}
