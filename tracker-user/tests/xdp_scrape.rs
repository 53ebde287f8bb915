//! Scrapes answered by the XDP program from the counts the request
//! workers publish in its `SCRAPE` map, end to end in a server and a
//! client network namespace as in tests/xdp.rs. That a scrape was answered
//! in the kernel shows in the program's counters (read with bpftool) and in
//! userland's not seeing it (its AF_XDP scrape counter in /metrics).
//!
//! Needs root, iproute2, bpftool and a tracker-user built after `cargo
//! xtask build-ebpf`; fails rather than skips without them.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::netns::{in_ns, require_root, run, NetSpec, TestNet};
use common::scrape::metrics;
use common::*;

const SERVER_V4: &str = "10.124.0.1";
const CLIENT_V4: &str = "10.124.0.2";
const SERVER_V6: &str = "fd12:4::1";
const CLIENT_V6: &str = "fd12:4::2";
const PORT: u16 = 6969;
/// The default `[xdp] kernel_refresh_ms`.
const REFRESH: Duration = Duration::from_millis(250);
/// What a loaded CI machine may add to the refresh bound before a test
/// calls it late: a round's batch, the scheduler, the client's polling.
const SLACK: Duration = Duration::from_millis(1500);

fn test_net() -> TestNet {
    require_root("the XDP tests need root (CAP_BPF and CAP_NET_ADMIN); CI runs them as root");
    TestNet::new(&NetSpec {
        prefix: "trks",
        v4: (SERVER_V4, CLIENT_V4),
        v6: Some((SERVER_V6, CLIENT_V6)),
        queues: 1,
    })
}

/// The tracker on the server end; `xdp_config` adds to its `[xdp]` section.
fn tracker(net: &TestNet, extra_config: &str, xdp_config: &str) -> Tracker {
    // Off by default: said outright unless the test chose.
    let switch = if xdp_config.contains("scrape_in_kernel") {
        ""
    } else {
        "scrape_in_kernel = true"
    };
    let udp = [
        format!("{SERVER_V4}:{PORT}"),
        format!("[{SERVER_V6}]:{PORT}"),
    ];
    let t = net
        .xdp_tracker(
            Tracker::builder(),
            &udp,
            extra_config,
            &format!("{switch}\n{xdp_config}"),
        )
        .start();
    let log = t.stderr_text();
    assert!(
        log.contains("XDP program attached") && log.contains("AF_XDP socket on"),
        "the tracker did not set up XDP:\n{log}"
    );
    t
}

fn client(net: &TestNet, v6: bool) -> Client {
    let bind = if v6 {
        format!("[{CLIENT_V6}]:0")
    } else {
        format!("{CLIENT_V4}:0")
    };
    let socket = in_ns(&net.client_ns, move || {
        std::net::UdpSocket::bind(&bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"))
    });
    let ip: IpAddr = if v6 { SERVER_V6 } else { SERVER_V4 }.parse().unwrap();
    Client::from_socket(socket, SocketAddr::new(ip, PORT))
}

/// Userland's count of scrapes that reached it through AF_XDP.
fn userland_scrapes(net: &TestNet, t: &Tracker) -> u64 {
    let admin = t.admin[0];
    in_ns(&net.server_ns, move || metrics(admin)).get(
        "tracker_requests_total",
        &[("protocol", "udp_xdp"), ("action", "scrape")],
    )
}

/// Scrapes `hashes` until the program answers them with `want`, and
/// returns how long that took; panics past `within`.
fn kernel_answers(
    net: &TestNet,
    c: &Client,
    hashes: &[[u8; 20]],
    want: &[(u32, u32, u32)],
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let before = net.counters();
        let got = c.scrape(hashes).0;
        let after = net.counters();
        if after.scrape_answered > before.scrape_answered && got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the kernel did not answer {want:?} within {within:?}: last answer {got:?}, \
             counters {before:?} → {after:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Announces one peer of `hash` from a client of its own; `event` is
/// BEP 15's (2 started, 1 completed).
fn announce(net: &TestNet, v6: bool, hash: [u8; 20], port: u16, seeder: bool, event: u32) {
    let c = client(net, v6);
    let a = Announce::new(hash, port).event(event);
    c.announce(&if seeder { a.seeder() } else { a.leecher() });
}

#[test]
fn scrapes_of_announced_torrents_are_answered_in_the_kernel_and_follow_the_swarm() {
    let net = test_net();
    let t = tracker(&net, "", "");
    for v6 in [false, true] {
        let (a, b) = (random_hash(), random_hash());
        // a: two seeders, one of which completed, and a leecher; b: one
        // leecher.
        announce(&net, v6, a, 7001, true, 2);
        announce(&net, v6, a, 7002, true, 1);
        announce(&net, v6, a, 7003, false, 2);
        announce(&net, v6, b, 7004, false, 2);
        let c = client(&net, v6);
        let want = [(2, 1, 1), (0, 0, 1)];
        kernel_answers(&net, &c, &[a, b], &want, REFRESH + SLACK);

        // Now exactly: one scrape, answered by the program, never seen by
        // userland.
        let (before, userland) = (net.counters(), userland_scrapes(&net, &t));
        assert_eq!(c.scrape(&[a, b]).0, want, "v6={v6}");
        let after = net.counters();
        assert_eq!(after.scrape_answered, before.scrape_answered + 1, "v6={v6}");
        assert_eq!(after.redirected, before.redirected, "v6={v6}: {after:?}");
        assert_eq!(after.scrape_miss, before.scrape_miss, "v6={v6}");
        assert_eq!(userland_scrapes(&net, &t), userland, "v6={v6}");

        // The same hash twice, and the other order: answered as asked.
        assert_eq!(
            c.scrape(&[b, a, b]).0,
            [(0, 0, 1), (2, 1, 1), (0, 0, 1)],
            "v6={v6}"
        );

        // The swarm changes: the kernel's answer follows within the
        // refresh bound.
        announce(&net, v6, b, 7005, true, 2);
        let announced = Instant::now();
        kernel_answers(&net, &c, &[b], &[(1, 0, 1)], REFRESH + SLACK);
        assert!(announced.elapsed() < REFRESH + SLACK);
        // The leecher completes, the first seeder stops: exact again.
        announce(&net, v6, b, 7004, true, 1);
        announce(&net, v6, b, 7005, true, 3);
        kernel_answers(&net, &c, &[b, a], &[(1, 1, 0), (2, 1, 1)], REFRESH + SLACK);
    }
    t.assert_no_panic();
}

#[test]
fn a_scrape_with_an_unknown_hash_is_answered_by_userland() {
    let net = test_net();
    let t = tracker(&net, "", "");
    for v6 in [false, true] {
        let known = random_hash();
        announce(&net, v6, known, 7101, true, 2);
        let c = client(&net, v6);
        kernel_answers(&net, &c, &[known], &[(1, 0, 0)], REFRESH + SLACK);

        let unknown = random_hash();
        let (before, userland) = (net.counters(), userland_scrapes(&net, &t));
        assert_eq!(
            c.scrape(&[known, unknown]).0,
            [(1, 0, 0), (0, 0, 0)],
            "v6={v6}"
        );
        let after = net.counters();
        assert_eq!(after.scrape_miss, before.scrape_miss + 1, "v6={v6}");
        assert_eq!(after.scrape_answered, before.scrape_answered, "v6={v6}");
        assert_eq!(after.redirected, before.redirected + 1, "v6={v6}");
        assert_eq!(userland_scrapes(&net, &t), userland + 1, "v6={v6}");
    }
}

#[test]
fn a_scrape_with_a_bad_connection_id_gets_userlands_error() {
    let net = test_net();
    let t = tracker(&net, "", "");
    for v6 in [false, true] {
        let hash = random_hash();
        announce(&net, v6, hash, 7201, false, 2);
        let c = client(&net, v6);
        kernel_answers(&net, &c, &[hash], &[(0, 0, 1)], REFRESH + SLACK);

        let before = net.counters();
        let txid = c.txid();
        let bad_id = c.conn_id() ^ 0x5a5a_5a5a;
        c.send(&encode_scrape(bad_id, txid, &[hash]));
        let answer = c
            .recv_txid(txid, Duration::from_secs(5))
            .expect("an answer to the bad id");
        let Response::Error(e) = decode_response(&answer, v6) else {
            panic!("v6={v6}: not an error: {answer:02x?}");
        };
        assert!(e.message.contains("connection"), "v6={v6}: {e:?}");
        let after = net.counters();
        assert_eq!(after.bad_connection_id, before.bad_connection_id + 1);
        assert_eq!(after.scrape_answered, before.scrape_answered);
        assert_eq!(after.redirected, before.redirected + 1);
    }
    t.assert_no_panic();
}

#[test]
fn scrapes_past_userlands_cap_are_left_to_userland() {
    let net = test_net();
    let t = tracker(&net, "[udp]\nmax_scrape_torrents = 2\n", "");
    let hashes = [random_hash(), random_hash(), random_hash()];
    for (i, hash) in hashes.iter().enumerate() {
        announce(&net, false, *hash, 7301 + i as u16, true, 2);
    }
    let c = client(&net, false);
    kernel_answers(&net, &c, &hashes[..2], &[(1, 0, 0); 2], REFRESH + SLACK);
    let before = net.counters();
    // Userland answers the first two only, and so must the whole path.
    assert_eq!(c.scrape(&hashes).0, [(1, 0, 0); 2]);
    let after = net.counters();
    assert_eq!(after.scrape_answered, before.scrape_answered);
    assert_eq!(after.redirected, before.redirected + 1);
    t.assert_no_panic();
}

#[test]
fn with_scrape_in_kernel_off_userland_answers_every_scrape() {
    let net = test_net();
    let t = tracker(&net, "", "scrape_in_kernel = false");
    for v6 in [false, true] {
        let hash = random_hash();
        announce(&net, v6, hash, 7401, true, 2);
        let c = client(&net, v6);
        // Well past the refresh: nothing was published.
        std::thread::sleep(REFRESH * 3);
        let (before, userland) = (net.counters(), userland_scrapes(&net, &t));
        assert_eq!(c.scrape(&[hash]).0, [(1, 0, 0)], "v6={v6}");
        let after = net.counters();
        assert_eq!(after.scrape_answered, before.scrape_answered, "v6={v6}");
        assert_eq!(
            after.scrape_miss, before.scrape_miss,
            "v6={v6}: not looked up"
        );
        assert_eq!(after.redirected, before.redirected + 1, "v6={v6}");
        assert_eq!(userland_scrapes(&net, &t), userland + 1, "v6={v6}");
    }
    let map = format!("{}/SCRAPE", net.pin_dir);
    let dump: serde_json::Value =
        serde_json::from_str(&run("bpftool", &["-j", "map", "dump", "pinned", &map])).unwrap();
    assert_eq!(dump.as_array().map(Vec::len), Some(0), "{dump}");
}

#[test]
fn bpftool_shows_the_pinned_scrape_map_and_its_entries() {
    let net = test_net();
    let t = tracker(&net, "", "");
    let hash = random_hash();
    announce(&net, false, hash, 7501, true, 2);
    announce(&net, false, hash, 7502, false, 2);
    let c = client(&net, false);
    kernel_answers(&net, &c, &[hash], &[(1, 0, 1)], REFRESH + SLACK);

    let map = format!("{}/SCRAPE", net.pin_dir);
    let show = run("bpftool", &["map", "show", "pinned", &map]);
    assert!(
        show.contains("lru_hash") && show.contains("name SCRAPE"),
        "{show}"
    );
    assert!(show.contains("key 20B  value 12B"), "{show}");
    assert!(
        show.contains("max_entries 262144"),
        "the default size: {show}"
    );
    let dump: serde_json::Value =
        serde_json::from_str(&run("bpftool", &["-j", "map", "dump", "pinned", &map])).unwrap();
    let entries = dump.as_array().expect("an array of entries");
    let ours = entries
        .iter()
        .find(|e| bytes(&e["key"]) == hash)
        .unwrap_or_else(|| panic!("{} not in {dump}", hex(&hash)));
    // Seeders, completed, leechers: big-endian, as on the wire.
    assert_eq!(bytes(&ours["value"]), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    // This kernel (as any from 5.6 on) takes the counts in batches, and
    // every write went through.
    let log = t.stderr_text();
    assert!(!log.contains("refuses BPF_MAP_UPDATE_BATCH"), "{log}");
    assert!(!log.contains("scrape counts"), "{log}");
    t.assert_no_panic();
}

/// bpftool's JSON bytes (hex strings), or the array BTF gives as numbers.
fn bytes(value: &serde_json::Value) -> Vec<u8> {
    let flat = match value.get("wire") {
        Some(wire) => wire,
        None => value,
    };
    flat.as_array()
        .unwrap_or_else(|| panic!("bytes in {value}"))
        .iter()
        .map(|b| match b {
            serde_json::Value::Number(n) => n.as_u64().unwrap() as u8,
            serde_json::Value::String(s) => {
                u8::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
            }
            other => panic!("a byte: {other}"),
        })
        .collect()
}

/// /metrics shows what bpftool shows: the outcome counters as
/// `tracker_xdp_packets_total`, the reasons beside them as
/// `tracker_xdp_kernel_events_total`, and how many torrents' counts the
/// workers published.
#[test]
fn metrics_show_the_in_kernel_scrapes() {
    let net = test_net();
    let t = tracker(&net, "", "");
    let (a, b) = (random_hash(), random_hash());
    announce(&net, false, a, 7601, true, 2);
    announce(&net, true, b, 7602, false, 2);
    let c = client(&net, false);
    kernel_answers(&net, &c, &[a, b], &[(1, 0, 0), (0, 0, 1)], REFRESH + SLACK);
    let before = net.counters();
    assert_eq!(c.scrape(&[a, random_hash()]).0, [(1, 0, 0), (0, 0, 0)]);
    let txid = c.txid();
    c.send(&encode_scrape(c.conn_id() ^ 1, txid, &[a]));
    c.recv_txid(txid, Duration::from_secs(5))
        .expect("the bad id's error");

    let admin = t.admin[0];
    let m = in_ns(&net.server_ns, move || metrics(admin));
    let counters = net.counters();
    let packets = |outcome| m.get("tracker_xdp_packets_total", &[("outcome", outcome)]);
    let events = |event| m.get("tracker_xdp_kernel_events_total", &[("event", event)]);
    assert!(counters.scrape_answered >= 1, "{counters:?}");
    assert_eq!(packets("scrape_answered"), counters.scrape_answered);
    assert_eq!(packets("announce_answered"), counters.announce_answered);
    assert_eq!(events("scrape_miss"), counters.scrape_miss);
    assert_eq!(counters.scrape_miss, before.scrape_miss + 1, "{counters:?}");
    assert_eq!(events("bad_connection_id"), counters.bad_connection_id);
    assert_eq!(
        counters.bad_connection_id,
        before.bad_connection_id + 1,
        "{counters:?}"
    );
    for event in ["hot_hit", "hot_miss", "ring_full"] {
        assert!(m
            .find("tracker_xdp_kernel_events_total", &[("event", event)])
            .is_some());
    }
    // The reasons are not outcomes: `seen` stays the sum of the outcomes.
    for event in ["scrape_miss", "bad_connection_id"] {
        assert!(
            m.find("tracker_xdp_packets_total", &[("outcome", event)])
                .is_none(),
            "{}",
            m.text
        );
    }
    assert_eq!(m.get("tracker_xdp_scrape_entries", &[]), 2, "{}", m.text);
}

/// A torrent whose peers all expired is deleted from the map by the sweep
/// after the cleaning: its scrapes go back to userland, which answers
/// what it kept (the completed count).
#[test]
fn a_torrent_whose_peers_expired_is_left_to_userland() {
    let net = test_net();
    let t = tracker(
        &net,
        "[swarm]\nmax_peer_age = 2\ncleaning_interval = 1\n",
        "",
    );
    let hash = random_hash();
    announce(&net, false, hash, 7701, true, 1);
    let c = client(&net, false);
    kernel_answers(&net, &c, &[hash], &[(1, 1, 0)], REFRESH + SLACK);
    let expired = poll_until(Duration::from_secs(8), || {
        let before = net.counters();
        let answer = c.scrape(&[hash]).0;
        let after = net.counters();
        answer == [(0, 1, 0)] && after.scrape_miss == before.scrape_miss + 1
    });
    assert!(expired, "{:?}\n{}", net.counters(), t.stderr_text());
    let log = t.stderr_text();
    assert!(log.contains("cleaned 1 peers, 1 torrents"), "{log}");
}

/// The one UDP checksum rule of the XDP path holds for scrapes too: the
/// program answers only what the kernel would accept (a correct checksum,
/// or none over IPv4), and a wrong one reaches userland, which drops it.
#[test]
fn scrapes_with_a_wrong_udp_checksum_get_no_answer() {
    let net = test_net();
    let t = tracker(&net, "", "");
    let hash = random_hash();
    announce(&net, false, hash, 7801, true, 2);
    let c = client(&net, false);
    kernel_answers(&net, &c, &[hash], &[(1, 0, 0)], REFRESH + SLACK);
    let conn_id = c.conn_id();
    let sock = &c.sock;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let scrape = |txid: u32, check: Option<u16>| {
        let payload = encode_scrape(conn_id, txid, &[hash]);
        let mut udp = Vec::new();
        udp.extend(port.to_be_bytes());
        udp.extend(PORT.to_be_bytes());
        udp.extend((8 + payload.len() as u16).to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(payload);
        let check = check.unwrap_or_else(|| net.udp_checksum_v4(&udp));
        udp[6..8].copy_from_slice(&check.to_be_bytes());
        udp
    };
    let mut buf = [0u8; 64];
    let answer = [
        0, 0, 0, 2, 0x22, 0x22, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    for (txid, check, answered) in [
        (0x2222_0001, None, true),
        (0x2222_0002, Some(0x1234), false),
        (0x2222_0003, Some(0), true),
    ] {
        let before = net.counters();
        net.send_ipv4_udp_frame(&scrape(txid, check));
        let got = sock.recv_from(&mut buf);
        let after = net.counters();
        if answered {
            let (n, _) = got.unwrap_or_else(|e| panic!("{check:?}: no answer: {e}"));
            let mut want = answer;
            want[7] = txid as u8;
            assert_eq!(&buf[..n], want, "{check:?}");
            assert_eq!(after.scrape_answered, before.scrape_answered + 1);
            assert_eq!(after.redirected, before.redirected);
        } else {
            assert!(got.is_err(), "a wrong checksum was answered: {buf:02x?}");
            assert_eq!(after.scrape_answered, before.scrape_answered);
            assert_eq!(after.redirected, before.redirected + 1);
        }
    }
    t.assert_no_panic();
}
