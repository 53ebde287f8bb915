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
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::proc::Tracker;
use super::report::{
    alternate, cpu_notes, every_run, find, how_to_read, med_of, memory_notes, memory_table,
    now_utc, preamble, ratio_line, table, thousands, vs_anchor, write_sections, Column, Progress,
    Series, LEFT_IN_TARGET, LOOPBACK_NOTE,
};
use super::sample::{measure, measure_background, Hooks, Load, RunResult};
use super::{
    check_stop, generator_keys, has_key, parse_opts, prepare, printed_value, write_load_config,
    Binaries, Opts, GENERATOR_CPU, ONE_HOST_PEERS_PER_IP, SERVER_CPU,
};

/// Seconds both trackers keep a peer that does not announce again: far
/// beyond any tracker's life in a bench, so no peer expires during a run
/// (the defaults, 1200 s for both, would do too; this keeps it so).
pub const PEER_AGE: u32 = 3600;

const VETH_SERVER_V4: &str = "10.201.0.1";
const VETH_CLIENT_V4: &str = "10.201.0.2";
const VETH_PORT: u16 = 6969;

/// `cargo xtask bench udp`: `args` is the whole command after `bench`,
/// `rest` its options.
pub fn run(args: &[String], rest: &[String]) -> Result<()> {
    let mut steer = true;
    let opts = parse_opts("udp", rest, |flag| {
        let known = flag == "--no-steer";
        steer &= !known;
        known
    })?;
    let work = prepare("udp", "it creates network namespaces and attaches XDP")?;
    let bins = Binaries::locate("aquatic_udp");
    if opts.build {
        crate::ebpf::build().context("building the XDP program")?;
        super::build_ours()?;
        super::install_anchor("aquatic_udp")?;
    }
    bins.check("udp")?;
    remove_stale_namespaces();
    let gen_keys = generator_keys(&bins.load, "udp")?;
    let bench = Bench {
        bins,
        opts: opts.clone(),
        steer,
        work,
        gen_keys,
    };
    let started = now_utc();
    let results = bench.run_all()?;
    let command = super::report::command_line(args);
    print!("\n{}\n", sections(&results, &opts));
    let text = report(&opts, steer, &command, &started, &results);
    let path = write_sections("udp", &bench.work, opts.quick, &[("udp", text)])?;
    eprintln!("xtask: results written to {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------- systems

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum System {
    Ours,
    OursXdp,
    Aquatic,
}

pub(super) const OURS: &str = "tracker-user (sockets)";
const OURS_XDP: &str = "tracker-user (XDP)";
pub(super) const AQUATIC: &str = "aquatic_udp 0.9.0";

impl System {
    pub(super) fn label(self) -> &'static str {
        match self {
            System::Ours => OURS,
            System::OursXdp => OURS_XDP,
            System::Aquatic => AQUATIC,
        }
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::OursXdp => "xdp",
            System::Aquatic => "aquatic",
        }
    }
}

struct Results {
    loopback: Vec<Series>,
    veth: Vec<Series>,
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
    extra
}

impl Bench {
    fn run_all(&self) -> Result<Results> {
        let idle_background = measure_background(Duration::from_secs(2))?;
        eprintln!(
            "xtask: machine busy {:.0} % of a core with nothing of ours running",
            idle_background * 100.0
        );
        let mut progress = Progress::new(self.opts.runs * 5);

        // (a) loopback
        let port = free_loopback_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let loopback = alternate(
            "loopback",
            &[(System::Ours, OURS), (System::Aquatic, AQUATIC)],
            self.opts.runs,
            &mut progress,
            udp_log,
            |system, round| self.one_run(system, addr, None, round),
        )?;

        // (b) and (c): one veth pair, the three systems in turn each round
        let net = VethNet::create(self.steer)?;
        let addr: SocketAddr = format!("{VETH_SERVER_V4}:{VETH_PORT}").parse()?;
        let veth = alternate(
            "veth",
            &[
                (System::Ours, OURS),
                (System::Aquatic, AQUATIC),
                (System::OursXdp, OURS_XDP),
            ],
            self.opts.runs,
            &mut progress,
            udp_log,
            |system, round| self.one_run(system, addr, Some(&net), round),
        )?;
        drop(net);
        Ok(Results {
            loopback,
            veth,
            idle_background,
        })
    }

    fn one_run(
        &self,
        system: System,
        addr: SocketAddr,
        net: Option<&VethNet>,
        round: usize,
    ) -> Result<RunResult> {
        check_stop()?;
        let scenario = if net.is_some() { "veth" } else { "lo" };
        let tag = format!("{scenario}-{}-{}", system.tag(), round + 1);
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

        let gen_config = self.write_generator_config(addr, net, &tag)?;
        let prefill_peers = self.prefills(net).then(|| {
            printed_value(&self.gen_keys, "profile", "peers")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2_000_000)
        });
        let load = Load {
            opts: &self.opts,
            work: &self.work,
            program: &self.bins.load,
            protocol: "udp",
            config: gen_config,
            tag: &tag,
            client_ns,
            prefill_peers,
        };
        let mut hooks = VethHooks {
            net,
            xdp: system == System::OursXdp,
            nic0: None,
            stats_path: self.work.join(format!("{tag}.veth-stats.txt")),
        };
        let mut result = measure(&load, &mut tracker, &mut hooks)?;
        result.xdp_mode = xdp_mode.filter(|_| system == System::OursXdp);
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
            System::Ours | System::OursXdp => {
                let mut text = format!(
                    "# written by cargo xtask bench udp\n\
                     log_level = \"info\"\n\n\
                     [swarm]\nworkers = 1\nmax_peer_age = {PEER_AGE}\n\
                     max_peers_per_ip = {ONE_HOST_PEERS_PER_IP}\n\n\
                     [udp]\nworkers = 1\n\n\
                     [http]\nlisten = []\n",
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

    /// Whether the generator prefills: over loopback, if it can.
    fn prefills(&self, net: Option<&VethNet>) -> bool {
        net.is_none() && has_key(&self.gen_keys, "udp", "prefill")
    }

    fn write_generator_config(
        &self,
        addr: SocketAddr,
        net: Option<&VethNet>,
        tag: &str,
    ) -> Result<PathBuf> {
        let bind = match net {
            Some(_) => VETH_CLIENT_V4,
            None => "127.0.0.1",
        };
        let mut text = String::from("# written by cargo xtask bench udp\n");
        // Everything else, the [profile] included, keeps the generator's
        // defaults, which are aquatic's load profile.
        let _ = writeln!(text, "[udp]");
        let _ = writeln!(text, "tracker = \"{addr}\"");
        if has_key(&self.gen_keys, "udp", "bind") {
            let _ = writeln!(text, "bind = [\"{bind}\"]");
        }
        let _ = writeln!(text, "workers = 1");
        if self.prefills(net) {
            let _ = writeln!(text, "prefill = true");
        }
        write_load_config(&self.work, tag, &self.opts, text)
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

    fn answered(&self) -> Option<Result<u64>> {
        let net = self.net.filter(|_| self.xdp)?;
        Some(xdp_answered(&net.pin_dir))
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
pub(super) struct VethNet {
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
        let link = in_ns(&net.client_ns, move || {
            tracker_xdp_testing::attach_pass_program(&dev)
        })?
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

pub(super) fn free_loopback_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(s.local_addr()?.port())
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

fn sections(results: &Results, opts: &Opts) -> String {
    let single = opts.runs == 1;
    let mut t = String::new();
    let lo_ours = find(&results.loopback, OURS);
    let lo_aq = find(&results.loopback, AQUATIC);
    let ve_ours = find(&results.veth, OURS);
    let ve_aq = find(&results.veth, AQUATIC);
    let ve_xdp = find(&results.veth, OURS_XDP);

    t.push_str("### (a) Loopback, plain sockets\n\n");
    t.push_str(
        "Tracker on 127.0.0.1 pinned to core 0, generator pinned to core 1, \
         both in the host's network namespace.\n\n",
    );
    t.push_str(&table(&[lo_ours, lo_aq], single, &[], true));
    t.push('\n');
    t.push_str(&vs_anchor(lo_ours, lo_aq, "aquatic_udp"));
    if lo_ours.runs.iter().any(|r| r.prefilled_peers > 0) {
        t.push_str(
            "\nMemory, from the prefill before each loopback run (see *Prefill* and *bytes per \
             peer* above):\n\n",
        );
        t.push_str(&memory_table(&[lo_ours, lo_aq], single));
        t.push('\n');
        t.push_str(&ratio_line(
            "bytes per peer, ours / aquatic_udp (issue target ≤ 0.5)",
            med_of(lo_ours, RunResult::bytes_per_peer) / med_of(lo_aq, RunResult::bytes_per_peer),
        ));
    }

    t.push_str("\n### (b) veth, plain sockets\n\n");
    t.push_str(&format!(
        "Tracker in a server namespace on {VETH_SERVER_V4}:{VETH_PORT} (core 0), generator in a \
         client namespace on {VETH_CLIENT_V4} (core 1), one veth pair with one queue each way.\n\n"
    ));
    t.push_str(&table(&[ve_ours, ve_aq], single, &[], true));
    t.push('\n');
    t.push_str(&vs_anchor(ve_ours, ve_aq, "aquatic_udp"));

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
        &[(OURS, " †"), (AQUATIC, " †")],
        true,
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

/// The UDP columns of the table of every run.
const UDP_COLUMNS: &[Column] = &[
    Column {
        header: "server NAPI CPU s",
        cell: |r| format!("{:.2}", r.server_napi_cpu_s),
    },
    Column {
        header: "kernel connects %",
        cell: |r| {
            r.kernel_connect_share
                .map(|s| format!("{:.1}", s * 100.0))
                .unwrap_or_else(|| "–".into())
        },
    },
    Column {
        header: "UDP receive-buffer drops, server (client) side",
        cell: drops,
    },
];

fn report(opts: &Opts, steer: bool, command: &str, started: &str, results: &Results) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## UDP (BEP 15): tracker-user against aquatic_udp\n");
    let all: Vec<&RunResult> = results
        .loopback
        .iter()
        .chain(results.veth.iter())
        .flat_map(|s| s.runs.iter())
        .collect();
    t.push_str(&preamble(
        opts,
        command,
        started,
        results.idle_background,
        &all,
    ));

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
         toward a hot head, up to 10 hashes per scrape. One generator worker, pinned to core 1. \
         Loopback runs prefill first (below); veth runs do not.\n\
         - **Trackers**, each started fresh for every run and pinned to core 0: \
         `tracker-user` with `[swarm] workers = 1`, `[udp] workers = 1`, HTTP off (its XDP run \
         adds `--iface` and `[xdp] required = true`); `aquatic_udp` 0.9.0 from crates.io (mio \
         back end, built with `--no-default-features --features mimalloc`: its default \
         Prometheus feature pulls metrics 0.22.3, which Rust 1.95 refuses to compile, and the \
         endpoint would be off anyway) with `socket_workers = 1`, statistics off. Each keeps \
         its other defaults, among them the socket receive buffer: both ask for 8 MiB \
         (tracker-user's `udp.recv_buffer_size`), which the kernel caps at \
         net.core.rmem_max (RMEM_MAX here).\n\
         - **responses/s**: the generator's count of valid responses over its measured \
         window.\n"
            .replace("RMEM_MAX", &rmem_max),
    );
    t.push_str(&cpu_notes(
        " plus, over veth, the client end's NAPI thread (its receive path). With XDP much of \
         the work is kernel work outside the tracker process, so this is the fair figure",
    ));
    t.push_str(
        "- With XDP, tracker-process CPU leaves out the program and the receive path, which \
         run in the server end's NAPI thread (column *server NAPI* in the last table).\n\
         - **connects answered in the kernel** (XDP only): growth of the program's `answered` \
         counter (bpftool, pinned map `COUNTERS`) per second of the window, over the \
         generator's connects sent per second (the two rates come from slightly different \
         windows, so it can read a percent or so above 100).\n",
    );
    if steer {
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
    let prefilled: Vec<&RunResult> = all
        .iter()
        .copied()
        .filter(|r| r.prefilled_peers > 0)
        .collect();
    if !prefilled.is_empty() {
        t.push_str(&memory_notes(&prefilled));
    }
    t.push_str(LOOPBACK_NOTE);
    t.push_str(&how_to_read(
        "The issue targets are stated in responses per server CPU second. Loss is requests \
         without an answer: dropped by the tracker or by a full socket buffer under overload.",
    ));
    t.push_str(&sections(results, opts));
    t.push_str("\n### Every run\n\n");
    let series: Vec<&Series> = results.loopback.iter().chain(results.veth.iter()).collect();
    t.push_str(&every_run(&series, UDP_COLUMNS));
    t.push_str(LEFT_IN_TARGET);
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
}
