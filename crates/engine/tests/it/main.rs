//! The engine's integration tests, one test binary (each binary links the whole dependency
//! tree).

/// The step DAG: growth across waves, readiness, hooks, errors, rendering.
mod dag_graph;
/// Per-pod gates in the decision core, as tables.
mod decide_gates;
/// The one partition arithmetic, by table.
mod decide_partition;
/// Properties of the decision core over random clusters and arbiter states.
mod decide_properties;
/// Hand-built snapshots and a Kruise-like cluster for the decision-core tests.
mod decide_support;
/// The decision core wave by wave, as tables.
mod decide_waves;
/// Maintenance windows, as tables.
mod decide_window;
/// Crash-resume in child processes killed at every failpoint and at random.
mod exec_crash;
/// Damaged run state is reported, never read as an older state.
mod exec_damage;
/// `onFailure: rollback` through the executor: the rollback grows, runs and ends the run.
mod exec_rollback;
/// The executor against sled in one process: restarts, approvals, retries, stops, plan changes.
mod exec_store;
/// Durations as operators write them.
mod plan_duration;
/// Plan parsing never panics and points inside the text.
mod plan_fuzz;
/// Plan validation rules, one error each, with where it points.
mod plan_rules;
/// Gates, windows, analysis and onFailure in the plan, one error each.
mod plan_safety;
/// The plan's JSON Schema against the parser.
mod plan_schema;
/// What a run leaves in its directory at rest.
mod store_files;
