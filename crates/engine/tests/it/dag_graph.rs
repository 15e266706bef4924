//! The step DAG: growth across waves, readiness, parallel hooks, errors and rendering.

use std::collections::HashSet;

use baton_engine::dag::{
    Dag, DagError, GraphFormat, NodeSpec, StepId, StepKind, epilogue, plan_graph, prologue, tails,
    wave,
};
use baton_engine::plan::{HookPoint, ValidPlan};

const BARE: &str = "\
apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: bare
spec:
  target: {name: sample}
  update:
    images: {main: alpine:3.18.0}
  arbiter: {url: http://127.0.0.1:8080}
";

const HOOKED: &str = "\
apiVersion: baton.dev/v1alpha1
kind: UpgradePlan
metadata:
  name: hooked
spec:
  target: {name: sample}
  update:
    images: {main: alpine:3.18.0}
  arbiter: {url: http://127.0.0.1:8080}
  waves:
    settle: 30s
    approval: firstWave
  hooks:
    beforeRollout:
      - name: announce
        sleep: {duration: 1s}
    afterWaveReady:
      - name: smoke
        http: {url: http://svc/health}
      - name: check-lag
        exec: {command: [./check.sh, '{{wave}}']}
    afterHandover:
      - name: caught-up
        sleep: {duration: 1s}
    afterRollout:
      - name: report
        sleep: {duration: 1s}
";

fn plan(text: &str) -> ValidPlan {
    match ValidPlan::parse("test.yaml", text) {
        Ok(plan) => plan,
        Err(error) => panic!("test plan is valid: {error}"),
    }
}

fn run(kind: StepKind) -> StepId {
    StepId::run_level(kind)
}

fn w(k: u32, kind: StepKind) -> StepId {
    StepId::in_wave(k, kind)
}

fn hook(k: Option<u32>, point: HookPoint, name: &str) -> StepId {
    StepId {
        wave: k,
        kind: StepKind::Hook {
            point,
            name: name.to_owned(),
        },
    }
}

fn node(id: StepId, deps: Vec<StepId>) -> NodeSpec {
    NodeSpec { id, deps }
}

fn ids(specs: &[NodeSpec]) -> Vec<String> {
    specs.iter().map(|s| s.id.to_string()).collect()
}

#[test]
fn a_plan_without_hooks_is_a_single_chain() {
    let p = plan(BARE);
    let dag = plan_graph(&p);
    assert_eq!(
        ids(&dag.specs()),
        [
            "protect",
            "apply-update",
            "wave-1/query-arbiter",
            "wave-1/select",
            "wave-1/relabel",
            "wave-1/set-partition",
            "wave-1/wait-updated",
            "wave-1/verify",
            "wave-1/handover",
            "finalize",
        ]
    );
    for pair in dag.specs().windows(2) {
        assert_eq!(
            pair[1].deps,
            vec![pair[0].id.clone()],
            "{} waits for {}",
            pair[1].id,
            pair[0].id
        );
    }
    assert_eq!(dag.sinks(), vec![run(StepKind::Finalize)]);
    assert_eq!(dag.repeating(), Some(1));
}

#[test]
fn hooks_at_one_point_run_in_parallel_and_are_joined() {
    let p = plan(HOOKED);
    let specs = wave(&p, 1, &[run(StepKind::ApplyUpdate)]);
    let smoke = hook(Some(1), HookPoint::AfterWaveReady, "smoke");
    let lag = hook(Some(1), HookPoint::AfterWaveReady, "check-lag");
    let get = |id: &StepId| {
        specs
            .iter()
            .find(|s| &s.id == id)
            .unwrap_or_else(|| panic!("{id} in wave"))
    };
    assert_eq!(get(&smoke).deps, vec![w(1, StepKind::Verify)]);
    assert_eq!(get(&lag).deps, vec![w(1, StepKind::Verify)]);
    assert_eq!(
        get(&w(1, StepKind::Settle)).deps,
        vec![smoke.clone(), lag.clone()]
    );
    assert_eq!(
        get(&w(1, StepKind::Approval)).deps,
        vec![w(1, StepKind::Settle)]
    );
    assert_eq!(
        get(&w(1, StepKind::Handover)).deps,
        vec![w(1, StepKind::Approval)]
    );
    assert_eq!(
        tails(&specs),
        vec![hook(Some(1), HookPoint::AfterHandover, "caught-up")]
    );

    let pro = prologue(&p);
    assert_eq!(
        ids(&pro),
        ["hook/beforeRollout/announce", "protect", "apply-update"]
    );
    let epi = epilogue(&p, &tails(&specs));
    assert_eq!(ids(&epi), ["finalize", "hook/afterRollout/report"]);
    assert_eq!(epi[0].deps, tails(&specs));
}

#[test]
fn approval_follows_the_plan_first_wave_or_every_wave() {
    let first = plan(HOOKED);
    let every = plan(&HOOKED.replace("approval: firstWave", "approval: everyWave"));
    let none = plan(&HOOKED.replace("approval: firstWave", "approval: none"));
    let has_gate = |p: &ValidPlan, k: u32| {
        wave(p, k, &[])
            .iter()
            .any(|s| s.id.kind == StepKind::Approval)
    };
    assert!(has_gate(&first, 1));
    assert!(!has_gate(&first, 2));
    assert!(has_gate(&every, 1) && has_gate(&every, 2) && has_gate(&every, 7));
    assert!(!has_gate(&none, 1));
    assert!(
        !wave(&plan(BARE), 1, &[])
            .iter()
            .any(|s| s.id.kind == StepKind::Settle),
        "no settle at 0s"
    );
}

#[test]
fn the_graph_grows_wave_by_wave_and_ready_follows_completion() {
    let p = plan(HOOKED);
    let mut dag = Dag::new();
    dag.extend(prologue(&p)).unwrap();
    dag.extend(wave(&p, 1, &dag.sinks())).unwrap();
    let first_len = dag.len();
    dag.extend(wave(&p, 2, &dag.sinks())).unwrap();
    assert!(dag.len() > first_len);
    assert_eq!(
        dag.get(&w(2, StepKind::QueryArbiter)).unwrap().deps,
        vec![hook(Some(1), HookPoint::AfterHandover, "caught-up")]
    );
    dag.extend(epilogue(&p, &dag.sinks())).unwrap();
    assert_eq!(
        dag.sinks(),
        vec![hook(None, HookPoint::AfterRollout, "report")]
    );

    // Walk the graph: each round completes whatever is ready; every step becomes ready once,
    // only after all it waits for, and in an order that respects the edges.
    let mut done: HashSet<StepId> = HashSet::new();
    let mut rounds = Vec::new();
    loop {
        let ready = dag.ready(|id| done.contains(id));
        if ready.is_empty() {
            break;
        }
        for id in &ready {
            assert!(dag.get(id).unwrap().deps.iter().all(|d| done.contains(d)));
        }
        rounds.push(ready.clone());
        done.extend(ready);
    }
    assert_eq!(done.len(), dag.len());
    assert_eq!(
        rounds[0],
        vec![hook(None, HookPoint::BeforeRollout, "announce")]
    );
    let parallel: Vec<&Vec<StepId>> = rounds.iter().filter(|r| r.len() > 1).collect();
    assert_eq!(
        parallel,
        vec![
            &vec![
                hook(Some(1), HookPoint::AfterWaveReady, "smoke"),
                hook(Some(1), HookPoint::AfterWaveReady, "check-lag")
            ],
            &vec![
                hook(Some(2), HookPoint::AfterWaveReady, "smoke"),
                hook(Some(2), HookPoint::AfterWaveReady, "check-lag")
            ],
        ]
    );
}

#[test]
fn specs_replay_into_the_same_graph() {
    let dag = plan_graph(&plan(HOOKED));
    let mut again = Dag::new();
    again.extend(dag.specs()).unwrap();
    assert_eq!(again.specs(), dag.specs());
    assert_eq!(again.sinks(), dag.sinks());
}

#[test]
fn bad_nodes_are_refused_and_leave_the_graph_unchanged() {
    let a = run(StepKind::Protect);
    let b = run(StepKind::ApplyUpdate);
    let c = run(StepKind::Finalize);
    let mut dag = Dag::new();
    dag.add(node(a.clone(), vec![])).unwrap();

    assert!(
        matches!(dag.add(node(a.clone(), vec![])), Err(DagError::DuplicateStep(id)) if id == a)
    );
    assert!(matches!(
        dag.add(node(b.clone(), vec![c.clone()])),
        Err(DagError::UnknownDependency { step, dep }) if step == b && dep == c
    ));
    assert!(matches!(
        dag.add(node(b.clone(), vec![b.clone()])),
        Err(DagError::Cycle(_))
    ));

    // A batch is all or nothing: the good first node is not kept when the second is bad.
    let batch = vec![
        node(b.clone(), vec![a.clone()]),
        node(c.clone(), vec![run(StepKind::Settle)]),
    ];
    assert!(matches!(
        dag.extend(batch),
        Err(DagError::UnknownDependency { .. })
    ));
    assert_eq!(dag.len(), 1);
    assert!(!dag.contains(&b));
    // A batch may refer to its own earlier nodes.
    dag.extend(vec![
        node(b.clone(), vec![a.clone()]),
        node(c.clone(), vec![b.clone(), a.clone(), b.clone()]),
    ])
    .unwrap();
    assert_eq!(
        dag.get(&c).unwrap().deps,
        vec![b.clone(), a.clone()],
        "repeated deps collapse"
    );
    assert_eq!(dag.dependents(&a), vec![b.clone(), c.clone()]);
    assert_eq!(dag.sinks(), vec![c]);
    assert_eq!(
        DagError::UnknownDependency { step: b, dep: a }.to_string(),
        "step apply-update waits for protect, which is not in the graph"
    );
}

#[test]
fn sinks_are_every_step_nothing_waits_for() {
    let a = run(StepKind::Protect);
    let mut dag = Dag::new();
    assert!(dag.sinks().is_empty());
    dag.add(node(a.clone(), vec![])).unwrap();
    assert_eq!(dag.sinks(), vec![a.clone()]);
    let h1 = hook(None, HookPoint::AfterRollout, "one");
    let h2 = hook(None, HookPoint::AfterRollout, "two");
    dag.extend(vec![
        node(h1.clone(), vec![a.clone()]),
        node(h2.clone(), vec![a]),
    ])
    .unwrap();
    assert_eq!(dag.sinks(), vec![h1, h2]);
}

#[test]
fn renderings_name_every_step_and_edge() {
    let dag = plan_graph(&plan(HOOKED));
    let edges: usize = dag.specs().iter().map(|s| s.deps.len()).sum();

    let text = dag.render(GraphFormat::Text);
    assert!(
        text.contains(
            "wave 1 (repeats as wave 2, 3, ... until every pod runs the update revision):"
        )
    );
    assert!(text.contains("  wave-1/settle  (after wave-1/hook/afterWaveReady/smoke, wave-1/hook/afterWaveReady/check-lag)"));
    assert_eq!(text.lines().count(), dag.len() + 1);

    let dot = dag.render(GraphFormat::Dot);
    assert!(dot.starts_with("digraph baton {"));
    assert!(dot.contains("subgraph \"cluster_wave_1\""));
    assert!(dot.contains("until every pod runs the update revision"));
    assert_eq!(dot.matches(" -> ").count(), edges);
    assert!(dot.contains("\"wave-1/verify\" -> \"wave-1/hook/afterWaveReady/smoke\";"));

    let mermaid = dag.render(GraphFormat::Mermaid);
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert_eq!(mermaid.matches(" --> ").count(), edges);
    assert!(mermaid.contains("  wave_1_verify --> wave_1_hook_afterWaveReady_smoke\n"));
    for line in mermaid.lines().filter(|l| l.contains(" --> ")) {
        for id in line.trim().split(" --> ") {
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "sanitized id {id}"
            );
        }
    }
}

#[test]
fn a_graph_that_is_not_a_template_does_not_claim_waves_repeat() {
    let p = plan(BARE);
    let mut dag = Dag::new();
    dag.extend(prologue(&p)).unwrap();
    dag.extend(wave(&p, 1, &dag.sinks())).unwrap();
    dag.extend(wave(&p, 2, &dag.sinks())).unwrap();
    let text = dag.render(GraphFormat::Text);
    assert!(text.contains("wave 1:\n") && text.contains("wave 2:\n"));
    assert!(!text.contains("repeats"));
}

#[test]
fn odd_step_names_stay_distinct_and_quoted_in_every_format() {
    let a = run(StepKind::Finalize);
    let dash = hook(None, HookPoint::AfterRollout, "a-b");
    let under = hook(None, HookPoint::AfterRollout, "a_b");
    let quoted = hook(None, HookPoint::AfterRollout, "say \"hi\"");
    let mut dag = Dag::new();
    dag.extend(vec![
        node(a.clone(), vec![]),
        node(dash, vec![a.clone()]),
        node(under, vec![a.clone()]),
        node(quoted, vec![a]),
    ])
    .unwrap();

    let mermaid = dag.render(GraphFormat::Mermaid);
    assert!(mermaid.contains("  finalize --> hook_afterRollout_a_b\n"));
    assert!(mermaid.contains("  finalize --> hook_afterRollout_a_b_2\n"));
    assert!(mermaid.contains("#quot;hi#quot;"));
    assert!(!mermaid.contains("\"hi\""));

    let dot = dag.render(GraphFormat::Dot);
    assert!(dot.contains(r#""finalize" -> "hook/afterRollout/say \"hi\"";"#));
}
