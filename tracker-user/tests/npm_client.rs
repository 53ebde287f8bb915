//! Interoperability: `bittorrent-tracker` (npm) clients find each other
//! through the tracker and scrape it.
//!
//! Needs `node` and `npm`; installs `tests/npm-clients/node_modules` on
//! first use (`npm install`, from package-lock.json).

mod common;

use std::time::Duration;

use common::ws as w;
use common::*;

#[test]
fn two_npm_clients_find_each_other_and_scrape() {
    let t = Tracker::start_v4();
    let url = format!("udp://127.0.0.1:{}", t.addr().port());
    npm::check_two_clients(&url, "127.0.0.1", None, &t);
}

/// Runs of the pair. The tracker's part (both announces kept, the offer and
/// the answer relayed over the one socket) is asserted on every run; only
/// a WebRTC connection that then fails to open (libdatachannel on a busy
/// machine, as in clients.rs) is tried again.
const WEBRTC_ATTEMPTS: usize = 3;

/// The npm client pools one WebSocket per tracker URL for every client of a
/// process, each with its own peer_id: both must stay in the swarm and
/// reach each other through that one socket.
#[test]
fn two_npm_clients_sharing_one_websocket_connect_over_webrtc() {
    let t = Tracker::start_v4();
    let url = format!("ws://{}", t.http_addr());
    let mut failures = Vec::new();
    for attempt in 1..=WEBRTC_ATTEMPTS {
        let hash = random_hash();
        let run = npm::run_shared_socket(&url, &hex(&hash));
        let seen = &run.seen;
        let context = || {
            format!(
                "attempt {attempt}: {seen}\nstderr:\n{}\ntracker stderr:\n{}",
                run.stderr,
                t.stderr_text()
            )
        };
        assert_eq!(
            (&seen["sockets"], &seen["consumers"]),
            (&1.into(), &2.into()),
            "the clients must share one socket: {}",
            context()
        );
        let (a, b) = (&seen["peerIdA"], &seen["peerIdB"]);
        let peers = |key: &str| seen[key].as_array().cloned().unwrap_or_default();
        assert_eq!(
            peers("peersOfA"),
            std::slice::from_ref(b),
            "A's peer is B: {}",
            context()
        );
        assert_eq!(
            peers("peersOfB"),
            std::slice::from_ref(a),
            "B's peer is A: {}",
            context()
        );
        // A WebRTC failure inside the clients' own stack (libdatachannel
        // racing an ICE candidate ahead of its description, seen on a
        // loaded machine) reaches them as a warning too: that is the
        // attempt's WebRTC failing, retried below, not the tracker's.
        let strings = |key: &str| -> Vec<String> {
            seen[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let peer_errors: Vec<String> = strings("peerErrors")
            .iter()
            .map(|e| e.split_once(": ").map_or(e.as_str(), |(_, m)| m).to_owned())
            .collect();
        let tracker_warnings: Vec<String> = strings("warnings")
            .into_iter()
            .filter(|w| !peer_errors.iter().any(|e| w.contains(e.as_str())))
            .collect();
        assert!(
            tracker_warnings.is_empty(),
            "a failure reached the clients: {}",
            context()
        );
        if !run.success || !peer_errors.is_empty() {
            eprintln!("WebRTC did not connect: {}", context());
            failures.push(context());
            continue;
        }
        assert_eq!(seen["dataA"], serde_json::json!(["hello from B"]));
        assert_eq!(seen["dataB"], serde_json::json!(["hello from A"]));
        assert_eq!(
            seen["scrape"],
            serde_json::json!({"complete": 1, "incomplete": 1, "downloaded": 0}),
            "B's scrape counts both clients: {}",
            context()
        );
        // The process exited, closing the one socket: both ids left.
        let mut probe = w::connect(t.http_addr(), "/");
        let left = poll_until(Duration::from_secs(5), || {
            probe.scrape_one(&hash) == w::Counts::default()
        });
        assert!(
            left,
            "ids of a closed connection still counted: {:?}",
            probe.scrape_one(&hash)
        );
        return;
    }
    panic!(
        "WebRTC never connected in {WEBRTC_ATTEMPTS} attempts:\n{}",
        failures.join("\n")
    );
}
