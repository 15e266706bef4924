//! `engine demo`: the seed case end to end on the embedded simulator: five replicas,
//! working {0, 2, 4}, alpine:3.18.2 → alpine:3.18.0.

use anyhow::Context as _;
use baton_engine::plan::ValidPlan;
use baton_sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::args::{DemoArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::rollout::{self, Entry};
use crate::{cluster, printer, state};

/// The seed plan ships inside the binary so the demo works from any directory.
const SEED_PLAN: &str = include_str!("../../../../plans/seed.yaml");

pub fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<ExitStatus> {
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let mut opts = state::run_options(global, false, false).unwrap_or_else(|_| {
        baton_engine::executor::RunOptions {
            state_dir: scratch.path().join("state"),
            accept_risk: false,
            replan: false,
            operator: None,
        }
    });
    if global.state_dir.is_none() {
        opts.state_dir = scratch.path().join("state");
    }
    cluster::runtime()?.block_on(async {
        let sim = Sim::new(SimConfig {
            pod_ready_ms: args.pod_ready_ms,
            ..SimConfig::default()
        });
        let served = sim.serve().await.context("cannot start the simulator")?;
        let kubeconfig = scratch.path().join("kubeconfig");
        served
            .write_kubeconfig(&kubeconfig)
            .context("cannot write the simulator's kubeconfig")?;
        let plan = demo_plan(&served.arbiter)?;
        let mut demo_global = global.clone();
        demo_global.kubeconfig = Some(kubeconfig);
        demo_global.context = None;
        let client = cluster::client(&demo_global).await?;

        printer::err(format!(
            "simulator: API server {}, arbiter {}\nplan:      {} ({} → {})",
            served.apiserver,
            served.arbiter,
            plan.name(),
            "alpine:3.18.2",
            plan.spec()
                .update
                .images
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        wait_for_pods(&client, 5).await?;
        // Each demo is a new run, even with a --state-dir that holds earlier ones.
        let run = match baton_engine::executor::name_new_run(&opts.state_dir, &plan, None) {
            Ok(run) => run,
            Err(error) => return state::report_exec_error(error),
        };
        printer::err("\nbefore:");
        printer::err(table(&client, &plan).await?);
        printer::err("");

        let finished = rollout::drive(
            client.clone(),
            &plan,
            Entry::Start { run: &run },
            &opts,
            printer::is_json(global),
            global.verbose > 0,
            rollout::Serve::default(),
        )
        .await?;
        printer::err("\nafter:");
        printer::err(table(&client, &plan).await?);
        let report = sim.report();
        printer::err(format!(
            "\nsimulator report: {} pod updates, {} safety violations, fewest working pods {}",
            report["updates"].as_array().map_or(0, Vec::len),
            report["violations"].as_array().map_or(0, Vec::len),
            report["workingMin"]
        ));
        Ok(finished.status)
    })
}

fn demo_plan(arbiter_url: &str) -> anyhow::Result<ValidPlan> {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(SEED_PLAN).context("the embedded seed plan is not YAML")?;
    doc["spec"]["arbiter"]["url"] = serde_yaml::Value::String(arbiter_url.to_owned());
    let text = serde_yaml::to_string(&doc).context("cannot render the demo plan")?;
    ValidPlan::parse("plans/seed.yaml (demo)", &text).map_err(|e| anyhow::anyhow!(e.render()))
}

async fn wait_for_pods(client: &kube::Client, count: usize) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for _ in 0..200 {
        let list = pods
            .list(&ListParams::default())
            .await
            .context("cannot list pods")?;
        let ready = list.items.iter().filter(|p| is_ready(p)).count();
        if ready >= count {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("the simulator's pods did not become ready")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn table(client: &kube::Client, plan: &ValidPlan) -> anyhow::Result<String> {
    let spec = plan.spec();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.target.namespace);
    let mut list = pods
        .list(&ListParams::default())
        .await
        .context("cannot list pods")?
        .items;
    list.sort_by_key(|p| {
        p.metadata
            .name
            .as_deref()
            .and_then(|n| n.rsplit('-').next())
            .and_then(|o| o.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    let rows: Vec<_> = list
        .iter()
        .map(|pod| {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let role = labels.get(&spec.roles.label).map(|v| {
                if *v == spec.roles.working {
                    "working".to_owned()
                } else if *v == spec.roles.idle {
                    "idle".to_owned()
                } else {
                    v.clone()
                }
            });
            baton_engine::event::PodRow {
                name: pod.metadata.name.clone().unwrap_or_default(),
                role,
                revision: labels.get("controller-revision-hash").cloned(),
                image: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone()),
                ready: is_ready(pod),
                updated: false,
            }
        })
        .collect();
    Ok(crate::progress::pod_table(&rows))
}
