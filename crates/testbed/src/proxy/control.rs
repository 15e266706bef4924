//! The proxy's own HTTP endpoints under `/proxy/v1/`, so a process that does
//! not hold the [`Faults`] handle (a CLI, a test driving the `engine` binary)
//! can still set faults and read what they did. No Kubernetes path starts
//! with `/proxy/`, so nothing an API client sends lands here.
//!
//! - `GET /proxy/v1/faults`, `PUT /proxy/v1/faults` (a [`FaultConfig`] JSON body)
//! - `POST /proxy/v1/cut`: end every open watch stream
//! - `GET /proxy/v1/stats`: the [`Stats`](super::Stats) as JSON

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::faults::{FaultConfig, Faults};
use super::{Body, full, status};

pub(crate) const PREFIX: &str = "/proxy/v1/";

pub(crate) async fn serve(faults: &Faults, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_start_matches(PREFIX).to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "faults") => json(&faults.get()),
        (Method::PUT, "faults") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return bad_request(&format!("cannot read the body: {e}")),
            };
            match serde_json::from_slice::<FaultConfig>(&body) {
                Ok(config) => {
                    faults.set(config);
                    json(&faults.get())
                }
                Err(e) => bad_request(&format!("not a fault configuration: {e}")),
            }
        }
        (Method::POST, "cut") => {
            faults.cut_watches();
            json(&serde_json::json!({}))
        }
        (Method::GET, "stats") => json(&faults.stats()),
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the fault proxy serves GET/PUT faults, POST cut, GET stats",
        ),
    }
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_default();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}
