//! Analyse: when would the remaining work finish on a set of machines?
//!
//! A fluid model: each machine works off tasks at `slots / duration` per second
//! from the moment it is ready; the work is done when the areas add up.

use crate::clock::Secs;

/// One machine's contribution: tasks per second from `ready` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub ready: Secs,
    pub rate: f64,
}

/// When `work` tasks are done, starting at `now`; infinite without capacity.
pub fn fluid_finish(now: Secs, work: f64, capacity: &[Capacity]) -> Secs {
    let mut caps: Vec<Capacity> = capacity
        .iter()
        .filter(|c| c.rate > 0.0)
        .map(|c| Capacity {
            ready: c.ready.max(now),
            rate: c.rate,
        })
        .collect();
    caps.sort_by(|a, b| a.ready.total_cmp(&b.ready));
    let (mut t, mut rate, mut done) = (now, 0.0, 0.0);
    for cap in caps {
        if cap.ready > t {
            if rate > 0.0 && done + rate * (cap.ready - t) >= work {
                return t + (work - done) / rate;
            }
            done += rate * (cap.ready - t);
            t = cap.ready;
        }
        rate += cap.rate;
    }
    if work <= done {
        t
    } else if rate > 0.0 {
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
        let one = Capacity {
            ready: 0.0,
            rate: 1.0,
        };
        assert_eq!(fluid_finish(0.0, 10.0, &[one]), 10.0);
        assert_eq!(fluid_finish(0.0, 10.0, &[one, one]), 5.0);
        // the second joins at 4: 4 done alone, 6 more at rate 2.
        let late = Capacity {
            ready: 4.0,
            rate: 1.0,
        };
        assert_eq!(fluid_finish(0.0, 10.0, &[late, one]), 7.0);
        // one that is ready after the work is done changes nothing.
        let too_late = Capacity {
            ready: 50.0,
            rate: 9.0,
        };
        assert_eq!(fluid_finish(0.0, 10.0, &[one, too_late]), 10.0);
        assert_eq!(fluid_finish(0.0, 10.0, &[]), Secs::INFINITY);
        assert_eq!(fluid_finish(3.0, 0.0, &[]), 3.0);
    }
}
