//! The AF_XDP sender (`udp.xdp_iface`) for real: a server and a client
//! network namespace joined by a veth pair, the tracker in the server one
//! (with its XDP path, and on plain sockets), tracker-load's AF_XDP sender
//! on the client end. The JSON report must show answers to every kind of
//! request, all valid, from many simulated source addresses.
//!
//! Needs root (namespaces, XDP, AF_XDP) and a tracker-user built after
//! `cargo xtask build-ebpf`; CI has both. It fails rather than skips
//! without them, so the sender cannot rot unnoticed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ensure_tracker_built, temp_path, Tracker, TRACKER};
use tracker_proto::xdp::counter;

const SERVER_V4: &str = "10.77.0.1";
const CLIENT_V4: &str = "10.77.0.2";
const SOURCES: &str = "10.78.0.0/24";
const SOURCE_FIRST: &str = "10.78.0.1";
const SOURCE_COUNT: u32 = 200;
/// The tracker's admin listener, inside the server namespace.
const ADMIN: &str = "127.0.0.1:6970";

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and a veth pair, the server side routed to the
/// simulated sources via the client end; removed on drop.
struct Net {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    pin_dir: String,
}

impl Net {
    fn new(tag: &str) -> Net {
        let id = format!("{}{tag}", std::process::id() % 100_000);
        let net = Net {
            server_ns: format!("tlx-s{id}"),
            client_ns: format!("tlx-c{id}"),
            server_if: format!("tlxs{id}"),
            client_if: format!("tlxc{id}"),
            pin_dir: format!("/sys/fs/bpf/tlx-{id}"),
        };
        let (s, c) = (&net.server_ns, &net.client_ns);
        let (si, ci) = (&net.server_if, &net.client_if);
        run("ip", &["netns", "add", s]);
        run("ip", &["netns", "add", c]);
        #[rustfmt::skip]
        run("ip", &[
            "link", "add", si, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
            "peer", "name", ci, "numtxqueues", "1", "numrxqueues", "1",
        ]);
        run("ip", &["link", "set", si, "netns", s]);
        run("ip", &["link", "set", ci, "netns", c]);
        for (ns, dev, v4) in [(s, si, SERVER_V4), (c, ci, CLIENT_V4)] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev],
            );
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // The client end's kernel never sees frames while the sender runs,
        // so it cannot answer neighbour solicitations: fix its MAC.
        let link: serde_json::Value =
            serde_json::from_str(&run("ip", &["-n", c, "-j", "link", "show", "dev", ci]))
                .expect("ip -j link show");
        let mac = link[0]["address"].as_str().expect("client MAC").to_owned();
        #[rustfmt::skip]
        run("ip", &["-n", s, "neigh", "replace", CLIENT_V4, "lladdr", &mac, "dev", si, "nud", "permanent"]);
        run(
            "ip",
            &[
                "-n", s, "route", "add", SOURCES, "via", CLIENT_V4, "dev", si,
            ],
        );
        net
    }

    /// The XDP program's counter `index`, summed over CPUs (bpftool;
    /// without BTF, keys and values are arrays of hex byte strings).
    fn counter(&self, index: u64) -> u64 {
        let path = format!("{}/COUNTERS", self.pin_dir);
        let json: serde_json::Value =
            serde_json::from_str(&run("bpftool", &["-j", "map", "dump", "pinned", &path]))
                .expect("bpftool JSON");
        let entry = json
            .as_array()
            .expect("array")
            .iter()
            .find(|e| number(&e["key"]) == index)
            .unwrap_or_else(|| panic!("no counter {index} in {json}"));
        entry["values"]
            .as_array()
            .expect("per-CPU values")
            .iter()
            .map(|v| number(&v["value"]))
            .sum()
    }
}

/// A number as bpftool prints it: plain, or little-endian hex bytes.
fn number(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Number(n) => n.as_u64().expect("unsigned"),
        serde_json::Value::Array(bytes) => bytes.iter().rev().fold(0u64, |acc, b| {
            let s = b.as_str().expect("hex byte string");
            (acc << 8) | u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex byte")
        }),
        other => panic!("unexpected bpftool value {other}"),
    }
}

/// `GET path` from `addr` inside network namespace `ns`: the body, or
/// None if nothing answers there (yet).
fn get_in_ns(ns: &str, addr: &str, path: &str) -> Option<String> {
    let (ns, addr, path) = (
        format!("/var/run/netns/{ns}"),
        addr.to_owned(),
        path.to_owned(),
    );
    // setns moves only the calling thread: a thread of its own, so the
    // test's other threads stay where they are.
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).unwrap_or_else(|e| panic!("{ns}: {e}"));
        // SAFETY: a valid namespace fd, open for the call; only this
        // thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        let mut stream = TcpStream::connect(&addr).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        Some(body.to_owned())
    })
    .join()
    .expect("the namespace thread panicked")
}

/// The sum of every `/metrics` sample of `name` whose labels include
/// `label`.
fn metric_sum(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .map(|l| {
            let value = l.rsplit(' ').next().expect("a value");
            value.parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}")) as u64
        })
        .sum()
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// Starts tracker-user in the server namespace, with XDP on the server end
/// if `xdp` (and its announce cache if `announce_in_kernel`), its admin
/// listener on [`ADMIN`] there if `admin`, and waits for its UDP socket.
fn start_tracker(net: &Net, xdp: bool, announce_in_kernel: bool, admin: bool) -> Tracker {
    ensure_tracker_built();
    let config = temp_path("tracker.toml");
    let admin = if admin {
        format!("[\"{ADMIN}\"]")
    } else {
        "[]".to_owned()
    };
    let mut text =
        format!("log_level = \"info\"\n[http]\nlisten = []\n[admin]\nlisten = {admin}\n");
    if xdp {
        text.push_str(&format!(
            "[xdp]\nrequired = true\npin_path = \"{}\"\nscrape_in_kernel = false\n\
             announce_in_kernel = {announce_in_kernel}\n",
            net.pin_dir
        ));
    }
    std::fs::write(&config, text).expect("tracker config");
    let addr = format!("{SERVER_V4}:6969");
    // nsenter --net, not `ip netns exec`: the latter gives the tracker a
    // mount namespace of its own, where its bpffs pins would be out of
    // bpftool's sight.
    let ns = format!("--net=/var/run/netns/{}", net.server_ns);
    let mut args = vec![ns.as_str(), TRACKER, "-c"];
    let config = config.to_str().expect("UTF-8").to_owned();
    args.push(&config);
    args.extend(["--udp", &addr]);
    if xdp {
        args.extend(["--iface", &net.server_if]);
    }
    let mut child = Command::new("nsenter")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker-user");
    let stderr = child.stderr.take().expect("stderr");
    let tracker = Tracker(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("UDP listening on") {
                let _ = tx.send(Ok(log.clone()));
            }
        }
        let _ = tx.send(Err(log));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(log)) => {
            if xdp {
                assert!(log.contains("XDP program attached"), "{log}");
            }
        }
        Ok(Err(log)) => panic!("the tracker exited:\n{log}"),
        Err(_) => panic!("the tracker did not start within 30 s"),
    }
    tracker
}

/// Runs the AF_XDP sender in the client namespace with `[profile]
/// event_share`; its parsed report and its stderr.
fn run_sender(net: &Net, event_share: f64) -> (serde_json::Value, String) {
    run_sender_with(net, &format!("event_share = {event_share}\n"), "")
}

/// Runs the AF_XDP sender with `profile` and `udp` added to its sections.
fn run_sender_with(net: &Net, profile: &str, udp: &str) -> (serde_json::Value, String) {
    let config = temp_path("load.toml");
    std::fs::write(
        &config,
        format!(
            "[profile]\ntorrents = 500\npeers = 4000\n{profile}\n\
             [udp]\ntracker = \"{SERVER_V4}:6969\"\n\
             xdp_iface = \"{}\"\nxdp_source_first = \"{SOURCE_FIRST}\"\n\
             xdp_source_count = {SOURCE_COUNT}\nxdp_in_flight = 128\nwarmup = 0.5\n\
             duration = 2\n{udp}",
            net.client_if
        ),
    )
    .expect("load config");
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.client_ns,
            env!("CARGO_BIN_EXE_tracker-load"),
        ])
        .args(["udp", "--json", "-c"])
        .arg(&config)
        .output()
        .expect("run tracker-load");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "tracker-load failed:\n{stderr}");
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{stdout}\n{stderr}"));
    (report, stderr)
}

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

/// Every kind answered, nothing invalid or refused, little lost.
fn assert_served(report: &serde_json::Value, stderr: &str) {
    let context = format!("{report}\n{stderr}");
    assert!(stderr.contains("AF_XDP sender on"), "{context}");
    for key in [
        "connect_responses",
        "announce_responses",
        "scrape_responses",
    ] {
        assert!(count(report, key) > 0, "{key}: {context}");
    }
    assert_eq!(count(report, "invalid_responses"), 0, "{context}");
    assert_eq!(count(report, "error_responses"), 0, "{context}");
    let sent = count(report, "requests_sent");
    let lost = count(report, "lost");
    assert!(lost * 20 <= sent, "more than 5 % lost: {context}");
    // The tracker stored peers from the simulated sources and handed them
    // out again: answers with peers in them came back to the right source.
    let peers = report["peers_per_announce"].as_f64().expect("f64");
    assert!(peers > 1.0 && peers <= 30.0, "{context}");
}

fn require_root() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the AF_XDP sender test needs root; CI runs it as root"
    );
}

#[test]
fn sender_is_answered_by_the_xdp_path() {
    require_root();
    let net = Net::new("x");
    let _tracker = start_tracker(&net, true, false, false);
    let connects_before = net.counter(2);
    let redirected_before = net.counter(1);
    let (report, stderr) = run_sender(&net, 1.0);
    assert_served(&report, &stderr);
    // Connects were answered by the program, the rest by userland through
    // its AF_XDP socket.
    let answered = net.counter(2) - connects_before;
    let redirected = net.counter(1) - redirected_before;
    assert!(answered >= count(&report, "connect_responses"), "{report}");
    assert!(
        redirected >= count(&report, "announce_responses") + count(&report, "scrape_responses"),
        "{report}"
    );
}

#[test]
fn sender_is_answered_by_the_kernel_udp_stack() {
    // The tracker's plain socket: the server kernel checks the sender's IPv4
    // and UDP checksums (it drops a datagram with a wrong one) and routes
    // the answers back to the simulated sources.
    require_root();
    let net = Net::new("k");
    let _tracker = start_tracker(&net, false, false, false);
    let (report, stderr) = run_sender(&net, 1.0);
    assert_served(&report, &stderr);
    let udp = run(
        "ip",
        &["netns", "exec", &net.server_ns, "cat", "/proc/net/snmp"],
    );
    let mut lines = udp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next().expect("Udp:"), lines.next().expect("Udp:"));
    let in_csum_errors = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InCsumErrors")
        .map(|(_, v)| v.parse::<u64>().expect("number"))
        .expect("InCsumErrors");
    assert_eq!(in_csum_errors, 0, "the server kernel saw bad UDP checksums");
}

#[test]
fn reannounces_reach_the_kernels_announce_cache_and_events_do_not() {
    // The announce cache answers event none only (announce_events_in_kernel
    // is off by default), so what the sender writes in the event field
    // decides who answers.
    require_root();
    let net = Net::new("e");
    let _tracker = start_tracker(&net, true, true, false);
    // aquatic's mix, which also fills the swarms the cache is made from.
    let before = net.counter(u64::from(counter::ANNOUNCE_ANSWERED));
    let (report, stderr) = run_sender(&net, 1.0);
    assert_served(&report, &stderr);
    let answered = net.counter(u64::from(counter::ANNOUNCE_ANSWERED)) - before;
    assert_eq!(answered, 0, "the kernel answered announces naming events");
    // Re-announces only.
    let before = net.counter(u64::from(counter::ANNOUNCE_ANSWERED));
    let (report, stderr) = run_sender(&net, 0.0);
    assert_served(&report, &stderr);
    let answered = net.counter(u64::from(counter::ANNOUNCE_ANSWERED)) - before;
    let announces = count(&report, "announce_responses");
    // Most clients' torrents are in the hot head (500 torrents, 4096 cached).
    assert!(
        answered * 2 >= announces,
        "the kernel answered {answered} of {announces} re-announces: {report}"
    );
}

#[test]
fn prefill_puts_every_client_in_the_tracker_before_the_load() {
    // No announces in the load itself: whatever peers the tracker holds
    // afterwards came from the prefill, through the AF_XDP socket, from
    // the simulated sources.
    require_root();
    let net = Net::new("p");
    let _tracker = start_tracker(&net, true, true, true);
    let (report, stderr) = run_sender_with(
        &net,
        "weight_connect = 1\nweight_announce = 0\nweight_scrape = 1\n",
        "prefill = true\n",
    );
    let context = format!("{report}\n{stderr}");
    assert!(
        stderr.contains("prefill: 4000 of 4000 clients confirmed"),
        "{context}"
    );
    assert_eq!(count(&report, "prefill_clients"), 4000, "{context}");
    assert_eq!(count(&report, "prefilled_peers"), 4000, "{context}");
    assert_eq!(count(&report, "prefill_failed"), 0, "{context}");
    assert!(
        count(&report, "prefill_announces_sent") >= 4000,
        "{context}"
    );
    assert_eq!(count(&report, "announces_sent"), 0, "{context}");
    assert!(count(&report, "scrape_responses") > 0, "{context}");
    let peers = count(&report, "prefill_swarm_peers");
    let torrents = count(&report, "prefill_swarm_torrents");
    // 200 sources, 20 clients each: two of a source in one torrent on one
    // port are rare, so nearly every client is a peer of its own.
    assert!(peers > 3_900 && peers <= 4_000, "{context}");
    assert!(torrents > 50 && torrents <= 500, "{context}");
    // The tracker's own count, once its gauges caught up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (held, held_torrents) = loop {
        let metrics = get_in_ns(&net.server_ns, ADMIN, "/metrics").unwrap_or_default();
        let held = metric_sum(&metrics, "tracker_peers", "store=\"bittorrent\"");
        let held_torrents = metric_sum(&metrics, "tracker_torrents", "store=\"bittorrent\"");
        if (held, held_torrents) == (peers, torrents) || std::time::Instant::now() >= deadline {
            break (held, held_torrents);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(held, peers, "peers held by the tracker: {context}");
    assert_eq!(
        held_torrents, torrents,
        "torrents held by the tracker: {context}"
    );
}
