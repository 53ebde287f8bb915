//! `cargo xtask bench flood`: what a flood of new info hashes does to a
//! legitimate client, and whether the memory comes back afterwards.
//!
//! The release tracker (one socket worker, one request worker) runs pinned
//! to core 0. On core 1, one thread floods it over loopback with BEP 15
//! announces for random info hashes from one socket (`sendmmsg`, one
//! connection id for the whole flood), niced so that the other thread, a
//! legitimate client announcing one known torrent at a steady rate on its
//! own socket, gets the core whenever it wakes. Every legitimate announce's
//! round trip is timed; one unanswered after a second is lost.
//!
//! The tracker runs with `max_peer_age = 5` and a cleaning interval that
//! first fires 10 s after the flood ends, so nothing expires during it and
//! everything (the legitimate peer too) has expired at that first clean.
//! RSS is read idle before the flood, at its peak (VmHWM), and a few
//! seconds after that clean.
//!
//! `--baseline PATH` (repeatable, each optionally named by a following
//! `--baseline-label NAME`) runs another tracker binary (a build of `main`,
//! say) the same way, alternating with this tree's, so all rows come from
//! the same machine state.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::Tracker;
use super::report::{command_line, cpu_model, git_revision, kernel, now_utc, write_sections};
use super::sample::{vm_hwm_kib, vm_rss_kib};
use super::udp::{free_loopback_port, probe};
use super::{check_stop, parse_opts_with, prepare, Defaults, GENERATOR_CPU};

const DEFAULTS: Defaults = Defaults {
    runs: 1,
    seconds: 20,
    warmup: 0,
    quick: (1, 3, 0),
    patience: (0, 0),
};

/// Legitimate announces per second.
const LEGIT_RATE: u64 = 1_000;
/// A legitimate announce unanswered this long is lost.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// Peers older than this are dropped at a clean; shorter than the wait
/// between the end of the flood and the first clean.
const PEER_AGE: u64 = 5;
/// Seconds from the end of the flood to the first clean.
const CLEAN_AFTER_FLOOD: u64 = 10;
/// Announces per `sendmmsg` of the flood.
const FLOOD_BATCH: usize = 32;
/// Flood announces per second unless `--flood-rate` says otherwise. One
/// core's worth of flood (`--flood-rate 0`) saturates a tracker on one
/// core, and then every request waits its turn in the full inbox, which
/// hides what a resize does; at a rate the tracker keeps up with, a
/// legitimate announce waits only when the request worker stalls.
const FLOOD_RATE: u64 = 100_000;

struct System {
    label: String,
    binary: PathBuf,
}

#[derive(Debug, Default)]
struct RunResult {
    label: String,
    flood_sent: u64,
    flood_seconds: f64,
    torrents: u64,
    legit_sent: u64,
    latencies_us: Vec<u64>,
    lost: u64,
    errors: u64,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
    rss_expired_kib: u64,
}

pub fn run(args: &[String], rest: &[String]) -> Result<()> {
    // (binary, label) of each --baseline, in the order given.
    let mut baselines: Vec<(PathBuf, String)> = Vec::new();
    let mut flood_rate = FLOOD_RATE;
    let mut it = rest.iter();
    let mut common = Vec::new();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--baseline" => {
                let path = PathBuf::from(it.next().context("--baseline needs a path")?);
                let label = format!("baseline {}", baselines.len() + 1);
                baselines.push((path, label));
            }
            "--baseline-label" => {
                let label = it.next().context("--baseline-label needs a name")?;
                baselines
                    .last_mut()
                    .context("--baseline-label names the --baseline before it")?
                    .1 = label.clone();
            }
            "--flood-rate" => {
                let v = it.next().context("--flood-rate needs a value")?;
                flood_rate = v
                    .parse()
                    .with_context(|| format!("--flood-rate {v}: not a whole number"))?;
            }
            _ => common.push(arg.clone()),
        }
    }
    let opts = parse_opts_with("flood", &common, DEFAULTS, |_| false)?;
    let work = prepare("flood", "it pins the tracker to core 0")?;
    let tracker = crate::workspace_root()
        .join("target")
        .join("release")
        .join("tracker-user");
    if opts.build {
        crate::run(
            &crate::cargo(),
            &["build", "--release", "-p", "tracker-user"],
        )?;
    }
    let mut systems = Vec::new();
    for (path, label) in baselines {
        if !path.is_file() {
            bail!("--baseline {}: no such file", path.display());
        }
        systems.push(System {
            label,
            binary: path,
        });
    }
    if !tracker.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p tracker-user`",
            tracker.display()
        );
    }
    let revision = git_revision();
    systems.push(System {
        label: format!("this tree ({revision})"),
        binary: tracker,
    });

    let started = now_utc();
    let mut results = Vec::new();
    for run in 0..opts.runs {
        for system in &systems {
            check_stop()?;
            eprintln!(
                "xtask: flood run {}/{} of {}",
                run + 1,
                opts.runs,
                system.label
            );
            let r = one_run(system, &work, opts.seconds, flood_rate)?;
            eprintln!("xtask:   {}", row(&r));
            results.push(r);
        }
    }
    let text = section(
        &command_line(args),
        &started,
        opts.seconds,
        flood_rate,
        &results,
    );
    print!("\n{text}\n");
    let path = write_sections("flood", &work, opts.quick, &[("flood", text)])?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

fn one_run(system: &System, work: &Path, seconds: u64, rate: u64) -> Result<RunResult> {
    let port = free_loopback_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let config = work.join("flood.tracker.toml");
    // Debug logging for the request worker's clean report; nothing on the
    // request path logs at that level.
    fs::write(
        &config,
        format!(
            "# written by cargo xtask bench flood\n\
             log_level = \"debug\"\n\n\
             [swarm]\nworkers = 1\nmax_peer_age = {PEER_AGE}\n\
             cleaning_interval = {}\n\n\
             [udp]\nworkers = 1\n\n\
             [http]\nlisten = []\n\n\
             [admin]\nlisten = []\n",
            seconds + CLEAN_AFTER_FLOOD + 2
        ),
    )?;
    let args = vec![
        "-c".to_owned(),
        config.display().to_string(),
        "--udp".to_owned(),
        addr.to_string(),
    ];
    let started = Instant::now();
    let mut tracker = Tracker::start(
        &system.binary,
        &args,
        None,
        &work.join("flood.tracker.log"),
        Some("UDP listening on"),
        &system.label,
    )?;
    let pid = tracker.pid();
    probe(addr, None, Duration::from_secs(10)).map_err(|e| tracker.explain(e))?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle_kib = vm_rss_kib(pid).unwrap_or(0);

    pin_to(GENERATOR_CPU)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || flood(addr, rate, &stop))
    };
    let legit = legit_client(addr, Duration::from_secs(seconds))?;
    stop.store(true, Ordering::SeqCst);
    let (flood_sent, flood_seconds) = flood.join().expect("flood thread")?;
    let rss_peak_kib = vm_hwm_kib(pid).unwrap_or(0);

    // The first clean comes cleaning_interval after the tracker started.
    let deadline = started + Duration::from_secs(seconds + CLEAN_AFTER_FLOOD + 40);
    let cleaned = loop {
        check_stop()?;
        if !tracker.alive() {
            bail!("{} exited:\n{}", system.label, tracker.log_tail());
        }
        if let Some(line) = tracker.log_line_containing("cleaned") {
            break line;
        }
        if Instant::now() > deadline {
            bail!("{} never cleaned:\n{}", system.label, tracker.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Give the allocator's deferred frees time to reach the kernel.
    std::thread::sleep(Duration::from_secs(3));
    let rss_expired_kib = vm_rss_kib(pid).unwrap_or(0);
    Ok(RunResult {
        label: system.label.clone(),
        flood_sent,
        flood_seconds,
        torrents: torrents_removed(&cleaned)
            .with_context(|| format!("reading the clean report `{cleaned}`"))?,
        legit_sent: legit.sent,
        latencies_us: legit.latencies_us,
        lost: legit.lost,
        errors: legit.errors,
        rss_idle_kib,
        rss_peak_kib,
        rss_expired_kib,
    })
}

/// From "request worker 0: cleaned P peers, T torrents; …": T.
fn torrents_removed(line: &str) -> Option<u64> {
    let after = &line[line.find("cleaned ")? + "cleaned ".len()..];
    let torrents = after.split(',').nth(1)?.trim();
    torrents.split_whitespace().next()?.parse().ok()
}

fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; the call affects this thread,
    // and threads spawned from it inherit the mask.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("pinning to core {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A connected socket with a connection id from the tracker at `addr`.
fn connected(addr: SocketAddr) -> Result<(UdpSocket, u64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    for attempt in 0..10u32 {
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&0x0417_2710_1980u64.to_be_bytes());
        req[12..].copy_from_slice(&attempt.to_be_bytes());
        socket.send(&req)?;
        let mut buf = [0u8; 64];
        if let Ok(n) = socket.recv(&mut buf) {
            if n >= 16 && buf[..4] == [0; 4] && buf[4..8] == attempt.to_be_bytes() {
                let id = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                return Ok((socket, id));
            }
        }
    }
    bail!("no connect response from {addr}")
}

/// A 98-byte BEP 15 announce of a leecher on port 6881.
fn announce(connection_id: u64, tid: u32, info_hash: &[u8; 20]) -> [u8; 98] {
    let mut p = [0u8; 98];
    p[..8].copy_from_slice(&connection_id.to_be_bytes());
    p[8..12].copy_from_slice(&1u32.to_be_bytes());
    p[12..16].copy_from_slice(&tid.to_be_bytes());
    p[16..36].copy_from_slice(info_hash);
    p[36..56].copy_from_slice(b"-XF0001-flood-bench-");
    p[64..72].copy_from_slice(&1000u64.to_be_bytes()); // left
    p[92..96].copy_from_slice(&50i32.to_be_bytes()); // numwant
    p[96..98].copy_from_slice(&6881u16.to_be_bytes());
    p
}

/// Sends announces for new random info hashes, `rate` a second (0: as
/// fast as it can), until `stop`; returns how many were sent and over how
/// many seconds.
fn flood(addr: SocketAddr, rate: u64, stop: &AtomicBool) -> Result<(u64, f64)> {
    // SAFETY: lowers this thread's own priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
    let (socket, id) = connected(addr)?;
    let mut packets = [[0u8; 98]; FLOOD_BATCH];
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut sent = 0u64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if rate > 0 && sent as f64 >= started.elapsed().as_secs_f64() * rate as f64 {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        for (i, packet) in packets.iter_mut().enumerate() {
            let mut hash = [0u8; 20];
            for chunk in hash.chunks_mut(8) {
                state = splitmix(state);
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            *packet = announce(id, i as u32, &hash);
        }
        // SAFETY: all-zero is a valid iovec (null pointer, length 0); each
        // is filled in below before the kernel sees it.
        let mut iov: [libc::iovec; FLOOD_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: all-zero is a valid, empty mmsghdr; filled in below.
        let mut msgs: [libc::mmsghdr; FLOOD_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..FLOOD_BATCH {
            iov[i].iov_base = packets[i].as_mut_ptr().cast();
            iov[i].iov_len = packets[i].len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of this frame; the
        // socket is connected, so no addresses are needed.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                FLOOD_BATCH as libc::c_uint,
                0,
            )
        };
        if n > 0 {
            sent += n as u64;
        }
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}

fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Legit {
    sent: u64,
    latencies_us: Vec<u64>,
    lost: u64,
    errors: u64,
}

/// Announces one known torrent [`LEGIT_RATE`] times a second for
/// `duration`, timing every answer.
fn legit_client(addr: SocketAddr, duration: Duration) -> Result<Legit> {
    let (socket, id) = connected(addr)?;
    socket.set_nonblocking(true)?;
    let period = Duration::from_nanos(1_000_000_000 / LEGIT_RATE);
    let total = (duration.as_secs_f64() * LEGIT_RATE as f64) as usize;
    let mut sent_at: Vec<Option<Instant>> = vec![None; total];
    let mut latencies_us = Vec::with_capacity(total);
    let mut errors = 0u64;
    let info_hash = *b"legitimate-torrent!!";
    let started = Instant::now();
    let mut next = 0usize;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if next < total && now >= started + period * next as u32 {
            let packet = announce(id, next as u32, &info_hash);
            let _ = socket.send(&packet);
            sent_at[next] = Some(Instant::now());
            next += 1;
            continue;
        }
        match socket.recv(&mut buf) {
            Ok(n) if n >= 8 => {
                let action = u32::from_be_bytes(buf[..4].try_into().unwrap());
                let tid = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
                if let Some(at) = sent_at.get_mut(tid).and_then(Option::take) {
                    if action == 1 {
                        latencies_us.push(at.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if next >= total {
                    let last = started + period * total as u32;
                    if now > last + LOST_AFTER {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Answers later than LOST_AFTER count as lost, as a client gives up.
    let late = latencies_us
        .iter()
        .filter(|&&us| us > LOST_AFTER.as_micros() as u64)
        .count();
    latencies_us.retain(|&us| us <= LOST_AFTER.as_micros() as u64);
    let unanswered = sent_at.iter().filter(|s| s.is_some()).count();
    Ok(Legit {
        sent: total as u64,
        latencies_us,
        lost: (unanswered + late) as u64,
        errors,
    })
}

/// The `q` quantile (0..=1) of sorted `v`, in ms.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

fn row(r: &RunResult) -> String {
    let mut lat = r.latencies_us.clone();
    lat.sort_unstable();
    format!(
        "| {} | {:.0} k/s | {:.2} M | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
        r.label,
        r.flood_sent as f64 / r.flood_seconds / 1000.0,
        r.torrents as f64 / 1e6,
        r.legit_sent,
        quantile_ms(&lat, 0.5),
        quantile_ms(&lat, 0.99),
        quantile_ms(&lat, 0.999),
        lat.last().map_or(f64::NAN, |&us| us as f64 / 1000.0),
        r.lost,
        r.errors,
        mib(r.rss_idle_kib),
        mib(r.rss_peak_kib),
        mib(r.rss_expired_kib),
    )
}

fn section(command: &str, started: &str, seconds: u64, rate: u64, results: &[RunResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Flood of new info hashes (BEP 15, loopback)\n");
    let _ = writeln!(
        s,
        "`{command}`, started {started}, on {} ({}).\n",
        cpu_model(),
        kernel()
    );
    let _ = writeln!(
        s,
        "The tracker (1 socket worker, 1 request worker) is pinned to core 0. On \
         core 1, one niced thread floods it for {seconds} s with announces for new \
         random info hashes from one socket (`sendmmsg`, one connection id; {}), while \
         a legitimate client on another socket announces one known torrent \
         {LEGIT_RATE} times a second and times every answer; one unanswered after \
         {} s is lost. Torrents stored: those the first clean removed. With \
         `max_peer_age = {PEER_AGE}`, that clean comes {CLEAN_AFTER_FLOOD} s after \
         the flood and expires everything; RSS after expiry is read 3 s later. \
         Latencies in ms, RSS in MiB.\n",
        if rate == 0 {
            "as fast as it can".to_owned()
        } else {
            format!("paced to {rate}/s")
        },
        LOST_AFTER.as_secs()
    );
    let _ = writeln!(
        s,
        "| tracker | flood sent | torrents stored | legit announces | p50 | p99 | p99.9 | max | lost | errors | RSS idle | RSS peak | RSS after expiry |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let _ = writeln!(s, "{}", row(r));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_report_gives_torrents_removed() {
        let line = "2026-12-06T04:10:00Z DEBUG request worker 0: cleaned 3 peers, 2 torrents; 1 torrents, 4 peers left";
        assert_eq!(torrents_removed(line), Some(2));
        assert_eq!(torrents_removed("no report"), None);
    }

    #[test]
    fn quantiles_of_sorted_latencies() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 0.501);
        assert_eq!(quantile_ms(&v, 1.0), 1.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
