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
/// Samples kept (at speed 1) for the distribution's shape: many, so that
/// they span far more than one task's time and the running tasks (which
/// are the long ones, caught in the act) do not weigh the mean up.
const POOL: usize = 2048;
/// The coefficient of variation assumed before samples tell it.
const PRIOR_CV: f64 = 0.5;
/// Samples after which the measured coefficient of variation is trusted.
const TRUSTED_CV: usize = 30;
/// Samples after which a class trusts its own numbers alone.
const TRUSTED: usize = 5;

/// Online task-duration estimates for every class of a policy.
#[derive(Debug, Clone)]
pub struct Estimator {
    samples: Vec<VecDeque<Secs>>,
    /// Recent samples of every class at speed 1, for the censored mean and
    /// the coefficient of variation.
    pool: VecDeque<Secs>,
    /// The same samples, sorted.
    sorted: Vec<Secs>,
    speeds: Vec<f64>,
    prior: Option<Secs>,
}

/// The shape of task durations at speed 1: what the planner projects with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The mean, censored: tasks still running count for their age so far.
    pub mean: Secs,
    /// Coefficient of variation (standard deviation / mean).
    pub cv: f64,
}

impl Estimator {
    pub fn new(policy: &Policy) -> Self {
        Estimator {
            samples: vec![VecDeque::new(); policy.resources.len()],
            pool: VecDeque::new(),
            sorted: Vec::new(),
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
        if self.pool.len() == POOL
            && let Some(old) = self.pool.pop_front()
        {
            let at = self.sorted.partition_point(|&d| d < old);
            self.sorted.remove(at);
        }
        let d = duration.max(0.0) * self.speeds[class];
        self.pool.push_back(d);
        let at = self.sorted.partition_point(|&x| x < d);
        self.sorted.insert(at, d);
    }

    /// The duration distribution at speed 1 from the finished tasks and the
    /// `running` ones (class, age so far): a Kaplan–Meier estimate, so a
    /// task running for 20 minutes says the mean is not 2 minutes. `None`
    /// before any sample or age.
    pub fn spread(&self, running: &[(usize, Secs)]) -> Option<Spread> {
        let mut ages: Vec<Secs> = running
            .iter()
            .filter(|(_, age)| *age > 0.0)
            .map(|&(c, age)| age * self.speeds[c])
            .collect();
        if self.sorted.is_empty() && ages.is_empty() {
            return self.prior.map(|mean| Spread { mean, cv: PRIOR_CV });
        }
        ages.sort_by(f64::total_cmp);
        let (mean, second) = kaplan_meier(&self.sorted, &ages);
        let measured = ((second - mean * mean).max(0.0)).sqrt() / mean.max(f64::MIN_POSITIVE);
        let w = (self.pool.len().min(TRUSTED_CV) as f64) / TRUSTED_CV as f64;
        let mean = match self.prior {
            Some(prior) if self.pool.len() < TRUSTED => {
                blend(mean, self.pool.len(), prior).max(mean)
            }
            _ => mean,
        };
        Some(Spread {
            mean,
            cv: w * measured + (1.0 - w) * PRIOR_CV.max(measured),
        })
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

impl Spread {
    /// The `p` quantile of a duration with this spread scaled to `mean`,
    /// lognormal (a fixed duration when cv is 0).
    pub fn quantile(&self, mean: Secs, p: f64) -> Secs {
        if self.cv <= 0.0 {
            return mean;
        }
        let sigma2 = (1.0 + self.cv * self.cv).ln();
        let mu = mean.ln() - sigma2 / 2.0;
        (mu + sigma2.sqrt() * normal_quantile(p)).exp()
    }
}

impl Spread {
    /// How long after the fluid finish (all work spread evenly over the
    /// slots) the last of `slots` busy slots is done, at the `1 - miss`
    /// quantile, for tasks of this spread scaled to `mean`.
    ///
    /// When the queue empties, each slot is through a task whose rest is
    /// drawn from the residual-life distribution (mean `mean (1 + cv²) / 2`,
    /// already counted in the fluid finish); the last slot ends at `x`
    /// where `P(rest > x) = E[(D - x)+] / mean = miss / slots`. Equal
    /// tasks run in waves, and the last wave may end a whole task late:
    /// the overrun is never below `(1 - cv) mean`.
    pub fn overrun(&self, mean: Secs, slots: f64, miss: f64) -> Secs {
        let floor = (1.0 - self.cv).max(0.0) * mean;
        if self.cv <= 0.0 || mean <= 0.0 {
            return floor;
        }
        let sigma2 = (1.0 + self.cv * self.cv).ln();
        let sigma = sigma2.sqrt();
        // E[(D - x)+] of a lognormal D with this mean and spread.
        let excess = |x: f64| {
            let d1 = ((mean / x).ln() + sigma2 / 2.0) / sigma;
            mean * normal_cdf(d1) - x * normal_cdf(d1 - sigma)
        };
        let target = mean * miss / slots.max(1.0);
        let (mut lo, mut hi) = (0.0, mean);
        while excess(hi) > target {
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = (lo + hi) / 2.0;
            if excess(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (hi - mean * (1.0 + self.cv * self.cv) / 2.0).max(floor)
    }
}

/// The standard normal distribution function (erfc by a Chebyshev fit,
/// relative error below 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// The `p` quantile of the standard normal (Acklam's rational
/// approximation, relative error below 1.2e-9), `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The mean and second moment of a duration from finished durations and
/// the ages of still running tasks (both sorted), restricted to the
/// longest one seen.
fn kaplan_meier(ended: &[Secs], running: &[Secs]) -> (Secs, f64) {
    let mut at_risk = (ended.len() + running.len()) as f64;
    let (mut survival, mut last) = (1.0, 0.0);
    let (mut mean, mut second) = (0.0, 0.0);
    let (mut i, mut j) = (0, 0);
    // Ended before censored at equal times.
    while i < ended.len() || j < running.len() {
        let end = i < ended.len() && (j == running.len() || ended[i] <= running[j]);
        let t = if end { ended[i] } else { running[j] };
        mean += survival * (t - last);
        second += survival * (t * t - last * last);
        last = t;
        if end {
            survival *= 1.0 - 1.0 / at_risk;
            i += 1;
        } else {
            j += 1;
        }
        at_risk -= 1.0;
    }
    (mean, second)
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

    #[test]
    fn running_tasks_count_for_their_age() {
        let mut e = Estimator::new(&policy());
        for d in [10.0, 20.0, 30.0] {
            e.record(0, d);
        }
        // Three finished: the plain mean and spread.
        let plain = e.spread(&[]).unwrap();
        assert!((plain.mean - 20.0).abs() < 1e-9, "{plain:?}");
        // One more has run for 20 minutes: the mean is far above 20 s.
        let censored = e.spread(&[(0, 1200.0)]).unwrap();
        // KM: S = 1 to 10, 3/4 to 20, 1/2 to 30, 1/4 to 1200.
        let expected = 10.0 + 0.75 * 10.0 + 0.5 * 10.0 + 0.25 * 1170.0;
        assert!((censored.mean - expected).abs() < 1e-9, "{censored:?}");
        // Class b runs at speed 2: its ages count double at speed 1.
        let fast = e.spread(&[(1, 600.0)]).unwrap();
        assert_eq!(fast.mean, censored.mean);
    }

    #[test]
    fn the_spread_is_measured_once_there_are_enough_samples() {
        let mut e = Estimator::new(&policy());
        assert_eq!(
            e.spread(&[]),
            Some(Spread {
                mean: 10.0,
                cv: PRIOR_CV
            }),
            "the prior, with a cautious spread"
        );
        for _ in 0..TRUSTED_CV {
            e.record(0, 30.0);
        }
        assert_eq!(
            e.spread(&[]),
            Some(Spread {
                mean: 30.0,
                cv: 0.0
            })
        );
    }

    #[test]
    fn the_overrun_past_the_fluid_finish_grows_with_the_spread_and_the_slots() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-3.090232) - 0.001).abs() < 1e-6);
        // Equal tasks: the last wave may end a whole task late.
        assert_eq!(Spread { mean: 1.0, cv: 0.0 }.overrun(30.0, 10.0, 0.2), 30.0);
        let over = |cv: f64, slots: f64| Spread { mean: 1.0, cv }.overrun(100.0, slots, 0.2);
        // One slot of cv 1: P(rest > x) = E[(D - x)+] / 100 = 0.2 at x = 148.4
        // (solved apart), less the mean rest of 100.
        assert!((over(1.0, 1.0) - 48.4).abs() < 0.1, "{}", over(1.0, 1.0));
        assert!(over(1.0, 10.0) > over(1.0, 1.0));
        assert!(over(1.5, 10.0) > over(1.0, 10.0));
        assert!(over(1.0, 100.0) > over(1.0, 10.0));
        // Never below (1 - cv) of a task.
        assert!(over(0.3, 1.0) >= 70.0);
    }

    #[test]
    fn quantiles_of_the_normal_and_the_lognormal() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-5);
        let fixed = Spread { mean: 1.0, cv: 0.0 };
        assert_eq!(fixed.quantile(30.0, 0.99), 30.0);
        // cv 1: sigma^2 = ln 2; the median is mean / sqrt(2).
        let wide = Spread { mean: 1.0, cv: 1.0 };
        assert!((wide.quantile(30.0, 0.5) - 30.0 / 2f64.sqrt()).abs() < 1e-6);
    }
}
