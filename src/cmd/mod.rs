//! One module a subcommand (or a family of them).

pub mod client;
pub mod counts;
pub mod mapreduce;
pub mod node;
pub mod policy;
pub mod run;
pub mod secret;
pub mod simulate;
pub mod token;
pub mod verify;
pub mod worker;
pub mod workers;
pub mod workflow;
