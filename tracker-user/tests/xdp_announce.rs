//! Announces for hot torrents answered by the XDP program itself, end to
//! end in network namespaces like tests/xdp.rs: the test fills a torrent's
//! cached answer in `HOT_V4`/`HOT_V6` through its pin with bpftool, the
//! way an operator could inspect it, then announces from the client
//! namespace and checks the bytes that come back and the program's
//! counters.
//!
//! Needs root, iproute2, bpftool and a tracker-user built after `cargo
//! xtask build-ebpf`; fails rather than skips without them.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use common::netns::{in_ns, require_root, run, NetSpec, TestNet};
use common::*;
use tracker_proto::xdp::{counter, HOT_POOL_MAX};

const SERVER_V4: &str = "10.124.0.1";
const CLIENT_V4: &str = "10.124.0.2";
const SERVER_V6: &str = "fd12:4::1";
const CLIENT_V6: &str = "fd12:4::2";
const PORT: u16 = 6969;

fn test_net() -> TestNet {
    require_root("the XDP tests need root (CAP_BPF and CAP_NET_ADMIN); CI runs them as root");
    TestNet::new(&NetSpec {
        prefix: "tka",
        v4: (SERVER_V4, CLIENT_V4),
        v6: Some((SERVER_V6, CLIENT_V6)),
        queues: 1,
    })
}

fn tracker_addr(v6: bool) -> SocketAddr {
    let ip: IpAddr = if v6 { SERVER_V6 } else { SERVER_V4 }.parse().unwrap();
    SocketAddr::new(ip, PORT)
}

fn start(net: &TestNet, xdp_extra: &str) -> Tracker {
    start_cfg(net, "", xdp_extra)
}

fn start_cfg(net: &TestNet, top: &str, xdp_extra: &str) -> Tracker {
    let udp = [
        format!("{SERVER_V4}:{PORT}"),
        format!("[{SERVER_V6}]:{PORT}"),
    ];
    // Off by default: said outright unless the test chose.
    let switch = if xdp_extra.contains("announce_in_kernel") {
        ""
    } else {
        "announce_in_kernel = true"
    };
    net.xdp_tracker(
        Tracker::builder(),
        &udp,
        top,
        &format!("{switch}\n{xdp_extra}"),
    )
    .start()
}

fn client(net: &TestNet, v6: bool) -> Client {
    let bind = if v6 {
        format!("[{CLIENT_V6}]:0")
    } else {
        format!("{CLIENT_V4}:0")
    };
    let sock = in_ns(&net.client_ns, move || UdpSocket::bind(&bind).unwrap());
    Client::from_socket(sock, tracker_addr(v6))
}

/// Every counter of the program by index, summed over CPUs (bpftool).
fn counters(net: &TestNet) -> Vec<u64> {
    let path = format!("{}/COUNTERS", net.pin_dir);
    let json = run("bpftool", &["-j", "map", "dump", "pinned", &path]);
    let entries: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut sums = vec![0u64; counter::COUNT as usize];
    for entry in entries.as_array().unwrap() {
        let key = number(&entry["key"]) as usize;
        let sum = entry["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| number(&v["value"]))
            .sum();
        sums[key] = sum;
    }
    sums
}

fn number(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Number(n) => n.as_u64().unwrap(),
        serde_json::Value::Array(bytes) => bytes.iter().rev().fold(0u64, |acc, b| {
            let s = b.as_str().unwrap();
            (acc << 8) | u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
        }),
        other => panic!("unexpected bpftool value {other}"),
    }
}

fn delta(before: &[u64], after: &[u64], index: u32) -> u64 {
    after[index as usize] - before[index as usize]
}

/// Writes a cached answer for `hash` as userland would: counts, then the
/// pool of compact peers, each big-endian.
fn put_hot(net: &TestNet, hash: [u8; 20], leechers: u32, seeders: u32, pool: &[SocketAddr]) {
    let v6 = pool.first().is_some_and(SocketAddr::is_ipv6);
    let width = if v6 { 18 } else { 6 };
    let mut value = Vec::new();
    value.extend_from_slice(&leechers.to_be_bytes());
    value.extend_from_slice(&seeders.to_be_bytes());
    value.extend_from_slice(&(pool.len() as u32).to_ne_bytes());
    value.extend_from_slice(&1u32.to_ne_bytes());
    for peer in pool {
        match peer.ip() {
            IpAddr::V4(ip) => value.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => value.extend_from_slice(&ip.octets()),
        }
        value.extend_from_slice(&peer.port().to_be_bytes());
    }
    value.resize(16 + width * HOT_POOL_MAX, 0);
    let map = format!("{}/{}", net.pin_dir, if v6 { "HOT_V6" } else { "HOT_V4" });
    let hex =
        |bytes: &[u8]| -> Vec<String> { bytes.iter().map(|b| format!("0x{b:02x}")).collect() };
    let mut args: Vec<String> = ["map", "update", "pinned", &map, "key", "hex"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(hash.iter().map(|b| format!("{b:02x}")));
    args.push("value".into());
    args.extend(hex(&value));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("bpftool", &args);
}

fn assert_kernel_answers(v6: bool) {
    let net = test_net();
    let _t = start(&net, "");
    let hash = random_hash();
    let me = client(&net, v6);
    let my_port = 7001;
    let others: Vec<SocketAddr> = if v6 {
        vec![
            "[2001:db8::1]:1111".parse().unwrap(),
            "[2001:db8::2]:2222".parse().unwrap(),
        ]
    } else {
        vec![
            "192.0.2.1:1111".parse().unwrap(),
            "192.0.2.2:2222".parse().unwrap(),
        ]
    };
    let mut pool = others.clone();
    pool.insert(1, me.peer_addr(my_port));
    put_hot(&net, hash, 5, 7, &pool);

    // Connect first: its answer is the kernel's anyway.
    me.connect();
    let before = counters(&net);
    let resp = me.announce(&Announce::new(hash, my_port).numwant(50));
    let after = counters(&net);
    assert_eq!(
        (resp.leechers, resp.seeders),
        (5, 7),
        "counts from the cache"
    );
    assert_eq!(resp.interval, 900, "the default interval, from the config");
    assert_eq!(
        resp.peer_set(),
        others.iter().copied().collect::<HashSet<_>>(),
        "the pool, never the requester"
    );
    assert_eq!(delta(&before, &after, counter::ANNOUNCE_ANSWERED), 1);
    assert_eq!(delta(&before, &after, counter::HOT_HIT), 1);
    assert_eq!(
        delta(&before, &after, counter::REDIRECTED),
        0,
        "{before:?} → {after:?}"
    );

    // numwant caps the peers (here 1 of the 2 others).
    let resp = me.announce(&Announce::new(hash, my_port).numwant(1));
    assert_eq!(resp.peers.len(), 1);
    assert!(others.contains(&resp.peers[0]));

    // Started changes the counts: userland answers it from the swarm.
    let before = counters(&net);
    let resp = me.announce(&Announce::new(hash, my_port).event(EVENT_STARTED));
    let after = counters(&net);
    assert_eq!(delta(&before, &after, counter::ANNOUNCE_ANSWERED), 0);
    assert_eq!(delta(&before, &after, counter::REDIRECTED), 1);
    assert_eq!(resp.peers, Vec::<SocketAddr>::new(), "userland's swarm");

    // A torrent that is not hot goes to userland too.
    let before = counters(&net);
    me.announce(&Announce::new(random_hash(), my_port));
    let after = counters(&net);
    assert_eq!(delta(&before, &after, counter::HOT_MISS), 1);
    assert_eq!(delta(&before, &after, counter::REDIRECTED), 1);
}

#[test]
fn hot_announces_over_ipv4_are_answered_in_the_kernel() {
    assert_kernel_answers(false);
}

#[test]
fn hot_announces_over_ipv6_are_answered_in_the_kernel() {
    assert_kernel_answers(true);
}

/// With the switch off the program leaves every announce to userland, even
/// for a torrent in the cache.
#[test]
fn announce_in_kernel_off_leaves_announces_to_userland() {
    let net = test_net();
    let _t = start(&net, "announce_in_kernel = false");
    let hash = random_hash();
    let me = client(&net, false);
    put_hot(&net, hash, 5, 7, &["192.0.2.1:1111".parse().unwrap()]);
    me.connect();
    let before = counters(&net);
    let resp = me.announce(&Announce::new(hash, 7001));
    let after = counters(&net);
    assert_eq!(
        (resp.leechers, resp.seeders),
        (1, 0),
        "userland's own counts"
    );
    assert_eq!(delta(&before, &after, counter::ANNOUNCE_ANSWERED), 0);
    assert_eq!(delta(&before, &after, counter::HOT_HIT), 0);
    assert_eq!(delta(&before, &after, counter::REDIRECTED), 1);
}

fn start_with(net: &TestNet, xdp_extra: &str) -> Tracker {
    start(net, &format!("kernel_refresh_ms = 50\n{xdp_extra}"))
}

/// Announces `rounds` times from each of `peers` ports of `c`, so the
/// torrent is hot; returns the peers' addresses.
fn heat(c: &Client, hash: [u8; 20], peers: u16, rounds: usize) -> HashSet<SocketAddr> {
    for _ in 0..rounds {
        for i in 0..peers {
            c.announce(&Announce::new(hash, 7000 + i).numwant(0));
        }
    }
    // The next refresh publishes it; counts halve at every refresh, so
    // without more traffic it stays published for a few more only.
    std::thread::sleep(std::time::Duration::from_millis(80));
    (0..peers).map(|i| c.peer_addr(7000 + i)).collect()
}

fn assert_userland_caches_and_applies(v6: bool) {
    let net = test_net();
    let _t = start_with(&net, "");
    let hash = random_hash();
    let c = client(&net, v6);
    let peers = heat(&c, hash, 10, 4);

    // A new peer: answered by the kernel from the cache userland wrote.
    // Four peers: the answer then fits the request's frame, which a veth
    // cannot grow much (see docs/xdp.md); a real NIC's frame can.
    let before = counters(&net);
    let resp = c.announce(&Announce::new(hash, 8000).numwant(4));
    let after = counters(&net);
    assert_eq!(
        delta(&before, &after, counter::ANNOUNCE_ANSWERED),
        1,
        "{before:?} → {after:?}"
    );
    assert_eq!(delta(&before, &after, counter::REDIRECTED), 0);
    assert_eq!((resp.leechers, resp.seeders), (10, 0), "the cached counts");
    assert_eq!(resp.peers.len(), 4);
    assert!(resp.peer_set().is_subset(&peers), "from the pool: {resp:?}");

    // Once the ring is applied the swarm has it: a started announce
    // (always userland's) sees the kernel-answered peer.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = counters(&net);
    let resp = c.announce(&Announce::new(hash, 8001).event(EVENT_STARTED).numwant(50));
    let after = counters(&net);
    assert_eq!(
        delta(&before, &after, counter::REDIRECTED),
        1,
        "userland answered"
    );
    assert_eq!(resp.leechers, 12, "10 + the kernel-answered one + this one");
    assert!(resp.peer_set().contains(&c.peer_addr(8000)));

    // Stopped and completed are userland's, and exact at once.
    let resp = c.announce(&Announce::new(hash, 8000).event(EVENT_STOPPED));
    assert_eq!((resp.leechers, resp.seeders), (11, 0));
    let resp = c.announce(&Announce::new(hash, 8001).event(EVENT_COMPLETED).seeder());
    assert_eq!((resp.leechers, resp.seeders), (10, 1));
    let resp = c.announce(&Announce::new(hash, 8001).event(EVENT_STOPPED).seeder());
    assert_eq!((resp.leechers, resp.seeders), (10, 0));
}

#[test]
fn userland_caches_hot_torrents_and_applies_kernel_answers_over_ipv4() {
    assert_userland_caches_and_applies(false);
}

#[test]
fn userland_caches_hot_torrents_and_applies_kernel_answers_over_ipv6() {
    assert_userland_caches_and_applies(true);
}

/// With the ring full (one page, the consumer stopped with ptrace), the
/// program hands announces to AF_XDP instead: none is lost.
#[test]
fn a_full_ring_loses_no_announce() {
    use common::stop::StoppedThread;

    let net = test_net();
    // One client address announces all the peers.
    let swarm = "[swarm]\nmax_peers_per_ip = 1000";
    let t = start_cfg(&net, swarm, "kernel_refresh_ms = 50\nring_bytes = 4096");
    let hash = random_hash();
    let c = client(&net, false);
    heat(&c, hash, 10, 4);
    let id = c.connect();
    let before = counters(&net);
    // xdp-0 is both the ring's consumer and queue 0's AF_XDP worker.
    let stopped = StoppedThread::new(t.pid(), "xdp-0");
    const SENT: u16 = 200;
    for i in 0..SENT {
        let a = Announce::new(hash, 9000 + i).numwant(0);
        c.sock
            .send_to(&a.encode(id, u32::from(i)), c.tracker)
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let during = counters(&net);
    drop(stopped);
    let answered = delta(&before, &during, counter::ANNOUNCE_ANSWERED);
    let full = delta(&before, &during, counter::RING_FULL);
    assert!(answered > 0 && full > 0, "{before:?} → {during:?}");
    assert_eq!(
        answered + full,
        u64::from(SENT),
        "each answered or handed on"
    );
    assert_eq!(delta(&before, &during, counter::REDIRECTED), full);

    // Every one of them reaches the swarm: through the ring or AF_XDP.
    std::thread::sleep(std::time::Duration::from_millis(300));
    while c
        .recv_timeout(std::time::Duration::from_millis(50))
        .is_some()
    {}
    let resp = c.announce(&Announce::new(hash, 8001).event(EVENT_STARTED).numwant(0));
    assert_eq!(resp.leechers, 10 + u32::from(SENT) + 1);
}

/// An answer longer than the request grows the frame, with a checksum
/// that covers the new bytes: five IPv6 peers, 110 bytes against the
/// request's 98, within the little tailroom a veth frame has (see
/// docs/xdp.md).
#[test]
fn a_long_answer_grows_the_frame() {
    let net = test_net();
    let _t = start(&net, "kernel_refresh_ms = 50");
    let hash = random_hash();
    let c = client(&net, true);
    let peers = heat(&c, hash, 5, 4);
    let before = counters(&net);
    let resp = c.announce(&Announce::new(hash, 8000).numwant(50));
    let after = counters(&net);
    assert_eq!(
        delta(&before, &after, counter::ANNOUNCE_ANSWERED),
        1,
        "{before:?} → {after:?}"
    );
    assert_eq!(resp.leechers, 5);
    assert_eq!(
        resp.peer_set(),
        peers,
        "all five, each once, checksum accepted"
    );
}

/// An answer that needs more room than the tailroom veth leaves after its
/// frames (30 IPv4 peers: 200 bytes against the request's 98; 10 IPv6
/// peers: 200 bytes) grows at the front instead, the headers moved there:
/// still answered in the kernel, every peer once, checksum accepted.
#[test]
fn an_answer_past_the_tailroom_grows_at_the_front() {
    let net = test_net();
    let _t = start(&net, "kernel_refresh_ms = 50");
    for (v6, count) in [(false, 30u16), (true, 10)] {
        let hash = random_hash();
        let c = client(&net, v6);
        let peers = heat(&c, hash, count, 4);
        let before = counters(&net);
        let resp = c.announce(&Announce::new(hash, 8000).numwant(50));
        let after = counters(&net);
        assert_eq!(
            delta(&before, &after, counter::ANNOUNCE_ANSWERED),
            1,
            "v6 {v6}: {before:?} → {after:?}"
        );
        assert_eq!(resp.leechers, u32::from(count), "v6 {v6}");
        assert_eq!(resp.peer_set(), peers, "v6 {v6}: all, each once");
    }
}

/// With `announce_events_in_kernel`, started and completed announces for
/// a hot torrent are answered in the kernel too, from the cached counts,
/// and their effect reaches the swarm once: the peer joins, the
/// completion is counted once, the seeder is a seeder. Stopped stays
/// userland's, exact at once.
#[test]
fn started_and_completed_answered_in_the_kernel_reach_the_swarm_once() {
    let net = test_net();
    let _t = start_with(&net, "announce_events_in_kernel = true");
    let hash = random_hash();
    let c = client(&net, false);
    heat(&c, hash, 10, 4);
    for (event, seeder) in [(EVENT_STARTED, false), (EVENT_COMPLETED, true)] {
        let mut a = Announce::new(hash, 8000).event(event).numwant(4);
        if seeder {
            a = a.seeder();
        }
        let before = counters(&net);
        let resp = c.announce(&a);
        let after = counters(&net);
        assert_eq!(
            delta(&before, &after, counter::ANNOUNCE_ANSWERED),
            1,
            "event {event}: {before:?} → {after:?}"
        );
        assert_eq!(delta(&before, &after, counter::REDIRECTED), 0);
        assert_eq!(resp.peers.len(), 4, "event {event}: from the pool");
        assert!(!resp.peer_set().contains(&c.peer_addr(8000)));
    }

    // The ring applied: one new peer, a seeder, completed once. Scrapes are
    // userland's here (scrape_in_kernel is off), so this is the swarm.
    let applied = poll_until(std::time::Duration::from_secs(2), || {
        c.scrape(&[hash]).0 == vec![(1, 1, 10)]
    });
    assert!(applied, "scrape: {:?}", c.scrape(&[hash]));

    let before = counters(&net);
    let resp = c.announce(&Announce::new(hash, 8000).event(EVENT_STOPPED).seeder());
    let after = counters(&net);
    assert_eq!(delta(&before, &after, counter::REDIRECTED), 1, "userland's");
    assert_eq!((resp.leechers, resp.seeders), (10, 0), "exact at once");
    assert_eq!(c.scrape(&[hash]).0, vec![(0, 1, 10)]);
}

/// The npm `bittorrent-tracker` client joins a torrent that is hot: its
/// `started` is userland's (events stay there by default), its `update`
/// (event none) is answered by the kernel from the cached pool, and both
/// answers name the torrent's peers, never the client itself.
#[test]
fn npm_client_gets_a_kernel_answer_in_a_hot_torrent() {
    let net = test_net();
    // A refresh a second and plenty of heat: the torrent stays cached for
    // a few seconds without more traffic, while node starts and announces.
    let t = start(&net, "kernel_refresh_ms = 1000");
    let hash = random_hash();
    let c = client(&net, false);
    let peers = heat(&c, hash, 10, 40);
    let cached = poll_until(std::time::Duration::from_secs(3), || {
        let before = counters(&net);
        c.announce(&Announce::new(hash, 7000).numwant(0));
        delta(&before, &counters(&net), counter::ANNOUNCE_ANSWERED) == 1
    });
    assert!(cached, "the torrent never reached the cache");

    let before = counters(&net);
    let url = format!("udp://{SERVER_V4}:{PORT}");
    let run = npm::hot_torrent(&url, &hash, &net.client_ns, &t);
    let after = counters(&net);
    assert_eq!(
        delta(&before, &after, counter::ANNOUNCE_ANSWERED),
        1,
        "the update: {before:?} → {after:?}"
    );
    assert_eq!(
        delta(&before, &after, counter::REDIRECTED),
        1,
        "the started announce"
    );
    let me = format!("{CLIENT_V4}:{}", run.port);
    let heated: HashSet<String> = peers.iter().map(ToString::to_string).collect();
    assert!(
        !run.peers.is_empty() && !run.peers.contains(&me),
        "{:?}",
        run.peers
    );
    assert!(
        run.peers.iter().all(|p| heated.contains(p)),
        "{:?} not all of {heated:?}",
        run.peers
    );
    assert_eq!(run.updates.len(), 2);
    assert_eq!(run.updates[0], (0, 11), "userland's: the 10 and the client");
    let (complete, incomplete) = run.updates[1];
    assert!(
        complete == 0 && (incomplete == 10 || incomplete == 11),
        "the cache's counts, up to a refresh old: {:?}",
        run.updates
    );
}
