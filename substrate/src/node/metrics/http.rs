//! The metrics endpoint: just enough HTTP/1.1 for a Prometheus scraper or
//! `curl`. `GET /metrics` answers the text format; anything else gets 404
//! (or 405 for another method). One short-lived task per connection, each
//! bounded in time and in how much of the request it reads; the connection
//! closes after the answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Metrics, Snapshot};
use crate::node::Served;

/// The most of a request head read before giving up on it.
const MAX_HEAD: usize = 8 * 1024;
/// How long a scraper may take to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(5);

/// Reads the gauges from the space being served.
pub(in crate::node) trait Probe: Send + Sync + 'static {
    fn snapshot(&self) -> Pin<Box<dyn Future<Output = Snapshot> + Send + '_>>;
}

impl<S: Served> Probe for S {
    fn snapshot(&self) -> Pin<Box<dyn Future<Output = Snapshot> + Send + '_>> {
        Box::pin(async move {
            // The node's own view: a scrape asks no member to count.
            let peers = (self.members().await.len() as u64).max(1);
            Snapshot {
                tuples: self.tuple_count(),
                peers,
            }
        })
    }
}

/// Accepts scrapes on `listener` until the task is aborted.
pub(in crate::node) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    probe: Arc<dyn Probe>,
) {
    loop {
        match listener.accept().await {
            Ok((socket, from)) => {
                let metrics = metrics.clone();
                let probe = probe.clone();
                tokio::spawn(async move {
                    let answered =
                        tokio::time::timeout(DEADLINE, answer(socket, &metrics, &*probe));
                    match answered.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%from, error = %e, "metrics request failed"),
                        Err(_) => tracing::debug!(%from, "metrics request timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(
    mut socket: TcpStream,
    metrics: &Metrics,
    probe: &dyn Probe,
) -> std::io::Result<()> {
    let head = read_head(&mut socket).await?;
    let (status, body) = match route(&head) {
        Route::Metrics => ("200 OK", metrics.render(probe.snapshot().await)),
        Route::NotFound => ("404 Not Found", "not found: try /metrics\n".to_owned()),
        Route::WrongMethod => ("405 Method Not Allowed", "only GET\n".to_owned()),
        Route::Malformed => ("400 Bad Request", "malformed request\n".to_owned()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(header.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

/// Reads up to the blank line ending the request head (or [`MAX_HEAD`]).
async fn read_head(socket: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    WrongMethod,
    Malformed,
}

fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Malformed;
    };
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Malformed;
    };
    if !version.starts_with("HTTP/") {
        return Route::Malformed;
    }
    if method != "GET" {
        return Route::WrongMethod;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::WrongMethod);
        assert_eq!(route(b"\xff\xfe garbage"), Route::Malformed);
        assert_eq!(route(b""), Route::Malformed);
        assert_eq!(route(b"GET /metrics SPDY\r\n\r\n"), Route::Malformed);
    }
}
