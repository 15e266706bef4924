//! Asking per-pod gates (issue #15): an HTTP GET, a local command or a Prometheus query per
//! pod, before the pod is selected or promoted. What the answers mean for the wave is the
//! decision core's (`decide::plan_gated_wave`); here are the calls, and the operator's
//! overrides (`--skip-gate`).

use std::collections::BTreeSet;
use std::sync::Arc;

use baton_engine::clock::{Clock, SystemClock};
use baton_engine::decide::{GateAnswer, gates_at};
use baton_engine::plan::{ExecHook, Gate, GateAction, GateMoment, HttpGate, Spec};
use futures::StreamExt as _;

use crate::prometheus;

/// How many gate calls are in flight at once: a wave of a hundred pods asks quickly without
/// flooding the application's health endpoints.
pub const GATES_IN_FLIGHT: usize = 8;

/// What the operator overrides for this process, and the clock windows are read with.
#[derive(Clone)]
pub struct SafetyOptions {
    /// Gates not asked (`engine run|resume --skip-gate NAME`).
    pub skip_gates: BTreeSet<String>,
    /// Who skips them (`user@host`), recorded in the history.
    pub by: String,
    /// Why, recorded in the history.
    pub reason: Option<String>,
    /// Wall-clock time for maintenance windows; tests inject a manual clock.
    pub clock: Arc<dyn Clock>,
    /// Skips already written to the history by this process.
    pub recorded: Arc<std::sync::Mutex<BTreeSet<String>>>,
}

impl Default for SafetyOptions {
    fn default() -> Self {
        SafetyOptions {
            skip_gates: BTreeSet::new(),
            by: String::new(),
            reason: None,
            clock: Arc::new(SystemClock),
            recorded: Arc::default(),
        }
    }
}

impl std::fmt::Debug for SafetyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetyOptions")
            .field("skip_gates", &self.skip_gates)
            .field("by", &self.by)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// `BATON_TEST_CLOCK=2026-12-06T23:59:58+01:00`: the run's windows read a clock that starts
/// at that instant and runs at the wall clock's pace. A test hook, like `BATON_FAILPOINTS`,
/// so the `engine` binary's window waits can be tested without waiting for a real window.
pub const TEST_CLOCK_ENV: &str = "BATON_TEST_CLOCK";

/// A clock shifted by a fixed offset from the system's.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    offset: jiff::SignedDuration,
}

impl ShiftedClock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: jiff::Timestamp) -> Self {
        ShiftedClock {
            offset: start.duration_since(jiff::Timestamp::now()),
        }
    }

    /// From [`TEST_CLOCK_ENV`], when it is set; an unreadable value is an error.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Ok(text) = std::env::var(TEST_CLOCK_ENV) else {
            return Ok(None);
        };
        let start: jiff::Timestamp = text
            .parse()
            .map_err(|e| format!("{TEST_CLOCK_ENV}={text:?} is not an RFC 3339 instant: {e}"))?;
        Ok(Some(ShiftedClock::starting_at(start)))
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> jiff::Timestamp {
        let now = jiff::Timestamp::now();
        now.checked_add(self.offset).unwrap_or(now)
    }
}

/// The values gate placeholders expand to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateVars {
    pub pod: String,
    pub run: String,
    pub wave: String,
}

impl GateVars {
    fn pairs(&self) -> [(&'static str, &str); 3] {
        [("pod", &self.pod), ("run", &self.run), ("wave", &self.wave)]
    }

    /// Replaces `{{pod}}`, `{{run}}` and `{{wave}}`.
    pub fn expand(&self, text: &str) -> String {
        self.pairs().iter().fold(text.to_owned(), |acc, (k, v)| {
            acc.replace(&format!("{{{{{k}}}}}"), v)
        })
    }
}

/// Asks every gate of `spec` due at `moment` (less `skipped`) about every pod of `pods`,
/// [`GATES_IN_FLIGHT`] calls at a time. One answer per pod and gate, pods in the given order.
pub async fn ask_all(
    spec: &Spec,
    moment: GateMoment,
    skipped: &BTreeSet<String>,
    pods: &[String],
    run: &str,
    wave: u32,
) -> Vec<GateAnswer> {
    let gates = gates_at(&spec.gates, moment, skipped);
    // Owned, so the stream's futures borrow nothing (the step's future must be Send for
    // any lifetime).
    let calls: Vec<(GateVars, Gate)> = pods
        .iter()
        .flat_map(|pod| {
            gates.iter().map(move |g| {
                let vars = GateVars {
                    pod: pod.clone(),
                    run: run.to_owned(),
                    wave: wave.to_string(),
                };
                (vars, (*g).clone())
            })
        })
        .collect();
    futures::stream::iter(calls)
        .map(|(vars, gate)| async move {
            let (passed, answer) = ask(&gate, &vars).await;
            GateAnswer {
                pod: vars.pod,
                gate: gate.name,
                moment,
                passed,
                answer,
            }
        })
        .buffered(GATES_IN_FLIGHT)
        .collect()
        .await
}

/// One gate about one pod: whether it passed, and its answer in words.
pub async fn ask(gate: &Gate, vars: &GateVars) -> (bool, String) {
    match gate.action() {
        Some(GateAction::Http(h)) => http(h, vars).await,
        Some(GateAction::Exec(e)) => exec(e, vars).await,
        Some(GateAction::Prometheus(q)) => {
            match prometheus::query_value(q, &vars.expand(&q.query)).await {
                Ok(value) => prometheus::judge(q, value),
                Err(e) => (false, crate::env::chain(&e)),
            }
        }
        None => (false, "the gate has no single check".to_owned()),
    }
}

async fn http(gate: &HttpGate, vars: &GateVars) -> (bool, String) {
    let url = vars.expand(&gate.url);
    let client = match reqwest::Client::builder()
        .timeout(gate.timeout.as_std())
        .build()
    {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot build an http client: {e}")),
    };
    match client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status == gate.expect_status {
                (true, format!("HTTP {status}"))
            } else {
                (
                    false,
                    format!("HTTP {status}, expected {}", gate.expect_status),
                )
            }
        }
        Err(e) if e.is_timeout() => (false, format!("no answer within {}", gate.timeout)),
        Err(e) => (false, format!("no answer: {}", crate::env::chain(&e))),
    }
}

async fn exec(gate: &ExecHook, vars: &GateVars) -> (bool, String) {
    let argv: Vec<String> = gate.command.iter().map(|a| vars.expand(a)).collect();
    let Some((program, args)) = argv.split_first() else {
        return (false, "empty command".to_owned());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("BATON_POD", &vars.pod)
        .env("BATON_RUN", &vars.run)
        .env("BATON_WAVE", &vars.wave)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = match tokio::time::timeout(gate.timeout.as_std(), cmd.output()).await {
        Err(_) => return (false, format!("{program} timed out after {}", gate.timeout)),
        Ok(Err(e)) => return (false, format!("{program} could not start: {e}")),
        Ok(Ok(o)) => o,
    };
    let said = |bytes: &[u8]| -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let skip = text.chars().count().saturating_sub(200);
        text.chars().skip(skip).collect()
    };
    let told = [said(&output.stderr), said(&output.stdout)]
        .into_iter()
        .find(|t| !t.is_empty());
    let code = output
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
    let answer = match told {
        Some(t) => format!("{code}: {t}"),
        None => code,
    };
    (output.status.success(), answer)
}

/// The pods whose promote gates fail now, among those a handover could promote. Without
/// promote gates, nobody. `tell`: announce each held pod in the progress stream.
pub async fn promote_held(
    env: &crate::env::Env,
    ctx: &baton_engine::step::StepContext,
    s: &baton_engine::snapshot::Snapshot,
    policy: &baton_engine::decide::Policy,
    wave: u32,
    tell: bool,
) -> baton_engine::decide::Held {
    let spec = env.plan.spec();
    let skipped = &env.safety.skip_gates;
    if gates_at(&spec.gates, GateMoment::Promote, skipped).is_empty() {
        return baton_engine::decide::Held::default();
    }
    let Ok(pods) = baton_engine::decide::promote_candidates(s, policy) else {
        return baton_engine::decide::Held::default();
    };
    let answers = ask_all(spec, GateMoment::Promote, skipped, &pods, &ctx.run_id, wave).await;
    for a in answers.iter().filter(|a| tell && !a.passed) {
        ctx.journal.emit(baton_engine::event::RunEvent::Warning {
            message: format!(
                "wave {wave}: {} not promoted: gate {}: {}",
                a.pod, a.gate, a.answer
            ),
        });
    }
    baton_engine::decide::Held::from_answers(&answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(yaml: &str) -> Gate {
        let text = format!(
            "apiVersion: baton.dev/v1alpha1\nkind: UpgradePlan\nmetadata: {{name: g}}\nspec:\n  \
             target: {{name: sample}}\n  update: {{images: {{main: alpine:3.18.0}}}}\n  \
             arbiter: {{url: \"http://127.0.0.1:1\"}}\n  gates:\n    - {yaml}\n"
        );
        let plan = baton_engine::plan::ValidPlan::parse("g.yaml", &text).unwrap();
        plan.spec().gates[0].clone()
    }

    fn vars(pod: &str) -> GateVars {
        GateVars {
            pod: pod.into(),
            run: "r".into(),
            wave: "1".into(),
        }
    }

    #[tokio::test]
    async fn exec_and_http_gates_answer_in_words() {
        let by_env =
            gate(r#"{name: env, exec: {command: [sh, -c, 'test "$BATON_POD" = sample-1']}}"#);
        assert_eq!(
            ask(&by_env, &vars("sample-1")).await,
            (true, "exit 0".to_owned())
        );
        assert_eq!(
            ask(&by_env, &vars("sample-3")).await,
            (false, "exit 1".to_owned())
        );

        let told = gate(
            r#"{name: lag, exec: {command: [sh, -c, 'echo "{{pod}} is 7s behind" >&2; exit 3']}}"#,
        );
        assert_eq!(
            ask(&told, &vars("sample-3")).await,
            (false, "exit 3: sample-3 is 7s behind".to_owned())
        );

        let slow = gate(r#"{name: slow, exec: {command: [sleep, "5"], timeout: 100ms}}"#);
        assert_eq!(
            ask(&slow, &vars("sample-3")).await,
            (false, "sleep timed out after 100ms".to_owned())
        );

        let nobody = gate(r#"{name: up, http: {url: "http://127.0.0.1:9/{{pod}}"}}"#);
        let (passed, answer) = ask(&nobody, &vars("sample-3")).await;
        assert!(!passed && answer.starts_with("no answer: "), "{answer}");
    }

    #[test]
    fn gate_placeholders_expand_to_the_pod_run_and_wave() {
        let vars = GateVars {
            pod: "sample-3".into(),
            run: "r".into(),
            wave: "2".into(),
        };
        let cases = [
            (
                "http://{{pod}}.svc:8080/caught-up?wave={{wave}}",
                "http://sample-3.svc:8080/caught-up?wave=2",
            ),
            (
                "lag{pod=\"{{pod}}\",run=\"{{run}}\"}",
                "lag{pod=\"sample-3\",run=\"r\"}",
            ),
            ("{{pods}}", "{{pods}}"),
        ];
        for (text, want) in cases {
            assert_eq!(vars.expand(text), want);
        }
    }
}
