//! The request worker thread: applies batches of jobs to its shard and
//! hands each batch back to the front end that sent it.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::{AnnounceEvent, InfoHash};

use crate::clock::Clock;
use crate::core::{send_back, RequestWorkerCore};
use crate::counts::SwarmCounts;
use crate::limits::{Refusal, SwarmLimits};
use crate::persist::RestoreJob;
use crate::shard::{Announce, SwarmShard};
use crate::snapshot::SnapshotRequest;
use crate::webtorrent::{ConnRef, WsAnnounce, WsTarget};
use tracker_metrics::SwarmBlock;

/// Where the answer to a job goes; opaque to the request worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub addr: std::net::SocketAddr,
    /// Which way the answer leaves, in the front end's own terms: the
    /// socket it came in on (UDP), a reply-path sequence (AF_XDP), the
    /// connection or pending-scrape slot (HTTP/WS).
    pub route: u32,
    /// Front-end specific: the BEP 15 transaction id, a request sequence…
    pub tag: u32,
}

#[derive(Clone, Debug)]
pub enum Work {
    AnnounceV4 {
        announce: Announce<PeerV4>,
        /// Filled by the request worker: indices into `Batch::peers_v4`.
        peers: Range<u32>,
        counts: SwarmCounts,
        /// Filled in when a limit refused the announce: the client gets
        /// this error instead of peers.
        refused: Option<Refusal>,
    },
    AnnounceV6 {
        announce: Announce<PeerV6>,
        peers: Range<u32>,
        counts: SwarmCounts,
        refused: Option<Refusal>,
    },
    Scrape {
        info_hash: InfoHash,
        /// Front-end specific: which pending scrape and which of its hashes.
        slot: u32,
        index: u16,
        counts: SwarmCounts,
    },
    /// Every torrent this worker holds, up to `limit`, into
    /// `Batch::scrape_files`; the front end merges the workers' parts.
    FullScrape {
        /// The WebTorrent swarms instead of the UDP/HTTP ones.
        webtorrent: bool,
        limit: u32,
        /// Filled in: indices into `Batch::scrape_files`, and how many
        /// torrents did not fit under `limit`.
        files: Range<u32>,
        left_out: u32,
    },
    WsAnnounce {
        announce: WsAnnounce,
        /// Filled in: indices into `Batch::ws_targets`, one per offer to send.
        targets: Range<u32>,
        counts: SwarmCounts,
        answer_target: Option<ConnRef>,
        /// Filled in: the peer id belongs to another connection, nothing
        /// was done.
        peer_id_taken: bool,
        refused: Option<Refusal>,
    },
    WsScrape {
        info_hash: InfoHash,
        slot: u32,
        index: u16,
        counts: SwarmCounts,
    },
    /// A WebSocket connection closed (or stopped announcing a torrent).
    WsLeave {
        info_hash: InfoHash,
        peer_id: tracker_proto::PeerId,
        conn: ConnRef,
    },
}

impl Work {
    /// An announce from `ip`:`port`, of the family of `ip`, with nothing
    /// filled in yet: what every front end sends.
    #[inline]
    pub fn announce(
        ip: IpAddr,
        port: u16,
        info_hash: InfoHash,
        event: AnnounceEvent,
        seeder: bool,
        numwant: usize,
    ) -> Self {
        match ip {
            IpAddr::V4(ip) => Work::AnnounceV4 {
                announce: Announce {
                    info_hash,
                    peer: PeerV4::new(ip, port),
                    event,
                    seeder,
                    numwant,
                },
                peers: 0..0,
                counts: SwarmCounts::default(),
                refused: None,
            },
            IpAddr::V6(ip) => Work::AnnounceV6 {
                announce: Announce {
                    info_hash,
                    peer: PeerV6::new(ip, port),
                    event,
                    seeder,
                    numwant,
                },
                peers: 0..0,
                counts: SwarmCounts::default(),
                refused: None,
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct Job {
    pub reply: ReplyTo,
    pub work: Work,
}

impl Job {
    /// The torrent the job is about; `None` for a full scrape, which goes
    /// to every request worker.
    pub fn info_hash(&self) -> Option<&InfoHash> {
        match &self.work {
            Work::AnnounceV4 { announce, .. } => Some(&announce.info_hash),
            Work::AnnounceV6 { announce, .. } => Some(&announce.info_hash),
            Work::Scrape { info_hash, .. } => Some(info_hash),
            Work::FullScrape { .. } => None,
            Work::WsAnnounce { announce, .. } => Some(&announce.info_hash),
            Work::WsScrape { info_hash, .. } => Some(info_hash),
            Work::WsLeave { info_hash, .. } => Some(info_hash),
        }
    }
}

/// A round trip's worth of jobs. The vectors are reused batch after batch,
/// so in steady state neither side allocates.
#[derive(Debug, Default)]
pub struct Batch {
    /// Index of the return channel this batch goes back on.
    pub origin: usize,
    pub jobs: Vec<Job>,
    pub peers_v4: Vec<PeerV4>,
    pub peers_v6: Vec<PeerV6>,
    pub ws_targets: Vec<WsTarget>,
    pub scrape_files: Vec<(InfoHash, SwarmCounts)>,
}

impl Batch {
    pub fn with_origin(origin: usize) -> Self {
        Self {
            origin,
            ..Self::default()
        }
    }

    pub fn clear(&mut self) {
        self.jobs.clear();
        self.peers_v4.clear();
        self.peers_v6.clear();
        self.ws_targets.clear();
        self.scrape_files.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Applies every job to `shard`, filling in results.
    pub fn process(&mut self, shard: &mut SwarmShard, now: u32) {
        let Batch {
            jobs,
            peers_v4,
            peers_v6,
            ws_targets,
            scrape_files,
            ..
        } = self;
        for job in jobs.iter_mut() {
            match &mut job.work {
                Work::AnnounceV4 {
                    announce,
                    peers,
                    counts,
                    refused,
                } => {
                    let start = peers_v4.len() as u32;
                    (*counts, *refused) = split(shard.announce(announce, now, peers_v4));
                    *peers = start..peers_v4.len() as u32;
                }
                Work::AnnounceV6 {
                    announce,
                    peers,
                    counts,
                    refused,
                } => {
                    let start = peers_v6.len() as u32;
                    (*counts, *refused) = split(shard.announce(announce, now, peers_v6));
                    *peers = start..peers_v6.len() as u32;
                }
                Work::Scrape {
                    info_hash, counts, ..
                } => *counts = shard.scrape(info_hash),
                Work::FullScrape {
                    webtorrent,
                    limit,
                    files,
                    left_out,
                } => {
                    let start = scrape_files.len() as u32;
                    let limit = *limit as usize;
                    let missed = if *webtorrent {
                        shard.ws_full_scrape(limit, scrape_files)
                    } else {
                        shard.full_scrape(limit, scrape_files)
                    };
                    *left_out = missed.min(u32::MAX as usize) as u32;
                    *files = start..scrape_files.len() as u32;
                }
                Work::WsAnnounce {
                    announce,
                    targets,
                    counts,
                    answer_target,
                    peer_id_taken,
                    refused,
                } => {
                    let start = ws_targets.len() as u32;
                    let outcome = shard.ws_announce(announce, now, ws_targets);
                    *counts = outcome.counts;
                    *answer_target = outcome.answer_target;
                    *peer_id_taken = outcome.peer_id_taken;
                    *refused = outcome.refused;
                    *targets = start..ws_targets.len() as u32;
                }
                Work::WsScrape {
                    info_hash, counts, ..
                } => *counts = shard.ws_scrape(info_hash),
                Work::WsLeave {
                    info_hash,
                    peer_id,
                    conn,
                } => shard.ws_leave(info_hash, peer_id, *conn),
            }
        }
    }
}

fn split(result: Result<SwarmCounts, Refusal>) -> (SwarmCounts, Option<Refusal>) {
    match result {
        Ok(counts) => (counts, None),
        Err(refusal) => (SwarmCounts::default(), Some(refusal)),
    }
}

/// A way back to a front end: its channel and how to wake it.
#[derive(Clone)]
pub struct ReturnPath {
    pub sender: Sender<Batch>,
    pub waker: Arc<mio::Waker>,
}

/// Where to publish scrape counts for the XDP program, how often, and the
/// access list that keeps refused torrents out.
pub type KernelScrapesConfig = (
    Box<dyn crate::ScrapeSink>,
    Duration,
    Option<Arc<dyn crate::TorrentFilter>>,
);

pub struct RequestWorkerConfig {
    pub index: usize,
    pub cleaning_interval: Duration,
    pub max_peer_age: u32,
    /// This worker's share of the limits ([`SwarmLimits::per_shard`]).
    pub limits: SwarmLimits,
    /// Where the worker publishes what its shard holds.
    pub gauges: SwarmBlock,
    /// Requests for this worker's part of a snapshot, when persistence is
    /// on.
    pub snapshots: Option<Receiver<SnapshotRequest>>,
    /// The snapshot to take this worker's torrents from before serving.
    pub restore: Option<RestoreJob>,
    /// Request workers in all: which torrents are this worker's.
    pub workers: usize,
    /// Where to publish scrape counts for the XDP program, and how often.
    pub kernel_scrapes: Option<KernelScrapesConfig>,
    /// The XDP program's hot-torrent cache this worker keeps, when
    /// announces are answered in the kernel.
    pub kernel_hot: Option<crate::kernel_hot::KernelHot>,
}

/// Runs until `shutdown` is set or every sender of `inbox` is gone.
pub fn run_request_worker(
    config: RequestWorkerConfig,
    inbox: Receiver<Batch>,
    returns: Vec<ReturnPath>,
    clock: Clock,
    shutdown: Arc<AtomicBool>,
) {
    let mut core = RequestWorkerCore::new(config, clock);
    // A handle of its own, so the select can start a snapshot on `core`.
    let snapshot_requests = core.snapshot_requests().cloned();
    // Checked between batches so a busy worker still notices shutdown.
    let tick = Duration::from_millis(200);
    loop {
        if shutdown.load(Ordering::Relaxed) {
            break;
        }
        core.check_snapshot_request();
        // A snapshot under way goes on as soon as no batch is waiting.
        let wait = core.idle_for(Instant::now()).min(tick);
        let received = match &snapshot_requests {
            // Idle with persistence on: a snapshot request wakes the worker
            // too. Only the idle path pays for the select.
            Some(requests) if !core.snapshotting() && inbox.is_empty() && !wait.is_zero() => {
                crossbeam_channel::select! {
                    recv(inbox) -> batch => batch.map_err(|_| RecvTimeoutError::Disconnected),
                    recv(requests) -> request => {
                        if let Ok(request) = request {
                            core.start_snapshot(request);
                        }
                        Err(RecvTimeoutError::Timeout)
                    }
                    default(wait) => Err(RecvTimeoutError::Timeout),
                }
            }
            _ => inbox.recv_timeout(wait),
        };
        let mut received_batch = false;
        match received {
            Ok(mut batch) => {
                received_batch = true;
                core.apply(&mut batch);
                send_back(&returns, batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        core.between_batches(received_batch && !inbox.is_empty());
    }
    core.log_stopped();
}
