//! Runs a checked workflow: each stage is released when all its parents have
//! succeeded, independent stages run at once (one thread each), and a failed
//! stage's descendants are skipped. What a stage *does* is the business of
//! the [`StageRunner`]; which stage may run is the [`Walk`]'s: this module
//! only gives each released stage a thread.

use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;

use super::spec::{Stage, Workflow};
use super::walk::Walk;

/// Runs one stage's work; returns an error message when it failed.
pub trait StageRunner: Sync {
    fn run(&self, stage: &Stage) -> Result<(), String>;
}

/// How a stage ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "error")]
pub enum Status {
    Succeeded,
    Failed(String),
    /// Not run because a stage it depends on failed.
    Skipped,
}

/// One stage's outcome, in release order.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    #[serde(flatten)]
    pub status: Status,
    /// Seconds from the workflow's start to the stage's release (not run: null).
    pub released_s: Option<f64>,
    pub elapsed_s: Option<f64>,
    /// Null without a deadline.
    pub deadline_met: Option<bool>,
}

/// The workflow's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub stages: Vec<StageReport>,
    pub makespan_s: f64,
}

impl Report {
    /// Every stage succeeded within its deadline.
    pub fn succeeded(&self) -> bool {
        self.stages
            .iter()
            .all(|s| s.status == Status::Succeeded && s.deadline_met != Some(false))
    }
}

/// Runs every stage of `workflow` with `runner`, parents before children.
pub fn run(workflow: &Workflow, runner: &impl StageRunner) -> Report {
    let start = Instant::now();
    let mut walk = Walk::new(workflow);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        loop {
            for index in walk.released() {
                let stage = &workflow.stages[index];
                let released = start.elapsed();
                tracing::info!(stage = %stage.name, "released");
                let tx = tx.clone();
                scope.spawn(move || {
                    let began = Instant::now();
                    let result = runner.run(stage);
                    let _ = tx.send((index, released, began.elapsed(), result));
                });
            }
            if walk.is_over() {
                break;
            }
            let (index, released, elapsed, result) = rx.recv().expect("a sender is held above");
            walk.ended(index, result, released, elapsed);
        }
    });
    walk.report(start.elapsed())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Records which stages had started and finished when each one started.
    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<String>>,
        fail: &'static str,
    }

    impl StageRunner for Recorder {
        fn run(&self, stage: &Stage) -> Result<(), String> {
            self.events
                .lock()
                .unwrap()
                .push(format!("start {}", stage.name));
            std::thread::sleep(Duration::from_millis(30));
            self.events
                .lock()
                .unwrap()
                .push(format!("end {}", stage.name));
            if stage.name == self.fail {
                return Err("it broke".into());
            }
            Ok(())
        }
    }

    fn diamond() -> Workflow {
        Workflow::parse(
            Path::new("wf.toml"),
            r#"
            [stages.a]
            commands = ["x"]
            [stages.b]
            after = ["a"]
            commands = ["x"]
            [stages.c]
            after = ["a"]
            commands = ["x"]
            deadline = "1ms"
            [stages.d]
            after = ["b", "c"]
            commands = ["x"]
            "#,
        )
        .unwrap()
    }

    fn position(events: &[String], event: &str) -> usize {
        events.iter().position(|e| e == event).unwrap()
    }

    #[test]
    fn parents_finish_before_children_start_and_siblings_overlap() {
        let runner = Recorder::default();
        let report = run(&diamond(), &runner);
        let events = runner.events.into_inner().unwrap();
        assert!(position(&events, "end a") < position(&events, "start b"));
        assert!(position(&events, "end a") < position(&events, "start c"));
        assert!(position(&events, "end b") < position(&events, "start d"));
        assert!(position(&events, "end c") < position(&events, "start d"));
        // b and c are independent: both start before either ends.
        assert!(
            position(&events, "start b").max(position(&events, "start c"))
                < position(&events, "end b").min(position(&events, "end c"))
        );
        assert_eq!(report.stages.len(), 4);
        let c = report.stages.iter().find(|s| s.name == "c").unwrap();
        assert_eq!(c.deadline_met, Some(false));
        assert!(!report.succeeded(), "c missed its deadline");
    }

    #[test]
    fn a_failed_stage_skips_its_descendants_only() {
        let runner = Recorder {
            fail: "b",
            ..Recorder::default()
        };
        let report = run(&diamond(), &runner);
        let status = |name: &str| {
            report
                .stages
                .iter()
                .find(|s| s.name == name)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(status("a"), Status::Succeeded);
        assert_eq!(status("b"), Status::Failed("it broke".into()));
        assert_eq!(status("c"), Status::Succeeded);
        assert_eq!(status("d"), Status::Skipped);
        assert!(!report.succeeded());
    }
}
