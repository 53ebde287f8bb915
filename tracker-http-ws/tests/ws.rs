//! WebTorrent over WebSocket against running socket workers and real
//! request workers: offers and answers relayed byte for byte, within one
//! worker and across two.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tracker_metrics::{Action, ErrorKind, Protocol, Relay, Timeout};

/// The `ws` row of the metrics snapshot.
const WS: usize = Protocol::Ws.index();

/// Bytes that need every kind of escaping in a JSON binary string.
const HASH: [u8; 20] = *b"\x00\x1f\"\\\x7f\x80\xff\xe9/ws-hash-abc";

fn peer(n: u8) -> [u8; 20] {
    let mut id = *b"-WW0001-\x01\x02\x03\xfe\xff.......";
    id[19] = n;
    id
}

fn offer_id(n: u8) -> [u8; 20] {
    [n; 20]
}

fn announce(hash: &[u8; 20], peer_id: &[u8; 20], extra: &str) -> String {
    format!(
        r#"{{"action":"announce","info_hash":{},"peer_id":{},"uploaded":0,"downloaded":0{extra}}}"#,
        bin(hash),
        bin(peer_id)
    )
}

fn offers(list: &[(u8, &str)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(id, sdp)| {
            format!(
                r#"{{"offer_id":{},"offer":{{"type":"offer","sdp":"{sdp}"}}}}"#,
                bin(&offer_id(*id))
            )
        })
        .collect();
    format!(r#","offers":[{}]"#, items.join(","))
}

fn response(hash: &[u8; 20], complete: u32, incomplete: u32) -> String {
    format!(
        r#"{{"action":"announce","interval":120,"info_hash":{},"complete":{complete},"incomplete":{incomplete}}}"#,
        bin(hash)
    )
}

fn scrape_counts(ws: &mut Ws, hash: &[u8; 20]) -> String {
    ws_send(
        ws,
        format!(r#"{{"action":"scrape","info_hash":{}}}"#, bin(hash)),
    );
    ws_recv(ws)
}

fn scrape_answer(hash: &[u8; 20], complete: u32, incomplete: u32, downloaded: u32) -> String {
    format!(
        r#"{{"action":"scrape","files":{{{}:{{"complete":{complete},"incomplete":{incomplete},"downloaded":{downloaded}}}}}}}"#,
        bin(hash)
    )
}

/// Scrapes until the counts match (a leave travels on its own).
fn wait_for_scrape(ws: &mut Ws, hash: &[u8; 20], want: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = scrape_counts(ws, hash);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scrape stayed {got}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A offers, B's announce sends its offer to A, A answers, B gets the
/// answer: all byte-exact.
fn offer_answer_round(a_addr: SocketAddr, b_addr: SocketAddr, hash: [u8; 20]) {
    let mut a = ws_connect(a_addr);
    let mut b = ws_connect(b_addr);

    ws_send(
        &mut a,
        announce(
            &hash,
            &peer(1),
            r#","left":0,"event":"started","numwant":5"#,
        ),
    );
    assert_eq!(ws_recv(&mut a), response(&hash, 1, 0));

    let sdp_b = r#"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n\u00e9"#;
    ws_send(
        &mut b,
        announce(
            &hash,
            &peer(2),
            &format!(
                r#","left":10,"numwant":5{}"#,
                offers(&[(7, sdp_b), (8, "unused")])
            ),
        ),
    );
    assert_eq!(ws_recv(&mut b), response(&hash, 1, 1));
    let relayed = ws_recv(&mut a);
    assert_eq!(
        relayed,
        format!(
            r#"{{"action":"announce","info_hash":{},"peer_id":{},"offer_id":{},"offer":{{"type":"offer","sdp":"{sdp_b}"}}}}"#,
            bin(&hash),
            bin(&peer(2)),
            bin(&offer_id(7))
        ),
        "the offer arrives byte for byte, its SDP untouched"
    );

    // A answers. An answer-only message gets no announce reply.
    let answer = format!(
        r#"{{"action":"announce","info_hash":{},"peer_id":{},"to_peer_id":{},"offer_id":{},"answer":{{"type":"answer","sdp":"v=0 a"}}}}"#,
        bin(&hash),
        bin(&peer(1)),
        bin(&peer(2)),
        bin(&offer_id(7))
    );
    ws_send(&mut a, &answer);
    assert_eq!(
        ws_recv(&mut b),
        format!(
            r#"{{"action":"announce","info_hash":{},"peer_id":{},"offer_id":{},"answer":{{"type":"answer","sdp":"v=0 a"}}}}"#,
            bin(&hash),
            bin(&peer(1)),
            bin(&offer_id(7))
        )
    );
    // The answer did not turn the seeder into a leecher.
    assert_eq!(scrape_counts(&mut a, &hash), scrape_answer(&hash, 1, 1, 0));

    // The same answer again, and one to an offer never made: dropped.
    ws_send(&mut a, &answer);
    let forged = answer.replace(&bin(&offer_id(7)), &bin(&offer_id(9)));
    ws_send(&mut a, &forged);
    ws_silent(&mut b, Duration::from_millis(300));
    ws_silent(&mut a, Duration::from_millis(10));

    // A leaves by closing: B sees it gone.
    a.close(None).unwrap();
    while a.read().is_ok() {}
    wait_for_scrape(&mut b, &hash, &scrape_answer(&hash, 0, 1, 0));
}

#[test]
fn offer_and_answer_within_one_worker() {
    let tracker = Tracker::start(Options::default());
    offer_answer_round(tracker.addr(), tracker.addr(), HASH);
    // The repeated and the forged answers went nowhere.
    let m = tracker.snapshot();
    assert_eq!(m.connections.relayed[Relay::Offer.index()], 1);
    assert_eq!(m.connections.relayed[Relay::Answer.index()], 1);
    assert_eq!(m.requests[WS][Action::Answer.index()], 3);
    assert_eq!(m.requests[WS][Action::Announce.index()], 2);
    assert_eq!(m.responses[WS][Action::Announce.index()], 2);
}

#[test]
fn offer_and_answer_across_workers() {
    let tracker = Tracker::start(Options {
        socket_workers: 2,
        separate_ports: true,
        ..Options::default()
    });
    offer_answer_round(
        tracker.listeners[0][0].addr,
        tracker.listeners[1][0].addr,
        HASH,
    );
    let mut other = HASH;
    other[19] = b'!';
    offer_answer_round(
        tracker.listeners[1][0].addr,
        tracker.listeners[0][0].addr,
        other,
    );
    // Counted once, by the worker that delivered each.
    let m = tracker.snapshot();
    assert_eq!(m.connections.relayed[Relay::Offer.index()], 2);
    assert_eq!(m.connections.relayed[Relay::Answer.index()], 2);
    assert_eq!(m.connections.relays_dropped, 0);
}

#[test]
fn offers_go_to_as_many_peers_as_allowed() {
    let mut o = Options::default();
    o.settings.ws_max_offers = 3;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let mut peers: Vec<Ws> = (1..=5)
        .map(|n| {
            let mut ws = ws_connect(addr);
            ws_send(&mut ws, announce(&HASH, &peer(n), ""));
            ws_recv(&mut ws);
            ws
        })
        .collect();
    let mut offerer = ws_connect(addr);
    let list: Vec<(u8, &str)> = (0..10).map(|i| (i, "x")).collect();
    ws_send(&mut offerer, announce(&HASH, &peer(9), &offers(&list)));
    assert_eq!(ws_recv(&mut offerer), response(&HASH, 0, 6));
    let mut got = Vec::new();
    for ws in &mut peers {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if let Ok(tungstenite::Message::Text(t)) = ws.read() {
            got.push(t.as_str().to_owned());
        }
    }
    assert_eq!(got.len(), 3, "ws_max_offers caps the targets");
    // Offer i went to target i: three different offers.
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 3);

    // numwant caps too.
    let mut second = ws_connect(addr);
    ws_send(
        &mut second,
        announce(
            &HASH,
            &peer(10),
            &format!(r#","numwant":1{}"#, offers(&list)),
        ),
    );
    ws_recv(&mut second);
    let mut count = 0;
    for ws in peers.iter_mut().chain([&mut offerer]) {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(tungstenite::Message::Text(_)) = ws.read() {
            count += 1;
        }
    }
    assert_eq!(count, 1);
}

#[test]
fn one_connection_many_torrents_peer_id_changes_and_stops() {
    let mut o = Options::default();
    o.settings.ws_max_torrents_per_connection = 2;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let (h1, h2, h3) = ([1u8; 20], [2u8; 20], [3u8; 20]);
    let mut ws = ws_connect(addr);
    ws_send(&mut ws, announce(&h1, &peer(1), ""));
    assert_eq!(ws_recv(&mut ws), response(&h1, 0, 1));
    ws_send(&mut ws, announce(&h2, &peer(1), r#","left":0"#));
    assert_eq!(ws_recv(&mut ws), response(&h2, 1, 0));
    ws_send(&mut ws, announce(&h3, &peer(1), ""));
    assert_eq!(
        ws_recv(&mut ws),
        format!(
            r#"{{"failure reason":"too many torrents on this connection","action":"announce","info_hash":{}}}"#,
            bin(&h3)
        )
    );
    // A new peer id on the same connection is one more peer, and one
    // more entry against the cap: h1 and h2 already fill it.
    ws_send(&mut ws, announce(&h1, &peer(2), ""));
    assert_eq!(
        ws_recv(&mut ws),
        format!(
            r#"{{"failure reason":"too many torrents on this connection","action":"announce","info_hash":{}}}"#,
            bin(&h1)
        )
    );
    // Completed counts; stopped leaves and frees the slot.
    ws_send(
        &mut ws,
        announce(&h2, &peer(1), r#","left":0,"event":"completed""#),
    );
    assert_eq!(ws_recv(&mut ws), response(&h2, 1, 0));
    ws_send(&mut ws, announce(&h2, &peer(1), r#","event":"stopped""#));
    assert_eq!(ws_recv(&mut ws), response(&h2, 0, 0));
    assert_eq!(scrape_counts(&mut ws, &h2), scrape_answer(&h2, 0, 0, 1));
    ws_send(&mut ws, announce(&h3, &peer(1), ""));
    assert_eq!(ws_recv(&mut ws), response(&h3, 0, 1));

    // Closing leaves everything.
    let mut watcher = ws_connect(addr);
    drop(ws);
    wait_for_scrape(&mut watcher, &h1, &scrape_answer(&h1, 0, 0, 0));
    wait_for_scrape(&mut watcher, &h3, &scrape_answer(&h3, 0, 0, 0));
}

#[test]
fn errors_keep_the_connection_or_close_it() {
    let mut o = Options::default();
    o.settings.ws_max_message_size = 1024;
    o.filter = std::sync::Arc::new(DenyList(vec![tracker_proto::InfoHash([0xdd; 20])]));
    let tracker = Tracker::start(o);
    let addr = tracker.addr();
    let mut ws = ws_connect(addr);

    ws_send(&mut ws, "{not json");
    let reply = ws_recv(&mut ws);
    assert!(
        reply.starts_with(r#"{"failure reason":"invalid JSON"#),
        "{reply}"
    );
    ws_send(&mut ws, announce(&HASH, &peer(1), r#","left":"lots""#));
    assert_eq!(
        ws_recv(&mut ws),
        format!(
            r#"{{"failure reason":"left must be a number","action":"announce","info_hash":{}}}"#,
            bin(&HASH)
        )
    );
    ws_send(&mut ws, announce(&[0xdd; 20], &peer(1), ""));
    assert_eq!(
        ws_recv(&mut ws),
        format!(
            r#"{{"failure reason":"info hash not allowed","action":"announce","info_hash":{}}}"#,
            bin(&[0xdd; 20])
        )
    );
    ws_send(&mut ws, r#"{"action":"scrape"}"#);
    assert_eq!(
        ws_recv(&mut ws),
        r#"{"failure reason":"full scrape is disabled","action":"scrape"}"#
    );
    // Still open after all that.
    assert_eq!(scrape_counts(&mut ws, &HASH), scrape_answer(&HASH, 0, 0, 0));

    // Binary messages close the connection.
    ws.send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 1003)
        }
        other => panic!("{other:?}"),
    }

    // So do oversized ones.
    let mut ws = ws_connect(addr);
    ws_send(
        &mut ws,
        format!(r#"{{"action":"scrape","pad":"{}"}}"#, "x".repeat(2000)),
    );
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 1009)
        }
        other => panic!("{other:?}"),
    }
    let m = tracker.snapshot();
    let errors = |kind: ErrorKind| m.errors[WS][kind.index()];
    // Bad JSON, a bad field, a binary message.
    assert_eq!(errors(ErrorKind::Malformed), 3);
    // A refused torrent, full scrape turned off.
    assert_eq!(errors(ErrorKind::AccessDenied), 2);
    assert_eq!(errors(ErrorKind::TooLarge), 1);
    assert_eq!(m.responses[WS][Action::Error.index()], 6);
    assert_eq!(m.responses[WS][Action::Scrape.index()], 1);
}

#[test]
fn full_scrape_over_websocket() {
    let mut o = Options::default();
    o.settings.full_scrape = true;
    let tracker = Tracker::start(o);
    let mut ws = ws_connect(tracker.addr());
    ws_send(&mut ws, announce(&HASH, &peer(1), r#","left":0"#));
    ws_recv(&mut ws);
    ws_send(&mut ws, r#"{"action":"scrape"}"#);
    assert_eq!(ws_recv(&mut ws), scrape_answer(&HASH, 1, 0, 0));
    // HTTP full scrapes see only the HTTP/UDP swarms.
    let r = get(tracker.addr(), "/scrape");
    assert_eq!(r.body, b"d5:filesdee");
}

#[test]
fn idle_connections_are_closed() {
    let mut o = Options::default();
    o.settings.ws_idle_timeout = Duration::from_millis(300);
    let tracker = Tracker::start(o);
    let mut ws = ws_connect(tracker.addr());
    let start = Instant::now();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => panic!("unexpected {t}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("not closed in time")
            }
            Err(_) => break,
        }
    }
    assert!(start.elapsed() >= Duration::from_millis(250));
    let m = tracker.snapshot();
    assert_eq!(m.connections.timeouts[Timeout::Idle.index()], 1);
    assert_eq!(m.open_connections[WS], 0);
}

#[test]
fn a_peer_that_does_not_read_is_disconnected() {
    let mut o = Options::default();
    o.settings.ws_max_outgoing_bytes = 64 * 1024;
    o.settings.ws_max_message_size = 128 * 1024;
    let tracker = Tracker::start(o);
    let addr = tracker.addr();

    // The target announces once and then never reads again.
    let mut target = ws_connect(addr);
    ws_send(&mut target, announce(&HASH, &peer(1), ""));
    assert_eq!(ws_recv(&mut target), response(&HASH, 0, 1));

    let sdp = "s".repeat(60 * 1024);
    let mut offerer = ws_connect(addr);
    let message = announce(&HASH, &peer(2), &offers(&[(1, &sdp)]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0usize;
    loop {
        ws_send(&mut offerer, &message);
        let reply = ws_recv(&mut offerer);
        sent += message.len();
        if reply == response(&HASH, 0, 1) {
            // The target was disconnected and left the swarm.
            break;
        }
        assert_eq!(reply, response(&HASH, 0, 2));
        assert!(
            Instant::now() < deadline,
            "never disconnected after {sent} bytes"
        );
    }
    // Its socket is closed after what the kernel already held.
    target
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut messages = 0;
    loop {
        match target.read() {
            Ok(_) => messages += 1,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("still open after {messages} messages")
            }
            Err(_) => break,
        }
    }
    let m = tracker.snapshot();
    assert_eq!(m.connections.slow_readers, 1);
    assert_eq!(m.open_connections[WS], 1, "the offerer is still open");
}
