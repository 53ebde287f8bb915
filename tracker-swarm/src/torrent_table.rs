//! A request worker's torrents, keyed by info hash, split into many small
//! hash tables so that no single resize stalls the worker.
//!
//! One hashbrown table per worker doubles in one go: at a few million
//! torrents that is a rehash of every record (48 bytes each) taking
//! hundreds of milliseconds, during which every request queued behind it
//! waits or is dropped. Split into [`SUB_TABLES`] tables, each grows on its
//! own, so a resize moves at most 1/SUB_TABLES of the records.
//!
//! Sizing: plan for ~10 M torrents over 2 request workers, 5 M per worker.
//! A resize rehashes and moves each record at roughly 10–20 ns, so 1 ms
//! covers ~50–100 k records. 5 M / 1024 ≈ 4.9 k records per sub-table: a
//! doubling there takes ~0.1 ms, leaving room for twice the planned size
//! and a slower machine. Measured on a shared 2-core EPYC VM (release,
//! 5 M inserts into one table): sub-table resizes at ~3.6 k records took
//! 0.12 ms (median), where one table's doublings at 1.8 M and 3.7 M records
//! took 311 and 748 ms. An empty sub-table is a 32-byte `HashTable` with
//! no allocation, so the split costs 32 KiB per worker, and every
//! sub-table keeps hashbrown's usual load factor, so the bytes per torrent
//! stay those of one big table.
//!
//! The sub-table is chosen by bits of the same keyed hash that places the
//! record inside it (one hash per lookup, as before). Choosing it by raw
//! info-hash bytes would let a client that picks its info hashes pile them
//! all into one sub-table and bring the big resize back.

use std::hash::BuildHasher;

use hashbrown::hash_table::{self, HashTable};
use tracker_proto::InfoHash;

/// Sub-tables per worker (a power of two); see the module docs for why.
pub const SUB_TABLES: usize = 1024;

/// hashbrown places a record by the low bits of the hash and tags it with
/// the top 7; the sub-table index comes from bits in between, so it does
/// not correlate with either for tables up to 2^40 buckets.
const SUB_SHIFT: u32 = 40;

/// A sub-table is shrunk when it holds less than a quarter of its capacity
/// (and more than this many slots' worth): small tables are not worth the
/// rehash, and shrinking only well below capacity keeps a table that
/// hovers around one size from shrinking and regrowing every clean.
const SHRINK_MIN_CAPACITY: usize = 64;

type Hasher = foldhash::fast::RandomState;

pub struct TorrentTable<V> {
    subs: Box<[HashTable<(InfoHash, V)>]>,
    hasher: Hasher,
    len: usize,
}

impl<V> Default for TorrentTable<V> {
    fn default() -> Self {
        Self {
            subs: (0..SUB_TABLES).map(|_| HashTable::new()).collect(),
            hasher: Hasher::default(),
            len: 0,
        }
    }
}

impl<V> TorrentTable<V> {
    /// An empty table that puts each key in the same sub-table as `other`
    /// does, so a walk sub-table by sub-table visits a key in both tables
    /// in the same step, whichever of them holds it at the time.
    pub fn laid_out_like<W>(other: &TorrentTable<W>) -> Self {
        Self {
            hasher: other.hasher.clone(),
            ..Self::default()
        }
    }
}

impl<V> std::fmt::Debug for TorrentTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentTable")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Where a key is or would go in [`TorrentTable::entry`].
pub struct Entry<'a, V> {
    inner: hash_table::Entry<'a, (InfoHash, V)>,
    key: InfoHash,
    len: &'a mut usize,
}

impl<'a, V> Entry<'a, V> {
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        match self.inner {
            hash_table::Entry::Occupied(o) => &mut o.into_mut().1,
            hash_table::Entry::Vacant(v) => {
                *self.len += 1;
                &mut v.insert((self.key, make())).into_mut().1
            }
        }
    }

    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

impl<V> TorrentTable<V> {
    #[inline]
    fn locate(&self, key: &InfoHash) -> (usize, u64) {
        let hash = self.hasher.hash_one(key);
        (((hash >> SUB_SHIFT) as usize) & (SUB_TABLES - 1), hash)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records the sub-tables have room for without growing.
    pub fn capacity(&self) -> usize {
        self.subs.iter().map(HashTable::capacity).sum()
    }

    pub fn get(&self, key: &InfoHash) -> Option<&V> {
        let (sub, hash) = self.locate(key);
        self.subs[sub].find(hash, |(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &InfoHash) -> Option<&mut V> {
        let (sub, hash) = self.locate(key);
        self.subs[sub]
            .find_mut(hash, |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &InfoHash) -> bool {
        self.get(key).is_some()
    }

    pub fn entry(&mut self, key: InfoHash) -> Entry<'_, V> {
        let (sub, hash) = self.locate(&key);
        let hasher = &self.hasher;
        let inner = self.subs[sub].entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k));
        Entry {
            inner,
            key,
            len: &mut self.len,
        }
    }

    pub fn get_or_insert_default(&mut self, key: InfoHash) -> &mut V
    where
        V: Default,
    {
        self.entry(key).or_default()
    }

    pub fn remove(&mut self, key: &InfoHash) -> Option<V> {
        let (sub, hash) = self.locate(key);
        match self.subs[sub].find_entry(hash, |(k, _)| k == key) {
            Ok(occupied) => {
                self.len -= 1;
                Some(occupied.remove().0 .1)
            }
            Err(_) => None,
        }
    }

    /// Keeps the records `keep` says yes to, sub-table by sub-table.
    pub fn retain(&mut self, mut keep: impl FnMut(&InfoHash, &mut V) -> bool) {
        for sub in self.subs.iter_mut() {
            sub.retain(|(k, v)| keep(k, v));
        }
        self.len = self.subs.iter().map(HashTable::len).sum();
    }

    /// Gives back the memory of sub-tables left mostly empty (a cleaning
    /// after a flood expired): each is rehashed on its own, so this never
    /// costs more than one small resize at a time, and a sub-table left
    /// empty frees its allocation entirely.
    pub fn shrink(&mut self) {
        let hasher = &self.hasher;
        for sub in self.subs.iter_mut() {
            let capacity = sub.capacity();
            let mostly_empty = capacity > SHRINK_MIN_CAPACITY && capacity > 4 * sub.len();
            if mostly_empty || (sub.is_empty() && capacity > 0) {
                sub.shrink_to(0, |(k, _)| hasher.hash_one(k));
            }
        }
    }

    /// The records of sub-table `sub` (below [`SUB_TABLES`]), so a long
    /// walk (a snapshot) can be cut into slices that each visit a few
    /// sub-tables and see every record exactly once, whatever changes in
    /// between: a record never moves to another sub-table.
    pub fn sub_table(&self, sub: usize) -> impl Iterator<Item = (&InfoHash, &V)> + '_ {
        self.subs[sub].iter().map(|(k, v)| (k, v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&InfoHash, &V)> + '_ {
        self.subs
            .iter()
            .flat_map(|sub| sub.iter().map(|(k, v)| (k, v)))
    }
}

impl<V> std::ops::Index<&InfoHash> for TorrentTable<V> {
    type Output = V;

    fn index(&self, key: &InfoHash) -> &V {
        self.get(key).expect("no such torrent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> InfoHash {
        let mut bytes = [0u8; 20];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        bytes[16..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9).to_le_bytes());
        InfoHash(bytes)
    }

    #[test]
    fn insert_get_remove_across_sub_tables() {
        let mut table = TorrentTable::<u32>::default();
        for i in 0..20_000 {
            *table.entry(key(i)).or_default() += i;
        }
        assert_eq!(table.len(), 20_000);
        let used = table.subs.iter().filter(|s| !s.is_empty()).count();
        assert!(used > SUB_TABLES * 9 / 10, "records spread: {used}");
        for i in (0..20_000).step_by(7) {
            assert_eq!(table.get(&key(i)), Some(&i));
        }
        assert_eq!(table.get(&key(20_000)), None);
        *table.get_mut(&key(5)).unwrap() = 99;
        assert_eq!(table[&key(5)], 99);
        // An existing key is found, not inserted again.
        *table.get_or_insert_default(key(5)) += 1;
        assert_eq!((table[&key(5)], table.len()), (100, 20_000));
        assert_eq!(table.remove(&key(5)), Some(100));
        assert_eq!(table.remove(&key(5)), None);
        assert!(!table.contains_key(&key(5)));
        assert_eq!(table.len(), 19_999);
        assert_eq!(table.iter().count(), 19_999);
        let sum: u64 = table.iter().map(|(_, v)| u64::from(*v)).sum();
        assert_eq!(sum, (0..20_000u64).sum::<u64>() - 5);
    }

    #[test]
    fn retain_counts_and_shrink_gives_memory_back() {
        let mut table = TorrentTable::<u32>::default();
        assert_eq!(table.capacity(), 0, "an empty table allocates nothing");
        for i in 0..200_000 {
            table.entry(key(i)).or_insert_with(|| i);
        }
        let full = table.capacity();
        assert!(full >= 200_000);
        table.retain(|_, v| *v % 100 == 0);
        assert_eq!(table.len(), 2_000);
        assert!(table.iter().all(|(_, v)| *v % 100 == 0));
        table.shrink();
        assert!(
            table.capacity() < full / 10,
            "{} of {full}",
            table.capacity()
        );
        assert_eq!(table.get(&key(300)), Some(&300));
        assert_eq!(table.get(&key(301)), None);
        table.retain(|_, _| false);
        table.shrink();
        assert!(table.is_empty());
        assert_eq!(table.capacity(), 0, "emptied sub-tables free everything");
    }

    #[test]
    fn lookalike_keys_still_spread() {
        // Info hashes that differ only outside the bytes a naive split
        // would use still land in many sub-tables.
        let mut table = TorrentTable::<()>::default();
        for i in 0..10_000u32 {
            let mut bytes = [0u8; 20];
            bytes[19] = i as u8;
            bytes[18] = (i >> 8) as u8;
            table.entry(InfoHash(bytes)).or_default();
        }
        let biggest = table.subs.iter().map(HashTable::len).max().unwrap();
        assert!(biggest < 100, "{biggest}");
    }
}
