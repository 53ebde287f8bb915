//! What the HTTP/WebSocket server needs from the tracker's config, resolved
//! once at start by [`Settings::from_config`] from the `[http]` and `[ws]`
//! sections (defined, with their defaults and operator-facing comments, in
//! [`crate::config`]) and three `[protocol]` values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{HttpConfig, ProtocolValues, TlsConfig, WsConfig};

/// What a listening socket serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// HTTP announces and scrapes, and WebSocket upgrades on any path.
    Http,
    /// WebSocket upgrades only; a plain HTTP request gets a failure.
    WsOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub kind: ListenerKind,
    pub tls: bool,
}

impl ListenerSpec {
    /// The scheme the listener speaks, as logged: `HTTP listening on ADDR`.
    pub fn scheme(&self) -> &'static str {
        match (self.kind, self.tls) {
            (ListenerKind::Http, false) => "HTTP",
            (ListenerKind::Http, true) => "HTTPS",
            (ListenerKind::WsOnly, false) => "WS",
            (ListenerKind::WsOnly, true) => "WSS",
        }
    }
}

/// PEM files for TLS listeners; read at start and again on SIGUSR1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// The `[tls]` section names the files; taking it whole keeps the binary
/// from mirroring its fields.
impl From<&TlsConfig> for TlsPaths {
    fn from(config: &TlsConfig) -> Self {
        TlsPaths {
            certificate: config.certificate_path.clone(),
            private_key: config.private_key_path.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    // Shared with UDP ([protocol]).
    /// Seconds between HTTP announces (`interval`).
    pub announce_interval: u32,
    /// `min interval` in HTTP announce responses; 0 leaves the key out.
    pub min_announce_interval: u32,
    /// Peers for a request that names no numwant.
    pub default_numwant: usize,
    /// Most peers (HTTP) or offer targets (WS) for one announce.
    pub max_numwant: usize,

    // [http]
    /// Connections one socket worker keeps open (HTTP and WS together);
    /// beyond it, new connections are accepted and closed at once.
    pub max_connections: usize,
    /// Bytes of one HTTP request head (request line and headers); a larger
    /// request gets a failure reason and the connection is closed.
    pub max_request_size: usize,
    /// How long a client may take to send a whole request once it started.
    pub request_timeout: Duration,
    /// How long a keep-alive HTTP connection may sit idle.
    pub keep_alive_timeout: Duration,
    /// How long a new connection has, from accept, to complete its TLS
    /// handshake (if any) and send its first request bytes; a silent
    /// connection would otherwise hold its slot for `keep_alive_timeout`.
    pub first_byte_timeout: Duration,
    /// Connections one client address (an IPv4 address, an IPv6 /64) may
    /// hold open across all socket workers; each worker enforces its share,
    /// `ceil(max_connections_per_ip / workers)`. Not applied when
    /// `real_ip_header` is set: every connection then comes from the proxy.
    pub max_connections_per_ip: usize,
    /// Most info hashes answered in one HTTP or WS scrape.
    pub max_scrape_torrents: usize,
    /// Serve a scrape without info_hash with every torrent (capped).
    pub full_scrape: bool,
    /// Most torrents in a full scrape answer.
    pub max_full_scrape_torrents: usize,
    /// Header holding the client's IP when behind a reverse proxy
    /// (lower-case, e.g. `x-forwarded-for`; its last address is used).
    /// `None` takes the IP from the socket.
    pub real_ip_header: Option<String>,

    // [ws]
    /// `interval` in WebTorrent announce responses.
    pub ws_announce_interval: u32,
    /// Largest WebSocket message (and frame) accepted, in bytes.
    pub ws_max_message_size: usize,
    /// Offers of one announce relayed at most; the rest are ignored.
    pub ws_max_offers: usize,
    /// Offers relayed to one connection that it may still answer; the
    /// oldest are forgotten first.
    pub ws_max_pending_offers: usize,
    /// How long a relayed offer may be answered.
    pub ws_offer_timeout: Duration,
    /// Bytes queued for one connection; a reader slower than this is
    /// disconnected rather than allowed to grow memory.
    pub ws_max_outgoing_bytes: usize,
    /// Torrents one connection may be in at once, each (torrent, peer id)
    /// pair counted apart: the bound on its swarm entries.
    pub ws_max_torrents_per_connection: usize,
    /// Distinct peer ids one connection may announce at once.
    pub ws_max_peer_ids_per_connection: usize,
    /// How long a WebSocket connection may stay silent.
    pub ws_idle_timeout: Duration,
}

impl Default for Settings {
    /// The `[http]` and `[ws]` defaults, with the `[protocol]` defaults the
    /// tracker ships; for tests and embedders, the tracker itself uses
    /// [`Settings::from_config`].
    fn default() -> Self {
        let protocol = ProtocolValues {
            announce_interval: 900,
            default_numwant: 50,
            max_numwant: 50,
        };
        Self::from_config(&HttpConfig::default(), &WsConfig::default(), protocol)
    }
}
