//! Starting the tracker from a hand-built [`Command`] (extra environment,
//! working directory, `--log-level error`) and finding what it serves from
//! its `ready:` line rather than the info-level `listening` lines.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::Tracker;

/// The entries of a `ready: A, B, C; xdp …` line, each `scheme://addr`.
pub fn ready_entries(line: &str) -> Vec<String> {
    let rest = line
        .strip_prefix("ready: ")
        .unwrap_or_else(|| panic!("not a ready line: {line:?}"));
    let served = rest.split("; ").next().unwrap_or("");
    served.split(", ").map(str::to_owned).collect()
}

/// The addresses of `scheme` (`udp`, `http`, `ws`, …) in a ready line.
pub fn ready_addrs(line: &str, scheme: &str) -> Vec<SocketAddr> {
    let prefix = format!("{scheme}://");
    ready_entries(line)
        .iter()
        .filter_map(|e| e.strip_prefix(&prefix))
        .map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("{a:?} in {line:?}: {e}"))
        })
        .collect()
}

/// The `ready: …` text of a stderr line: the line itself in text mode, its
/// `msg` in JSON mode.
pub fn ready_text(line: &str) -> Option<String> {
    if line.starts_with("ready: ") {
        return Some(line.to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let msg = v.get("msg")?.as_str()?;
    msg.starts_with("ready: ").then(|| msg.to_owned())
}

/// Spawns `cmd` (stderr is taken over) and waits for its `ready:` line
/// (text or JSON).
/// The returned [`Tracker`] knows its UDP and TCP addresses from that
/// line and is stopped (SIGTERM) when dropped; the line is returned too.
pub fn start_until_ready(cmd: Command) -> (Tracker, String) {
    let (child, stderr, rx) = super::spawn_reading_stderr(cmd, "tracker-user");
    let mut tracker = Tracker {
        child: Some(child),
        addrs: Vec::new(),
        tcp: Vec::new(),
        admin: Vec::new(),
        stderr,
        dir: tempfile::tempdir().expect("temp dir"),
        config_path: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(ready) = ready_text(&line) {
                    break ready;
                }
            }
            Err(e) => panic!(
                "no `ready:` line ({e:?}); stderr:\n{}",
                tracker.stderr_text()
            ),
        }
    };
    tracker.addrs = ready_addrs(&line, "udp");
    tracker.admin = ready_addrs(&line, "admin http");
    for (scheme, name) in [("http", "HTTP"), ("https", "HTTPS")] {
        for addr in ready_addrs(&line, scheme) {
            tracker.tcp.push((name.to_owned(), addr));
        }
    }
    // ws:// on an HTTP listener's address is that listener; others are
    // WebSocket-only listeners.
    for (scheme, name) in [("ws", "WS"), ("wss", "WSS")] {
        for addr in ready_addrs(&line, scheme) {
            if !tracker.tcp.iter().any(|(_, a)| *a == addr) {
                tracker.tcp.push((name.to_owned(), addr));
            }
        }
    }
    (tracker, line)
}

/// Announces a fresh torrent over every UDP address, the first HTTP
/// listener and WebSocket on it, and checks each answer counts the peer.
pub fn assert_serves_udp_http_ws(t: &Tracker, what: &str) {
    for &addr in &t.addrs {
        let hash = super::random_hash();
        let r = super::Client::new(addr).announce(&super::Announce::new(hash, 6881).leecher());
        assert_eq!(r.leechers, 1, "{what}: UDP announce to {addr}");
    }
    let http = t.http_addr();
    let hash = super::random_hash();
    let r = super::http::get(http, &super::http::HttpAnnounce::new(hash, 6882).target());
    assert_eq!(r.status, 200, "{what}: HTTP announce: {}", r.body_text());
    assert_eq!(r.bencode().int_at("incomplete"), 1, "{what}: HTTP announce");
    let r = super::ws::Peer::connect(http).join(&super::random_hash(), 1000);
    assert_eq!(r["action"], "announce", "{what}: WS announce: {r}");
    assert_eq!(r["incomplete"], 1, "{what}: WS announce: {r}");
}
