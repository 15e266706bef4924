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

/// A response whose body is an already encoded JSON document.
pub fn encoded(code: u16, body: bytes::Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `<Kind>List` of stored objects, spliced from their shared encodings: listing a thousand
/// unchanged pods copies bytes instead of serialising a thousand objects again.
pub fn list(kind: Kind, metadata: &Value, items: &[crate::store::Stored]) -> Response {
    let parts: Vec<bytes::Bytes> = items.iter().map(|(o, e)| e.get(o)).collect();
    let head = serde_json::json!({
        "kind": format!("{}List", kind.kind_name()),
        "apiVersion": kind.api_version(),
        "metadata": metadata,
    })
    .to_string();
    let size = head.len() + 12 + parts.iter().map(|b| b.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    // `{"apiVersion":..,"kind":..,"metadata":..}` minus its closing brace, then the items.
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (i, b) in parts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b);
    }
    body.extend_from_slice(b"]}");
    encoded(200, bytes::Bytes::from(body))
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
