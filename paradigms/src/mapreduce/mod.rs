//! MapReduce over the space: map tasks over line-aligned input splits, a
//! combiner inside each map task, R reduce partitions by key hash.
//!
//! Who talks to whom: [`control`] moves task and completion tuples through
//! the [`Space`](halley_substrate::Space) and runs worker threads; the bulk
//! data stays where it is cheapest. [`job`] is the in-process Rust API (input
//! and intermediate tables in shared memory); [`streaming`] runs map and
//! reduce shell commands (`halley mapreduce`).

pub mod control;
pub mod emit;
pub mod input;
pub mod job;
pub mod streaming;

pub use control::{Error, Phase};
pub use emit::Emitter;
pub use input::{Input, InputError, Split};
pub use job::{MapReduce, Output};

/// The most reduce partitions a streaming job (`halley mapreduce`, a
/// workflow's MapReduce stage) may ask for: every map task writes a file
/// per partition, and each is a reduce task.
pub const MAX_REDUCERS: usize = 100_000;
