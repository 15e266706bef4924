//! How long a projected run may take (`engine plan`): each wave's pods come up
//! `maxUnavailable` at a time (Kruise updates no more at once), each round lasting the
//! time a pod of this set takes to become Ready, plus the plan's settle time and sleep
//! hooks. Approval gates and the arbiter's answers are not counted: a person's wait cannot
//! be foreseen, and a handover takes a round trip. The ready time is an input, observed
//! by the caller on the set's own pods; without one there is no estimate, only the rounds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::WaveForecast;

/// What a projected run's duration depends on besides its waves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// How long a pod of the set takes from its containers' start to Ready; `None` when
    /// nothing was observed.
    pub pod_ready: Option<Duration>,
    /// The ASTS's `maxUnavailable`, resolved to pods (at least 1).
    pub max_unavailable: u32,
    /// `waves.settle`, waited after each wave is ready.
    pub settle: Duration,
    /// The sleep hooks of one wave (hooks at one point run together: the longest counts).
    pub per_wave: Duration,
    /// The sleep hooks before and after the rollout.
    pub once: Duration,
}

/// One wave's share of the estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveTiming {
    pub wave: u32,
    /// How many times the wave waits for pods to become Ready: `ceil(pods / maxUnavailable)`.
    pub rounds: u32,
    /// The wave updates more pods than `maxUnavailable` lets Kruise update at once, so its
    /// pods come up in several rounds instead of together.
    pub serialised: bool,
    /// `None` without an observed ready time.
    pub time: Option<Duration>,
}

/// The whole run's estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub waves: Vec<WaveTiming>,
    /// `None` without an observed ready time.
    pub total: Option<Duration>,
}

/// The estimate of `waves` under `timing`.
pub fn estimate(waves: &[WaveForecast], timing: &Timing) -> Estimate {
    let at_once = timing.max_unavailable.max(1);
    let per_wave: Vec<WaveTiming> = waves
        .iter()
        .map(|w| {
            let pods = u32::try_from(w.select.len()).unwrap_or(u32::MAX);
            let rounds = pods.div_ceil(at_once);
            WaveTiming {
                wave: w.wave,
                rounds,
                serialised: rounds > 1,
                time: timing
                    .pod_ready
                    .map(|ready| ready * rounds + timing.settle + timing.per_wave),
            }
        })
        .collect();
    let total = per_wave
        .iter()
        .try_fold(timing.once, |sum, w| w.time.map(|t| sum + t));
    Estimate {
        waves: per_wave,
        total,
    }
}

/// The typical start-to-ready time of a set's pods: the median of the observed times (the
/// median, so one pod that was slow once does not stretch every wave). `None` when none
/// was observed.
pub fn typical_ready(observed: &[Duration]) -> Option<Duration> {
    let mut sorted = observed.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(wave: u32, pods: &[&str]) -> WaveForecast {
        WaveForecast {
            wave,
            select: pods.iter().map(|p| (*p).to_owned()).collect(),
            partition: 0,
            handover: None,
        }
    }

    #[test]
    fn a_wave_larger_than_max_unavailable_takes_one_round_per_batch() {
        let waves = [wave(1, &["a", "b", "c"]), wave(2, &["d"]), wave(3, &[])];
        let timing = Timing {
            pod_ready: Some(Duration::from_secs(10)),
            max_unavailable: 2,
            settle: Duration::from_secs(1),
            per_wave: Duration::from_secs(2),
            once: Duration::from_secs(5),
        };
        let e = estimate(&waves, &timing);
        let rounds: Vec<(u32, bool)> = e.waves.iter().map(|w| (w.rounds, w.serialised)).collect();
        assert_eq!(rounds, [(2, true), (1, false), (0, false)]);
        // 5 + (20 + 3) + (10 + 3) + (0 + 3)
        assert_eq!(e.total, Some(Duration::from_secs(44)));
    }

    #[test]
    fn without_an_observed_ready_time_there_is_no_estimate_but_the_rounds_stay() {
        let e = estimate(
            &[wave(1, &["a", "b"])],
            &Timing {
                max_unavailable: 1,
                ..Timing::default()
            },
        );
        assert_eq!(e.total, None);
        assert_eq!((e.waves[0].rounds, e.waves[0].serialised), (2, true));
    }

    #[test]
    fn the_typical_ready_time_is_the_median() {
        let s = Duration::from_secs;
        assert_eq!(typical_ready(&[]), None);
        assert_eq!(typical_ready(&[s(3), s(100), s(2)]), Some(s(3)));
        assert_eq!(typical_ready(&[s(2), s(4)]), Some(s(3)));
    }
}
