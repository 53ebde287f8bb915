//! A front end's jobs on their way to the request workers: one batch being
//! filled per request worker, sent with `try_send` so that a worker that
//! is behind sheds load instead of queueing it.

use crossbeam_channel::TrySendError;

use crate::core::SwarmInbox;
use crate::worker::{Batch, Job};
use crate::worker_for;

/// Jobs per batch before it is set aside for sending without waiting for
/// the front end's round to end: bounds a request worker's latency and a
/// batch's memory.
pub const MAX_BATCH_JOBS: usize = 512;

/// The batches one front-end thread fills for the request workers, and
/// the pool they are recycled through so that, in steady state, neither
/// side allocates.
///
/// [`push`](Self::push) files a job with the request worker that owns its
/// torrent; a batch that reaches [`MAX_BATCH_JOBS`] is set aside.
/// [`send_full`](Self::send_full) sends those set aside,
/// [`send_all`](Self::send_all) every batch with a job in it. A batch whose
/// request worker's inbox is full (or gone) is not queued: its jobs are
/// handed back, one by one, for the front end to answer "busy" or drop.
pub struct Outbox {
    origin: usize,
    to_swarm: Vec<SwarmInbox>,
    /// The batch being filled for each request worker.
    filling: Vec<Option<Batch>>,
    /// Batches that reached [`MAX_BATCH_JOBS`], by request worker, in the
    /// order they filled.
    full: Vec<(usize, Batch)>,
    pool: Vec<Batch>,
}

impl Outbox {
    /// `origin` is the index of the front end's return path
    /// (`Batch::origin`); `to_swarm` every request worker's inbox, in
    /// request-worker order.
    pub fn new<I: Into<SwarmInbox>>(origin: usize, to_swarm: Vec<I>) -> Self {
        let to_swarm: Vec<SwarmInbox> = to_swarm.into_iter().map(Into::into).collect();
        Self {
            origin,
            filling: (0..to_swarm.len()).map(|_| None).collect(),
            to_swarm,
            full: Vec::new(),
            pool: Vec::new(),
        }
    }

    /// How many request workers there are.
    pub fn workers(&self) -> usize {
        self.to_swarm.len()
    }

    /// Files a job with the request worker that owns its torrent. Gives it
    /// back if it names no torrent (a full scrape: use
    /// [`push_to`](Self::push_to) for each worker) or there is no request
    /// worker at all.
    #[must_use = "a job given back was not filed"]
    pub fn push(&mut self, job: Job) -> Option<Job> {
        let workers = self.to_swarm.len();
        match job.info_hash() {
            Some(info_hash) if workers > 0 => {
                let worker = worker_for(info_hash, workers);
                self.push_to(worker, job)
            }
            _ => Some(job),
        }
    }

    /// Files a job with request worker `worker`; gives it back if there is
    /// no such worker.
    #[must_use = "a job given back was not filed"]
    pub fn push_to(&mut self, worker: usize, job: Job) -> Option<Job> {
        let Some(slot) = self.filling.get_mut(worker) else {
            return Some(job);
        };
        let (origin, pool) = (self.origin, &mut self.pool);
        let batch =
            slot.get_or_insert_with(|| pool.pop().unwrap_or_else(|| Batch::with_origin(origin)));
        batch.jobs.push(job);
        if batch.jobs.len() >= MAX_BATCH_JOBS {
            if let Some(full) = slot.take() {
                self.full.push((worker, full));
            }
        }
        None
    }

    /// Whether any job waits to be sent.
    pub fn has_pending(&self) -> bool {
        !self.full.is_empty() || self.filling.iter().any(Option::is_some)
    }

    /// Sends the batches that reached [`MAX_BATCH_JOBS`]. Each job of a
    /// batch its request worker could not take goes to `refused`; returns
    /// how many did.
    pub fn send_full(&mut self, mut refused: impl FnMut(Job)) -> u64 {
        let mut count = 0;
        // Taken out: `send` needs `self` while the vector is walked.
        let mut full = std::mem::take(&mut self.full);
        for (worker, batch) in full.drain(..) {
            count += self.send(worker, batch, &mut refused);
        }
        // Keep the allocation for the next round.
        if self.full.is_empty() {
            self.full = full;
        }
        count
    }

    /// Sends every batch with a job in it: those set aside first, then
    /// the ones being filled, so each request worker gets its jobs in the
    /// order they were pushed. Refusals as for
    /// [`send_full`](Self::send_full).
    pub fn send_all(&mut self, mut refused: impl FnMut(Job)) -> u64 {
        let mut count = self.send_full(&mut refused);
        for worker in 0..self.filling.len() {
            if let Some(batch) = self.filling[worker].take() {
                count += self.send(worker, batch, &mut refused);
            }
        }
        count
    }

    /// Takes back a batch the request workers have answered, once its
    /// answers are written.
    pub fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        self.pool.push(batch);
    }

    fn send(&mut self, worker: usize, batch: Batch, refused: &mut impl FnMut(Job)) -> u64 {
        if batch.is_empty() {
            self.recycle(batch);
            return 0;
        }
        let result = match self.to_swarm.get(worker) {
            Some(sender) => sender.try_send(batch),
            None => Err(TrySendError::Disconnected(batch)),
        };
        match result {
            Ok(()) => 0,
            // The request worker is behind: shed this load now rather than
            // queue it without bound.
            Err(TrySendError::Full(mut batch)) | Err(TrySendError::Disconnected(mut batch)) => {
                let count = batch.jobs.len() as u64;
                for job in batch.jobs.drain(..) {
                    refused(job);
                }
                self.recycle(batch);
                count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::SwarmCounts;
    use crate::worker::{ReplyTo, Work};
    use crossbeam_channel::bounded;
    use tracker_proto::InfoHash;

    /// A scrape job for a torrent `worker_for` puts on `worker` of 2.
    fn job(worker: u8, tag: u32) -> Job {
        let mut hash = [0u8; 20];
        hash[0] = worker;
        Job {
            reply: ReplyTo {
                addr: "127.0.0.1:1".parse().unwrap(),
                route: 0,
                tag,
            },
            work: Work::Scrape {
                info_hash: InfoHash(hash),
                slot: 0,
                index: 0,
                counts: SwarmCounts::default(),
            },
        }
    }

    fn tags(batch: &Batch) -> Vec<u32> {
        batch.jobs.iter().map(|j| j.reply.tag).collect()
    }

    #[test]
    fn jobs_go_to_the_worker_that_owns_their_torrent() {
        let (tx0, rx0) = bounded(4);
        let (tx1, rx1) = bounded(4);
        let mut outbox = Outbox::new(7, vec![tx0, tx1]);
        assert!(outbox.push(job(0, 1)).is_none());
        assert!(outbox.push(job(1, 2)).is_none());
        assert!(outbox.push(job(0, 3)).is_none());
        assert!(outbox.has_pending());
        assert!(rx0.is_empty(), "nothing is sent before a send");
        assert_eq!(outbox.send_all(|_| panic!("refused")), 0);
        assert!(!outbox.has_pending());
        let b0 = rx0.try_recv().unwrap();
        let b1 = rx1.try_recv().unwrap();
        assert_eq!((b0.origin, tags(&b0)), (7, vec![1, 3]));
        assert_eq!((b1.origin, tags(&b1)), (7, vec![2]));
    }

    #[test]
    fn a_full_batch_is_set_aside_and_sent_before_the_rest() {
        let (tx, rx) = bounded(4);
        let mut outbox = Outbox::new(0, vec![tx]);
        for tag in 0..MAX_BATCH_JOBS as u32 + 1 {
            assert!(outbox.push(job(0, tag)).is_none());
        }
        assert_eq!(outbox.send_full(|_| panic!("refused")), 0);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.jobs.len(), MAX_BATCH_JOBS);
        assert!(rx.is_empty(), "the partial batch waits for send_all");
        assert!(outbox.has_pending());
        outbox.send_all(|_| panic!("refused"));
        assert_eq!(tags(&rx.try_recv().unwrap()), vec![MAX_BATCH_JOBS as u32]);
    }

    #[test]
    fn a_full_inbox_hands_every_job_back() {
        let (tx, rx) = bounded(1);
        tx.send(Batch::default()).unwrap();
        let mut outbox = Outbox::new(0, vec![tx]);
        assert!(outbox.push(job(0, 1)).is_none());
        assert!(outbox.push(job(0, 2)).is_none());
        let mut refused = Vec::new();
        assert_eq!(outbox.send_all(|j| refused.push(j.reply.tag)), 2);
        assert_eq!(refused, vec![1, 2]);
        assert!(!outbox.has_pending());
        assert_eq!(rx.len(), 1, "nothing queued beyond the inbox");
    }

    #[test]
    fn a_gone_worker_hands_jobs_back() {
        let (tx, rx) = bounded(1);
        drop(rx);
        let mut outbox = Outbox::new(0, vec![tx]);
        assert!(outbox.push(job(0, 5)).is_none());
        let mut refused = Vec::new();
        assert_eq!(outbox.send_all(|j| refused.push(j.reply.tag)), 1);
        assert_eq!(refused, vec![5]);
    }

    #[test]
    fn without_request_workers_jobs_come_back_at_once() {
        let mut outbox = Outbox::new(0, Vec::<SwarmInbox>::new());
        assert_eq!(outbox.workers(), 0);
        assert_eq!(outbox.push(job(0, 9)).map(|j| j.reply.tag), Some(9));
        assert_eq!(outbox.push_to(0, job(0, 8)).map(|j| j.reply.tag), Some(8));
        assert!(!outbox.has_pending());
    }

    #[test]
    fn batches_are_reused() {
        let (tx, rx) = bounded(4);
        let mut outbox = Outbox::new(0, vec![tx]);
        assert!(outbox.push(job(0, 1)).is_none());
        outbox.send_all(|_| {});
        let mut back = rx.try_recv().unwrap();
        back.jobs.reserve(100);
        let capacity = back.jobs.capacity();
        outbox.recycle(back);
        assert!(outbox.push(job(0, 2)).is_none());
        outbox.send_all(|_| {});
        let again = rx.try_recv().unwrap();
        assert_eq!(again.jobs.capacity(), capacity, "the pooled batch");
        assert_eq!(tags(&again), vec![2], "cleared before reuse");
    }
}
