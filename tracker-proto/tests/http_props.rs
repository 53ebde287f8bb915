//! Property tests for the HTTP codec: ids survive any escaping, writer
//! output decodes to what was written, and no input makes a parser panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use tracker_proto::http::*;
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::{InfoHash, PeerId};

/// Encodes each byte in a randomly chosen way: raw when that is unambiguous,
/// `%XX` or `%xx` otherwise, so that mixtures of client styles are covered.
fn mixed_encode(bytes: &[u8], choices: &[u8]) -> String {
    bytes
        .iter()
        .zip(choices.iter().cycle())
        .map(|(&b, &c)| {
            let can_be_raw = b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'#' | b'=' | b'?');
            match c % 3 {
                0 if can_be_raw => char::from(b).to_string(),
                1 => format!("%{b:02x}"),
                _ => format!("%{b:02X}"),
            }
        })
        .collect()
}

fn encode(bytes: &[u8], style: EscapeStyle) -> String {
    let mut out = Vec::new();
    percent_encode(&mut out, bytes, style);
    String::from_utf8(out).unwrap()
}

fn v4s(raw: &[([u8; 4], u16)]) -> Vec<PeerV4> {
    raw.iter()
        .map(|&(ip, port)| PeerV4::new(Ipv4Addr::from(ip), port))
        .collect()
}

fn v6s(raw: &[([u8; 16], u16)]) -> Vec<PeerV6> {
    raw.iter()
        .map(|&(ip, port)| PeerV6::new(Ipv6Addr::from(ip), port))
        .collect()
}

fn int(v: &BValue<'_>, key: &[u8]) -> Option<i64> {
    v.get(key).and_then(BValue::as_int)
}

/// Checks a decoded peer dictionary against the peer it was written from.
fn check_dict_peer(
    d: &BValue<'_>,
    ip: IpAddr,
    port: u16,
    id: Option<PeerId>,
) -> Result<(), TestCaseError> {
    let text = d.get(b"ip").and_then(BValue::as_bytes).unwrap_or_default();
    let parsed: IpAddr = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| TestCaseError::fail("ip is not an address"))?;
    prop_assert_eq!(parsed, ip);
    prop_assert_eq!(int(d, b"port"), Some(i64::from(port)));
    prop_assert_eq!(
        d.get(b"peer id").and_then(BValue::as_bytes),
        id.as_ref().map(|p| &p.0[..])
    );
    Ok(())
}

fn arb_query_soup() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just(b"info_hash".to_vec()),
        Just(b"peer_id".to_vec()),
        Just(b"port".to_vec()),
        Just(b"uploaded".to_vec()),
        Just(b"downloaded".to_vec()),
        Just(b"left".to_vec()),
        Just(b"event".to_vec()),
        Just(b"numwant".to_vec()),
        Just(b"compact".to_vec()),
        Just(b"no_peer_id".to_vec()),
        Just(b"key".to_vec()),
        Just(b"ip".to_vec()),
        vec(any::<u8>(), 0..6),
    ];
    let value = prop_oneof![
        vec(any::<u8>(), 0..30),
        "[0-9-]{0,22}".prop_map(String::into_bytes),
        "(%[0-9a-fA-Fz]{0,2}|[a-z+]){0,25}".prop_map(String::into_bytes),
        Just(b"started".to_vec()),
    ];
    let path = prop_oneof![
        Just(b"/announce?".to_vec()),
        Just(b"/scrape?".to_vec()),
        vec(any::<u8>(), 0..12),
    ];
    (path, vec((name, value, any::<bool>()), 0..14)).prop_map(|(mut out, pairs)| {
        for (name, value, with_eq) in pairs {
            out.extend(name);
            if with_eq {
                out.push(b'=');
            }
            out.extend(value);
            out.push(b'&');
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ids_survive_every_escaping(
        hash: [u8; 20],
        peer: [u8; 20],
        choices in vec(any::<u8>(), 1..40),
        port in 1u16..,
    ) {
        for (h, p) in [
            (encode(&hash, EscapeStyle::All), encode(&peer, EscapeStyle::All)),
            (encode(&hash, EscapeStyle::Reserved), encode(&peer, EscapeStyle::Reserved)),
            (mixed_encode(&hash, &choices), mixed_encode(&peer, &choices)),
        ] {
            let target = format!("/announce?peer_id={p}&info_hash={h}&port={port}&compact=1");
            let Ok(HttpRequest::Announce(a)) = HttpRequest::parse(target.as_bytes()) else {
                return Err(TestCaseError::fail(target));
            };
            prop_assert_eq!(a.info_hash, InfoHash(hash));
            prop_assert_eq!(a.peer_id, PeerId(peer));
            prop_assert_eq!(a.port, port);
            let target = format!("/scrape?info_hash={h}&info_hash={p}");
            let Ok(HttpRequest::Scrape(s)) = HttpRequest::parse(target.as_bytes()) else {
                return Err(TestCaseError::fail(target));
            };
            prop_assert_eq!(s.info_hashes().collect::<Vec<_>>(), [InfoHash(hash), InfoHash(peer)]);
        }
    }

    #[test]
    fn counters_round_trip(
        uploaded: u64,
        downloaded: u64,
        left: Option<u64>,
        numwant: Option<u32>,
    ) {
        let mut target = format!(
            "/announce?info_hash={}&peer_id={}&port=1&uploaded={uploaded}&downloaded={downloaded}",
            "a".repeat(20),
            "b".repeat(20)
        );
        if let Some(left) = left {
            target += &format!("&left={left}");
        }
        if let Some(n) = numwant {
            target += &format!("&numwant={n}");
        }
        let Ok(HttpRequest::Announce(a)) = HttpRequest::parse(target.as_bytes()) else {
            return Err(TestCaseError::fail(target));
        };
        prop_assert_eq!((a.uploaded, a.downloaded, a.left, a.numwant), (uploaded, downloaded, left, numwant));
    }

    #[test]
    fn compact_response_decodes(
        interval: u32,
        min_interval: Option<u32>,
        complete: u32,
        incomplete: u32,
        raw4 in vec(any::<([u8; 4], u16)>(), 0..60),
        raw6 in vec(any::<([u8; 16], u16)>(), 0..30),
        external in proptest::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(b.into())),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(b.into())),
        ]),
        warning in proptest::option::of(vec(any::<u8>(), 0..40)),
    ) {
        let (v4, v6) = (v4s(&raw4), v6s(&raw6));
        let mut out = vec![b'x'];
        write_announce_response(&mut out, &HttpAnnounceResponse {
            interval,
            min_interval,
            complete,
            incomplete,
            peers: ResponsePeers::Compact { v4: &v4, v6: &v6 },
            external_ip: external,
            warning_message: warning.as_deref(),
        });
        prop_assert_eq!(out[0], b'x', "appends, never overwrites");
        let v = BValue::decode(&out[1..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(int(&v, b"interval"), Some(i64::from(interval)));
        prop_assert_eq!(int(&v, b"min interval"), min_interval.map(i64::from));
        prop_assert_eq!(int(&v, b"complete"), Some(i64::from(complete)));
        prop_assert_eq!(int(&v, b"incomplete"), Some(i64::from(incomplete)));
        let peers = v.get(b"peers").and_then(BValue::as_bytes).unwrap_or_default();
        prop_assert_eq!(tracker_proto::udp::peers_v4_from_bytes(peers), Some(&v4[..]));
        let peers6 = v.get(b"peers6").and_then(BValue::as_bytes);
        if v6.is_empty() {
            prop_assert_eq!(peers6, None);
        } else {
            prop_assert_eq!(peers6.and_then(tracker_proto::udp::peers_v6_from_bytes), Some(&v6[..]));
        }
        let ext = v.get(b"external ip").and_then(BValue::as_bytes);
        let want_ext = external.map(|ip| match ip {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        });
        prop_assert_eq!(ext.map(<[u8]>::to_vec), want_ext);
        prop_assert_eq!(v.get(b"warning message").and_then(BValue::as_bytes), warning.as_deref());
    }

    #[test]
    fn dict_response_decodes(
        raw4 in vec(any::<([u8; 4], u16)>(), 0..30),
        raw6 in vec(any::<([u8; 16], u16)>(), 0..30),
        ids in vec(proptest::option::of(any::<[u8; 20]>()), 0..30),
    ) {
        let (v4, v6) = (v4s(&raw4), v6s(&raw6));
        let mut out = Vec::new();
        write_announce_response(&mut out, &HttpAnnounceResponse {
            interval: 1,
            min_interval: None,
            complete: 2,
            incomplete: 3,
            peers: ResponsePeers::Dicts { v4: &v4, v6: &v6 },
            external_ip: None,
            warning_message: None,
        });
        let v = BValue::decode(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let list = v.get(b"peers").and_then(BValue::as_list).unwrap_or_default();
        prop_assert_eq!(list.len(), v4.len() + v6.len());
        let want = v4.iter().map(|p| (IpAddr::V4(p.ip()), p.port()))
            .chain(v6.iter().map(|p| (IpAddr::V6(p.ip()), p.port())));
        for (d, (ip, port)) in list.iter().zip(want) {
            check_dict_peer(d, ip, port, None)?;
        }

        let peers: Vec<DictPeer> = ids.iter().zip(v4.iter().map(|p| IpAddr::V4(p.ip()))
            .chain(v6.iter().map(|p| IpAddr::V6(p.ip()))))
            .map(|(id, ip)| DictPeer { ip, port: 7, peer_id: id.map(PeerId) })
            .collect();
        let mut out = Vec::new();
        write_announce_response(&mut out, &HttpAnnounceResponse {
            interval: 1,
            min_interval: None,
            complete: 2,
            incomplete: 3,
            peers: ResponsePeers::DictsWithIds(&peers),
            external_ip: None,
            warning_message: None,
        });
        let v = BValue::decode(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let list = v.get(b"peers").and_then(BValue::as_list).unwrap_or_default();
        prop_assert_eq!(list.len(), peers.len());
        for (d, p) in list.iter().zip(&peers) {
            check_dict_peer(d, p.ip, p.port, p.peer_id)?;
        }
    }

    #[test]
    fn scrape_response_decodes(raw in vec((0u8..4, any::<[u8; 19]>(), any::<(u32, u32, u32)>()), 0..40)) {
        // Few distinct first bytes, so that repeats and near-repeats occur.
        let mut files: Vec<ScrapeFile> = raw.iter().map(|(first, rest, (c, d, i))| {
            let mut h = [*first; 20];
            h[1..].copy_from_slice(rest);
            ScrapeFile { info_hash: InfoHash(h), complete: *c, downloaded: *d, incomplete: *i }
        }).collect();
        files.push(ScrapeFile { info_hash: files.first().map_or(InfoHash([0; 20]), |f| f.info_hash), ..files.first().copied().unwrap_or_default() });
        let original = files.clone();
        let mut out = Vec::new();
        write_scrape_response(&mut out, &mut files);
        let v = BValue::decode(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let dict = v.get(b"files").and_then(BValue::as_dict).unwrap_or_default();
        let mut distinct: Vec<InfoHash> = original.iter().map(|f| f.info_hash).collect();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(dict.len(), distinct.len());
        for (key, stats) in dict {
            let f = original.iter().find(|f| &f.info_hash.0[..] == *key)
                .ok_or_else(|| TestCaseError::fail("unknown key"))?;
            prop_assert_eq!(int(stats, b"complete"), Some(i64::from(f.complete)));
            prop_assert_eq!(int(stats, b"downloaded"), Some(i64::from(f.downloaded)));
            prop_assert_eq!(int(stats, b"incomplete"), Some(i64::from(f.incomplete)));
        }
    }

    #[test]
    fn failure_decodes(reason in vec(any::<u8>(), 0..300)) {
        let mut out = Vec::new();
        write_failure(&mut out, &reason);
        let v = BValue::decode(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v.get(b"failure reason").and_then(BValue::as_bytes), Some(&reason[..]));
        prop_assert_eq!(v.as_dict().map(<[_]>::len), Some(1));
    }

    #[test]
    fn arbitrary_targets_never_panic(target in vec(any::<u8>(), 0..200)) {
        check_target(&target)?;
    }

    #[test]
    fn query_soup_never_panics(target in arb_query_soup()) {
        check_target(&target)?;
    }

    #[test]
    fn decoder_never_panics(input in vec(any::<u8>(), 0..200)) {
        let _ = BValue::decode(&input);
    }

    #[test]
    fn decoder_on_bencode_like_input(parts in vec(prop_oneof![
        Just(b"l".to_vec()), Just(b"d".to_vec()), Just(b"e".to_vec()),
        "i-?[0-9]{0,3}e".prop_map(String::into_bytes),
        "[0-9]{1,2}:".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..4),
    ], 0..40)) {
        let input = parts.concat();
        if let Ok(v) = BValue::decode(&input) {
            // Anything accepted is canonical: re-encoding gives the input.
            prop_assert_eq!(encode_bvalue(&v), input);
        }
    }
}

fn encode_bvalue(v: &BValue<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    fn go(v: &BValue<'_>, out: &mut Vec<u8>) {
        match v {
            BValue::Int(i) => out.extend(format!("i{i}e").bytes()),
            BValue::Bytes(b) => {
                out.extend(format!("{}:", b.len()).bytes());
                out.extend_from_slice(b);
            }
            BValue::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| go(i, out));
                out.push(b'e');
            }
            BValue::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    go(&BValue::Bytes(k), out);
                    go(v, out);
                }
                out.push(b'e');
            }
        }
    }
    go(v, &mut out);
    out
}

/// Parses, and checks what is accepted against what the target says.
fn check_target(target: &[u8]) -> Result<(), TestCaseError> {
    match HttpRequest::parse(target) {
        Ok(HttpRequest::Announce(a)) => {
            prop_assert!(a.port != 0);
            if let Some(k) = a.key {
                prop_assert!(k.raw().len() <= MAX_KEY_LEN);
            }
            let _ = a.ip.map(|ip| ip.ip_addr());
        }
        Ok(HttpRequest::Scrape(s)) => {
            prop_assert_eq!(s.info_hashes().count(), s.len());
        }
        Err(e) => {
            prop_assert!(!e.message().is_empty());
            let mut out = Vec::new();
            write_failure(&mut out, e.message().as_bytes());
            prop_assert!(BValue::decode(&out).is_ok());
        }
    }
    Ok(())
}
