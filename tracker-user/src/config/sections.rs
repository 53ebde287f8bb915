//! The sections about the swarm, the protocol rules, UDP, the access list
//! and XDP, with their defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracker_config::ConfigDocs;

/// The in-memory swarm store and the request workers that own its shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Request workers; each owns the torrents whose info hash maps to it.
    /// 1 to 1024.
    pub workers: usize,
    /// Batches that may wait in one request worker's inbox; beyond it,
    /// socket workers drop requests instead of queueing without bound.
    pub channel_capacity: usize,
    /// Seconds between sweeps that drop expired peers and empty torrents.
    pub cleaning_interval: u64,
    /// Seconds after its last announce that a peer is forgotten.
    pub max_peer_age: u64,
    /// UDP/HTTP torrents held. An announce that would add one more is
    /// refused ("tracker is full: torrent limit reached"); existing torrents
    /// keep working. Each request worker holds its share (this / workers,
    /// rounded up). About 100-125 bytes per torrent with its first peer:
    /// the default bounds torrents at about 1.0-1.25 GB.
    pub max_torrents: usize,
    /// UDP/HTTP peers held, both address families. A new peer past it is
    /// refused ("tracker is full: peer limit reached"); known peers always
    /// re-announce. Split between request workers like max_torrents.
    /// About 28-47 bytes per peer beyond a torrent's first: the default
    /// bounds peers at about 1.4-2.4 GB more.
    pub max_peers: usize,
    /// Peers in one torrent, UDP/HTTP and WebTorrent swarms alike (about
    /// 45 MB for a full UDP/HTTP swarm at the default).
    pub max_peers_per_torrent: usize,
    /// UDP/HTTP peers with one IP address in one torrent: clients behind
    /// one NAT differ only by port, but one host varying its port must
    /// not fill a swarm. Not applied to WebTorrent peers, which have no
    /// address in the swarm.
    pub max_peers_per_ip: usize,
    /// WebTorrent torrents held, counted apart from UDP/HTTP ones so a
    /// flood on one protocol cannot lock the other out. About 175 bytes
    /// per torrent with its first peer: about 0.18 GB at the default.
    pub max_ws_torrents: usize,
    /// WebTorrent peers held. About 55-70 bytes per peer beyond a
    /// torrent's first: about 0.35 GB at the default.
    pub max_ws_peers: usize,
    /// Run the request worker in the datagram worker's thread: its
    /// batches are then applied in place, with no channel crossed and no
    /// thread woken (other workers still send theirs, and wake it).
    /// "auto": when there is one request worker and one datagram worker
    /// carries the load, the one UDP socket worker without XDP or the
    /// AF_XDP queue worker with XDP on one RX queue (the default on a
    /// 2-core host); "on": the UDP socket worker always (refused unless
    /// swarm.workers and udp.workers are 1 and xdp.iface is empty); "off":
    /// never, a thread per request worker.
    pub inline: SwarmInline,
}

/// Where the request worker runs: `[swarm] inline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmInline {
    #[default]
    Auto,
    On,
    Off,
}

/// Snapshots of the swarm, so that a restart (an upgrade, a config change,
/// a crash) loses no peer, no completed count and no connection id that
/// clients hold. WebTorrent peers are not kept: their connections close
/// with the tracker. docs/operations.md, "Persistence", says what the file
/// holds and how to back it up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// The snapshot file. Empty turns persistence off: each start begins
    /// empty, with a new connection-id secret. Its directory must exist and
    /// be writable by the tracker (after [privileges]; opened before any
    /// chroot, so give the path as seen from outside it). The file holds
    /// the connection-id secret: it is written mode 0600.
    pub path: PathBuf,
    /// Seconds between periodic snapshots; one is also written at SIGINT
    /// and SIGTERM. A crash loses at most this much.
    pub interval: u64,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            interval: 300,
        }
    }
}

/// Rules shared by every tracker protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Seconds a client is told to wait between announces.
    pub announce_interval: u32,
    /// Peers returned when the client asks for the default (numwant -1 or absent).
    /// At most max_numwant.
    pub default_numwant: usize,
    /// Most peers returned by one announce, whatever the client asks for.
    pub max_numwant: usize,
}

/// The UDP tracker protocol (BEP 15).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// Addresses to serve BEP 15 on. Every socket worker binds each of them
    /// with SO_REUSEPORT. An empty list turns UDP off.
    pub listen: Vec<SocketAddr>,
    /// Socket workers (threads that receive, parse and answer datagrams).
    pub workers: usize,
    /// Most info hashes answered in one scrape, 1 to 74
    /// (BEP 15: about 74 fit one datagram).
    pub max_scrape_torrents: usize,
    /// Seconds a connection id stays valid (BEP 15 says two minutes).
    pub connection_id_lifetime: u32,
    /// SO_RCVBUF in bytes for each socket; 0 keeps the kernel default (about
    /// 208 KiB). The kernel caps it at net.core.rmem_max (a warning says so).
    pub recv_buffer_size: usize,
    /// Responses one socket worker holds when the kernel will not take
    /// more; beyond it, responses are dropped.
    pub outgoing_queue_len: usize,
    /// Scrapes one socket worker may have waiting on request workers.
    pub max_pending_scrapes: usize,
}

/// Which torrents are served, by info hash. The file is reloaded on SIGUSR1;
/// a bad file keeps the old list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct AccessListConfig {
    /// off: every torrent is served; black: torrents in the file are refused;
    /// white: only torrents in the file are served.
    pub mode: AccessListMode,
    /// File of hex info hashes, one per line, `#` starts a comment.
    /// Required unless mode is off.
    pub path: PathBuf,
}

/// The XDP fast path (Linux): an XDP program steers tracker datagrams into
/// AF_XDP sockets, one per RX queue, and answers connects in the kernel.
/// Needs the program built in (`cargo xtask build-ebpf`) and root, or CAP_BPF,
/// CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK (docs/xdp.md).
/// The plain sockets keep serving whatever the program passes to the kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct XdpConfig {
    /// Interface to attach to (also `--iface`); empty serves on plain sockets only.
    pub iface: String,
    /// auto: driver (native) mode, falling back to generic; or driver, or generic.
    pub attach_mode: XdpAttachMode,
    /// true: exit when XDP cannot be set up; false: warn and serve on plain sockets.
    pub required: bool,
    /// Replace an XDP program another tool attached to the interface;
    /// false refuses to start instead.
    pub replace_existing: bool,
    /// Answer BEP 15 connects in the kernel with XDP_TX, with the same
    /// connection ids userland issues.
    pub connect_in_kernel: bool,
    /// Answer BEP 15 scrapes in the kernel when every hash asked for has
    /// counts published in the program's SCRAPE map (see scrape_map_entries).
    /// Off by default: publishing costs the request workers more than it
    /// saves unless scrapes are a large share of the traffic (docs/xdp.md).
    pub scrape_in_kernel: bool,
    /// Torrents whose scrape counts the kernel map holds (least recently
    /// scraped evicted first); about 100 bytes of kernel memory each.
    pub scrape_map_entries: u32,
    /// Answer announces for the most requested torrents in the kernel, from
    /// a cached pool of peers userland refreshes (see hot_torrents). Off by
    /// default: the cache refresh costs more than it saves where clients
    /// announce with events as often as the benchmark does (docs/xdp.md).
    pub announce_in_kernel: bool,
    /// With announce_in_kernel, answer hot torrents' started and completed
    /// announces in the kernel too, not only the periodic re-announce with
    /// no event. Their effect still reaches the swarm exactly (a completion
    /// is counted once, by the request worker), but the counts in the
    /// answer are the cache's, up to kernel_refresh_ms old, so they leave
    /// out the very event answered. Stopped always goes to userland.
    pub announce_events_in_kernel: bool,
    /// How many of the most requested torrents get a cached answer: about
    /// 1.7 KiB of kernel memory each (an IPv4 and an IPv6 pool).
    pub hot_torrents: u32,
    /// Peers in each hot torrent's cached pool per address family (at most 64).
    pub hot_pool_peers: u32,
    /// Announces per second a torrent needs to get a cached answer: below
    /// it, an entry saves userland less than keeping it costs.
    pub hot_min_rate: u32,
    /// How often userland refreshes the kernel's scrape counts and hot
    /// answers, milliseconds: the most a kernel answer lags the swarm.
    pub kernel_refresh_ms: u64,
    /// Announces answered in the kernel queue in a ring buffer of this many
    /// bytes (a power of two) until userland applies them to the swarm; when
    /// it is full, announces go to userland instead.
    pub ring_bytes: u32,
    /// bpffs directory where the program and its maps are pinned, for bpftool.
    pub pin_path: std::path::PathBuf,
    /// UMEM frames per AF_XDP socket (2048 bytes each; half receive, half transmit).
    pub frame_count: u32,
    /// Ask for zero-copy AF_XDP; copy mode is used where the driver lacks it.
    pub zero_copy: bool,
}

/// Who the tracker runs as once every socket is bound, the XDP program
/// attached and the TLS and access-list files read (empty keeps things as
/// they are). Switching needs the tracker started as root. With a user, the
/// process keeps no capabilities; SIGUSR1 reloads then read the TLS and
/// access-list files as that user, and with a chroot, at their paths inside
/// it (see docs/operations.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct PrivilegesConfig {
    /// User name (or numeric uid) to switch to, "nobody" say; empty stays
    /// the user that started the tracker.
    pub user: String,
    /// Group name (or numeric gid) to switch to; empty: the user's primary
    /// group when a user is set, else the current group.
    pub group: String,
    /// Directory to chroot into; empty: no chroot.
    pub chroot: PathBuf,
}

/// The admin listener: plain HTTP apart from the tracker's ports, for
/// health checks (GET /health: 200 "ok" once every listener and worker is
/// up, 503 naming what is not while starting or stopping). One thread per
/// address, one connection at a time, requests capped at 4 KiB: a few
/// KiB of memory in all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Addresses to serve the admin endpoints on; keep them private
    /// (loopback or a management network). An empty list turns it off.
    /// Default IPv4 loopback only: [::1] fails to bind on hosts with IPv6
    /// off, which would stop a default start.
    pub listen: Vec<SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:6970".parse().unwrap()],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    #[default]
    Auto,
    Driver,
    Generic,
}

impl Default for XdpConfig {
    fn default() -> Self {
        Self {
            iface: String::new(),
            attach_mode: XdpAttachMode::Auto,
            required: false,
            replace_existing: false,
            connect_in_kernel: true,
            scrape_in_kernel: false,
            scrape_map_entries: 262_144,
            announce_in_kernel: false,
            announce_events_in_kernel: false,
            hot_torrents: 4096,
            hot_pool_peers: 50,
            hot_min_rate: 4,
            kernel_refresh_ms: 250,
            ring_bytes: 1 << 20,
            pin_path: "/sys/fs/bpf/tracker".into(),
            frame_count: 4096,
            zero_copy: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessListMode {
    #[default]
    Off,
    Black,
    White,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

pub(super) fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            // Half the cores own the swarm, the rest move packets.
            workers: (available_cores() / 2).max(1),
            channel_capacity: 1024,
            cleaning_interval: 120,
            max_peer_age: 1200,
            // Sized from `cargo run --release -p tracker-swarm --example
            // swarm_memory` (docs/architecture.md, "Limits"): at most about
            // 2.3 GB of torrents plus 2.2 GB of further peers, roomy for
            // the largest public trackers' swarms, bounded on an 8 GB host.
            max_torrents: 10_000_000,
            max_peers: 50_000_000,
            // Beyond the largest real swarms (a few 100k peers); 45 MB.
            max_peers_per_torrent: 1_000_000,
            // A household or office NAT seldom has more than a few clients
            // in one torrent; one host varying its port gets no further.
            max_peers_per_ip: 32,
            // WebTorrent is a far smaller population: about 0.18 GB of
            // torrents plus 0.35 GB of peers at most.
            max_ws_torrents: 1_000_000,
            max_ws_peers: 5_000_000,
            inline: SwarmInline::Auto,
        }
    }
}

impl SwarmConfig {
    /// The limits for the whole tracker; each request worker enforces
    /// [`per_shard`](tracker_swarm::SwarmLimits::per_shard) of them.
    pub fn limits(&self) -> tracker_swarm::SwarmLimits {
        tracker_swarm::SwarmLimits {
            max_torrents: self.max_torrents,
            max_peers: self.max_peers,
            max_ws_torrents: self.max_ws_torrents,
            max_ws_peers: self.max_ws_peers,
            max_peers_per_torrent: self.max_peers_per_torrent,
            max_peers_per_ip: self.max_peers_per_ip,
        }
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            announce_interval: 900,
            default_numwant: 50,
            max_numwant: 50,
        }
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "0.0.0.0:6969".parse().unwrap(),
                "[::]:6969".parse().unwrap(),
            ],
            workers: (available_cores() - (available_cores() / 2).max(1)).max(1),
            max_scrape_torrents: 70,
            connection_id_lifetime: 120,
            // What aquatic_udp asks for: bursts of a busy tracker overrun
            // the kernel's default (208 KiB) long before a worker is busy.
            recv_buffer_size: 8 << 20,
            outgoing_queue_len: 4096,
            max_pending_scrapes: 4096,
        }
    }
}

impl Default for AccessListConfig {
    fn default() -> Self {
        Self {
            mode: AccessListMode::Off,
            path: PathBuf::new(),
        }
    }
}

impl AccessListMode {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessListMode::Off => "off",
            AccessListMode::Black => "black",
            AccessListMode::White => "white",
        }
    }
}

impl fmt::Display for AccessListMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LogLevel {
    /// The name used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
