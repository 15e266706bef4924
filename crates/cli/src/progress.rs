//! Progress of a run, fed by the engine's event stream: one plain line per meaningful
//! event on stderr, or one JSON object per line on stdout with `--output json`. On a
//! terminal the same lines scroll above a live display of the wave and its pods
//! (`live`), which is erased when the run ends.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use baton_engine::event::{PodRow, RunEvent};
use tokio::sync::broadcast;

mod live;

use self::live::LiveDisplay;
pub use self::live::QuietControlChars;

/// Prints events until the channel closes; returns the last pod table seen.
pub async fn follow(
    mut events: broadcast::Receiver<RunEvent>,
    json: bool,
    verbose: bool,
) -> Option<Vec<PodRow>> {
    let mut last_pods = None;
    if !json && crate::printer::live_wanted() {
        let mut display = LiveDisplay::start(crate::printer::color_enabled());
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let RunEvent::Pods { pods } = &event {
                        last_pods = Some(pods.clone());
                    }
                    if let Some(line) = describe(&event, verbose) {
                        crate::printer::err(line);
                    }
                    display.update(&event);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    crate::printer::err(format!("  … {n} progress events skipped"));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    display.finish();
                    return last_pods;
                }
            }
        }
    }
    loop {
        match events.recv().await {
            Ok(event) => {
                if let RunEvent::Pods { pods } = &event {
                    last_pods = Some(pods.clone());
                }
                if json {
                    if let Ok(line) = serde_json::to_string(&event) {
                        crate::printer::out(line);
                    }
                } else if let Some(line) = describe(&event, verbose) {
                    eprintln!("{line}");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                if !json {
                    eprintln!("  … {n} progress events skipped");
                }
            }
            Err(broadcast::error::RecvError::Closed) => return last_pods,
        }
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
        RunEvent::SafetyStop { step, reason } => format!("SAFETY STOP at {step}: {reason}"),
        RunEvent::Warning { message } => format!("warning: {message}"),
        RunEvent::RunFinished { run, outcome } => format!("run {run}: {outcome}"),
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
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
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
        .collect::<Vec<_>>()
        .join("\n")
}
