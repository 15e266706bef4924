//! Run events: the one stream behind live progress, `--output json` and metrics.
//! Tags are a public schema (documented in the README): never rename one.

use serde::{Deserialize, Serialize};

/// One pod as progress displays show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRow {
    pub name: String,
    pub role: Option<String>,
    pub revision: Option<String>,
    pub image: Option<String>,
    pub ready: bool,
    pub updated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RunEvent {
    RunStarted {
        run: String,
        plan: String,
        target: String,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepFinished {
        step: String,
        ms: u64,
    },
    StepFailed {
        step: String,
        error: String,
        retrying: bool,
    },
    WavePlanned {
        wave: u32,
        pods: Vec<String>,
        partition: u32,
    },
    PodUpdated {
        pod: String,
        revision: String,
    },
    Waiting {
        step: String,
        what: String,
    },
    Handover {
        wave: u32,
        promote: Vec<String>,
        demote: Vec<String>,
        epoch: u64,
    },
    Pods {
        pods: Vec<PodRow>,
    },
    SafetyStop {
        step: String,
        reason: String,
    },
    /// `onFailure: rollback`: `step` failed in `wave`; the partition is frozen and the run
    /// now goes back to the old template, standby-first.
    RollbackStarted {
        step: String,
        reason: String,
        wave: u32,
    },
    Warning {
        message: String,
    },
    RunFinished {
        run: String,
        outcome: String,
    },
}
