//! Runs a checked workflow: each stage is released when all its parents have
//! succeeded, independent stages run at once (one thread each), and a failed
//! stage's descendants are skipped. What a stage *does* is the business of
//! the [`StageRunner`]: this module only walks the DAG.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use petgraph::Direction;
use serde::Serialize;

use super::spec::{Stage, Workflow};

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
    let graph = &workflow.graph;
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: Vec<_> = graph
        .node_indices()
        .filter(|n| waiting[n.index()] == 0)
        .collect();
    let mut reports: Vec<StageReport> = Vec::new();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            for node in ready.drain(..) {
                let stage = &workflow.stages[graph[node]];
                let released = start.elapsed();
                tracing::info!(stage = %stage.name, "released");
                let tx = tx.clone();
                scope.spawn(move || {
                    let began = Instant::now();
                    let result = runner.run(stage);
                    let _ = tx.send((node, released, began.elapsed(), result));
                });
                running += 1;
            }
            if running == 0 {
                break;
            }
            let (node, released, elapsed, result) = rx.recv().expect("a sender is held above");
            running -= 1;
            let stage = &workflow.stages[graph[node]];
            let status = match result {
                Ok(()) => {
                    for child in graph.neighbors_directed(node, Direction::Outgoing) {
                        waiting[child.index()] -= 1;
                        if waiting[child.index()] == 0 {
                            ready.push(child);
                        }
                    }
                    Status::Succeeded
                }
                Err(e) => Status::Failed(e),
            };
            tracing::info!(stage = %stage.name, ?status, "finished");
            reports.push(report(stage, status, Some(released), Some(elapsed)));
        }
    });
    for stage in &workflow.stages {
        if !reports.iter().any(|r| r.name == stage.name) {
            reports.push(report(stage, Status::Skipped, None, None));
        }
    }
    Report {
        stages: reports,
        makespan_s: start.elapsed().as_secs_f64(),
    }
}

fn report(
    stage: &Stage,
    status: Status,
    released: Option<Duration>,
    elapsed: Option<Duration>,
) -> StageReport {
    StageReport {
        name: stage.name.clone(),
        deadline_met: stage
            .deadline
            .zip(elapsed)
            .map(|(deadline, elapsed)| elapsed <= deadline),
        status,
        released_s: released.map(|d| d.as_secs_f64()),
        elapsed_s: elapsed.map(|d| d.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

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
