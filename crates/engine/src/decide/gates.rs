//! Per-pod gates (issue #15): which pods a wave may take, and which it may promote, once
//! the gates have answered. The answers are I/O (the steps ask HTTP, exec, Prometheus);
//! what they mean for the wave is decided here, from plain data.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::plan::{Gate, GateMoment};
use crate::snapshot::Snapshot;

use super::sets::{Sets, names};
use super::wave::{plan_handover_held, plan_wave_held, promotable};
use super::{Handover, Policy, Refusal, WaveDecision};

/// One gate's answer about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateAnswer {
    pub pod: String,
    pub gate: String,
    pub moment: GateMoment,
    pub passed: bool,
    /// What the gate said, for the operator: `HTTP 200`, `exit 1: lagging`, `0.3 <= 5`.
    pub answer: String,
}

/// Pods the gates hold back, each with why (`caught-up: HTTP 503, expected 200`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Held {
    /// Not to be selected for this wave.
    pub select: BTreeMap<String, String>,
    /// Not to be promoted in this handover.
    pub promote: BTreeMap<String, String>,
}

impl Held {
    /// The failed answers, by pod and moment; a pod failing several gates is told once per
    /// gate, in plan order.
    pub fn from_answers(answers: &[GateAnswer]) -> Held {
        let mut held = Held::default();
        for a in answers.iter().filter(|a| !a.passed) {
            let map = match a.moment {
                GateMoment::Select => &mut held.select,
                GateMoment::Promote => &mut held.promote,
            };
            let why = format!("{}: {}", a.gate, a.answer);
            map.entry(a.pod.clone())
                .and_modify(|w| {
                    w.push_str("; ");
                    w.push_str(&why);
                })
                .or_insert(why);
        }
        held
    }

    pub fn is_empty(&self) -> bool {
        self.select.is_empty() && self.promote.is_empty()
    }

    /// `refusal`, unless it only happened because gates held pods back: then say so, naming
    /// the pods and the gates' answers.
    pub(super) fn explain(&self, sets: &Sets<'_>, refusal: Refusal) -> Refusal {
        let mut pods: Vec<String> = Vec::new();
        for pod in &sets.idle_old {
            if let Some(why) = self.select.get(&pod.name) {
                pods.push(format!("{} ({why})", pod.name));
            }
        }
        for pod in promotable(sets) {
            if let Some(why) = self.promote.get(&pod.name) {
                pods.push(format!("{} ({why}, not promoted)", pod.name));
            }
        }
        if pods.is_empty() {
            refusal
        } else {
            Refusal::GatesHold { pods }
        }
    }
}

/// The gates of the plan asked at `moment`, less those the operator skips.
pub fn gates_at<'a>(
    gates: &'a [Gate],
    moment: GateMoment,
    skipped: &BTreeSet<String>,
) -> Vec<&'a Gate> {
    gates
        .iter()
        .filter(|g| g.asked_at(moment) && !skipped.contains(&g.name))
        .collect()
}

/// The pods whose select gates must be asked: `I ∩ O`, by ordinal.
pub fn select_candidates(s: &Snapshot, policy: &Policy) -> Result<Vec<String>, Refusal> {
    let sets = Sets::of(s, policy)?;
    Ok(names(&sets.idle_old))
}

/// The pods whose promote gates must be asked: the settled pods of `I ∩ U`, by ordinal.
pub fn promote_candidates(s: &Snapshot, policy: &Policy) -> Result<Vec<String>, Refusal> {
    let sets = Sets::of(s, policy)?;
    Ok(names(&promotable(&sets)))
}

/// The next wave with the pods `held` names left out: the wave takes the pods that pass.
/// [`Refusal::GatesHold`] when the gates hold every pod the wave could take.
pub fn plan_gated_wave(
    s: &Snapshot,
    policy: &Policy,
    held: &Held,
) -> Result<WaveDecision, Refusal> {
    plan_wave_held(s, policy, held)
}

/// The handover with the pods `held.promote` names left unpromoted.
pub fn plan_gated_handover(
    s: &Snapshot,
    policy: &Policy,
    held: &Held,
) -> Result<Option<Handover>, Refusal> {
    plan_handover_held(s, policy, held)
}
