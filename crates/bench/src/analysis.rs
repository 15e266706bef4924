//! Pure computations over what a run left behind: the simulator's report (pod updates,
//! readiness, request counts) and the engine's audit log. Both carry wall-clock times
//! from the same machine, so they can be compared directly. No I/O here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// One engine write from `engine history --output json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// When the engine logged the write, just before sending it.
    pub at: Timestamp,
    /// When the server's answer was logged (`at` when none was).
    pub acked: Timestamp,
    pub step: String,
    pub action: String,
}

/// Reads the `audit` list of a history document; entries without a parseable time are skipped
/// (the engine always writes one, so a skip would show up as a missing wave, not a wrong number).
/// A write is ordered by `at` (logged, just before it was sent) and measured to `settledAt`
/// (acknowledged: the write-ahead flush and the request's round trip included).
pub fn audit_writes(history: &Value) -> Vec<Write> {
    let mut out: Vec<Write> = history["audit"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let at: Timestamp = e["at"].as_str()?.parse().ok()?;
            Some(Write {
                at,
                acked: e["settledAt"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(at),
                step: e["step"].as_str().unwrap_or_default().to_string(),
                action: e["action"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect();
    out.sort_by_key(|w| w.at);
    out
}

/// The wave number of a step named `wave-<k>/<node>`.
pub fn wave_of(step: &str) -> Option<u32> {
    step.strip_prefix("wave-")?.split('/').next()?.parse().ok()
}

/// `(pod, at)` pairs of a report list (`updates` or `ready`).
fn timed(report: &Value, list: &str) -> Vec<(String, Timestamp)> {
    report[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["pod"].as_str()?.to_string(),
                e["at"].as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

/// For each wave that opened the partition, how long the engine took to make its next write
/// after the wave's last updated pod became Ready: to the acknowledgement of the first write
/// it began after that moment.
///
/// A wave's pods are the updates the controller began between that wave's `set partition`
/// write and the next one; a pod is ready at its first `ready` record not earlier than its
/// update. Waves with no updates (pure handover) have nothing to react to and are skipped.
pub fn reaction_latencies_ms(report: &Value, writes: &[Write]) -> Vec<f64> {
    let opens: Vec<Timestamp> = writes
        .iter()
        .filter(|w| w.action == "set partition" && wave_of(&w.step).is_some())
        .map(|w| w.at)
        .collect();
    let updates = timed(report, "updates");
    let ready = timed(report, "ready");
    let mut out = Vec::new();
    for (i, open) in opens.iter().enumerate() {
        let close = opens.get(i + 1).copied();
        let mut last_ready: Option<Timestamp> = None;
        for (pod, at) in &updates {
            if at < open || close.is_some_and(|c| *at >= c) {
                continue;
            }
            let Some(r) = ready
                .iter()
                .filter(|(p, r)| p == pod && r >= at)
                .map(|(_, r)| *r)
                .min()
            else {
                continue;
            };
            last_ready = Some(last_ready.map_or(r, |l| l.max(r)));
        }
        let Some(ready_at) = last_ready else { continue };
        if let Some(next) = writes.iter().find(|w| w.at >= ready_at) {
            out.push(ms_between(ready_at, next.acked));
        }
    }
    out
}

pub fn ms_between(a: Timestamp, b: Timestamp) -> f64 {
    let d = b.as_nanosecond() - a.as_nanosecond();
    d as f64 / 1e6
}

/// Nearest-rank percentile; `None` for an empty sample.
pub fn percentile(sample: &[f64], p: f64) -> Option<f64> {
    if sample.is_empty() {
        return None;
    }
    let mut s = sample.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

/// The report's request counts.
pub fn requests(report: &Value) -> BTreeMap<String, u64> {
    report["requests"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
        .collect()
}

/// Requests whose verb changes the cluster.
pub fn cluster_writes(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(k, _)| {
            let verb = k.split(' ').next().unwrap_or_default();
            matches!(verb, "create" | "update" | "patch" | "delete")
        })
        .map(|(_, v)| v)
        .sum()
}

/// Requests that read the cluster: gets, lists and watches of any resource (the Lease too).
pub fn cluster_reads(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(k, _)| {
            let verb = k.split(' ').next().unwrap_or_default();
            matches!(verb, "get" | "list" | "watch")
        })
        .map(|(_, v)| v)
        .sum()
}

/// `get`/`list` requests on pods: the reads that would grow with waiting time if the engine
/// polled instead of watching.
pub fn pod_reads(requests: &BTreeMap<String, u64>) -> u64 {
    ["get pods", "list pods"]
        .iter()
        .filter_map(|k| requests.get(*k))
        .sum()
}

/// Distinct waves named in the audit log.
pub fn waves(writes: &[Write]) -> u32 {
    let mut ks: Vec<u32> = writes.iter().filter_map(|w| wave_of(&w.step)).collect();
    ks.sort_unstable();
    ks.dedup();
    ks.len() as u32
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub limit: String,
    pub value: String,
    pub met: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(at: &str, step: &str, action: &str) -> Write {
        Write {
            at: at.parse().unwrap(),
            acked: at.parse().unwrap(),
            step: step.into(),
            action: action.into(),
        }
    }

    #[test]
    fn wave_numbers_come_from_the_step_prefix() {
        for (step, want) in [
            ("wave-1/relabel", Some(1)),
            ("wave-12/set-partition", Some(12)),
            ("apply-update", None),
            ("wave-x/relabel", None),
        ] {
            assert_eq!(wave_of(step), want, "{step}");
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = [5.0, 1.0, 3.0, 2.0, 4.0];
        for (p, want) in [(50.0, 3.0), (99.0, 5.0), (20.0, 1.0), (0.0, 1.0)] {
            assert_eq!(percentile(&s, p), Some(want), "p{p}");
        }
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn reaction_is_measured_from_the_last_ready_pod_of_each_wave_to_the_next_write() {
        let report = json!({
            "updates": [
                {"pod": "s-1", "at": "2026-01-01T00:00:01.000000Z"},
                {"pod": "s-3", "at": "2026-01-01T00:00:01.001000Z"},
                {"pod": "s-0", "at": "2026-01-01T00:00:03.000000Z"}
            ],
            "ready": [
                {"pod": "s-1", "at": "2026-01-01T00:00:00.000000Z"},
                {"pod": "s-1", "at": "2026-01-01T00:00:01.500000Z"},
                {"pod": "s-3", "at": "2026-01-01T00:00:01.800000Z"},
                {"pod": "s-0", "at": "2026-01-01T00:00:03.100000Z"}
            ]
        });
        let writes = vec![
            w(
                "2026-01-01T00:00:00.900Z",
                "wave-1/set-partition",
                "set partition",
            ),
            w("2026-01-01T00:00:01.804Z", "wave-1/handover", "handover"),
            w(
                "2026-01-01T00:00:02.900Z",
                "wave-2/set-partition",
                "set partition",
            ),
            w("2026-01-01T00:00:03.110Z", "finalize", "set partition"),
        ];
        let got = reaction_latencies_ms(&report, &writes);
        assert_eq!(got.len(), 2);
        assert!((got[0] - 4.0).abs() < 1e-6, "{got:?}");
        assert!((got[1] - 10.0).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn only_mutating_verbs_count_as_writes_and_only_pod_reads_as_polling_candidates() {
        let r = requests(&json!({"requests": {
            "patch pods": 4, "create events": 2, "update leases": 1, "get statefulsets": 9,
            "list pods": 3, "get pods": 1, "watch pods": 2
        }}));
        assert_eq!(cluster_writes(&r), 7);
        assert_eq!(pod_reads(&r), 4);
    }
}
