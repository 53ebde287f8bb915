//! Publishing a request worker's scrape counts to the XDP program, which
//! answers a scrape in the kernel when it holds every hash asked for.
//!
//! The worker remembers what it published (`published`, laid out like its
//! torrents) and, after each batch, which torrents an announce left with
//! counts other than those: a bounded list, no allocation per request.
//! Every `interval` it writes those torrents' current counts, or deletes
//! the ones gone, in batches through a [`ScrapeSink`]. A list that
//! overflowed, and every cleaning (which expires peers anywhere), turns
//! into a sweep that compares the whole shard with what was published, a
//! few sub-tables per round. Rounds are bounded ([`ROUND_ENTRIES`]), so a
//! flood of changes delays requests by one bounded round at a time.
//!
//! A torrent the kernel map evicted (it is LRU) stays in `published`: its
//! scrapes go to userland until its counts change, when it is written
//! again. A torrent nobody announced is never published, so its scrapes
//! always reach userland; nor is one the access list refuses (userland
//! scrapes it as empty), which after a reload the next sweep deletes.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracker_proto::xdp::ScrapeEntry;
use tracker_proto::InfoHash;

use crate::counts::SwarmCounts;
use crate::shard::SwarmShard;
use crate::torrent_table::{TorrentTable, SUB_TABLES};
use crate::worker::{Batch, Work};
use crate::TorrentFilter;

/// Most changed torrents remembered between two rounds; past it the next
/// round sweeps the shard instead.
pub const DIRTY_MAX: usize = 16 * 1024;
/// Most map writes (updates and deletes) one round makes before it lets
/// requests in again.
pub const ROUND_ENTRIES: usize = 4096;

/// Where the counts go: the kernel's `SCRAPE` map in the tracker, a plain
/// map in tests. `keys[i]` gets `values[i]`.
pub trait ScrapeSink: Send {
    fn update(&mut self, keys: &[[u8; 20]], values: &[ScrapeEntry]) -> io::Result<()>;
    fn delete(&mut self, keys: &[[u8; 20]]) -> io::Result<()>;
}

/// One request worker's publisher; see the module docs.
pub struct KernelScrapes {
    sink: Box<dyn ScrapeSink>,
    /// The access list: a refused torrent is scraped as empty by
    /// userland, so the kernel must not hold its counts.
    filter: Option<Arc<dyn TorrentFilter>>,
    interval: Duration,
    next_round: Instant,
    dirty: Vec<InfoHash>,
    /// The dirty list lost a torrent, or a cleaning ran: sweep next round.
    sweep_wanted: bool,
    /// The next sub-table of a sweep under way.
    sweep_at: Option<usize>,
    published: TorrentTable<ScrapeEntry>,
    keys: Vec<[u8; 20]>,
    values: Vec<ScrapeEntry>,
    gone: Vec<[u8; 20]>,
    /// When the last failure was logged, so a broken map logs once a minute.
    last_error_log: Option<Instant>,
}

impl KernelScrapes {
    /// A publisher for `shard`'s torrents, writing every `interval`. Its
    /// first round sweeps, so torrents restored from a snapshot are
    /// published too.
    pub fn new(
        sink: Box<dyn ScrapeSink>,
        interval: Duration,
        filter: Option<Arc<dyn TorrentFilter>>,
        shard: &SwarmShard,
    ) -> Self {
        Self {
            sink,
            filter,
            interval,
            next_round: Instant::now(),
            dirty: Vec::with_capacity(DIRTY_MAX),
            sweep_wanted: true,
            sweep_at: None,
            published: TorrentTable::laid_out_like(&shard.torrents),
            keys: Vec::with_capacity(ROUND_ENTRIES),
            values: Vec::with_capacity(ROUND_ENTRIES),
            gone: Vec::with_capacity(ROUND_ENTRIES),
            last_error_log: None,
        }
    }

    /// Torrents whose counts the kernel was last given.
    pub fn published(&self) -> usize {
        self.published.len()
    }

    /// Notes the torrents whose counts `batch`'s announces changed from
    /// what was published: one lookup per announce, no allocation.
    pub fn note(&mut self, batch: &Batch) {
        for job in &batch.jobs {
            let (info_hash, counts) = match &job.work {
                Work::AnnounceV4 {
                    announce,
                    counts,
                    refused: None,
                    ..
                } => (&announce.info_hash, counts),
                Work::AnnounceV6 {
                    announce,
                    counts,
                    refused: None,
                    ..
                } => (&announce.info_hash, counts),
                _ => continue,
            };
            if self.published.get(info_hash) == Some(&entry(counts)) {
                continue;
            }
            if self.dirty.len() < DIRTY_MAX {
                self.dirty.push(*info_hash);
            } else {
                self.sweep_wanted = true;
            }
        }
    }

    /// A cleaning expired peers of any torrent: compare them all.
    pub fn cleaned(&mut self) {
        self.sweep_wanted = true;
    }

    /// When the next round is due: later than now only when nothing is
    /// left over from the last one.
    pub fn next_round(&self) -> Instant {
        self.next_round
    }

    /// A round when one is due: at most [`ROUND_ENTRIES`] map writes.
    pub fn between_batches(&mut self, shard: &SwarmShard, now: Instant) {
        if now < self.next_round {
            return;
        }
        if self.sweep_wanted && self.sweep_at.is_none() {
            // The sweep sees everything the list held.
            self.sweep_wanted = false;
            self.dirty.clear();
            self.sweep_at = Some(0);
        }
        self.keys.clear();
        self.values.clear();
        self.gone.clear();
        while self.pending() < ROUND_ENTRIES {
            let Some(info_hash) = self.dirty.pop() else {
                break;
            };
            self.compare(shard, &info_hash);
        }
        while let Some(sub) = self.sweep_at {
            if self.pending() >= ROUND_ENTRIES {
                break;
            }
            self.sweep(shard, sub);
            self.sweep_at = (sub + 1 < SUB_TABLES).then_some(sub + 1);
        }
        self.write();
        let more = !self.dirty.is_empty() || self.sweep_at.is_some() || self.sweep_wanted;
        self.next_round = if more { now } else { now + self.interval };
    }

    fn pending(&self) -> usize {
        self.keys.len() + self.gone.len()
    }

    /// Queues `info_hash`'s current counts, or its deletion, when they
    /// differ from what was published.
    fn compare(&mut self, shard: &SwarmShard, info_hash: &InfoHash) {
        match shard.torrents.get(info_hash) {
            Some(torrent) if self.allows(info_hash) => {
                self.queue_counts(info_hash, &torrent.counts())
            }
            _ => {
                if self.published.remove(info_hash).is_some() {
                    self.gone.push(info_hash.0);
                }
            }
        }
    }

    fn allows(&self, info_hash: &InfoHash) -> bool {
        self.filter.as_ref().is_none_or(|f| f.allows(info_hash))
    }

    fn queue_counts(&mut self, info_hash: &InfoHash, counts: &SwarmCounts) {
        let wanted = entry(counts);
        if self.published.get(info_hash) != Some(&wanted) {
            *self.published.get_or_insert_default(*info_hash) = wanted;
            self.keys.push(info_hash.0);
            self.values.push(wanted);
        }
    }

    /// Compares one sub-table of the shard with the same sub-table of
    /// `published` (laid out alike, so each torrent is in the same one).
    fn sweep(&mut self, shard: &SwarmShard, sub: usize) {
        let (updated, deleted) = (self.keys.len(), self.gone.len());
        for (info_hash, torrent) in shard.torrents.sub_table(sub) {
            if !self.allows(info_hash) {
                continue;
            }
            let wanted = entry(&torrent.counts());
            if self.published.get(info_hash) != Some(&wanted) {
                self.keys.push(info_hash.0);
                self.values.push(wanted);
            }
        }
        for (info_hash, _) in self.published.sub_table(sub) {
            if !shard.torrents.contains_key(info_hash) || !self.allows(info_hash) {
                self.gone.push(info_hash.0);
            }
        }
        for (key, value) in self.keys[updated..].iter().zip(&self.values[updated..]) {
            *self.published.get_or_insert_default(InfoHash(*key)) = *value;
        }
        for key in &self.gone[deleted..] {
            self.published.remove(&InfoHash(*key));
        }
    }

    /// Writes what the round queued. A failed update leaves the kernel
    /// with counts we can no longer vouch for, so those entries are
    /// deleted and forgotten: their scrapes go to userland until the
    /// torrent changes again.
    fn write(&mut self) {
        if !self.keys.is_empty() {
            if let Err(e) = self.sink.update(&self.keys, &self.values) {
                self.log_failure("writing scrape counts to the XDP map", &e);
                for key in &self.keys {
                    self.published.remove(&InfoHash(*key));
                }
                let _ = self.sink.delete(&self.keys);
            }
        }
        if !self.gone.is_empty() {
            if let Err(e) = self.sink.delete(&self.gone) {
                self.log_failure("deleting scrape counts from the XDP map", &e);
            }
        }
    }

    fn log_failure(&mut self, what: &str, e: &io::Error) {
        let now = Instant::now();
        let quiet = self
            .last_error_log
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(60));
        if !quiet {
            log::warn!("{what}: {e}; those scrapes go to userland");
            self.last_error_log = Some(now);
        }
    }
}

fn entry(counts: &SwarmCounts) -> ScrapeEntry {
    ScrapeEntry::new(counts.seeders, counts.completed, counts.leechers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::{Arc, Mutex};

    use tracker_proto::AnnounceEvent;

    use crate::worker::{Job, ReplyTo};

    /// The kernel map as the tests see it, and every write made to it.
    #[derive(Clone, Default)]
    struct Map {
        entries: Arc<Mutex<HashMap<[u8; 20], ScrapeEntry>>>,
        writes: Arc<Mutex<usize>>,
        fail_updates: Arc<Mutex<bool>>,
    }

    impl ScrapeSink for Map {
        fn update(&mut self, keys: &[[u8; 20]], values: &[ScrapeEntry]) -> io::Result<()> {
            if *self.fail_updates.lock().unwrap() {
                return Err(io::Error::other("refused"));
            }
            *self.writes.lock().unwrap() += keys.len();
            let mut entries = self.entries.lock().unwrap();
            for (k, v) in keys.iter().zip(values) {
                entries.insert(*k, *v);
            }
            Ok(())
        }

        fn delete(&mut self, keys: &[[u8; 20]]) -> io::Result<()> {
            let mut entries = self.entries.lock().unwrap();
            for k in keys {
                entries.remove(k);
            }
            Ok(())
        }
    }

    impl Map {
        fn get(&self, hash: u8) -> Option<ScrapeEntry> {
            self.entries.lock().unwrap().get(&[hash; 20]).copied()
        }
        fn len(&self) -> usize {
            self.entries.lock().unwrap().len()
        }
        fn writes(&self) -> usize {
            *self.writes.lock().unwrap()
        }
    }

    fn announce(batch: &mut Batch, hash: u8, peer: u8, event: AnnounceEvent, seeder: bool) {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, peer));
        batch.jobs.push(Job {
            reply: ReplyTo {
                addr: SocketAddr::new(ip, 6881),
                route: 0,
                tag: 0,
            },
            work: Work::announce(ip, 6881, InfoHash([hash; 20]), event, seeder, 0),
        });
    }

    struct Rig {
        shard: SwarmShard,
        kernel: KernelScrapes,
        map: Map,
        now: u32,
    }

    impl Rig {
        fn new() -> Self {
            let shard = SwarmShard::default();
            let map = Map::default();
            let kernel = KernelScrapes::new(
                Box::new(map.clone()),
                Duration::from_secs(3600),
                None,
                &shard,
            );
            Self {
                shard,
                kernel,
                map,
                now: 100,
            }
        }

        fn apply(&mut self, fill: impl FnOnce(&mut Batch)) {
            let mut batch = Batch::default();
            fill(&mut batch);
            batch.process(&mut self.shard, self.now);
            self.kernel.note(&batch);
        }

        /// Runs rounds until nothing is left over, as the worker would.
        fn publish(&mut self) {
            let mut now = Instant::now();
            // Past any interval: a round is due.
            now += Duration::from_secs(7200);
            self.kernel.next_round = now;
            for _ in 0..10_000 {
                self.kernel.between_batches(&self.shard, now);
                if self.kernel.next_round() > now {
                    return;
                }
            }
            panic!("rounds never finished");
        }
    }

    #[test]
    fn publishes_counts_of_announced_torrents_only_when_they_change() {
        let mut rig = Rig::new();
        rig.publish();
        assert_eq!(rig.map.len(), 0, "an empty shard publishes nothing");
        rig.apply(|b| {
            announce(b, 1, 1, AnnounceEvent::Started, true);
            announce(b, 1, 2, AnnounceEvent::Started, false);
            announce(b, 2, 3, AnnounceEvent::Started, false);
        });
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(1, 0, 1)));
        assert_eq!(rig.map.get(2), Some(ScrapeEntry::new(0, 0, 1)));
        assert_eq!(rig.map.get(3), None, "never announced: never published");
        let writes = rig.map.writes();
        assert_eq!(writes, 2, "one write per torrent, not per announce");

        // A re-announce that changes nothing writes nothing.
        rig.apply(|b| announce(b, 1, 1, AnnounceEvent::None, true));
        rig.publish();
        assert_eq!(rig.map.writes(), writes);

        rig.apply(|b| announce(b, 1, 2, AnnounceEvent::Completed, true));
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(2, 1, 0)));
        assert_eq!(rig.kernel.published(), 2);
    }

    #[test]
    fn a_cleaning_sweeps_expired_peers_and_deletes_gone_torrents() {
        let mut rig = Rig::new();
        rig.apply(|b| {
            announce(b, 1, 1, AnnounceEvent::Started, true);
            announce(b, 2, 2, AnnounceEvent::Started, false);
        });
        rig.publish();
        rig.now = 200;
        rig.apply(|b| announce(b, 1, 3, AnnounceEvent::Started, false));
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(1, 0, 1)));
        // Peers seen before 150 expire: torrent 2 goes, torrent 1 loses
        // its seeder.
        rig.shard.clean(150);
        rig.kernel.cleaned();
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(0, 0, 1)));
        assert_eq!(rig.map.get(2), None, "a gone torrent is deleted");
        assert_eq!(rig.kernel.published(), 1);
    }

    #[test]
    fn an_overflowing_dirty_list_turns_into_a_sweep_that_misses_nothing() {
        let mut rig = Rig::new();
        let torrents = DIRTY_MAX + 500;
        rig.apply(|b| {
            for i in 0..torrents {
                let ip = IpAddr::V4(Ipv4Addr::from(i as u32 + 1));
                let mut hash = [0u8; 20];
                hash[..4].copy_from_slice(&(i as u32).to_le_bytes());
                b.jobs.push(Job {
                    reply: ReplyTo {
                        addr: SocketAddr::new(ip, 1),
                        route: 0,
                        tag: 0,
                    },
                    work: Work::announce(ip, 1, InfoHash(hash), AnnounceEvent::Started, false, 0),
                });
            }
        });
        assert!(rig.kernel.sweep_wanted, "the list overflowed");
        // The first round is bounded: requests get the thread back.
        let now = Instant::now() + Duration::from_secs(7200);
        rig.kernel.next_round = now;
        rig.kernel.between_batches(&rig.shard, now);
        assert!(rig.map.len() <= ROUND_ENTRIES + torrents / SUB_TABLES * 2);
        assert_eq!(rig.kernel.next_round(), now, "more rounds follow at once");
        rig.publish();
        assert_eq!(rig.map.len(), torrents);
        assert_eq!(rig.map.writes(), torrents, "each torrent written once");
    }

    #[test]
    fn a_failed_write_leaves_nothing_the_kernel_could_answer_wrongly() {
        let mut rig = Rig::new();
        rig.apply(|b| announce(b, 1, 1, AnnounceEvent::Started, true));
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(1, 0, 0)));
        *rig.map.fail_updates.lock().unwrap() = true;
        rig.apply(|b| announce(b, 1, 2, AnnounceEvent::Started, false));
        rig.publish();
        assert_eq!(rig.map.get(1), None, "stale counts were deleted");
        *rig.map.fail_updates.lock().unwrap() = false;
        rig.apply(|b| announce(b, 1, 3, AnnounceEvent::Started, false));
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(1, 0, 2)));
    }

    /// An access list that refuses the torrents whose hash bytes are in it.
    struct Refusing(Mutex<Vec<u8>>);

    impl TorrentFilter for Refusing {
        fn allows(&self, info_hash: &InfoHash) -> bool {
            !self.0.lock().unwrap().contains(&info_hash.0[0])
        }
    }

    #[test]
    fn torrents_the_access_list_refuses_are_not_published_and_go_at_the_next_sweep() {
        let mut rig = Rig::new();
        let filter = Arc::new(Refusing(Mutex::new(vec![2])));
        rig.kernel.filter = Some(filter.clone());
        rig.apply(|b| {
            announce(b, 1, 1, AnnounceEvent::Started, true);
            announce(b, 2, 2, AnnounceEvent::Started, true);
        });
        rig.publish();
        assert_eq!(rig.map.get(1), Some(ScrapeEntry::new(1, 0, 0)));
        assert_eq!(
            rig.map.get(2),
            None,
            "refused: userland scrapes it as empty"
        );
        // A reload refuses torrent 1 too: the next sweep deletes it.
        filter.0.lock().unwrap().push(1);
        rig.kernel.cleaned();
        rig.publish();
        assert_eq!(rig.map.len(), 0);
        assert_eq!(rig.kernel.published(), 0);
    }
}
