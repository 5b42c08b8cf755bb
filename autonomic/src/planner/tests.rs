//! Planner scenarios with exact expected decisions.
//!
//! Every scenario: two private `campus` workers, tasks of exactly 30 s on every class,
//! `cloud.small` at $0.36/h per second (1/100 of a cent a second), 1 m boot.

use super::*;
use crate::estimate::Spread;
use crate::machine::{Due, Machine, Tasks};

const CLASSES: &str = r#"
[[resources]]
name = "campus"
provider = "static"
count = 2

[[resources]]
name = "cloud.small"
provider = "local"
price_per_hour = 0.36
boot_time = "1m"
max = 10

[[resources]]
name = "cloud.hourly"
provider = "local"
price_per_hour = 1.0
billing = "per-hour"
boot_time = "1m"
max = 4
"#;

const CAMPUS: usize = 0;
const SMALL: usize = 1;
const HOURLY: usize = 2;

fn policy(head: &str) -> Policy {
    Policy::parse("test.toml", &format!("{head}\n{CLASSES}")).unwrap()
}

fn machine(
    id: u64,
    class: usize,
    state: MachineState,
    requested_at: Secs,
    busy_slots: u32,
) -> Machine {
    Machine {
        id: MachineId(id),
        class,
        state,
        requested_at,
        busy_slots,
        idle_since: (busy_slots == 0).then_some(requested_at),
        last_heard: requested_at,
    }
}

fn campus() -> Vec<Machine> {
    vec![
        machine(100, CAMPUS, MachineState::Running, 0.0, 1),
        machine(101, CAMPUS, MachineState::Running, 0.0, 1),
    ]
}

fn snapshot(now: Secs, queued: u64, running: u64, mut machines: Vec<Machine>) -> Snapshot {
    for m in &mut machines {
        m.last_heard = now;
    }
    Snapshot {
        now,
        tasks: Tasks {
            queued,
            running,
            done: 0,
            stages_ahead: 0,
            due: None,
        },
        machines,
        estimates: vec![Some(30.0); 3],
        spread: Some(Spread {
            mean: 30.0,
            cv: 0.0,
        }),
        spent: 0.0,
    }
}

/// The reasons, after checking each one names its action.
fn reasons(decisions: &[Decision]) -> Vec<String> {
    for d in decisions {
        match &d.action {
            Action::Start { class, count } => {
                assert!(d.reason.starts_with(&format!("+{count} {class}: ")))
            }
            Action::Release { class, machine } => {
                assert!(d.reason.starts_with(&format!("-1 {class} ({machine}): ")))
            }
            Action::Stop { class, machine } => assert!(d.reason.starts_with(&format!(
                "-1 {class} ({machine}), its tasks stopped and queued again: "
            ))),
            Action::Report => assert!(!d.reason.starts_with(['+', '-'])),
        }
    }
    decisions.iter().map(|d| d.reason.clone()).collect()
}

fn plan(policy: &Policy, snap: &Snapshot) -> Vec<String> {
    reasons(&Planner::new().plan(policy, snap))
}

#[test]
fn a_tight_deadline_buys_the_fewest_cheapest_machines_that_meet_it() {
    let p = policy("[objective]\ndeadline = \"10m\"");
    let decisions = Planner::new().plan(&p, &snapshot(0.0, 100, 0, campus()));
    assert_eq!(
        decisions[0].action,
        Action::Start {
            class: "cloud.small".into(),
            count: 5
        }
    );
    assert_eq!(
        reasons(&decisions),
        [
            "+5 cloud.small: projected 25m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m21s, about $0.25 in all"
        ]
    );
}

#[test]
fn a_loose_deadline_uses_the_private_machines_alone() {
    let p = policy("[objective]\ndeadline = \"2h\"");
    assert!(plan(&p, &snapshot(0.0, 100, 0, campus())).is_empty());
}

#[test]
fn a_budget_alone_buys_speed_until_it_runs_out() {
    let p = policy("[objective]\nbudget = 0.5");
    assert_eq!(
        plan(&p, &snapshot(0.0, 100, 0, campus())),
        [
            "+10 cloud.small: fastest within the budget $0.50: projected 25m30s → 5m30s, about $0.33 in all"
        ]
    );
    let p = policy("[objective]\nbudget = 0.1");
    assert_eq!(
        plan(&p, &snapshot(0.0, 100, 0, campus())),
        [
            "+1 cloud.small: fastest within the budget $0.10: projected 25m30s → 18m30s, about $0.09 in all"
        ],
        "machines that stop when the budget runs out"
    );
}

#[test]
fn a_budget_alone_buys_the_most_time_saved_per_dollar() {
    // A per-hour class cheaper per task than cloud.small, for a job of
    // minutes: its machines pay a whole hour each for the same minutes.
    let p = Policy::parse(
        "test.toml",
        &format!(
            "[objective]\nbudget = 0.5\n{}",
            CLASSES.replace(
                "price_per_hour = 1.0\nbilling = \"per-hour\"",
                "price_per_hour = 0.3\nbilling = \"per-hour\""
            )
        ),
    )
    .unwrap();
    // Cheapest per task first would buy one per-hour machine and two
    // small ones: 11m06s for about $0.43.
    assert_eq!(
        plan(&p, &snapshot(0.0, 100, 0, campus())),
        [
            "+10 cloud.small: fastest within the budget $0.50: projected 25m30s → 5m30s, about $0.33 in all"
        ]
    );
}

#[test]
fn a_budget_alone_buys_no_machine_that_costs_far_more_of_it_than_it_saves_of_the_time() {
    // After 10 cloud.small (5m30s for $0.33), one cloud.hourly would still
    // fit the $2 budget and end the job sooner (5m12s), but it adds half
    // the budget for 18 s of 5m30s left: not bought (it was, for $1.31).
    let p = policy("[objective]\nbudget = 2.0");
    assert_eq!(
        plan(&p, &snapshot(0.0, 100, 0, campus())),
        [
            "+10 cloud.small: fastest within the budget $2.00: projected 25m30s → 5m30s, about $0.33 in all"
        ]
    );
}

#[test]
fn no_more_machines_are_bought_than_there_are_tasks_queued() {
    // 8 tasks queued, 2 running, a deadline out of reach: as fast as
    // possible is one slot for each queued task; the 2 more of cloud.small's
    // max (bought before) would sit idle while the last tasks run.
    let p = policy("[objective]\ndeadline = \"1m35s\"");
    assert_eq!(
        plan(&p, &snapshot(0.0, 8, 2, campus())),
        [
            "the deadline 1m35s cannot be met: with every usable class at its max the projected finish is 1m45s",
            "+8 cloud.small: as fast as possible: projected 2m45s → 1m45s, about $0.08 in all"
        ]
    );
}

#[test]
fn machines_still_booting_count_as_slots_for_the_tasks_queued() {
    // As above, 10 s later, with 3 cloud.small booting since 0 s (ready at
    // 1m00s, before one started now would be): they take 3 of the 8
    // queued tasks, so 5 more slots are all that can help (counting the
    // machines added alone, 6 were bought: one to sit idle).
    let p = policy("[objective]\ndeadline = \"1m35s\"");
    let mut machines = campus();
    machines.extend((1..=3).map(|id| machine(id, SMALL, MachineState::Booting, 0.0, 0)));
    assert_eq!(
        plan(&p, &snapshot(10.0, 8, 2, machines)),
        [
            "cloud.small cannot help: boot 1m00s and a 30s task > time left 1m25s",
            "cloud.hourly cannot help: boot 1m00s and a 30s task > time left 1m25s",
            "the deadline 1m35s cannot be met: with every usable class at its max the projected finish is 2m04s",
            "+5 cloud.small: as fast as possible: projected 2m04s → 1m52s, about $0.08 in all"
        ]
    );
}

#[test]
fn a_slow_class_s_last_task_is_late_among_its_own_slots() {
    // Campus (2 slots) at half cloud.fast's speed: its last task's overrun
    // is that of 2 slots of 1-minute tasks, not of all the slots busy.
    let p = Policy::parse(
        "test.toml",
        "[objective]\ndeadline = \"10m\"\n\
         [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
         [[resources]]\nname = \"cloud.fast\"\nprovider = \"local\"\nprice_per_hour = 0.36\n\
         speed = 2.0\nboot_time = \"1m\"\nmax = 40\n",
    )
    .unwrap();
    let mut snap = snapshot(0.0, 400, 0, campus());
    snap.estimates = vec![Some(60.0), Some(30.0)];
    snap.spread = Some(Spread {
        mean: 60.0,
        cv: 0.5,
    });
    // Counted among all the slots busy, campus's last task overran so long
    // that 31 machines were bought, finishing at 9m11s.
    assert_eq!(
        plan(&p, &snap),
        [
            "+26 cloud.fast: projected 3h20m > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 9m19s, about $1.45 in all"
        ]
    );
}

#[test]
fn a_deadline_the_budget_cannot_pay_is_reported_and_the_budget_honoured() {
    let p = policy("[objective]\ndeadline = \"10m\"\nbudget = 0.2");
    let mut planner = Planner::new();
    assert_eq!(
        reasons(&planner.plan(&p, &snapshot(0.0, 100, 0, campus()))),
        [
            "meeting the deadline 10m00s needs about $0.25; the budget is $0.20: going as fast as the budget allows",
            "+3 cloud.small: fastest within the budget $0.20: projected 25m30s → 12m50s, about $0.17 in all",
        ]
    );
    let mut machines = campus();
    machines.extend((1..=3).map(|id| machine(id, SMALL, MachineState::Booting, 0.0, 0)));
    assert!(
        reasons(&planner.plan(&p, &snapshot(5.0, 100, 0, machines))).is_empty(),
        "reported once, and the machines booting are counted"
    );
}

#[test]
fn a_spent_budget_releases_per_second_machines() {
    let p = policy("[objective]\nbudget = 0.3");
    let mut machines = campus();
    machines.extend((1..=3).map(|id| machine(id, SMALL, MachineState::Running, 0.0, 1)));
    let mut snap = snapshot(600.0, 200, 5, machines);
    snap.spent = 0.275;
    assert_eq!(
        plan(&p, &snap),
        ["-1 cloud.small (m3): spent $0.275 of the budget $0.30: no more for another step",]
    );
}

#[test]
fn a_per_hour_machine_is_kept_through_its_paid_hour_while_there_is_work() {
    let p = policy("[objective]\ndeadline = \"3h\"");
    let hourly = |busy| {
        let mut m = campus();
        m.push(machine(7, HOURLY, MachineState::Running, 0.0, busy));
        m
    };
    assert!(
        plan(&p, &snapshot(1800.0, 10, 3, hourly(1))).is_empty(),
        "mid-hour: kept"
    );
    assert_eq!(
        plan(&p, &snapshot(3570.0, 10, 3, hourly(1))),
        ["-1 cloud.hourly (m7): its paid hour ends in 30s and it is not needed for another"]
    );
    let p = policy("[objective]\ndeadline = \"62m20s\"");
    assert!(
        plan(&p, &snapshot(3570.0, 10, 3, hourly(1))).is_empty(),
        "the deadline needs it: the next hour is bought"
    );
    assert_eq!(
        plan(&p, &snapshot(1800.0, 0, 0, hourly(0))),
        ["-1 cloud.hourly (m7): no work left"]
    );
}

#[test]
fn a_per_hour_machine_is_renewed_while_the_deadline_keeps_less_than_twice_the_margin_without_it() {
    // Without the hourly machine: 11.5 tasks of 30 s on the 2 campus
    // slots and a last task, 3772 s; the margin at 3570 s is 10 s and 5%
    // of the time left.
    let hourly = || {
        let mut m = campus();
        m.push(machine(7, HOURLY, MachineState::Running, 0.0, 1));
        m
    };
    // 63m20s: 3772 s is within the margin (21.5 s) but not twice it.
    let p = policy("[objective]\ndeadline = \"63m20s\"");
    assert!(
        plan(&p, &snapshot(3570.0, 10, 3, hourly())).is_empty(),
        "within twice the margin: another hour is bought"
    );
    // 64m00s: 3772 s keeps twice the margin (2 × 23.5 s) to spare.
    let p = policy("[objective]\ndeadline = \"64m\"");
    assert_eq!(
        plan(&p, &snapshot(3570.0, 10, 3, hourly())),
        ["-1 cloud.hourly (m7): its paid hour ends in 30s and it is not needed for another"]
    );
}

#[test]
fn a_boot_longer_than_the_time_left_does_not_count_for_the_deadline() {
    let p = policy("[objective]\ndeadline = \"10m\"");
    assert_eq!(
        plan(&p, &snapshot(560.0, 20, 0, campus())),
        [
            "cloud.small cannot help: boot 1m00s and a 30s task > time left 40s",
            "cloud.hourly cannot help: boot 1m00s and a 30s task > time left 40s",
            "the deadline 10m00s cannot be met: with every usable class at its max the projected finish is 14m50s",
            "+10 cloud.small: as fast as possible: projected 14m50s → 11m20s, about $4.12 in all",
            "+4 cloud.hourly: as fast as possible: projected 14m50s → 11m20s, about $4.12 in all",
        ]
    );
}

#[test]
fn machines_that_stop_answering_are_released_and_replaced() {
    let p = policy("[objective]\ndeadline = \"10m\"");
    let mut machines = campus();
    machines.extend((1..=3).map(|id| machine(id, SMALL, MachineState::Running, 0.0, 1)));
    let mut snap = snapshot(300.0, 40, 5, machines);
    for m in snap.machines.iter_mut().filter(|m| m.class == SMALL) {
        m.last_heard = 250.0;
    }
    assert_eq!(
        plan(&p, &snap),
        [
            "-1 cloud.small (m1): not heard from for 50s; replacing it",
            "-1 cloud.small (m2): not heard from for 50s; replacing it",
            "-1 cloud.small (m3): not heard from for 50s; replacing it",
            "+5 cloud.small: projected 16m08s > deadline 10m00s less a margin of 25s (the last tasks at their p80 duration); with them 9m15s, about $0.13 in all",
        ]
    );
}

#[test]
fn a_machine_that_does_not_boot_in_time_is_replaced() {
    let p = policy("[objective]\ndeadline = \"50m\"");
    let mut machines = campus();
    machines.push(machine(1, SMALL, MachineState::Booting, 0.0, 0));
    assert_eq!(
        plan(&p, &snapshot(200.0, 200, 2, machines)),
        [
            "-1 cloud.small (m1): did not boot within 2m30s; replacing it",
            "+1 cloud.small: projected 54m05s > deadline 50m00s less a margin of 2m30s (the last tasks at their p80 duration); with them 37m40s, about $0.21 in all",
        ]
    );
}

#[test]
fn without_an_objective_the_planner_aims_at_tasks_per_slot() {
    let p = policy("");
    let mut snap = snapshot(0.0, 20, 2, campus());
    snap.estimates = vec![None; 3];
    assert_eq!(
        plan(&p, &snap),
        ["+9 cloud.small: 22 unfinished tasks on 2 slots > 2 per slot"]
    );
}

#[test]
fn hysteresis_holds_idle_machines_through_the_cooldown() {
    let p = policy("");
    let mut planner = Planner::new();
    let mut snap = snapshot(0.0, 20, 2, campus());
    assert_eq!(reasons(&planner.plan(&p, &snap)).len(), 1);
    snap.tasks = Tasks {
        queued: 0,
        running: 2,
        done: 20,
        stages_ahead: 0,
        due: None,
    };
    snap.machines
        .extend((1..=9).map(|id| machine(id, SMALL, MachineState::Running, 0.0, 0)));
    snap.now = 20.0;
    snap.machines.iter_mut().for_each(|m| m.last_heard = 20.0);
    assert!(planner.plan(&p, &snap).is_empty(), "within the cooldown");
    snap.now = 70.0;
    snap.machines.iter_mut().for_each(|m| m.last_heard = 70.0);
    let released = reasons(&planner.plan(&p, &snap));
    assert_eq!(released.len(), 9, "{released:?}");
    assert_eq!(released[0], "-1 cloud.small (m1): idle for 1m10s");
}

#[test]
fn an_objective_waits_for_a_first_estimate_and_says_so_once() {
    let p = policy("[objective]\ndeadline = \"10m\"");
    let mut planner = Planner::new();
    let mut snap = snapshot(0.0, 100, 2, campus());
    snap.estimates = vec![None; 3];
    snap.spread = None;
    assert_eq!(
        reasons(&planner.plan(&p, &snap)),
        [
            "waiting for a first task to finish before planning for the objective (scaling.task_estimate gives a prior)"
        ]
    );
    assert!(planner.plan(&p, &snap).is_empty());
}

#[test]
fn machines_the_deadline_no_longer_needs_are_drained_costliest_first() {
    // Bought for a pessimistic estimate; at 30 s a task, 24 tasks of work
    // need 3 machines by 8m00s with a quarter of the 6m00s left to spare
    // (6m30s): the six per-second machines go, newest first, the per-hour
    // one stays in its paid hour.
    let p = policy("[objective]\ndeadline = \"8m\"");
    let mut machines = campus();
    machines.extend((1..=6).map(|id| machine(id, SMALL, MachineState::Running, 0.0, 1)));
    machines.push(machine(9, HOURLY, MachineState::Running, 0.0, 1));
    let mut planner = Planner::new();
    let snap = snapshot(120.0, 20, 8, machines);
    assert_eq!(
        reasons(&planner.plan(&p, &snap)),
        [
            "-1 cloud.small (m6): not needed for the deadline 8m00s (projected 4m00s without it)",
            "-1 cloud.small (m5): not needed for the deadline 8m00s (projected 4m13s without it)",
            "-1 cloud.small (m4): not needed for the deadline 8m00s (projected 4m30s without it)",
            "-1 cloud.small (m3): not needed for the deadline 8m00s (projected 4m54s without it)",
            "-1 cloud.small (m2): not needed for the deadline 8m00s (projected 5m30s without it)",
            "-1 cloud.small (m1): not needed for the deadline 8m00s (projected 6m30s without it)",
        ]
    );
    // Draining: no longer counted, and nothing is bought back.
    let mut later = snap.clone();
    later.now = 130.0;
    for m in later.machines.iter_mut() {
        m.last_heard = 130.0;
        if m.class == SMALL {
            m.state = MachineState::Draining;
        }
    }
    assert!(planner.plan(&p, &later).is_empty());
    // Within the spare quarter: kept. Without m1 the campus finishes at
    // 8m30s: inside the deadline 9m00s, but not 1m45s (a quarter of the
    // 7m00s left) inside it.
    let p = policy("[objective]\ndeadline = \"9m\"");
    let mut machines = campus();
    machines.push(machine(1, SMALL, MachineState::Running, 0.0, 1));
    assert!(plan(&p, &snapshot(120.0, 20, 8, machines.clone())).is_empty());
    // Nor within the cooldown of a scale-out.
    let p = policy("[objective]\ndeadline = \"20m\"");
    let mut planner = Planner::new();
    planner.last_out = Some(100.0);
    assert!(
        planner
            .plan(&p, &snapshot(120.0, 20, 8, machines.clone()))
            .is_empty()
    );
    assert_eq!(
        reasons(&planner.plan(&p, &snapshot(170.0, 20, 8, machines))),
        ["-1 cloud.small (m1): not needed for the deadline 20m00s (projected 9m20s without it)"]
    );
}

#[test]
fn each_stage_ahead_adds_a_tail_to_the_projected_finish() {
    // As the tight deadline above, with two more stages to follow: each
    // starts when the last task of the one before ends, 30 s more each.
    // Five machines would finish at 9m21s, not 40 s (the margin) before
    // the deadline; six: 4 tasks in the first minute on campus, 96 on 8
    // machines in 6m00s, three tails of 30 s.
    let p = policy("[objective]\ndeadline = \"10m\"");
    let mut snap = snapshot(0.0, 100, 0, campus());
    snap.tasks.stages_ahead = 2;
    assert_eq!(
        plan(&p, &snap),
        [
            "+6 cloud.small: projected 26m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m30s, about $0.31 in all"
        ]
    );
}

/// A running stage of `queued` tasks due at `at`.
fn due(at: Secs, queued: u64, running: u64) -> Option<Due> {
    Some(Due {
        at,
        queued,
        running,
    })
}

#[test]
fn a_stage_due_before_the_job_gets_machines_for_its_own_tasks() {
    // 200 tasks of 30 s: the campus alone finishes them in 50m00s, inside
    // the job's 2h. The running stage's 100 of them are due at 10m00s:
    // the machines of the tight deadline above, for them.
    let p = policy("[objective]\ndeadline = \"2h\"");
    let mut snap = snapshot(0.0, 200, 0, campus());
    assert!(plan(&p, &snap).is_empty());
    snap.tasks.due = due(600.0, 100, 0);
    assert_eq!(
        plan(&p, &snap),
        [
            "+5 cloud.small: the running stage's tasks: projected 25m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m21s, about $0.25 in all"
        ]
    );
    // With no objective of the job's own, the stage's alone.
    let none = policy("");
    assert_eq!(
        plan(&none, &snap),
        [
            "+5 cloud.small: the running stage's tasks: projected 25m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m21s, about $0.25 in all"
        ]
    );
    // A job's deadline sooner than the stage's is the one planned for.
    let sooner = policy("[objective]\ndeadline = \"8m\"");
    snap.tasks.due = due(600.0, 50, 0);
    let job = plan(&sooner, &snapshot(0.0, 200, 0, campus()));
    assert_eq!(plan(&sooner, &snap), job);
}

#[test]
fn a_stage_due_out_of_reach_is_reported_as_the_stage_s_not_the_job_s() {
    // 100 tasks due at 1m30s: out of reach; the job's 2h needs nothing
    // paid. As for a job's deadline out of reach: said (for the stage),
    // and as fast as possible.
    let p = policy("[objective]\ndeadline = \"2h\"");
    let mut snap = snapshot(0.0, 100, 0, campus());
    snap.tasks.due = due(90.0, 100, 0);
    let mut planner = Planner::new();
    assert_eq!(
        reasons(&planner.plan(&p, &snap)),
        [
            "the running stage's tasks: the deadline 1m30s cannot be met: with every usable class at its max the projected finish is 4m30s",
            "+10 cloud.small: the running stage's tasks: as fast as possible: projected 25m30s → 4m30s, about $4.27 in all",
            "+4 cloud.hourly: the running stage's tasks: as fast as possible: projected 25m30s → 4m30s, about $4.27 in all"
        ]
    );
    // A job's deadline sooner than the stage's: the job's plan alone, its
    // own report (the stage's, already made, not in the way).
    let tight = policy("[objective]\ndeadline = \"1m20s\"");
    assert_eq!(
        reasons(&planner.plan(&tight, &snap)),
        [
            "cloud.small cannot help: boot 1m00s and a 30s task > time left 1m20s",
            "cloud.hourly cannot help: boot 1m00s and a 30s task > time left 1m20s",
            "the deadline 1m20s cannot be met: with every usable class at its max the projected finish is 25m30s",
            "+10 cloud.small: as fast as possible: projected 25m30s → 4m30s, about $4.27 in all",
            "+4 cloud.hourly: as fast as possible: projected 25m30s → 4m30s, about $4.27 in all"
        ]
    );
}

#[test]
fn a_machine_a_stage_due_soon_needs_is_not_released() {
    // As above: at 2m50s m1 is not needed for the job's 20m00s (projected
    // 9m20s without it). The running stage holds all 28 tasks and is due
    // at 8m00s: kept for it (nothing more bought); due at 20m00s, released.
    let p = policy("[objective]\ndeadline = \"20m\"");
    let mut machines = campus();
    machines.push(machine(1, SMALL, MachineState::Running, 0.0, 1));
    let mut snap = snapshot(170.0, 20, 8, machines);
    snap.tasks.due = due(480.0, 20, 8);
    assert_eq!(plan(&p, &snap), Vec::<String>::new());
    snap.tasks.due = due(1200.0, 20, 8);
    assert_eq!(
        plan(&p, &snap),
        ["-1 cloud.small (m1): not needed for the deadline 20m00s (projected 9m20s without it)"]
    );
}

#[test]
fn max_counts_the_machines_still_draining() {
    // Ten cloud.small draining, the class's max: none of it may start;
    // the per-hour class goes as fast as it can.
    let p = policy("[objective]\ndeadline = \"10m\"");
    let mut machines = campus();
    machines.extend((1..=10).map(|id| machine(id, SMALL, MachineState::Draining, 0.0, 1)));
    assert_eq!(
        plan(&p, &snapshot(60.0, 100, 10, machines)),
        [
            "the deadline 10m00s cannot be met: with every usable class at its max the projected finish is 10m55s",
            "+4 cloud.hourly: as fast as possible: projected 27m45s → 10m55s, about $4.00 in all",
        ]
    );
}

#[test]
fn a_machine_that_would_overspend_before_the_next_step_is_stopped_with_its_task() {
    // $0.36/h = $0.0001/s; two steps (10 s) of three machines cost $0.003:
    // at $0.298 spent of $0.30 one must stop now, a draining one first; the
    // others drain (no reserve for their last tasks).
    let p = policy("[objective]\nbudget = 0.3");
    let mut machines = campus();
    machines.extend((1..=2).map(|id| machine(id, SMALL, MachineState::Running, 0.0, 1)));
    machines.push(machine(3, SMALL, MachineState::Draining, 0.0, 1));
    let mut snap = snapshot(600.0, 200, 5, machines);
    snap.spent = 0.298;
    assert_eq!(
        plan(&p, &snap),
        [
            "-1 cloud.small (m3), its tasks stopped and queued again: spent $0.298 of the budget $0.30: it would overspend before the next step",
            "-1 cloud.small (m2): spent $0.298 of the budget $0.30: no more for another step",
            "-1 cloud.small (m1): spent $0.298 of the budget $0.30: no more for another step",
        ]
    );
}

#[test]
fn a_per_hour_machine_is_stopped_with_its_task_before_its_next_hour() {
    let p = policy("[objective]\ndeadline = \"3h\"");
    let mut machines = campus();
    machines.push(machine(7, HOURLY, MachineState::Draining, 0.0, 1));
    assert!(
        plan(&p, &snapshot(3570.0, 10, 3, machines.clone())).is_empty(),
        "30 s before its hour: drains"
    );
    assert_eq!(
        plan(&p, &snapshot(3592.0, 10, 3, machines)),
        [
            "-1 cloud.hourly (m7), its tasks stopped and queued again: its paid hour ends in 8s: not paying another for its last tasks"
        ]
    );
    // Running and needed, but the budget cannot pay another hour.
    let p = policy("[objective]\ndeadline = \"62m20s\"\nbudget = 1.5");
    let mut machines = campus();
    machines.push(machine(7, HOURLY, MachineState::Running, 0.0, 1));
    let mut snap = snapshot(3592.0, 10, 3, machines);
    snap.spent = 1.0;
    assert_eq!(
        plan(&p, &snap),
        [
            "-1 cloud.hourly (m7), its tasks stopped and queued again: its paid hour ends in 8s and the budget $1.50 cannot pay another",
            "meeting the deadline 1h02m needs about $2.02; the budget is $1.50: going as fast as the budget allows",
        ]
    );
}

#[test]
fn no_machine_starts_that_the_budget_cannot_pay() {
    // A per-hour machine costs its first hour up front: $1.00 of a $0.80 budget.
    let p = Policy::parse(
        "p.toml",
        "[objective]\nbudget = 0.8\n[[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
         [[resources]]\nname = \"cloud.hourly\"\nprovider = \"local\"\nprice_per_hour = 1.0\n\
         billing = \"per-hour\"\nboot_time = \"1m\"\nmax = 4\n",
    )
    .unwrap();
    let mut snap = snapshot(0.0, 100, 0, campus());
    snap.estimates = vec![Some(30.0); 2];
    assert!(plan(&p, &snap).is_empty(), "{:?}", plan(&p, &snap));
}

#[test]
fn before_any_task_ends_the_ages_of_the_running_ones_are_planned_on() {
    // Two tasks have run for 2 minutes, none has ended: a task takes at
    // least that (the censored estimate), so 100 of them need more than
    // the two campus slots before 30m.
    let p = policy("[objective]\ndeadline = \"30m\"");
    let mut snap = snapshot(120.0, 98, 2, campus());
    snap.estimates = vec![None; 3];
    snap.spread = Some(Spread {
        mean: 120.0,
        cv: 0.5,
    });
    assert_eq!(
        plan(&p, &snap),
        [
            "+7 cloud.small: projected 1h42m > deadline 30m00s less a margin of 1m34s (the last tasks at their p80 duration); with them 27m28s, about $1.07 in all"
        ]
    );
}

#[test]
fn paid_classes_alone_and_no_estimate_start_one_machine_of_the_cheapest_to_learn() {
    let p = policy("[objective]\ndeadline = \"10m\"");
    let mut planner = Planner::new();
    let mut snap = snapshot(0.0, 100, 0, Vec::new());
    snap.estimates = vec![None; 3];
    snap.spread = None;
    assert_eq!(
        reasons(&planner.plan(&p, &snap)),
        [
            "+1 cloud.small: no task duration known yet (no private machine, no scaling.task_estimate): one machine of the cheapest class to learn it, then the plan"
        ]
    );
    snap.machines
        .push(machine(1, SMALL, MachineState::Booting, 0.0, 0));
    snap.now = 5.0;
    assert_eq!(
        reasons(&planner.plan(&p, &snap)),
        [
            "waiting for a first task to finish before planning for the objective (scaling.task_estimate gives a prior)"
        ]
    );
}

#[test]
fn a_budget_that_cannot_finish_the_job_says_what_it_would_need() {
    // Paid machines only: 100 tasks of 30 s on one machine at $0.36/h
    // ($0.0001/s): 3,000 s of work, a 60 s boot and the last task, about
    // $0.31; $0.10 cannot finish them.
    let p = Policy::parse(
        "p.toml",
        "[objective]\nbudget = 0.1\n[[resources]]\nname = \"cloud.small\"\nprovider = \"local\"\n\
         price_per_hour = 0.36\nboot_time = \"1m\"\nmax = 10\n",
    )
    .unwrap();
    let mut snap = snapshot(0.0, 100, 0, Vec::new());
    snap.estimates = vec![Some(30.0)];
    let decisions = plan(&p, &snap);
    assert_eq!(
        decisions[0],
        "the budget $0.10 cannot finish the job: about $0.31 is needed"
    );
}

#[test]
fn a_deadline_out_of_reach_at_p80_is_planned_at_even_odds_not_with_everything() {
    // Tasks of 30 s on average with cv 1: every class at its max does not
    // finish before 6m at p80 (6m20s), but a smaller fleet does at the median.
    let p = policy("[objective]\ndeadline = \"6m\"");
    let mut snap = snapshot(0.0, 100, 0, campus());
    snap.spread = Some(Spread {
        mean: 30.0,
        cv: 1.0,
    });
    assert_eq!(
        plan(&p, &snap),
        [
            "+10 cloud.small: projected 25m39s > deadline 6m00s (the last tasks at their p50 duration); with them 5m49s, about $2.35 in all",
            "+2 cloud.hourly: projected 25m39s > deadline 6m00s (the last tasks at their p50 duration); with them 5m49s, about $2.35 in all"
        ],
        "two of the four hourly machines, not all"
    );
}

#[test]
fn the_cheapest_fleet_in_all_wins_over_the_cheapest_per_task() {
    // `slow` costs less per task but boots for 10 minutes, billed: for a
    // 20-minute deadline, fewer `quick` machines cost less in all.
    let p = Policy::parse(
        "test.toml",
        "[objective]\ndeadline = \"20m\"\n\
         [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
         [[resources]]\nname = \"slow\"\nprovider = \"local\"\nprice_per_hour = 0.36\nboot_time = \"10m\"\nmax = 20\n\
         [[resources]]\nname = \"quick\"\nprovider = \"local\"\nprice_per_hour = 0.40\nmax = 20\n",
    )
    .unwrap();
    assert_eq!(
        plan(&p, &snapshot(0.0, 200, 0, campus())),
        [
            "+4 quick: projected 50m30s > deadline 20m00s less a margin of 1m10s (the last tasks at their p80 duration); with them 17m10s, about $0.46 in all"
        ]
    );
}

#[test]
fn more_per_hour_machines_for_fewer_paid_hours_when_that_costs_less() {
    // 1,000 tasks of 30 s and a 90-minute deadline: four hourly machines
    // meet it (1h25m) but run into a second paid hour ($8); seven finish
    // within the first ($7).
    let p = Policy::parse(
        "test.toml",
        "[objective]\ndeadline = \"90m\"\n\
         [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
         [[resources]]\nname = \"hourly\"\nprovider = \"local\"\nprice_per_hour = 1.0\nbilling = \"per-hour\"\nboot_time = \"1m\"\nmax = 20\n",
    )
    .unwrap();
    let mut snap = snapshot(0.0, 1000, 0, campus());
    snap.estimates.truncate(2);
    assert_eq!(
        plan(&p, &snap),
        [
            "+7 hourly: projected 4h10m > deadline 1h30m less a margin of 4m40s (the last tasks at their p80 duration); with them 56m50s, about $7.00 in all"
        ]
    );
}

/// Campus, `cloud.small` ($0.36/h) and a preemptible `spot` class at a
/// third of the price, taken back after `life` on average.
fn with_spot(life: &str) -> Policy {
    Policy::parse(
        "test.toml",
        &format!(
            "[objective]\ndeadline = \"10m\"\n\
             [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
             [[resources]]\nname = \"cloud.small\"\nprovider = \"local\"\nprice_per_hour = 0.36\nboot_time = \"1m\"\nmax = 10\n\
             [[resources]]\nname = \"spot\"\nprovider = \"local\"\nprice_per_hour = 0.12\nboot_time = \"1m\"\nmax = 10\n\
             preemptible = true\nmean_time_to_preemption = \"{life}\"\n"
        ),
    )
    .unwrap()
}

#[test]
fn preemptible_machines_are_preferred_where_the_work_they_lose_leaves_them_cheaper() {
    // Taken back after 30 minutes on average, a spot machine loses a
    // quarter of a 30 s task an hour: it does 96% of the work of a
    // `cloud.small` at a third of the price, so the deadline buys spot
    // machines, as many as it would of `cloud.small` (5, 8m21s), finishing
    // a little later for the work they lose.
    let snap = snapshot(0.0, 100, 0, campus());
    assert_eq!(
        plan(&with_spot("30m"), &snap),
        [
            "+5 spot: projected 25m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m34s, about $0.09 in all"
        ]
    );
    // Taken back every 40 s: a quarter of its time does work kept, which
    // costs more than `cloud.small`'s.
    assert_eq!(
        plan(&with_spot("40s"), &snap),
        [
            "+5 cloud.small: projected 25m30s > deadline 10m00s less a margin of 40s (the last tasks at their p80 duration); with them 8m21s, about $0.25 in all"
        ]
    );
}

/// `snap` after some tasks have ended.
fn ended(mut snap: Snapshot) -> Snapshot {
    snap.tasks.done = 10;
    snap
}

/// Two campus workers and `quick`: $0.40/h per second, no boot.
fn quick_policy(objective: &str) -> Policy {
    Policy::parse(
        "test.toml",
        &format!(
            "[objective]\n{objective}\n\
             [[resources]]\nname = \"campus\"\nprovider = \"static\"\ncount = 2\n\
             [[resources]]\nname = \"quick\"\nprovider = \"local\"\nprice_per_hour = 0.40\nmax = 20\n"
        ),
    )
    .unwrap()
}

#[test]
fn a_deadline_alone_drains_the_queue_by_half_of_it_when_that_costs_little_more() {
    // The deadline alone: 4 quick, done at 17m10s for $0.46. Draining the
    // queue by 10m00s takes 8, $0.56: 22% more, within 30%.
    let p = quick_policy("deadline = \"20m\"");
    assert_eq!(
        plan(&p, &ended(snapshot(0.0, 200, 0, campus()))),
        [
            "+8 quick: projected 50m30s > deadline 20m00s less a margin of 1m10s (the last tasks at their p80 duration); the queue drained by 10m00s (50% of the deadline, for at most 30% more): a task many times the mean drawn late still ends in time; with them 10m30s, about $0.56 in all"
        ]
    );
    // Before a task has ended, the duration is a guess: the deadline alone.
    assert_eq!(
        plan(&p, &snapshot(0.0, 200, 0, campus())),
        [
            "+4 quick: projected 50m30s > deadline 20m00s less a margin of 1m10s (the last tasks at their p80 duration); with them 17m10s, about $0.46 in all"
        ]
    );
    // With a budget too, the money is kept for the deadline.
    let p = quick_policy("deadline = \"20m\"\nbudget = 5.0");
    assert_eq!(
        plan(&p, &ended(snapshot(0.0, 200, 0, campus()))),
        [
            "+4 quick: projected 50m30s > deadline 20m00s less a margin of 1m10s (the last tasks at their p80 duration); with them 17m10s, about $0.46 in all"
        ]
    );
    // By 30m the deadline alone needs 2 quick ($0.34), and draining by
    // 15m00s would move more of the campus's free work onto paid machines
    // than 30% more pays for.
    let p = quick_policy("deadline = \"30m\"");
    assert_eq!(
        plan(&p, &ended(snapshot(0.0, 200, 0, campus()))),
        [
            "+2 quick: projected 50m30s > deadline 30m00s less a margin of 1m40s (the last tasks at their p80 duration); with them 25m30s, about $0.34 in all"
        ]
    );
    // A deadline the machines running meet, but a drain past half of it:
    // 4 more quick.
    let p = quick_policy("deadline = \"20m\"");
    let mut machines = campus();
    machines.extend((1..=4).map(|id| machine(id, 1, MachineState::Running, 0.0, 1)));
    assert_eq!(
        plan(&p, &ended(snapshot(120.0, 150, 10, machines))),
        [
            "+4 quick: projected 15m25s meets the deadline 20m00s, but the queue drained by 10m00s (50% of the deadline, for at most 30% more): a task many times the mean drawn late still ends in time; with them 10m15s, about $0.44 in all"
        ]
    );
}

#[test]
fn machines_an_early_drain_needs_are_kept_until_it_is_past() {
    // 8 quick at 2m00s: the deadline alone would let 4 go (as it does
    // with a budget); the drain by 10m00s keeps them.
    let mut machines = campus();
    machines.extend((1..=8).map(|id| machine(id, 1, MachineState::Running, 0.0, 1)));
    let p = quick_policy("deadline = \"20m\"");
    assert!(plan(&p, &ended(snapshot(120.0, 150, 10, machines.clone()))).is_empty());
    let budgeted = quick_policy("deadline = \"20m\"\nbudget = 5.0");
    assert_eq!(
        plan(
            &budgeted,
            &ended(snapshot(120.0, 150, 10, machines.clone()))
        ),
        [
            "-1 quick (m8): not needed for the deadline 20m00s (projected 11m07s without it)",
            "-1 quick (m7): not needed for the deadline 20m00s (projected 12m11s without it)",
            "-1 quick (m6): not needed for the deadline 20m00s (projected 13m34s without it)",
            "-1 quick (m5): not needed for the deadline 20m00s (projected 15m25s without it)",
        ]
    );
    // Past 10m00s the deadline alone decides.
    let released = plan(&p, &ended(snapshot(600.0, 10, 10, machines)));
    assert_eq!(
        released[0],
        "-1 quick (m8): not needed for the deadline 20m00s (projected 11m20s without it)"
    );
}
