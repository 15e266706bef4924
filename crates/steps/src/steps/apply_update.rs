//! `apply-update`: the plan's images and template patch, merged into `spec.template`
//! locally (CRDs take no strategic-merge patch) and written whole, guarded by a `test`
//! of the old template. Skipped when the template already matches. Then waits for the
//! controller to observe it and records the resulting `updateRevision`.

use std::collections::BTreeMap;

use baton_engine::step::{StepContext, StepError, StepOutput};
use serde_json::{Value, json};

use crate::env::{ApplyOutput, Env, to_value};
use crate::patch::{template_patch, updated_template};

pub async fn run(env: &Env, ctx: &StepContext) -> Result<StepOutput, StepError> {
    let update = &env.plan.spec().update;
    let sts = env.view().sts().await?;
    let old = &sts.spec.template;
    let new = updated_template(old, &update.images, update.template_patch.as_ref())?;
    let changed = match template_patch(&to_value(&*sts), new.clone()) {
        None => false,
        Some(patch) => {
            env.write_sts(
                ctx,
                "update template",
                patch,
                template_summary(old),
                template_summary(&new),
            )
            .await?;
            true
        }
    };
    let update_revision = super::wait::observed_revision(env, ctx).await?;
    let out = ApplyOutput {
        changed,
        update_revision: Some(update_revision),
    };
    Ok(StepOutput::new(to_value(&out)))
}

/// What the audit log keeps of a template: its images by container.
pub(crate) fn template_summary(template: &Value) -> Value {
    let mut images = BTreeMap::new();
    for list in ["initContainers", "containers"] {
        for c in template
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(i)) = (c.get("name").and_then(Value::as_str), c.get("image")) {
                images.insert(n.to_owned(), i.clone());
            }
        }
    }
    json!({"images": images})
}
