//! The arbiter client (SPEC §3): `GET /v1/members` and `POST /v1/handover` over reqwest
//! with rustls, a per-request timeout, and retries with exponential backoff and full
//! jitter for timeouts, 5xx and connection errors. Nothing else is retried.
//!
//! The bearer token is read from `tokenFile` at every request (so rotated tokens work)
//! and is never kept, logged or printed. What a response means is decided by the pure
//! [`interpret_members`] and [`interpret_handover`].

use std::path::PathBuf;
use std::time::Duration;

use baton_engine::plan::ArbiterSpec;
use baton_engine::snapshot::{ArbiterView, Role};
use baton_engine::text::{names, span};
use serde::{Deserialize, Serialize};

/// First backoff step; doubled per attempt, capped at [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Cap of the backoff between polls while waiting for a 202 to show.
const POLL_CAP: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ArbiterError {
    #[error("invalid arbiter url {0:?}: expected http:// or https://")]
    BadUrl(String),
    #[error("cannot read the arbiter CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the arbiter CA file {path} holds no valid PEM certificate")]
    BadCa {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("the arbiter CA file {path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot build the arbiter http client")]
    Client(#[source] reqwest::Error),
    #[error("cannot read the arbiter token file {path}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("arbiter request {what} failed after {attempts} attempt(s)")]
    Transport {
        what: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("arbiter answered {status} to {what} after {attempts} attempt(s)")]
    Server {
        what: String,
        status: u16,
        attempts: u32,
    },
    #[error("arbiter answered {status} unexpectedly: {body}")]
    Unexpected { status: u16, body: String },
    #[error("arbiter sent a malformed document: {0}")]
    Malformed(String),
    #[error(
        "the arbiter did not show the handover (promote {}, demote {}) within {}",
        names(promote),
        names(demote),
        span(*waited)
    )]
    NotApplied {
        promote: Vec<String>,
        demote: Vec<String>,
        waited: Duration,
    },
}

impl ArbiterError {
    /// Whether a request that failed with this surely changed nothing: the arbiter
    /// answered and refused, or it was never sent. Lost connections and 5xx answers
    /// leave it open.
    pub fn surely_not_applied(&self) -> bool {
        !matches!(
            self,
            ArbiterError::Transport { .. } | ArbiterError::Server { .. }
        )
    }

    /// Transient failures the executor may retry the whole step for.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ArbiterError::Transport { .. }
                | ArbiterError::Server { .. }
                | ArbiterError::NotApplied { .. }
        )
    }
}

/// The members document on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersDoc {
    pub epoch: u64,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub role: Role,
}

impl From<MembersDoc> for ArbiterView {
    fn from(doc: MembersDoc) -> Self {
        ArbiterView {
            epoch: doc.epoch,
            members: doc.members.into_iter().map(|m| (m.name, m.role)).collect(),
        }
    }
}

/// `POST /v1/handover` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverRequest {
    pub epoch: u64,
    pub promote: Vec<String>,
    pub demote: Vec<String>,
    pub request_id: String,
}

/// What the arbiter made of a handover request.
#[derive(Debug, Clone, PartialEq)]
pub enum HandoverOutcome {
    /// 200: applied; the new members.
    Applied(ArbiterView),
    /// 202: accepted, applied later.
    Accepted,
    /// 409: our epoch is stale; the arbiter's current one, when it said.
    StaleEpoch(Option<u64>),
    /// 422: refused, with the arbiter's reason.
    Refused(String),
}

#[derive(Deserialize)]
struct ErrorDoc {
    #[serde(default)]
    error: String,
    #[serde(default)]
    epoch: Option<u64>,
}

/// Meaning of a `GET /v1/members` answer.
pub fn interpret_members(status: u16, body: &[u8]) -> Result<ArbiterView, ArbiterError> {
    match status {
        200 => serde_json::from_slice::<MembersDoc>(body)
            .map(ArbiterView::from)
            .map_err(|e| ArbiterError::Malformed(e.to_string())),
        s if s >= 500 => Err(ArbiterError::Server {
            what: "GET /v1/members".into(),
            status: s,
            attempts: 1,
        }),
        s => Err(ArbiterError::Unexpected {
            status: s,
            body: excerpt(body),
        }),
    }
}

/// Meaning of a `POST /v1/handover` answer.
pub fn interpret_handover(status: u16, body: &[u8]) -> Result<HandoverOutcome, ArbiterError> {
    match status {
        200 => interpret_members(200, body).map(HandoverOutcome::Applied),
        202 => Ok(HandoverOutcome::Accepted),
        409 => Ok(HandoverOutcome::StaleEpoch(
            serde_json::from_slice::<ErrorDoc>(body)
                .ok()
                .and_then(|d| d.epoch),
        )),
        422 => {
            let reason = serde_json::from_slice::<ErrorDoc>(body)
                .map(|d| d.error)
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| excerpt(body));
            Ok(HandoverOutcome::Refused(reason))
        }
        s if s >= 500 => Err(ArbiterError::Server {
            what: "POST /v1/handover".into(),
            status: s,
            attempts: 1,
        }),
        s => Err(ArbiterError::Unexpected {
            status: s,
            body: excerpt(body),
        }),
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

/// Whether `view` shows every promoted pod working and every demoted pod idle.
pub fn shows_handover(view: &ArbiterView, promote: &[String], demote: &[String]) -> bool {
    promote
        .iter()
        .all(|p| view.members.get(p) == Some(&Role::Working))
        && demote
            .iter()
            .all(|d| view.members.get(d) == Some(&Role::Idle))
}

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base * 2^attempt)]`, by the
/// engine's one [`RetryPolicy`](baton_engine::retry::RetryPolicy).
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let policy = baton_engine::retry::RetryPolicy {
        base,
        cap,
        max_attempts: u32::MAX,
    };
    policy.delay(attempt.saturating_add(1), rand::random())
}

/// A client for one arbiter.
#[derive(Clone)]
pub struct ArbiterClient {
    base: String,
    http: reqwest::Client,
    retries: u32,
    token_file: Option<PathBuf>,
}

/// Never shows the token, only whether one is configured.
impl std::fmt::Debug for ArbiterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArbiterClient")
            .field("base", &self.base)
            .field("retries", &self.retries)
            .field("token", &self.token_file.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ArbiterClient {
    pub fn new(spec: &ArbiterSpec) -> Result<Self, ArbiterError> {
        let base = spec.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ArbiterError::BadUrl(spec.url.clone()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(spec.timeout.as_std())
            .connect_timeout(spec.timeout.as_std());
        if let Some(path) = &spec.ca_file {
            // Bounded like every file a plan names: a CA bundle is kilobytes, and a wrong
            // path (`/dev/zero`, a log) must be refused, not read until memory runs out.
            let pem = baton_engine::plan::read_bounded(path, baton_engine::plan::MAX_FILE_BYTES)
                .map_err(|source| ArbiterError::CaFile {
                    path: path.clone(),
                    source,
                })?;
            // A bundle, every certificate of it trusted. One with none (a key, a typo'd
            // path to some other file) would leave only the system roots, silently.
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ArbiterError::BadCa {
                    path: path.clone(),
                    source,
                }
            })?;
            if certs.is_empty() {
                return Err(ArbiterError::NoCertificate { path: path.clone() });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(ArbiterError::Client)?;
        Ok(ArbiterClient {
            base,
            http,
            retries: spec.retries,
            token_file: spec.token_file.clone(),
        })
    }

    /// The base URL, as audit records name the arbiter.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn token(&self) -> Result<Option<String>, ArbiterError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        // At most a MiB, and not empty: the same rules `engine validate` applies, checked
        // again here because the file is read anew at every request.
        let token = baton_engine::plan::read_token(path).map_err(|source| ArbiterError::Token {
            path: path.clone(),
            source,
        })?;
        Ok(Some(token))
    }

    /// Sends a request, retrying transport errors and 5xx with backoff. Returns status and body.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ArbiterError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = build();
            if let Some(token) = self.token()? {
                req = req.bearer_auth(token);
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if status < 500 => return Ok((status, body.to_vec())),
                        Ok(_) => ArbiterError::Server {
                            what: what.to_owned(),
                            status,
                            attempts: attempt,
                        },
                        Err(source) => ArbiterError::Transport {
                            what: what.to_owned(),
                            attempts: attempt,
                            source,
                        },
                    }
                }
                Err(source) => ArbiterError::Transport {
                    what: what.to_owned(),
                    attempts: attempt,
                    source,
                },
            };
            if attempt > self.retries {
                return Err(err);
            }
            let pause = backoff(attempt - 1, BACKOFF_BASE, BACKOFF_CAP);
            tracing::debug!(what, attempt, ?pause, error = %err, "retrying arbiter request");
            tokio::time::sleep(pause).await;
        }
    }

    /// `GET /v1/members`.
    pub async fn members(&self) -> Result<ArbiterView, ArbiterError> {
        let url = format!("{}/v1/members", self.base);
        let (status, body) = self.send("GET /v1/members", || self.http.get(&url)).await?;
        interpret_members(status, &body)
    }

    /// `POST /v1/handover`. Safe to retry: the arbiter deduplicates by `requestId`.
    pub async fn handover(&self, req: &HandoverRequest) -> Result<HandoverOutcome, ArbiterError> {
        let url = format!("{}/v1/handover", self.base);
        let (status, body) = self
            .send("POST /v1/handover", || self.http.post(&url).json(req))
            .await?;
        interpret_handover(status, &body)
    }

    /// Polls `GET /v1/members` with backoff until it shows the handover. The arbiter has
    /// no watch, so this is the one polling loop in Baton.
    pub async fn wait_roles(
        &self,
        promote: &[String],
        demote: &[String],
        within: Duration,
    ) -> Result<ArbiterView, ArbiterError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut attempt = 0;
        loop {
            let view = self.members().await?;
            if shows_handover(&view, promote, demote) {
                return Ok(view);
            }
            let pause = backoff(attempt, BACKOFF_BASE, POLL_CAP).max(Duration::from_millis(20));
            if tokio::time::Instant::now() + pause > deadline {
                return Err(ArbiterError::NotApplied {
                    promote: promote.to_vec(),
                    demote: demote.to_vec(),
                    waited: within,
                });
            }
            attempt += 1;
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(epoch: u64, members: &[(&str, Role)]) -> ArbiterView {
        ArbiterView {
            epoch,
            members: members.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect(),
        }
    }

    fn spec_with_ca(path: &std::path::Path) -> ArbiterSpec {
        let mut spec: ArbiterSpec =
            serde_json::from_value(serde_json::json!({"url": "https://arbiter:8443"})).unwrap();
        spec.ca_file = Some(path.to_owned());
        spec
    }

    #[test]
    fn a_ca_file_is_read_bounded_and_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let cases: [(&std::path::Path, &str); 3] = [
            (
                std::path::Path::new("/dev/zero"),
                "cannot read the arbiter CA file /dev/zero",
            ),
            (
                &dir.path().join("missing.pem"),
                "cannot read the arbiter CA file",
            ),
            (&not_pem, "holds no PEM certificate"),
        ];
        for (path, expected) in cases {
            let error = ArbiterClient::new(&spec_with_ca(path)).unwrap_err();
            assert!(error.to_string().contains(expected), "{path:?}: {error}");
        }
        let too_large =
            ArbiterClient::new(&spec_with_ca(std::path::Path::new("/dev/zero"))).unwrap_err();
        let ArbiterError::CaFile { source, .. } = too_large else {
            panic!("expected CaFile, got {too_large:?}");
        };
        assert_eq!(source.kind(), std::io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn handover_answers_are_interpreted_by_status() {
        let applied = br#"{"epoch": 8, "members": [{"name": "sample-1", "role": "working"}, {"name": "sample-0", "role": "idle"}]}"#;
        let cases: Vec<(u16, &[u8], Result<HandoverOutcome, &str>)> = vec![
            (
                200,
                applied,
                Ok(HandoverOutcome::Applied(view(
                    8,
                    &[("sample-1", Role::Working), ("sample-0", Role::Idle)],
                ))),
            ),
            (202, b"", Ok(HandoverOutcome::Accepted)),
            (202, b"{}", Ok(HandoverOutcome::Accepted)),
            (
                409,
                br#"{"error": "stale epoch", "epoch": 9}"#,
                Ok(HandoverOutcome::StaleEpoch(Some(9))),
            ),
            (409, b"conflict", Ok(HandoverOutcome::StaleEpoch(None))),
            (
                422,
                br#"{"error": "unknown member sample-9"}"#,
                Ok(HandoverOutcome::Refused("unknown member sample-9".into())),
            ),
            (422, b"no", Ok(HandoverOutcome::Refused("no".into()))),
            (200, b"not json", Err("malformed")),
            (
                200,
                br#"{"epoch": 1, "members": [{"name": "a", "role": "leader"}]}"#,
                Err("malformed"),
            ),
            (503, b"", Err("server")),
            (401, b"who are you", Err("unexpected")),
        ];
        for (status, body, want) in cases {
            let got = interpret_handover(status, body);
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "status {status}"),
                (Err("malformed"), Err(ArbiterError::Malformed(_))) => {}
                (Err("server"), Err(e @ ArbiterError::Server { .. })) => assert!(e.is_retryable()),
                (Err("unexpected"), Err(e @ ArbiterError::Unexpected { .. })) => {
                    assert!(!e.is_retryable())
                }
                (w, g) => panic!("status {status}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn members_answers_are_interpreted_by_status() {
        let ok = interpret_members(
            200,
            br#"{"epoch": 7, "members": [{"name": "sample-0", "role": "working"}]}"#,
        )
        .unwrap();
        assert_eq!(ok, view(7, &[("sample-0", Role::Working)]));
        assert!(interpret_members(500, b"").unwrap_err().is_retryable());
        assert!(!interpret_members(404, b"").unwrap_err().is_retryable());
        assert!(matches!(
            interpret_members(200, b"{}"),
            Err(ArbiterError::Malformed(_))
        ));
    }

    #[test]
    fn a_handover_shows_only_when_every_promoted_pod_works_and_every_demoted_pod_idles() {
        let promote = vec!["sample-1".to_owned()];
        let demote = vec!["sample-0".to_owned()];
        assert!(shows_handover(
            &view(2, &[("sample-1", Role::Working), ("sample-0", Role::Idle)]),
            &promote,
            &demote
        ));
        assert!(!shows_handover(
            &view(
                2,
                &[("sample-1", Role::Working), ("sample-0", Role::Working)]
            ),
            &promote,
            &demote
        ));
        assert!(!shows_handover(
            &view(2, &[("sample-0", Role::Idle)]),
            &promote,
            &demote
        ));
    }

    #[test]
    fn backoff_stays_within_the_capped_exponential_ceiling() {
        for attempt in 0..30 {
            let ceiling = BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(BACKOFF_CAP);
            for _ in 0..20 {
                assert!(backoff(attempt, BACKOFF_BASE, BACKOFF_CAP) <= ceiling);
            }
        }
    }

    #[test]
    fn debug_output_never_contains_the_token_path_or_value() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cr3t-token\n").unwrap();
        let spec: ArbiterSpec = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:1/", "tokenFile": token
        }))
        .unwrap();
        let client = ArbiterClient::new(&spec).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(client.token().unwrap().as_deref(), Some("s3cr3t-token"));
    }

    /// Issue #12 item 10: the token file was read whole (`/dev/zero` grew to 2 GB) and an
    /// empty one sent an empty bearer token.
    #[test]
    fn an_empty_or_endless_token_file_is_refused_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        for (path, says) in [
            (empty.as_path(), "empty"),
            (std::path::Path::new("/dev/zero"), "larger than 1 MiB"),
        ] {
            let spec: ArbiterSpec = serde_json::from_value(serde_json::json!({
                "url": "http://127.0.0.1:1/", "tokenFile": path
            }))
            .unwrap();
            let client = ArbiterClient::new(&spec).unwrap();
            let error = client.token().expect_err("no token");
            assert!(matches!(error, ArbiterError::Token { .. }), "{error:?}");
            let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
            assert!(chain.contains(says), "{chain}");
        }
    }
}
