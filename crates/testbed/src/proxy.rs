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
//! rules and their JSON shape). Upgrades (`exec`, `port-forward`) are not
//! supported.

mod audit;
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
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use self::audit::{Audit, audit};
use self::faults::{Action, Verdict};
pub use self::faults::{DropRule, ErrorRule, ExpireRule, FaultConfig, Faults, LatencyRule, Stats};

/// The API server the proxy forwards to.
#[derive(Clone, Debug, Default)]
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

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
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
    let a = audit(req.method(), req.uri().path(), req.uri().query());
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
        // Wait for the whole answer, so the write has certainly been applied.
        if let Err(error) = response.bytes().await {
            tracing::debug!(%error, "upstream answer to a dropped request broke");
        }
        drop_now.notify_one();
        return std::future::pending().await;
    }
    Ok(relay(&shared, response, &a))
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
fn relay(shared: &Shared, upstream: reqwest::Response, a: &Audit) -> Response<Body> {
    let mut builder = Response::builder().status(upstream.status());
    let is_watch = a.verb == "watch" && upstream.status().is_success();
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in upstream.headers() {
            if !hop_by_hop(name) && !(is_watch && name == header::CONTENT_LENGTH) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let body: Body = if is_watch {
        let pump = WatchPump {
            upstream,
            line: BytesMut::new(),
            sent: 0,
            cut_after: shared.faults.watch_cut_after(),
            cuts: shared.faults.cuts(),
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

/// Relays one watch stream, newline-delimited JSON events, one event per frame.
struct WatchPump {
    upstream: reqwest::Response,
    /// Bytes of the event not yet complete.
    line: BytesMut,
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
            if self.cut_after.is_some_and(|n| self.sent >= n) {
                self.faults.record("cut", "watch", &self.resource);
                return None;
            }
            if let Some(end) = self.line.iter().position(|b| *b == b'\n') {
                let event = self.line.split_to(end + 1).freeze();
                if !is_bookmark(&event) {
                    self.sent += 1;
                }
                return Some((Ok(Frame::data(event)), self));
            }
            tokio::select! {
                changed = self.cuts.changed() => {
                    if changed.is_ok() {
                        self.faults.record("cut", "watch", &self.resource);
                        return None;
                    }
                }
                chunk = self.upstream.chunk() => match chunk {
                    Ok(Some(chunk)) => self.line.extend_from_slice(&chunk),
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

fn status_json(code: u16, reason: &str, message: &str) -> serde_json::Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = status_json(code.as_u16(), reason, message).to_string();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| empty(code))
}

/// An error answered in the proxy's name, shaped as the apiserver's own.
fn injected_error(code: u16, retry_after_seconds: Option<u64>, a: &Audit) -> Response<Body> {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = status_json(
        code.as_u16(),
        reason(code.as_u16()),
        &format!(
            "{} injected by baton's fault proxy ({} {})",
            code, a.verb, a.resource
        ),
    );
    let mut response = Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(s) = retry_after_seconds {
        body["details"] = json!({"retryAfterSeconds": s});
        response = response.header(header::RETRY_AFTER, s);
    }
    response
        .body(full(body.to_string()))
        .unwrap_or_else(|_| empty(code))
}

/// A watch answered as an apiserver answers one whose `resourceVersion` it no
/// longer has: status 200, one `ERROR` event carrying a 410 `Expired` Status,
/// then the end of the stream.
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
    let event = json!({
        "type": "ERROR",
        "object": status_json(410, "Expired", &format!("too old resource version: {rv} ({oldest})")),
    });
    tracing::debug!(resource = %a.resource, rv, "fault proxy expires a watch");
    let line = Bytes::from(format!("{event}\n"));
    // A stream, not a sized body: the apiserver's watch answers are chunked.
    let body = StreamBody::new(stream::iter([Ok::<_, std::io::Error>(Frame::data(line))]));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed_unsync(body))
        .unwrap_or_else(|_| empty(StatusCode::OK))
}

fn full(body: String) -> Body {
    BodyExt::boxed_unsync(
        http_body_util::Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {}),
    )
}

fn empty(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(BodyExt::boxed_unsync(
        http_body_util::Empty::new().map_err(|never: Infallible| match never {}),
    ));
    *r.status_mut() = code;
    r
}
