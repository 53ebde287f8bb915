//! Section (e) of the `udp` section: the veth scenarios under tracker-load's
//! AF_XDP sender.

use std::fmt::Write as _;

use crate::bench::report::{find, med_of, ratio_line, table, thousands, Series};
use crate::bench::sample::RunResult;

use super::{
    Results, AQUATIC, OURS, OURS_XDP, OURS_XDP_KERNEL, OURS_XDP_OPEN_LOOP, OURS_XDP_USERLAND,
    VETH_PORT, VETH_SERVER_V4, XSK_IN_FLIGHT, XSK_SOURCES, XSK_SOURCE_COUNT,
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
         XDP as in (c), once with `[xdp] scrape_in_kernel = false` and `announce_in_kernel = \
         false` (today's XDP path: connects answered in the kernel, everything else through \
         AF_XDP) and once with both on; aquatic_udp runs on sockets as in (b).\n"
    );
    t.push_str(&table(&[user, kernel, aquatic], single, &[], true));
    t.push('\n');
    let per_cpu = |s: &Series| med_of(s, RunResult::responses_per_server_cpu_s);
    t.push_str(&ratio_line(
        "responses per server CPU second, XDP with scrapes and announces in userland / \
         aquatic_udp",
        per_cpu(user) / per_cpu(aquatic),
    ));
    t.push_str(&ratio_line(
        "responses per server CPU second, XDP with in-kernel scrapes and announces on / \
         aquatic_udp (issue target ≥ 6)",
        per_cpu(kernel) / per_cpu(aquatic),
    ));
    t.push_str(&ratio_line(
        "responses per server CPU second, in-kernel answers on / off",
        per_cpu(kernel) / per_cpu(user),
    ));
    t.push_str(
        "\nWho was saturated, and what the kernel answered (medians). *generator* is the \
         generator process plus the client end's NAPI thread, *tracker* the tracker process, \
         *server NAPI* the server end's NAPI thread (where the XDP program runs), each as a \
         share of one core over the window; a side near 100 % was the limit (*limit*: \
         90 % or more; the server's side is tracker plus server NAPI, both on core 0; when \
         neither side had its core, other processes on the machine did). *answered in the \
         kernel* is the growth of the program's `answered` + `scrape_answered` + \
         `announce_answered` over the growth of `seen` (bpftool, pinned `COUNTERS`; issue \
         target ≥ 80 %).\n\n\
         | system | sent/s | generator | tracker | server NAPI | limit | answered in the \
         kernel | kernel scrapes/s | kernel announces/s | p50 µs | p99 µs | loss % |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in [user, kernel, aquatic] {
        let share = med_of(s, |r| r.kernel_share.unwrap_or(f64::NAN) * 100.0);
        let generator = med_of(s, |r| core_share(r.generator_cpu_s, r));
        let tracker = med_of(s, |r| core_share(r.tracker_cpu_s, r));
        let napi = med_of(s, |r| core_share(r.server_napi_cpu_s, r));
        let others = med_of(s, |r| core_share(r.others_cpu_s, r));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
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
        );
    }
    t.push_str(&generators(
        results,
        user,
        find(&results.veth_xsk, OURS_XDP_OPEN_LOOP),
    ));
    t
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
    let rows = [
        (
            "aquatic_udp_load_test",
            "(a′) loopback, tracker-user (sockets)",
            find(&results.loopback_aquatic_gen, OURS),
        ),
        (
            "tracker-load, UDP sockets",
            "(c) veth, tracker-user (XDP)",
            find(&results.veth, OURS_XDP),
        ),
        (
            "tracker-load, AF_XDP sender",
            "(e) veth, tracker-user (XDP, scrapes and announces in userland)",
            xsk,
        ),
        (
            "tracker-load, AF_XDP sender, open loop",
            "(e) veth, tracker-user (XDP) answering its connects in the kernel",
            open_loop,
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
        let _ = writeln!(
            t,
            "| {name} | {scenario} | {} | {} | {} |",
            thousands(med_of(s, |r| r.requests_per_s)),
            percent(med_of(s, |r| core_share(r.generator_cpu_s, r))),
            thousands(med_of(s, per_cpu)),
        );
    }
    let aquatic = med_of(find(&results.loopback_aquatic_gen, OURS), per_cpu);
    t.push('\n');
    t.push_str(&ratio_line(
        "requests per generator CPU second, AF_XDP sender / aquatic_udp_load_test (target ≥ 3)",
        med_of(xsk, per_cpu) / aquatic,
    ));
    t.push_str(&ratio_line(
        "requests per generator CPU second, AF_XDP sender open loop / aquatic_udp_load_test",
        med_of(open_loop, per_cpu) / aquatic,
    ));
    t.push_str(
        "\nThe open-loop run is the sender alone: its window (65,536) frees a slot 0.1 ms after \
         each send, so it sends as fast as its core lets it whatever comes back; nearly every \
         request is a connect, since answers arrive after their slot was given up and \
         connection ids are never taken. Its loss and latency mean nothing; its sent/s and \
         CPU do.\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_with_a_core_is_the_limit() {
        assert_eq!(limit(97.0, 40.0, 0.0), "generator");
        assert_eq!(limit(60.0, 95.0, 0.0), "server");
        assert_eq!(limit(91.0, 99.0, 0.0), "both");
        assert_eq!(limit(14.0, 23.0, 151.2), "neither (other processes 151 %)");
    }
}
