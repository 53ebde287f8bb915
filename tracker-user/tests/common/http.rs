//! A small HTTP/1.1 client and the HTTP tracker protocol (BEP 3, 7, 23, 48)
//! written for the tests, independently of `tracker-proto`: requests are
//! built by hand, responses are read byte by byte and decoded with the
//! strict decoder in [`super::bencode`].

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::bencode::{self, Value};
use super::Rng;

/// How long a test waits for one response.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Percent-encoding, in the styles real clients use
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// `%XX` for every byte, upper-case hex (some old clients).
    AllUpper,
    /// `%xx` for every byte, lower-case hex.
    AllLower,
    /// RFC 3986 unreserved bytes raw, the rest `%XX` (libtorrent).
    Unreserved,
    /// Unreserved raw, the rest `%xx` in lower case.
    UnreservedLower,
}

pub fn escape(bytes: &[u8], style: Escape) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        match style {
            Escape::AllUpper => s.push_str(&format!("%{b:02X}")),
            Escape::AllLower => s.push_str(&format!("%{b:02x}")),
            Escape::Unreserved if unreserved => s.push(b as char),
            Escape::Unreserved => s.push_str(&format!("%{b:02X}")),
            Escape::UnreservedLower if unreserved => s.push(b as char),
            Escape::UnreservedLower => s.push_str(&format!("%{b:02x}")),
        }
    }
    s
}

// ---------------------------------------------------------------------------
// HTTP/1.1 on one connection
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        self.body.escape_ascii().to_string()
    }

    /// The body decoded as bencode (strictly).
    pub fn bencode(&self) -> Value {
        bencode::decode(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of `{}` is not valid bencode ({e}): b\"{}\"",
                self.status_line,
                self.body_text()
            )
        })
    }

    /// The `failure reason` of a bencoded body that is exactly
    /// `d14:failure reason<n>:<text>e`; None for any other well-formed
    /// dictionary.
    pub fn failure(&self) -> Option<String> {
        let v = self.bencode();
        let reason = v.get("failure reason")?;
        assert_eq!(
            v.keys(),
            ["failure reason"],
            "a failure carries only `failure reason`: {v:?}"
        );
        let text = String::from_utf8(reason.bytes().to_vec())
            .unwrap_or_else(|_| panic!("failure reason is not UTF-8: {v:?}"));
        assert!(!text.is_empty(), "empty failure reason");
        Some(text)
    }

    /// Asserts a bencoded failure with HTTP status `status`; returns the text.
    pub fn expect_failure(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "status of a failure (`{}`), body b\"{}\"",
            self.status_line,
            self.body_text()
        );
        self.failure()
            .unwrap_or_else(|| panic!("expected a failure reason, got {:?}", self.bencode()))
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// How reading a response ended without one.
#[derive(Debug, PartialEq, Eq)]
pub enum NoResponse {
    /// The server closed the connection (EOF or reset) before a response
    /// began; holds what it had sent of one.
    Closed(Vec<u8>),
    /// Nothing (complete) within the timeout.
    Timeout(Vec<u8>),
}

pub struct HttpConn<S: Read + Write = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
    host: String,
}

impl HttpConn<TcpStream> {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        HttpConn::new(stream, &addr.to_string())
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }
}

impl<S: Read + Write> HttpConn<S> {
    /// A connection over any stream; a TCP stream's read timeout should be
    /// set by the caller.
    pub fn new(stream: S, host: &str) -> Self {
        HttpConn {
            stream,
            buf: Vec::new(),
            host: host.to_owned(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
        self.stream.flush().expect("flush request");
    }

    /// `GET target HTTP/1.1` with Host and `extra` header lines ("Name: v").
    pub fn request_bytes(&self, target: &str, extra: &[&str]) -> Vec<u8> {
        let mut r = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for h in extra {
            r.push_str(h);
            r.push_str("\r\n");
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    pub fn get(&mut self, target: &str) -> HttpResponse {
        self.get_with(target, &[])
    }

    pub fn get_with(&mut self, target: &str, extra: &[&str]) -> HttpResponse {
        let req = self.request_bytes(target, extra);
        self.send(&req);
        self.response()
    }

    /// Reads one response, panicking if none comes.
    pub fn response(&mut self) -> HttpResponse {
        match self.try_response() {
            Ok(r) => r,
            Err(e) => panic!("no HTTP response: {e:?}"),
        }
    }

    fn fill(&mut self) -> Result<(), NoResponse> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(NoResponse::Closed(std::mem::take(&mut self.buf))),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(NoResponse::Timeout(self.buf.clone()))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(_) => Err(NoResponse::Closed(std::mem::take(&mut self.buf))),
        }
    }

    /// Reads one response (head, then exactly Content-Length body bytes).
    pub fn try_response(&mut self) -> Result<HttpResponse, NoResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec())
            .unwrap_or_else(|_| panic!("response head is not UTF-8: {:?}", &self.buf[..head_end]));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        assert!(
            version == "HTTP/1.1" || version == "HTTP/1.0",
            "bad status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?} in {head:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        assert!(
            !headers
                .iter()
                .any(|(n, v)| n == "transfer-encoding" && !v.eq_ignore_ascii_case("identity")),
            "responses must carry Content-Length, not a transfer encoding: {head:?}"
        );
        let lengths: Vec<&(String, String)> = headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .collect();
        assert_eq!(lengths.len(), 1, "exactly one Content-Length in {head:?}");
        let len: usize = lengths[0]
            .1
            .parse()
            .unwrap_or_else(|_| panic!("bad Content-Length in {head:?}"));
        let total = head_end + 4 + len;
        while self.buf.len() < total {
            match self.fill() {
                Ok(()) => {}
                Err(NoResponse::Closed(got)) => panic!(
                    "connection closed after {} of {len} body bytes: {:?}",
                    got.len() - head_end - 4,
                    String::from_utf8_lossy(&got)
                ),
                Err(NoResponse::Timeout(got)) => panic!(
                    "timed out after {} of {len} body bytes: {:?}",
                    got.len() - head_end - 4,
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        let body = self.buf[head_end + 4..total].to_vec();
        self.buf.drain(..total);
        Ok(HttpResponse {
            status,
            status_line,
            headers,
            body,
        })
    }

    /// True if the server closes the connection (EOF or reset) within
    /// `timeout` without sending anything more; panics if it sends bytes.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buf.is_empty() {
                panic!(
                    "expected the connection to close, got bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
            match self.fill() {
                Err(NoResponse::Closed(got)) if got.is_empty() => return true,
                Err(NoResponse::Closed(got)) => panic!(
                    "expected the connection to close, got bytes: {:?}",
                    String::from_utf8_lossy(&got)
                ),
                Err(NoResponse::Timeout(_)) if Instant::now() >= deadline => return false,
                _ => {}
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, target: &str) -> HttpResponse {
    HttpConn::connect(addr).get(target)
}

/// One request with extra header lines on a fresh connection.
pub fn get_with(addr: SocketAddr, target: &str, extra: &[&str]) -> HttpResponse {
    HttpConn::connect(addr).get_with(target, extra)
}

// ---------------------------------------------------------------------------
// Announce
// ---------------------------------------------------------------------------

/// An HTTP announce; every parameter can be left out or set.
#[derive(Clone, Debug)]
pub struct HttpAnnounce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: Option<u16>,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: Option<u64>,
    pub event: Option<&'static str>,
    pub numwant: Option<i64>,
    /// `Some(true)`: `compact=1`; `Some(false)`: `compact=0`; None: absent.
    pub compact: Option<bool>,
    pub no_peer_id: bool,
    pub key: Option<String>,
    pub style: Escape,
    /// More `name=value` pairs, appended as given.
    pub extra: Vec<String>,
}

impl HttpAnnounce {
    /// A leecher (`left=1000`) with a random peer id, `compact=1`.
    pub fn new(info_hash: [u8; 20], port: u16) -> Self {
        let mut rng = Rng::new();
        let mut peer_id = [0; 20];
        peer_id[..8].copy_from_slice(b"-HT0001-");
        rng.fill(&mut peer_id[8..]);
        HttpAnnounce {
            info_hash,
            peer_id,
            port: Some(port),
            uploaded: 0,
            downloaded: 0,
            left: Some(1000),
            event: None,
            numwant: None,
            compact: Some(true),
            no_peer_id: false,
            key: Some(format!("{:08x}", rng.u32())),
            style: Escape::Unreserved,
            extra: Vec::new(),
        }
    }

    pub fn seeder(mut self) -> Self {
        self.left = Some(0);
        self
    }
    pub fn left(mut self, left: Option<u64>) -> Self {
        self.left = left;
        self
    }
    pub fn event(mut self, e: &'static str) -> Self {
        self.event = Some(e);
        self
    }
    pub fn numwant(mut self, n: i64) -> Self {
        self.numwant = Some(n);
        self
    }
    pub fn compact(mut self, c: Option<bool>) -> Self {
        self.compact = c;
        self
    }
    pub fn peer_id(mut self, id: [u8; 20]) -> Self {
        self.peer_id = id;
        self
    }
    pub fn style(mut self, s: Escape) -> Self {
        self.style = s;
        self
    }
    pub fn port(mut self, p: Option<u16>) -> Self {
        self.port = p;
        self
    }
    pub fn extra(mut self, pair: &str) -> Self {
        self.extra.push(pair.to_owned());
        self
    }

    pub fn query(&self) -> String {
        let mut q = vec![
            format!("info_hash={}", escape(&self.info_hash, self.style)),
            format!("peer_id={}", escape(&self.peer_id, self.style)),
        ];
        if let Some(p) = self.port {
            q.push(format!("port={p}"));
        }
        q.push(format!("uploaded={}", self.uploaded));
        q.push(format!("downloaded={}", self.downloaded));
        if let Some(l) = self.left {
            q.push(format!("left={l}"));
        }
        if let Some(e) = self.event {
            q.push(format!("event={e}"));
        }
        if let Some(n) = self.numwant {
            q.push(format!("numwant={n}"));
        }
        if let Some(c) = self.compact {
            q.push(format!("compact={}", u8::from(c)));
        }
        if self.no_peer_id {
            q.push("no_peer_id=1".into());
        }
        if let Some(k) = &self.key {
            q.push(format!("key={k}"));
        }
        q.extend(self.extra.iter().cloned());
        q.join("&")
    }

    pub fn target(&self) -> String {
        format!("/announce?{}", self.query())
    }
}

/// A decoded announce response.
#[derive(Clone, Debug)]
pub struct AnnounceOk {
    pub complete: i64,
    pub incomplete: i64,
    pub interval: i64,
    pub min_interval: Option<i64>,
    /// From `peers`, compact or dictionaries.
    pub peers: Vec<SocketAddr>,
    /// Whether `peers` was a byte string (compact) or a list.
    pub compact: bool,
    /// From `peers6`; empty when the key is absent.
    pub peers6: Vec<SocketAddr>,
    pub raw: Value,
}

impl AnnounceOk {
    /// Every peer from `peers` and `peers6`, checked to be unique.
    pub fn all_peers(&self) -> std::collections::HashSet<SocketAddr> {
        let all: Vec<SocketAddr> = self.peers.iter().chain(&self.peers6).copied().collect();
        let set: std::collections::HashSet<SocketAddr> = all.iter().copied().collect();
        assert_eq!(set.len(), all.len(), "duplicate peers: {all:?}");
        set
    }
}

pub fn compact_v4(bytes: &[u8]) -> Vec<SocketAddr> {
    assert_eq!(bytes.len() % 6, 0, "compact peers of {} bytes", bytes.len());
    bytes
        .chunks(6)
        .map(|c| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                u16::from_be_bytes([c[4], c[5]]),
            )
        })
        .collect()
}

pub fn compact_v6(bytes: &[u8]) -> Vec<SocketAddr> {
    assert_eq!(
        bytes.len() % 18,
        0,
        "compact peers6 of {} bytes",
        bytes.len()
    );
    bytes
        .chunks(18)
        .map(|c| {
            let ip: [u8; 16] = c[..16].try_into().unwrap();
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([c[16], c[17]]),
            )
        })
        .collect()
}

/// Decodes an announce response, panicking on a failure or anything
/// malformed. Checks status 200 and that keys are only the known ones.
pub fn parse_announce(resp: &HttpResponse) -> AnnounceOk {
    assert_eq!(
        resp.status,
        200,
        "announce status: `{}` b\"{}\"",
        resp.status_line,
        resp.body_text()
    );
    let v = resp.bencode();
    if let Some(f) = v.get("failure reason") {
        panic!("announce failed: {:?}", String::from_utf8_lossy(f.bytes()));
    }
    for k in v.keys() {
        assert!(
            [
                "complete",
                "incomplete",
                "interval",
                "min interval",
                "peers",
                "peers6",
                "external ip",
                "warning message"
            ]
            .contains(&k.as_str()),
            "unexpected key `{k}` in announce response {v:?}"
        );
    }
    let (peers, compact) = match v
        .get("peers")
        .unwrap_or_else(|| panic!("no `peers` in {v:?}"))
    {
        Value::Bytes(b) => (compact_v4(b), true),
        Value::List(l) => (
            l.iter()
                .map(|p| {
                    let keys = p.keys();
                    assert_eq!(
                        keys,
                        ["ip", "port"],
                        "a peer dictionary holds ip and port only: {p:?}"
                    );
                    let ip: IpAddr = std::str::from_utf8(p.bytes_at("ip"))
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("bad ip in {p:?}"));
                    let port = u16::try_from(p.int_at("port")).expect("port fits u16");
                    SocketAddr::new(ip, port)
                })
                .collect(),
            false,
        ),
        other => panic!("`peers` is neither bytes nor a list: {other:?}"),
    };
    let peers6 = v
        .get("peers6")
        .map(|p| compact_v6(p.bytes()))
        .unwrap_or_default();
    AnnounceOk {
        complete: v.int_at("complete"),
        incomplete: v.int_at("incomplete"),
        interval: v.int_at("interval"),
        min_interval: v.get("min interval").map(Value::int),
        peers,
        compact,
        peers6,
        raw: v,
    }
}

pub fn announce(addr: SocketAddr, a: &HttpAnnounce) -> AnnounceOk {
    parse_announce(&get(addr, &a.target()))
}

/// Announces expecting a failure (status 200); returns its text.
pub fn announce_failure(addr: SocketAddr, a: &HttpAnnounce) -> String {
    get(addr, &a.target()).expect_failure(200)
}

// ---------------------------------------------------------------------------
// Scrape
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeCounts {
    pub complete: i64,
    pub downloaded: i64,
    pub incomplete: i64,
}

pub fn scrape_target(hashes: &[[u8; 20]], style: Escape) -> String {
    let q: Vec<String> = hashes
        .iter()
        .map(|h| format!("info_hash={}", escape(h, style)))
        .collect();
    if q.is_empty() {
        "/scrape".into()
    } else {
        format!("/scrape?{}", q.join("&"))
    }
}

/// Decodes `d5:filesd20:<hash>d8:completei..e10:downloadedi..e10:incompletei..eeee`.
pub fn parse_scrape(resp: &HttpResponse) -> BTreeMap<[u8; 20], ScrapeCounts> {
    assert_eq!(
        resp.status,
        200,
        "scrape status: `{}` b\"{}\"",
        resp.status_line,
        resp.body_text()
    );
    let v = resp.bencode();
    if let Some(f) = v.get("failure reason") {
        panic!("scrape failed: {:?}", String::from_utf8_lossy(f.bytes()));
    }
    let files = v
        .get("files")
        .unwrap_or_else(|| panic!("no `files` in {v:?}"));
    let mut out = BTreeMap::new();
    for (hash, counts) in files.dict() {
        let hash: [u8; 20] = hash
            .as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("scrape key of {} bytes", hash.len()));
        assert_eq!(
            counts.keys(),
            ["complete", "downloaded", "incomplete"],
            "scrape entry keys: {counts:?}"
        );
        out.insert(
            hash,
            ScrapeCounts {
                complete: counts.int_at("complete"),
                downloaded: counts.int_at("downloaded"),
                incomplete: counts.int_at("incomplete"),
            },
        );
    }
    out
}

pub fn scrape(addr: SocketAddr, hashes: &[[u8; 20]]) -> BTreeMap<[u8; 20], ScrapeCounts> {
    parse_scrape(&get(addr, &scrape_target(hashes, Escape::AllUpper)))
}

/// The counts of one torrent.
pub fn scrape_one(addr: SocketAddr, hash: [u8; 20]) -> ScrapeCounts {
    let files = scrape(addr, &[hash]);
    *files
        .get(&hash)
        .unwrap_or_else(|| panic!("scrape has no entry for the asked hash: {files:?}"))
}
