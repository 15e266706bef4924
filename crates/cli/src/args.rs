//! Command-line arguments. Parsed here, handed to `commands` as plain structs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Baton upgrades quorum-style stateful apps on Kubernetes one standby at a time:
/// it asks the arbiter which pods are idle, updates only those, hands the working
/// role over to updated pods, and repeats until every pod runs the new template.
#[derive(Debug, Parser)]
#[command(name = "engine", version, propagate_version = true)]
#[command(after_help = "Start with `engine demo` to watch a rollout on the embedded simulator.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The command line, named as invoked: installed as `kubectl-baton` (a kubectl plugin:
/// `ln -s "$(command -v engine)" ~/.local/bin/kubectl-baton`), it is `kubectl baton …`
/// in help and errors; everything else is the same.
pub fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let invoked = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut command = Cli::command();
    if invoked == "kubectl-baton" {
        command = command.bin_name("kubectl baton").name("kubectl-baton");
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Path to a kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "KUBECONFIG"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, global = true, help_heading = "Global options")]
    pub context: Option<String>,
    /// Where run state lives (default: $XDG_STATE_HOME/baton or ~/.local/state/baton).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "ENGINE_STATE_DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// Output format for data.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More logging (-v, -vv, -vvv).
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors: no progress, no final pod table, no logs of requests the engine retried.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plan file; changes nothing.
    #[command(after_help = "Example:\n  engine validate plans/seed.yaml")]
    Validate(PlanArg),
    /// Print the JSON Schema of the plan format (for editors).
    #[command(after_help = "Example:\n  engine schema > baton-plan.schema.json")]
    Schema,
    /// Print the UpgradePlan CustomResourceDefinition (deploy/crd.yaml) for in-cluster mode.
    #[command(
        after_help = "Examples:\n  engine crd | kubectl apply -f -\n  engine crd --output json | jq '.spec.versions[0].additionalPrinterColumns'"
    )]
    Crd,
    /// Print the step DAG of a plan.
    #[command(
        after_help = "Example:\n  engine graph plans/seed.yaml --format dot | dot -Tsvg > plan.svg"
    )]
    Graph(GraphArgs),
    /// Dry run: read the cluster and the arbiter, print the waves it would run; writes nothing.
    ///
    /// Shows the image change (before → after), each wave's pods and partition, its hooks,
    /// gates and handover, waves that the StatefulSet's maxUnavailable splits into rounds,
    /// the partition finalize writes, and an estimate of the time from how long the set's
    /// ready pods took to become Ready (approvals not counted).
    #[command(after_help = "Example:\n  engine plan plans/seed.yaml")]
    Plan(PlanArg),
    /// Start a run and follow it to the end, with live progress.
    ///
    /// Every run is new: running a plan again (its earlier run finished) starts another run,
    /// named after the plan with a free suffix (`-2`, `-3`, …) unless --name says otherwise.
    /// A run is refused while another run on the same StatefulSet is unfinished.
    #[command(
        after_help = "Examples:\n  engine run plans/seed.yaml\n  engine run plans/seed.yaml --name seed-retry"
    )]
    Run(RunArgs),
    /// Continue an interrupted run from its last checkpoint.
    ///
    /// With --in-cluster NAME, asks `engine controller` to continue the UpgradePlan's run
    /// that failed, was aborted or (with --accept-risk) stopped for safety.
    #[command(
        after_help = "Examples:\n  engine resume sample-to-3-18-0\n  engine resume --in-cluster sample-to-3-18-0 -n db --accept-risk"
    )]
    Resume(ResumeArgs),
    /// Show a run: steps, current wave, pods; works while the run goes on elsewhere.
    ///
    /// A run still marked running whose process is gone (killed) is shown as such, with the
    /// pid it had, and how to continue it.
    #[command(after_help = "Example:\n  engine status sample-to-3-18-0 --output json")]
    Status(OptRunArg),
    /// List runs with their state.
    ///
    /// `(live)` marks a run a process drives now; `running, pid N gone` one whose process died
    /// before it could record how it stopped (`engine resume` continues it).
    List,
    /// Freeze a rollout (partition = |P| - |U|) and release the lock.
    #[command(after_help = "Example:\n  engine abort sample-to-3-18-0 --reason 'latency spike'")]
    Abort(GateArgs),
    /// Release a manual approval gate.
    #[command(
        after_help = "Example:\n  engine approve sample-to-3-18-0 --reason 'dashboards green'"
    )]
    Approve(GateArgs),
    /// Audit log of a run: every write to the cluster or the arbiter.
    ///
    /// A table: time (UTC, to the second), step, object, action, and the change (before →
    /// after, with how it ended when it was not applied), with operators' approvals and
    /// aborts in order. `--output json` gives the full records.
    #[command(after_help = "Example:\n  engine history sample-to-3-18-0")]
    History(RunArg),
    /// Forget a run: remove its state (record, history) from the state directory. The
    /// cluster is not touched. An unfinished run needs --force.
    #[command(after_help = "Example:\n  engine delete sample-to-3-18-0")]
    Delete(DeleteArgs),
    /// Forget finished runs (succeeded or aborted) not updated for a while.
    #[command(
        after_help = "Examples:\n  engine gc --older-than 168h\n  engine gc --older-than 0s --dry-run"
    )]
    Gc(GcArgs),
    /// Start the embedded simulator and arbiter and run the seed case end to end.
    Demo(DemoArgs),
    /// Run UpgradePlans in the cluster (in-cluster mode), as one of several replicas.
    ///
    /// One replica leads (Lease `baton-controller`) and drives every plan that is not
    /// settled; the others stand by and take over, resuming from the recorded state.
    /// Run state goes to ConfigMaps next to each plan; progress to the plan's status;
    /// `kubectl annotate upgradeplan NAME baton.dev/approve='{"by":"me"}'` approves a gate
    /// (`baton.dev/abort` aborts).
    #[command(after_help = "Example:\n  engine controller --namespace baton-system")]
    Controller(ControllerArgs),
    /// The simulator, and a stand-in kubelet and arbiter for clusters that lack them.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  engine completions bash > /etc/bash_completion.d/engine")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct PlanArg {
    /// The plan file (YAML).
    pub plan: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// The plan file (YAML).
    pub plan: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The plan file (YAML).
    pub plan: PathBuf,
    /// Name of the new run (default: the plan's name, with a free suffix if it is taken).
    #[arg(long, value_name = "RUN")]
    pub name: Option<String>,
    /// Do not ask this per-pod gate (repeatable); recorded in the history with your user,
    /// host and --reason. Holds for this process: give it again to `engine resume`.
    #[arg(long, value_name = "GATE")]
    pub skip_gate: Vec<String>,
    /// Why the gates are skipped; recorded in the history.
    #[arg(long, requires = "skip_gate")]
    pub reason: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Namespace of the controller's Lease (default: $POD_NAMESPACE, else the kubeconfig's).
    #[arg(long, short = 'n', env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch UpgradePlans in this namespace only (default: every namespace).
    #[arg(long, value_name = "NS")]
    pub watch_namespace: Option<String>,
    /// How long the Lease lives without renewal; a standby takes over after it.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub lease_duration: baton_engine::duration::Duration,
    /// How often the leader renews the Lease (and a standby asks for it).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub renew_every: baton_engine::duration::Duration,
    /// Serve Prometheus metrics of every run on this address (e.g. 0.0.0.0:9464).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Bytes of run log per ConfigMap (tests make it small to span many).
    #[arg(long, hide = true, default_value_t = baton_controller::store::image::DEFAULT_CHUNK_BUDGET)]
    pub log_chunk_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// The run to resume; may be omitted when exactly one run is unfinished.
    pub run: Option<String>,
    /// Plan file to resume with (default: the plan text stored with the run).
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Accept a plan file whose content changed since the run started.
    #[arg(long)]
    pub replan: bool,
    /// Continue after a safety stop.
    #[arg(long)]
    pub accept_risk: bool,
    /// Do not ask this per-pod gate (repeatable); recorded in the history with your user,
    /// host and --reason. Holds for this process: give it again to `engine resume`.
    #[arg(long, value_name = "GATE")]
    pub skip_gate: Vec<String>,
    /// Why the gates are skipped; recorded in the history.
    #[arg(long, requires = "skip_gate")]
    pub reason: Option<String>,
    /// Serve Prometheus metrics on this address.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub cluster: InClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// The run to forget.
    pub run: String,
    /// Also forget a run that has not finished (its history goes with it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Forget finished runs last updated longer ago than this (`30m`, `24h`, `168h`).
    #[arg(long, default_value = "168h", value_name = "DURATION")]
    pub older_than: baton_engine::duration::Duration,
    /// Only list what would be forgotten.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArg {
    /// The run's name (the plan's `metadata.name`; `engine list` shows them).
    pub run: String,
    #[command(flatten)]
    pub cluster: InClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct OptRunArg {
    /// The run's name; may be omitted when exactly one run is unfinished.
    pub run: Option<String>,
    #[command(flatten)]
    pub cluster: InClusterArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// The run's name (the plan's `metadata.name`; `engine list` shows them).
    pub run: String,
    /// Why; recorded in the history with your user and host.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub cluster: InClusterArgs,
}

/// In-cluster mode: the run is the UpgradePlan of that name, run by `engine controller`.
#[derive(Debug, Clone, Args)]
pub struct InClusterArgs {
    /// The run is an UpgradePlan in the cluster (run by `engine controller`), not a run of
    /// the state directory.
    #[arg(long)]
    pub in_cluster: bool,
    /// The UpgradePlan's namespace (default: the kubeconfig's).
    #[arg(long, short = 'n', requires = "in_cluster")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Milliseconds a pod takes to become Ready.
    #[arg(long, default_value_t = 300)]
    pub pod_ready_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve the simulator (Kubernetes API + Kruise controller + kubelet) and an arbiter.
    #[command(
        after_help = "Example:\n  engine sim serve --kubeconfig-out /tmp/sim.kubeconfig\n  kubectl --kubeconfig /tmp/sim.kubeconfig get pods"
    )]
    Serve(SimServeArgs),
    /// Run a stand-in kubelet against any API server (a cluster without a container runtime).
    #[command(
        long_about = "Run a stand-in kubelet against any API server (a cluster without a container runtime).\n\n\
            It creates the Node and keeps it Ready, binds every pending pod to it, and reports each pod \
            Running with one container status per container. Nothing runs: pods only look as if they did. \
            A changed image restarts the container (restartCount + 1), which is how an in-place update \
            looks. Ready follows Kubernetes: every container ready and every readinessGates condition \
            True. A deleted pod is removed once it has no finalizers. Prints {\"kubelet\": {\"node\", \
            \"namespace\"}} on one line once the API server answers; runs until SIGINT or SIGTERM.",
        after_help = "Example:\n  engine sim kubelet --kubeconfig /tmp/cluster.kubeconfig --namespace default --ready-delay-ms 500"
    )]
    Kubelet(SimKubeletArgs),
    /// Serve a standalone arbiter (SPEC §3: GET /v1/members, POST /v1/handover).
    #[command(
        long_about = "Serve a standalone arbiter (SPEC §3: GET /v1/members, POST /v1/handover), for a \
            cluster that has none. It enforces the quorum rule: a handover that names an unknown member, \
            promotes a pod that is not idle, demotes one that is not working, or lowers the working \
            count is refused with 422. Prints {\"arbiter\": URL} on one line once it listens; runs until \
            SIGINT or SIGTERM.",
        after_help = "Example:\n  engine sim arbiter --members sample-0,sample-1,sample-2 --working sample-0,sample-2\n  curl -s http://127.0.0.1:PORT/v1/members"
    )]
    Arbiter(SimArbiterArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SimKubeletArgs {
    /// Serve only the pods of this namespace (default: every namespace). The cluster comes
    /// from --kubeconfig / $KUBECONFIG.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The Node pods are bound to (created if missing).
    #[arg(long, default_value = "baton-node")]
    pub node: String,
    /// Milliseconds a container takes to turn ready after it starts or restarts.
    #[arg(long, default_value_t = 0)]
    pub ready_delay_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct SimArbiterArgs {
    /// Every member (pod name), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub members: Vec<String>,
    /// The members that start as working, comma-separated; the others are idle.
    #[arg(long, value_delimiter = ',')]
    pub working: Vec<String>,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct SimServeArgs {
    /// Replicas of the seeded StatefulSet `default/sample`.
    #[arg(long, default_value_t = 5)]
    pub replicas: u32,
    /// Ordinals of working pods, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,2,4")]
    pub working: Vec<u32>,
    /// The image the seeded pods run.
    #[arg(long, default_value = "alpine:3.18.2")]
    pub image: String,
    /// Milliseconds a pod takes to become Ready after it starts.
    #[arg(long, default_value_t = 0)]
    pub pod_ready_ms: u64,
    /// Write a kubeconfig for the simulator here.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// API server port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Arbiter port. The default, 8080, is where plans/seed.yaml and the README's tour point;
    /// 0 picks any free port (then point the plan's arbiter.url at the printed URL).
    #[arg(long, default_value_t = 8080)]
    pub arbiter_port: u16,
    /// Start with no StatefulSet; the arbiter lists whatever pods exist, all idle.
    #[arg(long)]
    pub empty: bool,
    /// Fault injection, as JSON (see the simulator docs).
    #[arg(long)]
    pub faults: Option<String>,
    /// Arbiter behaviour, as JSON (see the simulator docs).
    #[arg(long)]
    pub arbiter: Option<String>,
}
