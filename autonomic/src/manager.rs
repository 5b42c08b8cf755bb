//! The seam `halley run` plugs into: a [`Manager`] that owns the policy, the
//! estimators, the planner and the machine table, and a [`Provider`] that
//! starts and stops machines.
//!
//! The run loop tells the manager what it sees — a task finished
//! ([`Manager::task_finished`]), a worker was heard from ([`Manager::heard`]),
//! a machine is gone ([`Manager::released`]) — and every `scaling.interval`
//! calls [`Manager::step`], which plans and has the provider carry it out.
//! Machines go requested → booting → running → draining → released.
//!
//! The run loop's side of the seam:
//!
//! ```text
//! let mut manager = Manager::new(policy);            // static machines: running, ids m0..
//! let mut provider = LocalProvider::new(worker_line); // or CommandProvider, per class
//! every scaling.interval:
//!     for each worker: manager.heard(id, now, busy_slots)   // else replaced after heartbeat_timeout
//!     for each task done: manager.task_finished(id, secs)
//!     let decisions = manager.step(now, Tasks { queued, running, done }, &mut provider);
//!     progress: manager.workers_by_class(), manager.spent(now), manager.projected(now, tasks)
//! a draining machine whose worker left: manager.released(id, now)
//! at the end: manager.finish(now, &mut provider)   // releases, as decisions
//! summary.json "decisions" = manager.decisions()
//! ```
//!
//! Workers tell which machine they are by `HALLEY_MACHINE` (`m3`), set in the
//! environment of the local worker process and of a `command` start script.

mod breaker;
mod queue;

use std::collections::BTreeMap;

use crate::clock::{Secs, human};
use crate::estimate::{Estimator, billed};
use crate::machine::{Machine, MachineId, MachineState, Snapshot, Tasks};
use crate::planner::{self, Action, Decision, Planner, projection};
use crate::policy::{Policy, ProviderKind, Resource};
pub use breaker::BOOT_FAILURES;
use breaker::Breaker;
pub use queue::QueueWaits;

/// Starts and stops the machines of one or more classes.
pub trait Provider {
    /// Begins booting machine `id` of `class`; its worker is expected to be
    /// heard from once it runs.
    fn start(&mut self, id: MachineId, class: &Resource, now: Secs) -> Result<(), ProviderError>;
    /// Stops machine `id` gracefully: it finishes its tasks, takes no more,
    /// and is reported [`Manager::released`] once gone.
    fn stop(&mut self, id: MachineId, now: Secs) -> Result<(), ProviderError>;
    /// Stops machine `id` now, its tasks with it (their leases lapse and
    /// they run again elsewhere, a new attempt): billing ends at once.
    /// By default a plain [`Provider::stop`], for providers whose stop
    /// ends the machine whatever it runs.
    fn kill(&mut self, id: MachineId, now: Secs) -> Result<(), ProviderError> {
        self.stop(id, now)
    }
    /// Machines that ended since last asked (stopped, died, failed to start);
    /// [`Manager::step`] marks them released.
    fn gone(&mut self) -> Vec<MachineId> {
        Vec::new()
    }
    /// Machines that ended on their own since last asked — not stopped by
    /// us: a batch job's time limit, a node failure, preemption — with
    /// why. [`Provider::gone`] reports them too.
    fn lost(&mut self) -> Vec<(MachineId, String)> {
        Vec::new()
    }
    /// The provider's own id of machine `id` (a Slurm job id), once known.
    fn external_id(&self, _id: MachineId) -> Option<String> {
        None
    }
    /// What a machine not yet running waits for, in the provider's words
    /// ("Slurm job 41 PENDING: Priority").
    fn waiting(&self, _id: MachineId) -> Option<String> {
        None
    }
}

/// A provider that could not start or stop a machine.
#[derive(Debug, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ProviderError {
    pub class: String,
    pub message: String,
}

/// The autonomic manager of one job.
#[derive(Debug)]
pub struct Manager {
    policy: Policy,
    estimator: Estimator,
    /// The estimator's answers, recomputed only after new samples.
    estimates: Vec<Option<Secs>>,
    stale: bool,
    planner: Planner,
    machines: BTreeMap<MachineId, Machine>,
    /// What released machines cost.
    spent_released: f64,
    /// When each running task started, by machine (as last told).
    running: Vec<(MachineId, Secs)>,
    next_id: u64,
    decisions: Vec<Decision>,
    /// Queue waits of batch classes, the boot time planned with.
    waits: QueueWaits,
    /// Decisions taken between steps (lost machines), not yet returned.
    unseen: Vec<Decision>,
    /// Classes whose machines keep ending before they run.
    breaker: Breaker,
}

impl Manager {
    /// A manager whose `static` machines exist from time 0, running.
    pub fn new(policy: Policy) -> Self {
        let mut manager = Manager {
            estimator: Estimator::new(&policy),
            estimates: Vec::new(),
            stale: true,
            planner: Planner::new(),
            machines: BTreeMap::new(),
            spent_released: 0.0,
            running: Vec::new(),
            next_id: 0,
            decisions: Vec::new(),
            waits: QueueWaits::new(&policy),
            unseen: Vec::new(),
            breaker: Breaker::new(policy.resources.len()),
            policy,
        };
        for class in 0..manager.policy.resources.len() {
            let r = &manager.policy.resources[class];
            if r.provider == ProviderKind::Static {
                for _ in 0..r.limit() {
                    let id = manager.new_machine(class, 0.0);
                    manager.set_state(id, MachineState::Running);
                }
            }
        }
        manager
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Machines not yet released.
    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values()
    }

    /// Every decision so far, in order.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// The class name of a machine.
    pub fn class_of(&self, id: MachineId) -> Option<&str> {
        self.machines
            .get(&id)
            .map(|m| self.policy.resources[m.class].name.as_str())
    }

    /// A task took `duration` on one slot of machine `id`.
    pub fn task_finished(&mut self, id: MachineId, duration: Secs) {
        if let Some(m) = self.machines.get(&id) {
            self.estimator.record(m.class, duration);
            self.stale = true;
        }
    }

    /// The tasks running now: the machine and start time of each. Told
    /// before each step, their ages make the estimates honest about the
    /// long tasks not yet finished; never told, only finished tasks count.
    pub fn tasks_running(&mut self, running: impl IntoIterator<Item = (MachineId, Secs)>) {
        self.running.clear();
        self.running.extend(running);
    }

    /// Machine `id`'s worker is alive and runs `busy_slots` tasks; the first
    /// time, the machine is running.
    pub fn heard(&mut self, id: MachineId, now: Secs, busy_slots: u32) {
        let Some(m) = self.machines.get_mut(&id) else {
            return;
        };
        if m.is_booting() {
            m.state = MachineState::Running;
            self.waits.observed(m.class, now - m.requested_at);
            self.breaker.ran(m.class);
        }
        m.last_heard = now;
        m.busy_slots = busy_slots;
        m.idle_since = match (busy_slots, m.idle_since) {
            (0, None) => Some(now),
            (0, since) => since,
            _ => None,
        };
    }

    /// Machine `id` is gone (stopped, or its process died): billing ends.
    pub fn released(&mut self, id: MachineId, now: Secs) {
        if let Some(m) = self.machines.remove(&id) {
            self.spent_released += billed(&self.policy.resources[m.class], m.requested_at, now);
        }
    }

    /// Money spent so far, the machines still up billed to `now`.
    pub fn spent(&self, now: Secs) -> f64 {
        let live: f64 = self
            .machines
            .values()
            .map(|m| billed(&self.policy.resources[m.class], m.requested_at, now))
            .sum();
        self.spent_released + live
    }

    /// Machines up (requested to draining) per class, in policy order: for
    /// progress lines.
    pub fn workers_by_class(&self) -> Vec<(&str, u32)> {
        let mut counts: Vec<(&str, u32)> = self
            .policy
            .resources
            .iter()
            .map(|r| (r.name.as_str(), 0))
            .collect();
        for m in self.machines.values() {
            counts[m.class].1 += 1;
        }
        counts
    }

    /// Projected finish and total spend on the machines as they are.
    pub fn projected(&mut self, now: Secs, tasks: Tasks) -> (Secs, f64) {
        let snapshot = self.snapshot(now, tasks);
        projection(&self.policy, &snapshot)
    }

    /// What the planner would see now.
    pub fn snapshot(&mut self, now: Secs, tasks: Tasks) -> Snapshot {
        self.waits
            .apply(&mut self.policy, self.machines.values(), now);
        if self.stale {
            self.estimates = self.estimator.all();
            self.stale = false;
        }
        let ages: Vec<(usize, Secs)> = self
            .running
            .iter()
            .filter_map(|(id, started)| Some((self.machines.get(id)?.class, now - started)))
            .collect();
        Snapshot {
            now,
            tasks,
            machines: self.machines.values().cloned().collect(),
            estimates: self.estimates.clone(),
            spread: self.estimator.spread(&ages),
            spent: self.spent(now),
        }
    }

    /// Plans for this moment and has `provider` carry it out; returns the
    /// decisions (also kept in [`Manager::decisions`]).
    pub fn step(&mut self, now: Secs, tasks: Tasks, provider: &mut dyn Provider) -> Vec<Decision> {
        self.collect_gone(now, provider);
        let snapshot = self.snapshot(now, tasks);
        // Recorded already, when the machines were found gone.
        let mut decisions = std::mem::take(&mut self.unseen);
        let planned = self.planner.plan(&self.policy, &snapshot);
        let mut fresh = self.queued_instead(now, &planned, provider);
        fresh.extend(planned);
        decisions.extend(self.execute(now, fresh, provider));
        decisions
    }

    /// Has `provider` carry out `decisions` (the planner's, or a baseline's
    /// in the simulator); returns them with any failure to start reported
    /// (also kept in [`Manager::decisions`]).
    pub fn execute(
        &mut self,
        now: Secs,
        mut decisions: Vec<Decision>,
        provider: &mut dyn Provider,
    ) -> Vec<Decision> {
        let mut failures = Vec::new();
        for decision in &decisions {
            match &decision.action {
                Action::Start { class, count } => {
                    let Some((index, _)) = self.policy.class(class) else {
                        continue;
                    };
                    for _ in 0..*count {
                        if self.given_up(index) {
                            break;
                        }
                        let id = self.new_machine(index, now);
                        match provider.start(id, &self.policy.resources[index], now) {
                            Ok(()) => self.set_state(id, MachineState::Booting),
                            Err(error) => {
                                self.machines.remove(&id);
                                failures.push(Decision {
                                    at: now,
                                    action: Action::Report,
                                    reason: format!("could not start a machine of {error}"),
                                });
                                let why = format!("could not start: {}", error.message);
                                failures.extend(self.boot_failed(index, now, &why));
                            }
                        }
                    }
                }
                Action::Release { machine, .. } => {
                    if let Some((class, why)) = self.past_boot_limit(*machine, now) {
                        failures.extend(self.boot_failed(class, now, &why));
                    }
                    self.release(*machine, now, provider);
                }
                Action::Stop { machine, .. } => self.kill(*machine, now, provider),
                Action::Report => {}
            }
        }
        decisions.extend(failures);
        for decision in &decisions {
            tracing::info!(target: "halley::autonomic", "{decision}");
        }
        self.decisions.extend(decisions.iter().cloned());
        decisions
    }

    /// Machines the provider saw end: released, and those that ended on
    /// their own (a batch job's time limit, a node failure) are a
    /// decision that says so — their tasks go back to the queue when
    /// their leases lapse, and the next step plans without them.
    pub fn collect_gone(&mut self, now: Secs, provider: &mut dyn Provider) {
        let gone = provider.gone();
        for (id, why) in provider.lost() {
            let Some(class) = self.class_of(id).map(str::to_owned) else {
                continue;
            };
            let decision = planner::release(
                now,
                &class,
                id,
                format!("lost: {why}; its tasks run again elsewhere"),
            );
            tracing::info!(target: "halley::autonomic", "{decision}");
            self.decisions.push(decision.clone());
            self.unseen.push(decision);
        }
        for id in gone {
            let never_ran = self
                .machines
                .get(&id)
                .and_then(|m| m.is_booting().then_some(m.class));
            if let Some(class) = never_ran
                && let Some(decision) =
                    self.boot_failed(class, now, "it ended before its worker was heard from")
            {
                tracing::info!(target: "halley::autonomic", "{decision}");
                self.decisions.push(decision.clone());
                self.unseen.push(decision);
            }
            self.released(id, now);
        }
    }

    /// Machine `id` of a class, still not running past its boot limit
    /// (the planner releases it for that): its class and why.
    fn past_boot_limit(&self, id: MachineId, now: Secs) -> Option<(usize, String)> {
        let m = self.machines.get(&id)?;
        let limit = self.policy.boot_limit(m.class);
        (m.is_booting() && now - m.requested_at > limit)
            .then(|| (m.class, format!("did not boot within {}", human(limit))))
    }

    /// A machine of `class` ended before it ran, because `why`: once that
    /// makes [`BOOT_FAILURES`] in a row, the class is given up on (its
    /// `max` becomes 0 in this job) and the report says so.
    fn boot_failed(&mut self, class: usize, now: Secs, why: &str) -> Option<Decision> {
        if !self.breaker.failed(class) {
            return None;
        }
        let r = &mut self.policy.resources[class];
        r.max = Some(0);
        Some(Decision {
            at: now,
            action: Action::Report,
            reason: format!(
                "{}: {BOOT_FAILURES} machines in a row ended before their worker was heard from \
                 (the last: {why}): starting no more of this class",
                r.name
            ),
        })
    }

    /// Whether no more machines of `class` are started ([`Manager::boot_failed`]).
    fn given_up(&self, class: usize) -> bool {
        let r = &self.policy.resources[class];
        r.provider != ProviderKind::Static && r.max == Some(0)
    }

    /// When `planned` starts paid machines while machines of a batch class
    /// are still queued: one report per such class, with how long they
    /// have waited, the provider's word on why, and the wait planned with.
    fn queued_instead(
        &self,
        now: Secs,
        planned: &[Decision],
        provider: &dyn Provider,
    ) -> Vec<Decision> {
        let paid_start = planned.iter().any(|d| match &d.action {
            Action::Start { class, .. } => self
                .policy
                .class(class)
                .is_some_and(|(_, r)| !r.is_private()),
            _ => false,
        });
        if !paid_start {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (class, r) in self.policy.resources.iter().enumerate() {
            if r.provider != ProviderKind::Slurm {
                continue;
            }
            let Some(age) = QueueWaits::oldest_queued(class, self.machines.values(), now) else {
                continue;
            };
            let queued: Vec<MachineId> = self
                .machines
                .values()
                .filter(|m| m.class == class)
                .filter(|m| m.is_booting())
                .map(|m| m.id)
                .collect();
            let word = queued
                .iter()
                .find_map(|&id| provider.waiting(id))
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            out.push(Decision {
                at: now,
                action: Action::Report,
                reason: format!(
                    "{}: {} machine(s) still queued after {}{word}: planning with a queue wait of {}, \
                     too long for the objective without paid machines",
                    r.name,
                    queued.len(),
                    human(age),
                    human(r.boot_time)
                ),
            });
        }
        out
    }

    /// The job is over: stops every machine that is not `static` (those
    /// are the job's own workers, which leave when told the job is done);
    /// returns the release decisions (also kept in [`Manager::decisions`]).
    pub fn finish(&mut self, now: Secs, provider: &mut dyn Provider) -> Vec<Decision> {
        let ids: Vec<(MachineId, String)> = self
            .machines
            .values()
            .map(|m| (m.id, &self.policy.resources[m.class]))
            .filter(|(_, class)| class.provider != ProviderKind::Static)
            .map(|(id, class)| (id, class.name.clone()))
            .collect();
        let mut decisions = Vec::with_capacity(ids.len());
        for (id, class) in ids {
            let decision = planner::release(now, &class, id, "the job is over".into());
            tracing::info!(target: "halley::autonomic", "{decision}");
            decisions.push(decision);
            self.release(id, now, provider);
        }
        self.decisions.extend(decisions.iter().cloned());
        decisions
    }

    fn release(&mut self, id: MachineId, now: Secs, provider: &mut dyn Provider) {
        let Some(m) = self.machines.get(&id) else {
            return;
        };
        let idle = m.busy_slots == 0 || m.state != MachineState::Running;
        if let Err(error) = provider.stop(id, now) {
            tracing::warn!(target: "halley::autonomic", "could not stop {id} of {error}");
        }
        if idle {
            self.released(id, now);
        } else {
            self.set_state(id, MachineState::Draining);
        }
    }

    /// Stops machine `id` with its tasks: released at once.
    fn kill(&mut self, id: MachineId, now: Secs, provider: &mut dyn Provider) {
        if !self.machines.contains_key(&id) {
            return;
        }
        if let Err(error) = provider.kill(id, now) {
            tracing::warn!(target: "halley::autonomic", "could not stop {id} of {error}");
        }
        self.released(id, now);
    }

    fn new_machine(&mut self, class: usize, now: Secs) -> MachineId {
        let id = MachineId(self.next_id);
        self.next_id += 1;
        self.machines.insert(
            id,
            Machine {
                id,
                class,
                state: MachineState::Requested,
                requested_at: now,
                busy_slots: 0,
                idle_since: Some(now),
                last_heard: now,
            },
        );
        id
    }

    fn set_state(&mut self, id: MachineId, state: MachineState) {
        if let Some(m) = self.machines.get_mut(&id) {
            m.state = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records calls; refuses to start when `broken`.
    #[derive(Debug, Default)]
    struct Recorder {
        started: Vec<MachineId>,
        stopped: Vec<MachineId>,
        broken: bool,
    }

    impl Provider for Recorder {
        fn start(
            &mut self,
            id: MachineId,
            class: &Resource,
            _now: Secs,
        ) -> Result<(), ProviderError> {
            if self.broken {
                return Err(ProviderError {
                    class: class.name.clone(),
                    message: "quota exceeded".into(),
                });
            }
            self.started.push(id);
            Ok(())
        }

        fn stop(&mut self, id: MachineId, _now: Secs) -> Result<(), ProviderError> {
            self.stopped.push(id);
            Ok(())
        }
    }

    fn manager() -> Manager {
        Manager::new(
            Policy::parse(
                "p",
                "[objective]\ndeadline = \"11m\"\n[scaling]\ntask_estimate = \"30s\"\n\
                 [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
                 [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 3.6\nboot_time = \"10s\"\nmax = 5\n",
            )
            .unwrap(),
        )
    }

    const WORK: Tasks = Tasks {
        queued: 100,
        running: 2,
        done: 0,
        stages_ahead: 0,
        due: None,
    };

    #[test]
    fn static_machines_run_from_the_start() {
        let m = manager();
        let states: Vec<_> = m.machines().map(|m| (m.id.0, m.state)).collect();
        assert_eq!(
            states,
            [(0, MachineState::Running), (1, MachineState::Running)]
        );
        assert_eq!(m.class_of(MachineId(1)), Some("campus"));
        assert_eq!(m.workers_by_class(), [("campus", 2), ("cloud", 0)]);
    }

    #[test]
    fn a_machine_boots_runs_drains_and_is_billed_until_released() {
        let mut m = manager();
        let mut p = Recorder::default();
        let decisions = m.step(0.0, WORK, &mut p);
        assert!(
            matches!(decisions[0].action, Action::Start { count: 4, .. }),
            "{decisions:?}"
        );
        assert_eq!(p.started, (2..6).map(MachineId).collect::<Vec<_>>());
        let id = MachineId(2);
        assert_eq!(
            m.machines().find(|x| x.id == id).unwrap().state,
            MachineState::Booting
        );
        m.heard(id, 10.0, 1);
        assert_eq!(
            m.machines().find(|x| x.id == id).unwrap().state,
            MachineState::Running
        );
        m.task_finished(id, 20.0);
        m.finish(100.0, &mut p);
        // busy: draining until its task ends; idle ones released at once.
        assert_eq!(
            m.machines().find(|x| x.id == id).unwrap().state,
            MachineState::Draining
        );
        assert_eq!(m.machines().count(), 3);
        m.released(id, 130.0);
        assert_eq!(p.stopped.len(), 4);
        // $3.60/h = $0.001/s: three machines 100 s, one 130 s.
        assert!((m.spent(200.0) - 0.43).abs() < 1e-9, "{}", m.spent(200.0));
        // The start, then each release at the end with its reason.
        let ends: Vec<(f64, &str)> = m.decisions()[1..]
            .iter()
            .map(|d| (d.at, d.reason.as_str()))
            .collect();
        assert_eq!(
            ends,
            [
                (100.0, "-1 cloud (m2): the job is over"),
                (100.0, "-1 cloud (m3): the job is over"),
                (100.0, "-1 cloud (m4): the job is over"),
                (100.0, "-1 cloud (m5): the job is over"),
            ]
        );
        assert!(matches!(
            m.decisions()[1].action,
            Action::Release {
                machine: MachineId(2),
                ..
            }
        ));
    }

    /// A batch queue that holds its jobs, and loses one on request.
    #[derive(Debug, Default)]
    struct Queue {
        started: Vec<MachineId>,
        lose: Option<MachineId>,
    }

    impl Provider for Queue {
        fn start(&mut self, id: MachineId, _: &Resource, _: Secs) -> Result<(), ProviderError> {
            self.started.push(id);
            Ok(())
        }
        fn stop(&mut self, _: MachineId, _: Secs) -> Result<(), ProviderError> {
            Ok(())
        }
        fn gone(&mut self) -> Vec<MachineId> {
            self.lose.into_iter().collect()
        }
        fn lost(&mut self) -> Vec<(MachineId, String)> {
            let why = "Slurm job 7 of hpc ended on its own: TIMEOUT (None)".to_string();
            self.lose.take().map(|id| (id, why)).into_iter().collect()
        }
        fn waiting(&self, _: MachineId) -> Option<String> {
            Some("Slurm job 7 PENDING: JobHeldUser".into())
        }
    }

    fn hybrid() -> Manager {
        Manager::new(
            Policy::parse(
                "p",
                "[objective]\ndeadline = \"2m15s\"\n[scaling]\ntask_estimate = \"10s\"\ncooldown = \"0s\"\n\
                 [[resources]]\nname = \"hpc\"\nprovider = \"slurm\"\nmax = 2\n\
                 [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nprice_per_hour = 1.0\nmax = 4\n",
            )
            .unwrap(),
        )
    }

    const TWENTY: Tasks = Tasks {
        queued: 20,
        running: 0,
        done: 0,
        stages_ahead: 0,
        due: None,
    };

    #[test]
    fn a_queue_that_holds_its_jobs_sends_the_work_to_a_paid_class_and_says_why() {
        let mut m = hybrid();
        let mut p = Queue::default();
        let first = m.step(0.0, TWENTY, &mut p);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].reason.starts_with("+2 hpc: "), "{first:?}");
        // Still queued at 20 s: a wait of 40 s is planned, too late for
        // 20 tasks of 10 s on two slots before 2m15s.
        let later = m.step(20.0, TWENTY, &mut p);
        let reasons: Vec<&str> = later.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons[0],
            "hpc: 2 machine(s) still queued after 20s (Slurm job 7 PENDING: JobHeldUser): \
             planning with a queue wait of 40s, too long for the objective without paid machines",
            "{reasons:?}"
        );
        assert!(reasons[1].starts_with("+"), "{reasons:?}");
        assert!(reasons[1].contains(" cloud: "), "{reasons:?}");
    }

    #[test]
    fn a_machine_that_ends_on_its_own_is_released_with_why() {
        let mut m = hybrid();
        let mut p = Queue::default();
        m.step(0.0, TWENTY, &mut p);
        m.heard(MachineId(0), 3.0, 1);
        p.lose = Some(MachineId(0));
        m.collect_gone(5.0, &mut p);
        assert_eq!(m.machines().count(), 1);
        let next = m.step(6.0, TWENTY, &mut p);
        assert_eq!(
            next[0].reason,
            "-1 hpc (m0): lost: Slurm job 7 of hpc ended on its own: TIMEOUT (None); \
             its tasks run again elsewhere"
        );
        assert!(matches!(
            next[0].action,
            Action::Release {
                machine: MachineId(0),
                ..
            }
        ));
        assert_eq!(
            m.decisions().iter().filter(|d| **d == next[0]).count(),
            1,
            "recorded once"
        );
        assert!(
            next[1..].iter().any(|d| d.reason.starts_with("+1 hpc")),
            "replaced: {next:?}"
        );
    }

    #[test]
    fn a_provider_that_cannot_start_is_reported() {
        let mut m = manager();
        let mut p = Recorder {
            broken: true,
            ..Recorder::default()
        };
        let decisions = m.step(0.0, WORK, &mut p);
        let reasons: Vec<&str> = decisions.iter().map(|d| d.reason.as_str()).collect();
        let refused = "could not start a machine of cloud: quota exceeded";
        assert!(reasons[0].starts_with("+"), "{reasons:?}");
        // Three refusals, then the class is given up on: the plan's other
        // machines are not tried.
        assert_eq!(
            reasons[1..],
            [
                refused,
                refused,
                refused,
                "cloud: 3 machines in a row ended before their worker was heard from \
                 (the last: could not start: quota exceeded): starting no more of this class",
            ],
        );
        assert_eq!(m.machines().count(), 2);
        assert_eq!(p.started, []);
        // Nor later.
        let later = m.step(60.0, WORK, &mut p);
        assert!(
            later
                .iter()
                .all(|d| !matches!(d.action, Action::Start { .. })),
            "{later:?}"
        );
        assert_eq!(p.started, []);
    }

    #[test]
    fn a_class_whose_machines_never_boot_is_given_up_on_after_three_and_not_before() {
        let mut m = manager();
        let mut p = Recorder::default();
        let first = m.step(0.0, WORK, &mut p);
        assert!(
            matches!(first[0].action, Action::Start { count: 4, .. }),
            "{first:?}"
        );
        // None is ever heard from: past the boot limit (2 × 10 s + 30 s)
        // they are released, three of them counting as the third failure.
        let mut steps = Vec::new();
        for t in [60.0, 70.0, 130.0, 200.0, 300.0] {
            steps.extend(m.step(t, WORK, &mut p));
        }
        let given_up: Vec<&Decision> = steps
            .iter()
            .filter(|d| d.reason.contains("starting no more of this class"))
            .collect();
        assert_eq!(given_up.len(), 1, "{steps:#?}");
        assert!(
            given_up[0]
                .reason
                .contains("(the last: did not boot within 50s)"),
            "{}",
            given_up[0].reason
        );
        let started_after = steps
            .iter()
            .filter(|d| d.at > given_up[0].at && matches!(d.action, Action::Start { .. }))
            .count();
        assert_eq!(started_after, 0, "{steps:#?}");

        // A machine heard from in time ends the count: two of the first
        // four never boot (two failures), one of their replacements runs,
        // the other never boots: the class is still used.
        let mut m = manager();
        let mut p = Recorder::default();
        m.step(0.0, WORK, &mut p);
        let first: Vec<MachineId> = p.started.clone();
        m.heard(first[0], 15.0, 1);
        m.heard(first[1], 15.0, 1);
        let mut steps = m.step(60.0, WORK, &mut p);
        for t in [70.0, 80.0] {
            for &id in &first[..2] {
                m.heard(id, t - 1.0, 1);
            }
            steps.extend(m.step(t, WORK, &mut p));
        }
        let replacements: Vec<MachineId> = p.started[first.len()..].to_vec();
        assert!(replacements.len() >= 2, "{steps:#?}");
        m.heard(replacements[0], 85.0, 1);
        for &id in &first[..2] {
            m.heard(id, 139.0, 1);
        }
        steps.extend(m.step(140.0, WORK, &mut p));
        assert!(
            steps
                .iter()
                .any(|d| d.reason.contains("did not boot within")),
            "{steps:#?}"
        );
        assert!(
            steps.iter().all(|d| !d.reason.contains("starting no more")),
            "{steps:#?}"
        );
    }
}
