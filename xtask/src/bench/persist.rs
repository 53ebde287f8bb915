//! `cargo xtask bench persist`: what `[persistence]` costs at aquatic's
//! default profile (1 M torrents, 2 M peers).
//!
//! Per run, with the release tracker pinned to core 0 (one socket worker,
//! one request worker) and the generator on core 1:
//!
//! 1. a fresh tracker is prefilled by the generator over loopback (every
//!    simulated client announced once), then stopped with SIGTERM: the
//!    snapshot it writes then is timed by the tracker itself (request to
//!    file renamed into place, and the longest slice the request worker
//!    spent on it between batches), and the file's size is read;
//! 2. the tracker starts again from that file: its own restore time, and
//!    the wall time from spawn to its ready line;
//! 3. the restored tracker, now snapshotting every second, serves the
//!    generator's load for `--seconds`: the snapshots written under load
//!    (their time and longest pause) and the generator's latency.
//!
//! Figures come from the tracker's log lines (`snapshot of … in N ms;
//! longest request worker pause N us`, `restored … in N ms`), so the bench
//! measures exactly what the tracker reports in production.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::{Proc, Tracker};
use super::report::{
    command_line, cpu_model, git_revision, kernel, median, now_utc, thousands, write_sections,
};
use super::udp::{free_loopback_port, probe};
use super::{
    check_stop, generator_keys, has_key, parse_opts_with, prepare, write_load_config, Binaries,
    Defaults, Opts, GENERATOR_CPU, ONE_HOST_PEERS_PER_IP,
};

const DEFAULTS: Defaults = Defaults {
    runs: 3,
    seconds: 8,
    warmup: 1,
    quick: (1, 3, 1),
    patience: (0, 0),
};

/// aquatic's default profile.
const TORRENTS: u32 = 1_000_000;
const PEERS: u32 = 2_000_000;
/// `--quick`'s population: checks the harness in seconds.
const QUICK: (u32, u32) = (10_000, 20_000);

const USAGE: &str = "\
usage: cargo xtask bench persist [--runs N] [--seconds S] [--quick] [--no-build]

  [persistence] at aquatic's default profile (1M torrents, 2M peers) over
  loopback: snapshot time and the longest request-worker pause (at SIGTERM
  after a prefill, and every second under load), bytes per peer on disk,
  restore time and start-up to ready. Medians into the `persist` section
  of docs/benchmarks.md.

  --runs N      runs (default 3)
  --seconds S   seconds of load while snapshotting every second (default 8)
  --quick       1 run over 10k torrents × 20k peers: checks the harness;
                results go to target/bench/benchmarks-quick-persist.md
  --no-build    use the binaries already in target/release
";

/// One snapshot as the tracker logged it.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    torrents: u64,
    peers: u64,
    bytes: u64,
    ms: u64,
    pause_us: u64,
    /// The CPU time of that slice: the pause without preemption.
    pause_cpu_us: u64,
}

/// `snapshot of T torrents and P peers written to F (B bytes) in M ms;
/// longest request worker pause U us (C us of CPU)`, from a text or JSON
/// log line.
fn parse_snapshot(line: &str) -> Option<Snapshot> {
    let rest = &line[line.find("snapshot of ")? + "snapshot of ".len()..];
    let number_after = |text: &str, key: &str| -> Option<u64> {
        let at = text.find(key)? + key.len();
        let digits: String = text[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let torrents = number_after(rest, "")?;
    Some(Snapshot {
        torrents,
        peers: number_after(rest, "torrents and")?,
        bytes: number_after(rest, "(")?,
        ms: number_after(rest, "bytes) in")?,
        pause_us: number_after(rest, "pause")?,
        pause_cpu_us: number_after(rest, "us (")?,
    })
}

/// `restored T torrents and P peers … in M ms` → (peers, ms).
fn parse_restore(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find("restored ")? + "restored ".len()..];
    let peers_at = rest.find("torrents and ")? + "torrents and ".len();
    let peers: u64 = rest[peers_at..].split_whitespace().next()?.parse().ok()?;
    let ms_at = rest.find(" ago, in ")? + " ago, in ".len();
    let ms: u64 = rest[ms_at..].split_whitespace().next()?.parse().ok()?;
    Some((peers, ms))
}

struct RunFigures {
    at_stop: Snapshot,
    file_bytes: u64,
    restored_peers: u64,
    restore_ms: u64,
    start_to_ready_ms: u64,
    under_load: Vec<Snapshot>,
    responses_per_s: f64,
    latency_p99_us: f64,
    latency_max_us: f64,
    /// The same load on the same restored swarm, without snapshots.
    quiet_responses_per_s: f64,
    quiet_p99_us: f64,
    quiet_max_us: f64,
}

/// `cargo xtask bench persist`.
pub fn run(args: &[String], rest: &[String]) -> Result<()> {
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return Ok(());
    }
    let opts = parse_opts_with("persist", rest, DEFAULTS, |_| false)?;
    let work = prepare("persist", "it pins processes to cores")?.join("persist");
    fs::create_dir_all(&work)?;
    let bins = Binaries::locate("aquatic_udp");
    if opts.build {
        super::build_ours()?;
    }
    for path in [&bins.tracker, &bins.load] {
        if !path.is_file() {
            bail!("{} is missing: run without --no-build", path.display());
        }
    }
    let gen_keys = generator_keys(&bins.load, "udp")?;
    if !has_key(&gen_keys, "udp", "prefill") {
        bail!("{} has no udp.prefill: rebuild it", bins.load.display());
    }
    let (torrents, peers) = if opts.quick { QUICK } else { (TORRENTS, PEERS) };
    let started = now_utc();
    let mut runs = Vec::new();
    for round in 0..opts.runs {
        eprintln!("xtask: bench persist: run {} of {}", round + 1, opts.runs);
        let r = one_run(&bins, &opts, &work, round, torrents, peers)?;
        eprintln!(
            "xtask: snapshot of {} peers at SIGTERM {} ms (longest pause {} us), {} bytes \
             ({:.1}/peer); restore {} ms, ready after {} ms; under load: {} snapshots, \
             longest pause {} us, latency p99 {} us max {} us",
            r.at_stop.peers,
            r.at_stop.ms,
            r.at_stop.pause_us,
            r.file_bytes,
            r.file_bytes as f64 / r.at_stop.peers.max(1) as f64,
            r.restore_ms,
            r.start_to_ready_ms,
            r.under_load.len(),
            r.under_load.iter().map(|s| s.pause_us).max().unwrap_or(0),
            r.latency_p99_us,
            r.latency_max_us
        );
        runs.push(r);
    }
    let text = report(&opts, &command_line(args), &started, torrents, peers, &runs);
    print!("\n{text}\n");
    let path = write_sections("persist", &work, opts.quick, &[("persist", text)])?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

fn tracker_config(work: &Path, tag: &str, snapshot: &Path, interval: u64) -> Result<PathBuf> {
    let text = format!(
        "# written by cargo xtask bench persist\n\
         log_level = \"info\"\n\n\
         [swarm]\nworkers = 1\nmax_peer_age = 3600\n\
         max_peers_per_ip = {ONE_HOST_PEERS_PER_IP}\n\n\
         [udp]\nworkers = 1\n\n\
         [http]\nlisten = []\n\n\
         [admin]\nlisten = []\n\n\
         [persistence]\npath = {:?}\ninterval = {interval}\n",
        snapshot.display().to_string()
    );
    let path = work.join(format!("{tag}.tracker.toml"));
    fs::write(&path, text)?;
    Ok(path)
}

fn start(
    bins: &Binaries,
    config: &Path,
    addr: SocketAddr,
    log: &Path,
) -> Result<(Tracker, Duration)> {
    let args = vec![
        "-c".to_owned(),
        config.display().to_string(),
        "--udp".to_owned(),
        addr.to_string(),
    ];
    let spawned = Instant::now();
    let tracker = Tracker::start(
        &bins.tracker,
        &args,
        None,
        log,
        Some("UDP listening on"),
        "tracker-user",
    )?;
    let ready = spawned.elapsed();
    probe(addr, None, Duration::from_secs(20)).map_err(|e| tracker.explain(e))?;
    Ok((tracker, ready))
}

/// Runs the generator with `text` as its config to the end; its JSON.
fn generate(
    bins: &Binaries,
    opts: &Opts,
    work: &Path,
    tag: &str,
    text: String,
) -> Result<serde_json::Value> {
    let config = write_load_config(work, tag, opts, text)?;
    let args = vec![
        "udp".to_owned(),
        "-c".to_owned(),
        config.display().to_string(),
        "--json".to_owned(),
    ];
    let err_path = work.join(format!("{tag}.load.stderr"));
    let mut gen = Proc::spawn(
        &bins.load,
        &args,
        None,
        GENERATOR_CPU,
        Stdio::piped(),
        Stdio::from(fs::File::create(&err_path)?),
    )?;
    let mut out = gen.child.stdout.take().context("generator stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    let status = gen.wait_until(Instant::now() + Duration::from_secs(600))?;
    let json = reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "the generator failed ({status}); see {}",
            err_path.display()
        );
    }
    fs::write(work.join(format!("{tag}.load.json")), &json)?;
    let line = json
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON from the generator")?;
    Ok(serde_json::from_str(line)?)
}

fn load_text(addr: SocketAddr, torrents: u32, peers: u32, prefill: bool) -> String {
    let mut text = String::from("# written by cargo xtask bench persist\n");
    let _ = writeln!(text, "[profile]\ntorrents = {torrents}\npeers = {peers}\n");
    let _ = writeln!(text, "[udp]\ntracker = \"{addr}\"\nworkers = 1");
    if prefill {
        let _ = writeln!(text, "prefill = true");
    }
    text
}

/// Waits (60 s at most) for the tracker to exit after SIGTERM.
fn stop(mut tracker: Tracker) -> Result<Tracker> {
    // SAFETY: signalling our own child, which is not reaped yet.
    unsafe { libc::kill(tracker.pid() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tracker.alive() {
        check_stop()?;
        if Instant::now() > deadline {
            bail!("the tracker did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reader thread may still hold the last lines.
    std::thread::sleep(Duration::from_millis(200));
    Ok(tracker)
}

fn one_run(
    bins: &Binaries,
    opts: &Opts,
    work: &Path,
    round: usize,
    torrents: u32,
    peers: u32,
) -> Result<RunFigures> {
    check_stop()?;
    let snapshot = work.join(format!("run-{}.snapshot", round + 1));
    let _ = fs::remove_file(&snapshot);
    let port = free_loopback_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;

    // 1. Prefill, then SIGTERM.
    let tag = format!("persist-{}-fill", round + 1);
    let config = tracker_config(work, &tag, &snapshot, 3600)?;
    let (tracker, _) = start(
        bins,
        &config,
        addr,
        &work.join(format!("{tag}.tracker.log")),
    )?;
    let short = Opts {
        seconds: 2,
        warmup: 0,
        ..opts.clone()
    };
    generate(
        bins,
        &short,
        work,
        &tag,
        load_text(addr, torrents, peers, true),
    )
    .map_err(|e| tracker.explain(e))?;
    let tracker = stop(tracker)?;
    let at_stop = tracker
        .log_line_containing("snapshot of ")
        .and_then(|l| parse_snapshot(&l))
        .with_context(|| format!("no snapshot line:\n{}", tracker.log_tail()))?;
    let file_bytes = fs::metadata(&snapshot)
        .with_context(|| format!("no snapshot at {}", snapshot.display()))?
        .len();
    if file_bytes != at_stop.bytes {
        bail!(
            "the tracker said it wrote {} bytes, {} holds {file_bytes}",
            at_stop.bytes,
            snapshot.display()
        );
    }
    drop(tracker);

    // 2. Restore, and the same load without snapshots, for comparison.
    let tag = format!("persist-{}-restore", round + 1);
    let config = tracker_config(work, &tag, &snapshot, 3600)?;
    let (tracker, ready) = start(
        bins,
        &config,
        addr,
        &work.join(format!("{tag}.tracker.log")),
    )?;
    let (restored_peers, restore_ms) = tracker
        .log_line_containing("restored ")
        .and_then(|l| parse_restore(&l))
        .with_context(|| format!("no restore line:\n{}", tracker.log_tail()))?;
    let load = load_text(addr, torrents, peers, false);
    let quiet = generate(bins, opts, work, &tag, load.clone()).map_err(|e| tracker.explain(e))?;
    drop(stop(tracker)?);

    // 3. Restored again, the same load while snapshotting every second.
    let tag = format!("persist-{}-load", round + 1);
    let config = tracker_config(work, &tag, &snapshot, 1)?;
    let log = work.join(format!("{tag}.tracker.log"));
    let (tracker, _) = start(bins, &config, addr, &log)?;
    let report = generate(bins, opts, work, &tag, load).map_err(|e| tracker.explain(e))?;
    drop(stop(tracker)?);
    // Every snapshot but the last (at SIGTERM, with no load).
    let text = fs::read_to_string(&log)?;
    let mut under_load: Vec<Snapshot> = text.lines().filter_map(parse_snapshot).collect();
    under_load.pop();
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    Ok(RunFigures {
        at_stop,
        file_bytes,
        restored_peers,
        restore_ms,
        start_to_ready_ms: ready.as_millis() as u64,
        under_load,
        responses_per_s: number(&report["responses_per_second"]),
        latency_p99_us: number(&report["latency_us"]["p99"]),
        latency_max_us: number(&report["latency_us"]["max"]),
        quiet_responses_per_s: number(&quiet["responses_per_second"]),
        quiet_p99_us: number(&quiet["latency_us"]["p99"]),
        quiet_max_us: number(&quiet["latency_us"]["max"]),
    })
}

fn med(runs: &[RunFigures], f: impl Fn(&RunFigures) -> f64) -> f64 {
    median(runs.iter().map(f).collect())
}

fn report(
    opts: &Opts,
    command: &str,
    started: &str,
    torrents: u32,
    peers: u32,
    runs: &[RunFigures],
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "## Persistence: snapshot and restore of {} torrents × {} peers\n",
        thousands(f64::from(torrents)),
        thousands(f64::from(peers))
    );
    let _ = writeln!(
        t,
        "`{command}` on {started}: {} run(s); {}, kernel {}, git {}.\n",
        runs.len(),
        cpu_model(),
        kernel(),
        git_revision()
    );
    let _ = writeln!(
        t,
        "The release tracker (one socket worker, one request worker, pinned to core 0) is \
         prefilled over loopback by `tracker-load` (aquatic's default profile: every client \
         announced once), stopped with SIGTERM, started again from its snapshot, then serves \
         the generator's load for {} s twice: without snapshots, then (started again from \
         the file) while writing a snapshot every second. Times are the \
         tracker's own log lines: a snapshot from the request to the file renamed into place \
         (fsyncs included), the longest slice the request worker spent on it between two \
         batches (the most any request waited on it), the restore from reading the file to \
         every worker having its share. Every thread of the tracker shares core 0, so a pause \
         (wall time) includes any time the request worker was preempted by the socket worker \
         or the snapshot thread; latencies are the generator's round trips over loopback. \
         The snapshot thread touches the memory the workers will write into before it asks \
         them, as many bytes as each wrote last time (page faults and transparent-huge-page \
         zeroing, ~5 ms a time, would otherwise land in their slices), so a slice's CPU time \
         stays near the 1 ms budget; its wall time adds what preemption the shared core \
         brings. The first snapshot of a tracker started without a file has no size to go \
         by: that is the one at SIGTERM after the prefill. Under load the worker runs a \
         slice only once waiting batches have had as long as the last slice took.\n",
        opts.seconds
    );
    let worst = |r: &RunFigures, f: fn(&Snapshot) -> u64| {
        r.under_load.iter().map(f).max().unwrap_or(0) as f64
    };
    let load_ms = |r: &RunFigures| median(r.under_load.iter().map(|s| s.ms as f64).collect());
    let _ = writeln!(t, "| figure | median |\n|---|---:|");
    let rows: [(&str, f64, &str); 15] = [
        (
            "peers in the snapshot",
            med(runs, |r| r.at_stop.peers as f64),
            "",
        ),
        (
            "snapshot at SIGTERM",
            med(runs, |r| r.at_stop.ms as f64),
            " ms",
        ),
        (
            "snapshot under load (median of the run's)",
            med(runs, load_ms),
            " ms",
        ),
        (
            "longest request-worker pause under load",
            med(runs, |r| worst(r, |s| s.pause_us)),
            " µs",
        ),
        (
            "the same pause in CPU time (preemption left out)",
            med(runs, |r| worst(r, |s| s.pause_cpu_us)),
            " µs",
        ),
        (
            "longest pause of the first snapshot (at SIGTERM), in CPU time",
            med(runs, |r| r.at_stop.pause_cpu_us as f64),
            " µs",
        ),
        (
            "file size per peer",
            med(runs, |r| {
                r.file_bytes as f64 / r.at_stop.peers.max(1) as f64
            }),
            " bytes",
        ),
        ("restore", med(runs, |r| r.restore_ms as f64), " ms"),
        (
            "start to ready, restore included",
            med(runs, |r| r.start_to_ready_ms as f64),
            " ms",
        ),
        (
            "generator latency p99 while snapshotting",
            med(runs, |r| r.latency_p99_us),
            " µs",
        ),
        (
            "generator latency max while snapshotting",
            med(runs, |r| r.latency_max_us),
            " µs",
        ),
        (
            "generator latency p99 without snapshots",
            med(runs, |r| r.quiet_p99_us),
            " µs",
        ),
        (
            "generator latency max without snapshots",
            med(runs, |r| r.quiet_max_us),
            " µs",
        ),
        (
            "responses/s while snapshotting",
            med(runs, |r| r.responses_per_s),
            "",
        ),
        (
            "responses/s without snapshots",
            med(runs, |r| r.quiet_responses_per_s),
            "",
        ),
    ];
    for (name, value, unit) in rows {
        let shown = if unit == " bytes" {
            format!("{value:.1}")
        } else {
            thousands(value)
        };
        let _ = writeln!(t, "| {name} | {shown}{unit} |");
    }
    let _ = writeln!(
        t,
        "\nEvery run:\n\n| run | torrents | peers | snapshot ms | pause µs | file bytes | restored \
         peers | restore ms | ready ms | snapshots under load | their ms (min–max) | their \
         longest pause µs (CPU µs) | responses/s | p99 µs | max µs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (i, r) in runs.iter().enumerate() {
        let ms: Vec<u64> = r.under_load.iter().map(|s| s.ms).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}–{} | {} ({}) | {} | {} | {} |",
            i + 1,
            thousands(r.at_stop.torrents as f64),
            thousands(r.at_stop.peers as f64),
            r.at_stop.ms,
            r.at_stop.pause_us,
            thousands(r.file_bytes as f64),
            thousands(r.restored_peers as f64),
            r.restore_ms,
            r.start_to_ready_ms,
            r.under_load.len(),
            ms.iter().min().unwrap_or(&0),
            ms.iter().max().unwrap_or(&0),
            r.under_load.iter().map(|s| s.pause_us).max().unwrap_or(0),
            r.under_load
                .iter()
                .map(|s| s.pause_cpu_us)
                .max()
                .unwrap_or(0),
            thousands(r.responses_per_s),
            thousands(r.latency_p99_us),
            thousands(r.latency_max_us)
        );
    }
    let _ = writeln!(
        t,
        "\nTracker configs and logs, the generator's configs and JSON are left in \
         `target/bench/persist/`."
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse() {
        let line = "2026-12-06T07:16:45.728Z INFO  tracker_user::persistence: snapshot of \
                    1000000 torrents and 2000000 peers written to /x/s.snapshot (54000056 \
                    bytes) in 812 ms; longest request worker pause 1093 us (1002 us of CPU)";
        let s = parse_snapshot(line).unwrap();
        assert_eq!(
            (
                s.torrents,
                s.peers,
                s.bytes,
                s.ms,
                s.pause_us,
                s.pause_cpu_us
            ),
            (1_000_000, 2_000_000, 54_000_056, 812, 1093, 1002)
        );
        let line = "INFO restored 5 torrents and 7 peers (0 completed counts of torrents \
                    without peers) from /x, written 3 s ago, in 41 ms; 0 peers had expired";
        assert_eq!(parse_restore(line), Some((7, 41)));
        assert!(parse_snapshot("no snapshot at /x: starting empty").is_none());
    }
}
