//! The `verify` step's judgement (SPEC §1, step 3.6): compare the working pods before and
//! after a wave. Roles come from the arbiter as it was when the wave began, since a pod
//! that worked then is the one the wave promised not to touch.

use crate::snapshot::{Role, Snapshot};

use super::{Violation, WaveVerdict};

/// Every way a wave disturbed a pod that was working when it began, by ordinal.
///
/// A new UID means the pod was deleted (and, if `after` has no such pod, not yet
/// recreated); it is `external` unless the engine had selected that pod. A same-UID pod
/// being deleted is about to be recreated; one with another revision was updated in place;
/// one with more restarts was restarted.
/// Both of those can hold at once and are then both reported.
pub fn judge_wave(before: &Snapshot, after: &Snapshot) -> WaveVerdict {
    let mut violations = Vec::new();
    let now = after.index();
    let working = before
        .pods_by_ordinal()
        .into_iter()
        .filter(|p| before.arbiter.role_of(&p.name) == Some(Role::Working));
    for old in working {
        let Some(new) = now.get(&old.name) else {
            violations.push(Violation::Recreated {
                pod: old.name.clone(),
                external: !old.selected,
                revision: None,
            });
            continue;
        };
        if new.uid != old.uid {
            violations.push(Violation::Recreated {
                pod: old.name.clone(),
                external: !old.selected,
                revision: new.revision.clone(),
            });
            continue;
        }
        if new.terminating && !old.terminating {
            violations.push(Violation::Terminating {
                pod: old.name.clone(),
                external: !old.selected,
            });
        }
        if new.revision != old.revision {
            violations.push(Violation::RevisionChanged {
                pod: old.name.clone(),
                from: old.revision.clone(),
                to: new.revision.clone(),
            });
        }
        if new.restarts > old.restarts {
            violations.push(Violation::Restarted {
                pod: old.name.clone(),
                before: old.restarts,
                after: new.restarts,
            });
        }
    }
    WaveVerdict { violations }
}
