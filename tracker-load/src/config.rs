//! The load generator's configuration: what `-p` prints and `-c FILE` loads.
//!
//! Same conventions as tracker-user's config: every knob has a default,
//! every struct is `deny_unknown_fields` so a typo is an error rather than a
//! silently ignored setting, and errors name file:line:key. The doc comment
//! of each field and section struct is what `-p` prints above it
//! (`#[derive(ConfigDocs)]`), so write them for the operator reading the file.
// Those doc comments are TOML comments first: `[profile]` there names a
// section of the file, not an item to link to.
#![allow(rustdoc::broken_intra_doc_links)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracker_config::{find_key_line, ConfigDocs};

/// The whole file: `[profile]` for every protocol, then one section each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[config(section)]
    pub profile: ProfileConfig,
    #[config(section)]
    pub udp: UdpConfig,
    #[config(section)]
    pub http: HttpConfig,
    #[config(section)]
    pub ws: WsConfig,
}

/// The simulated swarm, for every protocol. Defaults are
/// aquatic_udp_load_test 0.9's, so figures from the two are comparable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// Distinct info hashes requests are spread over.
    pub torrents: u32,
    /// Simulated clients. Each keeps one torrent, one role (seeder or leecher),
    /// one announced port and one set of scraped torrents for the whole run,
    /// and is bound to one UDP socket (as its connection id is) or one HTTP
    /// connection. Over WebSocket a connection is one WebTorrent client with
    /// one peer id, announcing the torrents of the simulated clients bound
    /// to it in turn.
    pub peers: u32,
    /// Relative frequency of connect requests (besides the connects a socket
    /// sends when it has no valid connection id). UDP only: HTTP and
    /// WebSocket have no connect request, so they draw announces and scrapes
    /// by the two weights below alone (50 : 1 by default).
    pub weight_connect: u32,
    /// Relative frequency of announce requests.
    pub weight_announce: u32,
    /// Relative frequency of scrape requests.
    pub weight_scrape: u32,
    /// Peers asked for per announce; negative asks for the tracker's default.
    /// Answers with more peers than this are counted invalid. WebSocket
    /// announces ask for ws.offers_per_request instead.
    pub numwant: i32,
    /// Share of clients that are seeders: they announce left = 0 with event
    /// "completed"; leechers announce left = 50 with event "started"
    /// (aquatic's choice). 0.0 to 1.0.
    pub seeder_probability: f64,
    /// Chance that an announce carries its client's event ("completed" for
    /// seeders, "started" for leechers); otherwise it is a periodic
    /// re-announce with event "none" and the same left. 1.0 is aquatic's
    /// profile, where every announce carries an event; real clients send
    /// "started" once, then mostly re-announces, which 0.1 or so
    /// resembles. 0.0 to 1.0. Applies to UDP, HTTP and WebSocket announces
    /// alike; the UDP prefill's announces always carry the event.
    pub event_share: f64,
    /// Most info hashes per scrape; each client scrapes a uniform
    /// 1..=this many. 1 to 74.
    pub scrape_max_torrents: u32,
    /// Torrent popularity follows aquatic 0.9: torrent i (0 = hottest) is
    /// picked with weight
    ///   torrents / peers + exp(popularity_head - popularity_decay * i / torrents)
    /// (a uniform floor plus an exponentially decaying hot head). With the
    /// defaults about 73 % of picks land on the hottest 1.3 % of torrents.
    /// This key is the natural log of the hottest torrent's weight over the floor.
    pub popularity_head: f64,
    /// How fast popularity falls with rank (see popularity_head); the hot head
    /// spans about popularity_head / popularity_decay of the torrents. 0 is uniform.
    pub popularity_decay: f64,
    /// Seed of every random choice, so runs are repeatable.
    pub seed: u64,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            torrents: 1_000_000,
            peers: 2_000_000,
            weight_connect: 50,
            weight_announce: 50,
            weight_scrape: 1,
            numwant: 30,
            seeder_probability: 0.75,
            event_share: 1.0,
            scrape_max_torrents: 10,
            popularity_head: 6.5,
            popularity_decay: 500.0,
            seed: 0x7472_6163_6b65_7221,
        }
    }
}

/// The UDP tracker protocol (BEP 15).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// The tracker to load (also `--tracker`).
    pub tracker: SocketAddr,
    /// Local addresses sockets bind to, round-robin: several source IPs
    /// (127.0.0.2, 127.0.0.3, ...) spread clients over a tracker's
    /// SO_REUSEPORT sockets. Same address family as tracker.
    pub bind: Vec<IpAddr>,
    /// Sending threads (also `--workers`), each with its own sockets and clients.
    pub workers: usize,
    /// Sockets per worker; each has its own source port and connection id.
    pub sockets_per_worker: usize,
    /// Most datagrams per sendmmsg/recvmmsg call. 1 to 1024.
    pub batch_size: usize,
    /// Requests one socket keeps outstanding: it sends only while fewer are
    /// unanswered, so the load follows what the tracker answers instead of
    /// flooding. The default (16 x 16 sockets) keeps a one-core tracker busy
    /// without drops; more pushes it into
    /// overload (a little more throughput, and losses).
    pub max_in_flight: usize,
    /// Seconds after which an unanswered request stops counting against
    /// max_in_flight, so a few drops cannot stall a socket.
    /// At most request_timeout.
    pub window_timeout: f64,
    /// Seconds after which an unanswered request is counted as lost.
    pub request_timeout: f64,
    /// Seconds measured after the warmup (also `--duration`). The run ends by
    /// itself after warmup + duration, plus at most request_timeout to collect
    /// late answers.
    pub duration: f64,
    /// Seconds of load before measuring, not counted (connection ids, swarms
    /// and caches fill up).
    pub warmup: f64,
    /// Seconds a connection id is used before a socket asks for a fresh one
    /// (BEP 15 ids live two minutes). An error response also forces a fresh one.
    pub connection_id_max_age: f64,
    /// SO_RCVBUF in bytes per socket; 0 keeps the kernel default
    /// (the kernel caps it at net.core.rmem_max).
    pub recv_buffer_size: usize,
    /// Hand equal-length requests (all connects, all announces of a batch) to
    /// the kernel as one UDP GSO buffer, which it splits into ordinary datagrams:
    /// the tracker sees the same packets, the generator walks the send path once
    /// per batch. Falls back to one by one where the kernel refuses (before 4.18).
    pub gso: bool,
    /// Before the warmup, announce every client of the profile once (also
    /// `--prefill`): each from the socket the load uses for it, with its own
    /// torrent, port and role, and numwant 0. Each socket keeps max_in_flight
    /// announces outstanding; one unanswered after window_timeout is sent
    /// again (8 sends at most). The tracker then holds the whole population
    /// (profile.peers) from the start instead of what a short run happens to
    /// draw. The report gains prefill_seconds, prefilled_peers (clients
    /// confirmed), prefill_failed, prefill_swarm_peers (distinct (source
    /// address, port, torrent) among them: what the tracker should hold) and
    /// prefill_swarm_torrents. Clients of a torrent share a port by chance:
    /// more bind addresses make fewer of them collide.
    pub prefill: bool,
    /// Send through an AF_XDP socket on this interface (queue 0) instead of
    /// UDP sockets: requests are whole Ethernet/IPv4/UDP frames put on its
    /// TX ring and answers are read from its RX ring, so the client
    /// kernel's UDP stack is out of the way. Needs root, an IPv4 tracker on
    /// the interface's link, and one worker. The generator attaches its own
    /// XDP program to the interface (every frame to its socket), so the
    /// interface is the generator's alone while it runs: the tracker's side
    /// needs a route for xdp_source_first's range via this end's address
    /// and a permanent neighbour entry for that address. bind,
    /// sockets_per_worker, gso and recv_buffer_size do not apply; prefill
    /// announces from the simulated sources, xdp_in_flight at a time.
    pub xdp_iface: String,
    /// First simulated source address of the AF_XDP sender; the range is
    /// xdp_source_count consecutive IPv4 addresses, each one client
    /// endpoint (port 40000) with its own connection id, obtained once and
    /// reused until connection_id_max_age, as a real client does.
    /// Clients of the profile are spread over them as over sockets.
    pub xdp_source_first: Ipv4Addr,
    /// How many simulated source addresses (see xdp_source_first).
    pub xdp_source_count: u32,
    /// The tracker's MAC address (aa:bb:cc:dd:ee:ff) for the AF_XDP sender;
    /// empty asks the kernel's neighbour table (after a probe datagram)
    /// before the sender's XDP program takes the interface over.
    pub xdp_dest_mac: String,
    /// Requests the AF_XDP sender keeps unanswered over all its sources
    /// (its send window; max_in_flight is per socket and does not apply).
    /// The default is the socket sender's 16 x 16, and veth's limit: a veth
    /// end queues at most 256 frames for its receive thread and drops the
    /// rest, so a wider window loses answers whenever the client end's
    /// thread falls behind.
    pub xdp_in_flight: usize,
    /// AF_XDP UMEM frames (2 KiB each), half for receiving, half for sending.
    pub xdp_frame_count: u32,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            tracker: SocketAddr::from(([127, 0, 0, 1], 6969)),
            bind: vec![IpAddr::from([127, 0, 0, 1])],
            workers: 1,
            sockets_per_worker: 16,
            batch_size: 64,
            max_in_flight: 16,
            window_timeout: 0.05,
            request_timeout: 1.0,
            duration: 12.0,
            warmup: 2.0,
            connection_id_max_age: 60.0,
            recv_buffer_size: 1 << 20,
            gso: true,
            prefill: false,
            xdp_iface: String::new(),
            xdp_source_first: Ipv4Addr::new(10, 202, 0, 1),
            xdp_source_count: 4096,
            xdp_dest_mac: String::new(),
            xdp_in_flight: 256,
            xdp_frame_count: 16384,
        }
    }
}

/// The HTTP tracker protocol (BEP 3, compact peers). Each request is a
/// keep-alive GET /announce (uploaded=0, downloaded=0, left and event as
/// for UDP, numwant, compact=1) or GET /scrape with the client's hashes.
/// Answers must be bencoded and complete: interval, complete, incomplete
/// and peers (6 bytes each) for an announce, a files entry for every
/// hash asked for a scrape; a failure reason counts as an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The tracker to load (also `--tracker`).
    pub tracker: SocketAddr,
    /// Sending threads (also `--workers`), each running its own connections.
    pub workers: usize,
    /// Keep-alive TCP connections, over all workers (at least one each). A
    /// connection the tracker closes is opened again. With one request in
    /// flight each, a tracker that answers slowly (aquatic_http takes some
    /// 8 ms whatever its load) needs many to be kept busy.
    pub connections: usize,
    /// Requests one connection keeps outstanding (HTTP/1.1 pipelining); 1
    /// waits for each answer before the next request, as clients do.
    /// aquatic_http 0.9 answers only the first of pipelined requests.
    pub pipeline: usize,
    /// Speak HTTPS. For benchmarking only: any certificate is accepted, so
    /// the tracker can use a self-signed one.
    pub tls: bool,
    /// Seconds after which an unanswered request is counted as lost; its
    /// connection is closed (the answers behind it could never arrive) and
    /// opened again.
    pub request_timeout: f64,
    /// Seconds measured after the warmup (also `--duration`).
    pub duration: f64,
    /// Seconds of load before measuring, not counted (connections open,
    /// swarms fill up).
    pub warmup: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            tracker: SocketAddr::from(([127, 0, 0, 1], 6969)),
            workers: 1,
            connections: 256,
            pipeline: 1,
            tls: false,
            request_timeout: 2.0,
            duration: 12.0,
            warmup: 2.0,
        }
    }
}

/// The WebTorrent tracker protocol (JSON over WebSocket), as
/// aquatic_ws_load_test drives it. Each connection is a client with its own
/// peer id that announces torrents with offers (fake SDP) and answers
/// the offers relayed to it, as WebTorrent clients do; the tracker relays
/// the answers back. Received messages (announce replies, relayed
/// offers and answers, scrape replies) are all counted as responses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// The tracker to load (also `--tracker`).
    pub tracker: SocketAddr,
    /// Sending threads (also `--workers`), each running its own connections.
    pub workers: usize,
    /// WebSocket connections, over all workers (at least one each). Swarms
    /// hold at most this many peers, as peers are keyed by peer id. Each
    /// connection announces the torrents of all its clients over the run,
    /// as aquatic_ws_load_test's do: far more than a browser. A tracker
    /// that caps torrents per connection (tracker-user's
    /// ws.max_torrents_per_connection, 64) answers the rest with failures:
    /// raise the cap, or give [profile] fewer torrents than it.
    pub connections: usize,
    /// Announces and scrapes one connection keeps unanswered (answers to
    /// offers do not count: they go out as offers arrive).
    pub max_in_flight: usize,
    /// Offers in each announce, which is also its numwant
    /// (aquatic_ws_load_test sends 10, aquatic_ws relays at most 10).
    pub offers_per_request: usize,
    /// Share of relayed offers answered, 0.0 to 1.0. WebTorrent clients
    /// answer every offer.
    pub answer_probability: f64,
    /// Speak wss://. For benchmarking only: any certificate is accepted, so
    /// the tracker can use a self-signed one.
    pub tls: bool,
    /// Seconds after which an unanswered announce or scrape is counted as
    /// lost.
    pub request_timeout: f64,
    /// Seconds measured after the warmup (also `--duration`).
    pub duration: f64,
    /// Seconds of load before measuring, not counted (connections open,
    /// swarms fill up).
    pub warmup: f64,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            tracker: SocketAddr::from(([127, 0, 0, 1], 6969)),
            workers: 1,
            connections: 32,
            max_in_flight: 2,
            offers_per_request: 10,
            answer_probability: 1.0,
            tls: false,
            request_timeout: 2.0,
            duration: 12.0,
            warmup: 2.0,
        }
    }
}

/// BEP 15 fits about 74 info hashes in one scrape datagram.
pub const MAX_SCRAPE_TORRENTS: u32 = 74;
/// Caps that keep a typo from asking for absurd memory or thread counts.
pub const MAX_WORKERS: usize = 1024;
pub const MAX_SOCKETS_PER_WORKER: usize = 4096;
pub const MAX_BATCH_SIZE: usize = 1024;
pub const MAX_IN_FLIGHT: usize = 1 << 16;
/// TCP connections per run; each costs a descriptor and some buffers.
pub const MAX_CONNECTIONS: usize = 1 << 16;
/// HTTP requests one connection may pipeline.
pub const MAX_PIPELINE: usize = 1024;
/// aquatic_ws relays at most 10 offers per announce; the reference client
/// sends at most 10. A little headroom for trackers that take more.
pub const MAX_OFFERS: usize = 100;
/// BEP 15 ids live two minutes; older than that every request would fail.
pub const MAX_CONNECTION_ID_AGE: f64 = 120.0;
/// A run is meant to be bounded; a day is plenty for any soak test.
const MAX_RUN_SECS: f64 = 86_400.0;

/// `aa:bb:cc:dd:ee:ff` as six bytes; None for anything else.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Why a configuration was refused, with where to look: the file (or the
/// command line), the line and column when known, and the key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    message: String,
}

#[cfg(test)]
impl ConfigError {
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl ConfigError {
    /// A command line that makes no sense whatever the config says.
    pub fn command_line(key: &str, message: String) -> Self {
        Self {
            origin: "command line".to_owned(),
            line: None,
            column: None,
            key: Some(key.to_owned()),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracker_config::write_place(f, &self.origin, self.line, self.column)?;
        match &self.key {
            Some(key) => write!(f, ": key `{key}`: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses and validates a config file. Keys left out keep their
    /// defaults; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read config file: {e}"),
        })?;
        let config = Self::parse(&text, &origin)?;
        config.check().map_err(|(key, message)| ConfigError {
            line: find_key_line(&text, key),
            origin,
            column: None,
            key: Some(key.to_owned()),
            message,
        })?;
        Ok(config)
    }

    /// Parses TOML text; `origin` names it in errors. Does not validate.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        tracker_config::from_toml(text).map_err(|e| ConfigError {
            origin: origin.to_owned(),
            line: e.line,
            column: e.column,
            key: e.key,
            message: e.message,
        })
    }

    /// Checks what types cannot; `origin` names where the values came from.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|(key, message)| ConfigError {
            origin: origin.to_owned(),
            line: None,
            column: None,
            key: Some(key.to_owned()),
            message,
        })
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        fn range<T: PartialOrd + fmt::Display>(
            key: &'static str,
            value: T,
            min: T,
            max: T,
        ) -> Result<(), (&'static str, String)> {
            // Written so NaN fails too.
            if value >= min && value <= max {
                Ok(())
            } else {
                Err((key, format!("must be between {min} and {max}, got {value}")))
            }
        }

        let p = &self.profile;
        range("profile.torrents", p.torrents, 1, u32::MAX)?;
        range("profile.peers", p.peers, 1, u32::MAX)?;
        let weights =
            u64::from(p.weight_connect) + u64::from(p.weight_announce) + u64::from(p.weight_scrape);
        if weights == 0 || weights > u64::from(u32::MAX) {
            return Err((
                "profile.weight_announce",
                format!("the three weights must sum to between 1 and {}", u32::MAX),
            ));
        }
        range("profile.seeder_probability", p.seeder_probability, 0.0, 1.0)?;
        range("profile.event_share", p.event_share, 0.0, 1.0)?;
        range(
            "profile.scrape_max_torrents",
            p.scrape_max_torrents,
            1,
            MAX_SCRAPE_TORRENTS,
        )?;
        range("profile.popularity_head", p.popularity_head, -50.0, 50.0)?;
        range("profile.popularity_decay", p.popularity_decay, 0.0, 1e6)?;

        let u = &self.udp;
        if u.bind.is_empty() {
            return Err(("udp.bind", "must list at least one address".to_owned()));
        }
        if let Some(ip) = u.bind.iter().find(|ip| ip.is_ipv4() != u.tracker.is_ipv4()) {
            return Err((
                "udp.bind",
                format!(
                    "{ip} is not the same address family as udp.tracker ({})",
                    u.tracker
                ),
            ));
        }
        check_target("udp.tracker", u.tracker)?;
        range("udp.workers", u.workers, 1, MAX_WORKERS)?;
        range(
            "udp.sockets_per_worker",
            u.sockets_per_worker,
            1,
            MAX_SOCKETS_PER_WORKER,
        )?;
        range("udp.batch_size", u.batch_size, 1, MAX_BATCH_SIZE)?;
        range("udp.max_in_flight", u.max_in_flight, 1, MAX_IN_FLIGHT)?;
        range("udp.request_timeout", u.request_timeout, 0.001, 60.0)?;
        range(
            "udp.window_timeout",
            u.window_timeout,
            0.0001,
            u.request_timeout,
        )?;
        range("udp.duration", u.duration, 0.001, MAX_RUN_SECS)?;
        range("udp.warmup", u.warmup, 0.0, MAX_RUN_SECS)?;
        range(
            "udp.connection_id_max_age",
            u.connection_id_max_age,
            0.001,
            MAX_CONNECTION_ID_AGE,
        )?;
        range("udp.recv_buffer_size", u.recv_buffer_size, 0, 1 << 30)?;
        if !u.xdp_iface.is_empty() {
            if !u.tracker.is_ipv4() {
                return Err((
                    "udp.xdp_iface",
                    "the AF_XDP sender speaks IPv4 only; udp.tracker is IPv6".to_owned(),
                ));
            }
            if u.workers != 1 {
                return Err((
                    "udp.workers",
                    "the AF_XDP sender runs one worker (one socket on queue 0)".to_owned(),
                ));
            }
            range("udp.xdp_source_count", u.xdp_source_count, 1, 1 << 20)?;
            if u32::from(u.xdp_source_first)
                .checked_add(u.xdp_source_count - 1)
                .is_none()
            {
                return Err((
                    "udp.xdp_source_count",
                    "runs past 255.255.255.255 from udp.xdp_source_first".to_owned(),
                ));
            }
            if !u.xdp_dest_mac.is_empty() && parse_mac(&u.xdp_dest_mac).is_none() {
                return Err((
                    "udp.xdp_dest_mac",
                    format!(
                        "`{}` is not a MAC address (aa:bb:cc:dd:ee:ff)",
                        u.xdp_dest_mac
                    ),
                ));
            }
            range("udp.xdp_in_flight", u.xdp_in_flight, 1, MAX_IN_FLIGHT)?;
            range("udp.xdp_frame_count", u.xdp_frame_count, 64, 1 << 18)?;
        }

        let h = &self.http;
        check_target("http.tracker", h.tracker)?;
        range("http.workers", h.workers, 1, MAX_WORKERS)?;
        range(
            "http.connections",
            h.connections,
            h.workers,
            MAX_CONNECTIONS,
        )?;
        range("http.pipeline", h.pipeline, 1, MAX_PIPELINE)?;
        range("http.request_timeout", h.request_timeout, 0.001, 60.0)?;
        range("http.duration", h.duration, 0.001, MAX_RUN_SECS)?;
        range("http.warmup", h.warmup, 0.0, MAX_RUN_SECS)?;

        let w = &self.ws;
        check_target("ws.tracker", w.tracker)?;
        range("ws.workers", w.workers, 1, MAX_WORKERS)?;
        range("ws.connections", w.connections, w.workers, MAX_CONNECTIONS)?;
        range("ws.max_in_flight", w.max_in_flight, 1, MAX_IN_FLIGHT)?;
        range("ws.offers_per_request", w.offers_per_request, 0, MAX_OFFERS)?;
        range("ws.answer_probability", w.answer_probability, 0.0, 1.0)?;
        range("ws.request_timeout", w.request_timeout, 0.001, 60.0)?;
        range("ws.duration", w.duration, 0.001, MAX_RUN_SECS)?;
        range("ws.warmup", w.warmup, 0.0, MAX_RUN_SECS)?;
        Ok(())
    }

    /// The whole config as TOML with a `#` comment above every key and
    /// section, values taken from `self`.
    pub fn to_commented_toml(&self) -> String {
        tracker_config::commented_toml(self, HEADER)
    }
}

/// A tracker address must name a host and port one can reach.
fn check_target(key: &'static str, tracker: SocketAddr) -> Result<(), (&'static str, String)> {
    if tracker.port() == 0 || tracker.ip().is_unspecified() {
        return Err((
            key,
            format!("must be a reachable address and port, got {tracker}"),
        ));
    }
    Ok(())
}

const HEADER: &str = "\
# tracker-load configuration.
#
# Load it with `tracker-load udp -c FILE` (or `http`, `ws`): [profile]
# applies to every protocol, each subcommand reads its own section and
# ignores the others. Keys left out keep the defaults shown here; an
# unknown key is an error. Print a fresh copy with `tracker-load udp -p`.
# Command-line options override the file.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(text: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tracker-load-config-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("write temp config");
        path
    }

    fn load_text(text: &str) -> (String, Result<Config, ConfigError>) {
        let path = temp_file(text);
        let result = Config::load(&path);
        let _ = std::fs::remove_file(&path);
        (path.display().to_string(), result)
    }

    #[test]
    fn defaults_are_valid_and_match_aquatic() {
        let c = Config::default();
        assert_eq!(c.validate("x"), Ok(()));
        assert_eq!(c.profile.torrents, 1_000_000);
        assert_eq!(c.profile.peers, 2_000_000);
        assert_eq!(
            (
                c.profile.weight_connect,
                c.profile.weight_announce,
                c.profile.weight_scrape
            ),
            (50, 50, 1)
        );
        assert_eq!(c.profile.numwant, 30);
        assert_eq!(c.profile.scrape_max_torrents, 10);
    }

    #[test]
    fn commented_default_round_trips() {
        let text = Config::default().to_commented_toml();
        let (_, result) = load_text(&text);
        assert_eq!(result.expect("printed config loads"), Config::default());
        // Every key line sits under a comment.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.is_empty() && !line.starts_with('#') {
                assert!(lines[i - 1].starts_with("# "), "{line:?} lacks a comment");
            }
        }
        assert!(text.contains("\n[profile]\n") && text.contains("\n[udp]\n"));
    }

    #[test]
    fn commented_non_default_round_trips() {
        let mut c = Config::default();
        c.profile.torrents = 7;
        c.profile.numwant = -1;
        c.profile.popularity_decay = 0.0;
        c.udp.bind = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        c.udp.tracker = "127.0.0.1:7000".parse().unwrap();
        c.udp.duration = 2.5;
        let (_, result) = load_text(&c.to_commented_toml());
        assert_eq!(result.expect("loads"), c);
    }

    #[test]
    fn every_key_has_a_comment() {
        let toml::Value::Table(root) = toml::Value::try_from(Config::default()).unwrap() else {
            panic!("not a table");
        };
        assert_eq!(
            tracker_config::undocumented_keys::<Config>(&root),
            Vec::<String>::new()
        );
        // Sections and keys alike: 4 sections, 50 keys (6 of them the
        // AF_XDP sender's).
        assert_eq!(tracker_config::key_docs::<Config>().len(), 54);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let (path, result) = load_text("[profile]\ntorrents = 10\n\n[udp]\nworkerz = 2\n");
        let err = result.expect_err("unknown key");
        assert_eq!(err.line(), Some(5));
        assert_eq!(err.key(), Some("udp.workerz"));
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "{path}:5:1: key `udp.workerz`: unknown field `workerz`"
            )),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_and_syntax_errors() {
        let (_, result) = load_text("[udp]\n\nduration = \"long\"\n");
        let err = result.expect_err("bad type");
        assert_eq!((err.line(), err.key()), (Some(3), Some("udp.duration")));
        let (_, result) = load_text("[udp\n");
        let err = result.expect_err("syntax");
        assert_eq!((err.line(), err.key()), (Some(1), None));
    }

    #[test]
    fn integers_are_accepted_for_seconds() {
        let (_, result) = load_text("[udp]\nduration = 3\nwarmup = 0\n");
        let c = result.expect("integers load");
        assert_eq!((c.udp.duration, c.udp.warmup), (3.0, 0.0));
    }

    #[test]
    fn limits_name_file_line_and_key() {
        let (path, result) = load_text("[profile]\npeers = 5\nscrape_max_torrents = 75\n");
        let msg = result.expect_err("75").to_string();
        assert!(
            msg.starts_with(&format!("{path}:3: key `profile.scrape_max_torrents`: ")),
            "{msg}"
        );
        for (text, key) in [
            ("[udp]\nworkers = 0\n", "udp.workers"),
            ("[udp]\nbind = []\n", "udp.bind"),
            ("[udp]\nbind = [\"::1\"]\n", "udp.bind"),
            ("[udp]\nwindow_timeout = 2.0\n", "udp.window_timeout"),
            ("[udp]\nduration = 0\n", "udp.duration"),
            ("[udp]\nduration = nan\n", "udp.duration"),
            ("[udp]\ntracker = \"0.0.0.0:1\"\n", "udp.tracker"),
            (
                "[profile]\nweight_connect = 0\nweight_announce = 0\nweight_scrape = 0\n",
                "profile.weight_announce",
            ),
            (
                "[profile]\nseeder_probability = 1.5\n",
                "profile.seeder_probability",
            ),
            ("[profile]\nevent_share = 1.01\n", "profile.event_share"),
            ("[profile]\nevent_share = -0.5\n", "profile.event_share"),
            ("[profile]\nevent_share = nan\n", "profile.event_share"),
            (
                "[udp]\ntracker = \"[::1]:6969\"\nbind = [\"::1\"]\nxdp_iface = \"veth0\"\n",
                "udp.xdp_iface",
            ),
            ("[udp]\nxdp_iface = \"veth0\"\nworkers = 2\n", "udp.workers"),
            (
                "[udp]\nxdp_iface = \"veth0\"\nxdp_dest_mac = \"02:00:00:00:00\"\n",
                "udp.xdp_dest_mac",
            ),
            (
                "[udp]\nxdp_iface = \"veth0\"\nxdp_source_first = \"255.255.255.0\"\n\
                 xdp_source_count = 512\n",
                "udp.xdp_source_count",
            ),
            (
                "[udp]\nxdp_iface = \"veth0\"\nxdp_source_count = 0\n",
                "udp.xdp_source_count",
            ),
            (
                "[udp]\nxdp_iface = \"veth0\"\nxdp_frame_count = 8\n",
                "udp.xdp_frame_count",
            ),
        ] {
            let (_, result) = load_text(text);
            let err = result.expect_err(text);
            assert_eq!(err.key(), Some(key), "{text}: {err}");
        }
        // The AF_XDP sender prefills too.
        let (_, result) = load_text("[udp]\nxdp_iface = \"veth0\"\nprefill = true\n");
        assert!(result.expect("prefill with xdp_iface").udp.prefill);
    }

    #[test]
    fn mac_addresses_parse_exactly() {
        assert_eq!(
            parse_mac("02:aB:00:ff:10:9c"),
            Some([0x02, 0xab, 0x00, 0xff, 0x10, 0x9c])
        );
        for bad in [
            "",
            "02:ab:00:ff:10",
            "02:ab:00:ff:10:9c:00",
            "2:ab:00:ff:10:9c",
            "0g:00:00:00:00:00",
            "+1:00:00:00:00:00",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
