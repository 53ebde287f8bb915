//! Property tests for the BEP 15 codec: every message survives emit → parse,
//! and no byte string, however mangled, makes a parser panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use tracker_proto::udp::*;
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

/// Fills output buffers beforehand, to catch writes past `encoded_len`.
const SENTINEL: u8 = 0xa5;

fn arb_event() -> impl Strategy<Value = AnnounceEvent> {
    prop_oneof![
        Just(AnnounceEvent::None),
        Just(AnnounceEvent::Completed),
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Stopped),
    ]
}

/// Owned data behind an `AnnounceRequest`, which borrows its options.
#[derive(Debug, Clone)]
struct AnnounceData {
    connection_id: u64,
    transaction_id: u32,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    counters: (u64, u64, u64),
    event: AnnounceEvent,
    ip: u32,
    key: u32,
    num_want: i32,
    port: u16,
    options: Vec<u8>,
}

impl AnnounceData {
    fn request(&self) -> Request<'_> {
        Request::Announce(AnnounceRequest {
            connection_id: ConnectionId(self.connection_id),
            transaction_id: TransactionId(self.transaction_id),
            info_hash: InfoHash(self.info_hash),
            peer_id: PeerId(self.peer_id),
            downloaded: self.counters.0,
            left: self.counters.1,
            uploaded: self.counters.2,
            event: self.event,
            // 0 is how the wire says "none", so `Some(0.0.0.0)` cannot
            // round-trip; generate it only as `None`.
            ip_address: (self.ip != 0).then(|| Ipv4Addr::from(self.ip)),
            key: self.key,
            num_want: self.num_want,
            port: self.port,
            options: Bep41Options::new(&self.options),
        })
    }
}

/// Options bytes: fully random, or a well-formed list, or well-formed then
/// random, since each reaches different parts of the option decoder.
fn arb_options() -> impl Strategy<Value = Vec<u8>> {
    let well_formed = vec(
        prop_oneof![
            Just(vec![1u8]),
            vec(any::<u8>(), 0..40).prop_map(|d| {
                let mut o = vec![2, d.len() as u8];
                o.extend(d);
                o
            }),
            (3u8.., vec(any::<u8>(), 0..10)).prop_map(|(k, d)| {
                let mut o = vec![k, d.len() as u8];
                o.extend(d);
                o
            }),
        ],
        0..6,
    )
    .prop_map(|v| v.concat());
    prop_oneof![
        vec(any::<u8>(), 0..80),
        well_formed.clone(),
        (well_formed, vec(any::<u8>(), 0..10)).prop_map(|(mut a, b)| {
            a.extend(b);
            a
        }),
    ]
}

prop_compose! {
    fn arb_announce()(
        connection_id: u64,
        transaction_id: u32,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        counters: (u64, u64, u64),
        event in arb_event(),
        ip in prop_oneof![Just(0u32), any::<u32>()],
        key: u32,
        num_want: i32,
        port: u16,
        options in arb_options(),
    ) -> AnnounceData {
        AnnounceData {
            connection_id, transaction_id, info_hash, peer_id, counters, event, ip, key,
            num_want, port, options,
        }
    }
}

fn hashes_of(raw: &[[u8; 20]]) -> Vec<InfoHash> {
    raw.iter().copied().map(InfoHash).collect()
}

fn arb_hashes() -> impl Strategy<Value = Vec<[u8; 20]>> {
    vec(any::<[u8; 20]>(), 0..=80)
}

fn peers_v4(raw: &[([u8; 4], u16)]) -> Vec<PeerV4> {
    raw.iter()
        .map(|&(ip, port)| PeerV4::new(Ipv4Addr::from(ip), port))
        .collect()
}

fn peers_v6(raw: &[([u8; 16], u16)]) -> Vec<PeerV6> {
    raw.iter()
        .map(|&(ip, port)| PeerV6::new(Ipv6Addr::from(ip), port))
        .collect()
}

fn stats_of(raw: &[(u32, u32, u32)]) -> Vec<ScrapeStats> {
    raw.iter()
        .map(|&(s, c, l)| ScrapeStats::new(s, c, l))
        .collect()
}

fn emit_request(req: &Request<'_>) -> Result<Vec<u8>, TestCaseError> {
    let len = req.encoded_len();
    let mut buf = vec![SENTINEL; len + 16];
    let n = req
        .emit(&mut buf)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(n, len);
    prop_assert!(buf[n..].iter().all(|&b| b == SENTINEL), "wrote past end");
    buf.truncate(n);
    Ok(buf)
}

fn emit_response(resp: &Response<'_>) -> Result<Vec<u8>, TestCaseError> {
    let len = resp.encoded_len();
    let mut buf = vec![SENTINEL; len + 16];
    let n = resp
        .emit(&mut buf)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(n, len);
    prop_assert!(buf[n..].iter().all(|&b| b == SENTINEL), "wrote past end");
    buf.truncate(n);
    Ok(buf)
}

/// `parse(emit(req)) == req`, and every buffer shorter than the packet is
/// refused without being touched.
fn check_request(req: &Request<'_>) -> Result<(), TestCaseError> {
    let bytes = emit_request(req)?;
    prop_assert_eq!(Request::parse(&bytes), Ok(*req));
    for short in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if short < bytes.len() {
            let mut buf = vec![SENTINEL; short];
            prop_assert_eq!(req.emit(&mut buf), Err(BufferTooSmall));
            prop_assert!(buf.iter().all(|&b| b == SENTINEL));
        }
    }
    Ok(())
}

fn check_response(resp: &Response<'_>, family: PeerFamily) -> Result<(), TestCaseError> {
    let bytes = emit_response(resp)?;
    prop_assert_eq!(Response::parse(&bytes, family), Ok(*resp));
    for short in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
        if short < bytes.len() {
            let mut buf = vec![SENTINEL; short];
            prop_assert_eq!(resp.emit(&mut buf), Err(BufferTooSmall));
            prop_assert!(buf.iter().all(|&b| b == SENTINEL));
        }
    }
    Ok(())
}

/// Parses untrusted bytes; an accepted packet must re-emit as a prefix of
/// what was received (only connect requests ignore trailing bytes).
fn check_request_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Request::parse(bytes) {
        Ok(req) => {
            let again = emit_request(&req)?;
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(&again[..], &bytes[..again.len()]);
            if !matches!(req, Request::Connect(_)) {
                prop_assert_eq!(again.len(), bytes.len());
            }
            if let Request::Announce(a) = req {
                drain_options(a.options)?;
            }
        }
        Err(e) => {
            // Identifiers are reported exactly when the header is there.
            prop_assert_eq!(e.transaction_id.is_some(), bytes.len() >= 16);
            prop_assert_eq!(e.connection_id.is_some(), bytes.len() >= 16);
            prop_assert!(!e.to_string().is_empty());
            prop_assert!(!e.message().is_empty());
        }
    }
    Ok(())
}

fn check_response_bytes(bytes: &[u8], family: PeerFamily) -> Result<(), TestCaseError> {
    if let Ok(resp) = Response::parse(bytes, family) {
        let again = emit_response(&resp)?;
        prop_assert!(again.len() <= bytes.len());
        prop_assert_eq!(&again[..], &bytes[..again.len()]);
    }
    Ok(())
}

/// Decodes all options: the decoder must stop, yield at most one error and
/// only as its last item, and agree with `url_data_into`.
fn drain_options(options: Bep41Options<'_>) -> Result<(), TestCaseError> {
    let items: Vec<_> = options.iter().take(options.as_bytes().len() + 1).collect();
    prop_assert!(
        items.len() <= options.as_bytes().len(),
        "decoder did not stop"
    );
    if let Some(pos) = items.iter().position(Result::is_err) {
        prop_assert_eq!(pos, items.len() - 1);
    }
    let url: Vec<u8> = items
        .iter()
        .filter_map(|o| match o {
            Ok(Bep41Option::UrlData(d)) => Some(*d),
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    #[cfg(feature = "std")]
    prop_assert_eq!(&options.url_data(), &url);
    let mut out = vec![0u8; url.len()];
    prop_assert_eq!(options.url_data_into(&mut out), Ok(url.len()));
    prop_assert_eq!(&out, &url);
    if !url.is_empty() {
        let mut small = vec![0u8; url.len() - 1];
        prop_assert_eq!(options.url_data_into(&mut small), Err(BufferTooSmall));
    }
    Ok(())
}

/// Any valid request, emitted.
fn arb_request_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u32>().prop_map(|t| {
            let r = Request::Connect(ConnectRequest {
                transaction_id: TransactionId(t),
            });
            emit_request(&r).unwrap()
        }),
        arb_announce().prop_map(|a| emit_request(&a.request()).unwrap()),
        (any::<u64>(), any::<u32>(), arb_hashes()).prop_map(|(c, t, h)| {
            let hashes = hashes_of(&h);
            let r = Request::Scrape(ScrapeRequest {
                connection_id: ConnectionId(c),
                transaction_id: TransactionId(t),
                info_hashes: InfoHashes::from_slice(&hashes),
            });
            emit_request(&r).unwrap()
        }),
    ]
}

/// Any valid response, emitted, with the family to parse it with.
fn arb_response_bytes() -> impl Strategy<Value = (Vec<u8>, PeerFamily)> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(t, c)| {
            let mut buf = vec![0u8; CONNECT_RESPONSE_LEN];
            write_connect_response(&mut buf, TransactionId(t), ConnectionId(c)).unwrap();
            (buf, PeerFamily::V4)
        }),
        (any::<[u32; 4]>(), vec(any::<([u8; 4], u16)>(), 0..50)).prop_map(|(h, p)| {
            let peers = peers_v4(&p);
            let mut buf = vec![0u8; 20 + 6 * peers.len()];
            write_announce_response(
                &mut buf,
                TransactionId(h[0]),
                h[1],
                h[2],
                h[3],
                Peers::V4(&peers),
            )
            .unwrap();
            (buf, PeerFamily::V4)
        }),
        (any::<[u32; 4]>(), vec(any::<([u8; 16], u16)>(), 0..20)).prop_map(|(h, p)| {
            let peers = peers_v6(&p);
            let mut buf = vec![0u8; 20 + 18 * peers.len()];
            write_announce_response(
                &mut buf,
                TransactionId(h[0]),
                h[1],
                h[2],
                h[3],
                Peers::V6(&peers),
            )
            .unwrap();
            (buf, PeerFamily::V6)
        }),
        (any::<u32>(), vec(any::<(u32, u32, u32)>(), 0..=80)).prop_map(|(t, s)| {
            let stats = stats_of(&s);
            let mut buf = vec![0u8; 8 + 12 * stats.len()];
            write_scrape_response(&mut buf, TransactionId(t), &stats).unwrap();
            (buf, PeerFamily::V4)
        }),
        (any::<u32>(), vec(any::<u8>(), 0..100)).prop_map(|(t, m)| {
            let mut buf = vec![0u8; 8 + m.len()];
            write_error_response(&mut buf, TransactionId(t), &m).unwrap();
            (buf, PeerFamily::V6)
        }),
    ]
}

fn arb_family() -> impl Strategy<Value = PeerFamily> {
    prop_oneof![Just(PeerFamily::V4), Just(PeerFamily::V6)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn connect_request_roundtrip(t: u32) {
        check_request(&Request::Connect(ConnectRequest { transaction_id: TransactionId(t) }))?;
    }

    #[test]
    fn announce_request_roundtrip(a in arb_announce()) {
        let req = a.request();
        check_request(&req)?;
        if let Request::Announce(ann) = req {
            drain_options(ann.options)?;
        }
    }

    #[test]
    fn scrape_request_roundtrip(c: u64, t: u32, raw in arb_hashes()) {
        let hashes = hashes_of(&raw);
        let req = Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(c),
            transaction_id: TransactionId(t),
            info_hashes: InfoHashes::from_slice(&hashes),
        });
        check_request(&req)?;
        let bytes = emit_request(&req)?;
        let Ok(Request::Scrape(s)) = Request::parse(&bytes) else {
            return Err(TestCaseError::fail("not a scrape"));
        };
        prop_assert_eq!(s.info_hashes.len(), hashes.len());
        prop_assert_eq!(s.info_hashes.iter().collect::<Vec<_>>(), hashes);
    }

    #[test]
    fn connect_response_roundtrip(t: u32, c: u64, family in arb_family()) {
        check_response(&Response::Connect(ConnectResponse {
            transaction_id: TransactionId(t),
            connection_id: ConnectionId(c),
        }), family)?;
    }

    #[test]
    fn announce_response_v4_roundtrip(h: [u32; 4], raw in vec(any::<([u8; 4], u16)>(), 0..200)) {
        let peers = peers_v4(&raw);
        for (p, &(ip, port)) in peers.iter().zip(&raw) {
            prop_assert_eq!(p.ip(), Ipv4Addr::from(ip));
            prop_assert_eq!(p.port(), port);
        }
        check_response(&Response::Announce(AnnounceResponse {
            transaction_id: TransactionId(h[0]),
            interval: h[1],
            leechers: h[2],
            seeders: h[3],
            peers: Peers::V4(&peers),
        }), PeerFamily::V4)?;
    }

    #[test]
    fn announce_response_v6_roundtrip(h: [u32; 4], raw in vec(any::<([u8; 16], u16)>(), 0..80)) {
        let peers = peers_v6(&raw);
        for (p, &(ip, port)) in peers.iter().zip(&raw) {
            prop_assert_eq!(p.ip(), Ipv6Addr::from(ip));
            prop_assert_eq!(p.port(), port);
        }
        check_response(&Response::Announce(AnnounceResponse {
            transaction_id: TransactionId(h[0]),
            interval: h[1],
            leechers: h[2],
            seeders: h[3],
            peers: Peers::V6(&peers),
        }), PeerFamily::V6)?;
    }

    #[test]
    fn scrape_response_roundtrip(t: u32, raw in vec(any::<(u32, u32, u32)>(), 0..=80)) {
        let stats = stats_of(&raw);
        for (s, &(seeders, completed, leechers)) in stats.iter().zip(&raw) {
            prop_assert_eq!((s.seeders(), s.completed(), s.leechers()), (seeders, completed, leechers));
        }
        check_response(&Response::Scrape(ScrapeResponse {
            transaction_id: TransactionId(t),
            stats: &stats,
        }), PeerFamily::V4)?;
    }

    #[test]
    fn error_response_roundtrip(t: u32, message in vec(any::<u8>(), 0..300)) {
        check_response(&Response::Error(ErrorResponse {
            transaction_id: TransactionId(t),
            message: &message,
        }), PeerFamily::V4)?;
    }

    #[test]
    fn request_parse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300)) {
        check_request_bytes(&bytes)?;
    }

    /// Random bytes rarely carry a known action; steer them there.
    #[test]
    fn request_parse_arbitrary_body(
        first: u64,
        action in 0u32..5,
        txid: u32,
        event in prop_oneof![0u32..5, any::<u32>()],
        tail in vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::new();
        bytes.extend(first.to_be_bytes());
        bytes.extend(action.to_be_bytes());
        bytes.extend(txid.to_be_bytes());
        bytes.extend(tail);
        // A random event is almost never valid, which would keep announces
        // from ever parsing.
        if let Some(e) = bytes.get_mut(80..84) {
            e.copy_from_slice(&event.to_be_bytes());
        }
        check_request_bytes(&bytes)?;
    }

    #[test]
    fn response_parse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..300), family in arb_family()) {
        check_response_bytes(&bytes, family)?;
    }

    #[test]
    fn response_parse_arbitrary_body(action in 0u32..5, txid: u32, tail in vec(any::<u8>(), 0..300), family in arb_family()) {
        let mut bytes = Vec::new();
        bytes.extend(action.to_be_bytes());
        bytes.extend(txid.to_be_bytes());
        bytes.extend(tail);
        check_response_bytes(&bytes, family)?;
    }

    #[test]
    fn request_truncations(bytes in arb_request_bytes()) {
        for len in 0..=bytes.len() {
            check_request_bytes(&bytes[..len])?;
        }
    }

    #[test]
    fn request_byte_flips(mut bytes in arb_request_bytes(), flips in vec((any::<prop::sample::Index>(), 1u8..), 1..6)) {
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
            check_request_bytes(&bytes)?;
        }
    }

    #[test]
    fn response_truncations((bytes, family) in arb_response_bytes()) {
        for len in 0..=bytes.len() {
            check_response_bytes(&bytes[..len], family)?;
            let other = match family { PeerFamily::V4 => PeerFamily::V6, PeerFamily::V6 => PeerFamily::V4 };
            check_response_bytes(&bytes[..len], other)?;
        }
    }

    #[test]
    fn response_byte_flips((mut bytes, family) in arb_response_bytes(), flips in vec((any::<prop::sample::Index>(), 1u8..), 1..6)) {
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
            check_response_bytes(&bytes, family)?;
        }
    }

    #[test]
    fn bep41_arbitrary_options(bytes in arb_options()) {
        drain_options(Bep41Options::new(&bytes))?;
    }

    #[test]
    fn emit_into_every_short_buffer(a in arb_announce()) {
        let req = a.request();
        let len = req.encoded_len();
        let mut buf = vec![SENTINEL; len];
        for short in 0..len {
            prop_assert_eq!(req.emit(&mut buf[..short]), Err(BufferTooSmall));
        }
        prop_assert!(buf.iter().all(|&b| b == SENTINEL));
        prop_assert_eq!(req.emit(&mut buf), Ok(len));
    }
}

/// Each `RequestParseErrorKind`, produced from a packet.
#[test]
fn every_request_error_kind() {
    let connect = emit_request(&Request::Connect(ConnectRequest {
        transaction_id: TransactionId(42),
    }))
    .unwrap();

    let e = Request::parse(&connect[..10]).unwrap_err();
    assert_eq!(e.kind, RequestParseErrorKind::TooShort { len: 10 });
    assert_eq!(e.to_string(), "packet too short (10 bytes)");
    assert_eq!(e.message(), "packet too short");

    let mut bad = connect.clone();
    bad[0] = 1;
    let e = Request::parse(&bad).unwrap_err();
    assert_eq!(
        e.kind,
        RequestParseErrorKind::BadProtocolId(PROTOCOL_ID | 1 << 56)
    );
    assert_eq!(e.transaction_id, Some(TransactionId(42)));
    assert_eq!(e.to_string(), "bad protocol id");

    let mut bad = connect.clone();
    bad[11] = 9;
    let e = Request::parse(&bad).unwrap_err();
    assert_eq!(e.kind, RequestParseErrorKind::UnknownAction(9));
    assert_eq!(e.to_string(), "unknown action 9");

    let data = AnnounceData {
        connection_id: 1,
        transaction_id: 2,
        info_hash: [3; 20],
        peer_id: [4; 20],
        counters: (5, 6, 7),
        event: AnnounceEvent::Stopped,
        ip: 0,
        key: 8,
        num_want: -1,
        port: 6881,
        options: vec![],
    };
    let mut announce = emit_request(&data.request()).unwrap();
    announce[83] = 7;
    let e = Request::parse(&announce).unwrap_err();
    assert_eq!(e.kind, RequestParseErrorKind::InvalidEvent(7));
    assert_eq!(e.connection_id, Some(ConnectionId(1)));
    assert_eq!(e.transaction_id, Some(TransactionId(2)));
    assert_eq!(e.to_string(), "invalid announce event 7");

    let mut scrape = vec![0u8; 16 + 45];
    scrape[11] = ACTION_SCRAPE as u8;
    let e = Request::parse(&scrape).unwrap_err();
    assert_eq!(e.kind, RequestParseErrorKind::ScrapeLength(45));
    assert_eq!(e.to_string(), "scrape length is not a multiple of 20");

    // A server can answer with the fixed message and the echoed id.
    let mut out = [0u8; 64];
    let n =
        write_error_response(&mut out, e.transaction_id.unwrap(), e.message().as_bytes()).unwrap();
    let Ok(Response::Error(err)) = Response::parse(&out[..n], PeerFamily::V4) else {
        panic!("not an error response");
    };
    assert_eq!(err.message, b"scrape length is not a multiple of 20");
}

/// Each `ResponseParseError` variant, produced from a packet.
#[test]
fn every_response_error_kind() {
    assert_eq!(
        Response::parse(&[0, 0, 0, 1], PeerFamily::V4),
        Err(ResponseParseError::TooShort { len: 4 })
    );
    assert_eq!(
        Response::parse(&[0, 0, 0, 7, 0, 0, 0, 0], PeerFamily::V4),
        Err(ResponseParseError::UnknownAction(7))
    );
    let mut announce = vec![0u8; 20 + 7];
    announce[3] = 1;
    assert_eq!(
        Response::parse(&announce, PeerFamily::V4),
        Err(ResponseParseError::PeersLength {
            len: 7,
            family: PeerFamily::V4
        })
    );
    let mut scrape = vec![0u8; 8 + 13];
    scrape[3] = 2;
    assert_eq!(
        Response::parse(&scrape, PeerFamily::V4),
        Err(ResponseParseError::ScrapeLength(13))
    );
}
