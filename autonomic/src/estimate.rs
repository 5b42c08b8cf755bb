//! Monitor: task-duration estimates per resource class and billing-aware spend.
//!
//! Estimates are online, over a bounded window of recent samples, robust to
//! outliers (a trimmed mean) and to the first few samples (blended with a
//! prior). Classes that have not run enough tasks borrow the others' samples,
//! scaled by the policy's prior speed factors.

use std::collections::VecDeque;

use crate::clock::{HOUR, Secs};
use crate::policy::{Billing, Policy, Resource};

/// Samples kept per class.
const WINDOW: usize = 101;
/// Samples after which a class trusts its own numbers alone.
const TRUSTED: usize = 5;

/// Online task-duration estimates for every class of a policy.
#[derive(Debug, Clone)]
pub struct Estimator {
    samples: Vec<VecDeque<Secs>>,
    speeds: Vec<f64>,
    prior: Option<Secs>,
}

impl Estimator {
    pub fn new(policy: &Policy) -> Self {
        Estimator {
            samples: vec![VecDeque::new(); policy.resources.len()],
            speeds: policy.resources.iter().map(|r| r.speed).collect(),
            prior: policy.scaling.task_estimate,
        }
    }

    /// A task took `duration` on one slot of class `class`.
    pub fn record(&mut self, class: usize, duration: Secs) {
        let window = &mut self.samples[class];
        if window.len() == WINDOW {
            window.pop_front();
        }
        window.push_back(duration.max(0.0));
    }

    /// Expected duration of a task on one slot of `class`.
    pub fn duration(&self, class: usize) -> Option<Secs> {
        let own = &self.samples[class];
        let borrowed = self.normalised().map(|d| d / self.speeds[class]);
        if own.len() >= TRUSTED {
            return Some(robust_mean(own.iter().copied()));
        }
        match (own.is_empty(), borrowed) {
            (true, borrowed) => borrowed,
            (false, None) => Some(robust_mean(own.iter().copied())),
            (false, Some(borrowed)) => {
                Some(blend(robust_mean(own.iter().copied()), own.len(), borrowed))
            }
        }
    }

    /// Every class's estimate, in policy order.
    pub fn all(&self) -> Vec<Option<Secs>> {
        (0..self.samples.len()).map(|c| self.duration(c)).collect()
    }

    /// A duration at speed 1.0, from every class's samples and the prior.
    fn normalised(&self) -> Option<Secs> {
        let all: Vec<Secs> = self
            .samples
            .iter()
            .zip(&self.speeds)
            .flat_map(|(window, speed)| window.iter().map(move |d| d * speed))
            .collect();
        let n = all.len();
        match (n, self.prior) {
            (0, prior) => prior,
            (n, Some(prior)) if n < TRUSTED => Some(blend(robust_mean(all.into_iter()), n, prior)),
            _ => Some(robust_mean(all.into_iter())),
        }
    }
}

/// `n` samples averaging `measured`, weighed against `prior` until trusted.
fn blend(measured: Secs, n: usize, prior: Secs) -> Secs {
    let w = n.min(TRUSTED) as f64 / TRUSTED as f64;
    w * measured + (1.0 - w) * prior
}

/// The median of few samples, the 10%-trimmed mean of more.
fn robust_mean(samples: impl Iterator<Item = Secs>) -> Secs {
    let mut sorted: Vec<Secs> = samples.collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n < TRUSTED {
        return if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
    }
    let cut = n / 10;
    let kept = &sorted[cut..n - cut];
    kept.iter().sum::<Secs>() / kept.len() as f64
}

/// What a machine of `class` costs from `from` to `to`: per second, or per
/// started hour (the first hour charged as soon as it starts).
pub fn billed(class: &Resource, from: Secs, to: Secs) -> f64 {
    let elapsed = (to - from).max(0.0);
    match class.billing {
        Billing::PerSecond => class.price_per_hour * elapsed / HOUR,
        Billing::PerHour => class.price_per_hour * ((elapsed / HOUR).floor() + 1.0),
    }
}

/// Seconds into the current paid hour of a machine requested at `from`.
pub fn into_hour(from: Secs, now: Secs) -> Secs {
    (now - from).max(0.0) % HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(
            "p",
            "[scaling]\ntask_estimate = \"10s\"\n[[resources]]\nname = \"a\"\nprovider = \"static\"\ncount = 1\n\
             [[resources]]\nname = \"b\"\nprovider = \"local\"\nmax = 1\nspeed = 2.0\nprice_per_hour = 3.6\nbilling = \"per-hour\"\n",
        )
        .unwrap()
    }

    #[test]
    fn the_prior_answers_before_any_sample_and_scales_by_speed() {
        let e = Estimator::new(&policy());
        assert_eq!(e.all(), vec![Some(10.0), Some(5.0)]);
    }

    #[test]
    fn first_samples_are_blended_with_the_prior() {
        let mut e = Estimator::new(&policy());
        e.record(0, 20.0);
        // one of five: 0.2 * 20 + 0.8 * 10 = 12 at speed 1; class b borrows it at speed 2.
        assert_eq!(e.duration(0), Some(0.2 * 20.0 + 0.8 * 12.0));
        assert_eq!(e.duration(1), Some(6.0));
    }

    #[test]
    fn an_outlier_barely_moves_the_estimate() {
        let mut e = Estimator::new(&policy());
        for _ in 0..19 {
            e.record(0, 30.0);
        }
        e.record(0, 3000.0);
        assert_eq!(e.duration(0), Some(30.0));
        // class b has no samples of its own: the pool at speed 2.
        assert_eq!(e.duration(1), Some(15.0));
    }

    #[test]
    fn the_window_forgets_old_samples() {
        let mut e = Estimator::new(&policy());
        for _ in 0..WINDOW {
            e.record(1, 100.0);
        }
        for _ in 0..WINDOW {
            e.record(1, 4.0);
        }
        assert_eq!(e.duration(1), Some(4.0));
    }

    #[test]
    fn per_hour_billing_rounds_the_hour_up_at_its_start() {
        let p = policy();
        let hourly = &p.resources[1];
        assert_eq!(billed(hourly, 0.0, 0.0), 3.6);
        assert_eq!(billed(hourly, 0.0, 3599.0), 3.6);
        assert_eq!(billed(hourly, 0.0, 3600.0), 7.2);
        let mut per_second = hourly.clone();
        per_second.billing = Billing::PerSecond;
        assert!((billed(&per_second, 100.0, 1900.0) - 1.8).abs() < 1e-9);
        assert_eq!(into_hour(100.0, 3700.0 + 60.0), 60.0);
    }
}
