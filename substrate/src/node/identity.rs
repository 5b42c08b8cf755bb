//! A node's identity kept in a file (`halley node --key-file`), so its
//! peer id, and so its address, stays the same across restarts.
//!
//! The file holds the libp2p protobuf encoding of an ed25519 keypair. A
//! missing file is created with a fresh key, readable by its owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::identity::Keypair;

/// A node's keypair.
#[derive(Clone)]
pub struct Identity(pub(crate) Keypair);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{}: cannot read the key file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write a new key file: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a node key file (expected a libp2p protobuf-encoded keypair, as `halley node --key-file` writes): {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
}

impl Identity {
    /// A fresh ed25519 identity.
    pub fn generate() -> Identity {
        Identity(Keypair::generate_ed25519())
    }

    pub fn peer_id(&self) -> PeerId {
        self.0.public().to_peer_id()
    }

    /// Signs `message`: the signature, and the public key (protobuf
    /// encoded) that checks it ([`verify`]).
    pub fn sign(&self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
        let signature = self.0.sign(message).map_err(|e| IdentityError::Malformed {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        Ok((signature, self.0.public().encode_protobuf()))
    }

    /// The identity in `path`, or a fresh one written there if the file
    /// does not exist.
    pub fn load_or_create(path: &Path) -> Result<Identity, IdentityError> {
        match std::fs::read(path) {
            Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
                .map(Identity)
                .map_err(|e| IdentityError::Malformed {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Identity::generate();
                let bytes =
                    identity
                        .0
                        .to_protobuf_encoding()
                        .map_err(|e| IdentityError::Malformed {
                            path: path.to_owned(),
                            reason: e.to_string(),
                        })?;
                write_private(path, &bytes).map_err(|source| IdentityError::Write {
                    path: path.to_owned(),
                    source,
                })?;
                Ok(identity)
            }
            Err(source) => Err(IdentityError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// Whether `signature` of `message` was made by the key whose public half
/// is `public_key` (protobuf encoded); returns its peer id if so.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Option<PeerId> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(public_key).ok()?;
    key.verify(message, signature).then(|| key.to_peer_id())
}

/// Writes `bytes` to a new file at `path`, mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("halley-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let first = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(first.peer_id(), again.peer_id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (signature, public) = first.sign(b"manifest").unwrap();
        assert_eq!(
            verify(&public, b"manifest", &signature),
            Some(first.peer_id())
        );
        assert_eq!(verify(&public, b"manifest!", &signature), None);
        assert_eq!(verify(b"junk", b"manifest", &signature), None);
        std::fs::write(&path, b"not a key").unwrap();
        let err = Identity::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("node.key: not a node key file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
