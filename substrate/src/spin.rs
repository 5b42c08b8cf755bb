//! Busy-polling for a moment after traffic, so the next message of a
//! conversation is picked up without a sleep and a wake-up.
//!
//! A request/answer exchange over loopback costs little CPU, but every time
//! a thread sleeps in `epoll_wait` and is woken by the other side, the
//! kernel (and, on a virtual machine, the hypervisor: an IPI and a halted
//! vCPU to restart) charges tens of microseconds. After each message the
//! node and the client expect another soon: the answer, or the next request.
//! [`Spin::kick`] opens a short window during which a task of this runtime
//! keeps yielding, so the runtime polls its sockets without parking; when
//! the window closes with nothing to do, the runtime parks as usual. An idle
//! node or client therefore burns nothing; a busy one at most the window
//! after each message.
//!
//! Spinning pays only while the CPUs are otherwise idle. Each turn of the
//! spinner yields the CPU to the kernel too (`sched_yield`), so another
//! process on it (perhaps the one about to answer) can run; when that
//! yield took long, another process did run: the machine is busy, waking
//! up is cheap then, and spinning would only delay the others, so the
//! spinner stays quiet for [`BACK_OFF`].
//!
//! The window is [`DEFAULT_WINDOW`], or `HALLEY_SPIN_US` microseconds from
//! the environment (`0` turns spinning off).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// How long to keep polling after a message, unless `HALLEY_SPIN_US` says.
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(50);

/// A `sched_yield` that takes longer than this gave the CPU to another
/// process for a good part of its time slice: the machine is busy. (Yields
/// to the peer processes of a conversation, themselves spinning, come back
/// within microseconds; at 5 µs the node of a three-process W4 backed off
/// at once and lost most of the gain.)
const CONTENDED: Duration = Duration::from_micros(100);
/// How long a spinner that found the CPU busy stays quiet.
const BACK_OFF: Duration = Duration::from_millis(20);

/// A handle that opens spin windows; cheap to clone. The spinning task ends
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Spin {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    /// Spinning goes on until this many nanoseconds after `epoch`.
    until: AtomicU64,
    /// Kicks before this many nanoseconds after `epoch` open no window: the
    /// CPU was found busy.
    quiet_until: AtomicU64,
    epoch: Instant,
    window: u64,
    wake: Arc<Notify>,
    task: AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Spin {
    /// Starts a spinner on the current tokio runtime with the window from
    /// the environment (or [`DEFAULT_WINDOW`]).
    pub fn start() -> Spin {
        Spin::with_window(window_from_env())
    }

    /// Starts a spinner with `window`; a zero window spins never.
    pub fn with_window(window: Duration) -> Spin {
        if window.is_zero() {
            return Spin { shared: None };
        }
        let wake = Arc::new(Notify::new());
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let weak = weak.clone();
            let waker = wake.clone();
            let task = tokio::spawn(async move {
                loop {
                    let woken = waker.notified();
                    let Some(shared) = weak.upgrade() else { return };
                    if !shared.open() {
                        drop(shared);
                        woken.await;
                        continue;
                    }
                    // Let another process on this CPU run: it may be the
                    // one about to answer. If one did, the CPU is busy:
                    // sleeping is cheap then, and spinning only delays
                    // the others, so the window closes.
                    let before = Instant::now();
                    std::thread::yield_now();
                    if before.elapsed() > CONTENDED {
                        shared.back_off(BACK_OFF);
                    }
                    drop(shared);
                    tokio::task::yield_now().await;
                }
            });
            Shared {
                until: AtomicU64::new(0),
                quiet_until: AtomicU64::new(0),
                epoch: Instant::now(),
                window: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
                wake,
                task: task.abort_handle(),
            }
        });
        Spin {
            shared: Some(shared),
        }
    }

    /// A message went out or came in: keep polling for one more window.
    pub fn kick(&self) {
        if let Some(shared) = &self.shared {
            let now = shared.now();
            if now < shared.quiet_until.load(Ordering::Relaxed) {
                return;
            }
            shared
                .until
                .store(now.saturating_add(shared.window), Ordering::Relaxed);
            shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Closes the window and opens none for `quiet`.
    fn back_off(&self, quiet: Duration) {
        self.until.store(0, Ordering::Relaxed);
        let quiet = self
            .now()
            .saturating_add(u64::try_from(quiet.as_nanos()).unwrap_or(u64::MAX));
        self.quiet_until.store(quiet, Ordering::Relaxed);
    }

    /// Whether the window is still open.
    fn open(&self) -> bool {
        self.now() < self.until.load(Ordering::Relaxed)
    }
}

fn window_from_env() -> Duration {
    std::env::var("HALLEY_SPIN_US")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_WINDOW, Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive() -> usize {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    }

    #[tokio::test]
    async fn a_zero_window_starts_nothing() {
        let before = alive();
        let spin = Spin::with_window(Duration::ZERO);
        spin.kick();
        assert!(spin.shared.is_none());
        assert_eq!(alive(), before);
    }

    #[tokio::test]
    async fn a_kick_opens_a_window() {
        let spin = Spin::with_window(Duration::from_secs(60));
        let shared = spin.shared.clone().expect("a spinner");
        assert!(!shared.open(), "no window before the first kick");
        spin.kick();
        assert!(shared.open());
        // The spinner yields while it spins: other tasks still run.
        let other = tokio::spawn(async { 7 });
        assert_eq!(other.await.expect("runs beside the spinner"), 7);
    }

    #[tokio::test]
    async fn a_window_closes_by_itself() {
        let spin = Spin::with_window(Duration::from_millis(20));
        let shared = spin.shared.clone().expect("a spinner");
        spin.kick();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!shared.open(), "the window closes by itself");
    }

    #[tokio::test]
    async fn after_a_back_off_kicks_open_nothing() {
        let spin = Spin::with_window(Duration::from_secs(60));
        let shared = spin.shared.clone().expect("a spinner");
        spin.kick();
        shared.back_off(Duration::from_secs(60));
        assert!(!shared.open(), "a back-off closes the window");
        spin.kick();
        assert!(!shared.open(), "and keeps it closed");
    }

    #[tokio::test]
    async fn the_spinner_ends_with_its_last_handle() {
        let before = alive();
        let spin = Spin::with_window(Duration::from_millis(5));
        let other = spin.clone();
        spin.kick();
        tokio::task::yield_now().await;
        assert_eq!(alive(), before + 1);
        drop(spin);
        assert_eq!(alive(), before + 1, "a clone still holds it");
        drop(other);
        for _ in 0..100 {
            if alive() == before {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the spinner outlived its handles");
    }
}
