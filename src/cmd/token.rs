//! Worker tokens, the form `HALLEY_TOKEN` carries to a worker: either the
//! private overlay's pre-shared key as 64 hex digits (a trusted worker), or
//! a job's capability at its gateway, `hcap1-…` (an isolated worker: see
//! `halley_substrate::node::gate`).
//!
//! A job that serves its own space makes a [`fresh`] key per job for its
//! trusted workers, and issues its paid machines a capability; a `halley
//! worker` takes either back with `--token`, `HALLEY_TOKEN` or
//! `--token-file` ([`credential_of`] picks the one source given and
//! refuses two); a key is equivalent to `--secret-file` with that key.

use std::path::Path;

use anyhow::anyhow;
use halley_substrate::net::PreSharedKey;
use halley_substrate::node::gate::Capability;

use crate::exit::Failure;

/// What a token is, for the error messages.
const EXPECTED: &str = "64 hex digits (the job's HALLEY_TOKEN)";

/// A new random key (from the operating system's entropy, through
/// `rand`'s thread generator).
pub fn fresh() -> PreSharedKey {
    PreSharedKey::new(rand::random())
}

/// The key's 64 hex digits.
pub fn hex(key: PreSharedKey) -> String {
    key.to_key_file()
        .lines()
        .last()
        .expect("a key file ends in its hex")
        .to_owned()
}

/// The key of a token (surrounding whitespace trimmed). The error says
/// what was wrong without repeating the token.
pub fn parse(text: &str) -> Result<PreSharedKey, String> {
    let text = text.trim();
    if let Some(at) = text.find(|c: char| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "expected {EXPECTED}, found a character that is not one at position {}",
            at + 1
        ));
    }
    if text.len() != 64 {
        return Err(format!("expected {EXPECTED}, found {} digits", text.len()));
    }
    format!("/key/swarm/psk/1.0.0/\n/base16/\n{text}\n")
        .parse()
        .map_err(|e| format!("expected {EXPECTED} ({e:?})"))
}

/// What a worker holds to reach a space.
#[derive(Debug)]
pub enum Credential {
    /// The private overlay's key: a trusted worker, full access.
    Key(PreSharedKey),
    /// A job's capability at its gateway: an isolated worker.
    Capability(Capability),
}

/// The credential of a token: a capability when it starts `hcap1-`, else
/// a key ([`parse`]).
pub fn credential(text: &str) -> Result<Credential, String> {
    if Capability::looks_like(text) {
        Capability::parse(text).map(Credential::Capability)
    } else {
        parse(text).map(Credential::Key)
    }
}

/// Where a worker may find its key, each named as the user gave it.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// A token and the flag or variable it came from.
    pub token: Option<(&'a str, &'a str)>,
    pub token_file: Option<&'a Path>,
    /// A key file and the flag or variable it came from.
    pub secret_file: Option<(&'a Path, &'a str)>,
}

/// The credential of the one source given (none: no key); exit 2 naming
/// both when two are given, or naming the source when it holds none.
pub fn credential_of(command: &str, sources: &Sources) -> Result<Option<Credential>, Failure> {
    let given: Vec<&str> = [
        sources.token.map(|(_, name)| name),
        sources.token_file.map(|_| "--token-file"),
        sources.secret_file.map(|(_, name)| name),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [first, second, ..] = given.as_slice() {
        return Err(Failure::bad_input(anyhow!(
            "{command}: {first} and {second} both give the overlay's key; give only one"
        )));
    }
    if let Some((token, name)) = sources.token {
        let credential =
            credential(token).map_err(|e| Failure::bad_input(anyhow!("{command}: {name}: {e}")))?;
        return Ok(Some(credential));
    }
    if let Some(file) = sources.token_file {
        let bad = |what: String| {
            Failure::bad_input(anyhow!(
                "{command}: --token-file {}: {what}",
                file.display()
            ))
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read it: {e}")))?;
        return credential(&text).map(Some).map_err(bad);
    }
    let key = super::secret::load(command, sources.secret_file.map(|(file, _)| file))?;
    Ok(key.map(Credential::Key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    fn message(failure: Failure) -> String {
        assert_eq!(failure.code, crate::exit::BAD_INPUT);
        format!("{:#}", failure.error)
    }

    #[test]
    fn a_token_is_the_key_in_hex_and_round_trips() {
        let key = parse(&format!("  {HEX}\n")).unwrap();
        assert_eq!(hex(key), HEX.to_lowercase());
        let fresh = fresh();
        assert_eq!(hex(parse(&hex(fresh)).unwrap()), hex(fresh));
        assert_ne!(hex(fresh), hex(super::fresh()), "each job its own key");
    }

    #[test]
    fn a_malformed_token_says_what_was_expected_without_repeating_it() {
        let short = parse("abc123").unwrap_err();
        assert!(short.contains("64 hex digits"), "{short}");
        assert!(short.contains("found 6 digits"), "{short}");
        assert!(!short.contains("abc123"), "{short}");
        let bad = parse(&format!("{}zz", &HEX[..62])).unwrap_err();
        assert!(bad.contains("position 63"), "{bad}");
        let long = parse(&format!("{HEX}0")).unwrap_err();
        assert!(long.contains("found 65 digits"), "{long}");
        assert!(parse("").unwrap_err().contains("found 0 digits"));
    }

    #[test]
    fn each_source_gives_the_key_and_two_are_refused_naming_both() {
        let dir = std::env::temp_dir().join(format!("halley-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{HEX}\n")).unwrap();
        let key_file = dir.join("key");
        std::fs::write(
            &key_file,
            format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}\n"),
        )
        .unwrap();
        let want = HEX.to_lowercase();

        let from = |sources: Sources| {
            credential_of("worker", &sources).map(|c| match c {
                Some(Credential::Key(key)) => Some(hex(key)),
                Some(Credential::Capability(_)) => panic!("a key was given"),
                None => None,
            })
        };
        assert_eq!(from(Sources::default()).unwrap(), None);
        let token = Sources {
            token: Some((HEX, "HALLEY_TOKEN")),
            ..Sources::default()
        };
        assert_eq!(from(token).unwrap(), Some(want.clone()));
        let file = Sources {
            token_file: Some(&token_file),
            ..Sources::default()
        };
        assert_eq!(from(file).unwrap(), Some(want.clone()));
        let secret = Sources {
            secret_file: Some((&key_file, "--secret-file")),
            ..Sources::default()
        };
        assert_eq!(from(secret).unwrap(), Some(want.clone()));

        let two = Sources {
            token: Some((HEX, "--token")),
            secret_file: Some((&key_file, "HALLEY_SECRET_FILE")),
            ..Sources::default()
        };
        let two = message(credential_of("worker", &two).unwrap_err());
        assert!(two.contains("--token and HALLEY_SECRET_FILE"), "{two}");
        let also = Sources {
            token_file: Some(&token_file),
            secret_file: Some((&key_file, "--secret-file")),
            ..Sources::default()
        };
        let also = message(credential_of("worker", &also).unwrap_err());
        assert!(also.contains("--token-file and --secret-file"), "{also}");

        let bad = Sources {
            token: Some(("xyz", "HALLEY_TOKEN")),
            ..Sources::default()
        };
        let bad = message(credential_of("worker", &bad).unwrap_err());
        assert!(
            bad.starts_with("worker: HALLEY_TOKEN: expected 64 hex digits"),
            "{bad}"
        );
        std::fs::write(&token_file, "not a token").unwrap();
        let file = Sources {
            token_file: Some(&token_file),
            ..Sources::default()
        };
        let bad = message(credential_of("worker", &file).unwrap_err());
        assert!(bad.starts_with("worker: --token-file "), "{bad}");
        assert!(bad.contains("expected 64 hex digits"), "{bad}");
        let missing = Sources {
            token_file: Some(&dir.join("missing")),
            ..Sources::default()
        };
        let missing = message(credential_of("worker", &missing).unwrap_err());
        assert!(missing.contains("cannot read it"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_token_starting_hcap1_is_a_capability_and_says_so_when_malformed() {
        let text = format!("hcap1-{}-run-7-9", "0f".repeat(32));
        let token = Sources {
            token: Some((&text, "HALLEY_TOKEN")),
            ..Sources::default()
        };
        match credential_of("worker", &token).unwrap() {
            Some(Credential::Capability(cap)) => assert_eq!(cap.label(), "run-7-9"),
            other => panic!("{other:?}"),
        }
        let short = format!("hcap1-{}-run", "0f".repeat(8));
        let bad = Sources {
            token: Some((&short, "HALLEY_TOKEN")),
            ..Sources::default()
        };
        let bad = message(credential_of("worker", &bad).unwrap_err());
        assert!(
            bad.starts_with("worker: HALLEY_TOKEN: expected hcap1-"),
            "{bad}"
        );
        assert!(!bad.contains(&"0f".repeat(8)), "{bad}");
    }
}
