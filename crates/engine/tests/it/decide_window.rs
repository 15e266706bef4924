//! Maintenance windows as a table: instants inside and outside weekly windows in their time
//! zones, overnight windows, `24:00`, a daylight-saving gap, and the words the run waits with.

use baton_engine::decide::{Opening, WindowState, wave_starts, window_state};
use baton_engine::plan::{Weekday, Window};
use jiff::Timestamp;

fn window(days: &[Weekday], start: &str, end: &str, tz: &str) -> Window {
    Window {
        days: days.to_vec(),
        start: start.into(),
        end: end.into(),
        time_zone: tz.into(),
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn waves_start_only_inside_a_window_and_the_next_opening_is_named() {
    use Weekday::*;
    let berlin = window(&[Mon, Tue, Wed, Thu], "01:00", "05:00", "Europe/Berlin");
    let overnight = window(&[Fri], "22:00", "02:00", "UTC");
    let evening = window(&[Sat], "20:00", "24:00", "UTC");
    let dst = window(&[Sun], "02:30", "04:00", "Europe/Berlin");
    // (window, now, None = open, or Some((next opening, label, waiting words)))
    type Want<'a> = Option<(&'a str, &'a str, &'a str)>;
    let table: Vec<(&Window, &str, Want)> = vec![
        // Sunday 22:48 in Berlin (CET, UTC+1): Monday 01:00 is 2h12m away.
        (
            &berlin,
            "2026-12-06T21:48:00Z",
            Some((
                "2026-12-07T00:00:00Z",
                "Mon 01:00 Europe/Berlin",
                "window Mon 01:00 Europe/Berlin (in 2h12m)",
            )),
        ),
        (&berlin, "2026-12-07T00:00:00Z", None),
        (&berlin, "2026-12-07T03:59:59Z", None),
        // 05:00 is the end: closed, Tuesday next.
        (
            &berlin,
            "2026-12-07T04:00:00Z",
            Some((
                "2026-12-08T00:00:00Z",
                "Tue 01:00 Europe/Berlin",
                "window Tue 01:00 Europe/Berlin (in 20h00m)",
            )),
        ),
        // Thursday after the window: next Monday.
        (
            &berlin,
            "2026-12-10T04:30:00Z",
            Some((
                "2026-12-14T00:00:00Z",
                "Mon 01:00 Europe/Berlin",
                "window Mon 01:00 Europe/Berlin (in 91h30m)",
            )),
        ),
        // Summer time (CEST, UTC+2): 01:00 Berlin is 23:00 UTC the day before.
        (&berlin, "2026-07-05T23:30:00Z", None),
        // Overnight: opened Friday 22:00, still open Saturday 01:00, closed at 02:00.
        (&overnight, "2026-12-05T01:00:00Z", None),
        (
            &overnight,
            "2026-12-05T02:00:00Z",
            Some((
                "2026-12-11T22:00:00Z",
                "Fri 22:00 UTC",
                "window Fri 22:00 UTC (in 164h00m)",
            )),
        ),
        (&evening, "2026-12-05T23:59:00Z", None),
        (
            &evening,
            "2026-12-06T00:00:00Z",
            Some((
                "2026-12-12T20:00:00Z",
                "Sat 20:00 UTC",
                "window Sat 20:00 UTC (in 164h00m)",
            )),
        ),
        // 02:30 does not exist on 2026-03-29 in Berlin (02:00 → 03:00): the window opens
        // right after the gap, 03:30 CEST.
        (
            &dst,
            "2026-03-29T00:00:00Z",
            Some((
                "2026-03-29T01:30:00Z",
                "Sun 02:30 Europe/Berlin",
                "window Sun 02:30 Europe/Berlin (in 1h30m)",
            )),
        ),
    ];
    for (w, now, want) in table {
        let now = t(now);
        let got = window_state(std::slice::from_ref(w), now);
        match want {
            None => assert_eq!(got, WindowState::Open, "{w:?} at {now}"),
            Some((at, label, words)) => {
                let opening = Opening {
                    at: t(at),
                    label: label.into(),
                };
                assert_eq!(
                    got,
                    WindowState::Closed {
                        next: Some(opening.clone())
                    },
                    "{w:?} at {now}"
                );
                assert_eq!(opening.waiting_for(now), words);
            }
        }
    }
}

#[test]
fn no_window_means_any_time_and_the_earliest_of_several_opens_first() {
    use Weekday::*;
    assert_eq!(
        window_state(&[], t("2026-12-06T12:00:00Z")),
        WindowState::Open
    );
    let windows = [
        window(&[Tue], "01:00", "02:00", "UTC"),
        window(&[Mon], "09:00", "10:00", "America/New_York"),
    ];
    // Monday 12:00 UTC is 07:00 in New York: that window opens at 14:00 UTC, before Tuesday.
    let got = window_state(&windows, t("2026-12-07T12:00:00Z"));
    let WindowState::Closed { next: Some(next) } = got else {
        panic!("closed: {got:?}");
    };
    assert_eq!(next.at, t("2026-12-07T14:00:00Z"));
    assert_eq!(next.label, "Mon 09:00 America/New_York");
    assert_eq!(
        window_state(&windows, t("2026-12-07T14:30:00Z")),
        WindowState::Open
    );
}

#[test]
fn with_windows_each_wave_begins_with_the_window_step() {
    use baton_engine::dag::{StepId, StepKind, prologue, tails, wave};
    use baton_engine::plan::ValidPlan;
    let text = include_str!("../../../../plans/app-safety.yaml");
    let plan = ValidPlan::parse("app-safety.yaml", text).unwrap();
    let pro = prologue(&plan);
    let w = wave(&plan, 2, &tails(&pro));
    assert_eq!(w[0].id, StepId::in_wave(2, StepKind::Window));
    assert_eq!(w[0].deps, tails(&pro));
    assert_eq!(w[1].id, StepId::in_wave(2, StepKind::QueryArbiter));
    assert_eq!(w[1].deps, [StepId::in_wave(2, StepKind::Window)]);
    assert_eq!(w[0].id.to_string(), "wave-2/window");

    let seed = ValidPlan::parse("seed.yaml", include_str!("../../../../plans/seed.yaml")).unwrap();
    let w = wave(&seed, 1, &[]);
    assert!(
        w.iter().all(|n| n.id.kind != StepKind::Window),
        "no windows, no step"
    );
}

#[test]
fn each_wave_starts_when_the_last_ended_if_a_window_is_open_else_at_the_next_opening() {
    use Weekday::*;
    use std::time::Duration;
    let w = [window(&[Mon, Tue], "01:00", "02:00", "UTC")];
    let min = |m: u64| Some(Duration::from_secs(60 * m));
    // Sunday 23:00: wave 1 at Mon 01:00; 40 min later wave 2 still inside; wave 3 would
    // start 02:20, outside: Tuesday 01:00; wave 4 after an unknown duration cannot be told.
    let starts = wave_starts(
        &w,
        t("2026-12-06T23:00:00Z"),
        &[min(40), min(40), None, min(1)],
    );
    assert_eq!(
        starts,
        [
            Some(t("2026-12-07T01:00:00Z")),
            Some(t("2026-12-07T01:40:00Z")),
            Some(t("2026-12-08T01:00:00Z")),
            None,
        ]
    );
    // Without windows every wave follows the last.
    let starts = wave_starts(&[], t("2026-12-06T23:00:00Z"), &[min(5), min(5)]);
    assert_eq!(
        starts,
        [
            Some(t("2026-12-06T23:00:00Z")),
            Some(t("2026-12-06T23:05:00Z"))
        ]
    );
}
