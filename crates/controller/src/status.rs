//! What an UpgradePlan's `status` says, computed from the run's view: pure, table-tested.
//! The driver ([`crate::drive`]) sends it when it changes (at most about once a second).

use baton_engine::event::RunEvent;
use baton_engine::store::{RunState, RunView};
use serde_json::{Value, json};

use crate::store::Checkpoint;

/// `status.phase` values (the contract's list).
pub mod phase {
    pub const PENDING: &str = "Pending";
    pub const RUNNING: &str = "Running";
    pub const WAITING_FOR_APPROVAL: &str = "WaitingForApproval";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const SAFETY_STOPPED: &str = "SafetyStopped";
    pub const ABORTED: &str = "Aborted";
    pub const INTERRUPTED: &str = "Interrupted";
    pub const ROLLED_BACK: &str = "RolledBack";
}

/// Phases after which the controller starts nothing for the plan: the run ended, or stopped
/// in a way only an operator may continue.
pub fn is_settled(phase: &str) -> bool {
    matches!(
        phase,
        phase::SUCCEEDED
            | phase::FAILED
            | phase::SAFETY_STOPPED
            | phase::ABORTED
            | phase::ROLLED_BACK
    )
}

/// The phase of a run in `state`; a running run waiting at a gate says so.
pub fn phase_of(state: RunState, waiting_approval: bool) -> &'static str {
    match state {
        RunState::Running if waiting_approval => phase::WAITING_FOR_APPROVAL,
        RunState::Running => phase::RUNNING,
        RunState::Succeeded => phase::SUCCEEDED,
        RunState::Failed => phase::FAILED,
        RunState::SafetyStopped => phase::SAFETY_STOPPED,
        RunState::Interrupted => phase::INTERRUPTED,
        RunState::Aborted => phase::ABORTED,
        RunState::RolledBack => phase::ROLLED_BACK,
    }
}

/// The status fields a run's view decides (the driver adds who leads, the generation and
/// the checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub phase: String,
    pub wave: Option<u32>,
    pub progress: Option<String>,
    pub message: Option<String>,
    pub run: Option<String>,
}

impl Summary {
    /// What this process saw the run end with, for when its record cannot be read back:
    /// the status must still say how it ended, never an empty phase (which the CRD refuses).
    pub fn of_outcome(
        outcome: &baton_engine::executor::Outcome,
        previous: Option<&Summary>,
    ) -> Summary {
        use baton_engine::executor::Outcome;
        let (phase, message) = match outcome {
            Outcome::Succeeded => (phase::SUCCEEDED, None),
            Outcome::AlreadyFinished { state } => (phase_of(*state, false), None),
            Outcome::Failed { step, message } => {
                (phase::FAILED, Some(format!("{step}: {message}")))
            }
            Outcome::Aborted { message } => (phase::ABORTED, Some(message.clone())),
            Outcome::SafetyStop { step, message } => {
                (phase::SAFETY_STOPPED, Some(format!("{step}: {message}")))
            }
            Outcome::Interrupted => (phase::INTERRUPTED, None),
            Outcome::RolledBack { step, message } => {
                (phase::ROLLED_BACK, Some(format!("{step}: {message}")))
            }
        };
        let previous = previous.cloned().unwrap_or_default();
        Summary {
            phase: phase.to_owned(),
            message,
            ..previous
        }
    }

    /// A plan whose run has not started (waiting for the run lock, say).
    pub fn pending(message: impl Into<String>) -> Summary {
        Summary {
            phase: phase::PENDING.to_owned(),
            message: Some(message.into()),
            ..Summary::default()
        }
    }

    /// The summary of `view`; `progress` from its pods ("updated/replicas") when it has them,
    /// else `previous`'s.
    pub fn of(view: &RunView, previous: Option<&Summary>) -> Summary {
        // A stopped run may leave a gate open; only a running one waits at it.
        let waiting = view.state == RunState::Running && !view.waiting_approval.is_empty();
        let progress = view
            .pods
            .as_ref()
            .filter(|pods| !pods.is_empty())
            .map(|pods| {
                let updated = pods.iter().filter(|p| p.updated).count();
                format!("{updated}/{}", pods.len())
            })
            .or_else(|| previous.and_then(|p| p.progress.clone()));
        let message = if waiting {
            Some(format!(
                "waiting for approval of {}: annotate the plan with baton.dev/approve",
                view.waiting_approval.join(", ")
            ))
        } else if view.state == RunState::Running {
            let waits: Vec<String> = view
                .waiting
                .iter()
                .map(|w| format!("{}: {}", w.step, w.what))
                .collect();
            (!waits.is_empty()).then(|| waits.join("; "))
        } else {
            view.reason.clone()
        };
        Summary {
            phase: phase_of(view.state, waiting).to_owned(),
            // Past the waves (the epilogue), the last wave the run had.
            // Past the waves (the epilogue), the last wave that updated pods (the run
            // learns it is done in one more wave, which plans nothing).
            wave: view
                .current_wave
                .or_else(|| {
                    view.events
                        .iter()
                        .filter_map(|e| match e.event {
                            RunEvent::WavePlanned { wave, .. } => Some(wave),
                            _ => None,
                        })
                        .max()
                })
                .or(previous.and_then(|p| p.wave)),
            progress,
            message,
            run: Some(view.run.clone()),
        }
    }
}

/// The whole `status` object sent to the API server.
pub fn document(
    summary: &Summary,
    generation: Option<i64>,
    leader: &str,
    checkpoint: Option<&Checkpoint>,
    now: jiff::Timestamp,
) -> Value {
    let mut status = json!({
        "phase": summary.phase,
        "leader": leader,
        "updated": now.to_string(),
    });
    let fields = [
        ("wave", summary.wave.map(Value::from)),
        ("progress", summary.progress.clone().map(Value::from)),
        ("message", summary.message.clone().map(Value::from)),
        ("run", summary.run.clone().map(Value::from)),
        ("observedGeneration", generation.map(Value::from)),
        (
            "checkpoint",
            checkpoint.filter(|c| !c.config_map.is_empty()).map(
                |c| json!({"configMap": c.config_map, "chunks": c.chunks, "sequence": c.sequence}),
            ),
        ),
    ];
    for (key, value) in fields {
        status[key] = value.unwrap_or(Value::Null);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_engine::event::PodRow;
    use baton_engine::store::WaitingEntry;
    use baton_engine::store::view::EventEntry;

    fn view(state: RunState) -> RunView {
        let json = json!({
            "run": "p", "state": state, "target": "ns/s", "planFile": "f", "planHash": "h",
            "planText": "t", "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z", "phase": {"phase": "wave", "wave": 2},
            "currentWave": 2, "nodes": [], "audit": [], "approvals": [], "events": []
        });
        serde_json::from_value(json).unwrap()
    }

    fn pod(updated: bool) -> PodRow {
        PodRow {
            name: "p".into(),
            role: None,
            revision: None,
            image: None,
            ready: true,
            updated,
        }
    }

    #[test]
    fn the_phase_follows_the_run_state_and_its_gates() {
        let cases = [
            (RunState::Running, false, "Running"),
            (RunState::Running, true, "WaitingForApproval"),
            (RunState::Succeeded, false, "Succeeded"),
            (RunState::Failed, false, "Failed"),
            (RunState::SafetyStopped, false, "SafetyStopped"),
            (RunState::Interrupted, false, "Interrupted"),
            (RunState::Aborted, false, "Aborted"),
            (RunState::RolledBack, false, "RolledBack"),
        ];
        for (state, gate, want) in cases {
            assert_eq!(phase_of(state, gate), want);
        }
        assert!(is_settled("Succeeded") && is_settled("Aborted"));
        assert!(!is_settled("Running") && !is_settled("Interrupted") && !is_settled("Pending"));
    }

    #[test]
    fn an_outcome_always_names_a_phase_the_crd_accepts() {
        use baton_engine::executor::Outcome;
        let step = || "wave-1/verify".to_owned();
        let cases = [
            (Outcome::Succeeded, "Succeeded"),
            (
                Outcome::AlreadyFinished {
                    state: RunState::RolledBack,
                },
                "RolledBack",
            ),
            (
                Outcome::Failed {
                    step: step(),
                    message: "x".into(),
                },
                "Failed",
            ),
            (
                Outcome::Aborted {
                    message: "x".into(),
                },
                "Aborted",
            ),
            (
                Outcome::SafetyStop {
                    step: step(),
                    message: "x".into(),
                },
                "SafetyStopped",
            ),
            (Outcome::Interrupted, "Interrupted"),
            (
                Outcome::RolledBack {
                    step: step(),
                    message: "x".into(),
                },
                "RolledBack",
            ),
        ];
        let previous = Summary {
            wave: Some(2),
            ..Summary::pending("p")
        };
        for (outcome, phase) in cases {
            let s = Summary::of_outcome(&outcome, Some(&previous));
            assert_eq!(s.phase, phase, "{outcome:?}");
            assert_eq!(s.wave, Some(2), "{outcome:?}");
        }
    }

    #[test]
    fn progress_counts_updated_pods_and_keeps_the_last_count_without_pods() {
        let mut v = view(RunState::Running);
        v.pods = Some(vec![
            pod(true),
            pod(true),
            pod(false),
            pod(true),
            pod(false),
        ]);
        let first = Summary::of(&v, None);
        assert_eq!(first.progress.as_deref(), Some("3/5"));
        assert_eq!(first.wave, Some(2));
        v.pods = None;
        assert_eq!(
            Summary::of(&v, Some(&first)).progress.as_deref(),
            Some("3/5")
        );
        v.current_wave = None;
        let planned = |seq: u64, wave: u32| EventEntry {
            seq,
            at: "2026-01-01T00:00:00Z".parse().unwrap(),
            event: RunEvent::WavePlanned {
                wave,
                pods: vec![],
                partition: 0,
            },
        };
        v.events = vec![planned(1, 2), planned(2, 3)];
        assert_eq!(
            Summary::of(&v, None).wave,
            Some(3),
            "the last wave, in the epilogue"
        );
    }

    #[test]
    fn the_message_says_what_the_run_waits_for_or_why_it_stopped() {
        let mut v = view(RunState::Running);
        v.waiting = vec![WaitingEntry {
            step: "wave-2/wait-updated".into(),
            what: "sample-1 not Ready".into(),
        }];
        assert_eq!(
            Summary::of(&v, None).message.as_deref(),
            Some("wave-2/wait-updated: sample-1 not Ready")
        );
        v.waiting_approval = vec!["wave-2/approval".into()];
        let s = Summary::of(&v, None);
        assert_eq!(s.phase, "WaitingForApproval");
        assert!(s.message.unwrap().contains("baton.dev/approve"));
        let mut failed = view(RunState::Failed);
        failed.reason = Some("wave-2/verify: boom".into());
        assert_eq!(
            Summary::of(&failed, None).message.as_deref(),
            Some("wave-2/verify: boom")
        );
        let mut aborted = view(RunState::Aborted);
        aborted.waiting_approval = vec!["wave-2/approval".into()];
        aborted.reason = Some("aborted by bob".into());
        let s = Summary::of(&aborted, None);
        assert_eq!(
            (s.phase.as_str(), s.message.as_deref()),
            ("Aborted", Some("aborted by bob")),
            "an open gate of a stopped run is not a wait"
        );
    }

    #[test]
    fn the_document_has_every_contract_field_and_nulls_the_unknown_ones() {
        let s = Summary {
            phase: "Running".into(),
            wave: Some(1),
            progress: Some("2/5".into()),
            message: None,
            run: Some("p".into()),
        };
        let cp = Checkpoint {
            config_map: "p.baton-run".into(),
            chunks: 1,
            sequence: 9,
        };
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let doc = document(&s, Some(3), "host/1", Some(&cp), now);
        assert_eq!(
            doc,
            json!({"phase": "Running", "wave": 1, "progress": "2/5", "message": null,
                   "run": "p", "observedGeneration": 3, "leader": "host/1",
                   "updated": "2026-01-01T00:00:00Z",
                   "checkpoint": {"configMap": "p.baton-run", "chunks": 1, "sequence": 9}})
        );
    }
}
