//! Finding runs in a state directory: naming a new one, picking the one a command
//! means, listing, loading, deleting and collecting them.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::plan::ValidPlan;
use crate::store::{self, RunState, RunSummary, RunView, SledStore, StoreError};

use super::ExecError;
use super::operator::offline;

/// The name of a new run of `plan`: `requested` (`engine run --name`), else the plan's name,
/// else the plan's name with the first free suffix (`-2`, `-3`, …). A run is an event, not a
/// plan: running a plan again after its run finished is a new run (the target may have been
/// changed back since), never a silent no-op.
///
/// # Errors
/// [`ExecError::UnfinishedOnTarget`] when a run of this state directory on the same target has
/// not finished (a new run would work against it, and a bare `engine resume` of the old one
/// would undo the new one); [`ExecError::RunExists`] when `requested` is taken; store errors.
pub fn name_new_run(
    state_dir: &Path,
    plan: &ValidPlan,
    requested: Option<&str>,
) -> Result<String, ExecError> {
    let runs = list_runs(state_dir)?;
    let target = &plan.spec().target;
    let target = format!("{}/{}", target.namespace, target.name);
    if let Some(open) = runs.iter().find(|r| {
        r.target.as_deref() == Some(target.as_str()) && r.state.is_some_and(|s| s.is_unfinished())
    }) {
        return Err(ExecError::UnfinishedOnTarget {
            run: open.run.clone(),
            state: open.state.unwrap_or(RunState::Running),
            target,
        });
    }
    // A run directory without a record is a start that died before its first checkpoint:
    // the name is still free, and `start` takes the directory over.
    let taken = |name: &str| {
        runs.iter().find(|r| {
            r.run == name && !matches!(load_run(state_dir, name), Err(ExecError::NoRecord { .. }))
        })
    };
    if let Some(name) = requested {
        return match taken(name) {
            Some(existing) => Err(ExecError::RunExists {
                run: name.to_owned(),
                state: existing.state.unwrap_or(RunState::Running),
            }),
            None => Ok(name.to_owned()),
        };
    }
    let base = plan.name();
    if taken(base).is_none() {
        return Ok(base.to_owned());
    }
    (2u32..)
        .map(|k| {
            let suffix = format!("-{k}");
            // Run names stay DNS labels (63 characters), like the plan names they come from.
            let keep = base.len().min(63usize.saturating_sub(suffix.len()));
            format!("{}{suffix}", base[..keep].trim_end_matches('-'))
        })
        .find(|name| taken(name).is_none())
        .ok_or_else(|| ExecError::Graph {
            detail: "no free run name".to_owned(),
        })
}

/// The plan a run was started with (or last replanned to).
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::AmbiguousRun`] (no `run_id` and not exactly one
/// unfinished run), [`ExecError::StoredPlan`], store errors.
pub fn stored_plan(state_dir: &Path, run_id: Option<&str>) -> Result<ValidPlan, ExecError> {
    let run_id = match run_id {
        Some(id) => known_run(state_dir, id)?,
        None => only_unfinished(state_dir)?,
    };
    let view = load_run(state_dir, &run_id)?;
    ValidPlan::parse(&view.plan_file, &view.plan_text).map_err(|e| ExecError::StoredPlan {
        run: run_id,
        detail: e.to_string(),
    })
}

/// The run a command means: `run_id` when given (it must exist), else the only
/// unfinished run, else the only run.
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::AmbiguousRun`].
pub fn pick_run(state_dir: &Path, run_id: Option<&str>) -> Result<String, ExecError> {
    if let Some(id) = run_id {
        return known_run(state_dir, id);
    }
    match only_unfinished(state_dir) {
        Err(ExecError::AmbiguousRun { unfinished }) if unfinished.is_empty() => {
            match <[String; 1]>::try_from(run_names(state_dir)) {
                Ok([one]) => Ok(one),
                Err(_) => Err(ExecError::AmbiguousRun { unfinished }),
            }
        }
        other => other,
    }
}

/// Every run in `state_dir`, by name. A run whose record cannot be read is listed with
/// its problem rather than failing the whole list.
pub fn list_runs(state_dir: &Path) -> Result<Vec<RunSummary>, ExecError> {
    let mut out = Vec::new();
    for run in run_names(state_dir) {
        match load_run(state_dir, &run) {
            Ok(view) => out.push(view.summary()),
            Err(e) => out.push(RunSummary {
                run,
                state: None,
                target: None,
                updated_at: None,
                current_wave: None,
                live: false,
                problem: Some(e.to_string()),
            }),
        }
    }
    Ok(out)
}

/// A snapshot of run `run_id`: from its database when no process holds it, else from the
/// `status.json` the driving process keeps current.
///
/// # Errors
/// [`ExecError::UnknownRun`] (with the known runs), [`ExecError::Corrupt`],
/// [`ExecError::NoRecord`].
pub fn load_run(state_dir: &Path, run_id: &str) -> Result<RunView, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    let dir = store::run_dir(state_dir, &run_id);
    let db = store::db_dir(&dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        // A copy is read, never the database itself: reading writes nothing to the state
        // directory (it may be read-only), and a damaged database stays as it was found.
        match SledStore::read_detached(&db) {
            Ok(Some(rec)) => return Ok(RunView::of(&rec, None)),
            Ok(None) => return Err(ExecError::NoRecord { run: run_id }),
            Err(StoreError::Locked { .. }) => {
                let path = store::status_path(&dir);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        return serde_json::from_slice(&bytes).map_err(|e| ExecError::Corrupt {
                            path,
                            detail: e.to_string(),
                        });
                    }
                    // The driving process publishes its status right after taking the lock.
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(25))
                    }
                    Err(_) => return Err(ExecError::Locked { run: run_id }),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Forget run `run_id`: its state directory (record, audit log, status) is removed. The
/// cluster is not touched. A run a process drives is refused ([`ExecError::Locked`]); an
/// unfinished or damaged one only with `force`, since its history is the only record of what it wrote.
///
/// # Errors
/// [`ExecError::UnknownRun`], [`ExecError::Locked`], [`ExecError::UnfinishedOnTarget`],
/// [`ExecError::Corrupt`] (without `force`), [`ExecError::StateDir`] when the directory cannot be removed.
pub fn delete_run(state_dir: &Path, run_id: &str, force: bool) -> Result<RunSummary, ExecError> {
    let run_id = known_run(state_dir, run_id)?;
    let summary = list_runs(state_dir)?
        .into_iter()
        .find(|r| r.run == run_id)
        .ok_or_else(|| ExecError::UnknownRun {
            run: run_id.clone(),
            known: Vec::new(),
        })?;
    if summary.live {
        return Err(ExecError::Locked { run: run_id });
    }
    if !force && let Some(state) = summary.state.filter(|s| s.is_unfinished()) {
        return Err(ExecError::UnfinishedOnTarget {
            run: run_id,
            state,
            target: summary.target.clone().unwrap_or_default(),
        });
    }
    // Taking the database proves no process holds it while the directory goes away.
    let held = offline(state_dir, &run_id);
    match held {
        Ok(shared) => drop(shared),
        // A damaged run may be unfinished, and its history is the only record of what it
        // wrote: it goes only when the operator forces it, as an unfinished one does.
        Err(ExecError::Corrupt { .. }) if force => {}
        Err(ExecError::NoRecord { .. }) => {}
        Err(other) => return Err(other),
    }
    let dir = store::run_dir(state_dir, &run_id);
    std::fs::remove_dir_all(&dir).map_err(|source| ExecError::StateDir { path: dir, source })?;
    Ok(summary)
}

/// The finished runs (succeeded or aborted) last updated before `before`, for `engine gc`;
/// [`delete_run`] removes each. Unfinished runs are never collected.
///
/// # Errors
/// Store errors while listing.
pub fn collectable_runs(state_dir: &Path, before: Timestamp) -> Result<Vec<RunSummary>, ExecError> {
    Ok(list_runs(state_dir)?
        .into_iter()
        .filter(|r| !r.live)
        .filter(|r| r.state.is_some_and(|s| !s.is_unfinished()))
        .filter(|r| r.updated_at.is_some_and(|t| t < before))
        .collect())
}

/// Run ids are DNS labels; anything else cannot name a run directory.
pub(super) fn plausible_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

pub(super) fn run_names(state_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store::runs_dir(state_dir))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| plausible_run_id(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub(super) fn known_run(state_dir: &Path, run_id: &str) -> Result<String, ExecError> {
    if plausible_run_id(run_id) && store::run_dir(state_dir, run_id).is_dir() {
        Ok(run_id.to_owned())
    } else {
        Err(ExecError::UnknownRun {
            run: run_id.to_owned(),
            known: run_names(state_dir),
        })
    }
}

pub(super) fn only_unfinished(state_dir: &Path) -> Result<String, ExecError> {
    let unfinished: Vec<String> = list_runs(state_dir)?
        .into_iter()
        .filter(|s| s.state.is_some_and(|st| !st.is_finished()))
        .map(|s| s.run)
        .collect();
    match <[String; 1]>::try_from(unfinished) {
        Ok([one]) => Ok(one),
        Err(unfinished) => Err(ExecError::AmbiguousRun { unfinished }),
    }
}
