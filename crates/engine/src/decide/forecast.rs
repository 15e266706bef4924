//! The dry run (`engine plan`): play the decisions forward against a cluster where every
//! wave succeeds, using the same [`plan_wave`] and [`plan_handover`] a real run uses.

use crate::snapshot::{Role, Snapshot};

use super::wave::{finalize_partition, plan_handover, plan_wave};
use super::{Handover, Policy, Refusal, RunForecast, WaveDecision, WaveForecast};

/// [`forecast`], and how the run would end: the partition `finalize` would write and the
/// pods that keep the old revision (protected pods the arbiter does not list), taken from
/// the cluster as it would stand after the last wave, with the same [`finalize_partition`]
/// the `finalize` step uses.
pub fn forecast_run(s: &Snapshot, policy: &Policy) -> Result<RunForecast, Refusal> {
    let (waves, end) = play(s, policy)?;
    let finalize_partition = finalize_partition(&end, policy)?;
    let kept_old = end
        .protected()
        .into_iter()
        .filter(|p| end.in_range(p) && !end.is_updated(p))
        .map(|p| p.name.clone())
        .collect();
    Ok(RunForecast {
        waves,
        finalize_partition,
        kept_old,
    })
}

/// Every wave the run would go through, assuming each succeeds: the pods of `S` come back
/// updated and Ready, and each handover is applied by the arbiter. A wave that only hands
/// over (nothing idle is old) has an empty `select`. Empty when nothing is left to do.
///
/// A refusal anywhere along the way is returned: a run would stop there too.
pub fn forecast(s: &Snapshot, policy: &Policy) -> Result<Vec<WaveForecast>, Refusal> {
    play(s, policy).map(|(waves, _)| waves)
}

/// The waves, and the cluster as it stands after the last one.
fn play(s: &Snapshot, policy: &Policy) -> Result<(Vec<WaveForecast>, Snapshot), Refusal> {
    let mut cluster = s.clone();
    let mut waves = Vec::new();
    // Each update wave makes at least one counted pod updated, and a handover-only wave is
    // always followed by an update wave, so `2 * replicas + 1` decisions always reach `Done`.
    let bound = u64::from(s.sts.replicas) * 2 + 1;
    for wave in (1..).take(usize::try_from(bound).unwrap_or(usize::MAX)) {
        let (select, partition) = match plan_wave(&cluster, policy)? {
            WaveDecision::Done => break,
            WaveDecision::Update { select, partition } => {
                update(&mut cluster, &select, partition);
                (select, partition)
            }
            WaveDecision::HandoverFirst(_) => {
                let partition = super::partition::freeze_partition(&cluster);
                cluster.sts.partition = Some(partition);
                (Vec::new(), partition)
            }
        };
        let handover = plan_handover(&cluster, policy)?;
        if let Some(h) = &handover {
            hand_over(&mut cluster, h);
        }
        waves.push(WaveForecast {
            wave,
            select,
            partition,
            handover,
        });
    }
    Ok((waves, cluster))
}

/// What a well-behaved controller does with the partition: exactly the selected pods update.
fn update(cluster: &mut Snapshot, select: &[String], partition: u32) {
    let revision = cluster.sts.update_revision.clone();
    cluster.sts.partition = Some(partition);
    let select: std::collections::HashSet<&str> = select.iter().map(String::as_str).collect();
    for pod in cluster
        .pods
        .iter_mut()
        .filter(|p| select.contains(p.name.as_str()))
    {
        pod.revision = revision.clone();
        pod.ready = true;
        pod.terminating = false;
        pod.lifecycle_state = None;
        pod.not_ready_reason = None;
    }
}

fn hand_over(cluster: &mut Snapshot, handover: &Handover) {
    let members = &mut cluster.arbiter.members;
    for name in &handover.promote {
        members.insert(name.clone(), Role::Working);
    }
    for name in &handover.demote {
        members.insert(name.clone(), Role::Idle);
    }
    cluster.arbiter.epoch += 1;
}
