//! A request worker's work apart from its thread: the shard, the batches
//! it applies, cleaning, the gauges and the snapshot slices. The request
//! worker thread ([`run_request_worker`](crate::run_request_worker)) runs
//! it in a loop of its own; [`InlineSwarm`] runs it inside a front end's
//! thread, so a host with one core per side crosses no channel and wakes
//! no thread for the front end's own batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::clock::Clock;
use crate::kernel_scrape::KernelScrapes;
use crate::limits::Refusal;
use crate::persist::{RestoreClock, SnapshotCursor};
use crate::shard::SwarmShard;
use crate::snapshot::SnapshotRequest;
use crate::worker::{Batch, RequestWorkerConfig, ReturnPath};
use tracker_metrics::SwarmGauges;
use tracker_proto::InfoHash;

/// How long a request worker writes snapshot records between two batches:
/// the longest a request waits on a snapshot.
pub const SNAPSHOT_SLICE: Duration = Duration::from_millis(1);

/// One request worker's state and duties, whatever thread runs them.
pub struct RequestWorkerCore {
    config: RequestWorkerConfig,
    shard: SwarmShard,
    clock: Clock,
    refused_before: u64,
    next_clean: Instant,
    snapshot: Option<SnapshotCursor>,
    /// With requests waiting, no snapshot slice before this: requests get
    /// as long as the last slice took.
    requests_until: Instant,
    kernel_scrapes: Option<KernelScrapes>,
}

impl RequestWorkerCore {
    /// The line a request worker writes when it stops, wherever it ran.
    pub fn log_stopped(&self) {
        log::debug!("request worker {} stopped", self.index());
    }

    /// A shard with the worker's limits, filled from the snapshot to
    /// restore, if any, before it serves.
    pub fn new(mut config: RequestWorkerConfig, clock: Clock) -> Self {
        let mut shard = SwarmShard::with_limits(fastrand::Rng::new(), config.limits);
        // Taken, so the file's bytes are freed once every worker is done.
        if let Some(job) = config.restore.take() {
            restore(&mut shard, &job, &config, clock);
            publish(&shard, &config.gauges);
        }
        let now = Instant::now();
        let kernel_scrapes = config
            .kernel_scrapes
            .take()
            .map(|(sink, interval, filter)| KernelScrapes::new(sink, interval, filter, &shard));
        Self {
            kernel_scrapes,
            next_clean: now + config.cleaning_interval,
            config,
            shard,
            clock,
            refused_before: 0,
            snapshot: None,
            requests_until: now,
        }
    }

    pub fn index(&self) -> usize {
        self.config.index
    }

    /// Applies every job of `batch`, filling in its results, and publishes
    /// what the shard then holds.
    pub fn apply(&mut self, batch: &mut Batch) {
        if let Some(hot) = &mut self.config.kernel_hot {
            note_announces(hot, batch);
        }
        batch.process(&mut self.shard, self.clock.now_secs());
        publish(&self.shard, &self.config.gauges);
        if let Some(kernel) = &mut self.kernel_scrapes {
            kernel.note(batch);
        }
    }

    /// Where snapshot requests arrive, when persistence is on.
    pub fn snapshot_requests(&self) -> Option<&Receiver<SnapshotRequest>> {
        self.config.snapshots.as_ref()
    }

    /// Whether a snapshot is under way: its slices want the thread as soon
    /// as no request waits.
    pub fn snapshotting(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Starts the snapshot asked for by `request`.
    pub fn start_snapshot(&mut self, request: SnapshotRequest) {
        self.snapshot = Some(SnapshotCursor::new(request, self.config.index));
    }

    /// Starts a snapshot if one was asked for and none is under way.
    pub fn check_snapshot_request(&mut self) {
        if self.snapshot.is_none() {
            if let Some(Ok(request)) = self.config.snapshots.as_ref().map(Receiver::try_recv) {
                self.start_snapshot(request);
            }
        }
    }

    /// How long the thread may sleep before a duty falls due: none while
    /// a snapshot is under way, else until the next cleaning.
    pub fn idle_for(&self, now: Instant) -> Duration {
        if self.snapshot.is_some() {
            return Duration::ZERO;
        }
        let due = match &self.kernel_scrapes {
            Some(kernel) => self.next_clean.min(kernel.next_round()),
            None => self.next_clean,
        };
        let due = due.saturating_duration_since(now);
        match &self.config.kernel_hot {
            Some(hot) => due.min(hot.idle_for(now)),
            None => due,
        }
    }

    /// The duties between batches: a snapshot slice, and cleaning when
    /// due. `requests_waiting` says requests are queued right now: then a
    /// slice comes only once requests have had as long as the last slice
    /// took, so a snapshot takes at most half the thread under full load
    /// (and requests queue for a slice at most), all of it when idle.
    pub fn between_batches(&mut self, requests_waiting: bool) {
        if let Some(cursor) = &mut self.snapshot {
            if !requests_waiting || Instant::now() >= self.requests_until {
                let slice = Instant::now();
                if cursor.step(&self.shard, SNAPSHOT_SLICE) {
                    if let Some(cursor) = self.snapshot.take() {
                        cursor.finish();
                    }
                }
                let now = Instant::now();
                self.requests_until = now + (now - slice);
            }
        }
        if Instant::now() >= self.next_clean {
            self.clean();
            if let Some(kernel) = &mut self.kernel_scrapes {
                kernel.cleaned();
            }
        }
        if let Some(kernel) = &mut self.kernel_scrapes {
            kernel.between_batches(&self.shard, Instant::now());
            let entries = kernel.published() as u64;
            self.config.gauges.kernel_scrape_entries.set(entries);
        }
        if let Some(hot) = &mut self.config.kernel_hot {
            let now = Instant::now();
            if hot.due(now) {
                hot.refresh(&self.shard, now);
            }
        }
    }

    fn clean(&mut self) {
        let config = &self.config;
        let cutoff = self.clock.now_secs().saturating_sub(config.max_peer_age);
        let report = self.shard.clean(cutoff);
        publish(&self.shard, &config.gauges);
        let refusals = self.shard.refusals();
        log::debug!(
            "request worker {}: cleaned {} peers, {} torrents; {} torrents, {} peers left; \
             refused so far (UDP+HTTP/WS): {refusals}",
            config.index,
            report.peers_removed,
            report.torrents_removed,
            report.torrents_left,
            report.peers_left
        );
        // An operator should hear of a full tracker without debug logs.
        if refusals.total() > self.refused_before {
            log::warn!(
                "request worker {}: announces refused at a [swarm] limit, so far \
                 (UDP+HTTP/WS): {refusals}",
                config.index
            );
            self.refused_before = refusals.total();
        }
        self.next_clean = Instant::now() + config.cleaning_interval;
    }
}

/// Sends an answered batch back to the front end that sent it and wakes
/// it. The return channel holds every batch its front end can have in
/// flight, so the send does not block for long; an error means that
/// front end has exited.
pub(crate) fn send_back(returns: &[ReturnPath], batch: Batch) {
    let Some(back) = returns.get(batch.origin) else {
        log::error!("batch from unknown origin {}", batch.origin);
        return;
    };
    if back.sender.send(batch).is_ok() {
        if let Err(e) = back.waker.wake() {
            log::warn!("cannot wake front end: {e}");
        }
    }
}

/// The one request worker, run by a front end's thread (the UDP socket
/// worker's, when each side has one core): it applies the batches in its
/// inbox in place, answering the host's own through the host and sending
/// every other front end's back as a request worker thread would.
pub struct InlineSwarm {
    core: RequestWorkerCore,
    inbox: Receiver<Batch>,
    returns: Vec<ReturnPath>,
}

impl InlineSwarm {
    pub(crate) fn new(
        core: RequestWorkerCore,
        inbox: Receiver<Batch>,
        returns: Vec<ReturnPath>,
    ) -> Self {
        Self {
            core,
            inbox,
            returns,
        }
    }

    /// Applies every batch waiting in the inbox; those of origin `host`
    /// go to `answer`, the rest back to their front ends. Returns how many
    /// batches it applied.
    pub fn run_inbox(&mut self, host: usize, mut answer: impl FnMut(Batch)) -> usize {
        let mut applied = 0;
        while let Ok(mut batch) = self.inbox.try_recv() {
            self.core.apply(&mut batch);
            applied += 1;
            if batch.origin == host {
                answer(batch);
            } else {
                send_back(&self.returns, batch);
            }
        }
        applied
    }

    /// The request worker's duties between rounds: a snapshot asked for,
    /// its next slice, cleaning. `busy`: the host has requests waiting.
    pub fn between_rounds(&mut self, busy: bool) {
        self.core.check_snapshot_request();
        self.core.between_batches(busy);
    }

    /// How long the host may sleep before a request-worker duty is due.
    pub fn idle_for(&self, now: Instant) -> Duration {
        self.core.idle_for(now)
    }
}

impl Drop for InlineSwarm {
    /// The host thread is done: say so as a request worker thread would.
    fn drop(&mut self) {
        self.core.log_stopped();
    }
}

/// Counts the batch's announces for the hot-torrent cache. Stopped ones
/// too: the peer leaving is traffic the cache would otherwise have to
/// answer.
fn note_announces(hot: &mut crate::kernel_hot::KernelHot, batch: &Batch) {
    for job in &batch.jobs {
        match &job.work {
            crate::worker::Work::AnnounceV4 { announce, .. } => hot.note(&announce.info_hash),
            crate::worker::Work::AnnounceV6 { announce, .. } => hot.note(&announce.info_hash),
            _ => {}
        }
    }
}

/// Copies the shard's tallies into the worker's metrics block: a dozen
/// relaxed stores per batch, nothing any other thread writes.
fn publish(shard: &SwarmShard, gauges: &SwarmGauges) {
    use tracker_metrics::{Family, Limit, Role, Store};
    let bt = Store::Bittorrent.index();
    let wt = Store::Webtorrent.index();
    gauges.torrents[bt].set(shard.torrent_count() as u64);
    gauges.torrents[wt].set(shard.ws_torrent_count() as u64);
    let held = shard.held();
    for (family, i) in [(Family::Ipv4, 0), (Family::Ipv6, 1)] {
        let peers = &gauges.peers[family.index()];
        peers[Role::Seeder.index()].set(held.seeders[i] as u64);
        peers[Role::Leecher.index()].set((held.peers[i] - held.seeders[i]) as u64);
    }
    let ws = shard.ws();
    gauges.ws_peers[Role::Seeder.index()].set(ws.seeder_count() as u64);
    gauges.ws_peers[Role::Leecher.index()].set((ws.peer_count() - ws.seeder_count()) as u64);
    gauges.completed.set(shard.completed());
    let refusals = shard.refusals();
    for (limit, refusal) in Limit::ALL.iter().zip(Refusal::ALL) {
        gauges.refused[bt][limit.index()].set(refusals.udp_http[refusal.index()]);
        gauges.refused[wt][limit.index()].set(refusals.ws[refusal.index()]);
    }
}

/// Takes this worker's torrents from the snapshot and says what it did.
fn restore(
    shard: &mut SwarmShard,
    job: &crate::persist::RestoreJob,
    config: &RequestWorkerConfig,
    clock: Clock,
) {
    let (index, workers) = (config.index, config.workers);
    let clock = RestoreClock {
        unix_now: job.unix_now,
        clock_now: clock.now_secs(),
        max_peer_age: config.max_peer_age,
    };
    let mine = |info_hash: &InfoHash| crate::worker_for(info_hash, workers) == index;
    let allowed = |info_hash: &InfoHash| job.filter.as_ref().is_none_or(|f| f.allows(info_hash));
    let report = shard.restore(&job.image, mine, allowed, clock);
    // The receiver waits for every worker before the tracker says ready;
    // if it has gone, start-up failed and this worker will stop anyway.
    let _ = job.done.send((index, report));
}

/// A request worker's inbox, as a front end holds it: the channel and,
/// when the request worker runs inside another front end's thread, that
/// thread's waker, since nothing else would wake it for this batch.
#[derive(Clone, Debug)]
pub struct SwarmInbox {
    sender: Sender<Batch>,
    waker: Option<Arc<mio::Waker>>,
}

impl SwarmInbox {
    /// Sends without waiting; on success wakes the thread the request
    /// worker runs in, if it needs waking.
    // A refused batch comes back whole, as from the channel, so the front
    // end can recycle it: boxing it would allocate per send.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, batch: Batch) -> Result<(), TrySendError<Batch>> {
        self.sender.try_send(batch)?;
        if let Some(waker) = &self.waker {
            if let Err(e) = waker.wake() {
                log::warn!("cannot wake the request worker's thread: {e}");
            }
        }
        Ok(())
    }

    /// Sends, waiting for room (tests fill inboxes with it).
    #[allow(clippy::result_large_err)]
    pub fn send(&self, batch: Batch) -> Result<(), crossbeam_channel::SendError<Batch>> {
        self.sender.send(batch)
    }

    pub fn capacity(&self) -> Option<usize> {
        self.sender.capacity()
    }

    pub(crate) fn wake_with(&mut self, waker: Arc<mio::Waker>) {
        self.waker = Some(waker);
    }
}

impl From<Sender<Batch>> for SwarmInbox {
    fn from(sender: Sender<Batch>) -> Self {
        Self {
            sender,
            waker: None,
        }
    }
}
