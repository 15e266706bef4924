//! Words for operators: counts with the right plural and durations as people write them.
//! Messages are built from these instead of Rust's debug format (`Some(4)`, `["a", "b"]`,
//! `1.000312s`), so what the engine tells is read, not decoded.

use std::time::Duration;

/// `1 pod`, `2 pods`: `n` and the word that fits it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Names joined with `, `; `none` when there are none.
pub fn names<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `250ms`, `5s`, `4.5s`, `1m05s`, `2h03m`: precise where it matters, short where it does
/// not (a minute-long wait is not told to the millisecond).
pub fn span(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if secs < 60 {
        let tenths = (ms % 1_000) / 100;
        if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        }
    } else if secs < 3_600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3_600, (secs % 3_600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_number() {
        assert_eq!(count(0, "pod", "pods"), "0 pods");
        assert_eq!(count(1, "pod", "pods"), "1 pod");
        assert_eq!(count(2, "pod is", "pods are"), "2 pods are");
    }

    #[test]
    fn spans_read_as_people_write_them() {
        let cases = [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(4_560), "4.5s"),
            (Duration::from_secs(65), "1m05s"),
            (Duration::from_secs(7_380), "2h03m"),
        ];
        for (d, want) in cases {
            assert_eq!(span(d), want);
        }
        assert_eq!(names::<&str>(&[]), "none");
        assert_eq!(names(&["a", "b"]), "a, b");
    }
}
