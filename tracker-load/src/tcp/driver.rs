//! One sending thread's TCP connections, on one mio poll.
//!
//! The driver owns the connections' lives: it connects (again, when the
//! tracker closes one or a connect fails), waits for the socket to turn
//! writable, and hands the connected [`Link`] to the protocol's
//! [`Session`], which from then on reads, checks and sends whenever the
//! socket is ready. mio is edge-triggered, so a session must read until
//! the socket would block. Every millisecond the driver also lets each
//! session expire its timed-out requests and top itself up, and publishes
//! the live counters; after the measured window it stops sending and waits
//! for the window's answers, as the UDP worker does.

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::{Dialer, Link};
use crate::profile::RequestKind;
use crate::report::Stats;
use crate::run::{Live, Shared, Window};

/// How often timeouts are checked, idle slots reconnected and counters
/// published.
const HOUSEKEEPING_NS: u64 = 1_000_000;
/// Wait before connecting again after a failed connect, or after a
/// connection that lived shorter than this, so a tracker that refuses or
/// drops connections is not hammered.
const RECONNECT_BACKOFF_NS: u64 = 100_000_000;

/// What a session counts with, and the clock.
pub struct Cx {
    /// Nanoseconds since the run started, as of the current event.
    pub now: u64,
    pub window: Window,
    pub stats: Stats,
    /// Requests sent, warmup included (progress line).
    pub sent_all: u64,
    /// Answers received, warmup included (progress line, reachability).
    pub received_all: u64,
}

impl Cx {
    /// Whether requests sent now are measured.
    #[inline]
    pub fn measuring(&self) -> bool {
        self.window.measuring(self.now)
    }

    /// Whether new requests may go out now.
    #[inline]
    pub fn sending(&self) -> bool {
        self.window.sending(self.now)
    }

    /// Counts an announce or scrape sent, `measured` or not.
    #[inline]
    pub fn count_sent(&mut self, kind: RequestKind, measured: bool) {
        self.sent_all += 1;
        if measured {
            match kind {
                RequestKind::Scrape => self.stats.scrapes_sent += 1,
                _ => self.stats.announces_sent += 1,
            }
        }
    }
}

/// Why a session gave up its connection.
#[derive(Debug)]
pub enum Closed {
    /// The tracker closed it (or asked to, with `Connection: close`).
    ByPeer,
    Io(io::Error),
    /// The tracker broke the protocol (bad framing, a failed handshake,
    /// an answer nothing asked for) so nothing after it can be trusted.
    Protocol(String),
    /// A request went unanswered past the timeout.
    Timeout,
}

impl From<io::Error> for Closed {
    fn from(e: io::Error) -> Self {
        Closed::Io(e)
    }
}

/// A protocol spoken over the driver's connections.
pub trait Session {
    /// What the protocol keeps per connection, the [`Link`] included.
    type Conn;

    /// Takes over a freshly connected link on slot `slot` (an index among
    /// all workers' slots).
    fn open(&mut self, slot: u32, link: Link, cx: &mut Cx) -> Self::Conn;

    /// Does all the connection is ready for: reads and accounts answers
    /// until the socket would block, sends what `cx.sending()` and the
    /// in-flight limit allow, and flushes.
    fn drive(&mut self, conn: &mut Self::Conn, cx: &mut Cx) -> Result<(), Closed>;

    /// Called about every millisecond: expires timed-out requests (the
    /// session decides whether that closes the connection) and sends more
    /// if there is room.
    fn tick(&mut self, conn: &mut Self::Conn, cx: &mut Cx) -> Result<(), Closed>;

    /// The connection is gone, or the run is over: counts its unanswered
    /// measured requests as lost.
    fn close(&mut self, conn: Self::Conn, cx: &mut Cx);

    /// Whether it still waits for answers to measured requests.
    fn awaiting_measured(&self, conn: &Self::Conn) -> bool;
}

enum Slot<C> {
    Idle { retry_at: u64 },
    Connecting { sock: TcpStream, since: u64 },
    Open { conn: C, fd: RawFd, since: u64 },
}

pub struct Driver<S: Session> {
    session: S,
    dialer: Dialer,
    poll: Poll,
    slots: Vec<Slot<S::Conn>>,
    /// Global index of this worker's first slot.
    first_slot: u32,
    cx: Cx,
    shared: Arc<Shared>,
    live: Arc<Live>,
}

impl<S: Session> Driver<S> {
    /// A driver for the connection slots `slots` (global indices).
    pub fn new(
        session: S,
        dialer: Dialer,
        poll: Poll,
        slots: Range<u32>,
        window: Window,
        shared: Arc<Shared>,
        live: Arc<Live>,
    ) -> Self {
        Self {
            session,
            dialer,
            poll,
            first_slot: slots.start,
            slots: slots.map(|_| Slot::Idle { retry_at: 0 }).collect(),
            cx: Cx {
                now: 0,
                window,
                stats: Stats::default(),
                sent_all: 0,
                received_all: 0,
            },
            shared,
            live,
        }
    }

    /// Runs until the measured window has ended and its requests are
    /// answered or timed out (or the monitor says stop); returns what was
    /// counted.
    pub fn run(mut self) -> Stats {
        let mut events = Events::with_capacity(self.slots.len().clamp(16, 1024));
        let mut next_housekeeping = 0;
        loop {
            self.cx.now = self.shared.now();
            if self.cx.now >= next_housekeeping {
                next_housekeeping = self.cx.now + HOUSEKEEPING_NS;
                if self.housekeeping() {
                    break;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(1))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.cx.stats.note_io_error("poll", &e);
                }
                continue;
            }
            self.cx.now = self.shared.now();
            for event in events.iter() {
                let index = event.token().0;
                self.ready(index);
            }
        }
        for index in 0..self.slots.len() {
            // The run is over: not a lost connection.
            self.shut(index, None);
        }
        self.live
            .publish(self.cx.sent_all, self.cx.received_all, &self.cx.stats);
        self.cx.stats
    }

    /// Connects idle slots, fails connects older than the request timeout,
    /// ticks sessions. Returns true when the run is over for this worker.
    fn housekeeping(&mut self) -> bool {
        let now = self.cx.now;
        let sending = self.cx.sending();
        let timeout = self.cx.window.timeout_ns;
        for index in 0..self.slots.len() {
            match &mut self.slots[index] {
                Slot::Idle { retry_at } => {
                    if sending && *retry_at <= now {
                        self.connect(index);
                    }
                }
                Slot::Connecting { since, .. } => {
                    if now.saturating_sub(*since) > timeout {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        self.connect_failed(index, &e);
                    }
                }
                Slot::Open { conn, .. } => {
                    if let Err(why) = self.session.tick(conn, &mut self.cx) {
                        self.shut(index, Some(why));
                    }
                }
            }
        }
        self.live
            .publish(self.cx.sent_all, self.cx.received_all, &self.cx.stats);
        if self.shared.stopping() {
            return true;
        }
        if sending {
            return false;
        }
        self.cx.window.drained(now)
            || !self.slots.iter().any(|s| match s {
                Slot::Open { conn, .. } => self.session.awaiting_measured(conn),
                _ => false,
            })
    }

    fn connect(&mut self, index: usize) {
        let now = self.cx.now;
        let sock = self.dialer.connect().and_then(|mut sock| {
            self.poll.registry().register(
                &mut sock,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(sock)
        });
        match sock {
            Ok(sock) => self.slots[index] = Slot::Connecting { sock, since: now },
            Err(e) => self.connect_failed(index, &e),
        }
    }

    fn connect_failed(&mut self, index: usize, e: &io::Error) {
        self.cx.stats.connect_failures += 1;
        self.cx.stats.note_io_error("connect", e);
        if let Slot::Connecting { sock, .. } = &mut self.slots[index] {
            let _ = self.poll.registry().deregister(sock);
        }
        self.slots[index] = Slot::Idle {
            retry_at: self.cx.now + RECONNECT_BACKOFF_NS,
        };
    }

    /// Handles an event on slot `index`.
    fn ready(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        match slot {
            Slot::Idle { .. } => {}
            Slot::Connecting { sock, .. } => {
                // The connect finished, one way or the other.
                match sock.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => return self.connect_failed(index, &e),
                }
                match sock.peer_addr() {
                    Ok(_) => self.opened(index),
                    // A spurious wake-up: still connecting.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => self.connect_failed(index, &e),
                }
            }
            Slot::Open { conn, .. } => {
                if let Err(why) = self.session.drive(conn, &mut self.cx) {
                    self.shut(index, Some(why));
                }
            }
        }
    }

    /// Hands the connected socket of slot `index` to the session.
    fn opened(&mut self, index: usize) {
        let Slot::Connecting { sock, .. } =
            std::mem::replace(&mut self.slots[index], Slot::Idle { retry_at: 0 })
        else {
            return;
        };
        let fd = sock.as_raw_fd();
        let link = match self.dialer.link(sock) {
            Ok(link) => link,
            Err(e) => {
                // Dropping the socket closed it, which leaves the poll too.
                self.cx.stats.note_io_error("TLS set-up", &e);
                self.slots[index] = Slot::Idle {
                    retry_at: self.cx.now + RECONNECT_BACKOFF_NS,
                };
                return;
            }
        };
        self.cx.stats.connections_opened += 1;
        let slot = self.first_slot + index as u32;
        let conn = self.session.open(slot, link, &mut self.cx);
        self.slots[index] = Slot::Open {
            conn,
            fd,
            since: self.cx.now,
        };
        // Sends the first requests (the socket is writable already).
        self.ready(index);
    }

    /// Closes slot `index`; `why` is `None` when the run is over, else
    /// the connection is counted lost and opened again.
    fn shut(&mut self, index: usize, why: Option<Closed>) {
        let retry_at = match &self.slots[index] {
            Slot::Open { since, .. }
                if self.cx.now.saturating_sub(*since) >= RECONNECT_BACKOFF_NS =>
            {
                self.cx.now
            }
            _ => self.cx.now + RECONNECT_BACKOFF_NS,
        };
        match std::mem::replace(&mut self.slots[index], Slot::Idle { retry_at }) {
            Slot::Open { conn, fd, .. } => {
                // Before the socket closes, while the descriptor is valid.
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                self.session.close(conn, &mut self.cx);
            }
            Slot::Connecting { mut sock, .. } => {
                let _ = self.poll.registry().deregister(&mut sock);
            }
            Slot::Idle { .. } => {}
        }
        let Some(why) = why else { return };
        self.cx.stats.connections_lost += 1;
        match why {
            Closed::ByPeer | Closed::Timeout => {}
            Closed::Io(e) => self.cx.stats.note_io_error("connection", &e),
            Closed::Protocol(message) => {
                if self.cx.stats.first_io_error.is_none() {
                    self.cx.stats.first_io_error = Some(message);
                }
            }
        }
    }
}
