//! The fault proxy in front of an API server, through the interfaces its users
//! have: kube-rs clients and kube-runtime watchers (and kubectl) pointed at its
//! kubeconfig, plain HTTP for the exact shape of what it injects. Every
//! scenario runs against the simulator served over HTTP, and against a real
//! kube-apiserver.

use std::sync::Arc;
use std::time::Duration;

use baton_testbed::controlplane::{self, ControlPlane};
use baton_testbed::proxy::{FaultConfig, Proxy, Upstream};
use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the proxy forwards to, kept alive for the test's length.
enum Backend {
    Sim {
        _sim: baton_sim::Sim,
        served: baton_sim::Served,
    },
    Real {
        cp: Arc<ControlPlane>,
    },
}

impl Backend {
    async fn sim() -> Backend {
        let sim = baton_sim::Sim::new(baton_sim::SimConfig::default());
        let served = sim.serve().await.unwrap();
        Backend::Sim { _sim: sim, served }
    }

    /// The test binary's shared real control plane, or `None` when the tier
    /// is skipped (no `BATON_CONTROL_PLANE` outside CI).
    async fn real() -> Option<Backend> {
        let cp = controlplane::shared_or_skip().await?;
        Some(Backend::Real { cp })
    }

    fn upstream(&self) -> Upstream {
        match self {
            Backend::Sim { served, .. } => Upstream {
                server: served.apiserver.clone(),
                ..Upstream::default()
            },
            Backend::Real { cp } => Upstream::from_kubeconfig(cp.kubeconfig()).unwrap(),
        }
    }
}

/// A kube-rs client of the proxy's kubeconfig. kube-rs retries 429/503/504 by
/// itself unless told not to; `retry` says which client a test wants.
async fn client(proxy: &Proxy, retry: bool) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(&proxy.kubeconfig()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = retry;
    kube::Client::try_from(config).unwrap()
}

/// Object names no other run on the same (shared, long-lived) server has used.
fn unique(backend: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{backend}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn lease(name: &str, holder: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder},
    }))
    .unwrap()
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec.as_ref()?.holder_identity.as_deref()
}

fn faults(v: Value) -> FaultConfig {
    serde_json::from_value(v).unwrap()
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

async fn gets_pass_and_an_injected_503_reaches_the_client_once(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client(&proxy, false).await, "default");
    let name = format!("{prefix}-503");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("a"));

    proxy.faults().set(faults(json!({
        "errors": [{"verb": "get", "resource": "leases", "code": 503, "count": 1}]
    })));
    let err = leases.get(&name).await.unwrap_err();
    assert_eq!(api_code(&err), Some(503), "{err:?}");
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("a"));

    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("503 get leases"), 1, "{stats:?}");
    assert_eq!(stats.requests("get leases"), 3, "{stats:?}");
    assert_eq!(stats.requests("create leases"), 1, "{stats:?}");
    assert_eq!(proxy.faults().get().errors[0].count, Some(0));
}

async fn a_client_that_retries_absorbs_one_503(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client(&proxy, true).await, "default");
    let name = format!("{prefix}-retry");
    proxy.faults().set(faults(json!({
        "errors": [{"verb": "create", "resource": "leases", "code": 503, "count": 1}]
    })));
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let stats = proxy.faults().stats();
    assert_eq!(stats.requests("create leases"), 2, "{stats:?}");
    assert_eq!(stats.injected("503 create leases"), 1, "{stats:?}");
}

async fn a_dropped_write_fails_at_the_client_but_is_applied(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client(&proxy, false).await, "default");
    let name = format!("{prefix}-drop");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    proxy.faults().set(faults(json!({
        "drops": [{"verb": "patch", "resource": "leases", "count": 1}]
    })));
    let patch = json!({"spec": {"holderIdentity": "b"}});
    let err = leases
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    // Not an answer from the server: the connection broke.
    assert_eq!(api_code(&err), None, "{err:?}");
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("b"));
    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("drop patch leases"), 1, "{stats:?}");
    assert_eq!(stats.requests("patch leases"), 1, "{stats:?}");
}

async fn latency_delays_only_the_requests_it_names(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client(&proxy, false).await, "default");
    let name = format!("{prefix}-slow");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    proxy.faults().set(faults(json!({
        "latency": [{"verb": "get", "resource": "leases", "ms": 400}]
    })));
    let started = std::time::Instant::now();
    leases.get(&name).await.unwrap();
    let slow = started.elapsed();
    let started = std::time::Instant::now();
    leases.list(&Default::default()).await.unwrap();
    let fast = started.elapsed();
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    assert!(fast < Duration::from_millis(400), "{fast:?}");
    assert_eq!(proxy.faults().stats().injected("delay get leases"), 1);
}

/// What a kube-runtime watcher through the proxy reports: a relist starts,
/// or an object is seen (added or changed) with its holder.
#[derive(Debug, PartialEq)]
enum Seen {
    Relist,
    Lease(String, Option<String>),
}

fn watch_leases(
    client: kube::Client,
) -> (mpsc::UnboundedReceiver<Seen>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(leases, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let seen = match event {
                Ok(watcher::Event::Init) => Seen::Relist,
                Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => Seen::Lease(
                    l.metadata.name.clone().unwrap_or_default(),
                    holder(&l).map(String::from),
                ),
                // Errors (the 410 among them) are the watcher's to recover from.
                Ok(_) | Err(_) => continue,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    (rx, task)
}

/// Waits (at most 10 s) until the watcher reports `want`, returning how many
/// relists it reported on the way.
async fn until_seen(rx: &mut mpsc::UnboundedReceiver<Seen>, want: Seen) -> usize {
    let mut relists = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Some(seen) if seen == want => return,
                Some(Seen::Relist) => relists += 1,
                Some(_) => {}
                None => panic!("the watcher ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the watcher never reported {want:?}"));
    relists
}

fn seen(name: &str, holder: &str) -> Seen {
    Seen::Lease(name.to_string(), Some(holder.to_string()))
}

async fn a_watcher_resumes_after_its_watch_is_cut(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let client = client(&proxy, false).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let (a, b) = (format!("{prefix}-cut-a"), format!("{prefix}-cut-b"));
    leases
        .create(&PostParams::default(), &lease(&a, "1"))
        .await
        .unwrap();
    let (mut rx, task) = watch_leases(client);
    until_seen(&mut rx, seen(&a, "1")).await;
    // Only once the watch is open may it be cut.
    wait_for(|| proxy.faults().stats().requests("watch leases") == 1).await;

    proxy.faults().cut_watches();
    wait_for(|| proxy.faults().stats().requests("watch leases") == 2).await;
    leases
        .create(&PostParams::default(), &lease(&b, "1"))
        .await
        .unwrap();
    let patch = json!({"spec": {"holderIdentity": "2"}});
    leases
        .patch(&a, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(until_seen(&mut rx, seen(&b, "1")).await, 0);
    assert_eq!(until_seen(&mut rx, seen(&a, "2")).await, 0);
    task.abort();

    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("cut watch leases"), 1, "{stats:?}");
    // Resumed from where it was: a new watch, no new list.
    assert_eq!(stats.requests("list leases"), 1, "{stats:?}");
}

async fn watches_cut_after_each_event_lose_nothing(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    proxy.faults().set(faults(json!({"watchCutAfter": 1})));
    let client = client(&proxy, false).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let (mut rx, task) = watch_leases(client);
    let name = format!("{prefix}-every");
    leases
        .create(&PostParams::default(), &lease(&name, "0"))
        .await
        .unwrap();
    until_seen(&mut rx, seen(&name, "0")).await;
    for i in 1..=3 {
        let patch = json!({"spec": {"holderIdentity": i.to_string()}});
        leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        until_seen(&mut rx, seen(&name, &i.to_string())).await;
    }
    task.abort();
    let stats = proxy.faults().stats();
    assert!(stats.injected("cut watch leases") >= 3, "{stats:?}");
    assert!(stats.requests("watch leases") >= 4, "{stats:?}");
    assert_eq!(stats.requests("list leases"), 1, "{stats:?}");
}

async fn a_watcher_relists_after_410_expired(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let client = client(&proxy, false).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let name = format!("{prefix}-expire");
    leases
        .create(&PostParams::default(), &lease(&name, "1"))
        .await
        .unwrap();
    let (mut rx, task) = watch_leases(client);
    until_seen(&mut rx, seen(&name, "1")).await;
    wait_for(|| proxy.faults().stats().requests("watch leases") == 1).await;

    proxy.faults().set(faults(
        json!({"expire": [{"resource": "leases", "count": 1}]}),
    ));
    proxy.faults().cut_watches();
    // The resumed watch is expired; the watcher lists again and sees the lease anew.
    assert_eq!(until_seen(&mut rx, seen(&name, "1")).await, 1);
    let patch = json!({"spec": {"holderIdentity": "2"}});
    leases
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(until_seen(&mut rx, seen(&name, "2")).await, 0);
    task.abort();

    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("expire watch leases"), 1, "{stats:?}");
    assert_eq!(stats.requests("list leases"), 2, "{stats:?}");
    assert_eq!(stats.requests("watch leases"), 3, "{stats:?}");
}

/// Polls `cond` every 10 ms for at most 10 s.
async fn wait_for(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not met within 10 s");
}

/// The exact answers the proxy makes up, over plain HTTP.
async fn injected_answers_are_shaped_like_the_apiservers(backend: Backend, _prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    proxy.faults().set(faults(json!({
        "errors": [{"verb": "list", "resource": "pods", "code": 429, "retryAfterSeconds": 3}],
        "expire": [{"resource": "leases"}]
    })));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = proxy.url();

    let r = http
        .get(format!("{base}/api/v1/namespaces/default/pods"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["code"], 429);
    assert_eq!(body["details"]["retryAfterSeconds"], 3);

    let url = format!(
        "{base}/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=true&resourceVersion=7"
    );
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["transfer-encoding"], "chunked");
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        event,
        json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: 7 (8)", "reason": "Expired", "code": 410}})
    );
    // What no rule matches is forwarded.
    let r = http
        .get(format!("{base}/api/v1/namespaces/default/pods/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("429 list pods"), 1, "{stats:?}");
    assert_eq!(stats.injected("expire watch leases"), 1, "{stats:?}");
    assert_eq!(stats.requests("get pods"), 1, "{stats:?}");
}

/// kubectl 1.32 takes the proxy's kubeconfig as it is.
async fn kubectl_works_through_the_proxy(backend: Backend, prefix: &str) {
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, proxy.kubeconfig()).unwrap();
    let leases: Api<Lease> = Api::namespaced(client(&proxy, false).await, "default");
    let name = format!("{prefix}-kubectl");
    leases
        .create(&PostParams::default(), &lease(&name, "k"))
        .await
        .unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "get",
            "lease",
            &name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "k");
}

/// One test per scenario and backend: `sim::NAME` and `real::NAME`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sim {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let backend = super::Backend::sim().await;
                    super::$scenario(backend, &super::unique("sim")).await;
                }
            )*
        }

        mod real {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(backend) = super::Backend::real().await else {
                        return;
                    };
                    super::$scenario(backend, &super::unique("real")).await;
                }
            )*
        }
    };
}

on_both_backends!(
    gets_pass_and_an_injected_503_reaches_the_client_once,
    a_client_that_retries_absorbs_one_503,
    a_dropped_write_fails_at_the_client_but_is_applied,
    latency_delays_only_the_requests_it_names,
    a_watcher_resumes_after_its_watch_is_cut,
    watches_cut_after_each_event_lose_nothing,
    a_watcher_relists_after_410_expired,
    injected_answers_are_shaped_like_the_apiservers,
    kubectl_works_through_the_proxy,
);

/// A dropped proxy stops serving: its port no longer answers.
#[tokio::test]
async fn a_dropped_proxy_closes_its_port() {
    let backend = Backend::sim().await;
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let url = format!("{}/version", proxy.url());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(http.get(&url).send().await.unwrap().status().is_success());
    drop(proxy);
    tokio::task::yield_now().await;
    // A new client: the old one's pooled connection would fail differently.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let err = http.get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}

/// Another process drives the proxy over HTTP: sets faults, reads the stats,
/// cuts the watches.
#[tokio::test]
async fn faults_are_set_and_read_over_http() {
    let backend = Backend::sim().await;
    let proxy = Proxy::start(backend.upstream()).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let control = |p: &str| format!("{}/proxy/v1/{p}", proxy.url());
    let leases = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/default/leases",
        proxy.url()
    );

    let rules =
        json!({"errors": [{"verb": "list", "resource": "leases", "code": 500, "count": 1}]});
    let r = http
        .put(control("faults"))
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut with_defaults = rules.clone();
    with_defaults["errors"][0]["rate"] = json!(1.0);
    assert_eq!(r.json::<Value>().await.unwrap(), with_defaults);
    assert_eq!(http.get(&leases).send().await.unwrap().status(), 500);
    assert_eq!(http.get(&leases).send().await.unwrap().status(), 200);
    let r = http.get(control("faults")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["count"], 0);
    let stats: Value = http
        .get(control("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], json!({"list leases": 2}));
    assert_eq!(stats["injected"], json!({"500 list leases": 1}));

    let bogus = http
        .put(control("faults"))
        .body(r#"{"bogus": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 400);
    assert_eq!(bogus.json::<Value>().await.unwrap()["reason"], "BadRequest");

    // An open watch ends when cut.
    let mut watch = http
        .get(format!("{leases}?watch=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let r = http.post(control("cut")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while watch.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch was not cut");
    assert_eq!(proxy.faults().stats().injected("cut watch leases"), 1);
}

/// Watch events cut at odd places by the network, several to a chunk, and
/// bookmarks: the proxy relays whole JSON events and counts only real ones.
/// A protobuf watch (length-prefixed, no lines) passes through uncounted.
#[tokio::test]
async fn a_watch_cut_after_n_events_ends_on_an_event_boundary() {
    // An upstream that sends one watch answer in deliberately awkward chunks,
    // under the content type its path names.
    let chunks = [
        "{\"type\":\"ADDED\",\"object\":{\"n\":1",
        "}}\n{\"type\":\"BOOKMARK\",\"object\":{}}\n{\"type\":\"MODIFIED\",",
        "\"object\":{\"n\":2}}\n{\"type\":\"MODIFIED\",\"object\":{\"n\":3}}\n",
        "{\"type\":\"MODIFIED\",\"object\":{\"n\":4}}\n",
    ];
    let answer = |content_type: &'static str| {
        move || async move {
            let body = futures::stream::iter(chunks).then(|c| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, std::convert::Infallible>(c)
            });
            (
                [(http::header::CONTENT_TYPE, content_type)],
                axum::body::Body::from_stream(body),
            )
        }
    };
    let app = axum::Router::new()
        .route(
            "/api/v1/pods",
            axum::routing::get(answer("application/json")),
        )
        .route(
            "/api/v1/secrets",
            axum::routing::get(answer("application/vnd.kubernetes.protobuf;stream=watch")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let upstream = tokio::spawn(async move { axum::serve(listener, app).await });

    let proxy = Proxy::start(Upstream {
        server,
        ..Upstream::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let watch = async |resource: &str| {
        http.get(format!("{}/api/v1/{resource}?watch=true", proxy.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    assert_eq!(watch("pods").await, chunks.concat(), "relayed as it came");
    proxy.faults().set(faults(json!({"watchCutAfter": 2})));
    assert_eq!(
        watch("pods").await,
        "{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n{\"type\":\"BOOKMARK\",\"object\":{}}\n\
         {\"type\":\"MODIFIED\",\"object\":{\"n\":2}}\n"
    );
    assert_eq!(watch("secrets").await, chunks.concat(), "not JSON: not cut");
    let stats = proxy.faults().stats();
    assert_eq!(stats.injected("cut watch pods"), 1, "{stats:?}");
    assert_eq!(stats.injected("cut watch secrets"), 0, "{stats:?}");
    upstream.abort();
}
