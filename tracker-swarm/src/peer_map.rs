//! The peers of one torrent in one address family.
//!
//! Most torrents have one peer (at aquatic's default profile three in four
//! swarms do), so a map holds its first peer inline, in the torrent's
//! record, and allocates only for the second, then just the two entries
//! (most of the other swarms stop there). Past that the peers sit in a
//! vector searched linearly, which grows a hash index only past
//! `INDEX_THRESHOLD` peers: that keeps the common small swarm at about the
//! size of its peers. The vector also makes random sampling cheap (pick
//! positions, not keys).

use std::hash::{BuildHasher, Hash};

use hashbrown::{HashMap, HashTable};
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

type IndexHasher = foldhash::fast::FixedState;

fn key_hash<K: Hash>(key: &K) -> u64 {
    IndexHasher::default().hash_one(key)
}

/// The hash index of a large swarm: where each key sits, and how many
/// peers each IP holds, so the per-IP limit costs one lookup instead of a
/// scan of a swarm that may hold millions.
#[derive(Debug)]
struct Index<K: PeerKey> {
    /// Positions in the entries, hashed by the key found there: 4 bytes a
    /// slot instead of the key's copy beside it (12 for IPv4), where the
    /// peers of the large swarms spend most of their memory.
    slots: HashTable<u32>,
    /// u16 is enough (an IP has 65,536 ports) and keeps an IPv4 entry at
    /// 6 bytes: this map is most of what the per-IP limit costs.
    per_ip: HashMap<K::Ip, u16, IndexHasher>,
}

impl<K: PeerKey> Index<K> {
    fn find<V>(&self, entries: &[PeerEntry<K, V>], key: &K) -> Option<usize> {
        self.slots
            .find(key_hash(key), |&i| entries[i as usize].key == *key)
            .map(|&i| i as usize)
    }

    /// Indexes the entry at `position` (the last one, just pushed).
    fn insert<V>(&mut self, entries: &[PeerEntry<K, V>], position: usize) {
        let key = entries[position].key;
        self.slots
            .insert_unique(key_hash(&key), position as u32, |&i| {
                key_hash(&entries[i as usize].key)
            });
        self.add_ip(&key);
    }

    /// Forgets the entry at `position` before `swap_remove` moves the last
    /// entry there.
    fn remove<V>(&mut self, entries: &[PeerEntry<K, V>], position: usize) {
        let key = entries[position].key;
        if let Ok(slot) = self
            .slots
            .find_entry(key_hash(&key), |&i| i as usize == position)
        {
            slot.remove();
        }
        self.remove_ip(&key);
        let last = entries.len() - 1;
        if last != position {
            let moved = &entries[last].key;
            if let Some(slot) = self
                .slots
                .find_mut(key_hash(moved), |&i| i as usize == last)
            {
                *slot = position as u32;
            }
        }
    }

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

impl<K, V> PeerEntry<K, V> {
    /// Applies a known peer's announce; true if its `completed` counts
    /// (a peer's download counts once: a second `completed`, sent again
    /// or again while seeding, is no new download).
    fn refresh(&mut self, value: V, seeder: bool, completing: bool, now: u32) -> bool {
        let completion = completing && !self.completed;
        self.completed |= completing;
        self.value = value;
        self.seeder = seeder;
        self.last_seen = now;
        completion
    }
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
    store: Store<K, V>,
}

/// An IPv4 map is 16 bytes whichever it holds, so a one-peer torrent's
/// record is all its peers cost, and a two-peer one allocates 24 bytes.
#[derive(Debug)]
enum Store<K: PeerKey, V> {
    Empty,
    One(PeerEntry<K, V>),
    Two(Box<[PeerEntry<K, V>; 2]>),
    Many(Box<Many<K, V>>),
}

/// Three peers or more (or fewer, after stops). Not shrunk back to
/// [`Store::One`] or [`Store::Two`] when a peer stops, only at cleaning,
/// so a swarm hovering around three peers does not allocate on every
/// other announce.
#[derive(Debug)]
struct Many<K: PeerKey, V> {
    entries: Vec<PeerEntry<K, V>>,
    index: Option<Box<Index<K>>>,
    seeders: u32,
}

impl<K: PeerKey, V> Default for PeerMap<K, V> {
    fn default() -> Self {
        Self {
            store: Store::Empty,
        }
    }
}

impl<K: PeerKey, V: Copy> Many<K, V> {
    fn position(&self, key: &K) -> Option<usize> {
        match &self.index {
            Some(index) => index.find(&self.entries, key),
            None => self.entries.iter().position(|e| e.key == *key),
        }
    }

    fn push(&mut self, entry: PeerEntry<K, V>) -> usize {
        let position = self.entries.len();
        self.seeders += u32::from(entry.seeder);
        if position == self.entries.capacity() {
            // Grow by a quarter, not double: the large swarms hold most
            // peers, and doubling leaves them a third empty on average
            // (one in eight here), for a copy every few inserts instead
            // of every many, which the allocator often does in place.
            self.entries.reserve_exact((position / 4).max(2));
        }
        self.entries.push(entry);
        match &mut self.index {
            Some(index) => index.insert(&self.entries, position),
            None if self.entries.len() > INDEX_THRESHOLD => self.build_index(),
            None => {}
        }
        position
    }

    fn build_index(&mut self) {
        let len = self.entries.len();
        let mut index = Index {
            slots: HashTable::with_capacity(len * 2),
            per_ip: HashMap::with_hasher(Default::default()),
        };
        for position in 0..len {
            index.insert(&self.entries, position);
        }
        self.index = Some(Box::new(index));
    }

    fn remove_at(&mut self, position: usize) {
        if let Some(index) = &mut self.index {
            index.remove(&self.entries, position);
        }
        let removed = self.entries.swap_remove(position);
        self.seeders -= u32::from(removed.seeder);
        // Give the memory back once a swarm has shrunk well below the
        // threshold, with hysteresis so it does not flap.
        if self.entries.len() < INDEX_THRESHOLD / 2 {
            self.index = None;
        }
    }
}

impl<K: PeerKey, V: Copy> PeerMap<K, V> {
    pub fn len(&self) -> usize {
        match &self.store {
            Store::Empty => 0,
            Store::One(_) => 1,
            Store::Two(_) => 2,
            Store::Many(many) => many.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.store, Store::Empty)
    }

    pub fn seeders(&self) -> u32 {
        match &self.store {
            Store::Empty => 0,
            Store::One(entry) => u32::from(entry.seeder),
            Store::Two(pair) => u32::from(pair[0].seeder) + u32::from(pair[1].seeder),
            Store::Many(many) => many.seeders,
        }
    }

    pub fn leechers(&self) -> u32 {
        self.len() as u32 - self.seeders()
    }

    pub fn entries(&self) -> &[PeerEntry<K, V>] {
        match &self.store {
            Store::Empty => &[],
            Store::One(entry) => std::slice::from_ref(entry),
            Store::Two(pair) => &pair[..],
            Store::Many(many) => &many.entries,
        }
    }

    pub fn get(&self, key: &K) -> Option<&PeerEntry<K, V>> {
        self.position(key).map(|i| &self.entries()[i])
    }

    fn position(&self, key: &K) -> Option<usize> {
        match &self.store {
            Store::Empty => None,
            Store::One(entry) => (entry.key == *key).then_some(0),
            Store::Two(pair) => pair.iter().position(|e| e.key == *key),
            Store::Many(many) => many.position(key),
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
        match &self.store {
            Store::Many(many) if many.index.is_some() => many
                .index
                .as_ref()
                .and_then(|index| index.per_ip.get(&ip))
                .map_or(0, |&n| n as usize),
            _ => self.entries().iter().filter(|e| e.key.host() == ip).count(),
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
        let known = match &mut self.store {
            Store::Empty => None,
            Store::One(entry) => (entry.key == key).then(|| {
                let completion = entry.refresh(value, seeder, completing, now);
                (0, completion)
            }),
            Store::Two(pair) => pair.iter().position(|e| e.key == key).map(|position| {
                let completion = pair[position].refresh(value, seeder, completing, now);
                (position, completion)
            }),
            Store::Many(many) => many.position(&key).map(|position| {
                let entry = &mut many.entries[position];
                let was_seeder = entry.seeder;
                let completion = entry.refresh(value, seeder, completing, now);
                many.seeders = many.seeders + u32::from(seeder) - u32::from(was_seeder);
                (position, completion)
            }),
        };
        if let Some((position, completion)) = known {
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
        match &mut self.store {
            Store::Empty => {
                self.store = Store::One(entry);
                0
            }
            Store::One(first) => {
                self.store = Store::Two(Box::new([*first, entry]));
                1
            }
            Store::Two(pair) => {
                // Exactly three: the vector grows by a quarter from here.
                let mut entries = Vec::with_capacity(3);
                entries.extend_from_slice(&pair[..]);
                let mut many = Box::new(Many {
                    entries,
                    index: None,
                    seeders: u32::from(pair[0].seeder) + u32::from(pair[1].seeder),
                });
                let position = many.push(entry);
                self.store = Store::Many(many);
                position
            }
            Store::Many(many) => many.push(entry),
        }
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

    pub fn remove(&mut self, key: &K) -> bool {
        self.remove_if(key, |_| true)
    }

    /// Removes the peer if `remove` says so of its entry.
    pub fn remove_if(&mut self, key: &K, remove: impl FnOnce(&PeerEntry<K, V>) -> bool) -> bool {
        match self.position(key) {
            Some(position) if remove(&self.entries()[position]) => {
                self.remove_at(position);
                true
            }
            _ => false,
        }
    }

    fn remove_at(&mut self, position: usize) {
        match &mut self.store {
            Store::Empty => {}
            Store::One(_) => self.store = Store::Empty,
            Store::Two(pair) => self.store = Store::One(pair[1 - position]),
            Store::Many(many) => {
                many.remove_at(position);
                // An empty map must be `Empty`: it is how a torrent is
                // seen to be empty, and it frees the box.
                if many.entries.is_empty() {
                    self.store = Store::Empty;
                }
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
        let entries = self.entries();
        let len = entries.len();
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
                f(&entries[i]);
                written += 1;
            }
            i += 1;
            if i == len {
                i = 0;
            }
        }
        written
    }

    /// Drops peers last seen before `cutoff`; returns how many went. What
    /// is left is stored as tightly as at its first announce: one peer
    /// back in the record, two in their pair, a vector without much spare
    /// room.
    pub fn remove_older_than(&mut self, cutoff: u32) -> usize {
        let before = self.len();
        match &mut self.store {
            Store::Empty => {}
            Store::One(entry) => {
                if entry.last_seen < cutoff {
                    self.store = Store::Empty;
                }
            }
            Store::Two(pair) => match pair.map(|e| e.last_seen >= cutoff) {
                [true, true] => {}
                [true, false] => self.store = Store::One(pair[0]),
                [false, true] => self.store = Store::One(pair[1]),
                [false, false] => self.store = Store::Empty,
            },
            Store::Many(many) => {
                let mut i = 0;
                while i < many.entries.len() {
                    if many.entries[i].last_seen < cutoff {
                        many.remove_at(i);
                    } else {
                        i += 1;
                    }
                }
                match many.entries[..] {
                    [] => self.store = Store::Empty,
                    [only] => self.store = Store::One(only),
                    [first, second] => self.store = Store::Two(Box::new([first, second])),
                    _ => {
                        if many.entries.capacity() > 2 * many.entries.len().max(4) {
                            many.entries.shrink_to_fit();
                        }
                    }
                }
            }
        }
        before - self.len()
    }

    #[cfg(test)]
    fn is_indexed(&self) -> bool {
        matches!(&self.store, Store::Many(many) if many.index.is_some())
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
        assert!(m.is_indexed());
        for k in (0..100).step_by(2) {
            assert!(m.remove(&k));
        }
        for k in 0..100u16 {
            assert_eq!(m.position(&k).is_some(), k % 2 == 1, "key {k}");
        }
        for k in (1..100).step_by(2).take(46) {
            assert!(m.remove(&k));
        }
        assert!(!m.is_indexed());
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
        assert!(m.is_indexed());
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

    #[test]
    fn one_and_two_peers_are_held_tightly_and_a_shrunk_swarm_goes_back_to_them() {
        let mut m = map_with(1);
        assert!(matches!(m.store, Store::One(_)));
        m.upsert(1, true, 20);
        assert!(matches!(m.store, Store::Two(_)));
        assert_eq!((m.seeders(), m.leechers()), (2, 0));
        m.upsert(2, false, 20);
        assert!(matches!(&m.store, Store::Many(many) if many.entries.capacity() == 3));
        assert!(m.remove(&0));
        assert!(matches!(m.store, Store::Many(_)), "no flapping on a stop");
        m.upsert(3, false, 5);
        assert_eq!(m.remove_older_than(10), 1);
        assert!(matches!(m.store, Store::Two(_)));
        assert_eq!((m.seeders(), m.leechers()), (1, 1));
        assert!(m.remove(&2));
        assert!(matches!(m.store, Store::One(e) if e.key == 1 && e.seeder));
        assert_eq!((m.seeders(), m.leechers()), (1, 0));
        assert!(m.remove(&1));
        assert!(matches!(m.store, Store::Empty));
    }

    /// Random announces, stops and expiries against a plain model: the
    /// index (which holds positions only) must find every key where the
    /// entries hold it, at every size, through the inline, vector and
    /// indexed forms and back.
    #[test]
    fn random_operations_agree_with_a_model() {
        let mut rng = fastrand::Rng::with_seed(42);
        let mut m: PeerMap<u16> = PeerMap::default();
        let mut model = std::collections::HashMap::<u16, (bool, u32)>::new();
        let (mut indexed, mut inline_after_index) = (0, 0);
        for step in 0..20_000u32 {
            indexed += usize::from(m.is_indexed());
            inline_after_index += usize::from(indexed > 0 && m.len() <= 1);
            let now = step / 50;
            // Few hosts, so the per-IP counts see sharing.
            let key = rng.u16(0..4) << 8 | rng.u16(0..40);
            match rng.u8(0..10) {
                0..=5 => {
                    let seeder = rng.bool();
                    m.upsert(key, seeder, now);
                    model.insert(key, (seeder, now));
                }
                6..=8 => assert_eq!(m.remove(&key), model.remove(&key).is_some()),
                _ => {
                    // Now and then everything but this moment's peers.
                    let cutoff = now
                        .saturating_sub(rng.u32(0..8))
                        .max(now * u32::from(rng.u8(0..8) == 0));
                    let before = model.len();
                    model.retain(|_, (_, seen)| *seen >= cutoff);
                    assert_eq!(m.remove_older_than(cutoff), before - model.len());
                }
            }
            assert_eq!(m.len(), model.len());
            let seeders = model.values().filter(|(seeder, _)| *seeder).count();
            assert_eq!(m.seeders() as usize, seeders);
            for (i, e) in m.entries().iter().enumerate() {
                assert_eq!(model.get(&e.key), Some(&(e.seeder, e.last_seen)));
                assert_eq!(m.position(&e.key), Some(i));
            }
            let probe = rng.u16(0..4) << 8;
            let same_ip = model.keys().filter(|&&k| k >> 8 == probe >> 8).count();
            assert_eq!(m.same_ip_count(&probe), same_ip, "step {step}");
        }
        assert!(
            indexed > 1000 && inline_after_index > 50,
            "{indexed} {inline_after_index}"
        );
    }
}
