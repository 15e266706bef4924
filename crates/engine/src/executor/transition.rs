//! Changes to a run's record that need no I/O.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::plan::ValidPlan;
use crate::store::{Phase, RunMeta, RunRecord, RunState};

pub(super) fn new_record(plan: &ValidPlan, run_id: &str, now: Timestamp) -> RunRecord {
    let target = &plan.spec().target;
    RunRecord {
        meta: RunMeta {
            run_id: run_id.to_owned(),
            plan: plan.source().clone(),
            target: format!("{}/{}", target.namespace, target.name),
            created_at: now,
            updated_at: now,
            state: RunState::Running,
            reason: None,
            phase: Phase::Prologue,
            phase_start: 0,
            finishing: false,
            vars: BTreeMap::new(),
            log_len: 0,
            node_count: 0,
        },
        nodes: Vec::new(),
        log: Vec::new(),
    }
}
