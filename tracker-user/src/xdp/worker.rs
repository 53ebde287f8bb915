//! An AF_XDP queue worker: the fast-path twin of the UDP socket worker.
//! It drains one RX queue's AF_XDP socket, runs each datagram through the
//! same [`RequestHandler`] as the plain sockets, and transmits each answer
//! as a full frame built from the request's own addresses.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};

use super::frame::{parse_udp_frame, write_reply_frame, ReplyPath};
use super::ring::AnnouncedRing;
use super::xsk::XskQueue;
use crate::clock::unix_tick;
use crate::udp::{
    idle_timeout, FrontEnd, InlineRequestWorker, ReplyRoute, Responder, ANSWERED_IN_KERNEL,
};

const QUEUE: Token = Token(0);
const RING: Token = Token(1);
/// Frames taken from the RX ring per round.
const RX_BATCH: usize = 64;
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Requests whose reply path is remembered while their answer is out at a
/// request worker. A path older than this many requests is overwritten and
/// its answer dropped; the client retries as BEP 15 says.
const REPLY_PATHS: usize = 1 << 15;

pub struct XdpWorker {
    pub front: FrontEnd,
    pub queue_id: u32,
    pub queue: XskQueue,
    /// The announces the program answered, on the one worker that applies
    /// them.
    pub announced: Option<AnnouncedRing>,
    /// The one request worker, when it runs in this thread (`[swarm]
    /// inline` with one RX queue): as in the UDP socket worker, this
    /// queue's batches are applied in place, and the socket worker's (what
    /// the program passes to the kernel) wake this thread.
    pub inline: Option<InlineRequestWorker>,
}

/// A ring of reply paths indexed by a sequence number, so a late answer
/// finds its path, or finds it gone, without any bookkeeping to free it.
struct ReplyPaths {
    entries: Box<[Option<(u32, ReplyPath)>]>,
    next: u32,
}

impl ReplyPaths {
    fn new() -> Self {
        Self {
            entries: vec![None; REPLY_PATHS].into_boxed_slice(),
            next: 0,
        }
    }

    /// Remembers `path`; its sequence number is the request's route.
    fn insert(&mut self, path: ReplyPath) -> ReplyRoute {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        if self.next == ANSWERED_IN_KERNEL.0 {
            self.next = 0;
        }
        self.entries[seq as usize % REPLY_PATHS] = Some((seq, path));
        ReplyRoute(seq)
    }

    fn get(&self, route: ReplyRoute) -> Option<&ReplyPath> {
        match &self.entries[route.0 as usize % REPLY_PATHS] {
            Some((stored, path)) if *stored == route.0 => Some(path),
            _ => None,
        }
    }
}

/// The worker's I/O: its queue, and the reply paths its answers need.
struct XdpResponder {
    queue: XskQueue,
    paths: ReplyPaths,
}

impl Responder for XdpResponder {
    fn respond(
        &mut self,
        route: ReplyRoute,
        _addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let Some(path) = self.paths.get(route).copied() else {
            return false;
        };
        self.queue
            .transmit(|frame| write_reply_frame(&path, frame, write))
    }
}

/// Received frames, copied out of the UMEM so the queue is free to
/// transmit answers while they are handled. Reused round after round.
#[derive(Default)]
struct Staging {
    bytes: Vec<u8>,
    frames: Vec<(usize, usize)>,
}

impl Staging {
    fn push(&mut self, frame: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames.push((start, frame.len()));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }
}

impl XdpWorker {
    pub fn run(self) {
        let XdpWorker {
            mut front,
            queue_id,
            queue,
            mut announced,
            inline,
        } = self;
        // Started here, so a restore fills the shard from the thread that
        // will use it.
        let mut inline = inline.map(|w| w.ends.into_inline(w.settings, w.clock));
        let origin = front.swarm.origin;
        let fd: RawFd = queue.fd();
        if let Err(e) =
            front
                .poll
                .registry()
                .register(&mut SourceFd(&fd), QUEUE, Interest::READABLE)
        {
            log::error!("xdp worker {queue_id}: cannot poll the AF_XDP socket: {e}");
            return;
        }
        if let Some(ring) = &announced {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&ring.ring);
            if let Err(e) =
                front
                    .poll
                    .registry()
                    .register(&mut SourceFd(&fd), RING, Interest::READABLE)
            {
                log::error!("xdp worker {queue_id}: cannot poll the ANNOUNCED ring: {e}");
                return;
            }
        }
        let mut handler = front.handler(tracker_metrics::Protocol::UdpXdp);
        let mut out = XdpResponder {
            queue,
            paths: ReplyPaths::new(),
        };
        let mut staging = Staging::default();
        let mut events = Events::with_capacity(8);
        let mut unparseable = 0u64;
        let mut busy = true;
        // The program wakes this thread only for a batch of ring records
        // (RING_WAKE_RECORDS): fewer wait at most this long.
        let idle = if announced.is_some() {
            Duration::from_millis(tracker_proto::xdp::RING_IDLE_POLL_MS)
        } else {
            IDLE_POLL
        };
        while !front.stopping() {
            let timeout = if busy {
                Duration::ZERO
            } else {
                idle_timeout(inline.as_ref(), idle)
            };
            if let Err(e) = front.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("xdp worker {queue_id}: poll failed: {e}");
                    break;
                }
            }
            staging.clear();
            let received = out.queue.receive(RX_BATCH, |frame| staging.push(frame));
            busy = received == RX_BATCH;
            if let Some(ring) = &mut announced {
                let applied = ring.drain(|a| handler.kernel_announce(&a));
                busy |= applied == super::ring::RING_BATCH;
            }
            if received > 0 {
                let tick = unix_tick();
                for &(start, len) in &staging.frames {
                    let frame = &staging.bytes[start..start + len];
                    // Unlike recvmmsg, AF_XDP never hands over a cut
                    // frame, so there is no "too large" case here: the
                    // socket is bound without XDP_USE_SG, so the kernel
                    // drops a frame that does not fit a UMEM frame
                    // (counted in rx_dropped), and the parser refuses a
                    // UDP length beyond the frame. A scrape too long for one
                    // frame is IP-fragmented, and the XDP program passes
                    // fragments to the kernel stack, whose socket path
                    // detects truncation.
                    match parse_udp_frame(frame) {
                        Ok(parsed) => {
                            let route = out.paths.insert(parsed.path);
                            let client = parsed.path.client;
                            handler.handle(&mut out, route, client, parsed.payload, tick);
                        }
                        // The program only steers well-formed tracker
                        // datagrams, so this is rare: count it, drop it.
                        Err(_) => unparseable += 1,
                    }
                }
            }
            handler.dispatch();
            if let Some(swarm) = &mut inline {
                // This worker's own batches, and any other front end's
                // that woke it.
                swarm.run_inbox(origin, |batch| handler.answer(&mut out, batch));
                swarm.between_rounds(busy);
            }
            while let Ok(batch) = front.swarm.returns.try_recv() {
                handler.answer(&mut out, batch);
            }
            out.queue.flush();
        }
        log::debug!(
            "xdp worker {queue_id} stopped: {:?}, {unparseable} unparseable frames, {:?}",
            handler.summary(),
            out.queue.stats()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::VlanTag;
    use super::*;

    fn path(client_port: u16) -> ReplyPath {
        ReplyPath {
            client_mac: [2, 0, 0, 0, 0, 1],
            local_mac: [2, 0, 0, 0, 0, 2],
            vlans: [VlanTag::default(); 2],
            vlan_count: 0,
            client: SocketAddr::from(([192, 0, 2, 1], client_port)),
            local: "192.0.2.2:6969".parse().unwrap(),
        }
    }

    /// An answer that comes back after its slot was reused must be dropped,
    /// never sent to the client that now holds the slot.
    #[test]
    fn a_late_answer_finds_its_own_path_or_none() {
        let mut paths = ReplyPaths::new();
        let first = paths.insert(path(1));
        let second = paths.insert(path(2));
        assert_eq!(paths.get(first).map(|p| p.client.port()), Some(1));
        assert_eq!(paths.get(second).map(|p| p.client.port()), Some(2));
        for port in 0..REPLY_PATHS as u16 - 1 {
            paths.insert(path(port.wrapping_add(3)));
        }
        assert!(paths.get(first).is_none(), "first's slot was reused");
        assert_eq!(
            paths.get(second).map(|p| p.client.port()),
            Some(2),
            "second's slot is the next to go"
        );
    }
}
