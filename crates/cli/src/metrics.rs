//! `--metrics-addr`: Prometheus metrics of a run, derived from the run's event stream
//! so they can never disagree with what the progress display shows.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use baton_engine::event::RunEvent;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StepLabel {
    step: String,
}

struct Metrics {
    registry: Registry,
    waves_done: Counter,
    pods_updated: Counter,
    handovers: Counter,
    step_failures: Family<StepLabel, Counter>,
    safety_stops: Counter,
    /// Steps whose safety stop is counted: the step announces its stop as it freezes the
    /// partition and the executor again as it records the failure; one stop counts once.
    stopped_steps: Mutex<HashSet<String>>,
    /// `onFailure: rollback` rollbacks started (0 or 1 per run).
    rollbacks: Counter,
    current_wave: Gauge,
    step_seconds: Family<StepLabel, Histogram>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("baton");
        let waves_done = Counter::default();
        let pods_updated = Counter::default();
        let handovers = Counter::default();
        let step_failures = Family::<StepLabel, Counter>::default();
        let safety_stops = Counter::default();
        let rollbacks = Counter::default();
        let current_wave = Gauge::default();
        let step_seconds = Family::<StepLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 10))
        });
        registry.register("waves_started", "Waves planned so far", waves_done.clone());
        registry.register(
            "pods_updated",
            "Pods seen at the update revision",
            pods_updated.clone(),
        );
        registry.register("handovers", "Arbiter handovers applied", handovers.clone());
        registry.register(
            "step_errors",
            "Step failures, API and arbiter errors included, by step kind",
            step_failures.clone(),
        );
        registry.register("safety_stops", "Safety stops", safety_stops.clone());
        registry.register(
            "rollbacks",
            "Rollbacks started (onFailure: rollback)",
            rollbacks.clone(),
        );
        registry.register("current_wave", "The wave in progress", current_wave.clone());
        registry.register(
            "step_duration_seconds",
            "Step durations by step kind",
            step_seconds.clone(),
        );
        Metrics {
            registry,
            waves_done,
            pods_updated,
            handovers,
            step_failures,
            safety_stops,
            stopped_steps: Mutex::default(),
            rollbacks,
            current_wave,
            step_seconds,
        }
    }

    fn observe(&self, event: &RunEvent) {
        match event {
            RunEvent::WavePlanned { wave, .. } => {
                self.waves_done.inc();
                self.current_wave.set(i64::from(*wave));
            }
            RunEvent::PodUpdated { .. } => {
                self.pods_updated.inc();
            }
            RunEvent::Handover { .. } => {
                self.handovers.inc();
            }
            RunEvent::StepFailed { step, .. } => {
                self.step_failures
                    .get_or_create(&StepLabel {
                        step: step_kind(step),
                    })
                    .inc();
            }
            RunEvent::SafetyStop { step, .. } => {
                let first = self
                    .stopped_steps
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(step.clone());
                if first {
                    self.safety_stops.inc();
                }
            }
            RunEvent::RollbackStarted { .. } => {
                self.rollbacks.inc();
            }
            RunEvent::StepFinished { step, ms } => {
                #[allow(clippy::cast_precision_loss)]
                let seconds = *ms as f64 / 1000.0;
                self.step_seconds
                    .get_or_create(&StepLabel {
                        step: step_kind(step),
                    })
                    .observe(seconds);
            }
            _ => {}
        }
    }
}

/// `wave-3/wait-updated` → `wait-updated`: keeps label cardinality bounded.
fn step_kind(step: &str) -> String {
    match step.split_once('/') {
        Some((first, rest)) if first.starts_with("wave-") => rest.to_owned(),
        _ => step.to_owned(),
    }
}

/// Serves metrics until the event stream closes.
pub struct MetricsServer {
    pub addr: SocketAddr,
}

/// Bind `addr` and serve `/metrics` fed by `events`.
pub async fn serve(
    addr: SocketAddr,
    mut events: broadcast::Receiver<RunEvent>,
) -> anyhow::Result<MetricsServer> {
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let local = listener
        .local_addr()
        .context("metrics listener has no address")?;
    let feed = Arc::clone(&metrics);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => feed.observe(&event),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                let mut body = String::new();
                match encode(&mut body, &metrics.registry) {
                    Ok(()) => (
                        axum::http::StatusCode::OK,
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        [("content-type", "text/plain")],
                        "encoding failed".to_owned(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(error = %error, "metrics server stopped");
        }
    });
    Ok(MetricsServer { addr: local })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(metrics: &Metrics) -> String {
        let mut body = String::new();
        encode(&mut body, &metrics.registry).expect("metrics encode");
        body
    }

    fn stop(step: &str) -> RunEvent {
        RunEvent::SafetyStop {
            step: step.to_owned(),
            reason: "working pod sample-0 changed revision".to_owned(),
        }
    }

    #[test]
    fn a_safety_stop_told_by_the_step_and_the_executor_counts_once() {
        let metrics = Metrics::new();
        metrics.observe(&stop("wave-1/verify"));
        metrics.observe(&stop("wave-1/verify"));
        assert!(
            exposition(&metrics).contains("baton_safety_stops_total 1\n"),
            "{}",
            exposition(&metrics)
        );
        metrics.observe(&stop("wave-2/wait-updated"));
        assert!(
            exposition(&metrics).contains("baton_safety_stops_total 2\n"),
            "{}",
            exposition(&metrics)
        );
    }

    #[test]
    fn a_rollback_counts_as_a_rollback_not_a_safety_stop() {
        let metrics = Metrics::new();
        metrics.observe(&RunEvent::RollbackStarted {
            step: "wave-2/wait-updated".to_owned(),
            reason: "analysis check error-rate failed".to_owned(),
            wave: 2,
        });
        let text = exposition(&metrics);
        assert!(text.contains("baton_rollbacks_total 1\n"), "{text}");
        assert!(text.contains("baton_safety_stops_total 0\n"), "{text}");
    }
}
