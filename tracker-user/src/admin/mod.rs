//! The admin listener: a plain HTTP port apart from the tracker's, for
//! monitoring. `GET /health` answers 200 once every listener and worker
//! is up, 503 while starting or stopping; `GET /metrics` is the Prometheus
//! exposition and `GET /stats.json` the same figures as JSON, both summed
//! from the workers' counters when asked ([`tracker_metrics`]). `GET /stats`
//! is a page that shows `/stats.json` to a person and refreshes itself.
//!
//! It is an admin port, not a front end: one blocking thread per address
//! serves one connection at a time, with a read timeout and a request-size
//! cap, so a slow or hostile client can hold it for at most a second and
//! never grow its memory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracker_metrics::Metrics;

/// The stats page: static, it reads `/stats.json` itself.
const STATS_PAGE: &str = include_str!("stats.html");

/// Largest request head read; a health check sends a few dozen bytes.
const MAX_REQUEST: usize = 4096;
/// How long one connection may take in all (request, answer and the
/// drain after it) before the next one is served: a client trickling a
/// byte at a time must not hold the port.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the tracker is in its life, as `/health` reports it. Written by
/// the main thread at each change, read by the admin thread per request:
/// never touched on the hot path.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<AtomicU8>);

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

impl Health {
    /// Every listener and worker is up (the `ready:` line is out).
    pub fn set_ready(&self) {
        self.0.store(READY, Ordering::Relaxed);
    }

    /// SIGINT or SIGTERM arrived: workers are being stopped.
    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::Relaxed);
    }

    /// The status code and body `/health` answers with now.
    pub fn answer(&self) -> (u16, &'static str) {
        match self.0.load(Ordering::Relaxed) {
            READY => (200, "ok\n"),
            STARTING => (503, "starting: workers\n"),
            _ => (503, "stopping\n"),
        }
    }
}

/// Binds every admin address; done with the other sockets, before the
/// privilege drop, so a privileged port works and a bad address fails
/// start-up.
pub fn bind(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    addrs
        .iter()
        .map(|addr| {
            TcpListener::bind(addr).with_context(|| format!("binding admin listener {addr}"))
        })
        .collect()
}

/// Starts one thread per listener. They are not joined: they hold no
/// state worth a clean stop, and keep answering "stopping" until the
/// process exits.
pub fn spawn(
    listeners: Vec<TcpListener>,
    health: &Health,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<()> {
    for (index, listener) in listeners.into_iter().enumerate() {
        let health = health.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name(format!("admin-{index}"))
            .spawn(move || serve(&listener, &health, &metrics))
            .context("spawning the admin thread")?;
    }
    Ok(())
}

fn serve(listener: &TcpListener, health: &Health, metrics: &Metrics) {
    let mut buf = [0u8; MAX_REQUEST];
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                // A client that goes away mid-answer is its own problem.
                let _ = handle(stream, health, metrics, &mut buf);
            }
            Err(e) => {
                log::warn!("admin listener: accept failed: {e}");
                // Out of fds, say: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle(
    mut stream: TcpStream,
    health: &Health,
    metrics: &Metrics,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut len = 0;
    let head = loop {
        if len == buf.len() {
            break None;
        }
        let n = read_before(&mut stream, &mut buf[len..], deadline)?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(&buf[..end]);
        }
    };
    let answer = match head {
        None => Answer::text(431, "request too large\n"),
        Some(head) => route(head, health, metrics),
    };
    let Answer {
        status,
        content_type,
        body,
    } = answer;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{allow}\
         Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    // Closing with unread input would reset the connection and could
    // destroy the answer before the client reads it (a too-large request
    // say): half-close, then drain a bounded amount until the client closes.
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut drained = 0;
    while drained < 16 * MAX_REQUEST {
        match read_before(&mut stream, buf, deadline)? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// One read, failing with TimedOut once `deadline` has passed.
fn read_before(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: std::time::Instant,
) -> std::io::Result<usize> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.read(buf)
}

/// What the admin listener answers.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: std::borrow::Cow<'static, str>,
}

impl Answer {
    fn text(status: u16, body: &'static str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The answer for a request head (request line and headers).
fn route(head: &[u8], health: &Health, metrics: &Metrics) -> Answer {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Answer::text(400, "bad request\n");
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/health") => {
            let (status, body) = health.answer();
            Answer::text(status, body)
        }
        (b"GET", b"/metrics") => Answer {
            status: 200,
            content_type: tracker_metrics::prometheus::CONTENT_TYPE,
            body: tracker_metrics::prometheus::encode(&metrics.snapshot()).into(),
        },
        (b"GET", b"/stats.json") => {
            let json =
                tracker_metrics::json::encode(&metrics.snapshot(), &metrics.history().samples());
            Answer {
                status: 200,
                content_type: "application/json",
                body: json.to_string().into(),
            }
        }
        (b"GET", b"/stats") => Answer {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: STATS_PAGE.into(),
        },
        (_, b"/health" | b"/metrics" | b"/stats.json" | b"/stats") => {
            Answer::text(405, "only GET\n")
        }
        _ => Answer::text(
            404,
            "not found: try /health, /metrics, /stats.json or /stats\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_starting_then_ok_then_stopping() {
        let health = Health::default();
        assert_eq!(health.answer(), (503, "starting: workers\n"));
        health.set_ready();
        assert_eq!(health.answer(), (200, "ok\n"));
        health.set_stopping();
        assert_eq!(health.answer(), (503, "stopping\n"));
    }

    #[test]
    fn routes_by_method_and_path() {
        let health = Health::default();
        health.set_ready();
        let metrics = Metrics::new("test");
        let status = |head: &[u8]| route(head, &health, &metrics).status;
        assert_eq!(status(b"GET /health HTTP/1.1"), 200);
        assert_eq!(status(b"GET /health?x=1 HTTP/1.1"), 200);
        assert_eq!(status(b"POST /health HTTP/1.1"), 405);
        assert_eq!(status(b"GET /metrics HTTP/1.1"), 200);
        assert_eq!(status(b"GET /stats.json HTTP/1.1"), 200);
        assert_eq!(status(b"GET /stats HTTP/1.1"), 200);
        assert_eq!(status(b"POST /stats HTTP/1.1"), 405);
        assert_eq!(status(b"PUT /metrics HTTP/1.1"), 405);
        assert_eq!(status(b"GET /nope HTTP/1.1"), 404);
        assert_eq!(status(b"garbage"), 400);
    }
}
