//! A real Kubernetes control plane for tests: etcd, kube-apiserver and OpenKruise's
//! `kruise-manager`, started from the assets folder named by `BATON_CONTROL_PLANE`, exactly as
//! `shared/realcp/README.md` describes, and stopped on drop.
//!
//! A start costs several seconds, so a test binary shares one instance ([`shared_or_skip`]).
//! That instance lives in a static and is never dropped: each child process gets a tiny
//! watchdog (`sh`) that kills it once the test binary is gone, however it went (exit, panic,
//! SIGKILL). The shared instance holds no client and no task, only processes and files, so
//! tests on separate tokio runtimes can all use it; each caller builds its own
//! [`kube::Client`] ([`ControlPlane::client`]).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

mod kruise;

/// The environment variable naming the assets folder (in the spirit of envtest's
/// `KUBEBUILDER_ASSETS`).
pub const ASSETS_ENV: &str = "BATON_CONTROL_PLANE";

/// Set (non-empty) to keep the control plane's folder (logs, etcd data) after it stops.
pub const KEEP_ENV: &str = "BATON_CONTROL_PLANE_KEEP";

/// The one line a developer without assets sees instead of the tier's results.
pub const SKIP_LINE: &str = "skipped: real control plane tier needs BATON_CONTROL_PLANE (see README, \"Real control plane tier\")";

/// How long each stage may take before the start is given up (the whole start takes ~8 s
/// on an idle 2-core machine; parallel builds and tests can slow it several times).
const STAGE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often readiness is polled while starting.
const POLL: Duration = Duration::from_millis(100);

/// Lines of a process log quoted in a start error.
const LOG_TAIL_LINES: usize = 30;

/// Why the control plane could not be started. None of these is retryable as such: they
/// name a missing asset, a process that died or did not become ready (with its log's tail),
/// or an API call that failed while setting Kruise up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{ASSETS_ENV} is not set")]
    NotConfigured,
    #[error("control plane asset {} is missing", path.display())]
    MissingAsset { path: PathBuf },
    #[error("etcd is neither in {} nor on PATH (Debian: apt-get install etcd-server)", dir.display())]
    NoEtcd { dir: PathBuf },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {process}")]
    Spawn {
        process: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{process} exited ({status}) before it was ready; last lines of {}:\n{tail}", log.display())]
    Exited {
        process: &'static str,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{process} was not ready after {waited:?} ({waiting_for}); last lines of {}:\n{tail}", log.display())]
    NotReady {
        process: &'static str,
        waited: Duration,
        waiting_for: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} failed: {output}")]
    Command { what: String, output: String },
    #[error("manifest {}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("the generated kubeconfig is not usable")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot build a client for the control plane")]
    Client(#[source] kube::Error),
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Where the binaries and manifests are.
#[derive(Debug, Clone)]
pub struct Assets {
    pub dir: PathBuf,
    pub etcd: PathBuf,
    pub apiserver: PathBuf,
    pub kruise_manager: PathBuf,
    pub crds: PathBuf,
    pub webhooks: PathBuf,
}

impl Assets {
    /// The assets in `$BATON_CONTROL_PLANE`.
    pub fn from_env() -> Result<Assets, Error> {
        match std::env::var_os(ASSETS_ENV) {
            Some(dir) if !dir.is_empty() => Assets::in_dir(Path::new(&dir)),
            _ => Err(Error::NotConfigured),
        }
    }

    /// The assets in `dir`: `kube-apiserver`, `kruise-manager`, `kruise-crds/`,
    /// `kruise-webhooks.yaml`, and `etcd` there or else on `PATH`.
    pub fn in_dir(dir: &Path) -> Result<Assets, Error> {
        let need = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                Ok(path)
            } else {
                Err(Error::MissingAsset { path })
            }
        };
        let apiserver = need("kube-apiserver")?;
        let kruise_manager = need("kruise-manager")?;
        let crds = need("kruise-crds")?;
        let webhooks = need("kruise-webhooks.yaml")?;
        let etcd = Some(dir.join("etcd"))
            .filter(|p| p.is_file())
            .or_else(|| on_path("etcd"))
            .ok_or_else(|| Error::NoEtcd {
                dir: dir.to_path_buf(),
            })?;
        Ok(Assets {
            dir: dir.to_path_buf(),
            etcd,
            apiserver,
            kruise_manager,
            crds,
            webhooks,
        })
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A child process of the control plane, its log and the watchdog that kills it when the
/// test binary is gone.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    watchdog: Option<Child>,
}

impl Process {
    /// Starts `cmd` with stdout and stderr in `dir/NAME.log`, and its watchdog.
    fn spawn(name: &'static str, mut cmd: Command, dir: &Path) -> Result<Process, Error> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("open {}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn {
                process: name,
                source,
            })?;
        let watchdog = watchdog(
            "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 0.5; done; \
             kill -9 \"$2\" 2>/dev/null",
            &[child.id().to_string()],
        );
        Ok(Process {
            name,
            child,
            log,
            watchdog,
        })
    }

    /// An error if the process has exited.
    fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                process: self.name,
                status,
                log: self.log.clone(),
                tail: tail(&self.log),
            }),
            _ => Ok(()),
        }
    }

    fn not_ready(&self, waited: Duration, waiting_for: impl Into<String>) -> Error {
        Error::NotReady {
            process: self.name,
            waited,
            waiting_for: waiting_for.into(),
            log: self.log.clone(),
            tail: tail(&self.log),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Starts `sh -c SCRIPT watchdog PARENT ARGS…`: `$1` is this process's pid. Without `unsafe`
/// there is no parent-death signal, so a shell polls for the parent instead. A watchdog that
/// cannot start only costs the cleanup after a crash, so it is logged, not fatal.
fn watchdog(script: &str, args: &[String]) -> Option<Child> {
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("baton-watchdog")
        .arg(std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Some(child),
        Err(error) => {
            tracing::warn!(%error, "cannot start a watchdog; processes may outlive a crash");
            None
        }
    }
}

/// The last lines of a log file (at most 64 KiB are read).
fn tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// Free TCP ports on 127.0.0.1, all distinct (the listeners are held until all are picked).
fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let l = TcpListener::bind(("127.0.0.1", 0)).map_err(io("pick a free port"))?;
        *port = l.local_addr().map_err(io("pick a free port"))?.port();
        listeners.push(l);
    }
    Ok(ports)
}

/// A running control plane. Dropping it stops every process and removes its folder.
pub struct ControlPlane {
    /// Stopped in reverse order (Kruise, apiserver, etcd).
    processes: Vec<Process>,
    /// Removes the folder once the test binary is gone, for the instance that is never dropped.
    cleaner: Option<Child>,
    server: String,
    kubeconfig_path: PathBuf,
    kubeconfig: String,
    token: String,
    ca_data: String,
    started_in: Duration,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("dir", &self.dir.path())
            .field("started_in", &self.started_in)
            .finish_non_exhaustive()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for p in self.processes.iter_mut().rev() {
            p.stop();
        }
        if let Some(c) = &mut self.cleaner {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl ControlPlane {
    /// Starts a control plane from `$BATON_CONTROL_PLANE`.
    pub async fn start() -> Result<ControlPlane, Error> {
        ControlPlane::start_with(&Assets::from_env()?).await
    }

    /// Starts etcd and kube-apiserver, installs Kruise's CRDs and webhooks, starts
    /// kruise-manager, and returns once Kruise's webhooks are live.
    pub async fn start_with(assets: &Assets) -> Result<ControlPlane, Error> {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("baton-realcp-")
            .tempdir()
            .map_err(io("create a temporary folder"))?;
        let d = dir.path().to_path_buf();
        let keep = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty());
        let mut dir = dir;
        dir.disable_cleanup(keep);
        let cleaner = if keep {
            None
        } else {
            watchdog(
                "while kill -0 \"$1\" 2>/dev/null && [ -d \"$2\" ]; do sleep 0.5; done; \
                 sleep 2; rm -rf \"$2\"",
                &[d.display().to_string()],
            )
        };
        let [
            etcd_port,
            peer_port,
            api_port,
            metrics_port,
            health_port,
            webhook_port,
        ] = free_ports::<6>()?;
        let token = format!(
            "baton-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let server = format!("https://127.0.0.1:{api_port}");
        let mut cp = ControlPlane {
            processes: Vec::new(),
            cleaner,
            server,
            kubeconfig_path: d.join("kubeconfig"),
            kubeconfig: String::new(),
            token,
            ca_data: String::new(),
            started_in: Duration::ZERO,
            dir,
        };

        std::fs::write(
            d.join("tokens.csv"),
            format!("{},admin,admin-uid,system:masters\n", cp.token),
        )
        .map_err(io("write tokens.csv"))?;
        let key = d.join("sa.key");
        run_command(
            Command::new("openssl")
                .arg("genrsa")
                .arg("-out")
                .arg(&key)
                .arg("2048"),
            "openssl genrsa (the service account key)",
        )?;

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Command::new(&assets.etcd);
        etcd.arg("--data-dir")
            .arg(d.join("etcd"))
            .args(["--listen-client-urls", &etcd_url])
            .args(["--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .arg(format!("--initial-cluster=default={peer_url}"));
        cp.processes.push(Process::spawn("etcd", etcd, &d)?);

        // The apiserver retries etcd until it answers, so both start at once.
        let mut apiserver = Command::new(&assets.apiserver);
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--secure-port={api_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .arg(format!("--service-account-key-file={}", key.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                key.display()
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--authorization-mode=RBAC")
            .arg("--service-cluster-ip-range=10.96.0.0/16");
        cp.processes
            .push(Process::spawn("kube-apiserver", apiserver, &d)?);

        let ca = cp.wait_for_serving_cert().await?;
        cp.ca_data = base64(&ca);
        cp.kubeconfig = cp.kubeconfig_in("default");
        std::fs::write(&cp.kubeconfig_path, &cp.kubeconfig).map_err(io("write the kubeconfig"))?;
        let client = cp.client().await?;
        cp.wait_for_apiserver(&client).await?;
        tracing::debug!(after = ?began.elapsed(), "kube-apiserver ready");

        kruise::install_kruise(&client, assets).await?;
        let mut kruise = Command::new(&assets.kruise_manager);
        kruise
            .arg("--enable-leader-election=false")
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .arg(format!("--health-probe-addr=127.0.0.1:{health_port}"))
            .arg("--enable-pprof=false")
            .env("KUBECONFIG", &cp.kubeconfig_path)
            .env("POD_NAMESPACE", "kruise-system")
            .env("WEBHOOK_HOST", "127.0.0.1")
            .env("WEBHOOK_PORT", webhook_port.to_string())
            .env("WEBHOOK_CERT_DIR", d.join("kruise-certs"));
        cp.processes
            .push(Process::spawn("kruise-manager", kruise, &d)?);
        cp.wait_for_kruise(&client, health_port).await?;
        cp.started_in = began.elapsed();
        tracing::info!(after = ?cp.started_in, server = %cp.server, "real control plane ready");
        Ok(cp)
    }

    /// The apiserver writes its self-signed serving certificate (with its CA) on start.
    async fn wait_for_serving_cert(&mut self) -> Result<Vec<u8>, Error> {
        let path = self.dir.path().join("certs").join("apiserver.crt");
        let began = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(pem) = std::fs::read(&path)
                && pem.ends_with(b"-----END CERTIFICATE-----\n")
            {
                return Ok(pem);
            }
            if began.elapsed() > STAGE_TIMEOUT {
                return Err(self.processes[1]
                    .not_ready(began.elapsed(), format!("{} to appear", path.display())));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_for_apiserver(&mut self, client: &kube::Client) -> Result<(), Error> {
        let began = Instant::now();
        let mut last = String::new();
        loop {
            self.check_alive()?;
            let req = http::Request::get("/readyz").body(Vec::new());
            if let Ok(req) = req {
                match client.request_text(req).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            if began.elapsed() > STAGE_TIMEOUT {
                return Err(
                    self.processes[1].not_ready(began.elapsed(), format!("GET /readyz: {last}"))
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kruise is ready when its health endpoint says so and it has written the CA of its
    /// webhook server into the mutating webhook configuration (until then pod creation fails).
    async fn wait_for_kruise(&mut self, client: &kube::Client, health: u16) -> Result<(), Error> {
        let began = Instant::now();
        let hooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let mut waiting_for = String::from("GET /readyz on its health address");
        loop {
            self.check_alive()?;
            if http_ok(health, "/readyz").await {
                waiting_for = String::from("a caBundle in kruise-mutating-webhook-configuration");
                if let Ok(Some(m)) = hooks.get_opt("kruise-mutating-webhook-configuration").await
                    && m.webhooks.as_ref().is_some_and(|ws| {
                        !ws.is_empty()
                            && ws.iter().all(|w| {
                                w.client_config
                                    .ca_bundle
                                    .as_ref()
                                    .is_some_and(|b| !b.0.is_empty())
                            })
                    })
                {
                    return Ok(());
                }
            }
            if began.elapsed() > STAGE_TIMEOUT {
                let kruise = self.processes.len() - 1;
                return Err(self.processes[kruise].not_ready(began.elapsed(), waiting_for));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        self.processes.iter_mut().try_for_each(Process::check_alive)
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A kubeconfig file (default namespace `default`); it lives as long as the control plane.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The kubeconfig YAML of [`ControlPlane::kubeconfig_path`].
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// A kubeconfig whose context's namespace is `namespace` (token auth, the apiserver's CA).
    pub fn kubeconfig_in(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: baton-realcp
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: baton-realcp
  context:
    cluster: baton-realcp
    user: admin
    namespace: {namespace}
current-context: baton-realcp
preferences: {{}}
",
            server = self.server,
            ca = self.ca_data,
            token = self.token,
        )
    }

    /// A new client (in the caller's runtime), default namespace `default`.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client_in("default").await
    }

    /// A new client whose default namespace is `namespace`.
    pub async fn client_in(&self, namespace: &str) -> Result<kube::Client, Error> {
        client_from_kubeconfig(&self.kubeconfig_in(namespace)).await
    }

    /// How long [`ControlPlane::start`] took, from creating the folder to Kruise ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The folder holding the processes' logs (`etcd.log`, `kube-apiserver.log`,
    /// `kruise-manager.log`), data and certificates.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A client for a kubeconfig given as YAML.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, Error> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(Error::Kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(Error::Kubeconfig)?;
    kube::Client::try_from(config).map_err(Error::Client)
}

/// Base64 as Kubernetes encodes `[]byte` (what a kubeconfig's `*-data` fields hold).
fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn run_command(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd.output().map_err(io(format!("run {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        what: what.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// Whether `GET http://127.0.0.1:PORT/PATH` answers 200 (a plain HTTP/1.0 request; the
/// health endpoint is the only plain-HTTP server here).
async fn http_ok(port: u16, path: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await?;
        std::io::Result::Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

/// The test binary's one control plane, started by the first caller.
static SHARED: tokio::sync::OnceCell<Result<Arc<ControlPlane>, Arc<Error>>> =
    tokio::sync::OnceCell::const_new();

/// The test binary's shared control plane, started on first use.
///
/// The processes are not tied to any tokio runtime, so tests on separate runtimes share it.
/// A start that failed is not retried: every caller gets the same error.
pub async fn shared() -> Result<Arc<ControlPlane>, Arc<Error>> {
    SHARED
        .get_or_init(|| async {
            let started = ControlPlane::start().await;
            if let Ok(cp) = &started {
                let line = format!(
                    "real control plane started in {:.1} s ({})\n",
                    cp.started_in().as_secs_f64(),
                    cp.dir().display()
                );
                // Straight to stderr: test output capture would hide it.
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            started.map(Arc::new).map_err(Arc::new)
        })
        .await
        .clone()
}

/// For tests: the shared control plane, or `None` when the tier is to be skipped.
///
/// Without `BATON_CONTROL_PLANE` (or with a folder missing an asset) a developer's run skips
/// the test and stderr gets one line, once per test binary; with `CI` set the test fails
/// instead, because CI must run the tier. A control plane that fails to start fails the
/// test with the error (which quotes the failing process's log).
///
/// # Panics
/// When the tier cannot run in CI, or the control plane fails to start.
pub async fn shared_or_skip() -> Option<Arc<ControlPlane>> {
    if let Err(e) = Assets::from_env() {
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
            panic!("the real control plane tier must run in CI: {e}");
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Straight to stderr: test output capture would hide it.
            let _ = std::io::stderr().write_all(format!("{SKIP_LINE}: {e}\n").as_bytes());
        });
        return None;
    }
    match shared().await {
        Ok(cp) => Some(cp),
        Err(e) => panic!("the real control plane did not start: {}", chain(&*e)),
    }
}

/// An error and its sources, one per line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_binaries_names_the_first_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = Assets::in_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::MissingAsset { path } if path.ends_with("kube-apiserver")),
            "{err}"
        );
    }

    #[test]
    fn the_log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let t = tail(&log);
        assert!(t.starts_with("line 70\n"), "{t}");
        assert!(t.ends_with("line 99"), "{t}");
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
    }
}
