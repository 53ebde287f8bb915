//! The UDP tracker protocol (BEP 15), with the announce options of BEP 41.
//!
//! Parsing borrows from the packet and never allocates; emitting writes into
//! a caller-provided buffer. Every integer on the wire is big-endian. Parsers
//! are total: any byte string yields either a value or an error, never a
//! panic, because every byte comes from an untrusted peer.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::common::{AnnounceEvent, InfoHash, PeerId};

/// Magic constant a connect request starts with, so that stray traffic to the
/// port is unlikely to be taken for a connect.
pub const PROTOCOL_ID: u64 = 0x41727101980;

pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

pub const CONNECT_REQUEST_LEN: usize = 16;
/// Fixed part of an announce; BEP 41 options may follow.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Connection id, action and transaction id; info hashes follow.
pub const SCRAPE_REQUEST_HEADER_LEN: usize = 16;
pub const CONNECT_RESPONSE_LEN: usize = 16;
/// Action, transaction id, interval, leechers, seeders; peers follow.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Action and transaction id; one [`ScrapeStats`] per info hash follows.
pub const SCRAPE_RESPONSE_HEADER_LEN: usize = 8;
pub const SCRAPE_STATS_LEN: usize = 12;
/// Action and transaction id; the message follows, unterminated.
pub const ERROR_RESPONSE_HEADER_LEN: usize = 8;

const INFO_HASH_LEN: usize = 20;

/// The 64-bit token a connect response hands out and later requests echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Chosen by the client and echoed back, so it can match responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransactionId(pub u32);

/// The output buffer cannot hold the packet; nothing useful was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

// ---------------------------------------------------------------------------
// Zero-copy views of repeated wire records

/// Types that are nothing but their wire bytes.
///
/// # Safety
///
/// Implementors must have alignment 1, no padding, and accept every bit
/// pattern, so that any byte slice of a multiple of their size is a valid
/// slice of them and vice versa.
unsafe trait WireBytes: Copy {}

// SAFETY: all four are `repr(C)`/`repr(transparent)` over `u8` arrays only;
// the size and alignment asserts below pin the layout.
unsafe impl WireBytes for PeerV4 {}
unsafe impl WireBytes for PeerV6 {}
unsafe impl WireBytes for ScrapeStats {}
unsafe impl WireBytes for InfoHash {}

const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<PeerV4>() == 6 && align_of::<PeerV4>() == 1);
    assert!(size_of::<PeerV6>() == 18 && align_of::<PeerV6>() == 1);
    assert!(size_of::<ScrapeStats>() == SCRAPE_STATS_LEN && align_of::<ScrapeStats>() == 1);
    assert!(size_of::<InfoHash>() == INFO_HASH_LEN && align_of::<InfoHash>() == 1);
};

fn cast_slice<T: WireBytes>(bytes: &[u8]) -> Option<&[T]> {
    let size = core::mem::size_of::<T>();
    let rem = bytes.len() % size;
    if rem != 0 {
        return None;
    }
    // SAFETY: `T: WireBytes` has alignment 1 and no invalid bit patterns, and
    // `len * size` is exactly `bytes.len()`, so the new slice covers the same
    // initialized, immutably borrowed memory for the same lifetime.
    Some(unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
}

fn byte_slice<T: WireBytes>(items: &[T]) -> &[u8] {
    // SAFETY: `T: WireBytes` has no padding, so all `size_of_val(items)`
    // bytes are initialized; `u8` has alignment 1; the borrow is carried over.
    unsafe {
        core::slice::from_raw_parts(items.as_ptr().cast::<u8>(), core::mem::size_of_val(items))
    }
}

/// An IPv4 peer exactly as BEP 15 lays it out: 4 address bytes, then the
/// port, both in network order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct PeerV4 {
    ip: [u8; 4],
    port: [u8; 2],
}

impl PeerV4 {
    pub const fn new(ip: Ipv4Addr, port: u16) -> Self {
        PeerV4 {
            ip: ip.octets(),
            port: port.to_be_bytes(),
        }
    }

    pub const fn ip(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.ip;
        Ipv4Addr::new(a, b, c, d)
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }
}

impl From<SocketAddrV4> for PeerV4 {
    fn from(addr: SocketAddrV4) -> Self {
        PeerV4::new(*addr.ip(), addr.port())
    }
}

impl From<PeerV4> for SocketAddrV4 {
    fn from(peer: PeerV4) -> Self {
        SocketAddrV4::new(peer.ip(), peer.port())
    }
}

impl fmt::Debug for PeerV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip(), self.port())
    }
}

/// An IPv6 peer exactly as BEP 15 lays it out: 16 address bytes, then the
/// port, both in network order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct PeerV6 {
    ip: [u8; 16],
    port: [u8; 2],
}

impl PeerV6 {
    pub const fn new(ip: Ipv6Addr, port: u16) -> Self {
        PeerV6 {
            ip: ip.octets(),
            port: port.to_be_bytes(),
        }
    }

    pub fn ip(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.ip)
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }
}

impl From<SocketAddrV6> for PeerV6 {
    fn from(addr: SocketAddrV6) -> Self {
        PeerV6::new(*addr.ip(), addr.port())
    }
}

impl From<PeerV6> for SocketAddrV6 {
    fn from(peer: PeerV6) -> Self {
        SocketAddrV6::new(peer.ip(), peer.port(), 0, 0)
    }
}

impl fmt::Debug for PeerV6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]:{}", self.ip(), self.port())
    }
}

/// Views a compact IPv4 peer list without copying; `None` unless the length
/// is a multiple of 6.
pub fn peers_v4_from_bytes(bytes: &[u8]) -> Option<&[PeerV4]> {
    cast_slice(bytes)
}

/// Views a compact IPv6 peer list without copying; `None` unless the length
/// is a multiple of 18.
pub fn peers_v6_from_bytes(bytes: &[u8]) -> Option<&[PeerV6]> {
    cast_slice(bytes)
}

pub fn peers_v4_as_bytes(peers: &[PeerV4]) -> &[u8] {
    byte_slice(peers)
}

pub fn peers_v6_as_bytes(peers: &[PeerV6]) -> &[u8] {
    byte_slice(peers)
}

/// One torrent's counts in a scrape response, in wire order (seeders,
/// completed, leechers: not the order the announce response uses).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct ScrapeStats {
    seeders: [u8; 4],
    completed: [u8; 4],
    leechers: [u8; 4],
}

impl ScrapeStats {
    pub const fn new(seeders: u32, completed: u32, leechers: u32) -> Self {
        ScrapeStats {
            seeders: seeders.to_be_bytes(),
            completed: completed.to_be_bytes(),
            leechers: leechers.to_be_bytes(),
        }
    }

    pub const fn seeders(&self) -> u32 {
        u32::from_be_bytes(self.seeders)
    }

    /// Number of times the torrent was downloaded to completion.
    pub const fn completed(&self) -> u32 {
        u32::from_be_bytes(self.completed)
    }

    pub const fn leechers(&self) -> u32 {
        u32::from_be_bytes(self.leechers)
    }
}

impl fmt::Debug for ScrapeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeStats")
            .field("seeders", &self.seeders())
            .field("completed", &self.completed())
            .field("leechers", &self.leechers())
            .finish()
    }
}

/// Views scrape statistics without copying; `None` unless the length is a
/// multiple of 12.
pub fn scrape_stats_from_bytes(bytes: &[u8]) -> Option<&[ScrapeStats]> {
    cast_slice(bytes)
}

pub fn scrape_stats_as_bytes(stats: &[ScrapeStats]) -> &[u8] {
    byte_slice(stats)
}

/// The info hashes of a scrape request, viewed in place.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes<'a> {
    hashes: &'a [InfoHash],
}

impl<'a> InfoHashes<'a> {
    /// `None` unless the length is a multiple of 20.
    pub fn from_bytes(bytes: &'a [u8]) -> Option<Self> {
        cast_slice(bytes).map(|hashes| InfoHashes { hashes })
    }

    pub const fn from_slice(hashes: &'a [InfoHash]) -> Self {
        InfoHashes { hashes }
    }

    pub const fn as_slice(&self) -> &'a [InfoHash] {
        self.hashes
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        byte_slice(self.hashes)
    }

    pub const fn len(&self) -> usize {
        self.hashes.len()
    }

    pub const fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<InfoHash> {
        self.hashes.get(index).copied()
    }

    pub fn iter(&self) -> core::iter::Copied<core::slice::Iter<'a, InfoHash>> {
        self.hashes.iter().copied()
    }
}

impl<'a> IntoIterator for InfoHashes<'a> {
    type Item = InfoHash;
    type IntoIter = core::iter::Copied<core::slice::Iter<'a, InfoHash>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for InfoHashes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.hashes).finish()
    }
}

// ---------------------------------------------------------------------------
// BEP 41 announce options

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;

/// The option bytes trailing an announce (BEP 41), kept raw and decoded
/// lazily: a malformed option list must not cost the client its announce,
/// so nothing here is validated at parse time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bep41Options<'a> {
    bytes: &'a [u8],
}

/// One decoded BEP 41 option. `EndOfOptions` is not represented: it ends
/// iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep41Option<'a> {
    Nop,
    /// A piece of the announce URL's path and query; pieces concatenate.
    UrlData(&'a [u8]),
    /// Options not defined by BEP 41 are assumed to carry a length byte, the
    /// only way to skip over them.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Why option decoding stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep41Error {
    /// The option's type byte was the last byte, so its length is missing.
    MissingLength { kind: u8 },
    /// The option claims `len` data bytes but only `available` remain.
    Truncated { kind: u8, len: u8, available: usize },
}

impl fmt::Display for Bep41Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bep41Error::MissingLength { kind } => {
                write!(f, "announce option {kind} has no length byte")
            }
            Bep41Error::Truncated {
                kind,
                len,
                available,
            } => write!(
                f,
                "announce option {kind} claims {len} bytes but {available} remain"
            ),
        }
    }
}

impl core::error::Error for Bep41Error {}

impl<'a> Bep41Options<'a> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Bep41Options { bytes }
    }

    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn iter(&self) -> Bep41Iter<'a> {
        Bep41Iter { rest: self.bytes }
    }

    /// Concatenates every `UrlData` option into `out`, returning the length.
    /// Decoding errors end the data silently, as BEP 41 asks trackers to
    /// tolerate them.
    pub fn url_data_into(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut written = 0usize;
        for option in self.iter() {
            let Ok(Bep41Option::UrlData(data)) = option else {
                continue;
            };
            let end = written.checked_add(data.len()).ok_or(BufferTooSmall)?;
            out.get_mut(written..end)
                .ok_or(BufferTooSmall)?
                .copy_from_slice(data);
            written = end;
        }
        Ok(written)
    }

    /// Concatenation of every `UrlData` option; see [`Self::url_data_into`].
    #[cfg(feature = "std")]
    pub fn url_data(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for option in self.iter() {
            if let Ok(Bep41Option::UrlData(data)) = option {
                out.extend_from_slice(data);
            }
        }
        out
    }
}

impl<'a> IntoIterator for Bep41Options<'a> {
    type Item = Result<Bep41Option<'a>, Bep41Error>;
    type IntoIter = Bep41Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Bep41Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`Bep41Options`]; yields at most one error, then stops.
#[derive(Clone, Debug)]
pub struct Bep41Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Bep41Iter<'a> {
    type Item = Result<Bep41Option<'a>, Bep41Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        // Every path below either consumes bytes or ends iteration, so a
        // hostile option list cannot make this loop forever.
        self.rest = &[];
        match kind {
            OPTION_END => None,
            OPTION_NOP => {
                self.rest = after_kind;
                Some(Ok(Bep41Option::Nop))
            }
            _ => {
                let Some((&len, after_len)) = after_kind.split_first() else {
                    return Some(Err(Bep41Error::MissingLength { kind }));
                };
                let Some((data, rest)) = after_len.split_at_checked(usize::from(len)) else {
                    return Some(Err(Bep41Error::Truncated {
                        kind,
                        len,
                        available: after_len.len(),
                    }));
                };
                self.rest = rest;
                Some(Ok(if kind == OPTION_URL_DATA {
                    Bep41Option::UrlData(data)
                } else {
                    Bep41Option::Unknown { kind, data }
                }))
            }
        }
    }
}

impl core::iter::FusedIterator for Bep41Iter<'_> {}

// ---------------------------------------------------------------------------
// Byte cursors

/// Big-endian reads off the front of a slice; `None` once it runs out.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Sequential writes into an output buffer. The total length is checked up
/// front so that a too-small buffer is left untouched; each write is still
/// bounds-checked, so a length miscalculation becomes an error, not a panic.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8], total: usize) -> Result<Self, BufferTooSmall> {
        if buf.len() < total {
            return Err(BufferTooSmall);
        }
        Ok(Writer { buf, pos: 0 })
    }

    fn bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn u16(&mut self, v: u16) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    fn i32(&mut self, v: i32) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    fn finish(self) -> usize {
        self.pos
    }
}

// ---------------------------------------------------------------------------
// Requests

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Connect(ConnectRequest),
    Announce(AnnounceRequest<'a>),
    Scrape(ScrapeRequest<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub transaction_id: TransactionId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceRequest<'a> {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    /// The address the client asks to be announced under. 0 on the wire
    /// means "use the source address" and maps to `None`, so
    /// `Some(0.0.0.0)` is emitted as `None`.
    pub ip_address: Option<Ipv4Addr>,
    pub key: u32,
    /// Negative (conventionally -1) asks for the tracker's default.
    pub num_want: i32,
    pub port: u16,
    pub options: Bep41Options<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeRequest<'a> {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hashes: InfoHashes<'a>,
}

/// A request that could not be parsed, with whatever identifies it so the
/// server can still answer with a BEP 15 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestParseError {
    pub kind: RequestParseErrorKind,
    /// Bytes 0..8, present whenever the packet has 16 bytes. For a connect
    /// request this is the (wrong) protocol id, not a connection id.
    pub connection_id: Option<ConnectionId>,
    /// Bytes 12..16, present whenever the packet has 16 bytes.
    pub transaction_id: Option<TransactionId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestParseErrorKind {
    /// Shorter than the fixed part of its action (or than 16 bytes).
    TooShort {
        len: usize,
    },
    /// A connect request without the magic [`PROTOCOL_ID`].
    BadProtocolId(u64),
    UnknownAction(u32),
    /// An announce event outside 0..=3.
    InvalidEvent(u32),
    /// The info-hash part of a scrape (this many bytes, after the 16-byte
    /// header) is not a whole number of hashes.
    ScrapeLength(usize),
}

impl RequestParseErrorKind {
    /// A fixed message for the BEP 15 error response, for callers that do
    /// not want to format.
    pub const fn message(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "packet too short",
            Self::BadProtocolId(_) => "bad protocol id",
            Self::UnknownAction(_) => "unknown action",
            Self::InvalidEvent(_) => "invalid announce event",
            Self::ScrapeLength(_) => "scrape length is not a multiple of 20",
        }
    }
}

impl fmt::Display for RequestParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "packet too short ({len} bytes)"),
            Self::UnknownAction(action) => write!(f, "unknown action {action}"),
            Self::InvalidEvent(event) => write!(f, "invalid announce event {event}"),
            Self::BadProtocolId(_) | Self::ScrapeLength(_) => f.write_str(self.message()),
        }
    }
}

impl RequestParseError {
    pub const fn message(&self) -> &'static str {
        self.kind.message()
    }
}

impl fmt::Display for RequestParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl core::error::Error for RequestParseError {}

impl<'a> Request<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RequestParseError> {
        let len = bytes.len();
        let mut r = Reader::new(bytes);
        let (Some(first), Some(action), Some(txid)) = (r.u64(), r.u32(), r.u32()) else {
            return Err(RequestParseError {
                kind: RequestParseErrorKind::TooShort { len },
                connection_id: None,
                transaction_id: None,
            });
        };
        let connection_id = ConnectionId(first);
        let transaction_id = TransactionId(txid);
        let fail = |kind| RequestParseError {
            kind,
            connection_id: Some(connection_id),
            transaction_id: Some(transaction_id),
        };
        match action {
            ACTION_CONNECT => {
                if first != PROTOCOL_ID {
                    return Err(fail(RequestParseErrorKind::BadProtocolId(first)));
                }
                Ok(Request::Connect(ConnectRequest { transaction_id }))
            }
            ACTION_ANNOUNCE => AnnounceRequest::parse_body(connection_id, transaction_id, r, len)
                .map(Request::Announce)
                .map_err(fail),
            ACTION_SCRAPE => {
                let tail = r.rest();
                let info_hashes = InfoHashes::from_bytes(tail)
                    .ok_or_else(|| fail(RequestParseErrorKind::ScrapeLength(tail.len())))?;
                Ok(Request::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                }))
            }
            other => Err(fail(RequestParseErrorKind::UnknownAction(other))),
        }
    }

    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Request::Connect(r) => r.transaction_id,
            Request::Announce(r) => r.transaction_id,
            Request::Scrape(r) => r.transaction_id,
        }
    }

    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Connect(_) => CONNECT_REQUEST_LEN,
            Request::Announce(a) => ANNOUNCE_REQUEST_LEN.saturating_add(a.options.bytes.len()),
            Request::Scrape(s) => {
                SCRAPE_REQUEST_HEADER_LEN.saturating_add(s.info_hashes.as_bytes().len())
            }
        }
    }

    /// Writes the request to the front of `out`, returning its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = Writer::new(out, self.encoded_len())?;
        match self {
            Request::Connect(c) => {
                w.u64(PROTOCOL_ID)?;
                w.u32(ACTION_CONNECT)?;
                w.u32(c.transaction_id.0)?;
            }
            Request::Announce(a) => {
                w.u64(a.connection_id.0)?;
                w.u32(ACTION_ANNOUNCE)?;
                w.u32(a.transaction_id.0)?;
                w.bytes(&a.info_hash.0)?;
                w.bytes(&a.peer_id.0)?;
                w.u64(a.downloaded)?;
                w.u64(a.left)?;
                w.u64(a.uploaded)?;
                w.u32(a.event.to_udp())?;
                w.u32(a.ip_address.map_or(0, u32::from))?;
                w.u32(a.key)?;
                w.i32(a.num_want)?;
                w.u16(a.port)?;
                w.bytes(a.options.bytes)?;
            }
            Request::Scrape(s) => {
                w.u64(s.connection_id.0)?;
                w.u32(ACTION_SCRAPE)?;
                w.u32(s.transaction_id.0)?;
                w.bytes(s.info_hashes.as_bytes())?;
            }
        }
        Ok(w.finish())
    }
}

impl<'a> AnnounceRequest<'a> {
    /// Parses what follows the 16-byte header.
    fn parse_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        mut r: Reader<'a>,
        len: usize,
    ) -> Result<Self, RequestParseErrorKind> {
        // Only reached with 16 bytes consumed; a short read means the packet
        // ends inside the fixed part.
        let short = RequestParseErrorKind::TooShort { len };
        let info_hash = InfoHash(r.array().ok_or(short)?);
        let peer_id = PeerId(r.array().ok_or(short)?);
        let downloaded = r.u64().ok_or(short)?;
        let left = r.u64().ok_or(short)?;
        let uploaded = r.u64().ok_or(short)?;
        let event = r.u32().ok_or(short)?;
        let ip = r.u32().ok_or(short)?;
        let key = r.u32().ok_or(short)?;
        let num_want = r.i32().ok_or(short)?;
        let port = r.u16().ok_or(short)?;
        let event =
            AnnounceEvent::from_udp(event).ok_or(RequestParseErrorKind::InvalidEvent(event))?;
        Ok(AnnounceRequest {
            connection_id,
            transaction_id,
            info_hash,
            peer_id,
            downloaded,
            left,
            uploaded,
            event,
            ip_address: (ip != 0).then(|| Ipv4Addr::from(ip)),
            key,
            num_want,
            port,
            options: Bep41Options::new(r.rest()),
        })
    }
}

// ---------------------------------------------------------------------------
// Responses

/// Which peer record size an announce response carries. The packet does not
/// say; it follows from the address family the request arrived over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFamily {
    V4,
    V6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    Connect(ConnectResponse),
    Announce(AnnounceResponse<'a>),
    Scrape(ScrapeResponse<'a>),
    Error(ErrorResponse<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub transaction_id: TransactionId,
    pub connection_id: ConnectionId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<'a> {
    pub transaction_id: TransactionId,
    /// Seconds the client should wait before re-announcing.
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    pub peers: Peers<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peers<'a> {
    V4(&'a [PeerV4]),
    V6(&'a [PeerV6]),
}

impl<'a> Peers<'a> {
    pub const fn family(&self) -> PeerFamily {
        match self {
            Peers::V4(_) => PeerFamily::V4,
            Peers::V6(_) => PeerFamily::V6,
        }
    }

    pub const fn len(&self) -> usize {
        match self {
            Peers::V4(p) => p.len(),
            Peers::V6(p) => p.len(),
        }
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Peers::V4(p) => byte_slice(p),
            Peers::V6(p) => byte_slice(p),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeResponse<'a> {
    pub transaction_id: TransactionId,
    /// One entry per requested info hash, in request order.
    pub stats: &'a [ScrapeStats],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorResponse<'a> {
    pub transaction_id: TransactionId,
    /// Human-readable, no terminator; BEP 15 does not fix an encoding.
    pub message: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseParseError {
    /// Shorter than the fixed part of its action (or than 8 bytes).
    TooShort {
        len: usize,
    },
    UnknownAction(u32),
    /// The peer list (this many bytes) is not a whole number of peers of the
    /// expected family.
    PeersLength {
        len: usize,
        family: PeerFamily,
    },
    /// The statistics (this many bytes) are not a whole number of
    /// 12-byte entries.
    ScrapeLength(usize),
}

impl fmt::Display for ResponseParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "packet too short ({len} bytes)"),
            Self::UnknownAction(action) => write!(f, "unknown action {action}"),
            Self::PeersLength { len, family } => {
                let size = match family {
                    PeerFamily::V4 => 6,
                    PeerFamily::V6 => 18,
                };
                write!(f, "peer list of {len} bytes is not a multiple of {size}")
            }
            Self::ScrapeLength(len) => {
                write!(
                    f,
                    "scrape statistics of {len} bytes are not a multiple of 12"
                )
            }
        }
    }
}

impl core::error::Error for ResponseParseError {}

impl<'a> Response<'a> {
    pub fn parse(bytes: &'a [u8], family: PeerFamily) -> Result<Self, ResponseParseError> {
        let len = bytes.len();
        let short = ResponseParseError::TooShort { len };
        let mut r = Reader::new(bytes);
        let (Some(action), Some(txid)) = (r.u32(), r.u32()) else {
            return Err(short);
        };
        let transaction_id = TransactionId(txid);
        match action {
            ACTION_CONNECT => {
                let connection_id = ConnectionId(r.u64().ok_or(short)?);
                Ok(Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id,
                }))
            }
            ACTION_ANNOUNCE => {
                let (Some(interval), Some(leechers), Some(seeders)) = (r.u32(), r.u32(), r.u32())
                else {
                    return Err(short);
                };
                let tail = r.rest();
                let bad_len = ResponseParseError::PeersLength {
                    len: tail.len(),
                    family,
                };
                let peers = match family {
                    PeerFamily::V4 => Peers::V4(peers_v4_from_bytes(tail).ok_or(bad_len)?),
                    PeerFamily::V6 => Peers::V6(peers_v6_from_bytes(tail).ok_or(bad_len)?),
                };
                Ok(Response::Announce(AnnounceResponse {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }))
            }
            ACTION_SCRAPE => {
                let tail = r.rest();
                let stats = scrape_stats_from_bytes(tail)
                    .ok_or(ResponseParseError::ScrapeLength(tail.len()))?;
                Ok(Response::Scrape(ScrapeResponse {
                    transaction_id,
                    stats,
                }))
            }
            ACTION_ERROR => Ok(Response::Error(ErrorResponse {
                transaction_id,
                message: r.rest(),
            })),
            other => Err(ResponseParseError::UnknownAction(other)),
        }
    }

    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Response::Connect(r) => r.transaction_id,
            Response::Announce(r) => r.transaction_id,
            Response::Scrape(r) => r.transaction_id,
            Response::Error(r) => r.transaction_id,
        }
    }

    pub fn encoded_len(&self) -> usize {
        match self {
            Response::Connect(_) => CONNECT_RESPONSE_LEN,
            Response::Announce(a) => {
                ANNOUNCE_RESPONSE_HEADER_LEN.saturating_add(a.peers.as_bytes().len())
            }
            Response::Scrape(s) => {
                SCRAPE_RESPONSE_HEADER_LEN.saturating_add(core::mem::size_of_val(s.stats))
            }
            Response::Error(e) => ERROR_RESPONSE_HEADER_LEN.saturating_add(e.message.len()),
        }
    }

    /// Writes the response to the front of `out`, returning its length.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        match self {
            Response::Connect(c) => write_connect_response(out, c.transaction_id, c.connection_id),
            Response::Announce(a) => write_announce_response(
                out,
                a.transaction_id,
                a.interval,
                a.leechers,
                a.seeders,
                a.peers,
            ),
            Response::Scrape(s) => write_scrape_response(out, s.transaction_id, s.stats),
            Response::Error(e) => write_error_response(out, e.transaction_id, e.message),
        }
    }
}

/// Writes a connect response without building a [`Response`].
pub fn write_connect_response(
    out: &mut [u8],
    transaction_id: TransactionId,
    connection_id: ConnectionId,
) -> Result<usize, BufferTooSmall> {
    let mut w = Writer::new(out, CONNECT_RESPONSE_LEN)?;
    w.u32(ACTION_CONNECT)?;
    w.u32(transaction_id.0)?;
    w.u64(connection_id.0)?;
    Ok(w.finish())
}

/// Writes an error response without building a [`Response`].
pub fn write_error_response(
    out: &mut [u8],
    transaction_id: TransactionId,
    message: &[u8],
) -> Result<usize, BufferTooSmall> {
    let total = ERROR_RESPONSE_HEADER_LEN.saturating_add(message.len());
    let mut w = Writer::new(out, total)?;
    w.u32(ACTION_ERROR)?;
    w.u32(transaction_id.0)?;
    w.bytes(message)?;
    Ok(w.finish())
}

/// Writes an announce response without building a [`Response`]; the peers
/// are copied as they lie in memory, already in wire layout.
pub fn write_announce_response(
    out: &mut [u8],
    transaction_id: TransactionId,
    interval: u32,
    leechers: u32,
    seeders: u32,
    peers: Peers<'_>,
) -> Result<usize, BufferTooSmall> {
    let peers = peers.as_bytes();
    let total = ANNOUNCE_RESPONSE_HEADER_LEN.saturating_add(peers.len());
    let mut w = Writer::new(out, total)?;
    w.u32(ACTION_ANNOUNCE)?;
    w.u32(transaction_id.0)?;
    w.u32(interval)?;
    w.u32(leechers)?;
    w.u32(seeders)?;
    w.bytes(peers)?;
    Ok(w.finish())
}

/// Writes a scrape response without building a [`Response`].
pub fn write_scrape_response(
    out: &mut [u8],
    transaction_id: TransactionId,
    stats: &[ScrapeStats],
) -> Result<usize, BufferTooSmall> {
    let stats = scrape_stats_as_bytes(stats);
    let total = SCRAPE_RESPONSE_HEADER_LEN.saturating_add(stats.len());
    let mut w = Writer::new(out, total)?;
    w.u32(ACTION_SCRAPE)?;
    w.u32(transaction_id.0)?;
    w.bytes(stats)?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    // The crate may be `no_std`; its tests still run on a std host.
    extern crate std;
    use std::{format, string::ToString};

    /// Connect request: protocol id, action 0, transaction id 0xdeadbeef.
    const CONNECT: &[u8; 16] = b"\x00\x00\x04\x17\x27\x10\x19\x80\
        \x00\x00\x00\x00\
        \xde\xad\xbe\xef";

    /// A full announce, field by field.
    const ANNOUNCE: &[u8; 98] = b"\x01\x23\x45\x67\x89\xab\xcd\xef\
        \x00\x00\x00\x01\
        \xca\xfe\xba\xbe\
        \x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\
        -qB5000-abcdefghijkl\
        \x00\x00\x00\x00\x00\x00\x10\x00\
        \x00\x00\x00\x01\x00\x00\x00\x00\
        \x00\x00\x00\x00\x00\x00\x00\x2a\
        \x00\x00\x00\x02\
        \xc0\x00\x02\x07\
        \x12\x34\x56\x78\
        \xff\xff\xff\xff\
        \x1a\xe1";

    fn info_hash_0_to_19() -> InfoHash {
        let mut h = [0u8; 20];
        for (i, b) in h.iter_mut().enumerate() {
            *b = i as u8;
        }
        InfoHash(h)
    }

    fn parse_err(bytes: &[u8]) -> RequestParseError {
        match Request::parse(bytes) {
            Err(e) => e,
            Ok(r) => panic!("parsed {r:?}"),
        }
    }

    /// Emits into a fixed buffer and checks the length agrees with
    /// `encoded_len`.
    fn emit_request<'b>(r: &Request<'_>, buf: &'b mut [u8; 1024]) -> &'b [u8] {
        let n = r.emit(buf).unwrap();
        assert_eq!(n, r.encoded_len());
        &buf[..n]
    }

    fn emit_response<'b>(r: &Response<'_>, buf: &'b mut [u8; 1024]) -> &'b [u8] {
        let n = r.emit(buf).unwrap();
        assert_eq!(n, r.encoded_len());
        &buf[..n]
    }

    #[test]
    fn connect_request_known_bytes() {
        let req = Request::parse(CONNECT).unwrap();
        assert_eq!(
            req,
            Request::Connect(ConnectRequest {
                transaction_id: TransactionId(0xdead_beef)
            })
        );
        let mut buf = [0u8; 1024];
        assert_eq!(emit_request(&req, &mut buf), CONNECT);
    }

    #[test]
    fn connect_request_trailing_bytes_ignored() {
        let mut long = [0u8; 20];
        long[..16].copy_from_slice(CONNECT);
        long[16..].copy_from_slice(b"junk");
        assert_eq!(Request::parse(&long), Request::parse(CONNECT));
    }

    #[test]
    fn connect_request_bad_protocol_id() {
        let mut bad = *CONNECT;
        bad[7] = 0x81;
        let e = parse_err(&bad);
        assert_eq!(
            e.kind,
            RequestParseErrorKind::BadProtocolId(0x0417_2710_1981)
        );
        assert_eq!(e.transaction_id, Some(TransactionId(0xdead_beef)));
        assert_eq!(e.connection_id, Some(ConnectionId(0x0417_2710_1981)));
    }

    #[test]
    fn announce_known_bytes() {
        let Request::Announce(a) = Request::parse(ANNOUNCE).unwrap() else {
            panic!("not an announce");
        };
        assert_eq!(a.connection_id, ConnectionId(0x0123_4567_89ab_cdef));
        assert_eq!(a.transaction_id, TransactionId(0xcafe_babe));
        assert_eq!(a.info_hash, info_hash_0_to_19());
        assert_eq!(&a.peer_id.0, b"-qB5000-abcdefghijkl");
        assert_eq!(a.downloaded, 4096);
        assert_eq!(a.left, 1 << 32);
        assert_eq!(a.uploaded, 42);
        assert_eq!(a.event, AnnounceEvent::Started);
        assert_eq!(a.ip_address, Some(Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(a.key, 0x1234_5678);
        assert_eq!(a.num_want, -1);
        assert_eq!(a.port, 6881);
        assert!(a.options.is_empty());
        assert_eq!(a.options.iter().next(), None);

        let mut buf = [0u8; 1024];
        assert_eq!(emit_request(&Request::Announce(a), &mut buf), ANNOUNCE);
    }

    #[test]
    fn announce_zero_ip_is_none() {
        let mut bytes = *ANNOUNCE;
        bytes[84..88].fill(0);
        let Ok(Request::Announce(a)) = Request::parse(&bytes) else {
            panic!();
        };
        assert_eq!(a.ip_address, None);
    }

    #[test]
    fn announce_every_event() {
        let mut bytes = *ANNOUNCE;
        for (wire, event) in [
            (0, AnnounceEvent::None),
            (1, AnnounceEvent::Completed),
            (2, AnnounceEvent::Started),
            (3, AnnounceEvent::Stopped),
        ] {
            bytes[83] = wire;
            let Ok(Request::Announce(a)) = Request::parse(&bytes) else {
                panic!();
            };
            assert_eq!(a.event, event);
        }
    }

    #[test]
    fn announce_invalid_event() {
        let mut bytes = *ANNOUNCE;
        bytes[83] = 7;
        let e = parse_err(&bytes);
        assert_eq!(e.kind, RequestParseErrorKind::InvalidEvent(7));
        assert_eq!(e.connection_id, Some(ConnectionId(0x0123_4567_89ab_cdef)));
        assert_eq!(e.transaction_id, Some(TransactionId(0xcafe_babe)));
        assert_eq!(e.to_string(), "invalid announce event 7");
        assert_eq!(e.message(), "invalid announce event");
    }

    #[test]
    fn announce_too_short_keeps_ids() {
        for len in 16..98 {
            let e = parse_err(&ANNOUNCE[..len]);
            assert_eq!(e.kind, RequestParseErrorKind::TooShort { len });
            assert_eq!(e.transaction_id, Some(TransactionId(0xcafe_babe)));
        }
    }

    #[test]
    fn shorter_than_header_has_no_ids() {
        for len in 0..16 {
            let e = parse_err(&ANNOUNCE[..len]);
            assert_eq!(
                e,
                RequestParseError {
                    kind: RequestParseErrorKind::TooShort { len },
                    connection_id: None,
                    transaction_id: None,
                }
            );
        }
        assert_eq!(
            parse_err(&[0; 12]).to_string(),
            "packet too short (12 bytes)"
        );
    }

    #[test]
    fn announce_with_bep41_options() {
        let mut bytes = [0u8; 98 + 25];
        bytes[..98].copy_from_slice(ANNOUNCE);
        // NOP, URLData "/ann", unknown type 9 with 2 bytes, URLData
        // "ounce?x=1", EndOfOptions, then garbage that must be ignored.
        bytes[98..].copy_from_slice(b"\x01\x02\x04/ann\x09\x02zz\x02\x09ounce?x=1\x00\xff\xff");
        let Ok(Request::Announce(a)) = Request::parse(&bytes) else {
            panic!();
        };
        let mut it = a.options.iter();
        assert_eq!(it.next(), Some(Ok(Bep41Option::Nop)));
        assert_eq!(it.next(), Some(Ok(Bep41Option::UrlData(b"/ann"))));
        assert_eq!(
            it.next(),
            Some(Ok(Bep41Option::Unknown {
                kind: 9,
                data: b"zz"
            }))
        );
        assert_eq!(it.next(), Some(Ok(Bep41Option::UrlData(b"ounce?x=1"))));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);

        let mut url = [0u8; 13];
        assert_eq!(a.options.url_data_into(&mut url), Ok(13));
        assert_eq!(&url, b"/announce?x=1");
        assert_eq!(a.options.url_data_into(&mut [0u8; 12]), Err(BufferTooSmall));

        let mut buf = [0u8; 1024];
        assert_eq!(emit_request(&Request::Announce(a), &mut buf), &bytes[..]);
    }

    #[test]
    fn malformed_bep41_options_do_not_fail_the_announce() {
        type Decoded = Result<Bep41Option<'static>, Bep41Error>;
        let cases: [(&[u8], &[Decoded]); 4] = [
            // Length runs past the end: one error, then nothing.
            (
                b"\x02\x05/a",
                &[Err(Bep41Error::Truncated {
                    kind: 2,
                    len: 5,
                    available: 2,
                })],
            ),
            // Type byte with no length byte.
            (
                b"\x01\x07",
                &[
                    Ok(Bep41Option::Nop),
                    Err(Bep41Error::MissingLength { kind: 7 }),
                ],
            ),
            // Good data before the bad option is still seen.
            (
                b"\x02\x01/\x02\xff",
                &[
                    Ok(Bep41Option::UrlData(b"/")),
                    Err(Bep41Error::Truncated {
                        kind: 2,
                        len: 255,
                        available: 0,
                    }),
                ],
            ),
            (b"\x00\x02\x05", &[]),
        ];
        for (opts, want) in cases {
            let mut bytes = [0u8; 128];
            bytes[..98].copy_from_slice(ANNOUNCE);
            bytes[98..98 + opts.len()].copy_from_slice(opts);
            let Ok(Request::Announce(a)) = Request::parse(&bytes[..98 + opts.len()]) else {
                panic!("{opts:?}");
            };
            let mut it = a.options.iter();
            for w in want {
                assert_eq!(it.next().as_ref(), Some(w), "{opts:?}");
            }
            assert_eq!(it.next(), None, "{opts:?}");
        }
        let mut out = [0u8; 8];
        assert_eq!(
            Bep41Options::new(b"\x02\x01/\x02\xff").url_data_into(&mut out),
            Ok(1)
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn url_data_vec() {
        let o = Bep41Options::new(b"\x02\x03/an\x01\x02\x08nounce?a\x02\x09");
        assert_eq!(o.url_data(), b"/announce?a");
    }

    #[test]
    fn scrape_known_bytes() {
        let mut bytes = [0u8; 16 + 40];
        bytes[..16]
            .copy_from_slice(b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x02\x00\x00\x00\x09");
        bytes[16..36].copy_from_slice(&info_hash_0_to_19().0);
        bytes[36..].fill(0xee);
        let Ok(Request::Scrape(s)) = Request::parse(&bytes) else {
            panic!();
        };
        assert_eq!(s.connection_id, ConnectionId(7));
        assert_eq!(s.transaction_id, TransactionId(9));
        assert_eq!(s.info_hashes.len(), 2);
        assert_eq!(s.info_hashes.get(0), Some(info_hash_0_to_19()));
        assert_eq!(s.info_hashes.get(1), Some(InfoHash([0xee; 20])));
        assert_eq!(s.info_hashes.get(2), None);
        assert_eq!(s.info_hashes.get(usize::MAX), None);
        assert_eq!(s.info_hashes.iter().count(), 2);
        assert_eq!(s.info_hashes.as_bytes(), &bytes[16..]);

        let mut buf = [0u8; 1024];
        assert_eq!(emit_request(&Request::Scrape(s), &mut buf), &bytes[..]);
    }

    #[test]
    fn scrape_without_hashes_is_accepted() {
        let bytes = b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x02\x00\x00\x00\x09";
        let Ok(Request::Scrape(s)) = Request::parse(bytes) else {
            panic!();
        };
        assert!(s.info_hashes.is_empty());
    }

    #[test]
    fn scrape_bad_length() {
        let mut bytes = [0u8; 16 + 19];
        bytes[11] = 2;
        bytes[15] = 9;
        let e = parse_err(&bytes);
        assert_eq!(e.kind, RequestParseErrorKind::ScrapeLength(19));
        assert_eq!(e.transaction_id, Some(TransactionId(9)));
        assert_eq!(e.to_string(), "scrape length is not a multiple of 20");
    }

    #[test]
    fn unknown_actions() {
        for action in [3u8, 9, 255] {
            let mut bytes = *CONNECT;
            bytes[11] = action;
            let e = parse_err(&bytes);
            assert_eq!(
                e.kind,
                RequestParseErrorKind::UnknownAction(u32::from(action))
            );
            assert_eq!(e.transaction_id, Some(TransactionId(0xdead_beef)));
        }
        let mut bytes = *CONNECT;
        bytes[11] = 9;
        assert_eq!(parse_err(&bytes).to_string(), "unknown action 9");
        assert_eq!(parse_err(&bytes).message(), "unknown action");
    }

    #[test]
    fn error_kind_messages() {
        use RequestParseErrorKind::*;
        assert_eq!(BadProtocolId(1).to_string(), "bad protocol id");
        assert_eq!(TooShort { len: 3 }.message(), "packet too short");
        assert_eq!(
            ScrapeLength(3).message(),
            "scrape length is not a multiple of 20"
        );
        assert_eq!(InvalidEvent(4).message(), "invalid announce event");
    }

    #[test]
    fn connect_response_known_bytes() {
        let bytes = b"\x00\x00\x00\x00\xde\xad\xbe\xef\x01\x02\x03\x04\x05\x06\x07\x08";
        let resp = Response::parse(bytes, PeerFamily::V4).unwrap();
        assert_eq!(
            resp,
            Response::Connect(ConnectResponse {
                transaction_id: TransactionId(0xdead_beef),
                connection_id: ConnectionId(0x0102_0304_0506_0708),
            })
        );
        let mut buf = [0u8; 16];
        assert_eq!(
            write_connect_response(
                &mut buf,
                TransactionId(0xdead_beef),
                ConnectionId(0x0102_0304_0506_0708)
            ),
            Ok(16)
        );
        assert_eq!(&buf, bytes);
        assert_eq!(
            write_connect_response(&mut [0u8; 15], TransactionId(0), ConnectionId(0)),
            Err(BufferTooSmall)
        );
    }

    #[test]
    fn announce_response_v4_known_bytes() {
        let bytes = b"\x00\x00\x00\x01\x00\x00\x00\x05\
            \x00\x00\x07\x08\x00\x00\x00\x03\x00\x00\x00\x0a\
            \xc0\x00\x02\x01\x1a\xe1\
            \x0a\x00\x00\x02\x00\x50";
        let Ok(Response::Announce(a)) = Response::parse(bytes, PeerFamily::V4) else {
            panic!();
        };
        assert_eq!(a.transaction_id, TransactionId(5));
        assert_eq!(a.interval, 1800);
        assert_eq!(a.leechers, 3);
        assert_eq!(a.seeders, 10);
        let Peers::V4(peers) = a.peers else { panic!() };
        assert_eq!(
            peers,
            &[
                PeerV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881),
                PeerV4::new(Ipv4Addr::new(10, 0, 0, 2), 80)
            ]
        );
        assert_eq!(peers[0].ip(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(peers[0].port(), 6881);

        let mut buf = [0u8; 1024];
        assert_eq!(emit_response(&Response::Announce(a), &mut buf), bytes);

        // 12 bytes of peers is two v4 peers but not a whole v6 peer.
        assert_eq!(
            Response::parse(bytes, PeerFamily::V6),
            Err(ResponseParseError::PeersLength {
                len: 12,
                family: PeerFamily::V6
            })
        );
        assert_eq!(
            Response::parse(&bytes[..bytes.len() - 1], PeerFamily::V4),
            Err(ResponseParseError::PeersLength {
                len: 11,
                family: PeerFamily::V4
            })
        );
    }

    #[test]
    fn announce_response_v6_known_bytes() {
        let bytes = b"\x00\x00\x00\x01\x00\x00\x00\x05\
            \x00\x00\x07\x08\x00\x00\x00\x00\x00\x00\x00\x01\
            \x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1";
        let Ok(Response::Announce(a)) = Response::parse(bytes, PeerFamily::V6) else {
            panic!();
        };
        let peer = PeerV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 6881);
        assert_eq!(a.peers, Peers::V6(&[peer]));
        assert_eq!(a.peers.len(), 1);
        assert_eq!(a.peers.family(), PeerFamily::V6);
        let mut buf = [0u8; 1024];
        assert_eq!(emit_response(&Response::Announce(a), &mut buf), bytes);
    }

    #[test]
    fn scrape_response_known_bytes() {
        // Wire order is seeders, completed, leechers.
        let bytes = b"\x00\x00\x00\x02\x00\x00\x00\x05\
            \x00\x00\x00\x0a\x00\x00\x00\x64\x00\x00\x00\x03";
        let Ok(Response::Scrape(s)) = Response::parse(bytes, PeerFamily::V4) else {
            panic!();
        };
        assert_eq!(s.stats, &[ScrapeStats::new(10, 100, 3)]);
        assert_eq!(s.stats[0].seeders(), 10);
        assert_eq!(s.stats[0].completed(), 100);
        assert_eq!(s.stats[0].leechers(), 3);
        let mut buf = [0u8; 1024];
        assert_eq!(emit_response(&Response::Scrape(s), &mut buf), bytes);
        assert_eq!(
            Response::parse(&bytes[..19], PeerFamily::V4),
            Err(ResponseParseError::ScrapeLength(11))
        );
    }

    #[test]
    fn error_response_known_bytes() {
        let bytes = b"\x00\x00\x00\x03\x00\x00\x00\x05unknown action";
        let Ok(Response::Error(e)) = Response::parse(bytes, PeerFamily::V4) else {
            panic!();
        };
        assert_eq!(e.transaction_id, TransactionId(5));
        assert_eq!(e.message, b"unknown action");
        let mut buf = [0u8; 1024];
        assert_eq!(emit_response(&Response::Error(e), &mut buf), bytes);
        let mut small = [0u8; 21];
        assert_eq!(
            write_error_response(&mut small, TransactionId(5), b"unknown action"),
            Err(BufferTooSmall)
        );
        assert_eq!(small, [0u8; 21], "a failed write leaves the buffer alone");
    }

    #[test]
    fn response_errors() {
        for len in 0..8 {
            assert_eq!(
                Response::parse(&[0u8; 8][..len], PeerFamily::V4),
                Err(ResponseParseError::TooShort { len })
            );
        }
        assert_eq!(
            Response::parse(&[0u8; 15], PeerFamily::V4),
            Err(ResponseParseError::TooShort { len: 15 })
        );
        let mut announce = [0u8; 19];
        announce[3] = 1;
        assert_eq!(
            Response::parse(&announce, PeerFamily::V4),
            Err(ResponseParseError::TooShort { len: 19 })
        );
        assert_eq!(
            Response::parse(b"\x00\x00\x00\x04\x00\x00\x00\x00", PeerFamily::V4),
            Err(ResponseParseError::UnknownAction(4))
        );
    }

    #[test]
    fn peer_views() {
        let bytes = [192, 0, 2, 1, 0x1a, 0xe1, 10, 0, 0, 1, 0, 80];
        let peers = peers_v4_from_bytes(&bytes).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers_v4_as_bytes(peers), &bytes);
        assert_eq!(format!("{:?}", peers[0]), "192.0.2.1:6881");
        assert!(peers_v4_from_bytes(&bytes[..11]).is_none());
        assert!(peers_v6_from_bytes(&bytes).is_none());
        assert_eq!(peers_v4_from_bytes(&[]), Some(&[][..]));

        let v6 = PeerV6::new(Ipv6Addr::LOCALHOST, 443);
        assert_eq!(format!("{v6:?}"), "[::1]:443");
        let b = peers_v6_as_bytes(core::slice::from_ref(&v6));
        assert_eq!(b.len(), 18);
        assert_eq!(&b[16..], &[1, 187]);
        assert_eq!(peers_v6_from_bytes(b), Some(&[v6][..]));

        let s = ScrapeStats::new(1, 2, 3);
        let b = scrape_stats_as_bytes(core::slice::from_ref(&s));
        assert_eq!(b, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(scrape_stats_from_bytes(b), Some(&[s][..]));
        assert!(scrape_stats_from_bytes(&b[1..]).is_none());

        // Byte order sorts like (address, port).
        assert!(
            PeerV4::new(Ipv4Addr::new(1, 0, 0, 0), 65535)
                < PeerV4::new(Ipv4Addr::new(1, 0, 0, 1), 0)
        );
        let sa = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5);
        assert_eq!(SocketAddrV4::from(PeerV4::from(sa)), sa);
    }

    #[test]
    fn info_hashes_views() {
        let hashes = [info_hash_0_to_19(), InfoHash([7; 20])];
        let view = InfoHashes::from_slice(&hashes);
        assert_eq!(view.len(), 2);
        assert_eq!(InfoHashes::from_bytes(view.as_bytes()), Some(view));
        assert_eq!(&view.as_bytes()[..20], &info_hash_0_to_19().0);
        assert!(InfoHashes::from_bytes(&[0; 21]).is_none());
        assert!(InfoHashes::from_bytes(&[]).unwrap().is_empty());
    }

    #[test]
    fn emit_into_small_buffers() {
        let Ok(req) = Request::parse(ANNOUNCE) else {
            panic!()
        };
        let mut buf = [0u8; 98];
        for len in 0..98 {
            assert_eq!(req.emit(&mut buf[..len]), Err(BufferTooSmall));
        }
        assert_eq!(req.emit(&mut buf), Ok(98));
    }
}
