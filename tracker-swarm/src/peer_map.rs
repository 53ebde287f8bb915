//! The peers of one torrent in one address family.
//!
//! Most torrents have a handful of peers, so a map starts as a plain vector
//! searched linearly and grows a hash index only past `INDEX_THRESHOLD`
//! peers: that keeps the common small swarm at about the size of its peers.
//! The vector also makes random sampling cheap (pick positions, not keys).

use std::hash::Hash;

use hashbrown::HashMap;
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::PeerId;

/// Below this many peers a linear scan beats hashing and costs no memory.
const INDEX_THRESHOLD: usize = 16;

/// What a swarm is keyed by, and the host behind a key, for the limit on
/// peers per IP address in one torrent.
pub trait PeerKey: Copy + Eq + Hash {
    type Ip: Copy + Eq + Hash + std::fmt::Debug;
    /// False for keys that carry no address (WebTorrent peer ids): their
    /// indexed swarms then keep no per-IP counts at all.
    const HAS_IP: bool;
    fn host(&self) -> Self::Ip;
}

impl PeerKey for PeerV4 {
    type Ip = [u8; 4];
    const HAS_IP: bool = true;
    fn host(&self) -> [u8; 4] {
        self.ip().octets()
    }
}

impl PeerKey for PeerV6 {
    type Ip = [u8; 16];
    const HAS_IP: bool = true;
    fn host(&self) -> [u8; 16] {
        self.ip().octets()
    }
}

impl PeerKey for PeerId {
    type Ip = ();
    const HAS_IP: bool = false;
    fn host(&self) {}
}

/// The hash index of a large swarm: where each key sits, and how many
/// peers each IP holds, so the per-IP limit costs one lookup instead of a
/// scan of a swarm that may hold millions.
#[derive(Debug)]
struct Index<K: PeerKey> {
    slots: HashMap<K, u32, foldhash::fast::FixedState>,
    /// u16 is enough (an IP has 65,536 ports) and keeps an IPv4 entry at
    /// 6 bytes: this map is most of what the per-IP limit costs.
    per_ip: HashMap<K::Ip, u16, foldhash::fast::FixedState>,
}

impl<K: PeerKey> Index<K> {
    fn add_ip(&mut self, key: &K) {
        if K::HAS_IP {
            let count = self.per_ip.entry(key.host()).or_default();
            *count = count.saturating_add(1);
        }
    }

    fn remove_ip(&mut self, key: &K) {
        if K::HAS_IP {
            if let Some(count) = self.per_ip.get_mut(&key.host()) {
                *count -= 1;
                if *count == 0 {
                    self.per_ip.remove(&key.host());
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerEntry<K, V = ()> {
    pub key: K,
    /// What else a protocol keeps per peer: nothing for UDP/HTTP (the key
    /// is the address), the connection for WebTorrent.
    pub value: V,
    /// Coarse seconds since the tracker started, refreshed on every announce.
    pub last_seen: u32,
    pub seeder: bool,
    /// This peer's `completed` was counted: a completion counts once per
    /// peer. Free in memory, as it fits the entry's padding.
    pub completed: bool,
}

/// What [`PeerMap::try_upsert_with`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upserted {
    /// Where the peer now sits.
    pub position: usize,
    /// The peer was not held before.
    pub inserted: bool,
    /// This announce's `completed` counts: the peer had not said
    /// `completed` before.
    pub completion: bool,
}

#[derive(Debug)]
pub struct PeerMap<K: PeerKey, V = ()> {
    entries: Vec<PeerEntry<K, V>>,
    index: Option<Box<Index<K>>>,
    seeders: u32,
}

impl<K: PeerKey, V> Default for PeerMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            index: None,
            seeders: 0,
        }
    }
}

impl<K: PeerKey, V: Copy> PeerMap<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn seeders(&self) -> u32 {
        self.seeders
    }

    pub fn leechers(&self) -> u32 {
        self.entries.len() as u32 - self.seeders
    }

    pub fn entries(&self) -> &[PeerEntry<K, V>] {
        &self.entries
    }

    pub fn get(&self, key: &K) -> Option<&PeerEntry<K, V>> {
        self.position(key).map(|i| &self.entries[i])
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index.slots.get(key).map(|&i| i as usize),
            None => self.entries.iter().position(|e| e.key == *key),
        }
    }

    /// Inserts the peer or refreshes it, returning where it now sits.
    pub fn upsert(&mut self, key: K, seeder: bool, now: u32) -> usize
    where
        V: Default,
    {
        self.upsert_with(key, V::default(), seeder, now)
    }

    /// [`upsert`](Self::upsert) that also sets the peer's value.
    pub fn upsert_with(&mut self, key: K, value: V, seeder: bool, now: u32) -> usize {
        let admit_all = |_: &Self, _: &K| Ok::<(), std::convert::Infallible>(());
        match self.try_upsert_with(key, value, seeder, false, now, admit_all) {
            Ok(upserted) => upserted.position,
            Err(never) => match never {},
        }
    }

    /// Peers held whose key has the IP address of `key`: a scan of a small
    /// swarm, one lookup in an indexed one.
    pub fn same_ip_count(&self, key: &K) -> usize {
        let ip = key.host();
        match &self.index {
            Some(index) => index.per_ip.get(&ip).map_or(0, |&n| n as usize),
            None => self.entries.iter().filter(|e| e.key.host() == ip).count(),
        }
    }

    /// [`upsert_with`](Self::upsert_with), except that a key not held yet
    /// goes in only if `admit` (asked with the map as it is and the key)
    /// agrees: a known peer is always refreshed, whatever the limits.
    /// `completing`: the announce says `completed`.
    pub fn try_upsert_with<E>(
        &mut self,
        key: K,
        value: V,
        seeder: bool,
        completing: bool,
        now: u32,
        admit: impl FnOnce(&Self, &K) -> Result<(), E>,
    ) -> Result<Upserted, E> {
        if let Some(position) = self.position(&key) {
            let entry = &mut self.entries[position];
            // A peer's download counts once: a second `completed` (sent
            // again, or again while seeding) is no new download.
            let completion = completing && !entry.completed;
            entry.completed |= completing;
            entry.value = value;
            if entry.seeder != seeder {
                if seeder {
                    self.seeders += 1;
                } else {
                    self.seeders -= 1;
                }
            }
            entry.seeder = seeder;
            entry.last_seen = now;
            return Ok(Upserted {
                position,
                inserted: false,
                completion,
            });
        }
        admit(self, &key)?;
        let position = self.insert_new(PeerEntry {
            key,
            value,
            last_seen: now,
            seeder,
            completed: completing,
        });
        Ok(Upserted {
            position,
            inserted: true,
            completion: completing,
        })
    }

    /// Appends an entry whose key is not held (checked by the caller).
    fn insert_new(&mut self, entry: PeerEntry<K, V>) -> usize {
        let (key, seeder) = (entry.key, entry.seeder);
        let position = self.entries.len();
        self.entries.push(entry);
        if seeder {
            self.seeders += 1;
        }
        match &mut self.index {
            Some(index) => {
                index.slots.insert(key, position as u32);
                index.add_ip(&key);
            }
            None if self.entries.len() > INDEX_THRESHOLD => self.build_index(),
            None => {}
        }
        position
    }

    /// Puts back a peer from a snapshot, as it was: a key already held is
    /// left alone, a new one goes in only if `admit` agrees. True if it
    /// went in.
    pub fn try_restore<E>(
        &mut self,
        entry: PeerEntry<K, V>,
        admit: impl FnOnce(&Self, &K) -> Result<(), E>,
    ) -> Result<bool, E> {
        if self.position(&entry.key).is_some() {
            return Ok(false);
        }
        admit(self, &entry.key)?;
        self.insert_new(entry);
        Ok(true)
    }

    fn build_index(&mut self) {
        let len = self.entries.len();
        let mut index = Index {
            slots: HashMap::with_capacity_and_hasher(len * 2, Default::default()),
            per_ip: HashMap::with_hasher(Default::default()),
        };
        for (i, e) in self.entries.iter().enumerate() {
            index.slots.insert(e.key, i as u32);
            index.add_ip(&e.key);
        }
        self.index = Some(Box::new(index));
    }

    pub fn remove(&mut self, key: &K) -> bool {
        self.remove_if(key, |_| true)
    }

    /// Removes the peer if `remove` says so of its entry.
    pub fn remove_if(&mut self, key: &K, remove: impl FnOnce(&PeerEntry<K, V>) -> bool) -> bool {
        match self.position(key) {
            Some(position) if remove(&self.entries[position]) => {
                self.remove_at(position);
                true
            }
            _ => false,
        }
    }

    fn remove_at(&mut self, position: usize) {
        let removed = self.entries.swap_remove(position);
        if removed.seeder {
            self.seeders -= 1;
        }
        if let Some(index) = &mut self.index {
            index.slots.remove(&removed.key);
            index.remove_ip(&removed.key);
            if let Some(moved) = self.entries.get(position) {
                index.slots.insert(moved.key, position as u32);
            }
            // Give the memory back once a swarm has shrunk well below the
            // threshold, with hysteresis so it does not flap.
            if self.entries.len() < INDEX_THRESHOLD / 2 {
                self.index = None;
            }
        }
    }

    /// Appends up to `wanted` peers other than the one at `skip` to `out`.
    ///
    /// When the swarm holds no more than `wanted` others, all are returned;
    /// otherwise a run of consecutive entries from a random start, which is
    /// random enough because removals shuffle the vector, and touches far
    /// less memory than `wanted` independent random picks.
    pub fn sample_into(
        &self,
        skip: Option<usize>,
        wanted: usize,
        rng: &mut fastrand::Rng,
        out: &mut Vec<K>,
    ) -> usize {
        self.sample_with(skip, wanted, rng, |entry| out.push(entry.key))
    }

    /// [`sample_into`](Self::sample_into), handing each chosen entry to `f`.
    pub fn sample_with(
        &self,
        skip: Option<usize>,
        wanted: usize,
        rng: &mut fastrand::Rng,
        mut f: impl FnMut(&PeerEntry<K, V>),
    ) -> usize {
        let len = self.entries.len();
        let others = len - usize::from(skip.is_some_and(|s| s < len));
        let take = wanted.min(others);
        if take == 0 {
            return 0;
        }
        let start = if take == others { 0 } else { rng.usize(0..len) };
        let mut written = 0;
        let mut i = start;
        while written < take {
            if Some(i) != skip {
                f(&self.entries[i]);
                written += 1;
            }
            i += 1;
            if i == len {
                i = 0;
            }
        }
        written
    }

    /// Drops peers last seen before `cutoff`; returns how many went.
    pub fn remove_older_than(&mut self, cutoff: u32) -> usize {
        let before = self.entries.len();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].last_seen < cutoff {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        if self.entries.capacity() > 2 * self.entries.len().max(4) {
            self.entries.shrink_to_fit();
        }
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test keys: the high byte plays the IP address, the low one the port.
    impl PeerKey for u16 {
        type Ip = u8;
        const HAS_IP: bool = true;
        fn host(&self) -> u8 {
            (self >> 8) as u8
        }
    }

    fn map_with(n: u16) -> PeerMap<u16> {
        let mut m: PeerMap<u16> = PeerMap::default();
        for k in 0..n {
            m.upsert(k, k % 3 == 0, 10);
        }
        m
    }

    #[test]
    fn counts_follow_transitions() {
        let mut m: PeerMap<u16> = PeerMap::default();
        assert_eq!(m.upsert(1u16, false, 0), 0);
        assert_eq!(m.upsert(2, true, 0), 1);
        assert_eq!((m.seeders(), m.leechers()), (1, 1));
        assert_eq!(m.upsert(1, true, 1), 0, "a re-announce keeps its place");
        assert_eq!(m.len(), 2);
        assert_eq!((m.seeders(), m.leechers()), (2, 0));
        m.upsert(2, false, 1);
        assert_eq!((m.seeders(), m.leechers()), (1, 1));
        assert!(m.remove(&1));
        assert!(!m.remove(&1));
        assert_eq!((m.seeders(), m.leechers()), (0, 1));
    }

    #[test]
    fn a_completion_counts_once_per_peer() {
        let mut m: PeerMap<u16> = PeerMap::default();
        let admit = |_: &PeerMap<u16>, _: &u16| Ok::<(), ()>(());
        let mut announce = |key, seeder, completing| {
            m.try_upsert_with(key, (), seeder, completing, 0, admit)
                .unwrap()
                .completion
        };
        // A leecher finishes: counted; says so again: not counted.
        assert!(!announce(1, false, false));
        assert!(announce(1, true, true));
        assert!(!announce(1, true, true));
        // A seeder saying `completed` counts once too, however often.
        assert!(!announce(2, true, false));
        assert!(announce(2, true, true));
        assert!(!announce(2, true, true));
        // A peer first heard of at its completion counts.
        assert!(announce(3, true, true));
        assert!(!announce(3, false, true), "not even as a leecher again");
    }

    #[test]
    fn index_stays_consistent_across_growth_and_shrink() {
        let mut m = map_with(100);
        assert!(m.index.is_some());
        for k in (0..100).step_by(2) {
            assert!(m.remove(&k));
        }
        for k in 0..100u16 {
            assert_eq!(m.position(&k).is_some(), k % 2 == 1, "key {k}");
        }
        for k in (1..100).step_by(2).take(46) {
            assert!(m.remove(&k));
        }
        assert!(m.index.is_none());
        assert_eq!(m.len(), 4);
        for e in m.entries().to_vec() {
            assert_eq!(m.entries()[m.position(&e.key).unwrap()].key, e.key);
        }
        let expected_seeders = m.entries().iter().filter(|e| e.seeder).count() as u32;
        assert_eq!(m.seeders(), expected_seeders);
    }

    #[test]
    fn sample_returns_exactly_wanted_distinct_others() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [0u16, 1, 2, 5, 17, 60] {
            let m = map_with(n);
            for skip in [None, Some(0usize)] {
                for wanted in [0usize, 1, 3, 50, 200] {
                    let mut out = Vec::new();
                    let got = m.sample_into(skip, wanted, &mut rng, &mut out);
                    let others = n as usize - usize::from(skip.is_some() && n > 0);
                    assert_eq!(got, wanted.min(others));
                    assert_eq!(out.len(), got);
                    let mut dedup = out.clone();
                    dedup.sort();
                    dedup.dedup();
                    assert_eq!(dedup.len(), out.len());
                    if let (Some(skip), Some(first)) = (skip, m.entries().first()) {
                        assert_eq!(skip, 0);
                        assert!(!out.contains(&first.key));
                    }
                }
            }
        }
    }

    #[test]
    fn expiry_removes_only_old_peers() {
        let mut m: PeerMap<u16> = PeerMap::default();
        for k in 0..40u16 {
            m.upsert(k, k < 10, u32::from(k));
        }
        assert_eq!(m.remove_older_than(20), 20);
        assert!(m.entries().iter().all(|e| e.last_seen >= 20));
        assert_eq!(m.seeders(), 0);
        assert_eq!(m.len(), 20);
        for k in 20..40u16 {
            assert!(m.position(&k).is_some());
        }
    }

    #[test]
    fn same_ip_counts_hold_across_index_growth_and_shrink() {
        let mut m: PeerMap<u16> = PeerMap::default();
        // Hosts 1..=4, five ports each: 20 peers, indexed.
        for host in 1..=4u16 {
            for port in 0..5u16 {
                m.upsert(host << 8 | port, false, 0);
            }
        }
        assert!(m.index.is_some());
        assert_eq!(m.same_ip_count(&(2 << 8 | 99)), 5);
        assert_eq!(m.same_ip_count(&(9 << 8)), 0);
        for port in 0..3u16 {
            assert!(m.remove(&(2 << 8 | port)));
        }
        assert_eq!(m.same_ip_count(&(2 << 8)), 2);
        assert_eq!(m.remove_older_than(1), 17);
        assert_eq!(m.same_ip_count(&(2 << 8)), 0);
        // Admission sees the count and refuses without inserting.
        m.upsert(3 << 8, false, 5);
        let refused = m.try_upsert_with(3 << 8 | 1, (), false, false, 5, |map, key| {
            if map.same_ip_count(key) >= 1 {
                Err("per ip")
            } else {
                Ok(())
            }
        });
        assert_eq!(refused, Err("per ip"));
        assert_eq!(m.len(), 1);
        assert_eq!(
            m.try_upsert_with(3 << 8, (), true, false, 6, |_, _| Err("no")),
            Ok(Upserted {
                position: 0,
                inserted: false,
                completion: false
            })
        );
    }
}
