//! The UDP front end's metrics, against the real binary: known traffic
//! shows as exact values in `/metrics` and `/stats.json`, an overloaded
//! request worker moves the dropped-request counter, and a stalled socket
//! worker's overflowing receive buffer moves the drop counter.
//!
//! The overload tests stop one thread of the tracker with ptrace (its
//! request worker or its socket worker), which needs root (CI runs as
//! root); they fail rather than skip without it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::netns::require_root;
use common::scrape::{metrics, stats_json, Exposition};
use common::stop::StoppedThread;
use common::*;

const REQUESTS: &str = "tracker_requests_total";
const RESPONSES: &str = "tracker_responses_total";
const ERRORS: &str = "tracker_errors_total";
const DROPPED: &str = "tracker_requests_dropped_total";

/// Sends `pkt` once (no retry, so every request counted is one the test
/// made) and decodes the answer with its transaction id.
fn once(c: &Client, pkt: &[u8]) -> Response {
    let txid = u32::from_be_bytes(pkt[12..16].try_into().unwrap());
    c.send(pkt);
    let answer = c
        .recv_txid(txid, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer to the {}-byte request {txid:#x}", pkt.len()));
    decode_response(&answer, false)
}

fn connect_once(c: &Client) -> u64 {
    match once(c, &encode_connect(c.txid())) {
        Response::Connect { conn_id, .. } => conn_id,
        other => panic!("expected a connect answer, got {other:?}"),
    }
}

fn error_once(c: &Client, pkt: &[u8]) -> String {
    match once(c, pkt) {
        Response::Error(e) => e.message,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn udp(action: &str) -> [(&'static str, &str); 2] {
    [("protocol", "udp"), ("action", action)]
}

fn kind(kind: &str) -> [(&'static str, &str); 2] {
    [("protocol", "udp"), ("kind", kind)]
}

/// Every request of the test's making, each once, and what each must
/// add to which series.
#[test]
fn known_udp_traffic_shows_as_exact_counts_in_metrics_and_stats_json() {
    let allowed = random_hash();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allowed.txt");
    std::fs::write(&list, format!("{}\n", hex(&allowed))).unwrap();
    // One request worker, so the per-torrent limit is its own, whole.
    let t = Tracker::builder()
        .config(&format!(
            "[access_list]\nmode = \"white\"\npath = \"{}\"\n\
             [swarm]\nworkers = 1\nmax_peers_per_torrent = 4\n",
            list.display()
        ))
        .start();
    let admin = t.admin[0];
    let clients: Vec<Client> = (0..3).map(|_| Client::new(t.addr())).collect();
    let ids: Vec<u64> = clients.iter().map(connect_once).collect();
    let (c, id) = (&clients[0], ids[0]);

    // Five peers into a torrent of four places: four answered, one
    // refused at the limit.
    for port in 7001..=7004 {
        match once(c, &Announce::new(allowed, port).encode(id, c.txid())) {
            Response::Announce(a) => assert_eq!(a.leechers, u32::from(port - 7000)),
            other => panic!("expected an announce answer, got {other:?}"),
        }
    }
    let full = error_once(c, &Announce::new(allowed, 7005).encode(id, c.txid()));
    assert!(full.contains("limit"), "{full}");
    let bad_id = error_once(c, &Announce::new(allowed, 7001).encode(id ^ 1, c.txid()));
    assert!(bad_id.contains("connection id"), "{bad_id}");
    let port_zero = error_once(c, &Announce::new(allowed, 0).encode(id, c.txid()));
    assert!(port_zero.contains("port"), "{port_zero}");
    let denied = error_once(c, &Announce::new(random_hash(), 7001).encode(id, c.txid()));
    assert!(denied.contains("not allowed"), "{denied}");

    for _ in 0..2 {
        match once(c, &encode_scrape(id, c.txid(), &[allowed])) {
            Response::Scrape(s) => assert_eq!(s.0, [(0, 0, 4)]),
            other => panic!("expected a scrape answer, got {other:?}"),
        }
    }
    // 150 hashes do not fit the receive slot: cut, and refused.
    let hashes: Vec<[u8; 20]> = (0..150).map(|_| random_hash()).collect();
    let too_large = error_once(c, &encode_scrape(id, c.txid(), &hashes));
    assert!(too_large.contains("too large"), "{too_large}");
    // Action 7 is no request at all: malformed, counted as no action.
    let mut unknown = encode_connect(c.txid());
    unknown[8..12].copy_from_slice(&7u32.to_be_bytes());
    let unknown_action = error_once(c, &unknown);
    assert!(
        unknown_action.contains("unknown action"),
        "{unknown_action}"
    );

    let m = metrics(admin);
    let expected = [
        (REQUESTS, udp("connect"), 3),
        (REQUESTS, udp("announce"), 8),
        (REQUESTS, udp("scrape"), 3),
        (RESPONSES, udp("connect"), 3),
        (RESPONSES, udp("announce"), 4),
        (RESPONSES, udp("scrape"), 2),
        (RESPONSES, udp("error"), 6),
        (ERRORS, kind("bad_connection_id"), 1),
        (ERRORS, kind("malformed"), 2),
        (ERRORS, kind("access_denied"), 1),
        (ERRORS, kind("limit_reached"), 1),
        (ERRORS, kind("too_large"), 1),
        (ERRORS, kind("peer_id_in_use"), 0),
    ];
    for (name, labels, value) in expected {
        assert_eq!(m.get(name, &labels), value, "{name}{labels:?}\n{}", m.text);
    }
    assert_eq!(m.get(DROPPED, &[("protocol", "udp")]), 0);
    for action in ["connect", "announce", "scrape"] {
        let labels = [("protocol", "udp_xdp"), ("action", action)];
        assert_eq!(m.get(REQUESTS, &labels), 0, "no XDP here");
    }
    assert_eq!(m.get("tracker_xdp_attached", &[]), 0);
    assert_eq!(m.get("tracker_udp_receive_buffer_drops_total", &[]), 0);

    let s = stats_json(admin);
    assert_eq!(s["requests"]["udp"]["connect"], 3, "{s:#}");
    assert_eq!(s["requests"]["udp"]["announce"], 8, "{s:#}");
    assert_eq!(s["requests"]["udp"]["scrape"], 3, "{s:#}");
    assert_eq!(s["responses"]["udp"]["error"], 6, "{s:#}");
    assert_eq!(s["errors"]["udp"]["limit_reached"], 1, "{s:#}");
    assert_eq!(s["errors"]["udp"]["malformed"], 2, "{s:#}");
    assert_eq!(s["dropped"]["udp"], 0, "{s:#}");
    assert_eq!(s["udp_receive_buffer_drops"], 0, "{s:#}");
    assert_eq!(s["xdp"], serde_json::Value::Null, "{s:#}");
}

/// Datagrams that reach `c` within `wait`, by transaction id.
fn answers_within(c: &Client, wait: Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + wait;
    let mut txids = Vec::new();
    while let Some(pkt) =
        c.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        txids.push(u32::from_be_bytes(pkt[4..8].try_into().unwrap()));
    }
    txids
}

fn dropped(admin: SocketAddr) -> u64 {
    metrics(admin).get(DROPPED, &[("protocol", "udp")])
}

/// The test: a request worker that cannot keep up makes the
/// socket worker shed requests, counted, rather than queue them; once it
/// catches up the tracker answers again.
#[test]
fn an_overloaded_request_worker_moves_the_dropped_request_counter() {
    require_root("stopping a tracker thread with ptrace needs root; CI runs as root");
    // One request worker whose inbox holds a single batch, on a thread of
    // its own: run inline, it would lag with the socket worker's thread,
    // and the kernel's receive buffer would shed instead (the next test).
    let t = Tracker::builder()
        .config(
            "[swarm]\nworkers = 1\nchannel_capacity = 1\ninline = \"off\"\n[udp]\nworkers = 1\n",
        )
        .start();
    let admin = t.admin[0];
    let c = Client::new(t.addr());
    let id = connect_once(&c);
    let hash = random_hash();
    let stopped = StoppedThread::new(t.pid(), "swarm-0");

    const BURST: u32 = 20;
    for txid in 0..BURST {
        c.send(&Announce::new(hash, 7000).encode(id, txid));
        // Apart enough that each announce is a batch of its own.
        std::thread::sleep(Duration::from_millis(20));
    }
    let shed = poll_until(Duration::from_secs(5), || {
        dropped(admin) >= u64::from(BURST) - 1
    });
    assert!(shed, "dropped: {}", dropped(admin));
    assert!(
        answers_within(&c, Duration::from_millis(200)).is_empty(),
        "answered while the request worker was stopped"
    );
    let m = metrics(admin);
    assert_eq!(m.get(REQUESTS, &udp("announce")), u64::from(BURST));
    // The one batch the inbox held is all that waits for the worker.
    assert_eq!(m.get(DROPPED, &[("protocol", "udp")]), u64::from(BURST) - 1);

    drop(stopped);
    let answered = answers_within(&c, Duration::from_secs(2));
    assert_eq!(answered, [0], "only the queued announce is answered");
    let after = once(&c, &Announce::new(hash, 7000).encode(id, 1000));
    assert!(matches!(after, Response::Announce(_)), "{after:?}");
    let m = metrics(admin);
    assert_eq!(m.get(RESPONSES, &udp("announce")), 2);
    assert_eq!(m.get(DROPPED, &[("protocol", "udp")]), u64::from(BURST) - 1);
    assert_eq!(stats_json(admin)["dropped"]["udp"], BURST - 1);
}

/// A socket worker that does not drain its socket makes the kernel drop
/// datagrams at the full receive buffer: every datagram sent is either
/// counted as a request once the worker resumes, or as a drop.
#[test]
fn a_stalled_socket_worker_shows_receive_buffer_drops() {
    require_root("stopping a tracker thread with ptrace needs root; CI runs as root");
    let t = Tracker::builder()
        .config("[udp]\nworkers = 1\nrecv_buffer_size = 4096\n")
        .start();
    let admin = t.admin[0];
    let c = Client::new(t.addr());
    let stopped = StoppedThread::new(t.pid(), "udp-0");
    const FLOOD: u64 = 300;
    for txid in 0..FLOOD {
        c.send(&encode_connect(txid as u32));
    }
    let drops = |m: &Exposition| m.get("tracker_udp_receive_buffer_drops_total", &[]);
    let m = metrics(admin);
    assert!(drops(&m) > 0, "{}", m.text);
    assert!(drops(&m) < FLOOD, "{}", m.text);
    assert_eq!(m.get(REQUESTS, &udp("connect")), 0, "the worker is stopped");

    drop(stopped);
    let all_seen = poll_until(Duration::from_secs(5), || {
        let m = metrics(admin);
        m.get(REQUESTS, &udp("connect")) + drops(&m) == FLOOD
    });
    let m = metrics(admin);
    assert!(all_seen, "{FLOOD} sent:\n{}", m.text);
    assert_eq!(
        stats_json(admin)["udp_receive_buffer_drops"],
        drops(&m),
        "JSON agrees"
    );
    // Still serving.
    connect_once(&c);
}
