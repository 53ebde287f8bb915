//! `cargo xtask bench scale`: how both UDP trackers scale with the swarm.
//!
//! Over loopback with plain sockets, for every point of a grid of torrent
//! and peer counts, each system in turn: a fresh tracker, the generator's
//! prefill (every simulated client announced once, so the tracker holds
//! the whole population), then a measured run as in `bench udp` (a). Per
//! point: responses/s, server CPU per million responses, peak RSS, and
//! bytes per peer held (RSS growth over the prefill). Medians go to the
//! `scale` section of docs/benchmarks.md, the curves to
//! docs/bench-scaling.svg.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::plot::{self, short_count, Summary};
use super::report::{
    cpu_notes, every_run, how_to_read, log_run, med_of, memory_notes, now_utc, preamble, thousands,
    write_sections, Column, Series, Stat, LEFT_IN_TARGET, LOOPBACK_NOTE,
};
use super::sample::{measure, measure_background, Generator, Load, NoHooks, RunResult};
use super::udp::{free_loopback_port, probe, udp_log, Bench, System, AQUATIC, OURS};
use super::{
    check_stop, generator_keys, has_key, parse_opts_with, prepare, write_load_config, Binaries,
    Defaults, Opts,
};

/// The grid: torrents × peers.
const TORRENTS: [u32; 3] = [10_000, 100_000, 1_000_000];
const PEERS: [u32; 4] = [100_000, 1_000_000, 2_000_000, 4_000_000];
/// `--quick`'s subset.
const QUICK_TORRENTS: [u32; 2] = [10_000, 1_000_000];
const QUICK_PEERS: [u32; 2] = [100_000, 1_000_000];
/// aquatic's default profile: the point the memory target is stated at.
const HEADLINE: (u32, u32) = (1_000_000, 2_000_000);

const DEFAULTS: Defaults = Defaults {
    runs: 3,
    seconds: 6,
    warmup: 2,
    quick: (1, 2, 1),
    // 72 runs: a test suite running alongside must not stretch the bench
    // by 90 s a run; its CPU shows in the *other processes* column.
    patience: (15, 5),
};

/// Source addresses of the generator's sockets, one each: clients of a hot
/// torrent then rarely share (address, port), which both trackers key
/// peers by, so the tracker holds nearly every client even at 400 clients
/// a torrent (with one address, 10k torrents × 4M peers would hold 56 %).
const SOURCES: u8 = 16;

/// For the estimate printed at the start: prefilled clients a second
/// (both trackers do 150-280k on the project's VM) and seconds per run
/// besides warm-up, measurement and prefill (idle check, start, drain,
/// stop).
const EST_PREFILL_RATE: f64 = 180_000.0;
const EST_OVERHEAD_S: f64 = 4.0;

const USAGE: &str = "\
usage: cargo xtask bench scale [--runs N] [--seconds S] [--warmup W] [--quick] [--no-build]
                               [--torrents LIST] [--peers LIST]

  UDP over loopback, plain sockets, tracker-user against aquatic_udp, for
  every point of torrents × peers (default 10k,100k,1M × 0.1M,1M,2M,4M):
  a fresh tracker, the generator's prefill (every client announced once),
  then a measured run. Medians into the `scale` section of
  docs/benchmarks.md, curves into docs/bench-scaling.svg.

  --runs N         runs per system and point (default 3)
  --seconds S      measured seconds per run (default 6)
  --warmup W       warm-up seconds after the prefill (default 2)
  --quick          1 run of 2 s over 10k,1M × 0.1M,1M: checks the harness;
                   results go to target/bench/benchmarks-quick-scale.md and
                   target/bench/bench-scaling-quick.svg
  --torrents LIST  torrent counts, e.g. 10k,1M
  --peers LIST     peer counts, e.g. 0.1M,2M
  --no-build       use the binaries already in target/
  --replot         run nothing: draw the SVG again from the results table of
                   the scale section already in docs/benchmarks.md (with
                   --quick: from target/bench/benchmarks-quick-scale.md)
";

/// `cargo xtask bench scale`.
pub fn run(args: &[String], rest: &[String]) -> Result<()> {
    let mut torrents: Option<Vec<u32>> = None;
    let mut peers: Option<Vec<u32>> = None;
    let mut common = Vec::new();
    let mut replot = false;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--torrents" | "--peers" => {
                let v = it
                    .next()
                    .with_context(|| format!("{arg} needs a list\n\n{USAGE}"))?;
                let list = parse_counts(v).with_context(|| format!("{arg} {v}"))?;
                match arg.as_str() {
                    "--torrents" => torrents = Some(list),
                    _ => peers = Some(list),
                }
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--replot" => replot = true,
            _ => common.push(arg.clone()),
        }
    }
    let opts = parse_opts_with("scale", &common, DEFAULTS, |_| false)?;
    if replot {
        return replot_from_docs(&opts);
    }
    let torrents = torrents.unwrap_or_else(|| match opts.quick {
        true => QUICK_TORRENTS.to_vec(),
        false => TORRENTS.to_vec(),
    });
    let peers = peers.unwrap_or_else(|| match opts.quick {
        true => QUICK_PEERS.to_vec(),
        false => PEERS.to_vec(),
    });
    let points: Vec<(u32, u32)> = torrents
        .iter()
        .flat_map(|&t| peers.iter().map(move |&p| (t, p)))
        .collect();

    let work = prepare("scale", "it pins processes and reads their /proc figures")?;
    let bins = Binaries::locate("aquatic_udp");
    if opts.build {
        super::build_ours()?;
        super::install_anchor("aquatic_udp")?;
    }
    bins.check("scale")?;
    let gen_keys = generator_keys(&bins.load, "udp")?;
    if !has_key(&gen_keys, "udp", "prefill") {
        bail!(
            "{} has no udp.prefill: rebuild it (cargo build --release -p tracker-load)",
            bins.load.display()
        );
    }
    let estimate = estimate_seconds(&points, &opts);
    eprintln!(
        "xtask: bench scale: {} points × 2 systems × {} run(s), {} s measured after {} s of \
         warm-up each; estimated {:.0} min (each run waits up to {} s more while the machine \
         is busy without us)",
        points.len(),
        opts.runs,
        opts.seconds,
        opts.warmup,
        estimate / 60.0,
        opts.quiet_patience.as_secs()
    );
    let bench = Bench {
        bins,
        opts: opts.clone(),
        steer: true,
        work,
        gen_keys,
        baseline: None,
        // Scale drives every point with tracker-load alone.
        aquatic_load: PathBuf::new(),
    };
    let started = now_utc();
    let clock = Instant::now();
    let results = run_all(&bench, &points)?;
    eprintln!(
        "xtask: bench scale took {:.1} min (estimated {:.0})",
        clock.elapsed().as_secs_f64() / 60.0,
        estimate / 60.0
    );

    let (svg_name, svg_file) = svg_path(&opts);
    draw(&summaries(&results.points), &svg_file)?;

    let command = super::report::command_line(args);
    print!("\n{}\n", summary_tables(&results.points, &opts));
    let text = report(&opts, &command, &started, &results, svg_name);
    let path = write_sections("scale", &bench.work, opts.quick, &[("scale", text)])?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

/// The plot's file name (as the markdown links it) and path.
fn svg_path(opts: &Opts) -> (&'static str, PathBuf) {
    match opts.quick {
        true => {
            let name = "bench-scaling-quick.svg";
            (
                name,
                crate::workspace_root().join("target/bench").join(name),
            )
        }
        false => {
            let name = "bench-scaling.svg";
            (name, crate::workspace_root().join("docs").join(name))
        }
    }
}

fn draw(summaries: &[Summary], path: &std::path::Path) -> Result<()> {
    let svg = plot::svg(
        summaries,
        &[OURS, AQUATIC],
        "UDP over loopback, 1 core each: solid tracker-user, dashed aquatic_udp 0.9.0",
    )?;
    fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: plot written to {}", path.display());
    Ok(())
}

/// `--replot`: the SVG again, from the medians already written.
fn replot_from_docs(opts: &Opts) -> Result<()> {
    let doc_path = match opts.quick {
        true => crate::workspace_root().join("target/bench/benchmarks-quick-scale.md"),
        false => crate::workspace_root().join("docs/benchmarks.md"),
    };
    let doc =
        fs::read_to_string(&doc_path).with_context(|| format!("reading {}", doc_path.display()))?;
    let section = super::report::parse_sections(&doc)
        .into_iter()
        .find(|(name, _)| name == "scale")
        .with_context(|| format!("{} has no scale section", doc_path.display()))?
        .1;
    let summaries = plot::summaries_from_markdown(&section);
    if summaries.is_empty() {
        bail!(
            "the scale section of {} has no results table",
            doc_path.display()
        );
    }
    draw(&summaries, &svg_path(opts).1)
}

/// "10k,0.1M,2M,5000" as counts.
fn parse_counts(list: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (number, unit) = match item.as_bytes().last() {
            Some(b'k' | b'K') => (&item[..item.len() - 1], 1e3),
            Some(b'M' | b'm') => (&item[..item.len() - 1], 1e6),
            _ => (item, 1.0),
        };
        let x: f64 = number
            .parse()
            .with_context(|| format!("`{item}` is not a count like 10k or 0.1M"))?;
        let n = (x * unit).round();
        if !(1.0..=f64::from(u32::MAX)).contains(&n) {
            bail!("`{item}` is out of range");
        }
        out.push(n as u32);
    }
    if out.is_empty() {
        bail!("an empty list");
    }
    Ok(out)
}

/// Seconds the bench should take: every run's warm-up, measurement,
/// prefill and overhead.
fn estimate_seconds(points: &[(u32, u32)], opts: &Opts) -> f64 {
    let per_round: f64 = points
        .iter()
        .map(|&(_, peers)| {
            EST_OVERHEAD_S
                + opts.warmup as f64
                + opts.seconds as f64
                + f64::from(peers) / EST_PREFILL_RATE
        })
        .sum();
    per_round * 2.0 * opts.runs as f64
}

/// One point's runs, a series per system.
struct Point {
    torrents: u32,
    peers: u32,
    ours: Series,
    aquatic: Series,
}

struct Results {
    points: Vec<Point>,
    idle_background: f64,
}

fn label(torrents: u32, peers: u32) -> String {
    format!(
        "{} torrents × {} peers",
        short_count(torrents),
        short_count(peers)
    )
}

fn run_all(bench: &Bench, grid: &[(u32, u32)]) -> Result<Results> {
    let idle_background = measure_background(Duration::from_secs(2))?;
    eprintln!(
        "xtask: machine busy {:.0} % of a core with nothing of ours running",
        idle_background * 100.0
    );
    let mut points: Vec<Point> = grid
        .iter()
        .map(|&(torrents, peers)| {
            let series = |system: &str| Series {
                scenario: label(torrents, peers),
                label: system.to_owned(),
                runs: Vec::new(),
            };
            Point {
                torrents,
                peers,
                ours: series(OURS),
                aquatic: series(AQUATIC),
            }
        })
        .collect();
    let port = free_loopback_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let total = grid.len() * 2 * bench.opts.runs;
    let mut done = 0;
    // Rounds over the whole grid, the two systems back to back at each
    // point: a slow spell of the machine hits both alike.
    for round in 0..bench.opts.runs {
        for point in &mut points {
            for system in [System::Ours, System::Aquatic] {
                done += 1;
                eprintln!(
                    "xtask: [{done}/{total}] {}, {}, run {}",
                    point.ours.scenario,
                    system.label(),
                    round + 1
                );
                let r = one_run(bench, system, addr, point.torrents, point.peers, round)?;
                let memory = format!(
                    ", prefill {:.1} s ({} clients/s, {} peers held in {} torrents), RSS idle \
                     {:.1} MiB, after prefill {:.0} MiB, {:.1} bytes per peer",
                    r.prefill_seconds,
                    thousands(r.prefill_rate()),
                    thousands(r.swarm_peers as f64),
                    thousands(r.swarm_torrents as f64),
                    r.rss_idle_kib as f64 / 1024.0,
                    r.rss_prefilled_kib as f64 / 1024.0,
                    r.bytes_per_peer()
                );
                log_run(&r, &format!("{memory}{}", udp_log(&r)));
                match system {
                    System::Aquatic => point.aquatic.runs.push(r),
                    _ => point.ours.runs.push(r),
                }
            }
        }
    }
    Ok(Results {
        points,
        idle_background,
    })
}

fn one_run(
    bench: &Bench,
    system: System,
    addr: SocketAddr,
    torrents: u32,
    peers: u32,
    round: usize,
) -> Result<RunResult> {
    check_stop()?;
    let tag = format!(
        "scale-{}-{}-{}-{}",
        short_count(torrents),
        short_count(peers),
        system.tag(),
        round + 1
    );
    let mut tracker = bench.start_tracker(system, addr, None, &tag)?;
    probe(addr, None, Duration::from_secs(20))
        .with_context(|| format!("{} never answered a connect on {addr}", system.label()))
        .map_err(|e| tracker.explain(e))?;
    let mut text = String::from("# written by cargo xtask bench scale\n");
    let _ = writeln!(text, "[profile]\ntorrents = {torrents}\npeers = {peers}\n");
    let _ = writeln!(text, "[udp]\ntracker = \"{addr}\"");
    let _ = writeln!(text, "bind = [{}]", sources().join(", "));
    let _ = writeln!(text, "workers = 1\nprefill = true");
    let gen_config = write_load_config(&bench.work, &tag, &bench.opts, text)?;
    let load = Load {
        opts: &bench.opts,
        work: &bench.work,
        program: &bench.bins.load,
        protocol: "udp",
        config: gen_config,
        tag: &tag,
        client_ns: None,
        prefill_peers: Some(u64::from(peers)),
        generator: Generator::TrackerLoad,
    };
    measure(&load, &mut tracker, &mut NoHooks)
}

/// The generator's source addresses, quoted for TOML.
fn sources() -> Vec<String> {
    (1..=SOURCES).map(|i| format!("\"127.0.0.{i}\"")).collect()
}

/// The medians the plot shows, per point and system.
fn summaries(points: &[Point]) -> Vec<Summary> {
    points
        .iter()
        .flat_map(|p| [&p.ours, &p.aquatic].map(|s| (p, s)))
        .map(|(p, s)| Summary {
            system: s.label.clone(),
            torrents: p.torrents,
            peers: p.peers,
            responses_per_s: med_of(s, |r| r.responses_per_s),
            bytes_per_peer: med_of(s, RunResult::bytes_per_peer),
        })
        .collect()
}

/// Least-squares fit of the RSS growth over the prefill as `a` bytes per
/// peer held plus `b` bytes per torrent held, over `(peers, torrents,
/// bytes)` observations. None when the two counts do not vary apart.
pub fn fit_peer_and_torrent_bytes(obs: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    let (mut pp, mut pt, mut tt, mut py, mut ty) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(p, t, y) in obs {
        if !(p.is_finite() && t.is_finite() && y.is_finite()) {
            continue;
        }
        pp += p * p;
        pt += p * t;
        tt += t * t;
        py += p * y;
        ty += t * y;
    }
    let det = pp * tt - pt * pt;
    if det.abs() <= 1e-9 * pp * tt || pp == 0.0 || tt == 0.0 {
        return None;
    }
    Some(((py * tt - ty * pt) / det, (ty * pp - py * pt) / det))
}

/// The fit over every run of a system's series.
fn fit_of(series: &[&Series]) -> Option<(f64, f64)> {
    let obs: Vec<(f64, f64, f64)> = series
        .iter()
        .flat_map(|s| s.runs.iter())
        .filter(|r| r.swarm_peers > 0 && r.rss_idle_kib > 0)
        .map(|r| {
            (
                r.swarm_peers as f64,
                r.swarm_torrents as f64,
                (r.rss_prefilled_kib as f64 - r.rss_idle_kib as f64) * 1024.0,
            )
        })
        .collect();
    fit_peer_and_torrent_bytes(&obs)
}

fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "–".into()
    }
}

/// The medians table, the ratios table and the headline lines.
fn summary_tables(points: &[Point], opts: &Opts) -> String {
    let single = opts.runs == 1;
    let mut t = String::new();
    t.push_str(
        "| torrents | peers | system | peers held | torrents held | prefill s | responses/s | \
         server CPU s per M responses | tracker-process CPU s per M | peak RSS MiB | RSS after \
         prefill MiB | bytes per peer |\n\
         |---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        for s in [&p.ours, &p.aquatic] {
            let runs = &s.runs;
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                short_count(p.torrents),
                short_count(p.peers),
                s.label,
                thousands(med_of(s, |r| r.swarm_peers as f64)),
                thousands(med_of(s, |r| r.swarm_torrents as f64)),
                Stat::of(runs, |r| r.prefill_seconds).fmt(1, single),
                super::report::rate_stat(runs, single),
                Stat::of(runs, RunResult::server_cpu_per_m).fmt(2, single),
                Stat::of(runs, RunResult::tracker_cpu_per_m).fmt(2, single),
                Stat::of(runs, |r| r.peak_rss_kib as f64 / 1024.0).fmt(0, single),
                Stat::of(runs, |r| r.rss_prefilled_kib as f64 / 1024.0).fmt(0, single),
                Stat::of(runs, RunResult::bytes_per_peer).fmt(1, single),
            );
        }
    }
    t.push_str(
        "\nOurs against aquatic_udp at each point (medians over medians):\n\n\
         | torrents | peers | responses/s, ours / aquatic | server CPU per M, aquatic / ours \
         (above 1: we spend less) | bytes per peer, ours / aquatic | peak RSS, ours / aquatic |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        let (o, a) = (&p.ours, &p.aquatic);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            short_count(p.torrents),
            short_count(p.peers),
            ratio(med_of(o, |r| r.responses_per_s) / med_of(a, |r| r.responses_per_s)),
            ratio(med_of(a, RunResult::server_cpu_per_m) / med_of(o, RunResult::server_cpu_per_m)),
            ratio(med_of(o, RunResult::bytes_per_peer) / med_of(a, RunResult::bytes_per_peer)),
            ratio(med_of(o, |r| r.peak_rss_kib as f64) / med_of(a, |r| r.peak_rss_kib as f64)),
        );
    }
    if let Some(p) = points.iter().find(|p| (p.torrents, p.peers) == HEADLINE) {
        let (o, a) = (
            med_of(&p.ours, RunResult::bytes_per_peer),
            med_of(&p.aquatic, RunResult::bytes_per_peer),
        );
        let _ = writeln!(
            t,
            "\n- At aquatic's default profile ({}): **{:.1}** bytes per peer for tracker-user, \
             **{:.1}** for aquatic_udp: **{}** (issue target ≤ 0.5×).",
            label(p.torrents, p.peers),
            o,
            a,
            ratio(o / a)
        );
    }
    let ours: Vec<&Series> = points.iter().map(|p| &p.ours).collect();
    let aquatic: Vec<&Series> = points.iter().map(|p| &p.aquatic).collect();
    let fits = [(OURS, fit_of(&ours)), (AQUATIC, fit_of(&aquatic))];
    if fits.iter().all(|(_, f)| f.is_some()) {
        if !t.ends_with(".\n") {
            t.push('\n');
        }
        t.push_str(
            "- Where the memory goes, fitted over every run of the grid (least squares, RSS \
             growth over the prefill ≈ *a* × peers held + *b* × torrents held; rough, as maps \
             grow by doubling):",
        );
        for (name, fit) in fits {
            if let Some((a, b)) = fit {
                let _ = write!(
                    t,
                    " {name}: *a* = {a:.0} bytes per peer, *b* = {b:.0} bytes per torrent;"
                );
            }
        }
        t.pop();
        t.push_str(".\n");
    }
    t
}

/// The whole `scale` section.
fn report(opts: &Opts, command: &str, started: &str, results: &Results, svg: &str) -> String {
    let mut t = String::new();
    t.push_str(
        "## Scaling (UDP over loopback): torrents × peers, tracker-user against aquatic_udp\n\n",
    );
    let all: Vec<&RunResult> = results
        .points
        .iter()
        .flat_map(|p| p.ours.runs.iter().chain(p.aquatic.runs.iter()))
        .collect();
    t.push_str(&preamble(
        opts,
        command,
        started,
        results.idle_background,
        &all,
    ));
    let _ = writeln!(
        t,
        "![responses/s and bytes per peer against peers]({svg})\n"
    );
    t.push_str("### What is measured\n\n");
    let _ = writeln!(
        t,
        "- **Grid**: every (torrents, peers) point of the table, each system in turn, a fresh \
         tracker for every run. At each: the tracker's VmRSS idle, the generator's prefill, its \
         VmRSS after it, then a measured run exactly as in the UDP section's loopback runs.\n\
         - **Load**: `tracker-load udp` with aquatic_udp_load_test's profile (request weights \
         connect 50 : announce 50 : scrape 1, 30 peers wanted, 75 % seeders, popularity skewed \
         toward a hot head, up to 10 hashes per scrape) but for `torrents` and `peers`, which \
         take the grid's values. One generator worker, pinned to core 1, with 16 sockets bound \
         to 16 source addresses (127.0.0.1 to 127.0.0.{SOURCES}), one each: both trackers key a \
         peer by (address, port), and with one address the clients of a hot torrent would \
         share ports (65,535 of them) so often that at 10k torrents × 4M peers the trackers \
         would hold only 56 % of the clients; with 16, 95 % or more everywhere (*peers held*).\n\
         - **Trackers**: pinned to core 0, configured as in the UDP section (tracker-user with \
         one swarm worker and one UDP worker, aquatic_udp 0.9.0 with one socket worker), \
         tracker on 127.0.0.1.\n\
         - **responses/s**: the generator's count of valid responses over its measured window."
    );
    t.push_str(&memory_notes(&all));
    t.push_str(&cpu_notes(""));
    t.push_str(LOOPBACK_NOTE);
    t.push_str(&how_to_read(
        "Loss is requests without an answer. The plot shows the medians of the table below; \
         the ratios are of medians.",
    ));
    t.push_str("### Results\n\n");
    t.push_str(&summary_tables(&results.points, opts));
    t.push_str("\n### Every run\n\n");
    let series: Vec<&Series> = results
        .points
        .iter()
        .flat_map(|p| [&p.ours, &p.aquatic])
        .collect();
    t.push_str(&every_run(&series, SCALE_COLUMNS));
    t.push_str(LEFT_IN_TARGET);
    t
}

/// The columns `bench scale` adds to the table of every run.
const SCALE_COLUMNS: &[Column] = &[
    Column {
        header: "peers held",
        cell: |r| thousands(r.swarm_peers as f64),
    },
    Column {
        header: "torrents held",
        cell: |r| thousands(r.swarm_torrents as f64),
    },
    Column {
        header: "prefill s",
        cell: |r| format!("{:.1}", r.prefill_seconds),
    },
    Column {
        header: "prefill unconfirmed",
        cell: |r| thousands(r.prefill_failed as f64),
    },
    Column {
        header: "RSS idle MiB",
        cell: |r| format!("{:.1}", r.rss_idle_kib as f64 / 1024.0),
    },
    Column {
        header: "RSS after prefill MiB",
        cell: |r| format!("{:.0}", r.rss_prefilled_kib as f64 / 1024.0),
    },
    Column {
        header: "bytes per peer",
        cell: |r| format!("{:.1}", r.bytes_per_peer()),
    },
    Column {
        header: "UDP receive-buffer drops",
        cell: |r| thousands(r.rcvbuf_drops as f64),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_units() {
        assert_eq!(
            parse_counts("10k, 0.1M,2M,5000").unwrap(),
            [10_000, 100_000, 2_000_000, 5_000]
        );
        assert!(parse_counts("").is_err());
        assert!(parse_counts("ten").is_err());
        assert!(parse_counts("0").is_err());
        assert!(parse_counts("5000M").is_err());
    }

    #[test]
    fn the_default_fits_well_under_45_minutes() {
        let grid: Vec<(u32, u32)> = TORRENTS
            .iter()
            .flat_map(|&t| PEERS.iter().map(move |&p| (t, p)))
            .collect();
        let opts = parse_opts_with("scale", &[], DEFAULTS, |_| false).unwrap();
        let minutes = estimate_seconds(&grid, &opts) / 60.0;
        assert!(minutes < 35.0, "{minutes:.0} min");
        let quick = parse_opts_with("scale", &["--quick".to_owned()], DEFAULTS, |_| false).unwrap();
        let quick_grid: Vec<(u32, u32)> = QUICK_TORRENTS
            .iter()
            .flat_map(|&t| QUICK_PEERS.iter().map(move |&p| (t, p)))
            .collect();
        assert!(estimate_seconds(&quick_grid, &quick) < 120.0);
    }

    #[test]
    fn memory_splits_into_peers_and_torrents() {
        // 40 bytes a peer, 200 a torrent, exactly.
        let obs: Vec<(f64, f64, f64)> = [(1e5, 5e3), (4e6, 5e3), (2e6, 4e5), (1e6, 3.5e5)]
            .iter()
            .map(|&(p, t)| (p, t, 40.0 * p + 200.0 * t))
            .collect();
        let (a, b) = fit_peer_and_torrent_bytes(&obs).unwrap();
        assert!(
            (a - 40.0).abs() < 1e-6 && (b - 200.0).abs() < 1e-6,
            "{a} {b}"
        );
        // Torrents in proportion to peers: the two cannot be told apart.
        let flat = [(1e5, 1e4, 1.0), (2e5, 2e4, 2.0)];
        assert_eq!(fit_peer_and_torrent_bytes(&flat), None);
        assert_eq!(fit_peer_and_torrent_bytes(&[]), None);
    }

    #[test]
    fn summaries_take_medians_per_point_and_system() {
        let run = |rps: f64, idle: u64, after: u64| RunResult {
            responses_per_s: rps,
            rss_idle_kib: idle,
            rss_prefilled_kib: after,
            swarm_peers: 1024,
            ..RunResult::default()
        };
        let series = |label: &str, runs: Vec<RunResult>| Series {
            scenario: "x".into(),
            label: label.into(),
            runs,
        };
        let points = vec![Point {
            torrents: 10_000,
            peers: 100_000,
            ours: series(
                OURS,
                vec![run(3.0, 10, 110), run(1.0, 10, 60), run(2.0, 10, 90)],
            ),
            aquatic: series(AQUATIC, vec![run(5.0, 10, 210)]),
        }];
        let s = summaries(&points);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].system.as_str(), s[0].responses_per_s), (OURS, 2.0));
        // (90 - 10) KiB over 1024 peers.
        assert_eq!(s[0].bytes_per_peer, 80.0);
        assert_eq!(
            (s[1].system.as_str(), s[1].bytes_per_peer),
            (AQUATIC, 200.0)
        );
        let tables = summary_tables(
            &points,
            &parse_opts_with("scale", &[], DEFAULTS, |_| false).unwrap(),
        );
        assert!(
            tables.contains("| 10k | 0.1M | tracker-user (sockets) |"),
            "{tables}"
        );
        assert!(tables.contains("| 10k | 0.1M | 0.40× |"), "{tables}");
    }
}
