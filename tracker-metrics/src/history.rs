//! Request rates over the last minutes, for the stats page's chart: the
//! main thread samples the totals every [`HISTORY_INTERVAL`] and keeps the
//! rates between samples in a fixed ring, so the page shows a trend the
//! moment it opens and the memory is bounded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::labels::Protocol;
use crate::registry::Snapshot;

/// How often the rates are sampled.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes at [`HISTORY_INTERVAL`].
pub const HISTORY_LEN: usize = 120;

/// Requests per second over one interval, by protocol, plus in-kernel
/// connects, drops and errors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateSample {
    /// Unix seconds at the end of the interval.
    pub unix_time_seconds: f64,
    pub requests_per_second: [f64; Protocol::COUNT],
    pub connects_in_kernel_per_second: f64,
    pub dropped_per_second: f64,
    pub errors_per_second: f64,
}

#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    last: Option<Totals>,
    samples: VecDeque<RateSample>,
}

#[derive(Clone, Copy, Debug)]
struct Totals {
    at: f64,
    requests: [u64; Protocol::COUNT],
    in_kernel: u64,
    dropped: u64,
    errors: u64,
}

impl Totals {
    fn of(s: &Snapshot) -> Self {
        let mut requests = [0; Protocol::COUNT];
        for p in Protocol::ALL {
            requests[p.index()] = s.requests_of(*p);
        }
        Self {
            at: s.unix_time_seconds,
            requests,
            in_kernel: s.connects_in_kernel(),
            dropped: s.dropped.iter().sum(),
            errors: s.errors.iter().flatten().sum(),
        }
    }
}

impl History {
    pub fn push(&self, snapshot: &Snapshot) {
        let now = Totals::of(snapshot);
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = ring.last {
            let secs = now.at - last.at;
            if secs > 0.0 {
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                let mut requests_per_second = [0.0; Protocol::COUNT];
                for (i, r) in requests_per_second.iter_mut().enumerate() {
                    *r = rate(now.requests[i], last.requests[i]);
                }
                if ring.samples.len() == HISTORY_LEN {
                    ring.samples.pop_front();
                }
                ring.samples.push_back(RateSample {
                    unix_time_seconds: now.at,
                    requests_per_second,
                    connects_in_kernel_per_second: rate(now.in_kernel, last.in_kernel),
                    dropped_per_second: rate(now.dropped, last.dropped),
                    errors_per_second: rate(now.errors, last.errors),
                });
            }
        }
        ring.last = Some(now);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<RateSample> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ring.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, udp: u64, dropped: u64) -> Snapshot {
        let mut s = Snapshot {
            unix_time_seconds: t,
            ..Snapshot::default()
        };
        s.requests[Protocol::Udp.index()][0] = udp;
        s.dropped[Protocol::Udp.index()] = dropped;
        s
    }

    #[test]
    fn rates_are_per_second_between_samples_and_the_ring_is_bounded() {
        let h = History::default();
        h.push(&at(100.0, 0, 0));
        assert!(h.samples().is_empty(), "one sample has no rate yet");
        h.push(&at(105.0, 500, 10));
        let s = h.samples();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].requests_per_second[Protocol::Udp.index()], 100.0);
        assert_eq!(s[0].dropped_per_second, 2.0);
        for i in 0..(HISTORY_LEN as u64 + 10) {
            h.push(&at(110.0 + i as f64, 1000 + i, 10));
        }
        let s = h.samples();
        assert_eq!(s.len(), HISTORY_LEN);
        assert_eq!(s.last().unwrap().requests_per_second[0], 1.0);
    }
}
