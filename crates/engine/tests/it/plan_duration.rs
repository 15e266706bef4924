//! Durations as operators write them, by table.

use baton_engine::duration::{Duration, ParseDurationError};

fn ms(ms: u64) -> Duration {
    Duration(std::time::Duration::from_millis(ms))
}

#[test]
fn durations_parse_by_table() {
    let good: &[(&str, u64)] = &[
        ("0", 0),
        ("0s", 0),
        ("250ms", 250),
        ("5s", 5_000),
        ("10m", 600_000),
        ("1h", 3_600_000),
        ("1h30m", 5_400_000),
        ("1h30m15s250ms", 5_415_250),
        ("90s", 90_000),
        (" 5s ", 5_000),
    ];
    for (text, want) in good {
        assert_eq!(text.parse::<Duration>(), Ok(ms(*want)), "{text:?}");
    }
    let bad = [
        "10x", "5", "1.5h", "-5s", "5 s", "s", "1d", "5S", "1h30", "ms5", "1h-30m",
    ];
    for text in bad {
        let err = text.parse::<Duration>().unwrap_err();
        assert_eq!(
            err,
            ParseDurationError::Invalid(text.to_owned()),
            "{text:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("invalid duration {text:?}: expected a duration like 5s, 10m or 1h30m")
        );
    }
    assert_eq!("".parse::<Duration>(), Err(ParseDurationError::Empty));
    assert_eq!("  ".parse::<Duration>(), Err(ParseDurationError::Empty));
    assert!(matches!(
        "99999999999999999999h".parse::<Duration>(),
        Err(ParseDurationError::Overflow(_))
    ));
    assert!(matches!(
        "18446744073709551615h".parse::<Duration>(),
        Err(ParseDurationError::Overflow(_))
    ));
}

#[test]
fn durations_print_in_their_shortest_unit_form() {
    let table: &[(u64, &str)] = &[
        (0, "0s"),
        (250, "250ms"),
        (5_000, "5s"),
        (600_000, "10m"),
        (5_400_000, "1h30m"),
        (5_415_250, "1h30m15s250ms"),
        (90_000, "1m30s"),
    ];
    for (value, want) in table {
        assert_eq!(ms(*value).to_string(), *want);
        assert_eq!(
            want.parse::<Duration>(),
            Ok(ms(*value)),
            "printing round-trips"
        );
    }
}

#[test]
fn durations_round_trip_through_serde() {
    let d: Duration = serde_json::from_str("\"1h30m\"").unwrap();
    assert_eq!(d, ms(5_400_000));
    assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
    let err = serde_json::from_str::<Duration>("\"10x\"").unwrap_err();
    assert!(
        err.to_string().contains("expected a duration like 5s"),
        "{err}"
    );
}
