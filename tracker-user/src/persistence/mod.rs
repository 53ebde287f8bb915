//! Restarts that clients do not notice (`[persistence]`): the swarm and
//! the connection-id secret restored at start before the tracker says
//! ready, a snapshot written every `interval` seconds and at SIGINT or
//! SIGTERM.
//!
//! The request workers write their own shards, a slice of sub-tables at a
//! time between batches ([`tracker_swarm::SnapshotCursor`]), and hand the
//! records to the thread here, which frames, checksums and writes them
//! ([`store`]). At start each worker picks its torrents out of the file
//! itself, all in parallel.

mod store;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use tracker_proto::connection_id::ConnectionIdSecret;
use tracker_swarm::clock::{unix_tick, Clock};
use tracker_swarm::snapshot::{
    prefaulted, SnapshotFile, SnapshotImage, SnapshotPart, SnapshotRequest,
};
use tracker_swarm::{RequestWorkerEnds, RestoreJob, RestoreReport, TorrentFilter};

use crate::config::Config;
pub use store::SnapshotStore;

/// How long the snapshot thread waits to hand a request worker its
/// request, and for its part: far beyond the second 2 M peers take, and
/// short enough that a hung worker cannot hold a stop past the unit's
/// TimeoutStopSec (30 s).
const PART_TIMEOUT: Duration = Duration::from_secs(25);

/// A secret chosen at start, for a tracker with no snapshot to take one
/// from.
fn fresh_secret() -> anyhow::Result<ConnectionIdSecret> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
    Ok(ConnectionIdSecret::from_bytes(bytes))
}

/// The inverse of [`ConnectionIdSecret::from_bytes`].
fn secret_bytes(secret: &ConnectionIdSecret) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&secret.k0.to_le_bytes());
    bytes[8..].copy_from_slice(&secret.k1.to_le_bytes());
    bytes
}

/// Persistence from start-up until the workers are running.
pub struct Persistence {
    store: Option<SnapshotStore>,
    image: Option<Arc<SnapshotImage>>,
    secret: ConnectionIdSecret,
    clock: Clock,
    interval: Duration,
    /// How long reading and checking the file took.
    read_took: Duration,
    /// When the first request worker was handed its share.
    restoring_since: Option<Instant>,
    /// One per request worker wired so far, in worker order.
    requests: Vec<Sender<SnapshotRequest>>,
    /// Each request worker's report of what it restored, with its index.
    restored_by: Sender<(usize, RestoreReport)>,
    restored: Receiver<(usize, RestoreReport)>,
}

impl Persistence {
    /// Opens the snapshot's directory and reads the snapshot, if
    /// persistence is on. A missing file is a first start; a file that
    /// cannot be used is logged, moved aside and the tracker starts
    /// empty. Only a directory that cannot be opened is an error: every
    /// later snapshot would fail too.
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        let path = &config.persistence.path;
        let store = if path.as_os_str().is_empty() {
            None
        } else {
            let store = SnapshotStore::open(path)
                .with_context(|| format!("persistence.path = {}", path.display()))?;
            Some(store)
        };
        // One report per request worker.
        let (restored_by, restored) = bounded(config.swarm.workers.max(1));
        let reading = Instant::now();
        let image = store.as_ref().and_then(load).map(Arc::new);
        let read_took = reading.elapsed();
        let secret = match &image {
            Some(image) => ConnectionIdSecret::from_bytes(image.secret),
            None => fresh_secret()?,
        };
        let max_peer_age = config.swarm.max_peer_age.min(u64::from(u32::MAX)) as u32;
        // With persistence the clock starts `max_peer_age` seconds in, so
        // restored peers can be dated back to their last announce.
        let clock = if store.is_some() {
            Clock::with_past(max_peer_age)
        } else {
            Clock::start()
        };
        Ok(Self {
            store,
            image,
            secret,
            clock,
            interval: Duration::from_secs(config.persistence.interval),
            read_took,
            restoring_since: None,
            requests: Vec::new(),
            restored_by,
            restored,
        })
    }

    /// The connection-id secret: the snapshot's, so ids clients hold
    /// from before the restart stay valid, or a new one.
    pub fn secret(&self) -> ConnectionIdSecret {
        self.secret
    }

    /// The swarm clock every worker must run on.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Has `worker` answer snapshot requests and restore its share of the
    /// snapshot, with the access list `filter` applied.
    pub fn wire(
        &mut self,
        worker: RequestWorkerEnds,
        filter: Arc<dyn TorrentFilter>,
    ) -> RequestWorkerEnds {
        if self.store.is_none() {
            return worker;
        }
        let (sender, receiver) = bounded(1);
        self.requests.push(sender);
        self.restoring_since.get_or_insert_with(Instant::now);
        let restore = self.image.as_ref().map(|image| RestoreJob {
            image: image.clone(),
            filter: Some(filter),
            unix_now: unix_tick(),
            done: self.restored_by.clone(),
        });
        worker.persist(receiver, restore)
    }

    /// Waits for every request worker to have restored its share, logs
    /// what came back, and starts the snapshot thread.
    pub fn start(self) -> anyhow::Result<Running> {
        let Some(store) = self.store else {
            return Ok(Running::default());
        };
        // Only the workers' senders are left: a worker that dies while
        // restoring ends the wait below with an error.
        drop(self.restored_by);
        let done = self.restored;
        let restored_bytes = self.image.as_ref().map_or(0, |i| i.file_len());
        if let Some(image) = self.image {
            let mut total = RestoreReport::default();
            for _ in 0..self.requests.len() {
                let (_, report) = done
                    .recv()
                    .context("a request worker stopped while restoring the snapshot")?;
                total += report;
            }
            let restoring = self.restoring_since.map_or(Duration::ZERO, |t| t.elapsed());
            log_restore(&store, &image, &total, self.read_took + restoring);
        }
        // Until a snapshot says otherwise, each worker's share of the file
        // it started from.
        let workers = self.requests.len().max(1);
        let writer = Writer {
            expected: vec![restored_bytes / workers; self.requests.len()],
            store,
            clock: self.clock,
            requests: self.requests,
            secret: secret_bytes(&self.secret),
        };
        let interval = self.interval;
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || writer.run(interval, stopped))
            .context("spawning thread snapshot")?;
        Ok(Running {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Reads and checks the snapshot; a file that cannot be used is logged and
/// moved aside, so it never keeps the tracker down.
fn load(store: &SnapshotStore) -> Option<SnapshotImage> {
    let path = store.path().display();
    let bytes = match store.read() {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            log::info!("no snapshot at {path}: starting empty");
            return None;
        }
        Err(e) => {
            log::error!("cannot read the snapshot {path}: {e}; starting empty");
            return None;
        }
    };
    match SnapshotImage::parse(bytes) {
        Ok(image) => Some(image),
        Err(reason) => {
            match store.move_aside() {
                Ok(aside) => log::error!(
                    "snapshot {path} is unusable: {reason}; moved to {}, starting empty",
                    aside.display()
                ),
                Err(e) => log::error!(
                    "snapshot {path} is unusable: {reason}; could not move it aside ({e}), \
                     starting empty"
                ),
            }
            None
        }
    }
}

fn log_restore(store: &SnapshotStore, image: &SnapshotImage, r: &RestoreReport, took: Duration) {
    let age = u64::from(unix_tick()).saturating_sub(image.written_at);
    log::info!(
        "restored {} torrents and {} peers ({} completed counts of torrents without peers) \
         from {}, written {age} s ago, in {} ms; {} peers had expired",
        r.torrents,
        r.peers,
        r.counts_kept,
        store.path().display(),
        took.as_millis(),
        r.expired_peers
    );
    if r.denied_torrents > 0 {
        log::info!(
            "{} torrents of the snapshot are denied by the access list and were not restored",
            r.denied_torrents
        );
    }
    if r.refused_torrents > 0 || r.refused_peers > 0 {
        log::warn!(
            "the snapshot holds more than the [swarm] limits allow: {} torrents and {} peers \
             were not restored",
            r.refused_torrents,
            r.refused_peers
        );
    }
}

/// The snapshot thread, once started; stopping it writes the last
/// snapshot.
#[derive(Default)]
pub struct Running {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Writes a final snapshot (the request workers must still be running)
    /// and waits for it to be on disk.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a snapshot cost, for the log and the benchmark.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotStats {
    pub torrents: usize,
    pub peers: usize,
    pub bytes: u64,
    /// From the request to the file renamed into place.
    pub took: Duration,
    /// The longest any request worker spent on one slice (wall time).
    pub longest_slice: Duration,
    /// The most CPU time one slice took.
    pub longest_slice_cpu: Duration,
}

struct Writer {
    store: SnapshotStore,
    clock: Clock,
    /// Each request worker's record bytes in the last snapshot.
    expected: Vec<usize>,
    requests: Vec<Sender<SnapshotRequest>>,
    secret: [u8; 16],
}

impl Writer {
    fn run(mut self, interval: Duration, stop: Receiver<()>) {
        loop {
            let last = match stop.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => false,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            };
            match self.snapshot() {
                // Every few minutes at most: worth a line, and what an
                // operator checks after a restart.
                Ok(stats) => log::info!(
                    "snapshot of {} torrents and {} peers written to {} ({} bytes) in {} ms; \
                     longest request worker pause {} us ({} us of CPU)",
                    stats.torrents,
                    stats.peers,
                    self.store.path().display(),
                    stats.bytes,
                    stats.took.as_millis(),
                    stats.longest_slice.as_micros(),
                    stats.longest_slice_cpu.as_micros()
                ),
                Err(e) => log::error!(
                    "snapshot to {} failed, the previous one is kept: {e:#}",
                    self.store.path().display()
                ),
            }
            if last {
                return;
            }
        }
    }

    fn snapshot(&mut self) -> anyhow::Result<SnapshotStats> {
        let started = Instant::now();
        let file = take(&self.requests, self.secret, self.clock, &mut self.expected)?;
        self.store.write(&file).context("writing")?;
        Ok(stats(&file, started.elapsed()))
    }
}

fn stats(file: &SnapshotFile, took: Duration) -> SnapshotStats {
    let parts = file.parts();
    SnapshotStats {
        torrents: parts.iter().map(|p| p.torrents).sum(),
        peers: parts.iter().map(|p| p.peers).sum(),
        bytes: file.len(),
        took,
        longest_slice: parts
            .iter()
            .map(|p| p.longest_slice)
            .max()
            .unwrap_or_default(),
        longest_slice_cpu: parts
            .iter()
            .map(|p| p.longest_slice_cpu)
            .max()
            .unwrap_or_default(),
    }
}

/// Asks every request worker for its part and frames them into a file.
/// `clock` must be the one the workers run on: they date their peers
/// against its reading here. `expected` is each worker's record bytes of
/// last time: that much memory is touched here first, so the workers do
/// not pay the page faults between their batches; it is updated.
fn take(
    requests: &[Sender<SnapshotRequest>],
    secret: [u8; 16],
    clock: Clock,
    expected: &mut [usize],
) -> anyhow::Result<SnapshotFile> {
    // One part per request worker.
    let (reply, parts) = bounded::<SnapshotPart>(requests.len().max(1));
    let unix_now = unix_tick();
    let clock_now = clock.now_secs();
    for (sender, &bytes) in requests.iter().zip(expected.iter()) {
        let request = SnapshotRequest {
            unix_now,
            clock_now,
            reply: reply.clone(),
            // An eighth more, for a swarm that grew.
            spare: prefaulted(bytes + bytes / 8),
        };
        // A worker that never took the last request has hung (or is still
        // on it, past PART_TIMEOUT): wait no longer than for a part.
        sender
            .send_timeout(request, PART_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("a request worker took no snapshot request"))?;
    }
    drop(reply);
    let mut collected = Vec::with_capacity(requests.len());
    for _ in requests {
        let part = parts
            .recv_timeout(PART_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("a request worker did not send its part"))?;
        collected.push(part);
    }
    collected.sort_by_key(|p| p.worker);
    for part in &collected {
        if let Some(bytes) = expected.get_mut(part.worker) {
            *bytes = part.records.len();
        }
    }
    Ok(SnapshotFile::new(secret, u64::from(unix_now), collected))
}
