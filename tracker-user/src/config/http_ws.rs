//! The sections of the HTTP/WebSocket server and its TLS certificate, and
//! the [`tracker_http_ws::Settings`] they resolve to.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracker_config::ConfigDocs;

use super::sections::available_cores;
use super::Config;

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
