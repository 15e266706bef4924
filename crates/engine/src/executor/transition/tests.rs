//! Table tests of the transition function: records in, records and effects out.

use super::*;
use crate::step::StepError;

fn plan(hooks: &[&str]) -> ValidPlan {
    let hooks: String = if hooks.is_empty() {
        " []\n".to_owned()
    } else {
        hooks
            .iter()
            .map(|h| format!("\n      - name: {h}\n        sleep: {{duration: 1ms}}"))
            .collect::<String>()
            + "\n"
    };
    let text = format!(
        "apiVersion: baton.dev/v1alpha1\nkind: UpgradePlan\nmetadata:\n  name: r\nspec:\n  target:\n    namespace: default\n    name: sample\n  update:\n    images:\n      main: alpine:3.18.0\n  arbiter:\n    url: http://127.0.0.1:9/\n  hooks:\n    afterWaveReady:{hooks}"
    );
    ValidPlan::parse("plan.yaml", &text).unwrap()
}

pub(super) fn at(s: u32) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + i64::from(s)).unwrap()
}

/// A run of `plan` created at 0 and with its prologue done.
pub(super) fn created(plan: &ValidPlan) -> RunRecord {
    let mut rec = new_record(plan, "r", at(0));
    apply(
        &mut rec,
        at(0),
        Transition::Create {
            prologue: Blueprint::prologue(plan),
        },
    )
    .unwrap();
    rec
}

pub(super) fn idx(rec: &RunRecord, id: &str) -> usize {
    rec.nodes
        .iter()
        .position(|n| n.spec.id.to_string() == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

fn states(rec: &RunRecord) -> Vec<(String, NodeState)> {
    rec.nodes
        .iter()
        .map(|n| (n.spec.id.to_string(), n.state))
        .collect()
}

fn all_done(rec: &mut RunRecord) {
    for n in &mut rec.nodes {
        if !n.state.is_done() {
            n.state = NodeState::Succeeded;
        }
    }
}

/// A run whose prologue is done and whose wave 1 was just added.
fn in_wave_one(plan: &ValidPlan) -> RunRecord {
    let mut rec = created(plan);
    all_done(&mut rec);
    apply(&mut rec, at(1), Transition::Grow { blueprint: plan }).unwrap();
    rec
}

#[test]
fn create_adds_the_prologue_and_says_the_run_started() {
    let p = plan(&[]);
    let mut rec = new_record(&p, "r", at(0));
    let fx = apply(
        &mut rec,
        at(0),
        Transition::Create {
            prologue: Blueprint::prologue(&p),
        },
    )
    .unwrap();
    assert_eq!(
        states(&rec),
        [
            ("protect".to_owned(), NodeState::Pending),
            ("apply-update".to_owned(), NodeState::Pending)
        ]
    );
    assert_eq!(
        fx,
        [
            Effect::Node(0),
            Effect::Node(1),
            Effect::Event(RunEvent::RunStarted {
                run: "r".into(),
                plan: "plan.yaml".into(),
                target: "default/sample".into()
            })
        ]
    );
    assert_eq!(
        (rec.meta.state, rec.meta.phase),
        (RunState::Running, Phase::Prologue)
    );
}

#[test]
fn node_transitions_set_state_attempts_times_and_events() {
    let p = plan(&[]);
    let err = |kind, message: &str| NodeError {
        kind,
        message: message.into(),
    };
    // (transition on node 0 of a fresh run, state, attempts, error, started, finished, events)
    type Row = (
        Box<dyn Fn() -> Transition<'static>>,
        NodeState,
        u32,
        Option<NodeError>,
        Option<Timestamp>,
        Option<Timestamp>,
        Vec<RunEvent>,
    );
    let table: Vec<Row> = vec![
        (
            Box::new(|| Transition::Started { idx: 0 }),
            NodeState::Running,
            1,
            None,
            Some(at(5)),
            None,
            vec![RunEvent::StepStarted {
                step: "protect".into(),
                attempt: 1,
            }],
        ),
        (
            Box::new(|| Transition::Retrying {
                idx: 0,
                error: NodeError {
                    kind: StepErrorKind::Retryable,
                    message: "busy".into(),
                },
            }),
            NodeState::Pending,
            0,
            Some(err(StepErrorKind::Retryable, "busy")),
            None,
            None,
            vec![RunEvent::StepFailed {
                step: "protect".into(),
                error: "busy".into(),
                retrying: true,
            }],
        ),
        (
            Box::new(|| Transition::Failed {
                idx: 0,
                error: StepError::failed("no"),
                rolls_back: false,
            }),
            NodeState::Failed,
            0,
            Some(err(StepErrorKind::Failed, "no")),
            None,
            Some(at(5)),
            vec![RunEvent::StepFailed {
                step: "protect".into(),
                error: "no".into(),
                retrying: false,
            }],
        ),
        (
            Box::new(|| Transition::Failed {
                idx: 0,
                error: StepError::safety_stop("two down"),
                rolls_back: false,
            }),
            NodeState::Failed,
            0,
            Some(err(StepErrorKind::SafetyStop, "two down")),
            None,
            Some(at(5)),
            vec![RunEvent::SafetyStop {
                step: "protect".into(),
                reason: "two down".into(),
            }],
        ),
        (
            Box::new(|| Transition::Failed {
                idx: 0,
                error: StepError::interrupted(),
                rolls_back: false,
            }),
            NodeState::Interrupted,
            0,
            Some(err(StepErrorKind::Interrupted, "interrupted")),
            None,
            Some(at(5)),
            vec![],
        ),
        (
            Box::new(|| Transition::Abandoned {
                idx: 0,
                panic: None,
            }),
            NodeState::Interrupted,
            0,
            None,
            None,
            Some(at(5)),
            vec![],
        ),
        (
            Box::new(|| Transition::Abandoned {
                idx: 0,
                panic: Some("the step panicked".into()),
            }),
            NodeState::Failed,
            0,
            Some(err(StepErrorKind::Failed, "the step panicked")),
            None,
            Some(at(5)),
            vec![],
        ),
    ];
    for (i, (transition, state, attempts, error, started, finished, events)) in
        table.into_iter().enumerate()
    {
        let mut rec = created(&p);
        let fx = apply(&mut rec, at(5), transition()).unwrap();
        let n = &rec.nodes[0];
        assert_eq!(
            (n.state, n.attempts, &n.error, n.started_at, n.finished_at),
            (state, attempts, &error, started, finished),
            "row {i}"
        );
        let mut want = vec![Effect::Node(0)];
        want.extend(events.into_iter().map(Effect::Event));
        assert_eq!(fx, want, "row {i}");
        assert_eq!(rec.nodes[1].state, NodeState::Pending, "row {i}");
    }
}

#[test]
fn an_abandoned_node_that_already_ended_keeps_its_end() {
    let p = plan(&[]);
    let mut rec = created(&p);
    rec.nodes[0].state = NodeState::Succeeded;
    let fx = apply(
        &mut rec,
        at(5),
        Transition::Abandoned {
            idx: 0,
            panic: None,
        },
    )
    .unwrap();
    assert_eq!(rec.nodes[0].state, NodeState::Succeeded);
    assert_eq!(rec.nodes[0].finished_at, None);
    assert_eq!(fx, [Effect::Node(0)]);
}

#[test]
fn success_keeps_the_output_and_vars_and_finish_skips_the_rest_of_the_wave() {
    let p = plan(&[]);
    let mut rec = in_wave_one(&p);
    let first = rec.meta.phase_start as usize;
    let output = StepOutput {
        value: serde_json::json!({"vars": {"k": 1}, "x": 2}),
        control: Control::Finish,
    };
    let fx = apply(
        &mut rec,
        at(7),
        Transition::Succeeded {
            idx: first,
            output,
            ms: 12,
        },
    )
    .unwrap();
    let n = &rec.nodes[first];
    assert_eq!(n.state, NodeState::Succeeded);
    assert_eq!(
        n.output.as_deref(),
        Some(&serde_json::json!({"vars": {"k": 1}, "x": 2}))
    );
    assert_eq!(rec.meta.vars.get("k"), Some(&serde_json::json!(1)));
    assert!(rec.meta.finishing);
    assert!(
        rec.nodes[first + 1..]
            .iter()
            .all(|n| n.state == NodeState::Skipped && n.finished_at == Some(at(7)))
    );
    assert_eq!(fx[0], Effect::Node(first));
    assert_eq!(
        fx[1],
        Effect::Event(RunEvent::StepFinished {
            step: n.spec.id.to_string(),
            ms: 12
        })
    );
    assert_eq!(fx.len(), 2 + rec.nodes.len() - first - 1);
    // The prologue is not touched by a finish in wave 1.
    assert!(
        rec.nodes[..first]
            .iter()
            .all(|n| n.state == NodeState::Succeeded)
    );
}

#[test]
fn grow_walks_prologue_waves_and_epilogue_then_completes() {
    let p = plan(&[]);
    let mut rec = created(&p);
    // Not done: refused, nothing changes.
    let before = rec.clone();
    let err = apply(&mut rec, at(1), Transition::Grow { blueprint: &p }).unwrap_err();
    assert_eq!(err.0, "protect is pending but nothing can run");
    assert_eq!(rec, before);

    all_done(&mut rec);
    let fx = apply(&mut rec, at(1), Transition::Grow { blueprint: &p }).unwrap();
    assert_eq!(rec.meta.phase, Phase::Wave { wave: 1 });
    assert_eq!(rec.meta.phase_start, 2);
    assert!(rec.nodes[2..].iter().all(|n| n.spec.id.wave == Some(1)));
    assert_eq!(
        fx,
        (2..rec.nodes.len()).map(Effect::Node).collect::<Vec<_>>()
    );
    // The wave hangs off the prologue's sink.
    assert_eq!(rec.nodes[2].spec.deps, [rec.nodes[1].spec.id.clone()]);

    all_done(&mut rec);
    apply(&mut rec, at(2), Transition::Grow { blueprint: &p }).unwrap();
    assert_eq!(rec.meta.phase, Phase::Wave { wave: 2 });

    // A finishing step sends the run to the epilogue.
    all_done(&mut rec);
    rec.meta.finishing = true;
    apply(&mut rec, at(3), Transition::Grow { blueprint: &p }).unwrap();
    assert_eq!(rec.meta.phase, Phase::Epilogue);
    assert!(!rec.meta.finishing);

    all_done(&mut rec);
    let fx = apply(&mut rec, at(4), Transition::Grow { blueprint: &p }).unwrap();
    assert_eq!(rec.meta.state, RunState::Succeeded);
    assert_eq!(
        fx,
        [
            Effect::Event(RunEvent::RunFinished {
                run: "r".into(),
                outcome: "succeeded".into()
            }),
            Effect::Complete
        ]
    );
}

#[test]
fn grow_refuses_past_the_wave_bound() {
    let p = plan(&[]);
    let mut rec = in_wave_one(&p);
    all_done(&mut rec);
    rec.meta.phase = Phase::Wave { wave: MAX_WAVES };
    let before = rec.clone();
    let err = apply(&mut rec, at(1), Transition::Grow { blueprint: &p }).unwrap_err();
    assert!(err.0.contains("waves without finishing"), "{err}");
    assert_eq!(rec, before);
}

#[test]
fn stop_records_the_state_and_reason() {
    let p = plan(&[]);
    for state in [
        RunState::Interrupted,
        RunState::Aborted,
        RunState::Failed,
        RunState::SafetyStopped,
    ] {
        let mut rec = created(&p);
        let fx = apply(
            &mut rec,
            at(1),
            Transition::Stop {
                state,
                reason: Some("why".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (rec.meta.state, rec.meta.reason.as_deref()),
            (state, Some("why"))
        );
        assert_eq!(
            fx,
            [Effect::Event(RunEvent::RunFinished {
                run: "r".into(),
                outcome: state.as_str().into()
            })]
        );
    }
}

pub(super) fn resume(rec: &mut RunRecord, plan: &ValidPlan, accept_risk: bool) -> Vec<Effect> {
    apply(
        rec,
        at(9),
        Transition::Resume {
            plan,
            accept_risk,
            by: "op".into(),
        },
    )
    .unwrap()
}

#[test]
fn resume_runs_again_what_a_dead_process_left_and_keeps_what_ended() {
    let p = plan(&[]);
    // (state before, state after, warning)
    let table = [
        (NodeState::Running, NodeState::Pending, true),
        (NodeState::Failed, NodeState::Pending, false),
        (NodeState::Interrupted, NodeState::Pending, false),
        (NodeState::Pending, NodeState::Pending, false),
        (NodeState::Succeeded, NodeState::Succeeded, false),
        (NodeState::Skipped, NodeState::Skipped, false),
    ];
    for (before, after, warns) in table {
        let mut rec = created(&p);
        rec.meta.state = RunState::Failed;
        rec.meta.reason = Some("x".into());
        rec.nodes[0].state = before;
        let fx = resume(&mut rec, &p, false);
        assert_eq!(rec.nodes[0].state, after, "{before:?}");
        assert_eq!(
            (rec.meta.state, rec.meta.reason.clone()),
            (RunState::Running, None)
        );
        let warned = fx.iter().any(|e| {
            matches!(e, Effect::Event(RunEvent::Warning { message })
                if message == "protect was running when its process stopped; running it again")
        });
        assert_eq!(warned, warns, "{before:?}");
        assert_eq!(fx.contains(&Effect::Node(0)), before != after, "{before:?}");
        assert!(matches!(
            fx.last(),
            Some(Effect::Event(RunEvent::RunStarted { .. }))
        ));
    }
}

#[test]
fn accepting_a_safety_stop_in_a_wave_plans_that_wave_again() {
    let p = plan(&[]);
    let mut rec = in_wave_one(&p);
    let first = rec.meta.phase_start as usize;
    let stopped = first + 2;
    for n in &mut rec.nodes[first..stopped] {
        n.state = NodeState::Succeeded;
        n.output = Some(Arc::new(serde_json::json!({"old": true})));
        n.started_at = Some(at(3));
        n.finished_at = Some(at(4));
    }
    rec.nodes[stopped].state = NodeState::Failed;
    rec.nodes[stopped].error = Some(NodeError {
        kind: StepErrorKind::SafetyStop,
        message: "two down".into(),
    });
    rec.meta.state = RunState::SafetyStopped;

    // Without accepting, the stopped node is just pending again; the rest of the wave stays.
    let mut kept = rec.clone();
    resume(&mut kept, &p, false);
    assert_eq!(kept.nodes[stopped].state, NodeState::Pending);
    assert_eq!(kept.nodes[first].state, NodeState::Succeeded);

    let fx = resume(&mut rec, &p, true);
    for n in &rec.nodes[first..] {
        assert_eq!(
            (n.state, &n.output, &n.error, n.started_at, n.finished_at),
            (NodeState::Pending, &None, &None, None, None),
            "{}",
            n.spec.id
        );
    }
    assert!(
        rec.nodes[..first]
            .iter()
            .all(|n| n.state == NodeState::Succeeded)
    );
    let accepted: Vec<&Effect> = fx
        .iter()
        .filter(|e| matches!(e, Effect::Log(LogKind::RiskAccepted { .. })))
        .collect();
    assert_eq!(
        accepted,
        [&Effect::Log(LogKind::RiskAccepted {
            step: rec.nodes[stopped].spec.id.clone(),
            by: "op".into()
        })]
    );
    assert_eq!(rec.meta.state, RunState::Running);
}

#[test]
fn accepting_a_safety_stop_outside_a_wave_skips_the_stopped_step() {
    let p = plan(&[]);
    let mut rec = created(&p);
    rec.nodes[0].state = NodeState::Failed;
    rec.nodes[0].error = Some(NodeError {
        kind: StepErrorKind::SafetyStop,
        message: "no".into(),
    });
    let fx = resume(&mut rec, &p, true);
    assert_eq!(rec.nodes[0].state, NodeState::Skipped);
    assert_eq!(rec.nodes[0].finished_at, Some(at(9)));
    assert!(fx.contains(&Effect::Log(LogKind::RiskAccepted {
        step: rec.nodes[0].spec.id.clone(),
        by: "op".into()
    })));
}

#[test]
fn resume_skips_hooks_a_replan_removed_and_keeps_the_others() {
    let old = plan(&["smoke", "lag"]);
    let mut rec = in_wave_one(&old);
    all_done(&mut rec);
    apply(&mut rec, at(2), Transition::Grow { blueprint: &old }).unwrap();
    let smoke = idx(&rec, "wave-2/hook/afterWaveReady/smoke");
    let lag = idx(&rec, "wave-2/hook/afterWaveReady/lag");
    let done_lag = idx(&rec, "wave-1/hook/afterWaveReady/lag");
    rec.nodes[lag].state = NodeState::Failed;
    let new = plan(&["smoke"]);
    let fx = resume(&mut rec, &new, false);
    assert_eq!(rec.nodes[lag].state, NodeState::Skipped);
    assert_eq!(rec.nodes[lag].finished_at, Some(at(9)));
    assert_eq!(rec.nodes[smoke].state, NodeState::Pending);
    // A hook that already ran stays as it ended.
    assert_eq!(rec.nodes[done_lag].state, NodeState::Succeeded);
    assert_eq!(fx[0], Effect::Node(lag));
    assert_eq!(
        fx[1],
        Effect::Event(RunEvent::Warning {
            message: format!(
                "{} is not in the plan any more; skipped",
                rec.nodes[lag].spec.id
            )
        })
    );
}
