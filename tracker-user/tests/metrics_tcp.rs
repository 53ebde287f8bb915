//! What the HTTP/WebSocket front end counts, read back from the admin
//! listener's `/metrics` and `/stats.json` after known HTTP, HTTPS, WS and
//! WSS traffic against the real binary: requests, responses and errors by
//! protocol, open connections, refusals, timeouts, TLS handshake failures
//! and WebTorrent relays.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::http::*;
use common::tls;
use common::ws::*;
use common::*;
use serde_json::Value;

/// One scrape of `/metrics`: every sample by metric name and label set.
struct Metrics(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Metrics {
    fn scrape(t: &Tracker) -> Metrics {
        let r = get(admin(t), "/metrics");
        assert_eq!(r.status, 200, "{}", r.body_text());
        Metrics::parse(std::str::from_utf8(&r.body).expect("/metrics is UTF-8"))
    }

    fn parse(text: &str) -> Metrics {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample without a value: {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair
                                .split_once('=')
                                .unwrap_or_else(|| panic!("bad label in {line:?}"));
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            samples.insert((name.to_owned(), labels), value);
        }
        Metrics(samples)
    }

    /// The sample of `name` with exactly `labels`; panics if there is none
    /// (a missing series is a bug, not a zero).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = (
            name.to_owned(),
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let value = self
            .0
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics"));
        *value as u64
    }

    fn requests(&self, protocol: &str, action: &str) -> u64 {
        let labels = [("action", action), ("protocol", protocol)];
        self.get("tracker_requests_total", &labels)
    }

    fn responses(&self, protocol: &str, action: &str) -> u64 {
        let labels = [("action", action), ("protocol", protocol)];
        self.get("tracker_responses_total", &labels)
    }

    fn errors(&self, protocol: &str, kind: &str) -> u64 {
        let labels = [("kind", kind), ("protocol", protocol)];
        self.get("tracker_errors_total", &labels)
    }

    fn open(&self, protocol: &str) -> u64 {
        self.get("tracker_open_connections", &[("protocol", protocol)])
    }
}

fn admin(t: &Tracker) -> SocketAddr {
    *t.admin
        .first()
        .expect("the harness starts an admin listener")
}

fn stats(t: &Tracker) -> Value {
    let r = get(admin(t), "/stats.json");
    assert_eq!(r.status, 200, "{}", r.body_text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("/stats.json: {e}"))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, key| {
        v.get(key)
            .unwrap_or_else(|| panic!("no {path:?} in /stats.json: {v}"))
    })
}

fn json_u64(v: &Value, path: &[&str]) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count"))
}

/// Waits until `/metrics` says `what` is `want`; false on timeout.
fn metrics_reach(t: &Tracker, want: u64, what: impl Fn(&Metrics) -> u64) -> bool {
    poll_until(Duration::from_secs(5), || what(&Metrics::scrape(t)) == want)
}

fn write_list(path: &Path, hashes: &[[u8; 20]]) {
    let text: String = hashes.iter().map(|h| format!("{}\n", hex(h))).collect();
    std::fs::write(path, text).unwrap();
}

/// Writes garbage where a TLS client hello should be and waits for the
/// tracker to hang up.
fn garbage_client_hello(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /announce HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    // An alert, then the close (or a reset): either way the end.
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn http_and_https_requests_responses_and_errors_are_counted_by_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "metrics");
    let allowed = random_hash();
    let denied = random_hash();
    let list = dir.path().join("allowed.txt");
    write_list(&list, &[allowed]);
    let t = Tracker::with_config(&format!(
        "[http]\nworkers = 1\ntls_listen = [\"127.0.0.1:0\"]\n{}[access_list]\nmode = \"white\"\npath = \"{}\"\n",
        cert.config_section(),
        list.display()
    ));

    let mut http = HttpConn::connect(t.http_addr());
    parse_announce(&http.get(&HttpAnnounce::new(allowed, 6881).target()));
    parse_announce(&http.get(&HttpAnnounce::new(allowed, 6882).target()));
    parse_scrape(&http.get(&scrape_target(&[allowed], Escape::AllUpper)));
    http.get(&HttpAnnounce::new(denied, 6883).target())
        .expect_failure(200);
    // No info_hash: not an announce the tracker can read.
    http.get("/announce?port=6884").expect_failure(200);

    let mut https = tls::https(t.https_addr(), tls::client_config(&[&cert.der]));
    parse_announce(&https.get(&HttpAnnounce::new(allowed, 6885).target()));
    parse_scrape(&https.get(&scrape_target(&[allowed], Escape::AllUpper)));

    garbage_client_hello(t.https_addr());

    let m = Metrics::scrape(&t);
    assert_eq!(m.requests("http", "announce"), 3);
    assert_eq!(m.requests("http", "scrape"), 1);
    assert_eq!(m.responses("http", "announce"), 2);
    assert_eq!(m.responses("http", "scrape"), 1);
    assert_eq!(m.responses("http", "error"), 2);
    assert_eq!(m.errors("http", "access_denied"), 1);
    assert_eq!(m.errors("http", "malformed"), 1);
    assert_eq!(m.requests("https", "announce"), 1);
    assert_eq!(m.requests("https", "scrape"), 1);
    assert_eq!(m.responses("https", "announce"), 1);
    assert_eq!(m.responses("https", "scrape"), 1);
    assert_eq!(m.responses("https", "error"), 0);
    assert_eq!(m.requests("ws", "announce"), 0);
    assert_eq!(
        m.get("tracker_requests_dropped_total", &[("protocol", "http")]),
        0
    );
    assert_eq!(m.get("tracker_tls_handshake_failures_total", &[]), 1);
    assert_eq!(m.get("tracker_connections_accepted_total", &[]), 3);
    assert_eq!(m.open("http"), 1);
    assert_eq!(m.open("https"), 1);

    let s = stats(&t);
    assert_eq!(json_u64(&s, &["requests", "http", "announce"]), 3);
    assert_eq!(json_u64(&s, &["responses", "https", "scrape"]), 1);
    assert_eq!(json_u64(&s, &["errors", "http", "access_denied"]), 1);
    assert_eq!(json_u64(&s, &["errors", "http", "malformed"]), 1);
    assert_eq!(json_u64(&s, &["connections", "tls_handshake_failures"]), 1);
    assert_eq!(json_u64(&s, &["connections", "open", "https"]), 1);

    drop(http);
    drop(https);
    assert!(
        metrics_reach(&t, 0, |m| m.open("http") + m.open("https")),
        "open connections did not return to 0 once the clients closed"
    );
    assert_eq!(json_u64(&stats(&t), &["connections", "open", "http"]), 0);
}

#[test]
fn ws_and_wss_messages_connections_and_relays_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::TestCert::new(dir.path(), "metrics");
    let t = Tracker::with_config(&format!(
        "[http]\nworkers = 1\ntls_listen = [\"127.0.0.1:0\"]\n{}",
        cert.config_section()
    ));
    let hash = random_hash();

    let mut a = Peer::connect(t.http_addr());
    let mut b = Peer::connect(t.http_addr());
    let mut w = Peer::connect_tls(t.https_addr(), tls::client_config(&[&cert.der]));
    // Upgraded: counted as WebSockets, no longer as HTTP.
    assert!(
        metrics_reach(&t, 2, |m| m.open("ws")),
        "two WebSockets open"
    );

    a.join(&hash, 0);
    let offer_id = random_id().to_vec();
    b.offer(&hash, 5, &[(offer_id.clone(), fake_sdp(100))]);
    let offer = a.c.relayed(WS_TIMEOUT).expect("the offer reaches a");
    assert_eq!(bin_at(&offer, "offer_id"), offer_id);
    a.c.send_json(&answer_msg(&hash, &a.peer_id, &b.peer_id, &offer_id, "v=0"));
    let answer = b.c.relayed(WS_TIMEOUT).expect("the answer reaches b");
    assert_eq!(bin_at(&answer, "peer_id"), a.peer_id);
    assert_eq!(a.c.scrape_one(&hash).complete, 1);
    a.c.send_text("this is not JSON");
    a.c.failure();

    w.join(&hash, 10);
    // b, which offered with bytes left, and w are the leechers.
    assert_eq!(w.c.scrape_one(&hash).incomplete, 2);

    let m = Metrics::scrape(&t);
    assert_eq!(m.requests("ws", "announce"), 2);
    assert_eq!(m.requests("ws", "answer"), 1);
    assert_eq!(m.requests("ws", "scrape"), 1);
    // The answer message gets no reply of its own.
    assert_eq!(m.responses("ws", "announce"), 2);
    assert_eq!(m.responses("ws", "scrape"), 1);
    assert_eq!(m.responses("ws", "error"), 1);
    assert_eq!(m.errors("ws", "malformed"), 1);
    assert_eq!(m.requests("wss", "announce"), 1);
    assert_eq!(m.requests("wss", "scrape"), 1);
    assert_eq!(m.responses("wss", "announce"), 1);
    assert_eq!(m.responses("wss", "scrape"), 1);
    assert_eq!(m.requests("http", "announce"), 0);
    assert_eq!(
        m.get("tracker_webtorrent_relayed_total", &[("kind", "offer")]),
        1
    );
    assert_eq!(
        m.get("tracker_webtorrent_relayed_total", &[("kind", "answer")]),
        1
    );
    assert_eq!(m.get("tracker_webtorrent_relays_dropped_total", &[]), 0);
    assert_eq!(m.open("ws"), 2);
    assert_eq!(m.open("wss"), 1);
    assert_eq!(m.open("http"), 0);
    assert_eq!(m.open("https"), 0);
    assert_eq!(m.get("tracker_connections_accepted_total", &[]), 3);

    let s = stats(&t);
    assert_eq!(json_u64(&s, &["requests", "ws", "answer"]), 1);
    assert_eq!(json_u64(&s, &["requests", "wss", "announce"]), 1);
    assert_eq!(json_u64(&s, &["errors", "ws", "malformed"]), 1);
    assert_eq!(
        json_u64(&s, &["connections", "webtorrent_relayed", "offer"]),
        1
    );
    assert_eq!(json_u64(&s, &["connections", "open", "ws"]), 2);
    assert_eq!(json_u64(&s, &["connections", "open", "wss"]), 1);

    a.c.close();
    b.c.close();
    w.c.close();
    assert!(
        metrics_reach(&t, 0, |m| m.open("ws") + m.open("wss")),
        "open WebSockets did not return to 0 once the clients closed"
    );
    let s = stats(&t);
    assert_eq!(json_u64(&s, &["connections", "open", "ws"]), 0);
    assert_eq!(json_u64(&s, &["connections", "open", "wss"]), 0);
}

#[test]
fn connections_refused_per_ip_and_silent_ones_timed_out_are_counted() {
    let t = Tracker::with_config(
        "[http]\nworkers = 1\nmax_connections_per_ip = 2\nfirst_byte_timeout = 1\n",
    );
    let hash = random_hash();
    let mut held: Vec<HttpConn> = (0..2u16)
        .map(|i| {
            let mut c = HttpConn::connect(t.http_addr());
            parse_announce(&c.get(&HttpAnnounce::new(hash, 7000 + i).target()));
            c
        })
        .collect();

    let mut over = HttpConn::connect(t.http_addr());
    assert!(
        over.closed_within(Duration::from_secs(3)),
        "a third connection from the host was not refused"
    );
    let m = Metrics::scrape(&t);
    let refused =
        |m: &Metrics, limit| m.get("tracker_connections_refused_total", &[("limit", limit)]);
    assert_eq!(refused(&m, "per_ip"), 1);
    assert_eq!(refused(&m, "max_connections"), 0);
    assert_eq!(m.open("http"), 2);
    assert_eq!(
        json_u64(&stats(&t), &["connections", "refused", "per_ip"]),
        1
    );

    // The held ones still get answers; closing them gives their places back.
    parse_announce(&held[0].get(&HttpAnnounce::new(hash, 7000).target()));
    held.clear();
    assert!(metrics_reach(&t, 0, |m| m.open("http")));

    let mut silent = HttpConn::connect(t.http_addr());
    assert!(
        silent.closed_within(Duration::from_secs(4)),
        "a silent connection outlived first_byte_timeout"
    );
    let timeouts =
        |m: &Metrics, kind| m.get("tracker_connection_timeouts_total", &[("kind", kind)]);
    let m = Metrics::scrape(&t);
    assert_eq!(timeouts(&m, "first_byte"), 1);
    assert_eq!(timeouts(&m, "idle"), 0);
    assert_eq!(refused(&m, "per_ip"), 1);
    assert!(metrics_reach(&t, 0, |m| m.open("http")));
    assert_eq!(
        json_u64(&stats(&t), &["connections", "timeouts", "first_byte"]),
        1
    );
}

#[test]
fn swarm_limits_and_taken_peer_ids_are_counted_as_errors_of_their_kind() {
    let t = Tracker::with_config(
        "[swarm]\nworkers = 1\nmax_torrents = 1\nmax_ws_torrents = 1\n[http]\nworkers = 1\n",
    );
    let (first, second) = (random_hash(), random_hash());
    parse_announce(&get(
        t.http_addr(),
        &HttpAnnounce::new(first, 6881).target(),
    ));
    get(t.http_addr(), &HttpAnnounce::new(second, 6882).target()).expect_failure(200);

    let mut a = Peer::connect(t.http_addr());
    a.join(&first, 0);
    a.c.send_json(&announce_msg(
        &second,
        &a.peer_id,
        0,
        Some("started"),
        Some(0),
        &[],
    ));
    a.c.failure();
    // Another connection claiming a's peer id in a's torrent.
    let mut b = Peer::connect(t.http_addr());
    b.c.send_json(&announce_msg(
        &first,
        &a.peer_id,
        0,
        Some("started"),
        Some(0),
        &[],
    ));
    b.c.failure();

    let m = Metrics::scrape(&t);
    assert_eq!(m.errors("http", "limit_reached"), 1);
    assert_eq!(m.responses("http", "announce"), 1);
    assert_eq!(m.responses("http", "error"), 1);
    assert_eq!(m.errors("ws", "limit_reached"), 1);
    assert_eq!(m.errors("ws", "peer_id_in_use"), 1);
    assert_eq!(m.requests("ws", "announce"), 3);
    assert_eq!(m.responses("ws", "announce"), 1);
    assert_eq!(m.responses("ws", "error"), 2);
    let s = stats(&t);
    assert_eq!(json_u64(&s, &["errors", "ws", "peer_id_in_use"]), 1);
    assert_eq!(json_u64(&s, &["errors", "http", "limit_reached"]), 1);
}
