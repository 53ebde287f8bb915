//! `cargo xtask bench udp`: our tracker against aquatic_udp, side by side.
//!
//! Three scenarios, each a series of short runs with a fresh tracker per run:
//! loopback over plain sockets, a veth pair from a client network namespace
//! over plain sockets, and the same veth pair with the XDP fast path. The
//! tracker is pinned to core 0 and the generator (`tracker-load udp`) to
//! core 1. For every run we take, over the generator's measured window:
//! responses/s (from the generator's JSON), server-side CPU (all busy CPU
//! time of the machine from /proc/stat, softirq included, minus the
//! generator process's own), the tracker process's own CPU time, its peak
//! RSS, and for XDP runs the share of connects the kernel answered. Medians
//! and ratios go to docs/benchmarks.md and stdout.
//!
//! Everything it creates (namespaces, veth pair, bpffs pins, processes) is
//! removed on the way out, on errors and on Ctrl-C too.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The anchor: the newest aquatic_udp on crates.io (0.9.0) that builds with
/// the project's toolchain. Its default `prometheus` feature pulls
/// metrics 0.22.3, which Rust 1.95 refuses (E0521), and we switch the
/// endpoint off anyway, so it is built without it.
const AQUATIC_VERSION: &str = "0.9.0";

const SERVER_CPU: usize = 0;
const GENERATOR_CPU: usize = 1;

const VETH_SERVER_V4: &str = "10.201.0.1";
const VETH_CLIENT_V4: &str = "10.201.0.2";
const VETH_PORT: u16 = 6969;

const USAGE: &str = "\
usage: cargo xtask bench udp [--runs N] [--seconds S] [--warmup W] [--quick]

  --runs N      runs per system and scenario (default 5)
  --seconds S   measured seconds per run (default 12)
  --warmup W    generator warm-up seconds before measuring (default 3)
  --quick       1 run of 3 s (1 s warm-up) per scenario: checks the harness;
                docs/benchmarks.md is left alone, results go to
                target/bench/benchmarks-quick.md
  --no-build    use the binaries already in target/ (tracker-user built with
                the XDP object, tracker-load, the anchor)
  --no-steer    leave veth's receive work on the sending core (charged to the
                sender, so the server CPU of the veth scenarios is wrong;
                for comparison only)

environment: XTASK_BENCH_LOAD=PATH runs another generator binary that takes
the same `udp -c FILE --json` command line (for testing the harness).
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[derive(Clone, Debug)]
struct Opts {
    runs: usize,
    seconds: u64,
    warmup: u64,
    quick: bool,
    build: bool,
    /// Steer each veth end's receive work to its own side's core.
    steer: bool,
}

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("udp") => {}
        Some("-h") | Some("--help") | Some("help") => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(other) => bail!("bench: unknown target `{other}` (only `udp` so far)\n\n{USAGE}"),
        None => bail!("bench: say what to benchmark\n\n{USAGE}"),
    }
    let opts = parse_opts(&args[1..])?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench udp needs root: it creates network namespaces and attaches XDP");
    }
    if nproc() < 2 {
        bail!("bench udp pins the tracker and the generator to cores 0 and 1: it needs 2 cores");
    }
    let bins = Binaries::locate();
    if opts.build {
        build(&bins)?;
    }
    bins.check()?;
    remove_stale_namespaces();
    let work = super::workspace_root().join("target").join("bench");
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let bench = Bench {
        bins,
        opts: opts.clone(),
        work,
        gen_keys: None,
    };
    let mut bench = bench;
    bench.gen_keys = Some(generator_keys(&bench.bins.load)?);
    let started = now_utc();
    let results = bench.run_all()?;
    let command = command_line(args);
    let text = report(&opts, &command, &started, &results);
    print!("{}", tables_only(&results, &opts));
    let out = if opts.quick {
        bench.work.join("benchmarks-quick.md")
    } else {
        super::workspace_root().join("docs").join("benchmarks.md")
    };
    fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask: results written to {}", out.display());
    Ok(())
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        runs: 5,
        seconds: 12,
        warmup: 3,
        quick: false,
        build: true,
        steer: true,
    };
    let mut explicit = (false, false, false);
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
            "--no-steer" => opts.steer = false,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("bench udp: unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if opts.quick {
        if !explicit.0 {
            opts.runs = 1;
        }
        if !explicit.1 {
            opts.seconds = 3;
        }
        if !explicit.2 {
            opts.warmup = 1;
        }
    }
    if opts.runs == 0 || opts.seconds < 2 || opts.seconds > 600 || opts.warmup > 120 {
        bail!("bench udp: --runs ≥ 1, 2 ≤ --seconds ≤ 600, --warmup ≤ 120");
    }
    Ok(opts)
}

// ---------------------------------------------------------------- binaries

struct Binaries {
    tracker: PathBuf,
    load: PathBuf,
    aquatic: PathBuf,
    anchor_root: PathBuf,
}

impl Binaries {
    fn locate() -> Binaries {
        let target = super::workspace_root().join("target");
        let anchor_root = target.join("anchors");
        Binaries {
            tracker: target.join("release").join("tracker-user"),
            // XTASK_BENCH_LOAD: another generator binary with the same
            // command line and JSON (for testing the harness itself).
            load: std::env::var_os("XTASK_BENCH_LOAD")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("release").join("tracker-load")),
            aquatic: anchor_root.join("bin").join("aquatic_udp"),
            anchor_root,
        }
    }

    fn check(&self) -> Result<()> {
        for (path, what) in [
            (&self.tracker, "cargo build --release -p tracker-user"),
            (&self.load, "cargo build --release -p tracker-load"),
            (&self.aquatic, "cargo xtask bench udp (without --no-build)"),
        ] {
            if !path.is_file() {
                bail!("{} is missing: run `{what}`", path.display());
            }
        }
        Ok(())
    }
}

fn build(bins: &Binaries) -> Result<()> {
    super::ebpf::build().context("building the XDP program")?;
    let cargo = super::cargo();
    super::run(
        &cargo,
        &[
            "build",
            "--release",
            "-p",
            "tracker-user",
            "-p",
            "tracker-load",
        ],
    )?;
    if bins.aquatic.is_file() && anchor_version(&bins.aquatic).as_deref() == Some(AQUATIC_VERSION) {
        return Ok(());
    }
    let root = bins.anchor_root.to_str().context("non-UTF-8 target path")?;
    eprintln!(
        "xtask: installing the anchor aquatic_udp {AQUATIC_VERSION} (takes a few minutes, once)"
    );
    super::run(
        &cargo,
        &[
            "install",
            "aquatic_udp",
            "--version",
            AQUATIC_VERSION,
            "--locked",
            "--no-default-features",
            "--features",
            "mimalloc",
            "--force",
            "--root",
            root,
        ],
    )
    .context("installing aquatic_udp")
}

/// The version `cargo install` recorded for the anchor, if any.
fn anchor_version(_bin: &Path) -> Option<String> {
    let crates = super::workspace_root()
        .join("target")
        .join("anchors")
        .join(".crates.toml");
    let text = fs::read_to_string(crates).ok()?;
    let start = text.find("\"aquatic_udp ")? + "\"aquatic_udp ".len();
    let rest = &text[start..];
    Some(rest[..rest.find(' ')?].to_owned())
}

/// The keys `tracker-load udp -p` prints, so the config we write uses only
/// keys it knows (it refuses unknown ones).
fn generator_keys(load: &Path) -> Result<String> {
    let out = Command::new(load)
        .args(["udp", "-p"])
        .output()
        .with_context(|| format!("running {} udp -p", load.display()))?;
    if !out.status.success() {
        bail!(
            "`tracker-load udp -p` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------- systems

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Ours,
    OursXdp,
    Aquatic,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Ours => "tracker-user (sockets)",
            System::OursXdp => "tracker-user (XDP)",
            System::Aquatic => "aquatic_udp 0.9.0",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Loopback,
    Veth,
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct RunResult {
    responses_per_s: f64,
    requests_per_s: f64,
    loss_rate: f64,
    window_s: f64,
    /// Busy CPU seconds of the whole machine in the window (wall × cores
    /// − idle).
    machine_cpu_s: f64,
    /// The same from /proc/stat's tick-sampled busy fields, for comparison.
    machine_tick_cpu_s: f64,
    /// The generator process, plus the client veth end's NAPI threads.
    generator_cpu_s: f64,
    tracker_cpu_s: f64,
    /// The server veth end's NAPI threads (XDP program, receive path).
    server_napi_cpu_s: f64,
    /// Other processes (approximate): what else ran in the window.
    others_cpu_s: f64,
    /// UDP receive-buffer drops in the tracker's namespace in the window.
    rcvbuf_drops: u64,
    /// The same in the generator's namespace, when it has its own.
    gen_rcvbuf_drops: Option<u64>,
    /// Busy CPU of the machine in the second before the load, in cores.
    background_cores: f64,
    peak_rss_kib: u64,
    /// Share of the connects the XDP program answered, for XDP runs.
    kernel_connect_share: Option<f64>,
    connects_per_s: f64,
    error_responses: u64,
    invalid_responses: u64,
    peers_per_announce: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    xdp_mode: Option<String>,
}

impl RunResult {
    fn server_cpu_s(&self) -> f64 {
        (self.machine_cpu_s - self.generator_cpu_s).max(0.0)
    }
    /// Responses the tracker sent in our sampling window.
    fn window_responses(&self) -> f64 {
        self.responses_per_s * self.window_s
    }
    fn server_cpu_per_m(&self) -> f64 {
        per_million(self.server_cpu_s(), self.window_responses())
    }
    fn tracker_cpu_per_m(&self) -> f64 {
        per_million(self.tracker_cpu_s, self.window_responses())
    }
    /// Whether other processes took a noticeable share of the machine.
    fn disturbed(&self) -> bool {
        self.others_cpu_s > 0.1 * self.window_s
    }

    fn responses_per_server_cpu_s(&self) -> f64 {
        if self.server_cpu_s() > 0.0 {
            self.window_responses() / self.server_cpu_s()
        } else {
            f64::NAN
        }
    }
}

fn per_million(cpu_s: f64, responses: f64) -> f64 {
    if responses > 0.0 {
        cpu_s / responses * 1e6
    } else {
        f64::NAN
    }
}

struct Series {
    scenario: &'static str,
    system: System,
    runs: Vec<RunResult>,
}

struct Results {
    loopback: Vec<Series>,
    veth: Vec<Series>,
    idle_background: f64,
}

struct Bench {
    bins: Binaries,
    opts: Opts,
    work: PathBuf,
    gen_keys: Option<String>,
}

impl Bench {
    fn run_all(&self) -> Result<Results> {
        let idle_background = measure_background(Duration::from_secs(2))?;
        eprintln!(
            "xtask: machine busy {:.0} % of a core with nothing of ours running",
            idle_background * 100.0
        );
        let total = self.opts.runs * 5;
        let mut done = 0;

        // (a) loopback
        let port = free_loopback_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut loopback = vec![
            Series {
                scenario: "loopback",
                system: System::Ours,
                runs: Vec::new(),
            },
            Series {
                scenario: "loopback",
                system: System::Aquatic,
                runs: Vec::new(),
            },
        ];
        for round in 0..self.opts.runs {
            for series in loopback.iter_mut() {
                done += 1;
                eprintln!(
                    "xtask: [{done}/{total}] loopback, {}, run {}",
                    series.system.label(),
                    round + 1
                );
                let r = self.one_run(Scenario::Loopback, series.system, addr, None, round)?;
                log_run(&r);
                series.runs.push(r);
            }
        }

        // (b) and (c): one veth pair, the three systems in turn each round
        let net = VethNet::create(self.opts.steer)?;
        let addr: SocketAddr = format!("{VETH_SERVER_V4}:{VETH_PORT}").parse()?;
        let mut veth = vec![
            Series {
                scenario: "veth",
                system: System::Ours,
                runs: Vec::new(),
            },
            Series {
                scenario: "veth",
                system: System::Aquatic,
                runs: Vec::new(),
            },
            Series {
                scenario: "veth",
                system: System::OursXdp,
                runs: Vec::new(),
            },
        ];
        for round in 0..self.opts.runs {
            for series in veth.iter_mut() {
                done += 1;
                eprintln!(
                    "xtask: [{done}/{total}] veth, {}, run {}",
                    series.system.label(),
                    round + 1
                );
                let r = self.one_run(Scenario::Veth, series.system, addr, Some(&net), round)?;
                log_run(&r);
                series.runs.push(r);
            }
        }
        drop(net);
        Ok(Results {
            loopback,
            veth,
            idle_background,
        })
    }

    fn one_run(
        &self,
        scenario: Scenario,
        system: System,
        addr: SocketAddr,
        net: Option<&VethNet>,
        round: usize,
    ) -> Result<RunResult> {
        check_stop()?;
        let tag = format!(
            "{}-{}-{}",
            match scenario {
                Scenario::Loopback => "lo",
                Scenario::Veth => "veth",
            },
            match system {
                System::Ours => "ours",
                System::OursXdp => "xdp",
                System::Aquatic => "aquatic",
            },
            round + 1
        );
        let server_ns = net.map(|n| n.server_ns.as_str());
        let client_ns = net.map(|n| n.client_ns.as_str());

        // The tracker, ready before the load starts.
        let mut tracker = self.start_tracker(system, addr, net, &tag)?;
        probe(addr, client_ns, Duration::from_secs(20))
            .with_context(|| format!("{} never answered a connect on {addr}", system.label()))
            .map_err(|e| tracker.explain(e))?;
        let xdp_mode = tracker.log_line_containing("XDP program attached");
        if system == System::OursXdp && xdp_mode.is_none() {
            bail!(
                "{} did not report the XDP program attached:\n{}",
                system.label(),
                tracker.log_tail()
            );
        }
        let background_cores = self.wait_for_quiet()?;

        // The generator.
        let gen_config = self.write_generator_config(addr, net, &tag)?;
        let gen_stderr = self.work.join(format!("{tag}.load.log"));
        let mut gen = Proc::spawn(
            &self.bins.load,
            &[
                "udp".into(),
                "-c".into(),
                gen_config.display().to_string(),
                "--json".into(),
            ],
            client_ns,
            GENERATOR_CPU,
            Stdio::piped(),
            Stdio::from(fs::File::create(&gen_stderr)?),
        )?;
        let gen_pid = gen.pid();
        let mut stdout = gen.child.stdout.take().context("generator stdout")?;
        let json_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let started = load_started(&mut gen)?;

        // Our window: from the end of the warm-up (plus a margin for the
        // generator's own start-up) to shortly before its measured window
        // ends. Rates from the generator cover its whole window; counts in
        // ours are rate × our window length.
        let margin = if self.opts.seconds >= 6 { 1.0 } else { 0.5 };
        let begin = Duration::from_secs_f64(self.opts.warmup as f64 + margin);
        let end = Duration::from_secs_f64(
            self.opts.warmup as f64 + self.opts.seconds as f64 - margin / 2.0,
        );
        sleep_until(started + begin, &mut gen)?;
        // NAPI threads exist once XDP programs are attached on both ends.
        let (server_napi, client_napi) = match net {
            Some(net) => net.pin_napi_threads()?,
            None => (Vec::new(), Vec::new()),
        };
        let pids = Pids {
            generator: gen_pid,
            client_napi: &client_napi,
            tracker: tracker.pid(),
            server_napi: &server_napi,
        };
        let xdp_net = net.filter(|_| system == System::OursXdp);
        let nic0 = net.map(VethNet::ethtool_stats);
        let s0 = Sample::take(&pids, xdp_net, true)?;
        sleep_until(started + end, &mut gen)?;
        let s1 = Sample::take(&pids, xdp_net, false)?;
        if let (Some(net), Some(nic0)) = (net, nic0) {
            let nic1 = net.ethtool_stats();
            let _ = fs::write(
                self.work.join(format!("{tag}.veth-stats.txt")),
                stats_delta(&nic0, &nic1),
            );
        }
        let peak_rss_kib = vm_hwm_kib(tracker.pid()).unwrap_or(0);

        // The generator finishes on its own.
        let deadline = started + Duration::from_secs(self.opts.warmup + self.opts.seconds + 60);
        let status = gen.wait_until(deadline)?;
        let json = json_reader.join().unwrap_or_default();
        if !status.success() {
            bail!(
                "the generator failed ({status}); its stderr ({}):\n{}",
                gen_stderr.display(),
                tail(&fs::read_to_string(&gen_stderr).unwrap_or_default(), 20)
            );
        }
        if !tracker.alive() {
            bail!(
                "{} died during the run:\n{}",
                system.label(),
                tracker.log_tail()
            );
        }
        drop(tracker);
        let _ = server_ns;

        let report: serde_json::Value = serde_json::from_str(json.trim()).with_context(|| {
            format!("the generator's --json output is not one JSON object:\n{json}")
        })?;
        fs::write(self.work.join(format!("{tag}.load.json")), &json)?;
        let num = |key: &str| report.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let gen_secs = num("duration_secs");
        let connects_per_s = num("connects_sent") / gen_secs;

        let hz = clock_ticks_per_second();
        let window_s = (s1.at - s0.at).as_secs_f64();
        let kernel_connect_share = match (s0.answered, s1.answered) {
            (Some(a0), Some(a1)) if connects_per_s > 0.0 => {
                Some((a1.saturating_sub(a0)) as f64 / window_s / connects_per_s)
            }
            _ => None,
        };
        Ok(RunResult {
            responses_per_s: num("responses_per_second"),
            requests_per_s: num("requests_per_second"),
            loss_rate: num("loss_rate"),
            window_s,
            machine_cpu_s: busy_seconds((s0.at, s0.stat), (s1.at, s1.stat)),
            machine_tick_cpu_s: (s1.stat.busy_fields - s0.stat.busy_fields) as f64 / hz,
            generator_cpu_s: (s1.generator - s0.generator) as f64 / hz,
            tracker_cpu_s: (s1.tracker - s0.tracker) as f64 / hz,
            server_napi_cpu_s: (s1.server_napi.saturating_sub(s0.server_napi)) as f64 / hz,
            others_cpu_s: others_seconds(&s0, &s1),
            rcvbuf_drops: s1.rcvbuf_errors.saturating_sub(s0.rcvbuf_errors),
            gen_rcvbuf_drops: net
                .map(|_| s1.gen_rcvbuf_errors.saturating_sub(s0.gen_rcvbuf_errors)),
            background_cores,
            peak_rss_kib,
            kernel_connect_share,
            connects_per_s,
            error_responses: num("error_responses") as u64,
            invalid_responses: num("invalid_responses") as u64,
            peers_per_announce: num("peers_per_announce"),
            latency_p50_us: report
                .pointer("/latency_us/p50")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN),
            latency_p99_us: report
                .pointer("/latency_us/p99")
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN),
            xdp_mode: xdp_mode.filter(|_| system == System::OursXdp),
        })
    }

    /// Waits (a bounded time) until the machine is idle apart from us:
    /// other work on this shared VM lands in the server CPU figures.
    /// Returns the busy share of a core in the last second.
    fn wait_for_quiet(&self) -> Result<f64> {
        const QUIET: f64 = 0.15;
        let patience = Duration::from_secs(if self.opts.quick { 10 } else { 90 });
        let since = Instant::now();
        let mut warned = false;
        loop {
            check_stop()?;
            let busy = measure_background(Duration::from_secs(1))?;
            if busy < QUIET {
                return Ok(busy);
            }
            if since.elapsed() >= patience {
                eprintln!(
                    "xtask:   the machine stays busy ({:.0} % of a core) without us: \
                     measuring anyway, the server CPU figures include it",
                    busy * 100.0
                );
                return Ok(busy);
            }
            if !warned {
                eprintln!(
                    "xtask:   something else keeps the machine busy ({:.0} % of a core); \
                     waiting up to {} s for it to calm down",
                    busy * 100.0,
                    patience.as_secs()
                );
                warned = true;
            }
        }
    }

    fn start_tracker(
        &self,
        system: System,
        addr: SocketAddr,
        net: Option<&VethNet>,
        tag: &str,
    ) -> Result<Tracker> {
        let ns = net.map(|n| n.server_ns.as_str());
        let log_path = self.work.join(format!("{tag}.tracker.log"));
        let config = self.work.join(format!("{tag}.tracker.toml"));
        let (program, args, ready) = match system {
            System::Ours | System::OursXdp => {
                let mut text = String::from(
                    "# written by cargo xtask bench udp\n\
                     log_level = \"info\"\n\n\
                     [swarm]\nworkers = 1\n\n\
                     [udp]\nworkers = 1\n",
                );
                let mut args = vec![
                    "-c".to_owned(),
                    config.display().to_string(),
                    "--udp".to_owned(),
                    addr.to_string(),
                ];
                if system == System::OursXdp {
                    let net = net.context("XDP runs need the veth pair")?;
                    let _ = writeln!(
                        text,
                        "\n[xdp]\nrequired = true\npin_path = \"{}\"",
                        net.pin_dir.display()
                    );
                    args.push("--iface".to_owned());
                    args.push(net.server_if.clone());
                }
                fs::write(&config, text)?;
                (&self.bins.tracker, args, Some("UDP listening on"))
            }
            System::Aquatic => {
                let text = format!(
                    "# written by cargo xtask bench udp\n\
                     socket_workers = 1\n\
                     log_level = \"warn\"\n\n\
                     [network]\naddress = \"{addr}\"\nonly_ipv6 = false\n\n\
                     [statistics]\ninterval = 0\n\n\
                     [privileges]\ndrop_privileges = false\n"
                );
                fs::write(&config, text)?;
                (
                    &self.bins.aquatic,
                    vec!["-c".to_owned(), config.display().to_string()],
                    None,
                )
            }
        };
        Tracker::start(program, &args, ns, &log_path, ready, system)
    }

    fn write_generator_config(
        &self,
        addr: SocketAddr,
        net: Option<&VethNet>,
        tag: &str,
    ) -> Result<PathBuf> {
        let keys = self.gen_keys.as_deref().unwrap_or("");
        let bind = match net {
            Some(_) => VETH_CLIENT_V4,
            None => "127.0.0.1",
        };
        let mut text = String::from("# written by cargo xtask bench udp\n");
        // Everything else, the [profile] included, keeps the generator's
        // defaults, which are aquatic's load profile.
        let _ = writeln!(text, "[udp]");
        let _ = writeln!(text, "tracker = \"{addr}\"");
        if has_key(keys, "udp", "bind") {
            let _ = writeln!(text, "bind = [\"{bind}\"]");
        }
        let _ = writeln!(text, "workers = 1");
        let _ = writeln!(text, "duration = {:.1}", self.opts.seconds as f64);
        let _ = writeln!(text, "warmup = {:.1}", self.opts.warmup as f64);
        let path = self.work.join(format!("{tag}.load.toml"));
        fs::write(&path, text)?;
        Ok(path)
    }
}

/// Whether a TOML text as `-p` prints it has `key` in section `section`.
fn has_key(printed: &str, section: &str, key: &str) -> bool {
    let mut current = String::new();
    for line in printed.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        let line = line.trim_start_matches('#').trim();
        if current == section {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim() == key {
                    return true;
                }
            }
        }
    }
    false
}

fn log_run(r: &RunResult) {
    eprintln!(
        "xtask:   {:.0} responses/s ({:.0} sent/s, loss {:.2} %), server CPU {:.2} s \
         ({:.1} s/M), tracker CPU {:.2} s ({:.1} s/M), server NAPI {:.2} s, generator CPU \
         {:.2} s, other processes {:.2} s, machine {:.2} s (tick fields {:.2} s) over {:.1} s, \
         peak RSS {:.0} MiB, background {:.0} %, UDP receive-buffer drops {}{}",
        r.responses_per_s,
        r.requests_per_s,
        r.loss_rate * 100.0,
        r.server_cpu_s(),
        r.server_cpu_per_m(),
        r.tracker_cpu_s,
        r.tracker_cpu_per_m(),
        r.server_napi_cpu_s,
        r.generator_cpu_s,
        r.others_cpu_s,
        r.machine_cpu_s,
        r.machine_tick_cpu_s,
        r.window_s,
        r.peak_rss_kib as f64 / 1024.0,
        r.background_cores * 100.0,
        drops(r),
        match r.kernel_connect_share {
            Some(s) => format!(
                ", connects answered in the kernel {:.1} % of {:.0}/s",
                s * 100.0,
                r.connects_per_s
            ),
            None => String::new(),
        }
    );
}

// ---------------------------------------------------------------- processes

/// A child process killed (and reaped) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `program` pinned to `cpu`, inside network namespace `ns` when
    /// given (like `nsenter --net`, without touching mounts, so bpffs under
    /// /sys stays visible).
    fn spawn(
        program: &Path,
        args: &[String],
        ns: Option<&str>,
        cpu: usize,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Proc> {
        let ns_file = match ns {
            Some(ns) => {
                let path = format!("/var/run/netns/{ns}");
                Some(fs::File::open(&path).with_context(|| format!("opening {path}"))?)
            }
            None => None,
        };
        let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(super::workspace_root());
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Our Ctrl-C handling stops the children; keep the terminal's
                // SIGINT from killing them before we read what they said.
                libc::setpgid(0, 0);
                // And if we die outright, so do they (the tracker detaches
                // its XDP program on SIGTERM).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        drop(ns_file);
        Ok(Proc { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_until(&mut self, deadline: Instant) -> Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if STOP.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            if Instant::now() >= deadline {
                bail!("{} ran past its deadline; killed", self.child.id());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        if !self.alive() {
            return;
        }
        // SAFETY: signalling our own child, which we have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A tracker under test and what it wrote to stderr.
struct Tracker {
    proc: Proc,
    system: System,
    log: Arc<Mutex<Vec<String>>>,
    log_path: PathBuf,
}

impl Tracker {
    fn start(
        program: &Path,
        args: &[String],
        ns: Option<&str>,
        log_path: &Path,
        ready: Option<&'static str>,
        system: System,
    ) -> Result<Tracker> {
        let mut proc = Proc::spawn(program, args, ns, SERVER_CPU, Stdio::null(), Stdio::piped())?;
        let stderr = proc.child.stderr.take().context("tracker stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            let mut file = fs::File::create(log_path)?;
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(file, "{line}");
                    if let (Some(want), Some(_)) = (ready, &tx) {
                        if line.contains(want) {
                            let _ = tx.take().map(|t| t.send(()));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() < 10_000 {
                        log.push(line);
                    }
                }
            });
        }
        let mut tracker = Tracker {
            proc,
            system,
            log,
            log_path: log_path.to_path_buf(),
        };
        if ready.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(()) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(100));
                        bail!(
                            "{} exited before it was ready:\n{}",
                            system.label(),
                            tracker.log_tail()
                        );
                    }
                }
                check_stop()?;
                if !tracker.proc.alive() {
                    std::thread::sleep(Duration::from_millis(100));
                    bail!(
                        "{} exited before it was ready:\n{}",
                        system.label(),
                        tracker.log_tail()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} not ready after 30 s:\n{}",
                        system.label(),
                        tracker.log_tail()
                    );
                }
            }
        }
        Ok(tracker)
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn alive(&mut self) -> bool {
        self.proc.alive()
    }

    fn log_line_containing(&self, what: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(what))
            .cloned()
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(20);
        format!(
            "(last lines of {}, log in {})\n{}",
            self.system.label(),
            self.log_path.display(),
            log[from..].join("\n")
        )
    }

    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n{}", self.log_tail())
    }
}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// When the generator starts sending: it prepares its profile (millions of
/// simulated peers) first, single-threaded, then starts its worker threads
/// (`udp-load-N` for tracker-load), from which its warm-up counts. The
/// first extra thread marks the start; without one, the spawn time does.
fn load_started(gen: &mut Proc) -> Result<Instant> {
    let spawned = Instant::now();
    let task_dir = format!("/proc/{}/task", gen.pid());
    while spawned.elapsed() < Duration::from_secs(60) {
        check_stop()?;
        if !gen.alive() {
            bail!("the generator exited before it started its load");
        }
        let threads = fs::read_dir(&task_dir).map(|d| d.count()).unwrap_or(0);
        if threads > 1 {
            return Ok(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("xtask:   the generator never started a second thread; timing from its start");
    Ok(spawned)
}

/// Sleeps until `when`, failing early if the generator exits or we are
/// interrupted.
fn sleep_until(when: Instant, gen: &mut Proc) -> Result<()> {
    while Instant::now() < when {
        check_stop()?;
        if !gen.alive() {
            bail!("the generator exited before the measured window ended");
        }
        std::thread::sleep((when - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Sends BEP 15 connects to `addr` until one is answered.
fn probe(addr: SocketAddr, ns: Option<&str>, timeout: Duration) -> Result<()> {
    let socket = match ns {
        Some(ns) => in_ns(ns, || UdpSocket::bind("0.0.0.0:0"))??,
        None => UdpSocket::bind("127.0.0.1:0")?,
    };
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + timeout;
    let mut tid: u32 = 0x6265_6e63;
    while Instant::now() < deadline {
        check_stop()?;
        tid = tid.wrapping_add(1);
        let mut req = Vec::with_capacity(16);
        req.extend_from_slice(&0x0417_2710_1980u64.to_be_bytes());
        req.extend_from_slice(&0u32.to_be_bytes());
        req.extend_from_slice(&tid.to_be_bytes());
        let _ = socket.send_to(&req, addr);
        let mut buf = [0u8; 64];
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) if n >= 16 && buf[0..4] == [0; 4] && buf[4..8] == tid.to_be_bytes() => {
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    bail!("no connect response within {timeout:?}")
}

// ---------------------------------------------------------------- network

/// Runs `f` on a thread that has entered network namespace `ns`; sockets it
/// creates stay in that namespace.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    let file = fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::spawn(move || {
        // SAFETY: setns on a namespace fd we hold; affects this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(anyhow!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))?
}

const NS_PREFIX: &str = "trkbench-";

/// A server and a client namespace joined by a veth pair, one queue each
/// way, with a pass program on the client end (veth hands frames the server
/// sends back with XDP_TX only to an end that runs XDP). Removed on drop.
struct VethNet {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    /// Whether each end's receive work is steered to its own side's core
    /// (see [`VethNet::steer`]).
    steered: bool,
    pin_dir: PathBuf,
    _client_link: Option<OwnedFd>,
}

impl VethNet {
    fn create(steer: bool) -> Result<VethNet> {
        let pid = std::process::id();
        // Short names: the NAPI thread of a device is `napi/<name>-<id>`,
        // and task names are cut at 15 characters.
        let client_if = format!("tbc{}", pid % 100_000);
        let mut net = VethNet {
            server_ns: format!("{NS_PREFIX}s-{pid}"),
            client_ns: format!("{NS_PREFIX}c-{pid}"),
            server_if: format!("tbs{}", pid % 100_000),
            client_if: client_if.clone(),
            steered: steer,
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/trkbench-{pid}")),
            _client_link: None,
        };
        // From here on, Drop cleans up whatever was made.
        quiet("ip", &["netns", "add", &net.server_ns])?;
        quiet("ip", &["netns", "add", &net.client_ns])?;
        #[rustfmt::skip]
        quiet("ip", &[
            "link", "add", &net.server_if, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
            "peer", "name", &client_if, "numtxqueues", "1", "numrxqueues", "1",
        ])?;
        let moved = quiet(
            "ip",
            &["link", "set", &net.server_if, "netns", &net.server_ns],
        )
        .and_then(|_| quiet("ip", &["link", "set", &client_if, "netns", &net.client_ns]));
        if let Err(e) = moved {
            let _ = quiet("ip", &["link", "del", &net.server_if]);
            return Err(e);
        }
        for (ns, dev, v4) in [
            (&net.server_ns, &net.server_if, VETH_SERVER_V4),
            (&net.client_ns, &client_if, VETH_CLIENT_V4),
        ] {
            quiet(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev],
            )?;
            quiet("ip", &["-n", ns, "link", "set", dev, "up"])?;
            quiet("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        if steer {
            net.steer()?;
        }
        let dev = client_if.clone();
        let link = in_ns(&net.client_ns, move || attach_pass_program(&dev))?
            .context("attaching a pass program to the client end of the veth pair")?;
        net._client_link = Some(link);
        Ok(net)
    }
}

impl VethNet {
    /// Puts each end's receive processing on its own side's core, as a
    /// NIC's interrupts would be, instead of on the sender's.
    ///
    /// veth runs the receiver's stack (its XDP program, and without NAPI
    /// the whole IP/UDP receive path through the backlog) in softirq on the
    /// CPU that sent the frame, and with tick-based CPU accounting that
    /// time is charged to the sending process. Left alone, the tracker's
    /// receive work (its XDP program answering connects included) would be
    /// charged to the generator and subtracted, and the generator's to the
    /// tracker. So both ends get GRO, which gives veth NAPI, made threaded
    /// (a kernel thread per queue,
    /// pinned per run by [`pin_napi_threads`]: the server's to core 0, the
    /// client's to core 1 and counted with the generator), and RPS sends
    /// what does not go through NAPI to the receiving side's core.
    fn steer(&self) -> Result<()> {
        for (ns, dev, cpu) in [
            (&self.server_ns, &self.server_if, SERVER_CPU),
            (&self.client_ns, &self.client_if, GENERATOR_CPU),
        ] {
            // sysfs shows a namespace's devices only when mounted from
            // inside it, which `ip netns exec` does (in a mount namespace
            // of its own, so our /sys is untouched).
            // veth has NAPI only with GRO on or an XDP program attached,
            // and `threaded` needs NAPI.
            let script = format!(
                "ethtool -K {dev} gro on >/dev/null && \
                 echo 1 > /sys/class/net/{dev}/threaded && \
                 echo {:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus",
                1u64 << cpu
            );
            quiet("ip", &["netns", "exec", ns, "sh", "-c", &script])
                .with_context(|| format!("steering {dev}'s receive work to core {cpu}"))?;
        }
        Ok(())
    }

    /// Pins the NAPI threads of both ends (they come and go with XDP
    /// programs) and returns the client end's, which count as generator.
    fn pin_napi_threads(&self) -> Result<(Vec<u32>, Vec<u32>)> {
        if !self.steered {
            return Ok((Vec::new(), Vec::new()));
        }
        let server = pin_napi_threads(&self.server_if, SERVER_CPU)?;
        let client = pin_napi_threads(&self.client_if, GENERATOR_CPU)?;
        Ok((server, client))
    }
}

impl VethNet {
    /// `ethtool -S` of both ends (veth's per-queue XDP and drop counters).
    fn ethtool_stats(&self) -> Vec<(String, u64)> {
        let mut all = Vec::new();
        for (ns, dev) in [
            (&self.server_ns, &self.server_if),
            (&self.client_ns, &self.client_if),
        ] {
            let Ok(out) = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-S", dev])
                .output()
            else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((k, v)) = line.split_once(':') {
                    if let Ok(v) = v.trim().parse::<u64>() {
                        all.push((format!("{dev} {}", k.trim()), v));
                    }
                }
            }
        }
        all
    }
}

/// The counters that moved between two `ethtool -S` readings.
fn stats_delta(before: &[(String, u64)], after: &[(String, u64)]) -> String {
    let mut out = String::from("# veth counters that moved during the measured window\n");
    for (k, v1) in after {
        let v0 = before.iter().find(|(k0, _)| k0 == k).map_or(0, |(_, v)| *v);
        if v1 != &v0 {
            let _ = writeln!(out, "{k}: {}", v1.wrapping_sub(v0));
        }
    }
    out
}

/// Pins the kernel threads `napi/<dev>-<id>` to `cpu`; returns their pids.
fn pin_napi_threads(dev: &str, cpu: usize) -> Result<Vec<u32>> {
    let prefix = format!("napi/{dev}-");
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(&prefix) {
            continue;
        }
        // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(
                pid as libc::pid_t,
                std::mem::size_of::<libc::cpu_set_t>(),
                &set,
            )
        };
        if rc != 0 {
            bail!(
                "pinning {} (pid {pid}) to core {cpu}: {}",
                comm.trim_end(),
                std::io::Error::last_os_error()
            );
        }
        pids.push(pid);
    }
    Ok(pids)
}

impl Drop for VethNet {
    fn drop(&mut self) {
        self._client_link = None;
        // Deleting a namespace deletes the veth end inside it, and the pair.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.pin_dir);
    }
}

/// Namespaces and pins left by a bench that was killed outright.
fn remove_stale_namespaces() {
    let Ok(dir) = fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.get(2..).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("xtask: removing namespace {name} left by an earlier bench");
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = fs::remove_dir_all(format!("/sys/fs/bpf/trkbench-{pid}"));
    }
}

fn quiet(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn free_loopback_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(s.local_addr()?.port())
}

// A two-instruction XDP program (r0 = XDP_PASS; exit) attached with a BPF
// link through raw bpf(2), as the XDP tests do.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_PASS: i32 = 2;

fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr of the size we pass.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Attaches the pass program to `ifname` in the calling thread's network
/// namespace; it stays attached until the returned link is dropped.
fn attach_pass_program(ifname: &str) -> std::io::Result<OwnedFd> {
    let put32 = |attr: &mut [u8], at: usize, v: u32| {
        attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    };
    let put64 = |attr: &mut [u8], at: usize, v: u64| {
        attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    };
    let mut insns = [0u8; 16];
    insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
    insns[4..8].copy_from_slice(&XDP_PASS.to_ne_bytes());
    insns[8] = 0x95; // BPF_JMP | BPF_EXIT
    let license = b"MIT\0";
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, 2);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    let prog = sys_bpf(BPF_PROG_LOAD, &mut attr)?;

    let name = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    sys_bpf(BPF_LINK_CREATE, &mut attr)
}

// ---------------------------------------------------------------- sampling

struct Sample {
    at: Instant,
    stat: ProcStat,
    /// The generator process plus the client end's NAPI threads.
    generator: u64,
    tracker: u64,
    server_napi: u64,
    answered: Option<u64>,
    /// utime + stime of every other user process.
    others: std::collections::HashMap<u32, u64>,
    /// UDP RcvbufErrors in the tracker's network namespace.
    rcvbuf_errors: u64,
    /// The same in the generator's.
    gen_rcvbuf_errors: u64,
}

/// Who is who in a run, for sampling.
struct Pids<'a> {
    generator: u32,
    client_napi: &'a [u32],
    tracker: u32,
    server_napi: &'a [u32],
}

impl Sample {
    /// bpftool runs outside the window: before the CPU figures at its
    /// start (`first`), after them at its end.
    fn take(pids: &Pids, xdp: Option<&VethNet>, first: bool) -> Result<Sample> {
        let bpf = || -> Result<Option<u64>> {
            match xdp {
                Some(net) => Ok(Some(xdp_answered(&net.pin_dir)?)),
                None => Ok(None),
            }
        };
        let early = if first { bpf()? } else { None };
        let sum = |pids: &[u32]| -> u64 {
            // A NAPI thread that has gone (XDP detached) counts as idle.
            pids.iter().map(|&p| process_ticks(p).unwrap_or(0)).sum()
        };
        let mut sample = Sample {
            at: Instant::now(),
            stat: ProcStat::read()?,
            generator: process_ticks(pids.generator)? + sum(pids.client_napi),
            tracker: process_ticks(pids.tracker)?,
            server_napi: sum(pids.server_napi),
            answered: early,
            others: other_processes(pids),
            rcvbuf_errors: udp_rcvbuf_errors(pids.tracker),
            gen_rcvbuf_errors: udp_rcvbuf_errors(pids.generator),
        };
        if !first {
            sample.answered = bpf()?;
        }
        Ok(sample)
    }
}

/// Datagrams the kernel dropped for a full socket receive buffer, in the
/// network namespace of process `pid` (over loopback that holds the
/// generator's sockets too).
fn udp_rcvbuf_errors(pid: u32) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/snmp")) else {
        return 0;
    };
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// CPU ticks of every user process but the ones we measure, for telling
/// how much else ran during a window.
fn other_processes(pids: &Pids) -> std::collections::HashMap<u32, u64> {
    let mut skip: Vec<u32> = vec![pids.generator, pids.tracker];
    skip.extend_from_slice(pids.client_napi);
    skip.extend_from_slice(pids.server_napi);
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if skip.contains(&pid) {
            continue;
        }
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = text.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
        // Kernel threads (flags, field 9, has PF_KTHREAD) may be doing the
        // tracker's network work (ksoftirqd): not "something else".
        let flags: u64 = f.get(6).and_then(|v| v.parse().ok()).unwrap_or(0);
        if flags & 0x0020_0000 != 0 {
            continue;
        }
        // utime stime: fields 14-15. Not the reaped children's (16-17):
        // a shell reaping a long build would count all of it.
        let ticks: u64 = (11..13)
            .filter_map(|i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
            .sum();
        out.insert(pid, ticks);
    }
    out
}

/// CPU seconds other processes used between two samples (roughly: a process
/// that ended inside the window is missed).
fn others_seconds(s0: &Sample, s1: &Sample) -> f64 {
    let ticks: u64 = s1
        .others
        .iter()
        .map(|(pid, t1)| match s0.others.get(pid) {
            Some(t0) => t1.saturating_sub(*t0),
            None => *t1,
        })
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// The all-cores line of /proc/stat, in USER_HZ ticks.
#[derive(Clone, Copy)]
struct ProcStat {
    /// user + nice + system + irq + softirq + steal (guest time is
    /// already inside user). Sampled by the scheduler tick: see `idle`.
    busy_fields: u64,
    /// idle + iowait. With a tickless idle kernel these two come from
    /// exact idle-entry/exit timestamps, while the busy fields are sampled
    /// at each tick (250 Hz here, without IRQ time accounting), which
    /// misses much of the busy time of bursty work that often idles; so
    /// busy time = wall time × cores − idle is the exact figure.
    idle: u64,
}

impl ProcStat {
    fn read() -> Result<ProcStat> {
        let text = fs::read_to_string("/proc/stat")?;
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("/proc/stat has no cpu line")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        Ok(ProcStat {
            busy_fields: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
            idle: at(3) + at(4),
        })
    }
}

/// Busy CPU seconds of all cores between two samples: wall time × cores
/// minus idle time.
fn busy_seconds(s0: (Instant, ProcStat), s1: (Instant, ProcStat)) -> f64 {
    let wall = (s1.0 - s0.0).as_secs_f64() * nproc() as f64;
    let idle = s1.1.idle.saturating_sub(s0.1.idle) as f64 / clock_ticks_per_second();
    (wall - idle).max(0.0)
}

/// utime + stime of a process, all its threads, in USER_HZ ticks.
fn process_ticks(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; fields resume after its ')'.
    let rest = &text[text.rfind(')').context("odd /proc/PID/stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Busy cores (0..nproc) over `span` with nothing of ours loading the machine.
fn measure_background(span: Duration) -> Result<f64> {
    let s0 = (Instant::now(), ProcStat::read()?);
    std::thread::sleep(span);
    let s1 = (Instant::now(), ProcStat::read()?);
    Ok(busy_seconds(s0, s1) / (s1.0 - s0.0).as_secs_f64())
}

/// Sum over CPUs of the XDP program's "answered in the kernel" counter.
fn xdp_answered(pin_dir: &Path) -> Result<u64> {
    let map = pin_dir.join("COUNTERS");
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&map)
        .output()
        .context("running bpftool")?;
    if !out.status.success() {
        bail!(
            "bpftool map dump pinned {} failed: {}",
            map.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let counters = counters_from_bpftool(&String::from_utf8_lossy(&out.stdout))?;
    Ok(counters[2])
}

/// The five per-CPU counters (seen, redirected, answered, passed,
/// malformed), summed over CPUs, from `bpftool -j map dump`.
fn counters_from_bpftool(json: &str) -> Result<[u64; 5]> {
    let entries: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("bpftool JSON: {json}"))?;
    let mut sums = [0u64; 5];
    for entry in entries.as_array().context("bpftool: not an array")? {
        // With BTF: {"key": 2, "values": [{"cpu": 0, "value": 7}, ...]};
        // without: keys and values are arrays of hex byte strings.
        let entry = entry.get("formatted").unwrap_or(entry);
        let key = bpf_number(entry.get("key").context("entry without key")?)? as usize;
        let values = entry
            .get("values")
            .and_then(|v| v.as_array())
            .context("entry without per-CPU values")?;
        let mut sum = 0u64;
        for v in values {
            sum += bpf_number(v.get("value").context("CPU value")?)?;
        }
        if let Some(slot) = sums.get_mut(key) {
            *slot = sum;
        }
    }
    Ok(sums)
}

/// A number as bpftool prints it: plain, or little-endian hex bytes.
fn bpf_number(v: &serde_json::Value) -> Result<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().context("negative counter"),
        serde_json::Value::Array(bytes) => {
            let mut acc = 0u64;
            for b in bytes.iter().rev() {
                let s = b.as_str().context("hex byte string")?;
                acc = (acc << 8) | u64::from_str_radix(s.trim_start_matches("0x"), 16)?;
            }
            Ok(acc)
        }
        other => bail!("unexpected bpftool value {other}"),
    }
}

// ---------------------------------------------------------------- report

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn kernel() -> String {
    Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn memory_gib() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let l = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "?".into())
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown date".into())
}

fn git_revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(super::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn git_dirty() -> bool {
    Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(super::workspace_root())
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
}

fn command_line(args: &[String]) -> String {
    let mut s = String::from("cargo xtask bench");
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let finite = v.iter().copied().filter(|x| x.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

struct Stat {
    med: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(runs: &[RunResult], f: impl Fn(&RunResult) -> f64) -> Stat {
        let v: Vec<f64> = runs.iter().map(f).collect();
        let (min, max) = min_max(&v);
        Stat {
            med: median(v),
            min,
            max,
        }
    }

    fn fmt(&self, decimals: usize, single: bool) -> String {
        if !self.med.is_finite() {
            return "–".into();
        }
        if single || (self.min == self.max) {
            return format!("{:.*}", decimals, self.med);
        }
        format!(
            "{:.*} ({:.*}–{:.*})",
            decimals, self.med, decimals, self.min, decimals, self.max
        )
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn rate_stat(runs: &[RunResult], single: bool) -> String {
    let s = Stat::of(runs, |r| r.responses_per_s);
    if !s.med.is_finite() {
        return "–".into();
    }
    if single || s.min == s.max {
        return thousands(s.med);
    }
    format!(
        "{} ({}–{})",
        thousands(s.med),
        thousands(s.min),
        thousands(s.max)
    )
}

fn table(series: &[&Series], single: bool, notes: &[(&str, &str)]) -> String {
    let mut t = String::new();
    t.push_str(
        "| system | responses/s | server CPU s per M responses | tracker-process CPU s per M | \
         responses per server CPU s | peak RSS MiB | connects answered in the kernel |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in series {
        let runs = &s.runs;
        let note = notes
            .iter()
            .find(|(label, _)| *label == s.system.label())
            .map(|(_, n)| *n)
            .unwrap_or("");
        let share = if s.system == System::OursXdp {
            Stat::of(runs, |r| r.kernel_connect_share.unwrap_or(f64::NAN) * 100.0).fmt(1, single)
                + " %"
        } else {
            "–".into()
        };
        let _ = writeln!(
            t,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            s.system.label(),
            note,
            rate_stat(runs, single),
            Stat::of(runs, RunResult::server_cpu_per_m).fmt(2, single),
            Stat::of(runs, RunResult::tracker_cpu_per_m).fmt(2, single),
            thousands(median(
                runs.iter()
                    .map(RunResult::responses_per_server_cpu_s)
                    .collect()
            )),
            Stat::of(runs, |r| r.peak_rss_kib as f64 / 1024.0).fmt(0, single),
            share,
        );
    }
    t
}

fn med_of(s: &Series, f: impl Fn(&RunResult) -> f64) -> f64 {
    median(s.runs.iter().map(f).collect())
}

fn ratio_line(label: &str, x: f64) -> String {
    if x.is_finite() {
        format!("- {label}: **{x:.2}×**\n")
    } else {
        format!("- {label}: –\n")
    }
}

fn find(series: &[Series], system: System) -> &Series {
    series
        .iter()
        .find(|s| s.system == system)
        .expect("every scenario runs every system")
}

fn vs_anchor(ours: &Series, anchor: &Series) -> String {
    let mut t = String::new();
    t.push_str(&ratio_line(
        &format!("responses/s, {} / aquatic_udp", ours.system.label()),
        med_of(ours, |r| r.responses_per_s) / med_of(anchor, |r| r.responses_per_s),
    ));
    t.push_str(&ratio_line(
        "server CPU per M responses, aquatic_udp / ours (above 1: we spend less)",
        med_of(anchor, RunResult::server_cpu_per_m) / med_of(ours, RunResult::server_cpu_per_m),
    ));
    t.push_str(&ratio_line(
        "tracker-process CPU per M responses, aquatic_udp / ours",
        med_of(anchor, RunResult::tracker_cpu_per_m) / med_of(ours, RunResult::tracker_cpu_per_m),
    ));
    t.push_str(&ratio_line(
        "peak RSS, ours / aquatic_udp",
        med_of(ours, |r| r.peak_rss_kib as f64) / med_of(anchor, |r| r.peak_rss_kib as f64),
    ));
    t
}

fn sections(results: &Results, opts: &Opts) -> String {
    let single = opts.runs == 1;
    let mut t = String::new();
    let lo_ours = find(&results.loopback, System::Ours);
    let lo_aq = find(&results.loopback, System::Aquatic);
    let ve_ours = find(&results.veth, System::Ours);
    let ve_aq = find(&results.veth, System::Aquatic);
    let ve_xdp = find(&results.veth, System::OursXdp);

    t.push_str("### (a) Loopback, plain sockets\n\n");
    t.push_str(
        "Tracker on 127.0.0.1 pinned to core 0, generator pinned to core 1, \
         both in the host's network namespace.\n\n",
    );
    t.push_str(&table(&[lo_ours, lo_aq], single, &[]));
    t.push('\n');
    t.push_str(&vs_anchor(lo_ours, lo_aq));

    t.push_str("\n### (b) veth, plain sockets\n\n");
    t.push_str(&format!(
        "Tracker in a server namespace on {VETH_SERVER_V4}:{VETH_PORT} (core 0), generator in a \
         client namespace on {VETH_CLIENT_V4} (core 1), one veth pair with one queue each way.\n\n"
    ));
    t.push_str(&table(&[ve_ours, ve_aq], single, &[]));
    t.push('\n');
    t.push_str(&vs_anchor(ve_ours, ve_aq));

    t.push_str("\n### (c) veth, XDP\n\n");
    t.push_str(
        "The same veth pair; our tracker started with `--iface` (XDP program on the server \
         end, an AF_XDP socket for its one queue, connects answered in the kernel). \
         The rows marked † are (b)'s, measured in the same rounds (each round runs sockets, \
         aquatic_udp, XDP in turn).\n\n",
    );
    t.push_str(&table(
        &[ve_xdp, ve_ours, ve_aq],
        single,
        &[
            ("tracker-user (sockets)", " †"),
            ("aquatic_udp 0.9.0", " †"),
        ],
    ));
    t.push('\n');
    t.push_str(&ratio_line(
        "responses per server CPU second, XDP / sockets (issue target ≥ 2)",
        med_of(ve_xdp, RunResult::responses_per_server_cpu_s)
            / med_of(ve_ours, RunResult::responses_per_server_cpu_s),
    ));
    t.push_str(&ratio_line(
        "responses per server CPU second, XDP / aquatic_udp (issue target ≥ 3)",
        med_of(ve_xdp, RunResult::responses_per_server_cpu_s)
            / med_of(ve_aq, RunResult::responses_per_server_cpu_s),
    ));
    t.push_str(&ratio_line(
        "responses/s, XDP / sockets",
        med_of(ve_xdp, |r| r.responses_per_s) / med_of(ve_ours, |r| r.responses_per_s),
    ));
    t.push_str(&ratio_line(
        "responses/s, XDP / aquatic_udp",
        med_of(ve_xdp, |r| r.responses_per_s) / med_of(ve_aq, |r| r.responses_per_s),
    ));
    if let Some(mode) = ve_xdp.runs.iter().find_map(|r| r.xdp_mode.clone()) {
        let mode = mode
            .split_once("XDP program")
            .map(|(_, m)| format!("XDP program{m}"))
            .unwrap_or(mode);
        let _ = writeln!(t, "\nThe tracker said: `{mode}`.");
    }
    t
}

fn tables_only(results: &Results, opts: &Opts) -> String {
    format!("\n{}\n", sections(results, opts))
}

fn drops(r: &RunResult) -> String {
    match r.gen_rcvbuf_drops {
        Some(g) => format!(
            "{} ({})",
            thousands(r.rcvbuf_drops as f64),
            thousands(g as f64)
        ),
        None => thousands(r.rcvbuf_drops as f64),
    }
}

fn every_run(results: &Results) -> String {
    let mut t = String::from(
        "| scenario | system | run | responses/s | sent/s | loss % | window s | machine CPU s \
         (tick fields) | generator CPU s | server CPU s | tracker CPU s | server NAPI CPU s | \
         other processes CPU s | background % of a core | peak RSS MiB | kernel connects % | peers/announce | p50 µs | \
         p99 µs | error / invalid responses | UDP receive-buffer drops, server (client) side |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut all: Vec<(&Series, usize, &RunResult)> = Vec::new();
    for s in results.loopback.iter().chain(results.veth.iter()) {
        for (i, r) in s.runs.iter().enumerate() {
            all.push((s, i, r));
        }
    }
    for (s, i, r) in all {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} ({:.2}) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {:.1} | {:.0} | {:.0} | {} / {} | {} |",
            s.scenario,
            s.system.label(),
            i + 1,
            thousands(r.responses_per_s),
            thousands(r.requests_per_s),
            r.loss_rate * 100.0,
            r.window_s,
            r.machine_cpu_s,
            r.machine_tick_cpu_s,
            r.generator_cpu_s,
            r.server_cpu_s(),
            r.tracker_cpu_s,
            r.server_napi_cpu_s,
            r.others_cpu_s,
            r.background_cores * 100.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.kernel_connect_share
                .map(|s| format!("{:.1}", s * 100.0))
                .unwrap_or_else(|| "–".into()),
            r.peers_per_announce,
            r.latency_p50_us,
            r.latency_p99_us,
            r.error_responses,
            r.invalid_responses,
            drops(r),
        );
    }
    t
}

fn report(opts: &Opts, command: &str, started: &str, results: &Results) -> String {
    let mut t = String::new();
    t.push_str("# Benchmarks\n\n");
    t.push_str(
        "<!-- Generated by `cargo xtask bench udp`; the command rewrites this whole file. \
         Edit xtask/src/bench.rs, not this file. -->\n\n",
    );
    let _ = writeln!(t, "## UDP (BEP 15): tracker-user against aquatic_udp\n");
    let _ = writeln!(
        t,
        "- Date: {started} · commit `{}`{}",
        git_revision(),
        if git_dirty() {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "- Machine: {} cores, {}, {} RAM, Linux {}",
        nproc(),
        cpu_model(),
        memory_gib(),
        kernel()
    );
    let _ = writeln!(
        t,
        "- Busy CPU with nothing of ours running, measured just before: {:.0} % of one core \
         (counted in every run's server CPU; per-run figures in the last table)",
        results.idle_background * 100.0
    );
    let all: Vec<&RunResult> = results
        .loopback
        .iter()
        .chain(results.veth.iter())
        .flat_map(|s| s.runs.iter())
        .collect();
    let disturbed = all.iter().filter(|r| r.disturbed()).count();
    let _ = writeln!(
        t,
        "- Runs during which other processes used more than 10 % of a core: {disturbed} of {} \
         (column *other processes* in the last table; their time inflates that run's server \
         CPU and may have slowed either side)",
        all.len()
    );
    let _ = writeln!(t, "- Command (as root): `{command}`");
    let _ = writeln!(
        t,
        "- {} run(s) per system and scenario, each {} s measured after {} s of warm-up; \
         systems alternate run by run; medians with (min–max).\n",
        opts.runs, opts.seconds, opts.warmup
    );

    t.push_str("### What is measured\n\n");
    let rmem_max = fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or("unknown".to_owned(), |b| {
            format!("{} KiB", thousands(b / 1024.0))
        });
    t.push_str(
        &"- **Load**: `tracker-load udp` (this repository) with its default profile, which is \
         aquatic_udp_load_test's: 1,000,000 torrents, 2,000,000 peers, request weights \
         connect 50 : announce 50 : scrape 1, 30 peers wanted, 75 % seeders, popularity skewed \
         toward a hot head, up to 10 hashes per scrape. One generator worker, pinned to core 1.\n\
         - **Trackers**, each started fresh for every run and pinned to core 0: \
         `tracker-user` with `[swarm] workers = 1`, `[udp] workers = 1` (its XDP run adds \
         `--iface` and `[xdp] required = true`); `aquatic_udp` 0.9.0 from crates.io (mio back \
         end, built with `--no-default-features --features mimalloc`: its default Prometheus \
         feature pulls metrics 0.22.3, which Rust 1.95 refuses to compile, and the endpoint \
         would be off anyway) with `socket_workers = 1`, statistics off. Each keeps its other \
         defaults; note the socket receive buffer: tracker-user keeps the kernel's default \
         (`udp.recv_buffer_size = 0`), aquatic_udp asks for 8 MB, which the kernel caps at \
         net.core.rmem_max (RMEM_MAX here).\n\
         - **responses/s**: the generator's count of valid responses over its measured \
         window.\n\
         - **server CPU**: all CPU time the machine was busy in the window, minus the \
         generator's own: the machine's busy time is wall time × cores − (idle + iowait) from \
         /proc/stat, softirq and irq included; the generator's is utime + stime of all its \
         threads (/proc/PID/stat) plus, over veth, the client end's NAPI thread (its \
         receive path). With XDP much of the work is kernel work outside the tracker process, \
         so this is the fair figure. Anything else running on the machine lands in it too: \
         before each run the bench waits for the machine to be idle (below 15 % of a core, \
         bounded wait) and records what was left (*background* in the last table).\n\
         - **tracker-process CPU**: utime + stime of the tracker process alone. With XDP it \
         leaves out the program and the receive path, which run in the server end's NAPI \
         thread (column *server NAPI* in the last table).\n\
         - CPU figures are divided by the responses of the same window (responses/s × window \
         length); the window starts a little after the warm-up (1 s, 0.5 s for runs shorter \
         than 6 s) and ends half that before the generator stops.\n\
         - **peak RSS**: the tracker's VmHWM at the end of the run.\n\
         - **connects answered in the kernel** (XDP only): growth of the program's `answered` \
         counter (bpftool, pinned map `COUNTERS`) per second of the window, over the \
         generator's connects sent per second (the two rates come from slightly different \
         windows, so it can read a percent or so above 100).\n"
            .replace("RMEM_MAX", &rmem_max),
    );
    if opts.steer {
        t.push_str(
            "- **Where veth's kernel work runs.** veth runs a receiver's stack (its XDP program, \
             and without NAPI the whole IP/UDP receive path) in softirq on the core that sent \
             the frame, and this kernel (tick-based CPU accounting, no IRQ time accounting) \
             charges that time to the sending process. Left alone, the tracker's receive work, \
             XDP connect answers included, would be charged to the generator and subtracted. \
             So both veth ends get GRO (which gives veth NAPI), threaded NAPI with the kernel \
             thread pinned to its own side's core (server end: core 0 with the tracker; client \
             end: core 1, counted with the generator), and RPS to the same core for frames that \
             bypass NAPI, as a NIC's interrupts would put them. `--no-steer` turns this off \
             for comparison.\n",
        );
    } else {
        t.push_str(
            "- **`--no-steer`**: veth's receive work was left on the sending core and charged \
             to the sending process: the tracker's receive path (its XDP program included) \
             counts as generator and is subtracted, so the veth server CPU figures are too \
             low, for XDP far too low.\n",
        );
    }
    t.push_str(
        "- Over loopback the same holds and cannot be steered: the tracker's receive path \
         runs on, and is charged to, the generator, and the generator's to the tracker; both \
         trackers get the same treatment.\n\n",
    );
    t.push_str("### How to read this\n\n");
    t.push_str(
        "Only ratios measured in the same command mean much: this 2-core VM drifts by 5–50 % \
         with background load, so compare rows of one table, not figures across dates. \
         Systems alternate run by run, so a slow spell hits both. When the tracker's core is \
         not saturated (tracker-process CPU well below 1 s per second of window), \
         responses/s measures the generator, not the tracker, and the CPU columns are the \
         ones that tell the trackers apart: fewer CPU seconds per million responses is \
         better, and *responses per server CPU second* is the same figure upside down (the \
         issue targets are stated in it). Server CPU is always above tracker-process CPU: it \
         holds the kernel's network work for the tracker (and over loopback some of the \
         generator's). Loss is requests without an answer: dropped by the tracker or by a \
         full socket buffer under overload.\n\n",
    );
    t.push_str(&sections(results, opts));
    t.push_str("\n### Every run\n\n");
    t.push_str(&every_run(results));
    t.push_str(
        "\nConfig files, tracker logs and the generator's JSON of every run are left in \
         `target/bench/`.\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_numbers_in_both_forms() {
        let json = r#"[{"key":["0x02","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x05","0x01","0x00","0x00","0x00","0x00","0x00","0x00"]},{"cpu":1,"value":["0x01","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]},
                       {"key":0,"values":[{"cpu":0,"value":3},{"cpu":1,"value":4}]}]"#;
        let c = counters_from_bpftool(json).unwrap();
        assert_eq!(c[2], 0x105 + 1);
        assert_eq!(c[0], 7);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn keys_in_printed_config() {
        let printed = "[udp]\n# local addresses\nbind = [\"127.0.0.1\"]\n[profile]\ntorrents = 1\n";
        assert!(has_key(printed, "udp", "bind"));
        assert!(!has_key(printed, "udp", "torrents"));
        assert!(has_key(printed, "profile", "torrents"));
    }
}
