//! The HTTP tracker codec against hand-written wire bytes: requests as real
//! clients send them, responses byte for byte, and percent-decoding of every
//! byte value in every escaping style.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracker_proto::http::*;
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

fn hex(s: &str) -> [u8; 20] {
    InfoHash::from_hex(s).unwrap().0
}

fn announce(target: &str) -> AnnounceQuery<'_> {
    match HttpRequest::parse(target.as_bytes()) {
        Ok(HttpRequest::Announce(a)) => a,
        other => panic!("{target}: {other:?}"),
    }
}

fn scrape(target: &str) -> ScrapeQuery<'_> {
    match HttpRequest::parse(target.as_bytes()) {
        Ok(HttpRequest::Scrape(s)) => s,
        other => panic!("{target}: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Requests as clients send them

#[test]
fn qbittorrent_libtorrent_announce() {
    // libtorrent escapes all but the unreserved bytes, upper-case hex, and
    // adds its own parameters (corrupt, redundant, supportcrypto).
    let a = announce(
        "/announce?info_hash=%D8%E1%B1%2B%E2%9E%5C%9Ai%DF%88%C5%0F%A0%A3%C9%3D%27%E0%F2\
         &peer_id=-qB4650-u%21Hf7YiVhqRU&port=45678&uploaded=0&downloaded=0\
         &left=1073741824&corrupt=0&key=7A5C1B2E&event=started&numwant=200&compact=1\
         &no_peer_id=1&supportcrypto=1&redundant=0",
    );
    assert_eq!(
        a.info_hash.0,
        hex("d8e1b12be29e5c9a69df88c50fa0a3c93d27e0f2")
    );
    assert_eq!(a.peer_id, PeerId(*b"-qB4650-u!Hf7YiVhqRU"));
    assert_eq!(a.port, 45678);
    assert_eq!(a.left, Some(1 << 30));
    assert_eq!(a.event, AnnounceEvent::Started);
    assert_eq!(a.numwant, Some(200));
    assert!(a.compact && a.no_peer_id);
    assert_eq!(a.key.unwrap().raw(), b"7A5C1B2E");
}

#[test]
fn libtorrent_partial_seed_and_ipv6() {
    // A BEP 21 partial seed re-announcing, with the BEP 7 ipv6 parameter.
    let a = announce(
        "/announce?info_hash=%D8%E1%B1%2B%E2%9E%5C%9Ai%DF%88%C5%0F%A0%A3%C9%3D%27%E0%F2\
         &peer_id=-lt20A0-abcdefghijkl&port=6881&uploaded=1024&downloaded=4096&left=2048\
         &corrupt=0&key=1&event=paused&numwant=50&compact=1&no_peer_id=1\
         &ipv6=2001%3Adb8%3A%3A2",
    );
    assert_eq!((a.event, a.paused), (AnnounceEvent::None, true));
    assert_eq!((a.uploaded, a.downloaded), (1024, 4096));
    assert_eq!(
        a.ipv6.unwrap().ip_addr(),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)))
    );
}

#[test]
fn transmission_announce() {
    // Transmission: unreserved bytes raw (here '.', 'J', 'j', 'O', 'z'),
    // hex key, requirecrypto, trackerid.
    let a = announce(
        "/announce?info_hash=%5D%8B.J%7C%1F%00%FF%3Bj%9E%8D%2COz%1B%0E%5D%3C%21\
         &peer_id=-TR4040-7ogv9l2xq1a3&port=51413&uploaded=0&downloaded=0&left=0\
         &numwant=80&key=5a3f9c1d&compact=1&supportcrypto=1&requirecrypto=1\
         &event=completed&trackerid=abc",
    );
    assert_eq!(
        a.info_hash.0,
        hex("5d8b2e4a7c1f00ff3b6a9e8d2c4f7a1b0e5d3c21")
    );
    assert_eq!(a.peer_id, PeerId(*b"-TR4040-7ogv9l2xq1a3"));
    assert_eq!(a.port, 51413);
    assert_eq!(a.left, Some(0));
    assert_eq!(a.event, AnnounceEvent::Completed);
    assert_eq!(a.numwant, Some(80));
    assert!(a.compact && !a.no_peer_id);
}

#[test]
fn bittorrent_tracker_node_client_announce() {
    // npm bittorrent-tracker's HTTP client: JavaScript escape() with '@*/+'
    // re-escaped, so alphanumerics and '-', '.', '_' stay raw; no `left`
    // for a magnet whose size is not known yet.
    let a = announce(
        "/announce?info_hash=%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg\
         &peer_id=-WW0208-%2B%2F%40%2A_.xyzw%20%FF&port=6881&compact=1&numwant=50\
         &uploaded=0&downloaded=0&event=started",
    );
    assert_eq!(
        a.info_hash.0,
        hex("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(a.peer_id, PeerId(*b"-WW0208-+/@*_.xyzw \xff"));
    assert_eq!(a.left, None);
}

#[test]
fn old_client_escapes_every_byte_lowercase() {
    let a = announce(
        "/announce.php?info_hash=%01%23%45%67%89%ab%cd%ef%01%23%45%67%89%ab%cd%ef%01%23%45%67\
         &peer_id=%2d%41%5a%35%37%35%30%2d%61%62%63%64%65%66%67%68%69%6a%6b%6c\
         &port=6881&uploaded=0&downloaded=0&left=10&event=started&azudp=6881\
         &supportcrypto=1&azver=3",
    );
    assert_eq!(
        a.info_hash.0,
        hex("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(a.peer_id, PeerId(*b"-AZ5750-abcdefghijkl"));
    assert!(!a.compact);
}

#[test]
fn raw_plus_is_a_literal_byte() {
    let a = announce(
        "/announce?info_hash=++++++++++++++++++++&peer_id=%2B%2B%2B%2B%2B+++++++++++++++\
         &port=1",
    );
    assert_eq!(a.info_hash, InfoHash([b'+'; 20]));
    assert_eq!(a.peer_id, PeerId([b'+'; 20]));
}

#[test]
fn passkey_paths() {
    let a = announce(
        "/3f2a9c0d8e7b6a5f/announce?info_hash=%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg\
         &peer_id=-TR4040-7ogv9l2xq1a3&port=51413",
    );
    assert_eq!(a.port, 51413);
    let s = scrape(
        "/3f2a9c0d8e7b6a5f/scrape?info_hash=%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg",
    );
    assert_eq!(s.len(), 1);
}

#[test]
fn multi_hash_scrape() {
    let s = scrape(
        "/scrape?info_hash=%D8%E1%B1%2B%E2%9E%5C%9Ai%DF%88%C5%0F%A0%A3%C9%3D%27%E0%F2\
         &info_hash=%5D%8B.J%7C%1F%00%FF%3Bj%9E%8D%2COz%1B%0E%5D%3C%21",
    );
    let hashes: Vec<_> = s.info_hashes().collect();
    assert_eq!(
        hashes,
        [
            InfoHash(hex("d8e1b12be29e5c9a69df88c50fa0a3c93d27e0f2")),
            InfoHash(hex("5d8b2e4a7c1f00ff3b6a9e8d2c4f7a1b0e5d3c21")),
        ]
    );
    assert!(scrape("/scrape").is_empty());
    assert!(scrape("/scrape?").is_empty());
}

// ---------------------------------------------------------------------------
// Every byte value, every escaping style

/// The 256 byte values as 13 hashes (the last one wraps around).
fn all_byte_hashes() -> Vec<[u8; 20]> {
    (0..13)
        .map(|i| core::array::from_fn(|j| ((i * 20 + j) % 256) as u8))
        .collect()
}

fn lower_hex_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

fn encode(bytes: &[u8], style: EscapeStyle) -> String {
    let mut out = Vec::new();
    percent_encode(&mut out, bytes, style);
    String::from_utf8(out).unwrap()
}

/// "Escape only what a URL cannot hold": everything printable except the
/// delimiters stays raw, including '+', which must then mean itself.
fn minimal_escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'#' | b'=' | b'?') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn every_byte_value_in_every_style() {
    let hashes = all_byte_hashes();
    let seen: std::collections::BTreeSet<u8> = hashes.iter().flatten().copied().collect();
    assert_eq!(seen.len(), 256);
    for h in &hashes {
        for info in [
            encode(h, EscapeStyle::All),
            encode(h, EscapeStyle::Reserved),
            lower_hex_all(h),
            minimal_escape(h),
        ] {
            let peer = info.clone();
            let target = format!("/announce?info_hash={info}&peer_id={peer}&port=1");
            let a = announce(&target);
            assert_eq!(a.info_hash.0, *h, "{info}");
            assert_eq!(a.peer_id.0, *h, "{info}");
            let target = format!("/scrape?info_hash={info}&info_hash={info}");
            let s = scrape(&target);
            assert_eq!(s.info_hashes().collect::<Vec<_>>(), [InfoHash(*h); 2]);
        }
    }
}

#[test]
fn reserved_style_leaves_exactly_the_unreserved_set() {
    let all: Vec<u8> = (0..=255).collect();
    let enc = encode(&all, EscapeStyle::Reserved);
    let raw: String = enc.split('%').map(|s| s.get(2..).unwrap_or(s)).collect();
    assert_eq!(
        raw,
        "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
    );
    assert_eq!(EncodedValue(enc.as_bytes()).decode_to_vec().unwrap(), all);
}

// ---------------------------------------------------------------------------
// Responses, byte for byte

fn write(r: &HttpAnnounceResponse<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_announce_response(&mut out, r);
    out
}

#[test]
fn compact_response_bytes() {
    let v4 = [
        PeerV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881),
        PeerV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
    ];
    let v6 = [PeerV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        443,
    )];
    let out = write(&HttpAnnounceResponse {
        interval: 1800,
        min_interval: Some(900),
        complete: 10,
        incomplete: 3,
        peers: ResponsePeers::Compact { v4: &v4, v6: &v6 },
        external_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        warning_message: Some(b"be nice"),
    });
    let want: &[u8] = b"d8:completei10e11:external ip4:\xcb\x00\x71\x07\
        10:incompletei3e8:intervali1800e12:min intervali900e\
        5:peers12:\xc0\x00\x02\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50\
        6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb\
        15:warning message7:be nicee";
    assert_eq!(
        out.escape_ascii().to_string(),
        want.escape_ascii().to_string()
    );
}

#[test]
fn minimal_compact_response_bytes() {
    let out = write(&HttpAnnounceResponse {
        interval: 120,
        min_interval: None,
        complete: 0,
        incomplete: 1,
        peers: ResponsePeers::Compact { v4: &[], v6: &[] },
        external_ip: None,
        warning_message: None,
    });
    assert_eq!(
        out,
        b"d8:completei0e10:incompletei1e8:intervali120e5:peers0:e"
    );
}

#[test]
fn external_ipv6_bytes() {
    let out = write(&HttpAnnounceResponse {
        interval: 1,
        min_interval: None,
        complete: 0,
        incomplete: 0,
        peers: ResponsePeers::Compact { v4: &[], v6: &[] },
        external_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        warning_message: None,
    });
    let want: &[u8] = b"d8:completei0e11:external ip16:\
        \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\
        10:incompletei0e8:intervali1e5:peers0:e";
    assert_eq!(out, want);
}

#[test]
fn dict_response_bytes() {
    let v4 = [PeerV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881)];
    let v6 = [PeerV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        443,
    )];
    let out = write(&HttpAnnounceResponse {
        interval: 1800,
        min_interval: None,
        complete: 1,
        incomplete: 2,
        peers: ResponsePeers::Dicts { v4: &v4, v6: &v6 },
        external_ip: None,
        warning_message: None,
    });
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "d8:completei1e10:incompletei2e8:intervali1800e5:peersl\
         d2:ip9:192.0.2.14:porti6881ee\
         d2:ip11:2001:db8::14:porti443ee\
         ee"
    );
    let empty = write(&HttpAnnounceResponse {
        interval: 5,
        min_interval: None,
        complete: 0,
        incomplete: 0,
        peers: ResponsePeers::Dicts { v4: &[], v6: &[] },
        external_ip: None,
        warning_message: None,
    });
    assert_eq!(
        empty,
        b"d8:completei0e10:incompletei0e8:intervali5e5:peerslee"
    );
}

#[test]
fn dict_with_ids_response_bytes() {
    let peers = [
        DictPeer {
            ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            port: 51413,
            peer_id: Some(PeerId(*b"-TR4040-7ogv9l2xq1a3")),
        },
        DictPeer {
            ip: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xabcd)),
            port: 1,
            peer_id: None,
        },
    ];
    let out = write(&HttpAnnounceResponse {
        interval: 60,
        min_interval: Some(30),
        complete: 0,
        incomplete: 2,
        peers: ResponsePeers::DictsWithIds(&peers),
        external_ip: None,
        warning_message: None,
    });
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "d8:completei0e10:incompletei2e8:intervali60e12:min intervali30e5:peersl\
         d2:ip8:10.1.2.37:peer id20:-TR4040-7ogv9l2xq1a34:porti51413ee\
         d2:ip10:fe80::abcd4:porti1ee\
         ee"
    );
}

#[test]
fn scrape_response_bytes() {
    let a = InfoHash([b'a'; 20]);
    let b = InfoHash([b'b'; 20]);
    let mut files = [
        ScrapeFile {
            info_hash: b,
            complete: 5,
            downloaded: 50,
            incomplete: 0,
        },
        ScrapeFile {
            info_hash: a,
            complete: 1,
            downloaded: 2,
            incomplete: 3,
        },
        // A client may name a hash twice; a dictionary holds it once.
        ScrapeFile {
            info_hash: b,
            complete: 5,
            downloaded: 50,
            incomplete: 0,
        },
    ];
    let want = "d5:filesd\
        20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi2e10:incompletei3ee\
        20:bbbbbbbbbbbbbbbbbbbbd8:completei5e10:downloadedi50e10:incompletei0ee\
        ee";
    let (fb, fa) = (files[0], files[1]);
    let mut out = Vec::new();
    write_scrape_response(&mut out, &mut files);
    assert_eq!(String::from_utf8(out).unwrap(), want);

    // The sorted variant drops what is out of order rather than write
    // invalid bencode.
    let mut out = Vec::new();
    write_scrape_response_sorted(&mut out, [fa, fb, fa, fb]);
    assert_eq!(String::from_utf8(out).unwrap(), want);

    let mut out = Vec::new();
    write_scrape_response(&mut out, &mut []);
    assert_eq!(out, b"d5:filesdee");
}

#[test]
fn failure_bytes() {
    let mut out = b"prefix:".to_vec();
    write_failure(
        &mut out,
        HttpParseError::MissingInfoHash.message().as_bytes(),
    );
    assert_eq!(out, b"prefix:d14:failure reason17:missing info_hashe");
    let mut out = Vec::new();
    write_failure(&mut out, b"");
    assert_eq!(out, b"d14:failure reason0:e");
}

#[test]
fn responses_decode() {
    let v4 = [PeerV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881)];
    let out = write(&HttpAnnounceResponse {
        interval: 1800,
        min_interval: Some(60),
        complete: 7,
        incomplete: 8,
        peers: ResponsePeers::Compact { v4: &v4, v6: &[] },
        external_ip: None,
        warning_message: Some(b"w"),
    });
    let v = BValue::decode(&out).unwrap();
    assert_eq!(v.get(b"interval").and_then(BValue::as_int), Some(1800));
    assert_eq!(v.get(b"min interval").and_then(BValue::as_int), Some(60));
    assert_eq!(v.get(b"complete").and_then(BValue::as_int), Some(7));
    assert_eq!(v.get(b"incomplete").and_then(BValue::as_int), Some(8));
    assert_eq!(
        v.get(b"peers").and_then(BValue::as_bytes),
        Some(&[192, 0, 2, 1, 0x1a, 0xe1][..])
    );
    assert_eq!(v.get(b"peers6"), None);
    assert_eq!(
        v.get(b"warning message").and_then(BValue::as_bytes),
        Some(&b"w"[..])
    );
}
