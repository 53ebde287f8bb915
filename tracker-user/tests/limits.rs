//! The [swarm] limits of the `tracker-user` binary, seen on the wire: a new
//! torrent or peer past a limit gets a clear error (BEP 15 error over UDP,
//! bencoded `failure reason` over HTTP, a JSON failure over WebSocket),
//! known peers and existing swarms keep working, and a stopped peer frees
//! its place.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use common::http::{self as h, HttpAnnounce};
use common::ws::*;
use common::*;

const TORRENT_LIMIT: &str = "tracker is full: torrent limit reached";
const PEER_LIMIT: &str = "tracker is full: peer limit reached";
const PER_TORRENT_LIMIT: &str = "torrent is full: peer limit per torrent reached";
const PER_IP_LIMIT: &str = "too many peers from this IP address in this torrent";

/// One request worker, so a total is exactly the configured figure.
fn tracker(limits: &str) -> Tracker {
    Tracker::with_config(&format!(
        "[swarm]\nworkers = 1\ncleaning_interval = 1\n{limits}\n\
         [http]\nreal_ip_header = \"X-Forwarded-For\"\n"
    ))
}

fn udp_err(c: &Client, a: &Announce) -> String {
    c.announce_err(a).message
}

fn local(ip: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)), 0)
}

#[test]
fn udp_torrent_and_peer_limits_refuse_new_entries_with_bep15_errors() {
    let t = tracker("max_torrents = 2\nmax_peers = 4");
    let c = Client::new(t.addr());
    let (h1, h2, h3) = (random_hash(), random_hash(), random_hash());
    c.announce(&Announce::new(h1, 1));
    c.announce(&Announce::new(h2, 1));
    assert_eq!(udp_err(&c, &Announce::new(h3, 1)), TORRENT_LIMIT);
    assert_eq!(c.scrape(&[h3]).0, vec![(0, 0, 0)], "nothing was stored");

    // Existing torrents still take new peers, up to the peer limit.
    c.announce(&Announce::new(h1, 2));
    c.announce(&Announce::new(h1, 3));
    assert_eq!(udp_err(&c, &Announce::new(h1, 4)), PEER_LIMIT);
    assert_eq!(udp_err(&c, &Announce::new(h2, 4)), PEER_LIMIT);

    // A known peer re-announcing is never refused, and gets its peers.
    let r = c.announce(&Announce::new(h1, 2).seeder());
    assert_eq!((r.seeders, r.leechers), (1, 2));
    assert_eq!(r.peer_set().len(), 2);

    // A stop frees a place for a new peer, here another client's, which
    // is served as before.
    let r = c.announce(&Announce::new(h1, 3).event(EVENT_STOPPED));
    assert_eq!((r.seeders, r.leechers), (1, 1));
    let other = Client::bind(local(2), t.addr());
    let r = other.announce(&Announce::new(h1, 1).seeder());
    assert_eq!((r.seeders, r.leechers), (2, 1));
    assert_eq!(r.peer_set(), [c.peer_addr(1), c.peer_addr(2)].into());
    assert_eq!(udp_err(&c, &Announce::new(h2, 4)), PEER_LIMIT);

    // The refusals are counted per kind in the cleaning log line.
    let seen = poll_until(Duration::from_secs(5), || {
        t.stderr_text()
            .contains("(UDP+HTTP/WS): torrents 1/0, peers 3/0, per torrent 0/0, per ip 0")
    });
    assert!(seen, "no refusal counts logged:\n{}", t.stderr_text());
    t.assert_no_panic();
}

#[test]
fn udp_per_torrent_and_per_ip_limits() {
    let t = tracker("max_peers_per_torrent = 3\nmax_peers_per_ip = 2");
    let hash = random_hash();
    let a = Client::new(t.addr());
    a.announce(&Announce::new(hash, 1));
    a.announce(&Announce::new(hash, 2));
    // One host varying its port gets no further than the per-IP limit...
    assert_eq!(udp_err(&a, &Announce::new(hash, 3)), PER_IP_LIMIT);
    // ...while another host behind another address joins.
    let b = Client::bind(local(2), t.addr());
    let r = b.announce(&Announce::new(hash, 1));
    assert_eq!(r.leechers, 3);
    let c = Client::bind(local(3), t.addr());
    assert_eq!(udp_err(&c, &Announce::new(hash, 1)), PER_TORRENT_LIMIT);
    // Both limits are per torrent.
    a.announce(&Announce::new(random_hash(), 3));
    c.announce(&Announce::new(random_hash(), 1));
    // Known peers re-announce and see the others.
    let r = a.announce(&Announce::new(hash, 2).seeder());
    assert_eq!(r.peer_set().len(), 2);
    assert_eq!((r.seeders, r.leechers), (1, 2));
    // A stop makes room again.
    b.announce(&Announce::new(hash, 1).event(EVENT_STOPPED));
    let r = c.announce(&Announce::new(hash, 1));
    assert_eq!((r.seeders, r.leechers), (1, 2));
    t.assert_no_panic();
}

/// An HTTP announce from `ip` (through the proxy header the tracker trusts).
fn http_from(t: &Tracker, a: &HttpAnnounce, ip: &str) -> h::HttpResponse {
    let header = format!("X-Forwarded-For: {ip}");
    h::get_with(t.http_addr(), &a.target(), &[&header])
}

#[test]
fn http_limits_answer_with_a_failure_reason() {
    let t =
        tracker("max_torrents = 2\nmax_peers = 5\nmax_peers_per_torrent = 3\nmax_peers_per_ip = 2");
    let (h1, h2, h3) = (random_hash(), random_hash(), random_hash());
    let ok = |a: &HttpAnnounce, ip: &str| h::parse_announce(&http_from(&t, a, ip));
    let refused = |a: &HttpAnnounce, ip: &str| http_from(&t, a, ip).expect_failure(200);

    ok(&HttpAnnounce::new(h1, 1), "10.0.0.1");
    ok(&HttpAnnounce::new(h1, 2), "10.0.0.1");
    assert_eq!(refused(&HttpAnnounce::new(h1, 3), "10.0.0.1"), PER_IP_LIMIT);
    ok(&HttpAnnounce::new(h1, 1), "10.0.0.2");
    assert_eq!(
        refused(&HttpAnnounce::new(h1, 1), "10.0.0.3"),
        PER_TORRENT_LIMIT
    );
    ok(&HttpAnnounce::new(h2, 1), "10.0.0.3");
    assert_eq!(
        refused(&HttpAnnounce::new(h3, 1), "10.0.0.3"),
        TORRENT_LIMIT
    );
    ok(&HttpAnnounce::new(h2, 2), "10.0.0.3");
    assert_eq!(refused(&HttpAnnounce::new(h2, 1), "10.0.0.4"), PEER_LIMIT);

    // Known peers keep working and get their swarm.
    let r = ok(&HttpAnnounce::new(h1, 1).seeder(), "10.0.0.2");
    assert_eq!((r.complete, r.incomplete), (1, 2));
    assert_eq!(r.all_peers().len(), 2);
    // A stop frees a place; a client on the same keep-alive connection
    // after a refusal is served.
    let mut conn = h::HttpConn::connect(t.http_addr());
    let refusal = conn.get_with(
        &HttpAnnounce::new(h2, 1).target(),
        &["X-Forwarded-For: 10.0.0.4"],
    );
    assert_eq!(refusal.expect_failure(200), PEER_LIMIT);
    ok(&HttpAnnounce::new(h2, 2).event("stopped"), "10.0.0.3");
    let r = h::parse_announce(&conn.get_with(
        &HttpAnnounce::new(h2, 1).target(),
        &["X-Forwarded-For: 10.0.0.4"],
    ));
    assert_eq!(r.incomplete, 2);
    t.assert_no_panic();
}

fn ws_refusal(p: &mut Peer, hash: &[u8; 20]) -> String {
    let m = announce_msg(hash, &p.peer_id, 10, Some("started"), Some(0), &[]);
    p.c.send_json(&m);
    let v = p.c.failure();
    assert_eq!(v["action"], "announce", "{v}");
    assert_eq!(bin_at(&v, "info_hash"), hash, "{v}");
    v["failure reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn websocket_limits_answer_with_a_json_failure_and_are_apart_from_udp() {
    let t = tracker("max_ws_torrents = 2\nmax_ws_peers = 3\nmax_peers_per_torrent = 2");
    let (ha, hb, hc) = (random_hash(), random_hash(), random_hash());
    let mut p: Vec<Peer> = (0..4).map(|_| Peer::connect(t.http_addr())).collect();
    p[0].join(&ha, 10);
    p[1].join(&ha, 10);
    assert_eq!(ws_refusal(&mut p[2], &ha), PER_TORRENT_LIMIT);
    p[2].join(&hb, 10);
    assert_eq!(ws_refusal(&mut p[3], &hb), PEER_LIMIT);
    assert_eq!(ws_refusal(&mut p[3], &hc), TORRENT_LIMIT);

    // A known peer's offers still reach the swarm.
    let offers = vec![(random_id().to_vec(), fake_sdp(200))];
    let r = p[0].offer(&ha, 5, &offers);
    assert_eq!(int_at(&r, "incomplete"), 2, "{r}");
    let relayed: Value = p[1]
        .c
        .relayed(WS_TIMEOUT)
        .expect("the offer reaches the other peer");
    assert_eq!(bin_at(&relayed, "peer_id"), p[0].peer_id);

    // UDP/HTTP swarms have their own budget.
    let udp = Client::new(t.addr());
    udp.announce(&Announce::new(hc, 1));
    udp.announce(&Announce::new(random_hash(), 1));

    // A peer that stops frees its place; the refused connection, still
    // open, now joins.
    let m = announce_msg(&hb, &p[2].peer_id, 10, Some("stopped"), Some(0), &[]);
    p[2].c.send_json(&m);
    p[2].c.announce_reply(&hb);
    let r = p[3].join(&hb, 0);
    assert_eq!(int_at(&r, "complete"), 1, "{r}");
    t.assert_no_panic();
}

#[test]
fn totals_are_split_between_request_workers() {
    // Two workers: each holds at most one torrent of the total of two.
    let t = Tracker::with_config("[swarm]\nworkers = 2\nmax_torrents = 2\n");
    let c = Client::new(t.addr());
    // `worker_for`: the info hash's first 4 bytes, little endian, modulo 2.
    let on = |worker: u8| {
        let mut hash = random_hash();
        hash[0] = (hash[0] & !1) | worker;
        hash
    };
    c.announce(&Announce::new(on(0), 1));
    assert_eq!(udp_err(&c, &Announce::new(on(0), 1)), TORRENT_LIMIT);
    c.announce(&Announce::new(on(1), 1));
    assert_eq!(udp_err(&c, &Announce::new(on(1), 2)), TORRENT_LIMIT);
    t.assert_no_panic();
}
