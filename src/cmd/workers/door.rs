//! The local door of a job's embedded space: a Unix socket in the
//! temporary directory, `halley-<pid>-<8 hex digits>.sock`, for the
//! workers the job starts on this machine.
//!
//! The node removes its socket on every way out it sees; a run that is
//! SIGKILLed sees none and leaves the file behind. So each job, before it
//! opens its door, removes the doors of runs that are gone: a socket file
//! of that name, owned by this user, whose process no longer exists.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use halley_substrate::node::Node;

/// Opens the embedded node's local door in the temporary directory, for
/// the workers this machine starts; without one (a directory that takes
/// no socket), they dial its libp2p address as before. The node removes
/// the socket when it stops.
pub async fn open(node: &mut Node) -> Option<String> {
    let dir = std::env::temp_dir();
    sweep(&dir);
    let name = format!(
        "halley-{}-{:08x}.sock",
        std::process::id(),
        rand::random::<u32>()
    );
    match node.serve_unix(&dir.join(name)).await {
        Ok(path) => Some(format!("/unix{}", path.display())),
        Err(e) => {
            tracing::warn!(error = %e, "no local door: the workers dial the space's libp2p address");
            None
        }
    }
}

/// Removes from `dir` the doors left by runs that are gone. Needs
/// `/proc` to tell a live process; without it, removes nothing.
fn sweep(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(door_pid) else {
            continue;
        };
        let ours = entry
            .metadata()
            .is_ok_and(|m| m.file_type().is_socket() && Some(m.uid()) == uid);
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(path = %entry.path().display(), "removed a gone run's local door")
                }
                Err(e) => {
                    tracing::debug!(path = %entry.path().display(), error = %e, "could not remove a gone run's local door")
                }
            }
        }
    }
}

/// The pid in a door's file name, `halley-<pid>-<8 hex digits>.sock`.
fn door_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("halley-")?.strip_suffix(".sock")?;
    let (pid, tag) = rest.split_once('-')?;
    let hex = tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.parse().ok())?
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn only_door_names_give_a_pid() {
        assert_eq!(door_pid("halley-4242-0badf00d.sock"), Some(4242));
        for name in [
            "halley-4242-0badf00d",
            "halley-42x-0badf00d.sock",
            "halley-4242-badf00d.sock",
            "halley-4242-0badf00g.sock",
            "halley--0badf00d.sock",
            "other-4242-0badf00d.sock",
        ] {
            assert_eq!(door_pid(name), None, "{name}");
        }
    }

    /// A process that has exited: its pid names no process (until reused,
    /// which takes the kernel a full turn of the pid space).
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn the_sweep_removes_only_the_sockets_of_gone_runs() {
        let dir = std::env::temp_dir().join(format!("halley-door-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = |name: &str| {
            let path = dir.join(name);
            drop(UnixListener::bind(&path).unwrap());
            path
        };
        let gone = socket(&format!("halley-{}-0badf00d.sock", gone_pid()));
        let live = socket(&format!("halley-{}-0badf00d.sock", std::process::id()));
        let other = socket(&format!("other-{}-0badf00d.sock", gone_pid()));
        let file = dir.join(format!("halley-{}-0badf00e.sock", gone_pid()));
        std::fs::write(&file, "not a socket").unwrap();
        sweep(&dir);
        let left = [&gone, &live, &other, &file].map(|p| p.exists());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, [false, true, true, true], "gone, live, other, file");
    }
}
