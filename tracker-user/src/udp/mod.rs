//! The BEP 15 front end on plain UDP sockets.

mod handler;
#[cfg(test)]
mod handler_tests;
mod mmsg;
mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tracker_proto::connection_id::ConnectionIdSecret;
use tracker_proto::udp::{
    ANNOUNCE_RESPONSE_HEADER_LEN, ERROR_RESPONSE_HEADER_LEN, SCRAPE_RESPONSE_HEADER_LEN,
    SCRAPE_STATS_LEN,
};

pub use handler::{ReplyRoute, RequestHandler, Responder, Summary, ANSWERED_IN_KERNEL};
pub use worker::{idle_timeout, InlineRequestWorker, UdpWorker, WAKER};

use crate::access_list::SharedAccessList;
use crate::config::Config;
use tracker_swarm::SwarmLink;

/// What every datagram front end (socket worker or AF_XDP queue worker)
/// needs besides its own I/O: its place among the front ends, its poll and
/// channels, and the shared settings.
pub struct FrontEnd {
    /// Polled for its I/O and woken (token [`WAKER`]) when a batch returns.
    pub poll: mio::Poll,
    /// Its place among the front ends (`origin`), the request workers'
    /// inboxes and its return channel.
    pub swarm: SwarmLink,
    pub settings: std::sync::Arc<UdpSettings>,
    pub access_list: std::sync::Arc<SharedAccessList>,
    pub shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// This front end's own block of request counters.
    pub counters: tracker_metrics::RequestBlock,
}

impl FrontEnd {
    /// The request path for this front end, counting under `protocol`;
    /// the front end keeps its I/O and passes its [`Responder`] with each
    /// call.
    pub fn handler(&self, protocol: tracker_metrics::Protocol) -> RequestHandler {
        RequestHandler::new(
            self.swarm.origin,
            self.settings.clone(),
            self.access_list.clone(),
            self.swarm.to_swarm.clone(),
            self.counters.clone(),
            protocol,
        )
    }

    pub fn stopping(&self) -> bool {
        self.shutdown.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Most stats a BEP 15 scrape response carries here (74 × 12 + 8 bytes
/// stays under common path MTUs); `udp.max_scrape_torrents` may not exceed it.
pub const MAX_SCRAPE_TORRENTS: usize = 74;

/// What a socket worker needs from the config, resolved once.
#[derive(Clone, Debug)]
pub struct UdpSettings {
    pub secret: ConnectionIdSecret,
    pub connection_id_lifetime: u32,
    pub announce_interval: u32,
    pub default_numwant: usize,
    pub max_numwant: usize,
    pub max_scrape_torrents: usize,
    pub max_pending_scrapes: usize,
    pub outgoing_queue_len: usize,
}

impl UdpSettings {
    pub fn new(config: &Config, secret: ConnectionIdSecret) -> Self {
        Self {
            secret,
            connection_id_lifetime: config.udp.connection_id_lifetime,
            announce_interval: config.protocol.announce_interval,
            default_numwant: config.protocol.default_numwant,
            max_numwant: config.protocol.max_numwant,
            max_scrape_torrents: config.udp.max_scrape_torrents.min(MAX_SCRAPE_TORRENTS),
            max_pending_scrapes: config.udp.max_pending_scrapes,
            outgoing_queue_len: config.udp.outgoing_queue_len,
        }
    }

    /// BEP 15's numwant: negative asks for the default; all is capped.
    pub fn numwant(&self, requested: i32) -> usize {
        let wanted = usize::try_from(requested).unwrap_or(self.default_numwant);
        wanted.min(self.max_numwant)
    }

    /// Bytes of the largest response this config can produce.
    pub fn response_slot_len(&self) -> usize {
        let announce = ANNOUNCE_RESPONSE_HEADER_LEN + self.max_numwant * 18;
        let scrape = SCRAPE_RESPONSE_HEADER_LEN + self.max_scrape_torrents * SCRAPE_STATS_LEN;
        let error = ERROR_RESPONSE_HEADER_LEN + 120;
        announce.max(scrape).max(error)
    }
}

/// Binds every listen address once per worker with SO_REUSEPORT, so the
/// kernel spreads clients over workers. Port 0 is resolved by the first
/// bind and reused for the rest. Returns the sockets of each worker and
/// the addresses actually bound.
pub fn bind_sockets(
    listen: &[SocketAddr],
    workers: usize,
    recv_buffer_size: usize,
) -> anyhow::Result<(Vec<Vec<UdpSocket>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for &requested in listen {
        let mut addr = requested;
        let mut sockets = Vec::with_capacity(workers);
        let result: anyhow::Result<()> = (|| {
            for _ in 0..workers {
                let socket = bind_one(addr, recv_buffer_size)?;
                addr = socket.local_addr()?;
                sockets.push(socket);
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                for (worker, socket) in sockets.into_iter().enumerate() {
                    per_worker[worker].push(socket);
                }
                bound.push(addr);
            }
            // The default config listens on [::] too; a host without IPv6
            // should still serve IPv4 rather than refuse to start.
            Err(e) if listen.len() > 1 => {
                log::warn!("not serving UDP on {requested}: {e:#}");
            }
            Err(e) => return Err(e.context(format!("cannot serve UDP on {requested}"))),
        }
    }
    if bound.is_empty() && !listen.is_empty() {
        anyhow::bail!("could not bind any UDP listen address");
    }
    Ok((per_worker, bound))
}

/// Said once per process, not once per socket.
static RCVBUF_CAP_LOGGED: AtomicBool = AtomicBool::new(false);

fn bind_one(addr: SocketAddr, recv_buffer_size: usize) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("socket")?;
    if addr.is_ipv6() {
        // IPv4 has its own listen address; a dual-stack socket would hand
        // IPv4 clients mapped addresses and mix the families' swarms.
        socket.set_only_v6(true).context("IPV6_V6ONLY")?;
    }
    socket.set_reuse_port(true).context("SO_REUSEPORT")?;
    if recv_buffer_size > 0 {
        socket
            .set_recv_buffer_size(recv_buffer_size)
            .context("SO_RCVBUF")?;
        // The kernel silently caps SO_RCVBUF at net.core.rmem_max (and
        // reports double what it grants, for its own bookkeeping).
        let granted = socket.recv_buffer_size().context("SO_RCVBUF")? / 2;
        if granted < recv_buffer_size && !RCVBUF_CAP_LOGGED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "udp.recv_buffer_size is {recv_buffer_size} bytes but the kernel grants \
                 {granted} (net.core.rmem_max); raise it with \
                 `sysctl -w net.core.rmem_max={recv_buffer_size}` to absorb bursts"
            );
        }
    }
    socket.set_nonblocking(true).context("O_NONBLOCK")?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(default_numwant: usize, max_numwant: usize) -> UdpSettings {
        let mut config = Config::default();
        config.protocol.default_numwant = default_numwant;
        config.protocol.max_numwant = max_numwant;
        UdpSettings::new(&config, ConnectionIdSecret { k0: 1, k1: 2 })
    }

    #[test]
    fn numwant_resolves_default_and_cap() {
        let s = settings(10, 40);
        assert_eq!(s.numwant(-1), 10);
        assert_eq!(s.numwant(i32::MIN), 10);
        assert_eq!(s.numwant(0), 0);
        assert_eq!(s.numwant(25), 25);
        assert_eq!(s.numwant(1000), 40);
    }

    #[test]
    fn port_zero_is_shared_by_all_workers() {
        let (sockets, bound) = bind_sockets(&["127.0.0.1:0".parse().unwrap()], 3, 0).unwrap();
        assert_eq!(bound.len(), 1);
        assert_ne!(bound[0].port(), 0);
        for worker in &sockets {
            assert_eq!(worker[0].local_addr().unwrap(), bound[0]);
        }
    }
}
