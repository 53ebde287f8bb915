//! The in-memory swarm store and the request workers that own it.
//!
//! Torrents are split across request workers by info hash; each worker
//! owns its [`SwarmShard`] outright, so the hot path takes no lock. Front
//! ends (UDP socket and AF_XDP workers, HTTP/WebSocket socket workers)
//! send [`Batch`]es of jobs over bounded channels and get the same batch
//! back with results filled in. [`Outbox`] fills and sends those batches
//! and [`PendingScrapes`] keeps the scrapes whose parts are out, the same
//! way for every front end. [`SwarmTopology`] builds the channels between
//! the two sides, the same for the server and every test harness.
#![forbid(unsafe_code)]

pub mod clock;
mod core;
mod counts;
pub mod kernel_hot;
pub mod kernel_scrape;
mod limits;
mod outbox;
mod peer_map;
mod pending_scrapes;
mod persist;
mod shard;
pub mod snapshot;
mod topology;
pub mod torrent_table;
mod webtorrent;
mod worker;

pub use core::{InlineSwarm, RequestWorkerCore, SwarmInbox, SNAPSHOT_SLICE};
pub use counts::{CleanReport, RefusalCounts, RefusalTally, SwarmCounts};
pub use kernel_scrape::{KernelScrapes, ScrapeSink};
pub use limits::{Refusal, SwarmLimits};
pub use outbox::{Outbox, MAX_BATCH_JOBS};
pub use peer_map::{PeerEntry, PeerKey, PeerMap, Upserted};
pub use pending_scrapes::{PendingScrapes, ScrapeTicket};
pub use persist::{RestoreClock, RestoreJob, RestoreReport, SnapshotCursor};
pub use shard::{Announce, HeldPeers, PeerAddress, SwarmShard, Torrent};
pub use topology::{
    return_capacity, FrontEndEnds, RequestWorkerEnds, SwarmLink, SwarmSettings, SwarmTopology,
};
pub use torrent_table::TorrentTable;
pub use webtorrent::{ConnRef, WsAnnounce, WsAnnounceOutcome, WsSwarms, WsTarget, WsTorrent};
pub use worker::{run_request_worker, Batch, Job, ReplyTo, RequestWorkerConfig, ReturnPath, Work};

/// Whether a torrent may be announced or scraped: the access list, seen
/// from the front ends (which live in crates that cannot see its config).
pub trait TorrentFilter: Send + Sync {
    fn allows(&self, info_hash: &InfoHash) -> bool;
}

use tracker_proto::InfoHash;

/// Which request worker owns a torrent. Info hashes are SHA-1 outputs, so
/// their leading bytes are already uniform.
pub fn worker_for(info_hash: &InfoHash, workers: usize) -> usize {
    let lead = u32::from_le_bytes([
        info_hash.0[0],
        info_hash.0[1],
        info_hash.0[2],
        info_hash.0[3],
    ]);
    lead as usize % workers
}
