//! `tracker-load ws`: WebTorrent tracker load over WebSocket, plain or TLS.
//!
//! As aquatic_ws_load_test does it, each connection is one client with one
//! peer id (a WebTorrent client shares one socket and one peer id among
//! its torrents; aquatic_ws refuses a second peer id for a torrent on one
//! connection). It announces the torrents of the profile's clients bound to
//! it in turn, each announce carrying `offers_per_request` offers with a
//! fake SDP object, and scrapes by the profile's weights. When the tracker
//! relays another client's offer, it answers it at once (an announce with
//! `answer`, `offer_id` and `to_peer_id`, like WebTorrent clients), and
//! the tracker relays the answer back to the offering client.
//!
//! Announces are matched to their replies by info hash, scrapes by order.
//! aquatic_ws also replies to answers, the reference tracker does not; such
//! replies are matched to the answers sent, counted apart, and answers
//! without one are simply forgotten after the timeout.

mod reply;

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};

use anyhow::bail;
use fastrand::Rng;
use serde_json::value::RawValue;
use tracker_proto::ws::{
    write_announce_request, write_scrape_request, AnnounceRequest, Answer, Offer, OfferId,
};
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::config::Config;
use crate::profile::{mix64, ClientCycle, Profile, RequestKind};
use crate::report::{Protocol, Stats};
use crate::run::{Outcome, RunOptions, Window};
use crate::tcp::driver::{Closed, Cx, Session};
use crate::tcp::{self, Link, TcpLoad};
use reply::{Bad, Relayed, Reply};

/// The SDP text of our offers and answers. Real ones are a few hundred
/// bytes with CRLFs; this is as long as aquatic_ws_load_test's, and plain
/// ASCII so that checking the relayed copy is a comparison.
pub const OFFER_SDP: &str = "v=0 o=tracker-load offer s=- t=0 0 m=application";
pub const ANSWER_SDP: &str = "v=0 o=tracker-load answer s=- t=0 0 m=application";

static OFFER: LazyLock<Box<RawValue>> = LazyLock::new(|| sdp_object("offer", OFFER_SDP));
static ANSWER: LazyLock<Box<RawValue>> = LazyLock::new(|| sdp_object("answer", ANSWER_SDP));

fn sdp_object(kind: &str, sdp: &str) -> Box<RawValue> {
    let json = serde_json::json!({ "type": kind, "sdp": sdp }).to_string();
    // serde_json wrote it: it is JSON.
    RawValue::from_string(json).unwrap_or_else(|_| unreachable!("serde_json output is JSON"))
}

/// Answers remembered per connection in case the tracker replies to them.
const MAX_ANSWERS_REMEMBERED: usize = 4096;
/// Read buffer per connection: messages are small.
const READ_BUFFER: usize = 16 * 1024;

pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<Outcome> {
    let w = &config.ws;
    let profile = Arc::new(Profile::new(&config.profile));
    if !profile.has_requests_without_connect() {
        bail!(
            "profile.weight_announce and profile.weight_scrape are both 0: WebSocket has no \
             connect requests, so there would be nothing to send"
        );
    }
    let load = TcpLoad {
        protocol: Protocol::Ws,
        tracker: w.tracker,
        tls: w.tls,
        workers: w.workers,
        connections: w.connections,
        window: Window::new(w.warmup, w.duration, w.request_timeout),
        duration: w.duration,
    };
    let url = format!("{}://{}/", if w.tls { "wss" } else { "ws" }, w.tracker);
    tcp::run(&load, options, |worker| WsSession {
        profile: Arc::clone(&profile),
        url: url.clone(),
        offers_per_request: w.offers_per_request,
        answer_probability: w.answer_probability,
        max_in_flight: w.max_in_flight,
        total_slots: w.connections as u32,
        seed: config.profile.seed,
        rng: Rng::with_seed(mix64(config.profile.seed ^ 0x7773 ^ worker as u64)),
        generation: 0,
        offers: Vec::with_capacity(w.offers_per_request),
        asked: Vec::new(),
    })
}

/// A 20-character offer id that names its maker: `TL`, then in hex the
/// connection slot (6 digits), its generation (4) and a sequence number
/// (8). Plain ASCII, as valid a binary string as any.
fn offer_id(slot: u32, generation: u16, seq: u32) -> [u8; 20] {
    // Written by hand: ten of these go into every announce.
    fn hex(out: &mut [u8], value: u32) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut v = value;
        for b in out.iter_mut().rev() {
            *b = DIGITS[(v & 15) as usize];
            v >>= 4;
        }
    }
    let mut id = [0u8; 20];
    id[..2].copy_from_slice(b"TL");
    hex(&mut id[2..8], slot);
    hex(&mut id[8..12], u32::from(generation));
    hex(&mut id[12..], seq);
    id
}

/// Whether `id` is an offer id connection `slot` made in `generation`.
fn is_ours(id: &[u8; 20], slot: u32, generation: u16) -> bool {
    let mine = offer_id(slot, generation, 0);
    id[..12] == mine[..12] && id[12..].iter().all(u8::is_ascii_hexdigit)
}

/// An announce or scrape waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    kind: RequestKind,
    /// The announced torrent's hash (zero for scrapes).
    info_hash: [u8; 20],
    /// The client whose torrents a scrape asked for.
    client: u32,
    sent_ns: u64,
    measured: bool,
}

/// An answer sent, which some trackers reply to.
#[derive(Clone, Copy, Debug)]
struct AnswerSent {
    info_hash: [u8; 20],
    sent_ns: u64,
    measured: bool,
}

enum State {
    /// The WebSocket handshake (and, beneath it, TLS's) is under way.
    Handshake(Option<Box<MidHandshake<ClientHandshake<Link>>>>),
    Open(Box<WebSocket<Link>>),
}

/// One client: what it is and what it waits for.
struct Peer {
    slot: u32,
    generation: u16,
    peer_id: [u8; 20],
    clients: ClientCycle,
    /// In send order.
    outstanding: VecDeque<Outstanding>,
    answers: VecDeque<AnswerSent>,
    next_offer: u32,
    opened_ns: u64,
}

pub struct WsConn {
    state: State,
    peer: Peer,
}

pub struct WsSession {
    profile: Arc<Profile>,
    url: String,
    offers_per_request: usize,
    answer_probability: f64,
    max_in_flight: usize,
    total_slots: u32,
    seed: u64,
    rng: Rng,
    /// Counts connections opened, so a reconnected slot has a new peer id
    /// (aquatic_ws ignores a peer id that another connection still holds).
    generation: u16,
    /// Reused for every announce's offers.
    offers: Vec<Offer<'static>>,
    /// A scrape's hashes, sorted and deduplicated.
    asked: Vec<[u8; 20]>,
}

impl Peer {
    fn take_announce(&mut self, info_hash: &[u8; 20]) -> Option<Outstanding> {
        let i = self
            .outstanding
            .iter()
            .position(|r| r.kind == RequestKind::Announce && r.info_hash == *info_hash)?;
        self.outstanding.remove(i)
    }

    fn take_scrape(&mut self) -> Option<Outstanding> {
        let i = self
            .outstanding
            .iter()
            .position(|r| r.kind == RequestKind::Scrape)?;
        self.outstanding.remove(i)
    }

    fn take_answer(&mut self, info_hash: &[u8; 20]) -> Option<AnswerSent> {
        let i = self
            .answers
            .iter()
            .position(|a| a.info_hash == *info_hash)?;
        self.answers.remove(i)
    }
}

/// Counts a reply to a measured request, with its latency.
fn record(stats: &mut Stats, sent_ns: u64, now: u64) {
    stats.latency.record(now.saturating_sub(sent_ns) / 1_000);
}

impl WsSession {
    /// The client of a connection just opened on `slot`, with a peer id of
    /// its own: `-TL0001-`, the slot, the generation, and hash bits.
    fn new_peer(&mut self, slot: u32, now: u64) -> Peer {
        self.generation = self.generation.wrapping_add(1);
        let mut peer_id = [0u8; 20];
        peer_id[..8].copy_from_slice(b"-TL0001-");
        peer_id[8..12].copy_from_slice(&slot.to_be_bytes());
        peer_id[12..14].copy_from_slice(&self.generation.to_be_bytes());
        let mix = mix64(self.seed ^ (u64::from(slot) << 16) ^ u64::from(self.generation));
        peer_id[14..].copy_from_slice(&mix.to_be_bytes()[..6]);
        Peer {
            slot,
            generation: self.generation,
            peer_id,
            clients: ClientCycle::new(slot),
            outstanding: VecDeque::with_capacity(self.max_in_flight),
            answers: VecDeque::new(),
            next_offer: 0,
            opened_ns: now,
        }
    }

    /// Writes the next announce of `peer`, with fresh offers.
    fn announce(&mut self, peer: &mut Peer) -> (Vec<u8>, [u8; 20]) {
        let p = &*self.profile;
        let index = peer.clients.next(p.peers, self.total_slots);
        let client = p.client(index);
        let mut info_hash = [0u8; 20];
        p.info_hash(client.torrent, &mut info_hash);
        let left = client.left();
        let event = p.announce_event(&client, &mut self.rng);
        self.offers.clear();
        for _ in 0..self.offers_per_request {
            let id = offer_id(peer.slot, peer.generation, peer.next_offer);
            peer.next_offer = peer.next_offer.wrapping_add(1);
            self.offers.push(Offer {
                // ASCII, so always a str.
                offer_id: OfferId::new(std::str::from_utf8(&id).unwrap_or_default()),
                offer: &OFFER,
            });
        }
        let request = AnnounceRequest {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer.peer_id),
            uploaded: 0,
            downloaded: 0,
            left: Some(left),
            event,
            numwant: Some(self.offers_per_request as u32),
            offers: std::mem::take(&mut self.offers),
            answer: None,
        };
        let mut out = Vec::with_capacity(200 + 110 * self.offers_per_request);
        write_announce_request(&mut out, &request);
        self.offers = request.offers;
        (out, info_hash)
    }

    /// Writes `peer`'s answer to a relayed offer. Like a WebTorrent client's
    /// it names no event; `left` is null (the reference client leaves it
    /// out, which trackers read the same way).
    fn answer(peer: &Peer, offer: &Relayed) -> Vec<u8> {
        // Our own ids are ASCII, which is the same text either way; other
        // bytes need the character-per-byte form.
        let offer_id = match std::str::from_utf8(&offer.offer_id) {
            Ok(ascii) if ascii.is_ascii() => OfferId::new(ascii),
            _ => OfferId::from_binary(&offer.offer_id),
        };
        let request = AnnounceRequest {
            info_hash: InfoHash(offer.info_hash),
            peer_id: PeerId(peer.peer_id),
            uploaded: 0,
            downloaded: 0,
            left: None,
            event: AnnounceEvent::None,
            numwant: None,
            offers: Vec::new(),
            answer: Some(Answer {
                to_peer_id: PeerId(offer.peer_id),
                offer_id,
                answer: &ANSWER,
            }),
        };
        let mut out = Vec::with_capacity(300);
        write_announce_request(&mut out, &request);
        out
    }

    /// Writes the scrape of `peer`'s next client.
    fn scrape(&mut self, peer: &mut Peer) -> (Vec<u8>, u32) {
        let p = &*self.profile;
        let index = peer.clients.next(p.peers, self.total_slots);
        let client = p.client(index);
        let hashes: Vec<InfoHash> = p
            .scrape_torrents(&client)
            .map(|t| {
                let mut hash = [0u8; 20];
                p.info_hash(t, &mut hash);
                InfoHash(hash)
            })
            .collect();
        let mut out = Vec::with_capacity(32 + 45 * hashes.len());
        write_scrape_request(&mut out, Some(&hashes));
        (out, index)
    }

    /// Sends announces and scrapes until `max_in_flight` are outstanding.
    fn fill(
        &mut self,
        ws: &mut WebSocket<Link>,
        peer: &mut Peer,
        cx: &mut Cx,
    ) -> Result<(), Closed> {
        if !cx.sending() {
            return Ok(());
        }
        while peer.outstanding.len() < self.max_in_flight {
            let message = self.next_request(peer, cx);
            send(ws, message)?;
        }
        Ok(())
    }

    /// Writes `peer`'s next announce or scrape and counts it as sent.
    fn next_request(&mut self, peer: &mut Peer, cx: &mut Cx) -> Vec<u8> {
        let measured = cx.measuring();
        let kind = self.profile.request_kind_without_connect(&mut self.rng);
        let (message, info_hash, client) = match kind {
            RequestKind::Scrape => {
                let (m, client) = self.scrape(peer);
                (m, [0; 20], client)
            }
            _ => {
                let (m, hash) = self.announce(peer);
                (m, hash, 0)
            }
        };
        peer.outstanding.push_back(Outstanding {
            kind,
            info_hash,
            client,
            sent_ns: cx.now,
            measured,
        });
        cx.count_sent(kind, measured);
        message
    }

    /// Accounts one message from the tracker; returns an answer to send
    /// when it is an offer to answer.
    fn handle(&mut self, peer: &mut Peer, text: &str, cx: &mut Cx) -> Option<Vec<u8>> {
        let now = cx.now;
        let (measuring, sending) = (cx.measuring(), cx.sending());
        // Relayed messages and strays count when they arrive in the
        // measured window; replies when their request was sent in it.
        let in_window = measuring && sending;
        let stats = &mut cx.stats;
        let reply = match reply::parse(text, OFFER_SDP, ANSWER_SDP) {
            Ok(reply) => reply,
            Err(why) => {
                if in_window {
                    match why {
                        Bad::Malformed => stats.invalid.malformed += 1,
                        Bad::WrongAction => stats.invalid.wrong_action += 1,
                    }
                }
                return None;
            }
        };
        match reply {
            Reply::Announce { info_hash, .. } => {
                if let Some(r) = peer.take_announce(&info_hash) {
                    if r.measured {
                        stats.announce_responses += 1;
                        record(stats, r.sent_ns, now);
                    }
                } else if let Some(a) = peer.take_answer(&info_hash) {
                    if a.measured {
                        stats.answer_responses += 1;
                        record(stats, a.sent_ns, now);
                    }
                } else if in_window {
                    stats.invalid.unknown_transaction += 1;
                }
                None
            }
            Reply::Offer(offer) => {
                let valid = offer.sdp_intact && offer.peer_id != peer.peer_id;
                if in_window {
                    match valid {
                        true => stats.offers_received += 1,
                        false => stats.invalid.wrong_content += 1,
                    }
                }
                let answering = valid
                    && sending
                    && (self.answer_probability >= 1.0 || self.rng.f64() < self.answer_probability);
                if !answering {
                    return None;
                }
                if peer.answers.len() >= MAX_ANSWERS_REMEMBERED {
                    peer.answers.pop_front();
                }
                peer.answers.push_back(AnswerSent {
                    info_hash: offer.info_hash,
                    sent_ns: now,
                    measured: measuring,
                });
                cx.sent_all += 1;
                if measuring {
                    cx.stats.answers_sent += 1;
                }
                Some(Self::answer(peer, &offer))
            }
            Reply::Answer(answer) => {
                if in_window {
                    if !is_ours(&answer.offer_id, peer.slot, peer.generation) {
                        stats.invalid.unknown_transaction += 1;
                    } else if !answer.sdp_intact || answer.peer_id == peer.peer_id {
                        stats.invalid.wrong_content += 1;
                    } else {
                        stats.answers_received += 1;
                    }
                }
                None
            }
            Reply::Scrape { files } => {
                // Only hashes asked for, each at most once (a JSON object
                // has unique keys). A hash may be missing: aquatic_ws
                // leaves out torrents it does not know, the reference
                // tracker answers zeros. Matched to the oldest scrape whose
                // hashes it fits, not merely the oldest, so that a reply
                // the tracker dropped does not make every later one wrong.
                let p = &*self.profile;
                let asked = &mut self.asked;
                let fits = |r: &Outstanding, asked: &mut Vec<[u8; 20]>| {
                    p.scrape_set(&p.client(r.client), asked);
                    files.len() <= asked.len()
                        && files.keys().all(|h| asked.binary_search(&h.0).is_ok())
                };
                let fitting = peer
                    .outstanding
                    .iter()
                    .position(|r| r.kind == RequestKind::Scrape && fits(r, asked));
                let (taken, valid) = match fitting {
                    Some(i) => (peer.outstanding.remove(i), true),
                    None => (peer.take_scrape(), false),
                };
                match taken {
                    Some(r) if r.measured => {
                        record(stats, r.sent_ns, now);
                        match valid {
                            true => stats.scrape_responses += 1,
                            false => stats.invalid.wrong_scrape_count += 1,
                        }
                    }
                    Some(_) => {}
                    None if in_window => stats.invalid.unknown_transaction += 1,
                    None => {}
                }
                None
            }
            Reply::Failure {
                reason,
                action,
                info_hash,
            } => {
                let sent = match (action, info_hash) {
                    (Some(reply::Action::Scrape), _) => {
                        peer.take_scrape().map(|r| (r.sent_ns, r.measured))
                    }
                    (_, Some(hash)) => peer
                        .take_announce(&hash)
                        .map(|r| (r.sent_ns, r.measured))
                        .or_else(|| peer.take_answer(&hash).map(|a| (a.sent_ns, a.measured))),
                    _ => None,
                };
                let counted = sent.map_or(in_window, |(_, measured)| measured);
                if counted {
                    stats.error_responses += 1;
                    stats.keep_error_message(reason.as_bytes());
                    if let Some((sent_ns, _)) = sent {
                        record(stats, sent_ns, now);
                    }
                }
                None
            }
        }
    }

    /// Reads every message waiting, answers offers, tops up requests.
    fn exchange(
        &mut self,
        ws: &mut WebSocket<Link>,
        peer: &mut Peer,
        cx: &mut Cx,
    ) -> Result<(), Closed> {
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    cx.received_all += 1;
                    if let Some(answer) = self.handle(peer, text.as_str(), cx) {
                        send(ws, answer)?;
                    }
                }
                Ok(Message::Binary(_)) => {
                    cx.received_all += 1;
                    if cx.measuring() && cx.sending() {
                        cx.stats.invalid.malformed += 1;
                    }
                }
                // Pings are answered by tungstenite; after a close, reading
                // on ends in ConnectionClosed.
                Ok(_) => {}
                Err(e) => match closed(e) {
                    None => break,
                    Some(why) => return Err(why),
                },
            }
        }
        ws.get_ref().quickack();
        self.fill(ws, peer, cx)?;
        flush(ws)
    }
}

/// Queues a text message (tungstenite buffers it; `flush` sends).
fn send(ws: &mut WebSocket<Link>, message: Vec<u8>) -> Result<(), Closed> {
    debug_assert!(std::str::from_utf8(&message).is_ok());
    // SAFETY: tracker-proto's writers write UTF-8 only: JSON punctuation,
    // digits, `str`s copied whole or with ASCII bytes escaped, and binary
    // strings as the UTF-8 of U+0000 to U+00FF. Checking it again cost a
    // tenth of the generator's time.
    let text = unsafe { String::from_utf8_unchecked(message) };
    match ws.write(Message::text(text)) {
        Ok(()) => Ok(()),
        // Queued all the same; see tungstenite's WebSocket::write.
        Err(e) => closed(e).map_or(Ok(()), Err),
    }
}

/// Sends what tungstenite and the link hold, as far as the socket takes.
fn flush(ws: &mut WebSocket<Link>) -> Result<(), Closed> {
    match ws.flush() {
        Ok(()) => Ok(()),
        Err(e) => closed(e).map_or(Ok(()), Err),
    }
}

/// What a tungstenite error means for the connection: `None` when the
/// socket merely would block.
fn closed(e: tungstenite::Error) -> Option<Closed> {
    match e {
        tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        tungstenite::Error::Io(e) => Some(Closed::Io(e)),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            Some(Closed::ByPeer)
        }
        e => Some(Closed::Protocol(format!("WebSocket: {e}"))),
    }
}

impl Session for WsSession {
    type Conn = WsConn;

    fn open(&mut self, slot: u32, link: Link, cx: &mut Cx) -> WsConn {
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let state = match self.url.as_str().into_client_request() {
            Ok(request) => {
                match tungstenite::client::client_with_config(request, link, Some(config)) {
                    Ok((ws, _)) => State::Open(Box::new(ws)),
                    Err(HandshakeError::Interrupted(mid)) => State::Handshake(Some(Box::new(mid))),
                    Err(HandshakeError::Failure(e)) => {
                        let e = std::io::Error::other(e);
                        cx.stats.note_io_error("WebSocket handshake", &e);
                        State::Handshake(None)
                    }
                }
            }
            Err(e) => {
                let e = std::io::Error::other(e);
                cx.stats.note_io_error("WebSocket request", &e);
                State::Handshake(None)
            }
        };
        WsConn {
            state,
            peer: self.new_peer(slot, cx.now),
        }
    }

    fn drive(&mut self, conn: &mut WsConn, cx: &mut Cx) -> Result<(), Closed> {
        match &mut conn.state {
            State::Handshake(Some(mid)) => mid.get_mut().get_mut().rearm(),
            State::Handshake(None) => {}
            State::Open(ws) => ws.get_mut().rearm(),
        }
        if let State::Handshake(mid) = &mut conn.state {
            let Some(handshake) = mid.take() else {
                return Err(Closed::Protocol("WebSocket handshake failed".to_owned()));
            };
            match (*handshake).handshake() {
                Ok((ws, _)) => conn.state = State::Open(Box::new(ws)),
                Err(HandshakeError::Interrupted(mut handshake)) => {
                    // TLS handshake records wait in the link.
                    handshake.get_mut().get_mut().flush()?;
                    *mid = Some(Box::new(handshake));
                    return Ok(());
                }
                Err(HandshakeError::Failure(e)) => {
                    return Err(Closed::Protocol(format!("WebSocket handshake failed: {e}")))
                }
            }
        }
        match &mut conn.state {
            State::Open(ws) => self.exchange(ws, &mut conn.peer, cx),
            State::Handshake(_) => Ok(()),
        }
    }

    fn tick(&mut self, conn: &mut WsConn, cx: &mut Cx) -> Result<(), Closed> {
        let peer = &mut conn.peer;
        let timeout = cx.window.timeout_ns;
        let ws = match &mut conn.state {
            State::Open(ws) => ws,
            State::Handshake(_) if cx.now.saturating_sub(peer.opened_ns) > timeout => {
                return Err(Closed::Timeout)
            }
            State::Handshake(_) => return Ok(()),
        };
        let now = cx.now;
        let expired = |sent_ns: u64| now.saturating_sub(sent_ns) > timeout;
        while let Some(r) = peer.outstanding.front() {
            if !expired(r.sent_ns) {
                break;
            }
            if r.measured {
                cx.stats.lost += 1;
            }
            peer.outstanding.pop_front();
        }
        while peer.answers.front().is_some_and(|a| expired(a.sent_ns)) {
            peer.answers.pop_front();
        }
        self.fill(ws, peer, cx)?;
        flush(ws)
    }

    fn close(&mut self, conn: WsConn, cx: &mut Cx) {
        let lost = conn.peer.outstanding.iter().filter(|r| r.measured).count();
        cx.stats.lost += lost as u64;
    }

    fn awaiting_measured(&self, conn: &WsConn) -> bool {
        conn.peer.outstanding.iter().any(|r| r.measured)
    }
}

#[cfg(test)]
mod tests;
