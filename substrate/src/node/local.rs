//! The local door: the node's space served over a Unix-domain socket to
//! processes of this machine, without libp2p's noise and yamux.
//!
//! The frames are the `/halley/space/1` frames, served by the same
//! [`serve`](super::serve) as a libp2p stream (the same gate, shares,
//! metrics, cancel-on-drop and put-back), with one addition: the node
//! speaks first. Each connection it admits gets a greeting, the answer to
//! request id 0 (an id no client hands out): `Status` naming this node
//! alone, so the client learns the node's peer id; one it refuses gets an
//! `Error` saying why, and is closed.
//!
//! Who knocks: the socket file is made mode 0600, and every connection's
//! peer credentials (`SO_PEERCRED`) must name the uid that owns it (the
//! node's own) or root; anyone else is refused and logged. Each admitted
//! connection is a client of its own ([`Caller::Local`], "local pid N").
//! At most [`MAX_LOCAL`] connections are served at once. A stale socket
//! file (nobody listening) is replaced at start; any other file at the path
//! is refused. The file is removed when the door closes.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use super::Served;
use super::caller::Caller;
use super::serve::{self, Serving};
use crate::wire::{self, Response};

/// Local connections served at once; more are refused.
pub const MAX_LOCAL: usize = 256;
/// Read buffer of a local connection: a header and a body in one read.
const READ_BUFFER: usize = 64 * 1024;
/// Pause after a failed accept (out of file descriptors), so the loop does
/// not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the local door could not open.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the local door at {}: {reason}", path.display())]
pub struct LocalDoorError {
    pub path: PathBuf,
    pub reason: String,
}

/// A bound socket, its file mode set, not yet accepting.
#[derive(Debug)]
pub(super) struct Bound {
    pub listener: UnixListener,
    /// The uid that owns the socket file: this process's.
    pub owner: u32,
}

/// Makes room at `path` (replacing a stale socket, refusing anything else)
/// and binds a socket there, mode 0600.
pub(super) async fn bind(path: &Path) -> Result<Bound, LocalDoorError> {
    let fail = |reason: String| LocalDoorError {
        path: path.to_owned(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(fail("another process is listening on it".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("cannot replace the stale socket: {e}")))?;
            tracing::info!(path = %path.display(), "replaced a stale socket file");
        }
        Ok(_) => {
            return Err(fail(
                "the path exists and is not a socket (remove it or choose another path)".into(),
            ));
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    let owner = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::metadata(path))
        .map(|meta| meta.uid());
    match owner {
        Ok(owner) => Ok(Bound { listener, owner }),
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(fail(format!("cannot set the socket's mode to 0600: {e}")))
        }
    }
}

/// An open local door: dropping it stops accepting, closes every local
/// connection and removes the socket file.
#[derive(Debug)]
pub(super) struct LocalDoor {
    pub task: AbortHandle,
    pub path: PathBuf,
}

impl Drop for LocalDoor {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the local door's socket file");
        }
    }
}

/// Accepts connections on `listener` for as long as the door is open,
/// serving those of `owner` (or root) while fewer than [`MAX_LOCAL`] are.
pub(super) async fn accept<S: Served>(listener: UnixListener, owner: u32, serving: Serving<S>) {
    let mut connections = JoinSet::new();
    let mut count = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    count += 1;
                    admit(stream, count, owner, &serving, &mut connections);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a local connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a local connection's serving task failed");
                }
            }
        }
    }
}

/// Serves `stream` if its peer may come in, or tells it why not.
fn admit<S: Served>(
    stream: UnixStream,
    connection: u64,
    owner: u32,
    serving: &Serving<S>,
    connections: &mut JoinSet<()>,
) {
    let credentials = stream.peer_cred();
    let pid = credentials.as_ref().ok().and_then(|c| c.pid());
    let caller = Caller::Local { pid, connection };
    let refusal = match credentials {
        Err(e) => Some(format!("cannot read the connection's credentials: {e}")),
        Ok(c) if c.uid() != owner && c.uid() != 0 => Some(format!(
            "this door serves only uid {owner} and root, not uid {}",
            c.uid()
        )),
        Ok(_) if connections.len() >= MAX_LOCAL => Some(format!(
            "this node serves at most {MAX_LOCAL} local connections at once"
        )),
        Ok(_) => None,
    };
    if let Some(reason) = refusal {
        tracing::warn!(client = %caller, %reason, "refused a local connection");
        // Best effort: a fresh socket's buffer takes one small frame at
        // once; the connection closes when `stream` drops.
        let mut greeting = Vec::new();
        if wire::encode_response(&mut greeting, 0, &Response::refused(reason)).is_ok() {
            let _ = stream.try_write(&greeting);
        }
        return;
    }
    tracing::debug!(client = %caller, "local connection opened");
    let serving = serving.clone();
    connections.spawn(async move {
        let mut greeting = Vec::new();
        let hello = serve::single_status(&serving.space, &serving.me);
        if let Err(e) = wire::encode_response(&mut greeting, 0, &hello) {
            tracing::error!(error = %e, "cannot encode the local door's greeting");
            return;
        }
        let (reader, mut writer) = stream.into_split();
        if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut writer, &greeting).await {
            tracing::debug!(client = %caller, error = %e, "cannot greet a local connection");
            return;
        }
        let reader = BufReader::with_capacity(READ_BUFFER, reader.compat());
        serve::serve(caller, reader, writer.compat_write(), serving).await;
    });
}
