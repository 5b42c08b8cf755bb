//! Paradigms over the Space API.

pub mod mapreduce;
pub mod workflow;
