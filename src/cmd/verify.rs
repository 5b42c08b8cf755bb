//! `halley verify <out>`: checks a job's output directory against the
//! SHA-256 manifest its summary carries (`files` in `summary.json` of
//! `run`, `_summary.json` of `mapreduce`): every listed file must exist
//! with the same digest, and no other file may sit beside them (in
//! `tasks/` for `run`, as `part-*` for `mapreduce`).
//!
//! A manifest signed by `run --sign-key` ([`Signature`]) is checked first
//! (`--signer` requires a given key). Prints `ok: <n> files` and exits 0,
//! or prints one line per problem (`changed <file>`, `missing <file>`,
//! `added <file>`, or what is wrong with the signature) and exits 1; exit
//! 2 when the directory holds no summary with a manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use sha2::{Digest, Sha256};

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job's output directory (`--out` of `run` or `mapreduce`).
    pub out: PathBuf,
    /// Require the manifest to be signed by this key (a peer id, as
    /// `run --sign-key` records it as `signature.signer`).
    #[arg(long)]
    pub signer: Option<String>,
}

/// A manifest's signature (`run --sign-key`): ed25519 over
/// [`signed_message`] of the `files` object.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Signature {
    /// The signing key's peer id.
    pub signer: String,
    /// Its public key, libp2p protobuf encoding, hex.
    pub public_key: String,
    /// Hex.
    pub signature: String,
}

/// What is signed: a fixed prefix and the manifest as compact JSON (its
/// keys sorted, so the same manifest always gives the same bytes).
pub fn signed_message(files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut message = b"halley-manifest/1\n".to_vec();
    message.extend(serde_json::to_vec(files).unwrap_or_default());
    message
}

/// Signs the manifest `files` with `identity`.
pub fn sign(
    identity: &halley_substrate::node::Identity,
    files: &BTreeMap<String, String>,
) -> anyhow::Result<Signature> {
    let (signature, public_key) = identity.sign(&signed_message(files))?;
    Ok(Signature {
        signer: identity.peer_id().to_string(),
        public_key: hex(&public_key),
        signature: hex(&signature),
    })
}

/// The signer of a good signature of `files`; an error saying what is wrong.
fn check_signature(sig: &Signature, files: &BTreeMap<String, String>) -> Result<String, String> {
    let bytes = |text: &str| -> Option<Vec<u8>> {
        text.len()
            .is_multiple_of(2)
            .then(|| {
                (0..text.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
    };
    let (Some(public_key), Some(signature)) = (bytes(&sig.public_key), bytes(&sig.signature))
    else {
        return Err("the signature's fields are not hex".into());
    };
    match halley_substrate::node::identity::verify(&public_key, &signed_message(files), &signature)
    {
        Some(peer) if peer.to_string() == sig.signer => Ok(sig.signer.clone()),
        Some(peer) => Err(format!("signed by {peer}, not the {} it names", sig.signer)),
        None => Err("the manifest's signature does not match it (the summary was changed)".into()),
    }
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The hex SHA-256 of a file's content, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between a manifest and the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checked: usize,
    pub changed: Vec<String>,
    pub missing: Vec<String>,
    pub added: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.added.is_empty()
    }
}

/// Which of a directory's files (by path relative to it) a manifest must list.
type Covered = fn(&str) -> bool;

/// The summary files that carry a manifest, and which of the directory's
/// files a manifest of that kind must list.
const SUMMARIES: [(&str, Covered); 2] = [
    ("summary.json", |rel| {
        rel.starts_with("tasks/") && !rel.rsplit('/').next().unwrap_or("").starts_with('.')
    }),
    ("_summary.json", |rel| {
        !rel.contains('/') && rel.starts_with("part-")
    }),
];

pub fn run(args: Args) -> Outcome {
    let out = &args.out;
    let (name, covered) = SUMMARIES
        .iter()
        .find(|(name, _)| out.join(name).is_file())
        .ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "{}: no summary.json or _summary.json (expected the --out of a `halley run` \
                 or `halley mapreduce`)",
                out.display()
            ))
        })?;
    let path = out.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::bad_input(anyhow!("{}: cannot read: {e}", path.display())))?;
    let summary: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::bad_input(anyhow!("{}: not JSON: {e}", path.display())))?;
    let files: BTreeMap<String, String> = summary
        .get("files")
        .cloned()
        .and_then(|f| serde_json::from_value(f).ok())
        .ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "{}: field `files`: expected an object of file → SHA-256 (a summary written \
                 by an older halley has none)",
                path.display()
            ))
        })?;
    let signature: Option<Signature> = summary
        .get("signature")
        .filter(|s| !s.is_null())
        .map(|s| serde_json::from_value(s.clone()))
        .transpose()
        .map_err(|e| Failure::bad_input(anyhow!("{}: field `signature`: {e}", path.display())))?;
    let signed = match (&signature, &args.signer) {
        (Some(sig), expected) => match check_signature(sig, &files) {
            Ok(signer) if expected.as_ref().is_none_or(|e| *e == signer) => Some(signer),
            Ok(signer) => {
                println!("wrong signer: signed by {signer}");
                return Ok(NOT_FOUND);
            }
            Err(why) => {
                println!("bad signature: {why}");
                return Ok(NOT_FOUND);
            }
        },
        (None, Some(_)) => {
            println!("unsigned: the summary has no signature");
            return Ok(NOT_FOUND);
        }
        (None, None) => None,
    };
    let report = check(out, &files, *covered).map_err(Failure::bad_input)?;
    for file in &report.changed {
        println!("changed {file}");
    }
    for file in &report.missing {
        println!("missing {file}");
    }
    for file in &report.added {
        println!("added {file}");
    }
    if report.ok() {
        let by = signed.map_or(String::new(), |s| format!(", signed by {s}"));
        println!("ok: {} files match {}{by}", report.checked, path.display());
        Ok(SUCCESS)
    } else {
        eprintln!(
            "halley: {}: {} changed, {} missing, {} added",
            out.display(),
            report.changed.len(),
            report.missing.len(),
            report.added.len()
        );
        Ok(NOT_FOUND)
    }
}

/// Compares the files under `out` with `files` (path relative to `out` →
/// SHA-256); `covered` says which files of the directory must be listed.
pub fn check(
    out: &Path,
    files: &BTreeMap<String, String>,
    covered: Covered,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for (rel, sum) in files {
        if rel.split('/').any(|part| part == ".." || part.is_empty()) {
            anyhow::bail!("the manifest names {rel}, outside the directory");
        }
        report.checked += 1;
        match sha256_file(&out.join(rel)) {
            Ok(actual) if actual == *sum => {}
            Ok(_) => report.changed.push(rel.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.missing.push(rel.clone()),
            Err(e) => anyhow::bail!("{}: cannot read: {e}", out.join(rel).display()),
        }
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(out.join(&rel_dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = rel_dir.join(entry.file_name());
            let Some(text) = rel.to_str().map(str::to_owned) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(rel);
            } else if covered(&text) && !files.contains_key(&text) {
                report.added.push(text);
            }
        }
    }
    report.added.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_changed_missing_or_added_file_is_named() {
        let dir = std::env::temp_dir().join(format!("halley-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tasks")).unwrap();
        let mut files = BTreeMap::new();
        for (name, text) in [
            ("tasks/0.out", "a"),
            ("tasks/1.out", "b"),
            ("tasks/2.out", "c"),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
            files.insert(name.to_owned(), sha256_hex(text.as_bytes()));
        }
        let covered = SUMMARIES[0].1;
        assert!(check(&dir, &files, covered).unwrap().ok());
        std::fs::write(dir.join("tasks/0.out"), "A").unwrap();
        std::fs::remove_file(dir.join("tasks/1.out")).unwrap();
        std::fs::write(dir.join("tasks/9.out"), "new").unwrap();
        std::fs::write(dir.join("notes.txt"), "not covered").unwrap();
        let report = check(&dir, &files, covered).unwrap();
        assert_eq!(report.changed, ["tasks/0.out"]);
        assert_eq!(report.missing, ["tasks/1.out"]);
        assert_eq!(report.added, ["tasks/9.out"]);
        files.insert("../etc/passwd".into(), String::new());
        assert!(check(&dir, &files, covered).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
