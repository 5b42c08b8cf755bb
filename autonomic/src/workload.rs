//! Workload files for the simulator: how many tasks, how long they take, and
//! how fast each resource class runs them.
//!
//! ```toml
//! tasks = 10000
//! duration = { dist = "lognormal", mean = "30s", cv = 0.5 }
//! [speed]
//! "cloud.large" = 2.0
//! [queue_wait]                # a `slurm` class's queue wait, drawn per job
//! "hpc" = { dist = "lognormal", mean = "2m", cv = 1.0 }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use rand::RngExt;
use serde::Deserialize;

use crate::clock::Secs;
use crate::policy::{Invalid, Policy, ProviderKind};
use crate::source::{self, SourceError, secs};

/// The most tasks a workload may describe: the simulator draws and holds
/// every task's duration.
pub const MAX_TASKS: u64 = 10_000_000;

/// The longest mean duration a distribution may have: a year.
pub const MAX_MEAN: Secs = 365.0 * 24.0 * 3600.0;

/// The largest coefficient of variation a distribution may have (a
/// lognormal of cv 10 already has its median at a tenth of its mean).
pub const MAX_CV: f64 = 10.0;

/// A whole workload file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub tasks: u64,
    pub duration: Duration,
    /// Speed factor per class name (default 1.0): a task takes duration / speed.
    #[serde(default)]
    pub speed: BTreeMap<String, f64>,
    /// Queue wait per `slurm` class: how long each of its jobs stays
    /// PENDING (default: the class's `boot_time`, always).
    #[serde(default)]
    pub queue_wait: BTreeMap<String, Duration>,
}

/// The distribution of task durations at speed 1.0.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duration {
    pub dist: Dist,
    #[serde(deserialize_with = "secs")]
    pub mean: Secs,
    /// Coefficient of variation (standard deviation / mean).
    #[serde(default)]
    pub cv: f64,
}

/// A duration distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    Fixed,
    Uniform,
    Lognormal,
}

impl Workload {
    /// Reads, parses and validates a workload file.
    pub fn load(path: &Path) -> Result<Workload, SourceError> {
        let text = source::read(path)?;
        Workload::parse(&path.display().to_string(), &text)
    }

    /// Parses and validates workload text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Workload, SourceError> {
        let workload: Workload = source::parse(file, text)?;
        workload
            .validate()
            .map_err(|e| source::invalid(file, text, &e.field, e.message))?;
        Ok(workload)
    }

    /// Loads a workload whose `[speed]` classes must be those of `policy`.
    pub fn load_for(path: &Path, policy: &Policy) -> Result<Workload, SourceError> {
        let text = source::read(path)?;
        let file = path.display().to_string();
        let workload = Workload::parse(&file, &text)?;
        if let Some(name) = workload.speed.keys().find(|n| policy.class(n).is_none()) {
            let classes: Vec<&str> = policy.resources.iter().map(|r| r.name.as_str()).collect();
            let message = format!("no class \"{name}\" in the policy; expected one of {classes:?}");
            return Err(source::invalid(
                &file,
                &text,
                &format!("speed.\"{name}\""),
                message,
            ));
        }
        let not_queued = workload.queue_wait.keys().find(|n| {
            policy
                .class(n)
                .is_none_or(|(_, r)| r.provider != ProviderKind::Slurm)
        });
        if let Some(name) = not_queued {
            let queued: Vec<&str> = policy
                .resources
                .iter()
                .filter(|r| r.provider == ProviderKind::Slurm)
                .map(|r| r.name.as_str())
                .collect();
            let message =
                format!("no slurm class \"{name}\" in the policy; expected one of {queued:?}");
            return Err(source::invalid(
                &file,
                &text,
                &format!("queue_wait.\"{name}\""),
                message,
            ));
        }
        Ok(workload)
    }

    /// Checks ranges, naming the first bad field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let bad = |field: &str, message: &str| {
            Err(Invalid {
                field: field.to_string(),
                message: message.to_string(),
            })
        };
        if self.tasks == 0 || self.tasks > MAX_TASKS {
            return bad(
                "tasks",
                &format!(
                    "expected 1 to {MAX_TASKS} tasks (the simulator holds each one's duration)"
                ),
            );
        }
        self.duration.validate("duration")?;
        for (name, wait) in &self.queue_wait {
            wait.validate(&format!("queue_wait.\"{name}\""))?;
        }
        for (name, speed) in &self.speed {
            if !(speed.is_finite() && *speed > 0.0) {
                return bad(&format!("speed.\"{name}\""), "expected a number above 0");
            }
        }
        Ok(())
    }

    /// The speed of class `name`.
    pub fn speed_of(&self, name: &str) -> f64 {
        self.speed.get(name).copied().unwrap_or(1.0)
    }
}

impl Duration {
    /// Checks the mean and cv of the distribution at `field`.
    fn validate(&self, field: &str) -> Result<(), Invalid> {
        let bad = |name: &str, message: &str| {
            Err(Invalid {
                field: format!("{field}.{name}"),
                message: message.to_string(),
            })
        };
        if !(self.mean > 0.0 && self.mean <= MAX_MEAN) {
            return bad("mean", "expected a duration above 0 and at most a year");
        }
        let cv = self.cv;
        if !(0.0..=MAX_CV).contains(&cv) {
            return bad("cv", &format!("expected 0 to {MAX_CV}"));
        }
        if self.dist == Dist::Uniform && cv > 1.0 / 3f64.sqrt() {
            return bad("cv", "a uniform duration above 0 has cv at most 0.577");
        }
        Ok(())
    }

    /// One task's duration at speed 1.0.
    pub fn sample(&self, rng: &mut impl RngExt) -> Secs {
        let (mean, cv) = (self.mean, self.cv);
        match self.dist {
            Dist::Fixed => mean,
            Dist::Uniform => {
                let half = 3f64.sqrt() * cv * mean;
                mean - half + 2.0 * half * rng.random::<f64>()
            }
            Dist::Lognormal => {
                let sigma2 = (1.0 + cv * cv).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                (mu + sigma2.sqrt() * standard_normal(rng)).exp()
            }
        }
    }
}

/// A standard normal sample (Box–Muller).
fn standard_normal(rng: &mut impl RngExt) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn mean_and_cv(d: &Duration) -> (f64, f64) {
        let mut rng = StdRng::seed_from_u64(7);
        let xs: Vec<f64> = (0..100_000).map(|_| d.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn samples_have_the_mean_and_cv_asked_for() {
        let w = Workload::parse(
            "w",
            "tasks = 10\nduration = { dist = \"lognormal\", mean = \"30s\", cv = 0.5 }\n",
        )
        .unwrap();
        let (mean, cv) = mean_and_cv(&w.duration);
        assert!((mean - 30.0).abs() < 0.3, "{mean}");
        assert!((cv - 0.5).abs() < 0.02, "{cv}");
        let uniform = Duration {
            dist: Dist::Uniform,
            mean: 10.0,
            cv: 0.2,
        };
        let (mean, cv) = mean_and_cv(&uniform);
        assert!(
            (mean - 10.0).abs() < 0.05 && (cv - 0.2).abs() < 0.01,
            "{mean} {cv}"
        );
    }

    #[test]
    fn a_workload_too_large_to_simulate_or_of_no_real_duration_is_refused() {
        let err = |t: &str| Workload::parse("w.toml", t).unwrap_err().to_string();
        let fixed = "duration = { dist = \"fixed\", mean = \"1s\" }\n";
        assert_eq!(
            err(&format!("tasks = 18446744073709551615\n{fixed}")),
            "w.toml:1:1: tasks: expected 1 to 10000000 tasks (the simulator holds each one's duration)"
        );
        Workload::parse("w.toml", &format!("tasks = 10000000\n{fixed}")).unwrap();
        assert!(
            err("tasks = 5\nduration = { dist = \"lognormal\", mean = 10, cv = 1e300 }\n")
                .ends_with("duration.cv: expected 0 to 10"),
        );
        assert!(
            err("tasks = 5\nduration = { dist = \"lognormal\", mean = 1e300, cv = 1 }\n")
                .ends_with("duration.mean: expected a duration above 0 and at most a year"),
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let err = |t: &str| Workload::parse("w.toml", t).unwrap_err().to_string();
        assert_eq!(
            err("tasks = 5\nduration = { dist = \"normal\", mean = \"1s\" }\n"),
            "w.toml:2:21: duration.dist: expected one of \"fixed\", \"uniform\", \"lognormal\", found \"normal\""
        );
        assert_eq!(
            err(
                "tasks = 5\nduration = { dist = \"fixed\", mean = \"1s\" }\n[speed]\n\"cloud.x\" = 0\n"
            ),
            "w.toml:4:1: speed.\"cloud.x\": expected a number above 0"
        );
        assert_eq!(
            err("tasks = 0\nduration = { dist = \"fixed\", mean = \"1s\" }\n"),
            "w.toml:1:1: tasks: expected 1 to 10000000 tasks (the simulator holds each one's duration)"
        );
    }
}
