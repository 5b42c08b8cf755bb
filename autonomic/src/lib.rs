//! The autonomic manager: policy files, runtime estimators, a pure planner,
//! providers and a discrete-event simulator.
//!
//! Arrows point down only: this crate knows nothing of the tuple space or the
//! paradigms. It sees a job through [`machine::Snapshot`]s (task counters and
//! machines) and task-duration samples, and answers with
//! [`planner::Decision`]s that a [`manager::Provider`] executes.
//!
//! Times are seconds since the job started (`f64`), so the same planner runs on
//! the wall clock in `halley run` and on a virtual clock in [`simulate`].

pub mod clock;
pub mod estimate;
pub mod machine;
pub mod manager;
pub mod planner;
pub mod policy;
pub mod providers;
pub mod simulate;
pub mod source;
pub mod workload;
