//! `halley`: the command-line face of the engine. It only wires the crates
//! together: each subcommand lives in `cmd/` and calls into `substrate`,
//! `paradigms` or `autonomic`.

/// `eprintln!` that never panics: a closed terminal (SIGHUP) or a closed
/// pipe must not stop a job half way, before its machines are released.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics (see [`say`]).
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod cmd;
mod exit;
mod store;

/// mimalloc rather than glibc's malloc: a ring node allocates and frees
/// a few small buffers per tuple per message (decoding, the store's rows,
/// copies), and glibc's free lists took about a quarter of the nodes' CPU
/// under W1 (BENCHMARKS.md, "the take side of W1"). Built with `no_thp`:
/// mimalloc does not ask for transparent huge pages, which had the kernel
/// zero each fresh (or purged and reused) 2 MiB of heap at once, 9–11 % of
/// a ring node's CPU under W1 (BENCHMARKS.md, "W1 per-tuple CPU").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use crate::exit::Failure;

/// An autonomic tuple-space engine.
#[derive(Debug, Parser)]
#[command(name = "halley", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one peer of the space until SIGINT/SIGTERM.
    Node(cmd::node::Args),
    /// Store a tuple (or, with `-`, every tuple on stdin, one a line).
    Out(cmd::client::OutArgs),
    /// Print a copy of a tuple matching the template.
    Rd(cmd::client::WaitArgs),
    /// Remove and print a tuple matching the template.
    In(cmd::client::WaitArgs),
    /// Print every tuple matching the template, without removing them.
    Scan(cmd::client::ScanArgs),
    /// Show the peers of the space and what they hold.
    Status(cmd::client::StatusArgs),
    /// Run a bag of shell commands, one a line of the tasks file.
    Run(cmd::run::Args),
    /// Run a worker that takes tasks from a space.
    Worker(cmd::worker::Args),
    /// Streaming MapReduce over files with map and reduce commands.
    Mapreduce(cmd::mapreduce::Args),
    /// One task of a `mapreduce` job (what its workers run).
    #[command(subcommand, hide = true)]
    MrTask(cmd::mapreduce::task::Args),
    /// Run a workflow: a DAG of stages described in a TOML file.
    Workflow(cmd::workflow::Args),
    /// Policy files: check one.
    #[command(subcommand)]
    Policy(cmd::policy::Command),
    /// Check a job's outputs against the SHA-256 manifest of its summary.
    Verify(cmd::verify::Args),
    /// Simulate what a policy would do, cost and finish on a workload.
    Simulate(cmd::simulate::Args),
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::BAD_INPUT } else { 0 };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Node(args) => cmd::node::run(args),
        Command::Out(args) => cmd::client::out(args),
        Command::Rd(args) => cmd::client::rd(args),
        Command::In(args) => cmd::client::take(args),
        Command::Scan(args) => cmd::client::scan(args),
        Command::Status(args) => cmd::client::status(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Worker(args) => cmd::worker::run(args),
        Command::Mapreduce(args) => cmd::mapreduce::run(args),
        Command::MrTask(args) => cmd::mapreduce::task::run(args),
        Command::Workflow(args) => cmd::workflow::run(args),
        Command::Policy(command) => cmd::policy::run(command),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Verify(args) => cmd::verify::run(args),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(Failure { code, error }) => {
            eprintln!("halley: {error:#}");
            std::process::ExitCode::from(code)
        }
    }
}

/// Logs go to stderr; `RUST_LOG` (e.g. `RUST_LOG=halley=debug`) sets the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
