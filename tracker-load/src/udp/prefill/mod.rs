//! `udp.prefill`: announce every simulated client once, before the load.
//!
//! A short run reaches only the clients it happens to draw, so the tracker
//! under test holds a fraction of the profile's population. The prefill
//! walks every client index `0..peers` once, each from the socket the load
//! will use for it (so from the same source address), with its own
//! torrent, port and role and numwant 0 (small answers), and counts the
//! clients whose announce was answered. Each socket keeps `max_in_flight`
//! announces outstanding, so the pace is the tracker's; an announce left
//! unanswered for `window_timeout` (or answered with an error) is sent
//! again, up to [`MAX_ATTEMPTS`] times in all, and a client still
//! unconfirmed then is counted failed.
//!
//! [`Plan`] is one socket's bookkeeping, free of I/O; [`run`] drives the
//! plans of all sockets from one thread over sendmmsg/recvmmsg.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::bail;
use socket2::Socket;
use tracker_proto::udp::{PeerFamily, Response};

use super::mmsg::{RecvBatch, SendBatch, SEND_SLOT};
use super::request::{write_connect, AnnounceTemplate};
use crate::profile::{Client, Profile};
use crate::report;

/// Sends of one client's announce before it is given up.
pub const MAX_ATTEMPTS: u8 = 8;
/// With no answer at all by then, the tracker is taken to be unreachable.
const REACHABLE_WITHIN: Duration = Duration::from_secs(3);
/// With no answer for this long after answers came, the tracker is taken
/// to have stopped.
const STALLED_AFTER: Duration = Duration::from_secs(10);
/// How often timed-out announces are looked for.
pub const EXPIRE_EVERY_NS: u64 = 2_000_000;
/// How long stray answers (to announces sent twice) are read and dropped
/// after the last client is confirmed, so none reaches the load's sockets.
pub const DRAIN: Duration = Duration::from_millis(30);
/// Above this many clients the distinct peers are not counted (the count
/// keeps 8 bytes per client).
const MAX_COUNTED: u32 = 1 << 25;

/// What one socket's plan wants sent next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Connect {
        txid: u32,
    },
    Announce {
        txid: u32,
        client: u32,
        connection_id: u64,
    },
}

/// What an answer meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Connected,
    /// The client's announce was answered: the tracker holds it.
    Confirmed(u32),
    /// A BEP 15 error: the request is sent again after a fresh connect.
    Error,
    /// Not an answer this plan can use: unknown or repeated transaction id,
    /// or not a valid answer of the right kind.
    Ignored,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    txid: u32,
    client: u32,
    attempts: u8,
    sent_ns: u64,
    live: bool,
}

const FREE: Slot = Slot {
    txid: 0,
    client: 0,
    attempts: 0,
    sent_ns: 0,
    live: false,
};

/// One socket's share of the prefill: clients `first, first + step, ...`
/// below `peers`, which is the load's own assignment of clients to
/// sockets (see `ClientCycle`).
pub struct Plan {
    first: u32,
    step: u32,
    /// Clients of this socket.
    count: u32,
    /// Clients not yet sent once.
    next_fresh: u32,
    /// Clients to send again, with the sends they had.
    retry: VecDeque<(u32, u8)>,
    slots: Box<[Slot]>,
    mask: u32,
    next_txid: u32,
    in_flight: usize,
    window: usize,
    /// The id in use and when it came.
    connection: Option<(u64, u64)>,
    /// An outstanding connect: its id and when it went out.
    connecting: Option<(u32, u64)>,
    /// No connect before this (after one failed).
    connect_after_ns: u64,
    retry_ns: u64,
    max_age_ns: u64,
    pub confirmed: u64,
    pub failed: u64,
    /// Announces that went out, repeats included.
    pub sent: u64,
}

impl Plan {
    /// The plan of socket `global` of `total`, for a profile of `peers`
    /// clients; `window` announces outstanding at most, each sent again
    /// after `retry_ns` unanswered; connection ids renewed after
    /// `max_age_ns`.
    pub fn new(
        global: u32,
        total: u32,
        peers: u32,
        window: usize,
        retry_ns: u64,
        max_age_ns: u64,
        first_txid: u32,
    ) -> Self {
        let step = total.max(1);
        let count = if global < peers {
            (peers - 1 - global) / step + 1
        } else {
            0
        };
        let window = window.max(1);
        let capacity = (window * 4).next_power_of_two();
        Self {
            first: global,
            step,
            count,
            next_fresh: 0,
            retry: VecDeque::new(),
            slots: vec![FREE; capacity].into_boxed_slice(),
            mask: capacity as u32 - 1,
            next_txid: first_txid,
            in_flight: 0,
            window,
            connection: None,
            connecting: None,
            connect_after_ns: 0,
            retry_ns,
            max_age_ns,
            confirmed: 0,
            failed: 0,
            sent: 0,
        }
    }

    /// Clients this socket announces.
    pub fn clients(&self) -> u32 {
        self.count
    }

    /// Announces outstanding.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests awaiting an answer, the connect included: what a sender
    /// sharing one window over many plans counts against it.
    pub fn outstanding(&self) -> usize {
        self.in_flight + usize::from(self.connecting.is_some())
    }

    /// Every client confirmed or given up, nothing outstanding.
    pub fn done(&self) -> bool {
        self.next_fresh == self.count && self.retry.is_empty() && self.in_flight == 0
    }

    fn txid(&mut self) -> u32 {
        let t = self.next_txid;
        self.next_txid = t.wrapping_add(1);
        t
    }

    /// The next request to send at `now`, if the window and the connection
    /// allow one and a client is left.
    pub fn next(&mut self, now: u64) -> Option<Next> {
        if self.done() {
            return None;
        }
        let stale = self
            .connection
            .is_none_or(|(_, since)| now.saturating_sub(since) >= self.max_age_ns);
        if stale && self.connecting.is_none() && now >= self.connect_after_ns {
            let txid = self.txid();
            self.connecting = Some((txid, now));
            return Some(Next::Connect { txid });
        }
        // An aged id stays in use until the fresh one arrives.
        let (connection_id, _) = self.connection?;
        if self.in_flight >= self.window {
            return None;
        }
        let (client, attempts) = match self.retry.pop_front() {
            Some(r) => r,
            None if self.next_fresh < self.count => {
                let c = self.first + self.next_fresh * self.step;
                self.next_fresh += 1;
                (c, 0)
            }
            None => return None,
        };
        // At most `window` slots are live and there are 4 x window, so a
        // free one is near.
        let txid = loop {
            let t = self.txid();
            if !self.slots[(t & self.mask) as usize].live {
                break t;
            }
        };
        self.slots[(txid & self.mask) as usize] = Slot {
            txid,
            client,
            attempts: attempts + 1,
            sent_ns: now,
            live: true,
        };
        self.in_flight += 1;
        self.sent += 1;
        Some(Next::Announce {
            txid,
            client,
            connection_id,
        })
    }

    /// The kernel did not take `request`: it goes first next time, as if
    /// never sent.
    pub fn unsent(&mut self, request: Next) {
        match request {
            Next::Connect { txid } => {
                if self.connecting.is_some_and(|(t, _)| t == txid) {
                    self.connecting = None;
                }
            }
            Next::Announce { txid, .. } => {
                if let Some(slot) = self.take(txid) {
                    self.sent -= 1;
                    self.retry.push_front((slot.client, slot.attempts - 1));
                }
            }
        }
    }

    fn take(&mut self, txid: u32) -> Option<Slot> {
        let slot = &mut self.slots[(txid & self.mask) as usize];
        if slot.live && slot.txid == txid {
            slot.live = false;
            self.in_flight -= 1;
            Some(*slot)
        } else {
            None
        }
    }

    /// Sends `client` again, or gives it up after [`MAX_ATTEMPTS`].
    fn again(&mut self, client: u32, attempts: u8) {
        if attempts >= MAX_ATTEMPTS {
            self.failed += 1;
        } else {
            self.retry.push_back((client, attempts));
        }
    }

    /// Accounts one datagram received at `now`.
    pub fn answer(&mut self, datagram: &[u8], family: PeerFamily, now: u64) -> Answer {
        let Some(txid) = datagram.get(4..8) else {
            return Answer::Ignored;
        };
        let txid = u32::from_be_bytes([txid[0], txid[1], txid[2], txid[3]]);
        let parsed = Response::parse(datagram, family);
        if let Some((t, _)) = self.connecting {
            if t == txid {
                self.connecting = None;
                return match parsed {
                    Ok(Response::Connect(c)) => {
                        self.connection = Some((c.connection_id.0, now));
                        Answer::Connected
                    }
                    _ => {
                        self.connect_after_ns = now.saturating_add(self.retry_ns);
                        Answer::Error
                    }
                };
            }
        }
        let Some(slot) = self.take(txid) else {
            return Answer::Ignored;
        };
        match parsed {
            Ok(Response::Announce(_)) => {
                self.confirmed += 1;
                Answer::Confirmed(slot.client)
            }
            Ok(Response::Error(_)) => {
                // Only if the request carried the id in use: its id may
                // be why.
                if self
                    .connection
                    .is_some_and(|(_, since)| since <= slot.sent_ns)
                {
                    self.connection = None;
                }
                self.again(slot.client, slot.attempts);
                Answer::Error
            }
            _ => {
                self.again(slot.client, slot.attempts);
                Answer::Ignored
            }
        }
    }

    /// Sends again what has waited `retry_ns` unanswered at `now`, the
    /// connect included.
    pub fn expire(&mut self, now: u64) {
        if let Some((_, sent)) = self.connecting {
            if now.saturating_sub(sent) >= self.retry_ns {
                self.connecting = None;
            }
        }
        if self.in_flight == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.live && now.saturating_sub(s.sent_ns) >= self.retry_ns {
                self.slots[i].live = false;
                self.in_flight -= 1;
                self.again(s.client, s.attempts);
            }
        }
    }
}

/// What the prefill did, for the report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub seconds: f64,
    /// Clients announced: the profile's peers.
    pub clients: u64,
    /// Clients whose announce was answered.
    pub confirmed: u64,
    /// Clients still unanswered after [`MAX_ATTEMPTS`] sends.
    pub failed: u64,
    /// Announces sent, repeats included.
    pub announces_sent: u64,
    /// Distinct peers among the confirmed clients as a tracker keys them
    /// (source address, announced port, torrent): what the tracker should
    /// hold. Clients of one torrent that share a source address and draw
    /// the same port are one peer. `None` above 2^25 clients.
    pub swarm_peers: Option<u64>,
    /// Distinct torrents among the confirmed clients (popularity leaves
    /// many of the profile's torrents without a client). `None` with
    /// `swarm_peers`.
    pub swarm_torrents: Option<u64>,
}

/// A peer as trackers key it: the source address (as an index into the
/// distinct bind addresses), the port, and the torrent.
pub fn swarm_key(address: u16, client: &Client) -> u64 {
    u64::from(client.torrent) << 32 | u64::from(address) << 16 | u64::from(client.port)
}

/// Distinct peers among `keys` (from [`swarm_key`]; sorted in place), and
/// distinct torrents among them.
pub fn distinct(keys: &mut [u64]) -> (u64, u64) {
    keys.sort_unstable();
    let (mut peers, mut torrents) = (0u64, 0u64);
    let mut last: Option<u64> = None;
    for &k in keys.iter() {
        if last != Some(k) {
            peers += 1;
            if last.is_none_or(|l| l >> 32 != k >> 32) {
                torrents += 1;
            }
            last = Some(k);
        }
    }
    (peers, torrents)
}

/// For each bind address in `bind` (one per socket, round-robin), the index
/// of its first occurrence among the distinct ones.
pub fn address_indices(bind: &[IpAddr]) -> Vec<u16> {
    let mut distinct: Vec<IpAddr> = Vec::new();
    bind.iter()
        .map(|ip| match distinct.iter().position(|d| d == ip) {
            Some(i) => i as u16,
            None => {
                distinct.push(*ip);
                (distinct.len() - 1) as u16
            }
        })
        .collect()
}

/// How the prefill runs.
pub struct Settings<'a> {
    pub profile: &'a Profile,
    pub family: PeerFamily,
    pub tracker: SocketAddr,
    /// Source address index of each socket (see [`address_indices`]).
    pub addresses: Vec<u16>,
    pub window: usize,
    pub batch_size: usize,
    pub retry: Duration,
    pub connection_id_max_age: Duration,
    pub gso: bool,
    pub progress: bool,
    pub seed: u64,
}

/// One plan per endpoint (socket or simulated source) of `total`, in the
/// load's global order, each keeping `window` announces outstanding.
pub fn plans(
    total: u32,
    peers: u32,
    window: usize,
    retry: Duration,
    connection_id_max_age: Duration,
    seed: u64,
) -> Vec<Plan> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..total)
        .map(|g| {
            Plan::new(
                g,
                total,
                peers,
                window,
                retry.as_nanos() as u64,
                connection_id_max_age.as_nanos() as u64,
                rng.u32(..),
            )
        })
        .collect()
}

/// Writes the request `next` stands for into `slot`; returns its length.
/// `template` is numwant 0's.
pub fn write_request(
    slot: &mut [u8; SEND_SLOT],
    next: Next,
    profile: &Profile,
    template: &AnnounceTemplate,
) -> usize {
    match next {
        Next::Connect { txid } => write_connect(slot, txid),
        Next::Announce {
            txid,
            client,
            connection_id,
        } => {
            let c = profile.client(client);
            // A client's first announce names its event, whatever the
            // profile's share of re-announces.
            let event = c.event();
            template.write(slot, connection_id, txid, profile, client, &c, event)
        }
    }
}

/// The confirmed clients as a tracker keys them, for [`Outcome::swarm_peers`].
pub struct Census {
    /// None when the profile is too large to count, or the addresses do
    /// not fit [`swarm_key`].
    keys: Option<Vec<u64>>,
}

impl Census {
    /// `countable`: every address index fits a u16.
    pub fn new(peers: u32, countable: bool) -> Self {
        Self {
            keys: (countable && peers <= MAX_COUNTED).then(|| Vec::with_capacity(peers as usize)),
        }
    }

    /// `client` was confirmed from the address with index `address`.
    pub fn confirmed(&mut self, address: u16, client: &Client) {
        if let Some(keys) = &mut self.keys {
            keys.push(swarm_key(address, client));
        }
    }
}

/// What every prefill driver shares around its loop: the clock, giving up
/// on a silent tracker, the progress line and the outcome.
pub struct Watch {
    start: Instant,
    last_answer: Option<Instant>,
    next_progress: Duration,
    progress: bool,
    tracker: SocketAddr,
    peers: u64,
}

impl Watch {
    pub fn new(tracker: SocketAddr, peers: u32, progress: bool) -> Self {
        Self {
            start: Instant::now(),
            last_answer: None,
            next_progress: Duration::from_secs(1),
            progress,
            tracker,
            peers: u64::from(peers),
        }
    }

    /// Nanoseconds since the prefill started: the plans' clock.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A datagram came from the tracker.
    pub fn answered(&mut self) {
        self.last_answer = Some(Instant::now());
    }

    /// Fails if the tracker never answered or stopped answering; prints
    /// progress once a second.
    pub fn check(&mut self, plans: &[Plan]) -> anyhow::Result<()> {
        let elapsed = self.start.elapsed();
        let peers = self.peers;
        match self.last_answer {
            None if elapsed >= REACHABLE_WITHIN => bail!(
                "prefill: no response from the tracker at {} within {:.1} s; is it running \
                 and serving UDP there?",
                self.tracker,
                REACHABLE_WITHIN.as_secs_f64()
            ),
            Some(at) if at.elapsed() >= STALLED_AFTER => bail!(
                "prefill: the tracker at {} stopped answering ({} of {peers} clients \
                 confirmed)",
                self.tracker,
                plans.iter().map(|p| p.confirmed).sum::<u64>()
            ),
            _ => {}
        }
        if self.progress && elapsed >= self.next_progress {
            self.next_progress += Duration::from_secs(1);
            let confirmed: u64 = plans.iter().map(|p| p.confirmed).sum();
            let mut stderr = std::io::stderr();
            let _ = write!(
                stderr,
                "\rprefill {:>6.1} s  confirmed {confirmed} of {peers} ({:.0}/s)\x1b[K",
                elapsed.as_secs_f64(),
                confirmed as f64 / elapsed.as_secs_f64()
            );
            let _ = stderr.flush();
        }
        Ok(())
    }

    /// The outcome, once every plan is done; ends the progress line.
    pub fn outcome(&self, plans: &[Plan], census: Census) -> Outcome {
        let seconds = self.start.elapsed().as_secs_f64();
        if self.progress && seconds >= 1.0 {
            let _ = writeln!(std::io::stderr());
        }
        let counted = census.keys.map(|mut keys| distinct(&mut keys));
        Outcome {
            seconds,
            clients: plans.iter().map(|p| u64::from(p.clients())).sum(),
            confirmed: plans.iter().map(|p| p.confirmed).sum(),
            failed: plans.iter().map(|p| p.failed).sum(),
            announces_sent: plans.iter().map(|p| p.sent).sum(),
            swarm_peers: counted.map(|c| c.0),
            swarm_torrents: counted.map(|c| c.1),
        }
    }
}

impl Outcome {
    /// Says what the prefill did on stderr and returns it for the report.
    pub fn into_report(self) -> report::Prefill {
        eprintln!(
            "tracker-load udp: prefill: {} of {} clients confirmed{} in {:.1} s",
            self.confirmed,
            self.clients,
            match (self.swarm_peers, self.swarm_torrents) {
                (Some(n), Some(t)) => format!(" ({n} distinct peers in {t} torrents)"),
                _ => String::new(),
            },
            self.seconds
        );
        report::Prefill {
            prefill_seconds: self.seconds,
            prefilled_peers: self.confirmed,
            prefill_clients: self.clients,
            prefill_failed: self.failed,
            prefill_announces_sent: self.announces_sent,
            prefill_swarm_peers: self.swarm_peers,
            prefill_swarm_torrents: self.swarm_torrents,
        }
    }
}

/// Announces every client of the profile once over `sockets` (in global
/// order: the load's client-to-socket assignment) and returns what it did.
/// Fails if the tracker never answers, or stops answering.
pub fn run(sockets: &[&Socket], s: &Settings) -> anyhow::Result<Outcome> {
    let mut watch = Watch::new(s.tracker, s.profile.peers, s.progress);
    let mut plans = plans(
        sockets.len() as u32,
        s.profile.peers,
        s.window,
        s.retry,
        s.connection_id_max_age,
        s.seed,
    );
    let mut census = Census::new(s.profile.peers, true);
    let template = AnnounceTemplate::new(0);
    let mut send = SendBatch::new(s.batch_size, s.gso);
    let mut nexts: Vec<Next> = Vec::with_capacity(send.capacity());
    // Big enough for any answer to numwant 0, even from a tracker that
    // sends its default count anyway (aquatic_udp does).
    let mut recv = RecvBatch::new(s.batch_size, 2048);
    let mut polls: Vec<libc::pollfd> = sockets
        .iter()
        .map(|sock| libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut next_expire = 0u64;

    loop {
        let now = watch.now_ns();
        for (i, plan) in plans.iter_mut().enumerate() {
            let fd = sockets[i].as_raw_fd();
            for _ in 0..4 {
                let n = match recv.recv(fd) {
                    Ok(n) => n,
                    // Refused (ICMP) or nothing waiting: on to sending.
                    Err(_) => break,
                };
                for k in 0..n {
                    let Some((datagram, _)) = recv.get(k) else {
                        break;
                    };
                    watch.answered();
                    if let Answer::Confirmed(client) = plan.answer(datagram, s.family, now) {
                        census.confirmed(s.addresses[i], &s.profile.client(client));
                    }
                }
                if n < recv.capacity() {
                    break;
                }
            }
        }
        if now >= next_expire {
            next_expire = now + EXPIRE_EVERY_NS;
            for plan in &mut plans {
                plan.expire(now);
            }
        }
        let mut all_done = true;
        for (i, plan) in plans.iter_mut().enumerate() {
            nexts.clear();
            while nexts.len() < send.capacity() {
                let Some(next) = plan.next(now) else { break };
                let n = nexts.len();
                let len = write_request(send.slot(n), next, s.profile, &template);
                send.set_len(n, len);
                nexts.push(next);
            }
            if !nexts.is_empty() {
                // An error means none went out: all are sent again.
                let _ = send.send(sockets[i].as_raw_fd(), nexts.len());
                for (k, next) in nexts.iter().enumerate() {
                    if !send.sent(k) {
                        plan.unsent(*next);
                    }
                }
            }
            all_done &= plan.done();
        }
        if all_done {
            break;
        }
        watch.check(&plans)?;
        // Wait for answers while every window is full.
        // SAFETY: `polls` holds `polls.len()` valid pollfd entries.
        unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 1) };
    }
    let outcome = watch.outcome(&plans, census);
    // Answers to announces sent twice may still come: read them here
    // rather than let the load take them for its own.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        for sock in sockets {
            while matches!(recv.recv(sock.as_raw_fd()), Ok(n) if n > 0) {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
