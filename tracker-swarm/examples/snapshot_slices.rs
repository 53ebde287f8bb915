//! What a snapshot costs a request worker, without the rest of the
//! tracker around it: `cargo run --release -p tracker-swarm --example
//! snapshot_slices -- [TORRENTS] [PEERS]` (default aquatic's profile, 1 M
//! torrents and 2 M peers) fills one shard, then writes its records three
//! times in 1 ms slices as a request worker does between batches, and
//! prints the total, the number of slices and the longest one, in wall
//! and CPU time; then restores the records into a new shard and prints how
//! long that took. `cargo xtask bench persist` measures the whole tracker.

mod common;
use common::hash;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tracker_proto::udp::PeerV4;
use tracker_proto::AnnounceEvent;
use tracker_swarm::snapshot::{SnapshotFile, SnapshotImage, SnapshotRequest};
use tracker_swarm::{Announce, RestoreClock, SnapshotCursor, SwarmShard};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (torrents, peers) = (arg(1, 1_000_000), arg(2, 2_000_000));
    let mut shard = SwarmShard::default();
    let mut out = Vec::new();
    for n in 0..peers {
        let announce = Announce {
            info_hash: hash(n % torrents),
            peer: PeerV4::new(Ipv4Addr::from(n as u32 + 0x0a00_0000), 6881),
            event: AnnounceEvent::Started,
            seeder: n % 3 == 0,
            numwant: 0,
        };
        shard.announce(&announce, 100, &mut out).expect("unlimited");
    }
    let mut last = None;
    for _ in 0..3 {
        let (reply, parts) = crossbeam_channel::bounded(1);
        let request = SnapshotRequest {
            unix_now: 1_000_000,
            clock_now: 100,
            reply,
            spare: Vec::new(),
        };
        let mut cursor = SnapshotCursor::new(request, 0);
        let started = Instant::now();
        while !cursor.step(&shard, Duration::from_millis(1)) {}
        let took = started.elapsed();
        cursor.finish();
        let part = parts.recv().expect("a part");
        println!(
            "records of {} peers in {} torrents: {} bytes ({:.1} per peer) in {:.1} ms, \
             {} slices, longest {} us ({} us of CPU)",
            part.peers,
            part.torrents,
            part.records.len(),
            part.records.len() as f64 / part.peers.max(1) as f64,
            took.as_secs_f64() * 1e3,
            part.slices,
            part.longest_slice.as_micros(),
            part.longest_slice_cpu.as_micros()
        );
        last = Some(part);
    }
    let file = SnapshotFile::new([0; 16], 1_000_000, vec![last.expect("three parts")]);
    let mut bytes = Vec::with_capacity(file.len() as usize);
    file.write_to(&mut bytes).expect("into memory");
    let started = Instant::now();
    let image = SnapshotImage::parse(bytes).expect("a good file");
    let parsed = started.elapsed();
    let mut back = SwarmShard::default();
    let clock = RestoreClock {
        unix_now: 1_000_000,
        clock_now: 3_600,
        max_peer_age: 3_600,
    };
    let report = back.restore(&image, |_| true, |_| true, clock);
    println!(
        "checked in {:.1} ms, restored {} peers in {} torrents in {:.1} ms more",
        parsed.as_secs_f64() * 1e3,
        report.peers,
        report.torrents,
        (started.elapsed() - parsed).as_secs_f64() * 1e3
    );
}
