//! The `udp` section of docs/benchmarks.md.

use std::fmt::Write as _;
use std::fs;

use crate::bench::report::{
    cpu_notes, every_run, find, how_to_read, med_of, memory_notes, memory_table, preamble,
    ratio_line, table, thousands, vs_anchor, Column, Series, LEFT_IN_TARGET, LOOPBACK_NOTE,
};
use crate::bench::sample::RunResult;
use crate::bench::Opts;

use super::{
    Results, AQUATIC, BASELINE, BASELINE_XDP, OURS, OURS_THREADS, OURS_XDP, VETH_CLIENT_V4,
    VETH_PORT, VETH_SERVER_V4, XSK_IN_FLIGHT, XSK_SOURCE_COUNT,
};

pub(super) fn sections(results: &Results, opts: &Opts) -> String {
    let single = opts.runs == 1;
    let mut t = String::new();
    let lo_ours = find(&results.loopback, OURS);
    let lo_aq = find(&results.loopback, AQUATIC);
    let lo_threads = find(&results.loopback, OURS_THREADS);
    let ve_ours = find(&results.veth, OURS);
    let ve_aq = find(&results.veth, AQUATIC);
    let ve_xdp = find(&results.veth, OURS_XDP);

    t.push_str("### (a) Loopback, plain sockets\n\n");
    t.push_str(
        "Tracker on 127.0.0.1 pinned to core 0, generator pinned to core 1, \
         both in the host's network namespace. One request worker and one socket worker: \
         by default (`[swarm] inline = \"auto\"`) the request worker runs in the socket \
         worker's thread; the *swarm thread* row is the multi-core design on the same \
         core (`inline = \"off\"`: a thread of its own, batches over a channel).\n\n",
    );
    t.push_str(&table(&[lo_ours, lo_aq, lo_threads], single, &[], true));
    t.push('\n');
    t.push_str(&vs_anchor(lo_ours, lo_aq, "aquatic_udp"));
    t.push_str(&inline_vs_threads(lo_ours, lo_threads));
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

    t.push_str("\n### (a′) Loopback, plain sockets, aquatic_udp_load_test\n\n");
    t.push_str(
        "The same trackers, cores and addresses as (a), driven by aquatic's own generator \
         (aquatic_udp_load_test 0.9.0, one worker, its default profile) instead of ours, so \
         no figure rests on our generator alone; it does not prefill, and its window is \
         rounded up to whole 5-second report intervals. How the two generators differ, and \
         what that does to each tracker: *Two generators* below.\n\n",
    );
    let aq_ours = find(&results.loopback_aquatic_gen, OURS);
    let aq_aq = find(&results.loopback_aquatic_gen, AQUATIC);
    let aq_threads = find(&results.loopback_aquatic_gen, OURS_THREADS);
    t.push_str(&table(&[aq_ours, aq_aq, aq_threads], single, &[], false));
    t.push('\n');
    t.push_str(&vs_anchor(aq_ours, aq_aq, "aquatic_udp"));
    t.push_str(&inline_vs_threads(aq_ours, aq_threads));
    t.push_str(
        "\nBoth generators side by side (responses per server CPU second, ours / \
         aquatic_udp; issue target ≥ 1.2 with each):\n\n",
    );
    let ratio = |ours: &Series, anchor: &Series| {
        med_of(ours, RunResult::responses_per_server_cpu_s)
            / med_of(anchor, RunResult::responses_per_server_cpu_s)
    };
    let _ = writeln!(
        t,
        "| generator | ours / aquatic_udp |\n|---|---:|\n| tracker-load | {:.2}× |\n\
         | aquatic_udp_load_test | {:.2}× |",
        ratio(lo_ours, lo_aq),
        ratio(aq_ours, aq_aq)
    );

    t.push_str(TWO_GENERATORS);
    let invalid: u64 = [lo_ours, lo_aq]
        .iter()
        .flat_map(|s| &s.runs)
        .map(|r| r.invalid_responses)
        .sum();
    let _ = writeln!(
        t,
        " In (a), tracker-load counted {invalid} invalid answers over both trackers' runs.\n"
    );
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
    t.push_str(&super::markdown_xsk::section(results, single));
    t
}

/// What running the request worker inline gains over its own thread.
fn inline_vs_threads(inline: &Series, threads: &Series) -> String {
    let mut t = ratio_line(
        "responses per server CPU second, inline / swarm thread",
        med_of(inline, RunResult::responses_per_server_cpu_s)
            / med_of(threads, RunResult::responses_per_server_cpu_s),
    );
    t.push_str(&ratio_line(
        "responses/s, inline / swarm thread",
        med_of(inline, |r| r.responses_per_s) / med_of(threads, |r| r.responses_per_s),
    ));
    t
}

/// How the generators differ, under (a′).
const TWO_GENERATORS: &str = "
#### Two generators

Both draw requests from aquatic's profile (1 M torrents, 2 M peers, connect 50 : announce 50 : \
scrape 1, 30 peers wanted, 75 % seeders, skewed popularity), from one thread on core 1, and \
both trackers face the same generator in the same rounds. They differ in how they send, and \
that moves where each tracker's time goes:

- **Sending.** tracker-load keeps 16 requests outstanding on each of 16 sockets and moves \
  datagrams 64 at a time (sendmmsg with UDP GSO, recvmmsg). aquatic_udp_load_test sends one \
  request per socket on each of its 4 sockets per round, one `send` and one `recv` per \
  datagram, and sends a round only while nine in ten of all requests sent so far were \
  answered. Its own CPU per request is several times ours, so its rate is usually its own \
  limit: it measures the trackers at a lower load, where a tracker's batches are short and its \
  per-wake-up costs (poll, a thread hand-off per batch) weigh more per response.
- **Connection ids.** tracker-load asks for a fresh id per socket every 60 s and after any \
  error; aquatic's generator acquires one per socket at start and reuses it for the whole run \
  (its connect requests are answered but their ids unused). Both trackers accept either.
- **Population.** tracker-load prefills every client before measuring, so the tracker holds \
  the whole profile (about 2 M peers) from the first second; aquatic's generator starts from an \
  empty tracker, so swarms, tables and answers are smaller in its runs, which makes every \
  announce cheaper for both trackers and hides memory effects.
- **Checking.** tracker-load matches every answer to its request (transaction id, action, peer \
  and scrape counts) and counts anything else invalid; aquatic's generator counts responses by \
  action and checks nothing else.
";

/// `--baseline`: this build against another, in the same rounds.
pub(super) fn baseline_section(results: &Results, label: &str) -> String {
    let mut t = String::from("\n### (d) Against a baseline build\n\n");
    let _ = writeln!(
        t,
        "The baseline is `{label}`, run in the same rounds as the rows above: on loopback \
         beside (a)'s, over the veth pair with XDP beside (c)'s.\n"
    );
    let lo_ours = find(&results.loopback, OURS);
    let lo_base = find(&results.loopback, BASELINE);
    let ve_xdp = find(&results.veth, OURS_XDP);
    let ve_base = find(&results.veth, BASELINE_XDP);
    t.push_str(&table(
        &[lo_ours, lo_base, ve_xdp, ve_base],
        false,
        &[],
        true,
    ));
    t.push('\n');
    for (what, ours, base) in [
        ("loopback, sockets", lo_ours, lo_base),
        ("veth, XDP", ve_xdp, ve_base),
    ] {
        t.push_str(&ratio_line(
            &format!("{what}: responses per server CPU second, this build / baseline"),
            med_of(ours, RunResult::responses_per_server_cpu_s)
                / med_of(base, RunResult::responses_per_server_cpu_s),
        ));
        t.push_str(&ratio_line(
            &format!("{what}: responses/s, this build / baseline"),
            med_of(ours, |r| r.responses_per_s) / med_of(base, |r| r.responses_per_s),
        ));
    }
    t
}

pub(super) fn drops(r: &RunResult) -> String {
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
pub(super) const UDP_COLUMNS: &[Column] = &[
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
        header: "answered in the kernel %",
        cell: |r| {
            r.kernel_share
                .map(|s| format!("{:.1}", s * 100.0))
                .unwrap_or_else(|| "–".into())
        },
    },
    Column {
        header: "UDP receive-buffer drops, server (client) side",
        cell: drops,
    },
];

pub(super) fn report(
    opts: &Opts,
    steer: bool,
    command: &str,
    started: &str,
    results: &Results,
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "## UDP (BEP 15): tracker-user against aquatic_udp\n");
    let all: Vec<&RunResult> = results
        .loopback
        .iter()
        .chain(results.veth.iter())
        .chain(results.veth_xsk.iter())
        .chain(results.veth_xsk_reannounce.iter())
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
         Loopback runs and (e) prefill first (below); (b) and (c) do not. (e) uses \
         its AF_XDP sender instead of sockets, and has a second set of rows under a re-announce mix \
         (see there).\n\
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
        t.push_str(&format!(
            "- **Prefill in (e)**: the AF_XDP sender prefills the same way from each of its \
             {XSK_SOURCE_COUNT} simulated source addresses (the one the load uses for the \
             client), through its AF_XDP socket, keeping its {XSK_IN_FLIGHT} requests \
             outstanding over all sources (connects included) rather than per source; every \
             (e) row does, aquatic_udp's included, but the open-loop one. So the in-kernel \
             caches and both trackers' swarms start settled, as on a long-running tracker, \
             instead of every announce of the window being a new peer. (b) and (c) do not \
             prefill. The prefill ends before the warm-up starts, so it never counts in a \
             measured window.\n"
        ));
    }
    t.push_str(LOOPBACK_NOTE);
    t.push_str(&how_to_read(
        "The issue targets are stated in responses per server CPU second. Loss is requests \
         without an answer: dropped by the tracker or by a full socket buffer under overload.",
    ));
    t.push_str(&sections(results, opts));
    t.push_str("\n### Every run\n\n");
    let series: Vec<&Series> = results
        .loopback
        .iter()
        .chain(results.veth.iter())
        .chain(results.veth_xsk.iter())
        .chain(results.veth_xsk_reannounce.iter())
        .collect();
    t.push_str(&every_run(&series, UDP_COLUMNS));
    t.push_str(LEFT_IN_TARGET);
    t
}
