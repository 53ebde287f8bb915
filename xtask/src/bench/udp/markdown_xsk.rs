//! Section (e) of the `udp` section: the veth scenarios under tracker-load's
//! AF_XDP sender.

use std::fmt::Write as _;

use crate::bench::report::{
    every_run, find, med_of, preamble, ratio_line, table, thousands, Series, LEFT_IN_TARGET,
};
use crate::bench::sample::RunResult;
use crate::bench::Opts;

use super::markdown::UDP_COLUMNS;
use super::{
    Results, AQUATIC, AQUATIC_RE, OURS, OURS_XDP, OURS_XDP_KERNEL, OURS_XDP_KERNEL_RE,
    OURS_XDP_OPEN_LOOP, OURS_XDP_USERLAND, OURS_XDP_USERLAND_RE, REANNOUNCE_EVENT_SHARE, VETH_PORT,
    VETH_SERVER_V4, XSK_IN_FLIGHT, XSK_SOURCES, XSK_SOURCE_COUNT,
};

/// Share of a core a run's CPU seconds were over its window.
fn core_share(cpu_s: f64, r: &RunResult) -> f64 {
    if r.window_s > 0.0 {
        cpu_s / r.window_s * 100.0
    } else {
        f64::NAN
    }
}

fn percent(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0} %")
    } else {
        "–".into()
    }
}

/// Which side held the rate back: the one that had (nearly) a core.
fn limit(generator: f64, server: f64, others: f64) -> String {
    const SATURATED: f64 = 90.0;
    match (generator >= SATURATED, server >= SATURATED) {
        (true, true) => "both".into(),
        (true, false) => "generator".into(),
        (false, true) => "server".into(),
        (false, false) => format!("neither (other processes {})", percent(others)),
    }
}

/// A rate from the XDP program's counters; – for a system without it.
fn kernel_rate(s: &Series, f: fn(&RunResult) -> f64) -> String {
    if s.runs.iter().any(|r| r.kernel_share.is_some()) {
        thousands(med_of(s, f))
    } else {
        "–".into()
    }
}

pub(super) fn section(results: &Results, single: bool) -> String {
    let user = find(&results.veth_xsk, OURS_XDP_USERLAND);
    let kernel = find(&results.veth_xsk, OURS_XDP_KERNEL);
    let aquatic = find(&results.veth_xsk, AQUATIC);
    let mut t = String::from("\n### (e) veth, AF_XDP generator\n\n");
    let _ = writeln!(
        t,
        "A second veth pair like (b)'s, tracker on {VETH_SERVER_V4}:{VETH_PORT} (core 0), but \
         driven by tracker-load's AF_XDP sender (`udp.xdp_iface`) on the client end (core 1): \
         whole Ethernet/IPv4/UDP frames on an AF_XDP socket's TX ring, answers from its RX \
         ring, through the same checks as the socket sender, and no client-side UDP stack. \
         {XSK_SOURCE_COUNT} simulated source addresses from {XSK_SOURCES}, each with its own \
         connection id (fetched once, kept 60 s) and its share of the profile's clients; \
         {XSK_IN_FLIGHT} requests in flight (veth queues at most 256 frames for a receiving \
         end, so a wider window drops answers whenever the client end falls behind). The \
         sender attaches a two-instruction program redirecting every frame on its end to its \
         socket (tracker-xdp-testing's redirect program), so the server has a route for the \
         sources via the client end and a permanent neighbour entry for it. Our tracker runs \
         XDP as in (c), once with `[xdp] scrape_in_kernel = false`, `announce_in_kernel = \
         false` and `announce_events_in_kernel = false` (today's XDP path: connects answered \
         in the kernel, everything else through AF_XDP) and once with all three on (hot \
         torrents' announces answered from the kernel's cache, those naming started or \
         completed included); aquatic_udp runs on sockets as in (b). Each runs under two \
         announce mixes: aquatic's, where every announce names its client's event (started \
         for leechers, completed for seeders), and a re-announce mix closer to real clients \
         (`[profile] event_share = {REANNOUNCE_EVENT_SHARE}`: one announce in ten names its \
         event, the others are periodic re-announces with event none). Before its warm-up \
         the sender prefills every tracker alike, aquatic_udp included, under both mixes \
         (`udp.prefill`: every client of the profile announced once from its own source \
         address, through the AF_XDP socket; see *Prefill*), so the swarms and the kernel's \
         caches start as a long-running tracker's, not empty with every announce a new \
         peer; the open-loop row does not prefill.\n"
    );
    t.push_str(
        "\n#### aquatic's mix: every announce names its event\n\n\
         The load profile of every other scenario.\n\n",
    );
    t.push_str(&mix_rows(
        [user, kernel, aquatic],
        single,
        " (issue target ≥ 6)",
        true,
    ));
    let re_user = find(&results.veth_xsk_reannounce, OURS_XDP_USERLAND_RE);
    let re_kernel = find(&results.veth_xsk_reannounce, OURS_XDP_KERNEL_RE);
    let re_aquatic = find(&results.veth_xsk_reannounce, AQUATIC_RE);
    let _ = writeln!(
        t,
        "\n#### Re-announce mix: event_share = {REANNOUNCE_EVENT_SHARE}\n\n\
         The same pair, sender and trackers, the generator's announces mostly re-announces \
         (event none, left unchanged); every row here ran under this mix, so its ratios \
         compare like with like. Run after the rows above, in rounds of its own.\n"
    );
    t.push_str(&mix_rows(
        [re_user, re_kernel, re_aquatic],
        single,
        "",
        false,
    ));
    t.push_str(&generators(
        results,
        user,
        find(&results.veth_xsk, OURS_XDP_OPEN_LOOP),
    ));
    t
}

/// One mix's rows: the table, the ratios against aquatic_udp and against
/// the in-kernel answers off, and who saturated; `systems` are in-kernel
/// off, on, aquatic_udp. `explain` adds what the saturation columns mean
/// (once per section).
fn mix_rows(systems: [&Series; 3], single: bool, target: &str, explain: bool) -> String {
    let [user, kernel, aquatic] = systems;
    let mut t = table(&systems, single, &[], true);
    t.push('\n');
    let per_cpu = |s: &Series| med_of(s, RunResult::responses_per_server_cpu_s);
    t.push_str(&ratio_line(
        "responses per server CPU second, XDP with scrapes and announces in userland / \
         aquatic_udp",
        per_cpu(user) / per_cpu(aquatic),
    ));
    t.push_str(&ratio_line(
        &format!(
            "responses per server CPU second, XDP with in-kernel scrapes and announces on / \
             aquatic_udp{target}"
        ),
        per_cpu(kernel) / per_cpu(aquatic),
    ));
    t.push_str(&ratio_line(
        "responses per server CPU second, in-kernel answers on / off",
        per_cpu(kernel) / per_cpu(user),
    ));
    t.push('\n');
    if explain {
        t.push_str(
            "Who was saturated, and what the kernel answered (medians). *generator* is the \
             generator process plus the client end's NAPI thread, *tracker* the tracker \
             process, *server NAPI* the server end's NAPI thread (where the XDP program runs), \
             each as a share of one core over the window; a side near 100 % was the limit \
             (*limit*: 90 % or more; the server's side is tracker plus server NAPI, both on \
             core 0; when neither side had its core, other processes on the machine did). \
             *answered in the kernel* is the growth of the program's `answered` + \
             `scrape_answered` + `announce_answered` over the growth of `seen` (bpftool, \
             pinned `COUNTERS`; issue target ≥ 80 %).\n\n",
        );
    } else {
        t.push_str("Who was saturated, and what the kernel answered (medians; as above):\n\n");
    }
    t.push_str(
        "| system | sent/s | generator | tracker | server NAPI | limit | answered in the \
         kernel | kernel scrapes/s | kernel announces/s | p50 µs | p99 µs | loss % |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in systems {
        t.push_str(&saturation_row(s));
    }
    t
}

/// One system's row of the saturation table.
fn saturation_row(s: &Series) -> String {
    let share = med_of(s, |r| r.kernel_share.unwrap_or(f64::NAN) * 100.0);
    let generator = med_of(s, |r| core_share(r.generator_cpu_s, r));
    let tracker = med_of(s, |r| core_share(r.tracker_cpu_s, r));
    let napi = med_of(s, |r| core_share(r.server_napi_cpu_s, r));
    let others = med_of(s, |r| core_share(r.others_cpu_s, r));
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
        s.label,
        thousands(med_of(s, |r| r.requests_per_s)),
        percent(generator),
        percent(tracker),
        percent(napi),
        limit(generator, tracker + napi, others),
        if share.is_finite() {
            format!("{share:.1} %")
        } else {
            "–".into()
        },
        kernel_rate(s, |r| r.kernel_scrapes_per_s),
        kernel_rate(s, |r| r.kernel_announces_per_s),
        thousands(med_of(s, |r| r.latency_p50_us)),
        thousands(med_of(s, |r| r.latency_p99_us)),
        med_of(s, |r| r.loss_rate * 100.0),
    )
}

/// What each generator sends per second of its own CPU, each against our
/// tracker in its own scenario (all three wait for answers, so their rate
/// alone says little when the other side or the machine is the limit).
fn generators(results: &Results, xsk: &Series, open_loop: &Series) -> String {
    let mut t = String::from(
        "\nThe three generators, each against our tracker (medians): requests sent per \
         second of the generator's own CPU (over veth its process plus the client end's NAPI \
         thread; over loopback the process, which is also charged the tracker's receive path, \
         as the tracker is charged its). All three keep a window and wait for answers, so \
         requests/s alone measures whichever side was slower.\n\n\
         | generator | scenario | requests/s | generator CPU, share of a core | requests per \
         generator CPU second |\n|---|---|---:|---:|---:|\n",
    );
    // With `--only xsk` the other scenarios did not run.
    let aquatic_gen = find_any(&results.loopback_aquatic_gen, OURS);
    let rows = [
        (
            "aquatic_udp_load_test",
            "(a′) loopback, tracker-user (sockets)",
            aquatic_gen,
        ),
        (
            "tracker-load, UDP sockets",
            "(c) veth, tracker-user (XDP)",
            find_any(&results.veth, OURS_XDP),
        ),
        (
            "tracker-load, AF_XDP sender",
            "(e) veth, tracker-user (XDP, scrapes and announces in userland)",
            Some(xsk),
        ),
        (
            "tracker-load, AF_XDP sender, open loop",
            "(e) veth, tracker-user (XDP) answering its connects in the kernel",
            Some(open_loop),
        ),
    ];
    let per_cpu = |r: &RunResult| {
        if r.generator_cpu_s > 0.0 {
            r.requests_per_s * r.window_s / r.generator_cpu_s
        } else {
            f64::NAN
        }
    };
    for (name, scenario, s) in rows {
        let Some(s) = s else { continue };
        let _ = writeln!(
            t,
            "| {name} | {scenario} | {} | {} | {} |",
            thousands(med_of(s, |r| r.requests_per_s)),
            percent(med_of(s, |r| core_share(r.generator_cpu_s, r))),
            thousands(med_of(s, per_cpu)),
        );
    }
    if let Some(aquatic_gen) = aquatic_gen {
        let aquatic = med_of(aquatic_gen, per_cpu);
        t.push('\n');
        t.push_str(&ratio_line(
            "requests per generator CPU second, AF_XDP sender / aquatic_udp_load_test \
             (target ≥ 3)",
            med_of(xsk, per_cpu) / aquatic,
        ));
        t.push_str(&ratio_line(
            "requests per generator CPU second, AF_XDP sender open loop / \
             aquatic_udp_load_test",
            med_of(open_loop, per_cpu) / aquatic,
        ));
    }
    t.push_str(
        "\nThe open-loop run is the sender alone: its window (65,536) frees a slot 0.1 ms after \
         each send, so it sends as fast as its core lets it whatever comes back; nearly every \
         request is a connect, since answers arrive after their slot was given up and \
         connection ids are never taken. Its loss and latency mean nothing; its sent/s and \
         CPU do.\n",
    );
    t
}

/// The series labelled `label`, if its scenario ran.
fn find_any<'a>(series: &'a [Series], label: &str) -> Option<&'a Series> {
    series.iter().find(|s| s.label == label)
}

/// What `--only xsk` prints and leaves in the bench's work directory:
/// scenario (e) with the lines that open every section and its runs.
pub(super) fn only_report(opts: &Opts, command: &str, started: &str, results: &Results) -> String {
    let series: Vec<&Series> = results
        .veth_xsk
        .iter()
        .chain(results.veth_xsk_reannounce.iter())
        .collect();
    let runs: Vec<&RunResult> = series.iter().flat_map(|s| s.runs.iter()).collect();
    let mut t = String::from("## UDP (BEP 15): scenario (e) alone (`--only xsk`)\n\n");
    t.push_str(&preamble(
        opts,
        command,
        started,
        results.idle_background,
        &runs,
    ));
    t.push_str(
        "Part of `cargo xtask bench udp`, run alone: docs/benchmarks.md is left as it was, and \
         its UDP section says what is measured and how to read it.\n",
    );
    t.push_str(&section(results, opts.runs == 1));
    t.push_str("\n### Every run\n\n");
    t.push_str(&every_run(&series, UDP_COLUMNS));
    t.push_str(LEFT_IN_TARGET);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run answering `rate` a second over 10 s on `server_cpu_s` of
    /// server CPU, with `kernel` of the frames answered in the kernel.
    fn run(rate: f64, server_cpu_s: f64, kernel: Option<f64>) -> RunResult {
        RunResult {
            responses_per_s: rate,
            requests_per_s: rate,
            window_s: 10.0,
            machine_cpu_s: server_cpu_s + 9.0,
            generator_cpu_s: 9.0,
            tracker_cpu_s: server_cpu_s / 2.0,
            server_napi_cpu_s: server_cpu_s / 2.0,
            kernel_share: kernel,
            kernel_announces_per_s: kernel.map_or(0.0, |k| k * rate),
            latency_p50_us: 100.0,
            latency_p99_us: 900.0,
            ..RunResult::default()
        }
    }

    fn series(label: &str, r: RunResult) -> Series {
        Series {
            scenario: "veth, AF_XDP generator".into(),
            label: label.into(),
            runs: vec![r],
        }
    }

    #[test]
    fn xsk_alone_reports_both_mixes_from_their_own_rows() {
        let results = Results {
            loopback: Vec::new(),
            loopback_aquatic_gen: Vec::new(),
            veth: Vec::new(),
            // aquatic's mix: on answers 1.5× per CPU second what off does.
            veth_xsk: vec![
                series(OURS_XDP_USERLAND, run(200_000.0, 8.0, Some(0.3))),
                series(OURS_XDP_KERNEL, run(300_000.0, 8.0, Some(0.4))),
                series(AQUATIC, run(100_000.0, 10.0, None)),
                series(OURS_XDP_OPEN_LOOP, run(900_000.0, 1.0, Some(0.9))),
            ],
            // The re-announce mix: 3× per CPU second, 4× aquatic_udp.
            veth_xsk_reannounce: vec![
                series(OURS_XDP_USERLAND_RE, run(200_000.0, 8.0, Some(0.3))),
                series(OURS_XDP_KERNEL_RE, run(300_000.0, 4.0, Some(0.85))),
                series(AQUATIC_RE, run(100_000.0, 5.333_333_333, None)),
            ],
            idle_background: 0.1,
        };
        let opts = Opts {
            runs: 1,
            seconds: 10,
            warmup: 1,
            quick: false,
            build: false,
            quiet_patience: std::time::Duration::from_secs(1),
        };
        let text = only_report(&opts, "cargo xtask bench udp --only xsk", "now", &results);
        let aquatic_mix = text.find("#### aquatic's mix").expect(&text);
        let re_mix = text
            .find("#### Re-announce mix: event_share = 0.1")
            .expect(&text);
        assert!(aquatic_mix < re_mix);
        let (first, second) = text.split_at(re_mix);
        assert!(
            first.contains("in-kernel answers on / off: **1.50×**"),
            "{first}"
        );
        assert!(
            first.contains("/ aquatic_udp (issue target ≥ 6): **3.75×**"),
            "{first}"
        );
        assert!(
            second.contains("in-kernel answers on / off: **3.00×**"),
            "{second}"
        );
        assert!(
            second.contains("announces on / aquatic_udp: **4.00×**"),
            "{second}"
        );
        assert!(second.contains(&format!("| {OURS_XDP_KERNEL_RE} | 300,000 |")));
        assert!(second.contains("| 85.0 % |"), "{second}");
        // No other scenario ran: its generator rows and ratios are left out.
        assert!(!text.contains("aquatic_udp_load_test |"), "{text}");
        assert!(text.contains("| tracker-load, AF_XDP sender | (e)"));
        assert!(text.contains("### Every run"));
    }

    #[test]
    fn the_side_with_a_core_is_the_limit() {
        assert_eq!(limit(97.0, 40.0, 0.0), "generator");
        assert_eq!(limit(60.0, 95.0, 0.0), "server");
        assert_eq!(limit(91.0, 99.0, 0.0), "both");
        assert_eq!(limit(14.0, 23.0, 151.2), "neither (other processes 151 %)");
    }
}
