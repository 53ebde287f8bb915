//! Coarse clocks read on the hot path.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the tracker started: peer ages fit a u32 and never jump
/// with wall-clock changes.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    /// Seconds the clock reads at its start.
    past: u32,
}

impl Clock {
    pub fn start() -> Self {
        Self::with_past(0)
    }

    /// A clock that reads `past` seconds at its start, so that peers
    /// restored from a snapshot can be given times up to `past` seconds
    /// before it and keep their age.
    pub fn with_past(past: u32) -> Self {
        Self {
            start: Instant::now(),
            past,
        }
    }

    pub fn now_secs(&self) -> u32 {
        (self.start.elapsed().as_secs() as u32).saturating_add(self.past)
    }
}

/// The connection-id tick: unix seconds, wrapping in 2106. Wall-clock time
/// rather than `Clock` because the XDP program stamps ids with a tick that
/// userland publishes, and both must agree across restarts of either.
pub fn unix_tick() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}
