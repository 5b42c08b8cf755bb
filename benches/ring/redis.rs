//! The Redis side of `benches/ring.rs`: a minimal RESP client (one
//! blocking TCP connection, nodelay) and the two loads, W4 and out+in
//! pairs, done the same way as Halley's.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One connection to Redis at 127.0.0.1:`port`.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply: `Some(bytes)` for a bulk
    /// string (or the second of a two-element array, as BRPOP answers),
    /// `None` for nil, integers and simple strings.
    fn call(&mut self, args: &[&[u8]]) -> Option<Vec<u8>> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf).expect("write to Redis");
        self.reply()
    }

    fn reply(&mut self) -> Option<Vec<u8>> {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read from Redis");
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" | ":" => None,
            "-" => panic!("Redis: {rest}"),
            "$" => {
                let n: i64 = rest.parse().expect("a bulk length");
                let n = usize::try_from(n).ok()?;
                let mut data = vec![0; n + 2];
                std::io::Read::read_exact(&mut self.reader, &mut data).expect("bulk data");
                data.truncate(n);
                Some(data)
            }
            "*" => {
                let n: i64 = rest.parse().expect("an array length");
                let mut last = None;
                for _ in 0..n.max(0) {
                    last = self.reply();
                }
                last
            }
            other => panic!("Redis: unexpected reply {other}{rest}"),
        }
    }
}

/// Whether a Redis answers at 127.0.0.1:`port`.
pub fn reachable(port: u16) -> bool {
    Conn::open(port).is_ok()
}

/// W4 round trips in µs after `warmup` unmeasured ones: A `LPUSH req`,
/// B (a thread) `BRPOP req` then `LPUSH rep`, A `BRPOP rep`.
pub fn w4(port: u16, warmup: usize, rounds: usize) -> Vec<f64> {
    let (req, rep) = (b"halley-bench:req", b"halley-bench:rep");
    let mut a = Conn::open(port).expect("Redis A");
    a.call(&[b"DEL", req, rep]);
    let total = warmup + rounds;
    let echo = std::thread::spawn(move || {
        let mut b = Conn::open(port).expect("Redis B");
        for _ in 0..total {
            let got = b
                .call(&[b"BRPOP", req, b"30"])
                .expect("B's BRPOP timed out");
            b.call(&[b"LPUSH", rep, &got]);
        }
    });
    let payload = b"ping-00000000".repeat(8);
    let mut samples = Vec::with_capacity(total);
    for _ in 0..total {
        let start = Instant::now();
        a.call(&[b"LPUSH", req, &payload]);
        a.call(&[b"BRPOP", rep, b"30"])
            .expect("A's BRPOP timed out");
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    echo.join().expect("B finishes");
    samples.split_off(warmup)
}

/// Pairs per second of `clients` threads each doing `pairs` times
/// `LPUSH` to its own list then `RPOP` of it.
pub fn pairs(port: u16, clients: usize, pairs: usize) -> f64 {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(port).expect("Redis client");
                let key = format!("halley-bench:pairs:{c}").into_bytes();
                conn.call(&[b"DEL", &key]);
                barrier.wait();
                for i in 0..pairs {
                    let value = format!("k{i:08x}-{c}").into_bytes();
                    conn.call(&[b"LPUSH", &key, &value]);
                    let got = conn.call(&[b"RPOP", &key]);
                    assert_eq!(got.as_deref(), Some(value.as_slice()));
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("a Redis client failed");
    }
    (clients * pairs) as f64 / start.elapsed().as_secs_f64()
}
