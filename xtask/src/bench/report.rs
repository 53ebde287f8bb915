//! Figures and text: medians, tables, the parts every section of
//! docs/benchmarks.md shares, and rewriting one bench's sections of that
//! file without touching the others'.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::sample::{nproc, RunResult};
use super::Opts;

/// One system's runs in one scenario.
pub struct Series {
    pub scenario: String,
    pub label: String,
    pub runs: Vec<RunResult>,
}

pub fn cpu_model() -> String {
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

pub fn kernel() -> String {
    Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn memory_gib() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let l = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "?".into())
}

pub fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown date".into())
}

pub fn git_revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn git_dirty() -> bool {
    Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(crate::workspace_root())
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
}

pub fn command_line(args: &[String]) -> String {
    let mut s = String::from("cargo xtask bench");
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

pub fn median(mut v: Vec<f64>) -> f64 {
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

pub fn min_max(v: &[f64]) -> (f64, f64) {
    let finite = v.iter().copied().filter(|x| x.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

pub struct Stat {
    pub med: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(runs: &[RunResult], f: impl Fn(&RunResult) -> f64) -> Stat {
        let v: Vec<f64> = runs.iter().map(f).collect();
        let (min, max) = min_max(&v);
        Stat {
            med: median(v),
            min,
            max,
        }
    }

    pub fn fmt(&self, decimals: usize, single: bool) -> String {
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

pub fn thousands(x: f64) -> String {
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

pub fn rate_stat(runs: &[RunResult], single: bool) -> String {
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

/// The summary table of some series. `kernel` adds the column of connects
/// answered in the kernel (UDP); `notes` marks rows by label.
pub fn table(series: &[&Series], single: bool, notes: &[(&str, &str)], kernel: bool) -> String {
    let mut t = String::new();
    t.push_str(
        "| system | responses/s | server CPU s per M responses | tracker-process CPU s per M | \
         responses per server CPU s | peak RSS MiB |",
    );
    t.push_str(if kernel {
        " connects answered in the kernel |\n|---|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---:|---:|---:|---:|---:|\n"
    });
    for s in series {
        let runs = &s.runs;
        let note = notes
            .iter()
            .find(|(label, _)| *label == s.label)
            .map(|(_, n)| *n)
            .unwrap_or("");
        let _ = write!(
            t,
            "| {}{} | {} | {} | {} | {} | {} |",
            s.label,
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
        );
        if kernel {
            let share = Stat::of(runs, |r| r.kernel_connect_share.unwrap_or(f64::NAN) * 100.0);
            let cell = match share.med.is_finite() {
                true => share.fmt(1, single) + " %",
                false => "–".into(),
            };
            let _ = write!(t, " {cell} |");
        }
        t.push('\n');
    }
    t
}

/// What prefilled runs say about memory: peers held, the prefill, the
/// tracker's RSS before and after it and the bytes per peer; one row per
/// series.
pub fn memory_table(series: &[&Series], single: bool) -> String {
    let mut t = String::from(
        "| system | peers held | torrents held | prefill s | prefill clients/s | RSS idle MiB | \
         RSS after prefill MiB | bytes per peer |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in series {
        let runs = &s.runs;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.label,
            thousands(med_of(s, |r| r.swarm_peers as f64)),
            thousands(med_of(s, |r| r.swarm_torrents as f64)),
            Stat::of(runs, |r| r.prefill_seconds).fmt(1, single),
            thousands(med_of(s, RunResult::prefill_rate)),
            Stat::of(runs, |r| r.rss_idle_kib as f64 / 1024.0).fmt(1, single),
            Stat::of(runs, |r| r.rss_prefilled_kib as f64 / 1024.0).fmt(0, single),
            Stat::of(runs, RunResult::bytes_per_peer).fmt(1, single),
        );
    }
    t
}

/// How the prefill and memory per peer are measured, for the sections
/// that report them; `runs` are the prefilled runs.
pub fn memory_notes(runs: &[&RunResult]) -> String {
    let failed: u64 = runs.iter().map(|r| r.prefill_failed).sum();
    let confirmed = match failed {
        0 => format!("all {} prefills here confirmed every client", runs.len()),
        n => format!(
            "{n} clients stayed unconfirmed over the {} prefills here (counted out of peers held)",
            runs.len()
        ),
    };
    format!(
        "- **Prefill**: before its warm-up the generator announces every simulated client of \
         the profile once (tracker-load's `udp.prefill`): each from the socket, so the source \
         address, the load will use for it, with its own torrent, port and role, numwant 0, \
         as fast as the tracker answers (each socket keeps its 16 requests outstanding; one \
         unanswered after 50 ms is sent again, 8 sends at most; {confirmed}). The tracker \
         then holds the profile's whole population from the start, as a long-running tracker \
         would, instead of the part a short run happens to draw. *peers held* is what it \
         should hold: distinct (source address, port, torrent) among the confirmed clients \
         (clients of one torrent that share a source address and draw the same port are one \
         peer to both trackers), *torrents held* the torrents they are in (the popularity \
         skew leaves most of a large profile's torrents without a client). Both trackers keep \
         a peer for `max_peer_age` = 3600 s after its last announce (set explicitly; both \
         default to 1200 s), far beyond a run, so none expires.\n\
         - **bytes per peer**: (the tracker's VmRSS right after the prefill − its VmRSS just \
         before the generator started, the tracker fresh and idle) × 1024 / peers held. It \
         counts everything the population costs (peer entries, torrent entries and their \
         maps, the allocator's slack) and nothing of the idle process.\n"
    )
}

pub fn med_of(s: &Series, f: impl Fn(&RunResult) -> f64) -> f64 {
    median(s.runs.iter().map(f).collect())
}

pub fn ratio_line(label: &str, x: f64) -> String {
    if x.is_finite() {
        format!("- {label}: **{x:.2}×**\n")
    } else {
        format!("- {label}: –\n")
    }
}

/// The series with label `label`.
pub fn find<'a>(series: &'a [Series], label: &str) -> &'a Series {
    series
        .iter()
        .find(|s| s.label == label)
        .expect("every scenario runs every system")
}

/// Our figures over the anchor's (`anchor` names it).
pub fn vs_anchor(ours: &Series, anchor: &Series, name: &str) -> String {
    let mut t = String::new();
    t.push_str(&ratio_line(
        &format!("responses/s, {} / {name}", ours.label),
        med_of(ours, |r| r.responses_per_s) / med_of(anchor, |r| r.responses_per_s),
    ));
    t.push_str(&ratio_line(
        &format!("server CPU per M responses, {name} / ours (above 1: we spend less)"),
        med_of(anchor, RunResult::server_cpu_per_m) / med_of(ours, RunResult::server_cpu_per_m),
    ));
    t.push_str(&ratio_line(
        &format!("tracker-process CPU per M responses, {name} / ours"),
        med_of(anchor, RunResult::tracker_cpu_per_m) / med_of(ours, RunResult::tracker_cpu_per_m),
    ));
    t.push_str(&ratio_line(
        &format!("peak RSS, ours / {name}"),
        med_of(ours, |r| r.peak_rss_kib as f64) / med_of(anchor, |r| r.peak_rss_kib as f64),
    ));
    t
}

/// A column a bench adds to the table of every run.
pub struct Column {
    pub header: &'static str,
    pub cell: fn(&RunResult) -> String,
}

/// Every run of `series`, one row each: the figures all benches have,
/// then `extra`.
pub fn every_run(series: &[&Series], extra: &[Column]) -> String {
    let mut t = String::from(
        "| scenario | system | run | responses/s | sent/s | loss % | window s | machine CPU s \
         (tick fields) | generator CPU s | server CPU s | tracker CPU s | other processes CPU s | \
         background % of a core | peak RSS MiB | peers/announce | p50 µs | p99 µs | error / \
         invalid responses |",
    );
    for c in extra {
        let _ = write!(t, " {} |", c.header);
    }
    t.push_str("\n|---|---|");
    t.push_str(&"---:|".repeat(16 + extra.len()));
    t.push('\n');
    for s in series {
        for (i, r) in s.runs.iter().enumerate() {
            let _ = write!(
                t,
                "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.2} ({:.2}) | {:.2} | {:.2} | {:.2} | \
                 {:.2} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {} / {} |",
                s.scenario,
                s.label,
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
                r.others_cpu_s,
                r.background_cores * 100.0,
                r.peak_rss_kib as f64 / 1024.0,
                r.peers_per_announce,
                r.latency_p50_us,
                r.latency_p99_us,
                r.error_responses,
                r.invalid_responses,
            );
            for c in extra {
                let _ = write!(t, " {} |", (c.cell)(r));
            }
            t.push('\n');
        }
    }
    t
}

/// One line per run on stderr as the bench goes; `extra` is the bench's
/// own figures.
pub fn log_run(r: &RunResult, extra: &str) {
    eprintln!(
        "xtask:   {:.0} responses/s ({:.0} sent/s, loss {:.2} %), server CPU {:.2} s \
         ({:.1} s/M), tracker CPU {:.2} s ({:.1} s/M), generator CPU {:.2} s, other \
         processes {:.2} s, machine {:.2} s (tick fields {:.2} s) over {:.1} s, peak RSS \
         {:.0} MiB, background {:.0} %, p50 {:.0} µs, errors {}, invalid {}{extra}",
        r.responses_per_s,
        r.requests_per_s,
        r.loss_rate * 100.0,
        r.server_cpu_s(),
        r.server_cpu_per_m(),
        r.tracker_cpu_s,
        r.tracker_cpu_per_m(),
        r.generator_cpu_s,
        r.others_cpu_s,
        r.machine_cpu_s,
        r.machine_tick_cpu_s,
        r.window_s,
        r.peak_rss_kib as f64 / 1024.0,
        r.background_cores * 100.0,
        r.latency_p50_us,
        r.error_responses,
        r.invalid_responses,
    );
}

/// The lines that open every section: when, where, what ran, how often.
pub fn preamble(
    opts: &Opts,
    command: &str,
    started: &str,
    idle_background: f64,
    runs: &[&RunResult],
) -> String {
    let mut t = String::new();
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
        idle_background * 100.0
    );
    let disturbed = runs.iter().filter(|r| r.disturbed()).count();
    let _ = writeln!(
        t,
        "- Runs during which other processes used more than 10 % of a core: {disturbed} of {} \
         (column *other processes* in the last table; their time inflates that run's server \
         CPU and may have slowed either side)",
        runs.len()
    );
    let _ = writeln!(t, "- Command (as root): `{command}`");
    let _ = writeln!(
        t,
        "- {} run(s) per system and scenario, each {} s measured after {} s of warm-up; \
         systems alternate run by run; medians with (min–max).\n",
        opts.runs, opts.seconds, opts.warmup
    );
    t
}

/// How CPU time is counted, the same for every bench (`generator` says
/// what counts as the generator's besides its process).
pub fn cpu_notes(generator: &str) -> String {
    format!(
        "- **server CPU**: all CPU time the machine was busy in the window, minus the \
         generator's own: the machine's busy time is wall time × cores − (idle + iowait) from \
         /proc/stat, softirq and irq included; the generator's is utime + stime of all its \
         threads (/proc/PID/stat){generator}. Anything else running on the machine lands in \
         it too: before each run the bench waits for the machine to be idle (below 15 % of a \
         core, bounded wait) and records what was left (*background* in the last table).\n\
         - **tracker-process CPU**: utime + stime of the tracker process alone, all its \
         threads.\n\
         - CPU figures are divided by the responses of the same window (responses/s × window \
         length); the window starts a little after the warm-up (1 s, 0.5 s for runs shorter \
         than 6 s) and ends half that before the generator stops.\n\
         - **peak RSS**: the tracker's VmHWM at the end of the run.\n"
    )
}

/// Counts runs across a bench's scenarios, for the progress log.
pub struct Progress {
    done: usize,
    total: usize,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Self { done: 0, total }
    }
}

/// Runs `runs` rounds of `systems` in scenario `scenario`, one run of each
/// system per round, so that a slow spell of the machine hits all alike;
/// `extra` adds the bench's own figures to each run's log line. Returns a
/// series per system, in the order given.
pub fn alternate<S: Copy>(
    scenario: &'static str,
    systems: &[(S, &str)],
    runs: usize,
    progress: &mut Progress,
    extra: fn(&RunResult) -> String,
    mut one: impl FnMut(S, usize) -> Result<RunResult>,
) -> Result<Vec<Series>> {
    let mut series: Vec<Series> = systems
        .iter()
        .map(|(_, label)| Series {
            scenario: scenario.to_owned(),
            label: (*label).to_owned(),
            runs: Vec::new(),
        })
        .collect();
    for round in 0..runs {
        for ((system, label), s) in systems.iter().zip(series.iter_mut()) {
            progress.done += 1;
            eprintln!(
                "xtask: [{}/{}] {scenario}, {label}, run {}",
                progress.done,
                progress.total,
                round + 1
            );
            let r = one(*system, round)?;
            log_run(&r, &extra(&r));
            s.runs.push(r);
        }
    }
    Ok(series)
}

/// Loopback's kernel work, which no bench can steer.
pub const LOOPBACK_NOTE: &str = "- Over loopback a receiver's network stack runs on, and is \
    charged to, the sender's core: the tracker's receive path runs on, and is charged to, the \
    generator, and the generator's to the tracker; both trackers get the same treatment.\n\n";

/// The closing line of every section.
pub const LEFT_IN_TARGET: &str = "\nConfig files, tracker logs and the generator's JSON of \
    every run are left in `target/bench/`.\n";

/// How to read a section's tables; `more` adds what is particular to it.
pub fn how_to_read(more: &str) -> String {
    format!(
        "### How to read this\n\n\
         Only ratios measured in the same command mean much: this 2-core VM drifts by 5–50 % \
         with background load, so compare rows of one table, not figures across dates. \
         Systems alternate run by run, so a slow spell hits both. When the tracker's core is \
         not saturated (tracker-process CPU well below 1 s per second of window), \
         responses/s measures the generator, not the tracker, and the CPU columns are the \
         ones that tell the trackers apart: fewer CPU seconds per million responses is \
         better, and *responses per server CPU second* is the same figure upside down. \
         Server CPU is always above tracker-process CPU: it holds the kernel's network work \
         for the tracker (and over loopback some of the generator's). {more}\n\n"
    )
}

/// Sections of docs/benchmarks.md, in the order they appear.
/// Where each section goes. `udp-profiles` is written by hand (perf
/// profiles explaining the `udp` figures); no command rewrites it, and
/// splicing keeps it as it is.
const SECTION_ORDER: &[&str] = &["udp", "udp-profiles", "scale", "http", "https", "ws", "wss"];

const DOC_HEADER: &str = "# Benchmarks\n\n\
<!-- Generated by `cargo xtask bench udp|scale|http|ws`: each command rewrites only its own sections, \
between their markers, and keeps the others (udp-profiles is written by hand and kept). Edit \
xtask/src/bench/, not this file. -->\n\n\
How to run: as root, `cargo xtask bench udp|scale|http|ws|flood|persist` (`--help` lists the \
options). `--quick` only checks the harness and writes its results to \
`target/bench/benchmarks-quick-<bench>.md`; `cargo xtask bench udp --only xsk` runs scenario \
(e) alone (the AF_XDP generator, both announce mixes) and writes its section to \
`target/bench/benchmarks-udp-xsk.md`. Neither touches this file.\n\n";

fn begin_marker(name: &str) -> String {
    format!("<!-- bench:{name} -->")
}

fn end_marker(name: &str) -> String {
    format!("<!-- /bench:{name} -->")
}

/// The sections of a benchmarks file, by name. A file from before the
/// markers held only the UDP bench, from its first `## ` heading on.
pub fn parse_sections(doc: &str) -> Vec<(String, String)> {
    let mut sections = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("<!-- bench:") {
        let after = &rest[start + "<!-- bench:".len()..];
        let Some(close) = after.find(" -->") else {
            break;
        };
        let name = &after[..close];
        let body_start = close + " -->".len();
        let end = end_marker(name);
        let Some(body_len) = after[body_start..].find(&end) else {
            break;
        };
        let body = after[body_start..body_start + body_len].trim();
        sections.push((name.to_owned(), body.to_owned()));
        rest = &after[body_start + body_len + end.len()..];
    }
    if sections.is_empty() {
        if let Some(start) = doc.find("\n## ") {
            sections.push(("udp".to_owned(), doc[start..].trim().to_owned()));
        }
    }
    sections
}

/// `doc` with the sections in `new` replaced (or added), the others kept.
pub fn splice(doc: &str, new: &[(&str, String)]) -> String {
    let mut sections = parse_sections(doc);
    for (name, body) in new {
        match sections.iter_mut().find(|(n, _)| n == name) {
            Some(section) => section.1 = body.trim().to_owned(),
            None => sections.push(((*name).to_owned(), body.trim().to_owned())),
        }
    }
    let rank = |name: &str| {
        SECTION_ORDER
            .iter()
            .position(|n| *n == name)
            .unwrap_or(SECTION_ORDER.len())
    };
    sections.sort_by_key(|(name, _)| rank(name));
    let mut out = String::from(DOC_HEADER);
    for (name, body) in &sections {
        let _ = write!(
            out,
            "{}\n{body}\n{}\n\n",
            begin_marker(name),
            end_marker(name)
        );
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// Writes the bench's sections: into docs/benchmarks.md, or for a quick
/// check into target/bench/benchmarks-quick-<target>.md. Returns the path.
pub fn write_sections(
    target: &str,
    work: &Path,
    quick: bool,
    new: &[(&str, String)],
) -> Result<PathBuf> {
    let (path, old) = if quick {
        (
            work.join(format!("benchmarks-quick-{target}.md")),
            String::new(),
        )
    } else {
        let path = crate::workspace_root().join("docs").join("benchmarks.md");
        let old = fs::read_to_string(&path).unwrap_or_default();
        (path, old)
    };
    fs::write(&path, splice(&old, new)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_bench_rewrites_only_its_sections() {
        // The file as the UDP bench wrote it before sections had markers.
        let legacy = "# Benchmarks\n\n<!-- Generated by `cargo xtask bench udp`; the command \
                      rewrites this whole file. -->\n\n## UDP (BEP 15): old\n\ntable\n";
        let with_http = splice(legacy, &[("http", "## HTTP\n\nnew".to_owned())]);
        assert!(with_http.starts_with(DOC_HEADER), "{with_http}");
        let udp = with_http.find("## UDP (BEP 15): old\n\ntable").unwrap();
        let http = with_http.find("## HTTP\n\nnew").unwrap();
        assert!(udp < http);
        assert_eq!(with_http.matches("<!-- bench:").count(), 2);

        // Then wss, then udp again: order is fixed, the rest kept as is.
        let more = splice(&with_http, &[("wss", "## WSS".to_owned())]);
        let again = splice(&more, &[("udp", "## UDP (BEP 15): new".to_owned())]);
        assert!(!again.contains("old"));
        let positions: Vec<usize> = ["## UDP (BEP 15): new", "## HTTP", "## WSS"]
            .iter()
            .map(|s| again.find(s).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{again}");
        // Rewriting a section with the same text changes nothing.
        assert_eq!(splice(&again, &[("wss", "## WSS".to_owned())]), again);
        assert_eq!(
            splice("", &[("ws", "x".to_owned())]),
            format!("{DOC_HEADER}<!-- bench:ws -->\nx\n<!-- /bench:ws -->\n")
        );
    }

    /// The hand-written profiles section stays, right after the UDP
    /// section, when the UDP bench rewrites its own.
    #[test]
    fn the_hand_written_profiles_survive_a_udp_run() {
        let doc = splice(
            "",
            &[
                ("scale", "## Scaling".to_owned()),
                ("udp", "## UDP old".to_owned()),
                ("udp-profiles", "### Where the time goes".to_owned()),
            ],
        );
        let again = splice(&doc, &[("udp", "## UDP new".to_owned())]);
        let at = |s: &str| again.find(s).unwrap_or_else(|| panic!("{s} in {again}"));
        assert!(at("## UDP new") < at("### Where the time goes"));
        assert!(at("### Where the time goes") < at("## Scaling"));
        assert!(!again.contains("UDP old"));
    }
}
