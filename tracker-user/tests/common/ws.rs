//! A WebSocket client (tungstenite) speaking the WebTorrent tracker
//! protocol, written for the tests independently of `tracker-proto`: JSON
//! through serde_json, binary strings (one char per byte, U+0000–U+00FF)
//! converted here.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use super::http::HTTP_TIMEOUT;
use super::tls::TlsStream;
use super::Rng;

/// How long a test waits for a message it expects.
pub const WS_TIMEOUT: Duration = Duration::from_secs(5);

/// A 20-byte id as a JSON "binary" string: byte b is char U+00bb.
pub fn bin(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The bytes of a binary string; panics on a char above U+00FF.
pub fn unbin(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .unwrap_or_else(|_| panic!("char {c:?} above U+00FF in binary string {s:?}"))
        })
        .collect()
}

/// The bytes of the binary string at `key` of a message.
pub fn bin_at(v: &Value, key: &str) -> Vec<u8> {
    unbin(
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string `{key}` in {v}")),
    )
}

pub fn int_at(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer `{key}` in {v}"))
}

/// A random 20-byte id; peer ids start with `-WW0001-`.
pub fn random_id() -> [u8; 20] {
    Rng::new().hash()
}

pub fn random_peer_id() -> [u8; 20] {
    let mut id = random_id();
    id[..8].copy_from_slice(b"-WW0001-");
    id
}

/// Streams whose read timeout can be set.
pub trait Timeout {
    fn set_timeout(&self, t: Duration);
}

impl Timeout for TcpStream {
    fn set_timeout(&self, t: Duration) {
        self.set_read_timeout(Some(t.max(Duration::from_millis(1))))
            .unwrap();
    }
}

impl Timeout for TlsStream {
    fn set_timeout(&self, t: Duration) {
        self.sock.set_timeout(t);
    }
}

/// What reading brought.
#[derive(Debug)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, EOF or a reset.
    Closed(String),
    Timeout,
}

pub struct WsClient<S: Read + Write + Timeout = TcpStream> {
    pub ws: WebSocket<S>,
    /// Messages read but set aside by [`WsClient::recv_matching`].
    stash: VecDeque<Value>,
}

/// A WebSocket on `path` of a plain listener.
pub fn connect(addr: SocketAddr, path: &str) -> WsClient<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    tcp.set_nodelay(true).unwrap();
    connect_over(tcp, &format!("ws://{addr}{path}"))
}

/// The handshake over a connected stream, `url` naming host and path.
pub fn connect_over<S: Read + Write + Timeout>(stream: S, url: &str) -> WsClient<S> {
    try_connect_over(stream, url).unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"))
}

pub fn try_connect_over<S: Read + Write + Timeout>(
    stream: S,
    url: &str,
) -> Result<WsClient<S>, String> {
    stream.set_timeout(HTTP_TIMEOUT);
    match tungstenite::client::client(url, stream) {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101, "upgrade status");
            Ok(WsClient {
                ws,
                stash: VecDeque::new(),
            })
        }
        Err(e) => Err(format!("{e}")),
    }
}

impl<S: Read + Write + Timeout> WsClient<S> {
    /// Wraps a WebSocket whose handshake was done elsewhere.
    pub fn from_websocket(ws: WebSocket<S>) -> Self {
        WsClient {
            ws,
            stash: VecDeque::new(),
        }
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .unwrap_or_else(|e| panic!("send {text:?}: {e}"));
    }

    pub fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Sends without waiting for the socket to take it all (for a peer
    /// that must not block on a slow tracker); errors are ignored.
    pub fn try_send_text(&mut self, text: &str) -> bool {
        self.ws.send(Message::text(text.to_owned())).is_ok()
    }

    /// The next data message, close, or a timeout.
    pub fn event(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Timeout;
            }
            self.ws.get_ref().set_timeout(left);
            match self.ws.read() {
                Ok(Message::Text(t)) => return Event::Text(t.to_string()),
                Ok(Message::Binary(b)) => return Event::Binary(b.to_vec()),
                Ok(Message::Close(c)) => return Event::Closed(format!("close frame {c:?}")),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => return Event::Closed(format!("{e}")),
            }
        }
    }

    /// The next message read from the socket as JSON, or None after
    /// `timeout`; panics if the connection closes or the message is not a
    /// JSON object.
    fn read_json(&mut self, timeout: Duration) -> Option<Value> {
        match self.event(timeout) {
            Event::Text(t) => {
                let v: Value = serde_json::from_str(&t)
                    .unwrap_or_else(|e| panic!("message is not JSON ({e}): {t:?}"));
                assert!(v.is_object(), "message is not a JSON object: {t}");
                Some(v)
            }
            Event::Timeout => None,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next message (first those set aside by [`Self::recv_matching`]),
    /// or None after `timeout`.
    pub fn recv_opt(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.stash.pop_front() {
            return Some(v);
        }
        self.read_json(timeout)
    }

    pub fn recv(&mut self) -> Value {
        self.recv_opt(WS_TIMEOUT)
            .unwrap_or_else(|| panic!("no message within {WS_TIMEOUT:?}"))
    }

    /// The first message (set aside or new) for which `pred` holds; others
    /// are set aside, in order, for later reads.
    pub fn recv_matching(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.stash.iter().position(&mut pred) {
            return self.stash.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.read_json(left)?;
            if pred(&v) {
                return Some(v);
            }
            self.stash.push_back(v);
        }
    }

    /// Asserts no message arrives within `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration, what: &str) {
        if let Some(v) = self.recv_opt(quiet) {
            panic!("{what}: unexpected message {v}");
        }
    }

    /// True if the connection ends (close frame, EOF, reset) within
    /// `timeout`, skipping any messages that arrive first.
    pub fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.event(left) {
                Event::Closed(_) => return true,
                Event::Timeout => return false,
                _ => continue,
            }
        }
    }

    /// The next announce reply to `info_hash` (relayed offers and answers,
    /// which carry `offer`/`answer`, are set aside); panics on a failure.
    pub fn announce_reply(&mut self, info_hash: &[u8; 20]) -> Value {
        let v = self
            .recv_matching(WS_TIMEOUT, |v| {
                v.get("failure reason").is_some()
                    || (v.get("offer").is_none()
                        && v.get("answer").is_none()
                        && v.get("action").and_then(Value::as_str) == Some("announce"))
            })
            .unwrap_or_else(|| panic!("no announce reply within {WS_TIMEOUT:?}"));
        if let Some(f) = v.get("failure reason") {
            panic!("announce failed: {f}: {v}");
        }
        assert_eq!(bin_at(&v, "info_hash"), info_hash, "reply info_hash: {v}");
        v
    }

    /// The next failure reply (others are set aside).
    pub fn failure(&mut self) -> Value {
        self.recv_matching(WS_TIMEOUT, |v| v.get("failure reason").is_some())
            .unwrap_or_else(|| panic!("no failure reply within {WS_TIMEOUT:?}"))
    }

    /// The next relayed offer or answer (others are set aside).
    pub fn relayed(&mut self, timeout: Duration) -> Option<Value> {
        self.recv_matching(timeout, |v| {
            v.get("offer").is_some() || v.get("answer").is_some()
        })
    }

    /// Sends a scrape and returns the reply's `files` as (hash → counts).
    pub fn scrape(&mut self, hashes: &[[u8; 20]]) -> Vec<([u8; 20], Counts)> {
        let list: Vec<String> = hashes.iter().map(|h| bin(h)).collect();
        self.send_json(&json!({"action": "scrape", "info_hash": list}));
        let v = self.next_scrape();
        parse_files(&v)
    }

    /// The counts of one torrent (zeros if the reply leaves it out).
    pub fn scrape_one(&mut self, hash: &[u8; 20]) -> Counts {
        self.scrape(&[*hash])
            .into_iter()
            .find(|(h, _)| h == hash)
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    /// The next scrape reply or failure (others are set aside).
    pub fn next_scrape(&mut self) -> Value {
        self.recv_matching(WS_TIMEOUT, |v| {
            v.get("action").and_then(Value::as_str) == Some("scrape")
                || v.get("failure reason").is_some()
        })
        .unwrap_or_else(|| panic!("no scrape reply within {WS_TIMEOUT:?}"))
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// Counts in a scrape reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    pub complete: i64,
    pub incomplete: i64,
    pub downloaded: i64,
}

pub fn parse_files(v: &Value) -> Vec<([u8; 20], Counts)> {
    if let Some(f) = v.get("failure reason") {
        panic!("scrape failed: {f}: {v}");
    }
    assert_eq!(v["action"], "scrape", "scrape reply action: {v}");
    let files = v
        .get("files")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no `files` object in {v}"));
    files
        .iter()
        .map(|(k, c)| {
            let hash: [u8; 20] = unbin(k)
                .try_into()
                .unwrap_or_else(|_| panic!("scrape key {k:?} is not 20 chars"));
            (
                hash,
                Counts {
                    complete: int_at(c, "complete"),
                    incomplete: int_at(c, "incomplete"),
                    downloaded: int_at(c, "downloaded"),
                },
            )
        })
        .collect()
}

/// An announce message. `offers` are (offer_id, sdp).
pub fn announce_msg(
    info_hash: &[u8; 20],
    peer_id: &[u8; 20],
    left: u64,
    event: Option<&str>,
    numwant: Option<u64>,
    offers: &[(Vec<u8>, String)],
) -> Value {
    let mut m = json!({
        "action": "announce",
        "info_hash": bin(info_hash),
        "peer_id": bin(peer_id),
        "uploaded": 0,
        "downloaded": 0,
        "left": left,
    });
    if let Some(e) = event {
        m["event"] = json!(e);
    }
    if let Some(n) = numwant {
        m["numwant"] = json!(n);
    }
    if !offers.is_empty() {
        m["offers"] = offers
            .iter()
            .map(|(id, sdp)| json!({"offer_id": bin(id), "offer": {"type": "offer", "sdp": sdp}}))
            .collect();
    }
    m
}

/// An answer message to `to_peer_id`'s offer `offer_id`.
pub fn answer_msg(
    info_hash: &[u8; 20],
    peer_id: &[u8; 20],
    to_peer_id: &[u8],
    offer_id: &[u8],
    sdp: &str,
) -> Value {
    json!({
        "action": "announce",
        "info_hash": bin(info_hash),
        "peer_id": bin(peer_id),
        "to_peer_id": bin(to_peer_id),
        "offer_id": bin(offer_id),
        "answer": {"type": "answer", "sdp": sdp},
    })
}

/// A fake but plausible SDP of about `len` bytes, unique per call.
pub fn fake_sdp(len: usize) -> String {
    let mut rng = Rng::new();
    let mut s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n",
        rng.u64()
    );
    while s.len() < len {
        s.push_str(&format!(
            "a=candidate:{} 1 udp 2122260223 192.0.2.1 {} typ host\r\n",
            rng.u32(),
            rng.u32() % 65536
        ));
    }
    s
}

/// A WebTorrent peer: one connection and the ids it announces with.
pub struct Peer<S: Read + Write + Timeout = TcpStream> {
    pub c: WsClient<S>,
    pub peer_id: [u8; 20],
}

impl Peer<TcpStream> {
    pub fn connect(addr: SocketAddr) -> Self {
        Peer {
            c: connect(addr, "/announce"),
            peer_id: random_peer_id(),
        }
    }
}

impl Peer<TlsStream> {
    /// A peer over `wss://` to a TLS listener, trusting `config`'s roots.
    pub fn connect_tls(addr: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        let stream = super::tls::connect(addr, config);
        Peer {
            c: connect_over(stream, &format!("wss://{addr}/announce")),
            peer_id: random_peer_id(),
        }
    }
}

impl<S: Read + Write + Timeout> Peer<S> {
    /// Announces (`started`, no offers) and returns the reply.
    pub fn join(&mut self, info_hash: &[u8; 20], left: u64) -> Value {
        let m = announce_msg(
            info_hash,
            &self.peer_id,
            left,
            Some("started"),
            Some(0),
            &[],
        );
        self.c.send_json(&m);
        self.c.announce_reply(info_hash)
    }

    /// Announces with offers; returns the reply.
    pub fn offer(
        &mut self,
        info_hash: &[u8; 20],
        numwant: u64,
        offers: &[(Vec<u8>, String)],
    ) -> Value {
        let m = announce_msg(info_hash, &self.peer_id, 1000, None, Some(numwant), offers);
        self.c.send_json(&m);
        self.c.announce_reply(info_hash)
    }
}
