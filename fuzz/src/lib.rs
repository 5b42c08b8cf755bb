//! What each fuzz target feeds its input to: shared by the targets in
//! `fuzz_targets/` (run by `scripts/fuzz.sh` on nightly) and by the
//! stable regression test `tests/fuzz_regressions.rs`, which feeds every
//! file of `fuzz/regressions/<target>/` to the same function. Each
//! function returns normally for any input (an `Ok` or an `Err` from the
//! code under test); a panic is the bug the fuzzer looks for.

mod hostile;

use futures::StreamExt;
use halley_substrate::node::gate::{Capability, Scope};
use halley_substrate::wire::{self, Message};
use halley_substrate::{parse_template, parse_tuple};

/// What a target does with one input.
pub type Feed = fn(&[u8]);

/// The targets, by name: the directory names under `fuzz/regressions/`.
pub const TARGETS: [(&str, Feed); 7] = [
    ("wire_frame", wire_frame),
    ("peer_message", peer_message),
    ("syntax", syntax),
    ("policy", policy),
    ("gate", gate),
    ("records", records),
    ("overlay", overlay),
];

/// A byte stream as a node reads it from a client or a peer: frame by
/// frame, each decoded; and the same bytes as one frame's body. What
/// decodes must encode again and decode to the same message.
pub fn wire_frame(data: &[u8]) {
    let read: Vec<_> = futures::executor::block_on(wire::frames(data).collect());
    assert!(
        read.iter().filter(|r| r.is_err()).count() <= 1,
        "at most one error, at the end"
    );
    for message in read.into_iter().flatten() {
        round_trip(&message);
    }
    if let Ok(message) = wire::frame::decode(data) {
        round_trip(&message);
    }
}

/// A body decoded as a peer-to-peer message (`Message::Peer`, variant 2),
/// so every input reaches the peer and overlay decoders.
pub fn peer_message(data: &[u8]) {
    let mut body = Vec::with_capacity(data.len() + 1);
    body.push(2);
    body.extend_from_slice(data);
    if let Ok(message) = wire::frame::decode(&body) {
        assert!(matches!(message, Message::Peer(_)), "{message:?}");
        round_trip(&message);
    }
}

/// Tuple and template text: what parses prints back to text that parses
/// to the same value.
pub fn syntax(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tuple) = parse_tuple(text) {
        let again = parse_tuple(&tuple.to_string()).expect("a printed tuple parses");
        assert!(
            same_tuple(&again, &tuple),
            "{tuple} printed and parsed is {again}"
        );
    }
    if let Ok(template) = parse_template(text) {
        let printed = template.to_string();
        let again = parse_template(&printed).expect("a printed template parses");
        assert_eq!(again.to_string(), printed);
    }
}

/// A policy file: parsed and validated, or refused with an error that
/// names the file.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = halley_autonomic::policy::Policy::parse("fuzz.toml", text) {
        assert!(e.to_string().contains("fuzz.toml"), "{e}");
    }
}

/// A gateway's door: the input as a capability's text (what parses prints
/// back to itself), and as a request body judged against a job's scope.
pub fn gate(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(capability) = Capability::parse(text)
    {
        let printed = capability.to_string();
        assert_eq!(
            Capability::parse(&printed).expect("printed parses"),
            capability
        );
    }
    if let Ok(Message::Request { request, .. }) = wire::frame::decode(data) {
        let t = |text: &str| parse_template(text).expect("a fixed template");
        let scope = Scope {
            take: vec![
                t(r#"("task", "j", ?int, ?int, ?bytes)"#),
                t(r#"("stop", ?str)"#),
            ],
            read: vec![
                t(r#"("stop", "j")"#),
                t(r#"("r", 1..9, 0.5..=2.5, "a".."m", "p"*, *)"#),
            ],
            write: vec![t(r#"("result", "j", ?int, *)"#)],
        };
        let _ = scope.allows(&request);
    }
}

/// A job's packed tuples as a master or a worker reads them from the
/// space, where any client may have put them: the input as the records of
/// a chunk of tasks, of a batch's results and of a claim. Tasks and
/// results that unpack pack again to the same bytes (their encodings are
/// canonical); a claim, to the same claim.
pub fn records(data: &[u8]) {
    use halley_paradigms::{chunks, lease::Claim, results};
    use halley_substrate::{Tuple, Value};
    let bytes = || Value::Bytes(data.to_vec());
    let chunk = Tuple::new(vec!["task".into(), "j".into(), bytes()]);
    if let Some(tasks) = chunks::unpack(chunk.clone()) {
        let items = tasks
            .iter()
            .map(|t| (t.id, t.attempt, t.payload.as_slice()));
        assert_eq!(chunks::pack("j", items, tasks.len()), [chunk]);
    }
    let packed = Tuple::new(vec![
        "results".into(),
        "j".into(),
        "w".into(),
        "r".into(),
        bytes(),
    ]);
    if let Some(done) = results::unpack(packed.clone())
        && !done.is_empty()
    {
        let outcomes = done.iter().map(|r| results::Outcome {
            job: "j",
            id: r.id,
            attempt: r.attempt,
            started_us: r.started_us,
            finished_us: r.finished_us,
            payload: &r.payload,
        });
        assert_eq!(results::pack("w", "r", outcomes), [packed]);
    }
    let claim = Tuple::new(vec![
        "claim".into(),
        "j".into(),
        "w".into(),
        Value::Int(1),
        bytes(),
    ]);
    // A claim's runs may be written shorter than they could be: the claim
    // read, not its bytes, comes back.
    if let Some(read) = Claim::from_tuple(claim) {
        assert_eq!(Claim::from_tuple(read.to_tuple()), Some(read));
    }
}

/// A ring of live sans-io peers attacked by one of its members: the input
/// as steps, each a hostile overlay message (through the node's decoder and
/// checks), a client operation, honest messages delivered or time passing
/// (see `hostile`). No peer panics, replies to what its client did not ask
/// or twice, or holds more than its `max_tuples`.
pub fn overlay(data: &[u8]) {
    hostile::run(data);
}

/// `message` encodes (unless too large) and decodes to itself.
fn round_trip(message: &Message) {
    let mut buf = Vec::new();
    if wire::encode(&mut buf, message).is_ok() {
        let back = wire::frame::decode(&buf[4..]).expect("an encoded frame decodes");
        // NaN floats differ from themselves: compare the encodings.
        let mut again = Vec::new();
        wire::encode(&mut again, &back).expect("it encoded once");
        assert_eq!(again, buf);
    }
}

/// Equal, NaN equal to NaN (printing keeps NaN a NaN).
fn same_tuple(a: &halley_substrate::Tuple, b: &halley_substrate::Tuple) -> bool {
    a.to_string() == b.to_string()
}
