//! `engine status|history|approve|abort|resume --in-cluster NAME [-n NS]`: the same commands
//! for a run that `engine controller` drives from an UpgradePlan. The record is read from the
//! plan's ConfigMaps and rendered as for a CLI run; approve, abort and resume become the
//! plan's request annotations, which the controller acts on.

use anyhow::Context as _;
use baton_controller::inspect;
use baton_controller::requests::Kind;
use baton_engine::plan::ValidPlan;
use baton_engine::store::RunView;
use kube::api::{Api, DynamicObject};

use crate::args::{GateArgs, GlobalArgs, InClusterArgs, ResumeArgs};
use crate::exit::ExitStatus;
use crate::{cluster, printer};

/// The plan's namespace: `-n`, else the kubeconfig's.
fn namespace(config: &kube::Config, args: &InClusterArgs) -> String {
    args.namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone())
}

/// The run of UpgradePlan `name`, from its ConfigMaps.
pub fn view(global: &GlobalArgs, name: &str, args: &InClusterArgs) -> anyhow::Result<RunView> {
    cluster::runtime()?.block_on(async {
        let config = cluster::config(global).await?;
        let ns = namespace(&config, args);
        inspect::load_view(config, &ns, name)
            .await
            .with_context(|| format!("cannot read the run of upgradeplan {ns}/{name}"))?
            .with_context(|| {
                format!("upgradeplan {ns}/{name} has no run yet (is `engine controller` running?)")
            })
    })
}

/// `engine status --in-cluster NAME`.
pub fn status(
    global: &GlobalArgs,
    name: Option<&str>,
    args: &InClusterArgs,
) -> anyhow::Result<ExitStatus> {
    let Some(name) = name else {
        printer::err("error: --in-cluster needs the UpgradePlan's name");
        return Ok(ExitStatus::Usage);
    };
    let (mut view, leader, note) = cluster::runtime()?.block_on(async {
        let config = cluster::config(global).await?;
        let ns = namespace(&config, args);
        let client = cluster::client(global).await?;
        let plans: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &ns,
            &baton_controller::resource::api_resource(),
        );
        let plan = plans
            .get(name)
            .await
            .with_context(|| format!("cannot read upgradeplan {ns}/{name}"))?;
        let leader = plan.data["status"]["leader"].as_str().map(str::to_owned);
        let view = inspect::load_view(config, &ns, name)
            .await
            .with_context(|| format!("cannot read the run of upgradeplan {ns}/{name}"))?
            .with_context(|| {
                let phase = plan.data["status"]["phase"].as_str().unwrap_or("no status");
                format!("upgradeplan {ns}/{name} has no run yet ({phase})")
            })?;
        // The pods as they are now (the controller's live table stays in its process).
        let (file, text) = (view.plan_file.clone(), view.plan_text.clone());
        let pods = async {
            let plan = ValidPlan::parse(&file, &text)?;
            Ok::<_, anyhow::Error>(baton_steps::read_pod_rows(&client, &plan).await?)
        };
        let mut view = view;
        let note = match tokio::time::timeout(std::time::Duration::from_secs(5), pods).await {
            Ok(Ok(rows)) => {
                view.pods = Some(rows);
                None
            }
            Ok(Err(error)) => Some(printer::chain_text(&error)),
            Err(_) => Some("no answer within 5s".to_owned()),
        };
        Ok::<_, anyhow::Error>((view, leader, note))
    })?;
    if printer::is_json(global) {
        let mut json = serde_json::to_value(&view)?;
        json["leader"] = leader.into();
        printer::out_json(&json);
        return Ok(ExitStatus::Success);
    }
    view.live_pid = None;
    let mut text = crate::commands::status::render(&view, None);
    if let Some(leader) = leader {
        text.push_str(&format!("\ncontroller: {leader}"));
    }
    if let Some(note) = note {
        text.push_str(&format!("\npods: cannot read the cluster: {note}"));
    }
    printer::out(text.trim_end());
    Ok(ExitStatus::Success)
}

/// `engine approve|abort --in-cluster NAME`: the request annotation, for the controller.
pub fn request(global: &GlobalArgs, args: &GateArgs, kind: Kind) -> anyhow::Result<ExitStatus> {
    ask(
        global,
        &args.run,
        &args.cluster,
        kind,
        args.reason.as_deref(),
        false,
    )
}

/// `engine resume --in-cluster NAME [--accept-risk]`: asks the controller to start the
/// plan's stopped run again (it refuses, with an Event, what `engine resume` would refuse).
pub fn resume(global: &GlobalArgs, args: &ResumeArgs) -> anyhow::Result<ExitStatus> {
    let Some(run) = args.run.as_deref() else {
        printer::err("error: --in-cluster needs the UpgradePlan's name");
        return Ok(ExitStatus::Usage);
    };
    if args.plan.is_some() || args.replan || !args.skip_gate.is_empty() {
        printer::err(
            "error: --plan, --replan and --skip-gate have no in-cluster form: edit the UpgradePlan's spec only for a new plan",
        );
        return Ok(ExitStatus::Usage);
    }
    ask(
        global,
        run,
        &args.cluster,
        Kind::Resume,
        None,
        args.accept_risk,
    )
}

fn ask(
    global: &GlobalArgs,
    run: &str,
    cluster_args: &InClusterArgs,
    kind: Kind,
    reason: Option<&str>,
    accept_risk: bool,
) -> anyhow::Result<ExitStatus> {
    let by = requester(global);
    let ns = cluster::runtime()?.block_on(async {
        let config = cluster::config(global).await?;
        let ns = namespace(&config, cluster_args);
        let client = cluster::client(global).await?;
        let ask = inspect::Ask {
            kind,
            by: &by,
            reason,
            accept_risk,
        };
        inspect::send_request(client, &ns, run, ask)
            .await
            .with_context(|| format!("cannot annotate upgradeplan {ns}/{run}"))?;
        Ok::<_, anyhow::Error>(ns)
    })?;
    let verb = kind.verb();
    if printer::is_json(global) {
        printer::out_json(&serde_json::json!({
            "upgradeplan": format!("{ns}/{run}"),
            "request": verb,
            "by": by,
            "acceptRisk": accept_risk,
        }));
    } else {
        printer::out(format!(
            "asked the controller to {verb} upgradeplan {ns}/{run} as {by} ({}); `kubectl get upgradeplan {run} -n {ns}` shows what it did",
            kind.annotation()
        ));
    }
    Ok(ExitStatus::Success)
}

/// Who asks: the kubeconfig context's user, and `$USER@host`.
fn requester(global: &GlobalArgs) -> String {
    let kubeconfig = match &global.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    let user = kubeconfig.and_then(|k| {
        let context = global.context.clone().or(k.current_context.clone())?;
        k.contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
    });
    let me = crate::commands::who();
    match user {
        Some(user) => format!("{user} {me}"),
        None => me,
    }
}
