//! Analyse: when would the remaining work finish on a set of machines?
//!
//! A fluid model: each machine works off tasks at `slots / duration` per second
//! from the moment it is ready until it stops (when the budget runs out, or
//! never); the work is done when the areas add up.

use crate::clock::Secs;

/// One machine's contribution: tasks per second from `ready` to `until`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub ready: Secs,
    pub until: Secs,
    pub rate: f64,
}

impl Capacity {
    /// A machine that works from `ready` on, without end.
    pub fn from(ready: Secs, rate: f64) -> Self {
        Capacity {
            ready,
            until: Secs::INFINITY,
            rate,
        }
    }
}

/// When `work` tasks are done, starting at `now`; infinite if never.
pub fn fluid_finish(now: Secs, work: f64, capacity: &[Capacity]) -> Secs {
    if work <= 0.0 {
        return now;
    }
    // Rate changes: +rate when a machine is ready, -rate when it stops.
    let mut changes: Vec<(Secs, f64)> = Vec::new();
    for c in capacity.iter().filter(|c| c.rate > 0.0) {
        let ready = c.ready.max(now);
        if c.until > ready {
            changes.push((ready, c.rate));
            if c.until.is_finite() {
                changes.push((c.until, -c.rate));
            }
        }
    }
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut t, mut rate, mut done) = (now, 0.0_f64, 0.0);
    for (at, delta) in changes {
        if at > t {
            if rate > 1e-12 && done + rate * (at - t) >= work {
                return t + (work - done) / rate;
            }
            done += rate.max(0.0) * (at - t);
            t = at;
        }
        rate += delta;
    }
    if rate > 1e-12 {
        t + (work - done) / rate
    } else {
        Secs::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_add_their_rates_from_when_they_are_ready() {
        let one = Capacity::from(0.0, 1.0);
        assert_eq!(fluid_finish(0.0, 10.0, &[one]), 10.0);
        assert_eq!(fluid_finish(0.0, 10.0, &[one, one]), 5.0);
        // the second joins at 4: 4 done alone, 6 more at rate 2.
        assert_eq!(
            fluid_finish(0.0, 10.0, &[Capacity::from(4.0, 1.0), one]),
            7.0
        );
        // one that is ready after the work is done changes nothing.
        assert_eq!(
            fluid_finish(0.0, 10.0, &[one, Capacity::from(50.0, 9.0)]),
            10.0
        );
        assert_eq!(fluid_finish(0.0, 10.0, &[]), Secs::INFINITY);
        assert_eq!(fluid_finish(3.0, 0.0, &[]), 3.0);
    }

    #[test]
    fn machines_that_stop_stop_contributing() {
        let paid = Capacity {
            ready: 0.0,
            until: 2.0,
            rate: 3.0,
        };
        // 2 s at rate 4 = 8, then 2 more at rate 1.
        assert_eq!(
            fluid_finish(0.0, 10.0, &[Capacity::from(0.0, 1.0), paid]),
            4.0
        );
        assert_eq!(fluid_finish(0.0, 10.0, &[paid]), Secs::INFINITY);
    }
}
