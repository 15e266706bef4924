//! Maintenance windows (issue #15): whether a wave may start now, and if not, when the next
//! window opens. Pure: the time is given, the time zones are the system's tz database (read
//! by jiff), and nothing sleeps here.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use serde::{Deserialize, Serialize};

use crate::plan::{Weekday, Window};

/// Whether waves may start at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum WindowState {
    /// No windows, or inside one.
    Open,
    /// Outside every window; `next` is the next opening, `None` when none can open (a time
    /// zone the system no longer knows).
    Closed { next: Option<Opening> },
}

/// When the next window opens, and how to name it: `Mon 01:00 Europe/Berlin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    pub at: Timestamp,
    pub label: String,
}

impl Opening {
    /// `window Mon 01:00 Europe/Berlin (in 3h12m)`, as of `now`.
    pub fn waiting_for(&self, now: Timestamp) -> String {
        let left = self.at.duration_since(now);
        let left = std::time::Duration::try_from(left).unwrap_or_default();
        format!("window {} (in {})", self.label, crate::text::span(left))
    }
}

/// Whether `now` is inside one of `windows` (none = always), else the next opening.
pub fn window_state(windows: &[Window], now: Timestamp) -> WindowState {
    if windows.is_empty() || windows.iter().any(|w| is_open(w, now)) {
        return WindowState::Open;
    }
    let next = windows
        .iter()
        .filter_map(|w| next_opening(w, now))
        .min_by_key(|o| o.at);
    WindowState::Closed { next }
}

fn weekday(date: Date) -> Weekday {
    let i = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
    Weekday::ALL[i % 7]
}

/// `date` at `minutes` past local midnight in `tz` (1440 = the next midnight). A time that a
/// daylight-saving jump skips is taken as the instant after the gap.
fn at(tz: &TimeZone, date: Date, minutes: u16) -> Option<Timestamp> {
    let (date, minutes) = if minutes >= 24 * 60 {
        (date.checked_add(1.day()).ok()?, minutes - 24 * 60)
    } else {
        (date, minutes)
    };
    let hour = i8::try_from(minutes / 60).ok()?;
    let minute = i8::try_from(minutes % 60).ok()?;
    let local = date.at(hour, minute, 0, 0);
    Some(tz.to_ambiguous_zoned(local).compatible().ok()?.timestamp())
}

/// The window opening on `date` as `[start, end)`; it ends the next day when end <= start.
fn span_on(w: &Window, tz: &TimeZone, date: Date) -> Option<(Timestamp, Timestamp)> {
    let (start, end) = w.minutes()?;
    let end_date = if end <= start {
        date.checked_add(1.day()).ok()?
    } else {
        date
    };
    Some((at(tz, date, start)?, at(tz, end_date, end)?))
}

fn is_open(w: &Window, now: Timestamp) -> bool {
    let Ok(tz) = TimeZone::get(&w.time_zone) else {
        return false;
    };
    let today = now.to_zoned(tz.clone()).date();
    // A window that opened yesterday may still run past midnight.
    [-1i64, 0].into_iter().any(|offset| {
        let Ok(date) = today.checked_add(offset.days()) else {
            return false;
        };
        w.days.contains(&weekday(date))
            && span_on(w, &tz, date).is_some_and(|(start, end)| start <= now && now < end)
    })
}

fn next_opening(w: &Window, now: Timestamp) -> Option<Opening> {
    let tz = TimeZone::get(&w.time_zone).ok()?;
    let today = now.to_zoned(tz.clone()).date();
    (0i64..=7).find_map(|offset| {
        let date = today.checked_add(offset.days()).ok()?;
        let day = weekday(date);
        if !w.days.contains(&day) {
            return None;
        }
        let (start, _) = span_on(w, &tz, date)?;
        (start > now).then(|| Opening {
            at: start,
            label: format!("{} {} {}", day.as_str(), w.start, w.time_zone),
        })
    })
}

/// When each wave of a projected run can start under `windows`, from `now`: a wave starts as
/// soon as the one before it ends (its duration from the estimate) if that is inside a
/// window, else when the next window opens. `None` from the first wave whose start cannot be
/// told (an earlier wave has no estimate, or no window can open).
pub fn wave_starts(
    windows: &[Window],
    now: Timestamp,
    durations: &[Option<std::time::Duration>],
) -> Vec<Option<Timestamp>> {
    let mut at = Some(now);
    durations
        .iter()
        .map(|duration| {
            let start = at.and_then(|t| match window_state(windows, t) {
                WindowState::Open => Some(t),
                WindowState::Closed { next } => next.map(|n| n.at),
            });
            at = start.zip(*duration).and_then(|(s, d)| {
                let d = jiff::SignedDuration::try_from(d).ok()?;
                s.checked_add(d).ok()
            });
            start
        })
        .collect()
}
