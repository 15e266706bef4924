//! `set-partition`: rank `baton.dev/selected=true` first in the ASTS priority strategy
//! (other terms kept), then set `partition = |P| - |U ∪ S|` from
//! [`baton_engine::decide::partition_for`], the one place that arithmetic lives: every pod
//! that is neither updated nor selected keeps the old revision.

use std::collections::BTreeMap;

use baton_engine::dag::StepKind;
use baton_engine::snapshot::{PodView, Snapshot};
use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::{Value, json};

use crate::env::{Env, SelectOutput, to_value, wave_output};
use crate::patch::priority_patch;

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let select: SelectOutput = wave_output(ctx, StepKind::Select).ok_or_else(|| {
        StepError::failed("set-partition needs the output of this wave's select step")
    })?;
    // The update revision must be trusted before counting U.
    super::wait::observed_revision(env, ctx).await?;
    let live = env.live().await?;
    let target = baton_engine::decide::partition_for(&live.snapshot, &select.select).ok_or_else(|| {
        StepError::retryable(
            "the controller has not observed the latest generation; the update revision is unknown",
        )
    })?;
    let mut sts = live.sts;
    let current = sts
        .rolling_update()
        .and_then(|r| r.unordered_update.clone());
    let desired = crate::patch::desired_unordered(current.as_ref())?;
    let old_pods: Vec<(String, BTreeMap<String, String>)> = live
        .pods
        .iter()
        .filter_map(|p| {
            Some((
                p.name()?.to_owned(),
                p.labels().cloned().unwrap_or_default(),
            ))
        })
        .filter(|(name, _)| {
            live.snapshot
                .pods
                .iter()
                .any(|v| &v.name == name && !updated(&live.snapshot, v))
        })
        .collect();
    check_ranking(&desired, &old_pods, &select.select).map_err(StepError::failed)?;
    if let Some(patch) = priority_patch(&to_value(&sts))? {
        env.write_sts(ctx, "set update priority", patch, json!(current), desired)
            .await?;
        // The view shows the write already (read-your-writes).
        sts = crate::k8s::Asts::clone(&*env.view().sts().await?);
    }
    let changed = super::write_partition(env, ctx, &sts, target).await?;
    if target != select.partition {
        tracing::info!(
            planned = select.partition,
            set = target,
            "partition recomputed from the live pods"
        );
    }
    Ok(StepOutput::new(
        json!({"partition": target, "changed": changed}),
    ))
}

fn updated(s: &Snapshot, p: &PodView) -> bool {
    s.sts
        .trusted_update_revision()
        .is_some_and(|want| p.revision.as_deref() == Some(want))
}

/// Kruise updates the old pods with the highest summed `weightPriority` first, ties going to
/// the higher ordinal. The wave is safe only if every selected pod outweighs every other
/// old pod strictly; other terms of the operator's could otherwise lift a working pod into
/// the wave. `old_pods` are the labels of the pods not yet updated.
pub fn check_ranking(
    unordered: &Value,
    old_pods: &[(String, BTreeMap<String, String>)],
    selected: &[String],
) -> Result<(), String> {
    let terms = unordered
        .pointer("/priorityStrategy/weightPriority")
        .and_then(Value::as_array);
    let weight = |labels: &BTreeMap<String, String>| -> i64 {
        terms
            .into_iter()
            .flatten()
            .filter(|t| {
                t.get("matchSelector")
                    .is_some_and(|sel| crate::k8s::selector_matches(sel, labels))
            })
            .filter_map(|t| t.get("weight").and_then(Value::as_i64))
            .sum()
    };
    let (chosen, others): (Vec<_>, Vec<_>) =
        old_pods.iter().partition(|(n, _)| selected.contains(n));
    let lightest = chosen.iter().map(|(n, l)| (weight(l), n)).min();
    let heaviest = others.iter().map(|(n, l)| (weight(l), n)).max();
    match (lightest, heaviest) {
        (Some((lw, ln)), Some((hw, hn))) if hw >= lw => Err(format!(
            "the statefulset's update priorities rank {hn} (weight {hw}) at or above the selected pod {ln} \
             (weight {lw}); Kruise could update {hn} instead; lower the other weightPriority terms"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(spec: &[(&str, &[(&str, &str)])]) -> Vec<(String, BTreeMap<String, String>)> {
        spec.iter()
            .map(|(n, ls)| {
                (
                    (*n).to_owned(),
                    ls.iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_wave_must_outweigh_every_other_old_pod_strictly() {
        let seed = json!({"priorityStrategy": {"weightPriority": [
            {"weight": 100, "matchSelector": {"matchLabels": {"baton.dev/selected": "true"}}},
            {"weight": 50, "matchSelector": {"matchLabels": {"working": "false"}}},
            {"weight": 30, "matchSelector": {"matchLabels": {"working": "true"}}}]}});
        let heavy = json!({"priorityStrategy": {"weightPriority": [
            {"weight": 100, "matchSelector": {"matchLabels": {"baton.dev/selected": "true"}}},
            {"weight": 100, "matchSelector": {"matchLabels": {"zone": "a"}}},
            {"weight": 100, "matchSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}]}});
        let wave = pods(&[
            (
                "sample-0",
                &[("working", "true"), ("zone", "a"), ("tier", "db")],
            ),
            (
                "sample-1",
                &[("working", "false"), ("baton.dev/selected", "true")],
            ),
            ("sample-2", &[("working", "false")]),
        ]);
        let selected = vec!["sample-1".to_owned()];
        assert_eq!(check_ranking(&seed, &wave, &selected), Ok(()));
        let err = check_ranking(&heavy, &wave, &selected).unwrap_err();
        assert!(
            err.contains("sample-0 (weight 200)") && err.contains("sample-1 (weight 100)"),
            "{err}"
        );
        assert_eq!(check_ranking(&json!({}), &wave, &[]), Ok(()));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("app".to_owned(), "x".to_owned())].into();
        let cases = [
            (json!({"matchLabels": {"app": "x"}}), true),
            (json!({"matchLabels": {"app": "y"}}), false),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "z"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "gone", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Bogus", "values": ["x"]}]}),
                false,
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(crate::k8s::selector_matches(&sel, &labels), want, "{sel}");
        }
    }
}
