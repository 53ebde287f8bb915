//! `cargo xtask bench udp|http|ws`: our tracker against aquatic's, side by
//! side, under the same generator (`tracker-load`).
//!
//! Every bench runs a series of short runs with a fresh tracker per run,
//! the tracker pinned to core 0 and the generator to core 1, systems
//! alternating run by run, and takes over the generator's measured window:
//! responses/s (from the generator's JSON), server-side CPU (all busy CPU
//! time of the machine from /proc/stat minus the generator's own), the
//! tracker process's own CPU time and its peak RSS. Medians and ratios go
//! to stdout and to the bench's own section of docs/benchmarks.md.
//!
//! - [`udp`]: BEP 15 against aquatic_udp, over loopback and over a veth
//!   pair, with and without XDP.
//! - [`scale`]: BEP 15 over loopback against aquatic_udp across a grid of
//!   torrent and peer counts, each prefilled, with memory per peer and an
//!   SVG plot ([`plot`]).
//! - [`tcp`]: HTTP and WebTorrent (WebSocket), plain and TLS, against
//!   aquatic_http and aquatic_ws.
//!
//! The shared machinery: processes ([`proc`]), CPU sampling and the
//! measured run ([`sample`]), and figures, tables and the docs file
//! ([`report`]).

mod flood;
mod persist;
mod plot;
mod proc;
mod report;
mod sample;
mod scale;
mod tcp;
mod udp;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

/// The anchors' version: the newest aquatic on crates.io (0.9.0) that
/// builds with the project's toolchain. Their default `prometheus` feature
/// pulls metrics 0.22.3, which Rust 1.95 refuses (E0521), and we switch
/// the endpoint off anyway, so they are built without it.
const AQUATIC_VERSION: &str = "0.9.0";

const SERVER_CPU: usize = 0;
const GENERATOR_CPU: usize = 1;

/// `[swarm] max_peers_per_ip` for our tracker in every bench: the
/// generator's simulated peers share one or two addresses, and aquatic has
/// no such limit, so both hold the same population.
const ONE_HOST_PEERS_PER_IP: usize = 65_536;

const USAGE: &str = "\
usage: cargo xtask bench udp|http|ws [--runs N] [--seconds S] [--warmup W] [--quick]
                                     [--no-build] [udp: --no-steer] [http, ws: --tls | --plain]
                                     [udp: --baseline PATH [--baseline-label NAME]]
                                     [udp: --only xsk]
       cargo xtask bench scale [options]   (`cargo xtask bench scale --help`)
       cargo xtask bench persist [--runs N] [--seconds S] [--quick] [--no-build]
       cargo xtask bench flood [--seconds S] [--runs N] [--quick] [--no-build] [--flood-rate R]
                               [--baseline PATH [--baseline-label NAME]]...

  persist       [persistence] at aquatic's default profile (1M torrents, 2M
                peers): snapshot time, longest request-worker pause, bytes per
                peer, restore time (`cargo xtask bench persist --help`)
  udp           BEP 15 against aquatic_udp: loopback (prefilled: every client
                announced once first, memory per peer measured), veth, veth
                with XDP, veth with XDP under the AF_XDP generator (e,
                prefilled like loopback)
  scale         BEP 15 over loopback against aquatic_udp over torrents × peers
                (10k..1M × 0.1M..4M), prefilled: responses/s, CPU, memory per
                peer; plot in docs/bench-scaling.svg
  http          HTTP announces and scrapes against aquatic_http, plain and TLS
  ws            WebTorrent over WebSocket against aquatic_ws, plain and TLS
  flood         a flood of announces for new info hashes over loopback (S s,
                default 20; R/s, default 100000, 0 = as fast as one core
                sends) against a client announcing 1,000/s: its latency
                and losses, torrents stored, RSS idle, at peak and after
                every peer expired; each --baseline runs another tracker
                binary (e.g. a build of main) the same way for comparison

  --runs N      runs per system and scenario (default 5)
  --seconds S   measured seconds per run (default 12)
  --warmup W    generator warm-up seconds before measuring (default 3)
  --quick       1 run of 3 s (1 s warm-up) per scenario: checks the harness;
                docs/benchmarks.md is left alone, results go to
                target/bench/benchmarks-quick-<udp|http|ws>.md
  --no-build    use the binaries already in target/ (tracker-user, built
                with the XDP object for udp; tracker-load; the anchor)
  --patience S  seconds each run waits for the machine to go idle before
                measuring anyway (default 90, 10 with --quick; scale 15).
                With other work kept at nice 19, waiting only costs time:
                the tracker and generator still get their cores, and the
                report counts the others' CPU per run
  --no-steer    udp: leave veth's receive work on the sending core (charged
                to the sender, so the server CPU of the veth scenarios is
                wrong; for comparison only)
  --baseline PATH
                udp: also run another tracker-user binary (a build of an
                earlier commit, say) on loopback and with XDP in the same
                rounds, and report this build / baseline: what a change
                costs (section (d))
  --only xsk    udp: scenario (e) alone, the AF_XDP generator against our
                XDP path (in-kernel answers off, then on) and aquatic_udp,
                under aquatic's announce mix and under a re-announce mix
                (`[profile] event_share = 0.1`); prints its section and
                writes it to target/bench/benchmarks-udp-xsk.md, leaving
                docs/benchmarks.md alone. Not with --baseline
  --tls         http, ws: the TLS scenario only (both by default)
  --plain       http, ws: the plain scenario only

Each bench rewrites only its own sections of docs/benchmarks.md.

environment: XTASK_BENCH_LOAD=PATH runs another generator binary that takes
the same `<udp|http|ws> -c FILE --json` command line (for testing the harness).
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Fails once Ctrl-C (or SIGTERM) came: every wait checks it.
fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// The options every bench takes.
#[derive(Clone, Debug)]
struct Opts {
    runs: usize,
    seconds: u64,
    warmup: u64,
    quick: bool,
    build: bool,
    /// How long a run waits for the machine to go idle before measuring
    /// anyway.
    quiet_patience: std::time::Duration,
}

pub fn run(args: &[String]) -> Result<()> {
    let rest = &args[args.len().min(1)..];
    match args.first().map(String::as_str) {
        Some("udp") => udp::run(args, rest),
        Some("http") => tcp::run(tcp::Protocol::Http, args, rest),
        Some("ws") => tcp::run(tcp::Protocol::Ws, args, rest),
        Some("scale") => scale::run(args, rest),
        Some("flood") => flood::run(args, rest),
        Some("persist") => persist::run(args, rest),
        Some("-h") | Some("--help") | Some("help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("bench: unknown target `{other}`\n\n{USAGE}"),
        None => bail!("bench: say what to benchmark\n\n{USAGE}"),
    }
}

/// Runs, measured seconds and warm-up seconds of a bench, and with
/// `--quick`.
#[derive(Clone, Copy, Debug)]
struct Defaults {
    runs: usize,
    seconds: u64,
    warmup: u64,
    quick: (usize, u64, u64),
    /// Seconds a run waits for the machine to go idle (without and with
    /// `--quick`).
    patience: (u64, u64),
}

/// Those of `bench udp|http|ws`.
const DEFAULTS: Defaults = Defaults {
    runs: 5,
    seconds: 12,
    warmup: 3,
    quick: (1, 3, 1),
    patience: (90, 10),
};

/// Parses the common options of `args`; `extra` takes the bench's own
/// flags and returns whether it knew the flag.
fn parse_opts(target: &str, args: &[String], extra: impl FnMut(&str) -> bool) -> Result<Opts> {
    parse_opts_with(target, args, DEFAULTS, extra)
}

/// [`parse_opts`] with other defaults.
fn parse_opts_with(
    target: &str,
    args: &[String],
    defaults: Defaults,
    mut extra: impl FnMut(&str) -> bool,
) -> Result<Opts> {
    let mut opts = Opts {
        runs: defaults.runs,
        seconds: defaults.seconds,
        warmup: defaults.warmup,
        quick: false,
        build: true,
        quiet_patience: std::time::Duration::from_secs(defaults.patience.0),
    };
    let mut explicit = (false, false, false);
    let mut patience = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))?;
            v.parse()
                .with_context(|| format!("{name} {v}: not a whole number"))
        };
        match arg.as_str() {
            "--runs" => {
                opts.runs = value("--runs")? as usize;
                explicit.0 = true;
            }
            "--seconds" => {
                opts.seconds = value("--seconds")?;
                explicit.1 = true;
            }
            "--warmup" => {
                opts.warmup = value("--warmup")?;
                explicit.2 = true;
            }
            "--quick" => opts.quick = true,
            "--no-build" => opts.build = false,
            "--patience" => {
                patience = Some(value("--patience")?);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other if extra(other) => {}
            other => bail!("bench {target}: unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if opts.quick {
        opts.quiet_patience = std::time::Duration::from_secs(defaults.patience.1);
        if !explicit.0 {
            opts.runs = defaults.quick.0;
        }
        if !explicit.1 {
            opts.seconds = defaults.quick.1;
        }
        if !explicit.2 {
            opts.warmup = defaults.quick.2;
        }
    }
    if let Some(secs) = patience {
        opts.quiet_patience = std::time::Duration::from_secs(secs);
    }
    if opts.runs == 0 || opts.seconds < 2 || opts.seconds > 600 || opts.warmup > 120 {
        bail!("bench {target}: --runs ≥ 1, 2 ≤ --seconds ≤ 600, --warmup ≤ 120");
    }
    Ok(opts)
}

/// Ctrl-C handling, privileges, cores: what every bench needs before it
/// starts anything. Returns the work directory, target/bench.
fn prepare(target: &str, why_root: &str) -> Result<PathBuf> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench {target} needs root: {why_root}");
    }
    if sample::nproc() < 2 {
        bail!(
            "bench {target} pins the tracker and the generator to cores 0 and 1: it needs 2 cores"
        );
    }
    let work = crate::workspace_root().join("target").join("bench");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    Ok(work)
}

/// Where the binaries under test are.
struct Binaries {
    tracker: PathBuf,
    load: PathBuf,
    /// The aquatic tracker of the bench, installed by [`install_anchor`].
    anchor: PathBuf,
}

impl Binaries {
    fn locate(anchor: &str) -> Binaries {
        let target = crate::workspace_root().join("target");
        Binaries {
            tracker: target.join("release").join("tracker-user"),
            // XTASK_BENCH_LOAD: another generator binary with the same
            // command line and JSON (for testing the harness itself).
            load: std::env::var_os("XTASK_BENCH_LOAD")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("release").join("tracker-load")),
            anchor: anchor_root().join("bin").join(anchor),
        }
    }

    fn check(&self, target: &str) -> Result<()> {
        let install = format!("cargo xtask bench {target} (without --no-build)");
        for (path, what) in [
            (&self.tracker, "cargo build --release -p tracker-user"),
            (&self.load, "cargo build --release -p tracker-load"),
            (&self.anchor, install.as_str()),
        ] {
            if !path.is_file() {
                bail!("{} is missing: run `{what}`", path.display());
            }
        }
        Ok(())
    }
}

/// Builds tracker-user and tracker-load for release.
fn build_ours() -> Result<()> {
    super::run(
        &super::cargo(),
        &[
            "build",
            "--release",
            "-p",
            "tracker-user",
            "-p",
            "tracker-load",
        ],
    )
}

fn anchor_root() -> PathBuf {
    crate::workspace_root().join("target").join("anchors")
}

/// Installs aquatic crate `name` at [`AQUATIC_VERSION`] into
/// target/anchors with `cargo install --locked`, unless it is there
/// already. Built without default features (see [`AQUATIC_VERSION`]) but
/// with mimalloc, its default allocator.
fn install_anchor(name: &str) -> Result<()> {
    let root = anchor_root();
    if root.join("bin").join(name).is_file()
        && anchor_version(&root, name).as_deref() == Some(AQUATIC_VERSION)
    {
        return Ok(());
    }
    let root = root.to_str().context("non-UTF-8 target path")?;
    eprintln!("xtask: installing the anchor {name} {AQUATIC_VERSION} (takes a few minutes, once)");
    let mut args = vec!["install", name, "--version", AQUATIC_VERSION, "--locked"];
    // The trackers with mimalloc, as aquatic's own builds; the load
    // generators have no allocator feature.
    if !name.ends_with("_load_test") {
        args.extend(["--no-default-features", "--features", "mimalloc"]);
    }
    args.extend(["--force", "--root", root]);
    super::run(&super::cargo(), &args).with_context(|| format!("installing {name}"))
}

/// The version `cargo install` recorded for crate `name` under `root`.
fn anchor_version(root: &Path, name: &str) -> Option<String> {
    let text = fs::read_to_string(root.join(".crates.toml")).ok()?;
    let needle = format!("\"{name} ");
    let start = text.find(&needle)? + needle.len();
    let rest = &text[start..];
    Some(rest[..rest.find(' ')?].to_owned())
}

/// What `tracker-load <protocol> -p` prints, so the config we write uses
/// only keys it knows (it refuses unknown ones).
fn generator_keys(load: &Path, protocol: &str) -> Result<String> {
    let out = Command::new(load)
        .args([protocol, "-p"])
        .output()
        .with_context(|| format!("running {} {protocol} -p", load.display()))?;
    if !out.status.success() {
        bail!(
            "`tracker-load {protocol} -p` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ends the generator config `text` (its protocol's section) with the
/// run's duration and warm-up and writes it as `<tag>.load.toml` in `work`.
fn write_load_config(work: &Path, tag: &str, opts: &Opts, mut text: String) -> Result<PathBuf> {
    use std::fmt::Write as _;
    let _ = writeln!(text, "duration = {:.1}", opts.seconds as f64);
    let _ = writeln!(text, "warmup = {:.1}", opts.warmup as f64);
    let path = work.join(format!("{tag}.load.toml"));
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether a TOML text as `-p` prints it has `key` in section `section`.
fn has_key(printed: &str, section: &str, key: &str) -> bool {
    printed_value(printed, section, key).is_some()
}

/// The value of `key` in section `section` of a TOML text as `-p` prints
/// it (commented out or not), as written.
fn printed_value(printed: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in printed.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        let line = line.trim_start_matches('#').trim();
        if current == section {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_printed_config() {
        let printed = "[udp]\n# local addresses\nbind = [\"127.0.0.1\"]\n[profile]\ntorrents = 1\n";
        assert!(has_key(printed, "udp", "bind"));
        assert!(!has_key(printed, "udp", "torrents"));
        assert!(has_key(printed, "profile", "torrents"));
        assert_eq!(
            printed_value(printed, "profile", "torrents").as_deref(),
            Some("1")
        );
        assert_eq!(printed_value(printed, "udp", "torrents"), None);
    }

    #[test]
    fn options_and_quick_defaults() {
        let args: Vec<String> = ["--quick", "--tls", "--runs", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut tls = false;
        let opts = parse_opts("http", &args, |flag| {
            tls |= flag == "--tls";
            flag == "--tls"
        })
        .unwrap();
        assert!(tls && opts.quick && opts.build);
        assert_eq!((opts.runs, opts.seconds, opts.warmup), (2, 3, 1));
        assert!(parse_opts("http", &["--bogus".to_owned()], |_| false).is_err());
        assert!(parse_opts("http", &["--seconds".to_owned(), "1".to_owned()], |_| false).is_err());
    }

    #[test]
    fn anchor_versions_from_cargo_install_records() {
        let dir = std::env::temp_dir().join(format!("xtask-anchors-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(".crates.toml"),
            "[v1]\n\"aquatic_udp 0.9.0 (registry+https://github.com/rust-lang/crates.io-index)\" = [\"aquatic_udp\"]\n\
             \"aquatic_ws 0.8.0 (registry+https://github.com/rust-lang/crates.io-index)\" = [\"aquatic_ws\"]\n",
        )
        .unwrap();
        assert_eq!(
            anchor_version(&dir, "aquatic_udp").as_deref(),
            Some("0.9.0")
        );
        assert_eq!(anchor_version(&dir, "aquatic_ws").as_deref(), Some("0.8.0"));
        assert_eq!(anchor_version(&dir, "aquatic_http"), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
