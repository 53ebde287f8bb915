//! What every load shares around its workers: the clock and stop flag, the
//! live counters behind the progress line, the monitor that watches the
//! workers, and turning their counts into the report.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::report::{Protocol, Report, Stats};

/// With no answer at all by then, the tracker is taken to be unreachable.
const REACHABLE_WITHIN: Duration = Duration::from_secs(3);
/// Slack past the planned end before workers are told to stop regardless.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How the run is watched.
pub struct RunOptions {
    /// Print a progress line on stderr once a second.
    pub progress: bool,
}

pub struct Outcome {
    pub report: Report,
    pub stats: Stats,
}

pub fn secs_to_ns(secs: f64) -> u64 {
    // Config validation bounds these; the cast saturates anyway.
    (secs * 1e9) as u64
}

/// Shared by all workers and the monitor.
pub struct Shared {
    pub start: Instant,
    /// Set by the monitor to end the run early.
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            stop: AtomicBool::new(false),
        })
    }

    /// Nanoseconds since the run started.
    #[inline]
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Running totals for the progress line and the unreachable check. Only
/// the owning worker writes them.
#[derive(Default)]
pub struct Live {
    /// Requests sent, warmup included.
    pub sent: AtomicU64,
    /// Answers (datagrams, HTTP responses, WebSocket messages) received,
    /// warmup included.
    pub received: AtomicU64,
    /// Error and invalid responses in the measured window.
    pub errors: AtomicU64,
    /// Lost requests in the measured window.
    pub lost: AtomicU64,
}

impl Live {
    /// Publishes a worker's totals so far.
    pub fn publish(&self, sent_all: u64, received_all: u64, stats: &Stats) {
        self.sent.store(sent_all, Ordering::Relaxed);
        self.received.store(received_all, Ordering::Relaxed);
        self.errors.store(
            stats.error_responses + stats.invalid.total(),
            Ordering::Relaxed,
        );
        self.lost.store(stats.lost, Ordering::Relaxed);
    }
}

/// The phases of a run, in nanoseconds since `Shared::start`: load before
/// `warmup_end_ns` is not counted, nothing is sent from `end_ns` on, and
/// answers are awaited until `timeout_ns` after that.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub warmup_end_ns: u64,
    pub end_ns: u64,
    pub timeout_ns: u64,
}

impl Window {
    pub fn new(warmup: f64, duration: f64, request_timeout: f64) -> Self {
        let warmup_end_ns = secs_to_ns(warmup);
        Self {
            warmup_end_ns,
            end_ns: warmup_end_ns.saturating_add(secs_to_ns(duration)),
            timeout_ns: secs_to_ns(request_timeout),
        }
    }

    /// Whether requests sent at `now` are measured.
    #[inline]
    pub fn measuring(&self, now: u64) -> bool {
        now >= self.warmup_end_ns
    }

    /// Whether new requests may go out at `now`.
    #[inline]
    pub fn sending(&self, now: u64) -> bool {
        now < self.end_ns
    }

    /// Whether waiting for the measured window's answers is over at `now`
    /// (they would be counted lost by now anyway).
    #[inline]
    pub fn drained(&self, now: u64) -> bool {
        now >= self.end_ns.saturating_add(self.timeout_ns)
    }
}

/// What the report says about the run and its target.
pub struct Target {
    pub protocol: Protocol,
    pub tracker: SocketAddr,
    pub duration: f64,
}

/// Watches the workers until they finish, then merges what they counted
/// into the outcome. Fails if the tracker never answered.
pub fn supervise(
    shared: &Shared,
    lives: &[Arc<Live>],
    handles: Vec<thread::JoinHandle<Stats>>,
    window: Window,
    options: &RunOptions,
    target: &Target,
) -> anyhow::Result<Outcome> {
    let unreachable = monitor(shared, lives, &handles, window, options);
    let mut stats = Stats::default();
    for handle in handles {
        match handle.join() {
            Ok(s) => stats.merge(&s),
            Err(_) => bail!("a worker thread panicked"),
        }
    }
    let received: u64 = lives
        .iter()
        .map(|l| l.received.load(Ordering::Relaxed))
        .sum();
    if unreachable || received == 0 {
        let why = stats
            .first_io_error
            .as_deref()
            .map(|e| format!(" (first socket error: {e})"))
            .unwrap_or_default();
        let within = REACHABLE_WITHIN.min(Duration::from_nanos(window.end_ns));
        bail!(
            "no response from the tracker at {} within {:.1} s{why}; is it running and \
             serving {} there?",
            target.tracker,
            within.as_secs_f64(),
            target.protocol.name()
        );
    }
    let report = Report::new(target.protocol, &stats, target.duration);
    Ok(Outcome { report, stats })
}

/// Watches the workers until they finish: prints progress, stops them if
/// the tracker never answers or they overrun. Returns whether the tracker
/// was found unreachable.
fn monitor(
    shared: &Shared,
    lives: &[Arc<Live>],
    handles: &[thread::JoinHandle<Stats>],
    window: Window,
    options: &RunOptions,
) -> bool {
    let hard_stop =
        Duration::from_nanos(window.end_ns.saturating_add(window.timeout_ns)) + STOP_GRACE;
    let total = |f: fn(&Live) -> u64| lives.iter().map(|l| f(l)).sum::<u64>();
    let mut unreachable = false;
    let mut next_tick = Duration::from_secs(1);
    let mut last = (0u64, 0u64, Duration::ZERO);
    let mut printed = false;
    let mut stderr = std::io::stderr();
    while !handles.iter().all(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(50));
        let elapsed = shared.start.elapsed();
        let received = total(|l| l.received.load(Ordering::Relaxed));
        if received == 0 && elapsed >= REACHABLE_WITHIN && !unreachable {
            unreachable = true;
            shared.stop.store(true, Ordering::Relaxed);
        }
        if elapsed >= hard_stop {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if options.progress && elapsed >= next_tick {
            next_tick += Duration::from_secs(1);
            let sent = total(|l| l.sent.load(Ordering::Relaxed));
            let span = (elapsed - last.2).as_secs_f64().max(1e-3);
            // The phase most of the last second was in.
            let now_ns = ((last.2 + elapsed) / 2).as_nanos() as u64;
            let phase = if !window.measuring(now_ns) {
                "warmup"
            } else if window.sending(now_ns) {
                "measure"
            } else {
                "drain"
            };
            let _ = write!(
                stderr,
                "\r{phase:>7} {:>6.1} s  sent {:>10.0}/s  received {:>10.0}/s  errors {}  lost {}\x1b[K",
                elapsed.as_secs_f64(),
                (sent - last.0) as f64 / span,
                (received - last.1) as f64 / span,
                total(|l| l.errors.load(Ordering::Relaxed)),
                total(|l| l.lost.load(Ordering::Relaxed)),
            );
            let _ = stderr.flush();
            printed = true;
            last = (sent, received, elapsed);
        }
    }
    if printed {
        let _ = writeln!(stderr);
    }
    unreachable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_phases() {
        let w = Window::new(1.0, 2.0, 0.5);
        assert!(!w.measuring(999_999_999) && w.measuring(1_000_000_000));
        assert!(w.sending(2_999_999_999) && !w.sending(3_000_000_000));
        assert!(!w.drained(3_499_999_999) && w.drained(3_500_000_000));
    }
}
