//! Memory the tracker gives back: after a flood of torrents has expired,
//! its resident set falls back close to where it started.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Distinct torrents announced; enough to grow the resident set by tens of
/// MiB (~40: a one-peer torrent costs ~100-130 bytes since its peer went
/// inline, so what stays of the process is small beside the flood), few
/// enough for a debug build to take in a few seconds.
const TORRENTS: usize = 300_000;
/// Announces in flight at once: the client waits for answers before it
/// sends more, so the flood lands in the swarm rather than in dropped
/// datagrams (a window of 128 fits the default socket buffers).
const WINDOW: usize = 128;

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad line `{line}`"))
}

#[test]
fn memory_returns_after_every_peer_expired() {
    let tracker = Tracker::builder()
        .config(
            "[swarm]\nworkers = 1\nmax_peer_age = 5\ncleaning_interval = 1\n\n\
             [udp]\nworkers = 1\n",
        )
        .start();
    let pid = tracker.pid();
    let client = Client::new(tracker.addr());
    let conn_id = client.connect();
    client
        .sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let idle = status_kib(pid, "VmRSS:");

    let mut rng = Rng::new();
    let mut answered = 0usize;
    let mut buf = [0u8; 2048];
    let flood_started = Instant::now();
    for window in 0..TORRENTS / WINDOW {
        for i in 0..WINDOW {
            let txid = (window * WINDOW + i) as u32;
            let packet = Announce::new(rng.hash(), 6881).encode(conn_id, txid);
            client.sock.send_to(&packet, tracker.addr()).unwrap();
        }
        let mut got = 0;
        while got < WINDOW {
            match client.sock.recv_from(&mut buf) {
                Ok((n, _)) if n >= 20 && buf[..4] == 1u32.to_be_bytes() => got += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        answered += got;
    }
    let peak = status_kib(pid, "VmHWM:");
    let flood = flood_started.elapsed();
    assert!(
        answered >= TORRENTS * 9 / 10,
        "only {answered} of {TORRENTS} announces answered in {flood:?}"
    );
    // The flood must have cost real memory, or the check below says nothing.
    assert!(
        peak > idle + 16 * 1024,
        "peak {peak} KiB barely above idle {idle} KiB"
    );

    // Every peer expires at most 5 s after the flood ends; cleans every
    // second drop them, and what they held must go back to the kernel.
    let target = idle + (peak - idle) / 4;
    let mut last = peak;
    let fell = poll_until(Duration::from_secs(15), || {
        last = status_kib(pid, "VmRSS:");
        last <= target
    });
    assert!(
        fell,
        "RSS {last} KiB after every peer expired: idle {idle} KiB, peak {peak} KiB \
         (flood of {answered} torrents took {flood:?}); expected at most {target} KiB"
    );
    tracker.assert_no_panic();
}
