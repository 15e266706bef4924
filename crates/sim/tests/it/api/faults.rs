//! Injected faults as a client sees them, set through the control endpoint.

use std::time::{Duration, Instant};

use baton_sim::SimConfig;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchParams};
use serde_json::{Value, json};

use super::common::{client, code, seeded, status};

/// `PUT /sim/v1/faults` with kube's own HTTP client.
async fn set_faults(c: &kube::Client, faults: Value) {
    let req = http::Request::put("/sim/v1/faults")
        .header("content-type", "application/json")
        .body(faults.to_string().into_bytes())
        .unwrap();
    c.request_text(req).await.unwrap();
}

#[tokio::test]
async fn error_faults_answer_500_503_and_429_then_run_out() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    for want in [500, 503, 429] {
        set_faults(
            &c,
            json!({"errors": [{"verb": "get", "resource": "pods", "code": want, "count": 1}]}),
        )
        .await;
        assert_eq!(code(pods.get("sample-0").await.unwrap_err()), want);
        pods.get("sample-0").await.unwrap();
    }
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    set_faults(
        &c,
        json!({"errors": [{"verb": "list", "code": 429, "retryAfterSeconds": 3}]}),
    )
    .await;
    let req = http::Request::get("/api/v1/namespaces/default/pods")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let pods: Api<Pod> = Api::default_namespaced(c);
    let s = status(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(s.reason, "TooManyRequests");
    assert_eq!(s.details.unwrap().retry_after_seconds, 3);
}

#[tokio::test]
async fn latency_delays_matching_requests_only() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    set_faults(
        &c,
        json!({"latency": [{"verb": "list", "resource": "pods", "ms": 300}]}),
    )
    .await;
    let pods: Api<Pod> = Api::default_namespaced(c);
    let started = Instant::now();
    pods.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let report = sim.report();
    assert!(report["requests"]["list pods"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn watch_streams_are_cut_after_n_events() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    set_faults(&c, json!({"watchCutAfter": 2})).await;
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    // From "0" the stream starts with an ADDED per pod; only two arrive.
    let events: Vec<_> = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    set_faults(&c, json!({})).await;
    let mut stream = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    // Late status updates of the seed's pods may follow as MODIFIED; what matters is
    // that the stream is not cut: every pod arrives, and it ends at its timeout.
    let mut added = 0;
    while let Some(event) = stream.try_next().await.unwrap() {
        if matches!(event, kube::api::WatchEvent::Added(_)) {
            added += 1;
        }
    }
    assert_eq!(
        added, 5,
        "without the fault every pod is listed and the stream ends at its timeout"
    );
}

#[tokio::test]
async fn bad_fault_configs_are_refused() {
    let sim = seeded(SimConfig::default()).await;
    let c = client(&sim);
    let req = http::Request::put("/sim/v1/faults")
        .header("content-type", "application/json")
        .body(br#"{"errors": [{"code": "x"}]}"#.to_vec())
        .unwrap();
    let resp = c.send(req.map(kube::client::Body::from)).await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(sim.faults().get(), baton_sim::FaultConfig::default());
}
