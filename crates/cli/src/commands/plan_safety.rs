//! The safety part of `engine plan` (issue #15): each pod's gates asked now (read-only: the
//! engine writes nothing, the gates are the plan's own checks), when the first wave can start
//! under the maintenance windows, and the analysis that will watch each wave.

use std::collections::{BTreeMap, BTreeSet};

use baton_engine::decide::{GateAnswer, WindowState, window_state};
use baton_engine::plan::{GateMoment, OnFailure, PrometheusQuery, ValidPlan, Window};
use baton_engine::snapshot::Snapshot;
use jiff::Timestamp;
use serde_json::json;

/// Lines for the text output and the same facts for `--output json`.
pub struct Report {
    pub lines: Vec<String>,
    pub json: serde_json::Value,
}

pub async fn report(plan: &ValidPlan, snapshot: &Snapshot, now: Timestamp) -> Report {
    let spec = plan.spec();
    let mut lines = Vec::new();

    let answers = ask_gates(plan, snapshot).await;
    if !spec.gates.is_empty() {
        lines.push("gates (asked now; nothing is written):".to_owned());
        let mut by_pod: BTreeMap<(u32, &str), Vec<&GateAnswer>> = BTreeMap::new();
        for a in &answers {
            let ordinal = snapshot
                .pods
                .iter()
                .find(|p| p.name == a.pod)
                .map_or(u32::MAX, |p| p.ordinal);
            by_pod.entry((ordinal, &a.pod)).or_default().push(a);
        }
        for ((_, pod), answers) in by_pod {
            let told: Vec<String> = answers
                .iter()
                .map(|a| {
                    format!(
                        "{} {} ({})",
                        a.gate,
                        if a.passed { "pass" } else { "FAIL" },
                        a.answer
                    )
                })
                .collect();
            let held = answers.iter().any(|a| !a.passed);
            lines.push(format!(
                "  {pod}: {}{}",
                told.join("; "),
                if held {
                    " -- held back while it fails"
                } else {
                    ""
                }
            ));
        }
    }

    let state = window_state(&spec.schedule.windows, now);
    for w in &spec.schedule.windows {
        lines.push(format!("window: {}", window_text(w)));
    }
    if !spec.schedule.windows.is_empty() {
        lines.push(match &state {
            WindowState::Open => {
                "wave 1 can start now (inside a window); each later wave starts only inside a window"
                    .to_owned()
            }
            WindowState::Closed { next: Some(next) } => format!(
                "wave 1 waits for {}; each later wave starts only inside a window",
                next.waiting_for(now)
            ),
            WindowState::Closed { next: None } => {
                "no window can open: none of its time zones is known here".to_owned()
            }
        });
    }

    if let Some(analysis) = &spec.analysis {
        let checks: Vec<String> = analysis
            .checks
            .iter()
            .map(|c| format!("{} ({})", c.name, bounds(&c.prometheus)))
            .collect();
        lines.push(format!(
            "analysis: every {} while a wave updates and settles, and once it is ready: {}; a failure {}",
            analysis.interval,
            checks.join(", "),
            match spec.on_failure {
                OnFailure::Freeze => "freezes the rollout (safety stop)",
                OnFailure::Rollback => "rolls back standby-first",
            }
        ));
    }

    if spec.on_failure == OnFailure::Rollback {
        lines.push(
            "onFailure: rollback: a failed check, a wave whose pods do not become ready or whose \
             afterWaveReady hook fails rolls back standby-first to the template the run started \
             from (the run ends rolledBack, exit 1); a broken invariant stays a safety stop"
                .to_owned(),
        );
    }

    let json = json!({
        "gates": answers,
        "window": state,
        "analysis": spec.analysis.as_ref().map(|a| json!({
            "interval": a.interval.to_string(),
            "checks": a.checks.iter().map(|c| &c.name).collect::<Vec<_>>(),
        })),
        "onFailure": spec.on_failure,
    });
    Report { lines, json }
}

/// Every gate about every pod the arbiter lists, each gate once per pod.
async fn ask_gates(plan: &ValidPlan, snapshot: &Snapshot) -> Vec<GateAnswer> {
    let spec = plan.spec();
    if spec.gates.is_empty() {
        return Vec::new();
    }
    let pods: Vec<String> = snapshot
        .pods_by_ordinal()
        .into_iter()
        .filter(|p| snapshot.arbiter.members.contains_key(&p.name))
        .map(|p| p.name.clone())
        .collect();
    let mut answers = baton_steps::gates::ask_all(
        spec,
        GateMoment::Select,
        &BTreeSet::new(),
        &pods,
        plan.name(),
        1,
    )
    .await;
    let asked: BTreeSet<String> = spec
        .gates
        .iter()
        .filter(|g| g.asked_at(GateMoment::Select))
        .map(|g| g.name.clone())
        .collect();
    answers.extend(
        baton_steps::gates::ask_all(spec, GateMoment::Promote, &asked, &pods, plan.name(), 1).await,
    );
    answers
}

fn window_text(w: &Window) -> String {
    let days: Vec<&str> = w.days.iter().map(|d| d.as_str()).collect();
    format!("{} {}-{} {}", days.join(", "), w.start, w.end, w.time_zone)
}

fn bounds(q: &PrometheusQuery) -> String {
    match (q.min, q.max) {
        (Some(min), Some(max)) => format!("{min} <= {} <= {max}", q.query),
        (None, Some(max)) => format!("{} <= {max}", q.query),
        (Some(min), None) => format!("{} >= {min}", q.query),
        (None, None) => q.query.clone(),
    }
}

/// With windows, when each projected wave can start (by wave number): `now`, or the day and
/// time in the first window's time zone, with how long until then. Empty without windows.
pub fn wave_start_lines(
    spec: &baton_engine::plan::Spec,
    waves: &[baton_engine::decide::WaveForecast],
    estimate: Option<&baton_engine::decide::Estimate>,
    now: Timestamp,
) -> BTreeMap<u32, String> {
    let windows = &spec.schedule.windows;
    let Some(first) = windows.first() else {
        return BTreeMap::new();
    };
    let durations: Vec<Option<std::time::Duration>> = waves
        .iter()
        .map(|w| {
            estimate
                .and_then(|e| e.waves.iter().find(|t| t.wave == w.wave))
                .and_then(|t| t.time)
        })
        .collect();
    let starts = baton_engine::decide::wave_starts(windows, now, &durations);
    let tz = jiff::tz::TimeZone::get(&first.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    waves
        .iter()
        .zip(starts)
        .map(|(w, start)| {
            let told = match start {
                Some(at) if at <= now => "starts: now (inside a window)".to_owned(),
                Some(at) => {
                    let left =
                        std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default();
                    format!(
                        "starts: {} {} (in {})",
                        at.to_zoned(tz.clone()).strftime("%a %H:%M"),
                        first.time_zone,
                        baton_engine::text::span(left)
                    )
                }
                None => "starts: inside the next window after the wave before it (no estimate)"
                    .to_owned(),
            };
            (w.wave, told)
        })
        .collect()
}
