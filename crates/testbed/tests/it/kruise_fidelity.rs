//! Simulator fidelity: every Kruise behaviour test that runs through the API runs on both
//! backends, with the same assertions ([`behaviours`]), one test per behaviour per backend. The real backend is Kubernetes 1.20 with
//! OpenKruise 1.5.5 and the testbed's stand-in kubelet; it is skipped (one line on stderr)
//! without `BATON_CONTROL_PLANE` outside CI.
//!
//! What was compared, simulator against real Kruise 1.5.5, and the outcome ("fixed": the
//! simulator differed and now agrees; "agreed": it already did; "newer": the simulator keeps a
//! newer Kruise's behaviour on purpose, cited in its code):
//!
//! | behaviour | real Kruise 1.5.5 | simulator | outcome |
//! |---|---|---|---|
//! | custom readiness gate, condition absent/False | pod not Ready | not Ready | agreed |
//! | gate condition set True, then False by a client (`pods/status` strategic merge) | Ready, then not Ready | stayed Ready after False (kubelet skipped Ready pods) | fixed |
//! | `KruisePodReady` gate appended to pods, condition True | yes | absent | fixed |
//! | `updatedReadyReplicas`/`updatedAvailableReplicas` when 0 | omitted | written as 0 | fixed |
//! | inPlaceUpdate hook: hooked pod parked in `PreparingUpdate` at its old revision/image | yes | yes | agreed |
//! | inPlaceUpdate hook: unhooked pods end in `Updated`, all-hooked again → `Normal` | yes | yes | agreed |
//! | pods in `Updated`/`PreparingUpdate`/`PreparingDelete` in `availableReplicas` | counted (Ready is enough) | not counted | fixed |
//! | an `Updated` pod holds the update budget (maxUnavailable 1) | yes | yes | agreed |
//! | rollout completes (`currentRevision` moves) with pods in `Updated` | yes | no (not available) | fixed |
//! | preDelete hook: parked in `PreparingDelete`, holds the budget, released → recreated | yes | yes | agreed |
//! | `currentReplicas` while a pod is parked in `PreparingDelete` | not decremented | decremented | fixed |
//! | `scaleStrategy.maxUnavailable: 1`, Parallel: pods created one at a time, next once available | yes | ignored (all at once) | fixed |
//! | Parallel scale-down with `scaleStrategy.maxUnavailable` | all condemned at once | all at once | agreed |
//! | pod with a finalizer lingers Terminating (deletion by the controller or a user) | yes | removed at once | fixed |
//! | lingering condemned pod: in `replicas`, not in current/updated, not a target; partition over in-range pods | yes | yes once it lingers | fixed (finalizers) |
//! | finalizer cleared → the pod is gone | yes | stayed | fixed |
//! | unordered: recreated pod current iff < partition OTHER pods not updated | yes (both cases) | yes | agreed |
//! | priority weights, ties to the higher ordinal, partition waves, in place (same UID, restart, `InPlaceUpdateReady`, state annotation) | yes | yes | agreed |
//! | `maxUnavailable: 2` recreate, ordered highest first, partition keeps the lowest | yes | yes | agreed |
//! | ordered partition over a reserved ordinal: every slot ≥ partition is a target; recreation compares the slot | yes (1.5.5) | capped/ranked (master, #1813) | fixed |
//! | OrderedReady: an `Updated` (Ready) pod does not stop a scale-up | creates the next pod | stopped | fixed |
//! | pod labels: pod-name, no `apps.kubernetes.io/pod-index`; `generateName` | yes | pod-index, no generateName | fixed |
//! | revision `<set>-<hash>`, hash label, `revision` number, data `$patch: replace` | yes | yes | agreed |
//! | revision names for the same template (FNV-1 over the defaulted data) | `rn-6cbfd78dc7`, `rn-5bb5fccbb6` | FNV-1a, no template defaults: other names | fixed |
//! | in-place write order seen by a watch: IPU False at the old revision, then revision+image+`Updating`, then IPU True, then `Normal` | yes | two writes (everything at once, then IPU True with `Normal`) | fixed |
//! | Events on the set: SuccessfulCreate / SuccessfulDelete / SuccessfulUpdatePodInPlace | yes | none | fixed |
//! | specified-delete label: deleted despite the partition, back without the label at the partition rule's revision | yes | yes | agreed |
//! | paused: nothing updated, a deleted pod recreated (update revision), all updated once resumed | yes | yes | agreed |
//! | `markPodNotReady`: parked pod gets `KruisePodReady=False` (not Ready), True again once updated | yes | ignored | fixed |
//! | new template while a pod is `Updated`: hook labels put back, parked in `PreparingUpdate` | yes | parked without labels, then updated at once | fixed |
//! | preDelete hook on scale-down: condemned pod parked, counted, deleted once released | yes | yes | agreed |
//! | `minReadySeconds: 2`: next pod waits ~2 s after the previous turned Ready | yes | yes | agreed |
//! | webhook defaults on the set: PVC retention, template pod/container defaults, `imagePullPolicy: Always` | yes | strategy defaults only | fixed |
//! | pod status written through `pods/status` only (a patch on the pod ignores it) | yes | yes | agreed |
//! | `kubectl apply` of an unchanged set | "configured" (webhook defaults), generation unchanged | "unchanged" | fixed (`crates/sim/tests/it/api/kubectl.rs`) |
//! | `scaleStrategy.maxUnavailable: 1`, scale-down while an in-range pod is unavailable | both condemned pods deleted | same | agreed |
//! | `OnDelete`: no pod updated until deleted; the replacement at the update revision | yes | yes | agreed |
//! | `ordinals.start`, `reserveOrdinals` ranges, `preNormal` | not in 1.5.5 | kept | newer |
//!
//! Not compared here: Failed/Succeeded pods (the stand-in kubelet reports every pod
//! Running), `InPlaceOnly`, revision history trimming and `collisionCount`
//! (covered against Kruise's own unit tests in `crates/sim/tests/it`).

mod behaviours;

use baton_testbed::backend::{Backend, BackendKind, Seed};
use behaviours::Env;

/// A backend with the smallest seed (its set, `sample`, does not meet the behaviours' sets),
/// and an environment in the backend's namespace (the only one the real kubelet serves).
/// `None`: the real tier is skipped here.
async fn env(kind: BackendKind) -> Option<(Backend, Env)> {
    let seed = Seed {
        replicas: 1,
        working: vec![0],
        ..Seed::default()
    };
    let backend = Backend::start(kind, seed).await.unwrap_or_else(|e| {
        panic!(
            "{kind:?} backend: {}",
            baton_testbed::controlplane::chain(&e)
        )
    })?;
    let env = Env::new(backend.client(), backend.namespace()).await;
    Some((backend, env))
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sim {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_backend, env) = env(BackendKind::Sim).await.expect("the simulator");
                    behaviours::$name(&env).await;
                }
            )*
        }
        mod real {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((_backend, env)) = env(BackendKind::Real).await else {
                        return;
                    };
                    behaviours::$name(&env).await;
                }
            )*
        }
    };
}

on_both!(
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
