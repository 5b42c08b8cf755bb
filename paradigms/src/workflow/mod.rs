//! Workflows: a DAG (petgraph) of stages read from a TOML file, each stage a
//! bag of shell commands or a streaming MapReduce, released when all its
//! parents have succeeded.
//!
//! Who talks to whom: [`spec`] reads and checks the file (every error before
//! anything runs); [`walk`] says which stages are released as others end
//! (pure); [`schedule`] gives each released stage a thread and a
//! [`StageRunner`]; [`local`] runs stages on this machine (`halley workflow`
//! uses its bag commands' scripts, and runs every task on managed worker
//! processes).

pub mod local;
pub mod schedule;
pub mod spec;
pub mod walk;

pub use local::LocalRunner;
pub use schedule::{Report, StageReport, StageRunner, Status, run};
pub use spec::{MapReduceStage, SpecError, Stage, Work, Workflow};
pub use walk::Walk;
