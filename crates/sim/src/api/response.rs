//! Turning results into HTTP responses: objects as JSON, errors as
//! `meta/v1` `Status` bodies with the codes and reasons clients branch on.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::store::{ApiError, Kind};

/// A JSON response with the given status code.
pub fn json(code: u16, body: &Value) -> Response {
    json_typed(code, body, "application/json")
}

pub fn json_typed(code: u16, body: &Value, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A `<Kind>List` of shared objects, serialised straight from the store's copies.
pub fn list(kind: Kind, metadata: &Value, items: &[std::sync::Arc<Value>]) -> Response {
    use serde::ser::{SerializeMap, Serializer};
    struct Items<'a>(&'a [std::sync::Arc<Value>]);
    impl serde::Serialize for Items<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|o| &**o))
        }
    }
    struct List<'a> {
        kind: Kind,
        metadata: &'a Value,
        items: Items<'a>,
    }
    impl serde::Serialize for List<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(4))?;
            m.serialize_entry("kind", &format!("{}List", self.kind.kind_name()))?;
            m.serialize_entry("apiVersion", &self.kind.api_version())?;
            m.serialize_entry("metadata", self.metadata)?;
            m.serialize_entry("items", &self.items)?;
            m.end()
        }
    }
    let body = serde_json::to_vec(&List {
        kind,
        metadata,
        items: Items(items),
    })
    .unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The `Status` object for an error; `kind`/`name` fill in `details`.
pub fn status_body(err: &ApiError, kind: Option<Kind>, name: Option<&str>) -> Value {
    let mut details = json!({});
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    if let Some(kind) = kind {
        details["group"] = json!(kind.group());
        // Invalid names the kind, every other reason the resource.
        details["kind"] = if err.reason == "Invalid" {
            json!(kind.kind_name())
        } else {
            json!(kind.plural())
        };
    }
    if !err.causes.is_empty() {
        let causes: Vec<Value> = err
            .causes
            .iter()
            .map(|c| match c.split_once(": ") {
                Some((field, message)) => {
                    json!({"reason": "FieldValueInvalid", "field": field, "message": message})
                }
                None => json!({"reason": "FieldValueInvalid", "message": c}),
            })
            .collect();
        details["causes"] = json!(causes);
    }
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": err.message, "reason": err.reason, "code": err.code
    });
    if details.as_object().is_some_and(|d| !d.is_empty()) {
        body["details"] = details;
    }
    body
}

pub fn error(err: &ApiError, kind: Option<Kind>, name: Option<&str>) -> Response {
    json(err.code, &status_body(err, kind, name))
}

/// An injected or throttling error; 429 and 503 carry `Retry-After`.
pub fn injected(code: u16, retry_after: Option<u64>) -> Response {
    let (reason, message) = match code {
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        500 => (
            "InternalError",
            "an error on the server (\"injected fault\") has prevented the request from succeeding",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted",
        ),
        _ => ("InternalError", "injected fault"),
    };
    let err = ApiError::new(code, reason, message);
    let mut body = status_body(&err, None, None);
    if let Some(secs) = retry_after {
        body["details"] = json!({"retryAfterSeconds": secs});
    }
    let mut resp = json(code, &body);
    if let Some(secs) = retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
