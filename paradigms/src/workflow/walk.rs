//! The walk of a workflow's DAG as a state machine, with no threads and no
//! clock: which stages may start now, given which have ended and how.
//!
//! [`schedule::run`](super::schedule::run) drives it with a thread per
//! stage; `halley workflow` drives it from its own loop, where a bag stage's
//! commands are tasks of one master-worker job. A stage is released when
//! all its parents have succeeded; a failed stage's descendants are
//! skipped (reported, never released).

use std::time::Duration;

use petgraph::Direction;
use petgraph::algo::toposort;
use petgraph::graph::NodeIndex;
use petgraph::visit::Dfs;

use super::schedule::{Report, StageReport, Status};
use super::spec::{Stage, Workflow};

/// Where a walk stands.
#[derive(Debug)]
pub struct Walk<'a> {
    workflow: &'a Workflow,
    /// Parents not yet succeeded, per stage.
    waiting: Vec<usize>,
    /// Stages below a failed one: they will never run.
    doomed: Vec<bool>,
    ready: Vec<usize>,
    running: usize,
    reports: Vec<StageReport>,
}

impl<'a> Walk<'a> {
    /// A walk whose ready stages are those without parents.
    pub fn new(workflow: &'a Workflow) -> Self {
        let graph = &workflow.graph;
        let waiting: Vec<usize> = graph
            .node_indices()
            .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let ready = graph
            .node_indices()
            .filter(|n| waiting[n.index()] == 0)
            .map(|n| graph[n])
            .collect();
        Walk {
            workflow,
            doomed: vec![false; waiting.len()],
            waiting,
            ready,
            running: 0,
            reports: Vec::new(),
        }
    }

    /// The stages released since last asked (indices into
    /// `workflow.stages`); they count as running until [`Walk::ended`].
    pub fn released(&mut self) -> Vec<usize> {
        self.running += self.ready.len();
        std::mem::take(&mut self.ready)
    }

    /// Stage `stage` ended with `result`, `elapsed` after its release (which
    /// was `released` after the workflow's start); a success releases the
    /// children whose parents have all succeeded.
    pub fn ended(
        &mut self,
        stage: usize,
        result: Result<(), String>,
        released: Duration,
        elapsed: Duration,
    ) {
        self.running -= 1;
        let spec = &self.workflow.stages[stage];
        let status = match result {
            Ok(()) => {
                let graph = &self.workflow.graph;
                for child in graph.neighbors_directed(node(stage), Direction::Outgoing) {
                    self.waiting[child.index()] -= 1;
                    if self.waiting[child.index()] == 0 {
                        self.ready.push(graph[child]);
                    }
                }
                Status::Succeeded
            }
            Err(e) => {
                let graph = &self.workflow.graph;
                let mut below = Dfs::new(graph, node(stage));
                while let Some(n) = below.next(graph) {
                    if n != node(stage) {
                        self.doomed[n.index()] = true;
                    }
                }
                Status::Failed(e)
            }
        };
        tracing::info!(stage = %spec.name, ?status, "finished");
        self.reports
            .push(report(spec, status, Some(released), Some(elapsed)));
    }

    /// Nothing runs and nothing more can be released.
    pub fn is_over(&self) -> bool {
        self.running == 0 && self.ready.is_empty()
    }

    /// The stages that will be released later: some parent has not
    /// succeeded yet, and none failed.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.workflow.stages.len())
            .filter(|&i| self.waiting[node(i).index()] > 0 && !self.doomed[node(i).index()])
    }

    /// The most stages on one chain of [`Walk::pending`] stages: how many
    /// times at least the workflow will wait for a stage's last task before
    /// the next starts (0 when none is pending).
    pub fn stages_ahead(&self) -> u32 {
        let graph = &self.workflow.graph;
        let order = toposort(graph, None).expect("a checked workflow has no cycle");
        let mut depth = vec![0u32; graph.node_count()];
        for n in order {
            let i = n.index();
            if self.waiting[i] == 0 || self.doomed[i] {
                continue;
            }
            let parents = graph.neighbors_directed(n, Direction::Incoming);
            depth[i] = 1 + parents.map(|p| depth[p.index()]).max().unwrap_or(0);
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// The report: the stages in the order they ended, then those skipped.
    pub fn report(mut self, makespan: Duration) -> Report {
        for stage in &self.workflow.stages {
            if !self.reports.iter().any(|r| r.name == stage.name) {
                self.reports
                    .push(report(stage, Status::Skipped, None, None));
            }
        }
        Report {
            stages: self.reports,
            makespan_s: makespan.as_secs_f64(),
        }
    }
}

/// The node of stage `i`: the spec adds one node per stage, in order.
fn node(stage: usize) -> NodeIndex {
    NodeIndex::new(stage)
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

    use super::*;

    /// a → {b, c} → d, and e alone; c has a 1 s deadline.
    fn workflow() -> Workflow {
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
            deadline = "1s"
            [stages.d]
            after = ["b", "c"]
            commands = ["x"]
            [stages.e]
            commands = ["x"]
            "#,
        )
        .unwrap()
    }

    fn names(wf: &Workflow, stages: &[usize]) -> Vec<String> {
        let mut names: Vec<String> = stages.iter().map(|&i| wf.stages[i].name.clone()).collect();
        names.sort();
        names
    }

    fn index(wf: &Workflow, name: &str) -> usize {
        wf.stages.iter().position(|s| s.name == name).unwrap()
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn children_are_released_when_all_their_parents_succeeded() {
        let wf = workflow();
        let mut walk = Walk::new(&wf);
        assert_eq!(walk.stages_ahead(), 2, "{{b, c}} then d");
        assert_eq!(names(&wf, &walk.released()), ["a", "e"]);
        assert!(walk.released().is_empty(), "released once");
        assert_eq!(
            names(&wf, &walk.pending().collect::<Vec<_>>()),
            ["b", "c", "d"]
        );
        walk.ended(index(&wf, "a"), Ok(()), Duration::ZERO, S);
        assert_eq!(names(&wf, &walk.released()), ["b", "c"]);
        assert_eq!(walk.stages_ahead(), 1, "d");
        walk.ended(index(&wf, "b"), Ok(()), S, S);
        assert!(walk.released().is_empty(), "d waits for c");
        walk.ended(index(&wf, "c"), Ok(()), S, 2 * S);
        assert_eq!(names(&wf, &walk.released()), ["d"]);
        assert_eq!(walk.stages_ahead(), 0);
        walk.ended(index(&wf, "d"), Ok(()), 3 * S, S);
        assert!(!walk.is_over(), "e still runs");
        walk.ended(index(&wf, "e"), Ok(()), Duration::ZERO, 5 * S);
        assert!(walk.is_over());
        let report = walk.report(5 * S);
        let order: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
        let c = &report.stages[2];
        assert_eq!((c.released_s, c.elapsed_s), (Some(1.0), Some(2.0)));
        assert_eq!(c.deadline_met, Some(false));
        assert_eq!(report.makespan_s, 5.0);
        assert!(!report.succeeded(), "c missed its deadline");
    }

    #[test]
    fn a_failure_skips_the_descendants_only() {
        let wf = workflow();
        let mut walk = Walk::new(&wf);
        walk.released();
        walk.ended(index(&wf, "a"), Ok(()), Duration::ZERO, S);
        walk.released();
        walk.ended(index(&wf, "b"), Err("it broke".into()), S, S);
        walk.ended(index(&wf, "c"), Ok(()), S, S / 2);
        assert!(walk.released().is_empty(), "d has a failed parent");
        walk.ended(index(&wf, "e"), Ok(()), Duration::ZERO, S);
        assert!(walk.is_over());
        assert!(walk.pending().next().is_none(), "d will never run");
        assert_eq!(walk.stages_ahead(), 0);
        let report = walk.report(2 * S);
        let status = |name: &str| {
            let s = report.stages.iter().find(|s| s.name == name).unwrap();
            (s.status.clone(), s.released_s)
        };
        assert_eq!(status("b"), (Status::Failed("it broke".into()), Some(1.0)));
        assert_eq!(status("c"), (Status::Succeeded, Some(1.0)));
        assert_eq!(status("d"), (Status::Skipped, None));
    }
}
