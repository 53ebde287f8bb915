//! The HTTP tracker protocol (BEP 3, 7, 23, 48) of the `tracker-user`
//! binary, seen on the wire: `--http 127.0.0.1:0` next to UDP, responses
//! read byte by byte and decoded by the tests' own strict bencode decoder
//! (tests/common/bencode.rs), never by `tracker-proto`.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::bencode;
use common::http::*;
use common::tls;
use common::*;

fn lo(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn lo6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
}

fn set(addrs: &[SocketAddr]) -> HashSet<SocketAddr> {
    addrs.iter().copied().collect()
}

/// `<len>:<bytes>` as bencode writes a string.
fn bstr(bytes: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", bytes.len()).into_bytes();
    v.extend_from_slice(bytes);
    v
}

fn compact(addr: SocketAddr) -> Vec<u8> {
    let mut v = match addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&addr.port().to_be_bytes());
    v
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn assert_body(resp: &HttpResponse, want: &[u8], what: &str) {
    assert_eq!(
        resp.status, 200,
        "{what}: status line `{}`",
        resp.status_line
    );
    assert_eq!(
        show(&resp.body),
        show(want),
        "{what}: body differs (got, want)"
    );
}

// ---------------------------------------------------------------------------
// The strict decoder the other tests rely on
// ---------------------------------------------------------------------------

#[test]
fn the_tests_bencode_decoder_is_strict() {
    use bencode::Value;
    assert_eq!(
        bencode::decode(b"d1:ai1e1:bli-2e3:xyzee").unwrap(),
        Value::Dict(vec![
            (b"a".to_vec(), Value::Int(1)),
            (
                b"b".to_vec(),
                Value::List(vec![Value::Int(-2), Value::Bytes(b"xyz".to_vec())])
            ),
        ])
    );
    for bad in [
        &b"d1:bi1e1:ai2ee"[..],
        b"d1:ai1e1:ai2ee",
        b"i01e",
        b"i-0e",
        b"ie",
        b"3:ab",
        b"i1ei2e",
        b"di1ei2ee",
    ] {
        assert!(bencode::decode(bad).is_err(), "{} accepted", show(bad));
    }
    assert_eq!(
        escape(b"a-._~ /\x00\xff", Escape::Unreserved),
        "a-._~%20%2F%00%FF"
    );
    assert_eq!(escape(b"a\xff", Escape::AllLower), "%61%ff");
}

// ---------------------------------------------------------------------------
// Announce
// ---------------------------------------------------------------------------

#[test]
fn announce_response_is_exactly_the_sorted_bencoded_dictionary() {
    let t = Tracker::start_v4();
    let hash = random_hash();

    let first = get(
        t.http_addr(),
        &HttpAnnounce::new(hash, 6881)
            .seeder()
            .event("started")
            .target(),
    );
    assert!(
        first.status_line.starts_with("HTTP/1.1 200"),
        "status line `{}`",
        first.status_line
    );
    assert_eq!(
        first.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert_body(
        &first,
        b"d8:completei1e11:external ip4:\x7f\x00\x00\x0110:incompletei0e8:intervali900e12:min intervali60e5:peers0:e",
        "first peer, a seeder, alone in the swarm",
    );

    // A leecher gets the seeder: 127.0.0.1, port 6881 (0x1AE1).
    let second = get(
        t.http_addr(),
        &HttpAnnounce::new(hash, 6882).event("started").target(),
    );
    assert_body(
        &second,
        b"d8:completei1e11:external ip4:\x7f\x00\x00\x0110:incompletei1e8:intervali900e12:min intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
        "second peer, a leecher",
    );
}

#[test]
fn peers_get_each_other_with_their_announced_ports_never_themselves() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = HttpAnnounce::new(hash, 30001).seeder();
    let b = HttpAnnounce::new(hash, 30002);
    let c = HttpAnnounce::new(hash, 30003);

    let ra = announce(t.http_addr(), &a);
    assert!(ra.peers.is_empty(), "first peer got {:?}", ra.peers);
    let rb = announce(t.http_addr(), &b);
    assert_eq!(set(&rb.peers), set(&[lo(30001)]));
    let rc = announce(t.http_addr(), &c);
    assert_eq!(set(&rc.peers), set(&[lo(30001), lo(30002)]));
    assert_eq!((rc.complete, rc.incomplete), (1, 2));
    assert!(rc.compact, "compact=1 must give a byte string");

    // Re-announces: everyone but the asker, each once.
    for (ann, me) in [(&a, 30001), (&b, 30002), (&c, 30003)] {
        let r = announce(t.http_addr(), ann);
        let want: HashSet<SocketAddr> = [30001, 30002, 30003]
            .into_iter()
            .filter(|&p| p != me)
            .map(lo)
            .collect();
        assert_eq!(r.all_peers(), want, "peers given to {me}");
        assert_eq!((r.complete, r.incomplete), (1, 2), "counts seen by {me}");
        assert!(r.peers6.is_empty(), "an IPv4 requester got peers6");
    }
}

#[test]
fn the_ip_parameter_is_ignored() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let r = announce(
        t.http_addr(),
        &HttpAnnounce::new(hash, 6881).extra("ip=192.0.2.99"),
    );
    assert_eq!(
        r.raw.get("external ip").map(|v| v.bytes().to_vec()),
        Some(vec![127, 0, 0, 1])
    );
    let r = announce(t.http_addr(), &HttpAnnounce::new(hash, 6882));
    assert_eq!(
        r.peers,
        vec![lo(6881)],
        "a client put another host in the swarm"
    );
}

#[test]
fn non_compact_peers_are_dictionaries_of_ip_and_port_without_peer_id() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    announce(t.http_addr(), &HttpAnnounce::new(hash, 6881).seeder());

    let want =
        b"d8:completei1e11:external ip4:\x7f\x00\x00\x0110:incompletei1e8:intervali900e12:min intervali60e5:peersld2:ip9:127.0.0.14:porti6881eeee";
    // Without `compact`, with compact=0, and with no_peer_id=1: the same list.
    let mut plain = HttpAnnounce::new(hash, 6882).compact(None);
    assert_body(&get(t.http_addr(), &plain.target()), want, "no compact");
    assert_body(
        &get(t.http_addr(), &plain.clone().compact(Some(false)).target()),
        want,
        "compact=0",
    );
    plain.no_peer_id = true;
    assert_body(&get(t.http_addr(), &plain.target()), want, "no_peer_id=1");

    let parsed = announce(t.http_addr(), &plain);
    assert!(!parsed.compact);
    assert_eq!(parsed.peers, vec![lo(6881)]);
}

#[test]
fn info_hash_and_peer_id_decode_the_same_in_every_escaping_style() {
    let t = Tracker::start_v4();
    // Unreserved bytes, bytes that must be escaped, and %, +, &, = and ?.
    let hash = *b"aZ9-._~ %+&=?/#\x00\x7f\x80\xff!";
    let styles = [
        Escape::AllUpper,
        Escape::AllLower,
        Escape::Unreserved,
        Escape::UnreservedLower,
    ];
    let mut seen = Vec::new();
    for (i, style) in styles.into_iter().enumerate() {
        let port = 31001 + i as u16;
        let mut peer_id = *b"-XX0001-%&=+ \x00\xffabcde";
        peer_id[19] = i as u8;
        let r = announce(
            t.http_addr(),
            &HttpAnnounce::new(hash, port).peer_id(peer_id).style(style),
        );
        assert_eq!(
            set(&r.peers),
            set(&seen),
            "{style:?}: the peers announced in the other styles"
        );
        assert_eq!(r.incomplete as usize, i + 1, "{style:?}: one swarm");
        seen.push(lo(port));
    }
    for style in styles {
        let files = parse_scrape(&get(t.http_addr(), &scrape_target(&[hash], style)));
        assert_eq!(
            files.get(&hash).map(|c| c.incomplete),
            Some(4),
            "scrape in {style:?}: {files:?}"
        );
    }
}

#[test]
fn missing_left_is_accepted_as_a_leecher() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let r = announce(t.http_addr(), &HttpAnnounce::new(hash, 6881).left(None));
    assert_eq!((r.complete, r.incomplete), (0, 1));
    let r = announce(t.http_addr(), &HttpAnnounce::new(hash, 6882).seeder());
    assert_eq!((r.complete, r.incomplete), (1, 1));
    assert_eq!(r.peers, vec![lo(6881)]);
}

#[test]
fn numwant_is_honoured_and_capped() {
    let t = Tracker::with_config("[protocol]\ndefault_numwant = 2\nmax_numwant = 3\n");
    let hash = random_hash();
    let all: Vec<SocketAddr> = (0..5).map(|i| lo(32001 + i)).collect();
    for a in &all {
        announce(t.http_addr(), &HttpAnnounce::new(hash, a.port()).seeder());
    }
    let asker = HttpAnnounce::new(hash, 32100);
    for (numwant, want) in [(None, 2), (Some(1), 1), (Some(3), 3), (Some(1000), 3)] {
        let mut a = asker.clone();
        a.numwant = numwant;
        let r = announce(t.http_addr(), &a);
        assert_eq!(r.peers.len(), want, "numwant {numwant:?}: {:?}", r.peers);
        assert!(
            r.all_peers().iter().all(|p| all.contains(p)),
            "numwant {numwant:?}: unknown peers {:?}",
            r.peers
        );
    }
}

#[test]
fn stopped_leaves_the_swarm_and_completed_is_counted() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = HttpAnnounce::new(hash, 33001).event("started");
    let b = HttpAnnounce::new(hash, 33002).event("started");
    announce(t.http_addr(), &a);
    announce(t.http_addr(), &b);
    assert_eq!(
        scrape_one(t.http_addr(), hash),
        ScrapeCounts {
            complete: 0,
            downloaded: 0,
            incomplete: 2
        }
    );

    let r = announce(t.http_addr(), &a.clone().seeder().event("completed"));
    assert_eq!((r.complete, r.incomplete), (1, 1));
    assert_eq!(
        scrape_one(t.http_addr(), hash),
        ScrapeCounts {
            complete: 1,
            downloaded: 1,
            incomplete: 1
        }
    );

    announce(t.http_addr(), &b.clone().event("stopped"));
    let r = announce(t.http_addr(), &HttpAnnounce::new(hash, 33003));
    assert_eq!(r.peers, vec![lo(33001)], "the stopped peer is still given");
    assert_eq!(
        scrape_one(t.http_addr(), hash),
        ScrapeCounts {
            complete: 1,
            downloaded: 1,
            incomplete: 1
        }
    );
}

// ---------------------------------------------------------------------------
// Scrape
// ---------------------------------------------------------------------------

#[test]
fn scrape_answers_several_torrents_sorted_by_hash() {
    let t = Tracker::start_v4();
    let mut low = random_hash();
    low[0] = 0x10;
    let mut high = random_hash();
    high[0] = 0xf0;
    announce(t.http_addr(), &HttpAnnounce::new(low, 34001).seeder());
    announce(t.http_addr(), &HttpAnnounce::new(high, 34002));
    announce(
        t.http_addr(),
        &HttpAnnounce::new(high, 34003).seeder().event("completed"),
    );

    // Asked high first: the answer is sorted anyway, as bencode requires.
    let resp = get(
        t.http_addr(),
        &scrape_target(&[high, low], Escape::Unreserved),
    );
    let mut want = b"d5:filesd".to_vec();
    want.extend(bstr(&low));
    want.extend_from_slice(b"d8:completei1e10:downloadedi0e10:incompletei0ee");
    want.extend(bstr(&high));
    want.extend_from_slice(b"d8:completei1e10:downloadedi1e10:incompletei1ee");
    want.extend_from_slice(b"ee");
    assert_body(&resp, &want, "scrape of two torrents");
}

#[test]
fn full_scrape_is_refused_by_default() {
    let t = Tracker::start_v4();
    announce(t.http_addr(), &HttpAnnounce::new(random_hash(), 6881));
    for target in ["/scrape", "/scrape?"] {
        let reason = get(t.http_addr(), target).expect_failure(200);
        assert!(!reason.is_empty(), "{target}");
    }
}

#[test]
fn full_scrape_lists_every_torrent_when_enabled() {
    let t = Tracker::with_config("[http]\nfull_scrape = true\n");
    let hashes: Vec<[u8; 20]> = (0..3).map(|_| random_hash()).collect();
    for (i, h) in hashes.iter().enumerate() {
        announce(
            t.http_addr(),
            &HttpAnnounce::new(*h, 35001 + i as u16).seeder(),
        );
    }
    let files = parse_scrape(&get(t.http_addr(), "/scrape"));
    let got: Vec<[u8; 20]> = files.keys().copied().collect();
    let mut want = hashes.clone();
    want.sort();
    assert_eq!(
        got, want,
        "a full scrape of a fresh tracker holds its 3 torrents"
    );
    assert!(files.values().all(|c| c.complete == 1 && c.incomplete == 0));
}

#[test]
fn full_scrape_is_capped_at_max_full_scrape_torrents() {
    let t = Tracker::with_config("[http]\nfull_scrape = true\nmax_full_scrape_torrents = 2\n");
    let hashes: Vec<[u8; 20]> = (0..4).map(|_| random_hash()).collect();
    for (i, h) in hashes.iter().enumerate() {
        announce(t.http_addr(), &HttpAnnounce::new(*h, 35101 + i as u16));
    }
    let files = parse_scrape(&get(t.http_addr(), "/scrape"));
    assert_eq!(files.len(), 2, "capped full scrape: {files:?}");
    assert!(files.keys().all(|h| hashes.contains(h)));
}

#[test]
fn scrape_of_more_than_max_scrape_torrents_fails() {
    let t = Tracker::with_config("[http]\nmax_scrape_torrents = 3\n");
    let hashes: Vec<[u8; 20]> = (0..4).map(|_| random_hash()).collect();
    announce(t.http_addr(), &HttpAnnounce::new(hashes[0], 6881));
    let files = scrape(t.http_addr(), &hashes[..3]);
    assert_eq!(files.get(&hashes[0]).map(|c| c.incomplete), Some(1));
    assert!(files.keys().all(|h| hashes[..3].contains(h)), "{files:?}");
    get(t.http_addr(), &scrape_target(&hashes, Escape::AllUpper)).expect_failure(200);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn malformed_announces_get_a_failure_reason_naming_the_parameter() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let ok = HttpAnnounce::new(hash, 6881);
    let ih = escape(&hash, Escape::AllUpper);
    let pid = escape(&ok.peer_id, Escape::AllUpper);
    let rest = "port=6881&uploaded=0&downloaded=0&left=10";
    let cases: Vec<(&str, String)> = vec![
        (
            "info_hash",
            format!("/announce?info_hash=%zz{}&peer_id={pid}&{rest}", &ih[3..]),
        ),
        (
            "info_hash",
            format!("/announce?info_hash={}%4&peer_id={pid}&{rest}", &ih[..57]),
        ),
        (
            "info_hash",
            format!("/announce?info_hash={}&peer_id={pid}&{rest}", &ih[..57]),
        ),
        (
            "info_hash",
            format!("/announce?info_hash={ih}%00&peer_id={pid}&{rest}"),
        ),
        ("info_hash", format!("/announce?peer_id={pid}&{rest}")),
        (
            "peer_id",
            format!("/announce?info_hash={ih}&peer_id={}&{rest}", &pid[..57]),
        ),
        ("peer_id", format!("/announce?info_hash={ih}&{rest}")),
        (
            "port",
            format!("/announce?info_hash={ih}&peer_id={pid}&uploaded=0&downloaded=0&left=1"),
        ),
        (
            "port",
            format!("/announce?info_hash={ih}&peer_id={pid}&port=abc&uploaded=0&downloaded=0"),
        ),
        (
            "port",
            format!("/announce?info_hash={ih}&peer_id={pid}&port=70000&uploaded=0&downloaded=0"),
        ),
    ];
    for (param, target) in &cases {
        let resp = get(t.http_addr(), target);
        let reason = resp.expect_failure(200);
        assert!(
            reason.contains(param),
            "failure for {target} does not name `{param}`: {reason:?}"
        );
    }
    // None of them joined the swarm; a good announce still works.
    let r = announce(t.http_addr(), &ok);
    assert_eq!((r.complete, r.incomplete), (0, 1));
}

#[test]
fn malformed_scrapes_get_a_failure_reason() {
    let t = Tracker::start_v4();
    let ih = escape(&random_hash(), Escape::AllUpper);
    for target in [
        format!("/scrape?info_hash={}", &ih[..57]),
        format!("/scrape?info_hash={ih}%41"),
        format!("/scrape?info_hash=%g1{}", &ih[3..]),
        format!("/scrape?info_hash={ih}&info_hash=abc"),
    ] {
        let reason = get(t.http_addr(), &target).expect_failure(200);
        assert!(reason.contains("info_hash"), "{target}: {reason:?}");
    }
}

#[test]
fn unknown_paths_get_404_with_a_bencoded_failure() {
    let t = Tracker::start_v4();
    for target in ["/", "/favicon.ico", "/index.html?info_hash=a", "/stats"] {
        get(t.http_addr(), target).expect_failure(404);
    }
}

#[test]
fn oversized_request_head_gets_a_failure_and_the_connection_closes() {
    let t = Tracker::with_config("[http]\nmax_request_size = 1024\n");
    let hash = random_hash();
    let target = HttpAnnounce::new(hash, 6881).target();

    // Just under the limit: served.
    let mut conn = HttpConn::connect(t.http_addr());
    let head_len = conn.request_bytes(&target, &[]).len();
    let pad = format!("X-Pad: {}", "a".repeat(1000 - head_len - 2));
    let resp = conn.get_with(&target, &[&pad]);
    parse_announce(&resp);

    // Over it, in a header: a failure, then the connection closes.
    let mut conn = HttpConn::connect(t.http_addr());
    let pad = format!("X-Pad: {}", "a".repeat(2000));
    let resp = conn.get_with(&target, &[&pad]);
    resp.expect_failure(200);
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "connection left open after an oversized request"
    );

    // Over it in the request line.
    let mut conn = HttpConn::connect(t.http_addr());
    let long = format!("{target}&x={}", "b".repeat(1500));
    conn.get(&long).expect_failure(200);
    assert!(conn.closed_within(Duration::from_secs(3)));

    // A head that never ends but keeps growing: refused once past the limit,
    // without waiting for the end.
    let mut conn = HttpConn::connect(t.http_addr());
    let mut head = conn.request_bytes(&target, &[]);
    head.truncate(head.len() - 2); // no blank line
    head.extend_from_slice(format!("X-Pad: {}\r\n", "c".repeat(1200)).as_bytes());
    conn.send(&head);
    conn.response().expect_failure(200);
    assert!(conn.closed_within(Duration::from_secs(3)));

    announce(t.http_addr(), &HttpAnnounce::new(hash, 6882));
}

#[test]
fn access_list_refuses_torrents_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list");
    let listed = random_hash();
    let other = random_hash();
    std::fs::write(&list, format!("{}\n", hex(&listed))).unwrap();

    let black = Tracker::with_config(&format!(
        "[access_list]\nmode = \"black\"\npath = \"{}\"\n",
        list.display()
    ));
    let reason = announce_failure(black.http_addr(), &HttpAnnounce::new(listed, 6881));
    assert!(reason.contains("not allowed"), "{reason:?}");
    announce(black.http_addr(), &HttpAnnounce::new(other, 6881));

    let white = Tracker::with_config(&format!(
        "[access_list]\nmode = \"white\"\npath = \"{}\"\n",
        list.display()
    ));
    let reason = announce_failure(white.http_addr(), &HttpAnnounce::new(other, 6881));
    assert!(reason.contains("not allowed"), "{reason:?}");
    announce(white.http_addr(), &HttpAnnounce::new(listed, 6881));
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let mut conn = HttpConn::connect(t.http_addr());
    for port in 36001..36004u16 {
        let resp = conn.get(&HttpAnnounce::new(hash, port).target());
        assert!(!resp.closes(), "HTTP/1.1 response asks to close");
        let r = parse_announce(&resp);
        assert_eq!(r.incomplete, i64::from(port - 36000));
    }
    let files = parse_scrape(&conn.get(&scrape_target(&[hash], Escape::AllUpper)));
    assert_eq!(files[&hash].incomplete, 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let other = random_hash();
    let mut conn = HttpConn::connect(t.http_addr());
    let mut batch = Vec::new();
    batch.extend(conn.request_bytes(&HttpAnnounce::new(hash, 37001).seeder().target(), &[]));
    batch.extend(conn.request_bytes(&scrape_target(&[hash], Escape::AllUpper), &[]));
    batch.extend(conn.request_bytes("/nothing-here", &[]));
    batch.extend(conn.request_bytes(&HttpAnnounce::new(hash, 37002).target(), &[]));
    batch.extend(conn.request_bytes(&HttpAnnounce::new(other, 37003).target(), &[]));
    conn.send(&batch);

    let first = parse_announce(&conn.response());
    assert_eq!(
        (first.complete, first.incomplete),
        (1, 0),
        "1st: the seeder"
    );
    let files = parse_scrape(&conn.response());
    assert_eq!(
        files[&hash],
        ScrapeCounts {
            complete: 1,
            downloaded: 0,
            incomplete: 0
        },
        "2nd: the scrape, after the 1st announce only"
    );
    conn.response().expect_failure(404);
    let fourth = parse_announce(&conn.response());
    assert_eq!((fourth.complete, fourth.incomplete), (1, 1), "4th");
    assert_eq!(fourth.peers, vec![lo(37001)]);
    let fifth = parse_announce(&conn.response());
    assert_eq!(
        (fifth.complete, fifth.incomplete),
        (0, 1),
        "5th: another torrent"
    );
}

#[test]
fn pipelined_requests_across_request_workers_are_answered_in_order() {
    // Four request workers: torrents live in different ones, and their
    // answers come back in any order; the connection must still answer in
    // request order.
    let t = Tracker::with_config("[swarm]\nworkers = 4\n[http]\nworkers = 1\n");
    let hashes: Vec<[u8; 20]> = (0..40).map(|_| random_hash()).collect();
    let mut conn = HttpConn::connect(t.http_addr());
    let mut batch = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        let a = HttpAnnounce::new(*h, 46000 + i as u16);
        let a = if i % 3 == 0 { a.seeder() } else { a };
        batch.extend(conn.request_bytes(&a.target(), &[]));
    }
    for h in &hashes {
        batch.extend(conn.request_bytes(&scrape_target(&[*h], Escape::AllUpper), &[]));
    }
    conn.send(&batch);
    for i in 0..hashes.len() {
        let r = parse_announce(&conn.response());
        let want = if i % 3 == 0 { (1, 0) } else { (0, 1) };
        assert_eq!(
            (r.complete, r.incomplete),
            want,
            "announce response {i} out of order"
        );
    }
    for (i, h) in hashes.iter().enumerate() {
        let files = parse_scrape(&conn.response());
        let keys: Vec<[u8; 20]> = files.keys().copied().collect();
        assert_eq!(keys, vec![*h], "scrape response {i} is for another torrent");
    }
}

#[test]
fn a_long_pipeline_is_answered_in_full_while_it_is_written() {
    // 1000 requests (about 300 kB) written by one thread while another reads:
    // far more than one request head or buffer, yet every one is answered,
    // in order. Every peer is 127.0.0.1 with its own port.
    let t = Tracker::with_config(MANY_PEERS_PER_IP);
    let hash = random_hash();
    let conn = HttpConn::connect(t.http_addr());
    let mut writer = conn.stream.try_clone().unwrap();
    let reqs: Vec<Vec<u8>> = (0..1000u16)
        .map(|i| conn.request_bytes(&HttpAnnounce::new(hash, 49000 + i % 20).target(), &[]))
        .collect();
    let w = thread::spawn(move || {
        for chunk in reqs.chunks(50) {
            writer.write_all(&chunk.concat()).unwrap();
        }
    });
    let mut conn = conn;
    for i in 0..1000usize {
        let r = parse_announce(&conn.response());
        assert_eq!(r.incomplete as usize, (i + 1).min(20), "response {i}");
    }
    w.join().unwrap();
}

#[test]
fn a_request_split_across_writes_is_served() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let mut conn = HttpConn::connect(t.http_addr());
    let first = conn.request_bytes(&HttpAnnounce::new(hash, 47001).seeder().target(), &[]);
    let second = conn.request_bytes(&HttpAnnounce::new(hash, 47002).target(), &["X-Any: 1"]);
    // The first request in three pieces (one inside "\r\n\r\n"), the last
    // piece carrying the start of the second request.
    let end = first.len();
    let mut wire = first.clone();
    wire.extend_from_slice(&second);
    for piece in [&wire[..10], &wire[10..end - 1], &wire[end - 1..end + 20]] {
        conn.send(piece);
        thread::sleep(Duration::from_millis(50));
    }
    let r = parse_announce(&conn.response());
    assert_eq!((r.complete, r.incomplete), (1, 0));
    conn.send(&wire[end + 20..]);
    let r = parse_announce(&conn.response());
    assert_eq!(r.peers, vec![lo(47001)]);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_keep_alive_timeout() {
    let t = Tracker::with_config("[http]\nkeep_alive_timeout = 1\n");
    let mut conn = HttpConn::connect(t.http_addr());
    parse_announce(&conn.get(&HttpAnnounce::new(random_hash(), 6881).target()));
    assert!(
        conn.closed_within(Duration::from_secs(4)),
        "an idle connection outlived keep_alive_timeout = 1"
    );
}

#[test]
fn many_clients_at_once_are_all_served() {
    let t = Tracker::with_config(&format!(
        "{MANY_PEERS_PER_IP}workers = 2\n[http]\nworkers = 2\n"
    ));
    let hash = random_hash();
    let addr = t.http_addr();
    let threads: Vec<_> = (0..16u16)
        .map(|i| {
            thread::spawn(move || {
                let mut conn = HttpConn::connect(addr);
                let mut other = random_hash();
                other[0] = i as u8;
                for round in 0..25u16 {
                    let r = parse_announce(&conn.get(&HttpAnnounce::new(hash, 48000 + i).target()));
                    assert!(
                        !r.peers.contains(&lo(48000 + i)),
                        "client {i} got itself in round {round}"
                    );
                    let r =
                        parse_announce(&conn.get(&HttpAnnounce::new(other, 48100 + i).target()));
                    assert_eq!(
                        (r.complete, r.incomplete),
                        (0, 1),
                        "client {i}, own torrent"
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("a client thread failed");
    }
    let r = announce(addr, &HttpAnnounce::new(hash, 48999).numwant(50));
    assert_eq!(r.incomplete, 17);
    assert_eq!(r.peers.len(), 16);
}

#[test]
fn connection_close_is_honoured() {
    let t = Tracker::start_v4();
    let target = HttpAnnounce::new(random_hash(), 6881).target();

    let mut conn = HttpConn::connect(t.http_addr());
    parse_announce(&conn.get_with(&target, &["Connection: close"]));
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "still open after `Connection: close`"
    );

    // HTTP/1.0 closes unless it asks for keep-alive.
    let mut conn = HttpConn::connect(t.http_addr());
    conn.send(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes());
    parse_announce(&conn.response());
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 still open"
    );

    let mut conn = HttpConn::connect(t.http_addr());
    for _ in 0..2 {
        conn.send(format!("GET {target} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        parse_announce(&conn.response());
    }
}

#[test]
fn a_slow_client_is_dropped_after_request_timeout_while_others_are_served() {
    let t = Tracker::with_config("[http]\nrequest_timeout = 1\n");
    let hash = random_hash();
    let target = HttpAnnounce::new(hash, 6881).target();

    // Dribbles one byte of the request head every 200 ms, never ending it.
    let mut slow = TcpStream::connect(t.http_addr()).unwrap();
    let writer = slow.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dribbler = {
        let stop = stop.clone();
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
            "s".repeat(1000)
        );
        thread::spawn(move || {
            let mut w = writer;
            for b in head.bytes() {
                if stop.load(Ordering::Relaxed) || w.write_all(&[b]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let started = Instant::now();

    // Others are served meanwhile.
    let mut other = HttpConn::connect(t.http_addr());
    for port in 0..5u16 {
        parse_announce(&other.get(&HttpAnnounce::new(hash, 38000 + port).target()));
        thread::sleep(Duration::from_millis(100));
    }

    slow.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 4096];
    let res = std::io::Read::read(&mut slow, &mut buf);
    stop.store(true, Ordering::Relaxed);
    dribbler.join().unwrap();
    match res {
        Ok(0) | Err(_) if started.elapsed() < Duration::from_secs(6) => {}
        Ok(n) if n > 0 => {
            // A 408-style answer is acceptable, then the close.
            let mut conn = HttpConn::new(slow, "x");
            assert!(
                conn.closed_within(Duration::from_secs(3)),
                "slow client answered ({:?}) but not closed",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        other => panic!(
            "slow client not dropped within {:?}: {other:?}",
            started.elapsed()
        ),
    }
    parse_announce(&other.get(&HttpAnnounce::new(hash, 38100).target()));
}

#[test]
fn connections_beyond_max_connections_are_closed_and_others_still_served() {
    let t = Tracker::with_config("[http]\nworkers = 1\nmax_connections = 4\n");
    let hash = random_hash();
    let target = |port: u16| HttpAnnounce::new(hash, port).target();

    let mut held: Vec<HttpConn> = Vec::new();
    for port in 39001..39005u16 {
        let mut c = HttpConn::connect(t.http_addr());
        parse_announce(&c.get(&target(port)));
        held.push(c);
    }

    // A flood beyond the limit: each is closed at once, unanswered.
    let mut flood: Vec<TcpStream> = Vec::new();
    for _ in 0..40 {
        flood.push(TcpStream::connect(t.http_addr()).expect("connect during the flood"));
    }
    for (i, s) in flood.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(target(39100).as_bytes());
        let mut buf = [0u8; 64];
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("flood connection {i} beyond max_connections not closed: {other:?}"),
        }
    }

    // The held connections are still served.
    for (i, c) in held.iter_mut().enumerate() {
        parse_announce(&c.get(&target(39001 + i as u16)));
    }

    // Once some close, new connections are served again.
    drop(flood);
    held.truncate(2);
    let served = poll_until(Duration::from_secs(5), || {
        let Ok(s) = TcpStream::connect(t.http_addr()) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut c = HttpConn::new(s, "x");
        let req = c.request_bytes(&target(39200), &[]);
        c.send(&req);
        c.try_response().is_ok()
    });
    assert!(served, "no new connection served after others closed");
}

#[test]
fn real_ip_header_gives_the_client_address() {
    let t = Tracker::with_config("[http]\nreal_ip_header = \"X-Forwarded-For\"\n");
    let hash = random_hash();
    let a = HttpAnnounce::new(hash, 40001).seeder();
    let b = HttpAnnounce::new(hash, 40002);

    // Without the header: refused.
    let reason = get(t.http_addr(), &a.target()).expect_failure(200);
    assert!(!reason.is_empty());

    // The last address of the header is the client's.
    let ra = parse_announce(&get_with(
        t.http_addr(),
        &a.target(),
        &["X-Forwarded-For: 203.0.113.7, 10.9.8.7"],
    ));
    assert!(ra.peers.is_empty());
    assert_eq!(
        ra.raw.get("external ip").map(|v| v.bytes().to_vec()),
        Some(vec![10, 9, 8, 7]),
        "external ip is the header's address"
    );
    let rb = parse_announce(&get_with(
        t.http_addr(),
        &b.target(),
        &["x-forwarded-for: 10.1.1.1"],
    ));
    assert_eq!(rb.peers, vec!["10.9.8.7:40001".parse().unwrap()]);
    let ra = parse_announce(&get_with(
        t.http_addr(),
        &a.target(),
        &["X-FORWARDED-FOR: 198.51.100.1,10.9.8.7"],
    ));
    assert_eq!(
        ra.peers,
        vec!["10.1.1.1:40002".parse().unwrap()],
        "the same client (10.9.8.7:40001) must not get itself"
    );
    assert_eq!((ra.complete, ra.incomplete), (1, 1));
}

#[test]
fn intervals_follow_the_config_and_min_interval_zero_is_left_out() {
    let t = Tracker::with_config(
        "[protocol]\nannounce_interval = 1800\n[http]\nmin_announce_interval = 0\n",
    );
    let resp = get(
        t.http_addr(),
        &HttpAnnounce::new(random_hash(), 6881).target(),
    );
    assert_body(
        &resp,
        b"d8:completei0e11:external ip4:\x7f\x00\x00\x0110:incompletei1e8:intervali1800e5:peers0:e",
        "interval 1800, no min interval",
    );

    let t = Tracker::with_config("[http]\nmin_announce_interval = 30\n");
    let r = announce(t.http_addr(), &HttpAnnounce::new(random_hash(), 6881));
    assert_eq!((r.interval, r.min_interval), (900, Some(30)));
}

#[test]
fn ipv6_requesters_get_ipv6_peers_in_peers6() {
    let t = Tracker::builder()
        .udp("127.0.0.1:0")
        .http("127.0.0.1:0")
        .http("[::1]:0")
        .start();
    let http = t.listeners("HTTP");
    let v4 = *http
        .iter()
        .find(|a| a.is_ipv4())
        .expect("an IPv4 HTTP listener");
    let v6 = *http
        .iter()
        .find(|a| a.is_ipv6())
        .expect("an IPv6 HTTP listener");
    let hash = random_hash();

    announce(v6, &HttpAnnounce::new(hash, 41001).seeder());
    announce(v4, &HttpAnnounce::new(hash, 41002).seeder());

    // An IPv6 leecher: the IPv6 seeder in peers6 (18 bytes), no IPv4 peer;
    // the counts cover both families.
    let resp = get(v6, &HttpAnnounce::new(hash, 41003).target());
    let mut want = b"d8:completei2e11:external ip".to_vec();
    want.extend(bstr(&Ipv6Addr::LOCALHOST.octets()));
    want.extend_from_slice(b"10:incompletei1e8:intervali900e12:min intervali60e5:peers0:6:peers6");
    want.extend(bstr(&compact(lo6(41001))));
    want.push(b'e');
    assert_body(&resp, &want, "IPv6 requester");

    // An IPv4 leecher gets only the IPv4 seeder.
    let r = announce(v4, &HttpAnnounce::new(hash, 41004));
    assert_eq!(r.peers, vec![lo(41002)]);
    assert!(r.peers6.is_empty());

    // Non-compact IPv6: a dictionary with the IPv6 text.
    let r = announce(v6, &HttpAnnounce::new(hash, 41005).compact(None));
    assert_eq!(set(&r.peers), set(&[lo6(41001), lo6(41003)]));
}

#[test]
fn an_http_peer_and_a_udp_peer_share_one_swarm() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let udp = Client::new(t.addr());
    let r = udp.announce(&Announce::new(hash, 42001).seeder());
    assert!(r.peers.is_empty());

    let h = announce(t.http_addr(), &HttpAnnounce::new(hash, 42002));
    assert_eq!(h.peers, vec![lo(42001)], "the HTTP peer gets the UDP peer");
    assert_eq!((h.complete, h.incomplete), (1, 1));

    let r = udp.announce(&Announce::new(hash, 42001).seeder());
    assert_eq!(r.peers, vec![lo(42002)], "the UDP peer gets the HTTP peer");
    assert_eq!((r.seeders, r.leechers), (1, 1));

    // Completed over HTTP is counted in UDP scrapes too.
    announce(
        t.http_addr(),
        &HttpAnnounce::new(hash, 42002).seeder().event("completed"),
    );
    assert_eq!(udp.scrape(&[hash]).0, vec![(2, 1, 0)]);
    assert_eq!(
        scrape_one(t.http_addr(), hash),
        ScrapeCounts {
            complete: 2,
            downloaded: 1,
            incomplete: 0
        }
    );
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

fn tls_tracker(cert: &tls::TestCert) -> Tracker {
    Tracker::with_config(&format!(
        "[http]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    ))
}

#[test]
fn https_announce_and_scrape_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "a");
    let t = tls_tracker(&cert);
    let hash = random_hash();
    let config = tls::client_config(&[&cert.der]);

    let mut c = tls::https(t.https_addr(), config.clone());
    assert_eq!(tls::peer_leaf(&c.stream), cert.der);
    let r = parse_announce(&c.get(&HttpAnnounce::new(hash, 43001).seeder().target()));
    assert_eq!((r.complete, r.incomplete), (1, 0));
    // Keep-alive over TLS too; and the plain listener shares the swarm.
    let r = parse_announce(&c.get(&HttpAnnounce::new(hash, 43002).target()));
    assert_eq!(r.peers, vec![lo(43001)]);
    let r = announce(t.http_addr(), &HttpAnnounce::new(hash, 43003));
    assert_eq!(set(&r.peers), set(&[lo(43001), lo(43002)]));
    let files = parse_scrape(&c.get(&scrape_target(&[hash], Escape::AllLower)));
    assert_eq!(files[&hash].incomplete, 2);

    // A client that does not trust the certificate fails its handshake.
    let other = tls::TestCert::new(dir.path(), "other");
    assert!(tls::try_connect(t.https_addr(), tls::client_config(&[&other.der])).is_err());

    // Plain HTTP on the TLS port is not served, and harms nothing.
    let mut plain = HttpConn::connect(t.https_addr());
    plain.send(&plain.request_bytes(&HttpAnnounce::new(hash, 43009).target(), &[]));
    match plain.try_response() {
        Err(NoResponse::Closed(_)) => {}
        Ok(r) => panic!("plain HTTP answered on the TLS port: {}", r.status_line),
        Err(NoResponse::Timeout(got)) => panic!(
            "plain HTTP on the TLS port neither refused nor closed: {}",
            show(&got)
        ),
    }
    let mut c = tls::https(t.https_addr(), config);
    let r = parse_announce(&c.get(&HttpAnnounce::new(hash, 43004).target()));
    assert_eq!(r.incomplete, 3);
}

#[test]
fn a_bad_certificate_or_key_file_stops_the_tracker_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = tls::TestCert::new(dir.path(), "good");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        (missing.clone(), good.key_path.clone(), missing.clone()),
        (garbage.clone(), good.key_path.clone(), garbage.clone()),
        (good.cert_path.clone(), missing.clone(), missing.clone()),
        (good.cert_path.clone(), garbage.clone(), garbage.clone()),
    ];
    for (i, (cert, key, named)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("t{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[http]\ntls_listen = [\"127.0.0.1:0\"]\n[tls]\ncertificate_path = \"{}\"\nprivate_key_path = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let cfg = cfg.to_str().unwrap().to_owned();
        let (status, _, stderr) =
            run_to_exit(&["-c", &cfg, "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        assert!(
            !status.success(),
            "case {i}: tracker started; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(&*named.to_string_lossy()),
            "case {i}: stderr does not name {}:\n{stderr}",
            named.display()
        );
        assert!(!stderr.contains("panicked"), "case {i}: {stderr}");
    }
}

#[test]
fn sigusr1_reloads_the_certificate_for_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let live = tls::TestCert::new(dir.path(), "live");
    let first_der = live.der.clone();
    let t = tls_tracker(&live);
    let second = tls::TestCert::new(dir.path(), "second");
    let both = tls::client_config(&[&first_der, &second.der]);
    let hash = random_hash();

    let mut old = tls::https(t.https_addr(), both.clone());
    assert_eq!(tls::peer_leaf(&old.stream), first_der);
    parse_announce(&old.get(&HttpAnnounce::new(hash, 44001).target()));

    second.copy_to(&live.cert_path, &live.key_path);
    t.sigusr1();
    let switched = poll_until(Duration::from_secs(10), || {
        tls::peer_leaf(&tls::connect(t.https_addr(), both.clone())) == second.der
    });
    assert!(
        switched,
        "new connections never saw the new certificate; stderr:\n{}",
        t.stderr_text()
    );
    let mut new = tls::https(t.https_addr(), both.clone());
    let r = parse_announce(&new.get(&HttpAnnounce::new(hash, 44002).target()));
    assert_eq!(r.peers, vec![lo(44001)]);

    // The connection opened before the reload keeps working.
    let r = parse_announce(&old.get(&HttpAnnounce::new(hash, 44001).target()));
    assert_eq!(r.peers, vec![lo(44002)]);

    // A bad file on reload keeps the current certificate (and says why).
    let lines_before = t.stderr_lines().len();
    std::fs::write(&live.cert_path, "garbage\n").unwrap();
    t.sigusr1();
    let logged = poll_until(Duration::from_secs(10), || {
        t.stderr_lines()[lines_before..]
            .iter()
            .any(|l| l.contains("live.crt") || l.to_lowercase().contains("keep"))
    });
    assert!(
        logged,
        "no reload failure logged after SIGUSR1 with a bad certificate file:\n{}",
        t.stderr_text()
    );
    let c = tls::connect(t.https_addr(), both);
    assert_eq!(tls::peer_leaf(&c), second.der);
}
