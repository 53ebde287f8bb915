//! The HTTP tracker protocol (BEP 3), with IPv6 peers (BEP 7), compact peer
//! lists (BEP 23), `external ip` (BEP 24) and the scrape convention (BEP 48).
//!
//! Only the request target (path and query) is parsed here; the HTTP framing
//! is the server's business. Parsing borrows from the target and never
//! allocates; responses are bencoded straight into a caller's `Vec<u8>`.
//! Every parser is total: untrusted input yields a value or an error, never a
//! panic.
//!
//! # Percent-decoding
//!
//! `info_hash` and `peer_id` are 20 raw bytes, and clients disagree on which
//! of them to escape: libtorrent (and so qBittorrent and Deluge) escapes
//! everything outside the RFC 3986 unreserved set, Transmission does the same
//! with upper-case hex, some older clients escape every byte, others only the
//! bytes a URL cannot hold. All of these decode the same way here: `%XX`
//! (either hex case) is one byte, anything else is itself. In particular a
//! raw `+` is the byte 0x2B, not a space: `+`-for-space is HTML form
//! encoding, which no BitTorrent client uses for binary values (they all
//! escape 0x20 as `%20`), so a raw `+` can only come from a client that
//! counts it among the safe bytes. A `%` not followed by two hex digits is an
//! error rather than a literal `%`, because no client sends one unescaped
//! and guessing would hide the bug.

use core::fmt;
use std::net::IpAddr;

use crate::common::{AnnounceEvent, InfoHash, PeerId};
use crate::udp::{peers_v4_as_bytes, peers_v6_as_bytes, PeerV4, PeerV6};

/// Longest `key` accepted, counted in bytes as sent (still escaped). Real
/// clients send 8 to 32 characters; the cap only bounds what a server might
/// store per peer.
pub const MAX_KEY_LEN: usize = 128;

const ID_LEN: usize = 20;

// ---------------------------------------------------------------------------
// Query strings

/// Splits a request target into path and query (without the `?`). A
/// fragment, which clients should not send, is dropped.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    };
    match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &[]),
    }
}

/// The `name=value` pairs of a query string, both still percent-encoded.
/// Empty pairs (`&&`) are skipped; a pair without `=` has an empty value.
pub fn query_pairs(query: &[u8]) -> QueryPairs<'_> {
    QueryPairs { rest: query }
}

/// Iterator returned by [`query_pairs`].
#[derive(Clone, Debug)]
pub struct QueryPairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for QueryPairs<'a> {
    type Item = (&'a [u8], EncodedValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (pair, rest) = match self.rest.iter().position(|&b| b == b'&') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            if pair.is_empty() {
                continue;
            }
            return Some(match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], EncodedValue(&pair[i + 1..])),
                None => (pair, EncodedValue(&[])),
            });
        }
    }
}

impl core::iter::FusedIterator for QueryPairs<'_> {}

/// A query value exactly as sent, still percent-encoded. Kept undecoded so
/// that parameters the server may never look at cost nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncodedValue<'a>(pub &'a [u8]);

/// A `%` not followed by two hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEscape;

impl fmt::Display for BadEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid percent-encoding")
    }
}

impl std::error::Error for BadEscape {}

impl<'a> EncodedValue<'a> {
    pub const fn raw(&self) -> &'a [u8] {
        self.0
    }

    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decoded bytes, one at a time.
    pub fn decode(&self) -> Decode<'a> {
        Decode { rest: self.0 }
    }

    /// Decodes into `out`, returning the decoded length, or `None` when the
    /// value does not fit or is badly escaped.
    pub fn decode_into(&self, out: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        for b in self.decode() {
            *out.get_mut(n)? = b.ok()?;
            n += 1;
        }
        Some(n)
    }

    pub fn decode_to_vec(&self) -> Result<Vec<u8>, BadEscape> {
        self.decode().collect()
    }

    /// Decodes a value that must be exactly `N` bytes.
    fn decode_exact<const N: usize>(&self) -> Result<[u8; N], FixedError> {
        let mut out = [0u8; N];
        let mut n = 0;
        for b in self.decode() {
            let b = b.map_err(|BadEscape| FixedError::Escape)?;
            *out.get_mut(n).ok_or(FixedError::Length)? = b;
            n += 1;
        }
        if n == N {
            Ok(out)
        } else {
            Err(FixedError::Length)
        }
    }

    /// Parses the value as an IP address (IPv6 colons may be escaped).
    /// `None` for host names and garbage, which a tracker ignores anyway.
    pub fn ip_addr(&self) -> Option<IpAddr> {
        // 45 bytes hold the longest textual IPv6 address.
        let mut buf = [0u8; 48];
        let n = self.decode_into(&mut buf)?;
        core::str::from_utf8(buf.get(..n)?).ok()?.parse().ok()
    }
}

impl fmt::Debug for EncodedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Iterator returned by [`EncodedValue::decode`]. After a bad escape it
/// yields the error and stops.
#[derive(Clone, Debug)]
pub struct Decode<'a> {
    rest: &'a [u8],
}

impl Iterator for Decode<'_> {
    type Item = Result<u8, BadEscape>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&b, rest) = self.rest.split_first()?;
        if b != b'%' {
            self.rest = rest;
            return Some(Ok(b));
        }
        match rest {
            [hi, lo, tail @ ..] => match (hex_value(*hi), hex_value(*lo)) {
                (Some(hi), Some(lo)) => {
                    self.rest = tail;
                    Some(Ok((hi << 4) | lo))
                }
                _ => {
                    self.rest = &[];
                    Some(Err(BadEscape))
                }
            },
            _ => {
                self.rest = &[];
                Some(Err(BadEscape))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A bad escape ends decoding early, so there is no useful lower bound.
        (0, Some(self.rest.len()))
    }
}

impl core::iter::FusedIterator for Decode<'_> {}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

enum FixedError {
    Escape,
    Length,
}

/// Which bytes [`percent_encode`] leaves raw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscapeStyle {
    /// Every byte as `%XX`, as some older clients send.
    All,
    /// All but the RFC 3986 unreserved bytes (`A-Z a-z 0-9 - . _ ~`), as
    /// libtorrent and Transmission send.
    Reserved,
}

/// Appends `bytes` percent-encoded (upper-case hex) to `out`; for clients,
/// the load tester and tests.
pub fn percent_encode(out: &mut Vec<u8>, bytes: &[u8], style: EscapeStyle) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 3);
    for &b in bytes {
        let raw = style == EscapeStyle::Reserved
            && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if raw {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

// ---------------------------------------------------------------------------
// Requests

/// A parsed announce or scrape request target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRequest<'a> {
    Announce(AnnounceQuery<'a>),
    Scrape(ScrapeQuery<'a>),
}

/// An announce's query parameters. Unknown parameters are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceQuery<'a> {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Never 0: a peer at port 0 cannot be connected to.
    pub port: u16,
    /// 0 when missing.
    pub uploaded: u64,
    /// 0 when missing.
    pub downloaded: u64,
    /// `None` when missing, as clients starting from a magnet link do before
    /// they know the size; such a peer is not a seeder.
    pub left: Option<u64>,
    /// `event=paused` (BEP 21, sent by libtorrent for partial seeds) is a
    /// regular announce here, with [`Self::paused`] set.
    pub event: AnnounceEvent,
    /// The peer is a partial seed (BEP 21 `event=paused`).
    pub paused: bool,
    /// `None` when missing, empty or negative (some clients send -1, as
    /// over UDP): the tracker's default applies. Large values saturate.
    pub numwant: Option<u32>,
    /// `compact=1`. Anything else, including absence, asks for the BEP 3
    /// list of dictionaries.
    pub compact: bool,
    /// `no_peer_id=1`: omit `peer id` from a non-compact list.
    pub no_peer_id: bool,
    /// Identifies the peer across IP changes; still escaped, at most
    /// [`MAX_KEY_LEN`] bytes.
    pub key: Option<EncodedValue<'a>>,
    /// The address the client claims (BEP 3 `ip`, BEP 7 `ipv4`/`ipv6`).
    /// Trackers normally ignore it; kept raw, see [`EncodedValue::ip_addr`].
    pub ip: Option<EncodedValue<'a>>,
    pub ipv4: Option<EncodedValue<'a>>,
    pub ipv6: Option<EncodedValue<'a>>,
}

/// A scrape's info hashes, validated at parse time and decoded again on
/// iteration, so that a scrape allocates nothing however many hashes it
/// names. The server caps how many it answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScrapeQuery<'a> {
    query: &'a [u8],
    count: usize,
}

/// Why a request target was refused. [`Self::message`] is fit for a
/// `failure reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpParseError {
    /// The last path segment starts with neither `announce` nor `scrape`.
    UnknownPath,
    MissingInfoHash,
    InfoHashEncoding,
    InfoHashLength,
    /// An announce names more than one `info_hash`.
    DuplicateInfoHash,
    MissingPeerId,
    PeerIdEncoding,
    PeerIdLength,
    MissingPort,
    /// Not a number in 1..=65535.
    InvalidPort,
    InvalidUploaded,
    InvalidDownloaded,
    InvalidLeft,
    InvalidNumwant,
    UnknownEvent,
    KeyTooLong,
}

impl HttpParseError {
    pub const fn message(&self) -> &'static str {
        match self {
            Self::UnknownPath => "unknown path",
            Self::MissingInfoHash => "missing info_hash",
            Self::InfoHashEncoding => "invalid percent-encoding in info_hash",
            Self::InfoHashLength => "info_hash is not 20 bytes",
            Self::DuplicateInfoHash => "more than one info_hash in announce",
            Self::MissingPeerId => "missing peer_id",
            Self::PeerIdEncoding => "invalid percent-encoding in peer_id",
            Self::PeerIdLength => "peer_id is not 20 bytes",
            Self::MissingPort => "missing port",
            Self::InvalidPort => "invalid port",
            Self::InvalidUploaded => "invalid uploaded",
            Self::InvalidDownloaded => "invalid downloaded",
            Self::InvalidLeft => "invalid left",
            Self::InvalidNumwant => "invalid numwant",
            Self::UnknownEvent => "unknown event",
            Self::KeyTooLong => "key too long",
        }
    }
}

impl fmt::Display for HttpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HttpParseError {}

/// Which request the path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Announce,
    Scrape,
}

impl Endpoint {
    /// Decides by the last path segment alone, so that `/announce`,
    /// `/<passkey>/announce` and `/announce.php` all announce. BEP 48 derives
    /// a scrape URL by replacing the `announce` that starts the last segment
    /// with `scrape`, so a prefix match covers the matching scrape URLs too.
    pub fn from_path(path: &[u8]) -> Option<Self> {
        let last = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[i + 1..],
            None => path,
        };
        if last.starts_with(b"announce") {
            Some(Endpoint::Announce)
        } else if last.starts_with(b"scrape") {
            Some(Endpoint::Scrape)
        } else {
            None
        }
    }
}

impl<'a> HttpRequest<'a> {
    /// Parses the target of a GET: path and query, as on the request line.
    pub fn parse(target: &'a [u8]) -> Result<Self, HttpParseError> {
        let (path, query) = split_target(target);
        match Endpoint::from_path(path).ok_or(HttpParseError::UnknownPath)? {
            Endpoint::Announce => AnnounceQuery::parse(query).map(HttpRequest::Announce),
            Endpoint::Scrape => ScrapeQuery::parse(query).map(HttpRequest::Scrape),
        }
    }
}

/// A decimal counter. A leading `-` (sent by a few broken clients) is
/// reported separately so each field can decide what it means; overflow
/// saturates because no real count gets near 2^64.
enum Number {
    NonNegative(u64),
    Negative,
}

fn parse_number(raw: &[u8]) -> Option<Number> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if negative {
        return Some(Number::Negative);
    }
    let value = digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Number::NonNegative(value))
}

/// A counter that defaults to 0; negative values count as 0.
fn parse_counter(raw: &[u8], err: HttpParseError) -> Result<u64, HttpParseError> {
    if raw.is_empty() {
        return Ok(0);
    }
    match parse_number(raw).ok_or(err)? {
        Number::NonNegative(v) => Ok(v),
        Number::Negative => Ok(0),
    }
}

/// An optional count; empty and negative mean "not given".
fn parse_optional(raw: &[u8], err: HttpParseError) -> Result<Option<u64>, HttpParseError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match parse_number(raw).ok_or(err)? {
        Number::NonNegative(v) => Ok(Some(v)),
        Number::Negative => Ok(None),
    }
}

fn parse_event(raw: &[u8]) -> Result<(AnnounceEvent, bool), HttpParseError> {
    Ok(match raw {
        b"started" => (AnnounceEvent::Started, false),
        b"completed" => (AnnounceEvent::Completed, false),
        b"stopped" => (AnnounceEvent::Stopped, false),
        // BEP 3 says an empty event is the same as none; some clients spell
        // that out as the word "empty".
        b"" | b"empty" => (AnnounceEvent::None, false),
        b"paused" => (AnnounceEvent::None, true),
        _ => return Err(HttpParseError::UnknownEvent),
    })
}

fn decode_info_hash(value: EncodedValue<'_>) -> Result<InfoHash, HttpParseError> {
    value
        .decode_exact::<ID_LEN>()
        .map(InfoHash)
        .map_err(|e| match e {
            FixedError::Escape => HttpParseError::InfoHashEncoding,
            FixedError::Length => HttpParseError::InfoHashLength,
        })
}

impl<'a> AnnounceQuery<'a> {
    /// Parses an announce query string (what follows the `?`). A repeated
    /// parameter keeps its last value, except `info_hash`: two of those
    /// make the announce ambiguous.
    pub fn parse(query: &'a [u8]) -> Result<Self, HttpParseError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = 0;
        let mut downloaded = 0;
        let mut left = None;
        let mut event = (AnnounceEvent::None, false);
        let mut numwant = None;
        let mut compact = false;
        let mut no_peer_id = false;
        let mut key = None;
        let mut ip = None;
        let mut ipv4 = None;
        let mut ipv6 = None;

        for (name, value) in query_pairs(query) {
            let raw = value.raw();
            match name {
                b"info_hash" => {
                    if info_hash.is_some() {
                        return Err(HttpParseError::DuplicateInfoHash);
                    }
                    info_hash = Some(decode_info_hash(value)?);
                }
                b"peer_id" => {
                    let id = value.decode_exact::<ID_LEN>().map_err(|e| match e {
                        FixedError::Escape => HttpParseError::PeerIdEncoding,
                        FixedError::Length => HttpParseError::PeerIdLength,
                    })?;
                    peer_id = Some(PeerId(id));
                }
                b"port" => {
                    let p = match parse_number(raw) {
                        Some(Number::NonNegative(p)) => u16::try_from(p).ok(),
                        _ => None,
                    };
                    port = Some(p.filter(|&p| p != 0).ok_or(HttpParseError::InvalidPort)?);
                }
                b"uploaded" => uploaded = parse_counter(raw, HttpParseError::InvalidUploaded)?,
                b"downloaded" => {
                    downloaded = parse_counter(raw, HttpParseError::InvalidDownloaded)?;
                }
                b"left" => left = parse_optional(raw, HttpParseError::InvalidLeft)?,
                b"event" => event = parse_event(raw)?,
                b"numwant" => {
                    numwant = parse_optional(raw, HttpParseError::InvalidNumwant)?
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
                }
                b"compact" => compact = raw == b"1",
                b"no_peer_id" => no_peer_id = raw == b"1",
                b"key" => {
                    if raw.len() > MAX_KEY_LEN {
                        return Err(HttpParseError::KeyTooLong);
                    }
                    key = Some(value);
                }
                b"ip" => ip = Some(value),
                b"ipv4" => ipv4 = Some(value),
                b"ipv6" => ipv6 = Some(value),
                _ => {}
            }
        }

        Ok(AnnounceQuery {
            info_hash: info_hash.ok_or(HttpParseError::MissingInfoHash)?,
            peer_id: peer_id.ok_or(HttpParseError::MissingPeerId)?,
            port: port.ok_or(HttpParseError::MissingPort)?,
            uploaded,
            downloaded,
            left,
            event: event.0,
            paused: event.1,
            numwant,
            compact,
            no_peer_id,
            key,
            ip,
            ipv4,
            ipv6,
        })
    }
}

impl<'a> ScrapeQuery<'a> {
    /// Parses a scrape query string; every `info_hash` must decode to 20
    /// bytes. None at all asks for a full scrape, which the server may
    /// refuse.
    pub fn parse(query: &'a [u8]) -> Result<Self, HttpParseError> {
        let mut count = 0;
        for (name, value) in query_pairs(query) {
            if name == b"info_hash" {
                decode_info_hash(value)?;
                count += 1;
            }
        }
        Ok(ScrapeQuery { query, count })
    }

    /// Number of `info_hash` parameters, repeats included.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// True for a full scrape.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The requested hashes in request order, repeats included.
    pub fn info_hashes(&self) -> ScrapeInfoHashes<'a> {
        ScrapeInfoHashes {
            pairs: query_pairs(self.query),
            remaining: self.count,
        }
    }
}

impl fmt::Debug for ScrapeQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.info_hashes()).finish()
    }
}

/// Iterator returned by [`ScrapeQuery::info_hashes`].
#[derive(Clone, Debug)]
pub struct ScrapeInfoHashes<'a> {
    pairs: QueryPairs<'a>,
    remaining: usize,
}

impl Iterator for ScrapeInfoHashes<'_> {
    type Item = InfoHash;

    fn next(&mut self) -> Option<InfoHash> {
        for (name, value) in self.pairs.by_ref() {
            // Parsing validated every hash, so the error arm is unreachable;
            // it skips rather than panics all the same.
            if let (b"info_hash", Ok(hash)) = (name, decode_info_hash(value)) {
                self.remaining = self.remaining.saturating_sub(1);
                return Some(hash);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ScrapeInfoHashes<'_> {}

impl core::iter::FusedIterator for ScrapeInfoHashes<'_> {}

// ---------------------------------------------------------------------------
// Bencode writing

pub(crate) fn push_uint(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn b_int(out: &mut Vec<u8>, v: u64) {
    out.push(b'i');
    push_uint(out, v);
    out.push(b'e');
}

fn b_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_uint(out, bytes.len() as u64);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Fixed keys are written with their length prefix spelled out, so the
/// strings in the source read like the wire.
fn b_key_int(out: &mut Vec<u8>, key: &[u8], v: u64) {
    out.extend_from_slice(key);
    b_int(out, v);
}

/// A small stack buffer for formatting IP addresses, which bencode must
/// length-prefix before they are written.
struct StackText {
    buf: [u8; 48],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn b_ip_text(out: &mut Vec<u8>, ip: IpAddr) {
    use fmt::Write;
    let mut text = StackText {
        buf: [0; 48],
        len: 0,
    };
    // Cannot fail: the longest IPv6 text is 45 bytes.
    let _ = write!(text, "{ip}");
    b_bytes(out, &text.buf[..text.len]);
}

/// One BEP 3 peer dictionary; keys in byte order: `ip`, `peer id`, `port`.
fn b_dict_peer(out: &mut Vec<u8>, ip: IpAddr, port: u16, peer_id: Option<&PeerId>) {
    out.extend_from_slice(b"d2:ip");
    b_ip_text(out, ip);
    if let Some(id) = peer_id {
        out.extend_from_slice(b"7:peer id20:");
        out.extend_from_slice(&id.0);
    }
    b_key_int(out, b"4:port", u64::from(port));
    out.push(b'e');
}

/// A peer of a non-compact list that carries its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DictPeer {
    pub ip: IpAddr,
    pub port: u16,
    pub peer_id: Option<PeerId>,
}

/// The peers of an announce response, in the form the request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePeers<'a> {
    /// `peers` as 6-byte records (BEP 23), always written, and `peers6` as
    /// 18-byte records (BEP 7), written only when there are any.
    Compact { v4: &'a [PeerV4], v6: &'a [PeerV6] },
    /// `peers` as a list of `{ip, port}` dictionaries (BEP 3), IPv4 then
    /// IPv6, without `peer id`, which the tracker does not keep.
    Dicts { v4: &'a [PeerV4], v6: &'a [PeerV6] },
    /// `peers` as a list of dictionaries with `peer id` where given; for a
    /// `no_peer_id=1` request pass `None` ids or use [`Self::Dicts`].
    DictsWithIds(&'a [DictPeer]),
}

/// An announce response; `write_announce_response` sorts the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpAnnounceResponse<'a> {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds the client must wait at least, when set.
    pub min_interval: Option<u32>,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub peers: ResponsePeers<'a>,
    /// The address the request came from (BEP 24), as 4 or 16 raw bytes.
    pub external_ip: Option<IpAddr>,
    pub warning_message: Option<&'a [u8]>,
}

/// Appends the bencoded announce response to `out`.
pub fn write_announce_response(out: &mut Vec<u8>, r: &HttpAnnounceResponse<'_>) {
    let peer_bytes = match r.peers {
        ResponsePeers::Compact { v4, v6 } => 6 * v4.len() + 18 * v6.len(),
        ResponsePeers::Dicts { v4, v6 } => 40 * v4.len() + 70 * v6.len(),
        ResponsePeers::DictsWithIds(p) => 100 * p.len(),
    };
    let warning = r.warning_message.map_or(0, <[u8]>::len);
    out.reserve(160 + peer_bytes + warning);

    // Keys in raw byte order, as BEP 3 requires: complete, external ip,
    // incomplete, interval, min interval, peers, peers6, warning message.
    out.push(b'd');
    b_key_int(out, b"8:complete", u64::from(r.complete));
    if let Some(ip) = r.external_ip {
        out.extend_from_slice(b"11:external ip");
        match ip {
            IpAddr::V4(ip) => b_bytes(out, &ip.octets()),
            IpAddr::V6(ip) => b_bytes(out, &ip.octets()),
        }
    }
    b_key_int(out, b"10:incomplete", u64::from(r.incomplete));
    b_key_int(out, b"8:interval", u64::from(r.interval));
    if let Some(min) = r.min_interval {
        b_key_int(out, b"12:min interval", u64::from(min));
    }
    match r.peers {
        ResponsePeers::Compact { v4, v6 } => {
            out.extend_from_slice(b"5:peers");
            b_bytes(out, peers_v4_as_bytes(v4));
            if !v6.is_empty() {
                out.extend_from_slice(b"6:peers6");
                b_bytes(out, peers_v6_as_bytes(v6));
            }
        }
        ResponsePeers::Dicts { v4, v6 } => {
            out.extend_from_slice(b"5:peersl");
            for p in v4 {
                b_dict_peer(out, IpAddr::V4(p.ip()), p.port(), None);
            }
            for p in v6 {
                b_dict_peer(out, IpAddr::V6(p.ip()), p.port(), None);
            }
            out.push(b'e');
        }
        ResponsePeers::DictsWithIds(peers) => {
            out.extend_from_slice(b"5:peersl");
            for p in peers {
                b_dict_peer(out, p.ip, p.port, p.peer_id.as_ref());
            }
            out.push(b'e');
        }
    }
    if let Some(w) = r.warning_message {
        out.extend_from_slice(b"15:warning message");
        b_bytes(out, w);
    }
    out.push(b'e');
}

/// One torrent's counts in a scrape response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScrapeFile {
    pub info_hash: InfoHash,
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever counted.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// Appends a scrape response to `out`, sorting `files` by info hash in place
/// first: bencode dictionary keys must be sorted and unique, so repeated
/// hashes (a client may ask twice) are written once.
pub fn write_scrape_response(out: &mut Vec<u8>, files: &mut [ScrapeFile]) {
    files.sort_unstable_by_key(|f| f.info_hash);
    write_scrape_response_sorted(out, files.iter().copied());
}

/// Appends a scrape response from files already sorted by info hash. An
/// entry whose hash is not greater than the one before is skipped, so even
/// unsorted input yields valid bencode (missing those entries).
pub fn write_scrape_response_sorted(
    out: &mut Vec<u8>,
    files: impl IntoIterator<Item = ScrapeFile>,
) {
    let files = files.into_iter();
    out.reserve(16 + files.size_hint().0 * 80);
    out.extend_from_slice(b"d5:filesd");
    let mut last: Option<InfoHash> = None;
    for f in files {
        if last.is_some_and(|prev| f.info_hash <= prev) {
            continue;
        }
        last = Some(f.info_hash);
        out.extend_from_slice(b"20:");
        out.extend_from_slice(&f.info_hash.0);
        out.push(b'd');
        b_key_int(out, b"8:complete", u64::from(f.complete));
        b_key_int(out, b"10:downloaded", u64::from(f.downloaded));
        b_key_int(out, b"10:incomplete", u64::from(f.incomplete));
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

/// Appends `d14:failure reason<len>:<reason>e`. Clients read the body, not
/// the status, so this goes out with 200 OK.
pub fn write_failure(out: &mut Vec<u8>, reason: &[u8]) {
    out.reserve(24 + reason.len());
    out.extend_from_slice(b"d14:failure reason");
    b_bytes(out, reason);
    out.push(b'e');
}

// ---------------------------------------------------------------------------
// Bencode reading, for tests and the load tester

/// A decoded bencode value, borrowing its strings from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BValue<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<BValue<'a>>),
    /// Entries in input order.
    Dict(Vec<(&'a [u8], BValue<'a>)>),
}

/// Bounds on what [`BValue::decode_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Deepest nesting of lists and dictionaries; the decoder recurses, so
    /// this bounds its stack use.
    pub max_depth: usize,
    /// Most values in total, bounding memory beyond the input's size.
    pub max_values: usize,
    /// Refuse dictionaries whose keys are not strictly increasing, as BEP 3
    /// requires of every encoder.
    pub require_sorted_keys: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_depth: 32,
            max_values: 1 << 20,
            require_sorted_keys: true,
        }
    }
}

/// Why bencode decoding failed, with the byte offset where it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BDecodeError {
    UnexpectedEnd,
    UnexpectedByte {
        pos: usize,
        byte: u8,
    },
    /// Not a canonical integer: empty, leading zeros, `-0`, or out of range.
    InvalidInt {
        pos: usize,
    },
    /// A string length that is not canonical or runs past the input.
    InvalidLength {
        pos: usize,
    },
    /// A dictionary key that is not a string.
    KeyNotString {
        pos: usize,
    },
    UnsortedKey {
        pos: usize,
    },
    TooDeep {
        pos: usize,
    },
    TooManyValues,
    TrailingData {
        pos: usize,
    },
}

impl fmt::Display for BDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("bencode ends early"),
            Self::UnexpectedByte { pos, byte } => {
                write!(f, "unexpected byte 0x{byte:02x} at {pos}")
            }
            Self::InvalidInt { pos } => write!(f, "invalid integer at {pos}"),
            Self::InvalidLength { pos } => write!(f, "invalid string length at {pos}"),
            Self::KeyNotString { pos } => write!(f, "dictionary key at {pos} is not a string"),
            Self::UnsortedKey { pos } => {
                write!(
                    f,
                    "dictionary key at {pos} is not greater than the one before"
                )
            }
            Self::TooDeep { pos } => write!(f, "nesting too deep at {pos}"),
            Self::TooManyValues => f.write_str("too many values"),
            Self::TrailingData { pos } => write!(f, "trailing data at {pos}"),
        }
    }
}

impl std::error::Error for BDecodeError {}

struct BDecoder<'a> {
    input: &'a [u8],
    pos: usize,
    values: usize,
    options: DecodeOptions,
}

impl<'a> BDecoder<'a> {
    fn peek(&self) -> Result<u8, BDecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BDecodeError::UnexpectedEnd)
    }

    /// Digits up to `end`, as a canonical decimal: no sign, no leading zero.
    fn digits_until(&mut self, end: u8) -> Result<Option<u64>, BDecodeError> {
        let start = self.pos;
        let rest = self.input.get(start..).unwrap_or(&[]);
        let len = rest
            .iter()
            .position(|&b| b == end)
            .ok_or(BDecodeError::UnexpectedEnd)?;
        let digits = &rest[..len];
        self.pos = start + len + 1;
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || digits.len() == 1);
        if !canonical {
            return Ok(None);
        }
        Ok(digits.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        }))
    }

    fn value(&mut self, depth: usize) -> Result<BValue<'a>, BDecodeError> {
        self.values += 1;
        if self.values > self.options.max_values {
            return Err(BDecodeError::TooManyValues);
        }
        let start = self.pos;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let negative = self.peek()? == b'-';
                if negative {
                    self.pos += 1;
                }
                let invalid = BDecodeError::InvalidInt { pos: start };
                let magnitude = self.digits_until(b'e')?.ok_or(invalid)?;
                let value = if negative {
                    if magnitude == 0 {
                        return Err(invalid);
                    }
                    0i64.checked_sub_unsigned(magnitude).ok_or(invalid)?
                } else {
                    i64::try_from(magnitude).map_err(|_| invalid)?
                };
                Ok(BValue::Int(value))
            }
            b'0'..=b'9' => self.bytes().map(BValue::Bytes),
            b'l' | b'd' if depth >= self.options.max_depth => {
                Err(BDecodeError::TooDeep { pos: start })
            }
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(BValue::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], BValue<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_pos = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BDecodeError::KeyNotString { pos: key_pos });
                    }
                    let key = self.bytes()?;
                    if self.options.require_sorted_keys
                        && entries.last().is_some_and(|(prev, _)| key <= *prev)
                    {
                        return Err(BDecodeError::UnsortedKey { pos: key_pos });
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Ok(BValue::Dict(entries))
            }
            byte => Err(BDecodeError::UnexpectedByte { pos: start, byte }),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], BDecodeError> {
        let start = self.pos;
        let invalid = BDecodeError::InvalidLength { pos: start };
        let len = self.digits_until(b':')?.ok_or(invalid)?;
        let len = usize::try_from(len).map_err(|_| invalid)?;
        let end = self.pos.checked_add(len).ok_or(invalid)?;
        let bytes = self.input.get(self.pos..end).ok_or(invalid)?;
        self.pos = end;
        Ok(bytes)
    }
}

impl<'a> BValue<'a> {
    /// Decodes exactly one value filling `input`, with default limits.
    pub fn decode(input: &'a [u8]) -> Result<Self, BDecodeError> {
        Self::decode_with(input, DecodeOptions::default())
    }

    pub fn decode_with(input: &'a [u8], options: DecodeOptions) -> Result<Self, BDecodeError> {
        let mut d = BDecoder {
            input,
            pos: 0,
            values: 0,
            options,
        };
        let value = d.value(0)?;
        if d.pos != input.len() {
            return Err(BDecodeError::TrailingData { pos: d.pos });
        }
        Ok(value)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            BValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            BValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[BValue<'a>]> {
        match self {
            BValue::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], BValue<'a>)]> {
        match self {
            BValue::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` of a dictionary (the first, if repeated).
    pub fn get(&self, key: &[u8]) -> Option<&BValue<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: [u8; 20] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x12, 0x34, 0x56, 0x78, 0x9a,
    ];

    fn announce(target: &[u8]) -> AnnounceQuery<'_> {
        match HttpRequest::parse(target) {
            Ok(HttpRequest::Announce(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    fn err(target: &[u8]) -> HttpParseError {
        HttpRequest::parse(target).unwrap_err()
    }

    #[test]
    fn bep3_example_hash() {
        // The encoding BEP 3's own example gives for this hash.
        let a = announce(
            b"/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
              &peer_id=ABCDEFGHIJKLMNOPQRST&port=6881",
        );
        assert_eq!(a.info_hash, InfoHash(HASH));
        assert_eq!(a.peer_id, PeerId(*b"ABCDEFGHIJKLMNOPQRST"));
        assert_eq!(a.port, 6881);
        assert_eq!((a.uploaded, a.downloaded, a.left), (0, 0, None));
        assert_eq!(a.event, AnnounceEvent::None);
        assert!(!a.paused && !a.compact && !a.no_peer_id);
        assert_eq!((a.numwant, a.key, a.ip), (None, None, None));
    }

    #[test]
    fn all_fields() {
        let a = announce(
            b"/announce?info_hash=%124Vx%9a%bc%de%f1%23Eg%89%ab%cd%ef%124Vx%9a\
              &peer_id=-TR4060-abcdefghijkl&port=51413&uploaded=10&downloaded=20\
              &left=30&event=completed&numwant=50&compact=1&no_peer_id=1&key=a%2Fb\
              &ip=1.2.3.4&ipv6=2001%3Adb8%3A%3A1&ipv4=5.6.7.8&unknown=whatever&flag",
        );
        assert_eq!(a.info_hash, InfoHash(HASH));
        assert_eq!(a.port, 51413);
        assert_eq!((a.uploaded, a.downloaded, a.left), (10, 20, Some(30)));
        assert_eq!(a.event, AnnounceEvent::Completed);
        assert_eq!(a.numwant, Some(50));
        assert!(a.compact && a.no_peer_id);
        let key = a.key.unwrap();
        assert_eq!(key.raw(), b"a%2Fb");
        assert_eq!(key.decode_to_vec().unwrap(), b"a/b");
        assert_eq!(a.ip.unwrap().ip_addr(), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(a.ipv4.unwrap().ip_addr(), Some("5.6.7.8".parse().unwrap()));
        assert_eq!(
            a.ipv6.unwrap().ip_addr(),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn events() {
        let base = b"/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=1&event=";
        let with = |e: &[u8]| {
            let mut t = base.to_vec();
            t.extend_from_slice(e);
            t
        };
        for (e, want, paused) in [
            (&b"started"[..], AnnounceEvent::Started, false),
            (b"stopped", AnnounceEvent::Stopped, false),
            (b"completed", AnnounceEvent::Completed, false),
            (b"", AnnounceEvent::None, false),
            (b"empty", AnnounceEvent::None, false),
            (b"paused", AnnounceEvent::None, true),
        ] {
            let t = with(e);
            let a = announce(&t);
            assert_eq!((a.event, a.paused), (want, paused));
        }
        for e in [&b"Started"[..], b"update", b"1", b"started%20"] {
            assert_eq!(err(&with(e)), HttpParseError::UnknownEvent);
        }
    }

    #[test]
    fn paths() {
        let q = b"?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=1";
        for path in [
            &b"/announce"[..],
            b"/abcdef0123/announce",
            b"/announce.php",
            b"announce",
            b"http://tracker.example:8080/announce",
        ] {
            let mut t = path.to_vec();
            t.extend_from_slice(q);
            assert!(matches!(
                HttpRequest::parse(&t),
                Ok(HttpRequest::Announce(_))
            ));
        }
        for path in [&b"/scrape"[..], b"/key/scrape", b"/scrape.php"] {
            let mut t = path.to_vec();
            t.extend_from_slice(q);
            let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(&t) else {
                panic!()
            };
            assert_eq!(s.len(), 1);
        }
        for path in [
            &b"/"[..],
            b"",
            b"/announce/",
            b"/index.html",
            b"/x/Announce",
        ] {
            let mut t = path.to_vec();
            t.extend_from_slice(q);
            assert_eq!(err(&t), HttpParseError::UnknownPath);
        }
        assert_eq!(split_target(b"/a?b=c#d"), (&b"/a"[..], &b"b=c"[..]));
        assert_eq!(split_target(b"/a"), (&b"/a"[..], &b""[..]));
    }

    #[test]
    fn errors() {
        let ih = "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
        let pid = "peer_id=ABCDEFGHIJKLMNOPQRST";
        let cases: &[(String, HttpParseError)] = &[
            (format!("{pid}&port=1"), HttpParseError::MissingInfoHash),
            (format!("{ih}&port=1"), HttpParseError::MissingPeerId),
            (format!("{ih}&{pid}"), HttpParseError::MissingPort),
            (format!("{ih}&{pid}&port=0"), HttpParseError::InvalidPort),
            (
                format!("{ih}&{pid}&port=65536"),
                HttpParseError::InvalidPort,
            ),
            (format!("{ih}&{pid}&port=-1"), HttpParseError::InvalidPort),
            (format!("{ih}&{pid}&port="), HttpParseError::InvalidPort),
            (format!("{ih}&{pid}&port=8o"), HttpParseError::InvalidPort),
            (
                format!("info_hash=abc&{pid}&port=1"),
                HttpParseError::InfoHashLength,
            ),
            (
                format!("{ih}%00&{pid}&port=1"),
                HttpParseError::InfoHashLength,
            ),
            (
                format!("info_hash=%zz345678901234567890&{pid}&port=1"),
                HttpParseError::InfoHashEncoding,
            ),
            (
                format!("info_hash=1234567890123456789%4&{pid}&port=1"),
                HttpParseError::InfoHashEncoding,
            ),
            (
                format!("{ih}&{ih}&{pid}&port=1"),
                HttpParseError::DuplicateInfoHash,
            ),
            (
                format!("{ih}&peer_id=short&port=1"),
                HttpParseError::PeerIdLength,
            ),
            (
                format!("{ih}&peer_id=%&port=1"),
                HttpParseError::PeerIdEncoding,
            ),
            (
                format!("{ih}&{pid}&port=1&uploaded=x"),
                HttpParseError::InvalidUploaded,
            ),
            (
                format!("{ih}&{pid}&port=1&downloaded=1.5"),
                HttpParseError::InvalidDownloaded,
            ),
            (
                format!("{ih}&{pid}&port=1&left=%31"),
                HttpParseError::InvalidLeft,
            ),
            (
                format!("{ih}&{pid}&port=1&numwant=all"),
                HttpParseError::InvalidNumwant,
            ),
            (
                format!("{ih}&{pid}&port=1&key={}", "k".repeat(MAX_KEY_LEN + 1)),
                HttpParseError::KeyTooLong,
            ),
        ];
        for (query, want) in cases {
            let target = format!("/announce?{query}");
            assert_eq!(err(target.as_bytes()), *want, "{query}");
            assert_eq!(want.to_string(), want.message());
        }
        assert_eq!(err(b"/scrape?info_hash=x"), HttpParseError::InfoHashLength);
        assert_eq!(
            HttpParseError::MissingInfoHash.message(),
            "missing info_hash"
        );
        assert_eq!(
            HttpParseError::InfoHashLength.message(),
            "info_hash is not 20 bytes"
        );
    }

    #[test]
    fn lenient_numbers() {
        let base = "/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
            &peer_id=ABCDEFGHIJKLMNOPQRST&port=00080";
        let a = announce(base.as_bytes());
        assert_eq!(a.port, 80);
        let t = format!("{base}&uploaded=-5&downloaded=&left=-1&numwant=-1");
        let a = announce(t.as_bytes());
        assert_eq!(
            (a.uploaded, a.downloaded, a.left, a.numwant),
            (0, 0, None, None)
        );
        let t = format!(
            "{base}&uploaded=99999999999999999999999&left=18446744073709551615\
             &numwant=4294967296&left=0"
        );
        let a = announce(t.as_bytes());
        assert_eq!(a.uploaded, u64::MAX);
        assert_eq!(a.left, Some(0), "the last repeat wins");
        assert_eq!(a.numwant, Some(u32::MAX));
        let t = format!("{base}&compact=0&no_peer_id=true&numwant=");
        let a = announce(t.as_bytes());
        assert!(!a.compact && !a.no_peer_id);
        assert_eq!(a.numwant, None);
    }

    #[test]
    fn scrape_hashes() {
        let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(
            b"/scrape?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&x=1\
              &&info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A",
        ) else {
            panic!()
        };
        let hashes: Vec<_> = s.info_hashes().collect();
        assert_eq!(
            hashes,
            [InfoHash(HASH), InfoHash([b'a'; 20]), InfoHash(HASH)]
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.info_hashes().len(), 3);
        let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(b"/scrape") else {
            panic!()
        };
        assert!(s.is_empty());
        assert_eq!(s.info_hashes().next(), None);
    }

    #[test]
    fn encoded_value_helpers() {
        let v = EncodedValue(b"a%20b%2");
        let decoded: Vec<_> = v.decode().collect();
        assert_eq!(decoded, [Ok(b'a'), Ok(b' '), Ok(b'b'), Err(BadEscape)]);
        assert_eq!(v.decode_to_vec(), Err(BadEscape));
        let mut buf = [0u8; 2];
        assert_eq!(EncodedValue(b"%41%42").decode_into(&mut buf), Some(2));
        assert_eq!(&buf, b"AB");
        assert_eq!(EncodedValue(b"abc").decode_into(&mut buf), None);
        assert_eq!(EncodedValue(b"example.org").ip_addr(), None);
        assert_eq!(format!("{:?}", EncodedValue(b"a\x01")), "\"a\\x01\"");
        let pairs: Vec<_> = query_pairs(b"&a=1&&b&=c&d==").collect();
        assert_eq!(
            pairs,
            [
                (&b"a"[..], EncodedValue(b"1")),
                (b"b", EncodedValue(b"")),
                (b"", EncodedValue(b"c")),
                (b"d", EncodedValue(b"=")),
            ]
        );
    }

    #[test]
    fn failure_bytes() {
        let mut out = Vec::new();
        write_failure(&mut out, b"unknown path");
        assert_eq!(out, b"d14:failure reason12:unknown pathe");
    }

    #[test]
    fn uint_digits() {
        for v in [0, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_uint(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn decoder_rejects() {
        use BDecodeError::*;
        let cases: &[(&[u8], BDecodeError)] = &[
            (b"", UnexpectedEnd),
            (b"i12", UnexpectedEnd),
            (b"ie", InvalidInt { pos: 0 }),
            (b"i-0e", InvalidInt { pos: 0 }),
            (b"i03e", InvalidInt { pos: 0 }),
            (b"i-e", InvalidInt { pos: 0 }),
            (b"i+1e", InvalidInt { pos: 0 }),
            (b"i9223372036854775808e", InvalidInt { pos: 0 }),
            (b"5:abc", InvalidLength { pos: 0 }),
            (b"05:abcde", InvalidLength { pos: 0 }),
            (b"99999999999999999999999:a", InvalidLength { pos: 0 }),
            (b"l", UnexpectedEnd),
            (b"di1ei2ee", KeyNotString { pos: 1 }),
            (b"d1:b0:1:a0:e", UnsortedKey { pos: 6 }),
            (b"d1:a0:1:a0:e", UnsortedKey { pos: 6 }),
            (b"x", UnexpectedByte { pos: 0, byte: b'x' }),
            (b"i1ei2e", TrailingData { pos: 3 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                BValue::decode(input),
                Err(*want),
                "{:?}",
                input.escape_ascii()
            );
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(
            BValue::decode(b"i-9223372036854775808e"),
            Ok(BValue::Int(i64::MIN))
        );
        let deep = [b"l".repeat(33), b"e".repeat(33)].concat();
        assert_eq!(BValue::decode(&deep), Err(TooDeep { pos: 32 }));
        let ok = [b"l".repeat(32), b"e".repeat(32)].concat();
        assert!(BValue::decode(&ok).is_ok());
        let lenient = DecodeOptions {
            require_sorted_keys: false,
            max_values: 3,
            ..DecodeOptions::default()
        };
        assert!(BValue::decode_with(b"d1:b0:1:a0:e", lenient).is_ok());
        assert_eq!(
            BValue::decode_with(b"li1ei2ei3ee", lenient),
            Err(TooManyValues)
        );
    }

    #[test]
    fn decoder_accessors() {
        let v = BValue::decode(b"d1:ai-3e1:bl0:e1:cdee").unwrap();
        assert_eq!(v.get(b"a").and_then(BValue::as_int), Some(-3));
        assert_eq!(
            v.get(b"b").and_then(BValue::as_list),
            Some(&[BValue::Bytes(b"")][..])
        );
        assert_eq!(v.get(b"c").and_then(BValue::as_dict), Some(&[][..]));
        assert_eq!(v.get(b"d"), None);
        assert_eq!(v.get(b"a").and_then(BValue::as_bytes), None);
        assert_eq!(BValue::Int(1).get(b"a"), None);
    }
}
