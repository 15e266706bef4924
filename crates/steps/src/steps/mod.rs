//! One module per node of the rollout DAG (SPEC §1). Each step re-reads the cluster and
//! the arbiter, computes its target with the pure decision core or a pure patch
//! builder, and writes absolute values, so running it twice converges on one effect.

pub mod apply_update;
pub mod finalize;
pub mod handover;
pub mod hooks;
pub mod protect;
pub mod query_arbiter;
pub mod relabel;
pub mod rollback;
pub mod select;
pub mod set_partition;
pub mod verify;
pub mod wait;
pub mod wait_updated;
pub mod window;

use std::collections::BTreeMap;

use baton_engine::step::{StepContext, StepError};
use serde_json::json;

use crate::env::{Env, Object, Write, to_value};
use crate::k8s::{Asts, Live, SELECTED_LABEL};
use crate::patch::{label_patch, partition_patch};

/// Sets the partition to `target` unless it already is; true when it wrote.
pub async fn write_partition(
    env: &Env,
    ctx: &StepContext,
    sts: &Asts,
    target: u32,
) -> Result<bool, StepError> {
    let Some(patch) = partition_patch(&to_value(sts), target) else {
        return Ok(false);
    };
    env.write_sts(
        ctx,
        "set partition",
        patch,
        json!(sts.partition()),
        json!(target),
    )
    .await?;
    Ok(true)
}

/// Which pods carry `baton.dev/selected`.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// Exactly these pods.
    Exactly(&'a [String]),
    /// Leave the selection labels as they are.
    Keep,
}

/// Makes every pod's role label match the arbiter and applies `selection`, patching only
/// pods that differ. Pods the arbiter does not list keep their role label. Returns the
/// patched pods.
pub async fn relabel_pods(
    env: &Env,
    ctx: &StepContext,
    live: &Live,
    selection: Selection<'_>,
) -> Result<Vec<String>, StepError> {
    let mut writes = Vec::new();
    for pod in &live.pods {
        let Some(name) = pod.name() else {
            continue;
        };
        let desired = desired_labels(env, live, name, selection);
        // Most pods already match: skip building their JSON document.
        if desired.iter().all(|(k, v)| pod.label(k) == v.as_ref()) {
            continue;
        }
        // What the patch builder reads: the labels, and the version a new label is guarded by.
        let doc = json!({"metadata": {
            "labels": pod.labels(),
            "resourceVersion": pod.resource_version(),
        }});
        let Some(patch) = label_patch(&doc, &desired) else {
            continue;
        };
        let before: BTreeMap<&String, Option<&String>> =
            desired.keys().map(|k| (k, pod.label(k))).collect();
        writes.push(Write {
            object: Object::Pod(name.to_owned()),
            action: "patch labels".to_owned(),
            patch,
            before: json!(before),
            after: json!(desired),
        });
    }
    let patched: Vec<String> = writes
        .iter()
        .filter_map(|w| match &w.object {
            Object::Pod(p) => Some(p.clone()),
            Object::Sts => None,
        })
        .collect();
    env.write_all(ctx, writes).await?;
    tracing::debug!(pods = ?patched, "relabelled");
    Ok(patched)
}

/// The labels one pod should carry: `Some` to set, `None` to remove.
pub fn desired_labels(
    env: &Env,
    live: &Live,
    pod: &str,
    selection: Selection<'_>,
) -> BTreeMap<String, Option<String>> {
    let mut desired = BTreeMap::new();
    if let Some(role) = live.snapshot.arbiter.members.get(pod) {
        desired.insert(
            env.plan.spec().roles.label.clone(),
            Some(env.role_value(*role).to_owned()),
        );
    }
    if let Selection::Exactly(s) = selection {
        let on = s.iter().any(|p| p == pod);
        desired.insert(SELECTED_LABEL.to_owned(), on.then(|| "true".to_owned()));
    }
    desired
}
