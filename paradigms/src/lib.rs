//! Paradigms over the Space API.
//!
//! Master-worker is the root: [`task`] holds the tuple layouts (short tasks
//! travel in [`chunks`], a batch's results packed in one tuple: [`results`]), [`master`]
//! submits tasks and collects exactly one result each, [`worker`] takes and
//! runs them under the leases of [`lease`]; [`bag`] runs bags of shell
//! commands on top, each task run by [`shell`] (its own process group, a
//! time limit, retries). [`mapreduce`] runs map and reduce tasks (Rust closures
//! or shell commands) through the space; [`workflow`] runs a DAG of stages;
//! [`isolated`] says what a job's isolated workers may do at a gateway.

pub mod bag;
pub mod chunks;
pub mod isolated;
pub mod lease;
pub mod mapreduce;
pub mod master;
mod records;
pub mod results;
pub mod shell;
pub mod task;
pub mod worker;
pub mod workflow;
