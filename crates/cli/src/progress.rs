//! Progress of a run, fed by the engine's event stream: one plain line per meaningful
//! event on stderr, or one JSON object per line on stdout with `--output json`. On a
//! terminal the same lines scroll above a live display of the wave and its pods
//! (`live`), which is erased when the run ends.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;

use baton_engine::event::{PodRow, RunEvent};
use tokio::sync::broadcast;

mod live;

use self::live::LiveDisplay;
pub use self::live::QuietEcho;
pub(crate) use self::live::columns;

/// Prints events until the channel closes; returns the pods as the events last showed
/// them, for the summary table.
pub async fn follow(
    mut events: broadcast::Receiver<RunEvent>,
    json: bool,
    verbose: bool,
) -> Option<Vec<PodRow>> {
    let mut last_pods = LastPods::default();
    let mut stops = StopsShown::default();
    if !json && crate::printer::live_wanted() {
        let mut display = LiveDisplay::start(crate::printer::color_enabled());
        loop {
            match events.recv().await {
                Ok(event) => {
                    last_pods.apply(&event);
                    if stops.first(&event)
                        && let Some(line) = describe(&event, verbose)
                    {
                        crate::printer::err(line);
                    }
                    display.update(&event);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    crate::printer::err(format!("  … {n} progress events skipped"));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    display.finish();
                    return last_pods.into_rows();
                }
            }
        }
    }
    // Piped: a wait is told once it has lasted WAIT_PATIENCE unchanged, so a pod that is
    // ready a moment later costs no line, and a stuck wave says what holds it without -v.
    let mut wait = PendingWait::default();
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            () = wait.due() => {
                if !json && !crate::printer::is_quiet() && let Some(line) = wait.take() {
                    eprintln!("{line}");
                }
                continue;
            }
        };
        match received {
            Ok(event) => {
                last_pods.apply(&event);
                if !verbose {
                    wait.apply(&event);
                }
                if json {
                    if let Ok(line) = serde_json::to_string(&event) {
                        crate::printer::out(line);
                    }
                } else if !crate::printer::is_quiet()
                    && stops.first(&event)
                    && let Some(line) = describe(&event, verbose)
                {
                    eprintln!("{line}");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                if !json {
                    eprintln!("  … {n} progress events skipped");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return last_pods.into_rows(),
        }
    }
}

/// The steps whose safety stop has been told. The step announces its stop the moment it
/// freezes the rollout, and the executor announces it again when it records the step's
/// failure (every other kind of failure is announced by the executor alone); an operator
/// needs it once.
#[derive(Default)]
struct StopsShown(std::collections::BTreeSet<String>);

impl StopsShown {
    /// `false` for a safety stop of a step already told; `true` for anything else.
    fn first(&mut self, event: &RunEvent) -> bool {
        match event {
            RunEvent::SafetyStop { step, .. } => self.0.insert(step.clone()),
            _ => true,
        }
    }
}

/// The line that tells a safety stop, without the reason's own "safety stop, " prefix.
pub fn safety_stop_line(step: &str, reason: &str) -> String {
    let reason = reason.strip_prefix("safety stop, ").unwrap_or(reason);
    format!("SAFETY STOP at {step}: {reason}")
}

/// How long a wait must last, unchanged, before a piped run prints it.
const WAIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The latest wait of a piped run not yet printed.
#[derive(Default)]
struct PendingWait {
    pending: Option<(String, String, tokio::time::Instant)>,
    printed: Option<(String, String)>,
}

impl PendingWait {
    fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Waiting { step, what } => {
                let told = self.printed.as_ref() == Some(&(step.clone(), what.clone()));
                self.pending = (!told).then(|| {
                    (
                        step.clone(),
                        what.clone(),
                        tokio::time::Instant::now() + WAIT_PATIENCE,
                    )
                });
            }
            RunEvent::StepFinished { step, .. } | RunEvent::StepFailed { step, .. }
                if self.pending.as_ref().is_some_and(|(s, _, _)| s == step) =>
            {
                self.pending = None;
            }
            _ => {}
        }
    }

    /// Resolves when the pending wait is due; never while there is none.
    async fn due(&self) {
        match &self.pending {
            Some((_, _, at)) => tokio::time::sleep_until(*at).await,
            None => std::future::pending().await,
        }
    }

    fn take(&mut self) -> Option<String> {
        let (step, what, _) = self.pending.take()?;
        let line = format!("  {step}: waiting for {}", abridge(&what));
        self.printed = Some((step, what));
        Some(line)
    }
}

/// At most five of the `; `-separated reasons, and how many more there are.
fn abridge(what: &str) -> String {
    let parts: Vec<&str> = what.split("; ").collect();
    if parts.len() <= 5 {
        return what.to_owned();
    }
    format!("{}; … and {} more", parts[..5].join("; "), parts.len() - 5)
}

/// The pod table as of the latest event: the last `pods` list, with the pods updated
/// and the roles handed over since then applied to it, so a run that stops between two
/// lists (interrupted, aborted, failed) does not end on a table that is out of date.
#[derive(Debug, Default)]
struct LastPods {
    rows: Option<Vec<PodRow>>,
    /// The image each revision was seen with, to fill in pods updated since the last list.
    images: BTreeMap<String, String>,
}

impl LastPods {
    fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Pods { pods } => {
                for pod in pods {
                    if let (Some(revision), Some(image)) = (&pod.revision, &pod.image) {
                        self.images.insert(revision.clone(), image.clone());
                    }
                }
                self.rows = Some(pods.clone());
            }
            RunEvent::PodUpdated { pod, revision } => {
                let image = self.images.get(revision).cloned();
                if let Some(row) = self.row(pod) {
                    row.revision = Some(revision.clone());
                    // The image of the new revision, when it has been seen; else unknown.
                    row.image = image;
                    row.updated = true;
                    row.ready = true;
                }
            }
            RunEvent::Handover {
                promote, demote, ..
            } => {
                for (pods, role) in [(promote, "working"), (demote, "idle")] {
                    for pod in pods {
                        if let Some(row) = self.row(pod) {
                            row.role = Some(role.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn row(&mut self, pod: &str) -> Option<&mut PodRow> {
        self.rows.as_mut()?.iter_mut().find(|row| row.name == pod)
    }

    fn into_rows(self) -> Option<Vec<PodRow>> {
        self.rows
    }
}

/// One human line for an event, or `None` for events only shown with `-v`.
pub fn describe(event: &RunEvent, verbose: bool) -> Option<String> {
    let line = match event {
        RunEvent::RunStarted { run, target, .. } => format!("run {run}: upgrading {target}"),
        RunEvent::StepStarted { step, attempt } if verbose || *attempt > 1 => {
            if *attempt > 1 {
                format!("  {step}: attempt {attempt}")
            } else {
                format!("  {step}: started")
            }
        }
        RunEvent::StepFinished { step, ms } if verbose => format!("  {step}: done in {ms} ms"),
        RunEvent::StepFailed {
            step,
            error,
            retrying,
        } => {
            if *retrying {
                format!("  {step}: {error} (retrying)")
            } else {
                format!("  {step}: failed: {error}")
            }
        }
        RunEvent::WavePlanned {
            wave,
            pods,
            partition,
        } => {
            format!(
                "wave {wave}: updating {} (partition {partition})",
                list(pods)
            )
        }
        RunEvent::PodUpdated { pod, revision } => format!("  {pod} updated to {revision}"),
        RunEvent::Waiting { step, what } if verbose => format!("  {step}: waiting for {what}"),
        RunEvent::Handover {
            wave,
            promote,
            demote,
            epoch,
        } => format!(
            "wave {wave}: handover promoted {}, demoted {} (arbiter epoch {epoch})",
            list(promote),
            list(demote)
        ),
        RunEvent::SafetyStop { step, reason } => safety_stop_line(step, reason),
        RunEvent::RollbackStarted { step, reason, wave } => format!(
            "ROLLBACK after {step} (wave {wave}): {reason}; going back to the old template, \
             standby-first"
        ),
        RunEvent::Warning { message } => format!("warning: {message}"),
        RunEvent::RunFinished { run, outcome } => {
            // The JSON event keeps the camelCase name; a person reads words.
            let outcome = match outcome.as_str() {
                "safetyStopped" => "safety stop",
                "rolledBack" => "rolled back",
                other => other,
            };
            format!("run {run}: {outcome}")
        }
        _ => return None,
    };
    Some(line)
}

fn list(pods: &[String]) -> String {
    if pods.is_empty() {
        "no pods".to_owned()
    } else {
        pods.join(", ")
    }
}

/// The seed-style table: pod, role, image, revision, ready.
pub fn pod_table(pods: &[PodRow]) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "ROLE".to_owned(),
        "IMAGE".to_owned(),
        "REVISION".to_owned(),
        "READY".to_owned(),
    ]];
    for pod in pods {
        rows.push([
            pod.name.clone(),
            pod.role.clone().unwrap_or_else(|| "-".to_owned()),
            pod.image.clone().unwrap_or_else(|| "-".to_owned()),
            pod.revision.clone().unwrap_or_else(|| "-".to_owned()),
            if pod.ready { "true" } else { "false" }.to_owned(),
        ]);
    }
    live::columns(&rows).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, role: &str, revision: &str, image: &str) -> PodRow {
        PodRow {
            name: name.to_owned(),
            role: Some(role.to_owned()),
            revision: Some(revision.to_owned()),
            image: Some(image.to_owned()),
            ready: true,
            updated: revision == "new",
        }
    }

    #[test]
    fn the_summary_table_takes_in_pods_updated_and_roles_handed_over_after_the_last_list() {
        let first = vec![
            row("p-0", "working", "old", "app:1"),
            row("p-1", "idle", "old", "app:1"),
        ];
        let cases: Vec<(Vec<RunEvent>, Vec<PodRow>)> = vec![
            (
                vec![
                    RunEvent::Pods {
                        pods: first.clone(),
                    },
                    RunEvent::PodUpdated {
                        pod: "p-1".into(),
                        revision: "new".into(),
                    },
                ],
                vec![
                    row("p-0", "working", "old", "app:1"),
                    PodRow {
                        image: None,
                        ..row("p-1", "idle", "new", "-")
                    },
                ],
            ),
            (
                vec![
                    RunEvent::Pods {
                        pods: vec![
                            row("p-0", "working", "old", "app:1"),
                            row("p-1", "idle", "new", "app:2"),
                        ],
                    },
                    RunEvent::Handover {
                        wave: 1,
                        promote: vec!["p-1".into()],
                        demote: vec!["p-0".into()],
                        epoch: 3,
                    },
                    RunEvent::PodUpdated {
                        pod: "p-0".into(),
                        revision: "new".into(),
                    },
                ],
                vec![
                    row("p-0", "idle", "new", "app:2"),
                    row("p-1", "working", "new", "app:2"),
                ],
            ),
        ];
        for (events, want) in cases {
            let mut last = LastPods::default();
            for event in &events {
                last.apply(event);
            }
            assert_eq!(last.into_rows(), Some(want), "{events:?}");
        }
    }

    #[test]
    fn a_safety_stop_announced_by_the_step_and_the_executor_is_told_once() {
        let step = "wave-1/wait-updated";
        let events = [
            RunEvent::SafetyStop {
                step: step.into(),
                reason: "working pod sample-2 was deleted".into(),
            },
            RunEvent::SafetyStop {
                step: step.into(),
                reason: "safety stop, the rollout is frozen (partition = 5): working pod sample-2 was deleted".into(),
            },
            RunEvent::RunFinished {
                run: "r".into(),
                outcome: "safetyStopped".into(),
            },
        ];
        let mut stops = StopsShown::default();
        let told: Vec<String> = events
            .iter()
            .filter(|e| stops.first(e))
            .filter_map(|e| describe(e, false))
            .collect();
        assert_eq!(
            told,
            [
                "SAFETY STOP at wave-1/wait-updated: working pod sample-2 was deleted",
                "run r: safety stop",
            ]
        );
        assert_eq!(
            safety_stop_line(
                step,
                "safety stop, the rollout is frozen (partition = 5): x"
            ),
            "SAFETY STOP at wave-1/wait-updated: the rollout is frozen (partition = 5): x"
        );
    }

    #[test]
    fn no_pod_list_means_no_summary_table() {
        let mut last = LastPods::default();
        last.apply(&RunEvent::PodUpdated {
            pod: "p-0".into(),
            revision: "new".into(),
        });
        assert_eq!(last.into_rows(), None);
    }
}
