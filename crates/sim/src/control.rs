//! The simulator's control endpoint, under `/sim/v1/` on the API server.
//! Tests and `engine demo` use it to read the report and to misbehave on
//! purpose. It is not counted in the report's `requests`.
//!
//! | request | body / answer |
//! |---|---|
//! | `GET /sim/v1/report` | SPEC §7's report |
//! | `GET /sim/v1/faults`, `PUT /sim/v1/faults` | a [`FaultConfig`] (see [`crate::faults`]) |
//! | `GET /sim/v1/arbiter`, `PUT /sim/v1/arbiter` | an [`ArbiterConfig`] |
//! | `GET /sim/v1/arbiter/members` | `{"epoch": 3, "members": {"sample-0": "working", ...}}` |
//! | `PUT /sim/v1/arbiter/members` | `{"sample-0": "working", "sample-1": "idle"}`: replaces the members |
//! | `POST /sim/v1/arbiter/outage` | `{"ms": 2000}`: the arbiter answers 503 that long |
//! | `POST /sim/v1/pods/{ns}/{name}/unready`, `.../ready` | keeps the pod's containers unready / lets them be ready again |
//! | `DELETE /sim/v1/pods/{ns}/{name}` | deletes the pod now (its set recreates it) |
//! | `POST /sim/v1/compact` | forgets the watch history: older resourceVersions get 410 |
//!
//! Errors are `{"error": "..."}` with a 4xx code.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::arbiter::{ArbiterConfig, Role};
use crate::faults::FaultConfig;

pub fn router(sim: Sim) -> Router {
    Router::new()
        .route("/report", get(report))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/arbiter", get(get_arbiter).put(put_arbiter))
        .route("/arbiter/members", get(get_members).put(put_members))
        .route("/arbiter/outage", post(outage))
        .route("/pods/{ns}/{name}/unready", post(unready))
        .route("/pods/{ns}/{name}/ready", post(ready))
        .route("/pods/{ns}/{name}", delete(delete_pod))
        .route("/compact", post(compact))
        .with_state(sim)
}

fn error(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (code, Json(json!({"error": msg.to_string()}))).into_response()
}

fn api_error(e: crate::ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST);
    error(code, e.message)
}

async fn report(State(sim): State<Sim>) -> Json<Value> {
    Json(sim.report())
}

async fn get_faults(State(sim): State<Sim>) -> Json<FaultConfig> {
    Json(sim.faults().get())
}

async fn put_faults(State(sim): State<Sim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(cfg) => {
            sim.faults().set(cfg.clone());
            Json(cfg).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn get_arbiter(State(sim): State<Sim>) -> Json<ArbiterConfig> {
    Json(sim.arbiter().config())
}

async fn put_arbiter(State(sim): State<Sim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<ArbiterConfig>(&body) {
        Ok(cfg) => {
            sim.arbiter().set_config(cfg.clone());
            Json(cfg).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn get_members(State(sim): State<Sim>) -> Json<Value> {
    let a = sim.arbiter();
    Json(json!({"epoch": a.epoch(), "members": a.roles()}))
}

async fn put_members(State(sim): State<Sim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<std::collections::BTreeMap<String, Role>>(&body) {
        Ok(members) => {
            let pods: Vec<(String, bool)> = members
                .into_iter()
                .map(|(n, r)| (n, r == Role::Working))
                .collect();
            sim.arbiter().seed(&pods);
            get_members(State(sim)).await.into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outage {
    ms: u64,
}

async fn outage(State(sim): State<Sim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Outage>(&body) {
        Ok(o) => {
            sim.arbiter().outage(Duration::from_millis(o.ms));
            Json(json!({"ms": o.ms})).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

async fn unready(State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>) -> Response {
    match crate::controller::set_pod_ready(sim.store(), &ns, &name, false) {
        Ok(p) => Json(p).into_response(),
        Err(e) => api_error(e),
    }
}

async fn ready(State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>) -> Response {
    match crate::controller::set_pod_ready(sim.store(), &ns, &name, true) {
        Ok(p) => Json(p).into_response(),
        Err(e) => api_error(e),
    }
}

async fn delete_pod(State(sim): State<Sim>, Path((ns, name)): Path<(String, String)>) -> Response {
    match crate::controller::delete_pod(sim.store(), &ns, &name) {
        Ok(p) => Json(p).into_response(),
        Err(e) => api_error(e),
    }
}

async fn compact(State(sim): State<Sim>) -> Json<Value> {
    sim.store().compact();
    Json(json!({"resourceVersion": sim.store().resource_version().to_string()}))
}
