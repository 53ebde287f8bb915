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
//! and ratios go to the `udp` section of docs/benchmarks.md and stdout.
//!
//! Everything it creates (namespaces, veth pair, bpffs pins, processes) is
//! removed on the way out, on errors and on Ctrl-C too.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::Tracker;
use super::report::{alternate, now_utc, write_sections, Progress, Series};
use super::sample::{
    measure, measure_background, Generator, Hooks, KernelCounters, Load, RunResult,
};
use super::{
    check_stop, generator_keys, has_key, parse_opts, prepare, printed_value, write_load_config,
    Binaries, Opts, ONE_HOST_PEERS_PER_IP,
};

pub(in crate::bench) mod aquatic_gen;
mod counters;
mod markdown;
mod markdown_xsk;
mod net;
mod options;

use counters::xdp_counters;
use markdown::{drops, report, sections};
pub(super) use net::free_loopback_port;
use net::{in_ns, remove_stale_namespaces, stats_delta, ClientEnd, VethNet};
use options::{take_baseline, take_only, Baseline, Only};

/// Seconds both trackers keep a peer that does not announce again: far
/// beyond any tracker's life in a bench, so no peer expires during a run
/// (the defaults, 1200 s for both, would do too; this keeps it so).
pub const PEER_AGE: u32 = 3600;

const VETH_SERVER_V4: &str = "10.201.0.1";
const VETH_CLIENT_V4: &str = "10.201.0.2";
const VETH_PORT: u16 = 6969;
/// The AF_XDP sender's simulated source addresses (tracker-load's
/// `udp.xdp_source_first` and `xdp_source_count` fall inside).
const XSK_SOURCES: &str = "10.202.0.0/16";
const XSK_SOURCE_FIRST: &str = "10.202.0.1";
/// Simulated sources of the AF_XDP sender: as many clients as it takes for
/// a connection id each to stay a small share of the requests.
const XSK_SOURCE_COUNT: u32 = 4096;
/// The AF_XDP sender's window. veth queues at most 256 frames for an end's
/// NAPI thread and drops past that (the server's XDP_TX answers then count
/// as `xdp_tx_errors`), so a window much wider than that loses answers
/// whenever the client end's thread, on the generator's core, falls behind.
const XSK_IN_FLIGHT: usize = 256;
/// The open-loop run's window: never the limit.
const XSK_OPEN_LOOP_IN_FLIGHT: usize = 65_536;

/// The generator's re-announce mix in scenario (e)'s second set of rows:
/// one announce in ten names its client's event, the rest are periodic
/// re-announces (event none), as real clients send between started and
/// stopped.
const REANNOUNCE_EVENT_SHARE: f64 = 0.1;

/// What the generator's announces say in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mix {
    /// aquatic's profile: every announce names its client's event
    /// (started for leechers, completed for seeders).
    Events,
    /// `[profile] event_share =` [`REANNOUNCE_EVENT_SHARE`].
    Reannounces,
}

/// `cargo xtask bench udp`: `args` is the whole command after `bench`,
/// `rest` its options.
pub fn run(args: &[String], rest: &[String]) -> Result<()> {
    let (baseline, rest) = take_baseline(rest)?;
    let (only, rest) = take_only(&rest)?;
    if only.is_some() && baseline.is_some() {
        bail!("--baseline runs in scenarios (a) and (c), which --only xsk leaves out");
    }
    let rest = &rest[..];
    let mut steer = true;
    let opts = parse_opts("udp", rest, |flag| {
        let known = flag == "--no-steer";
        steer &= !known;
        known
    })?;
    let work = prepare("udp", "it creates network namespaces and attaches XDP")?;
    // The veth scenarios steer receive work and read per-queue counters
    // with ethtool; finding it missing after the loopback runs wastes them.
    if std::process::Command::new("ethtool")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("bench udp needs ethtool for its veth scenarios (Debian: apt-get install ethtool)");
    }
    let bins = Binaries::locate("aquatic_udp");
    if opts.build {
        crate::ebpf::build().context("building the XDP program")?;
        super::build_ours()?;
        super::install_anchor("aquatic_udp")?;
        super::install_anchor(aquatic_gen::NAME)?;
    }
    bins.check("udp")?;
    let aquatic_load = super::anchor_root().join("bin").join(aquatic_gen::NAME);
    // Only (a′) runs aquatic's generator.
    if only.is_none() && !aquatic_load.is_file() {
        bail!(
            "{} is missing: run `cargo xtask bench udp` without --no-build",
            aquatic_load.display()
        );
    }
    remove_stale_namespaces();
    let gen_keys = generator_keys(&bins.load, "udp")?;
    let bench = Bench {
        bins,
        opts: opts.clone(),
        steer,
        work,
        gen_keys,
        baseline,
        aquatic_load,
    };
    // The re-announce rows would silently run aquatic's mix otherwise.
    if !has_key(&bench.gen_keys, "profile", "event_share") {
        bail!(
            "{} has no `[profile] event_share`: rebuild it (cargo build --release -p \
             tracker-load)",
            bench.bins.load.display()
        );
    }
    let started = now_utc();
    let command = super::report::command_line(args);
    if only == Some(Only::Xsk) {
        let results = bench.run_xsk_only()?;
        let text = markdown_xsk::only_report(&opts, &command, &started, &results);
        print!("\n{text}\n");
        // A part of a run: docs/benchmarks.md is for whole runs only.
        let path = bench.work.join("benchmarks-udp-xsk.md");
        fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: results written to {}", path.display());
        return Ok(());
    }
    let results = bench.run_all()?;
    print!("\n{}\n", sections(&results, &opts));
    if let Some(baseline) = &bench.baseline {
        println!("{}", markdown::baseline_section(&results, &baseline.label));
    }
    let mut text = report(&opts, steer, &command, &started, &results);
    if let Some(baseline) = &bench.baseline {
        text.push_str(&markdown::baseline_section(&results, &baseline.label));
    }
    let path = write_sections("udp", &bench.work, opts.quick, &[("udp", text)])?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------- systems

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum System {
    /// The default config: on this 1 + 1 topology the request worker runs
    /// inline in the socket worker's thread (`[swarm] inline = "auto"`).
    Ours,
    /// The multi-core design on the same core: the request worker on a
    /// thread of its own (`inline = "off"`), batches crossing a channel.
    OursThreads,
    OursXdp,
    /// XDP under the AF_XDP generator, with the in-kernel scrape and
    /// announce answers off (`[xdp] scrape_in_kernel = false`,
    /// `announce_in_kernel = false`, `announce_events_in_kernel = false`):
    /// connects in the kernel, the rest through AF_XDP.
    OursXdpUserland,
    /// The same with the in-kernel scrape and announce answers on, those
    /// to announces naming started or completed included.
    OursXdpKernel,
    /// [`System::OursXdpUserland`] under the AF_XDP sender run open loop
    /// (a window of 65,536 that frees a slot 0.1 ms after each send): what
    /// the sender can put out, whatever comes back.
    OursXdpOpenLoop,
    Aquatic,
    /// Another build of ours (`--baseline`), on sockets and with XDP: what
    /// a change costs, measured in the same rounds.
    Baseline,
    BaselineXdp,
}

pub(super) const OURS: &str = "tracker-user (sockets)";
const OURS_THREADS: &str = "tracker-user (sockets, swarm thread)";
const OURS_XDP: &str = "tracker-user (XDP)";
const OURS_XDP_USERLAND: &str = "tracker-user (XDP, scrapes and announces in userland)";
const OURS_XDP_KERNEL: &str =
    "tracker-user (XDP, in-kernel scrapes and announces on, started/completed included)";
// Scenario (e)'s rows under the re-announce mix.
const OURS_XDP_USERLAND_RE: &str =
    "tracker-user (XDP, scrapes and announces in userland), re-announce mix";
const OURS_XDP_KERNEL_RE: &str =
    "tracker-user (XDP, in-kernel scrapes and announces on, started/completed included), \
     re-announce mix";
const AQUATIC_RE: &str = "aquatic_udp 0.9.0, re-announce mix";
const OURS_XDP_OPEN_LOOP: &str = "AF_XDP sender alone (open loop; tracker-user (XDP) answering)";
pub(super) const AQUATIC: &str = "aquatic_udp 0.9.0";
const BASELINE: &str = "baseline (sockets)";
const BASELINE_XDP: &str = "baseline (XDP)";

impl System {
    pub(super) fn label(self) -> &'static str {
        match self {
            System::Ours => OURS,
            System::OursThreads => OURS_THREADS,
            System::OursXdp => OURS_XDP,
            System::OursXdpUserland => OURS_XDP_USERLAND,
            System::OursXdpKernel => OURS_XDP_KERNEL,
            System::OursXdpOpenLoop => OURS_XDP_OPEN_LOOP,
            System::Aquatic => AQUATIC,
            System::Baseline => BASELINE,
            System::BaselineXdp => BASELINE_XDP,
        }
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::OursThreads => "threads",
            System::OursXdp => "xdp",
            System::OursXdpUserland => "xdp-user",
            System::OursXdpKernel => "xdp-kernel",
            System::OursXdpOpenLoop => "xdp-open-loop",
            System::Aquatic => "aquatic",
            System::Baseline => "base",
            System::BaselineXdp => "base-xdp",
        }
    }

    fn xdp(self) -> bool {
        matches!(
            self,
            System::OursXdp
                | System::OursXdpUserland
                | System::OursXdpKernel
                | System::OursXdpOpenLoop
                | System::BaselineXdp
        )
    }
}

struct Results {
    loopback: Vec<Series>,
    /// The same systems on loopback under aquatic_udp_load_test.
    loopback_aquatic_gen: Vec<Series>,
    veth: Vec<Series>,
    /// Over a second veth pair, under tracker-load's AF_XDP sender.
    veth_xsk: Vec<Series>,
    /// The same pair and sender, its announces mostly re-announces
    /// ([`Mix::Reannounces`]).
    veth_xsk_reannounce: Vec<Series>,
    idle_background: f64,
}

pub(super) struct Bench {
    pub(super) bins: Binaries,
    pub(super) opts: Opts,
    /// Steer each veth end's receive work to its own side's core.
    pub(super) steer: bool,
    pub(super) work: PathBuf,
    /// What `tracker-load udp -p` prints.
    pub(super) gen_keys: String,
    pub(super) baseline: Option<Baseline>,
    /// aquatic_udp_load_test, the second generator of scenario (a).
    pub(super) aquatic_load: PathBuf,
}

/// The UDP figures of a run for the progress log.
pub(super) fn udp_log(r: &RunResult) -> String {
    let mut extra = format!(
        ", server NAPI {:.2} s, UDP receive-buffer drops {}",
        r.server_napi_cpu_s,
        drops(r)
    );
    if let Some(share) = r.kernel_connect_share {
        let _ = write!(
            extra,
            ", connects answered in the kernel {:.1} % of {:.0}/s",
            share * 100.0,
            r.connects_per_s
        );
    }
    if let Some(share) = r.kernel_share {
        let _ = write!(
            extra,
            ", answered in the kernel {:.1} % of what the program saw",
            share * 100.0
        );
    }
    if r.window_s > 0.0 {
        let _ = write!(
            extra,
            ", generator {:.0} % and tracker {:.0} % of a core",
            r.generator_cpu_s / r.window_s * 100.0,
            r.tracker_cpu_s / r.window_s * 100.0
        );
    }
    extra
}

impl Bench {
    fn run_all(&self) -> Result<Results> {
        let idle_background = measure_background(Duration::from_secs(2))?;
        eprintln!(
            "xtask: machine busy {:.0} % of a core with nothing of ours running",
            idle_background * 100.0
        );
        let with_baseline = usize::from(self.baseline.is_some());
        let mut progress = Progress::new(self.opts.runs * (16 + 3 * with_baseline));

        // (a) loopback
        let port = free_loopback_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut systems = vec![
            (System::Ours, OURS),
            (System::Aquatic, AQUATIC),
            (System::OursThreads, OURS_THREADS),
        ];
        if self.baseline.is_some() {
            systems.push((System::Baseline, BASELINE));
        }
        let loopback = alternate(
            "loopback",
            &systems,
            self.opts.runs,
            &mut progress,
            udp_log,
            |system, round| {
                self.one_run(
                    system,
                    addr,
                    None,
                    round,
                    Generator::TrackerLoad,
                    Mix::Events,
                )
            },
        )?;
        // (a) again, under aquatic's own generator.
        let loopback_aquatic_gen = alternate(
            "loopback, aquatic_udp_load_test",
            &systems,
            self.opts.runs,
            &mut progress,
            udp_log,
            |system, round| {
                self.one_run(
                    system,
                    addr,
                    None,
                    round,
                    Generator::AquaticUdp,
                    Mix::Events,
                )
            },
        )?;

        // (b) and (c): one veth pair, the three systems in turn each round
        let net = VethNet::create(self.steer, ClientEnd::Sockets)?;
        let addr: SocketAddr = format!("{VETH_SERVER_V4}:{VETH_PORT}").parse()?;
        let mut systems = vec![
            (System::Ours, OURS),
            (System::Aquatic, AQUATIC),
            (System::OursXdp, OURS_XDP),
        ];
        if self.baseline.is_some() {
            systems.push((System::BaselineXdp, BASELINE_XDP));
        }
        let veth = alternate(
            "veth",
            &systems,
            self.opts.runs,
            &mut progress,
            udp_log,
            |system, round| {
                let net = Some(&net);
                self.one_run(
                    system,
                    addr,
                    net,
                    round,
                    Generator::TrackerLoad,
                    Mix::Events,
                )
            },
        )?;
        drop(net);

        let (veth_xsk, veth_xsk_reannounce) = self.run_xsk(&mut progress)?;
        Ok(Results {
            loopback,
            loopback_aquatic_gen,
            veth,
            veth_xsk,
            veth_xsk_reannounce,
            idle_background,
        })
    }

    /// `--only xsk`: scenario (e) alone.
    fn run_xsk_only(&self) -> Result<Results> {
        let idle_background = measure_background(Duration::from_secs(2))?;
        eprintln!(
            "xtask: machine busy {:.0} % of a core with nothing of ours running",
            idle_background * 100.0
        );
        let mut progress = Progress::new(self.opts.runs * 7);
        let (veth_xsk, veth_xsk_reannounce) = self.run_xsk(&mut progress)?;
        Ok(Results {
            loopback: Vec::new(),
            loopback_aquatic_gen: Vec::new(),
            veth: Vec::new(),
            veth_xsk,
            veth_xsk_reannounce,
            idle_background,
        })
    }

    /// Scenario (e): a pair of its own, its client end the AF_XDP sender's;
    /// the series under aquatic's mix (the open-loop run last), then under
    /// the re-announce mix.
    fn run_xsk(&self, progress: &mut Progress) -> Result<(Vec<Series>, Vec<Series>)> {
        let net = VethNet::create(self.steer, ClientEnd::Xsk)?;
        let addr: SocketAddr = format!("{VETH_SERVER_V4}:{VETH_PORT}").parse()?;
        let mut xsk_run = |scenario, systems: &[(System, &str)], mix| {
            alternate(
                scenario,
                systems,
                self.opts.runs,
                progress,
                udp_log,
                |system, round| {
                    let net = Some(&net);
                    self.one_run(system, addr, net, round, Generator::TrackerLoad, mix)
                },
            )
        };
        let mut veth_xsk = xsk_run(
            "veth, AF_XDP generator",
            &[
                (System::OursXdpUserland, OURS_XDP_USERLAND),
                (System::OursXdpKernel, OURS_XDP_KERNEL),
                (System::Aquatic, AQUATIC),
            ],
            Mix::Events,
        )?;
        let open_loop = xsk_run(
            "veth, AF_XDP generator alone",
            &[(System::OursXdpOpenLoop, OURS_XDP_OPEN_LOOP)],
            Mix::Events,
        )?;
        veth_xsk.extend(open_loop);
        let reannounce = xsk_run(
            "veth, AF_XDP generator, event_share 0.1",
            &[
                (System::OursXdpUserland, OURS_XDP_USERLAND_RE),
                (System::OursXdpKernel, OURS_XDP_KERNEL_RE),
                (System::Aquatic, AQUATIC_RE),
            ],
            Mix::Reannounces,
        )?;
        drop(net);
        Ok((veth_xsk, reannounce))
    }

    fn one_run(
        &self,
        system: System,
        addr: SocketAddr,
        net: Option<&VethNet>,
        round: usize,
        generator: Generator,
        mix: Mix,
    ) -> Result<RunResult> {
        check_stop()?;
        let xsk = net.is_some_and(|n| n.client_end == ClientEnd::Xsk);
        let scenario = match (net.is_some(), generator) {
            (true, _) if xsk => "veth-xsk",
            (true, _) => "veth",
            (false, Generator::TrackerLoad) => "lo",
            (false, Generator::AquaticUdp) => "lo-aqgen",
        };
        let mix_tag = match mix {
            Mix::Events => "",
            Mix::Reannounces => "-reannounce",
        };
        let tag = format!("{scenario}{mix_tag}-{}-{}", system.tag(), round + 1);
        let client_ns = net.map(|n| n.client_ns.as_str());

        // The tracker, ready before the load starts.
        let mut tracker = self.start_tracker(system, addr, net, &tag)?;
        // The AF_XDP pair's client end has no XDP program until the
        // generator attaches its own, so the tracker's in-kernel connect
        // answers would not reach a probe there: probe from the server's
        // side, which reaches the tracker's socket.
        let probe_ns = match (xsk, net) {
            (true, Some(n)) => Some(n.server_ns.as_str()),
            _ => client_ns,
        };
        probe(addr, probe_ns, Duration::from_secs(20))
            .with_context(|| format!("{} never answered a connect on {addr}", system.label()))
            .map_err(|e| tracker.explain(e))?;
        let xdp_mode = tracker.log_line_containing("XDP program attached");
        if system.xdp() && xdp_mode.is_none() {
            bail!(
                "{} did not report the XDP program attached:\n{}",
                system.label(),
                tracker.log_tail()
            );
        }

        // aquatic's generator measures whole 5-second intervals.
        let mut aq_opts = self.opts.clone();
        (aq_opts.warmup, aq_opts.seconds) =
            aquatic_gen::window(self.opts.warmup, self.opts.seconds);
        let load = match generator {
            Generator::TrackerLoad => Load {
                opts: &self.opts,
                work: &self.work,
                program: &self.bins.load,
                protocol: "udp",
                config: self.write_generator_config(system, addr, net, &tag, mix)?,
                tag: &tag,
                client_ns,
                prefill_peers: self.prefills(system, net).then(|| {
                    printed_value(&self.gen_keys, "profile", "peers")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(2_000_000)
                }),
                generator,
            },
            Generator::AquaticUdp => Load {
                opts: &aq_opts,
                work: &self.work,
                program: &self.aquatic_load,
                protocol: "udp",
                config: aquatic_gen::write_config(
                    &self.work,
                    &tag,
                    addr,
                    aq_opts.warmup,
                    aq_opts.seconds,
                )?,
                tag: &tag,
                client_ns,
                prefill_peers: None,
                generator,
            },
        };
        let mut hooks = VethHooks {
            net,
            xdp: system.xdp(),
            nic0: None,
            stats_path: self.work.join(format!("{tag}.veth-stats.txt")),
        };
        let mut result = measure(&load, &mut tracker, &mut hooks)?;
        result.xdp_mode = xdp_mode.filter(|_| system.xdp());
        Ok(result)
    }

    /// Starts `system` on `addr` (in the server namespace of `net`, if
    /// given), with its config and log named by `tag`.
    pub(super) fn start_tracker(
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
            System::Ours
            | System::OursThreads
            | System::OursXdp
            | System::OursXdpUserland
            | System::OursXdpKernel
            | System::OursXdpOpenLoop
            | System::Baseline
            | System::BaselineXdp => {
                // Only the threads row names the key: a baseline build may
                // predate it, and the others keep the default.
                let inline = match system {
                    System::OursThreads => "inline = \"off\"\n",
                    _ => "",
                };
                let mut text = format!(
                    "# written by cargo xtask bench udp\n\
                     log_level = \"info\"\n\n\
                     [swarm]\nworkers = 1\nmax_peer_age = {PEER_AGE}\n\
                     max_peers_per_ip = {ONE_HOST_PEERS_PER_IP}\n{inline}\n\
                     [udp]\nworkers = 1\n\n\
                     [http]\nlisten = []\n\n\
                     [admin]\nlisten = []\n",
                );
                let mut args = vec![
                    "-c".to_owned(),
                    config.display().to_string(),
                    "--udp".to_owned(),
                    addr.to_string(),
                ];
                if system.xdp() {
                    let net = net.context("XDP runs need the veth pair")?;
                    let _ = writeln!(
                        text,
                        "\n[xdp]\nrequired = true\npin_path = \"{}\"",
                        net.pin_dir.display()
                    );
                    text.push_str(&in_kernel_keys(system));
                    args.push("--iface".to_owned());
                    args.push(net.server_if.clone());
                }
                fs::write(&config, text)?;
                let program = match (&self.baseline, system) {
                    (Some(b), System::Baseline | System::BaselineXdp) => &b.path,
                    _ => &self.bins.tracker,
                };
                (program, args, Some("UDP listening on"))
            }
            System::Aquatic => {
                let text = format!(
                    "# written by cargo xtask bench udp\n\
                     socket_workers = 1\n\
                     log_level = \"warn\"\n\n\
                     [network]\naddress = \"{addr}\"\nonly_ipv6 = false\n\n\
                     [cleaning]\nmax_peer_age = {PEER_AGE}\n\n\
                     [statistics]\ninterval = 0\n\n\
                     [privileges]\ndrop_privileges = false\n"
                );
                fs::write(&config, text)?;
                (
                    &self.bins.anchor,
                    vec!["-c".to_owned(), config.display().to_string()],
                    None,
                )
            }
        };
        Tracker::start(program, &args, ns, &log_path, ready, system.label())
    }

    /// Whether the generator prefills, if it can: over loopback, and in
    /// (e), where the AF_XDP sender announces every client from its source
    /// address first so the in-kernel caches see the settled swarms of a
    /// long-running tracker. The open-loop row measures the sender alone.
    fn prefills(&self, system: System, net: Option<&VethNet>) -> bool {
        prefills(system, net.map(|n| n.client_end)) && has_key(&self.gen_keys, "udp", "prefill")
    }

    fn write_generator_config(
        &self,
        system: System,
        addr: SocketAddr,
        net: Option<&VethNet>,
        tag: &str,
        mix: Mix,
    ) -> Result<PathBuf> {
        let bind = match net {
            Some(_) => VETH_CLIENT_V4,
            None => "127.0.0.1",
        };
        let mut text = String::from("# written by cargo xtask bench udp\n");
        // Everything else, the rest of [profile] included, keeps the
        // generator's defaults, which are aquatic's load profile.
        text.push_str(&profile_keys(mix));
        let _ = writeln!(text, "[udp]");
        let _ = writeln!(text, "tracker = \"{addr}\"");
        if has_key(&self.gen_keys, "udp", "bind") {
            let _ = writeln!(text, "bind = [\"{bind}\"]");
        }
        let _ = writeln!(text, "workers = 1");
        if let Some(net) = net.filter(|n| n.client_end == ClientEnd::Xsk) {
            let _ = writeln!(text, "xdp_iface = \"{}\"", net.client_if);
            let _ = writeln!(text, "xdp_source_first = \"{XSK_SOURCE_FIRST}\"");
            let _ = writeln!(text, "xdp_source_count = {XSK_SOURCE_COUNT}");
            if system == System::OursXdpOpenLoop {
                let _ = writeln!(text, "xdp_in_flight = {XSK_OPEN_LOOP_IN_FLIGHT}");
                let _ = writeln!(text, "window_timeout = 0.0001\nrequest_timeout = 0.001");
            } else {
                let _ = writeln!(text, "xdp_in_flight = {XSK_IN_FLIGHT}");
            }
            // A whole window per turn: one kick moves it.
            let _ = writeln!(text, "batch_size = {XSK_IN_FLIGHT}");
        }
        if self.prefills(system, net) {
            let _ = writeln!(text, "prefill = true");
        }
        write_load_config(&self.work, tag, &self.opts, text)
    }
}

/// Whether tracker-load prefills for `system` over a veth pair whose client
/// end is `client_end` (None: loopback).
fn prefills(system: System, client_end: Option<ClientEnd>) -> bool {
    match client_end {
        None => true,
        Some(ClientEnd::Xsk) => system != System::OursXdpOpenLoop,
        Some(_) => false,
    }
}

/// The `[xdp]` keys that set the in-kernel answers of `system`: (c) keeps
/// the defaults, (e) names all three ways.
fn in_kernel_keys(system: System) -> String {
    let on = match system {
        System::OursXdpUserland | System::OursXdpOpenLoop => false,
        System::OursXdpKernel => true,
        _ => return String::new(),
    };
    format!(
        "scrape_in_kernel = {on}\nannounce_in_kernel = {on}\nannounce_events_in_kernel = {on}\n"
    )
}

/// The generator's `[profile]` keys for `mix`; aquatic's is its default.
fn profile_keys(mix: Mix) -> String {
    match mix {
        Mix::Events => String::new(),
        Mix::Reannounces => format!("[profile]\nevent_share = {REANNOUNCE_EVENT_SHARE}\n\n"),
    }
}

/// What the veth runs add around the measured window: pinning the NAPI
/// threads (which exist once XDP programs are attached on both ends), the
/// XDP counter, and veth's own counters.
struct VethHooks<'a> {
    net: Option<&'a VethNet>,
    /// The XDP program is ours to read (its pins are under the pin dir).
    xdp: bool,
    nic0: Option<Vec<(String, u64)>>,
    stats_path: PathBuf,
}

impl Hooks for VethHooks<'_> {
    fn opening(&mut self) -> Result<(Vec<u32>, Vec<u32>)> {
        let Some(net) = self.net else {
            return Ok((Vec::new(), Vec::new()));
        };
        let pids = net.pin_napi_threads()?;
        self.nic0 = Some(net.ethtool_stats());
        Ok(pids)
    }

    fn kernel_counters(&self) -> Option<Result<KernelCounters>> {
        let net = self.net.filter(|_| self.xdp)?;
        Some(xdp_counters(&net.pin_dir))
    }

    fn closed(&mut self) {
        if let (Some(net), Some(nic0)) = (self.net, &self.nic0) {
            let nic1 = net.ethtool_stats();
            let _ = fs::write(&self.stats_path, stats_delta(nic0, &nic1));
        }
    }
}

/// Sends BEP 15 connects to `addr` until one is answered.
pub(super) fn probe(addr: SocketAddr, ns: Option<&str>, timeout: Duration) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::printed_value;

    #[test]
    fn the_in_kernel_row_turns_on_announce_events_too() {
        let on = in_kernel_keys(System::OursXdpKernel);
        let off = in_kernel_keys(System::OursXdpUserland);
        for key in [
            "scrape_in_kernel",
            "announce_in_kernel",
            "announce_events_in_kernel",
        ] {
            assert_eq!(printed_value(&on, "", key).as_deref(), Some("true"), "{on}");
            assert_eq!(
                printed_value(&off, "", key).as_deref(),
                Some("false"),
                "{off}"
            );
        }
        assert!(OURS_XDP_KERNEL.contains("started/completed"));
        // (c) keeps the tracker's defaults.
        assert_eq!(in_kernel_keys(System::OursXdp), "");
    }

    #[test]
    fn the_reannounce_mix_sets_the_generators_event_share() {
        let keys = profile_keys(Mix::Reannounces);
        assert_eq!(
            printed_value(&keys, "profile", "event_share").as_deref(),
            Some("0.1")
        );
        assert_eq!(profile_keys(Mix::Events), "");
    }

    #[test]
    fn loopback_and_the_af_xdp_rows_prefill_but_not_the_open_loop_one() {
        use ClientEnd::{Sockets, Xsk};
        for system in [System::Ours, System::OursThreads, System::Aquatic] {
            assert!(prefills(system, None), "{system:?} over loopback");
        }
        for system in [
            System::OursXdpUserland,
            System::OursXdpKernel,
            System::Aquatic,
        ] {
            assert!(prefills(system, Some(Xsk)), "{system:?} in (e)");
        }
        assert!(!prefills(System::OursXdpOpenLoop, Some(Xsk)));
        // (b) and (c): the socket sender over veth measures a fresh tracker.
        for system in [System::Ours, System::OursXdp, System::Aquatic] {
            assert!(!prefills(system, Some(Sockets)), "{system:?} in (b)/(c)");
        }
    }
}
