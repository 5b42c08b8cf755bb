//! Helpers for tests that run real `halley` processes.
//!
//! Every process is held by a [`Proc`] that kills it when dropped, also when
//! the test panics; every wait has a deadline. Use from a test file with
//! `mod common;`.

#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use halley_substrate::PeerId;
use halley_substrate::wire::{self, LinkFrame, Message, PEER_PROTOCOL, PeerMessage};

/// How long a command may run before the test gives up on it.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `halley` binary under test.
pub fn halley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_halley"))
}

/// What `nodes` logged, each under its address: for a failure's message.
pub fn logs<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> String {
    nodes
        .into_iter()
        .map(|node| format!("=== {}\n{}", node.addr, node.stderr()))
        .collect()
}

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(command: &mut Command) -> Proc {
        let child = command.spawn().expect("spawn halley");
        Proc { child }
    }

    /// Waits for the process to exit, at most `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        self.try_wait(deadline)
            .unwrap_or_else(|| panic!("process {} still running after {deadline:?}", self.id()))
    }

    /// Waits for the process to exit, at most `deadline`; `None` if it has not.
    pub fn try_wait(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads everything from `pipe` on a thread, into a shared buffer.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// A running `halley node`.
#[derive(Debug)]
pub struct Node {
    pub proc: Proc,
    /// Its `listening` address, ending in /p2p/<peer-id>.
    pub addr: String,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Node {
    /// Starts `halley node --listen /ip4/127.0.0.1/tcp/0` and waits for its
    /// `listening` line.
    pub fn start() -> Node {
        Node::start_with(&[])
    }

    /// Like [`Node::start`], with more arguments.
    pub fn start_with(extra: &[&str]) -> Node {
        let mut proc = Proc::spawn(
            halley()
                .args(["node", "--listen", "/ip4/127.0.0.1/tcp/0"])
                .args(extra)
                .env("RUST_LOG", "halley_substrate=info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stderr = collect(proc.child.stderr.take().unwrap());
        let stdout = proc.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the node never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no `listening` line; stderr: {}", text(&stderr)));
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(addr.contains("/p2p/"), "{addr}");
        Node { proc, addr, stderr }
    }

    /// What the node has logged so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        let after = self.addr.split("/tcp/").nth(1).expect("a tcp address");
        after.split('/').next().unwrap().parse().expect("a port")
    }
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `halley <args>` with `stdin`, at most [`DEADLINE`].
pub fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut proc = spawn(args, stdin);
    let status = proc.proc.wait(DEADLINE);
    proc.finish(status)
}

/// A command started with [`spawn`], its output still being collected.
#[derive(Debug)]
pub struct Running {
    pub proc: Proc,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    /// The output once it has exited with `status`.
    pub fn finish(&mut self, status: ExitStatus) -> Output {
        // The reading threads finish once the pipes close; give them a moment.
        let end = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.stdout) + Arc::strong_count(&self.stderr) > 2
            && Instant::now() < end
        {
            thread::sleep(Duration::from_millis(5));
        }
        Output {
            code: status.code(),
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

/// Starts `halley <args>` with `stdin` written to it, without waiting.
pub fn spawn(args: &[&str], stdin: Option<&str>) -> Running {
    let mut proc = Proc::spawn(
        halley()
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    if let Some(input) = stdin {
        let mut pipe = proc.child.stdin.take().unwrap();
        let input = input.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let stdout = collect(proc.child.stdout.take().unwrap());
    let stderr = collect(proc.child.stderr.take().unwrap());
    Running {
        proc,
        stdout,
        stderr,
    }
}

/// `status --json` through `peer` (with `extra` arguments), parsed; `None`
/// if it failed.
pub fn status_with(peer: &str, extra: &[&str]) -> Option<serde_json::Value> {
    let mut args = vec!["status", "--peer", peer, "--json"];
    args.extend_from_slice(extra);
    let out = run(&args, None);
    if out.code != Some(0) {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// `status --json` through `peer`, parsed; `None` if it failed.
pub fn status(peer: &str) -> Option<serde_json::Value> {
    status_with(peer, &[])
}

/// How many peers `status` through `peer` lists (with `extra` arguments).
pub fn ring_size(peer: &str, extra: &[&str]) -> Option<usize> {
    status_with(peer, extra)?["peers"].as_array().map(Vec::len)
}

/// Polls `check` until it holds, at most [`DEADLINE`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Opens a `/halley/peer/6` stream to `target` as a peer would (its
/// `Hello` first, a fresh session) and sends `messages` on it.
pub async fn open_peer_stream(
    control: &mut libp2p_stream::Control,
    target: PeerId,
    messages: Vec<PeerMessage>,
) -> libp2p::Stream {
    let open = control.open_stream(target, PEER_PROTOCOL);
    let mut stream = tokio::time::timeout(DEADLINE, open)
        .await
        .expect("open the peer stream in time")
        .expect("the node accepts the peer protocol");
    let mut buf = Vec::new();
    let hello = LinkFrame::Hello {
        session: rand::random(),
        first: 0,
    };
    wire::encode(&mut buf, &Message::Link(hello)).unwrap();
    for msg in messages {
        wire::encode(&mut buf, &Message::Peer(msg)).unwrap();
    }
    stream.write_all(&buf).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The `host:port` the node said it serves metrics on.
pub fn metrics_addr(node: &Node) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let stderr = node.stderr();
        // The whole line: `eprintln!` may write it in pieces, and a port
        // read half-written is another port.
        let line = stderr.split("metrics at http://").nth(1);
        if let Some((addr, _)) = line.and_then(|rest| rest.split_once("/metrics\n")) {
            return addr.to_owned();
        }
        assert!(Instant::now() < end, "no metrics line; stderr: {stderr}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// `GET <path>` on `addr`: the status line and the body.
pub fn get(addr: &str, path: &str) -> (String, String) {
    let mut socket = TcpStream::connect(addr).expect("connect to the metrics port");
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample `name` in a metrics `body`.
pub fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
}

/// The node of `nodes` holding the most tuples as their primary, as
/// `status` through `peer` reports it.
pub fn busiest(nodes: &[Node], peer: &str) -> usize {
    let status = status(peer).expect("status");
    let peers = status["peers"].as_array().expect("peers");
    let addr = peers
        .iter()
        .max_by_key(|p| p["tuples"].as_u64().unwrap())
        .expect("a peer")["addr"]
        .as_str()
        .unwrap();
    nodes
        .iter()
        .position(|n| n.addr == addr)
        .expect("one of our nodes")
}

/// Starts a ring of `n` peers holding `replicas` copies of each tuple,
/// and waits until every one sees all of them.
pub fn ring(n: usize, replicas: u32) -> Vec<Node> {
    let replicas = replicas.to_string();
    let first = Node::start_with(&["--replicas", &replicas]);
    let mut nodes = vec![first];
    for _ in 1..n {
        let join = nodes[0].addr.clone();
        nodes.push(Node::start_with(&[
            "--join",
            &join,
            "--replicas",
            &replicas,
        ]));
    }
    for node in &nodes {
        sees_ring_of(&node.addr, n);
    }
    nodes
}

/// Waits until `status` through `peer` lists `n` peers.
pub fn sees_ring_of(peer: &str, n: usize) {
    eventually(&format!("{peer} to see a ring of {n}"), || {
        ring_size(peer, &[]) == Some(n)
    });
}

/// Takes that `space`'s caller gives up anywhere between before and after
/// their tuple arrives (from `writer`), 200 rounds: once what was taken
/// for a caller that gave up has come back, the space holds exactly the
/// tuples nobody got. A client that gives up never swallows a tuple.
pub async fn takes_given_up_mid_flight_lose_nothing(
    space: &halley_substrate::RemoteSpace,
    writer: &halley_substrate::RemoteSpace,
) {
    use halley_substrate::{Field, Space, Template, Value, tuple};
    let race = Template::new(vec![Field::Actual(Value::from("race")), Field::Any]);
    let rounds = 200_i64;
    let mut taken = 0;
    for i in 0..rounds {
        let patience = Duration::from_micros((i % 8) as u64 * 150);
        let take = tokio::time::timeout(patience, space.take(race.clone(), None));
        let (got, put) = tokio::join!(take, writer.out(tuple!("race", i)));
        put.unwrap();
        if let Ok(got) = got {
            assert!(got.unwrap().is_some());
            taken += 1;
        }
    }
    // Tuples taken for a caller that gave up come back asynchronously.
    let left = u64::try_from(rounds - taken).expect("no more taken than written");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now = space.status().await.unwrap().tuples;
        if now == left {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} tuples, not {left}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
