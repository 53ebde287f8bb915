//! One sending thread: its sockets, its clients, its counters.
//!
//! The loop waits on epoll for answers, matches them, and refills each
//! socket's window as it drains, so every socket keeps up to
//! `max_in_flight` requests outstanding without flooding. Requests are
//! written in place into sendmmsg slots; the loop allocates nothing and
//! shares nothing but a few relaxed counters for the progress line.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use fastrand::Rng;
use socket2::Socket;
use tracker_proto::udp::PeerFamily;

use super::mmsg::{RecvBatch, SendBatch};
use super::pending::{Entry, Pending};
use super::request::{write_connect, write_scrape, AnnounceTemplate};
use super::validate::{Checker, Effect};
use crate::profile::{ClientCycle, Profile, RequestKind};
use crate::report::Stats;
use crate::run::{secs_to_ns, Live, Shared, Window};

/// How often timeouts are checked and stalled sockets refilled.
const HOUSEKEEPING_NS: u64 = 1_000_000;
/// recvmmsg calls per ready socket before moving on, so one busy socket
/// cannot starve the others.
const MAX_RECV_ROUNDS: usize = 4;

/// Points in time, in nanoseconds since `Shared::start`, and spans.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub warmup_end_ns: u64,
    pub end_ns: u64,
    pub window_ns: u64,
    pub timeout_ns: u64,
    pub connection_id_max_age_ns: u64,
}

/// What the report says was measured: both UDP senders report alike.
pub fn target(u: &crate::config::UdpConfig) -> crate::run::Target {
    crate::run::Target {
        protocol: crate::report::Protocol::Udp,
        tracker: u.tracker,
        duration: u.duration,
    }
}

impl Timing {
    /// The phases of a run as `udp` configures them, from its start.
    pub fn from_config(u: &crate::config::UdpConfig) -> Self {
        let warmup_end_ns = secs_to_ns(u.warmup);
        Self {
            warmup_end_ns,
            end_ns: warmup_end_ns.saturating_add(secs_to_ns(u.duration)),
            window_ns: secs_to_ns(u.window_timeout),
            timeout_ns: secs_to_ns(u.request_timeout),
            connection_id_max_age_ns: secs_to_ns(u.connection_id_max_age),
        }
    }

    /// The phases the monitor watches.
    pub fn window(&self) -> Window {
        Window {
            warmup_end_ns: self.warmup_end_ns,
            end_ns: self.end_ns,
            timeout_ns: self.timeout_ns,
        }
    }
}

pub struct WorkerConfig {
    pub profile: Arc<Profile>,
    pub timing: Timing,
    pub family: PeerFamily,
    pub sockets: Vec<Socket>,
    /// Index of this worker's first socket among all workers' sockets.
    pub first_socket: u32,
    pub total_sockets: u32,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub recv_slot_len: usize,
    pub gso: bool,
    pub seed: u64,
}

struct Sock {
    socket: Socket,
    pending: Pending,
    connection_id: Option<u64>,
    connected_ns: u64,
    /// A connect asking for a fresh id is outstanding.
    refreshing: bool,
    /// This socket's clients.
    clients: ClientCycle,
}

pub struct Worker {
    profile: Arc<Profile>,
    timing: Timing,
    socks: Vec<Sock>,
    epoll: OwnedFd,
    send: SendBatch,
    /// Kind and transaction id of each send slot in the batch being built.
    kinds: Vec<RequestKind>,
    txids: Vec<u32>,
    recv: RecvBatch,
    template: AnnounceTemplate,
    checker: Checker,
    rng: Rng,
    total_sockets: u32,
    max_in_flight: usize,
    stats: Stats,
    sent_all: u64,
    received_all: u64,
    shared: Arc<Shared>,
    live: Arc<Live>,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Worker {
    pub fn new(config: WorkerConfig, shared: Arc<Shared>, live: Arc<Live>) -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: epoll_create1 returned a fresh descriptor we now own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
        let mut rng = Rng::with_seed(config.seed);
        let table = (config.max_in_flight * 4).max(1 << 16);
        let mut socks = Vec::with_capacity(config.sockets.len());
        for (i, socket) in config.sockets.into_iter().enumerate() {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: both descriptors are open; `event` outlives the call.
            cvt(unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    socket.as_raw_fd(),
                    &mut event,
                )
            })?;
            socks.push(Sock {
                socket,
                pending: Pending::new(table, rng.u32(..)),
                connection_id: None,
                connected_ns: 0,
                refreshing: false,
                clients: ClientCycle::new(config.first_socket + i as u32),
            });
        }
        let send = SendBatch::new(config.batch_size, config.gso);
        Ok(Self {
            template: AnnounceTemplate::new(config.profile.numwant),
            checker: Checker::new(
                config.family,
                config.profile.numwant,
                config.timing.warmup_end_ns,
            ),
            kinds: vec![RequestKind::Connect; send.capacity()],
            txids: vec![0; send.capacity()],
            send,
            recv: RecvBatch::new(config.batch_size, config.recv_slot_len),
            profile: config.profile,
            timing: config.timing,
            socks,
            epoll,
            rng,
            total_sockets: config.total_sockets.max(1),
            max_in_flight: config.max_in_flight.max(1),
            stats: Stats::default(),
            sent_all: 0,
            received_all: 0,
            shared,
            live,
        })
    }

    #[inline]
    fn now(&self) -> u64 {
        self.shared.now()
    }

    /// Runs until the measured window has ended and its requests are
    /// answered or timed out (or the monitor says stop); returns what was
    /// counted.
    pub fn run(mut self) -> Stats {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; self.socks.len().max(1)];
        let mut next_housekeeping = 0;
        loop {
            let now = self.now();
            if now >= next_housekeeping {
                next_housekeeping = now + HOUSEKEEPING_NS;
                if self.housekeeping(now) {
                    break;
                }
            }
            // SAFETY: `events` has room for the count passed.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    1,
                )
            };
            if n <= 0 {
                // Timeout, or EINTR: housekeeping decides what next.
                continue;
            }
            let now = self.now();
            let sending = now < self.timing.end_ns;
            for event in &events[..n as usize] {
                let index = event.u64 as usize;
                self.receive(index, now);
                if sending {
                    self.fill(index, now);
                }
            }
        }
        let stats = &mut self.stats;
        for sock in &mut self.socks {
            sock.pending.drain(|e| {
                if e.measured {
                    stats.lost += 1;
                }
            });
        }
        self.publish();
        self.stats
    }

    /// Times out old requests and refills every socket with room. Returns
    /// true when the run is over for this worker.
    fn housekeeping(&mut self, now: u64) -> bool {
        let t = self.timing;
        let stats = &mut self.stats;
        for sock in &mut self.socks {
            let refreshing = &mut sock.refreshing;
            sock.pending.expire(now, t.window_ns, t.timeout_ns, |e| {
                lost(stats, refreshing, e)
            });
        }
        self.publish();
        if self.shared.stopping() {
            return true;
        }
        if now < t.end_ns {
            for index in 0..self.socks.len() {
                self.fill(index, now);
            }
            return false;
        }
        // Draining: wait for the measured window's answers, but not past
        // the timeout (they would be counted lost by then anyway).
        now >= t.end_ns.saturating_add(t.timeout_ns)
            || !self
                .socks
                .iter()
                .any(|s| s.pending.any_measured_outstanding())
    }

    fn publish(&self) {
        self.live
            .publish(self.sent_all, self.received_all, &self.stats);
    }

    /// Reads and accounts everything waiting on socket `index`.
    fn receive(&mut self, index: usize, now: u64) {
        let Some(sock) = self.socks.get_mut(index) else {
            return;
        };
        let fd = sock.socket.as_raw_fd();
        for _ in 0..MAX_RECV_ROUNDS {
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // E.g. ECONNREFUSED after an ICMP port unreachable;
                    // reading it cleared it.
                    self.stats.recv_errors += 1;
                    self.stats.note_io_error("receive", &e);
                    break;
                }
            };
            self.received_all += n as u64;
            for i in 0..n {
                let Some((datagram, truncated)) = self.recv.get(i) else {
                    break;
                };
                let effect = self.checker.account(
                    &mut self.stats,
                    &mut sock.pending,
                    datagram,
                    truncated,
                    now,
                );
                match effect {
                    Effect::None => {}
                    Effect::Connected(id) => {
                        sock.connection_id = Some(id);
                        sock.connected_ns = now;
                        sock.refreshing = false;
                    }
                    Effect::Reconnect { sent_ns } => {
                        // Only if the failed request carried the current id.
                        if sent_ns >= sock.connected_ns {
                            sock.connection_id = None;
                            sock.refreshing = false;
                        }
                    }
                }
            }
            if n < self.recv.capacity() {
                break;
            }
        }
    }

    /// Sends as many requests on socket `index` as its window has room for.
    fn fill(&mut self, index: usize, now: u64) {
        let Self {
            profile,
            timing,
            socks,
            send,
            kinds,
            txids,
            template,
            rng,
            stats,
            max_in_flight,
            total_sockets,
            sent_all,
            ..
        } = self;
        let Some(sock) = socks.get_mut(index) else {
            return;
        };
        let room = max_in_flight
            .saturating_sub(sock.pending.young_outstanding())
            .min(send.capacity());
        if room == 0 {
            return;
        }
        let measured = now >= timing.warmup_end_ns;
        let mut n = 0;
        while n < room {
            let mut kind = profile.request_kind(rng);
            let connection_id = match sock.connection_id {
                None => {
                    kind = RequestKind::Connect;
                    0
                }
                Some(id) => {
                    let age = now.saturating_sub(sock.connected_ns);
                    if age >= timing.connection_id_max_age_ns && !sock.refreshing {
                        // The old id stays in use until the new one arrives.
                        kind = RequestKind::Connect;
                        sock.refreshing = true;
                    }
                    id
                }
            };
            let slot = send.slot(n);
            let (len, txid) = match kind {
                RequestKind::Connect => {
                    let (txid, evicted) = sock.pending.alloc(now, kind, 0, measured);
                    if let Some(e) = evicted {
                        lost(stats, &mut sock.refreshing, &e);
                    }
                    (write_connect(slot, txid), txid)
                }
                RequestKind::Announce => {
                    let client_index = sock.clients.next(profile.peers, *total_sockets);
                    let client = profile.client(client_index);
                    let (txid, evicted) = sock.pending.alloc(now, kind, 0, measured);
                    if let Some(e) = evicted {
                        lost(stats, &mut sock.refreshing, &e);
                    }
                    let event = profile.announce_event(&client, rng);
                    let len = template.write(
                        slot,
                        connection_id,
                        txid,
                        profile,
                        client_index,
                        &client,
                        event,
                    );
                    (len, txid)
                }
                RequestKind::Scrape => {
                    let client_index = sock.clients.next(profile.peers, *total_sockets);
                    let client = profile.client(client_index);
                    // The profile caps scrape_len at 74.
                    let hashes = client.scrape_len.min(u32::from(u8::MAX)) as u8;
                    let (txid, evicted) = sock.pending.alloc(now, kind, hashes, measured);
                    if let Some(e) = evicted {
                        lost(stats, &mut sock.refreshing, &e);
                    }
                    (
                        write_scrape(slot, connection_id, txid, profile, &client),
                        txid,
                    )
                }
            };
            send.set_len(n, len);
            kinds[n] = kind;
            txids[n] = txid;
            n += 1;
        }
        let sent = match send.send(sock.socket.as_raw_fd(), n) {
            Ok(sent) => sent,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    stats.send_errors += 1;
                    stats.note_io_error("send", &e);
                }
                0
            }
        };
        if let Some(e) = send.take_gso_error() {
            stats.gso_unavailable = Some(e.to_string());
        }
        *sent_all += sent as u64;
        for i in 0..n {
            if !send.sent(i) {
                sock.pending.cancel(txids[i]);
                if kinds[i] == RequestKind::Connect {
                    sock.refreshing = false;
                }
            } else if measured {
                match kinds[i] {
                    RequestKind::Connect => stats.connects_sent += 1,
                    RequestKind::Announce => stats.announces_sent += 1,
                    RequestKind::Scrape => stats.scrapes_sent += 1,
                }
            }
        }
    }
}

/// Counts a request given up as lost; a lost connect no longer blocks
/// asking for a fresh id.
#[inline]
fn lost(stats: &mut Stats, refreshing: &mut bool, e: &Entry) {
    if e.measured {
        stats.lost += 1;
    }
    if e.kind == RequestKind::Connect {
        *refreshing = false;
    }
}
