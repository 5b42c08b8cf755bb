//! Progress of a job of commands (`halley run`, `halley workflow`) on
//! stderr: a bar on a terminal, otherwise a plain line at most once a second
//! and one at the end. The total is the job's (a workflow submits its
//! stages' tasks as they are released).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use halley_paradigms::master::Progress;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug)]
pub enum Display {
    Bar(ProgressBar),
    Lines { last: Option<Instant>, total: usize },
}

impl Display {
    pub fn new(total: usize) -> Display {
        if !std::io::stderr().is_terminal() {
            return Display::Lines { last: None, total };
        }
        let bar = ProgressBar::new(total as u64);
        let style =
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        Display::Bar(bar)
    }

    /// `done` counts the results written so far; `status` is the pool's
    /// workers by class, spend and projected finish.
    pub fn update(&mut self, progress: &Progress, done: usize, failed: usize, status: &str) {
        match self {
            Display::Bar(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "running {} failed {failed}; {status}",
                    progress.running
                ));
            }
            Display::Lines { last, total } => {
                let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if due || done == *total {
                    *last = Some(Instant::now());
                    say!(
                        "halley: {done}/{total} tasks done, {} running, {failed} failed; {status}",
                        progress.running
                    );
                }
            }
        }
    }

    /// A line of the log (a manager's decision), above the bar if any.
    pub fn log(&self, line: &str) {
        match self {
            Display::Bar(bar) => bar.println(format!("halley: {line}")),
            Display::Lines { .. } => say!("halley: {line}"),
        }
    }

    pub fn finish(self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
