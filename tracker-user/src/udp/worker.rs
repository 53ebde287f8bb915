//! A UDP socket worker: the plain-socket front end. Receives datagrams with
//! recvmmsg, runs them through the shared [`RequestHandler`], and sends the
//! answers with sendmmsg.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use tracker_swarm::clock::Clock;
use tracker_swarm::{RequestWorkerEnds, SwarmSettings};

use super::handler::{ReplyRoute, RequestHandler, Responder};
use super::mmsg::{RecvBatch, SendQueue, BATCH};
use super::FrontEnd;
use crate::clock::unix_tick;

/// The token of the waker request workers use to say a batch came back
/// (and, with the request worker inline, other front ends to say a batch
/// is waiting in its inbox).
pub const WAKER: Token = Token(usize::MAX);
/// recvmmsg calls per socket before the worker turns to its other duties,
/// so answers keep flowing under a flood.
const RECV_ROUNDS: usize = 8;
/// Longest the worker sleeps when idle; bounds shutdown latency.
const IDLE_POLL: Duration = Duration::from_millis(100);

pub struct UdpWorker {
    pub front: FrontEnd,
    pub sockets: Vec<mio::net::UdpSocket>,
    /// The one request worker, when it runs in this thread (`[swarm]
    /// inline`): this worker's batches are applied in place, with no
    /// channel crossed and no thread woken, and the other front ends'
    /// batches wake this thread.
    pub inline: Option<InlineRequestWorker>,
}

/// The request worker this thread runs, as wired before it starts.
pub struct InlineRequestWorker {
    pub ends: RequestWorkerEnds,
    pub settings: SwarmSettings,
    pub clock: Clock,
}

/// How long an idle datagram worker may sleep: at most `longest`, less
/// when the inline request worker's cleaning, snapshot slices or
/// kernel-cache rounds are due sooner, since they run on this thread.
pub fn idle_timeout(inline: Option<&tracker_swarm::InlineSwarm>, longest: Duration) -> Duration {
    inline
        .map_or(longest, |swarm| swarm.idle_for(Instant::now()))
        .min(longest)
}

/// One send queue per socket; a request's route is its socket's index.
struct SocketResponder {
    queues: Vec<SendQueue>,
}

impl Responder for SocketResponder {
    fn respond(
        &mut self,
        route: ReplyRoute,
        addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        match self.queues.get_mut(route.0 as usize) {
            Some(queue) => queue.push(addr, write),
            None => false,
        }
    }
}

impl UdpWorker {
    pub fn run(self) {
        let UdpWorker {
            mut front,
            mut sockets,
            inline,
        } = self;
        // Started here, so a restore fills the shard from the thread that
        // will use it.
        let mut inline = inline.map(|w| w.ends.into_inline(w.settings, w.clock));
        let origin = front.swarm.origin;
        for (i, socket) in sockets.iter_mut().enumerate() {
            if let Err(e) = front.poll.registry().register(
                socket,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::error!("udp worker {origin}: cannot register socket: {e}");
                return;
            }
        }
        let slot_len = front.settings.response_slot_len();
        let queue_len = front.settings.outgoing_queue_len;
        let mut handler = front.handler(tracker_metrics::Protocol::Udp);
        let mut out = SocketResponder {
            queues: sockets
                .iter()
                .map(|_| SendQueue::new(queue_len, slot_len))
                .collect(),
        };
        let mut recv = RecvBatch::new();
        let mut readable = vec![true; sockets.len()];
        let mut send_blocked = vec![false; sockets.len()];
        let mut events = Events::with_capacity(64);

        while !front.stopping() {
            let timeout = if readable.iter().any(|&r| r) {
                Duration::ZERO
            } else {
                idle_timeout(inline.as_ref(), IDLE_POLL)
            };
            if let Err(e) = front.poll.poll(&mut events, Some(timeout)) {
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
                    let fd = socket.as_raw_fd();
                    readable[i] = receive(&mut handler, &mut out, &mut recv, i, fd);
                }
            }
            handler.dispatch();
            if let Some(swarm) = &mut inline {
                // This worker's own batches, and any other front end's
                // that woke it.
                swarm.run_inbox(origin, |batch| handler.answer(&mut out, batch));
                swarm.between_rounds(readable.iter().any(|&r| r));
            }
            while let Ok(batch) = front.swarm.returns.try_recv() {
                handler.answer(&mut out, batch);
            }
            let queues = &mut out.queues;
            for (i, socket) in sockets.iter().enumerate() {
                if !send_blocked[i] && !queues[i].is_empty() {
                    match queues[i].flush(socket.as_raw_fd()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => send_blocked[i] = true,
                        Err(e) => log::warn!("udp worker {origin}: send failed: {e}"),
                    }
                }
            }
        }
        log::debug!("udp worker {origin} stopped: {:?}", handler.summary());
    }
}

/// Drains up to `RECV_ROUNDS` batches from one socket; returns whether more
/// may be waiting.
fn receive(
    handler: &mut RequestHandler,
    out: &mut SocketResponder,
    recv: &mut RecvBatch,
    socket: usize,
    fd: i32,
) -> bool {
    for _ in 0..RECV_ROUNDS {
        match recv.recv(fd) {
            Ok(n) => {
                let tick = unix_tick();
                let route = ReplyRoute(socket as u32);
                for i in 0..n {
                    if let Some((data, Some(addr))) = recv.get(i) {
                        if recv.truncated(i) {
                            handler.too_large(out, route, addr, data);
                        } else {
                            handler.handle(out, route, addr, data, tick);
                        }
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
                log::warn!("udp socket worker: receive failed: {e}");
                return false;
            }
        }
    }
    true
}
