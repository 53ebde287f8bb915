//! `[profile] event_share` on the wire: tracker-load's UDP socket sender
//! against a minimal BEP 15 tracker in this test that answers every
//! request and tallies the event field (bytes 80..84) of each announce.

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Announces seen, by BEP 15 event: none, completed, started, stopped.
type Tally = [u64; 4];

/// Answers connects, announces (no peers) and scrapes (zero counts) on
/// `socket` until `stop`, and returns the announces' events.
fn serve(socket: UdpSocket, stop: Arc<AtomicBool>) -> Tally {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut tally = [0u64; 4];
    let mut buf = [0u8; 2048];
    let mut out = Vec::with_capacity(2048);
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let request = &buf[..n];
        if n < 16 {
            continue;
        }
        let action = u32::from_be_bytes(request[8..12].try_into().unwrap());
        let txid = &request[12..16];
        out.clear();
        out.extend_from_slice(&action.to_be_bytes());
        out.extend_from_slice(txid);
        match action {
            0 => out.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes()),
            1 if n >= 98 => {
                let event = u32::from_be_bytes(request[80..84].try_into().unwrap());
                tally[(event as usize).min(3)] += 1;
                // Interval, leechers, seeders; no peers.
                out.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            2 => {
                // Seeders, completed, leechers of each hash: all 0.
                out.resize(8 + (n - 16) / 20 * 12, 0);
            }
            _ => continue,
        }
        let _ = socket.send_to(&out, from);
    }
    tally
}

/// Runs tracker-load for a second with `event_share` against a fresh
/// tracker of this test's and returns what it announced.
fn announces_with(event_share: f64) -> Tally {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address").to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        thread::spawn(move || serve(socket, stop))
    };
    let dir = std::env::temp_dir().join(format!(
        "tracker-load-event-share-{}-{event_share}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("load.toml");
    std::fs::write(
        &config,
        format!(
            "[profile]\ntorrents = 100\npeers = 1000\nevent_share = {event_share}\n\n\
             [udp]\nworkers = 1\nsockets_per_worker = 2\nwarmup = 0.2\n"
        ),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_tracker-load"))
        .args(["udp", "-c"])
        .arg(&config)
        .args(["--tracker", &addr, "--duration", "1", "--json"])
        .output()
        .expect("run tracker-load");
    stop.store(true, Ordering::Relaxed);
    let tally = server.join().expect("server thread");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "tracker-load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Enough announces for the shares below to mean something.
    assert!(tally.iter().sum::<u64>() > 2_000, "{tally:?}");
    tally
}

#[test]
fn event_share_zero_announces_only_reannounces() {
    let [none, completed, started, stopped] = announces_with(0.0);
    assert_eq!((completed, started, stopped), (0, 0, 0), "none: {none}");
}

#[test]
fn event_share_one_names_every_event() {
    let [none, completed, started, stopped] = announces_with(1.0);
    assert_eq!((none, stopped), (0, 0));
    // 75 % of clients are seeders (completed), the rest leechers.
    let seeders = completed as f64 / (completed + started) as f64;
    assert!((0.6..0.9).contains(&seeders), "{completed} : {started}");
}

#[test]
fn event_share_quarter_names_a_quarter() {
    let [none, completed, started, stopped] = announces_with(0.25);
    assert_eq!(stopped, 0);
    let total = (none + completed + started) as f64;
    let share = (completed + started) as f64 / total;
    // Binomial: five standard deviations either side.
    let tolerance = 5.0 * (0.25 * 0.75 / total).sqrt();
    assert!(
        (share - 0.25).abs() <= tolerance,
        "{share} of {total} announces named an event"
    );
}
