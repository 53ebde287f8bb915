//! The tracker's HTTP (BEP 3, 7, 23, 24, 48) and WebTorrent (WebSocket)
//! server.
//!
//! Each [`SocketWorker`] is a thread with a mio event loop. It accepts TCP
//! connections on every listener (SO_REUSEPORT spreads them over the
//! workers), reads HTTP/1.1 requests with httparse, turns announces and
//! scrapes into jobs for the request workers of `tracker-swarm` (the same
//! swarms the UDP front end uses) and answers when the batch comes back.
//! A request with `Upgrade: websocket` becomes a WebTorrent connection,
//! framed by tungstenite; its offers and answers are relayed straight to the
//! connections they are for, across workers through bounded [`Relay`]
//! channels. TLS listeners speak rustls, with a certificate that can be
//! reloaded while connections stay up ([`SharedTls`]).
//!
//! Every queue is bounded: a full request-worker inbox answers "tracker
//! busy", a full relay channel drops the offer, a WebSocket peer that does
//! not read its messages is disconnected.
#![forbid(unsafe_code)]

mod buf;
pub mod config;
mod conn_limits;
#[doc(hidden)]
pub mod fuzzing;
mod head;
mod offers;
pub mod settings;
mod tls;
mod transport;
mod worker;
mod ws_peers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tracker_proto::ws::OfferId;
use tracker_proto::{InfoHash, PeerId};
use tracker_swarm::ConnRef;

pub use settings::{ListenerKind, ListenerSpec, Settings, TlsPaths};
pub use tls::{SharedTls, TlsError};
pub use worker::{RelayLink, SocketWorker, SwarmLink};

/// The token of each socket worker's one `mio::Waker`: request workers
/// wake it when a batch comes back, other socket workers when they relay.
pub const WAKER: mio::Token = mio::Token(usize::MAX);

/// Relayed messages one socket worker's relay channel holds. A full
/// channel drops the offer or answer; WebTorrent clients offer again on
/// their next announce. Each message is at most about
/// `ws_max_message_size` bytes (one offer of one announce), so a worker's
/// channel holds at most 2048 times that (128 MiB at the 64 KiB default,
/// a few MiB with real SDP offers of 1–3 KiB).
pub const RELAY_CAPACITY: usize = 2048;

/// Listen backlog of every TCP listener.
const BACKLOG: i32 = 1024;

/// A WebTorrent offer or answer for a connection another socket worker
/// holds, already written as the JSON text the connection gets.
#[derive(Debug)]
pub struct Relay {
    pub(crate) to: ConnRef,
    /// Set for an offer: what the receiving connection records so that it
    /// may answer it.
    pub(crate) offer: Option<RelayedOfferId>,
    pub(crate) message: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct RelayedOfferId {
    pub(crate) offer_id: OfferId,
    pub(crate) from: PeerId,
    pub(crate) info_hash: InfoHash,
}

/// The way into one socket worker's relay channel.
#[derive(Clone)]
pub struct RelayPath {
    pub sender: crossbeam_channel::Sender<Relay>,
    pub waker: Arc<mio::Waker>,
}

/// Listeners bound for every socket worker.
#[derive(Debug)]
pub struct BoundListeners {
    /// For each worker, one listener per spec that could be bound.
    pub per_worker: Vec<Vec<(mio::net::TcpListener, ListenerSpec)>>,
    /// The specs that were bound, with the port the kernel chose for 0.
    pub bound: Vec<ListenerSpec>,
}

/// Binds every spec once per worker with SO_REUSEPORT, so the kernel
/// spreads connections over the workers. Port 0 is resolved by the first
/// bind and reused by the others. IPv6 listeners are IPv6-only. With
/// several specs, one that cannot be bound (typically `[::]` on a host
/// without IPv6) is a warning; with one, or if none can be bound, an error.
pub fn bind_listeners(specs: &[ListenerSpec], workers: usize) -> anyhow::Result<BoundListeners> {
    let mut per_worker: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    if workers == 0 {
        return Ok(BoundListeners { per_worker, bound });
    }
    for spec in specs {
        let mut addr = spec.addr;
        let mut listeners = Vec::with_capacity(workers);
        let result: anyhow::Result<()> = (|| {
            for _ in 0..workers {
                let listener = bind_one(addr)?;
                addr = listener.local_addr()?;
                listeners.push(listener);
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                let spec = ListenerSpec { addr, ..*spec };
                for (worker, listener) in listeners.into_iter().enumerate() {
                    per_worker[worker].push((mio::net::TcpListener::from_std(listener), spec));
                }
                bound.push(spec);
            }
            Err(e) if specs.len() > 1 => {
                log::warn!("not serving {} on {}: {e:#}", spec.scheme(), spec.addr);
            }
            Err(e) => {
                return Err(e.context(format!("cannot serve {} on {}", spec.scheme(), spec.addr)))
            }
        }
    }
    if bound.is_empty() && !specs.is_empty() {
        anyhow::bail!("could not bind any HTTP/WebSocket listen address");
    }
    Ok(BoundListeners { per_worker, bound })
}

fn bind_one(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("socket")?;
    if addr.is_ipv6() {
        // IPv4 has listen addresses of its own; a dual-stack socket would
        // see IPv4 clients as mapped addresses.
        socket.set_only_v6(true).context("IPV6_V6ONLY")?;
    }
    // Restarting while old connections sit in TIME_WAIT must not fail.
    socket.set_reuse_address(true).context("SO_REUSEADDR")?;
    socket.set_reuse_port(true).context("SO_REUSEPORT")?;
    socket.set_nonblocking(true).context("O_NONBLOCK")?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    socket.listen(BACKLOG).context("listen")?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_shared_by_all_workers() {
        let spec = ListenerSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            kind: ListenerKind::Http,
            tls: false,
        };
        let b = bind_listeners(&[spec], 3).unwrap();
        assert_eq!(b.bound.len(), 1);
        let port = b.bound[0].addr.port();
        assert_ne!(port, 0);
        assert_eq!(b.per_worker.len(), 3);
        for worker in &b.per_worker {
            assert_eq!(worker[0].0.local_addr().unwrap().port(), port);
            assert_eq!(worker[0].1, b.bound[0]);
        }
    }

    #[test]
    fn one_failing_spec_among_several_is_a_warning() {
        let good = ListenerSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            kind: ListenerKind::Http,
            tls: false,
        };
        // A TEST-NET address no interface holds.
        let bad = ListenerSpec {
            addr: "192.0.2.1:0".parse().unwrap(),
            kind: ListenerKind::WsOnly,
            tls: true,
        };
        let b = bind_listeners(&[good, bad], 2).unwrap();
        assert_eq!(b.bound.len(), 1);
        assert!(bind_listeners(&[bad], 1).is_err());
        assert!(bind_listeners(&[good], 0).unwrap().bound.is_empty());
    }
}
