use super::*;
use crate::{parse_template, parse_tuple};
use libp2p::PeerId;

fn t(text: &str) -> Template {
    parse_template(text).unwrap()
}

fn scope() -> Scope {
    Scope {
        take: vec![
            t(r#"("task", "A", ?int, ?int, ?bytes)"#),
            t(r#"("stop", ?str)"#),
        ],
        read: vec![t(r#"("stop", "A")"#)],
        write: vec![
            t(r#"("result", "A", ?int, *)"#),
            t(r#"("worker", ?str, ?int)"#),
        ],
    }
}

fn take(template: &str) -> Request {
    Request::Take {
        template: t(template),
        max: 1,
        timeout: None,
    }
}

fn out(tuples: &[&str]) -> Request {
    Request::Out {
        tuples: tuples.iter().map(|s| parse_tuple(s).unwrap()).collect(),
        ttl: None,
    }
}

fn refusal(verdict: Verdict) -> String {
    match verdict {
        Verdict::Answer(Response::Error { message, .. }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn gated(grants: &Arc<Grants>) -> Door {
    Door::new(Some(grants))
}

#[test]
fn a_template_lies_within_another_only_when_never_wider() {
    let outer = t(r#"("task", "A", ?int, *, "img-"*)"#);
    for inner in [
        r#"("task", "A", ?int, ?int, "img-"*)"#,
        r#"("task", "A", 3, 1..4, "img-7"*)"#,
        r#"("task", "A", 1..=9, ?bytes, "img-x")"#,
    ] {
        assert!(within(&t(inner), &outer), "{inner}");
    }
    for inner in [
        r#"("task", ?str, ?int, ?int, "img-"*)"#,
        r#"("task", "B", ?int, ?int, "img-"*)"#,
        r#"("task", "A"*, ?int, ?int, "img-"*)"#,
        r#"("task", "A", *, ?int, "img-"*)"#,
        r#"("task", "A", ?float, ?int, "img-"*)"#,
        r#"("task", "A", 1.0..2.0, ?int, "img-"*)"#,
        r#"("task", "A", ?int, ?int, "im"*)"#,
        r#"("task", "A", ?int, ?int, ?str)"#,
        r#"("task", "A", ?int, ?int)"#,
    ] {
        assert!(!within(&t(inner), &outer), "{inner}");
    }
    assert!(within(&t(r#"(1..3)"#), &t("(?int)")));
    assert!(
        !within(&t(r#"(1..3)"#), &t("(0..5)")),
        "conservative on ranges"
    );
}

#[test]
fn capabilities_round_trip_and_hide_their_secret() {
    let grants = Grants::default();
    let cap = grants.issue("run-1-2", Scope::default());
    let text = cap.to_string();
    assert!(
        text.starts_with("hcap1-") && text.ends_with("-run-1-2"),
        "{text}"
    );
    assert_eq!(Capability::parse(&format!(" {text}\n")).unwrap(), cap);
    assert_eq!(cap.label(), "run-1-2");
    assert!(!format!("{cap:?}").contains(&text[6..70]));
    assert_ne!(
        grants.issue("run-1-2", Scope::default()),
        cap,
        "fresh secrets"
    );
    assert!(Capability::looks_like(&text) && !Capability::looks_like("00ff"));
}

#[test]
fn malformed_capabilities_say_what_was_expected_without_repeating_it() {
    let digits = "ab".repeat(32);
    for (text, says) in [
        ("0011".to_string(), "another prefix"),
        (format!("hcap1-{digits}"), "no '-'"),
        (
            format!("hcap1-{}-job", &digits[..60]),
            "found 60 characters",
        ),
        (
            format!("hcap1-{}zz-job", &digits[..62]),
            "found 64 characters",
        ),
        (format!("hcap1-{digits}-"), "found no job"),
    ] {
        let e = Capability::parse(&text).unwrap_err();
        assert!(e.contains(says), "{text}: {e}");
        assert!(e.contains("hcap1-<64 hex digits>-<job>"), "{e}");
        assert!(!e.contains(&digits[..20]), "{e}");
    }
}

#[test]
fn a_gated_stream_does_only_what_its_capability_allows() {
    let grants = Arc::new(Grants::default());
    let cap = grants.issue("A", scope());
    let other = grants.issue("B", Scope::default());
    let peer = PeerId::random();
    let mut door = gated(&grants);

    let before = refusal(door.check(&peer, &take(r#"("task", "A", ?int, ?int, ?bytes)"#)));
    assert!(before.contains("present one first"), "{before}");
    let members = refusal(door.check(&peer, &Request::Members));
    assert!(members.contains("present one first"), "{members}");
    let present = |cap: &Capability| Request::Present {
        capability: cap.to_string(),
    };
    assert!(matches!(
        door.check(&peer, &present(&cap)),
        Verdict::Answer(Response::Ack)
    ));

    for allowed in [
        take(r#"("task", "A", ?int, ?int, ?bytes)"#),
        take(r#"("stop", "m3")"#),
        Request::Read {
            template: t(r#"("stop", "A")"#),
            timeout: None,
        },
        out(&[r#"("result", "A", 1, b"00")"#, r#"("worker", "m3", 0)"#]),
        Request::Cancel,
        Request::Members,
    ] {
        assert!(
            matches!(door.check(&peer, &allowed), Verdict::Run),
            "{allowed:?}"
        );
    }
    for (refused, says) in [
        (
            take(r#"("task", "B", ?int, ?int, ?bytes)"#),
            "taking (\"task\", \"B\"",
        ),
        (take(r#"("task", ?str, ?int, ?int, ?bytes)"#), "taking"),
        (
            Request::Read {
                template: t(r#"("task", "A", ?int, ?int, ?bytes)"#),
                timeout: None,
            },
            "reading",
        ),
        (
            out(&[
                r#"("result", "A", 1, b"00")"#,
                r#"("task", "A", 9, 1, b"")"#,
            ]),
            "writing a tuple (\"task\", \"A\", …) of 5 fields",
        ),
        (
            Request::Scan {
                template: t("(*)"),
                limit: None,
            },
            "scanning",
        ),
        (Request::Subscribe { template: t("(*)") }, "subscribing"),
        (Request::Status, "status"),
    ] {
        let message = refusal(door.check(&peer, &refused));
        assert!(
            message.contains("the capability for A does not allow"),
            "{message}"
        );
        assert!(message.contains(says), "{message}");
    }

    // Presenting another job's capability switches the stream to it.
    assert!(matches!(
        door.check(&peer, &present(&other)),
        Verdict::Answer(Response::Ack)
    ));
    refusal(door.check(&peer, &take(r#"("task", "A", ?int, ?int, ?bytes)"#)));
}

#[test]
fn revoking_cuts_off_streams_and_refuses_the_capability_afterwards() {
    let grants = Arc::new(Grants::default());
    let cap = grants.issue("A", scope());
    let kept = grants.issue("B", scope());
    let peer = PeerId::random();
    let mut door = gated(&grants);
    let present = Request::Present {
        capability: cap.to_string(),
    };
    assert!(matches!(
        door.check(&peer, &present),
        Verdict::Answer(Response::Ack)
    ));
    assert_eq!(grants.revoke("A"), 1);
    let cut = refusal(door.check(&peer, &take(r#"("stop", "m1")"#)));
    assert!(cut.contains("revoked"), "{cut}");
    let again = refusal(gated(&grants).check(&peer, &present));
    assert!(again.contains("unknown or revoked"), "{again}");
    let forged = Capability {
        secret: [7; 32],
        label: "B".into(),
    };
    let forged = Request::Present {
        capability: forged.to_string(),
    };
    refusal(gated(&grants).check(&peer, &forged));
    let kept = Request::Present {
        capability: kept.to_string(),
    };
    assert!(matches!(
        gated(&grants).check(&peer, &kept),
        Verdict::Answer(Response::Ack)
    ));
    grants.revoke_all();
    refusal(gated(&grants).check(&peer, &kept));
}

#[test]
fn an_open_door_serves_everything_and_takes_no_capability() {
    let peer = PeerId::random();
    let mut door = Door::new(None);
    assert!(matches!(door.check(&peer, &Request::Status), Verdict::Run));
    let present = Request::Present {
        capability: "hcap1-x".into(),
    };
    assert!(refusal(door.check(&peer, &present)).contains("not a job's gateway"));
}

#[test]
fn steps_are_judged_step_by_step() {
    let grants = Arc::new(Grants::default());
    let cap = grants.issue("A", scope());
    let peer = PeerId::random();
    let mut door = gated(&grants);
    let present = Request::Present {
        capability: cap.to_string(),
    };
    assert!(matches!(
        door.check(&peer, &present),
        Verdict::Answer(Response::Ack)
    ));
    let step_out = |tuple: &str| Step::Out {
        tuples: vec![parse_tuple(tuple).unwrap()],
        ttl: None,
    };
    let step_take = |template: &str| Step::Take {
        template: t(template),
        max: 8,
        timeout: None,
    };
    let allowed = Request::Steps(vec![
        step_out(r#"("result", "A", 1, b"00")"#),
        step_take(r#"("task", "A", ?int, ?int, ?bytes)"#),
    ]);
    assert!(matches!(door.check(&peer, &allowed), Verdict::Run));
    // One step outside the capability refuses the whole request.
    for (smuggled, says) in [
        (step_take(r#"("task", "B", ?int, ?int, ?bytes)"#), "taking"),
        (step_out(r#"("task", "A", 1, 1, b"00")"#), "writing"),
    ] {
        let request = Request::Steps(vec![step_out(r#"("result", "A", 1, b"00")"#), smuggled]);
        let refused = refusal(door.check(&peer, &request));
        assert!(refused.contains(says), "{refused}");
    }
}
