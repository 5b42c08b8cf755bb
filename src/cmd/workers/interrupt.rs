//! SIGINT, SIGTERM and SIGHUP (a closed terminal) for a job (`run`,
//! `mapreduce`, `workflow`): the first
//! asks the job to stop (its loop sees [`signal`], withdraws its tasks,
//! releases every machine and writes a partial summary), the second asks it
//! to hurry ([`hurried`]: workers are killed without waiting for them).
//!
//! Signals are the process's, so the state is too: [`listen`] arms the
//! handlers once, inside the job's runtime, and the job's loop and the
//! worker pool read the atomics.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// The first signal received (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Signals received.
static COUNT: AtomicU32 = AtomicU32::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// A signal that interrupted the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    pub fn name(self) -> &'static str {
        match self.0 {
            SIGHUP => "SIGHUP",
            SIGINT => "SIGINT",
            _ => "SIGTERM",
        }
    }

    /// The exit status of a process ended by it: 128 + its number.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(u8::MAX)
    }
}

/// Starts listening for SIGINT, SIGTERM and SIGHUP (once per process; must
/// run inside a tokio runtime). From now on they no longer kill the process.
pub fn listen() {
    if ARMED.swap(true, Ordering::SeqCst) {
        return;
    }
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot catch SIGINT/SIGTERM: an interrupted job will leave no summary");
        return;
    };
    tokio::spawn(async move {
        loop {
            let number = tokio::select! {
                _ = term.recv() => SIGTERM,
                _ = int.recv() => SIGINT,
                _ = hup.recv() => SIGHUP,
            };
            let _ = SIGNAL.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
            if COUNT.fetch_add(1, Ordering::SeqCst) == 1 {
                say!("halley: second signal: killing the workers without waiting");
            }
        }
    });
}

/// The signal that interrupted the job, if one came.
pub fn signal() -> Option<Signal> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal(n)),
    }
}

/// A second signal came: stop waiting for anything but the stop scripts.
pub fn hurried() -> bool {
    COUNT.load(Ordering::SeqCst) >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_name_themselves_and_exit_as_a_shell_reports_them() {
        assert_eq!(Signal(SIGINT).name(), "SIGINT");
        assert_eq!(Signal(SIGINT).exit_code(), 130);
        assert_eq!(Signal(SIGTERM).name(), "SIGTERM");
        assert_eq!(Signal(SIGTERM).exit_code(), 143);
        assert_eq!(Signal(SIGHUP).name(), "SIGHUP");
        assert_eq!(Signal(SIGHUP).exit_code(), 129);
    }
}
