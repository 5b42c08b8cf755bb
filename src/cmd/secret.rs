//! `--secret-file`: the private overlay's pre-shared key, read from a file
//! in the libp2p key file format. Nodes started with one serve only peers
//! and clients holding the same key; every command that reaches a node
//! (`out`, `in`, `rd`, `scan`, `status`, `worker`, and `run`, `mapreduce`,
//! `workflow` with `--peer`) takes the flag to hold it too.

use std::path::Path;

use anyhow::anyhow;
use halley_substrate::net::PreSharedKey;

use crate::exit::Failure;

/// What a key file holds, for the error message.
const FORMAT: &str = "three lines: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits";

/// The key in `file`, if one was given; exit 2 naming the file when it
/// cannot be read or holds no key. `command` prefixes the message.
pub fn load(command: &str, file: Option<&Path>) -> Result<Option<PreSharedKey>, Failure> {
    let Some(file) = file else {
        return Ok(None);
    };
    let bad = |what: String| {
        Failure::bad_input(anyhow!(
            "{command}: --secret-file {}: {what}",
            file.display()
        ))
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let key = text
        .parse::<PreSharedKey>()
        .map_err(|e| bad(format!("not a key file ({e}); expected {FORMAT}")))?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_parses_and_a_bad_one_is_named() {
        let dir = std::env::temp_dir().join(format!("halley-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.key");
        let hex = "0123456789abcdef".repeat(4);
        std::fs::write(&good, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
        assert!(load("out", Some(&good)).unwrap().is_some());
        assert!(load("out", None).unwrap().is_none());

        let bad = dir.join("bad.key");
        std::fs::write(&bad, "/key/swarm/psk/1.0.0/\n/base16/\nxyz\n").unwrap();
        let err = load("out", Some(&bad)).unwrap_err();
        assert_eq!(err.code, crate::exit::BAD_INPUT);
        let message = format!("{:#}", err.error);
        assert!(message.starts_with("out: --secret-file "), "{message}");
        assert!(message.contains("bad.key"), "{message}");
        assert!(message.contains("64 hex digits"), "{message}");

        let missing = load("out", Some(&dir.join("missing.key"))).unwrap_err();
        assert!(format!("{:#}", missing.error).contains("cannot read it"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
