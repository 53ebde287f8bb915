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

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tracker_proto::http::{self as bhttp, HttpAnnounceResponse, HttpParseError, HttpRequest};
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::ws::{self as jws, Action, AnnounceRequest, InMessage, OfferId, ScrapeRequest};
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};
use tracker_swarm::clock::Clock;
use tracker_swarm::{
    worker_for, Announce, Batch, ConnRef, Job, ReplyTo, SwarmCounts, TorrentFilter, Work,
    WsAnnounce, WsTarget,
};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocketConfig, WebSocketContext};

use crate::buf::OutBuf;
use crate::conn_limits::{ws_close_for, PerIpConns};
use crate::head::{self, Head, Method, Parsed, RealIp, Status, Upgrade};
use crate::offers::PendingOffers;
use crate::settings::{ListenerKind, ListenerSpec, Settings};
use crate::tls::{self, SharedTls};
use crate::transport::{Flushed, Transport, WsIo};
use crate::ws_peers::WsPeers;
use crate::{Relay, RelayPath, RelayedOfferId, RELAY_CAPACITY, WAKER};

/// Jobs per batch before it is set aside for sending: bounds a request
/// worker's latency and a batch's memory.
const MAX_BATCH_JOBS: usize = 512;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per readiness before a connection yields to the others.
const MAX_READS: usize = 16;
/// WebSocket messages handled per readiness before yielding.
const MAX_WS_MESSAGES: usize = 64;
/// Requests one WebSocket connection may have at the request workers at
/// once; beyond it the worker stops reading from it until some return,
/// which bounds the offers kept for it.
const MAX_WS_IN_FLIGHT: u32 = 8;
/// Queued answer bytes beyond which an HTTP connection's pipelined
/// requests wait until the client reads.
const HTTP_HIGH_WATER: usize = 64 * 1024;
/// Full scrapes one worker runs at once (each may hold many torrents).
const MAX_FULL_SCRAPES: usize = 2;
/// Connections accepted per listener per round.
const ACCEPTS_PER_ROUND: usize = 256;
/// How long a closing connection's remaining input is read and dropped,
/// so that closing does not reset the connection under its last answer.
const LINGER: Duration = Duration::from_secs(2);
/// tungstenite's per-connection read buffer (it grows for larger messages).
const WS_READ_BUFFER: usize = 4096;
/// Smallest request head limit honoured, whatever the config says.
const MIN_REQUEST_SIZE: usize = 256;
/// Bytes a WebSocket scrape answer takes per torrent, at most: a full
/// scrape is capped so that its answer fits the connection's queue.
const WS_SCRAPE_FILE_BYTES: usize = 112;
/// First token of the listeners, counting down.
const LISTENER_TOKEN_TOP: usize = usize::MAX - 1;

const BUSY: &str = "tracker busy, try again";
const NOT_ALLOWED: &str = "info hash not allowed";
const FULL_SCRAPE_DISABLED: &str = "full scrape is disabled";
const TOO_MANY_HASHES: &str = "too many info hashes in one scrape";
const PEER_ID_TAKEN: &str = "peer_id is in use by another connection";
const TOO_LARGE: &str = "request too large";
const WS_ONLY: &str = "this port serves WebSocket connections only";
const GET_ONLY: &str = "only GET requests are served";
const NO_BODY: &str = "requests with a body are not served";

/// An HTTP/WebSocket socket worker; [`run`](Self::run) it on a thread of
/// its own.
pub struct SocketWorker {
    /// Its index among the HTTP/WebSocket socket workers
    /// (`ConnRef::front_end`, and its place in `relays`).
    pub index: usize,
    /// Index of its return channel (`Batch::origin`).
    pub origin: usize,
    /// With the worker's one waker registered under [`WAKER`].
    pub poll: Poll,
    pub to_swarm: Vec<Sender<Batch>>,
    pub returns: Receiver<Batch>,
    pub relay_in: Receiver<Relay>,
    /// Every worker's relay channel, this one's included.
    pub relays: Vec<RelayPath>,
    pub listeners: Vec<(TcpListener, ListenerSpec)>,
    pub settings: Arc<Settings>,
    /// Needed when any listener has TLS.
    pub tls: Option<Arc<SharedTls>>,
    pub filter: Arc<dyn TorrentFilter>,
    pub clock: Clock,
    pub shutdown: Arc<AtomicBool>,
}

/// What happened, for the log line a worker writes when it stops.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    accepted: u64,
    /// Closed at once: over `max_connections`.
    refused: u64,
    /// Closed at once: their address already held its share of
    /// `max_connections_per_ip` on this worker.
    refused_per_ip: u64,
    /// Closed for sending nothing (or not finishing a TLS handshake)
    /// within `first_byte_timeout` of accept; not in `timeouts`.
    first_byte_timeouts: u64,
    http_requests: u64,
    ws_messages: u64,
    /// Jobs answered "tracker busy" because a request worker was behind.
    busy: u64,
    relays_sent: u64,
    /// Offers and answers dropped: full relay channel, gone connection.
    relays_dropped: u64,
    /// Answers to offers the connection was never sent (or too late).
    answers_refused: u64,
    /// Announces refused for claiming a peer id another connection holds.
    peer_ids_refused: u64,
    /// WebSocket connections closed for not reading their messages.
    slow_readers: u64,
    timeouts: u64,
}

// ---------------------------------------------------------------------------
// Connection state

struct Conn {
    generation: u32,
    transport: Transport,
    addr: SocketAddr,
    kind: ListenerKind,
    out: OutBuf,
    phase: Phase,
    /// The socket refused bytes; a writable event resumes.
    write_blocked: bool,
    /// Reading stopped before the socket said it was empty (edge-triggered
    /// readiness will not say it again): read again when unblocked.
    read_pending: bool,
    /// Close once everything queued is written.
    close_after_flush: bool,
    in_retry: bool,
    in_dirty: bool,
    /// Closed; removed at the next reap.
    dead: bool,
}

enum Phase {
    Http(HttpConn),
    Ws(Box<WsConn>),
    /// Our side is shut; the peer's last bytes are read and dropped.
    Linger {
        until: Instant,
    },
}

struct HttpConn {
    /// Request bytes not yet handled (at most `max_request_size`).
    in_buf: Vec<u8>,
    /// The request at the request workers, if any.
    busy: Option<InFlight>,
    /// When the request being received (or waited on) began.
    request_start: Option<Instant>,
    /// When the connection last became idle.
    idle_since: Instant,
    /// The peer has finished sending.
    eof: bool,
    /// Some request bytes (past any TLS handshake) have arrived; until then
    /// `first_byte_timeout` is the deadline.
    heard: bool,
}

/// How to answer the request at the request workers.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    compact: bool,
    keep_alive: bool,
    http10: bool,
}

struct WsConn {
    ctx: WebSocketContext,
    /// The (torrent, peer id) pairs this connection announced: it leaves
    /// them all when it closes.
    torrents: WsPeers,
    offers: PendingOffers,
    in_flight: u32,
    last_recv: Instant,
}

/// A scrape whose hashes are out at the request workers.
struct PendingScrape {
    generation: u32,
    token: usize,
    conn_generation: u32,
    ws: bool,
    /// A full scrape: `files` fills from every request worker's part.
    full: bool,
    /// Cap of a full scrape's answer.
    limit: usize,
    remaining: u32,
    files: Vec<bhttp::ScrapeFile>,
}

/// A WebTorrent announce at the request workers, with what it will relay.
#[derive(Default)]
struct Kept {
    generation: u32,
    token: usize,
    conn_generation: u32,
    info_hash: InfoHash,
    peer_id: PeerId,
    /// Answer the announcer (not for a message that only carries an answer,
    /// as the reference tracker does).
    respond: bool,
    /// The relayed messages, back to back.
    messages: Vec<u8>,
    /// Offer `i`: its id and where its message is in `messages`.
    offers: Vec<(OfferId, Range<usize>)>,
    answer: Option<Range<usize>>,
}

impl Kept {
    fn reset(&mut self) {
        self.messages.clear();
        self.offers.clear();
        self.answer = None;
    }

    fn message(&self, range: &Range<usize>) -> &[u8] {
        self.messages.get(range.clone()).unwrap_or(&[])
    }
}

// ---------------------------------------------------------------------------
// Worker state apart from the connections

struct Core {
    index: u32,
    origin: usize,
    /// The worker's own copy: request handlers clone the handle to read it
    /// while they change the rest of `Core`, and an `Rc` makes that clone
    /// a plain increment instead of an atomic one on a cache line every
    /// socket worker shares.
    settings: Rc<Settings>,
    filter: Arc<dyn TorrentFilter>,
    clock: Clock,
    now: Instant,
    now_secs: u32,
    to_swarm: Vec<Sender<Batch>>,
    /// The batch being filled for each request worker.
    filling: Vec<Option<Batch>>,
    /// Full batches waiting for the next dispatch, by request worker.
    ready: Vec<(usize, Batch)>,
    /// Jobs that cannot go anywhere (no request worker at all).
    refused: Vec<Job>,
    pool: Vec<Batch>,
    relays: Vec<RelayPath>,
    relay_woken: Vec<bool>,
    scrapes: Slab<PendingScrape>,
    full_scrapes: usize,
    files_pool: Vec<Vec<bhttp::ScrapeFile>>,
    kept: Slab<Kept>,
    kept_pool: Vec<Kept>,
    next_generation: u32,
    /// Where answers are written before they are framed.
    scratch: Vec<u8>,
    read_buf: Box<[u8]>,
    /// Connections to drive again without waiting for readiness.
    retry: Vec<usize>,
    /// Connections with something to write.
    dirty: Vec<usize>,
    /// Connections to close.
    doomed: Vec<usize>,
    ws_config: WebSocketConfig,
    counters: Counters,
    per_ip: PerIpConns,
}

impl Core {
    fn tick(&mut self) {
        self.now = Instant::now();
        self.now_secs = self.clock.now_secs();
    }

    fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    fn schedule(&mut self, token: usize, conn: &mut Conn) {
        if !conn.in_retry {
            conn.in_retry = true;
            self.retry.push(token);
        }
    }

    fn mark_dirty(&mut self, token: usize, conn: &mut Conn) {
        if !conn.in_dirty {
            conn.in_dirty = true;
            self.dirty.push(token);
        }
    }

    fn doom(&mut self, token: usize, conn: &mut Conn) {
        if !conn.dead {
            conn.dead = true;
            self.doomed.push(token);
        }
    }

    fn conn_ref(&self, token: usize, generation: u32) -> ConnRef {
        ConnRef {
            front_end: self.index,
            token: token as u32,
            generation,
        }
    }

    /// Appends a job to the batch of the request worker that owns its
    /// torrent.
    fn enqueue(&mut self, job: Job) {
        let workers = self.to_swarm.len();
        match job.info_hash() {
            Some(hash) if workers > 0 => {
                let worker = worker_for(hash, workers);
                self.enqueue_to(worker, job);
            }
            _ => self.refused.push(job),
        }
    }

    fn enqueue_to(&mut self, worker: usize, job: Job) {
        let Some(slot) = self.filling.get_mut(worker) else {
            self.refused.push(job);
            return;
        };
        let origin = self.origin;
        let pool = &mut self.pool;
        let batch =
            slot.get_or_insert_with(|| pool.pop().unwrap_or_else(|| Batch::with_origin(origin)));
        batch.jobs.push(job);
        if batch.jobs.len() >= MAX_BATCH_JOBS {
            if let Some(full) = slot.take() {
                self.ready.push((worker, full));
            }
        }
    }

    fn has_work(&self) -> bool {
        !self.retry.is_empty()
            || !self.doomed.is_empty()
            || !self.ready.is_empty()
            || !self.refused.is_empty()
            || self.filling.iter().any(Option::is_some)
    }

    fn recycle_batch(&mut self, mut batch: Batch) {
        batch.clear();
        self.pool.push(batch);
    }

    fn take_files(&mut self) -> Vec<bhttp::ScrapeFile> {
        let mut files = self.files_pool.pop().unwrap_or_default();
        files.clear();
        files
    }

    fn recycle_files(&mut self, mut files: Vec<bhttp::ScrapeFile>) {
        // A full scrape's vector is not worth keeping around.
        if files.capacity() <= 1024 {
            files.clear();
            self.files_pool.push(files);
        }
    }

    fn recycle_kept(&mut self, mut kept: Kept) {
        if kept.messages.capacity() <= 64 * 1024 {
            kept.reset();
            self.kept_pool.push(kept);
        }
    }

    /// Writes `reason` as a WebTorrent failure into `scratch`.
    fn ws_failure(&mut self, reason: &str, action: Action, info_hash: Option<InfoHash>) {
        self.scratch.clear();
        jws::write_failure(&mut self.scratch, reason, Some(action), info_hash);
    }

    fn bencode_failure(&mut self, reason: &str) {
        self.scratch.clear();
        bhttp::write_failure(&mut self.scratch, reason.as_bytes());
    }
}

fn listener_token(i: usize) -> Token {
    Token(LISTENER_TOKEN_TOP - i)
}

/// The connection under `token` if it is still the one with `generation`.
fn live(conns: &mut Slab<Conn>, token: usize, generation: u32) -> Option<&mut Conn> {
    conns
        .get_mut(token)
        .filter(|c| c.generation == generation && !c.dead)
}

/// How often deadlines are checked: once a second, or more often when a
/// timeout is shorter (as in tests).
fn sweep_interval(s: &Settings) -> Duration {
    let shortest = s
        .request_timeout
        .min(s.keep_alive_timeout)
        .min(s.first_byte_timeout)
        .min(s.ws_idle_timeout);
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

// ---------------------------------------------------------------------------
// The loop

struct Worker {
    core: Core,
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
            origin,
            mut poll,
            to_swarm,
            returns,
            relay_in,
            relays,
            mut listeners,
            settings,
            tls,
            filter,
            clock,
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
        let mut w = Worker {
            core: Core {
                index: index as u32,
                origin,
                filling: (0..to_swarm.len()).map(|_| None).collect(),
                to_swarm,
                ready: Vec::new(),
                refused: Vec::new(),
                pool: Vec::new(),
                relay_woken: vec![false; relays.len()],
                relays,
                scrapes: Slab::new(),
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
                counters: Counters::default(),
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
                w.core.has_work() || w.accept_pending.contains(&true) || !relay_in.is_empty();
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
            w.core.tick();
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
                    &mut w.core,
                    &mut w.conns,
                    relay.to,
                    &relay.message,
                    relay.offer,
                );
            }
            while let Ok(batch) = returns.try_recv() {
                answer_batch(&mut w.core, &mut w.conns, batch);
            }
            if w.core.now >= next_sweep {
                w.sweep();
                next_sweep = w.core.now + sweep_every;
            }
            reap(&mut w.core, &mut w.conns);
            dispatch(&mut w.core, &mut w.conns);
            wake_relays(&mut w.core);
            flush_dirty(&mut w.core, &mut w.conns);
            reap(&mut w.core, &mut w.conns);
        }
        log::debug!("http worker {index} stopped: {:?}", w.core.counters);
    }
}

impl Worker {
    fn event(&mut self, poll: &Poll, event: &mio::event::Event) {
        let token = event.token();
        if token == WAKER {
            return;
        }
        if token.0 > LISTENER_TOKEN_TOP - self.listeners.len() {
            let i = LISTENER_TOKEN_TOP - token.0;
            self.accept(poll, i);
            return;
        }
        let t = token.0;
        let Some(conn) = self.conns.get_mut(t) else {
            return;
        };
        if conn.dead {
            return;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.write_blocked = false;
            if needs_flush(conn) {
                self.core.mark_dirty(t, conn);
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            drive(&mut self.core, t, conn);
        }
    }

    fn run_retries(&mut self) {
        let mut retry = std::mem::take(&mut self.core.retry);
        for &token in &retry {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.in_retry = false;
                if !conn.dead {
                    drive(&mut self.core, token, conn);
                }
            }
        }
        retry.clear();
        // Keep the longer of the two vectors' allocations.
        if self.core.retry.is_empty() {
            self.core.retry = retry;
        }
    }

    fn accept(&mut self, poll: &Poll, i: usize) {
        let Some((listener, spec)) = self.listeners.get(i) else {
            return;
        };
        let spec = *spec;
        for _ in 0..ACCEPTS_PER_ROUND {
            let (mut stream, addr) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending[i] = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e) => {
                    if !self.accept_retry_at_sweep {
                        log::warn!(
                            "http worker {}: accept on {}: {e}",
                            self.core.index,
                            spec.addr
                        );
                    }
                    self.accept_pending[i] = false;
                    self.accept_retry_at_sweep = true;
                    return;
                }
            };
            if self.conns.len() >= self.core.settings.max_connections {
                // Closed at once, so the backlog does not fill with clients
                // that would wait for nothing.
                self.core.counters.refused += 1;
                continue;
            }
            if !self.core.per_ip.admit(addr) {
                self.core.counters.refused_per_ip += 1;
                continue;
            }
            // From here on, a connection that is not inserted gives its
            // place back.
            let Some(tls) =
                tls::new_session(self.tls.as_deref(), &mut self.tls_missing_logged, spec)
            else {
                self.core.per_ip.release(addr);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let token = entry.key();
            if let Err(e) = poll.registry().register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!(
                    "http worker {}: cannot register a connection: {e}",
                    self.core.index
                );
                self.core.per_ip.release(addr);
                continue;
            }
            let generation = self.core.next_generation();
            let now = self.core.now;
            entry.insert(Conn {
                generation,
                transport: Transport::new(stream, tls),
                addr,
                kind: spec.kind,
                out: OutBuf::new(usize::MAX),
                phase: Phase::Http(HttpConn {
                    in_buf: Vec::new(),
                    busy: None,
                    request_start: None,
                    idle_since: now,
                    eof: false,
                    heard: false,
                }),
                write_blocked: false,
                read_pending: false,
                close_after_flush: false,
                in_retry: false,
                in_dirty: false,
                dead: false,
            });
            self.core.counters.accepted += 1;
        }
        // More may be waiting: come back after the others had their turn.
        self.accept_pending[i] = true;
    }

    /// Closes every connection past its deadline.
    fn sweep(&mut self) {
        let s = self.core.settings.clone();
        let now = self.core.now;
        for (token, conn) in self.conns.iter_mut() {
            if conn.dead {
                continue;
            }
            let first_byte = matches!(&conn.phase, Phase::Http(h) if !h.heard);
            let deadline = match &conn.phase {
                // Includes a TLS handshake: a client that connects and
                // says nothing is not waited for.
                Phase::Http(h) if !h.heard => h.idle_since + s.first_byte_timeout,
                Phase::Http(h) => match h.request_start {
                    Some(start) => start + s.request_timeout,
                    // A TLS handshake is the start of the first request:
                    // one left hanging is a slow client, not an idle one.
                    None if conn.transport.is_handshaking() => h.idle_since + s.request_timeout,
                    None => h.idle_since + s.keep_alive_timeout,
                },
                Phase::Ws(ws) => ws.last_recv + s.ws_idle_timeout,
                Phase::Linger { until } => *until,
            };
            if now >= deadline {
                if first_byte {
                    self.core.counters.first_byte_timeouts += 1;
                } else {
                    self.core.counters.timeouts += 1;
                }
                self.core.doom(token, conn);
            }
        }
        if std::mem::take(&mut self.accept_retry_at_sweep) {
            self.accept_pending.fill(true);
        }
    }
}

fn wake_relays(core: &mut Core) {
    for (i, woken) in core.relay_woken.iter_mut().enumerate() {
        if std::mem::take(woken) {
            if let Some(path) = core.relays.get(i) {
                if let Err(e) = path.waker.wake() {
                    log::warn!("cannot wake socket worker {i}: {e}");
                }
            }
        }
    }
}

/// Closes the connections marked for it; a WebSocket leaves its swarms.
fn reap(core: &mut Core, conns: &mut Slab<Conn>) {
    while let Some(token) = core.doomed.pop() {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        if !conn.dead {
            continue;
        }
        leave_all(core, token, conn);
        core.per_ip.release(conn.addr);
        // Dropping the socket closes it and takes it out of the poll.
        conns.remove(token);
    }
}

/// Writes what every dirty connection has queued.
fn flush_dirty(core: &mut Core, conns: &mut Slab<Conn>) {
    let mut dirty = std::mem::take(&mut core.dirty);
    for &token in &dirty {
        let Some(conn) = conns.get_mut(token) else {
            continue;
        };
        conn.in_dirty = false;
        if conn.dead {
            continue;
        }
        if conn.out.overflowed() {
            core.counters.slow_readers += 1;
            core.doom(token, conn);
            continue;
        }
        if conn.write_blocked {
            continue;
        }
        match conn.transport.flush(&mut conn.out) {
            Ok(Flushed::All) => {
                if conn.close_after_flush {
                    start_linger(core, token, conn);
                } else if let Phase::Http(http) = &conn.phase {
                    // Pipelined requests may have waited for the queue to
                    // drain.
                    if http.busy.is_none() && (!http.in_buf.is_empty() || conn.read_pending) {
                        core.schedule(token, conn);
                    }
                }
            }
            Ok(Flushed::SocketFull) => conn.write_blocked = true,
            Ok(Flushed::TlsPending) => {}
            Err(_) => core.doom(token, conn),
        }
    }
    dirty.clear();
    if core.dirty.is_empty() {
        core.dirty = dirty;
    }
}

/// Everything is written: end our side and drain the peer's for a moment.
fn start_linger(core: &mut Core, token: usize, conn: &mut Conn) {
    leave_all(core, token, conn);
    conn.close_after_flush = false;
    conn.transport.shutdown_write();
    conn.phase = Phase::Linger {
        until: core.now + LINGER,
    };
    if conn.transport.discard(&mut core.read_buf) {
        core.doom(token, conn);
    }
}

/// A WebSocket connection that closes leaves every swarm it announced in.
fn leave_all(core: &mut Core, token: usize, conn: &mut Conn) {
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    let conn_ref = core.conn_ref(token, conn.generation);
    let addr = conn.addr;
    for (info_hash, peer_id) in ws.torrents.drain() {
        core.enqueue(Job {
            reply: ReplyTo {
                addr,
                handle: token as u32,
                tag: 0,
            },
            work: Work::WsLeave {
                info_hash,
                peer_id,
                conn: conn_ref,
            },
        });
    }
}

/// Whether the flush stage has something to do for the connection: bytes
/// or TLS records to write, a close to finish, an overflow to act on.
fn needs_flush(conn: &Conn) -> bool {
    conn.transport.wants_write(&conn.out) || conn.close_after_flush || conn.out.overflowed()
}

fn drive(core: &mut Core, token: usize, conn: &mut Conn) {
    match conn.phase {
        Phase::Http(_) => drive_http(core, token, conn),
        Phase::Ws(_) => drive_ws(core, token, conn),
        Phase::Linger { .. } => {
            if conn.transport.discard(&mut core.read_buf) {
                core.doom(token, conn);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// Why request processing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    NeedMore,
    Busy,
    HighWater,
    Closing,
    Upgraded,
}

fn drive_http(core: &mut Core, token: usize, conn: &mut Conn) {
    let max = core.settings.max_request_size.max(MIN_REQUEST_SIZE);
    let mut reads = 0;
    let stop = loop {
        let stop = process_http(core, token, conn);
        if matches!(stop, Stop::Closing | Stop::Upgraded) || conn.dead {
            break stop;
        }
        let Phase::Http(http) = &mut conn.phase else {
            break Stop::Upgraded;
        };
        if http.eof {
            break stop;
        }
        let room = max.saturating_sub(http.in_buf.len());
        if room == 0 {
            // Resumed once requests are taken from the buffer.
            conn.read_pending = true;
            break stop;
        }
        if reads == MAX_READS {
            conn.read_pending = true;
            core.schedule(token, conn);
            break stop;
        }
        reads += 1;
        let len = room.min(core.read_buf.len());
        match conn.transport.read(&mut core.read_buf[..len]) {
            Ok(0) => {
                http.eof = true;
                conn.read_pending = false;
            }
            Ok(n) => {
                http.heard = true;
                if http.request_start.is_none() {
                    http.request_start = Some(core.now);
                }
                http.in_buf.extend_from_slice(&core.read_buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_pending = false;
                break stop;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // A TLS alert may be waiting; send it if it goes at once.
                let _ = conn.transport.flush(&mut conn.out);
                core.doom(token, conn);
                return;
            }
        }
    };
    if stop == Stop::Upgraded {
        return drive_ws(core, token, conn);
    }
    if let Phase::Http(http) = &mut conn.phase {
        // The peer is done: once nothing complete is left to answer, close.
        if http.eof && stop == Stop::NeedMore && !conn.close_after_flush {
            conn.close_after_flush = true;
        }
    }
    if needs_flush(conn) {
        core.mark_dirty(token, conn);
    }
}

/// Handles the complete requests at the front of the input buffer, one at
/// a time.
fn process_http(core: &mut Core, token: usize, conn: &mut Conn) -> Stop {
    let max = core.settings.max_request_size.max(MIN_REQUEST_SIZE);
    loop {
        if conn.dead || conn.close_after_flush {
            return Stop::Closing;
        }
        let Phase::Http(http) = &mut conn.phase else {
            return Stop::Upgraded;
        };
        if http.busy.is_some() {
            return Stop::Busy;
        }
        if conn.out.len() >= HTTP_HIGH_WATER {
            return Stop::HighWater;
        }
        if http.in_buf.is_empty() {
            return Stop::NeedMore;
        }
        match head::parse_head(&http.in_buf, core.settings.real_ip_header.as_deref()) {
            Parsed::Partial if http.in_buf.len() >= max => {
                fail_and_close(core, conn, Status::Ok, TOO_LARGE);
                return Stop::Closing;
            }
            Parsed::Partial => return Stop::NeedMore,
            Parsed::Invalid(reason) => {
                fail_and_close(core, conn, Status::BadRequest, reason);
                return Stop::Closing;
            }
            Parsed::Complete(head) => {
                core.counters.http_requests += 1;
                handle_request(core, token, conn, head);
            }
        }
    }
}

/// Answers with a bencoded failure and closes the connection.
fn fail_and_close(core: &mut Core, conn: &mut Conn, status: Status, reason: &str) {
    core.bencode_failure(reason);
    head::write_response(&mut conn.out, status, false, false, &core.scratch);
    conn.close_after_flush = true;
    if let Phase::Http(http) = &mut conn.phase {
        http.in_buf.clear();
    }
}

/// What a request turned into.
enum Outcome {
    /// Answered at once (the answer is in `out`).
    Answered { keep_alive: bool },
    /// At the request workers.
    Waiting,
    /// Now a WebSocket.
    Upgraded(Box<WsConn>),
}

fn handle_request(core: &mut Core, token: usize, conn: &mut Conn, head: Head) {
    let settings = core.settings.clone();
    let Conn {
        generation,
        addr,
        kind,
        out,
        phase,
        close_after_flush,
        read_pending,
        ..
    } = conn;
    let Phase::Http(http) = phase else {
        return;
    };
    let (keep_alive, http10) = (head.keep_alive, head.http10);
    // Answers `reason` at once with `status`.
    let fail = |core: &mut Core, out: &mut OutBuf, status, reason: &str, keep_alive| {
        core.bencode_failure(reason);
        head::write_response(out, status, keep_alive, http10, &core.scratch);
        Outcome::Answered { keep_alive }
    };
    let outcome = match (&head.upgrade, *kind) {
        (Upgrade::WebSocket { accept }, _) => {
            head::write_switching_protocols(out, accept);
            let leftover = http.in_buf.get(head.len..).unwrap_or(&[]).to_vec();
            let ctx =
                WebSocketContext::from_partially_read(leftover, Role::Server, Some(core.ws_config));
            out.set_limit(settings.ws_max_outgoing_bytes.max(1024));
            Outcome::Upgraded(Box::new(WsConn {
                ctx,
                torrents: WsPeers::default(),
                offers: PendingOffers::default(),
                in_flight: 0,
                last_recv: core.now,
            }))
        }
        (Upgrade::Invalid(reason), _) => fail(core, out, Status::BadRequest, reason, false),
        (Upgrade::None, ListenerKind::WsOnly) => {
            fail(core, out, Status::BadRequest, WS_ONLY, false)
        }
        _ if head.has_body => fail(core, out, Status::BadRequest, NO_BODY, false),
        // Closed after: a HEAD client would take the body for the next
        // answer.
        _ if head.method != Method::Get => {
            fail(core, out, Status::MethodNotAllowed, GET_ONLY, false)
        }
        _ => {
            let target = http.in_buf.get(head.target.clone()).unwrap_or(&[]);
            let inflight = InFlight {
                compact: false,
                keep_alive,
                http10,
            };
            match HttpRequest::parse(target) {
                Err(HttpParseError::UnknownPath) => fail(
                    core,
                    out,
                    Status::NotFound,
                    HttpParseError::UnknownPath.message(),
                    keep_alive,
                ),
                Err(e) => fail(core, out, Status::Ok, e.message(), keep_alive),
                Ok(HttpRequest::Announce(q)) => {
                    let ip = match head.real_ip {
                        RealIp::NotConfigured => Ok(addr.ip().to_canonical()),
                        RealIp::Ip(ip) => Ok(ip),
                        RealIp::Missing => Err("missing"),
                        RealIp::Invalid => Err("invalid"),
                    };
                    match ip {
                        Err(what) => {
                            let header = settings.real_ip_header.as_deref().unwrap_or_default();
                            let reason = format!("{what} {header} header");
                            fail(core, out, Status::Ok, &reason, keep_alive)
                        }
                        Ok(_) if !core.filter.allows(&q.info_hash) => {
                            fail(core, out, Status::Ok, NOT_ALLOWED, keep_alive)
                        }
                        Ok(ip) => {
                            let numwant = q
                                .numwant
                                .map_or(settings.default_numwant, |n| n as usize)
                                .min(settings.max_numwant);
                            let seeder = q.left == Some(0);
                            let work = match ip {
                                IpAddr::V4(v4) => Work::AnnounceV4 {
                                    announce: Announce {
                                        info_hash: q.info_hash,
                                        peer: PeerV4::new(v4, q.port),
                                        event: q.event,
                                        seeder,
                                        numwant,
                                    },
                                    peers: 0..0,
                                    counts: SwarmCounts::default(),
                                },
                                IpAddr::V6(v6) => Work::AnnounceV6 {
                                    announce: Announce {
                                        info_hash: q.info_hash,
                                        peer: PeerV6::new(v6, q.port),
                                        event: q.event,
                                        seeder,
                                        numwant,
                                    },
                                    peers: 0..0,
                                    counts: SwarmCounts::default(),
                                },
                            };
                            core.enqueue(Job {
                                reply: ReplyTo {
                                    // The client's address as announced
                                    // (proxy header included): the answer's
                                    // `external ip` (BEP 24).
                                    addr: SocketAddr::new(ip, addr.port()),
                                    handle: token as u32,
                                    tag: *generation,
                                },
                                work,
                            });
                            http.busy = Some(InFlight {
                                compact: q.compact,
                                ..inflight
                            });
                            Outcome::Waiting
                        }
                    }
                }
                Ok(HttpRequest::Scrape(s)) if s.is_empty() => {
                    if !settings.full_scrape {
                        fail(core, out, Status::Ok, FULL_SCRAPE_DISABLED, keep_alive)
                    } else if core.full_scrapes >= MAX_FULL_SCRAPES {
                        fail(core, out, Status::Ok, BUSY, keep_alive)
                    } else {
                        let limit = settings.max_full_scrape_torrents;
                        start_full_scrape(core, token, *generation, *addr, false, limit);
                        http.busy = Some(inflight);
                        Outcome::Waiting
                    }
                }
                Ok(HttpRequest::Scrape(s)) => {
                    if s.len() > max_scrape(&settings) {
                        fail(core, out, Status::Ok, TOO_MANY_HASHES, keep_alive)
                    } else if s.info_hashes().any(|h| !core.filter.allows(&h)) {
                        fail(core, out, Status::Ok, NOT_ALLOWED, keep_alive)
                    } else {
                        start_scrape(core, token, *generation, *addr, false, s.info_hashes());
                        http.busy = Some(inflight);
                        Outcome::Waiting
                    }
                }
            }
        }
    };
    match outcome {
        Outcome::Upgraded(ws) => {
            *phase = Phase::Ws(ws);
            // Frames may already sit in the leftover and in the socket.
            *read_pending = true;
        }
        Outcome::Answered { keep_alive } => {
            consume_head(http, head.len, core.now);
            http.idle_since = core.now;
            if !keep_alive {
                *close_after_flush = true;
            }
        }
        Outcome::Waiting => {
            consume_head(http, head.len, core.now);
            // The request being waited on started when its bytes came.
            if http.request_start.is_none() {
                http.request_start = Some(core.now);
            }
        }
    }
}

/// Drops a handled head from the buffer; what follows is the next
/// request, started now as far as its timeout is concerned.
fn consume_head(http: &mut HttpConn, len: usize, now: Instant) {
    let len = len.min(http.in_buf.len());
    http.in_buf.drain(..len);
    http.request_start = if http.in_buf.is_empty() {
        None
    } else {
        Some(now)
    };
    if http.in_buf.capacity() > 64 * 1024 && http.in_buf.len() < 1024 {
        http.in_buf.shrink_to(4096);
    }
}

fn max_scrape(settings: &Settings) -> usize {
    settings.max_scrape_torrents.min(usize::from(u16::MAX))
}

/// The request at the request workers has been answered: carry on with
/// the connection.
/// Sends the answer in `core.scratch` to the request in flight and makes
/// the connection ready for its next request (or to close).
fn finish_http_request(core: &mut Core, token: usize, conn: &mut Conn, inflight: InFlight) {
    head::write_response(
        &mut conn.out,
        Status::Ok,
        inflight.keep_alive,
        inflight.http10,
        &core.scratch,
    );
    if let Phase::Http(http) = &mut conn.phase {
        http.request_start = if http.in_buf.is_empty() {
            None
        } else {
            Some(core.now)
        };
        http.idle_since = core.now;
    }
    if inflight.keep_alive {
        // Pipelined requests, and reads that stopped while it waited.
        core.schedule(token, conn);
    } else {
        conn.close_after_flush = true;
    }
    core.mark_dirty(token, conn);
}

/// Takes the in-flight request of an HTTP connection.
fn take_in_flight(conn: &mut Conn) -> Option<InFlight> {
    match &mut conn.phase {
        Phase::Http(http) => http.busy.take(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Scrapes (HTTP and WebSocket)

fn start_scrape(
    core: &mut Core,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    hashes: impl Iterator<Item = InfoHash>,
) {
    let generation = core.next_generation();
    let mut files = core.take_files();
    files.extend(hashes.map(|info_hash| bhttp::ScrapeFile {
        info_hash,
        ..Default::default()
    }));
    let count = files.len();
    let slot = core.scrapes.insert(PendingScrape {
        generation,
        token,
        conn_generation,
        ws,
        full: false,
        limit: count,
        remaining: count as u32,
        files,
    });
    for index in 0..count {
        let Some(info_hash) = core
            .scrapes
            .get(slot)
            .and_then(|p| p.files.get(index))
            .map(|f| f.info_hash)
        else {
            break;
        };
        let counts = SwarmCounts::default();
        let (slot32, index) = (slot as u32, index as u16);
        let work = if ws {
            Work::WsScrape {
                info_hash,
                slot: slot32,
                index,
                counts,
            }
        } else {
            Work::Scrape {
                info_hash,
                slot: slot32,
                index,
                counts,
            }
        };
        core.enqueue(Job {
            reply: ReplyTo {
                addr,
                handle: slot32,
                tag: generation,
            },
            work,
        });
    }
}

fn start_full_scrape(
    core: &mut Core,
    token: usize,
    conn_generation: u32,
    addr: SocketAddr,
    ws: bool,
    limit: usize,
) {
    let workers = core.to_swarm.len();
    let generation = core.next_generation();
    let files = core.take_files();
    let slot = core.scrapes.insert(PendingScrape {
        generation,
        token,
        conn_generation,
        ws,
        full: true,
        limit,
        remaining: workers as u32,
        files,
    });
    core.full_scrapes += 1;
    if workers == 0 {
        // Nobody to ask: the answer is empty.
        core.refused.push(Job {
            reply: ReplyTo {
                addr,
                handle: slot as u32,
                tag: generation,
            },
            work: Work::FullScrape {
                webtorrent: ws,
                limit: 0,
                files: 0..0,
                left_out: 0,
            },
        });
        return;
    }
    for worker in 0..workers {
        core.enqueue_to(
            worker,
            Job {
                reply: ReplyTo {
                    addr,
                    handle: slot as u32,
                    tag: generation,
                },
                work: Work::FullScrape {
                    webtorrent: ws,
                    limit: limit.min(u32::MAX as usize) as u32,
                    files: 0..0,
                    left_out: 0,
                },
            },
        );
    }
}

/// Files one request worker's part of a scrape; answers when it is whole.
fn scrape_part(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    index: Option<usize>,
    counts: &SwarmCounts,
    full: &[(InfoHash, SwarmCounts)],
) {
    let slot = reply.handle as usize;
    let Some(p) = core.scrapes.get_mut(slot) else {
        return;
    };
    if p.generation != reply.tag {
        return;
    }
    match index {
        Some(index) => {
            if let Some(f) = p.files.get_mut(index) {
                f.complete = counts.seeders;
                f.incomplete = counts.leechers;
                f.downloaded = counts.completed;
            }
        }
        None => {
            let room = p.limit.saturating_sub(p.files.len());
            p.files.extend(
                full.iter()
                    .take(room)
                    .map(|(info_hash, c)| bhttp::ScrapeFile {
                        info_hash: *info_hash,
                        complete: c.seeders,
                        downloaded: c.completed,
                        incomplete: c.leechers,
                    }),
            );
        }
    }
    p.remaining = p.remaining.saturating_sub(1);
    if p.remaining == 0 {
        finish_scrape(core, conns, slot, None);
    }
}

/// Answers a pending scrape: with its files, or with `failure`.
fn finish_scrape(core: &mut Core, conns: &mut Slab<Conn>, slot: usize, failure: Option<&str>) {
    let Some(mut p) = core.scrapes.try_remove(slot) else {
        return;
    };
    if p.full {
        core.full_scrapes = core.full_scrapes.saturating_sub(1);
    }
    if let Some(conn) = live(conns, p.token, p.conn_generation) {
        let token = p.token;
        if p.ws {
            core.scratch.clear();
            match failure {
                Some(reason) => {
                    let first = p.files.first().map(|f| f.info_hash);
                    jws::write_failure(&mut core.scratch, reason, Some(Action::Scrape), first);
                }
                None => jws::write_scrape_response(&mut core.scratch, p.files.iter().copied()),
            }
            ws_send(&core.scratch, conn);
            ws_request_done(core, token, conn);
        } else if let Some(inflight) = take_in_flight(conn) {
            match failure {
                Some(reason) => core.bencode_failure(reason),
                None => {
                    p.files.sort_unstable_by_key(|f| f.info_hash);
                    p.files.truncate(p.limit);
                    core.scratch.clear();
                    bhttp::write_scrape_response(&mut core.scratch, &mut p.files);
                }
            }
            finish_http_request(core, token, conn, inflight);
        }
    }
    core.recycle_files(p.files);
}

// ---------------------------------------------------------------------------
// Batches

/// Offers every filled batch to its request worker; a batch whose worker
/// is behind is answered "tracker busy" job by job.
fn dispatch(core: &mut Core, conns: &mut Slab<Conn>) {
    for (worker, batch) in std::mem::take(&mut core.ready) {
        send_batch(core, conns, worker, batch);
    }
    for worker in 0..core.filling.len() {
        if let Some(batch) = core.filling[worker].take() {
            send_batch(core, conns, worker, batch);
        }
    }
    for job in std::mem::take(&mut core.refused) {
        refuse_job(core, conns, job);
    }
}

fn send_batch(core: &mut Core, conns: &mut Slab<Conn>, worker: usize, batch: Batch) {
    if batch.is_empty() {
        core.recycle_batch(batch);
        return;
    }
    let result = match core.to_swarm.get(worker) {
        Some(sender) => sender.try_send(batch),
        None => Err(TrySendError::Disconnected(batch)),
    };
    match result {
        Ok(()) => {}
        // The request worker is behind: shed this load now rather than
        // queue it without bound.
        Err(TrySendError::Full(mut batch)) | Err(TrySendError::Disconnected(mut batch)) => {
            core.counters.busy += batch.jobs.len() as u64;
            for job in batch.jobs.drain(..) {
                refuse_job(core, conns, job);
            }
            core.recycle_batch(batch);
        }
    }
}

/// Answers a job that could not be sent: "tracker busy".
fn refuse_job(core: &mut Core, conns: &mut Slab<Conn>, job: Job) {
    let reply = job.reply;
    match job.work {
        Work::AnnounceV4 { .. } | Work::AnnounceV6 { .. } => {
            let Some(conn) = live(conns, reply.handle as usize, reply.tag) else {
                return;
            };
            let Some(inflight) = take_in_flight(conn) else {
                return;
            };
            core.bencode_failure(BUSY);
            finish_http_request(core, reply.handle as usize, conn, inflight);
        }
        Work::Scrape { .. } | Work::WsScrape { .. } => {
            if core
                .scrapes
                .get(reply.handle as usize)
                .is_some_and(|p| p.generation == reply.tag)
            {
                finish_scrape(core, conns, reply.handle as usize, Some(BUSY));
            }
        }
        Work::FullScrape { .. } => {
            let slot = reply.handle as usize;
            let Some(p) = core.scrapes.get_mut(slot) else {
                return;
            };
            if p.generation != reply.tag {
                return;
            }
            if core.to_swarm.is_empty() {
                // No request worker at all: an empty answer.
                p.remaining = 0;
                finish_scrape(core, conns, slot, None);
            } else {
                finish_scrape(core, conns, slot, Some(BUSY));
            }
        }
        Work::WsAnnounce { announce, .. } => {
            let Some(kept) = take_kept(core, &reply) else {
                return;
            };
            if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
                core.ws_failure(BUSY, Action::Announce, Some(announce.info_hash));
                ws_send(&core.scratch, conn);
                ws_request_done(core, kept.token, conn);
            }
            core.recycle_kept(kept);
        }
        // The peer expires with the next cleaning instead.
        Work::WsLeave { .. } => {}
    }
}

fn take_kept(core: &mut Core, reply: &ReplyTo) -> Option<Kept> {
    let slot = reply.handle as usize;
    if core
        .kept
        .get(slot)
        .is_some_and(|k| k.generation == reply.tag)
    {
        core.kept.try_remove(slot)
    } else {
        None
    }
}

/// Writes the answers of a batch back from a request worker.
fn answer_batch(core: &mut Core, conns: &mut Slab<Conn>, batch: Batch) {
    for job in &batch.jobs {
        let reply = &job.reply;
        match &job.work {
            Work::AnnounceV4 { peers, counts, .. } => {
                let v4 = slice(&batch.peers_v4, peers);
                answer_http_announce(core, conns, reply, v4, &[], counts);
            }
            Work::AnnounceV6 { peers, counts, .. } => {
                let v6 = slice(&batch.peers_v6, peers);
                answer_http_announce(core, conns, reply, &[], v6, counts);
            }
            Work::Scrape { index, counts, .. } | Work::WsScrape { index, counts, .. } => {
                scrape_part(core, conns, reply, Some(usize::from(*index)), counts, &[]);
            }
            Work::FullScrape { files, .. } => {
                let files = slice(&batch.scrape_files, files);
                scrape_part(core, conns, reply, None, &SwarmCounts::default(), files);
            }
            Work::WsAnnounce {
                announce,
                targets,
                counts,
                answer_target,
                peer_id_taken,
            } => {
                let targets = slice(&batch.ws_targets, targets);
                if *peer_id_taken {
                    refuse_taken_peer_id(core, conns, reply, announce);
                    continue;
                }
                answer_ws_announce(
                    core,
                    conns,
                    reply,
                    announce,
                    targets,
                    counts,
                    *answer_target,
                );
            }
            Work::WsLeave { .. } => {}
        }
    }
    core.recycle_batch(batch);
}

/// The results a request worker wrote for one job, by their range in the
/// batch's shared vector (empty if the range is somehow out of bounds).
fn slice<'a, T>(all: &'a [T], range: &Range<u32>) -> &'a [T] {
    all.get(range.start as usize..range.end as usize)
        .unwrap_or(&[])
}

fn answer_http_announce(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    v4: &[PeerV4],
    v6: &[PeerV6],
    counts: &SwarmCounts,
) {
    let token = reply.handle as usize;
    let Some(conn) = live(conns, token, reply.tag) else {
        return;
    };
    let Some(inflight) = take_in_flight(conn) else {
        return;
    };
    let s = &core.settings;
    let peers = if inflight.compact {
        bhttp::ResponsePeers::Compact { v4, v6 }
    } else {
        bhttp::ResponsePeers::Dicts { v4, v6 }
    };
    let response = HttpAnnounceResponse {
        interval: s.announce_interval,
        min_interval: (s.min_announce_interval > 0).then_some(s.min_announce_interval),
        complete: counts.seeders,
        incomplete: counts.leechers,
        peers,
        // BEP 24: the address the tracker saw, so a client behind NAT
        // learns what to tell peers it meets elsewhere (DHT, PEX).
        external_ip: Some(reply.addr.ip()),
        warning_message: None,
    };
    core.scratch.clear();
    bhttp::write_announce_response(&mut core.scratch, &response);
    finish_http_request(core, token, conn, inflight);
}

// ---------------------------------------------------------------------------
// WebSocket

fn drive_ws(core: &mut Core, token: usize, conn: &mut Conn) {
    let mut budget = MAX_WS_MESSAGES;
    loop {
        if conn.dead || conn.close_after_flush {
            break;
        }
        let Conn {
            phase,
            transport,
            out,
            ..
        } = &mut *conn;
        let Phase::Ws(ws) = phase else {
            break;
        };
        if ws.in_flight >= MAX_WS_IN_FLIGHT {
            // Resumed when an answer comes back.
            conn.read_pending = true;
            break;
        }
        if budget == 0 {
            conn.read_pending = true;
            core.schedule(token, conn);
            break;
        }
        budget -= 1;
        let result = ws.ctx.read(&mut WsIo { transport, out });
        match result {
            Ok(Message::Text(text)) => {
                ws.last_recv = core.now;
                core.counters.ws_messages += 1;
                ws_text(core, token, conn, text.as_str());
            }
            Ok(Message::Binary(_)) => {
                close_ws(
                    core,
                    token,
                    conn,
                    CloseCode::Unsupported,
                    "binary messages are not served",
                );
                break;
            }
            // Pings are answered by tungstenite; a close frame is answered
            // too, and the next read says the connection is done.
            Ok(_) => ws.last_recv = core.now,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_pending = false;
                break;
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                leave_all(core, token, conn);
                conn.close_after_flush = true;
                break;
            }
            Err(e) => {
                match ws_close_for(&e) {
                    Some((code, reason)) => close_ws(core, token, conn, code, reason),
                    None => core.doom(token, conn),
                }
                break;
            }
        }
    }
    if needs_flush(conn) {
        core.mark_dirty(token, conn);
    }
}

/// Sends a close frame, leaves every swarm, and closes once written.
fn close_ws(core: &mut Core, token: usize, conn: &mut Conn, code: CloseCode, reason: &'static str) {
    leave_all(core, token, conn);
    let Conn {
        phase,
        transport,
        out,
        ..
    } = &mut *conn;
    if let Phase::Ws(ws) = phase {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = ws.ctx.close(&mut WsIo { transport, out }, Some(frame));
    }
    conn.close_after_flush = true;
}

/// Queues one text message, unless the connection is closing.
fn ws_send(message: &[u8], conn: &mut Conn) {
    if conn.close_after_flush {
        return;
    }
    if let Phase::Ws(ws) = &conn.phase {
        if ws.ctx.can_write() {
            conn.out.push_ws_text(message);
        }
    }
}

/// One of the connection's requests came back from the request workers.
fn ws_request_done(core: &mut Core, token: usize, conn: &mut Conn) {
    if let Phase::Ws(ws) = &mut conn.phase {
        ws.in_flight = ws.in_flight.saturating_sub(1);
        if conn.read_pending && ws.in_flight < MAX_WS_IN_FLIGHT {
            core.schedule(token, conn);
        }
    }
    core.mark_dirty(token, conn);
}

fn ws_text(core: &mut Core, token: usize, conn: &mut Conn, text: &str) {
    match InMessage::parse(text) {
        Err(e) => {
            core.scratch.clear();
            jws::write_parse_failure(&mut core.scratch, &e);
            ws_send(&core.scratch, conn);
        }
        Ok(InMessage::Announce(a)) => ws_announce(core, token, conn, a),
        Ok(InMessage::Scrape(s)) => ws_scrape(core, token, conn, s),
    }
}

fn ws_announce(core: &mut Core, token: usize, conn: &mut Conn, a: AnnounceRequest<'_>) {
    let settings = core.settings.clone();
    let info_hash = a.info_hash;
    let refuse = |core: &mut Core, conn: &mut Conn, reason| {
        core.ws_failure(reason, Action::Announce, Some(info_hash));
        ws_send(&core.scratch, conn);
    };
    if !core.filter.allows(&info_hash) {
        return refuse(core, conn, NOT_ALLOWED);
    }
    let (generation, addr) = (conn.generation, conn.addr);
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    let joined = ws.torrents.seeder(&info_hash, &a.peer_id);
    let stopping = a.event == AnnounceEvent::Stopped;
    if joined.is_none() && !stopping {
        if let Some(reason) = ws.torrents.refuse_new(
            &a.peer_id,
            settings.ws_max_torrents_per_connection,
            settings.ws_max_peer_ids_per_connection,
        ) {
            return refuse(core, conn, reason);
        }
    }
    // A message without `left` (an answer, typically) keeps what the peer
    // said before rather than turning a seeder into a leecher.
    let seeder = match a.left {
        Some(left) => left == 0,
        None => joined.unwrap_or(false),
    };

    let mut kept = core.kept_pool.pop().unwrap_or_default();
    kept.reset();
    let mut answer_to = None;
    if let Some(answer) = &a.answer {
        let timeout = u32::try_from(settings.ws_offer_timeout.as_secs()).unwrap_or(u32::MAX);
        if ws.offers.take(
            &answer.offer_id,
            &answer.to_peer_id,
            &info_hash,
            core.now_secs,
            timeout,
        ) {
            let start = kept.messages.len();
            jws::write_answer(
                &mut kept.messages,
                &jws::RelayedAnswer {
                    info_hash,
                    peer_id: a.peer_id,
                    offer_id: &answer.offer_id,
                    answer: answer.answer,
                },
            );
            kept.answer = Some(start..kept.messages.len());
            answer_to = Some(answer.to_peer_id);
        } else {
            core.counters.answers_refused += 1;
        }
    }
    let offers = if stopping {
        0
    } else {
        let wanted = a.numwant.map_or(settings.default_numwant, |n| n as usize);
        a.offers
            .len()
            .min(wanted)
            .min(settings.ws_max_offers)
            .min(settings.max_numwant)
    };
    for offer in a.offers.iter().take(offers) {
        let start = kept.messages.len();
        jws::write_offer(
            &mut kept.messages,
            &jws::RelayedOffer {
                info_hash,
                peer_id: a.peer_id,
                offer_id: &offer.offer_id,
                offer: offer.offer,
            },
        );
        kept.offers
            .push((offer.offer_id.clone(), start..kept.messages.len()));
    }
    // Recorded before the request worker agrees, so a close while the
    // announce is out still leaves; a leave for an entry another
    // connection owns removes nothing there.
    if stopping {
        ws.torrents.leave(&info_hash, &a.peer_id);
    } else {
        ws.torrents.join(info_hash, a.peer_id, seeder);
    }
    kept.generation = core.next_generation();
    kept.token = token;
    kept.conn_generation = generation;
    kept.info_hash = info_hash;
    kept.peer_id = a.peer_id;
    kept.respond = a.answer.is_none();
    let kept_generation = kept.generation;
    let slot = core.kept.insert(kept);
    ws.in_flight += 1;
    let conn_ref = core.conn_ref(token, generation);
    core.enqueue(Job {
        reply: ReplyTo {
            addr,
            handle: slot as u32,
            tag: kept_generation,
        },
        work: Work::WsAnnounce {
            announce: WsAnnounce {
                info_hash,
                peer_id: a.peer_id,
                conn: conn_ref,
                event: a.event,
                seeder,
                offers,
                answer_to,
            },
            targets: 0..0,
            counts: SwarmCounts::default(),
            answer_target: None,
            peer_id_taken: false,
        },
    });
}

fn ws_scrape(core: &mut Core, token: usize, conn: &mut Conn, s: ScrapeRequest) {
    let settings = core.settings.clone();
    let (generation, addr) = (conn.generation, conn.addr);
    let first = s.info_hashes.as_ref().and_then(|h| h.first().copied());
    let refuse = |core: &mut Core, conn: &mut Conn, reason, info_hash| {
        core.ws_failure(reason, Action::Scrape, info_hash);
        ws_send(&core.scratch, conn);
    };
    match s.info_hashes {
        None if !settings.full_scrape => refuse(core, conn, FULL_SCRAPE_DISABLED, None),
        None if core.full_scrapes >= MAX_FULL_SCRAPES => refuse(core, conn, BUSY, None),
        None => {
            let fits = settings.ws_max_outgoing_bytes / WS_SCRAPE_FILE_BYTES;
            let limit = settings.max_full_scrape_torrents.min(fits);
            start_full_scrape(core, token, generation, addr, true, limit);
            if let Phase::Ws(ws) = &mut conn.phase {
                ws.in_flight += 1;
            }
        }
        Some(hashes) if hashes.is_empty() => {
            core.scratch.clear();
            jws::write_scrape_response(&mut core.scratch, []);
            ws_send(&core.scratch, conn);
        }
        Some(hashes) if hashes.len() > max_scrape(&settings) => {
            refuse(core, conn, TOO_MANY_HASHES, first);
        }
        Some(hashes) => {
            if let Some(refused) = hashes.iter().find(|h| !core.filter.allows(h)) {
                return refuse(core, conn, NOT_ALLOWED, Some(*refused));
            }
            start_scrape(core, token, generation, addr, true, hashes.into_iter());
            if let Phase::Ws(ws) = &mut conn.phase {
                ws.in_flight += 1;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn answer_ws_announce(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    announce: &WsAnnounce,
    targets: &[WsTarget],
    counts: &SwarmCounts,
    answer_target: Option<ConnRef>,
) {
    let Some(kept) = take_kept(core, reply) else {
        return;
    };
    let mut announcer_here = false;
    if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
        announcer_here = true;
        if kept.respond {
            core.scratch.clear();
            jws::write_announce_response(
                &mut core.scratch,
                &jws::AnnounceResponse {
                    info_hash: announce.info_hash,
                    interval: core.settings.ws_announce_interval,
                    complete: counts.seeders,
                    incomplete: counts.leechers,
                    warning_message: None,
                },
            );
            ws_send(&core.scratch, conn);
        }
        ws_request_done(core, kept.token, conn);
    }
    // An offer whose answer could not find its way back is not sent.
    if announcer_here {
        for (target, (offer_id, range)) in targets.iter().zip(&kept.offers) {
            let offer = RelayedOfferId {
                offer_id: offer_id.clone(),
                from: kept.peer_id,
                info_hash: kept.info_hash,
            };
            deliver(core, conns, target.conn, kept.message(range), Some(offer));
        }
    }
    if let (Some(to), Some(range)) = (answer_target, &kept.answer) {
        deliver(core, conns, to, kept.message(range), None);
    }
    core.recycle_kept(kept);
}

/// The announce claimed a peer id another connection holds in the swarm:
/// the announcer gets a failure, its offers and answer go nowhere, and it
/// stops counting the pair as its own (the request worker kept nothing).
fn refuse_taken_peer_id(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    announce: &WsAnnounce,
) {
    let Some(kept) = take_kept(core, reply) else {
        return;
    };
    core.counters.peer_ids_refused += 1;
    if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
        if let Phase::Ws(ws) = &mut conn.phase {
            ws.torrents.leave(&announce.info_hash, &announce.peer_id);
        }
        core.ws_failure(PEER_ID_TAKEN, Action::Announce, Some(announce.info_hash));
        ws_send(&core.scratch, conn);
        ws_request_done(core, kept.token, conn);
    }
    core.recycle_kept(kept);
}

/// Sends a relayed offer or answer to the connection `to`, wherever it is.
fn deliver(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    to: ConnRef,
    message: &[u8],
    offer: Option<RelayedOfferId>,
) {
    if to.front_end == core.index {
        return deliver_local(core, conns, to, message, offer);
    }
    let front_end = to.front_end as usize;
    let Some(path) = core.relays.get(front_end) else {
        core.counters.relays_dropped += 1;
        return;
    };
    let relay = Relay {
        to,
        offer,
        message: message.to_vec(),
    };
    match path.sender.try_send(relay) {
        Ok(()) => {
            core.counters.relays_sent += 1;
            if let Some(woken) = core.relay_woken.get_mut(front_end) {
                *woken = true;
            }
        }
        Err(_) => core.counters.relays_dropped += 1,
    }
}

/// Queues a relayed message for a connection of this worker, recording an
/// offer as one it may answer.
fn deliver_local(
    core: &mut Core,
    conns: &mut Slab<Conn>,
    to: ConnRef,
    message: &[u8],
    offer: Option<RelayedOfferId>,
) {
    let token = to.token as usize;
    let Some(conn) = live(conns, token, to.generation) else {
        core.counters.relays_dropped += 1;
        return;
    };
    if conn.close_after_flush {
        return;
    }
    let Phase::Ws(ws) = &mut conn.phase else {
        return;
    };
    if !ws.ctx.can_write() {
        return;
    }
    if !conn.out.could_ever_hold_ws_text(message.len()) {
        // Larger than the whole queue: the sender's problem, not a reason
        // to disconnect the receiver.
        core.counters.relays_dropped += 1;
        return;
    }
    if let Some(o) = offer {
        ws.offers.insert(
            o.offer_id,
            o.from,
            o.info_hash,
            core.now_secs,
            core.settings.ws_max_pending_offers,
        );
    }
    conn.out.push_ws_text(message);
    core.mark_dirty(token, conn);
}
