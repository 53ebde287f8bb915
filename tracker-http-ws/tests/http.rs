//! HTTP announces and scrapes against a running socket worker and real
//! request workers, byte for byte.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tracker_http_ws::{ListenerKind, Settings};
use tracker_metrics::{Action, ErrorKind, Protocol, Refusal, Timeout};
use tracker_proto::http::BValue;
use tracker_proto::InfoHash;

const HASH: [u8; 20] = *b"\x00\x01%&=+ ?#\x7f\x80\xfe\xffHASH-ab";

/// The `http` row of the metrics snapshot.
const HTTP: usize = Protocol::Http.index();

fn peer(n: u8) -> [u8; 20] {
    let mut id = *b"-TT0001-............";
    id[19] = n;
    id
}

fn failure(reason: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes()
}

#[test]
fn announce_and_scrape_byte_exact() {
    let tracker = Tracker::start(Options::default());
    let addr = tracker.addr();

    // A seeder: the first peer sees nobody.
    let r = get(
        addr,
        &announce_target(&HASH, &peer(1), 1111, "&left=0&compact=1&event=started"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.body,
        b"d8:completei1e11:external ip4:\x7f\x00\x00\x0110:incompletei0e8:intervali900e12:min intervali60e5:peers0:e",
        "{}",
        r.body_str()
    );

    // A leecher (left missing): sees the seeder, compact.
    let r = get(addr, &announce_target(&HASH, &peer(2), 2222, "&compact=1"));
    assert_eq!(
        r.body,
        b"d8:completei1e11:external ip4:\x7f\x00\x00\x0110:incompletei1e8:intervali900e12:min intervali60e5:peers6:\x7f\x00\x00\x01\x04\x57e",
        "{}",
        r.body_str()
    );

    // The leecher completes.
    let r = get(
        addr,
        &announce_target(
            &HASH,
            &peer(2),
            2222,
            "&compact=1&left=0&event=completed&numwant=0",
        ),
    );
    assert_eq!(
        r.body,
        b"d8:completei2e11:external ip4:\x7f\x00\x00\x0110:incompletei0e8:intervali900e12:min intervali60e5:peers0:e",
        "{}",
        r.body_str()
    );

    let other = [0x42u8; 20];
    let mut scrape = Vec::new();
    scrape.extend_from_slice(b"d5:filesd20:");
    scrape.extend_from_slice(&HASH);
    scrape.extend_from_slice(b"d8:completei2e10:downloadedi1e10:incompletei0ee20:");
    scrape.extend_from_slice(&other);
    scrape.extend_from_slice(b"d8:completei0e10:downloadedi0e10:incompletei0eeee");
    // Asked in the other order, and one twice: sorted and once each.
    let r = get(addr, &scrape_target(&[other, HASH, other]));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, scrape, "{}", r.body_str());

    // A stopped peer leaves.
    get(
        addr,
        &announce_target(&HASH, &peer(1), 1111, "&event=stopped"),
    );
    let r = get(addr, &scrape_target(&[HASH]));
    let mut want = b"d5:filesd20:".to_vec();
    want.extend_from_slice(&HASH);
    want.extend_from_slice(b"d8:completei1e10:downloadedi1e10:incompletei0eeee");
    assert_eq!(r.body, want, "{}", r.body_str());
}

#[test]
fn non_compact_lists_dictionaries_and_numwant_caps() {
    let tracker = Tracker::start(Options {
        settings: Settings {
            min_announce_interval: 0,
            default_numwant: 1,
            max_numwant: 2,
            ..Settings::default()
        },
        ..Options::default()
    });
    let addr = tracker.addr();
    let hash = [9u8; 20];
    get(addr, &announce_target(&hash, &peer(1), 6881, ""));
    let r = get(addr, &announce_target(&hash, &peer(2), 6882, "&compact=0"));
    assert_eq!(
        r.body,
        b"d8:completei0e11:external ip4:\x7f\x00\x00\x0110:incompletei2e8:intervali900e5:peersld2:ip9:127.0.0.14:porti6881eeee",
        "no min interval when it is 0; a list of ip/port dictionaries: {}",
        r.body_str()
    );
    get(addr, &announce_target(&hash, &peer(3), 6883, ""));
    get(addr, &announce_target(&hash, &peer(4), 6884, ""));
    // Absent numwant: the default (1); a large one: the cap (2).
    let r = get(addr, &announce_target(&hash, &peer(5), 6885, "&compact=1"));
    assert_eq!(compact_peers(&r.body).len(), 6, "{}", r.body_str());
    let r = get(
        addr,
        &announce_target(&hash, &peer(5), 6885, "&compact=1&numwant=500"),
    );
    assert_eq!(compact_peers(&r.body).len(), 12, "{}", r.body_str());
}

fn compact_peers(body: &[u8]) -> Vec<u8> {
    let v = BValue::decode(body).unwrap();
    v.get(b"peers").and_then(BValue::as_bytes).unwrap().to_vec()
}

#[test]
fn failures() {
    let mut o = Options::default();
    let denied = [0xddu8; 20];
    o.filter = Arc::new(DenyList(vec![InfoHash(denied)]));
    o.settings.max_scrape_torrents = 2;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();

    let r = get(addr, "/index.html");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, failure("unknown path"));

    let r = get(
        addr,
        &format!("/announce?peer_id={}&port=1", escape(&peer(1))),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, failure("missing info_hash"));

    let r = get(
        addr,
        &announce_target(&HASH, &peer(1), 1, "&event=sideways"),
    );
    assert_eq!(r.body, failure("unknown event"));

    let r = get(addr, &announce_target(&denied, &peer(1), 1, ""));
    assert_eq!(r.body, failure("info hash not allowed"));
    let r = get(addr, &scrape_target(&[HASH, denied]));
    assert_eq!(r.body, failure("info hash not allowed"));

    let r = get(addr, &scrape_target(&[[1; 20], [2; 20], [3; 20]]));
    assert_eq!(r.body, failure("too many info hashes in one scrape"));

    let r = get(addr, "/scrape");
    assert_eq!(r.body, failure("full scrape is disabled"));

    let mut s = connect(addr);
    s.write_all(b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new());
    assert_eq!(r.status, 405);
    assert_eq!(r.body, failure("only GET requests are served"));

    let mut s = connect(addr);
    s.write_all(b"\x16\x03\x01\x00\x05hello\r\n\r\n").unwrap();
    let r = read_response(&mut s, &mut Vec::new());
    assert_eq!(r.status, 400);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

#[test]
fn full_scrape_merges_every_request_worker() {
    let mut o = Options {
        request_workers: 3,
        ..Options::default()
    };
    o.settings.full_scrape = true;
    o.settings.max_full_scrape_torrents = 5;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    for n in 0..8u8 {
        let mut hash = [n; 20];
        hash[0] = n * 31;
        get(addr, &announce_target(&hash, &peer(1), 1000, "&left=0"));
    }
    let r = get(addr, "/scrape");
    let v = BValue::decode(&r.body).expect("valid bencode, keys sorted");
    let files = v.get(b"files").and_then(BValue::as_dict).unwrap();
    assert_eq!(files.len(), 5, "capped: {}", r.body_str());
    for (hash, counts) in files {
        assert_eq!(hash.len(), 20);
        assert_eq!(hash[1..], [hash[1]; 19], "one of ours");
        assert_eq!(counts.get(b"complete").and_then(BValue::as_int), Some(1));
        assert_eq!(counts.get(b"incomplete").and_then(BValue::as_int), Some(0));
        assert_eq!(counts.get(b"downloaded").and_then(BValue::as_int), Some(0));
    }
}

#[test]
fn keep_alive_and_pipelining() {
    let tracker = Tracker::start(Options::default());
    let addr = tracker.addr();
    let mut s = connect(addr);
    // Three requests in one write, the middle one slow (at a request worker)
    // and the last one answered on the spot: answers keep their order.
    let batch = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\n\r\nGET {} HTTP/1.1\r\nHost: t\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\n",
        announce_target(&HASH, &peer(1), 1, "&compact=1&left=0"),
        scrape_target(&[HASH]),
    );
    s.write_all(batch.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let a = read_response(&mut s, &mut buf);
    assert!(a.body.starts_with(b"d8:completei1e"), "{}", a.body_str());
    let b = read_response(&mut s, &mut buf);
    assert!(b.body.starts_with(b"d5:files"), "{}", b.body_str());
    let c = read_response(&mut s, &mut buf);
    assert_eq!(c.status, 404);
    assert_eq!(a.header("connection"), None);

    // Still open; a request split over several writes works too.
    let target = scrape_target(&[HASH]);
    s.write_all(format!("GET {target} HT").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"TP/1.1\r\nHost: t\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"\r\n").unwrap();
    let d = read_response(&mut s, &mut buf);
    assert!(d.body.starts_with(b"d5:files"));

    // Connection: close is honoured.
    s.write_all(format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let e = read_response(&mut s, &mut buf);
    assert_eq!(e.header("connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    // HTTP/1.0 closes unless asked not to.
    let mut s = connect(addr);
    s.write_all(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let f = read_response(&mut s, &mut buf);
    assert_eq!(f.header("connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    let mut s = connect(addr);
    for _ in 0..2 {
        s.write_all(format!("GET {target} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .unwrap();
        let g = read_response(&mut s, &mut buf);
        assert_eq!(g.header("connection"), Some("keep-alive"));
    }

    // A client that sends its requests and half-closes gets every answer.
    let mut s = connect(addr);
    let many = format!("GET {target} HTTP/1.1\r\n\r\n").repeat(20);
    s.write_all(many.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = Vec::new();
    for _ in 0..20 {
        assert!(read_response(&mut s, &mut buf)
            .body
            .starts_with(b"d5:files"));
    }
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

#[test]
fn oversized_request_gets_a_failure_and_is_closed() {
    let mut o = Options::default();
    o.settings.max_request_size = 1024;
    let tracker = Tracker::start(o);
    let mut s = connect(tracker.addr());
    let mut head = b"GET /announce?".to_vec();
    head.extend(std::iter::repeat_n(b'a', 8000));
    s.write_all(&head).unwrap();
    let r = read_response(&mut s, &mut Vec::new());
    assert_eq!(r.body, failure("request too large"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let m = tracker.snapshot();
    assert_eq!(m.errors[HTTP][ErrorKind::TooLarge.index()], 1);
    assert_eq!(m.responses[HTTP][Action::Error.index()], 1);

    // One just under the limit is fine.
    let mut target = announce_target(&HASH, &peer(1), 1, "&x=");
    // Exactly the limit, as `get` writes it.
    let base = "GET  HTTP/1.1\r\nHost: tracker\r\n\r\n".len() + target.len();
    target.push_str(&"y".repeat(1024 - base));
    let r = get(tracker.addr(), &target);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"d8:complete"), "{}", r.body_str());
}

#[test]
fn connection_limit_closes_new_connections_at_once() {
    let mut o = Options::default();
    o.settings.max_connections = 2;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let target = scrape_target(&[HASH]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(addr);
        s.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        read_response(&mut s, &mut Vec::new());
        held.push(s);
    }
    let mut third = connect(addr);
    let _ = third.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
    assert!(closed_within(&mut third, Duration::from_secs(5)));
    let m = tracker.snapshot();
    assert_eq!(m.connections.refused[Refusal::MaxConnections.index()], 1);
    assert_eq!(m.connections.refused[Refusal::PerIp.index()], 0);
    assert_eq!(m.open_connections[HTTP], 2);
    // Once one goes, there is room again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect(addr);
        let _ = s.write_all(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
        let mut buf = [0u8; 5];
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if matches!(std::io::Read::read(&mut s, &mut buf), Ok(5)) {
            assert_eq!(&buf, b"HTTP/");
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_and_idle_connections_time_out() {
    let mut o = Options::default();
    o.settings.request_timeout = Duration::from_millis(300);
    o.settings.keep_alive_timeout = Duration::from_millis(600);
    let tracker = Tracker::start(o);
    let addr = tracker.addr();

    // Slowloris: a request begun and never finished.
    let mut slow = connect(addr);
    slow.write_all(b"GET /announce?info_hash=").unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Idle keep-alive connection: answered, then closed once idle.
    let mut idle = connect(addr);
    idle.write_all(format!("GET {} HTTP/1.1\r\n\r\n", scrape_target(&[HASH])).as_bytes())
        .unwrap();
    read_response(&mut idle, &mut Vec::new());
    let answered = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    assert!(answered.elapsed() >= Duration::from_millis(500));
    // Both had spoken: neither is a first-byte timeout.
    let m = tracker.snapshot();
    assert_eq!(m.connections.timeouts[Timeout::Idle.index()], 2);
    assert_eq!(m.connections.timeouts[Timeout::FirstByte.index()], 0);
}

#[test]
fn busy_request_workers_say_so() {
    let mut o = Options {
        stalled: true,
        ..Options::default()
    };
    o.settings.full_scrape = true;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let busy = failure("tracker busy, try again");
    assert_eq!(
        get(addr, &announce_target(&HASH, &peer(1), 1, "")).body,
        busy
    );
    assert_eq!(get(addr, &scrape_target(&[HASH, [5; 20]])).body, busy);
    assert_eq!(get(addr, "/scrape").body, busy);
    // The connection carries on after a busy answer.
    let mut s = connect(addr);
    let mut buf = Vec::new();
    for _ in 0..3 {
        s.write_all(format!("GET {} HTTP/1.1\r\n\r\n", scrape_target(&[HASH])).as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut s, &mut buf).body, busy);
    }
    // Six requests shed (a scrape of two torrents is one request), none
    // of them an error of the client's.
    let m = tracker.snapshot();
    assert_eq!(m.dropped[HTTP], 6);
    assert_eq!(m.requests[HTTP][Action::Announce.index()], 1);
    assert_eq!(m.requests[HTTP][Action::Scrape.index()], 5);
    assert_eq!(m.responses[HTTP][Action::Error.index()], 0);
}

#[test]
fn real_ip_header_names_the_peer() {
    let mut o = Options::default();
    o.settings.real_ip_header = Some("x-forwarded-for".into());
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let hash = [3u8; 20];
    let r = get_with(
        addr,
        &announce_target(&hash, &peer(1), 0x1234, "&compact=1"),
        "X-Forwarded-For: 198.51.100.1, 10.9.8.7\r\n",
    );
    assert!(
        r.body
            .starts_with(b"d8:completei0e11:external ip4:\x0a\x09\x08\x0710:incompletei1e"),
        "the header's last address is the client's (BEP 24 external ip): {}",
        r.body_str()
    );
    let r = get_with(
        addr,
        &announce_target(&hash, &peer(2), 2, "&compact=1"),
        "X-Forwarded-For: ::ffff:10.0.0.2\r\n",
    );
    assert!(
        r.body.ends_with(b"5:peers6:\x0a\x09\x08\x07\x12\x34e"),
        "the last address of the header is the peer: {}",
        r.body_str()
    );
    let r = get(addr, &announce_target(&hash, &peer(3), 3, ""));
    assert_eq!(r.body, failure("missing x-forwarded-for header"));
    let r = get_with(
        addr,
        &announce_target(&hash, &peer(3), 3, ""),
        "X-Forwarded-For: nonsense\r\n",
    );
    assert_eq!(r.body, failure("invalid x-forwarded-for header"));
}

#[test]
fn ipv6_requesters_get_peers6() {
    let o = Options {
        specs: vec![tracker_http_ws::ListenerSpec {
            addr: "[::1]:0".parse().unwrap(),
            kind: ListenerKind::Http,
            tls: false,
        }],
        ..Options::default()
    };
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let hash = [6u8; 20];
    get(
        addr,
        &announce_target(&hash, &peer(1), 0x0102, "&compact=1"),
    );
    let r = get(addr, &announce_target(&hash, &peer(2), 2, "&compact=1"));
    let mut want = b"5:peers0:6:peers618:".to_vec();
    want.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    want.extend_from_slice(&[1, 2, b'e']);
    assert!(r.body.ends_with(&want), "{}", r.body_str());
}

#[test]
fn ws_only_listener_refuses_plain_http() {
    let tracker = Tracker::start(Options {
        specs: vec![spec(ListenerKind::WsOnly, false)],
        ..Options::default()
    });
    let mut s = connect(tracker.addr());
    s.write_all(format!("GET {} HTTP/1.1\r\n\r\n", scrape_target(&[HASH])).as_bytes())
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new());
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        failure("this port serves WebSocket connections only")
    );
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    // An upgrade works there.
    let mut ws = ws_connect(tracker.addr());
    ws_send(&mut ws, r#"{"action":"scrape","info_hash":[]}"#);
    assert_eq!(ws_recv(&mut ws), r#"{"action":"scrape","files":{}}"#);
}

#[test]
fn garbage_never_kills_the_worker() {
    let tracker = Tracker::start(Options::default());
    let addr = tracker.addr();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for i in 0..200 {
        let mut s = connect(addr);
        let mut junk = Vec::new();
        let len = 1 + (i * 37) % 3000;
        for _ in 0..len {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            junk.push(rng as u8);
        }
        if i % 3 == 0 {
            junk.splice(0..0, b"GET /announce?info_hash=".iter().copied());
        }
        if i % 5 == 0 {
            junk.extend_from_slice(b"\r\n\r\n");
        }
        let _ = s.write_all(&junk);
    }
    // Still serving.
    let r = get(addr, &scrape_target(&[HASH]));
    assert_eq!(r.status, 200);
}
