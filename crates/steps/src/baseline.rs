//! What `verify` compares against: the pods that were working when a wave began, kept in
//! `query-arbiter`'s output (SPEC §1 step 3.6). Only the fields the judgement reads are
//! kept (uid, revision, restarts, selected, terminating), and a wave's baseline is written
//! as the difference from the previous wave's (a handover moves a few pods, an update
//! changes a few revisions), with a complete one every [`MAX_DEPTH`] + 1 waves. So the
//! run's state grows with the pods that changed, not with waves × pods, and a resumed run
//! rebuilds any wave's baseline from the outputs it already has.

use std::collections::BTreeMap;

use baton_engine::dag::{StepId, StepKind};
use baton_engine::snapshot::{ArbiterView, PodView, Role, Snapshot};
use baton_engine::step::StepContext;
use serde::{Deserialize, Serialize};

use crate::env::{QueryOutput, output};
use crate::k8s::ordinal_of;

/// The longest chain of differences before a baseline is written complete again.
pub const MAX_DEPTH: u32 = 24;

/// One pod working when the wave began, as the judgement needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingPod {
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub selected: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub terminating: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A wave's baseline as persisted: complete (`base` absent) or the difference from the
/// baseline of wave `base`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u32>,
    /// How many differences lie between this baseline and a complete one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// Working pods new to the base or changed since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<WorkingPod>,
    /// Pods of the base that do not work any more (or are gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
}

/// The working pods of a snapshot, by name: pods that exist and the arbiter calls working.
pub fn working_pods(s: &Snapshot) -> BTreeMap<String, WorkingPod> {
    s.pods
        .iter()
        .filter(|p| s.arbiter.role_of(&p.name) == Some(Role::Working))
        .map(|p| {
            (
                p.name.clone(),
                WorkingPod {
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                    revision: p.revision.clone(),
                    restarts: p.restarts,
                    selected: p.selected,
                    terminating: p.terminating,
                },
            )
        })
        .collect()
}

/// The baseline to persist for `wave`, given its working pods: the difference from the
/// latest earlier wave's baseline when that is resolvable, short and not too deep.
pub fn encode(ctx: &StepContext, wave: u32, now: &BTreeMap<String, WorkingPod>) -> Baseline {
    let complete = || Baseline {
        pods: now.values().cloned().collect(),
        ..Baseline::default()
    };
    let Some((base_wave, base_depth)) = latest_before(ctx, wave) else {
        return complete();
    };
    if base_depth >= MAX_DEPTH {
        return complete();
    }
    let Ok(base) = resolve(ctx, base_wave) else {
        return complete();
    };
    let pods: Vec<WorkingPod> = now
        .iter()
        .filter(|(name, p)| base.get(*name) != Some(*p))
        .map(|(_, p)| p.clone())
        .collect();
    let gone: Vec<String> = base
        .keys()
        .filter(|name| !now.contains_key(*name))
        .cloned()
        .collect();
    if 2 * (pods.len() + gone.len()) >= now.len().max(1) {
        return complete();
    }
    Baseline {
        base: Some(base_wave),
        depth: base_depth + 1,
        pods,
        gone,
    }
}

/// The latest wave before `wave` whose query output is there, with its baseline's depth.
fn latest_before(ctx: &StepContext, wave: u32) -> Option<(u32, u32)> {
    ctx.outputs
        .iter()
        .filter(|(id, _)| id.kind == StepKind::QueryArbiter && id.wave.is_some_and(|w| w < wave))
        .max_by_key(|(id, _)| id.wave)
        .and_then(|(id, v)| {
            let q = QueryOutput::deserialize(&**v).ok()?;
            Some((id.wave?, q.private.baseline.depth))
        })
}

/// Why a wave's baseline cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    #[error("the output of wave {0}'s query-arbiter step is missing or unreadable")]
    Missing(u32),
    #[error("wave {wave}'s baseline refers to wave {base}, which is not an earlier wave")]
    BadBase { wave: u32, base: u32 },
}

/// The working pods of `wave`'s baseline, rebuilt along its chain of differences.
pub fn resolve(
    ctx: &StepContext,
    wave: u32,
) -> Result<BTreeMap<String, WorkingPod>, BaselineError> {
    let mut chain = Vec::new();
    let mut at = wave;
    loop {
        let q: QueryOutput = output(ctx, &StepId::in_wave(at, StepKind::QueryArbiter))
            .ok_or(BaselineError::Missing(at))?;
        let base = q.private.baseline.base;
        chain.push(q.private.baseline);
        match base {
            None => break,
            Some(b) if b < at && chain.len() <= MAX_DEPTH as usize + 1 => at = b,
            Some(b) => return Err(BaselineError::BadBase { wave: at, base: b }),
        }
    }
    let mut pods = BTreeMap::new();
    for b in chain.into_iter().rev() {
        for name in b.gone {
            pods.remove(&name);
        }
        for p in b.pods {
            pods.insert(p.name.clone(), p);
        }
    }
    Ok(pods)
}

/// The snapshot the judgement compares against: the baseline's pods, all working, under
/// the arbiter epoch of the wave's query. Fields the judgement does not read are left at
/// neutral values.
pub fn snapshot(
    sts: &baton_engine::snapshot::StsView,
    epoch: u64,
    pods: BTreeMap<String, WorkingPod>,
) -> Snapshot {
    let members = pods.keys().map(|n| (n.clone(), Role::Working)).collect();
    Snapshot {
        sts: sts.clone(),
        pods: pods
            .into_values()
            .map(|p| PodView {
                ordinal: ordinal_of(&p.name, &sts.name).unwrap_or(0),
                name: p.name,
                uid: p.uid,
                revision: p.revision,
                ready: true,
                terminating: p.terminating,
                lifecycle_state: None,
                role_label: None,
                selected: p.selected,
                restarts: p.restarts,
                not_ready_reason: None,
            })
            .collect(),
        arbiter: ArbiterView { epoch, members },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use baton_engine::step::{BoxFuture, Journal};
    use serde_json::json;

    struct NoJournal;
    impl Journal for NoJournal {
        fn intend(
            &self,
            _: &StepId,
            _: Vec<baton_engine::step::AuditWrite>,
        ) -> Result<Vec<baton_engine::step::IntentId>, baton_engine::step::JournalError> {
            Ok(Vec::new())
        }
        fn settle(
            &self,
            _: Vec<(
                baton_engine::step::IntentId,
                baton_engine::step::WriteOutcome,
            )>,
        ) -> Result<(), baton_engine::step::JournalError> {
            Ok(())
        }
        fn emit(&self, _: baton_engine::event::RunEvent) {}
        fn wait_approval(
            &self,
            _: StepId,
        ) -> BoxFuture<
            'static,
            Result<baton_engine::step::Approval, baton_engine::step::JournalError>,
        > {
            Box::pin(async { Err(baton_engine::step::JournalError("none".into())) })
        }
    }

    fn pod(i: u32, rev: &str) -> WorkingPod {
        WorkingPod {
            name: format!("s-{i}"),
            uid: format!("u{i}"),
            revision: Some(rev.into()),
            restarts: 0,
            selected: false,
            terminating: false,
        }
    }

    fn ctx(outputs: &BTreeMap<StepId, Arc<serde_json::Value>>, wave: u32) -> StepContext {
        StepContext {
            run_id: "r".into(),
            step: StepId::in_wave(wave, StepKind::QueryArbiter),
            attempt: 1,
            outputs: Arc::new(outputs.clone()),
            journal: Arc::new(NoJournal),
            cancel: Default::default(),
        }
    }

    fn record(outputs: &mut BTreeMap<StepId, Arc<serde_json::Value>>, wave: u32, b: &Baseline) {
        let q = QueryOutput {
            epoch: u64::from(wave),
            working: 0,
            idle: 0,
            min_working: 1,
            private: crate::env::QueryPrivate {
                baseline: b.clone(),
            },
        };
        outputs.insert(
            StepId::in_wave(wave, StepKind::QueryArbiter),
            Arc::new(serde_json::to_value(q).expect("json")),
        );
    }

    #[test]
    fn each_wave_stores_what_changed_and_rebuilds_the_whole_baseline() {
        let mut outputs = BTreeMap::new();
        // 100 working pods; each wave one pod's revision changes and one pod stops working.
        let mut working: BTreeMap<String, WorkingPod> = (0..100)
            .map(|i| pod(i, "old"))
            .map(|p| (p.name.clone(), p))
            .collect();
        let mut sizes = Vec::new();
        for wave in 1..=60u32 {
            let b = encode(&ctx(&outputs, wave), wave, &working);
            sizes.push(serde_json::to_vec(&b).expect("json").len());
            if wave == 1 || wave % (MAX_DEPTH + 1) == 1 {
                assert_eq!(b.base, None, "wave {wave} is complete");
            } else {
                assert_eq!(b.base, Some(wave - 1), "wave {wave}");
            }
            record(&mut outputs, wave, &b);
            assert_eq!(resolve(&ctx(&outputs, wave), wave), Ok(working.clone()));
            let changed = format!("s-{wave}");
            if let Some(p) = working.get_mut(&changed) {
                p.revision = Some("new".into());
                p.restarts += 1;
            }
            working.remove(&format!("s-{}", 99 - wave));
        }
        let full = sizes[0];
        let deltas = sizes.iter().filter(|s| **s < full / 10).count();
        assert!(
            deltas >= 55,
            "most waves store a small difference: {sizes:?}"
        );
    }

    #[test]
    fn a_missing_base_is_an_error_and_a_new_baseline_is_then_complete() {
        let mut outputs = BTreeMap::new();
        let working: BTreeMap<String, WorkingPod> = (0..10)
            .map(|i| pod(i, "old"))
            .map(|p| (p.name.clone(), p))
            .collect();
        let b1 = encode(&ctx(&outputs, 1), 1, &working);
        record(&mut outputs, 1, &b1);
        let b2 = encode(&ctx(&outputs, 2), 2, &working);
        assert_eq!(b2.base, Some(1));
        record(&mut outputs, 2, &b2);
        outputs.remove(&StepId::in_wave(1, StepKind::QueryArbiter));
        assert_eq!(
            resolve(&ctx(&outputs, 2), 2),
            Err(BaselineError::Missing(1))
        );
        outputs.insert(
            StepId::in_wave(1, StepKind::QueryArbiter),
            Arc::new(json!({"garbage": true})),
        );
        let b3 = encode(&ctx(&outputs, 3), 3, &working);
        assert_eq!(b3.base, None);
    }
}
