//! WebTorrent over WebSocket of the `tracker-user` binary, seen on the
//! wire: a tungstenite client, JSON read with serde_json and "binary"
//! strings converted by the tests themselves (tests/common/ws.rs), never by
//! `tracker-proto`.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::http::{self as h, HttpAnnounce};
use common::tls;
use common::ws::*;
use common::*;

const QUIET: Duration = Duration::from_millis(700);

fn tracker() -> Tracker {
    Tracker::start_v4()
}

fn offers(n: usize, sdp_len: usize) -> Vec<(Vec<u8>, String)> {
    (0..n)
        .map(|_| (random_id().to_vec(), fake_sdp(sdp_len)))
        .collect()
}

fn assert_failure(v: &Value, what: &str) -> String {
    v.get("failure reason")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("{what}: expected a failure reason, got {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------
// Announce and scrape
// ---------------------------------------------------------------------------

#[test]
fn announce_reply_carries_interval_info_hash_and_counts() {
    let t = tracker();
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let r = a.join(&hash, 0);
    assert_eq!(r["action"], "announce", "{r}");
    assert_eq!(int_at(&r, "interval"), 120, "{r}");
    assert_eq!(
        (int_at(&r, "complete"), int_at(&r, "incomplete")),
        (1, 0),
        "{r}"
    );
    assert!(
        r.get("offer").is_none() && r.get("peer_id").is_none(),
        "{r}"
    );

    let mut b = Peer::connect(t.http_addr());
    let r = b.join(&hash, 500);
    assert_eq!(
        (int_at(&r, "complete"), int_at(&r, "incomplete")),
        (1, 1),
        "{r}"
    );

    let t = Tracker::with_config("[ws]\nannounce_interval = 33\n");
    let mut c = Peer::connect(t.http_addr());
    assert_eq!(int_at(&c.join(&hash, 0), "interval"), 33);
}

#[test]
fn the_upgrade_works_on_any_path() {
    let t = tracker();
    let hash = random_hash();
    let mut open = Vec::new();
    for (i, path) in ["/", "/announce", "/some/where?x=1", "/scrape"]
        .into_iter()
        .enumerate()
    {
        let mut p = Peer {
            c: connect(t.http_addr(), path),
            peer_id: random_peer_id(),
        };
        let r = p.join(&hash, 100);
        // Kept open: each path's peer joins the same swarm.
        assert_eq!(int_at(&r, "incomplete"), i as i64 + 1, "{path}: {r}");
        open.push(p);
    }
}

#[test]
fn scrape_takes_a_list_or_a_single_info_hash() {
    let t = tracker();
    let (h1, h2, unknown) = (random_hash(), random_hash(), random_hash());
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&h1, 0);
    b.join(&h1, 10);
    b.join(&h2, 10);
    let m = announce_msg(&h2, &b.peer_id, 0, Some("completed"), Some(0), &[]);
    b.c.send_json(&m);
    b.c.announce_reply(&h2);

    let mut s = connect(t.http_addr(), "/");
    let files: HashMap<[u8; 20], Counts> = s.scrape(&[h1, h2]).into_iter().collect();
    assert_eq!(
        files.get(&h1),
        Some(&Counts {
            complete: 1,
            incomplete: 1,
            downloaded: 0
        }),
        "{files:?}"
    );
    assert_eq!(
        files.get(&h2),
        Some(&Counts {
            complete: 1,
            incomplete: 0,
            downloaded: 1
        }),
        "{files:?}"
    );
    for (hash, counts) in &files {
        assert!(
            [h1, h2, unknown].contains(hash),
            "unasked hash in {files:?}"
        );
        if *hash == unknown {
            assert_eq!(*counts, Counts::default());
        }
    }

    s.send_json(&json!({"action": "scrape", "info_hash": bin(&h1)}));
    let files = parse_files(&s.next_scrape());
    assert_eq!(
        files,
        vec![(
            h1,
            Counts {
                complete: 1,
                incomplete: 1,
                downloaded: 0
            }
        )]
    );
}

#[test]
fn stopped_and_closing_the_connection_leave_the_swarm() {
    let t = tracker();
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&hash, 10);
    b.join(&hash, 0);
    let mut s = connect(t.http_addr(), "/");
    let counts = s.scrape_one(&hash);
    assert_eq!((counts.complete, counts.incomplete), (1, 1));

    let m = announce_msg(&hash, &a.peer_id, 10, Some("stopped"), Some(0), &[]);
    a.c.send_json(&m);
    let left = poll_until(Duration::from_secs(3), || {
        s.scrape_one(&hash).incomplete == 0
    });
    assert!(left, "a `stopped` peer is still counted");

    b.c.close();
    let gone = poll_until(Duration::from_secs(5), || s.scrape_one(&hash).complete == 0);
    assert!(gone, "a peer whose connection closed is still counted");
}

// ---------------------------------------------------------------------------
// Offers and answers
// ---------------------------------------------------------------------------

#[test]
fn an_offer_is_relayed_and_its_answer_comes_back() {
    let t = tracker();
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&hash, 0);

    // The SDP carries characters JSON must escape and non-ASCII ones.
    let sdp = format!("{}a=x-test:\"quoted\" \\ tab\t é ✓\r\n", fake_sdp(300));
    let offer_id = random_id().to_vec();
    let r = b.offer(&hash, 5, &[(offer_id.clone(), sdp.clone())]);
    assert_eq!((int_at(&r, "complete"), int_at(&r, "incomplete")), (1, 1));

    let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
    assert_eq!(got["action"], "announce", "{got}");
    assert_eq!(bin_at(&got, "info_hash"), hash, "{got}");
    assert_eq!(
        bin_at(&got, "peer_id"),
        b.peer_id,
        "offer's peer_id is the offerer's"
    );
    assert_eq!(bin_at(&got, "offer_id"), offer_id);
    assert_eq!(
        got["offer"],
        json!({"type": "offer", "sdp": sdp}),
        "offer object"
    );
    assert!(got.get("answer").is_none(), "{got}");

    let answer_sdp = fake_sdp(200);
    a.c.send_json(&answer_msg(
        &hash,
        &a.peer_id,
        &b.peer_id,
        &offer_id,
        &answer_sdp,
    ));
    let back = b.c.relayed(WS_TIMEOUT).expect("B got no answer");
    assert_eq!(back["action"], "announce", "{back}");
    assert_eq!(bin_at(&back, "info_hash"), hash);
    assert_eq!(
        bin_at(&back, "peer_id"),
        a.peer_id,
        "answer's peer_id is the answerer's"
    );
    assert_eq!(bin_at(&back, "offer_id"), offer_id);
    assert_eq!(back["answer"], json!({"type": "answer", "sdp": answer_sdp}));
    assert!(back.get("offer").is_none(), "{back}");

    // The offerer never gets its own offer; the answerer not its answer.
    assert!(b.c.relayed(QUIET).is_none(), "B got something more");
    assert!(a.c.relayed(QUIET).is_none(), "A got something more");
}

/// Collects relayed offers from `peers` until `want` came or 3 s passed,
/// then waits `QUIET` for any extra. Returns (peer index, message).
fn collect_offers<S>(peers: &mut [Peer<S>], want: usize) -> Vec<(usize, Value)>
where
    S: std::io::Read + std::io::Write + Timeout,
{
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < want && Instant::now() < deadline {
        for (i, p) in peers.iter_mut().enumerate() {
            if let Some(v) = p.c.relayed(Duration::from_millis(30)) {
                got.push((i, v));
            }
        }
    }
    let quiet_each = QUIET / peers.len() as u32;
    for (i, p) in peers.iter_mut().enumerate() {
        if let Some(v) = p.c.relayed(quiet_each) {
            got.push((i, v));
        }
    }
    got
}

#[test]
fn offers_go_to_at_most_numwant_other_peers_one_each() {
    let t = tracker();
    let hash = random_hash();
    let mut receivers: Vec<Peer> = (0..4).map(|_| Peer::connect(t.http_addr())).collect();
    for r in &mut receivers {
        r.join(&hash, 10);
    }
    let mut sender = Peer::connect(t.http_addr());

    for (n_offers, numwant, want) in [(10, 2, 2), (3, 10, 3), (10, 10, 4), (1, 10, 1)] {
        let sent = offers(n_offers, 200);
        sender.offer(&hash, numwant, &sent);
        let got = collect_offers(&mut receivers, want);
        assert_eq!(
            got.len(),
            want,
            "{n_offers} offers, numwant {numwant}: relayed {}",
            got.len()
        );
        let mut targets: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
        targets.sort();
        targets.dedup();
        assert_eq!(
            targets.len(),
            want,
            "two offers of one announce went to one peer"
        );
        for (_, v) in &got {
            assert_eq!(bin_at(v, "peer_id"), sender.peer_id);
            let id = bin_at(v, "offer_id");
            let (_, sdp) = sent
                .iter()
                .find(|(oid, _)| *oid == id)
                .unwrap_or_else(|| panic!("relayed an offer id never sent: {v}"));
            assert_eq!(v["offer"]["sdp"], json!(sdp));
        }
        assert!(
            sender.c.relayed(Duration::from_millis(100)).is_none(),
            "the sender got its own offer"
        );
    }
}

#[test]
fn offers_beyond_max_offers_are_ignored() {
    let t = Tracker::with_config("[ws]\nmax_offers = 2\n");
    let hash = random_hash();
    let mut receivers: Vec<Peer> = (0..4).map(|_| Peer::connect(t.http_addr())).collect();
    for r in &mut receivers {
        r.join(&hash, 10);
    }
    let mut sender = Peer::connect(t.http_addr());
    sender.offer(&hash, 10, &offers(10, 100));
    assert_eq!(collect_offers(&mut receivers, 2).len(), 2);
}

#[test]
fn an_answer_to_an_offer_never_received_is_not_relayed() {
    let t = tracker();
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&hash, 10);
    let sent = offers(1, 100);
    b.offer(&hash, 1, &sent);
    let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
    let offer_id = bin_at(&got, "offer_id");

    // C joins after the offer: it never received it, so its answer to it,
    // and an answer to an offer id nobody sent, go nowhere.
    let mut c = Peer::connect(t.http_addr());
    c.join(&hash, 10);
    c.c.send_json(&answer_msg(
        &hash,
        &c.peer_id,
        &b.peer_id,
        &offer_id,
        "v=0 forged",
    ));
    c.c.send_json(&answer_msg(
        &hash,
        &c.peer_id,
        &b.peer_id,
        &random_id(),
        "v=0 forged",
    ));
    c.c.send_json(&answer_msg(
        &hash,
        &a.peer_id,
        &b.peer_id,
        &offer_id,
        "v=0 spoofed",
    ));
    assert!(
        b.c.relayed(QUIET).is_none(),
        "B got an answer to an offer the answerer never received"
    );

    // The real receiver's answer still goes through.
    a.c.send_json(&answer_msg(
        &hash, &a.peer_id, &b.peer_id, &offer_id, "v=0 real",
    ));
    let back = b.c.relayed(WS_TIMEOUT).expect("B got no answer from A");
    assert_eq!(bin_at(&back, "peer_id"), a.peer_id);
    assert_eq!(back["answer"]["sdp"], "v=0 real");
}

#[test]
fn offers_and_answers_cross_socket_workers() {
    // Four socket workers: the kernel spreads the connections over them, so
    // offers and answers travel between workers.
    let t = Tracker::with_config("[http]\nworkers = 4\n[swarm]\nworkers = 2\n");
    let hash = random_hash();
    let mut peers: Vec<Peer> = (0..8).map(|_| Peer::connect(t.http_addr())).collect();
    for p in &mut peers {
        p.join(&hash, 10);
    }
    for round in 0..3 {
        let sender = round; // a different offerer each round
        let sent = offers(10, 500);
        let others: Vec<usize> = (0..peers.len()).filter(|&i| i != sender).collect();
        peers[sender].offer(&hash, 10, &sent);
        let sender_id = peers[sender].peer_id;
        let mut answered = Vec::new();
        for &i in &others {
            let got = peers[i]
                .c
                .relayed(WS_TIMEOUT)
                .unwrap_or_else(|| panic!("round {round}: peer {i} got no offer"));
            assert_eq!(bin_at(&got, "peer_id"), sender_id);
            let offer_id = bin_at(&got, "offer_id");
            let me = peers[i].peer_id;
            peers[i].c.send_json(&answer_msg(
                &hash,
                &me,
                &sender_id,
                &offer_id,
                &format!("v=0 {i}"),
            ));
            answered.push((me, offer_id, format!("v=0 {i}")));
        }
        let mut back = Vec::new();
        for _ in &others {
            let v = peers[sender]
                .c
                .relayed(WS_TIMEOUT)
                .unwrap_or_else(|| panic!("round {round}: only {} answers came back", back.len()));
            back.push((
                bin_at(&v, "peer_id").try_into().unwrap(),
                bin_at(&v, "offer_id"),
                v["answer"]["sdp"].as_str().unwrap().to_owned(),
            ));
        }
        answered.sort();
        back.sort();
        assert_eq!(back, answered, "round {round}: answers relayed");
    }
}

#[test]
fn an_answer_after_offer_timeout_is_not_relayed() {
    let t = Tracker::with_config("[ws]\noffer_timeout = 1\n");
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&hash, 10);
    b.offer(&hash, 1, &offers(1, 100));
    let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
    thread::sleep(Duration::from_millis(2500));
    let offer_id = bin_at(&got, "offer_id");
    a.c.send_json(&answer_msg(
        &hash, &a.peer_id, &b.peer_id, &offer_id, "v=0 late",
    ));
    assert!(
        b.c.relayed(QUIET).is_none(),
        "an answer after offer_timeout was relayed"
    );

    // A fresh offer is answered in time.
    b.offer(&hash, 1, &offers(1, 100));
    let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
    let offer_id = bin_at(&got, "offer_id");
    a.c.send_json(&answer_msg(
        &hash,
        &a.peer_id,
        &b.peer_id,
        &offer_id,
        "v=0 on time",
    ));
    let back =
        b.c.relayed(WS_TIMEOUT)
            .expect("the answer in time was not relayed");
    assert_eq!(back["answer"]["sdp"], "v=0 on time");
}

#[test]
fn only_the_newest_max_pending_offers_can_be_answered() {
    let t = Tracker::with_config("[ws]\nmax_pending_offers = 2\n");
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    a.join(&hash, 10);
    let mut ids = Vec::new();
    for _ in 0..3 {
        b.offer(&hash, 1, &offers(1, 100));
        let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
        ids.push(bin_at(&got, "offer_id"));
    }
    // The oldest was forgotten.
    a.c.send_json(&answer_msg(
        &hash,
        &a.peer_id,
        &b.peer_id,
        &ids[0],
        "v=0 oldest",
    ));
    assert!(
        b.c.relayed(QUIET).is_none(),
        "an answer to a forgotten offer was relayed"
    );
    for (k, id) in ids[1..].iter().enumerate() {
        let sdp = format!("v=0 newer {k}");
        a.c.send_json(&answer_msg(&hash, &a.peer_id, &b.peer_id, id, &sdp));
        let back =
            b.c.relayed(WS_TIMEOUT)
                .expect("an answer to a pending offer");
        assert_eq!(back["answer"]["sdp"], sdp.as_str());
        assert_eq!(bin_at(&back, "offer_id"), *id);
    }
}

#[test]
fn websocket_scrapes_follow_full_scrape_and_max_scrape_torrents() {
    let t = Tracker::with_config("[http]\nmax_scrape_torrents = 2\n");
    let hashes: Vec<[u8; 20]> = (0..3).map(|_| random_hash()).collect();
    let mut p = Peer::connect(t.http_addr());
    p.join(&hashes[0], 10);
    p.c.send_json(&json!({"action": "scrape"}));
    assert_failure(&p.c.next_scrape(), "full scrape while full_scrape = false");
    let list: Vec<String> = hashes.iter().map(|h| bin(h)).collect();
    p.c.send_json(&json!({"action": "scrape", "info_hash": list}));
    assert_failure(&p.c.next_scrape(), "3 hashes with max_scrape_torrents = 2");
    let files = p.c.scrape(&hashes[..2]);
    assert!(
        files
            .iter()
            .any(|(h, c)| *h == hashes[0] && c.incomplete == 1),
        "{files:?}"
    );

    // With full_scrape: every WebTorrent swarm, and only those.
    let t = Tracker::with_config("[http]\nfull_scrape = true\n");
    let mut p = Peer::connect(t.http_addr());
    p.join(&hashes[0], 10);
    p.join(&hashes[1], 0);
    h::announce(t.http_addr(), &HttpAnnounce::new(hashes[2], 6881));
    p.c.send_json(&json!({"action": "scrape"}));
    let mut files = parse_files(&p.c.next_scrape());
    files.sort_by_key(|(h, _)| *h);
    let mut want = vec![
        (
            hashes[0],
            Counts {
                complete: 0,
                incomplete: 1,
                downloaded: 0,
            },
        ),
        (
            hashes[1],
            Counts {
                complete: 1,
                incomplete: 0,
                downloaded: 0,
            },
        ),
    ];
    want.sort_by_key(|(h, _)| *h);
    assert_eq!(
        files, want,
        "a WebSocket full scrape lists the WebTorrent swarms"
    );
}

#[test]
fn the_access_list_refuses_webtorrent_announces() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list");
    let banned = random_hash();
    std::fs::write(&list, format!("{}\n", hex(&banned))).unwrap();
    let t = Tracker::with_config(&format!(
        "[access_list]\nmode = \"black\"\npath = \"{}\"\n",
        list.display()
    ));
    let mut p = Peer::connect(t.http_addr());
    let m = announce_msg(&banned, &p.peer_id, 10, Some("started"), Some(0), &[]);
    p.c.send_json(&m);
    let reason = assert_failure(&p.c.failure(), "a blacklisted torrent");
    assert!(reason.contains("not allowed"), "{reason:?}");
    p.join(&random_hash(), 10);
}

#[test]
fn a_ping_gets_a_pong() {
    let t = tracker();
    let mut c = connect(t.http_addr(), "/");
    c.ws.send(tungstenite::Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    let deadline = Instant::now() + WS_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no pong");
        c.ws.get_ref().set_timeout(Duration::from_millis(200));
        match c.ws.read() {
            Ok(tungstenite::Message::Pong(p)) => {
                assert_eq!(&p[..], b"are you there");
                break;
            }
            Ok(other) => panic!("expected a pong, got {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection failed: {e}"),
        }
    }
}

/// Upgrades with the headers a browser sends (Firefox's `Connection:
/// keep-alive, Upgrade`, `Upgrade: WebSocket`, an Origin, a deflate offer)
/// and checks the 101 by hand; returns the connection.
fn browser_upgrade(addr: SocketAddr, connection: &str, upgrade: &str) -> WsClient {
    use std::io::{Read, Write};
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WS_TIMEOUT)).unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let req = format!(
        "GET /announce HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: https://instant.io\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         Sec-WebSocket-Key: {key}\r\nConnection: {connection}\r\nPragma: no-cache\r\n\
         Cache-Control: no-cache\r\nUpgrade: {upgrade}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).unwrap();
    // The head byte by byte, so no frame byte is read past it.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut b).expect("read the upgrade response"),
            1,
            "closed during the upgrade: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "{connection} / {upgrade}: {head}"
    );
    let lower = head.to_ascii_lowercase();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    assert!(
        lower.contains(&format!(
            "sec-websocket-accept: {}",
            accept.to_ascii_lowercase()
        )),
        "wrong or missing Sec-WebSocket-Accept (want {accept}): {head}"
    );
    assert!(
        !lower.contains("sec-websocket-extensions"),
        "an extension was accepted, but frames are sent uncompressed: {head}"
    );
    let ws =
        tungstenite::WebSocket::from_raw_socket(tcp, tungstenite::protocol::Role::Client, None);
    WsClient::from_websocket(ws)
}

#[test]
fn browser_style_upgrade_headers_are_accepted() {
    let t = tracker();
    let hash = random_hash();
    let mut open = Vec::new();
    for (i, (connection, upgrade)) in [
        ("keep-alive, Upgrade", "websocket"),
        ("Upgrade", "WebSocket"),
        ("upgrade", "websocket"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Peer {
            c: browser_upgrade(t.http_addr(), connection, upgrade),
            peer_id: random_peer_id(),
        };
        let r = p.join(&hash, 10);
        assert_eq!(int_at(&r, "incomplete"), i as i64 + 1);
        open.push(p);
    }
}

#[test]
fn what_real_clients_send_is_accepted() {
    let t = tracker();
    let hash = random_hash();
    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());

    // A magnet client does not know `left` yet: JSON.stringify(Infinity) is null.
    let mut m = announce_msg(&hash, &a.peer_id, 0, Some("started"), Some(0), &[]);
    m["left"] = Value::Null;
    a.c.send_json(&m);
    let r = a.c.announce_reply(&hash);
    assert_eq!(
        (int_at(&r, "complete"), int_at(&r, "incomplete")),
        (0, 1),
        "left null is a leecher: {r}"
    );

    // `update` events, unknown fields (`trackerid`), and offer ids that are
    // not 20 characters: passed through as sent.
    for offer_id in [
        "abc".to_string(),
        hex(&random_id()),
        String::from("é\u{1}\"x"),
    ] {
        let mut m = announce_msg(&hash, &b.peer_id, 10, Some("update"), Some(5), &[]);
        m["trackerid"] = json!("anything");
        m["offers"] =
            json!([{"offer_id": offer_id, "offer": {"type": "offer", "sdp": "v=0 odd id"}}]);
        b.c.send_json(&m);
        b.c.announce_reply(&hash);
        let got = a.c.relayed(WS_TIMEOUT).expect("offer with an odd offer_id");
        assert_eq!(got["offer_id"], json!(offer_id), "offer_id passed through");
        let mut ans = answer_msg(&hash, &a.peer_id, &b.peer_id, b"", "v=0 odd answer");
        ans["offer_id"] = json!(offer_id);
        a.c.send_json(&ans);
        let back = b.c.relayed(WS_TIMEOUT).expect("answer to an odd offer_id");
        assert_eq!(back["offer_id"], json!(offer_id));
    }
}

#[test]
fn batched_and_fragmented_messages_are_all_read() {
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::Frame;
    let t = tracker();
    let hashes: Vec<[u8; 20]> = (0..5).map(|_| random_hash()).collect();
    let mut p = Peer::connect(t.http_addr());

    // Five announces in one write.
    for h in &hashes {
        let m = announce_msg(h, &p.peer_id, 10, Some("started"), Some(0), &[]);
        p.c.ws
            .write(tungstenite::Message::text(m.to_string()))
            .unwrap();
    }
    p.c.ws.flush().unwrap();
    for h in &hashes {
        p.c.announce_reply(h);
    }

    // One scrape split over three frames (text, continuation, final
    // continuation), in three writes.
    let list: Vec<String> = hashes.iter().map(|h| bin(h)).collect();
    let text = json!({"action": "scrape", "info_hash": list}).to_string();
    let bytes = text.as_bytes();
    let (a, rest) = bytes.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    for (chunk, opcode, fin) in [
        (a, OpCode::Data(Data::Text), false),
        (b, OpCode::Data(Data::Continue), false),
        (c, OpCode::Data(Data::Continue), true),
    ] {
        p.c.ws
            .send(tungstenite::Message::Frame(Frame::message(
                chunk.to_vec(),
                opcode,
                fin,
            )))
            .unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    let files = parse_files(&p.c.next_scrape());
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(files
        .iter()
        .all(|(h, c)| hashes.contains(h) && c.incomplete == 1));

    // A close frame is answered with one.
    p.c.ws.close(None).unwrap();
    let deadline = Instant::now() + WS_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no close frame back");
        match p.c.event(Duration::from_millis(200)) {
            Event::Closed(_) => break,
            Event::Timeout => continue,
            other => panic!("after our close frame: {other:?}"),
        }
    }
}

/// `"` + every byte as `\u00XX` + `"`.
fn json_escaped_all(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for b in bytes {
        s.push_str(&format!("\\u{b:04x}"));
    }
    s.push('"');
    s
}

#[test]
fn binary_strings_round_trip_every_byte_value() {
    let t = tracker();
    // 13 ids of 20 bytes cover 0..=255 (and wrap): info hash, two peer ids,
    // ten offer ids.
    let ids: Vec<[u8; 20]> = (0..13)
        .map(|i| std::array::from_fn(|j| ((i * 20 + j) % 256) as u8))
        .collect();
    let all: std::collections::HashSet<u8> = ids.iter().flatten().copied().collect();
    assert_eq!(all.len(), 256);
    let hash = ids[0];
    let mut a = Peer {
        c: connect(t.http_addr(), "/"),
        peer_id: ids[1],
    };
    let mut b = Peer {
        c: connect(t.http_addr(), "/"),
        peer_id: ids[2],
    };
    a.join(&hash, 0);

    // B's announces: the first five written by serde_json (raw UTF-8 for
    // 0x80-0xFF, \u escapes for controls), the rest with every character
    // escaped as \u00XX.
    for (k, offer_id) in ids[3..].iter().enumerate() {
        let text = if k < 5 {
            announce_msg(
                &hash,
                &b.peer_id,
                10,
                None,
                Some(1),
                &[(offer_id.to_vec(), "v=0".into())],
            )
            .to_string()
        } else {
            format!(
                "{{\"action\":\"announce\",\"info_hash\":{},\"peer_id\":{},\"uploaded\":0,\"downloaded\":0,\"left\":10,\"numwant\":1,\"offers\":[{{\"offer_id\":{},\"offer\":{{\"type\":\"offer\",\"sdp\":\"v=0\"}}}}]}}",
                json_escaped_all(&hash),
                json_escaped_all(&b.peer_id),
                json_escaped_all(offer_id)
            )
        };
        b.c.send_text(&text);
        b.c.announce_reply(&hash);
        let got = a.c.relayed(WS_TIMEOUT).expect("A got no offer");
        assert_eq!(bin_at(&got, "info_hash"), hash);
        assert_eq!(bin_at(&got, "peer_id"), b.peer_id);
        assert_eq!(bin_at(&got, "offer_id"), offer_id);

        a.c.send_json(&answer_msg(
            &hash, &a.peer_id, &b.peer_id, offer_id, "v=0 a",
        ));
        let back = b.c.relayed(WS_TIMEOUT).expect("B got no answer");
        assert_eq!(bin_at(&back, "info_hash"), hash);
        assert_eq!(bin_at(&back, "peer_id"), a.peer_id);
        assert_eq!(bin_at(&back, "offer_id"), offer_id);
    }

    let files = b.c.scrape(&[hash]);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, hash);
    assert_eq!((files[0].1.complete, files[0].1.incomplete), (1, 1));
}

#[test]
fn one_connection_in_two_torrents_changing_its_peer_id_stays_open() {
    let t = tracker();
    let (h1, h2) = (random_hash(), random_hash());
    let mut c = Peer::connect(t.http_addr());
    let old_id = c.peer_id;
    c.join(&h1, 10);
    c.join(&h2, 10);
    c.peer_id = random_peer_id();
    let r = c.join(&h1, 10);
    // Both ids are kept: the connection may carry several clients.
    assert_eq!(int_at(&r, "incomplete"), 2, "{r}");

    let mut s = connect(t.http_addr(), "/");
    assert_eq!(s.scrape_one(&h1).incomplete, 2);
    assert_eq!(s.scrape_one(&h2).incomplete, 1);

    // Offers reach the connection in h2 under the id it used there.
    let mut d = Peer::connect(t.http_addr());
    d.offer(&h2, 5, &offers(1, 100));
    let got =
        c.c.relayed(WS_TIMEOUT)
            .expect("offer not relayed to the connection");
    assert_eq!(bin_at(&got, "info_hash"), h2);
    let offer_id = bin_at(&got, "offer_id");
    c.c.send_json(&answer_msg(&h2, &old_id, &d.peer_id, &offer_id, "v=0"));
    let back = d.c.relayed(WS_TIMEOUT).expect("answer not relayed back");
    assert_eq!(bin_at(&back, "peer_id"), old_id);
}

/// The offer_ids of up to `want` offers relayed to `c` (fewer if they stop
/// coming for `WS_TIMEOUT`).
fn offer_ids_within<S>(c: &mut WsClient<S>, want: usize) -> Vec<Vec<u8>>
where
    S: std::io::Read + std::io::Write + Timeout,
{
    let mut ids = Vec::new();
    while ids.len() < want {
        let Some(got) = c.relayed(WS_TIMEOUT) else {
            break;
        };
        assert!(got.get("offer").is_some(), "expected an offer: {got}");
        ids.push(bin_at(&got, "offer_id"));
    }
    ids
}

#[test]
fn two_peer_ids_on_one_connection_each_get_offers_answers_and_stop() {
    let t = tracker();
    let hash = random_hash();
    // One socket, two clients, as the npm client and browsers share it.
    let mut shared = connect(t.http_addr(), "/announce");
    let (a, b) = (random_peer_id(), random_peer_id());
    for id in [a, b] {
        shared.send_json(&announce_msg(&hash, &id, 10, Some("started"), Some(0), &[]));
        shared.announce_reply(&hash);
    }
    let mut s = connect(t.http_addr(), "/");
    assert_eq!(s.scrape_one(&hash).incomplete, 2);

    // Another peer's two offers go one to each id, both on this socket.
    let mut d = Peer::connect(t.http_addr());
    let sent = offers(2, 100);
    let r = d.offer(&hash, 5, &sent);
    assert_eq!(int_at(&r, "incomplete"), 3, "{r}");
    let mut got = offer_ids_within(&mut shared, 2);
    got.sort();
    let mut want: Vec<Vec<u8>> = sent.iter().map(|(id, _)| id.clone()).collect();
    want.sort();
    assert_eq!(got, want, "each id gets one of the offers");

    // Each id answers one offer; both answers reach the offerer, each
    // under the id that sent it.
    shared.send_json(&answer_msg(&hash, &a, &d.peer_id, &got[0], "v=0 a"));
    shared.send_json(&answer_msg(&hash, &b, &d.peer_id, &got[1], "v=0 b"));
    let mut from = Vec::new();
    for _ in 0..2 {
        let back = d.c.relayed(WS_TIMEOUT).expect("answer not relayed back");
        from.push(bin_at(&back, "peer_id"));
    }
    from.sort();
    let mut ids = vec![a.to_vec(), b.to_vec()];
    ids.sort();
    assert_eq!(from, ids);

    // Stopping one id leaves the other in the swarm, still getting offers.
    shared.send_json(&announce_msg(&hash, &a, 10, Some("stopped"), Some(0), &[]));
    let r = shared.announce_reply(&hash);
    assert_eq!(int_at(&r, "incomplete"), 2, "{r}");
    d.offer(&hash, 5, &offers(2, 100));
    assert_eq!(offer_ids_within(&mut shared, 2).len(), 1, "only b is left");
    assert_eq!(s.scrape_one(&hash).incomplete, 2);

    // Closing the socket removes every id it announced.
    shared.send_json(&announce_msg(&hash, &a, 10, Some("started"), Some(0), &[]));
    shared.announce_reply(&hash);
    assert_eq!(s.scrape_one(&hash).incomplete, 3);
    shared.close();
    let gone = poll_until(Duration::from_secs(5), || {
        s.scrape_one(&hash).incomplete == 1
    });
    assert!(gone, "ids of a closed connection are still counted");
}

#[test]
fn more_peer_ids_than_max_peer_ids_per_connection_get_a_failure() {
    let t = Tracker::with_config("[ws]\nmax_peer_ids_per_connection = 2\n");
    let (h1, h2) = (random_hash(), random_hash());
    let mut c = connect(t.http_addr(), "/announce");
    let ids: Vec<[u8; 20]> = (0..3).map(|_| random_peer_id()).collect();
    let msg = |hash, id, event| announce_msg(hash, id, 10, Some(event), Some(0), &[]);
    for id in &ids[..2] {
        c.send_json(&msg(&h1, id, "started"));
        c.announce_reply(&h1);
    }
    c.send_json(&msg(&h1, &ids[2], "started"));
    let f = c.failure();
    assert_eq!(
        f["failure reason"], "too many peer ids on this connection",
        "{f}"
    );
    assert_eq!(f["action"], "announce", "{f}");
    assert_eq!(bin_at(&f, "info_hash"), h1, "{f}");
    // Nothing changed, the connection stays open, and a known id may
    // still join another torrent.
    let mut s = connect(t.http_addr(), "/");
    assert_eq!(s.scrape_one(&h1).incomplete, 2);
    c.send_json(&msg(&h2, &ids[1], "started"));
    c.announce_reply(&h2);
    // Once an id stops everywhere, its place is free again.
    c.send_json(&msg(&h1, &ids[0], "stopped"));
    c.announce_reply(&h1);
    c.send_json(&msg(&h1, &ids[2], "started"));
    let r = c.announce_reply(&h1);
    assert_eq!(int_at(&r, "incomplete"), 2, "{r}");
}

#[test]
fn another_connection_cannot_take_over_a_peer_id() {
    let t = tracker();
    let hash = random_hash();
    let mut owner = Peer::connect(t.http_addr());
    owner.join(&hash, 10);
    let mut s = connect(t.http_addr(), "/");

    // The attacker announces with the owner's id, with offers, then an
    // answer and a stop: each is refused.
    let mut d = Peer::connect(t.http_addr());
    d.join(&hash, 0);
    let mut x = Peer {
        c: connect(t.http_addr(), "/announce"),
        peer_id: owner.peer_id,
    };
    let m = announce_msg(
        &hash,
        &x.peer_id,
        0,
        Some("started"),
        Some(5),
        &offers(2, 100),
    );
    x.c.send_json(&m);
    let f = x.c.failure();
    assert_eq!(
        f["failure reason"], "peer_id is in use by another connection",
        "{f}"
    );
    assert_eq!(f["action"], "announce", "{f}");
    assert_eq!(bin_at(&f, "info_hash"), hash, "{f}");
    assert!(
        d.c.relayed(QUIET).is_none(),
        "a refused announce's offer went out"
    );
    let counts = s.scrape_one(&hash);
    assert_eq!((counts.complete, counts.incomplete), (1, 1), "{counts:?}");

    // Offers meant for the owner still reach the owner, not the attacker.
    let sent = offers(1, 100);
    d.offer(&hash, 5, &sent);
    let got = owner.c.relayed(WS_TIMEOUT).expect("the owner got no offer");
    assert_eq!(bin_at(&got, "offer_id"), sent[0].0);
    assert!(x.c.relayed(QUIET).is_none(), "the attacker got an offer");
    let answer = answer_msg(&hash, &x.peer_id, &d.peer_id, &sent[0].0, "v=0");
    x.c.send_json(&answer);
    assert!(
        d.c.relayed(QUIET).is_none(),
        "the attacker's answer went out"
    );
    x.c.send_json(&announce_msg(
        &hash,
        &x.peer_id,
        0,
        Some("stopped"),
        Some(0),
        &[],
    ));
    assert_failure(&x.c.failure(), "a stop for another connection's id");

    // The attacker leaving does not take the owner with it.
    x.c.close();
    thread::sleep(QUIET);
    // (d is a leecher now: its offers said left = 1000.)
    let counts = s.scrape_one(&hash);
    assert_eq!((counts.complete, counts.incomplete), (0, 2), "{counts:?}");
    d.offer(&hash, 5, &offers(1, 100));
    assert!(
        owner.c.relayed(WS_TIMEOUT).is_some(),
        "the owner lost its offers"
    );

    // Once the owner stops, the id is free for another connection.
    owner.c.send_json(&announce_msg(
        &hash,
        &owner.peer_id,
        10,
        Some("stopped"),
        Some(0),
        &[],
    ));
    owner.c.announce_reply(&hash);
    let mut y = Peer {
        c: connect(t.http_addr(), "/announce"),
        peer_id: owner.peer_id,
    };
    let r = y.join(&hash, 10);
    assert_eq!(int_at(&r, "incomplete"), 2, "d and y: {r}");
}

#[test]
fn more_torrents_than_max_torrents_per_connection_get_a_failure() {
    let t = Tracker::with_config("[ws]\nmax_torrents_per_connection = 2\n");
    let hashes: Vec<[u8; 20]> = (0..3).map(|_| random_hash()).collect();
    let mut c = Peer::connect(t.http_addr());
    c.join(&hashes[0], 10);
    c.join(&hashes[1], 10);
    let m = announce_msg(&hashes[2], &c.peer_id, 10, Some("started"), Some(0), &[]);
    c.c.send_json(&m);
    assert_failure(&c.c.failure(), "a third torrent");
    // Still open, still in the first two.
    c.join(&hashes[0], 10);
    let mut s = connect(t.http_addr(), "/");
    assert_eq!(s.scrape_one(&hashes[2]).incomplete, 0);
}

// ---------------------------------------------------------------------------
// Bad input and bad peers
// ---------------------------------------------------------------------------

#[test]
fn a_malformed_message_gets_a_failure_and_the_connection_stays_open() {
    let t = tracker();
    let hash = random_hash();
    let mut c = Peer::connect(t.http_addr());
    let ih = bin(&hash);
    let pid = bin(&c.peer_id);
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "this is not json".into()),
        ("truncated JSON", "{\"action\":\"announce\",".into()),
        ("an array", "[1,2,3]".into()),
        ("no info_hash", json!({"action": "announce", "peer_id": pid}).to_string()),
        (
            "19-char info_hash",
            json!({"action": "announce", "info_hash": ih.chars().take(19).collect::<String>(), "peer_id": pid}).to_string(),
        ),
        (
            "info_hash with a char above U+00FF",
            json!({"action": "announce", "info_hash": format!("{}\u{100}", &ih.chars().take(19).collect::<String>()), "peer_id": pid}).to_string(),
        ),
        (
            "numeric info_hash",
            json!({"action": "announce", "info_hash": 12, "peer_id": pid}).to_string(),
        ),
        ("no peer_id", json!({"action": "announce", "info_hash": ih}).to_string()),
        (
            "unknown action",
            json!({"action": "dance", "info_hash": ih, "peer_id": pid}).to_string(),
        ),
        (
            "scrape of a bad hash",
            json!({"action": "scrape", "info_hash": ["short"]}).to_string(),
        ),
    ];
    for (what, text) in &cases {
        c.c.send_text(text);
        let v =
            c.c.recv_matching(WS_TIMEOUT, |v| v.get("failure reason").is_some())
                .unwrap_or_else(|| panic!("{what}: no failure reply to {text:?}"));
        assert_failure(&v, what);
    }
    let r = c.join(&hash, 10);
    assert_eq!(int_at(&r, "incomplete"), 1, "{r}");
}

#[test]
fn a_too_large_or_binary_message_closes_the_connection() {
    let t = Tracker::with_config("[ws]\nmax_message_size = 1024\n");
    let hash = random_hash();

    let mut big = Peer::connect(t.http_addr());
    big.join(&hash, 10);
    let m = announce_msg(&hash, &big.peer_id, 10, None, Some(5), &offers(1, 2000));
    big.c.send_json(&m);
    assert!(
        big.c.closes_within(Duration::from_secs(3)),
        "a 2 kB message left the connection open"
    );

    let mut binary = connect(t.http_addr(), "/");
    binary
        .ws
        .send(tungstenite::Message::binary(
            b"{\"action\":\"scrape\"}".to_vec(),
        ))
        .unwrap();
    assert!(
        binary.closes_within(Duration::from_secs(3)),
        "a binary message left the connection open"
    );

    // Others are unaffected.
    let mut ok = Peer::connect(t.http_addr());
    ok.join(&hash, 10);
}

#[test]
fn a_slow_reader_is_disconnected_while_the_others_keep_working() {
    // Small outgoing budget: the slow reader is cut off after 64 kB queue.
    let t = Tracker::with_config("[ws]\nmax_message_size = 65536\nmax_outgoing_bytes = 65536\n");
    let hash = random_hash();
    let addr = t.http_addr();

    // The slow reader: a tiny receive buffer, and it never reads.
    let slow_sock = {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&addr.into()).unwrap();
        TcpStream::from(s)
    };
    let mut slow = Peer {
        c: connect_over(slow_sock, &format!("ws://{addr}/announce")),
        peer_id: random_peer_id(),
    };
    slow.join(&hash, 10);

    // A good reader, reading all the time in its own thread.
    let mut good = Peer::connect(addr);
    good.join(&hash, 10);
    let stop = Arc::new(AtomicBool::new(false));
    let good_got = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, good_got) = (stop.clone(), good_got.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if good.c.relayed(Duration::from_millis(100)).is_some() {
                    good_got.fetch_add(1, Ordering::Relaxed);
                }
            }
            good
        })
    };

    let mut sender = Peer::connect(addr);
    let mut probe = connect(addr, "/");
    assert_eq!(probe.scrape_one(&hash).incomplete, 2);
    let mut sent = 0;
    let mut disconnected = false;
    let started = Instant::now();
    while !disconnected && sent < 800 && started.elapsed() < Duration::from_secs(30) {
        // Two offers of 16 kB: one to each other peer.
        sender.offer(&hash, 2, &offers(2, 16 * 1024));
        sent += 1;
        if sent % 5 == 0 {
            disconnected = probe.scrape_one(&hash).incomplete == 2; // sender + good
        }
    }
    assert!(
        disconnected,
        "the slow reader is still in the swarm after {sent} announces with 16 kB offers ({} relayed to the good reader)",
        good_got.load(Ordering::Relaxed)
    );
    // The others keep working: the good reader gets the next offers.
    let before = good_got.load(Ordering::Relaxed);
    sender.offer(&hash, 2, &offers(2, 1000));
    let more = poll_until(Duration::from_secs(5), || {
        good_got.load(Ordering::Relaxed) > before
    });
    stop.store(true, Ordering::Relaxed);
    let mut good = reader.join().unwrap();
    assert!(
        more,
        "the good reader gets no offers after the slow one was dropped"
    );
    good.join(&hash, 10);

    // The slow reader's connection ends once it reads what was queued.
    assert!(
        slow.c.closes_within(Duration::from_secs(20)),
        "the slow reader's connection was not closed"
    );
}

#[test]
fn an_idle_connection_is_closed_after_idle_timeout() {
    let t = Tracker::with_config("[ws]\nidle_timeout = 1\n");
    let mut c = Peer::connect(t.http_addr());
    c.join(&random_hash(), 10);
    // Silent (not even answering pings) for longer than the timeout.
    thread::sleep(Duration::from_millis(2500));
    assert!(
        c.c.closes_within(Duration::from_secs(3)),
        "a silent connection is still open after idle_timeout"
    );
}

// ---------------------------------------------------------------------------
// Listeners, other protocols, TLS
// ---------------------------------------------------------------------------

#[test]
fn webtorrent_swarms_are_apart_from_http_and_udp_swarms() {
    let t = tracker();
    let hash = random_hash();
    h::announce(t.http_addr(), &HttpAnnounce::new(hash, 45001).seeder());
    Client::new(t.addr()).announce(&Announce::new(hash, 45002).leecher());

    let mut w = Peer::connect(t.http_addr());
    let r = w.join(&hash, 10);
    assert_eq!(
        (int_at(&r, "complete"), int_at(&r, "incomplete")),
        (0, 1),
        "the WebTorrent swarm holds only the WebSocket peer: {r}"
    );
    assert_eq!(
        w.c.scrape_one(&hash),
        Counts {
            complete: 0,
            incomplete: 1,
            downloaded: 0
        }
    );
    let hs = h::scrape_one(t.http_addr(), hash);
    assert_eq!((hs.complete, hs.incomplete), (1, 1), "HTTP scrape: {hs:?}");
    let r = h::announce(t.http_addr(), &HttpAnnounce::new(hash, 45003));
    assert_eq!((r.complete, r.incomplete), (1, 2));
    assert_eq!(r.peers.len(), 2, "{:?}", r.peers);
}

#[test]
fn a_ws_only_listener_refuses_plain_http_and_takes_upgrades() {
    let t = Tracker::with_config("[ws]\nlisten = [\"127.0.0.1:0\"]\n");
    let ws_addr = t.ws_only_addr();
    assert_ne!(ws_addr, t.http_addr());
    let hash = random_hash();

    let resp = h::get(ws_addr, &HttpAnnounce::new(hash, 6881).target());
    assert!(
        (400..500).contains(&resp.status),
        "plain HTTP on a WebSocket-only port: `{}`",
        resp.status_line
    );
    resp.failure().expect("a bencoded failure reason");
    assert_eq!(h::scrape_one(t.http_addr(), hash).incomplete, 0);

    // Upgrades work, and share the swarm with the HTTP port's WebSockets.
    let mut a = Peer::connect(ws_addr);
    a.join(&hash, 0);
    let mut b = Peer::connect(t.http_addr());
    b.offer(&hash, 5, &offers(1, 100));
    let got = a.c.relayed(WS_TIMEOUT).expect("offer across listeners");
    assert_eq!(bin_at(&got, "peer_id"), b.peer_id);
}

#[test]
fn wss_on_tls_listeners_exchanges_offers_with_plain_ws() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "ws");
    let t = Tracker::with_config(&format!(
        "[http]\ntls_listen = [\"127.0.0.1:0\"]\n[ws]\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    ));
    let config = tls::client_config(&[&cert.der]);
    let hash = random_hash();

    let mut a = Peer::connect_tls(t.https_addr(), config.clone());
    assert_eq!(int_at(&a.join(&hash, 0), "complete"), 1);
    let mut b = Peer::connect_tls(t.wss_only_addr(), config);
    b.join(&hash, 10);
    let mut c = Peer::connect(t.http_addr());

    c.offer(&hash, 1, &offers(1, 300));
    let deadline = Instant::now() + WS_TIMEOUT;
    let (got, over) = loop {
        assert!(Instant::now() < deadline, "neither WSS peer got the offer");
        if let Some(v) = a.c.relayed(Duration::from_millis(50)) {
            break (v, "a");
        }
        if let Some(v) = b.c.relayed(Duration::from_millis(50)) {
            break (v, "b");
        }
    };
    let (me, receiver_id) = if over == "a" {
        (&mut a.c, a.peer_id)
    } else {
        (&mut b.c, b.peer_id)
    };
    let offer_id = bin_at(&got, "offer_id");
    me.send_json(&answer_msg(
        &hash,
        &receiver_id,
        &c.peer_id,
        &offer_id,
        "v=0 tls",
    ));
    let back = c.c.relayed(WS_TIMEOUT).expect("answer from a WSS peer");
    assert_eq!(bin_at(&back, "peer_id"), receiver_id);
    assert_eq!(
        c.c.scrape_one(&hash),
        Counts {
            complete: 1,
            incomplete: 2,
            downloaded: 0
        }
    );
}
