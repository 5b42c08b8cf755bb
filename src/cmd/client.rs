//! `halley out | rd | in | scan | status`: one request to a node, through a
//! [`RemoteSpace`].
//!
//! Text is parsed before the node is dialled, so bad input exits 2 at once;
//! a node that cannot be reached exits 3.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use halley_substrate::client::{ConnectError, RemoteSpace};
use halley_substrate::wire::Status;
use halley_substrate::{
    Multiaddr, Space, SpaceError, Template, Tuple, parse_template, parse_tuple,
};

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

/// How long to wait for the node to answer the dial.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the node: every client command's `--peer` and
/// `--secret-file`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node to talk to: its `listening` address, ending in /p2p/<peer-id>,
    /// or its local door `/unix/<path>` (`halley node --unix <path>`).
    #[arg(long, value_parser = halley_substrate::client::parse_address)]
    peer: Multiaddr,
    /// The private overlay's pre-shared key, as the node was given it
    /// (`halley node --secret-file`).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct OutArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The tuple, e.g. '("task", 42, 1.5)'; `-` reads tuples from stdin, one a
    /// line, and stores them all.
    tuple: String,
    /// Each tuple expires after this long (e.g. 30s, 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The template, e.g. '("task", ?int, *)'.
    template: String,
    /// Give up (exit 1) after this long; 0 does not wait. Default: wait forever.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The template, e.g. '("task", ?int, *)'. Exit 1 when nothing matches.
    template: String,
    /// Print at most this many tuples.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Print `{"peers":[{"id","addr","tuples","place"}],"tuples":N}` instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn out(args: OutArgs) -> Outcome {
    let tuples = if args.tuple == "-" {
        read_tuples(std::io::stdin().lock())?
    } else {
        let tuple =
            parse_tuple(&args.tuple).map_err(|e| Failure::bad_input(anyhow!("out: tuple: {e}")))?;
        vec![tuple]
    };
    with_space("out", &args.node, async |space| {
        space.out_all(tuples, args.ttl).await.map_err(failure)?;
        Ok(SUCCESS)
    })
}

pub fn rd(args: WaitArgs) -> Outcome {
    wait("rd", args, async |space, template, timeout| {
        space.read(template, timeout).await
    })
}

pub fn take(args: WaitArgs) -> Outcome {
    wait("in", args, async |space, template, timeout| {
        space.take(template, timeout).await
    })
}

pub fn scan(args: ScanArgs) -> Outcome {
    let template = template("scan", &args.template)?;
    with_space("scan", &args.node, async |space| {
        let tuples = space.scan(template, args.limit).await.map_err(failure)?;
        print_lines(tuples.iter())?;
        Ok(if tuples.is_empty() {
            NOT_FOUND
        } else {
            SUCCESS
        })
    })
}

pub fn status(args: StatusArgs) -> Outcome {
    with_space("status", &args.node, async |space| {
        let status = space.status().await.map_err(failure)?;
        let text = if args.json {
            serde_json::to_string(&status)
                .context("status: encoding JSON")
                .map_err(Failure::unreachable)?
        } else {
            table(&status)
        };
        print_lines(std::iter::once(text))?;
        Ok(SUCCESS)
    })
}

/// `rd` and `in`: print the tuple found, or exit 1 after the timeout.
fn wait(
    command: &str,
    args: WaitArgs,
    op: impl AsyncFnOnce(&RemoteSpace, Template, Option<Duration>) -> Result<Option<Tuple>, SpaceError>,
) -> Outcome {
    let template = template(command, &args.template)?;
    with_space(command, &args.node, async |space| {
        match op(space, template, args.timeout).await.map_err(failure)? {
            Some(tuple) => {
                print_lines(std::iter::once(tuple))?;
                Ok(SUCCESS)
            }
            None => {
                let waited = humantime::format_duration(args.timeout.unwrap_or_default());
                eprintln!("halley {command}: no matching tuple within {waited}");
                Ok(NOT_FOUND)
            }
        }
    })
}

fn template(command: &str, text: &str) -> Result<Template, Failure> {
    parse_template(text).map_err(|e| Failure::bad_input(anyhow!("{command}: template: {e}")))
}

/// Every non-blank line of `input` as a tuple; an error names the line.
fn read_tuples(input: impl BufRead) -> Result<Vec<Tuple>, Failure> {
    let mut tuples = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line
            .context("out: reading stdin")
            .map_err(Failure::bad_input)?;
        if line.trim().is_empty() {
            continue;
        }
        let tuple = parse_tuple(&line).map_err(|e| {
            Failure::bad_input(anyhow!("out: stdin line {}: tuple: {e}", index + 1))
        })?;
        tuples.push(tuple);
    }
    Ok(tuples)
}

/// Connects to the node (holding its secret, if given) and runs `op` on a
/// small runtime. A secret file that cannot be used exits 2 before any
/// dial.
fn with_space(
    command: &str,
    node: &NodeArgs,
    op: impl AsyncFnOnce(&RemoteSpace) -> Outcome,
) -> Outcome {
    let secret = super::secret::load(command, node.secret_file.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::unreachable)?;
    runtime.block_on(async {
        let space = RemoteSpace::connect_with(node.peer.clone(), CONNECT_TIMEOUT, secret)
            .await
            .map_err(|e| match e {
                ConnectError::NoPeerId(_) => Failure::bad_input(e),
                other => Failure::unreachable(other),
            })?;
        op(&space).await
    })
}

fn failure(error: SpaceError) -> Failure {
    match error {
        SpaceError::Refused(_) => Failure::bad_input(error),
        SpaceError::Unreachable(_) => Failure::unreachable(error),
    }
}

/// Prints one item a line; a closed stdout (`| head`) is not an error.
fn print_lines<T: std::fmt::Display>(mut items: impl Iterator<Item = T>) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = items
        .try_for_each(|item| writeln!(out, "{item}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::unreachable(anyhow!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The readable form of `status`.
fn table(status: &Status) -> String {
    let mut text = format!("{:<54} {:>10}  ADDRESS\n", "PEER", "TUPLES");
    for peer in &status.peers {
        text.push_str(&format!(
            "{:<54} {:>10}  {}\n",
            peer.id, peer.tuples, peer.addr
        ));
    }
    text.push_str(&format!(
        "{} peer(s), {} tuple(s)",
        status.peers.len(),
        status.tuples
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_errors_name_the_line_and_column() {
        let input = "(\"a\", 1)\n\n(\"b\", 2\n";
        let err = read_tuples(input.as_bytes()).unwrap_err();
        assert_eq!(err.code, crate::exit::BAD_INPUT);
        let message = format!("{:#}", err.error);
        assert!(
            message.starts_with("out: stdin line 3: tuple: column 8: expected ',' or ')'"),
            "{message}"
        );
    }

    #[test]
    fn stdin_tuples_skip_blank_lines() {
        let tuples = read_tuples("(1)\n  \n(2.5, \"x\")\n".as_bytes()).unwrap();
        assert_eq!(tuples.len(), 2);
        assert_eq!(tuples[1].to_string(), "(2.5, \"x\")");
    }

    #[test]
    fn the_table_lists_every_peer_and_the_total() {
        let status = Status {
            peers: vec![halley_substrate::wire::PeerStatus {
                id: "12D3KooWabc".into(),
                addr: "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWabc".into(),
                tuples: 42,
                place: Some(7),
            }],
            tuples: 42,
        };
        let text = table(&status);
        assert!(text.contains("12D3KooWabc"));
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains(" 42  /ip4/127.0.0.1/tcp/1")
        );
        assert!(text.ends_with("1 peer(s), 42 tuple(s)"));
    }
}
