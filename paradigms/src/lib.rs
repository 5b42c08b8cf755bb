//! Paradigms over the Space API.
//!
//! Master-worker is the root: [`task`] holds the tuple layouts, [`master`]
//! submits tasks and collects exactly one result each, [`worker`] takes and
//! runs them under the leases of [`lease`]; [`bag`] runs bags of shell
//! commands on top.

pub mod bag;
pub mod lease;
pub mod master;
pub mod task;
pub mod worker;
