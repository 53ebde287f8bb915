//! BEP 15 behaviour of the `tracker-user` binary, seen on the wire.

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;

/// A simulated peer: its own socket (source port) and announced port.
struct Peer {
    client: Client,
    port: u16,
}

impl Peer {
    fn new(tracker: SocketAddr, port: u16) -> Self {
        Peer {
            client: Client::new(tracker),
            port,
        }
    }

    /// The address other peers must be given for this peer.
    fn addr(&self) -> SocketAddr {
        self.client.peer_addr(self.port)
    }

    fn ann(&self, hash: [u8; 20]) -> Announce {
        Announce::new(hash, self.port)
    }
}

fn addrs<'a>(peers: impl IntoIterator<Item = &'a Peer>) -> HashSet<SocketAddr> {
    peers.into_iter().map(Peer::addr).collect()
}

fn assert_error_mentions(e: &ErrorResp, needle: &str) {
    assert!(
        e.message.to_lowercase().contains(needle),
        "error message {:?} does not mention {needle:?}",
        e.message
    );
}

// ---------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------

#[test]
fn connect_returns_16_bytes_with_txid_and_nonzero_id() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    for txid in [0x1234_5678u32, 0, 0xffff_ffff] {
        let resp = c.request(&encode_connect(txid));
        assert_eq!(resp.len(), 16, "connect response length: {resp:02x?}");
        assert_eq!(&resp[0..4], &[0, 0, 0, 0], "action must be 0 (connect)");
        assert_eq!(&resp[4..8], &txid.to_be_bytes(), "txid echoed");
        assert_ne!(&resp[8..16], &[0u8; 8], "connection id must not be zero");
    }
}

#[test]
fn connect_with_wrong_protocol_id_gets_error() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    let mut pkt = encode_connect(0xabcd_0001);
    pkt[0..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
    c.send(&pkt);
    let resp = c
        .recv_txid(0xabcd_0001, RECV_TIMEOUT)
        .expect("no response to a connect with a wrong protocol id");
    match decode_response(&resp, false) {
        Response::Error(e) => assert_eq!(e.txid, 0xabcd_0001),
        other => panic!("expected an error response, got {other:?}"),
    }
    // Still serving.
    c.connect();
}

// ---------------------------------------------------------------------------
// announce
// ---------------------------------------------------------------------------

#[test]
fn announce_five_peers_counts_and_peer_lists() {
    let t = Tracker::with_config("[protocol]\nannounce_interval = 1234\n");
    let hash = random_hash();
    let peers: Vec<Peer> = (0..5).map(|i| Peer::new(t.addr(), 10001 + i)).collect();
    // Peers 0 and 1 seed, 2..5 leech.
    let seeding = |i: usize| i < 2;

    for (i, p) in peers.iter().enumerate() {
        let a = p.ann(hash).event(EVENT_STARTED);
        let a = if seeding(i) { a.seeder() } else { a.leecher() };
        let r = p.client.announce(&a);
        assert_eq!(r.interval, 1234, "interval = protocol.announce_interval");
        let seeders = (0..=i).filter(|&j| seeding(j)).count() as u32;
        let leechers = (i + 1) as u32 - seeders;
        assert_eq!(
            (r.seeders, r.leechers),
            (seeders, leechers),
            "(seeders, leechers) after announce of peer {i}"
        );
        assert_eq!(
            r.peer_set(),
            addrs(&peers[..i]),
            "peer {i} must get exactly the peers that announced before it"
        );
    }

    // Everyone re-announces: each gets all four others, never itself.
    for (i, p) in peers.iter().enumerate() {
        let a = p.ann(hash);
        let a = if seeding(i) { a.seeder() } else { a.leecher() };
        let r = p.client.announce(&a);
        assert_eq!((r.seeders, r.leechers), (2, 3), "counts on re-announce");
        let expected: HashSet<_> = addrs(
            peers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p),
        );
        assert_eq!(r.peers.len(), 4, "re-announce of peer {i} returns 4 peers");
        assert_eq!(r.peer_set(), expected, "peers returned to peer {i}");
        assert!(!r.peers.contains(&p.addr()), "requester itself returned");
    }

    // Scrape agrees.
    let s = peers[0].client.scrape(&[hash]);
    assert_eq!(s.0, vec![(2, 0, 3)]);
}

#[test]
fn leecher_becoming_seeder_is_recounted() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 2001);
    let b = Peer::new(t.addr(), 2002);
    a.client
        .announce(&a.ann(hash).leecher().event(EVENT_STARTED));
    let r = b
        .client
        .announce(&b.ann(hash).leecher().event(EVENT_STARTED));
    assert_eq!((r.seeders, r.leechers), (0, 2));
    // a finishes without a `completed` event: still one peer, now a seeder.
    let r = a.client.announce(&a.ann(hash).seeder());
    assert_eq!(
        (r.seeders, r.leechers),
        (1, 1),
        "a is the same peer, now seeding"
    );
    assert_eq!(r.peer_set(), addrs([&b]));
}

#[test]
fn numwant_zero_two_default_and_above_max() {
    let t = Tracker::with_config(&format!(
        "{MANY_PEERS_PER_IP}[protocol]\ndefault_numwant = 3\nmax_numwant = 5\n"
    ));
    let hash = random_hash();
    let peers: Vec<Peer> = (0..10).map(|i| Peer::new(t.addr(), 3001 + i)).collect();
    for p in &peers {
        p.client.announce(&p.ann(hash).numwant(0));
    }
    let me = &peers[0];
    let others = addrs(&peers[1..]);

    let check = |numwant: i32, expected_len: usize| {
        let r = me.client.announce(&me.ann(hash).numwant(numwant));
        assert_eq!(r.leechers, 10, "leechers with numwant {numwant}");
        assert_eq!(
            r.peers.len(),
            expected_len,
            "number of peers for numwant {numwant}: {:?}",
            r.peers
        );
        let set = r.peer_set(); // asserts no duplicates
        assert!(
            set.is_subset(&others),
            "numwant {numwant}: returned peers {set:?} are not all other peers (requester {})",
            me.addr()
        );
    };
    check(0, 0);
    check(2, 2);
    check(-1, 3); // default_numwant
    check(5, 5);
    check(7, 5); // capped at max_numwant
    check(100, 5);
    check(i32::MAX, 5);

    // Fewer others than numwant: all of them.
    let hash2 = random_hash();
    let x = Peer::new(t.addr(), 3101);
    let y = Peer::new(t.addr(), 3102);
    x.client.announce(&x.ann(hash2));
    let r = y.client.announce(&y.ann(hash2).numwant(-1));
    assert_eq!(r.peer_set(), addrs([&x]));
    let r = y.client.announce(&y.ann(hash2).numwant(4));
    assert_eq!(r.peer_set(), addrs([&x]));
}

#[test]
fn stopped_removes_peer() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let peers: Vec<Peer> = (0..3).map(|i| Peer::new(t.addr(), 4001 + i)).collect();
    peers[0]
        .client
        .announce(&peers[0].ann(hash).seeder().event(EVENT_STARTED));
    peers[1]
        .client
        .announce(&peers[1].ann(hash).leecher().event(EVENT_STARTED));
    let r = peers[2]
        .client
        .announce(&peers[2].ann(hash).leecher().event(EVENT_STARTED));
    assert_eq!((r.seeders, r.leechers), (1, 2));

    // The seeder leaves.
    match peers[0]
        .client
        .try_announce(&peers[0].ann(hash).seeder().event(EVENT_STOPPED))
    {
        Response::Announce(_) => {}
        other => panic!("a stopped announce must get an announce response, got {other:?}"),
    }
    let r = peers[1].client.announce(&peers[1].ann(hash).leecher());
    assert_eq!((r.seeders, r.leechers), (0, 2), "counts after stop");
    assert_eq!(
        r.peer_set(),
        addrs([&peers[2]]),
        "stopped peer still listed"
    );
    assert_eq!(peers[2].client.scrape(&[hash]).0, vec![(0, 0, 2)]);

    // A leecher leaves too.
    peers[2]
        .client
        .try_announce(&peers[2].ann(hash).leecher().event(EVENT_STOPPED));
    let r = peers[1].client.announce(&peers[1].ann(hash).leecher());
    assert_eq!((r.seeders, r.leechers), (0, 1));
    assert!(
        r.peers.is_empty(),
        "peers after everyone else stopped: {:?}",
        r.peers
    );
}

#[test]
fn completed_counted_in_scrape() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 5001);
    let b = Peer::new(t.addr(), 5002);
    a.client
        .announce(&a.ann(hash).leecher().event(EVENT_STARTED));
    b.client
        .announce(&b.ann(hash).leecher().event(EVENT_STARTED));
    assert_eq!(a.client.scrape(&[hash]).0, vec![(0, 0, 2)]);

    let r = a
        .client
        .announce(&a.ann(hash).seeder().event(EVENT_COMPLETED));
    assert_eq!((r.seeders, r.leechers), (1, 1));
    assert_eq!(a.client.scrape(&[hash]).0, vec![(1, 1, 1)]);

    // A plain re-announce of a seeder does not count as another completion.
    a.client.announce(&a.ann(hash).seeder());
    assert_eq!(a.client.scrape(&[hash]).0, vec![(1, 1, 1)]);

    b.client
        .announce(&b.ann(hash).seeder().event(EVENT_COMPLETED));
    assert_eq!(b.client.scrape(&[hash]).0, vec![(2, 2, 0)]);

    // Completed survives the peers leaving.
    a.client
        .announce(&a.ann(hash).seeder().event(EVENT_STOPPED));
    assert_eq!(b.client.scrape(&[hash]).0, vec![(1, 2, 0)]);
}

// ---------------------------------------------------------------------------
// scrape
// ---------------------------------------------------------------------------

/// Fills a torrent with `seeders` seeders (the first `completed` of which
/// announce `completed`) and `leechers` leechers.
fn populate(t: &Tracker, hash: [u8; 20], seeders: u16, completed: u16, leechers: u16, base: u16) {
    for i in 0..seeders {
        let p = Peer::new(t.addr(), base + i);
        let ev = if i < completed {
            EVENT_COMPLETED
        } else {
            EVENT_STARTED
        };
        p.client.announce(&p.ann(hash).seeder().event(ev));
    }
    for i in 0..leechers {
        let p = Peer::new(t.addr(), base + 100 + i);
        p.client
            .announce(&p.ann(hash).leecher().event(EVENT_STARTED));
    }
}

#[test]
fn scrape_order_is_seeders_completed_leechers() {
    let t = Tracker::start_v4();
    let x = random_hash();
    let y = random_hash();
    let unknown = random_hash();
    populate(&t, x, 3, 1, 2, 6000);
    populate(&t, y, 1, 0, 4, 6300);

    let c = Client::new(t.addr());
    let s = c.scrape(&[x, unknown, y]);
    assert_eq!(
        s.0,
        vec![(3, 1, 2), (0, 0, 0), (1, 0, 4)],
        "scrape of [x, unknown, y] as (seeders, completed, leechers)"
    );
    assert_eq!(c.scrape(&[y]).0, vec![(1, 0, 4)]);
    assert_eq!(c.scrape(&[unknown]).0, vec![(0, 0, 0)]);

    // Raw layout check too: 8-byte header + 12 bytes per hash.
    let txid = 0x5c5c_0001;
    let raw = c.request(&encode_scrape(c.conn_id(), txid, &[x, y]));
    assert_eq!(raw.len(), 8 + 2 * 12);
    assert_eq!(&raw[0..4], &2u32.to_be_bytes(), "action 2");
    assert_eq!(&raw[4..8], &txid.to_be_bytes());
}

#[test]
fn scrape_answers_at_most_max_scrape_torrents() {
    let t = Tracker::with_config("[udp]\nmax_scrape_torrents = 3\n");
    let hashes: Vec<[u8; 20]> = (0..5).map(|_| random_hash()).collect();
    for (i, h) in hashes.iter().enumerate() {
        populate(&t, *h, 0, 0, i as u16 + 1, 7000 + 10 * i as u16);
    }
    let c = Client::new(t.addr());
    let s = c.scrape(&hashes);
    assert_eq!(
        s.0,
        vec![(0, 0, 1), (0, 0, 2), (0, 0, 3)],
        "only the first 3 hashes answered, in order"
    );
    // Fewer than the cap are answered in full.
    assert_eq!(c.scrape(&hashes[3..]).0, vec![(0, 0, 4), (0, 0, 5)]);
}

// ---------------------------------------------------------------------------
// announce details
// ---------------------------------------------------------------------------

#[test]
fn bep41_options_after_byte_98_are_accepted() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 8001);
    let b = Peer::new(t.addr(), 8002);
    let c = Peer::new(t.addr(), 8003);

    let mut url_data = vec![0x02, 0x0c];
    url_data.extend_from_slice(b"/announce?ab");
    url_data.extend_from_slice(&[0x01, 0x00]);
    let r = a.client.announce(&a.ann(hash).options(&url_data));
    assert_eq!(r.leechers, 1);

    // NOP + EndOfOptions, and URLData split over two options.
    let r = b.client.announce(&b.ann(hash).options(&[0x01, 0x01, 0x00]));
    assert_eq!(r.peer_set(), addrs([&a]));
    let mut two = vec![0x02, 0x03];
    two.extend_from_slice(b"/an");
    two.extend_from_slice(&[0x02, 0x05]);
    two.extend_from_slice(b"nounc");
    let r = c.client.announce(&c.ann(hash).options(&two));
    assert_eq!(
        r.peer_set(),
        addrs([&a, &b]),
        "peers registered with options"
    );
    assert_eq!(r.leechers, 3);
}

#[test]
fn announce_ip_field_is_ignored() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 9001);
    let b = Peer::new(t.addr(), 9002);
    a.client
        .announce(&a.ann(hash).ip(Ipv4Addr::new(10, 1, 2, 3)));
    let r = b
        .client
        .announce(&b.ann(hash).ip(Ipv4Addr::new(192, 0, 2, 7)));
    let expected: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    assert_eq!(r.peers, vec![expected], "a is listed with its source IP");
    let r = a.client.announce(&a.ann(hash));
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:9002".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn peer_identity_is_source_ip_and_port_field() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 9101);
    let b = Peer::new(t.addr(), 9102);
    a.client.announce(&a.ann(hash));
    // The same announced port from another socket of the same IP is the same
    // peer, not a second one.
    let other_socket = Client::new(t.addr());
    let r = other_socket.announce(&a.ann(hash));
    assert_eq!(
        r.leechers, 1,
        "same (IP, port field) from another socket is the same peer"
    );
    assert!(
        r.peers.is_empty(),
        "requester returned to itself: {:?}",
        r.peers
    );
    let r = b.client.announce(&b.ann(hash));
    assert_eq!(r.leechers, 2);
    assert_eq!(r.peer_set(), addrs([&a]));
}

// ---------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------

#[test]
fn ipv6_and_ipv4_peers_are_kept_apart_but_counted_together() {
    let t = Tracker::builder().udp("[::1]:0").udp("127.0.0.1:0").start();
    assert!(
        t.addrs[0].is_ipv6() && t.addrs[1].is_ipv4(),
        "{:?}",
        t.addrs
    );
    let hash = random_hash();
    let v4: Vec<Peer> = (0..2).map(|i| Peer::new(t.v4(), 11001 + i)).collect();
    let v6: Vec<Peer> = (0..3).map(|i| Peer::new(t.v6(), 12001 + i)).collect();
    for p in &v4 {
        p.client.announce(&p.ann(hash).seeder());
    }
    for p in &v6 {
        p.client.announce(&p.ann(hash).leecher());
    }

    // v6 peer: 18-byte entries, only the other v6 peers, counts of all.
    let me = &v6[0];
    let txid = 0x6666_0001;
    let raw = me
        .client
        .request(&me.ann(hash).leecher().encode(me.client.conn_id(), txid));
    assert_eq!(
        raw.len(),
        20 + 2 * 18,
        "v6 announce response: 2 peers × 18 bytes"
    );
    let Response::Announce(r) = decode_response(&raw, true) else {
        panic!("expected announce response: {raw:02x?}")
    };
    assert_eq!(
        (r.seeders, r.leechers),
        (2, 3),
        "counts cover both families"
    );
    assert_eq!(r.peer_set(), addrs(&v6[1..]));
    for p in &r.peers {
        assert_eq!(p.ip().to_string(), "::1");
    }

    // v4 peer: 6-byte entries, only the other v4 peer.
    let me = &v4[0];
    let txid = 0x4444_0001;
    let raw = me
        .client
        .request(&me.ann(hash).seeder().encode(me.client.conn_id(), txid));
    assert_eq!(raw.len(), 20 + 6, "v4 announce response: 1 peer × 6 bytes");
    let Response::Announce(r) = decode_response(&raw, false) else {
        panic!("expected announce response: {raw:02x?}")
    };
    assert_eq!((r.seeders, r.leechers), (2, 3));
    assert_eq!(r.peer_set(), addrs(&v4[1..]));

    // Scrape over either family counts both.
    assert_eq!(v4[1].client.scrape(&[hash]).0, vec![(2, 0, 3)]);
    assert_eq!(v6[2].client.scrape(&[hash]).0, vec![(2, 0, 3)]);

    // A v6 peer stopping is seen by the v4 side's counts.
    v6[1]
        .client
        .try_announce(&v6[1].ann(hash).event(EVENT_STOPPED));
    let r = v4[1].client.announce(&v4[1].ann(hash).seeder());
    assert_eq!((r.seeders, r.leechers), (2, 2));
    assert_eq!(r.peer_set(), addrs([&v4[0]]));
}

// ---------------------------------------------------------------------------
// connection ids
// ---------------------------------------------------------------------------

#[test]
fn forged_connection_id_is_refused() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let c = Client::new(t.addr());
    let mut rng = Rng::new();
    for _ in 0..3 {
        c.set_conn_id(rng.u64());
        let e = c.announce_err(&Announce::new(hash, 13001));
        assert_error_mentions(&e, "connection id");
        match c.try_scrape(&[hash]) {
            Response::Error(e) => assert_error_mentions(&e, "connection id"),
            other => panic!("scrape with forged id: expected error, got {other:?}"),
        }
    }
    // The refused announces did not register a peer.
    let real = Client::new(t.addr());
    assert_eq!(real.scrape(&[hash]).0, vec![(0, 0, 0)]);
    let r = real.announce(&Announce::new(hash, 13002));
    assert!(r.peers.is_empty());
    assert_eq!(r.leechers, 1);
}

#[test]
fn connection_id_is_accepted_from_another_port_of_the_same_ip() {
    // What libtorrent does with two sessions in one process, and what a NAT
    // that rebinds the client's port does: connect from one socket, announce
    // and scrape from another on the same IP.
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Client::new(t.addr());
    let b = Client::new(t.addr());
    assert_ne!(a.local_addr().port(), b.local_addr().port());
    let id = a.connect();
    a.announce(&Announce::new(hash, 14001));
    b.set_conn_id(id);
    let r = b.announce(&Announce::new(hash, 14002));
    assert_eq!(r.leechers, 2, "b's announce with a's id was counted");
    assert_eq!(r.peers, vec![a.peer_addr(14001)]);
    assert_eq!(b.scrape(&[hash]).0, vec![(0, 0, 2)]);
}

#[test]
fn refused_connection_ids_are_logged_at_debug_at_most_once_a_second() {
    let t = Tracker::with_config("log_level = \"debug\"\n[udp]\nworkers = 1\n");
    let c = Client::new(t.addr());
    c.set_conn_id(0x1234_5678_9abc_def0);
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let e = c.announce_err(&Announce::new(random_hash(), 14101));
        assert_error_mentions(&e, "connection id");
    }
    let secs = started.elapsed().as_secs() as usize;
    let needle = format!("connection id invalid or expired from {}", c.local_addr());
    let ok = poll_until(Duration::from_secs(3), || t.stderr_text().contains(&needle));
    assert!(ok, "no debug line naming the source:\n{}", t.stderr_text());
    let lines = t
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("connection id invalid or expired from"))
        .count();
    assert!(
        lines <= secs + 2,
        "{lines} log lines for 40 refusals in {secs} s: not rate-limited"
    );
}

#[test]
fn connection_id_expires() {
    let t = Tracker::with_config("[udp]\nconnection_id_lifetime = 1\n");
    let hash = random_hash();
    let c = Client::new(t.addr());
    c.connect();
    c.announce(&Announce::new(hash, 15001));
    // Well past the 1 s lifetime (not a timing assertion: any tracker must
    // have expired the id by then).
    std::thread::sleep(Duration::from_secs(3));
    let e = c.announce_err(&Announce::new(hash, 15001));
    assert_error_mentions(&e, "connection id");
    match c.try_scrape(&[hash]) {
        Response::Error(e) => assert_error_mentions(&e, "connection id"),
        other => panic!("scrape with expired id: expected error, got {other:?}"),
    }
    // A fresh id works again.
    c.connect();
    c.announce(&Announce::new(hash, 15001));
}

// ---------------------------------------------------------------------------
// malformed requests
// ---------------------------------------------------------------------------

#[test]
fn invalid_event_gets_error() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let c = Client::new(t.addr());
    for event in [4u32, 7, 0xffff_ffff] {
        let e = c.announce_err(&Announce::new(hash, 16001).event(event));
        assert!(!e.message.is_empty(), "error message for event {event}");
    }
    // Not registered.
    assert_eq!(c.scrape(&[hash]).0, vec![(0, 0, 0)]);
}

#[test]
fn unknown_action_gets_error() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    let id = c.connect();
    for (action, len) in [(9u32, 16usize), (4, 98), (0xffff_ffff, 40)] {
        let txid = 0x7700_0000 | action & 0xffff;
        let mut pkt = vec![0u8; len];
        pkt[0..8].copy_from_slice(&id.to_be_bytes());
        pkt[8..12].copy_from_slice(&action.to_be_bytes());
        pkt[12..16].copy_from_slice(&txid.to_be_bytes());
        match c.request_decoded(&pkt) {
            Response::Error(e) => assert_eq!(e.txid, txid),
            other => panic!("action {action}: expected an error response, got {other:?}"),
        }
    }
}

#[test]
fn truncated_announce_and_scrape_do_not_crash() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    let id = c.connect();
    let full = Announce::new(random_hash(), 17001).encode(id, 1);
    for len in [16, 17, 50, 97] {
        c.send(&full[..len]);
    }
    // Scrape with a partial hash.
    let mut s = encode_scrape(id, 2, &[random_hash()]);
    s.truncate(16 + 7);
    c.send(&s);
    // Whatever was answered (errors or nothing), the tracker keeps working.
    c.connect();
    c.announce(&Announce::new(random_hash(), 17002));
}

#[test]
fn short_packets_are_dropped_silently() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    let mut rng = Rng::new();
    let connect = encode_connect(0x0102_0304);
    for len in 0..16 {
        // Both random bytes and prefixes of a valid connect.
        c.send(&rng.bytes(len));
        c.send(&connect[..len]);
    }
    let txid = 0x5555_aaaa;
    c.send(&encode_connect(txid));
    let first = c
        .recv_timeout(RECV_TIMEOUT)
        .expect("no answer to a connect after short packets");
    assert_eq!(
        first.len(),
        16,
        "first datagram after short packets is not the connect response: {first:02x?}"
    );
    assert_eq!(&first[4..8], &txid.to_be_bytes());
    // Nothing else arrives.
    if let Some(extra) = c.recv_timeout(Duration::from_millis(500)) {
        panic!("tracker answered a short packet: {extra:02x?}");
    }
}

#[test]
fn garbage_flood_does_not_crash() {
    let mut t = Tracker::start_v4();
    let mut rng = Rng::new();
    let senders: Vec<Client> = (0..4).map(|_| Client::new(t.addr())).collect();
    let ids: Vec<u64> = senders.iter().map(Client::connect).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 1500];
    let mut sent = 0usize;
    for i in 0..20_000usize {
        if i % 256 == 0 && std::time::Instant::now() >= deadline {
            break;
        }
        sent += 1;
        let k = i % senders.len();
        let len = match rng.below(4) {
            0 => rng.below(16),
            1 => 16 + rng.below(100),
            _ => rng.below(1500),
        };
        let pkt = &mut buf[..len];
        rng.fill(pkt);
        // A third of them get a valid header so the announce/scrape
        // parsers see random bodies too.
        if len >= 16 && rng.below(3) == 0 {
            pkt[0..8].copy_from_slice(&ids[k].to_be_bytes());
            let action = rng.below(4) as u32;
            pkt[8..12].copy_from_slice(&action.to_be_bytes());
        } else if len >= 16 && rng.below(8) == 0 {
            pkt[0..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
            pkt[8..12].copy_from_slice(&rng.below(4).to_be_bytes()[4..]);
        }
        // The kernel may refuse when buffers are full; that is fine.
        let _ = senders[k].sock.send_to(pkt, t.addr());
    }
    eprintln!("sent {sent} garbage datagrams");
    t.assert_alive();

    let c = Client::new(t.addr());
    c.connect();
    let hash = random_hash();
    let r = c.announce(&Announce::new(hash, 18001).seeder());
    assert_eq!((r.seeders, r.leechers), (1, 0));
    let d = Client::new(t.addr());
    let r = d.announce(&Announce::new(hash, 18002));
    assert_eq!(r.peer_set(), HashSet::from([c.peer_addr(18001)]));
    t.assert_alive();
}

// ---------------------------------------------------------------------------
// expiry
// ---------------------------------------------------------------------------

#[test]
fn peers_expire_after_max_peer_age() {
    let t = Tracker::with_config("[swarm]\nmax_peer_age = 2\ncleaning_interval = 1\n");
    let hash = random_hash();
    let a = Peer::new(t.addr(), 19001);
    let b = Peer::new(t.addr(), 19002);
    a.client.announce(&a.ann(hash).seeder());
    let r = b.client.announce(&b.ann(hash));
    assert_eq!(r.peer_set(), addrs([&a]), "a is listed while fresh");

    // Scrapes do not refresh peers; wait until both are gone.
    let watcher = Client::new(t.addr());
    let mut last = None;
    let gone = poll_until(Duration::from_secs(20), || {
        // Reconnect each time: connection ids may have a lifetime as well.
        watcher.connect();
        let s = watcher.scrape(&[hash]);
        let done = s.0 == vec![(0, 0, 0)];
        last = Some(s);
        done
    });
    assert!(gone, "peers never expired; last scrape: {last:?}");

    let c = Peer::new(t.addr(), 19003);
    let r = c.client.announce(&c.ann(hash));
    assert!(
        r.peers.is_empty(),
        "expired peers still returned: {:?}",
        r.peers
    );
    assert_eq!((r.seeders, r.leechers), (0, 1));
}

#[test]
fn reannouncing_peer_does_not_expire() {
    let t = Tracker::with_config("[swarm]\nmax_peer_age = 2\ncleaning_interval = 1\n");
    let hash = random_hash();
    let a = Peer::new(t.addr(), 19101);
    let b = Peer::new(t.addr(), 19102);
    a.client.announce(&a.ann(hash));
    b.client.announce(&b.ann(hash));
    // b keeps announcing every 300 ms; a does not. Eventually b is alone,
    // and b is never lost meanwhile.
    let mut last = None;
    let a_gone = poll_until(Duration::from_secs(20), || {
        let r = b.client.announce(&b.ann(hash));
        assert!(r.leechers >= 1, "b's own announce must count b: {r:?}");
        let done = r.peers.is_empty();
        last = Some(r);
        done
    });
    assert!(a_gone, "a never expired; last response to b: {last:?}");
    let r = last.unwrap();
    assert_eq!((r.seeders, r.leechers), (0, 1));
}

// ---------------------------------------------------------------------------
// more identity, limits and concurrency
// ---------------------------------------------------------------------------

#[test]
fn same_port_field_from_another_ip_is_another_peer() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let local2: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let a = Client::new(t.addr()); // 127.0.0.1
    let b = Client::bind(local2, t.addr()); // 127.0.0.2
    a.announce(&Announce::new(hash, 23001));
    let r = b.announce(&Announce::new(hash, 23001));
    assert_eq!(
        r.leechers, 2,
        "(127.0.0.2, 23001) is not (127.0.0.1, 23001)"
    );
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:23001".parse::<SocketAddr>().unwrap()]
    );
    let r = a.announce(&Announce::new(hash, 23001));
    assert_eq!(
        r.peers,
        vec!["127.0.0.2:23001".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn connection_id_is_bound_to_source_ip() {
    let t = Tracker::start_v4();
    let a = Client::new(t.addr());
    let id = a.connect();
    // Same source port, other loopback IP.
    let port = a.local_addr().port();
    let local2: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let b = Client::bind(local2, t.addr());
    b.set_conn_id(id);
    let hash = random_hash();
    let e = b.announce_err(&Announce::new(hash, 23101));
    assert_error_mentions(&e, "connection id");
    match b.try_scrape(&[hash]) {
        Response::Error(e) => assert_error_mentions(&e, "connection id"),
        other => panic!("scrape with another IP's id: expected error, got {other:?}"),
    }
    // Nor from another port of that other IP.
    let c = Client::bind("127.0.0.2:0".parse().unwrap(), t.addr());
    c.set_conn_id(id);
    let e = c.announce_err(&Announce::new(hash, 23102));
    assert_error_mentions(&e, "connection id");
    // The refused announces registered nobody.
    assert_eq!(a.scrape(&[hash]).0, vec![(0, 0, 0)]);
}

#[test]
fn announce_with_port_zero_is_refused_and_never_handed_out() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let zero = Client::new(t.addr());
    for a in [
        Announce::new(hash, 0).event(EVENT_STARTED),
        Announce::new(hash, 0).seeder(),
    ] {
        let e = zero.announce_err(&a);
        assert_eq!(
            e.message, "invalid port",
            "HTTP's wording for the same mistake"
        );
    }
    let later = Client::new(t.addr());
    let r = later.announce(&Announce::new(hash, 24001));
    assert!(r.peers.is_empty(), "given {:?}", r.peers);
    assert_eq!((r.seeders, r.leechers), (0, 1));
}

#[test]
fn oversized_scrape_is_refused_as_too_large() {
    let t = Tracker::start_v4();
    let c = Client::new(t.addr());
    let id = c.connect();
    let mut rng = Rng::new();
    let hashes: Vec<[u8; 20]> = (0..150).map(|_| rng.hash()).collect();
    // 16 + 150 * 20 = 3016 bytes, more than the 2048-byte receive slot.
    let txid = 0x5ca1_e150;
    match c.request_decoded(&encode_scrape(id, txid, &hashes)) {
        Response::Error(e) => {
            assert_eq!(e.txid, txid);
            assert_error_mentions(&e, "too large");
            assert!(!e.message.contains("multiple of 20"), "{:?}", e.message);
        }
        other => panic!("150-hash scrape: expected an error, got {other:?}"),
    }
    // 101 hashes still fit a receive slot: answered, up to
    // udp.max_scrape_torrents (default 70).
    let r = c.scrape(&hashes[..101]);
    assert_eq!(r.0, vec![(0, 0, 0); 70]);
}

#[test]
fn default_numwant_and_max_are_50() {
    let t = Tracker::with_config(MANY_PEERS_PER_IP);
    let hash = random_hash();
    let peers: Vec<Peer> = (0..60).map(|i| Peer::new(t.addr(), 24001 + i)).collect();
    for p in &peers {
        p.client.announce(&p.ann(hash).numwant(0));
    }
    let me = &peers[7];
    let mut others = addrs(&peers);
    others.remove(&me.addr());
    for numwant in [-1, 50, 51, 1000] {
        let r = me.client.announce(&me.ann(hash).numwant(numwant));
        assert_eq!(r.leechers, 60);
        assert_eq!(r.peers.len(), 50, "numwant {numwant}");
        assert!(r.peer_set().is_subset(&others), "numwant {numwant}");
    }
}

#[test]
fn concurrent_announces_are_all_counted() {
    // Every peer here is 127.0.0.1 with its own port.
    let t = Tracker::with_config(MANY_PEERS_PER_IP);
    let addr = t.addr();
    let hash = random_hash();
    let other_hash = random_hash();
    let threads: Vec<_> = (0..8u16)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..25u16 {
                    let c = Client::new(addr);
                    let port = 25000 + k * 100 + i;
                    // Seeders on even i; the other torrent gets one leecher each.
                    let a = Announce::new(hash, port).left(u64::from(i % 2) * 500);
                    c.announce(&a.event(EVENT_STARTED));
                    c.announce(&Announce::new(other_hash, port));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("announcing thread panicked");
    }
    let c = Client::new(addr);
    // 8 threads × 13 even i = 104 seeders, 8 × 12 = 96 leechers.
    assert_eq!(
        c.scrape(&[hash, other_hash]).0,
        vec![(104, 0, 96), (0, 0, 200)]
    );
    let r = c.announce(&Announce::new(hash, 26000).numwant(-1));
    assert_eq!((r.seeders, r.leechers), (104, 97));
    assert_eq!(r.peers.len(), 50);
}

#[test]
fn stopped_from_unknown_peer_is_harmless() {
    let t = Tracker::start_v4();
    let hash = random_hash();
    let a = Peer::new(t.addr(), 27001);
    let b = Peer::new(t.addr(), 27002);
    a.client.announce(&a.ann(hash));
    match b.client.try_announce(&b.ann(hash).event(EVENT_STOPPED)) {
        Response::Announce(_) | Response::Error(_) => {}
        other => panic!("unexpected {other:?}"),
    }
    let r = a.client.announce(&a.ann(hash));
    assert_eq!((r.seeders, r.leechers), (0, 1));
    assert!(r.peers.is_empty(), "{:?}", r.peers);
    // Stopping a torrent nobody announced.
    let unknown = random_hash();
    b.client.try_announce(&b.ann(unknown).event(EVENT_STOPPED));
    assert_eq!(b.client.scrape(&[unknown]).0, vec![(0, 0, 0)]);
}

#[test]
fn wildcard_v4_and_v6_on_the_same_port_keep_families_apart() {
    // Like the default config (0.0.0.0:6969 and [::]:6969), on a port that
    // was just free for both families.
    let port = {
        let v4 = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        drop(v4);
        // std's [::] socket is dual-stack: this checks both families.
        std::net::UdpSocket::bind(("::", port)).expect("a port free for both families");
        port
    };
    let t = Tracker::builder()
        .udp(&format!("0.0.0.0:{port}"))
        .udp(&format!("[::]:{port}"))
        .start();
    assert_eq!(t.addrs[0].port(), port);
    assert_eq!(t.addrs[1].port(), port);
    let to_v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let to_v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let hash = random_hash();
    let v4: Vec<Peer> = (0..2).map(|i| Peer::new(to_v4, 28001 + i)).collect();
    let v6: Vec<Peer> = (0..2).map(|i| Peer::new(to_v6, 28101 + i)).collect();
    for p in v4.iter().chain(&v6) {
        p.client.announce(&p.ann(hash));
    }
    let me = &v4[0];
    let raw = me
        .client
        .request(&me.ann(hash).encode(me.client.conn_id(), 0x4040));
    assert_eq!(raw.len(), 20 + 6, "v4 client: one 6-byte peer: {raw:02x?}");
    let Response::Announce(r) = decode_response(&raw, false) else {
        panic!("expected announce response: {raw:02x?}")
    };
    assert_eq!(r.peers, vec![v4[1].addr()]);
    assert_eq!(r.leechers, 4);

    let me = &v6[0];
    let raw = me
        .client
        .request(&me.ann(hash).encode(me.client.conn_id(), 0x6060));
    assert_eq!(
        raw.len(),
        20 + 18,
        "v6 client: one 18-byte peer: {raw:02x?}"
    );
    let Response::Announce(r) = decode_response(&raw, true) else {
        panic!("expected announce response: {raw:02x?}")
    };
    assert_eq!(r.peers, vec![v6[1].addr()]);
    assert_eq!(r.leechers, 4);
}

// ---------------------------------------------------------------------------
// overload
// ---------------------------------------------------------------------------

/// A request worker with a full inbox refuses a batch the moment it fills,
/// which is partway through sending some scrape's parts. That scrape is
/// shed; the tracker must stay up and answer once the burst is over. One
/// request worker with an inbox of one batch is behind for most of a burst
/// of ordinary 70-hash scrapes from several sockets.
#[test]
fn scrape_burst_against_a_full_request_worker_inbox_is_shed_not_fatal() {
    let mut t = Tracker::with_config(
        "log_level = \"debug\"\n[swarm]\nworkers = 1\nchannel_capacity = 1\n\
         [udp]\nworkers = 1\nmax_scrape_torrents = 70\n",
    );
    let hashes: Vec<[u8; 20]> = (0..70).map(|_| random_hash()).collect();
    let senders: Vec<Client> = (0..8).map(|_| Client::new(t.addr())).collect();
    let ids: Vec<u64> = senders.iter().map(Client::connect).collect();
    for round in 0..300u32 {
        for (c, id) in senders.iter().zip(&ids) {
            // The kernel may drop some when buffers are full; that is fine.
            let _ = c
                .sock
                .send_to(&encode_scrape(*id, round, &hashes), t.addr());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    t.assert_alive();

    // The burst is over: a scrape is answered whole again.
    populate(&t, hashes[0], 1, 0, 2, 7100);
    let s = Client::new(t.addr()).scrape(&hashes);
    assert_eq!(s.0.len(), 70);
    assert_eq!(s.0[0], (1, 0, 2));
    t.assert_alive();

    // The burst did overrun the inbox: /metrics shows requests shed.
    let m = common::scrape::metrics(t.admin[0]);
    let shed = m.get("tracker_requests_dropped_total", &[("protocol", "udp")]);
    assert!(
        shed > 0,
        "nothing was shed, so nothing was tested:\n{}",
        m.text
    );
}
