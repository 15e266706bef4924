//! The simulated arbiter: the external service that decides which pods are *working* and which
//! are *idle*, speaking SPEC §3 (`GET /v1/members`, `POST /v1/handover`).
//!
//! Its misbehaviours are runtime knobs ([`ArbiterConfig`], changed with
//! [`Arbiter::set_config`]) so tests can show the engine copes with each of them:
//! asynchronous handovers (202, applied later), a stale-epoch conflict on the Nth handover,
//! a bearer token, outages ([`Arbiter::outage`], answered with 503), flapping roles, and an
//! `empty` mode that lists whatever pods the controller creates, all idle.
//!
//! The quorum rule is always on: a handover is refused (422) when it names an unknown member,
//! promotes a pod that is not idle, demotes one that is not working, names a pod twice, or
//! would leave fewer working members than before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::report::Report;

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Working,
    Idle,
}

/// When an accepted handover takes effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Applied before answering `200` with the new members document.
    #[default]
    Sync,
    /// Answered `202`, applied `asyncDelayMs` later.
    Async,
}

/// The arbiter's behaviour; `Default` is a well-behaved synchronous arbiter without a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ArbiterConfig {
    pub mode: Mode,
    /// With [`Mode::Async`]: how long after the `202` the handover is applied.
    pub async_delay_ms: u64,
    /// The Nth handover request (counting from 1, replays excluded) is answered `409` and the
    /// epoch moves on, as if another client had changed the roles first.
    pub conflict_on_nth_handover: Option<u32>,
    /// Every request must carry `Authorization: Bearer <token>`; otherwise `401`.
    pub token: Option<String>,
    /// Flapping roles: every this many milliseconds, a random idle member and a random working
    /// member swap roles (the working count is unchanged, the epoch moves). Applied lazily,
    /// whenever the arbiter is consulted, for every period that has elapsed.
    pub flap_every_ms: Option<u64>,
    /// Members are learnt from the pods the controller creates, all idle
    /// ([`Arbiter::ensure_member`]), and forgotten when the set scales down.
    pub empty: bool,
}

/// A `POST /v1/handover` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handover {
    epoch: u64,
    #[serde(default)]
    promote: Vec<String>,
    #[serde(default)]
    demote: Vec<String>,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Debug)]
struct Inner {
    cfg: ArbiterConfig,
    members: BTreeMap<String, Role>,
    epoch: u64,
    /// Handover requests seen, replays excluded (for `conflict_on_nth_handover`).
    handovers: u32,
    /// Answers of applied (or accepted) requests, by requestId.
    answered: HashMap<String, (StatusCode, Value)>,
    outage_until: Option<Instant>,
    last_flap: Instant,
    report: Option<Report>,
}

/// The arbiter; cloning shares it.
#[derive(Debug, Clone)]
pub struct Arbiter {
    inner: Arc<Mutex<Inner>>,
}

impl Inner {
    fn working(&self) -> usize {
        self.members
            .values()
            .filter(|r| **r == Role::Working)
            .count()
    }

    fn document(&self) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|(name, role)| json!({"name": name, "role": role}))
            .collect();
        json!({"epoch": self.epoch, "members": members})
    }

    fn observe(&self) {
        if let Some(r) = &self.report {
            r.observe_working(self.working());
        }
    }

    /// Applies every flap period that has elapsed.
    fn flap(&mut self, now: Instant) {
        let Some(every) = self.cfg.flap_every_ms.filter(|ms| *ms > 0) else {
            self.last_flap = now;
            return;
        };
        let every = Duration::from_millis(every);
        let mut rng = rand::rng();
        while now.duration_since(self.last_flap) >= every {
            self.last_flap += every;
            let pick =
                |role: Role, members: &BTreeMap<String, Role>, rng: &mut rand::rngs::ThreadRng| {
                    let names: Vec<&String> = members
                        .iter()
                        .filter(|(_, r)| **r == role)
                        .map(|(n, _)| n)
                        .collect();
                    names.choose(rng).map(|n| (*n).clone())
                };
            let (Some(idle), Some(working)) = (
                pick(Role::Idle, &self.members, &mut rng),
                pick(Role::Working, &self.members, &mut rng),
            ) else {
                continue;
            };
            self.members.insert(idle, Role::Working);
            self.members.insert(working, Role::Idle);
            self.epoch += 1;
        }
        self.observe();
    }

    fn apply(&mut self, h: &Handover) {
        for p in &h.promote {
            self.members.insert(p.clone(), Role::Working);
        }
        for d in &h.demote {
            self.members.insert(d.clone(), Role::Idle);
        }
        self.epoch += 1;
        self.observe();
    }

    /// The quorum rule; `Err` is the 422 message.
    fn check(&self, h: &Handover) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for name in h.promote.iter().chain(&h.demote) {
            if !seen.insert(name) {
                return Err(format!("member {name} is named twice"));
            }
        }
        for p in &h.promote {
            match self.members.get(p) {
                None => return Err(format!("unknown member {p}")),
                Some(Role::Working) => return Err(format!("member {p} is not idle")),
                Some(Role::Idle) => {}
            }
        }
        for d in &h.demote {
            match self.members.get(d) {
                None => return Err(format!("unknown member {d}")),
                Some(Role::Idle) => return Err(format!("member {d} is not working")),
                Some(Role::Working) => {}
            }
        }
        if h.promote.len() < h.demote.len() {
            return Err(format!(
                "quorum: {} working members would drop to {}",
                self.working(),
                (self.working() + h.promote.len()).saturating_sub(h.demote.len())
            ));
        }
        Ok(())
    }
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(json!({"error": msg}))).into_response()
}

impl Arbiter {
    pub fn new(cfg: ArbiterConfig) -> Arbiter {
        Arbiter {
            inner: Arc::new(Mutex::new(Inner {
                cfg,
                members: BTreeMap::new(),
                epoch: 1,
                handovers: 0,
                answered: HashMap::new(),
                outage_until: None,
                last_flap: Instant::now(),
                report: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation keeps the members map whole, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports working counts to `report` (for its `workingMin`).
    pub fn attach_report(&self, report: Report) {
        let mut inner = self.lock();
        inner.report = Some(report);
        inner.observe();
    }

    /// Replaces the members: `(pod name, working)`.
    pub fn seed(&self, pods: &[(String, bool)]) {
        let mut inner = self.lock();
        inner.members = pods
            .iter()
            .map(|(n, w)| (n.clone(), if *w { Role::Working } else { Role::Idle }))
            .collect();
        inner.epoch += 1;
        inner.observe();
    }

    /// The current roles (after any due flaps).
    pub fn roles(&self) -> BTreeMap<String, Role> {
        let mut inner = self.lock();
        inner.flap(Instant::now());
        inner.members.clone()
    }

    /// One pod's current role (after any due flaps), without copying the others.
    pub fn role(&self, pod: &str) -> Option<Role> {
        let mut inner = self.lock();
        inner.flap(Instant::now());
        inner.members.get(pod).copied()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        let mut inner = self.lock();
        inner.flap(Instant::now());
        inner.epoch
    }

    pub fn config(&self) -> ArbiterConfig {
        self.lock().cfg.clone()
    }

    /// Changes behaviour at runtime. Members, epoch and remembered requests stay.
    pub fn set_config(&self, cfg: ArbiterConfig) {
        let mut inner = self.lock();
        inner.flap(Instant::now());
        inner.cfg = cfg;
        inner.last_flap = Instant::now();
    }

    /// Answers every request with 503 for `duration` from now.
    pub fn outage(&self, duration: Duration) {
        self.lock().outage_until = Some(Instant::now() + duration);
    }

    /// In `empty` mode, adds `pod` as an idle member if it is not one yet.
    pub fn ensure_member(&self, pod: &str) {
        let mut inner = self.lock();
        if inner.cfg.empty && !inner.members.contains_key(pod) {
            inner.members.insert(pod.to_string(), Role::Idle);
            inner.epoch += 1;
            inner.observe();
        }
    }

    /// In `empty` mode, removes `pod` (its ordinal left the set).
    pub fn forget_member(&self, pod: &str) {
        let mut inner = self.lock();
        if inner.cfg.empty && inner.members.remove(pod).is_some() {
            inner.epoch += 1;
            inner.observe();
        }
    }

    /// The HTTP API of SPEC §3.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/members", get(members))
            .route("/v1/handover", post(handover))
            .with_state(self.clone())
    }

    /// The common gate of every request: outage, then token.
    fn admit(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        let inner = self.lock();
        if inner.outage_until.is_some_and(|t| Instant::now() < t) {
            return Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "arbiter unavailable",
            )));
        }
        if let Some(token) = &inner.cfg.token {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent != Some(token.as_str()) {
                return Err(Box::new(error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token",
                )));
            }
        }
        Ok(())
    }
}

async fn members(State(arbiter): State<Arbiter>, headers: HeaderMap) -> Response {
    if let Err(r) = arbiter.admit(&headers) {
        return *r;
    }
    let mut inner = arbiter.lock();
    inner.flap(Instant::now());
    inner.observe();
    axum::Json(inner.document()).into_response()
}

async fn handover(State(arbiter): State<Arbiter>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = arbiter.admit(&headers) {
        return *r;
    }
    let h: Handover = match serde_json::from_slice(&body) {
        Ok(h) => h,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body is not a handover request",
            );
        }
    };
    let mut inner = arbiter.lock();
    inner.flap(Instant::now());
    if let Some((code, body)) = h.request_id.as_ref().and_then(|id| inner.answered.get(id)) {
        return (*code, axum::Json(body.clone())).into_response();
    }
    inner.handovers += 1;
    if inner.cfg.conflict_on_nth_handover == Some(inner.handovers) {
        inner.epoch += 1;
        let epoch = inner.epoch;
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "the roles changed meanwhile", "epoch": epoch})),
        )
            .into_response();
    }
    if h.epoch != inner.epoch {
        let epoch = inner.epoch;
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "stale epoch", "epoch": epoch})),
        )
            .into_response();
    }
    if let Err(msg) = inner.check(&h) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &msg);
    }
    let (code, body) = match inner.cfg.mode {
        Mode::Sync => {
            inner.apply(&h);
            (StatusCode::OK, inner.document())
        }
        Mode::Async => {
            let delay = Duration::from_millis(inner.cfg.async_delay_ms);
            let later = arbiter.clone();
            let h2 = h.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                later.lock().apply(&h2);
            });
            (
                StatusCode::ACCEPTED,
                json!({"accepted": true, "epoch": inner.epoch}),
            )
        }
    };
    if let Some(id) = &h.request_id {
        inner.answered.insert(id.clone(), (code, body.clone()));
    }
    (code, axum::Json(body)).into_response()
}
