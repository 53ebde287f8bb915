//! The two primitives every worker writes: a [`Counter`] only ever goes up,
//! a [`Gauge`] is set to what its owner knows now.
//!
//! Each belongs to one worker thread, which is its only writer; the admin
//! thread reads it when scraped. With one writer an increment needs no
//! read-modify-write instruction: a relaxed load and a relaxed store
//! compile to two plain moves on x86-64 and AArch64, with no lock prefix
//! and no cache line fought over, so the hot path pays what a plain `u64`
//! would. Blocks of them are aligned to their own cache lines
//! ([`CacheAligned`]) so one worker's writes never evict another's.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonic count with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this: two writers would
    /// lose increments (which is why it is not a `fetch_add`).
    #[inline]
    pub fn add(&self, n: u64) {
        let now = self.0.load(Ordering::Relaxed);
        self.0.store(now.wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level with a single writer: open connections, peers held.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Keeps a worker's block of counters off its neighbours' cache lines (128
/// bytes: adjacent-line prefetch pairs 64-byte lines on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CacheAligned<T>(pub T);

impl<T> std::ops::Deref for CacheAligned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Sums one figure over every worker's block.
pub fn sum<T>(blocks: &[std::sync::Arc<CacheAligned<T>>], figure: impl Fn(&T) -> u64) -> u64 {
    blocks.iter().map(|b| figure(&b.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_gauges_hold_the_last_value() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::default();
        g.set(7);
        g.set(3);
        assert_eq!(g.get(), 3);
    }

    #[test]
    fn blocks_sit_on_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<CacheAligned<Counter>>(), 128);
        let blocks: Vec<_> = (1..=3u64)
            .map(|n| {
                let b = std::sync::Arc::new(CacheAligned(Counter::default()));
                b.add(n);
                b
            })
            .collect();
        assert_eq!(sum(&blocks, Counter::get), 6);
    }
}
