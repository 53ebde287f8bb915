//! HTTP requests: reading, parsing, answering at once or sending to the
//! request workers.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use slab::Slab;
use tracker_metrics::{Action, ErrorKind, Protocol};
use tracker_proto::http::{
    self as bhttp, AnnounceQuery, HttpAnnounceResponse, HttpParseError, HttpRequest, ScrapeQuery,
};
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_swarm::{Job, ReplyTo, SwarmCounts, Work};
use tungstenite::protocol::{Role, WebSocketContext};

use crate::buf::OutBuf;
use crate::head::{self, Head, Method, Parsed, RealIp, Status, Upgrade};
use crate::offers::PendingOffers;
use crate::settings::{ListenerKind, Settings};
use crate::ws_peers::WsPeers;

use super::connections::{needs_flush, Conn, Phase};
use super::scrape::{start_full_scrape, start_scrape};
use super::state::{live, WorkerState};
use super::ws::{drive_ws, WsConn};
use super::{BUSY, FULL_SCRAPE_DISABLED, MAX_FULL_SCRAPES, NOT_ALLOWED, TOO_MANY_HASHES};

/// Reads per readiness before a connection yields to the others.
const MAX_READS: usize = 16;
/// Queued answer bytes beyond which an HTTP connection's pipelined
/// requests wait until the client reads.
const HTTP_HIGH_WATER: usize = 64 * 1024;
/// Smallest request head limit honoured, whatever the config says.
const MIN_REQUEST_SIZE: usize = 256;
const TOO_LARGE: &str = "request too large";
const WS_ONLY: &str = "this port serves WebSocket connections only";
const GET_ONLY: &str = "only GET requests are served";
const NO_BODY: &str = "requests with a body are not served";

pub(super) struct HttpConn {
    /// Request bytes not yet handled (at most `max_request_size`).
    pub(super) in_buf: Vec<u8>,
    /// The request at the request workers, if any.
    pub(super) busy: Option<InFlight>,
    /// When the request being received (or waited on) began.
    pub(super) request_start: Option<Instant>,
    /// When the connection last became idle.
    pub(super) idle_since: Instant,
    /// The peer has finished sending.
    pub(super) eof: bool,
    /// Some request bytes (past any TLS handshake) have arrived; until then
    /// `first_byte_timeout` is the deadline.
    pub(super) heard: bool,
}

/// How to answer the request at the request workers.
#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) compact: bool,
    pub(super) keep_alive: bool,
    pub(super) http10: bool,
}

/// Why request processing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    NeedMore,
    Busy,
    HighWater,
    Closing,
    Upgraded,
}

pub(super) fn drive_http(state: &mut WorkerState, token: usize, conn: &mut Conn) {
    let max = state.settings.max_request_size.max(MIN_REQUEST_SIZE);
    let mut reads = 0;
    let stop = loop {
        let stop = process_http(state, token, conn);
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
            state.schedule(token, conn);
            break stop;
        }
        reads += 1;
        let len = room.min(state.read_buf.len());
        match conn.transport.read(&mut state.read_buf[..len]) {
            Ok(0) => {
                http.eof = true;
                conn.read_pending = false;
            }
            Ok(n) => {
                http.heard = true;
                if http.request_start.is_none() {
                    http.request_start = Some(state.now);
                }
                http.in_buf.extend_from_slice(&state.read_buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_pending = false;
                break stop;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData && conn.transport.is_handshaking() {
                    state.connections.tls_handshake_failures.inc();
                }
                // A TLS alert may be waiting; send it if it goes at once.
                let _ = conn.transport.flush(&mut conn.out);
                state.doom(token, conn);
                return;
            }
        }
    };
    if stop == Stop::Upgraded {
        return drive_ws(state, token, conn);
    }
    if let Phase::Http(http) = &mut conn.phase {
        // The peer is done: once nothing complete is left to answer, close.
        if http.eof && stop == Stop::NeedMore && !conn.close_after_flush {
            conn.close_after_flush = true;
        }
    }
    if needs_flush(conn) {
        state.mark_dirty(token, conn);
    }
}

/// Handles the complete requests at the front of the input buffer, one at
/// a time.
fn process_http(state: &mut WorkerState, token: usize, conn: &mut Conn) -> Stop {
    let max = state.settings.max_request_size.max(MIN_REQUEST_SIZE);
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
        match head::parse_head(&http.in_buf, state.settings.real_ip_header.as_deref()) {
            Parsed::Partial if http.in_buf.len() >= max => {
                fail_and_close(state, conn, Status::Ok, TOO_LARGE, ErrorKind::TooLarge);
                return Stop::Closing;
            }
            Parsed::Partial => return Stop::NeedMore,
            Parsed::Invalid(reason) => {
                fail_and_close(
                    state,
                    conn,
                    Status::BadRequest,
                    reason,
                    ErrorKind::Malformed,
                );
                return Stop::Closing;
            }
            Parsed::Complete(head) => {
                handle_request(state, token, conn, head);
            }
        }
    }
}

/// Answers with a bencoded failure and closes the connection.
fn fail_and_close(
    state: &mut WorkerState,
    conn: &mut Conn,
    status: Status,
    reason: &str,
    kind: ErrorKind,
) {
    state.requests.error(conn.protocol, kind);
    state.bencode_failure(reason);
    head::write_response(&mut conn.out, status, false, false, &state.scratch);
    conn.close_after_flush = true;
    if let Phase::Http(http) = &mut conn.phase {
        http.in_buf.clear();
    }
}

/// What a request turned into.
enum Outcome {
    /// Answered at once (the answer is in `out`).
    Answered { keep_alive: bool },
    /// At the request workers, to be answered as this says.
    Waiting(InFlight),
    /// Now a WebSocket.
    Upgraded(Box<WsConn>),
}

/// Who asked, and how an answer to them is framed.
#[derive(Clone, Copy)]
struct Asker {
    token: usize,
    generation: u32,
    addr: SocketAddr,
    keep_alive: bool,
    http10: bool,
    protocol: Protocol,
}

impl Asker {
    fn in_flight(&self, compact: bool) -> InFlight {
        InFlight {
            compact,
            keep_alive: self.keep_alive,
            http10: self.http10,
        }
    }
}

/// Handles one complete request head: decides what it is, answers it or
/// sends it on, then readies the connection for what comes next.
fn handle_request(state: &mut WorkerState, token: usize, conn: &mut Conn, head: Head) {
    let Conn {
        generation,
        addr,
        kind,
        protocol,
        transport,
        out,
        phase,
        close_after_flush,
        read_pending,
        ..
    } = conn;
    let Phase::Http(http) = phase else {
        return;
    };
    let asker = Asker {
        token,
        generation: *generation,
        addr: *addr,
        keep_alive: head.keep_alive,
        http10: head.http10,
        protocol: *protocol,
    };
    let outcome = match (&head.upgrade, *kind) {
        (Upgrade::WebSocket { accept }, _) => {
            let leftover = http.in_buf.get(head.len..).unwrap_or(&[]);
            upgrade(state, out, accept, leftover)
        }
        (Upgrade::Invalid(reason), _) => {
            fail(state, out, &asker, Status::BadRequest, reason, MALFORMED)
        }
        (Upgrade::None, ListenerKind::WsOnly) => {
            fail(state, out, &asker, Status::BadRequest, WS_ONLY, MALFORMED)
        }
        _ if head.has_body => fail(state, out, &asker, Status::BadRequest, NO_BODY, MALFORMED),
        // Closed after: a HEAD client would take the body for the next
        // answer.
        _ if head.method != Method::Get => fail(
            state,
            out,
            &asker,
            Status::MethodNotAllowed,
            GET_ONLY,
            MALFORMED,
        ),
        _ => {
            let target = http.in_buf.get(head.target.clone()).unwrap_or(&[]);
            tracker_request(state, out, &asker, target, head.real_ip)
        }
    };
    match outcome {
        Outcome::Upgraded(ws) => {
            let tls = transport.is_tls();
            state.connections.upgraded(tls);
            *protocol = Protocol::tcp(true, tls);
            *phase = Phase::Ws(ws);
            // Frames may already sit in the leftover and in the socket.
            *read_pending = true;
        }
        Outcome::Answered { keep_alive } => {
            consume_head(http, head.len, state.now);
            http.idle_since = state.now;
            if !keep_alive {
                *close_after_flush = true;
            }
        }
        Outcome::Waiting(inflight) => {
            http.busy = Some(inflight);
            consume_head(http, head.len, state.now);
            // The request being waited on started when its bytes came.
            if http.request_start.is_none() {
                http.request_start = Some(state.now);
            }
        }
    }
}

/// A request that is not one of ours, answered and then closed (a client
/// that sent a body or another method would misread what follows).
const MALFORMED: (ErrorKind, bool) = (ErrorKind::Malformed, false);

/// Answers `reason` at once with `status`, counted as an error of
/// `kind`; keeps the connection open if `keep_alive`.
fn fail(
    state: &mut WorkerState,
    out: &mut OutBuf,
    asker: &Asker,
    status: Status,
    reason: &str,
    (kind, keep_alive): (ErrorKind, bool),
) -> Outcome {
    state.requests.error(asker.protocol, kind);
    state.bencode_failure(reason);
    head::write_response(out, status, keep_alive, asker.http10, &state.scratch);
    Outcome::Answered { keep_alive }
}

/// Accepts a WebSocket upgrade; `leftover` is what the client sent after
/// the head (its first frames, perhaps).
fn upgrade(state: &mut WorkerState, out: &mut OutBuf, accept: &str, leftover: &[u8]) -> Outcome {
    head::write_switching_protocols(out, accept);
    let ctx = WebSocketContext::from_partially_read(
        leftover.to_vec(),
        Role::Server,
        Some(state.ws_config),
    );
    out.set_limit(state.settings.ws_max_outgoing_bytes.max(1024));
    Outcome::Upgraded(Box::new(WsConn {
        ctx,
        torrents: WsPeers::default(),
        offers: PendingOffers::default(),
        in_flight: 0,
        last_recv: state.now,
    }))
}

/// An announce or scrape, by its request target.
fn tracker_request(
    state: &mut WorkerState,
    out: &mut OutBuf,
    asker: &Asker,
    target: &[u8],
    real_ip: RealIp,
) -> Outcome {
    let keep_alive = asker.keep_alive;
    match HttpRequest::parse(target) {
        Err(HttpParseError::UnknownPath) => fail(
            state,
            out,
            asker,
            Status::NotFound,
            HttpParseError::UnknownPath.message(),
            (ErrorKind::Malformed, keep_alive),
        ),
        Err(e) => fail(
            state,
            out,
            asker,
            Status::Ok,
            e.message(),
            (ErrorKind::Malformed, keep_alive),
        ),
        Ok(HttpRequest::Announce(q)) => {
            state.requests.request(asker.protocol, Action::Announce);
            announce(state, out, asker, &q, real_ip)
        }
        Ok(HttpRequest::Scrape(s)) => {
            state.requests.request(asker.protocol, Action::Scrape);
            if s.is_empty() {
                full_scrape(state, out, asker)
            } else {
                scrape(state, out, asker, &s)
            }
        }
    }
}

fn announce(
    state: &mut WorkerState,
    out: &mut OutBuf,
    asker: &Asker,
    q: &AnnounceQuery<'_>,
    real_ip: RealIp,
) -> Outcome {
    let keep_alive = asker.keep_alive;
    let ip = match real_ip {
        RealIp::NotConfigured => asker.addr.ip().to_canonical(),
        RealIp::Ip(ip) => ip,
        RealIp::Missing | RealIp::Invalid => {
            let what = if real_ip == RealIp::Missing {
                "missing"
            } else {
                "invalid"
            };
            let header = state.settings.real_ip_header.as_deref().unwrap_or_default();
            let reason = format!("{what} {header} header");
            let kind = (ErrorKind::Malformed, keep_alive);
            return fail(state, out, asker, Status::Ok, &reason, kind);
        }
    };
    if !state.filter.allows(&q.info_hash) {
        let kind = (ErrorKind::AccessDenied, keep_alive);
        return fail(state, out, asker, Status::Ok, NOT_ALLOWED, kind);
    }
    let settings = &state.settings;
    let numwant = q
        .numwant
        .map_or(settings.default_numwant, |n| n as usize)
        .min(settings.max_numwant);
    let seeder = q.left == Some(0);
    let work = Work::announce(ip, q.port, q.info_hash, q.event, seeder, numwant);
    state.enqueue(Job {
        reply: ReplyTo {
            // The client's address as announced (proxy header included):
            // the answer's `external ip` (BEP 24).
            addr: SocketAddr::new(ip, asker.addr.port()),
            route: asker.token as u32,
            tag: asker.generation,
        },
        work,
    });
    Outcome::Waiting(asker.in_flight(q.compact))
}

fn full_scrape(state: &mut WorkerState, out: &mut OutBuf, asker: &Asker) -> Outcome {
    let keep_alive = asker.keep_alive;
    if !state.settings.full_scrape {
        fail(
            state,
            out,
            asker,
            Status::Ok,
            FULL_SCRAPE_DISABLED,
            (ErrorKind::AccessDenied, keep_alive),
        )
    } else if state.full_scrapes >= MAX_FULL_SCRAPES {
        // This worker's cap on full scrapes at once, not an overloaded
        // request worker.
        let kind = (ErrorKind::LimitReached, keep_alive);
        fail(state, out, asker, Status::Ok, BUSY, kind)
    } else {
        let limit = state.settings.max_full_scrape_torrents;
        start_full_scrape(
            state,
            asker.token,
            asker.generation,
            asker.addr,
            false,
            limit,
        );
        Outcome::Waiting(asker.in_flight(false))
    }
}

fn scrape(
    state: &mut WorkerState,
    out: &mut OutBuf,
    asker: &Asker,
    s: &ScrapeQuery<'_>,
) -> Outcome {
    let keep_alive = asker.keep_alive;
    if s.len() > max_scrape(&state.settings) {
        let kind = (ErrorKind::TooLarge, keep_alive);
        fail(state, out, asker, Status::Ok, TOO_MANY_HASHES, kind)
    } else if s.info_hashes().any(|h| !state.filter.allows(&h)) {
        let kind = (ErrorKind::AccessDenied, keep_alive);
        fail(state, out, asker, Status::Ok, NOT_ALLOWED, kind)
    } else {
        let (token, generation, addr) = (asker.token, asker.generation, asker.addr);
        start_scrape(state, token, generation, addr, false, s.info_hashes());
        Outcome::Waiting(asker.in_flight(false))
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

pub(super) fn max_scrape(settings: &Settings) -> usize {
    settings.max_scrape_torrents.min(usize::from(u16::MAX))
}

/// The request at the request workers has been answered: carry on with
/// the connection.
/// Sends the answer in `state.scratch` to the request in flight and makes
/// the connection ready for its next request (or to close).
pub(super) fn finish_http_request(
    state: &mut WorkerState,
    token: usize,
    conn: &mut Conn,
    inflight: InFlight,
) {
    head::write_response(
        &mut conn.out,
        Status::Ok,
        inflight.keep_alive,
        inflight.http10,
        &state.scratch,
    );
    if let Phase::Http(http) = &mut conn.phase {
        http.request_start = if http.in_buf.is_empty() {
            None
        } else {
            Some(state.now)
        };
        http.idle_since = state.now;
    }
    if inflight.keep_alive {
        // Pipelined requests, and reads that stopped while it waited.
        state.schedule(token, conn);
    } else {
        conn.close_after_flush = true;
    }
    state.mark_dirty(token, conn);
}

/// Takes the in-flight request of an HTTP connection.
pub(super) fn take_in_flight(conn: &mut Conn) -> Option<InFlight> {
    match &mut conn.phase {
        Phase::Http(http) => http.busy.take(),
        _ => None,
    }
}

/// The HTTP connection `reply` is for, if still open, with its request
/// taken to be answered.
fn claim_in_flight<'a>(
    conns: &'a mut Slab<Conn>,
    reply: &ReplyTo,
) -> Option<(&'a mut Conn, InFlight)> {
    let conn = live(conns, reply.route as usize, reply.tag)?;
    let inflight = take_in_flight(conn)?;
    Some((conn, inflight))
}

/// The announce was refused, by a limit of the swarm store (`kind`) or,
/// for `None`, because its request worker was behind: the client hears
/// why.
pub(super) fn refuse_http_announce(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    reason: &str,
    kind: Option<ErrorKind>,
) {
    let token = reply.route as usize;
    let Some((conn, inflight)) = claim_in_flight(conns, reply) else {
        return;
    };
    state.count_failure(conn.protocol, kind);
    state.bencode_failure(reason);
    finish_http_request(state, token, conn, inflight);
}

pub(super) fn answer_http_announce(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    v4: &[PeerV4],
    v6: &[PeerV6],
    counts: &SwarmCounts,
) {
    let token = reply.route as usize;
    let Some((conn, inflight)) = claim_in_flight(conns, reply) else {
        return;
    };
    state.requests.response(conn.protocol, Action::Announce);
    let s = &state.settings;
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
    state.scratch.clear();
    bhttp::write_announce_response(&mut state.scratch, &response);
    finish_http_request(state, token, conn, inflight);
}
