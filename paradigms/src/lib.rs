//! Paradigms over the Space API.

pub mod mapreduce;
