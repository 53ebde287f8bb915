//! What torrents and peers cost in memory, for the [swarm] limits' docs:
//! `cargo run --release -p tracker-swarm --example swarm_memory -- TORRENTS PEERS_EACH [ws|shared]`
//! fills one shard and prints the resident-memory growth per torrent and
//! per peer (allocator slack and table growth included).

use std::net::Ipv4Addr;

use tracker_proto::udp::PeerV4;
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};
use tracker_swarm::{Announce, ConnRef, SwarmShard, WsAnnounce};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn hash(i: u64) -> InfoHash {
    // Spread like SHA-1 output, as the shard's hasher expects nothing else.
    let mut h = [0u8; 20];
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h[..8].copy_from_slice(&x.to_le_bytes());
    h[8..16].copy_from_slice(&i.to_le_bytes());
    InfoHash(h)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let torrents: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let peers_each: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let ws = args.get(3).is_some_and(|a| a == "ws");
    // Real swarms have a host per peer; `shared` packs 60,000 peers on
    // each address instead, which leaves out the per-IP counts.
    let shared = args.get(3).is_some_and(|a| a == "shared");
    let mut shard = SwarmShard::default();
    let mut out = Vec::new();
    let mut targets = Vec::new();
    let before = rss_bytes();
    for t in 0..torrents {
        for p in 0..peers_each {
            let n = t * peers_each + p;
            if ws {
                let mut id = [0u8; 20];
                id[..8].copy_from_slice(&n.to_le_bytes());
                shard.ws_announce(
                    &WsAnnounce {
                        info_hash: hash(t),
                        peer_id: PeerId(id),
                        conn: ConnRef::default(),
                        event: AnnounceEvent::Started,
                        seeder: false,
                        offers: 0,
                        answer_to: None,
                    },
                    0,
                    &mut targets,
                );
            } else {
                let peer = if shared {
                    let ip = Ipv4Addr::from((n / 60_000) as u32 + 0x0a00_0000);
                    PeerV4::new(ip, (n % 60_000) as u16 + 1)
                } else {
                    PeerV4::new(Ipv4Addr::from(n as u32 + 0x0a00_0000), 6881)
                };
                let announce = Announce {
                    info_hash: hash(t),
                    peer,
                    event: AnnounceEvent::Started,
                    seeder: false,
                    numwant: 0,
                };
                shard.announce(&announce, 0, &mut out).expect("unlimited");
            }
        }
    }
    let grown = rss_bytes().saturating_sub(before) as f64;
    let peers = (torrents * peers_each) as f64;
    println!(
        "{} torrents x {peers_each} {} peers: {:.0} MiB, {:.1} bytes per peer, {:.1} bytes per torrent",
        torrents,
        if ws { "WebTorrent" } else { "UDP/HTTP IPv4" },
        grown / (1 << 20) as f64,
        grown / peers,
        grown / torrents as f64,
    );
}
