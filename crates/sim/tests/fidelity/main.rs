//! The Kruise behaviours observed on real Kruise 1.5.5 ([`behaviours`]), run through the API
//! against the simulator served in-process. The same file runs against the real control plane
//! in `crates/testbed/tests/kruise_fidelity.rs`.

mod behaviours;

use baton_sim::{Sim, SimConfig};
use behaviours::Env;

/// An empty simulator (no seed case) and a kube client talking to it.
async fn sim() -> (Sim, Env) {
    let sim = Sim::new(SimConfig {
        empty: true,
        ..SimConfig::default()
    });
    let client = kube::Client::new(sim.router(), "default");
    let env = Env::new(client, "fidelity").await;
    (sim, env)
}

macro_rules! on_sim {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_sim, env) = sim().await;
            behaviours::$name(&env).await;
        }
    )*};
}

on_sim!(
    custom_readiness_gate,
    in_place_update_hook,
    updated_state_holds_the_budget,
    pre_delete_hook,
    scale_max_unavailable,
    parallel_scale_up_creates_all_at_once,
    scale_down_with_a_lingering_pod,
    recreation_revision,
    priority_partition_in_place,
    max_unavailable_and_ordered_partition,
    pod_and_revision_shape,
    events_on_the_set,
    ordered_partition_over_a_reserved_ordinal,
    ordered_ready_scales_past_an_updated_pod,
    specified_delete,
    paused,
    mark_pod_not_ready,
    new_revision_while_updated,
    pre_delete_on_scale_down,
    min_ready_seconds,
    set_defaults,
    in_place_write_order,
    revision_names,
    scale_down_with_an_unavailable_pod,
    on_delete,
);
