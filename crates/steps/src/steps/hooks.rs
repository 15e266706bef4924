//! Plan hooks (http, exec, sleep, approval), the `settle` pause and the `approval` gate.
//! Hook URLs and commands may use `{{run}}`, `{{wave}}`, `{{pods}}`, `{{promote}}` and
//! `{{demote}}`; exec hooks also get them as `BATON_*` environment variables.

use std::future::Future;
use std::time::Duration;

use baton_engine::dag::StepKind;
use baton_engine::decide::plan_gated_handover;
use baton_engine::plan::{ExecHook, HookAction, HookPoint, HttpHook};
use baton_engine::step::{
    AuditWrite, StepContext, StepError, StepErrorKind, StepOutput, WriteOutcome,
};
use serde_json::{Value, json};

use crate::env::{Env, HandoverOutput, SelectOutput, wave_output, write_ahead};

/// The values placeholders expand to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub run: String,
    pub wave: String,
    pub pods: Vec<String>,
    pub promote: Vec<String>,
    pub demote: Vec<String>,
}

impl Vars {
    fn pairs(&self) -> [(&'static str, String); 5] {
        [
            ("run", self.run.clone()),
            ("wave", self.wave.clone()),
            ("pods", self.pods.join(",")),
            ("promote", self.promote.join(",")),
            ("demote", self.demote.join(",")),
        ]
    }

    /// `BATON_RUN`, `BATON_WAVE`, … for exec hooks.
    pub fn env(&self) -> Vec<(String, String)> {
        self.pairs()
            .into_iter()
            .map(|(k, v)| (format!("BATON_{}", k.to_uppercase()), v))
            .collect()
    }
}

/// Replaces every `{{name}}` with its value; unknown placeholders stay as written.
pub fn expand(text: &str, vars: &Vars) -> String {
    vars.pairs().iter().fold(text.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("{{{{{k}}}}}"), v)
    })
}

async fn vars(env: &Env, ctx: &StepContext, point: HookPoint) -> Result<Vars, StepError> {
    let select: Option<SelectOutput> = wave_output(ctx, StepKind::Select);
    let (promote, demote) = match point {
        HookPoint::AfterHandover => {
            let h: Option<HandoverOutput> = wave_output(ctx, StepKind::Handover);
            h.map(|h| (h.promote, h.demote)).unwrap_or_default()
        }
        HookPoint::BeforeHandover => {
            // The handover that follows, as it will be: without pods whose promote gates fail.
            let live = env.live().await?;
            let policy = env.policy(ctx);
            let wave = ctx.step.wave.unwrap_or(0);
            let held =
                crate::gates::promote_held(env, ctx, &live.snapshot, &policy, wave, false).await;
            match plan_gated_handover(&live.snapshot, &policy, &held) {
                Ok(Some(h)) => (h.promote, h.demote),
                _ => Default::default(),
            }
        }
        _ => Default::default(),
    };
    Ok(Vars {
        run: ctx.run_id.clone(),
        wave: ctx.step.wave.map(|w| w.to_string()).unwrap_or_default(),
        pods: select.map(|s| s.select).unwrap_or_default(),
        promote,
        demote,
    })
}

pub async fn run_hook(
    env: &Env,
    ctx: &StepContext,
    point: HookPoint,
    name: &str,
) -> Result<StepOutput, StepError> {
    let hook = env
        .plan
        .spec()
        .hooks
        .at(point)
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| {
            StepError::failed(format!(
                "the plan has no {} hook named {name}",
                point.as_str()
            ))
        })?;
    let action = hook
        .action()
        .ok_or_else(|| StepError::failed(format!("hook {name} has no single action")))?;
    let vars = vars(env, ctx, point).await?;
    // Handover hooks belong to a handover: in a wave that hands nothing over (the last one,
    // or one whose working pods are all updated) they do not run.
    if matches!(point, HookPoint::BeforeHandover | HookPoint::AfterHandover)
        && vars.promote.is_empty()
        && vars.demote.is_empty()
    {
        return Ok(StepOutput::new(
            json!({"skipped": "no handover in this wave"}),
        ));
    }
    match action {
        HookAction::Http(h) => {
            let what = format!("{} {}", h.method.to_uppercase(), expand(&h.url, &vars));
            audited(ctx, name, what, http(ctx, h, &vars)).await
        }
        HookAction::Exec(e) => {
            let argv: Vec<String> = e.command.iter().map(|a| expand(a, &vars)).collect();
            audited(
                ctx,
                name,
                format!("exec {}", argv.join(" ")),
                exec(ctx, e, &vars),
            )
            .await
        }
        HookAction::Sleep(s) => sleep(ctx, s.duration.as_std()).await,
        HookAction::Approval(_) => approval(ctx).await,
    }
}

/// Runs a hook that acts on the world, write-ahead logged like every other write: its
/// call is in the history even when the process dies while the hook runs.
async fn audited(
    ctx: &StepContext,
    name: &str,
    what: String,
    call: impl Future<Output = Result<StepOutput, StepError>>,
) -> Result<StepOutput, StepError> {
    let audit = AuditWrite {
        object: format!("hook {name}"),
        action: what,
        before: Value::Null,
        after: Value::Null,
    };
    write_ahead(ctx, audit, call, |result| match result {
        Ok(out) => Some(WriteOutcome::Completed {
            answer: out.value.clone(),
        }),
        Err(e) if e.kind == StepErrorKind::Interrupted => Some(WriteOutcome::Cancelled),
        Err(e) => Some(WriteOutcome::Failed {
            error: e.message.clone(),
        }),
    })
    .await?
}

async fn http(ctx: &StepContext, hook: &HttpHook, vars: &Vars) -> Result<StepOutput, StepError> {
    let url = expand(&hook.url, vars);
    let method =
        reqwest::Method::from_bytes(hook.method.to_uppercase().as_bytes()).map_err(|_| {
            StepError::failed(format!(
                "hook method {:?} is not an http method",
                hook.method
            ))
        })?;
    let client = reqwest::Client::builder()
        .timeout(hook.timeout.as_std())
        .build()
        .map_err(|e| StepError::failed("cannot build the hook http client").with_source(e))?;
    let sent = tokio::select! {
        () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
        r = client.request(method, &url).send() => r,
    };
    let resp = sent.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        StepError::failed(format!("http hook {url} {what}")).with_source(e)
    })?;
    let status = resp.status().as_u16();
    if status != hook.expect_status {
        return Err(StepError::failed(format!(
            "http hook {url} answered {status}, expected {}",
            hook.expect_status
        )));
    }
    Ok(StepOutput::new(json!({"url": url, "status": status})))
}

async fn exec(ctx: &StepContext, hook: &ExecHook, vars: &Vars) -> Result<StepOutput, StepError> {
    let argv: Vec<String> = hook.command.iter().map(|a| expand(a, vars)).collect();
    let Some((program, args)) = argv.split_first() else {
        return Err(StepError::failed("exec hook has an empty command"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(vars.env())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = tokio::select! {
        () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
        r = tokio::time::timeout(hook.timeout.as_std(), cmd.output()) => match r {
            Err(_) => return Err(StepError::failed(format!("exec hook {program} timed out after {}", hook.timeout))),
            Ok(Err(e)) => return Err(StepError::failed(format!("exec hook {program} could not start")).with_source(e)),
            Ok(Ok(o)) => o,
        },
    };
    let (stdout, stderr) = (tail(&output.stdout), tail(&output.stderr));
    if !output.status.success() {
        let mut told = format!("exec hook {program} exited with {}", output.status);
        for (name, text) in [("stderr", &stderr), ("stdout", &stdout)] {
            if !text.is_empty() {
                told.push_str(&format!("; {name}: {text}"));
            }
        }
        return Err(StepError::failed(told));
    }
    Ok(StepOutput::new(json!({
        "command": argv,
        "exit": output.status.code(),
        "stdout": stdout,
        "stderr": stderr,
    })))
}

/// The last 300 characters of a hook's output, trimmed: enough to see why, small enough for
/// the history.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(300);
    text.chars().skip(skip).collect()
}

/// A pause that a signal interrupts.
pub async fn sleep(ctx: &StepContext, pause: Duration) -> Result<StepOutput, StepError> {
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(StepError::interrupted()),
        () = tokio::time::sleep(pause) => Ok(StepOutput::new(json!({"slept_ms": pause.as_millis() as u64}))),
    }
}

/// Waits for `engine approve`.
pub async fn approval(ctx: &StepContext) -> Result<StepOutput, StepError> {
    let wait = ctx.journal.wait_approval(ctx.step.clone());
    let approval = tokio::select! {
        () = ctx.cancel.cancelled() => return Err(StepError::interrupted()),
        a = wait => a.map_err(|e| StepError::failed(format!("waiting for approval failed: {}", e.0)))?,
    };
    Ok(StepOutput::new(
        json!({"by": approval.by, "reason": approval.reason, "at": approval.at}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            run: "sample-run".into(),
            wave: "2".into(),
            pods: vec!["sample-0".into(), "sample-2".into()],
            promote: vec!["sample-1".into()],
            demote: vec![],
        }
    }

    #[test]
    fn placeholders_expand_to_the_run_wave_and_pods() {
        let cases = [
            (
                "http://svc/check?run={{run}}&wave={{wave}}",
                "http://svc/check?run=sample-run&wave=2",
            ),
            ("{{pods}}", "sample-0,sample-2"),
            (
                "promote={{promote}} demote={{demote}}",
                "promote=sample-1 demote=",
            ),
            (
                "{{unknown}} {wave} {{ wave }}",
                "{{unknown}} {wave} {{ wave }}",
            ),
            ("{{wave}}{{wave}}", "22"),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text, &vars()), want, "{text}");
        }
    }

    #[test]
    fn exec_hooks_get_every_placeholder_as_an_environment_variable() {
        let env = vars().env();
        assert_eq!(
            env,
            vec![
                ("BATON_RUN".to_owned(), "sample-run".to_owned()),
                ("BATON_WAVE".to_owned(), "2".to_owned()),
                ("BATON_PODS".to_owned(), "sample-0,sample-2".to_owned()),
                ("BATON_PROMOTE".to_owned(), "sample-1".to_owned()),
                ("BATON_DEMOTE".to_owned(), String::new()),
            ]
        );
    }
}
