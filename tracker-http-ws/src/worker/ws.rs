//! WebTorrent over WebSocket: messages, announces with their offers and
//! answers, scrapes.

use std::io;
use std::ops::Range;
use std::time::Instant;

use slab::Slab;
use tracker_metrics::{Action as MetricAction, ErrorKind};
use tracker_proto::ws::{self as jws, Action, AnnounceRequest, InMessage, OfferId, ScrapeRequest};
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};
use tracker_swarm::{ConnRef, Job, ReplyTo, SwarmCounts, Work, WsAnnounce, WsTarget};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::protocol::{CloseFrame, Message, WebSocketContext};

use crate::conn_limits::ws_close_for;
use crate::offers::PendingOffers;
use crate::settings::Settings;
use crate::transport::WsIo;
use crate::ws_peers::WsPeers;
use crate::RelayedOfferId;

use super::connections::{leave_all, needs_flush, Conn, Phase};
use super::http::max_scrape;
use super::relay::deliver;
use super::scrape::{start_full_scrape, start_scrape};
use super::state::{live, WorkerState};
use super::{BUSY, FULL_SCRAPE_DISABLED, MAX_FULL_SCRAPES, NOT_ALLOWED, TOO_MANY_HASHES};

/// WebSocket messages handled per readiness before yielding.
const MAX_WS_MESSAGES: usize = 64;
/// Requests one WebSocket connection may have at the request workers at
/// once; beyond it the worker stops reading from it until some return,
/// which bounds the offers kept for it.
const MAX_WS_IN_FLIGHT: u32 = 8;
/// Bytes a WebSocket scrape answer takes per torrent, at most: a full
/// scrape is capped so that its answer fits the connection's queue.
const WS_SCRAPE_FILE_BYTES: usize = 112;
const PEER_ID_TAKEN: &str = "peer_id is in use by another connection";

pub(super) struct WsConn {
    pub(super) ctx: WebSocketContext,
    /// The (torrent, peer id) pairs this connection announced: it leaves
    /// them all when it closes.
    pub(super) torrents: WsPeers,
    pub(super) offers: PendingOffers,
    pub(super) in_flight: u32,
    pub(super) last_recv: Instant,
}

/// A WebTorrent announce at the request workers, with what it will relay.
#[derive(Default)]
pub(super) struct Kept {
    pub(super) generation: u32,
    pub(super) token: usize,
    pub(super) conn_generation: u32,
    pub(super) info_hash: InfoHash,
    pub(super) peer_id: PeerId,
    /// Answer the announcer (not for a message that only carries an answer,
    /// as the reference tracker does).
    pub(super) respond: bool,
    /// The relayed messages, back to back.
    pub(super) messages: Vec<u8>,
    /// Offer `i`: its id and where its message is in `messages`.
    pub(super) offers: Vec<(OfferId, Range<usize>)>,
    pub(super) answer: Option<Range<usize>>,
}

impl Kept {
    pub(super) fn reset(&mut self) {
        self.messages.clear();
        self.offers.clear();
        self.answer = None;
    }

    pub(super) fn message(&self, range: &Range<usize>) -> &[u8] {
        self.messages.get(range.clone()).unwrap_or(&[])
    }
}

pub(super) fn drive_ws(state: &mut WorkerState, token: usize, conn: &mut Conn) {
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
            state.schedule(token, conn);
            break;
        }
        budget -= 1;
        let result = ws.ctx.read(&mut WsIo { transport, out });
        match result {
            Ok(Message::Text(text)) => {
                ws.last_recv = state.now;
                ws_text(state, token, conn, text.as_str());
            }
            Ok(Message::Binary(_)) => {
                state.requests.error(conn.protocol, ErrorKind::Malformed);
                close_ws(
                    state,
                    token,
                    conn,
                    CloseCode::Unsupported,
                    "binary messages are not served",
                );
                break;
            }
            // Pings are answered by tungstenite; a close frame is answered
            // too, and the next read says the connection is done.
            Ok(_) => ws.last_recv = state.now,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.read_pending = false;
                break;
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                leave_all(state, token, conn);
                conn.close_after_flush = true;
                break;
            }
            Err(e) => {
                match ws_close_for(&e) {
                    Some((code, reason)) => {
                        let kind = if matches!(e, tungstenite::Error::Capacity(_)) {
                            ErrorKind::TooLarge
                        } else {
                            ErrorKind::Malformed
                        };
                        state.requests.error(conn.protocol, kind);
                        close_ws(state, token, conn, code, reason);
                    }
                    None => state.doom(token, conn),
                }
                break;
            }
        }
    }
    if needs_flush(conn) {
        state.mark_dirty(token, conn);
    }
}

/// Sends a close frame, leaves every swarm, and closes once written.
fn close_ws(
    state: &mut WorkerState,
    token: usize,
    conn: &mut Conn,
    code: CloseCode,
    reason: &'static str,
) {
    leave_all(state, token, conn);
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
pub(super) fn ws_send(message: &[u8], conn: &mut Conn) {
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
pub(super) fn ws_request_done(state: &mut WorkerState, token: usize, conn: &mut Conn) {
    if let Phase::Ws(ws) = &mut conn.phase {
        ws.in_flight = ws.in_flight.saturating_sub(1);
        if conn.read_pending && ws.in_flight < MAX_WS_IN_FLIGHT {
            state.schedule(token, conn);
        }
    }
    state.mark_dirty(token, conn);
}

fn ws_text(state: &mut WorkerState, token: usize, conn: &mut Conn, text: &str) {
    let protocol = conn.protocol;
    match InMessage::parse(text) {
        Err(e) => {
            state.requests.error(protocol, ErrorKind::Malformed);
            state.scratch.clear();
            jws::write_parse_failure(&mut state.scratch, &e);
            ws_send(&state.scratch, conn);
        }
        Ok(InMessage::Announce(a)) => {
            // An announce that carries an answer to a relayed offer is the
            // answering half of a WebRTC handshake, counted as such.
            let action = if a.answer.is_some() {
                MetricAction::Answer
            } else {
                MetricAction::Announce
            };
            state.requests.request(protocol, action);
            ws_announce(state, token, conn, a);
        }
        Ok(InMessage::Scrape(s)) => {
            state.requests.request(protocol, MetricAction::Scrape);
            ws_scrape(state, token, conn, s);
        }
    }
}

fn ws_announce(state: &mut WorkerState, token: usize, conn: &mut Conn, a: AnnounceRequest<'_>) {
    let settings = state.settings.clone();
    let info_hash = a.info_hash;
    let refuse = |state: &mut WorkerState, conn: &mut Conn, reason, kind| {
        state.requests.error(conn.protocol, kind);
        state.ws_failure(reason, Action::Announce, Some(info_hash));
        ws_send(&state.scratch, conn);
    };
    if !state.filter.allows(&info_hash) {
        return refuse(state, conn, NOT_ALLOWED, ErrorKind::AccessDenied);
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
            return refuse(state, conn, reason, ErrorKind::LimitReached);
        }
    }
    // A message without `left` (an answer, typically) keeps what the peer
    // said before rather than turning a seeder into a leecher.
    let seeder = match a.left {
        Some(left) => left == 0,
        None => joined.unwrap_or(false),
    };

    let mut kept = state.kept_pool.pop().unwrap_or_default();
    kept.reset();
    let answer_to = keep_answer(state, ws, &mut kept, &a);
    let offers = if stopping {
        0
    } else {
        keep_offers(&settings, &mut kept, &a)
    };
    // Recorded before the request worker agrees, so a close while the
    // announce is out still leaves; a leave for an entry another
    // connection owns removes nothing there.
    if stopping {
        ws.torrents.leave(&info_hash, &a.peer_id);
    } else {
        ws.torrents.join(info_hash, a.peer_id, seeder);
    }
    kept.generation = state.next_generation();
    kept.token = token;
    kept.conn_generation = generation;
    kept.info_hash = info_hash;
    kept.peer_id = a.peer_id;
    kept.respond = a.answer.is_none();
    let kept_generation = kept.generation;
    let slot = state.kept.insert(kept);
    ws.in_flight += 1;
    let conn_ref = state.conn_ref(token, generation);
    state.enqueue(Job {
        reply: ReplyTo {
            addr,
            route: slot as u32,
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
            refused: None,
        },
    });
}

/// Writes the answer an announce carries into `kept`, if it answers an
/// offer this connection was sent and has not answered; returns the peer
/// it goes to.
fn keep_answer(
    state: &mut WorkerState,
    ws: &mut WsConn,
    kept: &mut Kept,
    a: &AnnounceRequest<'_>,
) -> Option<PeerId> {
    let answer = a.answer.as_ref()?;
    let timeout = u32::try_from(state.settings.ws_offer_timeout.as_secs()).unwrap_or(u32::MAX);
    if !ws.offers.take(
        &answer.offer_id,
        &answer.to_peer_id,
        &a.info_hash,
        state.now_secs,
        timeout,
    ) {
        return None;
    }
    let start = kept.messages.len();
    jws::write_answer(
        &mut kept.messages,
        &jws::RelayedAnswer {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            offer_id: &answer.offer_id,
            answer: answer.answer,
        },
    );
    kept.answer = Some(start..kept.messages.len());
    Some(answer.to_peer_id)
}

/// Writes the offers of an announce that will be relayed (as many as it
/// wants peers, within the limits) into `kept`; returns how many.
fn keep_offers(settings: &Settings, kept: &mut Kept, a: &AnnounceRequest<'_>) -> usize {
    let wanted = a.numwant.map_or(settings.default_numwant, |n| n as usize);
    let offers = a
        .offers
        .len()
        .min(wanted)
        .min(settings.ws_max_offers)
        .min(settings.max_numwant);
    for offer in a.offers.iter().take(offers) {
        let start = kept.messages.len();
        jws::write_offer(
            &mut kept.messages,
            &jws::RelayedOffer {
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                offer_id: &offer.offer_id,
                offer: offer.offer,
            },
        );
        kept.offers
            .push((offer.offer_id.clone(), start..kept.messages.len()));
    }
    offers
}

fn ws_scrape(state: &mut WorkerState, token: usize, conn: &mut Conn, s: ScrapeRequest) {
    let settings = state.settings.clone();
    let (generation, addr) = (conn.generation, conn.addr);
    let first = s.info_hashes.as_ref().and_then(|h| h.first().copied());
    let refuse = |state: &mut WorkerState, conn: &mut Conn, reason, info_hash, kind| {
        state.requests.error(conn.protocol, kind);
        state.ws_failure(reason, Action::Scrape, info_hash);
        ws_send(&state.scratch, conn);
    };
    match s.info_hashes {
        None if !settings.full_scrape => refuse(
            state,
            conn,
            FULL_SCRAPE_DISABLED,
            None,
            ErrorKind::AccessDenied,
        ),
        // This worker's cap on full scrapes at once, as for HTTP.
        None if state.full_scrapes >= MAX_FULL_SCRAPES => {
            refuse(state, conn, BUSY, None, ErrorKind::LimitReached)
        }
        None => {
            let fits = settings.ws_max_outgoing_bytes / WS_SCRAPE_FILE_BYTES;
            let limit = settings.max_full_scrape_torrents.min(fits);
            start_full_scrape(state, token, generation, addr, true, limit);
            if let Phase::Ws(ws) = &mut conn.phase {
                ws.in_flight += 1;
            }
        }
        Some(hashes) if hashes.is_empty() => {
            state.requests.response(conn.protocol, MetricAction::Scrape);
            state.scratch.clear();
            jws::write_scrape_response(&mut state.scratch, []);
            ws_send(&state.scratch, conn);
        }
        Some(hashes) if hashes.len() > max_scrape(&settings) => {
            refuse(state, conn, TOO_MANY_HASHES, first, ErrorKind::TooLarge);
        }
        Some(hashes) => {
            if let Some(refused) = hashes.iter().find(|h| !state.filter.allows(h)) {
                let refused = Some(*refused);
                return refuse(state, conn, NOT_ALLOWED, refused, ErrorKind::AccessDenied);
            }
            start_scrape(state, token, generation, addr, true, hashes.into_iter());
            if let Phase::Ws(ws) = &mut conn.phase {
                ws.in_flight += 1;
            }
        }
    }
}

/// A limit of the swarm store refused a WebTorrent announce: a failure
/// naming the limit, and none of its offers or its answer relayed. The
/// connection forgets the peer as for a taken peer id, so it does not
/// count against its own torrent cap.
pub(super) fn refuse_ws_announce(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    announce: &WsAnnounce,
    reason: &str,
    kind: Option<ErrorKind>,
) {
    let Some(kept) = take_kept(state, reply) else {
        return;
    };
    fail_kept_announce(state, conns, kept, announce, reason, kind);
}

/// Sends the failure for a kept announce (an error of `kind`, or "busy"
/// for `None`) and makes its connection forget the peer, so the pair does
/// not count against the connection's caps.
fn fail_kept_announce(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    kept: Kept,
    announce: &WsAnnounce,
    reason: &str,
    kind: Option<ErrorKind>,
) {
    if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
        state.count_failure(conn.protocol, kind);
        if let Phase::Ws(ws) = &mut conn.phase {
            ws.torrents.leave(&announce.info_hash, &announce.peer_id);
        }
        state.ws_failure(reason, Action::Announce, Some(announce.info_hash));
        ws_send(&state.scratch, conn);
        ws_request_done(state, kept.token, conn);
    }
    state.recycle_kept(kept);
}

pub(super) fn answer_ws_announce(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    announce: &WsAnnounce,
    targets: &[WsTarget],
    counts: &SwarmCounts,
    answer_target: Option<ConnRef>,
) {
    let Some(kept) = take_kept(state, reply) else {
        return;
    };
    let mut announcer_here = false;
    if let Some(conn) = live(conns, kept.token, kept.conn_generation) {
        announcer_here = true;
        if kept.respond {
            state
                .requests
                .response(conn.protocol, MetricAction::Announce);
            state.scratch.clear();
            jws::write_announce_response(
                &mut state.scratch,
                &jws::AnnounceResponse {
                    info_hash: announce.info_hash,
                    interval: state.settings.ws_announce_interval,
                    complete: counts.seeders,
                    incomplete: counts.leechers,
                    warning_message: None,
                },
            );
            ws_send(&state.scratch, conn);
        }
        ws_request_done(state, kept.token, conn);
    }
    // An offer whose answer could not find its way back is not sent.
    if announcer_here {
        for (target, (offer_id, range)) in targets.iter().zip(&kept.offers) {
            let offer = RelayedOfferId {
                offer_id: offer_id.clone(),
                from: kept.peer_id,
                info_hash: kept.info_hash,
            };
            deliver(state, conns, target.conn, kept.message(range), Some(offer));
        }
    }
    if let (Some(to), Some(range)) = (answer_target, &kept.answer) {
        deliver(state, conns, to, kept.message(range), None);
    }
    state.recycle_kept(kept);
}

/// The announce claimed a peer id another connection holds in the swarm:
/// the announcer gets a failure, its offers and answer go nowhere, and it
/// stops counting the pair as its own (the request worker kept nothing).
pub(super) fn refuse_taken_peer_id(
    state: &mut WorkerState,
    conns: &mut Slab<Conn>,
    reply: &ReplyTo,
    announce: &WsAnnounce,
) {
    let Some(kept) = take_kept(state, reply) else {
        return;
    };
    let kind = Some(ErrorKind::PeerIdInUse);
    fail_kept_announce(state, conns, kept, announce, PEER_ID_TAKEN, kind);
}

pub(super) fn take_kept(state: &mut WorkerState, reply: &ReplyTo) -> Option<Kept> {
    let slot = reply.route as usize;
    if state
        .kept
        .get(slot)
        .is_some_and(|k| k.generation == reply.tag)
    {
        state.kept.try_remove(slot)
    } else {
        None
    }
}
