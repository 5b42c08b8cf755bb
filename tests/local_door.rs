//! The local door (`halley node --unix <path>`) on real processes: the
//! CLI and a `RemoteSpace` through it (out, rd, in, a waiting take, a
//! cancelled one, a subscription), the socket file (mode 0600, a stale one
//! replaced, any other file refused, removed on exit), who may knock (the
//! node's uid only, at most `MAX_LOCAL` at once), a client killed in the
//! middle of a take, and random bytes closing only their own connection.
//! The gate over the door runs in process (`halley node` is never a
//! gateway).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use halley_substrate::client::{ConnectError, local_address};
use halley_substrate::node::MAX_LOCAL;
use halley_substrate::node::gate::{Grants, Scope};
use halley_substrate::wire::{self, Request};
use halley_substrate::{
    DirectSpace, EmbeddedSpace, Field, Kind, Multiaddr, Node as InProcessNode, RemoteSpace, Space,
    SpaceError, Subscription, Template, Value, tuple,
};

use common::{DEADLINE, Node, Output, Proc, eventually, get, halley, metrics_addr, run, sample};

/// A socket path for one test, removed when dropped (a SIGKILLed node
/// leaves its file behind).
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(test: &str) -> SocketPath {
        let path = std::env::temp_dir().join(format!("halley-{}-{test}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }

    fn text(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }

    /// The door's address, `/unix/<path>`.
    fn addr(&self) -> String {
        local_address(&self.0).to_string()
    }

    fn multiaddr(&self) -> Multiaddr {
        local_address(&self.0)
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A ring node with a local door at `path` (and `extra` arguments), once
/// the door is open.
fn node_with_door(path: &SocketPath, extra: &[&str]) -> Node {
    let mut args = vec!["--unix", path.text()];
    args.extend_from_slice(extra);
    let node = Node::start_with(&args);
    // The door opens before the `listening` line is printed; its stderr
    // line is read by another thread.
    eventually("the door's line on stderr", || {
        node.stderr().contains("local door at /unix/")
    });
    node
}

async fn connect(path: &SocketPath) -> RemoteSpace {
    RemoteSpace::connect(path.multiaddr(), DEADLINE)
        .await
        .expect("connect through the local door")
}

fn template(name: &str, rest: usize) -> Template {
    let mut fields = vec![Field::Actual(Value::from(name))];
    fields.extend(std::iter::repeat_n(Field::Any, rest));
    Template::new(fields)
}

#[test]
fn the_cli_works_through_the_door_and_the_socket_is_private() {
    let path = SocketPath::new("cli");
    let node = node_with_door(&path, &[]);
    let mode = std::fs::metadata(&path.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let door = path.addr();
    assert_eq!(door, format!("/unix{}", path.text()));
    let out = run(&["out", "--peer", &door, r#"("task", 1)"#], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rd = run(&["rd", "--peer", &door, r#"("task", ?int)"#], None);
    assert_eq!(rd.stdout.trim(), r#"("task", 1)"#, "{}", rd.stderr);
    let status = common::status(&door).expect("status through the door");
    let peer_id = node.addr.rsplit('/').next().unwrap();
    assert_eq!(status["peers"][0]["id"], peer_id);
    let taken = run(&["in", "--peer", &door, r#"("task", ?int)"#], None);
    assert_eq!(taken.stdout.trim(), r#"("task", 1)"#, "{}", taken.stderr);
    let empty = run(
        &[
            "in",
            "--peer",
            &door,
            "--timeout",
            "0s",
            r#"("task", ?int)"#,
        ],
        None,
    );
    assert_ne!(
        empty.code,
        Some(0),
        "nothing left to take: {}",
        empty.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_space_through_the_door_takes_waits_cancels_and_subscribes() {
    let path = SocketPath::new("space");
    let node = node_with_door(&path, &[]);
    let space = connect(&path).await;
    let peer_id: halley_substrate::PeerId = node.addr.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(space.peer(), peer_id, "the greeting names the node");
    // Through the door and through libp2p: the same space.
    let remote = RemoteSpace::connect(node.addr.parse().unwrap(), DEADLINE)
        .await
        .unwrap();

    // A waiting take gets a tuple written later, on the other door.
    let waiting = {
        let space = space.clone();
        tokio::spawn(async move { space.take(template("job", 1), Some(DEADLINE)).await })
    };
    space.status().await.unwrap();
    remote.out(tuple!("job", 1_i64)).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap(), Some(tuple!("job", 1_i64)));

    // A take given up is cancelled on the node: the next tuple stays.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        space.take(template("job", 1), None),
    );
    assert!(gave_up.await.is_err(), "nothing to take yet");
    remote.out(tuple!("job", 2_i64)).await.unwrap();
    let still_there = space
        .read(template("job", 1), Some(DEADLINE))
        .await
        .unwrap();
    assert_eq!(still_there, Some(tuple!("job", 2_i64)));

    // A subscription sees later writes from either door.
    let events = Template::new(vec![Field::Actual("evt".into()), Field::Typed(Kind::Int)]);
    let mut subscription = space.subscribe(events).await.unwrap();
    remote.out(tuple!("evt", 1_i64)).await.unwrap();
    space.out(tuple!("evt", 2_i64)).await.unwrap();
    for i in 1..=2_i64 {
        let next = tokio::time::timeout(DEADLINE, subscription.next())
            .await
            .unwrap();
        assert_eq!(next, Some(tuple!("evt", i)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_given_up_mid_flight_through_the_door_lose_nothing() {
    let path = SocketPath::new("race");
    let _node = node_with_door(&path, &[]);
    let space = connect(&path).await;
    let writer = connect(&path).await;
    common::takes_given_up_mid_flight_lose_nothing(&space, &writer).await;
}

#[test]
fn a_client_killed_while_its_take_waits_swallows_nothing() {
    let path = SocketPath::new("kill");
    let node = node_with_door(&path, &["--metrics", "127.0.0.1:0"]);
    let door = path.addr();
    let metrics = metrics_addr(&node);
    let streams = || sample(&get(&metrics, "/metrics").1, "halley_client_streams");
    let mut waiting = Proc::spawn(
        halley()
            .args(["in", "--peer", &door, r#"("victim", ?int)"#])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    eventually("the waiting take's stream", || streams() == 1);
    waiting.kill();
    eventually("the killed client's stream to close", || streams() == 0);
    let out = run(&["out", "--peer", &door, r#"("victim", 7)"#], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rd = run(
        &[
            "rd",
            "--peer",
            &door,
            "--timeout",
            "5s",
            r#"("victim", ?int)"#,
        ],
        None,
    );
    assert_eq!(rd.stdout.trim(), r#"("victim", 7)"#, "{}", rd.stderr);
}

#[test]
fn a_stale_socket_is_replaced_and_the_file_removed_on_exit() {
    let path = SocketPath::new("stale");
    drop(std::os::unix::net::UnixListener::bind(&path.0).unwrap());
    assert!(path.0.exists(), "a stale socket file left behind");
    let mut node = node_with_door(&path, &[]);
    let out = run(&["out", "--peer", &path.addr(), r#"("fresh")"#], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // SIGTERM: the node leaves and removes its socket.
    let stop = std::process::Command::new("kill")
        .args(["-TERM", &node.proc.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let status = node.proc.wait(DEADLINE);
    assert!(status.success(), "{status:?}: {}", node.stderr());
    assert!(!path.0.exists(), "the socket file outlived the node");
}

/// Starts a node with its door at `path`, which it must refuse (exit 2).
fn node_refused_at(path: &SocketPath) -> Output {
    let args = [
        "node",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--unix",
        path.text(),
    ];
    let out = run(&args, None);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    out
}

#[test]
fn a_file_that_is_not_a_socket_is_refused_naming_it() {
    let path = SocketPath::new("notsock");
    std::fs::write(&path.0, b"precious").unwrap();
    let out = node_refused_at(&path);
    assert!(
        out.stderr.contains(path.text()) && out.stderr.contains("not a socket"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&path.0).unwrap(), b"precious");
}

#[test]
fn a_live_door_is_not_taken_over() {
    let path = SocketPath::new("live");
    let _node = node_with_door(&path, &[]);
    let out = node_refused_at(&path);
    assert!(
        out.stderr.contains("another process is listening"),
        "{}",
        out.stderr
    );
    let rd = run(&["status", "--peer", &path.addr()], None);
    assert_eq!(
        rd.code,
        Some(0),
        "the first door still serves: {}",
        rd.stderr
    );
}

/// A small seeded generator (xorshift64*), for reproducible noise.
struct Noise(u64);

impl Noise {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

/// Reads until the other end closes (true) or `DEADLINE` passes.
fn closed_by_peer(stream: &mut UnixStream) -> bool {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A client that goes away in the middle of a frame (killed while
/// writing) broke its stream; it sent no bad frame: nothing is counted or
/// warned about (a job's workers ending must not fill its terminal).
#[test]
fn a_client_gone_mid_frame_is_not_a_bad_frame() {
    let path = SocketPath::new("gone");
    let node = node_with_door(&path, &["--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&node);
    let mut frame = Vec::new();
    wire::encode_request(&mut frame, 1, &Request::Status).unwrap();
    let mut stream = UnixStream::connect(&path.0).unwrap();
    stream.write_all(&frame[..frame.len() - 1]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut stream), "not closed");
    let body = get(&metrics, "/metrics").1;
    assert_eq!(sample(&body, "halley_bad_frames_total"), 0, "{body}");
    assert!(!node.stderr().contains("bad frame"), "{}", node.stderr());
}

#[test]
fn random_bytes_close_only_their_own_connection() {
    let path = SocketPath::new("noise");
    let node = node_with_door(&path, &["--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&node);
    let door = path.addr();
    let mut bystander = UnixStream::connect(&path.0).unwrap();
    let mut noise = Noise(0x5eed_1234_abcd_0001);
    for round in 0..20 {
        let mut stream = UnixStream::connect(&path.0).unwrap();
        let len = 1 + usize::from(noise.bytes(1)[0]) * 8;
        stream.write_all(&noise.bytes(len)).unwrap();
        // A header promising more than was sent waits for the rest: the
        // end of input makes it a truncated frame.
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(closed_by_peer(&mut stream), "round {round}: not closed");
    }
    let body = get(&metrics, "/metrics").1;
    assert!(sample(&body, "halley_bad_frames_total") >= 1, "{body}");
    // The node still serves, and the quiet connection was left alone.
    let out = run(&["out", "--peer", &door, r#"("alive")"#], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    bystander.set_nonblocking(true).unwrap();
    let mut greeting = [0u8; 4096];
    assert!(
        matches!(bystander.read(&mut greeting), Ok(n) if n > 0),
        "the bystander lost its greeting or its connection"
    );
}

#[test]
fn connections_past_the_limit_are_refused_with_a_reason() {
    let path = SocketPath::new("limit");
    let _node = node_with_door(&path, &[]);
    let mut held = Vec::new();
    for _ in 0..MAX_LOCAL {
        let mut stream = UnixStream::connect(&path.0).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut greeting = [0u8; 512];
        assert!(stream.read(&mut greeting).unwrap() > 0, "no greeting");
        held.push(stream);
    }
    let refused = run(&["status", "--peer", &path.addr()], None);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused
            .stderr
            .contains(&format!("at most {MAX_LOCAL} local connections")),
        "{}",
        refused.stderr
    );
    drop(held);
    eventually("room at the door again", || {
        run(&["status", "--peer", &path.addr()], None).code == Some(0)
    });
}

/// Another user is refused by the peer credentials even when the file's
/// mode would let it connect. Needs root (to run a client as `nobody`) and
/// `setpriv`; elsewhere it says so and checks nothing.
#[test]
fn another_uid_is_refused_by_its_credentials() {
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    if !root || !setpriv {
        eprintln!("skipped: needs root and /usr/bin/setpriv to run a client as another user");
        return;
    }
    let path = SocketPath::new("uid");
    let node = node_with_door(&path, &[]);
    std::fs::set_permissions(&path.0, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_halley"))
        .args(["status", "--peer", &path.addr()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "refused the connection: this door serves only uid 0 and root, not uid 65534"
        ),
        "{said}"
    );
    eventually("the refusal in the log", || {
        node.stderr().contains("refused a local connection")
    });
}

/// A gateway's door is as gated as its libp2p side: nothing without a
/// capability, what the capability allows with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_door_refuses_without_a_capability() {
    let path = SocketPath::new("gate");
    let grants = Arc::new(Grants::default());
    let tasks = halley_substrate::parse_template(r#"("task", ?int)"#).unwrap();
    let scope = Scope {
        write: vec![tasks],
        ..Scope::default()
    };
    let capability = grants.issue("job-1", scope);
    let mut gateway = InProcessNode::start_gateway(
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        EmbeddedSpace::new(),
        grants,
    )
    .await
    .unwrap();
    gateway.serve_unix(&path.0).await.unwrap();
    let space = connect(&path).await;
    match space.out(tuple!("task", 1_i64)).await {
        Err(SpaceError::Refused(m)) => assert!(m.contains("present one first"), "{m}"),
        other => panic!("an out without a capability answered {other:?}"),
    }
    space.present(&capability.to_string()).await.unwrap();
    space.out(tuple!("task", 1_i64)).await.unwrap();
    match space.out(tuple!("other", 1_i64)).await {
        Err(SpaceError::Refused(m)) => assert!(m.contains("does not allow"), "{m}"),
        other => panic!("an out outside the capability answered {other:?}"),
    }
    gateway.stop().await;
    assert!(!path.0.exists(), "the gateway's socket outlived it");
}

#[tokio::test]
async fn a_direct_client_refuses_a_local_door_clearly() {
    let path = SocketPath::new("direct");
    match DirectSpace::connect(path.multiaddr(), DEADLINE).await {
        Err(e @ ConnectError::LocalDoor(_)) => {
            assert!(e.to_string().contains("local door"), "{e}");
        }
        other => panic!("a direct client took a local door: {other:?}"),
    }
}

#[test]
fn a_direct_worker_refuses_a_local_door_as_bad_input() {
    let path = SocketPath::new("worker");
    let _node = node_with_door(&path, &[]);
    let out = run(&["worker", "--peer", &path.addr(), "--direct"], None);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("is a local door"), "{}", out.stderr);
}
