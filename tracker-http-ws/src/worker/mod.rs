//! One HTTP/WebSocket socket worker: a mio event loop over its listeners
//! and connections.
//!
//! # A round of the loop
//!
//! 1. Poll, then handle readiness: accept, read, parse, answer what needs
//!    no swarm, and append jobs to the batch of the request worker that owns
//!    each torrent (as the UDP front end does).
//! 2. Deliver the offers and answers other workers relayed here.
//! 3. Write the answers of the batches the request workers sent back.
//! 4. Every second or so, close connections past their deadline.
//! 5. Offer each filled batch to its request worker with `try_send`; a full
//!    inbox answers every job in the batch "tracker busy" instead of
//!    queueing.
//! 6. Flush every connection that has something to write.
//!
//! # Connections
//!
//! A connection lives in a slab; its key is its mio token and, with a
//! generation bumped for every accepted connection, its identity in jobs
//! and relays, so a late answer for a closed connection is dropped rather
//! than sent to the one that took its slot.
//!
//! An HTTP connection handles one request at a time: while a request is at
//! the request workers, pipelined requests wait in its input buffer (which
//! holds at most `max_request_size` bytes; reading stops when it is full),
//! so answers go out in order without any reordering queue.
//!
//! # WebTorrent offers
//!
//! An announce's offers are written out, once each, as the JSON messages
//! their targets will get (the message does not depend on the target) and
//! kept in a slab entry while the announce visits the request worker; the
//! job's reply tag names the entry. When the batch returns, target `i` gets
//! message `i`: written straight into the target's queue when this worker
//! holds it, else sent through the holder's relay channel.
//!
//! # Files
//!
//! This file holds the loop ([`SocketWorker::run`]); the rest is by role:
//! `state` (the [`WorkerState`] request handlers borrow beside one
//! connection), `connections` (accept, readiness, deadlines, flush, close),
//! `http`, `ws` (WebTorrent), `scrape` (both protocols' pending scrapes),
//! `batches` (to and from the request workers) and `relay` (offers and
//! answers for connections of other socket workers).

mod batches;
mod connections;
mod http;
mod relay;
mod scrape;
mod state;
mod ws;

use self::batches::{answer_batch, dispatch};
use self::connections::{flush_dirty, reap, Conn};
use self::relay::{deliver_local, wake_relays};
use self::state::{listener_token, sweep_interval, WorkerState};

use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll};
use slab::Slab;
use tracker_metrics::{ConnectionBlock, Protocol, Refusal, Relay as RelayKind, RequestBlock};
use tracker_proto::InfoHash;
use tracker_swarm::clock::Clock;
use tracker_swarm::{Outbox, PendingScrapes, TorrentFilter};
use tungstenite::protocol::WebSocketConfig;

use crate::conn_limits::PerIpConns;
use crate::settings::{ListenerSpec, Settings};
use crate::tls::SharedTls;
use crate::{Relay, RelayPath, RELAY_CAPACITY};

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Full scrapes one worker runs at once (each may hold many torrents).
const MAX_FULL_SCRAPES: usize = 2;
/// tungstenite's per-connection read buffer (it grows for larger messages).
const WS_READ_BUFFER: usize = 4096;
/// First token of the listeners, counting down.
const LISTENER_TOKEN_TOP: usize = usize::MAX - 1;

const BUSY: &str = "tracker busy, try again";
const NOT_ALLOWED: &str = "info hash not allowed";
const FULL_SCRAPE_DISABLED: &str = "full scrape is disabled";
const TOO_MANY_HASHES: &str = "too many info hashes in one scrape";

/// An HTTP/WebSocket socket worker; [`run`](Self::run) it on a thread of
/// its own. Built with [`new`](Self::new), then the `with_*` methods for
/// what has a default.
pub struct SocketWorker {
    index: usize,
    poll: Poll,
    swarm: SwarmLink,
    relay: RelayLink,
    listeners: Vec<(TcpListener, ListenerSpec)>,
    settings: Arc<Settings>,
    tls: Option<Arc<SharedTls>>,
    filter: Arc<dyn TorrentFilter>,
    clock: Clock,
    requests: RequestBlock,
    connections: ConnectionBlock,
    shutdown: Arc<AtomicBool>,
}

/// A socket worker's way to the request workers and back: the one type
/// every front end takes, built by `tracker_swarm::SwarmTopology`.
pub use tracker_swarm::SwarmLink;

/// A socket worker's part of the WebTorrent relay.
pub struct RelayLink {
    /// Offers and answers other socket workers send to its connections.
    pub inbox: Receiver<Relay>,
    /// Every socket worker's relay channel, in socket-worker order, this
    /// one's included.
    pub paths: Vec<RelayPath>,
}

/// The filter a worker has unless told otherwise: every torrent.
struct AllowAll;

impl TorrentFilter for AllowAll {
    fn allows(&self, _: &InfoHash) -> bool {
        true
    }
}

impl SocketWorker {
    /// `index` is its place among the HTTP/WebSocket socket workers
    /// (`ConnRef::front_end`, and its place in `relay.paths`); `poll` has
    /// the worker's one waker registered under [`WAKER`], the waker the
    /// request workers and the other socket workers wake it with.
    /// `shutdown` stops it (the server then wakes the poll).
    pub fn new(
        index: usize,
        poll: Poll,
        swarm: SwarmLink,
        relay: RelayLink,
        listeners: Vec<(TcpListener, ListenerSpec)>,
        settings: Arc<Settings>,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        Self {
            index,
            poll,
            swarm,
            relay,
            listeners,
            settings,
            tls: None,
            filter: Arc::new(AllowAll),
            clock: Clock::start(),
            requests: RequestBlock::default(),
            connections: ConnectionBlock::default(),
            shutdown,
        }
    }

    /// The certificate of its TLS listeners; needed when any listener has
    /// TLS (a TLS connection without it is closed, with one log line).
    pub fn with_tls(mut self, tls: Option<Arc<SharedTls>>) -> Self {
        self.tls = tls;
        self
    }

    /// Which torrents may be announced and scraped (default: all).
    pub fn with_filter(mut self, filter: Arc<dyn TorrentFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// The clock offers age by; the server shares one with the request
    /// workers (default: one started now).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The blocks this worker counts its requests and connections in, as
    /// handed out by the metrics registry; it is their only writer
    /// (default: blocks nobody scrapes).
    pub fn with_metrics(mut self, requests: RequestBlock, connections: ConnectionBlock) -> Self {
        self.requests = requests;
        self.connections = connections;
        self
    }
}

/// A running socket worker: its state, its connections and listeners.
struct EventLoop {
    state: WorkerState,
    conns: Slab<Conn>,
    listeners: Vec<(TcpListener, ListenerSpec)>,
    /// Listeners that may have connections waiting.
    accept_pending: Vec<bool>,
    /// Accepting failed (out of file descriptors, say): try again later.
    accept_retry_at_sweep: bool,
    tls: Option<Arc<SharedTls>>,
    tls_missing_logged: bool,
}

impl SocketWorker {
    /// Serves until `shutdown` is set (the server then wakes the poll).
    pub fn run(self) {
        let SocketWorker {
            index,
            mut poll,
            swarm:
                SwarmLink {
                    origin,
                    to_swarm,
                    returns,
                },
            relay:
                RelayLink {
                    inbox: relay_in,
                    paths: relays,
                },
            mut listeners,
            settings,
            tls,
            filter,
            clock,
            requests,
            connections,
            shutdown,
        } = self;
        for (i, (listener, spec)) in listeners.iter_mut().enumerate() {
            if let Err(e) =
                poll.registry()
                    .register(listener, listener_token(i), Interest::READABLE)
            {
                log::error!(
                    "http worker {index}: cannot register listener {}: {e}",
                    spec.addr
                );
                return;
            }
        }
        let max_message = settings.ws_max_message_size.max(1);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let sweep_every = sweep_interval(&settings);
        // Behind a proxy every connection comes from the proxy's address:
        // capping it would cap all clients together.
        let per_ip_cap = if settings.real_ip_header.is_some() {
            0
        } else {
            settings.max_connections_per_ip.max(1)
        };
        let relays_count = relays.len();
        let now = Instant::now();
        let mut w = EventLoop {
            state: WorkerState {
                index: index as u32,
                outbox: Outbox::new(origin, to_swarm),
                refused: Vec::new(),
                relay_woken: vec![false; relays.len()],
                relays,
                scrapes: PendingScrapes::new(usize::MAX),
                full_scrapes: 0,
                files_pool: Vec::new(),
                kept: Slab::new(),
                kept_pool: Vec::new(),
                next_generation: 0,
                scratch: Vec::with_capacity(4096),
                read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
                retry: Vec::new(),
                dirty: Vec::new(),
                doomed: Vec::new(),
                ws_config,
                requests,
                connections,
                per_ip: PerIpConns::new(per_ip_cap, relays_count),
                now,
                now_secs: clock.now_secs(),
                clock,
                settings: Rc::new(Settings::clone(&settings)),
                filter,
            },
            conns: Slab::new(),
            accept_pending: vec![false; listeners.len()],
            listeners,
            accept_retry_at_sweep: false,
            tls,
            tls_missing_logged: false,
        };
        let mut events = Events::with_capacity(1024);
        let mut next_sweep = now + sweep_every;
        while !shutdown.load(Ordering::Relaxed) {
            // Work left over from the last round (including relays beyond
            // one round's share) is done without sleeping.
            let pending =
                w.state.has_work() || w.accept_pending.contains(&true) || !relay_in.is_empty();
            let timeout = if pending {
                Duration::ZERO
            } else {
                next_sweep.saturating_duration_since(Instant::now())
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("http worker {index}: poll failed: {e}");
                    break;
                }
            }
            w.state.tick();
            for event in events.iter() {
                w.event(&poll, event);
            }
            for i in 0..w.listeners.len() {
                if w.accept_pending[i] {
                    w.accept(&poll, i);
                }
            }
            w.run_retries();
            for relay in relay_in.try_iter().take(RELAY_CAPACITY) {
                deliver_local(
                    &mut w.state,
                    &mut w.conns,
                    relay.to,
                    &relay.message,
                    relay.offer,
                );
            }
            while let Ok(batch) = returns.try_recv() {
                answer_batch(&mut w.state, &mut w.conns, batch);
            }
            if w.state.now >= next_sweep {
                w.sweep();
                next_sweep = w.state.now + sweep_every;
            }
            reap(&mut w.state, &mut w.conns);
            dispatch(&mut w.state, &mut w.conns);
            wake_relays(&mut w.state);
            flush_dirty(&mut w.state, &mut w.conns);
            reap(&mut w.state, &mut w.conns);
        }
        log_totals(index, &w.state);
    }
}

/// What the worker saw, for the log line it writes when it stops (read
/// from its own blocks, which no other worker writes).
fn log_totals(index: usize, state: &WorkerState) {
    let (r, c) = (&state.requests, &state.connections);
    let tcp = [Protocol::Http, Protocol::Https, Protocol::Ws, Protocol::Wss];
    let requests: u64 = tcp
        .iter()
        .flat_map(|&p| {
            tracker_metrics::Action::ALL
                .iter()
                .map(move |&a| r.requests(p, a))
        })
        .sum();
    let dropped: u64 = tcp.iter().map(|&p| r.dropped_count(p)).sum();
    log::debug!(
        "http worker {index} stopped: {} accepted, {} refused (max) and {} (per ip), \
         {requests} requests, {dropped} answered busy, {} offers and {} answers relayed, \
         {} relays dropped, {} slow readers, {} TLS handshakes failed",
        c.accepted(),
        c.refused[Refusal::MaxConnections.index()].get(),
        c.refused[Refusal::PerIp.index()].get(),
        c.relayed[RelayKind::Offer.index()].get(),
        c.relayed[RelayKind::Answer.index()].get(),
        c.relays_dropped.get(),
        c.slow_readers.get(),
        c.tls_handshake_failures.get(),
    );
}
