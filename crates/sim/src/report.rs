//! What the simulator saw, for tests and benchmarks: every pod update the controller began
//! (with the arbiter's role for the pod at that moment), safety violations, the fewest working
//! members the arbiter ever reported, API request counts, and when pods became Ready.
//!
//! Served as `GET /sim/v1/report` (SPEC §7). Cloning shares the report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::arbiter::Role;

/// The reason recorded when a pod is updated while the arbiter has it working.
pub const UPDATED_WHILE_WORKING: &str = "updated while working";

/// RFC 3339 with microseconds, as the report's timestamps are written.
pub fn micro(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateRecord {
    pub pod: String,
    pub from: String,
    pub to: String,
    pub role: Option<Role>,
    pub label: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pod: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyRecord {
    pub pod: String,
    pub at: String,
}

#[derive(Debug, Default)]
struct Inner {
    updates: Vec<UpdateRecord>,
    violations: Vec<Violation>,
    working_min: Option<usize>,
    requests: BTreeMap<String, u64>,
    ready: Vec<ReadyRecord>,
}

/// The shared report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    inner: Arc<Mutex<Inner>>,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every write is a single push or insert, so a poisoned lock still holds whole records.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one API request as `<verb> <resource>` (audit-log verbs).
    pub fn count_request(&self, verb: &str, resource: &str) {
        *self
            .lock()
            .requests
            .entry(format!("{verb} {resource}"))
            .or_default() += 1;
    }

    /// Records that the controller began updating `pod` from revision `from` to `to`. `role` is
    /// what the arbiter held for the pod then and `label` its role label; a pod the arbiter
    /// has working is also recorded as a violation.
    pub fn record_update(
        &self,
        pod: &str,
        from: &str,
        to: &str,
        role: Option<Role>,
        label: Option<String>,
    ) {
        let at = micro(Timestamp::now());
        let mut inner = self.lock();
        if role == Some(Role::Working) {
            inner.violations.push(Violation {
                pod: pod.to_string(),
                reason: UPDATED_WHILE_WORKING.to_string(),
                at: at.clone(),
            });
        }
        inner.updates.push(UpdateRecord {
            pod: pod.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            role,
            label,
            at,
        });
    }

    /// Notes a working-member count the arbiter reported; keeps the minimum.
    pub fn observe_working(&self, n: usize) {
        let mut inner = self.lock();
        inner.working_min = Some(inner.working_min.map_or(n, |m| m.min(n)));
    }

    /// Records when a pod became Ready.
    pub fn record_ready(&self, pod: &str, at: Timestamp) {
        self.lock().ready.push(ReadyRecord {
            pod: pod.to_string(),
            at: micro(at),
        });
    }

    /// The updates recorded so far.
    pub fn updates(&self) -> Vec<UpdateRecord> {
        self.lock().updates.clone()
    }

    /// The violations recorded so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// SPEC §7's report document, plus the `ready` list.
    pub fn to_json(&self) -> Value {
        let inner = self.lock();
        serde_json::json!({
            "updates": inner.updates,
            "violations": inner.violations,
            "workingMin": inner.working_min,
            "requests": inner.requests,
            "ready": inner.ready,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updating_a_working_pod_is_a_violation_and_idle_is_not() {
        let r = Report::new();
        r.record_update("s-1", "a", "b", Some(Role::Idle), Some("false".into()));
        r.record_update("s-0", "a", "b", Some(Role::Working), Some("true".into()));
        r.observe_working(3);
        r.observe_working(2);
        r.observe_working(3);
        r.count_request("get", "pods");
        r.count_request("get", "pods");
        let j = r.to_json();
        assert_eq!(j["updates"][0]["role"], "idle");
        assert_eq!(j["updates"][1]["label"], "true");
        assert_eq!(j["violations"].as_array().unwrap().len(), 1);
        assert_eq!(j["violations"][0]["pod"], "s-0");
        assert_eq!(j["violations"][0]["reason"], UPDATED_WHILE_WORKING);
        assert_eq!(j["workingMin"], 2);
        assert_eq!(j["requests"]["get pods"], 2);
        let at = j["updates"][0]["at"].as_str().unwrap();
        assert_eq!(at.len(), "2026-01-01T00:00:00.000000Z".len());
        assert!(at.parse::<Timestamp>().is_ok());
    }
}
