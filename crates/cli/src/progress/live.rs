//! The live progress display of a run on a terminal: a spinner with the run, the wave
//! and the elapsed time, what the engine is waiting for, and one row per pod with its
//! role, revision (old/new) and readiness.
//!
//! [`Board`] is the plain model: it folds the run's events into what is shown and
//! renders lines, so it is tested without a terminal. [`LiveDisplay`] draws those lines
//! with `indicatif` at the bottom of stderr and erases them when the run ends, so the
//! final summary is never mixed with spinner remnants.

use std::time::{Duration, Instant};

use baton_engine::event::{PodRow, RunEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Pods shown one per row; beyond this the rest is summed up in one line, so the
/// display stays within a terminal's height.
const MAX_POD_ROWS: usize = 12;

/// What the display shows, folded from the run's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    run: Option<String>,
    target: Option<String>,
    wave: Option<u32>,
    partition: Option<u32>,
    /// The pods the current wave updates.
    wave_pods: Vec<String>,
    /// Steps started and not finished, oldest first, with what each waits for.
    running: Vec<Running>,
    pods: Vec<PodRow>,
    /// When the current wave was planned, and when its latest pod came up.
    wave_started: Option<Instant>,
    last_update: Option<Instant>,
    /// How long each pod updated so far took, counted from the wave's start or the
    /// previous pod of its wave (Kruise brings a wave's pods up `maxUnavailable` at a time):
    /// what the remaining time is estimated from.
    per_pod: Vec<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    step: String,
    waiting: Option<String>,
    retrying: Option<String>,
}

impl Board {
    /// Take one event into account, as it arrives now.
    pub fn apply(&mut self, event: &RunEvent) {
        self.apply_at(event, Instant::now());
    }

    /// Take one event into account, as it arrived at `at`.
    pub fn apply_at(&mut self, event: &RunEvent, at: Instant) {
        match event {
            RunEvent::RunStarted { run, target, .. } => {
                self.run = Some(run.clone());
                self.target = Some(target.clone());
            }
            RunEvent::StepStarted { step, .. } => {
                if let Some(running) = self.running.iter_mut().find(|r| r.step == *step) {
                    running.waiting = None;
                } else {
                    self.running.push(Running {
                        step: step.clone(),
                        waiting: None,
                        retrying: None,
                    });
                }
            }
            RunEvent::StepFinished { step, .. } => self.running.retain(|r| r.step != *step),
            RunEvent::StepFailed {
                step,
                error,
                retrying,
            } => {
                if *retrying {
                    if let Some(running) = self.running.iter_mut().find(|r| r.step == *step) {
                        running.retrying = Some(error.clone());
                    }
                } else {
                    self.running.retain(|r| r.step != *step);
                }
            }
            RunEvent::WavePlanned {
                wave,
                pods,
                partition,
            } => {
                self.wave = Some(*wave);
                self.partition = Some(*partition);
                self.wave_pods = pods.clone();
                self.wave_started = Some(at);
                self.last_update = None;
            }
            RunEvent::Waiting { step, what } => {
                match self.running.iter_mut().find(|r| r.step == *step) {
                    Some(running) => running.waiting = Some(what.clone()),
                    None => self.running.push(Running {
                        step: step.clone(),
                        waiting: Some(what.clone()),
                        retrying: None,
                    }),
                }
            }
            RunEvent::PodUpdated { pod, revision } => {
                let was_old = self.pods.iter().any(|p| p.name == *pod && !p.updated);
                if let (true, Some(since)) = (was_old, self.last_update.or(self.wave_started)) {
                    self.per_pod.push(at.saturating_duration_since(since));
                    self.last_update = Some(at);
                }
                if let Some(row) = self.pods.iter_mut().find(|p| p.name == *pod) {
                    row.revision = Some(revision.clone());
                    row.updated = true;
                    // Announced once the pod is settled at the new revision.
                    row.ready = true;
                }
            }
            RunEvent::Handover {
                promote, demote, ..
            } => {
                for row in &mut self.pods {
                    if promote.contains(&row.name) {
                        row.role = Some("working".to_owned());
                    } else if demote.contains(&row.name) {
                        row.role = Some("idle".to_owned());
                    }
                }
            }
            RunEvent::Pods { pods } => self.pods = pods.clone(),
            RunEvent::SafetyStop { .. }
            | RunEvent::RollbackStarted { .. }
            | RunEvent::Warning { .. }
            | RunEvent::RunFinished { .. } => {}
        }
    }

    /// The spinner line: run, wave and partition, and the time left once it can be told.
    pub fn headline(&self) -> String {
        let run = self.run.as_deref().unwrap_or("run");
        let stage = match (self.wave, self.partition) {
            (Some(wave), Some(partition)) => format!("wave {wave} (partition {partition})"),
            (Some(wave), None) => format!("wave {wave}"),
            (None, _) => "preparing".to_owned(),
        };
        let mut line = match &self.target {
            Some(target) => format!("{run} on {target} · {stage}"),
            None => format!("{run} · {stage}"),
        };
        if let Some((left, each)) = self.remaining() {
            line.push_str(&format!(
                " · about {} left ({} a pod so far)",
                clock(left),
                clock(each)
            ));
        }
        line
    }

    /// The time left and the mean time a pod has taken: the pods not updated yet, each
    /// taking what the pods updated so far took on average. Approvals, settle times and
    /// hooks still to come are not in it. `None` before the first pod came up, or once
    /// none is left.
    pub fn remaining(&self) -> Option<(Duration, Duration)> {
        let observed = u32::try_from(self.per_pod.len()).ok().filter(|n| *n > 0)?;
        let each = self.per_pod.iter().sum::<Duration>() / observed;
        let left = u32::try_from(self.pods.iter().filter(|p| !p.updated).count())
            .ok()
            .filter(|n| *n > 0)?;
        Some((each * left, each))
    }

    /// What the engine does or waits for right now: the newest step still running.
    pub fn activity(&self) -> String {
        let Some(current) = self.running.last() else {
            return "between steps".to_owned();
        };
        let mut line = match &current.waiting {
            Some(what) => format!("{}: waiting for {what}", current.step),
            None => format!("{}: running", current.step),
        };
        if let Some(error) = &current.retrying {
            line.push_str(&format!(" (retrying after: {error})"));
        }
        line
    }

    /// The pod table: a header and one row per pod (at most [`MAX_POD_ROWS`], the
    /// wave's pods first), or nothing before the first pod list arrives.
    pub fn pod_lines(&self) -> Vec<String> {
        if self.pods.is_empty() {
            return Vec::new();
        }
        let in_wave = |row: &PodRow| self.wave_pods.contains(&row.name);
        let mut shown: Vec<&PodRow> = self.pods.iter().collect();
        let mut hidden = Vec::new();
        if shown.len() > MAX_POD_ROWS {
            // Keep the pods that matter now: the wave's, then those not ready, then the rest.
            shown.sort_by_key(|row| (!in_wave(row), row.ready));
            hidden = shown.split_off(MAX_POD_ROWS);
            shown.sort_by_key(|row| ordinal_key(&row.name));
        }
        let mut rows = vec![[
            "POD".to_owned(),
            "ROLE".to_owned(),
            "REVISION".to_owned(),
            "READY".to_owned(),
            String::new(),
        ]];
        for row in &shown {
            let note = match (in_wave(row), row.updated, self.wave) {
                (true, true, Some(wave)) => format!("updated in wave {wave}"),
                (true, false, Some(wave)) => format!("updating in wave {wave}"),
                _ => String::new(),
            };
            rows.push([
                row.name.clone(),
                row.role.clone().unwrap_or_else(|| "-".to_owned()),
                if row.updated { "new" } else { "old" }.to_owned(),
                // A wave's pod is replaced between its last listing and its update:
                // its readiness is not known until the update is announced.
                match (in_wave(row) && !row.updated, row.ready) {
                    (true, _) => "-",
                    (false, true) => "ready",
                    (false, false) => "not ready",
                }
                .to_owned(),
                note,
            ]);
        }
        let mut lines = columns(&rows);
        if !hidden.is_empty() {
            let new = hidden.iter().filter(|r| r.updated).count();
            let unready = hidden.iter().filter(|r| !r.ready).count();
            let mut summary = format!(
                "… {} more {}: {new} new, {} old",
                hidden.len(),
                if hidden.len() == 1 { "pod" } else { "pods" },
                hidden.len() - new
            );
            if unready > 0 {
                summary.push_str(&format!(", {unready} not ready"));
            }
            lines.push(summary);
        }
        lines
    }
}

/// `sample-10` sorts after `sample-9`.
fn ordinal_key(name: &str) -> (String, u64) {
    match name.rsplit_once('-') {
        Some((base, n)) => match n.parse() {
            Ok(n) => (base.to_owned(), n),
            Err(_) => (name.to_owned(), 0),
        },
        None => (name.to_owned(), 0),
    }
}

/// Left-aligned columns two spaces apart, trailing blanks trimmed.
pub(crate) fn columns<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect()
}

/// `4.2s`, `1m05s`, `1h02m`: short enough for a status line.
pub fn clock(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs < 60 {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Keeps the terminal from echoing what is typed (`^C` included) while the display is
/// drawn, and restores the terminal's modes when dropped.
///
/// `indicatif` leaves the cursor just past the last column of its last line; an echoed
/// `^C` there wraps to a new line (an echoed Enter moves down one), the display loses
/// track of where it starts, and its top line would be left behind when it is erased.
/// The engine reads nothing from the terminal: typed-ahead input still reaches the
/// shell afterwards, which shows it then.
pub struct QuietEcho {
    #[cfg(unix)]
    saved: Option<rustix::termios::Termios>,
}

impl QuietEcho {
    /// Turn `ECHO` off on the terminal stderr draws on, if it is on.
    pub fn engage() -> QuietEcho {
        #[cfg(unix)]
        {
            use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
            let stderr = std::io::stderr();
            let saved = tcgetattr(&stderr)
                .ok()
                .filter(|modes| modes.local_modes.contains(LocalModes::ECHO));
            if let Some(saved) = &saved {
                let mut quiet = saved.clone();
                quiet.local_modes.remove(LocalModes::ECHO);
                if tcsetattr(&stderr, OptionalActions::Now, &quiet).is_err() {
                    return QuietEcho { saved: None };
                }
            }
            QuietEcho { saved }
        }
        #[cfg(not(unix))]
        QuietEcho {}
    }
}

impl Drop for QuietEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            let _ = rustix::termios::tcsetattr(
                std::io::stderr(),
                rustix::termios::OptionalActions::Now,
                &saved,
            );
        }
    }
}

/// The board drawn at the bottom of stderr. Lines printed through
/// [`crate::printer::err`] while it is attached appear above it.
pub struct LiveDisplay {
    multi: MultiProgress,
    spinner: ProgressBar,
    activity: ProgressBar,
    rows: Vec<ProgressBar>,
    row_style: ProgressStyle,
    board: Board,
}

impl LiveDisplay {
    /// Start drawing on stderr and route stderr messages above the display.
    pub fn start(color: bool) -> LiveDisplay {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let started = Instant::now();
        let template = if color {
            "{spinner:.cyan} {prefix:.bold}  {clock:.dim}"
        } else {
            "{spinner} {prefix}  {clock}"
        };
        let spinner_style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "clock",
                move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = out.write_str(&clock(started.elapsed()));
                },
            );
        let row_style = ProgressStyle::with_template("  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let spinner = multi.add(ProgressBar::new_spinner().with_style(spinner_style));
        let activity = multi.add(ProgressBar::new_spinner().with_style(row_style.clone()));
        let board = Board::default();
        spinner.set_prefix(board.headline());
        activity.set_message(board.activity());
        spinner.enable_steady_tick(Duration::from_millis(100));
        crate::printer::attach_live(multi.clone(), QuietEcho::engage());
        LiveDisplay {
            multi,
            spinner,
            activity,
            rows: Vec::new(),
            row_style,
            board,
        }
    }

    /// Take `event` into account and redraw.
    pub fn update(&mut self, event: &RunEvent) {
        self.board.apply(event);
        self.spinner.set_prefix(self.board.headline());
        self.activity.set_message(self.board.activity());
        let lines = self.board.pod_lines();
        while self.rows.len() > lines.len() {
            if let Some(bar) = self.rows.pop() {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        while self.rows.len() < lines.len() {
            let bar = self
                .multi
                .add(ProgressBar::new_spinner().with_style(self.row_style.clone()));
            self.rows.push(bar);
        }
        for (bar, line) in self.rows.iter().zip(lines) {
            bar.set_message(line);
        }
    }

    /// Erase the display and hand stderr back. Lines printed so far stay above it.
    pub fn finish(self) {
        for bar in self.rows.iter().chain([&self.activity, &self.spinner]) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
        crate::printer::detach_live();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, role: &str, updated: bool, ready: bool) -> PodRow {
        PodRow {
            name: name.to_owned(),
            role: Some(role.to_owned()),
            revision: Some(if updated { "rev-new" } else { "rev-old" }.to_owned()),
            image: None,
            ready,
            updated,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn seed_wave_one() -> Vec<RunEvent> {
        vec![
            RunEvent::RunStarted {
                run: "seed".into(),
                plan: "plans/seed.yaml".into(),
                target: "default/sample".into(),
            },
            RunEvent::Pods {
                pods: vec![
                    pod("sample-0", "working", false, true),
                    pod("sample-1", "idle", false, true),
                    pod("sample-2", "working", false, true),
                ],
            },
            RunEvent::WavePlanned {
                wave: 1,
                pods: names(&["sample-1"]),
                partition: 1,
            },
            RunEvent::StepStarted {
                step: "wave-1/wait-updated".into(),
                attempt: 1,
            },
            RunEvent::Waiting {
                step: "wave-1/wait-updated".into(),
                what: "sample-1 to run the update revision and be ready".into(),
            },
        ]
    }

    fn board_after(events: &[RunEvent]) -> Board {
        let mut board = Board::default();
        for event in events {
            board.apply(event);
        }
        board
    }

    #[test]
    fn the_headline_names_the_run_the_target_and_the_wave_once_one_is_planned() {
        let cases: &[(usize, &str)] = &[
            (0, "run · preparing"),
            (1, "seed on default/sample · preparing"),
            (3, "seed on default/sample · wave 1 (partition 1)"),
        ];
        let events = seed_wave_one();
        for (count, want) in cases {
            assert_eq!(board_after(&events[..*count]).headline(), *want, "{count}");
        }
    }

    #[test]
    fn the_activity_is_what_the_newest_running_step_waits_for() {
        let mut events = seed_wave_one();
        let cases: Vec<(Vec<RunEvent>, &str)> = vec![
            (Vec::new(), "between steps"),
            (events.drain(..4).collect(), "wave-1/wait-updated: running"),
            (
                events.clone(),
                "wave-1/wait-updated: waiting for sample-1 to run the update revision and be ready",
            ),
            (
                vec![RunEvent::StepFailed {
                    step: "wave-1/wait-updated".into(),
                    error: "api server unavailable".into(),
                    retrying: true,
                }],
                "wave-1/wait-updated: waiting for sample-1 to run the update revision and be ready (retrying after: api server unavailable)",
            ),
            (
                vec![RunEvent::StepFinished {
                    step: "wave-1/wait-updated".into(),
                    ms: 40,
                }],
                "between steps",
            ),
        ];
        let mut board = Board::default();
        for (more, want) in cases {
            for event in &more {
                board.apply(event);
            }
            assert_eq!(board.activity(), want);
        }
    }

    #[test]
    fn pod_rows_show_role_revision_readiness_and_the_wave_being_updated() {
        let mut board = board_after(&seed_wave_one());
        assert_eq!(
            board.pod_lines(),
            [
                "POD       ROLE     REVISION  READY",
                "sample-0  working  old       ready",
                "sample-1  idle     old       -      updating in wave 1",
                "sample-2  working  old       ready",
            ]
        );
        board.apply(&RunEvent::PodUpdated {
            pod: "sample-1".into(),
            revision: "rev-new".into(),
        });
        board.apply(&RunEvent::Handover {
            wave: 1,
            promote: names(&["sample-1"]),
            demote: names(&["sample-0"]),
            epoch: 3,
        });
        assert_eq!(
            board.pod_lines(),
            [
                "POD       ROLE     REVISION  READY",
                "sample-0  idle     old       ready",
                "sample-1  working  new       ready  updated in wave 1",
                "sample-2  working  old       ready",
            ]
        );
    }

    #[test]
    fn a_large_set_shows_the_wave_and_unready_pods_and_sums_up_the_rest() {
        let mut pods: Vec<PodRow> = (0..20)
            .map(|i| pod(&format!("big-{i}"), "working", i < 5, true))
            .collect();
        pods[17].ready = false;
        let mut board = Board::default();
        board.apply(&RunEvent::Pods { pods });
        board.apply(&RunEvent::WavePlanned {
            wave: 4,
            pods: names(&["big-15", "big-16"]),
            partition: 15,
        });
        let lines = board.pod_lines();
        assert_eq!(lines.len(), 1 + MAX_POD_ROWS + 1, "{lines:#?}");
        let shown = |name: &str| lines.iter().any(|l| l.starts_with(&format!("{name} ")));
        assert!(
            shown("big-15") && shown("big-16") && shown("big-17"),
            "{lines:#?}"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("… 8 more pods: 0 new, 8 old")
        );
        let order: Vec<&str> = lines[1..=MAX_POD_ROWS]
            .iter()
            .filter_map(|l| l.split(' ').next())
            .collect();
        let mut sorted = order.clone();
        sorted.sort_by_key(|n| ordinal_key(n));
        assert_eq!(order, sorted);
    }

    #[test]
    fn the_headline_tells_the_time_left_from_the_pods_updated_so_far() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut board = Board::default();
        let events = seed_wave_one();
        for event in &events {
            board.apply_at(event, t0);
        }
        assert_eq!(board.remaining(), None, "nothing observed yet");
        // The wave's pod comes up 10 s after the wave began: two old pods are left.
        board.apply_at(
            &RunEvent::PodUpdated {
                pod: "sample-1".into(),
                revision: "rev-new".into(),
            },
            t0 + s(10),
        );
        assert_eq!(board.remaining(), Some((s(20), s(10))));
        assert_eq!(
            board.headline(),
            "seed on default/sample · wave 1 (partition 1) · about 20.0s left (10.0s a pod so far)"
        );
        // A repeated announcement is not a second pod.
        board.apply_at(
            &RunEvent::PodUpdated {
                pod: "sample-1".into(),
                revision: "rev-new".into(),
            },
            t0 + s(50),
        );
        assert_eq!(board.remaining(), Some((s(20), s(10))));
        // The next wave: its pod takes 30 s, the mean is 20 s, one pod is left.
        board.apply_at(
            &RunEvent::WavePlanned {
                wave: 2,
                pods: names(&["sample-0"]),
                partition: 0,
            },
            t0 + s(60),
        );
        board.apply_at(
            &RunEvent::PodUpdated {
                pod: "sample-0".into(),
                revision: "rev-new".into(),
            },
            t0 + s(90),
        );
        assert_eq!(board.remaining(), Some((s(20), s(20))));
    }

    #[test]
    fn one_hidden_pod_is_one_pod() {
        let pods: Vec<PodRow> = (0..=MAX_POD_ROWS)
            .map(|i| pod(&format!("big-{i}"), "working", false, true))
            .collect();
        let mut board = Board::default();
        board.apply(&RunEvent::Pods { pods });
        assert_eq!(
            board.pod_lines().last().map(String::as_str),
            Some("… 1 more pod: 0 new, 1 old")
        );
    }

    #[test]
    fn clocks_stay_short() {
        let cases = [
            (Duration::from_millis(4_230), "4.2s"),
            (Duration::from_secs(65), "1m05s"),
            (Duration::from_secs(3_720), "1h02m"),
        ];
        for (elapsed, want) in cases {
            assert_eq!(clock(elapsed), want);
        }
    }
}
