//! What torrents and peers cost in memory, for the [swarm] limits' docs
//! and the memory section of docs/architecture.md:
//!
//! `cargo run --release -p tracker-swarm --example swarm_memory -- TORRENTS PEERS_EACH [ws|shared]`
//! fills one shard with TORRENTS swarms of PEERS_EACH peers each;
//!
//! `cargo run --release -p tracker-swarm --example swarm_memory -- profile [TORRENTS PEERS]`
//! builds the population aquatic's default load profile prefills (1 M
//! torrents, 2 M peers, a hot head of popular torrents: see
//! tracker-load/src/profile.rs, whose draws this repeats), as `cargo xtask
//! bench udp` does over the network, so the figure can be compared with
//! the bench's bytes per peer without running it.
//!
//! Both print the resident-memory growth per torrent and per peer
//! (allocator slack and table growth included), with the tracker's
//! allocator set up as the binary sets it.

mod common;
use common::hash;
use std::net::Ipv4Addr;
use std::time::Instant;

use tracker_proto::udp::PeerV4;
use tracker_proto::{AnnounceEvent, PeerId};
use tracker_swarm::{Announce, ConnRef, SwarmShard, WsAnnounce};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`, as tracker-user's main.rs sets it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    // SAFETY: sets a process-wide option before any thread is started.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "profile") {
        let torrents = args
            .get(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1_000_000);
        let peers = args
            .get(3)
            .and_then(|a| a.parse().ok())
            .unwrap_or(2_000_000);
        return profile(torrents, peers);
    }
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

/// tracker-load's `Popularity`: torrent `i` weighs
/// `n / peers + exp(head - decay * i / n)`, drawn by inverting the uniform
/// and the geometric part apart.
struct Popularity {
    n: u32,
    hot_share: f64,
    ln_ratio: f64,
    hot_mass: f64,
}

impl Popularity {
    /// aquatic_udp_load_test's defaults, as tracker-load's.
    const HEAD: f64 = 6.5;
    const DECAY: f64 = 500.0;

    fn new(n: u32, peers: u32) -> Self {
        let nf = f64::from(n);
        let ln_ratio = -Self::DECAY / nf;
        let hot_mass = -(-Self::DECAY).exp_m1();
        let hot_total = Self::HEAD.exp() * hot_mass / -ln_ratio.exp_m1();
        let floor_total = nf / f64::from(peers) * nf;
        Self {
            n,
            hot_share: hot_total / (hot_total + floor_total),
            ln_ratio,
            hot_mass,
        }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> u32 {
        if rng.f64() < self.hot_share {
            let u = rng.f64();
            (((-u * self.hot_mass).ln_1p() / self.ln_ratio) as u32).min(self.n - 1)
        } else {
            rng.u32(..self.n)
        }
    }
}

/// tracker-load's `mix64` (SplitMix64's finaliser).
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Every client of the profile announces once into one shard (the bench
/// runs one request worker), from one address as the loopback bench's
/// generator does, each from its own port; 75 % are seeders that say
/// `completed`, as in tracker-load. Then each announces again (a refresh,
/// the steady state's common case, asking for 50 peers), timed.
fn profile(torrents: u32, peers: u32) {
    let popularity = Popularity::new(torrents, peers);
    let client = |index: u32| {
        let mut rng = fastrand::Rng::with_seed(mix64(u64::from(index)));
        let torrent = popularity.sample(&mut rng);
        let seeder = rng.f64() < 0.75;
        let port = rng.u16(1..);
        Announce {
            info_hash: hash(u64::from(torrent)),
            peer: PeerV4::new(Ipv4Addr::LOCALHOST, port),
            event: if seeder {
                AnnounceEvent::Completed
            } else {
                AnnounceEvent::Started
            },
            seeder,
            numwant: 0,
        }
    };
    let announces: Vec<_> = (0..peers).map(client).collect();
    let mut shard = SwarmShard::new(fastrand::Rng::with_seed(1));
    let mut out = Vec::new();
    let before = rss_bytes();
    let started = Instant::now();
    for announce in &announces {
        shard.announce(announce, 0, &mut out).expect("unlimited");
    }
    let fill = started.elapsed();
    let grown = rss_bytes().saturating_sub(before) as f64;
    // The fastest of a few passes: the machine may be shared.
    let refresh = (1..=3)
        .map(|pass| {
            let started = Instant::now();
            for announce in &announces {
                let mut again = *announce;
                again.event = AnnounceEvent::None;
                again.numwant = 50;
                out.clear();
                shard.announce(&again, pass, &mut out).expect("unlimited");
            }
            started.elapsed()
        })
        .min()
        .expect("three passes");
    let (held, torrents_held) = (shard.peer_count() as f64, shard.torrent_count() as f64);
    println!(
        "profile {torrents} torrents x {peers} clients: {held} peers in {torrents_held} torrents, \
         {:.1} MiB, {:.1} bytes per peer, {:.1} bytes per torrent; \
         {:.0} ns per new peer, {:.0} ns per re-announce (numwant 50)",
        grown / (1 << 20) as f64,
        grown / held,
        grown / torrents_held,
        fill.as_nanos() as f64 / f64::from(peers),
        refresh.as_nanos() as f64 / f64::from(peers),
    );
}
