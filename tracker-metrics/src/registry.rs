//! [`Metrics`]: where every worker's block is registered at start, and
//! where a scrape reads them all into one [`Snapshot`].

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::blocks::{ConnectionCounters, RequestCounters, SwarmGauges};
use crate::counter::{sum, CacheAligned};
use crate::history::History;
use crate::labels::{
    Action, ErrorKind, Family, Limit, Protocol, Refusal, Relay, Role, Store, Timeout,
};
use crate::os::{self, ProcessFigures, ProcessSource};

/// Reads the XDP program's per-CPU counters summed across CPUs; `None`
/// when the map cannot be read. Given by whoever attached the program.
pub type XdpCounterReader = Box<dyn FnMut() -> Option<XdpProgramCounters> + Send>;

/// The XDP program's counters, as (name, value) in the program's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpProgramCounters {
    /// What became of each frame (every frame has one outcome, so `seen`
    /// is the sum of the others), and `seen` itself.
    pub packets: Vec<(&'static str, u64)>,
    /// Why the program did what it did with some of them (a bad
    /// connection id, a scrape with an unknown hash…): counted besides
    /// the outcome, not instead of it.
    pub events: Vec<(&'static str, u64)>,
}

/// How XDP is attached, for the stats page and `tracker_xdp_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpStatus {
    pub iface: String,
    /// `driver`, `generic` (skb) or `offload`.
    pub mode: String,
    /// AF_XDP sockets, one per RX queue.
    pub queues: usize,
    /// Whether every AF_XDP socket runs zero-copy (else copy mode).
    pub zero_copy: bool,
}

/// Every block of counters and every scrape-time source, registered while
/// the tracker starts. Only registration and scrapes take its lock, never
/// a worker's hot path: workers hold their own `Arc` to their block.
pub struct Metrics {
    started: Instant,
    version: &'static str,
    inner: Mutex<Sources>,
    history: History,
}

#[derive(Default)]
struct Sources {
    requests: Vec<Arc<CacheAligned<RequestCounters>>>,
    connections: Vec<Arc<CacheAligned<ConnectionCounters>>>,
    swarm: Vec<Arc<CacheAligned<SwarmGauges>>>,
    /// Duplicates of the UDP sockets' fds, for their drop counters.
    udp_sockets: Vec<OwnedFd>,
    xdp: Option<XdpStatus>,
    xdp_counters: Option<XdpCounterReader>,
    /// (RX queue, duplicate of its AF_XDP socket's fd).
    xsk_sockets: Vec<(u32, OwnedFd)>,
    process: Option<ProcessSource>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("version", &self.version)
            .finish()
    }
}

impl Metrics {
    /// Opens the process's /proc entries now, while they can be opened;
    /// without them the `process_*` figures are left out.
    pub fn new(version: &'static str) -> Self {
        let process = match ProcessSource::open() {
            Ok(source) => Some(source),
            Err(e) => {
                log::warn!("process metrics unavailable: cannot open /proc/self: {e}");
                None
            }
        };
        Self {
            started: Instant::now(),
            version,
            inner: Mutex::new(Sources {
                process,
                ..Sources::default()
            }),
            history: History::default(),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        // A panic while holding it left plain data behind, still readable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block for a new front end (UDP socket, AF_XDP queue or HTTP/WS
    /// socket worker).
    pub fn request_counters(&self) -> Arc<CacheAligned<RequestCounters>> {
        let block = Arc::default();
        self.sources().requests.push(Arc::clone(&block));
        block
    }

    /// A block for a new HTTP/WS socket worker's connections.
    pub fn connection_counters(&self) -> Arc<CacheAligned<ConnectionCounters>> {
        let block = Arc::default();
        self.sources().connections.push(Arc::clone(&block));
        block
    }

    /// A block for a new request worker's shard.
    pub fn swarm_gauges(&self) -> Arc<CacheAligned<SwarmGauges>> {
        let block = Arc::default();
        self.sources().swarm.push(Arc::clone(&block));
        block
    }

    /// A UDP socket whose receive-buffer drops are reported.
    pub fn add_udp_socket(&self, socket: OwnedFd) {
        self.sources().udp_sockets.push(socket);
    }

    /// The attached XDP program: how, and how to read its counters.
    pub fn set_xdp(&self, status: XdpStatus, counters: XdpCounterReader) {
        let mut sources = self.sources();
        sources.xdp = Some(status);
        sources.xdp_counters = Some(counters);
    }

    /// An AF_XDP socket whose ring statistics are reported.
    pub fn add_xsk_socket(&self, queue: u32, socket: OwnedFd) {
        self.sources().xsk_sockets.push((queue, socket));
    }

    /// Records the request totals for the stats page's chart; called by the
    /// main thread every [`crate::HISTORY_INTERVAL`].
    pub fn sample_history(&self) {
        let snapshot = self.snapshot();
        self.history.push(&snapshot);
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Every figure now, summed over workers.
    pub fn snapshot(&self) -> Snapshot {
        let mut sources = self.sources();
        let s = &mut *sources;
        let mut snap = Snapshot {
            version: self.version,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            unix_time_seconds: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            ..Snapshot::default()
        };
        for p in Protocol::ALL {
            let i = p.index();
            for a in Action::ALL {
                snap.requests[i][a.index()] = sum(&s.requests, |b| b.requests(*p, *a));
                snap.responses[i][a.index()] = sum(&s.requests, |b| b.responses(*p, *a));
            }
            for k in ErrorKind::ALL {
                snap.errors[i][k.index()] = sum(&s.requests, |b| b.errors(*p, *k));
            }
            snap.dropped[i] = sum(&s.requests, |b| b.dropped_count(*p));
            snap.open_connections[i] = sum(&s.connections, |b| b.open(*p));
        }
        let c = &mut snap.connections;
        c.accepted = sum(&s.connections, ConnectionCounters::accepted);
        for r in Refusal::ALL {
            c.refused[r.index()] = sum(&s.connections, |b| b.refused[r.index()].get());
        }
        for t in Timeout::ALL {
            c.timeouts[t.index()] = sum(&s.connections, |b| b.timeouts[t.index()].get());
        }
        c.tls_handshake_failures = sum(&s.connections, |b| b.tls_handshake_failures.get());
        c.slow_readers = sum(&s.connections, |b| b.slow_readers.get());
        for r in Relay::ALL {
            c.relayed[r.index()] = sum(&s.connections, |b| b.relayed[r.index()].get());
        }
        c.relays_dropped = sum(&s.connections, |b| b.relays_dropped.get());
        let w = &mut snap.swarm;
        for st in Store::ALL {
            w.torrents[st.index()] = sum(&s.swarm, |b| b.torrents[st.index()].get());
            for l in Limit::ALL {
                w.refused[st.index()][l.index()] =
                    sum(&s.swarm, |b| b.refused[st.index()][l.index()].get());
            }
        }
        for f in Family::ALL {
            for r in Role::ALL {
                w.peers[f.index()][r.index()] =
                    sum(&s.swarm, |b| b.peers[f.index()][r.index()].get());
            }
        }
        for r in Role::ALL {
            w.ws_peers[r.index()] = sum(&s.swarm, |b| b.ws_peers[r.index()].get());
        }
        w.completed = sum(&s.swarm, |b| b.completed.get());
        snap.udp_receive_buffer_drops = s
            .udp_sockets
            .iter()
            .filter_map(|fd| os::udp_socket_drops(fd).ok())
            .sum();
        if let Some(status) = &s.xdp {
            let program = s.xdp_counters.as_mut().and_then(|read| read());
            let mut rings = [0u64; 6];
            for (_, fd) in &s.xsk_sockets {
                if let Ok(stats) = os::xsk_statistics(fd) {
                    for (total, v) in rings.iter_mut().zip(stats) {
                        *total += v;
                    }
                }
            }
            let program = program.unwrap_or_default();
            snap.xdp = Some(XdpSnapshot {
                status: status.clone(),
                program: program.packets,
                events: program.events,
                rings,
                scrape_entries: sum(&s.swarm, |b| b.kernel_scrape_entries.get()),
            });
        }
        snap.process = s.process.as_ref().and_then(|p| p.read().ok());
        snap
    }
}

/// Every figure at one instant, summed over workers: what `/metrics`,
/// `/stats.json` and the stats page show. Arrays are indexed by the label
/// enums' `index()`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub version: &'static str,
    pub uptime_seconds: f64,
    pub unix_time_seconds: f64,
    pub requests: [[u64; Action::COUNT]; Protocol::COUNT],
    pub responses: [[u64; Action::COUNT]; Protocol::COUNT],
    pub errors: [[u64; ErrorKind::COUNT]; Protocol::COUNT],
    pub dropped: [u64; Protocol::COUNT],
    pub open_connections: [u64; Protocol::COUNT],
    pub connections: ConnectionSnapshot,
    pub swarm: SwarmSnapshot,
    pub udp_receive_buffer_drops: u64,
    pub xdp: Option<XdpSnapshot>,
    pub process: Option<ProcessFigures>,
}

impl Snapshot {
    /// Requests of every action for one protocol.
    pub fn requests_of(&self, protocol: Protocol) -> u64 {
        self.requests[protocol.index()].iter().sum()
    }

    /// Connects the XDP program answered itself (0 without XDP).
    pub fn connects_in_kernel(&self) -> u64 {
        self.xdp.as_ref().map_or(0, |x| {
            x.program
                .iter()
                .find(|(name, _)| *name == "answered")
                .map_or(0, |(_, v)| *v)
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionSnapshot {
    pub accepted: u64,
    pub refused: [u64; Refusal::COUNT],
    pub timeouts: [u64; Timeout::COUNT],
    pub tls_handshake_failures: u64,
    pub slow_readers: u64,
    pub relayed: [u64; Relay::COUNT],
    pub relays_dropped: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwarmSnapshot {
    pub torrents: [u64; Store::COUNT],
    pub peers: [[u64; Role::COUNT]; Family::COUNT],
    pub ws_peers: [u64; Role::COUNT],
    pub completed: u64,
    pub refused: [[u64; Limit::COUNT]; Store::COUNT],
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct XdpSnapshot {
    pub status: XdpStatus,
    /// The program's outcome counters, summed over CPUs, in its own order.
    pub program: Vec<(&'static str, u64)>,
    /// The program's event counters ([`XdpProgramCounters::events`]).
    pub events: Vec<(&'static str, u64)>,
    /// Torrents whose scrape counts the request workers last wrote to the
    /// program's SCRAPE map (the map may have evicted some since).
    pub scrape_entries: u64,
    /// AF_XDP ring statistics summed over queues, in
    /// [`os::XSK_STATISTICS`] order.
    pub rings: [u64; 6],
}
