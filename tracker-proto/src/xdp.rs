//! Types shared by the XDP program (`tracker-ebpf`) and userland: map
//! names, keys and values. Both sides compile this file, so a layout change
//! cannot leave them disagreeing.

/// The program's name as `bpftool prog show` lists it.
pub const PROGRAM_NAME: &str = "tracker_xdp";

/// AF_XDP sockets by RX queue index (`BPF_MAP_TYPE_XSKMAP`).
pub const MAP_XSKS: &str = "XSKS";
/// Tracker addresses to steer: [`ListenKey`] → unused `u32`.
pub const MAP_LISTEN: &str = "LISTEN";
/// One [`ConnectState`] at index 0.
pub const MAP_CONNECT: &str = "CONNECT";
/// Per-CPU `u64` counters indexed by [`counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Scrape counts userland publishes: 20-byte info hash → [`ScrapeEntry`]
/// (`BPF_MAP_TYPE_LRU_HASH`, size set at load from the config).
pub const MAP_SCRAPE: &str = "SCRAPE";
/// Cached announce answers for hot torrents, IPv4 requesters: 20-byte info
/// hash → [`HotV4`] (`BPF_MAP_TYPE_HASH`, size set at load).
pub const MAP_HOT_V4: &str = "HOT_V4";
/// The same for IPv6 requesters: info hash → [`HotV6`].
pub const MAP_HOT_V6: &str = "HOT_V6";
/// Announces answered in the kernel, handed to userland to apply to the
/// swarm: a `BPF_MAP_TYPE_RINGBUF` of [`KernelAnnounce`] records.
pub const MAP_ANNOUNCED: &str = "ANNOUNCED";
/// Per-CPU scratch where the program keeps a scrape's entries between
/// finding every hash and writing the answer (too big for its stack).
pub const MAP_SCRAPE_SCRATCH: &str = "SCRAPE_SCRATCH";

/// Most hashes a scrape answered in the kernel may ask for: BEP 15's 74,
/// the most userland answers (`udp.max_scrape_torrents` may be lower).
pub const SCRAPE_MAX_HASHES: usize = 74;
/// The program's global holding the cap userland applies
/// (`udp.max_scrape_torrents`, a `u32` set at load): a scrape with more
/// hashes goes to userland, which answers only the first ones.
pub const GLOBAL_SCRAPE_MAX_HASHES: &str = "SCRAPE_MAX_HASHES";

pub const MAX_QUEUES: u32 = 64;
pub const MAX_LISTEN: u32 = 64;

/// Peers a hot-torrent cache entry holds per family. The map value is
/// sized for this many; `[xdp] hot_pool_peers` may use fewer.
pub const HOT_POOL_MAX: usize = 64;

/// A tracker address the program steers. An all-zero `ip` matches any
/// destination address of that family, as a socket bound to 0.0.0.0 or
/// [::] would.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListenKey {
    /// IPv4 in the first 4 bytes, the rest zero; IPv6 in all 16.
    pub ip: [u8; 16],
    /// UDP port in host order.
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
    pub _pad: u8,
}

impl ListenKey {
    pub const fn v4(ip: [u8; 4], port: u16) -> Self {
        Self {
            ip: [
                ip[0], ip[1], ip[2], ip[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            port,
            family: 4,
            _pad: 0,
        }
    }

    pub const fn v6(ip: [u8; 16], port: u16) -> Self {
        Self {
            ip,
            port,
            family: 6,
            _pad: 0,
        }
    }

    /// The same port and family on any address.
    pub const fn wildcard(&self) -> Self {
        Self {
            ip: [0; 16],
            port: self.port,
            family: self.family,
            _pad: 0,
        }
    }
}

/// What the program needs to answer in the kernel: the connection-id
/// secret and the current tick, which userland rewrites every second so
/// both sides stamp and check ids on the same clock, and which answers are
/// switched on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectState {
    pub k0: u64,
    pub k1: u64,
    /// Unix seconds, as `crate::connection_id` ticks.
    pub tick: u32,
    /// Non-zero: answer connects in the kernel; zero: steer them to userland.
    pub enabled: u32,
    /// Non-zero: answer scrapes whose every hash is in `SCRAPE`.
    pub scrape: u32,
    /// Non-zero: answer announces for torrents in `HOT_V4`/`HOT_V6`.
    pub announce: u32,
    /// The announce interval to put in kernel-answered announces, seconds.
    pub interval: u32,
    /// How long an id stays valid, seconds (`udp.connection_id_lifetime`).
    pub id_lifetime: u32,
    /// Peers for an announce with numwant 0 or negative.
    pub default_numwant: u32,
    /// Most peers one announce gets.
    pub max_numwant: u32,
    /// Non-zero: answer started and completed announces from the cache
    /// too (`[xdp] announce_events_in_kernel`); zero: only event none.
    pub announce_events: u32,
    /// Keeps the size a multiple of 8 with no implicit padding, which
    /// `aya::Pod` requires.
    pub _pad: u32,
}

/// A torrent's scrape figures as they go on the wire (BEP 15 scrape
/// response entry): seeders, completed, leechers, each a big-endian `u32`,
/// so the program copies the 12 bytes as they are.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeEntry {
    pub wire: [u8; 12],
}

impl ScrapeEntry {
    pub const fn new(seeders: u32, completed: u32, leechers: u32) -> Self {
        let (s, c, l) = (
            seeders.to_be_bytes(),
            completed.to_be_bytes(),
            leechers.to_be_bytes(),
        );
        Self {
            wire: [
                s[0], s[1], s[2], s[3], c[0], c[1], c[2], c[3], l[0], l[1], l[2], l[3],
            ],
        }
    }
}

/// The counts a kernel-answered announce reports, big-endian as on the
/// wire (BEP 15 announce response: leechers, then seeders).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotCounts {
    pub leechers_be: [u8; 4],
    pub seeders_be: [u8; 4],
    /// Entries of the pool in use, at most [`HOT_POOL_MAX`].
    pub len: u32,
    /// Userland's refresh generation, for tests and staleness checks.
    pub generation: u32,
}

/// A hot torrent's cached answer for IPv4 requesters: counts and a random
/// pool of compact peers (4-byte address, 2-byte port, both big-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotV4 {
    pub counts: HotCounts,
    pub peers: [[u8; 6]; HOT_POOL_MAX],
}

/// The same for IPv6 requesters: 16-byte address, 2-byte port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HotV6 {
    pub counts: HotCounts,
    pub peers: [[u8; 18]; HOT_POOL_MAX],
}

/// An announce the program answered, for userland to apply to the swarm as
/// if it had arrived through AF_XDP (without sending a response).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelAnnounce {
    /// Bytes left to download, as the request said (host order).
    pub left: u64,
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The requester's source address: IPv4 in the first 4 bytes, rest zero.
    pub ip: [u8; 16],
    /// The request's `key` field (host order).
    pub key: u32,
    /// The port the peer announced (host order), as userland would take it.
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
    /// BEP 15 event: 0 none, 1 completed, 2 started, 3 stopped.
    pub event: u8,
}

/// The program wakes the `ANNOUNCED` ring's reader once, with the record
/// that brings the records waiting to this many: a wakeup per record (the
/// kernel's default while the reader keeps up) costs an interrupt and a
/// thread switch per announce.
/// The reader also drains the ring every round and polls it at least every
/// [`RING_IDLE_POLL_MS`], which bounds how long a lone record waits.
pub const RING_WAKE_RECORDS: u64 = 64;
/// A ring record's size with the ring's 8-byte header.
pub const RING_RECORD_BYTES: u64 = core::mem::size_of::<KernelAnnounce>() as u64 + 8;
/// The longest the ring's reader sleeps while records may be waiting.
pub const RING_IDLE_POLL_MS: u64 = 5;

/// Indices into the per-CPU counter array.
pub mod counter {
    /// Frames the program looked at.
    pub const SEEN: u32 = 0;
    /// Tracker datagrams handed to an AF_XDP socket.
    pub const REDIRECTED: u32 = 1;
    /// Connects answered by the program itself with XDP_TX.
    pub const ANSWERED: u32 = 2;
    /// Frames left to the kernel: not for the tracker, or not parseable.
    pub const PASSED: u32 = 3;
    /// Frames for a tracker port whose headers were inconsistent
    /// (truncated, bad lengths); passed to the kernel, which drops them.
    pub const MALFORMED: u32 = 4;
    /// Scrapes answered by the program with XDP_TX.
    pub const SCRAPE_ANSWERED: u32 = 5;
    /// Announces answered by the program with XDP_TX.
    pub const ANNOUNCE_ANSWERED: u32 = 6;
    /// The first outcome-less counter: those below count why a frame took
    /// the outcome it did, and are not part of `seen`'s sum.
    pub const OUTCOMES: u32 = 7;
    /// Announces or scrapes whose connection id the program refused
    /// (redirected: userland sends the BEP 15 error).
    pub const BAD_CONNECTION_ID: u32 = 7;
    /// Scrapes with a hash missing from `SCRAPE` (redirected).
    pub const SCRAPE_MISS: u32 = 8;
    /// Announces found in the hot cache (answered unless the ring was full).
    pub const HOT_HIT: u32 = 9;
    /// Announces for torrents not in the hot cache (redirected).
    pub const HOT_MISS: u32 = 10;
    /// Announces the program could not hand to userland because the
    /// `ANNOUNCED` ring was full (redirected instead, so nothing is lost).
    pub const RING_FULL: u32 = 11;
    pub const COUNT: u32 = 12;
    /// Names in index order, as docs and metrics show them.
    pub const NAMES: [&str; COUNT as usize] = [
        "seen",
        "redirected",
        "answered",
        "passed",
        "malformed",
        "scrape_answered",
        "announce_answered",
        "bad_connection_id",
        "scrape_miss",
        "hot_hit",
        "hot_miss",
        "ring_full",
    ];
}

// Layouts are part of the contract with the kernel object: pin them.
const _: () = assert!(core::mem::size_of::<ListenKey>() == 20);
const _: () = assert!(core::mem::size_of::<ConnectState>() == 56);
const _: () = assert!(core::mem::size_of::<ScrapeEntry>() == 12);
const _: () = assert!(core::mem::size_of::<HotCounts>() == 16);
const _: () = assert!(core::mem::size_of::<HotV4>() == 16 + 6 * HOT_POOL_MAX);
const _: () = assert!(core::mem::size_of::<HotV6>() == 16 + 18 * HOT_POOL_MAX);
const _: () = assert!(core::mem::size_of::<KernelAnnounce>() == 72);

#[cfg(feature = "aya")]
mod aya_pod {
    // SAFETY: plain-old-data with no padding holes (checked sizes above).
    unsafe impl aya::Pod for super::ListenKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnectState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ScrapeEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HotV4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HotV6 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::KernelAnnounce {}
}
