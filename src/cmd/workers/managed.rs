//! The autonomic pool: a job's workers under a policy and its
//! [`Manager`].
//!
//! Each class of the policy gets its provider: `static` machines are local
//! `halley worker` processes started with the job (unless they exist already:
//! `--peer` without `--workers`), `local` ones come from a [`LocalProvider`]
//! running `<this exe> worker --peer <addr> --job <job>`, `command` ones
//! from the class's scripts ([`CommandProvider`], `HALLEY_JOIN` = the
//! [`Reach`]'s join address, `HALLEY_TOKEN` = its key in hex). The workers
//! this machine starts get the key as `HALLEY_TOKEN` in their environment
//! (never on their command line). When the [`Reach`] has a gateway, the
//! paid machines (`local` and `command`) get the job's capability, issued
//! at [`WorkerPool::start`] ([`halley_paradigms::isolated::worker_scope`]),
//! and the gateway's address instead: only `static` workers hold the key.
//! Every worker knows its machine by `HALLEY_MACHINE` (`m3`) and reports it
//! as its worker id in heartbeats and results; a worker that exists already
//! is matched to a `static` machine of the class it reports.
//!
//! The job's loop ticks about once a second: heartbeats become
//! [`Manager::heard`], ended processes [`Manager::released`], and the manager
//! plans every `scaling.interval` — and at once when the first task result
//! gives it an estimate. The pool keeps each machine's billing interval (from
//! its request to its release, as the manager bills it) for `summary.json`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use halley_autonomic::clock::{Secs, human};
use halley_autonomic::estimate::billed;
use halley_autonomic::machine::{Due, MachineId, Tasks};
use halley_autonomic::manager::{Manager, Provider};
use halley_autonomic::planner::Decision;
use halley_autonomic::policy::{Policy, ProviderKind};
use halley_autonomic::providers::{
    CommandProvider, LocalProvider, Providers, SlurmProvider, WorkerLine,
};
use halley_paradigms::isolated::worker_scope;
use halley_paradigms::master::Progress;
use halley_paradigms::task::{Heartbeat, TaskResult};
use halley_substrate::net::PreSharedKey;
use serde::Serialize;

use super::pool::{Account, StageDue, WorkerPool};
use super::running::Running;
use super::{Gateway, Reach};
use crate::cmd::token;

/// One machine's billing interval, as `summary.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct MachineRecord {
    pub id: String,
    pub class: String,
    /// Seconds since the job started: billing starts here.
    pub requested_at: Secs,
    /// When billing ended (the end of the job for machines kept to the end).
    pub released_at: Option<Secs>,
    /// What it cost.
    pub cost: f64,
    /// The provider's id of it: a `slurm` machine's Slurm job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// Workers started and stopped by the autonomic manager.
#[derive(Debug)]
pub struct ManagedPool {
    manager: Manager,
    began: Instant,
    /// Start the `static` machines' workers (false: they exist already).
    start_static: bool,
    /// Built by [`WorkerPool::start`], once the peer is known.
    providers: Option<Providers>,
    /// The `static` workers this pool started, by machine.
    statics: Vec<(MachineId, Child)>,
    /// How to start a `static` worker again (the program, the peer, the job).
    relaunch: Option<(std::path::PathBuf, String, String)>,
    /// The private overlay's key, passed on to every worker.
    key: Option<PreSharedKey>,
    /// What machines of `command` classes dial (HALLEY_JOIN); default: the
    /// peer the local workers dial.
    join: Option<String>,
    /// Where paid machines present the job's capability, if isolated.
    gateway: Option<Gateway>,
    /// The space's local door, which the workers of this machine dial in
    /// place of the peer (see [`Reach::local`]).
    local: Option<String>,
    next_step: Secs,
    samples: u64,
    /// Workers matched to machines by their reported id or resource.
    aliases: HashMap<String, MachineId>,
    records: BTreeMap<MachineId, MachineRecord>,
    /// Stages that follow the running ones on the longest chain.
    stages_ahead: u32,
    /// The running stage due soonest: when (seconds since the pool
    /// began) and its tasks still to end.
    stage_due: Option<(Secs, usize)>,
    /// Flags every worker this pool starts gets (`--max-output`, …).
    worker_flags: Vec<OsString>,
    /// The tasks running now, for the manager's estimate.
    running: Running,
}

impl ManagedPool {
    pub fn new(policy: Policy, start_static: bool) -> Self {
        ManagedPool {
            manager: Manager::new(policy),
            began: Instant::now(),
            start_static,
            providers: None,
            statics: Vec::new(),
            relaunch: None,
            key: None,
            join: None,
            gateway: None,
            local: None,
            next_step: 0.0,
            samples: 0,
            aliases: HashMap::new(),
            records: BTreeMap::new(),
            stages_ahead: 0,
            stage_due: None,
            worker_flags: Vec::new(),
            running: Running::default(),
        }
    }

    /// Every worker this pool starts gets `flags` too.
    pub fn worker_flags(mut self, flags: Vec<OsString>) -> Self {
        self.worker_flags = flags;
        self
    }

    /// Workers this pool starts hold `reach.key`, and machines of
    /// `command` classes join `reach.join` and get the key as HALLEY_TOKEN.
    pub fn reaching(mut self, reach: &Reach) -> Self {
        self.key = reach.key;
        self.join = Some(reach.join.clone());
        self.gateway = reach.gateway.clone();
        self.local = reach.local.clone();
        self
    }

    /// `worker --peer <peer> --job <job>`.
    fn worker_args(peer: &str, job: &str) -> Vec<OsString> {
        ["worker", "--peer", peer, "--job", job]
            .map(Into::into)
            .to_vec()
    }

    /// The trusted workers' environment: HALLEY_TOKEN is the key (if any).
    fn worker_env(&self) -> Vec<(OsString, Option<OsString>)> {
        Self::env_with(self.key.map(token::hex))
    }

    /// HALLEY_TOKEN is `token` (if any), and no other key source is
    /// inherited to clash with it.
    fn env_with(token: Option<String>) -> Vec<(OsString, Option<OsString>)> {
        let token = token.map(Into::into);
        vec![
            ("HALLEY_TOKEN".into(), token),
            ("HALLEY_SECRET_FILE".into(), None),
        ]
    }

    fn now(&self) -> Secs {
        self.began.elapsed().as_secs_f64()
    }

    /// The job's counters for the manager; a running stage's tasks due
    /// sooner counted as running as far as the job's running ones go.
    fn tasks(&self, progress: &Progress) -> Tasks {
        Tasks {
            queued: progress.queued as u64,
            running: progress.running as u64,
            done: progress.done as u64,
            stages_ahead: self.stages_ahead,
            due: self.stage_due.map(|(at, tasks)| {
                let running = tasks.min(progress.running);
                Due {
                    at,
                    queued: (tasks - running) as u64,
                    running: running as u64,
                }
            }),
        }
    }

    /// The machine a worker stands for: `m<N>` by its id, else (a worker
    /// that existed already) an unmatched `static` machine of its resource.
    fn machine_of(&mut self, worker: &str, resource: &str) -> Option<MachineId> {
        if let Some(id) = self.aliases.get(worker) {
            return Some(*id);
        }
        let named = worker
            .strip_prefix('m')
            .and_then(|n| n.parse().ok())
            .map(MachineId)
            .filter(|id| self.records.contains_key(id));
        let id = named.or_else(|| {
            let matched: Vec<MachineId> = self.aliases.values().copied().collect();
            self.manager
                .machines()
                .filter(|m| {
                    let class = &self.manager.policy().resources[m.class];
                    class.provider == ProviderKind::Static
                        && class.name == resource
                        && !matched.contains(&m.id)
                })
                .map(|m| m.id)
                .next()
        })?;
        self.aliases.insert(worker.to_owned(), id);
        Some(id)
    }

    /// Records new machines and the release of those the manager dropped.
    fn reconcile(&mut self, now: Secs) {
        let policy = self.manager.policy();
        for m in self.manager.machines() {
            let class = &policy.resources[m.class];
            self.records.entry(m.id).or_insert_with(|| MachineRecord {
                id: m.id.to_string(),
                class: class.name.clone(),
                requested_at: m.requested_at,
                released_at: None,
                cost: 0.0,
                provider_id: None,
            });
        }
        if let Some(providers) = self.providers.as_ref() {
            for (id, record) in &mut self.records {
                if record.provider_id.is_none() {
                    record.provider_id = providers.external_id(*id);
                }
            }
        }
        let live: Vec<MachineId> = self.manager.machines().map(|m| m.id).collect();
        for (id, record) in &mut self.records {
            if record.released_at.is_none() && !live.contains(id) {
                record.released_at = Some(now);
            }
        }
    }

    /// Processes that ended: billing stops now.
    fn collect_gone(&mut self, now: Secs) {
        if let Some(providers) = self.providers.as_mut() {
            self.manager.collect_gone(now, providers);
        }
        let alive: Vec<MachineId> = self.manager.machines().map(|m| m.id).collect();
        self.running.retain(|id| alive.contains(&id));
        self.reconcile(now);
    }

    fn step(&mut self, now: Secs, progress: &Progress) -> Vec<Decision> {
        let tasks = self.tasks(progress);
        let Some(providers) = self.providers.as_mut() else {
            return Vec::new();
        };
        self.manager.tasks_running(self.running.tasks());
        let decisions = self.manager.step(now, tasks, providers);
        self.next_step = now + self.manager.policy().scaling.interval;
        self.reconcile(now);
        decisions
    }

    fn spawn_statics(
        &mut self,
        exe: &std::path::Path,
        peer: &str,
        job: &str,
    ) -> anyhow::Result<()> {
        let policy = self.manager.policy();
        let statics: Vec<(MachineId, String, u32)> = self
            .manager
            .machines()
            .map(|m| (m.id, &policy.resources[m.class]))
            .filter(|(_, class)| class.provider == ProviderKind::Static)
            .map(|(id, class)| (id, class.name.clone(), class.slots))
            .collect();
        self.relaunch = Some((exe.to_owned(), peer.to_owned(), job.to_owned()));
        for (id, class, slots) in statics {
            let child = self.spawn_static(id, &class, slots)?;
            self.statics.push((id, child));
        }
        Ok(())
    }

    /// Starts the worker of `static` machine `id` of `class`, in a process
    /// group of its own (a Ctrl-C reaches the job, which stops its workers).
    fn spawn_static(&self, id: MachineId, class: &str, slots: u32) -> anyhow::Result<Child> {
        use std::os::unix::process::CommandExt;
        let Some((exe, peer, job)) = &self.relaunch else {
            anyhow::bail!("the pool has not started");
        };
        let mut command = Command::new(exe);
        for (name, value) in self.worker_env() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
            .args(Self::worker_args(peer, job))
            .args(["--resource", class])
            .args(["--slots", &slots.to_string()])
            .args(["--id", &id.to_string()])
            .args(&self.worker_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {} worker", exe.display()))
    }

    /// `static` workers that died while the job runs (killed, crashed)
    /// are started again under the same machine id: a lost machine is
    /// replaced while the job needs it.
    fn replace_lost_statics(&mut self) {
        if self.relaunch.is_none() || super::interrupt::signal().is_some() {
            return;
        }
        let policy = self.manager.policy();
        let mut lost = Vec::new();
        for (id, child) in &mut self.statics {
            if let Ok(Some(status)) = child.try_wait() {
                let class = self
                    .manager
                    .machines()
                    .find(|m| m.id == *id)
                    .map(|m| &policy.resources[m.class]);
                if let Some(class) = class {
                    lost.push((*id, class.name.clone(), class.slots, status));
                }
            }
        }
        for (id, class, slots, status) in lost {
            match self.spawn_static(id, &class, slots) {
                Ok(child) => {
                    say!("halley: worker {id} ({class}) ended ({status}): started again");
                    if let Some(entry) = self.statics.iter_mut().find(|(m, _)| *m == id) {
                        entry.1 = child;
                    }
                }
                Err(e) => tracing::warn!(machine = %id, error = %e, "cannot replace a lost worker"),
            }
        }
    }

    fn statics_running(&mut self) -> bool {
        self.statics
            .iter_mut()
            .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }
}

/// Ends a worker still running: SIGINT then SIGTERM (two signals: it kills
/// its tasks' process groups and exits), SIGKILL if it is still up a
/// second later.
fn end_worker(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    for signal in ["-INT", "-TERM"] {
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
    }
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl WorkerPool for ManagedPool {
    fn start(&mut self, peer: &str, job: &str) -> anyhow::Result<Vec<Decision>> {
        let exe = std::env::current_exe().context("cannot find the halley executable")?;
        // The workers this machine starts (static, and `local` machines)
        // dial the local door when the space has one; the others, the
        // join address.
        let peer = self.local.clone().unwrap_or_else(|| peer.to_owned());
        let peer = peer.as_str();
        // Paid machines: the gateway and the job's capability, if isolated;
        // else the space and its key, as the static workers.
        let (paid_peer, join, token) = match &self.gateway {
            Some(gateway) => {
                let capability = gateway.grants.issue(job, worker_scope(job)).to_string();
                (gateway.peer.clone(), gateway.join.clone(), Some(capability))
            }
            None => (
                peer.to_owned(),
                self.join.clone().unwrap_or_else(|| peer.to_owned()),
                self.key.map(token::hex),
            ),
        };
        let mut args = Self::worker_args(&paid_peer, job);
        args.extend(self.worker_flags.iter().cloned());
        let line = WorkerLine {
            program: exe.clone().into_os_string(),
            args,
            env: Self::env_with(token.clone()),
        };
        // Slurm's nodes dial the join address, as command machines do; the
        // job scripts and the jobs' logs go to ./halley-slurm/<job>/.
        let batch = WorkerLine {
            args: {
                let mut args = Self::worker_args(&join, job);
                args.extend(self.worker_flags.iter().cloned());
                args
            },
            ..line.clone()
        };
        let dir = std::env::current_dir()
            .context("cannot find the working directory")?
            .join("halley-slurm")
            .join(job);
        self.providers = Some(Providers::new(
            LocalProvider::new(line),
            CommandProvider::new(join, token.unwrap_or_default()),
            SlurmProvider::new(batch, dir),
        ));
        self.reconcile(0.0);
        if self.start_static {
            self.spawn_statics(&exe, peer, job)?;
        }
        let now = self.now();
        Ok(self.step(now, &Progress::default()))
    }

    fn stages_ahead(&mut self, stages: u32) {
        self.stages_ahead = stages;
    }

    fn stage_due(&mut self, due: Option<StageDue>) {
        let now = self.now();
        self.stage_due = due.map(|d| (now + d.left.as_secs_f64(), d.tasks));
    }

    fn task_finished(&mut self, result: &TaskResult) {
        if let Some(id) = self.machine_of(&result.worker, &result.resource) {
            self.manager.task_finished(id, result.run_secs());
            self.running.finished(id, self.now());
            if self.samples == 0 {
                // The first estimate: plan at the next tick.
                self.next_step = 0.0;
            }
            self.samples += 1;
        }
    }

    fn tick(&mut self, progress: &Progress, workers: &[Heartbeat]) -> Vec<Decision> {
        let now = self.now();
        for beat in workers {
            if let Some(id) = self.machine_of(&beat.worker, &beat.resource) {
                let busy = u32::try_from(beat.busy_slots).unwrap_or(u32::MAX);
                self.manager.heard(id, now, busy);
                self.running.heard(id, busy, now);
            }
        }
        self.collect_gone(now);
        self.replace_lost_statics();
        if now >= self.next_step {
            self.step(now, progress)
        } else {
            Vec::new()
        }
    }

    fn spent(&mut self) -> f64 {
        let now = self.now();
        self.manager.spent(now)
    }

    fn status(&mut self, progress: &Progress) -> String {
        let now = self.now();
        let policy = self.manager.policy();
        // Static machines that exist already (`--peer`) count once a worker
        // reported for them: no machine that never existed is shown.
        let matched: Vec<MachineId> = self.aliases.values().copied().collect();
        let mut counts: Vec<(String, u32)> = policy
            .resources
            .iter()
            .map(|r| (r.name.clone(), 0))
            .collect();
        for m in self.manager.machines() {
            let statik = policy.resources[m.class].provider == ProviderKind::Static;
            if self.start_static || !statik || matched.contains(&m.id) {
                counts[m.class].1 += 1;
            }
        }
        let workers: u32 = counts.iter().map(|(_, n)| n).sum();
        let classes: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        let deadline = policy.objective.deadline;
        let spent = self.manager.spent(now);
        let eta = if progress.done >= progress.submitted {
            String::new()
        } else if workers == 0 && progress.running == 0 {
            "; waiting for workers".to_owned()
        } else {
            let (finish, _) = self.manager.projected(now, self.tasks(progress));
            let deadline = deadline.map_or(String::new(), |d| {
                format!(" (deadline in {})", human((d - now).max(0.0)))
            });
            if finish.is_finite() {
                format!("; done in ~{}{deadline}", human((finish - now).max(0.0)))
            } else {
                format!("; done in: known once a task has finished{deadline}")
            }
        };
        let classes = if classes.is_empty() {
            "none".to_owned()
        } else {
            classes.join(", ")
        };
        format!("workers: {classes}; spent ${spent:.2}{eta}")
    }

    fn finish(&mut self, grace: Duration) -> Account {
        let now = self.now();
        let ending = match self.providers.as_mut() {
            Some(providers) => self.manager.finish(now, providers),
            None => Vec::new(),
        };
        self.reconcile(now);
        let until = Instant::now() + grace;
        loop {
            let now = self.now();
            self.collect_gone(now);
            let alive = self.providers.as_ref().map_or(0, Providers::alive);
            let hurry = super::interrupt::hurried();
            if (alive == 0 && !self.statics_running()) || Instant::now() >= until || hurry {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (_, child) in &mut self.statics {
            end_worker(child);
        }
        // Dropping the providers kills the local workers still up.
        self.providers = None;
        let end = self.now();
        let ids: Vec<MachineId> = self.manager.machines().map(|m| m.id).collect();
        for id in ids {
            self.manager.released(id, end);
        }
        self.reconcile(end);
        let policy = self.manager.policy();
        // With workers that exist already, a static machine no worker
        // reported for never was.
        let matched: Vec<MachineId> = self.aliases.values().copied().collect();
        let machines = self
            .records
            .iter()
            .filter(|(id, r)| {
                let statik = policy
                    .class(&r.class)
                    .is_some_and(|(_, c)| c.provider == ProviderKind::Static);
                self.start_static || !statik || matched.contains(id)
            })
            .map(|(_, r)| {
                let class = policy.class(&r.class).map(|(_, c)| c);
                let to = r.released_at.unwrap_or(end);
                MachineRecord {
                    cost: class.map_or(0.0, |c| billed(c, r.requested_at, to)),
                    ..r.clone()
                }
            })
            .collect();
        Account {
            cost: self.manager.spent(end),
            decisions: self.manager.decisions().to_vec(),
            ending,
            machines,
        }
    }
}

impl Drop for ManagedPool {
    /// No worker outlives the job, also when it failed before
    /// [`WorkerPool::finish`]: paid machines are stopped (their stop scripts
    /// run), the rest killed.
    fn drop(&mut self) {
        if self.providers.is_some() {
            self.finish(Duration::from_secs(10));
        }
        for (_, child) in &mut self.statics {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> ManagedPool {
        let policy = Policy::parse(
            "p",
            "[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
             [[resources]]\nname = \"cloud\"\nprovider = \"local\"\nmax = 2\n",
        )
        .unwrap();
        let mut pool = ManagedPool::new(policy, false);
        pool.reconcile(0.0);
        pool
    }

    #[test]
    fn workers_are_their_machines_by_id_or_by_static_class() {
        let mut pool = pool();
        assert_eq!(pool.machine_of("m1", "campus"), Some(MachineId(1)));
        assert_eq!(pool.machine_of("m7", "cloud"), None, "no such machine");
        // Workers that existed already take the static machines left.
        assert_eq!(pool.machine_of("lab-a", "campus"), Some(MachineId(0)));
        assert_eq!(pool.machine_of("lab-b", "campus"), None, "m1 is taken");
        assert_eq!(
            pool.machine_of("lab-c", "cloud"),
            None,
            "not a static class"
        );
        assert_eq!(pool.machine_of("lab-a", "campus"), Some(MachineId(0)));
    }

    #[test]
    fn dropping_the_pool_stops_the_machines_of_command_scripts() {
        let dir = std::env::temp_dir().join(format!("halley-managed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let policy = Policy::parse(
            "p",
            &format!(
                "[[resources]]\nname = \"lab\"\nprovider = \"command\"\nmax = 1\n\
                 start = 'sleep 30 >/dev/null 2>&1 & echo $! | tee {}'\nstop = 'kill $HALLEY_ID'\n",
                pid_file.display()
            ),
        )
        .unwrap();
        let mut pool = ManagedPool::new(policy, false);
        assert!(
            pool.start("/ip4/127.0.0.1/tcp/1", "job")
                .unwrap()
                .is_empty()
        );
        let queued = Progress {
            submitted: 10,
            queued: 10,
            ..Progress::default()
        };
        pool.next_step = 0.0;
        let decisions = pool.tick(&queued, &[]);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        let until = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Ok(pid) = std::fs::read_to_string(&pid_file)
                && !pid.trim().is_empty()
            {
                break pid.trim().to_owned();
            }
            assert!(Instant::now() < until, "the start script ran");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(pool);
        let gone = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        let until = Instant::now() + Duration::from_secs(5);
        while !gone(&pid) {
            assert!(Instant::now() < until, "the stop script killed {pid}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_status_shows_only_workers_that_exist_and_no_eta_when_done() {
        // `--peer`: the static machines exist once a worker reports for one.
        let mut pool = pool();
        let queued = Progress {
            submitted: 4,
            queued: 4,
            ..Progress::default()
        };
        assert_eq!(
            pool.status(&queued),
            "workers: none; spent $0.00; waiting for workers"
        );
        assert_eq!(pool.machine_of("lab-a", "campus"), Some(MachineId(0)));
        let status = pool.status(&queued);
        assert!(
            status.starts_with("workers: campus 1; spent $0.00; done in: known once"),
            "{status}"
        );
        let done = Progress {
            submitted: 4,
            done: 4,
            ..Progress::default()
        };
        assert_eq!(pool.status(&done), "workers: campus 1; spent $0.00");
        // The summary lists the machine a worker stood for, not m1.
        let ids: Vec<String> = pool
            .finish(Duration::ZERO)
            .machines
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["m0"]);
    }

    #[test]
    fn released_machines_keep_their_billing_interval() {
        let mut pool = pool();
        pool.manager.released(MachineId(1), 4.5);
        pool.reconcile(4.5);
        let record = &pool.records[&MachineId(1)];
        assert_eq!((record.requested_at, record.released_at), (0.0, Some(4.5)));
        assert_eq!(pool.records[&MachineId(0)].released_at, None);
    }
}
