//! What the bench examples start: child processes killed on drop, and a
//! ring of three `halley node` processes (the release `halley` binary
//! beside the example; two replicas, the node's default), each with its
//! local door open if asked ([`Ring::start_with_doors`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// Child processes, killed and reaped when dropped.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three `halley node` processes joined into one ring; killed on drop
/// (and their doors' sockets removed).
pub struct Ring {
    pub nodes: Children,
    /// Where clients reach them, the first one's first: each node's local
    /// door (`/unix/<path>`) if opened, else its libp2p address.
    pub peers: Vec<String>,
    sockets: Vec<PathBuf>,
}

impl Drop for Ring {
    fn drop(&mut self) {
        for child in &mut self.nodes.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
        for socket in &self.sockets {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Ring {
    /// The ring; with `doors`, each node also opens its local door
    /// (`--unix`, in the temporary directory) and clients are given that.
    pub fn start(doors: bool) -> anyhow::Result<Ring> {
        let halley = std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|release| release.join("halley"))
            .context("where is the halley binary?")?;
        let mut ring = Ring {
            nodes: Children(Vec::new()),
            peers: Vec::new(),
            sockets: Vec::new(),
        };
        let mut joined_at: Option<String> = None;
        for i in 0..3 {
            let mut command = Command::new(&halley);
            command.args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"]);
            match &joined_at {
                None => command.arg("--ring"),
                Some(first) => command.args(["--join", first]),
            };
            let door = doors.then(|| {
                std::env::temp_dir().join(format!("halley-bench-{}-{i}.sock", std::process::id()))
            });
            if let Some(socket) = &door {
                command.arg("--unix").arg(socket);
                ring.sockets.push(socket.clone());
            }
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| {
                    format!("starting {} (build it with --release)", halley.display())
                })?;
            let stdout = child.stdout.take().context("the node's stdout")?;
            ring.nodes.0.push(child);
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
            let addr = line
                .trim()
                .strip_prefix("listening ")
                .with_context(|| format!("node {i} printed {line:?}"))?;
            joined_at.get_or_insert_with(|| addr.to_owned());
            ring.peers.push(match &door {
                Some(socket) => format!("/unix{}", socket.display()),
                None => addr.to_owned(),
            });
        }
        Ok(ring)
    }

    /// Waits (at most 10 s) until every node counts the three in its view:
    /// clients that start while the ring forms wait for its views to
    /// settle (a worker started on a joining peer began ~100 ms after the
    /// other, when the bench's job was nearly done).
    pub async fn formed(&self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for peer in &self.peers {
            let address = halley_substrate::client::parse_address(peer)?;
            let space = halley_substrate::client::RemoteSpace::connect(
                address,
                std::time::Duration::from_secs(10),
            )
            .await?;
            while space.members().await?.len() < self.peers.len() {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the ring did not form within 10 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }
}
