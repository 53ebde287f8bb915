//! The AF_XDP sender's one thread: its simulated sources, its send window
//! and its counters.
//!
//! Each turn reads what the RX ring holds and accounts it with the socket
//! sender's checker, then puts as many requests on the TX ring as the
//! window has room for and kicks the kernel once for the lot. Sources take
//! turns, each sending with its own connection id (a connect first, and
//! again when the id is `connection_id_max_age` old or an error says it
//! went bad), and each walks its own share of the profile's clients, as a
//! socket of the socket sender does. Nothing is allocated in the loop.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use fastrand::Rng;
use tracker_proto::udp::PeerFamily;
use tracker_proto::AnnounceEvent;
use tracker_xsk::XskQueue;

use super::frame::{self, Received, Template, HEADERS_LEN};
use super::SOURCE_PORT;
use crate::profile::{ClientCycle, Profile, RequestKind};
use crate::report::Stats;
use crate::run::{Live, Shared};
use crate::udp::mmsg::SEND_SLOT;
use crate::udp::pending::{Entry, Pending};
use crate::udp::request::{write_connect, write_scrape, AnnounceTemplate};
use crate::udp::validate::{Checker, Effect};

/// How often timeouts are checked and the progress counters published.
const HOUSEKEEPING_NS: u64 = 1_000_000;
/// How long an idle turn (nothing received, no room to send) waits for
/// the RX ring, in milliseconds.
const IDLE_POLL_MS: i32 = 1;

pub use crate::udp::worker::Timing;

pub struct WorkerConfig {
    pub profile: Arc<Profile>,
    pub timing: Timing,
    pub queue: XskQueue,
    pub template: Template,
    pub tracker: SocketAddrV4,
    pub source_first: Ipv4Addr,
    pub source_count: u32,
    pub batch_size: usize,
    pub in_flight: usize,
    pub seed: u64,
}

/// One simulated client endpoint (address, [`SOURCE_PORT`]).
struct Source {
    connection_id: Option<u64>,
    connected_ns: u64,
    /// No connect for a fresh id before this: one is outstanding. A time
    /// rather than a flag, so a lost connect needs no bookkeeping to find
    /// its source.
    refresh_after_ns: u64,
    clients: ClientCycle,
}

pub struct Worker {
    profile: Arc<Profile>,
    timing: Timing,
    queue: XskQueue,
    template: Template,
    tracker: SocketAddrV4,
    source_first: u32,
    sources: Box<[Source]>,
    next_source: usize,
    pending: Pending,
    announce: AnnounceTemplate,
    checker: Checker,
    rng: Rng,
    batch_size: usize,
    in_flight: usize,
    stats: Stats,
    sent_all: u64,
    received_all: u64,
    shared: Arc<Shared>,
    live: Arc<Live>,
}

impl Worker {
    pub fn new(config: WorkerConfig, shared: Arc<Shared>, live: Arc<Live>) -> Self {
        let mut rng = Rng::with_seed(config.seed);
        let sources = (0..config.source_count)
            .map(|i| Source {
                connection_id: None,
                connected_ns: 0,
                refresh_after_ns: 0,
                clients: ClientCycle::new(i),
            })
            .collect();
        // Room for every request of a window several times over, so ids
        // are not reused while an answer may still come.
        let table = (config.in_flight * 4).max(1 << 16);
        Self {
            announce: AnnounceTemplate::new(config.profile.numwant),
            checker: Checker::new(
                PeerFamily::V4,
                config.profile.numwant,
                config.timing.warmup_end_ns,
            ),
            pending: Pending::new(table, rng.u32(..)),
            profile: config.profile,
            timing: config.timing,
            queue: config.queue,
            template: config.template,
            tracker: config.tracker,
            source_first: u32::from(config.source_first),
            sources,
            next_source: 0,
            rng,
            batch_size: config.batch_size.max(1),
            in_flight: config.in_flight.max(1),
            stats: Stats::default(),
            sent_all: 0,
            received_all: 0,
            shared,
            live,
        }
    }

    pub fn run(mut self) -> Stats {
        let mut next_housekeeping = 0;
        loop {
            let now = self.shared.now();
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_NS;
                if self.housekeeping(now) {
                    break;
                }
            }
            let received = self.receive(now);
            let sent = if now < self.timing.end_ns {
                self.fill(now)
            } else {
                0
            };
            // Publishes what was written, takes back completed frames and
            // tops up the fill ring, also on turns that sent nothing.
            self.queue.flush();
            if received == 0 && sent == 0 {
                self.wait_for_rx();
            }
        }
        let stats = &mut self.stats;
        self.pending.drain(|e| {
            if e.measured {
                stats.lost += 1;
            }
        });
        self.publish();
        let x = self.queue.stats();
        eprintln!(
            "tracker-load udp: AF_XDP ring: {} frames sent, {} received; tx pool empty {}, \
             kernel rx dropped {}, rx ring full {}, fill ring empty {}, kick errors {}",
            x.tx_completed,
            x.rx_packets,
            x.tx_no_frame,
            x.rx_dropped,
            x.rx_ring_full,
            x.rx_fill_ring_empty_descs,
            x.kick_errors
        );
        self.stats
    }

    /// Sleeps until the RX ring has something, for at most a millisecond,
    /// so a full window does not spin against the receive work that fills
    /// the ring (the client end's NAPI thread, which the bench puts on this
    /// same core).
    fn wait_for_rx(&self) {
        let mut fd = libc::pollfd {
            fd: self.queue.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, live for the call; the socket is open.
        unsafe { libc::poll(&mut fd, 1, IDLE_POLL_MS) };
    }

    /// Times out old requests; true when the run is over.
    fn housekeeping(&mut self, now: u64) -> bool {
        let t = self.timing;
        let stats = &mut self.stats;
        self.pending
            .expire(now, t.window_ns, t.timeout_ns, |e| lost(stats, e));
        self.publish();
        if self.shared.stopping() {
            return true;
        }
        now >= t.end_ns
            && (now >= t.end_ns.saturating_add(t.timeout_ns)
                || !self.pending.any_measured_outstanding())
    }

    fn publish(&self) {
        self.live
            .publish(self.sent_all, self.received_all, &self.stats);
    }

    /// Accounts every frame on the RX ring; returns how many there were.
    fn receive(&mut self, now: u64) -> usize {
        let Self {
            queue,
            tracker,
            source_first,
            sources,
            pending,
            checker,
            stats,
            received_all,
            batch_size,
            ..
        } = self;
        let measuring = now >= checker.measure_from_ns;
        queue.receive(*batch_size * 2, |bytes| {
            let (to, payload) = match frame::parse(bytes, *tracker) {
                Received::Answer { to, payload } => (to, payload),
                Received::Corrupt => {
                    if measuring {
                        stats.invalid.malformed += 1;
                    }
                    return;
                }
                Received::Other => return,
            };
            let index = u32::from(*to.ip()).wrapping_sub(*source_first) as usize;
            let Some(source) = sources.get_mut(index).filter(|_| to.port() == SOURCE_PORT) else {
                return;
            };
            *received_all += 1;
            match checker.account(stats, pending, payload, false, now) {
                Effect::None => {}
                Effect::Connected(id) => {
                    source.connection_id = Some(id);
                    source.connected_ns = now;
                    source.refresh_after_ns = 0;
                }
                Effect::Reconnect { sent_ns } => {
                    if sent_ns >= source.connected_ns {
                        source.connection_id = None;
                        source.refresh_after_ns = 0;
                    }
                }
            }
        })
    }

    /// Writes as many requests as the window has room for; returns how
    /// many went on the TX ring.
    fn fill(&mut self, now: u64) -> usize {
        let Self {
            profile,
            timing,
            queue,
            template,
            source_first,
            sources,
            next_source,
            pending,
            announce,
            rng,
            stats,
            sent_all,
            batch_size,
            in_flight,
            ..
        } = self;
        let room = in_flight
            .saturating_sub(pending.young_outstanding())
            .min(*batch_size);
        let measured = now >= timing.warmup_end_ns;
        let total_sources = sources.len() as u32;
        let mut sent = 0;
        while sent < room {
            let index = *next_source;
            *next_source = if index + 1 == sources.len() {
                0
            } else {
                index + 1
            };
            let source = &mut sources[index];
            let from = SocketAddrV4::new(
                Ipv4Addr::from(source_first.wrapping_add(index as u32)),
                SOURCE_PORT,
            );
            let mut kind = profile.request_kind(rng);
            let connection_id = match source.connection_id {
                None => {
                    kind = RequestKind::Connect;
                    0
                }
                Some(id) => {
                    let age = now.saturating_sub(source.connected_ns);
                    if age >= timing.connection_id_max_age_ns && now >= source.refresh_after_ns {
                        // The old id stays in use until the new one arrives.
                        kind = RequestKind::Connect;
                        source.refresh_after_ns = now.saturating_add(timing.timeout_ns);
                    }
                    id
                }
            };
            // Connects name no client: the profile's draw is skipped.
            let (client_index, client) = match kind {
                RequestKind::Connect => (0, None),
                _ => {
                    let index = source.clients.next(profile.peers, total_sources);
                    (index, Some(profile.client(index)))
                }
            };
            let event = match (kind, &client) {
                (RequestKind::Announce, Some(c)) => profile.announce_event(c, rng),
                _ => AnnounceEvent::None,
            };
            let scrape_len = match (kind, &client) {
                // The profile caps scrape_len at 74.
                (RequestKind::Scrape, Some(c)) => c.scrape_len.min(u32::from(u8::MAX)) as u8,
                _ => 0,
            };
            let (txid, evicted) = pending.alloc(now, kind, scrape_len, measured);
            if let Some(e) = evicted {
                lost(stats, &e);
            }
            let written = queue.transmit(|frame| {
                let slot: &mut [u8; SEND_SLOT] = frame
                    .get_mut(HEADERS_LEN..HEADERS_LEN + SEND_SLOT)?
                    .try_into()
                    .ok()?;
                let len = match (kind, &client) {
                    (RequestKind::Announce, Some(client)) => announce.write(
                        slot,
                        connection_id,
                        txid,
                        profile,
                        client_index,
                        client,
                        event,
                    ),
                    (RequestKind::Scrape, Some(client)) => {
                        write_scrape(slot, connection_id, txid, profile, client)
                    }
                    _ => write_connect(slot, txid),
                };
                template.finish(frame, from, len)
            });
            if !written {
                // The TX pool is empty until completions come back.
                pending.cancel(txid);
                if kind == RequestKind::Connect {
                    source.refresh_after_ns = 0;
                }
                break;
            }
            *sent_all += 1;
            if measured {
                match kind {
                    RequestKind::Connect => stats.connects_sent += 1,
                    RequestKind::Announce => stats.announces_sent += 1,
                    RequestKind::Scrape => stats.scrapes_sent += 1,
                }
            }
            sent += 1;
        }
        sent
    }
}

#[inline]
fn lost(stats: &mut Stats, e: &Entry) {
    if e.measured {
        stats.lost += 1;
    }
}
