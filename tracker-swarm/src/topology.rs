//! The channels between front ends and request workers, built in one place
//! so the server and every test harness wire them the same way.
//!
//! Each request worker has one bounded inbox that every front end sends
//! to; each front end has one bounded return channel that every request
//! worker sends back on, and a `mio::Waker` that tells it so. A front end's
//! index in the topology is its origin: the return path its batches name.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver};

use crate::clock::Clock;
use crate::core::{InlineSwarm, RequestWorkerCore, SwarmInbox};
use crate::limits::SwarmLimits;
use crate::persist::RestoreJob;
use crate::snapshot::SnapshotRequest;
use crate::worker::{run_request_worker, Batch, RequestWorkerConfig, ReturnPath};
use tracker_metrics::SwarmBlock;

/// A front end's way to the request workers and back: what the UDP, AF_XDP
/// and HTTP/WebSocket workers all hold.
pub struct SwarmLink {
    /// Index of its return channel among the request workers' return
    /// paths (`Batch::origin`).
    pub origin: usize,
    /// Every request worker's inbox, in request-worker order.
    pub to_swarm: Vec<SwarmInbox>,
    /// Where the request workers send its batches back.
    pub returns: Receiver<Batch>,
}

/// One front end's ends: the poll it runs on, with the waker the request
/// workers wake it by already registered, and its link to the swarm.
pub struct FrontEndEnds {
    pub poll: mio::Poll,
    /// Registered in `poll` under the token the front end was built with;
    /// mio allows one waker per poll, so this one also serves any other
    /// channel into the front end (the WebTorrent relay, shutdown).
    pub waker: Arc<mio::Waker>,
    pub swarm: SwarmLink,
}

/// What every request worker runs with.
#[derive(Clone, Copy, Debug)]
pub struct SwarmSettings {
    pub cleaning_interval: Duration,
    pub max_peer_age: u32,
    /// Totals for the whole swarm store; each request worker enforces its
    /// share ([`SwarmLimits::per_shard`]).
    pub limits: SwarmLimits,
}

/// One request worker's ends, ready to run on a thread of its own.
pub struct RequestWorkerEnds {
    index: usize,
    workers: usize,
    inbox: Receiver<Batch>,
    returns: Vec<ReturnPath>,
    gauges: SwarmBlock,
    snapshots: Option<Receiver<SnapshotRequest>>,
    restore: Option<RestoreJob>,
    kernel_scrapes: Option<crate::worker::KernelScrapesConfig>,
    kernel_hot: Option<crate::kernel_hot::KernelHot>,
}

impl RequestWorkerEnds {
    /// Has the worker publish its torrents' scrape counts to `sink` every
    /// `interval` ([`crate::KernelScrapes`]), leaving out those `filter`
    /// refuses.
    pub fn publish_scrapes(
        mut self,
        sink: Box<dyn crate::ScrapeSink>,
        interval: Duration,
        filter: Option<Arc<dyn crate::TorrentFilter>>,
    ) -> Self {
        self.kernel_scrapes = Some((sink, interval, filter));
        self
    }

    /// Keeps the XDP program's hot-torrent cache for this worker's shard.
    pub fn kernel_hot(mut self, hot: crate::kernel_hot::KernelHot) -> Self {
        self.kernel_hot = Some(hot);
        self
    }

    /// Has the worker answer snapshot requests from `snapshots` and, with
    /// `restore`, take its torrents from a snapshot before serving.
    pub fn persist(
        mut self,
        snapshots: Receiver<SnapshotRequest>,
        restore: Option<RestoreJob>,
    ) -> Self {
        self.snapshots = Some(snapshots);
        self.restore = restore;
        self
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// Publishes what the worker's shard holds to `gauges` (a block of
    /// [`tracker_metrics::Metrics`]); by default to a block nobody reads.
    pub fn report_to(mut self, gauges: SwarmBlock) -> Self {
        self.gauges = gauges;
        self
    }

    /// Runs the request worker on this thread until `shutdown` is set or
    /// every front end has gone.
    pub fn run(self, settings: SwarmSettings, clock: Clock, shutdown: Arc<AtomicBool>) {
        let (config, inbox, returns) = self.into_parts(settings);
        run_request_worker(config, inbox, returns, clock, shutdown)
    }

    /// The request worker as a front end's thread runs it (see
    /// [`SwarmTopology::inline`]); restores its torrents now, on the
    /// calling thread, if it has a snapshot to restore.
    pub fn into_inline(self, settings: SwarmSettings, clock: Clock) -> InlineSwarm {
        let (config, inbox, returns) = self.into_parts(settings);
        InlineSwarm::new(RequestWorkerCore::new(config, clock), inbox, returns)
    }

    fn into_parts(
        self,
        settings: SwarmSettings,
    ) -> (RequestWorkerConfig, Receiver<Batch>, Vec<ReturnPath>) {
        let config = RequestWorkerConfig {
            index: self.index,
            cleaning_interval: settings.cleaning_interval,
            max_peer_age: settings.max_peer_age,
            limits: settings.limits.per_shard(self.workers),
            gauges: self.gauges,
            snapshots: self.snapshots,
            restore: self.restore,
            workers: self.workers,
            kernel_scrapes: self.kernel_scrapes,
            kernel_hot: self.kernel_hot,
        };
        (config, self.inbox, self.returns)
    }

    /// [`run`](Self::run) on a new thread named `swarm-N`.
    pub fn spawn(
        self,
        settings: SwarmSettings,
        clock: Clock,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("swarm-{}", self.index))
            .spawn(move || self.run(settings, clock, shutdown))
    }
}

/// Every channel between the front ends and the request workers.
pub struct SwarmTopology {
    /// In request-worker order: worker `i` owns the torrents
    /// [`worker_for`](crate::worker_for) gives `i`.
    pub request_workers: Vec<RequestWorkerEnds>,
    /// In the order of the tokens given to [`new`](Self::new); a front
    /// end's place here is its origin.
    pub front_ends: Vec<FrontEndEnds>,
}

impl SwarmTopology {
    /// Wires `workers` request workers, each with an inbox of
    /// `channel_capacity` batches, to one front end per token in
    /// `front_ends` (the token its poll's waker is registered under).
    pub fn new(
        workers: usize,
        channel_capacity: usize,
        front_ends: impl IntoIterator<Item = mio::Token>,
    ) -> io::Result<Self> {
        let inboxes: Vec<_> = (0..workers).map(|_| bounded(channel_capacity)).collect();
        let capacity = return_capacity(workers, channel_capacity);
        let mut returns = Vec::new();
        let mut ends = Vec::new();
        for (origin, token) in front_ends.into_iter().enumerate() {
            let poll = mio::Poll::new()?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), token)?);
            let (sender, receiver) = bounded(capacity);
            returns.push(ReturnPath {
                sender,
                waker: waker.clone(),
            });
            let swarm = SwarmLink {
                origin,
                to_swarm: inboxes
                    .iter()
                    .map(|(sender, _)| SwarmInbox::from(sender.clone()))
                    .collect(),
                returns: receiver,
            };
            ends.push(FrontEndEnds { poll, waker, swarm });
        }
        // The front ends now hold the only senders into each inbox, so a
        // request worker sees its inbox disconnect once they have all gone.
        let request_workers = inboxes
            .into_iter()
            .enumerate()
            .map(|(index, (_, inbox))| RequestWorkerEnds {
                index,
                workers,
                inbox,
                returns: returns.clone(),
                gauges: SwarmBlock::default(),
                snapshots: None,
                restore: None,
                kernel_scrapes: None,
                kernel_hot: None,
            })
            .collect();
        Ok(Self {
            request_workers,
            front_ends: ends,
        })
    }

    /// Has the one request worker run in the thread of front end `host`:
    /// every other front end then wakes that thread when it sends a batch,
    /// since no thread of the request worker's own waits on its inbox.
    /// Run the request worker with
    /// [`RequestWorkerEnds::into_inline`] on the host's thread.
    pub fn inline(&mut self, host: usize) -> io::Result<()> {
        if self.request_workers.len() != 1 || host >= self.front_ends.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a request worker runs inline only when it is the only one (there are {}) \
                     and its host is a front end (front end {host} of {})",
                    self.request_workers.len(),
                    self.front_ends.len()
                ),
            ));
        }
        let waker = self.front_ends[host].waker.clone();
        for (origin, front) in self.front_ends.iter_mut().enumerate() {
            if origin != host {
                front.swarm.to_swarm[0].wake_with(waker.clone());
            }
        }
        Ok(())
    }

    /// Every front end's waker, in origin order: what shutdown wakes.
    pub fn wakers(&self) -> Vec<Arc<mio::Waker>> {
        self.front_ends.iter().map(|f| f.waker.clone()).collect()
    }
}

/// A front end can have at most one inbox's worth plus one batch in
/// progress at each request worker; a return channel that holds all of
/// them means a request worker never waits on a slow front end.
pub fn return_capacity(workers: usize, channel_capacity: usize) -> usize {
    (channel_capacity + 1) * workers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::{Job, ReplyTo, Work};
    use crate::SwarmCounts;
    use tracker_proto::InfoHash;

    fn scrape_job(hash: u8) -> Job {
        Job {
            reply: ReplyTo {
                addr: "127.0.0.1:1".parse().unwrap(),
                route: 0,
                tag: u32::from(hash),
            },
            work: Work::Scrape {
                info_hash: InfoHash([hash; 20]),
                slot: 0,
                index: 0,
                counts: SwarmCounts::default(),
            },
        }
    }

    #[test]
    fn each_front_end_reaches_every_request_worker_and_gets_its_own_batches_back() {
        let tokens = [mio::Token(1), mio::Token(2), mio::Token(3)];
        let topology = SwarmTopology::new(2, 4, tokens).unwrap();
        assert_eq!(topology.request_workers.len(), 2);
        assert_eq!(topology.front_ends.len(), 3);
        let shutdown = Arc::new(AtomicBool::new(false));
        let settings = SwarmSettings {
            cleaning_interval: Duration::from_secs(60),
            max_peer_age: 60,
            limits: SwarmLimits::UNLIMITED,
        };
        let SwarmTopology {
            request_workers,
            mut front_ends,
        } = topology;
        let threads: Vec<_> = request_workers
            .into_iter()
            .map(|w| w.spawn(settings, Clock::start(), shutdown.clone()).unwrap())
            .collect();
        for (origin, front) in front_ends.iter_mut().enumerate() {
            assert_eq!(front.swarm.origin, origin);
            assert_eq!(front.swarm.to_swarm.len(), 2);
            for (worker, to) in front.swarm.to_swarm.iter().enumerate() {
                let mut batch = Batch::with_origin(origin);
                batch.jobs.push(scrape_job(worker as u8));
                to.send(batch).unwrap();
            }
            let mut events = mio::Events::with_capacity(4);
            let mut tags = Vec::new();
            while tags.len() < 2 {
                match front.swarm.returns.try_recv() {
                    Ok(batch) => {
                        assert_eq!(batch.origin, origin);
                        tags.push(batch.jobs[0].reply.tag);
                    }
                    // The request worker woke this front end's poll.
                    Err(_) => {
                        front
                            .poll
                            .poll(&mut events, Some(Duration::from_secs(10)))
                            .unwrap();
                        assert!(events.iter().any(|e| e.token() == tokens[origin]));
                    }
                }
            }
            tags.sort();
            assert_eq!(tags, [0, 1]);
        }
        // The request workers stop once every front end has gone.
        drop(front_ends);
        for thread in threads {
            thread.join().unwrap();
        }
    }

    fn announce_job(hash: u8, port: u16) -> Job {
        Job {
            reply: ReplyTo {
                addr: "127.0.0.1:1".parse().unwrap(),
                route: 0,
                tag: u32::from(port),
            },
            work: Work::announce(
                "10.0.0.1".parse().unwrap(),
                port,
                InfoHash([hash; 20]),
                tracker_proto::AnnounceEvent::Started,
                false,
                0,
            ),
        }
    }

    #[test]
    fn a_request_worker_writes_its_snapshot_part_and_restores_from_a_file() {
        use crate::snapshot::{SnapshotFile, SnapshotImage, SnapshotRequest};
        let settings = SwarmSettings {
            cleaning_interval: Duration::from_secs(60),
            max_peer_age: 600,
            limits: SwarmLimits::UNLIMITED,
        };
        let clock = Clock::with_past(600);
        let shutdown = Arc::new(AtomicBool::new(false));
        let run = |restore: Option<crate::RestoreJob>| {
            let mut topology = SwarmTopology::new(1, 4, [mio::Token(0)]).unwrap();
            let (requests, snapshots) = crossbeam_channel::bounded(1);
            let worker = topology.request_workers.pop().unwrap();
            let thread = worker
                .persist(snapshots, restore)
                .spawn(settings, clock, shutdown.clone())
                .unwrap();
            (topology.front_ends.pop().unwrap(), requests, thread)
        };
        let (front, requests, thread) = run(None);
        let mut batch = Batch::with_origin(0);
        for port in 1..=3 {
            batch.jobs.push(announce_job(port as u8, port));
        }
        front.swarm.to_swarm[0].send(batch).unwrap();
        let answered = front.swarm.returns.recv_timeout(Duration::from_secs(10));
        assert_eq!(answered.unwrap().jobs.len(), 3);
        let (reply, parts) = crossbeam_channel::bounded(1);
        let unix_now = crate::clock::unix_tick();
        requests
            .send(SnapshotRequest {
                unix_now,
                clock_now: clock.now_secs(),
                reply,
                spare: crate::snapshot::prefaulted(1),
            })
            .unwrap();
        let part = parts.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((part.torrents, part.peers), (3, 3));
        assert!(part.slices >= 1);
        drop(front);
        thread.join().unwrap();

        let file = SnapshotFile::new([1; 16], u64::from(unix_now), vec![part]);
        let mut bytes = Vec::new();
        file.write_to(&mut bytes).unwrap();
        let (done, reports) = crossbeam_channel::unbounded();
        let job = crate::RestoreJob {
            image: Arc::new(SnapshotImage::parse(bytes).unwrap()),
            filter: None,
            unix_now,
            done,
        };
        let (front, _requests, thread) = run(Some(job));
        let (index, report) = reports.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((index, report.torrents, report.peers), (0, 3, 3));
        let mut batch = Batch::with_origin(0);
        batch.jobs.push(scrape_job(2));
        front.swarm.to_swarm[0].send(batch).unwrap();
        let back = front
            .swarm
            .returns
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        match &back.jobs[0].work {
            Work::Scrape { counts, .. } => assert_eq!(counts.leechers, 1),
            other => panic!("{other:?}"),
        }
        drop(front);
        thread.join().unwrap();
    }

    #[test]
    fn inline_the_host_applies_every_batch_and_other_front_ends_wake_it() {
        let tokens = [mio::Token(1), mio::Token(2)];
        let mut topology = SwarmTopology::new(1, 4, tokens).unwrap();
        topology.inline(0).unwrap();
        let settings = SwarmSettings {
            cleaning_interval: Duration::from_secs(60),
            max_peer_age: 60,
            limits: SwarmLimits::UNLIMITED,
        };
        let SwarmTopology {
            mut request_workers,
            mut front_ends,
        } = topology;
        let mut inline = request_workers
            .pop()
            .unwrap()
            .into_inline(settings, Clock::start());
        let mut events = mio::Events::with_capacity(4);
        let (host, other) = front_ends.split_at_mut(1);
        let (host, other) = (&mut host[0], &mut other[0]);

        // The host's own batch: answered in place, nobody woken.
        let mut own = Batch::with_origin(0);
        own.jobs.push(scrape_job(1));
        host.swarm.to_swarm[0].try_send(own).unwrap();
        host.poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "the host's own send wakes nobody");
        let mut answered = Vec::new();
        assert_eq!(
            inline.run_inbox(0, |b| answered.push(b.jobs[0].reply.tag)),
            1
        );
        assert_eq!(answered, [1]);
        assert!(host.swarm.returns.is_empty());

        // Another front end's batch wakes the host and goes back to it.
        let mut theirs = Batch::with_origin(1);
        theirs.jobs.push(scrape_job(2));
        other.swarm.to_swarm[0].try_send(theirs).unwrap();
        host.poll
            .poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == tokens[0]));
        assert_eq!(inline.run_inbox(0, |_| panic!("not the host's")), 1);
        let back = other.swarm.returns.try_recv().unwrap();
        assert_eq!((back.origin, back.jobs[0].reply.tag), (1, 2));
        other
            .poll
            .poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == tokens[1]));
    }

    #[test]
    fn inline_needs_a_single_request_worker() {
        let mut topology = SwarmTopology::new(2, 4, [mio::Token(0)]).unwrap();
        let err = topology.inline(0).unwrap_err();
        assert!(err.to_string().contains("only one (there are 2)"), "{err}");
    }

    #[test]
    fn a_return_channel_holds_every_batch_a_front_end_can_have_out() {
        let topology = SwarmTopology::new(3, 5, [mio::Token(0)]).unwrap();
        let front = &topology.front_ends[0];
        assert_eq!(front.swarm.returns.capacity(), Some(18));
        for to in &front.swarm.to_swarm {
            assert_eq!(to.capacity(), Some(5));
        }
    }
}
