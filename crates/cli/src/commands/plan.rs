//! `engine plan PLAN`: the dry run. Reads the cluster and the arbiter, prints the waves
//! the run would go through, its hooks and gates, the image change, how it ends and how
//! long it may take, and the preconditions that fail; writes nothing.

use std::time::Duration;

use baton_engine::decide::{self, Estimate, Policy, RunForecast, Timing, Warning};
use baton_engine::plan::{Approval, Hook, HookAction, HookPoint, Spec, ValidPlan};
use baton_engine::text::{count, span};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::args::{GlobalArgs, PlanArg};
use crate::exit::ExitStatus;
use crate::{cluster, printer};

pub fn run(global: &GlobalArgs, args: &PlanArg) -> anyhow::Result<ExitStatus> {
    let plan = match ValidPlan::load(&args.plan) {
        Ok(plan) => plan,
        Err(error) => {
            printer::err(error.render());
            return Ok(ExitStatus::Usage);
        }
    };
    cluster::runtime()?.block_on(async {
        let client = cluster::client(global).await?;
        let (snapshot, warnings) = match baton_steps::preflight_with_retries(&client, &plan).await {
            Ok(found) => found,
            Err(error) => {
                printer::error_chain(&anyhow::Error::new(error));
                return Ok(ExitStatus::Usage);
            }
        };
        let working = snapshot.arbiter.members.values().filter(|r| **r == baton_engine::snapshot::Role::Working).count();
        let policy = Policy {
            max_per_wave: plan.spec().waves.max_per_wave,
            min_working: match plan.spec().safety.min_working {
                0 => u32::try_from(working).unwrap_or(u32::MAX),
                n => n,
            },
            expected_update_revision: None,
            prefer_handover: false,
        };
        let forecast = decide::forecast_run(&snapshot, &policy);
        // What the estimate rests on is read besides the snapshot: the images the template
        // runs now and the set's pods' own start-to-ready times. Neither may fail the plan.
        let observed = observe(&client, &plan).await;
        let spec = plan.spec();
        let timing = Timing {
            pod_ready: decide::typical_ready(&observed.ready),
            max_unavailable: snapshot.sts.max_unavailable,
            settle: spec.waves.settle.as_std(),
            per_wave: [HookPoint::BeforeWave, HookPoint::AfterWaveReady, HookPoint::BeforeHandover, HookPoint::AfterHandover]
                .into_iter()
                .map(|point| longest_sleep(spec.hooks.at(point)))
                .sum(),
            once: [HookPoint::BeforeRollout, HookPoint::AfterRollout]
                .into_iter()
                .map(|point| longest_sleep(spec.hooks.at(point)))
                .sum(),
        };
        let estimate = forecast.as_ref().ok().map(|f| decide::estimate(&f.waves, &timing));
        // The windows' clock, as a run would read it (`BATON_TEST_CLOCK` in tests).
        let now = match baton_steps::gates::ShiftedClock::from_env() {
            Ok(Some(clock)) => baton_engine::clock::Clock::now(&clock),
            _ => jiff::Timestamp::now(),
        };
        let safety = super::plan_safety::report(&plan, &snapshot, now).await;
        let starts = forecast.as_ref().map_or_else(
            |_| Default::default(),
            |f| super::plan_safety::wave_start_lines(spec, &f.waves, estimate.as_ref(), now),
        );
        let images: Vec<serde_json::Value> = spec
            .update
            .images
            .iter()
            .map(|(container, after)| {
                serde_json::json!({
                    "container": container,
                    "before": observed.images.as_ref().and_then(|now| now.get(container)),
                    "after": after,
                })
            })
            .collect();
        if printer::is_json(global) {
            let doc = serde_json::json!({
                "run": plan.name(),
                "target": format!("{}/{}", snapshot.sts.namespace, snapshot.sts.name),
                "replicas": snapshot.sts.replicas,
                "minWorking": policy.min_working,
                "maxUnavailable": snapshot.sts.max_unavailable,
                "images": images,
                "warnings": warnings,
                "waves": forecast.as_ref().ok().map(|f| &f.waves),
                "finalizePartition": forecast.as_ref().ok().map(|f| f.finalize_partition),
                "keptOld": forecast.as_ref().ok().map(|f| &f.kept_old),
                "estimate": estimate.as_ref().map(|e| serde_json::json!({
                    "seconds": e.total.map(|t| t.as_secs_f64()),
                    "podReadySeconds": timing.pod_ready.map(|t| t.as_secs_f64()),
                    "podsObserved": observed.ready.len(),
                    "rounds": e.waves.iter().map(|w| w.rounds).sum::<u32>(),
                    "serialisedWaves": e.waves.iter().filter(|w| w.serialised).map(|w| w.wave).collect::<Vec<_>>(),
                })),
                "refusal": forecast.as_ref().err(),
                "safety": safety.json,
            });
            printer::out_json(&doc);
        } else {
            printer::out(format!(
                "plan {} on {}/{}: {} replicas, {} working, arbiter epoch {}",
                plan.name(),
                snapshot.sts.namespace,
                snapshot.sts.name,
                snapshot.sts.replicas,
                working,
                snapshot.arbiter.epoch
            ));
            for (container, after) in &spec.update.images {
                let before = observed
                    .images
                    .as_ref()
                    .and_then(|now| now.get(container))
                    .map_or("(unknown)", String::as_str);
                printer::out(format!("image: {container} {before} → {after}"));
            }
            if spec.update.template_patch.is_some() {
                printer::out("template: the plan's templatePatch is applied too");
            }
            for warning in &warnings {
                match warning {
                    Warning::Protected { pods } => printer::out(format!(
                        "warning: the arbiter does not list {}; {} protected and will not be updated",
                        pods.join(", "),
                        if pods.len() == 1 { "it is" } else { "they are" }
                    )),
                }
            }
            for line in &safety.lines {
                printer::out(line);
            }
            match &forecast {
                Ok(f) if f.waves.is_empty() => printer::out("nothing to do: every pod runs the update revision"),
                Ok(f) => {
                    for line in describe(spec, f, estimate.as_ref(), &timing, observed.ready.len(), snapshot.sts.max_unavailable, &starts) {
                        printer::out(line);
                    }
                }
                Err(refusal) => printer::out(format!("refused: {refusal}")),
            }
        }
        Ok(if forecast.is_ok() { ExitStatus::Success } else { ExitStatus::Usage })
    })
}

/// The waves, their hooks and gates, the end and the estimate, as lines.
fn describe(
    spec: &Spec,
    f: &RunForecast,
    estimate: Option<&Estimate>,
    timing: &Timing,
    observed: usize,
    max_unavailable: u32,
    starts: &std::collections::BTreeMap<u32, String>,
) -> Vec<String> {
    const IN_WAVE: &str = "        ";
    let mut out = Vec::new();
    out.extend(hook_lines("  ", spec, HookPoint::BeforeRollout));
    out.push("  (protect: partition = replicas, then apply the new template)".to_owned());
    for wave in &f.waves {
        let timing = estimate.and_then(|e| e.waves.iter().find(|w| w.wave == wave.wave));
        let pods = if wave.select.is_empty() {
            "nothing".to_owned()
        } else {
            wave.select.join(", ")
        };
        out.push(format!(
            "wave {}: update {pods} (partition {})",
            wave.wave, wave.partition
        ));
        if let Some(start) = starts.get(&wave.wave) {
            out.push(format!("{IN_WAVE}{start}"));
        }
        out.extend(hook_lines(IN_WAVE, spec, HookPoint::BeforeWave));
        if let Some(t) = timing.filter(|t| t.serialised) {
            out.push(format!(
                "{IN_WAVE}warning: the StatefulSet's maxUnavailable is {max_unavailable}: Kruise updates these {} {} at a time, in {} rounds",
                count(wave.select.len(), "pod", "pods"),
                if max_unavailable == 1 { "one".to_owned() } else { max_unavailable.to_string() },
                t.rounds
            ));
        }
        out.extend(hook_lines(IN_WAVE, spec, HookPoint::AfterWaveReady));
        if !spec.waves.settle.as_std().is_zero() {
            out.push(format!("{IN_WAVE}settle: {}", spec.waves.settle));
        }
        let gated = match spec.waves.approval {
            Approval::None => false,
            Approval::FirstWave => wave.wave == 1,
            Approval::EveryWave => true,
        };
        if gated {
            out.push(format!(
                "{IN_WAVE}approval: waits for `engine approve` once the wave is ready"
            ));
        }
        out.extend(hook_lines(IN_WAVE, spec, HookPoint::BeforeHandover));
        if let Some(handover) = &wave.handover {
            out.push(format!(
                "{IN_WAVE}handover: promote {}, demote {}",
                handover.promote.join(", "),
                handover.demote.join(", ")
            ));
        }
        out.extend(hook_lines(IN_WAVE, spec, HookPoint::AfterHandover));
    }
    out.push(if f.kept_old.is_empty() {
        format!("  (finalize: partition {}, labels cleaned)", f.finalize_partition)
    } else {
        format!(
            "  (finalize: partition {}, labels cleaned; {} the arbiter does not list {} the old revision: {})",
            f.finalize_partition,
            count(f.kept_old.len(), "pod", "pods"),
            if f.kept_old.len() == 1 { "keeps" } else { "keep" },
            f.kept_old.join(", ")
        )
    });
    out.extend(hook_lines("  ", spec, HookPoint::AfterRollout));
    out.push(estimate_line(estimate, timing, observed));
    out
}

/// The estimate and what it rests on, or why there is none.
fn estimate_line(estimate: Option<&Estimate>, timing: &Timing, observed: usize) -> String {
    let rounds: u32 = estimate.map_or(0, |e| e.waves.iter().map(|w| w.rounds).sum());
    let rounds = count(
        usize::try_from(rounds).unwrap_or(usize::MAX),
        "round",
        "rounds",
    );
    match (estimate.and_then(|e| e.total), timing.pod_ready) {
        (Some(total), Some(ready)) => format!(
            "estimate: about {} ({rounds} of pod updates at {} each: the median of the times the set's {} took from creation or in-place update to Ready; plus settle and sleep hooks; approvals and arbiter answers not counted)",
            about(total),
            span(ready),
            count(observed, "ready pod", "ready pods"),
        ),
        _ => format!(
            "estimate: none ({rounds} of pod updates; no ready pod of the set shows how long it took to become Ready)"
        ),
    }
}

/// A projected time: not to the millisecond, which it is not.
fn about(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        "a second or less".to_owned()
    } else {
        span(Duration::from_secs(d.as_secs()))
    }
}

/// One line per hook at `point`, or none.
fn hook_lines(indent: &str, spec: &Spec, point: HookPoint) -> Vec<String> {
    spec.hooks
        .at(point)
        .iter()
        .map(|hook| {
            format!(
                "{indent}hook {}: {} ({})",
                point.as_str(),
                hook.name,
                action(hook)
            )
        })
        .collect()
}

fn action(hook: &Hook) -> String {
    match hook.action() {
        Some(HookAction::Http(h)) => format!("{} {}, expects {}", h.method, h.url, h.expect_status),
        Some(HookAction::Exec(e)) => format!("exec {}", e.command.join(" ")),
        Some(HookAction::Sleep(s)) => format!("sleep {}", s.duration),
        Some(HookAction::Approval(a)) => match &a.message {
            Some(message) => format!("waits for `engine approve`: {message}"),
            None => "waits for `engine approve`".to_owned(),
        },
        None => "no action".to_owned(),
    }
}

/// The longest sleep hook among `hooks` (they run together), zero without one.
fn longest_sleep(hooks: &[Hook]) -> Duration {
    hooks
        .iter()
        .filter_map(|h| h.sleep.as_ref().map(|s| s.duration.as_std()))
        .max()
        .unwrap_or_default()
}

/// What `engine plan` reads besides the snapshot.
#[derive(Default)]
struct Observed {
    /// Container → image in the StatefulSet's template now; `None` when it could not be read.
    images: Option<std::collections::BTreeMap<String, String>>,
    /// Each ready pod's time from its creation or last in-place update to Ready.
    ready: Vec<Duration>,
}

async fn observe(client: &kube::Client, plan: &ValidPlan) -> Observed {
    let target = baton_steps::k8s::Target::from_plan(client.clone(), plan);
    let images = target.get_sts().await.ok().map(|sts| {
        sts.spec.template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.to_owned(),
                    c["image"].as_str()?.to_owned(),
                ))
            })
            .collect()
    });
    let ready = match target.pod_selector().await {
        Ok(selector) => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &plan.spec().target.namespace);
            match pods.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list.items.iter().filter_map(start_to_ready).collect(),
                Err(_) => Vec::new(),
            }
        }
        Err(_) => Vec::new(),
    };
    Observed { images, ready }
}

/// Kruise's record of a pod's last in-place update; its `updateTimestamp` is when the
/// update began.
const INPLACE_STATE: &str = "apps.kruise.io/inplace-update-state";

/// How long a ready pod took to become Ready after it was created or, when Kruise updated
/// it in place since, after that update began: what a wave waits for, per pod.
fn start_to_ready(pod: &Pod) -> Option<Duration> {
    let ready_at = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()?
        .0;
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let updated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INPLACE_STATE))
        .and_then(|state| serde_json::from_str::<serde_json::Value>(state).ok())
        .and_then(|state| {
            state["updateTimestamp"]
                .as_str()?
                .parse::<jiff::Timestamp>()
                .ok()
        });
    let began = created.into_iter().chain(updated).max()?;
    Duration::try_from(ready_at.duration_since(began)).ok()
}

/// The preconditions `engine run` checks before it writes anything (SPEC §1). Returns
/// the exit status to stop with, or `None` to go on.
pub async fn refuse_if_unsafe(
    client: &kube::Client,
    plan: &ValidPlan,
) -> anyhow::Result<Option<ExitStatus>> {
    match baton_steps::preflight_with_retries(client, plan).await {
        Ok((_, warnings)) => {
            for warning in warnings {
                let Warning::Protected { pods } = warning;
                printer::err(format!(
                    "warning: the arbiter does not list {}; {} not be updated",
                    pods.join(", "),
                    if pods.len() == 1 {
                        "it will"
                    } else {
                        "they will"
                    }
                ));
            }
            Ok(None)
        }
        Err(error) => {
            printer::error_chain(&anyhow::Error::new(error));
            Ok(Some(ExitStatus::Usage))
        }
    }
}
