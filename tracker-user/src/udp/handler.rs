//! The BEP 15 request path shared by every datagram front end (plain UDP
//! sockets and AF_XDP queues): parse, check the connection id and access
//! list, answer connects and errors at once, batch announces and scrapes to
//! the request workers, and write their answers back.

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::Sender;
use tracker_proto::connection_id::{ip_to_16, make_connection_id, verify_connection_id};
use tracker_proto::http::HttpParseError;
use tracker_proto::udp::{
    write_connect_response, write_error_response, AnnounceResponse, Peers, Request, Response,
    ScrapeResponse, ScrapeStats, TransactionId,
};

use super::{UdpSettings, MAX_SCRAPE_TORRENTS};
use crate::access_list::SharedAccessList;
use tracker_swarm::{Batch, Job, Outbox, PendingScrapes, ReplyTo, ScrapeTicket, SwarmCounts, Work};

const INVALID_CONNECTION_ID: &[u8] = b"connection id invalid or expired";
const NOT_ALLOWED: &[u8] = b"info hash not allowed";
/// The wording HTTP gives the same mistake: a peer at port 0 cannot be
/// connected to, so handing it out as `IP:0` only wastes other peers' time.
const INVALID_PORT: &[u8] = HttpParseError::InvalidPort.message().as_bytes();
/// For scrapes of more than [`MAX_SCRAPE_HASHES`], which a socket receives
/// cut short (see [`RequestHandler::too_large`]) and AF_XDP may receive whole.
const TOO_LARGE: &[u8] = b"request too large (a scrape may carry at most 101 info hashes)";
/// The most hashes a scrape may carry: what fits a socket receive slot.
/// AF_XDP frames can hold more; refusing those too keeps one contract.
const MAX_SCRAPE_HASHES: usize = (super::mmsg::RECV_BUF_LEN - 16) / 20;
const _: () = assert!(
    MAX_SCRAPE_HASHES == 101,
    "TOO_LARGE names MAX_SCRAPE_HASHES"
);

/// Which way the answer to a request leaves its front end, as the front end
/// said when it passed the request in: on plain UDP the index of the socket
/// the request arrived on, on AF_XDP the sequence number of the request's
/// remembered reply path. It travels through the request workers as
/// `ReplyTo::handle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRoute(pub u32);

/// A front end's output, passed to the [`RequestHandler`] per call so the
/// front end keeps owning its I/O. `route` is what the front end passed
/// with the request being answered.
pub trait Responder {
    /// Writes one response with `write` (which returns its length, or None
    /// to abandon it). Returns false when it had to be dropped.
    fn respond(
        &mut self,
        route: ReplyRoute,
        addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool;
}

/// A scrape whose hashes are out at request workers; its slot rides in
/// each job's `Work::Scrape`, its generation as the reply's `tag` (the
/// `handle` carries the route).
struct PendingScrape {
    route: ReplyRoute,
    addr: SocketAddr,
    transaction_id: TransactionId,
    len: usize,
    stats: [ScrapeStats; MAX_SCRAPE_TORRENTS],
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counters {
    pub requests: u64,
    /// Requests shed because a request worker or the pending-scrape table
    /// was full.
    pub dropped_busy: u64,
    /// Responses the front end could not queue.
    pub dropped_queue_full: u64,
    /// Announces and scrapes refused for a connection id that is forged,
    /// expired or issued to another IP.
    pub rejected_connection_id: u64,
    /// Announces refused for announcing port 0.
    pub rejected_port_zero: u64,
    /// Datagrams longer than the receive slot, refused as too large.
    pub rejected_too_large: u64,
}

/// The BEP 15 request logic of one front-end thread, whatever carries its
/// datagrams: parses, answers what needs no swarm, batches the rest to the
/// request workers and writes their answers through the [`Responder`] the
/// front end passes with each call. It holds protocol state only: batches,
/// pending scrapes, counters.
pub struct RequestHandler {
    settings: Arc<UdpSettings>,
    access_list: Arc<SharedAccessList>,
    outbox: Outbox,
    pending: PendingScrapes<PendingScrape>,
    counters: Counters,
    /// The tick of the last rejected-id log line: at most one a second per
    /// front end, so a flood of bad ids cannot flood the log.
    last_rejection_log: u32,
}

impl RequestHandler {
    pub fn new(
        origin: usize,
        settings: Arc<UdpSettings>,
        access_list: Arc<SharedAccessList>,
        to_swarm: Vec<Sender<Batch>>,
    ) -> Self {
        Self {
            outbox: Outbox::new(origin, to_swarm),
            pending: PendingScrapes::new(settings.max_pending_scrapes),
            counters: Counters::default(),
            last_rejection_log: 0,
            settings,
            access_list,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn handle<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        data: &[u8],
        tick: u32,
    ) {
        self.counters.requests += 1;
        let ip = ip_to_16(addr.ip());
        let request = match Request::parse(data) {
            Ok(request) => request,
            Err(e) => {
                // Under 16 bytes there is no transaction id to answer to.
                if let Some(transaction_id) = e.transaction_id {
                    self.error(
                        out,
                        route,
                        addr,
                        transaction_id,
                        e.kind.message().as_bytes(),
                    );
                }
                return;
            }
        };
        let settings = &self.settings;
        match request {
            Request::Connect(connect) => {
                let id = make_connection_id(&settings.secret, tick, &ip);
                self.respond(out, route, addr, |buf| {
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
                ) {
                    self.rejected_connection_id(addr, tick);
                    return self.error(out, route, addr, a.transaction_id, INVALID_CONNECTION_ID);
                }
                if a.port == 0 {
                    self.counters.rejected_port_zero += 1;
                    return self.error(out, route, addr, a.transaction_id, INVALID_PORT);
                }
                if !self.access_list.allows(&a.info_hash) {
                    return self.error(out, route, addr, a.transaction_id, NOT_ALLOWED);
                }
                let numwant = settings.numwant(a.num_want);
                let seeder = a.left == 0;
                let work = Work::announce(addr.ip(), a.port, a.info_hash, a.event, seeder, numwant);
                let reply = ReplyTo {
                    addr,
                    handle: route.0,
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
                ) {
                    self.rejected_connection_id(addr, tick);
                    return self.error(out, route, addr, s.transaction_id, INVALID_CONNECTION_ID);
                }
                if s.info_hashes.len() > MAX_SCRAPE_HASHES {
                    self.counters.rejected_too_large += 1;
                    return self.error(out, route, addr, s.transaction_id, TOO_LARGE);
                }
                self.scrape(out, route, addr, s.transaction_id, s.info_hashes);
            }
        }
    }

    /// Answers a datagram the front end had to cut to its receive slot.
    /// Only a scrape of more than 101 hashes is that long; refusing it
    /// says what went wrong, where parsing the cut copy would claim its
    /// length is not a multiple of 20, and answering the hashes that fit
    /// would silently drop some the client believes it asked about.
    pub fn too_large<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        data: &[u8],
    ) {
        self.counters.requests += 1;
        self.counters.rejected_too_large += 1;
        if let Some(id) = data.get(12..16) {
            let transaction_id = TransactionId(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
            self.error(out, route, addr, transaction_id, TOO_LARGE);
        }
    }

    fn rejected_connection_id(&mut self, addr: SocketAddr, tick: u32) {
        self.counters.rejected_connection_id += 1;
        if tick != self.last_rejection_log {
            self.last_rejection_log = tick;
            log::debug!(
                "connection id invalid or expired from {addr} ({} rejected by this worker so far)",
                self.counters.rejected_connection_id
            );
        }
    }

    fn scrape<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        transaction_id: TransactionId,
        hashes: tracker_proto::udp::InfoHashes<'_>,
    ) {
        // Hashes past the cap are ignored rather than refused: the client
        // still gets the first ones, in order, and can ask again for the rest.
        let len = hashes.len().min(self.settings.max_scrape_torrents);
        let pending = PendingScrape {
            route,
            addr,
            transaction_id,
            len,
            stats: [ScrapeStats::new(0, 0, 0); MAX_SCRAPE_TORRENTS],
        };
        let Ok(ticket) = self.pending.insert(pending, 0) else {
            self.counters.dropped_busy += 1;
            return;
        };
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
            let job = Job {
                reply: ReplyTo {
                    addr,
                    handle: route.0,
                    tag: ticket.generation,
                },
                work: Work::Scrape {
                    info_hash,
                    slot: ticket.slot,
                    index: index as u16,
                    counts: SwarmCounts::default(),
                },
            };
            if self.enqueue(job) && self.pending.get(ticket).is_none() {
                // A batch holding some of its parts was refused: the scrape
                // is shed already, so its other parts would be work for
                // nothing.
                return;
            }
        }
        if remaining == 0 {
            if let Some(p) = self.pending.remove(ticket) {
                self.finish_scrape(out, p);
            }
        } else {
            self.pending.set_parts(ticket, remaining);
        }
    }

    fn finish_scrape<R: Responder>(&mut self, out: &mut R, p: PendingScrape) {
        let response = Response::Scrape(ScrapeResponse {
            transaction_id: p.transaction_id,
            stats: &p.stats[..p.len],
        });
        self.respond(out, p.route, p.addr, |buf| response.emit(buf).ok());
    }

    /// Files a job with its request worker, sending any batch it fills at
    /// once. Returns whether a send was refused (its jobs dropped, their
    /// scrapes abandoned).
    fn enqueue(&mut self, job: Job) -> bool {
        let mut refused = 0;
        let pending = &mut self.pending;
        // Every job this front end makes names a torrent, so a job is
        // only given back when there is no request worker at all.
        if let Some(job) = self.outbox.push(job) {
            abandon(pending, &job);
            refused += 1;
        }
        // The worker is behind: shed this load now rather than queue it
        // without bound; clients retry per BEP 15.
        refused += self.outbox.send_full(|j| abandon(pending, &j));
        self.counters.dropped_busy += refused;
        refused > 0
    }

    /// Hands every filled batch to its request worker.
    pub fn dispatch(&mut self) {
        let pending = &mut self.pending;
        self.counters.dropped_busy += self.outbox.send_all(|j| abandon(pending, &j));
    }

    /// Writes the answers of a batch back from the request workers.
    pub fn answer<R: Responder>(&mut self, out: &mut R, batch: Batch) {
        for job in &batch.jobs {
            let (peers, counts) = match &job.work {
                Work::AnnounceV4 {
                    refused: Some(refusal),
                    ..
                }
                | Work::AnnounceV6 {
                    refused: Some(refusal),
                    ..
                } => {
                    let (reply, message) = (job.reply, refusal.message().as_bytes());
                    let route = ReplyRoute(reply.handle);
                    self.error(out, route, reply.addr, TransactionId(reply.tag), message);
                    continue;
                }
                Work::AnnounceV4 { peers, counts, .. } => {
                    (Peers::V4(peer_slice(&batch.peers_v4, peers)), counts)
                }
                Work::AnnounceV6 { peers, counts, .. } => {
                    (Peers::V6(peer_slice(&batch.peers_v6, peers)), counts)
                }
                Work::Scrape {
                    slot,
                    index,
                    counts,
                    ..
                } => {
                    let ticket = ScrapeTicket {
                        slot: *slot,
                        generation: job.reply.tag,
                    };
                    let stats = ScrapeStats::new(counts.seeders, counts.completed, counts.leechers);
                    let done = self.pending.file_part(ticket, |p| {
                        if let Some(s) = p.stats.get_mut(usize::from(*index)) {
                            *s = stats;
                        }
                    });
                    if let Some(p) = done {
                        self.finish_scrape(out, p);
                    }
                    continue;
                }
                // HTTP/WebSocket work; never sent from here.
                Work::FullScrape { .. }
                | Work::WsAnnounce { .. }
                | Work::WsScrape { .. }
                | Work::WsLeave { .. } => continue,
            };
            let response = Response::Announce(AnnounceResponse {
                transaction_id: TransactionId(job.reply.tag),
                interval: self.settings.announce_interval,
                leechers: counts.leechers,
                seeders: counts.seeders,
                peers,
            });
            let route = ReplyRoute(job.reply.handle);
            self.respond(out, route, job.reply.addr, |buf| response.emit(buf).ok());
        }
        self.outbox.recycle(batch);
    }

    fn error<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        transaction_id: TransactionId,
        message: &[u8],
    ) {
        self.respond(out, route, addr, |buf| {
            write_error_response(buf, transaction_id, message).ok()
        });
    }

    fn respond<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if !out.respond(route, addr, write) {
            self.counters.dropped_queue_full += 1;
        }
    }
}

/// Drops the pending scrape a refused job was part of: it cannot be
/// answered whole, and a partial answer would misreport the missing hashes
/// as empty torrents. Its parts already out are ignored when they return.
fn abandon(pending: &mut PendingScrapes<PendingScrape>, job: &Job) {
    if let Work::Scrape { slot, .. } = job.work {
        pending.remove(ScrapeTicket {
            slot,
            generation: job.reply.tag,
        });
    }
}

/// The peers a request worker wrote for one job, by their range in the
/// batch's shared vector (empty if the range is somehow out of bounds).
fn peer_slice<'a, P>(all: &'a [P], range: &std::ops::Range<u32>) -> &'a [P] {
    all.get(range.start as usize..range.end as usize)
        .unwrap_or(&[])
}
