//! What the bench examples start: child processes killed on drop, and a
//! ring of three `halley node` processes (the release `halley` binary
//! beside the example; two replicas, the node's default).

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

/// Three `halley node` processes joined into one ring; killed on drop.
pub struct Ring {
    pub nodes: Children,
    /// Their addresses, the first one's first.
    pub peers: Vec<String>,
}

impl Ring {
    pub fn start() -> anyhow::Result<Ring> {
        let halley = std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|release| release.join("halley"))
            .context("where is the halley binary?")?;
        let mut ring = Ring {
            nodes: Children(Vec::new()),
            peers: Vec::new(),
        };
        for i in 0..3 {
            let mut command = Command::new(&halley);
            command.args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"]);
            match ring.peers.first() {
                None => command.arg("--ring"),
                Some(first) => command.args(["--join", first]),
            };
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
            ring.peers.push(addr.to_owned());
        }
        Ok(ring)
    }
}
