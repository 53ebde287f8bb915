//! `tracker-load udp`: BEP 15 load from many sockets over sendmmsg.

mod mmsg;
mod pending;
mod request;
mod validate;
mod worker;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use socket2::{Domain, Protocol, Socket, Type};
use tracker_proto::udp::PeerFamily;

use crate::config::Config;
use crate::profile::{mix64, Profile};
use crate::report::{Report, Stats};
use worker::{Live, Shared, Timing, Worker, WorkerConfig};

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

fn secs_to_ns(secs: f64) -> u64 {
    // Config validation bounds these; the cast saturates anyway.
    (secs * 1e9) as u64
}

fn open_socket(bind: IpAddr, tracker: SocketAddr, recv_buffer: usize) -> anyhow::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(tracker),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("creating a UDP socket")?;
    socket.set_nonblocking(true)?;
    if recv_buffer > 0 {
        // The kernel caps this at net.core.rmem_max; a smaller buffer only
        // risks drops, which are counted.
        let _ = socket.set_recv_buffer_size(recv_buffer);
    }
    socket
        .bind(&SocketAddr::new(bind, 0).into())
        .with_context(|| format!("binding a UDP socket to {bind}"))?;
    // Connected: the kernel then filters out anyone but the tracker, and
    // sendmmsg/recvmmsg need no addresses.
    socket
        .connect(&tracker.into())
        .with_context(|| format!("connecting a UDP socket to {tracker}"))?;
    Ok(socket)
}

/// Largest answer worth receiving whole: an announce with numwant IPv6
/// peers, a full scrape, or a generous error message.
fn recv_slot_len(numwant: i32) -> usize {
    let announce =
        usize::try_from(numwant).map_or(0, |n| 20usize.saturating_add(n.saturating_mul(18)));
    announce.clamp(2048, 65536)
}

/// Runs the configured load and returns what was counted in the measured
/// window. Fails if sockets cannot be set up or the tracker never answers.
pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<Outcome> {
    let u = &config.udp;
    let profile = Arc::new(Profile::new(&config.profile));
    let family = if u.tracker.is_ipv4() {
        PeerFamily::V4
    } else {
        PeerFamily::V6
    };
    let total_sockets = u.workers * u.sockets_per_worker;
    let mut sockets = Vec::with_capacity(u.workers);
    for w in 0..u.workers {
        let mut mine = Vec::with_capacity(u.sockets_per_worker);
        for s in 0..u.sockets_per_worker {
            let global = w * u.sockets_per_worker + s;
            let bind = u.bind[global % u.bind.len()];
            mine.push(open_socket(bind, u.tracker, u.recv_buffer_size)?);
        }
        sockets.push(mine);
    }

    let warmup_end_ns = secs_to_ns(u.warmup);
    let timing = Timing {
        warmup_end_ns,
        end_ns: warmup_end_ns.saturating_add(secs_to_ns(u.duration)),
        window_ns: secs_to_ns(u.window_timeout),
        timeout_ns: secs_to_ns(u.request_timeout),
        connection_id_max_age_ns: secs_to_ns(u.connection_id_max_age),
    };
    let shared = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
    });
    let mut handles = Vec::with_capacity(u.workers);
    let mut lives = Vec::with_capacity(u.workers);
    for (w, mine) in sockets.into_iter().enumerate() {
        let live = Arc::new(Live::default());
        let worker = Worker::new(
            WorkerConfig {
                profile: profile.clone(),
                timing,
                family,
                sockets: mine,
                first_socket: (w * u.sockets_per_worker) as u32,
                total_sockets: total_sockets as u32,
                batch_size: u.batch_size,
                max_in_flight: u.max_in_flight,
                recv_slot_len: recv_slot_len(config.profile.numwant),
                gso: u.gso,
                seed: mix64(config.profile.seed ^ 0x776f_726b ^ w as u64),
            },
            shared.clone(),
            live.clone(),
        )
        .context("setting up epoll")?;
        let handle = thread::Builder::new()
            .name(format!("udp-load-{w}"))
            .spawn(move || worker.run())
            .context("starting a worker thread")?;
        handles.push(handle);
        lives.push(live);
    }

    let unreachable = monitor(&shared, &lives, &handles, timing, options);

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
        let within = REACHABLE_WITHIN.min(Duration::from_nanos(timing.end_ns));
        bail!(
            "no response from the tracker at {} within {:.1} s{why}; is it running and \
             serving UDP there?",
            u.tracker,
            within.as_secs_f64()
        );
    }
    let report = Report::new(&stats, u.duration);
    Ok(Outcome { report, stats })
}

/// Watches the workers until they finish: prints progress, stops them if
/// the tracker never answers or they overrun. Returns whether the tracker
/// was found unreachable.
fn monitor(
    shared: &Shared,
    lives: &[Arc<Live>],
    handles: &[thread::JoinHandle<Stats>],
    timing: Timing,
    options: &RunOptions,
) -> bool {
    let hard_stop =
        Duration::from_nanos(timing.end_ns.saturating_add(timing.timeout_ns)) + STOP_GRACE;
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
            let phase = if now_ns < timing.warmup_end_ns {
                "warmup"
            } else if now_ns < timing.end_ns {
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
