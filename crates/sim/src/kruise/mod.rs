//! The OpenKruise Advanced StatefulSet (`apps.kruise.io/v1beta1`) controller, as pure logic.
//!
//! Everything here is a function over plain data: typed views of the set and its pods
//! ([`types`], [`pod`]), the revision of a pod template ([`revision`]), the update-order rules
//! ([`update`]) and one reconcile pass ([`reconcile`]) that turns a snapshot into a
//! [`reconcile::Plan`]. The async driver in [`crate::controller`] reads the store, calls
//! [`reconcile::reconcile`] and applies the plan. Semantics follow Kruise's own controller
//! (`pkg/controller/statefulset`) as released in Kruise 1.5.5, the version measured against
//! (`crates/testbed/tests/it/kruise_fidelity.rs` runs the same behaviours on the simulator
//! and on the real controller). `shared/research/kruise.md` restates the rules of Kruise master; where master
//! differs from 1.5.5 (ordered partition over reserved ordinals, the pod-index label, status
//! counts) the code says which it follows and cites the newer change. Features newer than
//! 1.5.5 (`ordinals.start`, `reserveOrdinals` ranges, `preNormal`) are kept as newer Kruise
//! has them.

pub mod events;
pub mod pod;
pub mod reconcile;
pub mod revision;
pub mod types;
pub mod update;

/// Pod label holding the full ControllerRevision name of the pod's template.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Pod label holding the pod's own name (stable network identity).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Pod label holding the Kruise lifecycle state.
pub const LIFECYCLE_STATE_LABEL: &str = "lifecycle.apps.kruise.io/state";
/// Pod annotation holding the lifecycle state change time.
pub const LIFECYCLE_TIMESTAMP_ANNOTATION: &str = "lifecycle.apps.kruise.io/timestamp";
/// Pod label asking the controller to delete this pod (specified delete).
pub const SPECIFIED_DELETE_LABEL: &str = "apps.kruise.io/specified-delete";
/// Pod annotation recording an in-place update in progress.
pub const INPLACE_STATE_ANNOTATION: &str = "apps.kruise.io/inplace-update-state";
/// Readiness gate Kruise's pod webhook adds to the pods of its workloads; Kruise holds its
/// condition True (and False only while a lifecycle hook with `markPodNotReady` holds a pod).
pub const KRUISE_READY_CONDITION: &str = "KruisePodReady";
/// Readiness gate and condition type flipped around an in-place update.
pub const INPLACE_READY_CONDITION: &str = "InPlaceUpdateReady";
/// ControllerRevision label holding the template hash.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// `apiVersion` of the Advanced StatefulSet.
pub const API_VERSION: &str = "apps.kruise.io/v1beta1";
/// `kind` of the Advanced StatefulSet.
pub const KIND: &str = "StatefulSet";
