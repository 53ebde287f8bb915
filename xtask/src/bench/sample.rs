//! Sampling a run: CPU time of the machine, the tracker, the generator and
//! everything else, and the measured run itself ([`measure`]), which
//! starts the generator, samples its measured window and turns its JSON
//! and the samples into a [`RunResult`].

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::{load_started, sleep_until, tail, Proc, Tracker};
use super::{check_stop, Opts, GENERATOR_CPU};

/// One run's figures.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    pub responses_per_s: f64,
    pub requests_per_s: f64,
    pub loss_rate: f64,
    pub window_s: f64,
    /// Busy CPU seconds of the whole machine in the window (wall × cores
    /// − idle).
    pub machine_cpu_s: f64,
    /// The same from /proc/stat's tick-sampled busy fields, for comparison.
    pub machine_tick_cpu_s: f64,
    /// The generator process, plus the client veth end's NAPI threads.
    pub generator_cpu_s: f64,
    pub tracker_cpu_s: f64,
    /// The server veth end's NAPI threads (XDP program, receive path).
    pub server_napi_cpu_s: f64,
    /// Other processes (approximate): what else ran in the window.
    pub others_cpu_s: f64,
    /// UDP receive-buffer drops in the tracker's namespace in the window.
    pub rcvbuf_drops: u64,
    /// The same in the generator's namespace, when it has its own.
    pub gen_rcvbuf_drops: Option<u64>,
    /// Busy CPU of the machine in the second before the load, in cores.
    pub background_cores: f64,
    pub peak_rss_kib: u64,
    /// Share of the connects the XDP program answered, for XDP runs.
    pub kernel_connect_share: Option<f64>,
    /// Share of the frames the XDP program looked at that it answered
    /// itself (connects, scrapes and announces), for XDP runs.
    pub kernel_share: Option<f64>,
    /// Scrapes and announces the program answered, per second.
    pub kernel_scrapes_per_s: f64,
    pub kernel_announces_per_s: f64,
    pub connects_per_s: f64,
    pub error_responses: u64,
    pub invalid_responses: u64,
    pub peers_per_announce: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub xdp_mode: Option<String>,
    /// The tracker's VmRSS just before the generator started (fresh
    /// tracker, no load yet), for prefilled runs.
    pub rss_idle_kib: u64,
    /// Its VmRSS when the load started, right after the prefill.
    pub rss_prefilled_kib: u64,
    /// The prefill's figures from the generator's report (0 without).
    pub prefill_seconds: f64,
    pub prefilled_peers: u64,
    /// Distinct peers (source address, port, torrent) among the prefilled
    /// clients: what the tracker holds; and the torrents they are in.
    pub swarm_peers: u64,
    pub swarm_torrents: u64,
    /// Clients the prefill never got an answer for.
    pub prefill_failed: u64,
    /// The generator's whole report, for protocol-specific figures.
    pub json: serde_json::Value,
}

/// Memory the tracker took per peer it holds: its RSS growth from idle to
/// just after the prefill, over the distinct peers the prefill put in it.
/// NaN without peers or samples.
pub fn bytes_per_peer(idle_kib: u64, prefilled_kib: u64, peers: u64) -> f64 {
    if peers == 0 || idle_kib == 0 || prefilled_kib == 0 {
        return f64::NAN;
    }
    (prefilled_kib as f64 - idle_kib as f64) * 1024.0 / peers as f64
}

impl RunResult {
    pub fn server_cpu_s(&self) -> f64 {
        (self.machine_cpu_s - self.generator_cpu_s).max(0.0)
    }
    /// Responses the tracker sent in our sampling window.
    pub fn window_responses(&self) -> f64 {
        self.responses_per_s * self.window_s
    }
    pub fn server_cpu_per_m(&self) -> f64 {
        per_million(self.server_cpu_s(), self.window_responses())
    }
    pub fn tracker_cpu_per_m(&self) -> f64 {
        per_million(self.tracker_cpu_s, self.window_responses())
    }
    /// Whether other processes took a noticeable share of the machine.
    pub fn disturbed(&self) -> bool {
        self.others_cpu_s > 0.1 * self.window_s
    }

    pub fn responses_per_server_cpu_s(&self) -> f64 {
        if self.server_cpu_s() > 0.0 {
            self.window_responses() / self.server_cpu_s()
        } else {
            f64::NAN
        }
    }

    /// See [`bytes_per_peer`].
    pub fn bytes_per_peer(&self) -> f64 {
        bytes_per_peer(self.rss_idle_kib, self.rss_prefilled_kib, self.swarm_peers)
    }

    /// Prefilled clients per second of prefill.
    pub fn prefill_rate(&self) -> f64 {
        if self.prefill_seconds > 0.0 {
            self.prefilled_peers as f64 / self.prefill_seconds
        } else {
            f64::NAN
        }
    }

    /// A number from the generator's report, NaN when absent.
    pub fn num(&self, key: &str) -> f64 {
        self.json
            .pointer(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    }

    /// A count of the generator's report per second of its window.
    pub fn per_s(&self, key: &str) -> f64 {
        self.num(&format!("/{key}")) / self.num("/duration_secs")
    }
}

fn per_million(cpu_s: f64, responses: f64) -> f64 {
    if responses > 0.0 {
        cpu_s / responses * 1e6
    } else {
        f64::NAN
    }
}

/// What a bench adds around the measured window.
pub trait Hooks {
    /// Just before the window opens: the kernel threads whose CPU counts as
    /// the server's and as the generator's (veth's NAPI threads).
    fn opening(&mut self) -> Result<(Vec<u32>, Vec<u32>)> {
        Ok((Vec::new(), Vec::new()))
    }

    /// The XDP program's counters, when one runs.
    fn kernel_counters(&self) -> Option<Result<KernelCounters>> {
        None
    }

    /// Just after the window closed.
    fn closed(&mut self) {}
}

/// What the XDP program counted (sums over CPUs of its `COUNTERS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Frames it looked at.
    pub seen: u64,
    /// Connects answered with XDP_TX.
    pub answered: u64,
    pub scrape_answered: u64,
    pub announce_answered: u64,
}

/// No hooks: a plain run in the host's namespace.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// One measured run of the generator against a tracker already running.
pub struct Load<'a> {
    pub opts: &'a Opts,
    pub work: &'a Path,
    /// The generator binary.
    pub program: &'a Path,
    /// Its subcommand: `udp`, `http` or `ws`.
    pub protocol: &'a str,
    /// Its config file; it runs as `<protocol> -c CONFIG --json`.
    pub config: PathBuf,
    /// Names this run's files in the work directory.
    pub tag: &'a str,
    /// The network namespace the generator runs in, if not the host's.
    pub client_ns: Option<&'a str>,
    /// The generator prefills this many clients before its load (its
    /// config says `udp.prefill = true`): the tracker's memory is sampled
    /// before and after, and its load starts that much later.
    pub prefill_peers: Option<u64>,
    /// Which generator `program` is.
    pub generator: Generator,
}

/// The generators a bench can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    /// tracker-load: `<protocol> -c CONFIG --json`, one JSON object out.
    TrackerLoad,
    /// aquatic_udp_load_test: `-c CONFIG`, a printed report out
    /// ([`crate::bench::udp::aquatic_gen`]).
    AquaticUdp,
}

/// Runs the generator pinned to its core, samples its measured window, and
/// reads its report. Fails if the generator or the tracker fails.
pub fn measure(load: &Load, tracker: &mut Tracker, hooks: &mut dyn Hooks) -> Result<RunResult> {
    let opts = load.opts;
    let background_cores = wait_for_quiet(opts.quiet_patience)?;
    let rss_idle_kib = match load.prefill_peers {
        Some(_) => vm_rss_kib(tracker.pid()).unwrap_or(0),
        None => 0,
    };
    let gen_stderr: PathBuf = load.work.join(format!("{}.load.log", load.tag));
    let config = load.config.display().to_string();
    let args = match load.generator {
        Generator::TrackerLoad => vec![
            load.protocol.to_owned(),
            "-c".to_owned(),
            config,
            "--json".to_owned(),
        ],
        Generator::AquaticUdp => vec!["-c".to_owned(), config],
    };
    let mut gen = Proc::spawn(
        load.program,
        &args,
        load.client_ns,
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
    // A prefill runs at the tracker's pace: allow 20,000 clients a second
    // at the least.
    let patience =
        Duration::from_secs(60) + Duration::from_secs(load.prefill_peers.unwrap_or(0) / 20_000);
    let started = load_started(&mut gen, patience)?;
    let rss_prefilled_kib = match load.prefill_peers {
        Some(_) => vm_rss_kib(tracker.pid()).unwrap_or(0),
        None => 0,
    };

    // Our window: from the end of the warm-up (plus a margin for the
    // generator's own start-up) to shortly before its measured window
    // ends. Rates from the generator cover its whole window; counts in
    // ours are rate × our window length.
    let margin = if opts.seconds >= 6 { 1.0 } else { 0.5 };
    let begin = Duration::from_secs_f64(opts.warmup as f64 + margin);
    let end = Duration::from_secs_f64(opts.warmup as f64 + opts.seconds as f64 - margin / 2.0);
    sleep_until(started + begin, &mut gen)?;
    let (server_napi, client_napi) = hooks.opening()?;
    let pids = Pids {
        generator: gen_pid,
        client_napi: &client_napi,
        tracker: tracker.pid(),
        server_napi: &server_napi,
    };
    let s0 = Sample::take(&pids, hooks, true)?;
    sleep_until(started + end, &mut gen)?;
    let s1 = Sample::take(&pids, hooks, false)?;
    hooks.closed();
    let peak_rss_kib = vm_hwm_kib(tracker.pid()).unwrap_or(0);

    // The generator finishes on its own.
    let deadline = started + Duration::from_secs(opts.warmup + opts.seconds + 60);
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
            "{}",
            tracker.explain(anyhow::anyhow!("the tracker died during the run"))
        );
    }
    let report: serde_json::Value = match load.generator {
        Generator::TrackerLoad => serde_json::from_str(json.trim()).with_context(|| {
            format!("the generator's --json output is not one JSON object:\n{json}")
        })?,
        Generator::AquaticUdp => super::udp::aquatic_gen::report_to_json(&json, opts.seconds)?,
    };
    fs::write(load.work.join(format!("{}.load.json", load.tag)), &json)?;

    let hz = clock_ticks_per_second();
    let window_s = (s1.at - s0.at).as_secs_f64();
    let mut result = RunResult {
        window_s,
        machine_cpu_s: busy_seconds((s0.at, s0.stat), (s1.at, s1.stat)),
        machine_tick_cpu_s: (s1.stat.busy_fields - s0.stat.busy_fields) as f64 / hz,
        generator_cpu_s: (s1.generator - s0.generator) as f64 / hz,
        tracker_cpu_s: (s1.tracker - s0.tracker) as f64 / hz,
        server_napi_cpu_s: (s1.server_napi.saturating_sub(s0.server_napi)) as f64 / hz,
        others_cpu_s: others_seconds(&s0, &s1),
        rcvbuf_drops: s1.rcvbuf_errors.saturating_sub(s0.rcvbuf_errors),
        gen_rcvbuf_drops: load
            .client_ns
            .map(|_| s1.gen_rcvbuf_errors.saturating_sub(s0.gen_rcvbuf_errors)),
        background_cores,
        peak_rss_kib,
        rss_idle_kib,
        rss_prefilled_kib,
        json: report,
        ..RunResult::default()
    };
    result.responses_per_s = result.num("/responses_per_second");
    result.requests_per_s = result.num("/requests_per_second");
    result.loss_rate = result.num("/loss_rate");
    result.connects_per_s = result.per_s("connects_sent");
    result.error_responses = result.num("/error_responses") as u64;
    result.invalid_responses = result.num("/invalid_responses") as u64;
    result.peers_per_announce = result.num("/peers_per_announce");
    result.latency_p50_us = result.num("/latency_us/p50");
    result.latency_p99_us = result.num("/latency_us/p99");
    if load.prefill_peers.is_some() {
        let count = |key: &str| result.json.get(key).and_then(|v| v.as_u64());
        result.prefill_seconds = result.num("/prefill_seconds");
        result.prefilled_peers = count("prefilled_peers")
            .context("the generator's report has no prefilled_peers: does it know udp.prefill?")?;
        result.swarm_peers = count("prefill_swarm_peers").unwrap_or(result.prefilled_peers);
        result.swarm_torrents = count("prefill_swarm_torrents").unwrap_or(0);
        result.prefill_failed = count("prefill_failed").unwrap_or(0);
        if result.prefill_failed > 0 {
            eprintln!(
                "xtask:   the prefill left {} clients unconfirmed (of {})",
                result.prefill_failed,
                result.prefilled_peers + result.prefill_failed
            );
        }
    }
    if let (Some(k0), Some(k1)) = (s0.kernel, s1.kernel) {
        let grew = |f: fn(&KernelCounters) -> u64| f(&k1).saturating_sub(f(&k0)) as f64;
        if result.connects_per_s > 0.0 {
            result.kernel_connect_share =
                Some(grew(|k| k.answered) / window_s / result.connects_per_s);
        }
        let seen = grew(|k| k.seen);
        if seen > 0.0 {
            let all = grew(|k| k.answered + k.scrape_answered + k.announce_answered);
            result.kernel_share = Some(all / seen);
        }
        result.kernel_scrapes_per_s = grew(|k| k.scrape_answered) / window_s;
        result.kernel_announces_per_s = grew(|k| k.announce_answered) / window_s;
    }
    Ok(result)
}

/// Waits (a bounded time) until the machine is idle apart from us: other
/// work on this shared VM lands in the server CPU figures. Returns the busy
/// share of a core in the last second.
fn wait_for_quiet(patience: Duration) -> Result<f64> {
    const QUIET: f64 = 0.15;
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

pub struct Sample {
    pub at: Instant,
    stat: ProcStat,
    /// The generator process plus the client end's NAPI threads.
    generator: u64,
    tracker: u64,
    server_napi: u64,
    kernel: Option<KernelCounters>,
    /// utime + stime of every other user process.
    others: std::collections::HashMap<u32, u64>,
    /// UDP RcvbufErrors in the tracker's network namespace.
    rcvbuf_errors: u64,
    /// The same in the generator's.
    gen_rcvbuf_errors: u64,
}

/// Who is who in a run, for sampling.
pub struct Pids<'a> {
    pub generator: u32,
    pub client_napi: &'a [u32],
    pub tracker: u32,
    pub server_napi: &'a [u32],
}

impl Sample {
    /// Reads the CPU figures of `pids` and the machine. The XDP counter,
    /// when `hooks` has one, is read outside the window (it runs bpftool):
    /// before the CPU figures at its start (`first`), after them at its end.
    fn take(pids: &Pids, hooks: &dyn Hooks, first: bool) -> Result<Sample> {
        let bpf = || hooks.kernel_counters().transpose();
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
            kernel: early,
            others: other_processes(pids),
            rcvbuf_errors: udp_rcvbuf_errors(pids.tracker),
            gen_rcvbuf_errors: udp_rcvbuf_errors(pids.generator),
        };
        if !first {
            sample.kernel = bpf()?;
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
pub struct ProcStat {
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
    pub fn read() -> Result<ProcStat> {
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
pub fn busy_seconds(s0: (Instant, ProcStat), s1: (Instant, ProcStat)) -> f64 {
    let wall = (s1.0 - s0.0).as_secs_f64() * nproc() as f64;
    let idle = s1.1.idle.saturating_sub(s0.1.idle) as f64 / clock_ticks_per_second();
    (wall - idle).max(0.0)
}

/// utime + stime of a process, all its threads, in USER_HZ ticks.
pub fn process_ticks(pid: u32) -> Result<u64> {
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

pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident memory now.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Busy cores (0..nproc) over `span` with nothing of ours loading the machine.
pub fn measure_background(span: Duration) -> Result<f64> {
    let s0 = (Instant::now(), ProcStat::read()?);
    std::thread::sleep(span);
    let s1 = (Instant::now(), ProcStat::read()?);
    Ok(busy_seconds(s0, s1) / (s1.0 - s0.0).as_secs_f64())
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_peer_is_rss_growth_over_peers_held() {
        // 100 MiB idle, 250 MiB after 2M peers: 150 MiB / 2M.
        let b = bytes_per_peer(100 * 1024, 250 * 1024, 2_000_000);
        assert!((b - 78.6432).abs() < 1e-9, "{b}");
        // Nothing measured is no figure, not zero.
        assert!(bytes_per_peer(0, 250 * 1024, 2_000_000).is_nan());
        assert!(bytes_per_peer(100, 200, 0).is_nan());
        // A tracker that shrank reads below zero rather than hiding it.
        assert!(bytes_per_peer(200, 100, 1024) < 0.0);
        let r = RunResult {
            rss_idle_kib: 4_000,
            rss_prefilled_kib: 4_000 + 1_000,
            swarm_peers: 1_024_000,
            prefilled_peers: 1_024_000,
            prefill_seconds: 4.0,
            ..RunResult::default()
        };
        assert_eq!(r.bytes_per_peer(), 1.0);
        assert_eq!(r.prefill_rate(), 256_000.0);
        assert!(RunResult::default().prefill_rate().is_nan());
    }
}
