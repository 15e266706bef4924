//! Which pods to update, in which order, and at which revision to recreate a pod.
//!
//! Restates `sortPodsToUpdate`, the priority sorter (`pkg/util/updatesort`), `IsPodUpdate`,
//! `isCurrentRevisionNeeded` and the scaling of `maxUnavailable`. A *slot* is one position of
//! the set's live ordinal range (`ordinal - start`); `None` marks a reserved ordinal or a pod
//! that does not exist.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::pod::PodView;
use super::types::{Asts, IntOrString, PriorityStrategy, RollingUpdate, WeightTerm};
use crate::selector::{self, SelectorExt};

/// `sortPodsToUpdate`: slot indexes the update loop visits; none when `partition` is at least
/// `total_replicas`.
///
/// Ordered mode: every slot from the highest down to slot `partition`, as Kruise 1.5.5 does:
/// with a reserved ordinal below the partition this is more than `total_replicas - partition`
/// pods (measured: replicas 3, reserveOrdinals [0], partition 1 updates pods 1, 2 and 3).
/// Newer Kruise stops at `total_replicas - partition` pods and ranks pods instead of reading
/// ordinals (openkruise/kruise#1813, "partition as the number of pods with non-updated
/// revisions", Kruise 1.8). Unordered mode: pods already at the update revision and
/// terminating pods first (descending slot), then the waiting pods in priority order
/// (descending slot on ties), cut to `total_replicas - partition` entries.
pub fn sort_pods_to_update<P: Borrow<PodView>>(
    ru: Option<&RollingUpdate>,
    update_revision: &str,
    total_replicas: i64,
    slots: &[Option<P>],
) -> Vec<usize> {
    let partition = ru.and_then(|r| r.partition).unwrap_or(0);
    let max_update = usize::try_from(total_replicas - partition).unwrap_or(0);
    if max_update == 0 {
        return vec![];
    }
    let unordered = ru.and_then(|r| r.unordered_update.as_ref());
    let Some(unordered) = unordered else {
        let floor = usize::try_from(partition).unwrap_or(0);
        return (floor..slots.len())
            .rev()
            .filter(|&i| slots[i].is_some())
            .collect();
    };
    let mut done = Vec::new();
    let mut waiting = Vec::new();
    for (i, pod) in slots.iter().enumerate().rev() {
        let Some(pod) = pod else { continue };
        let pod = pod.borrow();
        if pod.terminating || is_pod_update(pod, update_revision) {
            done.push(i);
        } else {
            waiting.push(i);
        }
    }
    if let Some(strategy) = &unordered.priority_strategy {
        waiting = priority_sort(strategy, slots, waiting);
    }
    done.extend(waiting);
    done.truncate(max_update);
    done
}

/// `IsPodUpdate` (without the `PreparingUpdateAsUpdate` gate): the revision label equals the
/// update revision, or the hash parts after the last `-` agree.
pub fn is_pod_update(pod: &PodView, update_revision: &str) -> bool {
    let rev = pod.revision();
    if rev == update_revision {
        return true;
    }
    fn short(s: &str) -> &str {
        s.rsplit_once('-').map_or(s, |(_, h)| h)
    }
    !rev.is_empty() && short(rev) == short(update_revision)
}

/// The priority sorter's `Sort`: a stable sort of `idxs` by [`compare`]; equal pods keep their
/// input order. An empty strategy leaves the order alone.
///
/// [`compare`] orders pods by one key per pod ([`priority_key`]), so the key is computed once
/// per pod rather than once per comparison.
pub fn priority_sort<P: Borrow<PodView>>(
    strategy: &PriorityStrategy,
    slots: &[Option<P>],
    idxs: Vec<usize>,
) -> Vec<usize> {
    if strategy.weight_priority.is_empty() && strategy.order_priority.is_empty() {
        return idxs;
    }
    let empty = BTreeMap::new();
    let mut keyed: Vec<(PriorityKey, usize)> = idxs
        .into_iter()
        .map(|i| {
            let labels = slots
                .get(i)
                .and_then(Option::as_ref)
                .map_or(&empty, |p| &p.borrow().labels);
            (priority_key(strategy, labels), i)
        })
        .collect();
    // `sort_by_key` is stable: equal keys keep their input order.
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Where a pod goes in the priority order, smallest first: [`compare`] puts `i` before `j`
/// exactly when `priority_key(i) < priority_key(j)`.
type PriorityKey = (i64, i64, i64);

/// The sort key behind [`compare`]: the negated weight sum with weights; otherwise the index of
/// the first order key the pod has (-1 for none) and its negated trailing integer.
fn priority_key(strategy: &PriorityStrategy, labels: &BTreeMap<String, String>) -> PriorityKey {
    if !strategy.weight_priority.is_empty() {
        let weight: i64 = strategy
            .weight_priority
            .iter()
            .filter(|t| term_matches(t, labels))
            .map(|t| t.weight)
            .sum();
        (weight.saturating_neg(), 0, 0)
    } else if !strategy.order_priority.is_empty() {
        let (term, n) = order_of(strategy, labels);
        (0, term, n.saturating_neg())
    } else {
        (0, 0, 0)
    }
}

/// Whether a weight term's selector matches `labels`; Kruise skips a term whose selector does
/// not convert, so it matches nothing.
fn term_matches(term: &WeightTerm, labels: &BTreeMap<String, String>) -> bool {
    selector::from_label_selector(&term.match_selector).is_ok_and(|s| s.matches(labels))
}

/// The index of the first order term whose key the pod has (-1 for none) and the trailing
/// integer of its value.
fn order_of(strategy: &PriorityStrategy, labels: &BTreeMap<String, String>) -> (i64, i64) {
    strategy
        .order_priority
        .iter()
        .enumerate()
        .find_map(|(k, t)| {
            labels
                .get(&t.ordered_key)
                .map(|v| (i64::try_from(k).unwrap_or(i64::MAX), trailing_int(v)))
        })
        .unwrap_or((-1, 0))
}

/// The priority sorter's `compare`: whether a pod with labels `i` goes before one with `j`;
/// `tie` when neither does.
///
/// Weights: the sum of the weights of every term whose selector matches (invalid selectors are
/// skipped), higher first. Otherwise order keys: the first key (in term order) the pod has,
/// lower term index first, and a pod with none of the keys first of all; then the larger
/// trailing integer of the value first.
pub fn compare(
    strategy: &PriorityStrategy,
    i: &BTreeMap<String, String>,
    j: &BTreeMap<String, String>,
    tie: bool,
) -> bool {
    if !strategy.weight_priority.is_empty() {
        let weight = |labels: &BTreeMap<String, String>| -> i64 {
            strategy
                .weight_priority
                .iter()
                .filter(|t| term_matches(t, labels))
                .map(|t| t.weight)
                .sum()
        };
        let (wi, wj) = (weight(i), weight(j));
        if wi != wj {
            return wi > wj;
        }
    } else if !strategy.order_priority.is_empty() {
        let ((li, ni), (lj, nj)) = (order_of(strategy, i), order_of(strategy, j));
        if li != lj {
            return li < lj;
        }
        if ni != nj {
            return ni > nj;
        }
    }
    tie
}

/// The run of decimal digits at the end of `v` as an integer; 0 when there is none or it
/// overflows (`getIntFromStringSuffix`).
pub fn trailing_int(v: &str) -> i64 {
    let digits = v.len() - v.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    v[v.len() - digits..].parse().unwrap_or(0)
}

/// `isCurrentRevisionNeeded`: whether a pod (re)created at `ordinal` gets the current revision
/// rather than the update revision. Reads the set as stored (call it on
/// [`Asts::defaulted`] to get the webhook's behaviour).
///
/// Ordered: iff the pod's slot (`ordinal - start`) is below the partition. Reserved ordinals
/// below it are not skipped, as Kruise 1.5.5 does (measured: with reserveOrdinals [0] and
/// partition 2, a deleted pod 2 comes back at the update revision); newer Kruise ranks the
/// live pods instead (openkruise/kruise#1813, Kruise 1.8). `ordinals.start` does not exist in
/// 1.5.5; the slot follows Kruise 1.7's fix for it (openkruise/kruise#1751). Unordered: iff
/// fewer than `partition` other pods are not at the update revision.
/// Not RollingUpdate (OnDelete): never.
pub fn is_current_revision_needed<P: Borrow<PodView>>(
    set: &Asts,
    update_revision: &str,
    ordinal: i64,
    slots: &[Option<P>],
) -> bool {
    if !set.is_rolling_update() {
        return false;
    }
    let start = set.start_ordinal();
    let Some(ru) = &set.spec.update_strategy.rolling_update else {
        return ordinal < start + set.status_or_default().current_replicas;
    };
    let partition = ru.partition.unwrap_or(0);
    if ru.unordered_update.is_none() {
        return ordinal - start < partition;
    }
    let not_updated = slots
        .iter()
        .flatten()
        .map(Borrow::borrow)
        .filter(|p| p.ordinal(set.name()) != Some(ordinal))
        .filter(|p| !is_pod_update(p, update_revision))
        .count();
    i64::try_from(not_updated).unwrap_or(i64::MAX) < partition
}

/// `maxUnavailable` scaled against `replicas`: an integer as is, a percentage rounded down;
/// at least 1 either way. Unparsable values count as 1.
pub fn scaled_max_unavailable(value: Option<&IntOrString>, replicas: i64) -> i64 {
    let n = match value {
        None => 1,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::Str(s)) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(pct)) => pct.saturating_mul(replicas) / 100,
            _ => s.parse().unwrap_or(1),
        },
    };
    n.max(1)
}
