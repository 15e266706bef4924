//! A fault-injecting proxy in front of any Kubernetes API server.
//!
//! The simulator injects API faults from inside (`baton_sim::faults`), which
//! proves the engine against the simulator's idea of a failure. This proxy
//! injects the same faults between a client and a real apiserver, so the
//! fault scenarios also run against the real thing: 5xx and 429 answers, a
//! write the server applied whose answer never arrives (apply-then-drop),
//! watch streams cut mid-way, and watches answered `410 Expired`.
//!
//! It serves plain HTTP on 127.0.0.1 and forwards every request (method, path,
//! query, headers, body) to the upstream over HTTP or HTTPS, adding the
//! upstream's bearer token itself, so its kubeconfig carries no credentials.
//! Responses stream through chunk by chunk; watch streams event by event. What
//! it does to which request is set through [`Faults`] (see [`faults`] for the
//! rules and their JSON shape), or over HTTP at `/proxy/v1/` (see `control`).
//! Upgrades (`exec`, `port-forward`) are not supported.

mod audit;
mod control;
pub mod faults;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use self::audit::{Audit, audit};
use self::faults::{Action, Verdict};
pub use self::faults::{DropRule, ErrorRule, ExpireRule, FaultConfig, Faults, LatencyRule, Stats};

/// The API server the proxy forwards to.
#[derive(Clone, Default)]
pub struct Upstream {
    /// `https://127.0.0.1:6443`, `http://127.0.0.1:8001`; a path prefix is kept.
    pub server: String,
    /// PEM certificates to trust for an HTTPS server (its CA), besides the
    /// usual web roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Sent upstream as `Authorization: Bearer …` on every request, replacing
    /// whatever the client sent.
    pub token: Option<String>,
}

/// Without the token, which must not end up in logs or panic messages.
impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("server", &self.server)
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Upstream {
    /// The server, CA and bearer token of a kubeconfig's current context, so
    /// the proxy can front whatever cluster a kubeconfig names. Only token
    /// authentication is carried over: a user with none (client certificates,
    /// exec plugins) is forwarded anonymously.
    pub fn from_kubeconfig(yaml: &str) -> Result<Upstream, ProxyError> {
        let bad = |what: &str| ProxyError::Kubeconfig(what.to_string());
        let doc: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|e| ProxyError::Kubeconfig(e.to_string()))?;
        let named = |list: &str, name: &str, field: &str| {
            doc[list]
                .as_sequence()
                .and_then(|items| items.iter().find(|i| i["name"].as_str() == Some(name)))
                .map(|i| i[field].clone())
        };
        let current = doc["current-context"]
            .as_str()
            .ok_or_else(|| bad("no current-context"))?;
        let context = named("contexts", current, "context")
            .ok_or_else(|| bad("the current context is missing"))?;
        let cluster = context["cluster"]
            .as_str()
            .and_then(|c| named("clusters", c, "cluster"))
            .ok_or_else(|| bad("the current context's cluster is missing"))?;
        let user = context["user"]
            .as_str()
            .and_then(|u| named("users", u, "user"))
            .unwrap_or_default();
        let server = cluster["server"]
            .as_str()
            .ok_or_else(|| bad("the cluster has no server"))?
            .to_string();
        let ca_pem = if let Some(data) = cluster["certificate-authority-data"].as_str() {
            // Base64, decoded the way k8s-openapi decodes `[]byte` fields.
            let bytes: k8s_openapi::ByteString =
                serde_json::from_value(serde_json::Value::String(data.to_string()))
                    .map_err(|_| bad("certificate-authority-data is not base64"))?;
            Some(bytes.0)
        } else if let Some(path) = cluster["certificate-authority"].as_str() {
            Some(std::fs::read(path).map_err(|e| {
                ProxyError::Kubeconfig(format!("cannot read certificate-authority {path}: {e}"))
            })?)
        } else {
            None
        };
        let token = if let Some(t) = user["token"].as_str() {
            Some(t.to_string())
        } else if let Some(path) = user["tokenFile"].as_str() {
            let t = std::fs::read_to_string(path).map_err(|e| {
                ProxyError::Kubeconfig(format!("cannot read tokenFile {path}: {e}"))
            })?;
            Some(t.trim().to_string())
        } else {
            None
        };
        Ok(Upstream {
            server,
            ca_pem,
            token,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("unusable kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("upstream server {server:?} is not an http(s) URL")]
    Server { server: String },
    #[error("the upstream CA is not usable PEM: {0}")]
    Ca(#[source] reqwest::Error),
    #[error("the upstream token cannot be sent as a header")]
    Token,
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(#[source] std::io::Error),
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What every connection needs: where to forward, with what, and the faults.
struct Shared {
    /// The upstream URL without a trailing `/`; a request's path and query follow.
    base: String,
    client: reqwest::Client,
    authorization: Option<HeaderValue>,
    faults: Faults,
}

/// A running proxy; it stops (and drops every open connection) when dropped.
pub struct Proxy {
    url: String,
    faults: Faults,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 at a free port and serves in the background, with
    /// no faults until [`Proxy::faults`] sets some.
    pub async fn start(upstream: Upstream) -> Result<Proxy, ProxyError> {
        Proxy::start_with(upstream, Faults::default()).await
    }

    /// Like [`Proxy::start`], with faults that may already hold rules.
    pub async fn start_with(upstream: Upstream, faults: Faults) -> Result<Proxy, ProxyError> {
        let parsed = reqwest::Url::parse(&upstream.server).map_err(|_| ProxyError::Server {
            server: upstream.server.clone(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProxyError::Server {
                server: upstream.server,
            });
        }
        // Environment proxies (HTTPS_PROXY) are for the outside world, never
        // for the API server under test; no timeout, as watches last.
        let mut client = reqwest::Client::builder().no_proxy();
        if let Some(pem) = &upstream.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(ProxyError::Ca)? {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client.build().map_err(ProxyError::Client)?;
        let authorization = upstream
            .token
            .as_deref()
            .map(|t| {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| ProxyError::Token)?;
                v.set_sensitive(true);
                Ok(v)
            })
            .transpose()?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ProxyError::Listen)?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(ProxyError::Listen)?
        );
        let shared = Arc::new(Shared {
            base: upstream.server.trim_end_matches('/').to_string(),
            client,
            authorization,
            faults: faults.clone(),
        });
        let task = tokio::spawn(accept(listener, shared));
        Ok(Proxy { url, faults, task })
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The live faults: set rules, cut watches, read what was injected.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A kubeconfig (cluster, user and context `baton-proxy`, namespace
    /// `default`) pointing kube-rs or kubectl at the proxy. It has no
    /// credentials: the proxy adds the upstream's.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: baton-proxy
  cluster:
    server: {}
users:
- name: baton-proxy
  user: {{}}
contexts:
- name: baton-proxy
  context:
    cluster: baton-proxy
    user: baton-proxy
    namespace: default
current-context: baton-proxy
preferences: {{}}
",
            self.url
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until aborted; aborting drops the connection set,
/// which ends every connection too.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!(%error, "fault proxy cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one client connection until it closes, or until a request on it
/// asks for the connection to be dropped unanswered.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Watch events are small writes that must not wait for a delayed ACK.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a proxy connection");
    }
    let drop_now = Arc::new(Notify::new());
    let service = {
        let drop_now = drop_now.clone();
        service_fn(move |req| handle(shared.clone(), req, drop_now.clone()))
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => if let Err(error) = result {
            tracing::debug!(%error, "fault proxy connection ended");
        },
        // Dropping the connection closes the socket with the answer unsent.
        () = drop_now.notified() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    drop_now: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path().starts_with(control::PREFIX) {
        return Ok(control::serve(&shared.faults, req).await);
    }
    let a = audit(req.method(), req.uri().path(), req.uri().query());
    // Listening from the moment the request arrives: a watch cut while the
    // upstream is still answering is cut too.
    let cuts = shared.faults.cuts();
    let Verdict { delay, action } = shared.faults.judge(&a.verb, &a.resource, a.resumes);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match action {
        Action::Error {
            code,
            retry_after_seconds,
        } => return Ok(injected_error(code, retry_after_seconds, &a)),
        Action::Expire => return Ok(expired(&a, req.uri().query())),
        Action::Forward | Action::Drop => {}
    }
    let response = match forward(&shared, req).await {
        Ok(r) => r,
        Err(error) => {
            tracing::debug!(%error, verb = %a.verb, resource = %a.resource, "upstream failed");
            return Ok(status(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                &format!("baton fault proxy: the upstream API server failed: {error}"),
            ));
        }
    };
    if action == Action::Drop {
        // Wait for the whole answer, so the write has certainly been applied;
        // a watch's answer has no end, its headers are enough.
        if a.verb != "watch"
            && let Err(error) = response.bytes().await
        {
            tracing::debug!(%error, "upstream answer to a dropped request broke");
        }
        drop_now.notify_one();
        return std::future::pending().await;
    }
    Ok(relay(&shared, response, &a, cuts))
}

/// Headers that describe one hop's connection, not the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::HOST,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<reqwest::Response, ForwardError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path}", shared.base);
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(auth) = &shared.authorization {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    // Requests are small (objects, patches): read whole, then send.
    let body = body
        .collect()
        .await
        .map_err(ForwardError::Client)?
        .to_bytes();
    let upstream = shared
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(ForwardError::Upstream)?;
    Ok(upstream)
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("reading the client's request: {0}")]
    Client(#[source] hyper::Error),
    #[error("{0}")]
    Upstream(#[source] reqwest::Error),
}

/// The upstream's answer, streamed back; a watch is passed event by event so
/// it can be cut at an event boundary.
fn relay(
    shared: &Shared,
    upstream: reqwest::Response,
    a: &Audit,
    cuts: watch::Receiver<u64>,
) -> Response<Body> {
    let mut builder = Response::builder().status(upstream.status());
    let is_watch = a.verb == "watch" && upstream.status().is_success();
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in upstream.headers() {
            if !(hop_by_hop(name) || is_watch && name == header::CONTENT_LENGTH) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let body: Body = if is_watch {
        let framed = upstream
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        let pump = WatchPump {
            framed,
            upstream,
            line: BytesMut::new(),
            scanned: 0,
            sent: 0,
            cut_after: shared.faults.watch_cut_after(),
            cuts,
            faults: shared.faults.clone(),
            resource: a.resource.clone(),
            done: false,
        };
        BodyExt::boxed_unsync(StreamBody::new(stream::unfold(pump, WatchPump::next)))
    } else {
        let chunks = stream::unfold(Some(upstream), |upstream| async move {
            let mut upstream = upstream?;
            match upstream.chunk().await {
                Ok(Some(chunk)) => Some((Ok(Frame::data(chunk)), Some(upstream))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        });
        BodyExt::boxed_unsync(StreamBody::new(chunks))
    };
    builder
        .body(body)
        .unwrap_or_else(|_| empty(StatusCode::BAD_GATEWAY))
}

/// Relays one watch stream: newline-delimited JSON events one event per
/// frame, anything else (protobuf watches) chunk by chunk.
struct WatchPump {
    upstream: reqwest::Response,
    /// JSON events, which the pump splits, counts and cuts after `cut_after`;
    /// a protobuf watch is only ever cut by [`Faults::cut_watches`].
    framed: bool,
    /// Bytes received and not yet relayed: the rest of an event, or several.
    line: BytesMut,
    /// How much of `line` is known to hold no newline.
    scanned: usize,
    /// Events relayed, bookmarks not counted.
    sent: u32,
    cut_after: Option<u32>,
    cuts: watch::Receiver<u64>,
    faults: Faults,
    resource: String,
    done: bool,
}

impl WatchPump {
    async fn next(mut self) -> Option<(Result<Frame<Bytes>, std::io::Error>, WatchPump)> {
        loop {
            if self.done {
                return None;
            }
            if self.framed && self.cut_after.is_some_and(|n| self.sent >= n) {
                self.faults.record("cut", "watch", &self.resource);
                return None;
            }
            if let Some(end) = self.line[self.scanned..].iter().position(|b| *b == b'\n') {
                let event = self.line.split_to(self.scanned + end + 1).freeze();
                self.scanned = 0;
                // Parsing every event only to count it costs; only a limit needs the count.
                if self.cut_after.is_some() && !is_bookmark(&event) {
                    self.sent += 1;
                }
                return Some((Ok(Frame::data(event)), self));
            }
            tokio::select! {
                // Never an error: `self.faults` keeps the sender alive.
                _ = self.cuts.changed() => {
                    self.faults.record("cut", "watch", &self.resource);
                    return None;
                }
                chunk = self.upstream.chunk() => match chunk {
                    Ok(Some(chunk)) if !self.framed => {
                        return Some((Ok(Frame::data(chunk)), self));
                    }
                    Ok(Some(chunk)) => {
                        self.scanned = self.line.len();
                        self.line.extend_from_slice(&chunk);
                    }
                    Ok(None) => {
                        self.done = true;
                        if !self.line.is_empty() {
                            let rest = std::mem::take(&mut self.line).freeze();
                            return Some((Ok(Frame::data(rest)), self));
                        }
                    }
                    Err(e) => {
                        self.done = true;
                        return Some((Err(std::io::Error::other(e)), self));
                    }
                },
            }
        }
    }
}

fn is_bookmark(event: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(event).is_ok_and(|v| v["type"] == "BOOKMARK")
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// A failure `Status`, its fields in the order the apiserver writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, serde_json::Value>,
    status: &'static str,
    message: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
    code: u16,
}

impl<'a> Status<'a> {
    fn failure(code: u16, reason: &'a str, message: &'a str) -> Status<'a> {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message,
            reason,
            details: None,
            code,
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = Status::failure(code.as_u16(), reason, message).to_json();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| empty(code))
}

/// An error answered in the proxy's name, shaped as the apiserver's own.
fn injected_error(code: u16, retry_after_seconds: Option<u64>, a: &Audit) -> Response<Body> {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!(
        "{code} injected by baton's fault proxy ({} {})",
        a.verb, a.resource
    );
    let mut body = Status::failure(code.as_u16(), reason(code.as_u16()), &message);
    let mut response = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(s) = retry_after_seconds {
        body.details = Some(json!({"retryAfterSeconds": s}));
        response = response.header(header::RETRY_AFTER, s);
    }
    response
        .body(full(body.to_json()))
        .unwrap_or_else(|_| empty(code))
}

/// A watch answered as an apiserver answers one whose `resourceVersion` it no
/// longer has: status 200, chunked `application/json`, one `ERROR` event
/// carrying a 410 `Expired` Status, then the end of the stream. (Checked on
/// kube-apiserver 1.20: its watch cache says "too old resource version: RV
/// (OLDEST-1)", a watch served from etcd "The resourceVersion for the provided
/// watch is too old."; the rest is byte for byte what it sends.)
fn expired(a: &Audit, query: Option<&str>) -> Response<Body> {
    let rv = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .unwrap_or("");
    // The apiserver names the version asked for and the oldest it still has,
    // less one; the proxy does not know the latter and says "just after".
    let oldest = rv
        .parse::<u64>()
        .map_or_else(|_| rv.to_string(), |n| (n + 1).to_string());
    let message = format!("too old resource version: {rv} ({oldest})");
    let status = Status::failure(410, "Expired", &message).to_json();
    tracing::debug!(resource = %a.resource, rv, "fault proxy expires a watch");
    let line = Bytes::from(format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n"));
    // A stream, not a sized body: the apiserver's watch answers are chunked.
    let body = StreamBody::new(stream::iter([Ok::<_, std::io::Error>(Frame::data(line))]));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed_unsync(body))
        .unwrap_or_else(|_| empty(StatusCode::OK))
}

fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed_unsync(
        http_body_util::Full::new(body.into()).map_err(|never: Infallible| match never {}),
    )
}

fn empty(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(BodyExt::boxed_unsync(
        http_body_util::Empty::new().map_err(|never: Infallible| match never {}),
    ));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_gives_server_ca_and_token_inline_or_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, token) = (dir.path().join("ca.crt"), dir.path().join("token"));
        std::fs::write(&ca, "PEM").unwrap();
        std::fs::write(&token, "secret\n").unwrap();
        let yaml = |cluster: &str, user: &str| {
            format!(
                "current-context: b
contexts:
- {{name: a, context: {{cluster: x, user: x}}}}
- {{name: b, context: {{cluster: c, user: u}}}}
clusters:
- {{name: x, cluster: {{server: 'http://wrong'}}}}
- {{name: c, cluster: {{server: 'https://127.0.0.1:1', {cluster}}}}}
users:
- {{name: u, user: {{{user}}}}}
"
            )
        };
        let files = Upstream::from_kubeconfig(&yaml(
            &format!("certificate-authority: '{}'", ca.display()),
            &format!("tokenFile: '{}'", token.display()),
        ))
        .unwrap();
        assert_eq!(files.server, "https://127.0.0.1:1");
        assert_eq!(files.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(files.token.as_deref(), Some("secret"));
        let inline =
            Upstream::from_kubeconfig(&yaml("certificate-authority-data: UEVN", "token: t"))
                .unwrap();
        assert_eq!(inline.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(inline.token.as_deref(), Some("t"));
        let anonymous = Upstream::from_kubeconfig(&yaml("x: 1", "")).unwrap();
        assert_eq!((anonymous.ca_pem, anonymous.token), (None, None));
        assert!(Upstream::from_kubeconfig("current-context: nowhere").is_err());
    }
}
