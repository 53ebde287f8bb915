//! The worker's state apart from its connections: batches being filled,
//! pending scrapes and WebTorrent announces, scratch buffers, counters.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Token;
use slab::Slab;
use tracker_metrics::{ConnectionBlock, ErrorKind, Protocol, RequestBlock};
use tracker_proto::http::{self as bhttp};
use tracker_proto::ws::{self as jws, Action};
use tracker_proto::InfoHash;
use tracker_swarm::clock::Clock;
use tracker_swarm::{ConnRef, Job, Outbox, PendingScrapes, TorrentFilter};
use tungstenite::protocol::WebSocketConfig;

use crate::conn_limits::PerIpConns;
use crate::settings::Settings;
use crate::RelayPath;

use super::connections::Conn;
use super::scrape::PendingScrape;
use super::ws::Kept;
use super::LISTENER_TOKEN_TOP;

/// Everything a socket worker keeps apart from its connections, so that
/// request handlers can borrow it and one connection at the same time.
pub(super) struct WorkerState {
    pub(super) index: u32,
    /// The worker's own copy: request handlers clone the handle to read it
    /// while they change the rest of the state, and an `Rc` makes that
    /// clone a plain increment instead of an atomic one on a cache line
    /// every socket worker shares.
    pub(super) settings: Rc<Settings>,
    pub(super) filter: Arc<dyn TorrentFilter>,
    pub(super) clock: Clock,
    pub(super) now: Instant,
    pub(super) now_secs: u32,
    /// Jobs on their way to the request workers, sent at each dispatch.
    pub(super) outbox: Outbox,
    /// Jobs that cannot go anywhere (no request worker at all), answered
    /// at the next dispatch.
    pub(super) refused: Vec<Job>,
    pub(super) relays: Vec<RelayPath>,
    pub(super) relay_woken: Vec<bool>,
    pub(super) scrapes: PendingScrapes<PendingScrape>,
    pub(super) full_scrapes: usize,
    pub(super) files_pool: Vec<Vec<bhttp::ScrapeFile>>,
    pub(super) kept: Slab<Kept>,
    pub(super) kept_pool: Vec<Kept>,
    pub(super) next_generation: u32,
    /// Where answers are written before they are framed.
    pub(super) scratch: Vec<u8>,
    pub(super) read_buf: Box<[u8]>,
    /// Connections to drive again without waiting for readiness.
    pub(super) retry: Vec<usize>,
    /// Connections with something to write.
    pub(super) dirty: Vec<usize>,
    /// Connections to close.
    pub(super) doomed: Vec<usize>,
    pub(super) ws_config: WebSocketConfig,
    /// This worker's counters (it is their only writer): requests,
    /// responses and errors by protocol...
    pub(super) requests: RequestBlock,
    /// ...and what happened to its connections.
    pub(super) connections: ConnectionBlock,
    pub(super) per_ip: PerIpConns,
}

impl WorkerState {
    pub(super) fn tick(&mut self) {
        self.now = Instant::now();
        self.now_secs = self.clock.now_secs();
    }

    /// Counts an answer that is a failure: an error of `kind`, or, for
    /// `None`, a request shed because a request worker was behind.
    pub(super) fn count_failure(&self, protocol: Protocol, kind: Option<ErrorKind>) {
        match kind {
            Some(kind) => self.requests.error(protocol, kind),
            None => self.requests.dropped(protocol, 1),
        }
    }

    pub(super) fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    pub(super) fn schedule(&mut self, token: usize, conn: &mut Conn) {
        if !conn.in_retry {
            conn.in_retry = true;
            self.retry.push(token);
        }
    }

    pub(super) fn mark_dirty(&mut self, token: usize, conn: &mut Conn) {
        if !conn.in_dirty {
            conn.in_dirty = true;
            self.dirty.push(token);
        }
    }

    pub(super) fn doom(&mut self, token: usize, conn: &mut Conn) {
        if !conn.dead {
            conn.dead = true;
            self.doomed.push(token);
        }
    }

    pub(super) fn conn_ref(&self, token: usize, generation: u32) -> ConnRef {
        ConnRef {
            front_end: self.index,
            token: token as u32,
            generation,
        }
    }

    /// Appends a job to the batch of the request worker that owns its
    /// torrent.
    pub(super) fn enqueue(&mut self, job: Job) {
        if let Some(job) = self.outbox.push(job) {
            self.refused.push(job);
        }
    }

    pub(super) fn enqueue_to(&mut self, worker: usize, job: Job) {
        if let Some(job) = self.outbox.push_to(worker, job) {
            self.refused.push(job);
        }
    }

    pub(super) fn has_work(&self) -> bool {
        !self.retry.is_empty()
            || !self.doomed.is_empty()
            || !self.refused.is_empty()
            || self.outbox.has_pending()
    }

    pub(super) fn take_files(&mut self) -> Vec<bhttp::ScrapeFile> {
        let mut files = self.files_pool.pop().unwrap_or_default();
        files.clear();
        files
    }

    pub(super) fn recycle_files(&mut self, mut files: Vec<bhttp::ScrapeFile>) {
        // A full scrape's vector is not worth keeping around.
        if files.capacity() <= 1024 {
            files.clear();
            self.files_pool.push(files);
        }
    }

    pub(super) fn recycle_kept(&mut self, mut kept: Kept) {
        if kept.messages.capacity() <= 64 * 1024 {
            kept.reset();
            self.kept_pool.push(kept);
        }
    }

    /// Writes `reason` as a WebTorrent failure into `scratch`.
    pub(super) fn ws_failure(&mut self, reason: &str, action: Action, info_hash: Option<InfoHash>) {
        self.scratch.clear();
        jws::write_failure(&mut self.scratch, reason, Some(action), info_hash);
    }

    pub(super) fn bencode_failure(&mut self, reason: &str) {
        self.scratch.clear();
        bhttp::write_failure(&mut self.scratch, reason.as_bytes());
    }
}

pub(super) fn listener_token(i: usize) -> Token {
    Token(LISTENER_TOKEN_TOP - i)
}

/// The connection under `token` if it is still the one with `generation`.
pub(super) fn live(conns: &mut Slab<Conn>, token: usize, generation: u32) -> Option<&mut Conn> {
    conns
        .get_mut(token)
        .filter(|c| c.generation == generation && !c.dead)
}

/// How often deadlines are checked: once a second, or more often when a
/// timeout is shorter (as in tests).
pub(super) fn sweep_interval(s: &Settings) -> Duration {
    let shortest = s
        .request_timeout
        .min(s.keep_alive_timeout)
        .min(s.first_byte_timeout)
        .min(s.ws_idle_timeout);
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}
