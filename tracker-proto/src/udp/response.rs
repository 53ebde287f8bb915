//! Responses the tracker sends: parsed in place for clients and the load
//! tester, and written by the tracker straight into its send buffer.

use core::fmt;

use super::cursor::{Reader, Writer};
use super::records::byte_slice;
use super::{
    peers_v4_from_bytes, peers_v6_from_bytes, scrape_stats_as_bytes, scrape_stats_from_bytes,
    BufferTooSmall, ConnectionId, PeerV4, PeerV6, ScrapeStats, TransactionId, ACTION_ANNOUNCE,
    ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE, ANNOUNCE_RESPONSE_HEADER_LEN,
    CONNECT_RESPONSE_LEN, ERROR_RESPONSE_HEADER_LEN, SCRAPE_RESPONSE_HEADER_LEN,
};

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
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn emit_response<'b>(r: &Response<'_>, buf: &'b mut [u8; 1024]) -> &'b [u8] {
        let n = r.emit(buf).unwrap();
        assert_eq!(n, r.encoded_len());
        &buf[..n]
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
}
