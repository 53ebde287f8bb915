//! A UDP socket worker: receives datagrams in batches, answers connects
//! and errors itself, sends announces and scrapes to the request workers
//! that own their torrents, and writes their answers back in batches.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tracker_proto::connection_id::{ip_to_16, make_connection_id, verify_connection_id};
use tracker_proto::udp::{
    write_connect_response, write_error_response, AnnounceResponse, PeerV4, PeerV6, Peers, Request,
    Response, ScrapeResponse, ScrapeStats, TransactionId,
};

use super::mmsg::{RecvBatch, SendQueue, BATCH};
use super::{UdpSettings, MAX_SCRAPE_TORRENTS};
use crate::access_list::SharedAccessList;
use crate::clock::unix_tick;
use crate::swarm::{worker_for, Announce, Batch, Job, ReplyTo, SwarmCounts, Work};

/// The token of the waker request workers use to say a batch came back.
pub const WAKER: Token = Token(usize::MAX);
/// recvmmsg calls per socket before the worker turns to its other duties,
/// so answers keep flowing under a flood.
const RECV_ROUNDS: usize = 8;
/// Jobs per batch before it is sent without waiting for the receive round
/// to end: keeps request-worker latency and batch memory bounded.
const MAX_BATCH_JOBS: usize = 512;
/// Longest the worker sleeps when idle; bounds shutdown latency.
const IDLE_POLL: Duration = Duration::from_millis(100);

const INVALID_CONNECTION_ID: &[u8] = b"connection id invalid or expired";
const NOT_ALLOWED: &[u8] = b"info hash not allowed";

pub struct UdpWorker {
    pub origin: usize,
    pub sockets: Vec<mio::net::UdpSocket>,
    pub poll: Poll,
    pub to_swarm: Vec<Sender<Batch>>,
    pub returns: Receiver<Batch>,
    pub settings: Arc<UdpSettings>,
    pub access_list: Arc<SharedAccessList>,
    pub shutdown: Arc<AtomicBool>,
}

/// A scrape whose hashes are out at request workers.
struct PendingScrape {
    /// Guards against a late answer landing in a reused slot.
    generation: u32,
    socket: usize,
    addr: SocketAddr,
    transaction_id: TransactionId,
    len: usize,
    remaining: usize,
    stats: [ScrapeStats; MAX_SCRAPE_TORRENTS],
}

#[derive(Default, Debug)]
struct Counters {
    requests: u64,
    dropped_busy: u64,
    dropped_queue_full: u64,
}

/// Everything but the receive buffers, so a received batch can be read
/// while this is mutated.
struct State {
    origin: usize,
    settings: Arc<UdpSettings>,
    access_list: Arc<SharedAccessList>,
    to_swarm: Vec<Sender<Batch>>,
    filling: Vec<Option<Batch>>,
    pool: Vec<Batch>,
    send_queues: Vec<SendQueue>,
    pending: Slab<PendingScrape>,
    next_generation: u32,
    counters: Counters,
}

impl UdpWorker {
    pub fn run(self) {
        let UdpWorker {
            origin,
            mut sockets,
            mut poll,
            to_swarm,
            returns,
            settings,
            access_list,
            shutdown,
        } = self;
        for (i, socket) in sockets.iter_mut().enumerate() {
            if let Err(e) =
                poll.registry()
                    .register(socket, Token(i), Interest::READABLE | Interest::WRITABLE)
            {
                log::error!("udp worker {origin}: cannot register socket: {e}");
                return;
            }
        }
        let slot_len = settings.response_slot_len();
        let mut state = State {
            origin,
            filling: (0..to_swarm.len()).map(|_| None).collect(),
            to_swarm,
            pool: Vec::new(),
            send_queues: sockets
                .iter()
                .map(|_| SendQueue::new(settings.outgoing_queue_len, slot_len))
                .collect(),
            pending: Slab::new(),
            next_generation: 0,
            counters: Counters::default(),
            settings,
            access_list,
        };
        let mut recv = RecvBatch::new();
        let mut readable = vec![true; sockets.len()];
        let mut send_blocked = vec![false; sockets.len()];
        let mut events = Events::with_capacity(64);

        while !shutdown.load(Ordering::Relaxed) {
            let timeout = if readable.iter().any(|&r| r) {
                Duration::ZERO
            } else {
                IDLE_POLL
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("udp worker {origin}: poll failed: {e}");
                    break;
                }
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let i = event.token().0;
                if event.is_readable() {
                    readable[i] = true;
                }
                if event.is_writable() {
                    send_blocked[i] = false;
                }
            }
            for (i, socket) in sockets.iter().enumerate() {
                if readable[i] {
                    readable[i] = state.receive(&mut recv, i, socket.as_raw_fd());
                }
            }
            state.dispatch();
            while let Ok(batch) = returns.try_recv() {
                state.answer(batch);
            }
            for (i, socket) in sockets.iter().enumerate() {
                if !send_blocked[i] && !state.send_queues[i].is_empty() {
                    match state.send_queues[i].flush(socket.as_raw_fd()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => send_blocked[i] = true,
                        Err(e) => log::warn!("udp worker {origin}: send failed: {e}"),
                    }
                }
            }
        }
        log::debug!("udp worker {origin} stopped: {:?}", state.counters);
    }
}

impl State {
    /// Drains up to `RECV_ROUNDS` batches; returns whether more may wait.
    fn receive(&mut self, recv: &mut RecvBatch, socket: usize, fd: i32) -> bool {
        for _ in 0..RECV_ROUNDS {
            match recv.recv(fd) {
                Ok(n) => {
                    let tick = unix_tick();
                    for i in 0..n {
                        if let Some((data, Some(addr))) = recv.get(i) {
                            self.handle(socket, addr, data, tick);
                        }
                    }
                    // Edge-triggered readiness fires again for every new
                    // datagram, so a short batch means the socket is empty.
                    if n < BATCH {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("udp worker {}: receive failed: {e}", self.origin);
                    return false;
                }
            }
        }
        true
    }

    fn handle(&mut self, socket: usize, addr: SocketAddr, data: &[u8], tick: u32) {
        self.counters.requests += 1;
        let ip = ip_to_16(addr.ip());
        let request = match Request::parse(data) {
            Ok(request) => request,
            Err(e) => {
                // Under 16 bytes there is no transaction id to answer to.
                if let Some(transaction_id) = e.transaction_id {
                    self.error(socket, addr, transaction_id, e.kind.message().as_bytes());
                }
                return;
            }
        };
        let settings = &self.settings;
        match request {
            Request::Connect(connect) => {
                let id = make_connection_id(&settings.secret, tick, &ip, addr.port());
                self.respond(socket, addr, |buf| {
                    write_connect_response(buf, connect.transaction_id, id).ok()
                });
            }
            Request::Announce(a) => {
                if !verify_connection_id(
                    &settings.secret,
                    a.connection_id,
                    tick,
                    settings.connection_id_lifetime,
                    &ip,
                    addr.port(),
                ) {
                    return self.error(socket, addr, a.transaction_id, INVALID_CONNECTION_ID);
                }
                if !self.access_list.allows(&a.info_hash) {
                    return self.error(socket, addr, a.transaction_id, NOT_ALLOWED);
                }
                let numwant = settings.numwant(a.num_want);
                let seeder = a.left == 0;
                let work = match addr {
                    SocketAddr::V4(v4) => Work::AnnounceV4 {
                        announce: Announce {
                            info_hash: a.info_hash,
                            peer: PeerV4::new(*v4.ip(), a.port),
                            event: a.event,
                            seeder,
                            numwant,
                        },
                        peers: 0..0,
                        counts: SwarmCounts::default(),
                    },
                    SocketAddr::V6(v6) => Work::AnnounceV6 {
                        announce: Announce {
                            info_hash: a.info_hash,
                            peer: PeerV6::new(*v6.ip(), a.port),
                            event: a.event,
                            seeder,
                            numwant,
                        },
                        peers: 0..0,
                        counts: SwarmCounts::default(),
                    },
                };
                let reply = ReplyTo {
                    addr,
                    handle: socket as u32,
                    tag: a.transaction_id.0,
                };
                self.enqueue(Job { reply, work });
            }
            Request::Scrape(s) => {
                if !verify_connection_id(
                    &settings.secret,
                    s.connection_id,
                    tick,
                    settings.connection_id_lifetime,
                    &ip,
                    addr.port(),
                ) {
                    return self.error(socket, addr, s.transaction_id, INVALID_CONNECTION_ID);
                }
                self.scrape(socket, addr, s.transaction_id, s.info_hashes);
            }
        }
    }

    fn scrape(
        &mut self,
        socket: usize,
        addr: SocketAddr,
        transaction_id: TransactionId,
        hashes: tracker_proto::udp::InfoHashes<'_>,
    ) {
        // Hashes past the cap are ignored rather than refused: the client
        // still gets the first ones, in order, and can ask again for the rest.
        let len = hashes.len().min(self.settings.max_scrape_torrents);
        if self.pending.len() >= self.settings.max_pending_scrapes {
            self.counters.dropped_busy += 1;
            return;
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.pending.insert(PendingScrape {
            generation,
            socket,
            addr,
            transaction_id,
            len,
            remaining: 0,
            stats: [ScrapeStats::new(0, 0, 0); MAX_SCRAPE_TORRENTS],
        });
        let mut remaining = 0;
        for index in 0..len {
            let Some(info_hash) = hashes.get(index) else {
                break;
            };
            // A refused torrent scrapes as empty: saying "refused" per hash
            // has no place in BEP 15's reply.
            if !self.access_list.allows(&info_hash) {
                continue;
            }
            remaining += 1;
            self.enqueue(Job {
                reply: ReplyTo {
                    addr,
                    handle: socket as u32,
                    tag: generation,
                },
                work: Work::Scrape {
                    info_hash,
                    slot: slot as u32,
                    index: index as u16,
                    counts: SwarmCounts::default(),
                },
            });
        }
        if remaining == 0 {
            self.finish_scrape(slot);
        } else {
            self.pending[slot].remaining = remaining;
        }
    }

    fn finish_scrape(&mut self, slot: usize) {
        let p = self.pending.remove(slot);
        let response = Response::Scrape(ScrapeResponse {
            transaction_id: p.transaction_id,
            stats: &p.stats[..p.len],
        });
        self.respond(p.socket, p.addr, |buf| response.emit(buf).ok());
    }

    fn enqueue(&mut self, job: Job) {
        let worker = worker_for(job.info_hash(), self.to_swarm.len());
        let batch = self.filling[worker].get_or_insert_with(|| {
            self.pool
                .pop()
                .unwrap_or_else(|| Batch::with_origin(self.origin))
        });
        batch.jobs.push(job);
        if batch.jobs.len() >= MAX_BATCH_JOBS {
            self.send_batch(worker);
        }
    }

    /// Hands every filled batch to its request worker.
    fn dispatch(&mut self) {
        for worker in 0..self.filling.len() {
            self.send_batch(worker);
        }
    }

    fn send_batch(&mut self, worker: usize) {
        let Some(batch) = self.filling[worker].take() else {
            return;
        };
        if batch.is_empty() {
            self.pool.push(batch);
            return;
        }
        match self.to_swarm[worker].try_send(batch) {
            Ok(()) => {}
            // The request worker is behind: shed this load now rather than
            // queue it without bound; clients retry per BEP 15.
            Err(TrySendError::Full(mut batch)) | Err(TrySendError::Disconnected(mut batch)) => {
                self.counters.dropped_busy += batch.jobs.len() as u64;
                for job in &batch.jobs {
                    if let Work::Scrape { slot, .. } = job.work {
                        self.abandon_scrape(slot as usize, job.reply.tag);
                    }
                }
                batch.clear();
                self.pool.push(batch);
            }
        }
    }

    fn abandon_scrape(&mut self, slot: usize, generation: u32) {
        if self
            .pending
            .get(slot)
            .is_some_and(|p| p.generation == generation)
        {
            self.pending.remove(slot);
        }
    }

    /// Writes the answers of a batch back from the request workers.
    fn answer(&mut self, mut batch: Batch) {
        let interval = self.settings.announce_interval;
        for job in &batch.jobs {
            let socket = job.reply.handle as usize;
            let transaction_id = TransactionId(job.reply.tag);
            match &job.work {
                Work::AnnounceV4 { peers, counts, .. } => {
                    let range = peers.start as usize..peers.end as usize;
                    let peers = Peers::V4(batch.peers_v4.get(range).unwrap_or(&[]));
                    self.announce_response(
                        socket,
                        job.reply.addr,
                        transaction_id,
                        interval,
                        counts,
                        peers,
                    );
                }
                Work::AnnounceV6 { peers, counts, .. } => {
                    let range = peers.start as usize..peers.end as usize;
                    let peers = Peers::V6(batch.peers_v6.get(range).unwrap_or(&[]));
                    self.announce_response(
                        socket,
                        job.reply.addr,
                        transaction_id,
                        interval,
                        counts,
                        peers,
                    );
                }
                Work::Scrape {
                    slot,
                    index,
                    counts,
                    ..
                } => {
                    let slot = *slot as usize;
                    let Some(p) = self.pending.get_mut(slot) else {
                        continue;
                    };
                    if p.generation != job.reply.tag {
                        continue;
                    }
                    if let Some(stats) = p.stats.get_mut(*index as usize) {
                        *stats =
                            ScrapeStats::new(counts.seeders, counts.completed, counts.leechers);
                    }
                    p.remaining -= 1;
                    if p.remaining == 0 {
                        self.finish_scrape(slot);
                    }
                }
            }
        }
        batch.clear();
        self.pool.push(batch);
    }

    fn announce_response(
        &mut self,
        socket: usize,
        addr: SocketAddr,
        transaction_id: TransactionId,
        interval: u32,
        counts: &SwarmCounts,
        peers: Peers<'_>,
    ) {
        let response = Response::Announce(AnnounceResponse {
            transaction_id,
            interval,
            leechers: counts.leechers,
            seeders: counts.seeders,
            peers,
        });
        self.respond(socket, addr, |buf| response.emit(buf).ok());
    }

    fn error(
        &mut self,
        socket: usize,
        addr: SocketAddr,
        transaction_id: TransactionId,
        message: &[u8],
    ) {
        self.respond(socket, addr, |buf| {
            write_error_response(buf, transaction_id, message).ok()
        });
    }

    fn respond(
        &mut self,
        socket: usize,
        addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        let Some(queue) = self.send_queues.get_mut(socket) else {
            return;
        };
        if !queue.push(addr, write) {
            self.counters.dropped_queue_full += 1;
        }
    }
}
