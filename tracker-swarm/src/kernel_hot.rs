//! Which torrents the XDP program answers announces for, and what it
//! answers with: each request worker counts the announces its shard
//! serves, and every refresh interval writes the cached answer (counts and
//! a random pool of compact peers per family) of its hottest torrents
//! through a [`HotSink`], and deletes the entries of torrents that fell out.
//!
//! Counting is a heavy-hitter table of fixed size per shard (about twice
//! the shard's share of hot torrents), so memory is bounded whatever the
//! number of torrents and no announce allocates: a torrent not in the
//! table wears down the least counted of a few sampled entries by one, and
//! takes its place once it is down to one (the Misra-Gries rule, with a
//! sampled minimum). Counts halve at every refresh, so a torrent that
//! cooled off drops out within a few refreshes.
//!
//! The global top `hot_torrents` is approximated per shard: torrents are
//! spread over request workers by info hash, which SHA-1 makes uniform, so
//! each shard holds an even share of the hot ones and publishes its own
//! top `hot_torrents / workers` (rounded up). A shard that happens to hold
//! more than its share of hot torrents leaves its least hot ones to
//! userland; the map never holds more than `hot_torrents` entries.

use std::time::{Duration, Instant};

use hashbrown::HashMap;
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::xdp::{HotCounts, HotV4, HotV6, HOT_POOL_MAX};
use tracker_proto::InfoHash;

use crate::shard::SwarmShard;

/// Where a request worker's cached answers go: the XDP program's
/// `HOT_V4`/`HOT_V6` maps in the tracker, a record in tests. Errors are
/// the sink's to log: an entry that could not be written is answered by
/// userland, which is always right.
pub trait HotSink: Send {
    /// Writes (or replaces) cached answers: `keys[i]` gets `v4[i]` and
    /// `v6[i]`, at most [`WRITE_BATCH`] at a time.
    fn put(&mut self, keys: &[[u8; 20]], v4: &[HotV4], v6: &[HotV6]);
    /// Deletes the cached answers of `keys`.
    fn remove(&mut self, keys: &[[u8; 20]]);
}

/// Cached answers written per sink call: one system call per family in
/// the tracker (`BPF_MAP_UPDATE_BATCH`), and a staging buffer of 64 ×
/// 1568 bytes, about 100 KB, per request worker.
pub const WRITE_BATCH: usize = 64;

/// A cached answer whose torrent's counts did not change since it was
/// written is left as it is for up to this many refreshes, then written
/// again with a fresh random pool: the pool's peers then lag the swarm by
/// at most this many refresh intervals (a peer that left while another
/// joined changes no count), and a busy torrent whose counts hold still
/// costs one write in this many.
pub const POOL_REWRITE_EVERY: u32 = 8;

/// What a published entry was written from: per-family counts, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Written {
    counts: [u32; 4],
    generation: u32,
}

/// One request worker's part of `[xdp]` hot-torrent settings.
#[derive(Clone, Copy, Debug)]
pub struct HotSettings {
    /// Torrents this shard publishes at most.
    pub torrents: usize,
    /// Peers per family in each cached answer, at most [`HOT_POOL_MAX`].
    pub pool_peers: usize,
    pub refresh: Duration,
    /// Announces a torrent needs in a refresh interval (counted with the
    /// decay) to be published: below it the kernel saves userland little,
    /// and answering from a cache up to a refresh old is only worth it for
    /// torrents announced often.
    pub min_announces: u32,
}

/// [`HotSettings::min_announces`] unless set otherwise.
pub const MIN_ANNOUNCES: u32 = 8;

impl HotSettings {
    /// This shard's share of `hot_torrents` across `workers` shards.
    pub fn per_shard(
        hot_torrents: usize,
        workers: usize,
        pool_peers: usize,
        refresh: Duration,
    ) -> Self {
        Self {
            torrents: hot_torrents.div_ceil(workers.max(1)),
            pool_peers: pool_peers.min(HOT_POOL_MAX),
            refresh,
            min_announces: MIN_ANNOUNCES,
        }
    }

    /// Publishes torrents announced at least `per_second` times a second:
    /// a count that halves every refresh settles at twice the announces
    /// of one interval.
    pub fn with_min_rate(mut self, per_second: u32) -> Self {
        let per_refresh = f64::from(per_second) * self.refresh.as_secs_f64();
        self.min_announces = ((2.0 * per_refresh).ceil() as u32).max(1);
        self
    }
}

/// How many entries a replacement samples to find the least counted.
const EVICTION_SAMPLE: usize = 4;

/// Announce counts of at most `capacity` torrents (see the module doc).
#[derive(Debug)]
pub struct HeavyHitters {
    slots: Vec<(InfoHash, u32)>,
    index: HashMap<InfoHash, u32, foldhash::fast::RandomState>,
    capacity: usize,
    rng: fastrand::Rng,
    /// Reused by [`top`](Self::top).
    order: Vec<(u32, InfoHash)>,
}

impl HeavyHitters {
    pub fn new(capacity: usize, rng: fastrand::Rng) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Vec::with_capacity(capacity),
            index: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            capacity,
            rng,
            order: Vec::with_capacity(capacity),
        }
    }

    /// Counts one announce of `info_hash`; allocates nothing.
    pub fn note(&mut self, info_hash: &InfoHash) {
        if let Some(&slot) = self.index.get(info_hash) {
            self.slots[slot as usize].1 += 1;
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(*info_hash, self.slots.len() as u32);
            self.slots.push((*info_hash, 1));
            return;
        }
        let mut victim = self.rng.usize(0..self.slots.len());
        for _ in 1..EVICTION_SAMPLE {
            let other = self.rng.usize(0..self.slots.len());
            if self.slots[other].1 < self.slots[victim].1 {
                victim = other;
            }
        }
        let (old, count) = self.slots[victim];
        if count > 1 {
            // Worn down instead: a torrent takes a slot only from one
            // announced about as rarely as itself, so a hot one is never
            // pushed out by the tail, and a newly hot one wears the tail
            // down within a few of its announces.
            self.slots[victim].1 = count - 1;
            return;
        }
        self.index.remove(&old);
        self.index.insert(*info_hash, victim as u32);
        self.slots[victim] = (*info_hash, 1);
    }

    /// Halves every count, forgetting those that reach zero.
    pub fn decay(&mut self) {
        let mut i = 0;
        while i < self.slots.len() {
            self.slots[i].1 /= 2;
            if self.slots[i].1 == 0 {
                let (gone, _) = self.slots.swap_remove(i);
                self.index.remove(&gone);
                if let Some(&(moved, _)) = self.slots.get(i) {
                    self.index.insert(moved, i as u32);
                }
            } else {
                i += 1;
            }
        }
    }

    /// The count of `info_hash`, 0 when it is not counted.
    pub fn count(&self, info_hash: &InfoHash) -> u32 {
        self.index
            .get(info_hash)
            .map_or(0, |&slot| self.slots[slot as usize].1)
    }

    /// The `n` most counted torrents, most counted first, into `out`
    /// (cleared first; its capacity is reused).
    pub fn top(&mut self, n: usize, out: &mut Vec<InfoHash>) {
        out.clear();
        let order = &mut self.order;
        order.clear();
        order.extend(self.slots.iter().map(|&(hash, count)| (count, hash)));
        let n = n.min(order.len());
        if n == 0 {
            return;
        }
        order.select_nth_unstable_by(n - 1, |a, b| b.0.cmp(&a.0));
        order.truncate(n);
        order.sort_unstable_by_key(|&(count, _)| std::cmp::Reverse(count));
        out.extend(order.iter().map(|&(_, hash)| hash));
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A request worker's hot-torrent cache writer.
pub struct KernelHot {
    settings: HotSettings,
    counts: HeavyHitters,
    sink: Box<dyn HotSink>,
    /// What the sink holds now and what each entry was written from, to
    /// skip unchanged ones and delete what falls out.
    published: HashMap<InfoHash, Written, foldhash::fast::RandomState>,
    /// Reused between refreshes.
    chosen: Vec<InfoHash>,
    chosen_set: hashbrown::HashSet<InfoHash, foldhash::fast::RandomState>,
    /// Entries staged for the next sink call (at most [`WRITE_BATCH`]).
    keys: Vec<[u8; 20]>,
    v4: Vec<HotV4>,
    v6: Vec<HotV6>,
    generation: u32,
    next_refresh: Instant,
    rng: fastrand::Rng,
    /// The access list: a torrent it stops allowing leaves the cache at
    /// the next refresh.
    filter: Option<std::sync::Arc<dyn crate::TorrentFilter>>,
}

impl KernelHot {
    /// Publishes only torrents `filter` allows.
    pub fn with_filter(mut self, filter: std::sync::Arc<dyn crate::TorrentFilter>) -> Self {
        self.filter = Some(filter);
        self
    }

    pub fn new(settings: HotSettings, sink: Box<dyn HotSink>, mut rng: fastrand::Rng) -> Self {
        let counts = HeavyHitters::new(2 * settings.torrents, rng.fork());
        Self {
            settings,
            counts,
            sink,
            published: HashMap::with_capacity_and_hasher(settings.torrents, Default::default()),
            chosen: Vec::with_capacity(settings.torrents),
            chosen_set: hashbrown::HashSet::with_capacity_and_hasher(
                settings.torrents,
                Default::default(),
            ),
            keys: Vec::with_capacity(WRITE_BATCH),
            v4: Vec::with_capacity(WRITE_BATCH),
            v6: Vec::with_capacity(WRITE_BATCH),
            generation: 0,
            next_refresh: Instant::now() + settings.refresh,
            rng,
            filter: None,
        }
    }

    /// Counts an announce the shard served (through any front end, or
    /// answered in the kernel and applied from the ring).
    #[inline]
    pub fn note(&mut self, info_hash: &InfoHash) {
        self.counts.note(info_hash);
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_refresh
    }

    /// Until the next refresh.
    pub fn idle_for(&self, now: Instant) -> Duration {
        self.next_refresh.saturating_duration_since(now)
    }

    /// Publishes the hottest torrents the shard still holds, deletes what
    /// fell out, and decays the counts.
    pub fn refresh(&mut self, shard: &SwarmShard, now: Instant) {
        self.next_refresh = now + self.settings.refresh;
        self.generation = self.generation.wrapping_add(1);
        let mut chosen = std::mem::take(&mut self.chosen);
        self.counts.top(self.settings.torrents, &mut chosen);
        // Torrents announced rarely, or whose peers all left, are not worth
        // a kernel answer.
        let (counts, min) = (&self.counts, self.settings.min_announces);
        let filter = self.filter.as_deref();
        chosen.retain(|hash| {
            counts.count(hash) >= min
                && filter.is_none_or(|f| f.allows(hash))
                && shard.torrents.get(hash).is_some_and(|t| t.peer_count() > 0)
        });
        // What fell out goes first: deletions free the map's room for
        // what comes in.
        self.chosen_set.clear();
        self.chosen_set.extend(chosen.iter().copied());
        let chosen_set = &self.chosen_set;
        let keys = &mut self.keys;
        let sink = &mut self.sink;
        self.published.retain(|hash, _| {
            let keep = chosen_set.contains(hash);
            if !keep {
                keys.push(hash.0);
                if keys.len() == WRITE_BATCH {
                    sink.remove(keys);
                    keys.clear();
                }
            }
            keep
        });
        if !self.keys.is_empty() {
            self.sink.remove(&self.keys);
            self.keys.clear();
        }
        for hash in &chosen {
            let Some(torrent) = shard.torrents.get(hash) else {
                continue;
            };
            let written = Written {
                counts: family_counts(torrent),
                generation: self.generation,
            };
            if let Some(old) = self.published.get(hash) {
                let age = self.generation.wrapping_sub(old.generation);
                if old.counts == written.counts && age < POOL_REWRITE_EVERY {
                    continue;
                }
            }
            self.published.insert(*hash, written);
            self.stage(hash, torrent);
            if self.keys.len() == WRITE_BATCH {
                self.flush();
            }
        }
        self.flush();
        self.chosen = chosen;
        self.counts.decay();
    }

    /// Hands the staged entries to the sink.
    fn flush(&mut self) {
        if !self.keys.is_empty() {
            self.sink.put(&self.keys, &self.v4, &self.v6);
            self.keys.clear();
            self.v4.clear();
            self.v6.clear();
        }
    }

    /// Builds the cached answer of `torrent` into the staging buffers,
    /// which have room for it (they hold fewer than [`WRITE_BATCH`]).
    fn stage(&mut self, hash: &InfoHash, torrent: &crate::shard::Torrent) {
        self.keys.push(hash.0);
        self.v4.push(HotV4 {
            counts: HotCounts::default(),
            peers: [[0; 6]; HOT_POOL_MAX],
        });
        self.v6.push(HotV6 {
            counts: HotCounts::default(),
            peers: [[0; 18]; HOT_POOL_MAX],
        });
        let counts = torrent.counts();
        let header = |len: usize, generation: u32| HotCounts {
            leechers_be: counts.leechers.to_be_bytes(),
            seeders_be: counts.seeders.to_be_bytes(),
            len: len as u32,
            generation,
        };
        let wanted = self.settings.pool_peers;
        let mut n = 0;
        let v4 = self.v4.last_mut().expect("pushed above");
        torrent
            .v4()
            .sample_with(None, wanted, &mut self.rng, |entry| {
                v4.peers[n] = compact_v4(&entry.key);
                n += 1;
            });
        v4.counts = header(n, self.generation);
        let mut n = 0;
        let v6 = self.v6.last_mut().expect("pushed above");
        if let Some(peers) = torrent.v6() {
            peers.sample_with(None, wanted, &mut self.rng, |entry| {
                v6.peers[n] = compact_v6(&entry.key);
                n += 1;
            });
        }
        v6.counts = header(n, self.generation);
    }

    /// Torrents published now, in no particular order.
    pub fn published(&self) -> impl Iterator<Item = &InfoHash> {
        self.published.keys()
    }

    pub fn counts(&self) -> &HeavyHitters {
        &self.counts
    }
}

/// A torrent's seeders and leechers per family: a peer moving between
/// families, which the combined counts would hide, changes the pools.
fn family_counts(torrent: &crate::shard::Torrent) -> [u32; 4] {
    let v4 = torrent.v4();
    let (s6, l6) = torrent
        .v6()
        .map_or((0, 0), |v6| (v6.seeders(), v6.leechers()));
    [v4.seeders(), v4.leechers(), s6, l6]
}

fn compact_v4(peer: &PeerV4) -> [u8; 6] {
    let mut out = [0; 6];
    out[..4].copy_from_slice(&peer.ip().octets());
    out[4..].copy_from_slice(&peer.port().to_be_bytes());
    out
}

fn compact_v6(peer: &PeerV6) -> [u8; 18] {
    let mut out = [0; 18];
    out[..16].copy_from_slice(&peer.ip().octets());
    out[16..].copy_from_slice(&peer.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Announce;
    use std::collections::HashMap as StdMap;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::{Arc, Mutex};
    use tracker_proto::AnnounceEvent;

    fn hash(n: u32) -> InfoHash {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&n.to_be_bytes());
        InfoHash(h)
    }

    /// What the sink holds, as a map would, how many entries each call
    /// carried, and how many it was given in all.
    #[derive(Clone, Default)]
    struct Recorded(
        Arc<Mutex<StdMap<InfoHash, (HotV4, HotV6)>>>,
        Arc<Mutex<Vec<usize>>>,
        Arc<Mutex<u64>>,
    );

    impl HotSink for Recorded {
        fn put(&mut self, keys: &[[u8; 20]], v4: &[HotV4], v6: &[HotV6]) {
            assert!(keys.len() == v4.len() && keys.len() == v6.len());
            assert!(!keys.is_empty() && keys.len() <= WRITE_BATCH);
            self.1.lock().unwrap().push(keys.len());
            *self.2.lock().unwrap() += keys.len() as u64;
            let mut held = self.0.lock().unwrap();
            for ((key, v4), v6) in keys.iter().zip(v4).zip(v6) {
                held.insert(InfoHash(*key), (*v4, *v6));
            }
        }
        fn remove(&mut self, keys: &[[u8; 20]]) {
            let mut held = self.0.lock().unwrap();
            for key in keys {
                held.remove(&InfoHash(*key));
            }
        }
    }

    impl Recorded {
        /// Entries written so far, and forgets them.
        fn take_writes(&self) -> Vec<usize> {
            std::mem::take(&mut *self.1.lock().unwrap())
        }
    }

    fn announce_v4(shard: &mut SwarmShard, h: InfoHash, ip: [u8; 4], port: u16, seeder: bool) {
        let a = Announce {
            info_hash: h,
            peer: PeerV4::new(Ipv4Addr::from(ip), port),
            event: AnnounceEvent::None,
            seeder,
            numwant: 0,
        };
        shard.announce(&a, 1, &mut Vec::new()).unwrap();
    }

    /// A hot set of 4 torrents, pools of 10, on `sink`, with a fixed seed.
    fn small_hot_set(sink: &Recorded) -> KernelHot {
        let settings = HotSettings::per_shard(4, 1, 10, Duration::from_millis(10));
        KernelHot::new(
            settings,
            Box::new(sink.clone()),
            fastrand::Rng::with_seed(4),
        )
    }

    #[test]
    fn heavy_hitters_keep_the_most_counted_in_bounded_memory() {
        let mut hh = HeavyHitters::new(8, fastrand::Rng::with_seed(1));
        let mut rng = fastrand::Rng::with_seed(2);
        for round in 0..2000u32 {
            // Three hot torrents get most announces, a long tail one each.
            hh.note(&hash(1));
            if round % 2 == 0 {
                hh.note(&hash(2));
            }
            if round % 3 == 0 {
                hh.note(&hash(3));
            }
            hh.note(&hash(1000 + rng.u32(..)));
            assert!(hh.len() <= 8);
        }
        let mut top = Vec::new();
        hh.top(3, &mut top);
        assert_eq!(top, vec![hash(1), hash(2), hash(3)]);
    }

    #[test]
    fn decay_forgets_torrents_that_cooled_off() {
        let mut hh = HeavyHitters::new(4, fastrand::Rng::with_seed(1));
        for _ in 0..8 {
            hh.note(&hash(1));
        }
        hh.note(&hash(2));
        hh.decay();
        assert_eq!((hh.count(&hash(1)), hh.count(&hash(2))), (4, 0));
        for _ in 0..3 {
            hh.decay();
        }
        assert!(hh.is_empty(), "8 halves to 0 in four decays");
        // The table still works after removals moved slots.
        hh.note(&hash(3));
        assert_eq!(hh.count(&hash(3)), 1);
    }

    #[test]
    fn refresh_publishes_counts_and_a_pool_and_deletes_what_fell_out() {
        let mut shard = SwarmShard::new(fastrand::Rng::with_seed(3));
        let (hot, cold) = (hash(1), hash(2));
        for i in 0..100u16 {
            announce_v4(
                &mut shard,
                hot,
                [10, 0, (i >> 8) as u8, i as u8],
                1000 + i,
                i < 30,
            );
        }
        announce_v4(&mut shard, cold, [10, 1, 0, 1], 2000, false);
        let v6 = Announce {
            info_hash: hot,
            peer: PeerV6::new(Ipv6Addr::LOCALHOST, 6000),
            event: AnnounceEvent::None,
            seeder: true,
            numwant: 0,
        };
        shard.announce(&v6, 1, &mut Vec::new()).unwrap();

        let sink = Recorded::default();
        let settings = HotSettings::per_shard(2, 2, 50, Duration::from_millis(10));
        assert_eq!(settings.torrents, 1, "half of 2 hot torrents per shard");
        let mut hot_set = KernelHot::new(
            settings,
            Box::new(sink.clone()),
            fastrand::Rng::with_seed(4),
        );
        for _ in 0..10 {
            hot_set.note(&hot);
        }
        hot_set.note(&cold);
        hot_set.refresh(&shard, Instant::now());
        assert!(
            !sink.0.lock().unwrap().contains_key(&cold),
            "too rare either way"
        );

        let held = sink.0.lock().unwrap().clone();
        assert_eq!(
            held.keys().copied().collect::<Vec<_>>(),
            vec![hot],
            "only the top one"
        );
        let (v4, v6) = &held[&hot];
        // 31 seeders (30 IPv4, 1 IPv6) and 70 leechers, both families.
        assert_eq!(u32::from_be_bytes(v4.counts.seeders_be), 31);
        assert_eq!(u32::from_be_bytes(v4.counts.leechers_be), 70);
        assert_eq!(
            v4.counts,
            HotCounts {
                len: 50,
                ..v6.counts
            },
            "same counts"
        );
        assert_eq!(v4.counts.len, 50, "pool capped at pool_peers");
        let pool: std::collections::HashSet<_> = v4.peers[..50].iter().collect();
        assert_eq!(pool.len(), 50, "distinct peers");
        for peer in &v4.peers[..50] {
            assert_eq!(peer[..2], [10, 0], "a real peer of the torrent: {peer:?}");
            let port = u16::from_be_bytes([peer[4], peer[5]]);
            let index = (u16::from(peer[2]) << 8) | u16::from(peer[3]);
            assert_eq!(port, 1000 + index, "address and port of the same peer");
        }
        assert_eq!(v6.counts.len, 1);
        assert_eq!(&v6.peers[0][..16], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(u16::from_be_bytes([v6.peers[0][16], v6.peers[0][17]]), 6000);

        // The cold torrent heats up, the hot one cools off: after enough
        // refreshes the map holds only the new top one.
        for _ in 0..5 {
            for _ in 0..20 {
                hot_set.note(&cold);
            }
            hot_set.refresh(&shard, Instant::now());
        }
        let held = sink.0.lock().unwrap();
        assert_eq!(held.keys().copied().collect::<Vec<_>>(), vec![cold]);
        assert_eq!(hot_set.published().copied().collect::<Vec<_>>(), vec![cold]);
    }

    #[test]
    fn the_minimum_rate_is_the_settled_count_of_a_steady_torrent() {
        let at = |ms| HotSettings::per_shard(1, 1, 1, Duration::from_millis(ms));
        // 4/s over 250 ms is one announce a refresh, settling at 2.
        assert_eq!(at(250).with_min_rate(4).min_announces, 2);
        assert_eq!(at(1000).with_min_rate(4).min_announces, 8);
        assert_eq!(at(10).with_min_rate(1).min_announces, 1, "never 0");
    }

    #[test]
    fn a_torrent_announced_rarely_is_not_published() {
        let mut shard = SwarmShard::new(fastrand::Rng::with_seed(3));
        announce_v4(&mut shard, hash(5), [10, 0, 0, 1], 1000, false);
        let sink = Recorded::default();
        let mut hot_set = small_hot_set(&sink);
        for _ in 1..MIN_ANNOUNCES {
            hot_set.note(&hash(5));
        }
        hot_set.refresh(&shard, Instant::now());
        assert!(sink.0.lock().unwrap().is_empty(), "one announce short");
        for _ in 0..2 * MIN_ANNOUNCES {
            hot_set.note(&hash(5));
        }
        hot_set.refresh(&shard, Instant::now());
        assert_eq!(sink.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_torrent_the_access_list_stops_allowing_leaves_at_the_next_refresh() {
        struct Deny(Mutex<Option<InfoHash>>);
        impl crate::TorrentFilter for Deny {
            fn allows(&self, info_hash: &InfoHash) -> bool {
                self.0.lock().unwrap().as_ref() != Some(info_hash)
            }
        }
        let mut shard = SwarmShard::new(fastrand::Rng::with_seed(3));
        announce_v4(&mut shard, hash(5), [10, 0, 0, 1], 1000, false);
        let sink = Recorded::default();
        let deny = Arc::new(Deny(Mutex::new(None)));
        let mut hot_set = small_hot_set(&sink).with_filter(deny.clone());
        for _ in 0..100 {
            hot_set.note(&hash(5));
        }
        hot_set.refresh(&shard, Instant::now());
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        *deny.0.lock().unwrap() = Some(hash(5));
        hot_set.refresh(&shard, Instant::now());
        assert!(
            sink.0.lock().unwrap().is_empty(),
            "deleted though still hot"
        );
    }

    #[test]
    fn a_torrent_without_peers_is_not_published() {
        let shard = SwarmShard::new(fastrand::Rng::with_seed(3));
        let sink = Recorded::default();
        let mut hot_set = small_hot_set(&sink);
        hot_set.note(&hash(9));
        hot_set.refresh(&shard, Instant::now());
        assert!(sink.0.lock().unwrap().is_empty());
    }

    /// A cached answer whose counts held still is not written again until
    /// [`POOL_REWRITE_EVERY`] refreshes passed; a count change writes it at
    /// the next refresh; many changed entries go in calls of at most
    /// [`WRITE_BATCH`].
    #[test]
    fn only_changed_entries_are_written_in_batches() {
        let mut shard = SwarmShard::new(fastrand::Rng::with_seed(3));
        let torrents = WRITE_BATCH as u32 + 10;
        for t in 0..torrents {
            announce_v4(&mut shard, hash(t), [10, 0, 0, 1], 1000, false);
        }
        let sink = Recorded::default();
        let settings = HotSettings::per_shard(torrents as usize, 1, 10, Duration::from_millis(10));
        let mut hot_set = KernelHot::new(
            settings,
            Box::new(sink.clone()),
            fastrand::Rng::with_seed(4),
        );
        let heat = |hot_set: &mut KernelHot| {
            for t in 0..torrents {
                for _ in 0..2 * MIN_ANNOUNCES {
                    hot_set.note(&hash(t));
                }
            }
        };
        heat(&mut hot_set);
        hot_set.refresh(&shard, Instant::now());
        assert_eq!(
            sink.take_writes(),
            vec![WRITE_BATCH, 10],
            "all, in two calls"
        );

        // Nothing changed: nothing written, until the pools are due.
        for _ in 1..POOL_REWRITE_EVERY {
            heat(&mut hot_set);
            hot_set.refresh(&shard, Instant::now());
            assert_eq!(sink.take_writes(), Vec::<usize>::new());
        }
        assert_eq!(
            sink.0.lock().unwrap().len(),
            torrents as usize,
            "all still held"
        );

        // The pools' turn: everything is written again.
        heat(&mut hot_set);
        hot_set.refresh(&shard, Instant::now());
        assert_eq!(sink.take_writes(), vec![WRITE_BATCH, 10]);

        // One torrent gains a seeder: only it is written, with the new count.
        heat(&mut hot_set);
        announce_v4(&mut shard, hash(4), [10, 0, 0, 2], 1000, true);
        hot_set.refresh(&shard, Instant::now());
        assert_eq!(sink.take_writes(), vec![1], "only the changed one");
        let held = sink.0.lock().unwrap();
        assert_eq!(u32::from_be_bytes(held[&hash(4)].0.counts.seeders_be), 1);
        assert_eq!(held[&hash(4)].0.counts.len, 2);
        let n = u64::from(torrents);
        // Every refresh either writes a chosen torrent or leaves it be.
        let refreshes = u64::from(POOL_REWRITE_EVERY) + 2;
        let writes = *sink.2.lock().unwrap();
        let skips = refreshes * n - writes;
        assert_eq!(writes, 2 * n + 1);
        assert_eq!(skips, u64::from(POOL_REWRITE_EVERY - 1) * n + (n - 1));
    }
}
