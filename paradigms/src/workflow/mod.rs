//! Workflows: a DAG (petgraph) of stages read from a TOML file, each stage a
//! bag of shell commands or a streaming MapReduce, released when all its
//! parents have succeeded.
//!
//! Who talks to whom: [`spec`] reads and checks the file (every error before
//! anything runs); [`schedule`] walks the DAG and hands each released stage
//! to a [`StageRunner`]; [`local`] is the runner `halley workflow` uses.

pub mod local;
pub mod schedule;
pub mod spec;

pub use local::LocalRunner;
pub use schedule::{Report, StageReport, StageRunner, Status, run};
pub use spec::{MapReduceStage, SpecError, Stage, Work, Workflow};
