//! A real tracker in miniature for the integration tests: request worker
//! threads from tracker-swarm and socket workers from this crate, wired as
//! the binary wires them (`SwarmTopology`), on 127.0.0.1 with
//! kernel-chosen ports, plus small blocking clients.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use tracker_http_ws::{
    bind_listeners, ListenerKind, ListenerSpec, RelayLink, RelayPath, Settings, SharedTls,
    SocketWorker, RELAY_CAPACITY, WAKER,
};
use tracker_metrics::{Metrics, Snapshot};
use tracker_proto::http::{percent_encode, EscapeStyle};
use tracker_proto::InfoHash;
use tracker_swarm::clock::Clock;
use tracker_swarm::{Batch, RequestWorkerEnds, SwarmSettings, SwarmTopology, TorrentFilter};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Refuses the listed torrents, allows the rest.
pub struct DenyList(pub Vec<InfoHash>);

impl TorrentFilter for DenyList {
    fn allows(&self, info_hash: &InfoHash) -> bool {
        !self.0.contains(info_hash)
    }
}

pub struct Options {
    pub settings: Settings,
    pub socket_workers: usize,
    pub request_workers: usize,
    /// Give each socket worker listeners of its own (distinct ports), so a
    /// test decides which worker holds which connection.
    pub separate_ports: bool,
    pub specs: Vec<ListenerSpec>,
    pub tls: Option<Arc<SharedTls>>,
    pub filter: Arc<dyn TorrentFilter>,
    /// No request worker reads its inbox, which is full: every job is
    /// answered "busy".
    pub stalled: bool,
}

pub fn spec(kind: ListenerKind, tls: bool) -> ListenerSpec {
    ListenerSpec {
        addr: "127.0.0.1:0".parse().unwrap(),
        kind,
        tls,
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            socket_workers: 1,
            request_workers: 2,
            separate_ports: false,
            specs: vec![spec(ListenerKind::Http, false)],
            tls: None,
            filter: Arc::new(DenyList(Vec::new())),
            stalled: false,
        }
    }
}

pub struct Tracker {
    /// For each socket worker, its listeners (same order as the specs).
    pub listeners: Vec<Vec<ListenerSpec>>,
    shutdown: Arc<AtomicBool>,
    wakers: Vec<Arc<mio::Waker>>,
    threads: Vec<JoinHandle<()>>,
    /// With `stalled`: request workers never run, their full inboxes
    /// kept open.
    _stalled: Vec<RequestWorkerEnds>,
    /// The registry the socket workers count into, as the binary's admin
    /// listener reads it.
    pub metrics: Arc<Metrics>,
}

impl Tracker {
    pub fn start(o: Options) -> Tracker {
        let shutdown = Arc::new(AtomicBool::new(false));
        let clock = Clock::start();
        let mut per_worker = Vec::new();
        if o.separate_ports {
            for _ in 0..o.socket_workers {
                let mut b = bind_listeners(&o.specs, 1).unwrap();
                per_worker.push(b.per_worker.remove(0));
            }
        } else {
            per_worker = bind_listeners(&o.specs, o.socket_workers)
                .unwrap()
                .per_worker;
        }
        let listeners: Vec<Vec<ListenerSpec>> = per_worker
            .iter()
            .map(|l| l.iter().map(|(_, spec)| *spec).collect())
            .collect();

        // Inboxes of 16 batches, or with `stalled` of one batch that is
        // already there and never read.
        let capacity = if o.stalled { 1 } else { 16 };
        let SwarmTopology {
            request_workers,
            front_ends,
        } = SwarmTopology::new(
            o.request_workers,
            capacity,
            std::iter::repeat_n(WAKER, o.socket_workers),
        )
        .unwrap();
        let wakers: Vec<_> = front_ends.iter().map(|f| f.waker.clone()).collect();
        let mut threads = Vec::new();
        let mut stalled = Vec::new();
        for worker in request_workers {
            if o.stalled {
                front_ends[0].swarm.to_swarm[worker.index()]
                    .send(Batch::default())
                    .unwrap();
                stalled.push(worker);
                continue;
            }
            let settings = SwarmSettings {
                cleaning_interval: Duration::from_secs(60),
                max_peer_age: 3600,
                limits: Default::default(),
            };
            threads.push(worker.spawn(settings, clock, shutdown.clone()).unwrap());
        }
        let mut relay_rx = Vec::new();
        let relays: Vec<RelayPath> = wakers
            .iter()
            .map(|waker| {
                let (tx, rx) = bounded(RELAY_CAPACITY);
                relay_rx.push(rx);
                RelayPath {
                    sender: tx,
                    waker: waker.clone(),
                }
            })
            .collect();
        let settings = Arc::new(o.settings);
        let metrics = Arc::new(Metrics::new("test"));
        for (index, ((front, relay_in), listeners)) in front_ends
            .into_iter()
            .zip(relay_rx)
            .zip(per_worker)
            .enumerate()
        {
            let relay = RelayLink {
                inbox: relay_in,
                paths: relays.clone(),
            };
            let worker = SocketWorker::new(
                index,
                front.poll,
                front.swarm,
                relay,
                listeners,
                settings.clone(),
                shutdown.clone(),
            )
            .with_tls(o.tls.clone())
            .with_filter(o.filter.clone())
            .with_clock(clock)
            .with_metrics(metrics.request_counters(), metrics.connection_counters());
            threads.push(std::thread::spawn(move || worker.run()));
        }
        Tracker {
            listeners,
            shutdown,
            wakers,
            threads,
            _stalled: stalled,
            metrics,
        }
    }

    /// What `/metrics` would show now, summed over the socket workers.
    pub fn snapshot(&self) -> Snapshot {
        self.metrics.snapshot()
    }

    /// The first listener of the first worker.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0][0].addr
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP client

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub fn escape(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    percent_encode(&mut out, bytes, EscapeStyle::All);
    String::from_utf8(out).unwrap()
}

pub fn announce_target(info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}{extra}",
        escape(info_hash),
        escape(peer_id)
    )
}

pub fn scrape_target(hashes: &[[u8; 20]]) -> String {
    let mut t = "/scrape?".to_string();
    for (i, h) in hashes.iter().enumerate() {
        if i > 0 {
            t.push('&');
        }
        t.push_str("info_hash=");
        t.push_str(&escape(h));
    }
    t
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        self.body.escape_ascii().to_string()
    }
}

/// Reads one response with a Content-Length body; `buf` carries bytes read
/// past it to the next call.
pub fn read_response(stream: &mut impl Read, buf: &mut Vec<u8>) -> HttpResponse {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(buf).unwrap() {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let content_length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .expect("Content-Length");
            while buf.len() < len + content_length {
                read_more(stream, buf, deadline);
            }
            let body = buf[len..len + content_length].to_vec();
            buf.drain(..len + content_length);
            return HttpResponse {
                status,
                headers,
                body,
            };
        }
        read_more(stream, buf, deadline);
    }
}

fn read_more(stream: &mut impl Read, buf: &mut Vec<u8>, deadline: Instant) {
    assert!(Instant::now() < deadline, "no response in time");
    let mut chunk = [0u8; 16384];
    let n = stream.read(&mut chunk).expect("read");
    assert!(n > 0, "connection closed before the response was complete");
    buf.extend_from_slice(&chunk[..n]);
}

/// A GET on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> HttpResponse {
    get_with(addr, target, "")
}

pub fn get_with(addr: SocketAddr, target: &str, headers: &str) -> HttpResponse {
    let mut s = connect(addr);
    write!(s, "GET {target} HTTP/1.1\r\nHost: tracker\r\n{headers}\r\n").unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf)
}

/// True once the server has closed the connection (EOF or reset), reading
/// and discarding anything before that.
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

// ---------------------------------------------------------------------------
// WebSocket client

pub type Ws<S = TcpStream> = tungstenite::WebSocket<S>;

pub fn ws_connect(addr: SocketAddr) -> Ws {
    let s = connect(addr);
    let (ws, response) = tungstenite::client::client(format!("ws://{addr}/announce"), s).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// The next text message.
pub fn ws_recv<S: Read + Write>(ws: &mut Ws<S>) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub fn ws_send(ws: &mut Ws, text: impl Into<String>) {
    ws.send(tungstenite::Message::text(text.into())).unwrap();
}

/// Asserts no message arrives within `d`.
pub fn ws_silent(ws: &mut Ws, d: Duration) {
    ws.get_mut().set_read_timeout(Some(d)).unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    ws.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// A JSON binary string (quotes included), as the reference client writes
/// one for these bytes.
pub fn bin(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    tracker_proto::ws::write_binary_string(&mut out, bytes);
    String::from_utf8(out).unwrap()
}
