//! The tracker's configuration: what `-p` prints and `-c FILE` loads.
//!
//! Every limit the tracker enforces is a field here with a safe default.
//! Each struct is `deny_unknown_fields` so a typo in an operator's file is an
//! error rather than a silently ignored setting. The doc comment of each
//! field and section struct is what `-p` prints above it
//! (`#[derive(ConfigDocs)]`), so write them for the operator reading the file.
// Those doc comments are TOML comments first: `[tls]` there names a section
// of the file, not an item to link to.
#![allow(rustdoc::broken_intra_doc_links)]

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracker_config::{find_key_line, line_column, ConfigDocs};

/// The whole file: top-level keys, then one section per part of the tracker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Least severe log level written to stderr:
    /// off, error, warn, info, debug or trace.
    pub log_level: LogLevel,
    #[config(section)]
    pub swarm: SwarmConfig,
    #[config(section)]
    pub protocol: ProtocolConfig,
    #[config(section)]
    pub udp: UdpConfig,
    #[config(section)]
    pub http: HttpConfig,
    #[config(section)]
    pub ws: WsConfig,
    #[config(section)]
    pub tls: TlsConfig,
    #[config(section)]
    pub access_list: AccessListConfig,
    #[config(section)]
    pub xdp: XdpConfig,
}

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
    /// rounded up). About 234 bytes per torrent with its first peer:
    /// the default bounds torrents at about 2.3 GB.
    pub max_torrents: usize,
    /// UDP/HTTP peers held, both address families. A new peer past it is
    /// refused ("tracker is full: peer limit reached"); known peers always
    /// re-announce. Split between request workers like max_torrents.
    /// About 30-55 bytes per peer beyond a torrent's first: the default
    /// bounds peers at about 2.2 GB more.
    pub max_peers: usize,
    /// Peers in one torrent, UDP/HTTP and WebTorrent swarms alike (about
    /// 55 MB for a full UDP/HTTP swarm at the default).
    pub max_peers_per_torrent: usize,
    /// UDP/HTTP peers with one IP address in one torrent: clients behind
    /// one NAT differ only by port, but one host varying its port must
    /// not fill a swarm. Not applied to WebTorrent peers, which have no
    /// address in the swarm.
    pub max_peers_per_ip: usize,
    /// WebTorrent torrents held, counted apart from UDP/HTTP ones so a
    /// flood on one protocol cannot lock the other out. About 330 bytes
    /// per torrent with its first peer: about 0.33 GB at the default.
    pub max_ws_torrents: usize,
    /// WebTorrent peers held. About 90 bytes per peer beyond a torrent's
    /// first: about 0.45 GB at the default.
    pub max_ws_peers: usize,
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

/// The HTTP tracker protocol (BEP 3, 7, 23, 24, 48). Its listeners also take
/// WebSocket upgrades (WebTorrent) on any path, told apart by the Upgrade header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Plain TCP addresses serving HTTP and WebSocket (also `--http`).
    /// An empty list (with the other TCP lists empty) turns HTTP and WebSocket off.
    pub listen: Vec<SocketAddr>,
    /// TLS addresses serving HTTPS and WSS, with the certificate in [tls].
    pub tls_listen: Vec<SocketAddr>,
    /// Socket workers (threads) for HTTP and WebSocket connections.
    pub workers: usize,
    /// Open connections (HTTP and WebSocket) per socket worker; beyond it new
    /// connections are closed at once.
    pub max_connections: usize,
    /// Bytes of one request's line and headers, 256 to 1048576; a larger request
    /// gets a failure reason and the connection is closed.
    pub max_request_size: usize,
    /// Seconds a client has to send a whole request once it started (slow
    /// clients are dropped).
    pub request_timeout: u64,
    /// Seconds an idle keep-alive HTTP connection stays open.
    pub keep_alive_timeout: u64,
    /// Seconds a new connection has, from accept, to finish its TLS handshake (if
    /// any) and send its first request bytes; a silent one is closed. Keeps idle
    /// connections from holding every slot of max_connections.
    pub first_byte_timeout: u64,
    /// Open connections from one client address (IPv4; IPv6 by /64), over all
    /// socket workers; more are closed at once. Each worker allows its share,
    /// ceil(this / http.workers), about 40 bytes of state per address. Roomy
    /// for carrier-grade NAT. Not applied when real_ip_header is set (every
    /// connection then comes from the proxy).
    pub max_connections_per_ip: usize,
    /// `min interval` in HTTP announce responses, in seconds; 0 leaves it out.
    /// At most protocol.announce_interval.
    pub min_announce_interval: u32,
    /// Most info hashes in one scrape (HTTP and WebSocket); more gets a failure.
    pub max_scrape_torrents: usize,
    /// Answer a scrape without info_hash with every torrent (HTTP: UDP/HTTP
    /// swarms; WebSocket: WebTorrent swarms). Off: such a scrape gets a failure.
    pub full_scrape: bool,
    /// Most torrents in a full scrape answer; the rest are left out.
    pub max_full_scrape_torrents: usize,
    /// Behind a reverse proxy: the header holding the client's address, e.g.
    /// X-Forwarded-For (its last address is used) or X-Real-IP. A request without
    /// it is refused. Empty: the address of the TCP connection.
    pub real_ip_header: String,
}

/// WebTorrent over WebSocket: offers and answers relayed between browsers.
/// WebTorrent swarms are kept apart from UDP/HTTP ones (they cannot reach each
/// other) but share the request workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Plain TCP addresses serving WebSocket only (the [http] listeners take
    /// WebSocket upgrades too).
    pub listen: Vec<SocketAddr>,
    /// TLS addresses serving WebSocket only, with the certificate in [tls].
    pub tls_listen: Vec<SocketAddr>,
    /// Seconds a WebTorrent client is told to wait between announces.
    pub announce_interval: u32,
    /// Bytes of one WebSocket message, 1024 to 16777216; a larger one closes the
    /// connection.
    pub max_message_size: usize,
    /// Offers of one announce relayed to other peers; the rest are ignored
    /// (browsers send up to 10).
    pub max_offers: usize,
    /// Relayed offers one connection may still answer; the oldest are forgotten
    /// first. An answer to an offer not pending is dropped.
    pub max_pending_offers: usize,
    /// Seconds a relayed offer may be answered.
    pub offer_timeout: u64,
    /// Bytes queued for one connection; a reader slower than this is
    /// disconnected. At least max_message_size.
    pub max_outgoing_bytes: usize,
    /// Torrents one connection may announce at once (each peer id's
    /// counted apart); more gets a failure. A browser shares one connection per tracker among all its torrents, answers
    /// included: keep this well above what one user seeds.
    pub max_torrents_per_connection: usize,
    /// Distinct peer ids one connection may announce at once; more gets a
    /// failure. The npm client and browsers share one connection among all
    /// their clients, each with its own peer id. Each (torrent, peer id) pair
    /// counts against max_torrents_per_connection, so this adds at most 24
    /// bytes a peer id to a connection (384 at 16), never more swarm entries.
    pub max_peer_ids_per_connection: usize,
    /// Seconds a WebSocket connection may stay silent before it is closed.
    pub idle_timeout: u64,
}

/// Certificate for the TLS listeners (rustls). Both files are read at start
/// (a bad file stops the tracker, naming it) and again on SIGUSR1 (a bad file
/// keeps the old certificate; open connections are kept either way).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ConfigDocs)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub certificate_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_path: PathBuf,
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
/// Needs the program built in (`cargo xtask build-ebpf`) and CAP_BPF + CAP_NET_ADMIN.
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
    /// bpffs directory where the program and its maps are pinned, for bpftool.
    pub pin_path: std::path::PathBuf,
    /// UMEM frames per AF_XDP socket (2048 bytes each; half receive, half transmit).
    pub frame_count: u32,
    /// Ask for zero-copy AF_XDP; copy mode is used where the driver lacks it.
    pub zero_copy: bool,
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

fn available_cores() -> usize {
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
            // Beyond the largest real swarms (a few 100k peers); 55 MB.
            max_peers_per_torrent: 1_000_000,
            // A household or office NAT seldom has more than a few clients
            // in one torrent; one host varying its port gets no further.
            max_peers_per_ip: 32,
            // WebTorrent is a far smaller population: about 0.33 GB of
            // torrents plus 0.45 GB of peers at most.
            max_ws_torrents: 1_000_000,
            max_ws_peers: 5_000_000,
        }
    }
}

impl SwarmConfig {
    /// The limits for the whole tracker; each request worker enforces
    /// [`per_shard`](crate::swarm::SwarmLimits::per_shard) of them.
    pub fn limits(&self) -> crate::swarm::SwarmLimits {
        crate::swarm::SwarmLimits {
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

impl Default for HttpConfig {
    fn default() -> Self {
        let s = tracker_http_ws::Settings::default();
        Self {
            listen: vec![
                "0.0.0.0:6969".parse().unwrap(),
                "[::]:6969".parse().unwrap(),
            ],
            tls_listen: Vec::new(),
            workers: (available_cores() - (available_cores() / 2).max(1)).max(1),
            max_connections: s.max_connections,
            max_request_size: s.max_request_size,
            request_timeout: s.request_timeout.as_secs(),
            keep_alive_timeout: s.keep_alive_timeout.as_secs(),
            first_byte_timeout: s.first_byte_timeout.as_secs(),
            max_connections_per_ip: s.max_connections_per_ip,
            min_announce_interval: s.min_announce_interval,
            max_scrape_torrents: s.max_scrape_torrents,
            full_scrape: s.full_scrape,
            max_full_scrape_torrents: s.max_full_scrape_torrents,
            real_ip_header: String::new(),
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        let s = tracker_http_ws::Settings::default();
        Self {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            announce_interval: s.ws_announce_interval,
            max_message_size: s.ws_max_message_size,
            max_offers: s.ws_max_offers,
            max_pending_offers: s.ws_max_pending_offers,
            offer_timeout: s.ws_offer_timeout.as_secs(),
            max_outgoing_bytes: s.ws_max_outgoing_bytes,
            max_torrents_per_connection: s.ws_max_torrents_per_connection,
            max_peer_ids_per_connection: s.ws_max_peer_ids_per_connection,
            idle_timeout: s.ws_idle_timeout.as_secs(),
        }
    }
}

impl Config {
    /// Every TCP listener, in the order they are logged.
    pub fn tcp_listeners(&self) -> Vec<tracker_http_ws::ListenerSpec> {
        use tracker_http_ws::{ListenerKind, ListenerSpec};
        let spec = |kind, tls| move |&addr: &SocketAddr| ListenerSpec { addr, kind, tls };
        let mut out = Vec::new();
        out.extend(self.http.listen.iter().map(spec(ListenerKind::Http, false)));
        out.extend(
            self.http
                .tls_listen
                .iter()
                .map(spec(ListenerKind::Http, true)),
        );
        out.extend(self.ws.listen.iter().map(spec(ListenerKind::WsOnly, false)));
        out.extend(
            self.ws
                .tls_listen
                .iter()
                .map(spec(ListenerKind::WsOnly, true)),
        );
        out
    }

    /// Whether any listener speaks TLS.
    pub fn wants_tls(&self) -> bool {
        !self.http.tls_listen.is_empty() || !self.ws.tls_listen.is_empty()
    }

    /// What the HTTP/WebSocket socket workers need, resolved once.
    pub fn http_ws_settings(&self) -> tracker_http_ws::Settings {
        use std::time::Duration;
        let (h, w, p) = (&self.http, &self.ws, &self.protocol);
        let header = h.real_ip_header.trim().to_ascii_lowercase();
        tracker_http_ws::Settings {
            announce_interval: p.announce_interval,
            min_announce_interval: h.min_announce_interval,
            default_numwant: p.default_numwant,
            max_numwant: p.max_numwant,
            max_connections: h.max_connections,
            max_request_size: h.max_request_size,
            request_timeout: Duration::from_secs(h.request_timeout),
            keep_alive_timeout: Duration::from_secs(h.keep_alive_timeout),
            first_byte_timeout: Duration::from_secs(h.first_byte_timeout),
            max_connections_per_ip: h.max_connections_per_ip,
            max_scrape_torrents: h.max_scrape_torrents,
            full_scrape: h.full_scrape,
            max_full_scrape_torrents: h.max_full_scrape_torrents,
            real_ip_header: (!header.is_empty()).then_some(header),
            ws_announce_interval: w.announce_interval,
            ws_max_message_size: w.max_message_size,
            ws_max_offers: w.max_offers,
            ws_max_pending_offers: w.max_pending_offers,
            ws_offer_timeout: Duration::from_secs(w.offer_timeout),
            ws_max_outgoing_bytes: w.max_outgoing_bytes,
            ws_max_torrents_per_connection: w.max_torrents_per_connection,
            ws_max_peer_ids_per_connection: w.max_peer_ids_per_connection,
            ws_idle_timeout: Duration::from_secs(w.idle_timeout),
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

/// Most info hashes one scrape may be answered for. BEP 15 puts the limit
/// at "about 74": a request of 16 + 20 * 74 = 1496 bytes is about what an
/// Ethernet frame carries, and the answer (8 + 12 * 74 = 896 bytes) fits any
/// common MTU, so a larger setting would only serve requests no client sends.
pub const MAX_SCRAPE_TORRENTS_LIMIT: usize = 74;

/// Most HTTP/WebSocket socket workers.
pub const MAX_HTTP_WORKERS: usize = 1024;

/// Most request workers: each is a thread with its own shard, and far more
/// than the machine has cores only adds contention and memory.
pub const MAX_SWARM_WORKERS: usize = 1024;

/// Why a configuration was refused, with where to look: the file (or the
/// command line), the line and column when known, and the key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    message: String,
    kind: ConfigErrorKind,
}

/// What sort of mistake a [`ConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The file is not TOML; no key can be named.
    Syntax,
    /// Valid TOML that does not fit the config: unknown key, wrong type, bad value.
    Invalid,
    /// Every value parsed but a limit checked by [`Config::validate`] failed.
    Limit,
}

impl ConfigError {
    /// The file the error is in, or `command line` when an override was refused.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// 1-based line in the file, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// 1-based column (in characters) in the file, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// Dotted key path such as `udp.workers` or `udp.listen[1]`, when known.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The complaint without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    fn io(path: &Path, e: &std::io::Error) -> Self {
        Self {
            origin: path.display().to_string(),
            line: None,
            column: None,
            key: None,
            message: e.to_string(),
            kind: ConfigErrorKind::Io,
        }
    }

    fn limit(origin: String, line: Option<usize>, violation: Violation) -> Self {
        Self {
            origin,
            line,
            column: None,
            key: Some(violation.keys[0].to_owned()),
            message: violation.message,
            kind: ConfigErrorKind::Limit,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        match (&self.key, self.kind) {
            (_, ConfigErrorKind::Io) => write!(f, "cannot read config file: {}", self.message),
            (Some(key), _) => write!(f, "key `{key}`: {}", self.message),
            (None, ConfigErrorKind::Syntax) => {
                write!(f, "TOML syntax error (no key): {}", self.message)
            }
            (None, _) => write!(f, "(no key): {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A failed limit: the keys involved, the one to blame first, and why.
struct Violation {
    /// Never empty. Later keys are where to look for a line when the first
    /// was left at its default and so is not in the file.
    keys: &'static [&'static str],
    message: String,
}

impl Violation {
    fn new(keys: &'static [&'static str], message: String) -> Self {
        Self { keys, message }
    }
}

impl Config {
    /// Reads, parses and validates a config file. Keys left out keep their
    /// defaults; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        let origin = path.display().to_string();
        let config = Self::parse(&text, &origin)?;
        if let Err(violation) = config.check() {
            let line = violation
                .keys
                .iter()
                .find_map(|key| find_key_line(&text, key));
            return Err(ConfigError::limit(origin, line, violation));
        }
        Ok(config)
    }

    /// Parses TOML text; `origin` names it in errors. Does not validate.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let deserializer = toml::de::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner();
            // Path "." is serde_path_to_error's root: nothing was being
            // deserialized yet, so the parser itself failed.
            let key = (path != ".").then_some(path);
            let (line, column) = match inner.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    (Some(line), Some(column))
                }
                None => (None, None),
            };
            ConfigError {
                origin: origin.to_owned(),
                line,
                column,
                kind: if key.is_some() {
                    ConfigErrorKind::Invalid
                } else {
                    ConfigErrorKind::Syntax
                },
                key,
                // toml's parser explains over several lines; one line keeps
                // the error greppable in logs.
                message: inner.message().trim().replace('\n', "; "),
            }
        })
    }

    /// Checks the limits that types alone cannot express. The message names
    /// the key, e.g. ``key `swarm.workers`: must be at least 1, got 0``.
    pub fn validate(&self) -> Result<(), String> {
        self.check()
            .map_err(|v| format!("key `{}`: {}", v.keys[0], v.message))
    }

    /// [`Config::validate`] for a config that came from the command line
    /// rather than (only) a file, so errors name `command line` as origin.
    pub(crate) fn validate_as(&self, origin: &str) -> Result<(), ConfigError> {
        self.check()
            .map_err(|v| ConfigError::limit(origin.to_owned(), None, v))
    }

    fn check(&self) -> Result<(), Violation> {
        fn at_least_1<T: PartialOrd + From<u8> + fmt::Display>(
            keys: &'static [&'static str],
            value: T,
        ) -> Result<(), Violation> {
            if value < T::from(1) {
                return Err(Violation::new(
                    keys,
                    format!("must be at least 1, got {value}"),
                ));
            }
            Ok(())
        }

        let s = &self.swarm;
        if !(1..=MAX_SWARM_WORKERS).contains(&s.workers) {
            return Err(Violation::new(
                &["swarm.workers"],
                format!(
                    "must be between 1 and {MAX_SWARM_WORKERS}, got {}",
                    s.workers
                ),
            ));
        }
        at_least_1(&["swarm.channel_capacity"], s.channel_capacity)?;
        at_least_1(&["swarm.cleaning_interval"], s.cleaning_interval)?;
        at_least_1(&["swarm.max_peer_age"], s.max_peer_age)?;
        at_least_1(&["swarm.max_torrents"], s.max_torrents)?;
        at_least_1(&["swarm.max_peers"], s.max_peers)?;
        at_least_1(&["swarm.max_peers_per_torrent"], s.max_peers_per_torrent)?;
        at_least_1(&["swarm.max_peers_per_ip"], s.max_peers_per_ip)?;
        at_least_1(&["swarm.max_ws_torrents"], s.max_ws_torrents)?;
        at_least_1(&["swarm.max_ws_peers"], s.max_ws_peers)?;

        let p = &self.protocol;
        at_least_1(&["protocol.max_numwant"], p.max_numwant)?;
        if p.default_numwant > p.max_numwant {
            return Err(Violation::new(
                &["protocol.default_numwant", "protocol.max_numwant"],
                format!(
                    "{} exceeds protocol.max_numwant ({})",
                    p.default_numwant, p.max_numwant
                ),
            ));
        }

        let u = &self.udp;
        if !u.listen.is_empty() {
            // With no address there are no sockets to work, so 0 is harmless.
            at_least_1(&["udp.workers", "udp.listen"], u.workers)?;
        }
        if !(1..=MAX_SCRAPE_TORRENTS_LIMIT).contains(&u.max_scrape_torrents) {
            return Err(Violation::new(
                &["udp.max_scrape_torrents"],
                format!(
                    "must be between 1 and {MAX_SCRAPE_TORRENTS_LIMIT} (about 74 fit one \
                     datagram), got {}",
                    u.max_scrape_torrents
                ),
            ));
        }
        at_least_1(&["udp.connection_id_lifetime"], u.connection_id_lifetime)?;
        at_least_1(&["udp.outgoing_queue_len"], u.outgoing_queue_len)?;
        at_least_1(&["udp.max_pending_scrapes"], u.max_pending_scrapes)?;

        let h = &self.http;
        if !self.tcp_listeners().is_empty() {
            at_least_1(&["http.workers", "http.listen"], h.workers)?;
        }
        if !(1..=MAX_HTTP_WORKERS).contains(&h.workers) && h.workers != 0 {
            return Err(Violation::new(
                &["http.workers"],
                format!("must be at most {MAX_HTTP_WORKERS}, got {}", h.workers),
            ));
        }
        at_least_1(&["http.max_connections"], h.max_connections)?;
        if !(256..=1 << 20).contains(&h.max_request_size) {
            return Err(Violation::new(
                &["http.max_request_size"],
                format!(
                    "must be between 256 and 1048576 bytes, got {}",
                    h.max_request_size
                ),
            ));
        }
        at_least_1(&["http.request_timeout"], h.request_timeout)?;
        at_least_1(&["http.keep_alive_timeout"], h.keep_alive_timeout)?;
        at_least_1(&["http.first_byte_timeout"], h.first_byte_timeout)?;
        at_least_1(&["http.max_connections_per_ip"], h.max_connections_per_ip)?;
        at_least_1(&["http.max_scrape_torrents"], h.max_scrape_torrents)?;
        at_least_1(
            &["http.max_full_scrape_torrents"],
            h.max_full_scrape_torrents,
        )?;
        if h.min_announce_interval > p.announce_interval {
            return Err(Violation::new(
                &["http.min_announce_interval", "protocol.announce_interval"],
                format!(
                    "{} exceeds protocol.announce_interval ({})",
                    h.min_announce_interval, p.announce_interval
                ),
            ));
        }
        let header = h.real_ip_header.trim();
        if !header.is_empty()
            && !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Violation::new(
                &["http.real_ip_header"],
                format!("`{header}` is not an HTTP header name"),
            ));
        }

        let w = &self.ws;
        at_least_1(&["ws.announce_interval"], w.announce_interval)?;
        if !(1024..=16 << 20).contains(&w.max_message_size) {
            return Err(Violation::new(
                &["ws.max_message_size"],
                format!(
                    "must be between 1024 and 16777216 bytes, got {}",
                    w.max_message_size
                ),
            ));
        }
        at_least_1(&["ws.max_pending_offers"], w.max_pending_offers)?;
        at_least_1(&["ws.offer_timeout"], w.offer_timeout)?;
        if w.max_outgoing_bytes < w.max_message_size {
            return Err(Violation::new(
                &["ws.max_outgoing_bytes", "ws.max_message_size"],
                format!(
                    "{} is less than ws.max_message_size ({}): one relayed message would \
                     not fit",
                    w.max_outgoing_bytes, w.max_message_size
                ),
            ));
        }
        at_least_1(
            &["ws.max_torrents_per_connection"],
            w.max_torrents_per_connection,
        )?;
        at_least_1(
            &["ws.max_peer_ids_per_connection"],
            w.max_peer_ids_per_connection,
        )?;
        at_least_1(&["ws.idle_timeout"], w.idle_timeout)?;

        let t = &self.tls;
        if self.wants_tls() {
            for (key, path) in [
                ("tls.certificate_path", &t.certificate_path),
                ("tls.private_key_path", &t.private_key_path),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(Violation::new(
                        if key == "tls.certificate_path" {
                            &["tls.certificate_path", "http.tls_listen"]
                        } else {
                            &["tls.private_key_path", "http.tls_listen"]
                        },
                        "must name a PEM file when http.tls_listen or ws.tls_listen is set"
                            .to_owned(),
                    ));
                }
            }
        }

        let a = &self.access_list;
        if a.mode != AccessListMode::Off && a.path.as_os_str().is_empty() {
            return Err(Violation::new(
                &["access_list.path", "access_list.mode"],
                format!(
                    "must name a file when access_list.mode is {}",
                    a.mode.as_str()
                ),
            ));
        }

        let x = &self.xdp;
        if !(64..=1 << 20).contains(&x.frame_count) || !x.frame_count.is_power_of_two() {
            return Err(Violation::new(
                &["xdp.frame_count"],
                format!(
                    "must be a power of two from 64 to 1048576, got {}",
                    x.frame_count
                ),
            ));
        }
        if !x.iface.is_empty() && x.pin_path.as_os_str().is_empty() {
            return Err(Violation::new(
                &["xdp.pin_path", "xdp.iface"],
                "must name a bpffs directory when xdp.iface is set".to_owned(),
            ));
        }
        Ok(())
    }

    /// The whole config as TOML with a `#` comment above every key and
    /// section, values taken from `self`: `-p` prints this machine's defaults
    /// as a starting point for an operator's file.
    pub fn to_commented_toml(&self) -> String {
        // Only a path that is not UTF-8 fails to print, and such a config
        // never came from a TOML file; the writer says so in a comment.
        tracker_config::commented_toml(self, HEADER)
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

const HEADER: &str = "\
# tracker-user configuration.
#
# Load it with `tracker-user -c FILE`. Keys left out keep the defaults shown
# here; an unknown key is an error, so a typo cannot silently fall back to a
# default. Print a fresh copy with `tracker-user -p`.
";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Writes `text` to a temp file and loads it; the file lives as long as
    /// the returned handle so messages can be compared with its path.
    fn load_text(text: &str) -> (tempfile::NamedTempFile, Result<Config, ConfigError>) {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write temp file");
        let result = Config::load(file.path());
        (file, result)
    }

    /// Loads `text`, expects an error and checks file, line and key in the message.
    fn expect_error(text: &str, line: usize, key: Option<&str>) -> ConfigError {
        let (file, result) = load_text(text);
        let err = result.expect_err("config should be refused");
        let msg = err.to_string();
        let path = file.path().display().to_string();
        assert!(msg.starts_with(&format!("{path}:{line}")), "{msg}");
        assert_eq!(err.line(), Some(line), "{msg}");
        match key {
            Some(key) => {
                assert!(msg.contains(&format!("key `{key}`: ")), "{msg}");
                assert_eq!(err.key(), Some(key));
            }
            None => assert!(msg.contains("(no key)"), "{msg}"),
        }
        err
    }

    #[test]
    fn loads_an_empty_file_as_defaults() {
        let (_file, result) = load_text("");
        assert_eq!(result.expect("empty config loads"), Config::default());
    }

    #[test]
    fn loads_a_partial_file_keeping_other_defaults() {
        let (_file, result) =
            load_text("log_level = \"debug\"\n[udp]\nlisten = [\"127.0.0.1:7000\"]\nworkers = 3\n");
        let config = result.expect("valid config loads");
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.udp.listen, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(config.udp.workers, 3);
        assert_eq!(config.swarm, SwarmConfig::default());
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing.toml");
        let err = Config::load(&path).expect_err("missing file");
        let msg = err.to_string();
        assert_eq!(err.kind(), ConfigErrorKind::Io);
        assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
        assert!(msg.contains("cannot read"), "{msg}");
    }

    #[test]
    fn unknown_top_level_key() {
        let err = expect_error("log_level = \"info\"\n\nbogus = 1\n", 3, Some("bogus"));
        assert!(err.to_string().contains(":3:1: "), "{err}");
        assert!(err.message().contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn unknown_section() {
        let err = expect_error("[swarm]\nworkers = 2\n[nosuch]\na = 1\n", 3, Some("nosuch"));
        assert!(err.message().contains("unknown field `nosuch`"), "{err}");
    }

    #[test]
    fn unknown_key_in_section() {
        let text = "# comment\n[swarm]\nworkers = 2\n\n[udp]\nworkers = 2\nworkerz = 3\n";
        let err = expect_error(text, 7, Some("udp.workerz"));
        assert!(
            err.to_string()
                .contains(":7:1: key `udp.workerz`: unknown field `workerz`, expected one of"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type() {
        let err = expect_error("\n\n[swarm]\nworkers = \"x\"\n", 4, Some("swarm.workers"));
        assert!(err.to_string().contains(":4:11: "), "{err}");
        assert!(
            err.message()
                .contains("invalid type: string \"x\", expected usize"),
            "{err}"
        );
    }

    #[test]
    fn negative_number() {
        let err = expect_error("[udp]\nworkers = -3\n", 2, Some("udp.workers"));
        assert!(err.message().contains("-3"), "{err}");
    }

    #[test]
    fn section_of_wrong_type() {
        expect_error("\nudp = 3\n", 2, Some("udp"));
    }

    #[test]
    fn bad_enum_value() {
        let err = expect_error("# x\nlog_level = \"loud\"\n", 2, Some("log_level"));
        assert!(err.message().contains("unknown variant `loud`"), "{err}");
        let err = expect_error(
            "[access_list]\nmode = \"grey\"\n",
            2,
            Some("access_list.mode"),
        );
        assert!(err.message().contains("`white`"), "{err}");
    }

    #[test]
    fn bad_socket_address() {
        let text = "[udp]\nlisten = [\n  \"0.0.0.0:6969\",\n  \"nope:1\",\n]\n";
        let err = expect_error(text, 4, Some("udp.listen[1]"));
        assert!(err.to_string().contains(":4:3: "), "{err}");
        assert!(err.message().contains("socket address"), "{err}");
    }

    #[test]
    fn syntax_errors_have_a_line_but_no_key() {
        let err = expect_error("[udp]\nworkers = = 3\n", 2, None);
        assert_eq!(err.kind(), ConfigErrorKind::Syntax);
        assert!(
            err.to_string().contains("TOML syntax error (no key)"),
            "{err}"
        );
        assert!(!err.message().contains('\n'));
        expect_error("log_level = \"info\"\n[udp\n", 2, None);
        expect_error("[udp]\nworkers = 2\n[udp]\n", 3, None);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_column("ä = 1\nb", 0), (1, 1));
        assert_eq!(line_column("ä = 1\nb", 3), (1, 3));
        assert_eq!(line_column("ä = 1\nb", 7), (2, 1));
        assert_eq!(line_column("a\n", 99), (2, 1));
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_key() {
        type Mutation = fn(&mut Config);
        let cases: Vec<(Mutation, &str)> = vec![
            (|c| c.swarm.workers = 0, "swarm.workers"),
            (|c| c.swarm.workers = 1025, "swarm.workers"),
            (|c| c.swarm.channel_capacity = 0, "swarm.channel_capacity"),
            (|c| c.swarm.cleaning_interval = 0, "swarm.cleaning_interval"),
            (|c| c.swarm.max_peer_age = 0, "swarm.max_peer_age"),
            (|c| c.swarm.max_torrents = 0, "swarm.max_torrents"),
            (|c| c.swarm.max_peers = 0, "swarm.max_peers"),
            (
                |c| c.swarm.max_peers_per_torrent = 0,
                "swarm.max_peers_per_torrent",
            ),
            (|c| c.swarm.max_peers_per_ip = 0, "swarm.max_peers_per_ip"),
            (|c| c.swarm.max_ws_torrents = 0, "swarm.max_ws_torrents"),
            (|c| c.swarm.max_ws_peers = 0, "swarm.max_ws_peers"),
            (|c| c.protocol.max_numwant = 0, "protocol.max_numwant"),
            (
                |c| {
                    c.protocol.max_numwant = 10;
                    c.protocol.default_numwant = 11;
                },
                "protocol.default_numwant",
            ),
            (|c| c.udp.workers = 0, "udp.workers"),
            (|c| c.udp.max_scrape_torrents = 0, "udp.max_scrape_torrents"),
            (
                |c| c.udp.max_scrape_torrents = 75,
                "udp.max_scrape_torrents",
            ),
            (
                |c| c.udp.connection_id_lifetime = 0,
                "udp.connection_id_lifetime",
            ),
            (|c| c.udp.outgoing_queue_len = 0, "udp.outgoing_queue_len"),
            (|c| c.udp.max_pending_scrapes = 0, "udp.max_pending_scrapes"),
            (
                |c| c.access_list.mode = AccessListMode::White,
                "access_list.path",
            ),
            (
                |c| c.access_list.mode = AccessListMode::Black,
                "access_list.path",
            ),
            (|c| c.http.workers = 0, "http.workers"),
            (|c| c.http.max_connections = 0, "http.max_connections"),
            (|c| c.http.max_request_size = 255, "http.max_request_size"),
            (|c| c.http.request_timeout = 0, "http.request_timeout"),
            (|c| c.http.keep_alive_timeout = 0, "http.keep_alive_timeout"),
            (|c| c.http.first_byte_timeout = 0, "http.first_byte_timeout"),
            (
                |c| c.http.max_connections_per_ip = 0,
                "http.max_connections_per_ip",
            ),
            (
                |c| c.http.max_scrape_torrents = 0,
                "http.max_scrape_torrents",
            ),
            (
                |c| c.http.min_announce_interval = 901,
                "http.min_announce_interval",
            ),
            (
                |c| c.http.real_ip_header = "X Forwarded".into(),
                "http.real_ip_header",
            ),
            (|c| c.ws.max_message_size = 100, "ws.max_message_size"),
            (|c| c.ws.max_outgoing_bytes = 1024, "ws.max_outgoing_bytes"),
            (|c| c.ws.max_pending_offers = 0, "ws.max_pending_offers"),
            (|c| c.ws.idle_timeout = 0, "ws.idle_timeout"),
            (
                |c| c.http.tls_listen = vec!["127.0.0.1:443".parse().unwrap()],
                "tls.certificate_path",
            ),
            (
                |c| {
                    c.ws.tls_listen = vec!["127.0.0.1:443".parse().unwrap()];
                    c.tls.certificate_path = "cert.pem".into();
                },
                "tls.private_key_path",
            ),
        ];
        for (mutate, key) in cases {
            let mut config = Config::default();
            mutate(&mut config);
            let msg = config.validate().expect_err(key);
            assert!(msg.starts_with(&format!("key `{key}`: ")), "{msg}");
        }
    }

    #[test]
    fn validate_accepts_the_edges() {
        let mut config = Config::default();
        config.swarm.workers = 1024;
        config.udp.max_scrape_torrents = 74;
        config.protocol.default_numwant = 7;
        config.protocol.max_numwant = 7;
        assert_eq!(config.validate(), Ok(()));
        config.swarm.workers = 1;
        config.udp.max_scrape_torrents = 1;
        assert_eq!(config.validate(), Ok(()));
        // No addresses means no socket workers are needed.
        config.udp.listen.clear();
        config.udp.workers = 0;
        assert_eq!(config.validate(), Ok(()));
        config.access_list.mode = AccessListMode::White;
        config.access_list.path = "/etc/acl.txt".into();
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn load_reports_limit_failures_with_file_line_and_key() {
        let (file, result) = load_text("[swarm]\nworkers = 2\n\n[udp]\nmax_scrape_torrents = 80\n");
        let err = result.expect_err("80 is over the limit");
        assert_eq!(err.kind(), ConfigErrorKind::Limit);
        let msg = err.to_string();
        let prefix = format!(
            "{}:5: key `udp.max_scrape_torrents`: ",
            file.path().display()
        );
        assert!(msg.starts_with(&prefix), "{msg}");
        assert!(msg.contains("80"), "{msg}");
    }

    #[test]
    fn load_limit_failure_on_a_default_points_at_the_related_key() {
        // default_numwant keeps its default (50) and is not in the file; the
        // line to fix is max_numwant's.
        let (file, result) = load_text("[protocol]\nannounce_interval = 60\nmax_numwant = 10\n");
        let msg = result.expect_err("default over max").to_string();
        let prefix = format!(
            "{}:3: key `protocol.default_numwant`: ",
            file.path().display()
        );
        assert!(msg.starts_with(&prefix), "{msg}");
    }

    #[test]
    fn load_limit_failure_without_a_line() {
        let (_file, result) = load_text("[access_list]\n");
        assert!(result.is_ok());
        let (file, result) = load_text("access_list.mode = \"white\"\n");
        let msg = result.expect_err("white needs a path").to_string();
        let prefix = format!("{}:1: key `access_list.path`: ", file.path().display());
        assert!(msg.starts_with(&prefix), "{msg}");
        let (file, result) = load_text("[swarm]\nworkers = 0\n");
        let err = result.expect_err("0 workers");
        assert!(err
            .to_string()
            .starts_with(&format!("{}:2: ", file.path().display())));
    }

    #[test]
    fn find_key_line_understands_sections_and_dotted_keys() {
        let text = "log_level = \"info\"\n[swarm]\nworkers=3\n[udp]\n  workers = 4\nudp.x = 1\n";
        assert_eq!(find_key_line(text, "log_level"), Some(1));
        assert_eq!(find_key_line(text, "swarm.workers"), Some(3));
        assert_eq!(find_key_line(text, "udp.workers"), Some(5));
        assert_eq!(find_key_line(text, "protocol.max_numwant"), None);
        assert_eq!(
            find_key_line("swarm.workers = 0\n", "swarm.workers"),
            Some(1)
        );
        // `workers_x` must not be taken for `workers`.
        assert_eq!(find_key_line("[udp]\nworkers_x = 1\n", "udp.workers"), None);
    }

    fn round_trip(config: &Config) {
        let text = config.to_commented_toml();
        let (_file, result) = load_text(&text);
        let loaded = result.unwrap_or_else(|e| panic!("printed config does not load: {e}\n{text}"));
        assert_eq!(&loaded, config, "{text}");
    }

    #[test]
    fn commented_default_round_trips() {
        round_trip(&Config::default());
    }

    #[test]
    fn commented_non_default_round_trips() {
        let config = Config {
            log_level: LogLevel::Trace,
            swarm: SwarmConfig {
                workers: 7,
                channel_capacity: 3,
                cleaning_interval: 5,
                max_peer_age: 99,
                max_torrents: 11,
                max_peers: 12,
                max_peers_per_torrent: 13,
                max_peers_per_ip: 14,
                max_ws_torrents: 15,
                max_ws_peers: 16,
            },
            protocol: ProtocolConfig {
                announce_interval: 1800,
                default_numwant: 20,
                max_numwant: 200,
            },
            udp: UdpConfig {
                listen: vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
                workers: 9,
                max_scrape_torrents: 74,
                connection_id_lifetime: 60,
                recv_buffer_size: 1 << 24,
                outgoing_queue_len: 10,
                max_pending_scrapes: 11,
            },
            http: HttpConfig {
                listen: vec!["127.0.0.1:3".parse().unwrap()],
                tls_listen: vec!["[::1]:443".parse().unwrap()],
                workers: 3,
                max_connections: 5,
                max_request_size: 300,
                request_timeout: 2,
                keep_alive_timeout: 4,
                first_byte_timeout: 3,
                max_connections_per_ip: 30,
                min_announce_interval: 0,
                max_scrape_torrents: 6,
                full_scrape: true,
                max_full_scrape_torrents: 7,
                real_ip_header: "X-Real-IP".into(),
            },
            ws: WsConfig {
                listen: vec!["127.0.0.1:4".parse().unwrap()],
                tls_listen: vec![],
                announce_interval: 30,
                max_message_size: 2000,
                max_offers: 0,
                max_pending_offers: 8,
                offer_timeout: 9,
                max_outgoing_bytes: 4000,
                max_torrents_per_connection: 10,
                max_peer_ids_per_connection: 3,
                idle_timeout: 11,
            },
            tls: TlsConfig {
                certificate_path: "/etc/tracker/cert.pem".into(),
                private_key_path: "/etc/tracker/key.pem".into(),
            },
            access_list: AccessListConfig {
                mode: AccessListMode::White,
                path: "/etc/tracker/it's \"quoted\" ü.txt".into(),
            },
            xdp: XdpConfig {
                iface: "eth1".into(),
                attach_mode: XdpAttachMode::Generic,
                required: true,
                replace_existing: true,
                connect_in_kernel: false,
                pin_path: "/sys/fs/bpf/t2".into(),
                frame_count: 8192,
                zero_copy: false,
            },
        };
        round_trip(&config);
        let mut no_udp = Config::default();
        no_udp.udp.listen.clear();
        round_trip(&no_udp);
    }

    #[test]
    fn every_key_has_a_doc_comment() {
        let toml::Value::Table(root) = toml::Value::try_from(Config::default()).unwrap() else {
            panic!("config is not a table");
        };
        assert_eq!(
            tracker_config::undocumented_keys::<Config>(&root),
            Vec::<String>::new()
        );
    }

    #[test]
    fn commented_toml_layout() {
        let mut config = Config::default();
        config.swarm.workers = 4;
        config.udp.workers = 4;
        let text = config.to_commented_toml();
        assert!(text.starts_with("# tracker-user configuration."), "{text}");
        assert!(text.contains("`tracker-user -c FILE`"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let preceded_by_comment = |needle: &str| {
            let at = lines
                .iter()
                .position(|l| *l == needle)
                .unwrap_or_else(|| panic!("no line {needle:?} in\n{text}"));
            assert!(
                at > 0 && lines[at - 1].starts_with("# "),
                "{needle:?} lacks a comment:\n{text}"
            );
            at
        };
        let log_level = preceded_by_comment("log_level = \"info\"");
        let swarm = preceded_by_comment("[swarm]");
        let protocol = preceded_by_comment("[protocol]");
        let max_numwant = preceded_by_comment("max_numwant = 50");
        preceded_by_comment("default_numwant = 50");
        let udp = preceded_by_comment("[udp]");
        preceded_by_comment("listen = [\"0.0.0.0:6969\", \"[::]:6969\"]");
        preceded_by_comment("workers = 4");
        let access_list = preceded_by_comment("[access_list]");
        preceded_by_comment("mode = \"off\"");
        preceded_by_comment("path = \"\"");
        // Top-level scalars before any section, sections in struct order.
        assert!(log_level < swarm && swarm < protocol && protocol < max_numwant);
        assert!(max_numwant < udp && udp < access_list);
        assert_eq!(
            lines[max_numwant - 1],
            "# Most peers returned by one announce, whatever the client asks for."
        );
        // Every non-blank, non-comment line is a key or a header, each under a comment.
        for (i, line) in lines.iter().enumerate() {
            if !line.is_empty() && !line.starts_with('#') {
                assert!(lines[i - 1].starts_with("# "), "{line:?} lacks a comment");
            }
        }
    }
}
