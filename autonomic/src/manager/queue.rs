//! Queue waits learned per batch class (`slurm`): the boot time the
//! planner plans with is the wait the class's jobs were seen to have, from
//! request to their worker's first heartbeat (the policy's `boot_time` is
//! the prior until one was seen), and at least twice the age of the oldest
//! job still queued — having waited that long, a job is expected to wait
//! as long again. So a partition that holds its jobs (drained, reserved,
//! busy) soon looks too slow for the deadline, and the planner turns to
//! the next class, saying why.

use crate::clock::Secs;
use crate::machine::Machine;
use crate::policy::{Policy, ProviderKind};

/// Per class: the prior, and the waits seen (sum, count).
#[derive(Debug, Clone)]
pub struct QueueWaits {
    /// `Some(prior)` for the classes whose boot time is a queue wait.
    prior: Vec<Option<Secs>>,
    seen: Vec<(Secs, u32)>,
}

impl QueueWaits {
    pub fn new(policy: &Policy) -> Self {
        QueueWaits {
            prior: policy
                .resources
                .iter()
                .map(|r| (r.provider == ProviderKind::Slurm).then_some(r.boot_time))
                .collect(),
            seen: vec![(0.0, 0); policy.resources.len()],
        }
    }

    /// A machine of `class` ran after waiting `wait` since its request.
    pub fn observed(&mut self, class: usize, wait: Secs) {
        if self.prior.get(class).is_some_and(Option::is_some) {
            let (sum, n) = &mut self.seen[class];
            *sum += wait;
            *n += 1;
        }
    }

    /// How long the oldest machine of `class` still queued has waited.
    pub fn oldest_queued<'a>(
        class: usize,
        machines: impl Iterator<Item = &'a Machine>,
        now: Secs,
    ) -> Option<Secs> {
        machines
            .filter(|m| m.class == class && m.is_booting())
            .map(|m| now - m.requested_at)
            .reduce(f64::max)
    }

    /// Sets the boot time of each queued class of `policy` to the wait to
    /// plan with now.
    pub fn apply<'a>(
        &self,
        policy: &mut Policy,
        machines: impl Iterator<Item = &'a Machine> + Clone,
        now: Secs,
    ) {
        for (class, prior) in self.prior.iter().enumerate() {
            let Some(prior) = prior else { continue };
            let (sum, n) = self.seen[class];
            let learned = if n > 0 { sum / f64::from(n) } else { *prior };
            let queued = Self::oldest_queued(class, machines.clone(), now).unwrap_or(0.0);
            policy.resources[class].boot_time = learned.max(2.0 * queued);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::MachineState;

    fn policy() -> Policy {
        Policy::parse(
            "p",
            "[[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 2\nboot_time = \"30s\"\n\
             [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nmax = 2\nboot_time = \"5s\"\n",
        )
        .unwrap()
    }

    fn machine(class: usize, state: MachineState, requested_at: Secs) -> Machine {
        Machine {
            id: crate::machine::MachineId(0),
            class,
            state,
            requested_at,
            busy_slots: 0,
            idle_since: None,
            last_heard: requested_at,
        }
    }

    #[test]
    fn the_prior_then_the_mean_wait_seen_and_only_for_batch_classes() {
        let mut policy = policy();
        let mut waits = QueueWaits::new(&policy);
        waits.apply(&mut policy, [].iter(), 0.0);
        assert_eq!(policy.resources[0].boot_time, 30.0);
        waits.observed(0, 4.0);
        waits.observed(0, 8.0);
        waits.observed(1, 100.0);
        waits.apply(&mut policy, [].iter(), 50.0);
        assert_eq!(policy.resources[0].boot_time, 6.0);
        assert_eq!(policy.resources[1].boot_time, 5.0, "not a queue");
    }

    #[test]
    fn a_job_still_queued_is_expected_to_wait_as_long_again() {
        let mut policy = policy();
        let mut waits = QueueWaits::new(&policy);
        waits.observed(0, 4.0);
        let machines = [
            machine(0, MachineState::Booting, 10.0),
            machine(0, MachineState::Running, 0.0),
            machine(1, MachineState::Booting, 0.0),
        ];
        waits.apply(&mut policy, machines.iter(), 40.0);
        assert_eq!(policy.resources[0].boot_time, 60.0);
        waits.apply(&mut policy, machines.iter(), 11.0);
        assert_eq!(policy.resources[0].boot_time, 4.0, "the mean seen");
    }
}
