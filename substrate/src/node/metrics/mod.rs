//! What a node counts, and how it shows it: Prometheus's text format over
//! a small HTTP endpoint (`halley node --metrics host:port`, [`http`]).
//!
//! The serving tasks bump plain atomic counters ([`Metrics`]); the gauges
//! (tuples held, peers in the ring) are read from the space when scraped.

pub(super) mod http;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::space::Step;
use crate::wire::Request;

/// The request kinds, in the order they are reported.
const OPS: [&str; 9] = [
    "out",
    "take",
    "read",
    "scan",
    "subscribe",
    "cancel",
    "status",
    "present",
    "members",
];

/// Counters shared by every serving task of one node.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; OPS.len()],
    tuples_out: AtomicU64,
    tuples_taken: AtomicU64,
    refused: AtomicU64,
    bad_frames: AtomicU64,
    count_asks: AtomicU64,
    streams_opened: AtomicU64,
    streams_closed: AtomicU64,
}

/// What the space says about itself when scraped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Tuples this node holds (replicas included).
    pub tuples: u64,
    /// Peers of the ring as this node sees it (1 alone).
    pub peers: u64,
}

impl Metrics {
    /// A request arrived.
    pub(super) fn request(&self, request: &Request) {
        let op = match request {
            Request::Out { tuples, .. } => {
                self.tuples_out
                    .fetch_add(tuples.len() as u64, Ordering::Relaxed);
                0
            }
            Request::Take { .. } => 1,
            Request::Read { .. } => 2,
            Request::Scan { .. } => 3,
            Request::Subscribe { .. } => 4,
            Request::Cancel => 5,
            Request::Status => 6,
            Request::Present { .. } => 7,
            Request::Members => 8,
            // Counted as the outs and takes it holds.
            Request::Steps(steps) => {
                for step in steps {
                    match step {
                        Step::Out { tuples, .. } => {
                            self.tuples_out
                                .fetch_add(tuples.len() as u64, Ordering::Relaxed);
                            self.requests[0].fetch_add(1, Ordering::Relaxed);
                        }
                        Step::Take { .. } => {
                            self.requests[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                return;
            }
        };
        self.requests[op].fetch_add(1, Ordering::Relaxed);
    }

    /// A take handed `count` tuples to its client.
    pub(super) fn taken(&self, count: usize) {
        self.tuples_taken.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// A request was refused before it ran (too many in flight, id in use).
    pub(super) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Another ring peer asked this one to count what it holds (for a
    /// `status`, or a round of spreading the load).
    pub(crate) fn count_asked(&self) {
        self.count_asks.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream sent a malformed or oversized frame.
    pub(super) fn bad_frame(&self) {
        self.bad_frames.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn stream_opened(&self) {
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn stream_closed(&self) {
        self.streams_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything in Prometheus's text exposition format.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut text = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(text, "# HELP halley_{name} {help}");
            let _ = writeln!(text, "# TYPE halley_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(text, "halley_{name}{labels} {value}");
            }
        };
        let by_op: Vec<(String, u64)> = OPS
            .iter()
            .zip(&self.requests)
            .map(|(op, count)| (format!("{{op=\"{op}\"}}"), get(count)))
            .collect();
        let by_op: Vec<(&str, u64)> = by_op.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "requests_total",
            "counter",
            "Client requests received, by operation.",
            &by_op,
        );
        family(
            "tuples_out_total",
            "counter",
            "Tuples clients asked to store.",
            &[("", get(&self.tuples_out))],
        );
        family(
            "tuples_taken_total",
            "counter",
            "Tuples handed to clients by takes.",
            &[("", get(&self.tuples_taken))],
        );
        family(
            "refused_total",
            "counter",
            "Requests refused before they ran.",
            &[("", get(&self.refused))],
        );
        family(
            "count_asks_total",
            "counter",
            "Counts other ring peers asked of this one (for a status, or to spread the load).",
            &[("", get(&self.count_asks))],
        );
        family(
            "bad_frames_total",
            "counter",
            "Malformed or oversized frames received (each closed its stream).",
            &[("", get(&self.bad_frames))],
        );
        let open = get(&self.streams_opened).saturating_sub(get(&self.streams_closed));
        family(
            "client_streams",
            "gauge",
            "Client streams open now.",
            &[("", open)],
        );
        family(
            "tuples",
            "gauge",
            "Tuples this node holds, replicas included.",
            &[("", snapshot.tuples)],
        );
        family(
            "ring_peers",
            "gauge",
            "Peers of the ring as this node sees it.",
            &[("", snapshot.peers)],
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Template, tuple};

    #[test]
    fn counts_show_up_in_the_text() {
        let metrics = Metrics::default();
        let out = Request::Out {
            tuples: vec![tuple!("a", 1), tuple!("b", 2)],
            ttl: None,
        };
        metrics.request(&out);
        metrics.request(&Request::Take {
            template: Template::exact(&tuple!("a", 1)),
            max: 1,
            timeout: None,
        });
        metrics.taken(1);
        metrics.bad_frame();
        metrics.stream_opened();
        metrics.stream_opened();
        metrics.stream_closed();
        let text = metrics.render(Snapshot {
            tuples: 1,
            peers: 3,
        });
        for line in [
            "halley_requests_total{op=\"out\"} 1",
            "halley_requests_total{op=\"take\"} 1",
            "halley_requests_total{op=\"status\"} 0",
            "halley_tuples_out_total 2",
            "halley_tuples_taken_total 1",
            "halley_bad_frames_total 1",
            "halley_client_streams 1",
            "halley_tuples 1",
            "halley_ring_peers 3",
            "# TYPE halley_requests_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
