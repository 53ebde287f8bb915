//! The BEP 15 request path shared by every datagram front end (plain UDP
//! sockets and AF_XDP queues): parse, check the connection id and access
//! list, answer connects and errors at once, batch announces and scrapes to
//! the request workers, and write their answers back.

use std::net::SocketAddr;
use std::sync::Arc;

use tracker_proto::connection_id::{ip_to_16, make_connection_id, verify_connection_id};
use tracker_proto::http::HttpParseError;
use tracker_proto::udp::{
    write_connect_response, write_error_response, AnnounceResponse, Peers, Request, Response,
    ScrapeResponse, ScrapeStats, TransactionId,
};

use super::{UdpSettings, MAX_SCRAPE_TORRENTS};
use crate::access_list::SharedAccessList;
use tracker_metrics::{Action, ErrorKind, Protocol, RequestBlock};
use tracker_swarm::{
    Batch, Job, Outbox, PendingScrapes, ReplyTo, ScrapeTicket, SwarmCounts, SwarmInbox, Work,
};

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

/// The route of an announce the XDP program already answered: applied to
/// the swarm, never answered again. AF_XDP reply-path sequences skip it.
pub const ANSWERED_IN_KERNEL: ReplyRoute = ReplyRoute(u32::MAX);

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
    /// This front end's own block, which only it writes: the scrape sums
    /// it with every other front end's.
    counters: RequestBlock,
    /// The row of the block this front end writes (`udp` or `udp_xdp`).
    protocol: Protocol,
    /// Responses the front end could not queue (full send queue, AF_XDP
    /// reply path gone): for the log line at stop, no metric of its own.
    unqueued: u64,
    /// The tick of the last rejected-id log line: at most one a second per
    /// front end, so a flood of bad ids cannot flood the log.
    last_rejection_log: u32,
}

impl RequestHandler {
    pub fn new<I: Into<SwarmInbox>>(
        origin: usize,
        settings: Arc<UdpSettings>,
        access_list: Arc<SharedAccessList>,
        to_swarm: Vec<I>,
        counters: RequestBlock,
        protocol: Protocol,
    ) -> Self {
        Self {
            outbox: Outbox::new(origin, to_swarm),
            pending: PendingScrapes::new(settings.max_pending_scrapes),
            counters,
            protocol,
            unqueued: 0,
            last_rejection_log: 0,
            settings,
            access_list,
        }
    }

    #[cfg(test)]
    pub fn counters(&self) -> &tracker_metrics::RequestCounters {
        &self.counters
    }

    /// What this front end counted, for its log line at stop.
    pub fn summary(&self) -> Summary {
        let (c, p) = (&self.counters, self.protocol);
        Summary {
            requests: [Action::Connect, Action::Announce, Action::Scrape]
                .map(|a| c.requests(p, a))
                .iter()
                .sum(),
            errors: c.responses(p, Action::Error),
            dropped: c.dropped_count(p),
            unqueued: self.unqueued,
        }
    }

    pub fn handle<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        data: &[u8],
        tick: u32,
    ) {
        self.count_request(data);
        let ip = ip_to_16(addr.ip());
        let request = match Request::parse(data) {
            Ok(request) => request,
            Err(e) => {
                // Under 16 bytes there is no transaction id to answer to.
                if let Some(transaction_id) = e.transaction_id {
                    let message = e.kind.message().as_bytes();
                    let kind = ErrorKind::Malformed;
                    self.error(out, route, addr, transaction_id, kind, message);
                }
                return;
            }
        };
        let settings = &self.settings;
        match request {
            Request::Connect(connect) => {
                let id = make_connection_id(&settings.secret, tick, &ip);
                self.respond(out, route, addr, Action::Connect, |buf| {
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
                    let (txid, kind) = (a.transaction_id, ErrorKind::BadConnectionId);
                    self.error(out, route, addr, txid, kind, INVALID_CONNECTION_ID);
                    return self.rejected_connection_id(addr, tick);
                }
                if a.port == 0 {
                    let kind = ErrorKind::Malformed;
                    return self.error(out, route, addr, a.transaction_id, kind, INVALID_PORT);
                }
                if !self.access_list.allows(&a.info_hash) {
                    let kind = ErrorKind::AccessDenied;
                    return self.error(out, route, addr, a.transaction_id, kind, NOT_ALLOWED);
                }
                let numwant = settings.numwant(a.num_want);
                let seeder = a.left == 0;
                let work = Work::announce(addr.ip(), a.port, a.info_hash, a.event, seeder, numwant);
                let reply = ReplyTo {
                    addr,
                    route: route.0,
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
                    let (txid, kind) = (s.transaction_id, ErrorKind::BadConnectionId);
                    self.error(out, route, addr, txid, kind, INVALID_CONNECTION_ID);
                    return self.rejected_connection_id(addr, tick);
                }
                if s.info_hashes.len() > MAX_SCRAPE_HASHES {
                    let kind = ErrorKind::TooLarge;
                    return self.error(out, route, addr, s.transaction_id, kind, TOO_LARGE);
                }
                self.scrape(out, route, addr, s.transaction_id, s.info_hashes);
            }
        }
    }

    /// Applies an announce the XDP program answered (from its `ANNOUNCED`
    /// ring) as if it had come through this front end, without answering
    /// it. Counted as an announce request and response of this front
    /// end's protocol: the program sent the response.
    pub fn kernel_announce(&mut self, applied: &crate::xdp::ring::Applied) {
        self.counters.request(self.protocol, Action::Announce);
        self.counters.response(self.protocol, Action::Announce);
        let info_hash = tracker_proto::InfoHash(applied.info_hash);
        // The program had it cached, so it was allowed when cached; a list
        // reloaded since then wins.
        if !self.access_list.allows(&info_hash) {
            return;
        }
        let peer = applied.peer;
        let work = Work::announce(
            peer.ip(),
            peer.port(),
            info_hash,
            applied.event,
            applied.seeder,
            0,
        );
        let reply = ReplyTo {
            addr: peer,
            route: ANSWERED_IN_KERNEL.0,
            tag: 0,
        };
        self.enqueue(Job { reply, work });
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
        self.count_request(data);
        if let Some(id) = data.get(12..16) {
            let transaction_id = TransactionId(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
            let kind = ErrorKind::TooLarge;
            self.error(out, route, addr, transaction_id, kind, TOO_LARGE);
        }
    }

    /// Counts a request by the action its bytes 8..12 name, before parsing,
    /// so a malformed announce still counts as an announce. A datagram
    /// naming no action is not a request of any kind: only its error
    /// response (when it has a transaction id to answer) is counted.
    fn count_request(&self, data: &[u8]) {
        // Read before parsing, so a malformed announce still counts as an
        // announce; the numbers are the wire format's own.
        let Some(&[a, b, c, d]) = data.get(8..12) else {
            return;
        };
        let action = match u32::from_be_bytes([a, b, c, d]) {
            tracker_proto::udp::ACTION_CONNECT => Action::Connect,
            tracker_proto::udp::ACTION_ANNOUNCE => Action::Announce,
            tracker_proto::udp::ACTION_SCRAPE => Action::Scrape,
            _ => return,
        };
        self.counters.request(self.protocol, action);
    }

    fn rejected_connection_id(&mut self, addr: SocketAddr, tick: u32) {
        if tick != self.last_rejection_log {
            self.last_rejection_log = tick;
            log::debug!(
                "connection id invalid or expired from {addr} ({} rejected by this worker so far)",
                self.counters
                    .errors(self.protocol, ErrorKind::BadConnectionId)
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
            self.counters.dropped(self.protocol, 1);
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
                    route: route.0,
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
        self.respond(out, p.route, p.addr, Action::Scrape, |buf| {
            response.emit(buf).ok()
        });
    }

    /// Files a job with its request worker, sending any batch it fills at
    /// once. Returns whether a send was refused (its jobs dropped, their
    /// scrapes abandoned).
    fn enqueue(&mut self, job: Job) -> bool {
        let mut requests = 0;
        let pending = &mut self.pending;
        // Every job this front end makes names a torrent, so a job is
        // only given back when there is no request worker at all.
        let given_back = self.outbox.push(job).map(|job| {
            requests += abandon(pending, &job);
        });
        // The worker is behind: shed this load now rather than queue it
        // without bound; clients retry per BEP 15.
        let jobs = self.outbox.send_full(|j| requests += abandon(pending, &j));
        self.counters.dropped(self.protocol, requests);
        given_back.is_some() || jobs > 0
    }

    /// Hands every filled batch to its request worker.
    pub fn dispatch(&mut self) {
        let (pending, mut requests) = (&mut self.pending, 0);
        self.outbox.send_all(|j| requests += abandon(pending, &j));
        self.counters.dropped(self.protocol, requests);
    }

    /// Writes the answers of a batch back from the request workers.
    pub fn answer<R: Responder>(&mut self, out: &mut R, batch: Batch) {
        for job in &batch.jobs {
            let announce = matches!(job.work, Work::AnnounceV4 { .. } | Work::AnnounceV6 { .. });
            if announce && job.reply.route == ANSWERED_IN_KERNEL.0 {
                continue;
            }
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
                    let (route, txid) = (ReplyRoute(reply.route), TransactionId(reply.tag));
                    let kind = ErrorKind::LimitReached;
                    self.error(out, route, reply.addr, txid, kind, message);
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
            let route = ReplyRoute(job.reply.route);
            self.respond(out, route, job.reply.addr, Action::Announce, |buf| {
                response.emit(buf).ok()
            });
        }
        self.outbox.recycle(batch);
    }

    /// Sends an error response, counted by `kind` once it is queued.
    fn error<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        transaction_id: TransactionId,
        kind: ErrorKind,
        message: &[u8],
    ) {
        let write = |buf: &mut [u8]| write_error_response(buf, transaction_id, message).ok();
        if out.respond(route, addr, write) {
            self.counters.error(self.protocol, kind);
        } else {
            self.unqueued += 1;
        }
    }

    /// Sends the answer to an `action` request, counted once it is queued.
    fn respond<R: Responder>(
        &mut self,
        out: &mut R,
        route: ReplyRoute,
        addr: SocketAddr,
        action: Action,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if out.respond(route, addr, write) {
            self.counters.response(self.protocol, action);
        } else {
            self.unqueued += 1;
        }
    }
}

/// What a front end counted, as its log line at stop shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub requests: u64,
    pub errors: u64,
    pub dropped: u64,
    pub unqueued: u64,
}

/// Drops the pending scrape a refused job was part of: it cannot be
/// answered whole, and a partial answer would misreport the missing hashes
/// as empty torrents. Its parts already out are ignored when they return.
/// Returns the requests this drops: 1 for an announce, 1 for the first
/// refused part of a scrape, 0 for its other parts (already dropped).
fn abandon(pending: &mut PendingScrapes<PendingScrape>, job: &Job) -> u64 {
    match job.work {
        Work::Scrape { slot, .. } => {
            let ticket = ScrapeTicket {
                slot,
                generation: job.reply.tag,
            };
            u64::from(pending.remove(ticket).is_some())
        }
        _ => 1,
    }
}

/// The peers a request worker wrote for one job, by their range in the
/// batch's shared vector (empty if the range is somehow out of bounds).
fn peer_slice<'a, P>(all: &'a [P], range: &std::ops::Range<u32>) -> &'a [P] {
    all.get(range.start as usize..range.end as usize)
        .unwrap_or(&[])
}
