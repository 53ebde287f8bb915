//! The `[http]`, `[ws]` and `[tls]` sections of the tracker's config file,
//! defined once here with their defaults. The binary embeds them in its
//! config root and hands them to [`Settings::from_config`]; their doc
//! comments are what `tracker-user -p` prints above each key, so they are
//! written for the operator reading the file. The limits types cannot
//! express are checked by the binary's `Config::validate`, which owns the
//! typed error that names the key and its line.
// Those doc comments are TOML comments first: `[tls]` there names a section
// of the file, not an item to link to.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracker_config::ConfigDocs;

use crate::settings::{ListenerKind, ListenerSpec, Settings};

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

/// The `[protocol]` values HTTP and WebSocket share with UDP. That section
/// belongs to the binary (UDP and the XDP program read it too), so it hands
/// over just these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolValues {
    /// Seconds between HTTP announces (`interval`).
    pub announce_interval: u32,
    /// Peers for a request that names no numwant.
    pub default_numwant: usize,
    /// Most peers (HTTP) or offer targets (WebSocket) for one announce.
    pub max_numwant: usize,
}

/// The socket workers `[http] workers` defaults to: the cores the request
/// workers (half of them, the binary's `[swarm] workers` default) leave.
fn default_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores - (cores / 2).max(1)).max(1)
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6969)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 6969)),
            ],
            tls_listen: Vec::new(),
            workers: default_workers(),
            max_connections: 16_384,
            max_request_size: 8192,
            request_timeout: 10,
            keep_alive_timeout: 120,
            first_byte_timeout: 5,
            max_connections_per_ip: 512,
            min_announce_interval: 60,
            max_scrape_torrents: 100,
            full_scrape: false,
            max_full_scrape_torrents: 100_000,
            real_ip_header: String::new(),
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            announce_interval: 120,
            max_message_size: 64 * 1024,
            max_offers: 10,
            max_pending_offers: 64,
            offer_timeout: 60,
            max_outgoing_bytes: 256 * 1024,
            max_torrents_per_connection: 512,
            max_peer_ids_per_connection: 16,
            idle_timeout: 300,
        }
    }
}

/// Every TCP listener of `[http]` and `[ws]`, in the order they are logged.
pub fn listeners(http: &HttpConfig, ws: &WsConfig) -> Vec<ListenerSpec> {
    let spec = |kind, tls| move |&addr: &SocketAddr| ListenerSpec { addr, kind, tls };
    let mut out = Vec::new();
    out.extend(http.listen.iter().map(spec(ListenerKind::Http, false)));
    out.extend(http.tls_listen.iter().map(spec(ListenerKind::Http, true)));
    out.extend(ws.listen.iter().map(spec(ListenerKind::WsOnly, false)));
    out.extend(ws.tls_listen.iter().map(spec(ListenerKind::WsOnly, true)));
    out
}

/// Whether any listener of `[http]` or `[ws]` speaks TLS, so `[tls]` must
/// name the certificate.
pub fn wants_tls(http: &HttpConfig, ws: &WsConfig) -> bool {
    !http.tls_listen.is_empty() || !ws.tls_listen.is_empty()
}

impl Settings {
    /// What the socket workers read, resolved once from the sections:
    /// seconds become durations and the proxy header is made ready to
    /// compare with parsed header names (trimmed, lower-case, `None` when
    /// unset), so no request pays for either.
    pub fn from_config(http: &HttpConfig, ws: &WsConfig, protocol: ProtocolValues) -> Self {
        let header = http.real_ip_header.trim().to_ascii_lowercase();
        Self {
            announce_interval: protocol.announce_interval,
            min_announce_interval: http.min_announce_interval,
            default_numwant: protocol.default_numwant,
            max_numwant: protocol.max_numwant,
            max_connections: http.max_connections,
            max_request_size: http.max_request_size,
            request_timeout: Duration::from_secs(http.request_timeout),
            keep_alive_timeout: Duration::from_secs(http.keep_alive_timeout),
            first_byte_timeout: Duration::from_secs(http.first_byte_timeout),
            max_connections_per_ip: http.max_connections_per_ip,
            max_scrape_torrents: http.max_scrape_torrents,
            full_scrape: http.full_scrape,
            max_full_scrape_torrents: http.max_full_scrape_torrents,
            real_ip_header: (!header.is_empty()).then_some(header),
            ws_announce_interval: ws.announce_interval,
            ws_max_message_size: ws.max_message_size,
            ws_max_offers: ws.max_offers,
            ws_max_pending_offers: ws.max_pending_offers,
            ws_offer_timeout: Duration::from_secs(ws.offer_timeout),
            ws_max_outgoing_bytes: ws.max_outgoing_bytes,
            ws_max_torrents_per_connection: ws.max_torrents_per_connection,
            ws_max_peer_ids_per_connection: ws.max_peer_ids_per_connection,
            ws_idle_timeout: Duration::from_secs(ws.idle_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_resolves_seconds_and_the_proxy_header() {
        let http = HttpConfig {
            request_timeout: 7,
            keep_alive_timeout: 8,
            first_byte_timeout: 9,
            max_connections: 3,
            min_announce_interval: 0,
            real_ip_header: "  X-Forwarded-For ".into(),
            ..HttpConfig::default()
        };
        let ws = WsConfig {
            offer_timeout: 11,
            idle_timeout: 12,
            max_offers: 4,
            ..WsConfig::default()
        };
        let protocol = ProtocolValues {
            announce_interval: 1800,
            default_numwant: 20,
            max_numwant: 200,
        };
        let s = Settings::from_config(&http, &ws, protocol);
        assert_eq!(s.request_timeout, Duration::from_secs(7));
        assert_eq!(s.keep_alive_timeout, Duration::from_secs(8));
        assert_eq!(s.first_byte_timeout, Duration::from_secs(9));
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.min_announce_interval, 0);
        assert_eq!(s.real_ip_header.as_deref(), Some("x-forwarded-for"));
        assert_eq!(s.ws_offer_timeout, Duration::from_secs(11));
        assert_eq!(s.ws_idle_timeout, Duration::from_secs(12));
        assert_eq!(s.ws_max_offers, 4);
        assert_eq!(
            (s.announce_interval, s.default_numwant, s.max_numwant),
            (1800, 20, 200)
        );

        let blank = HttpConfig {
            real_ip_header: " ".into(),
            ..HttpConfig::default()
        };
        let s = Settings::from_config(&blank, &ws, protocol);
        assert_eq!(
            s.real_ip_header, None,
            "a blank header means the socket's address"
        );
    }

    #[test]
    fn listeners_come_in_log_order_with_kind_and_tls() {
        let a = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let http = HttpConfig {
            listen: vec![a(1)],
            tls_listen: vec![a(2)],
            ..HttpConfig::default()
        };
        let ws = WsConfig {
            listen: vec![a(3)],
            tls_listen: vec![a(4)],
            ..WsConfig::default()
        };
        let schemes: Vec<_> = listeners(&http, &ws)
            .iter()
            .map(|l| (l.addr.port(), l.scheme()))
            .collect();
        assert_eq!(schemes, [(1, "HTTP"), (2, "HTTPS"), (3, "WS"), (4, "WSS")]);
        assert!(wants_tls(&http, &ws));
        let plain = HttpConfig {
            tls_listen: Vec::new(),
            ..http
        };
        let plain_ws = WsConfig {
            tls_listen: Vec::new(),
            ..ws
        };
        assert!(!wants_tls(&plain, &plain_ws));
    }
}
