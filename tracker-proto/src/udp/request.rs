//! Requests a client sends: connect, announce (with BEP 41 options) and
//! scrape; parsed in place and emitted into a caller's buffer.

use core::fmt;
use core::net::Ipv4Addr;

use super::cursor::{Reader, Writer};
use super::{
    Bep41Options, BufferTooSmall, ConnectionId, InfoHashes, TransactionId, ACTION_ANNOUNCE,
    ACTION_CONNECT, ACTION_SCRAPE, ANNOUNCE_REQUEST_LEN, CONNECT_REQUEST_LEN, PROTOCOL_ID,
    SCRAPE_REQUEST_HEADER_LEN,
};
use crate::common::{AnnounceEvent, InfoHash, PeerId};

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
            Request::Announce(a) => ANNOUNCE_REQUEST_LEN.saturating_add(a.options.as_bytes().len()),
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
                w.bytes(a.options.as_bytes())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    // The crate may be `no_std`; its tests still run on a std host.
    extern crate std;
    use std::string::ToString;

    use crate::udp::{info_hash_0_to_19, Bep41Error, Bep41Option};

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
