//! The XDP fast path, end to end and for real: each test builds a server
//! and a client network namespace joined by a veth pair, attaches the
//! tracker to the server end with `--iface`, and talks to it from the
//! client namespace. Counters are read the way an operator reads them, with
//! `bpftool map dump pinned`.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN), iproute2, bpftool, ping and a
//! tracker-user built after `cargo xtask build-ebpf` (which `cargo xtask
//! test` runs first). These tests fail rather than skip when any of that is
//! missing: a skipped XDP test would let the fast path rot unnoticed.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::netns::{in_ns, require_root, run, NetSpec, TestNet};
use common::*;

const SERVER_V4: &str = "10.123.0.1";
const CLIENT_V4: &str = "10.123.0.2";
const SERVER_V6: &str = "fd12:3::1";
const CLIENT_V6: &str = "fd12:3::2";
const PORT: u16 = 6969;

/// The server and client namespaces of one test, with `queues` RX and TX
/// queues on each veth end.
fn test_net(queues: u32) -> TestNet {
    require_root("the XDP tests need root (CAP_BPF and CAP_NET_ADMIN); CI runs them as root");
    TestNet::new(&NetSpec {
        prefix: "trk",
        v4: (SERVER_V4, CLIENT_V4),
        v6: Some((SERVER_V6, CLIENT_V6)),
        queues,
    })
}

/// What these tests do with a [`TestNet`]: talk to the tracker from the
/// client namespace, start it in the server namespace.
trait XdpNet {
    fn client_socket(&self, v6: bool) -> UdpSocket;
    fn client(&self, v6: bool) -> Client;
    /// The tracker attached to the server end, serving on both families.
    fn tracker(&self, extra_config: &str) -> Tracker;
    fn tracker_with(&self, builder: TrackerBuilder, extra_config: &str) -> Tracker;
}

impl XdpNet for TestNet {
    fn client_socket(&self, v6: bool) -> UdpSocket {
        let bind = if v6 {
            format!("[{CLIENT_V6}]:0")
        } else {
            format!("{CLIENT_V4}:0")
        };
        in_ns(&self.client_ns, move || {
            UdpSocket::bind(&bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"))
        })
    }

    fn client(&self, v6: bool) -> Client {
        Client::from_socket(self.client_socket(v6), tracker_addr(v6))
    }

    fn tracker(&self, extra_config: &str) -> Tracker {
        self.tracker_with(Tracker::builder(), extra_config)
    }

    fn tracker_with(&self, builder: TrackerBuilder, extra_config: &str) -> Tracker {
        self.xdp_tracker(builder, &server_addrs(), extra_config, "")
            .start()
    }
}

fn server_addrs() -> [String; 2] {
    [
        format!("{SERVER_V4}:{PORT}"),
        format!("[{SERVER_V6}]:{PORT}"),
    ]
}

fn tracker_addr(v6: bool) -> SocketAddr {
    let ip: IpAddr = if v6 { SERVER_V6 } else { SERVER_V4 }.parse().unwrap();
    SocketAddr::new(ip, PORT)
}

fn assert_xdp_in_use(t: &Tracker) {
    let log = t.stderr_text();
    assert!(
        log.contains("XDP program attached") && log.contains("AF_XDP socket on"),
        "the tracker did not set up XDP:\n{log}"
    );
}

#[test]
fn connects_are_answered_in_kernel_and_requests_served_through_af_xdp() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    let before = net.counters();
    for v6 in [false, true] {
        let hash = random_hash();
        let peers: Vec<Client> = (0..3).map(|_| net.client(v6)).collect();
        for (i, peer) in peers.iter().enumerate() {
            let resp = peer.announce(&Announce::new(hash, 7000 + i as u16).leecher());
            assert_eq!(resp.leechers, i as u32 + 1, "v6={v6}");
            let expected: std::collections::HashSet<SocketAddr> = peers[..i]
                .iter()
                .enumerate()
                .map(|(j, p)| p.peer_addr(7000 + j as u16))
                .collect();
            // The client decodes 18-byte peers over IPv6, 6-byte over IPv4.
            assert_eq!(resp.peer_set(), expected, "v6={v6} peer {i}");
        }
        let scrape = peers[0].scrape(&[hash, random_hash()]);
        assert_eq!(scrape.0, vec![(0, 0, 3), (0, 0, 0)], "v6={v6}");
    }
    let after = net.counters();
    // Six connects (three peers per family), each answered by the program.
    assert_eq!(
        after.answered - before.answered,
        6,
        "{before:?} → {after:?}"
    );
    // Six announces and two scrapes went through the AF_XDP sockets.
    assert!(
        after.redirected - before.redirected >= 8,
        "{before:?} → {after:?}"
    );
}

/// With one RX queue and one request worker, "auto" runs the request
/// worker in the AF_XDP queue worker's thread, as it does in the one UDP
/// socket worker's without XDP; "off" gives it a thread of its own. Both
/// serve announces through AF_XDP and what the program passes to the
/// kernel's socket (a datagram with IP options, which the program leaves
/// to the kernel, see `other_traffic_still_reaches_the_server_kernel`).
#[test]
fn the_request_worker_runs_inline_in_the_one_queue_worker() {
    for (mode, line) in [
        (
            "auto",
            "request worker inline in the AF_XDP queue worker's thread",
        ),
        ("off", "request workers: 1 thread(s) of their own"),
    ] {
        let net = test_net(1);
        let builder = net.xdp_tracker(
            Tracker::builder(),
            &server_addrs(),
            &format!("[swarm]\nworkers = 1\ninline = \"{mode}\""),
            "",
        );
        let t = builder.start();
        assert_xdp_in_use(&t);
        let log = t.stderr_text();
        assert!(
            log.contains(&format!("{line} (swarm.inline = {mode})")),
            "{mode}: {log}"
        );
        let hash = random_hash();
        let (a, b) = (net.client(false), net.client(false));
        let before = net.counters();
        a.announce(&Announce::new(hash, 7000).leecher());
        let resp = b.announce(&Announce::new(hash, 7001).leecher());
        assert_eq!(resp.peer_set(), [a.peer_addr(7000)].into(), "{mode}");
        assert!(net.counters().redirected - before.redirected >= 2, "{mode}");
    }
}

/// The program and userland compute ids from one definition, bound to the
/// client's IP only: an id the kernel hands to one socket is accepted by
/// userland from another port of the same IP (libtorrent's shared id, NAT
/// rebinding).
#[test]
fn id_from_a_kernel_answered_connect_is_accepted_from_another_port() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    for v6 in [false, true] {
        let hash = random_hash();
        let a = net.client(v6);
        let b = net.client(v6);
        assert_ne!(a.local_addr().port(), b.local_addr().port());
        let before = net.counters();
        let id = a.connect();
        let after = net.counters();
        assert_eq!(
            after.answered - before.answered,
            1,
            "v6={v6}: the connect was answered by the program: {before:?} → {after:?}"
        );
        b.set_conn_id(id);
        let r = b.announce(&Announce::new(hash, 7100).leecher());
        assert_eq!(r.leechers, 1, "v6={v6}");
        assert_eq!(b.scrape(&[hash]).0, vec![(0, 0, 1)], "v6={v6}");
        // The scrape may be answered in the kernel once the announce's
        // counts are published (tests/xdp_scrape.rs); it is not refused.
        let now = net.counters();
        assert!(
            (now.redirected + now.scrape_answered) - (after.redirected + after.scrape_answered)
                >= 2,
            "v6={v6}: announce and scrape were answered with this id: {after:?} → {now:?}"
        );
    }
}

/// With `[persistence]`, an id the program handed out before a restart
/// is accepted after it, through AF_XDP: the secret is restored before the
/// program is attached and before userland verifies anything.
#[test]
fn an_id_from_before_a_restart_is_accepted_after_it() {
    let net = test_net(1);
    let dir = tempfile::tempdir().unwrap();
    let persistence = format!(
        "[persistence]\npath = {:?}\n",
        dir.path().join("swarm.snapshot")
    );
    let mut before = net.tracker(&persistence);
    assert_xdp_in_use(&before);
    let hash = random_hash();
    let mut ids = Vec::new();
    for v6 in [false, true] {
        let seeder = net.client(v6);
        let counted = net.counters().answered;
        ids.push(seeder.connect());
        assert_eq!(net.counters().answered - counted, 1, "answered in kernel");
        seeder.announce(&Announce::new(hash, 7200).seeder());
    }
    assert!(before.terminate().success(), "{}", before.stderr_text());
    drop(before);
    let after = net.tracker(&persistence);
    assert_xdp_in_use(&after);
    for (v6, id) in [false, true].into_iter().zip(ids) {
        let returning = net.client(v6);
        returning.set_conn_id(id);
        let redirected = net.counters().redirected;
        let r = returning.announce(&Announce::new(hash, 7201).leecher());
        // Counts cover both families; peers come from the client's own.
        assert_eq!(r.seeders, 2, "v6={v6}: the seeders from before the restart");
        assert_eq!(r.peer_set().len(), 1, "v6={v6}");
        assert!(
            net.counters().redirected > redirected,
            "v6={v6}: the announce went through AF_XDP"
        );
    }
}

#[test]
fn other_traffic_still_reaches_the_server_kernel() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    let before = net.counters();
    // ARP and ICMP: ping needs both to work.
    run(
        "ip",
        &[
            "netns",
            "exec",
            &net.client_ns,
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            SERVER_V4,
        ],
    );
    run(
        "ip",
        &[
            "netns",
            "exec",
            &net.client_ns,
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "3",
            SERVER_V6,
        ],
    );
    // TCP, even to the tracker's port number.
    let listener = in_ns(&net.server_ns, || {
        TcpListener::bind(format!("{SERVER_V4}:{PORT}")).expect("bind TCP")
    });
    let connected = in_ns(&net.client_ns, || {
        TcpStream::connect_timeout(&tracker_addr(false), Duration::from_secs(3)).is_ok()
    });
    assert!(connected, "TCP to the server namespace failed");
    drop(listener);
    // UDP to another port.
    let server = in_ns(&net.server_ns, || {
        UdpSocket::bind(format!("{SERVER_V4}:7001")).expect("bind UDP 7001")
    });
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let client = net.client_socket(false);
    client
        .send_to(b"hello", format!("{SERVER_V4}:7001"))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = server
        .recv_from(&mut buf)
        .expect("UDP to port 7001 did not arrive");
    assert_eq!(&buf[..n], b"hello");
    let after = net.counters();
    assert!(after.passed > before.passed, "{before:?} → {after:?}");
    assert_eq!(
        after.redirected, before.redirected,
        "nothing was for the tracker"
    );
}

/// An Ethernet frame from the client's veth to the server's with an IPv4
/// UDP datagram to the tracker whose UDP length claims more than is there.
fn send_lying_udp_frame(net: &TestNet) {
    let payload = [0u8; 16];
    let mut udp = Vec::new();
    udp.extend(40000u16.to_be_bytes());
    udp.extend(PORT.to_be_bytes());
    udp.extend(400u16.to_be_bytes()); // UDP length: a lie
    udp.extend(0u16.to_be_bytes());
    udp.extend(payload);
    net.send_ipv4_udp_frame(&udp);
}

#[test]
fn malformed_and_garbage_tracker_packets_leave_the_workers_serving() {
    let net = test_net(1);
    let mut t = net.tracker("");
    assert_xdp_in_use(&t);
    let before = net.counters();
    send_lying_udp_frame(&net);
    let after = net.counters();
    assert_eq!(
        after.malformed,
        before.malformed + 1,
        "{before:?} → {after:?}"
    );

    // Garbage of every size straight into the AF_XDP worker.
    let sock = net.client_socket(false);
    let mut rng = Rng::new();
    for i in 0..3000 {
        let len = rng.below(300);
        let mut packet = rng.bytes(len);
        if i % 3 == 0 && len >= 16 {
            // Some look like an announce with a bad connection id.
            packet[8..12].copy_from_slice(&1u32.to_be_bytes());
        }
        let _ = sock.send_to(&packet, tracker_addr(false));
    }
    t.assert_alive();
    let client = net.client(false);
    let resp = client.announce(&Announce::new(random_hash(), 7100).seeder());
    assert_eq!((resp.seeders, resp.leechers), (1, 0));
    let v6 = net.client(true);
    assert_eq!(v6.scrape(&[random_hash()]).0, vec![(0, 0, 0)]);
}

#[test]
fn stopping_detaches_and_unpins() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    assert!(net.xdp_attached());
    assert!(std::path::Path::new(&net.pin_dir)
        .join("tracker_xdp")
        .exists());
    drop(t); // SIGTERM, then wait
    assert!(
        !net.xdp_attached(),
        "program left on the interface after SIGTERM"
    );
    assert!(
        !std::path::Path::new(&net.pin_dir).exists(),
        "pins left behind after SIGTERM"
    );

    // A tracker that dies without cleaning up still leaves the interface
    // clean: the kernel drops the BPF link with the process.
    let t = net.tracker("");
    assert!(net.xdp_attached());
    t.signal(libc::SIGKILL);
    assert!(
        poll_until(Duration::from_secs(5), || !net.xdp_attached()),
        "program left on the interface after SIGKILL"
    );
}

#[test]
fn a_foreign_program_is_not_replaced_unless_asked() {
    let net = test_net(1);
    let first = net.tracker("");
    assert_xdp_in_use(&first);
    // A second tracker that requires XDP must refuse the occupied interface.
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/var/run/netns/{}", net.server_ns))
        .arg(bin_path())
        .args([
            "--udp",
            &format!("{SERVER_V4}:0"),
            "--iface",
            &net.server_if,
        ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        format!("[xdp]\nrequired = true\npin_path = \"{}-2\"\n", net.pin_dir),
    )
    .unwrap();
    cmd.arg("-c").arg(&config);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second tracker started: {stderr}");
    assert!(
        stderr.contains("already has an XDP program") || stderr.contains("busy"),
        "unclear refusal: {stderr}"
    );
    // The first one still serves.
    let client = net.client(false);
    client.announce(&Announce::new(random_hash(), 7200).seeder());
}

#[test]
fn two_rx_queues_get_a_socket_each() {
    let net = test_net(2);
    // All 20 peers share the client namespace's address.
    let t = net.tracker(MANY_PEERS_PER_IP);
    let log = t.stderr_text();
    assert!(
        (0..2).all(|q| log.contains(&format!("AF_XDP socket on {} queue {q} (", net.server_if))),
        "expected an AF_XDP socket per queue:\n{log}"
    );
    let hash = random_hash();
    let peers: Vec<Client> = (0..20).map(|_| net.client(false)).collect();
    for (i, peer) in peers.iter().enumerate() {
        let resp = peer.announce(&Announce::new(hash, 8000 + i as u16).leecher());
        assert_eq!(resp.leechers, i as u32 + 1);
    }
    assert_eq!(net.counters().answered, 20);
}

#[test]
fn npm_client_works_through_xdp() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    let url = format!("udp://{SERVER_V4}:{PORT}");
    npm::check_two_clients(&url, CLIENT_V4, Some(&net.client_ns), &t);
    assert!(net.counters().answered >= 2);
}

/// `cargo xtask test` builds a tracker-user without the XDP object and
/// names it here; CI must exercise that fallback, so its absence fails.
fn binary_without_object() -> String {
    std::env::var("TRACKER_USER_NO_EBPF_BIN").expect(
        "TRACKER_USER_NO_EBPF_BIN is not set: run the tests with `cargo xtask test`, which \
         builds a tracker-user without the XDP object for this test",
    )
}

#[test]
fn a_binary_without_the_program_falls_back_to_sockets() {
    let net = test_net(1);
    let bin = binary_without_object();
    let t = net.tracker_with(Tracker::builder().bin(&bin), "");
    let log = t.stderr_text();
    assert!(
        log.contains("cargo xtask build-ebpf") && log.contains("plain sockets"),
        "no fallback warning:\n{log}"
    );
    assert!(!net.xdp_attached());
    let client = net.client(false);
    let resp = client.announce(&Announce::new(random_hash(), 7300).seeder());
    assert_eq!(resp.seeders, 1);

    // Unless XDP is required: then it refuses to start, saying why.
    let out = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", net.server_ns))
        .args([&bin, "--udp", &format!("{SERVER_V4}:0")])
        .args(["--iface", &net.server_if, "-c", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"[xdp]\nrequired = true\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started without XDP although required"
    );
    assert!(stderr.contains("cargo xtask build-ebpf"), "{stderr}");
}

/// A BEP 15 connect from `client_port` to the tracker with transaction id
/// `txid`, as UDP header and payload. `check` is what goes into the UDP
/// checksum field: `None` for the correct checksum, or a value of choice.
fn raw_connect(client_port: u16, txid: u32, check: Option<u16>) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend(client_port.to_be_bytes());
    udp.extend(PORT.to_be_bytes());
    udp.extend(24u16.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(0x0417_2710_1980u64.to_be_bytes());
    udp.extend(0u32.to_be_bytes());
    udp.extend(txid.to_be_bytes());
    let correct = {
        let mut pseudo = Vec::new();
        pseudo.extend(CLIENT_V4.parse::<std::net::Ipv4Addr>().unwrap().octets());
        pseudo.extend(SERVER_V4.parse::<std::net::Ipv4Addr>().unwrap().octets());
        pseudo.extend([0, 17, 0, 24]);
        let mut sum = 0u32;
        for pair in pseudo.chunks(2).chain(udp.chunks(2)) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    };
    udp[6..8].copy_from_slice(&check.unwrap_or(correct).to_be_bytes());
    udp
}

/// The UDP checksum rule of the XDP path, seen from a client: a connect
/// whose checksum is wrong gets no answer (the kernel would have dropped
/// it), one without a checksum over IPv4 is answered like a correct one.
#[test]
fn connects_with_a_wrong_udp_checksum_get_no_answer() {
    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    let sock = net.client_socket(false);
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut buf = [0u8; 64];

    // The control: the same frame with a correct checksum is answered, by
    // the program, with the connect response.
    let before = net.counters();
    net.send_ipv4_udp_frame(&raw_connect(port, 0x1111_0001, None));
    let (n, from) = sock.recv_from(&mut buf).expect("answer to a good connect");
    assert_eq!(from, tracker_addr(false));
    assert_eq!(n, 16);
    assert_eq!(&buf[..8], &[0, 0, 0, 0, 0x11, 0x11, 0, 1]);
    assert_eq!(net.counters().answered, before.answered + 1);

    // Wrong: not answered in the kernel, and dropped by the AF_XDP worker
    // it is steered to.
    let before = net.counters();
    net.send_ipv4_udp_frame(&raw_connect(port, 0x1111_0002, Some(0x1234)));
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a connect with a wrong checksum was answered: {:?}",
        &buf[..16]
    );
    let after = net.counters();
    assert_eq!(after.answered, before.answered, "{before:?} → {after:?}");
    assert_eq!(
        after.redirected,
        before.redirected + 1,
        "{before:?} → {after:?}"
    );

    // Zero: "no checksum" over IPv4, answered (and without one).
    let before = net.counters();
    net.send_ipv4_udp_frame(&raw_connect(port, 0x1111_0003, Some(0)));
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("answer to a connect without checksum");
    assert_eq!(n, 16);
    assert_eq!(&buf[4..8], &[0x11, 0x11, 0, 3]);
    assert_eq!(net.counters().answered, before.answered + 1);
}

/// What an operator scrapes with XDP on: connects the program answered,
/// requests by the `udp_xdp` protocol, how the program is attached, and
/// the AF_XDP sockets' ring statistics. The admin listener is on the
/// server namespace's loopback, so it is read from inside it.
#[test]
fn metrics_show_the_fast_path() {
    use common::scrape::{metrics, stats_json};

    let net = test_net(1);
    let t = net.tracker("");
    assert_xdp_in_use(&t);
    let admin = t.admin[0];
    let ns = net.server_ns.clone();
    let scrape = move || {
        let ns = ns.clone();
        in_ns(&ns, move || (metrics(admin), stats_json(admin)))
    };

    const PEERS: u32 = 3;
    let hash = random_hash();
    let clients: Vec<Client> = (0..PEERS).map(|_| net.client(false)).collect();
    for (i, c) in clients.iter().enumerate() {
        // Sent once each, so that the counts below are exact.
        let txid = c.txid();
        c.send(&encode_connect(txid));
        let answer = c.recv_txid(txid, Duration::from_secs(5)).expect("connect");
        let Response::Connect { conn_id, .. } = decode_response(&answer, false) else {
            panic!("not a connect answer: {answer:02x?}");
        };
        let txid = c.txid();
        c.send(&Announce::new(hash, 7000 + i as u16).encode(conn_id, txid));
        let answer = c.recv_txid(txid, Duration::from_secs(5)).expect("announce");
        assert!(
            matches!(decode_response(&answer, false), Response::Announce(_)),
            "{answer:02x?}"
        );
    }

    let (m, s) = scrape();
    let answered = m.get("tracker_xdp_packets_total", &[("outcome", "answered")]);
    assert!(answered >= u64::from(PEERS), "{}", m.text);
    assert_eq!(
        answered,
        net.counters().answered,
        "/metrics sums the same per-CPU map bpftool reads"
    );
    let xdp = |action| [("protocol", "udp_xdp"), ("action", action)];
    assert_eq!(
        m.get("tracker_requests_total", &xdp("announce")),
        u64::from(PEERS)
    );
    assert_eq!(
        m.get("tracker_responses_total", &xdp("announce")),
        u64::from(PEERS)
    );
    assert_eq!(
        m.get("tracker_requests_total", &xdp("connect")),
        0,
        "the kernel answered them"
    );
    let udp = [("protocol", "udp"), ("action", "announce")];
    assert_eq!(
        m.get("tracker_requests_total", &udp),
        0,
        "all went through AF_XDP"
    );

    let log = t.stderr_text();
    let mode = if log.contains("(Driver mode") {
        "driver"
    } else {
        "generic"
    };
    let attached = m.all("tracker_xdp_attached");
    assert_eq!(attached.len(), 1, "{}", m.text);
    let labels = [("iface", net.server_if.as_str()), ("mode", mode)];
    for (k, v) in labels {
        assert!(
            attached[0].labels.contains(&(k.into(), v.into())),
            "{attached:?}\n{log}"
        );
    }
    assert_eq!(attached[0].value, 1.0);
    assert_eq!(m.get("tracker_xdp_queues", &[]), 1);
    let rings = m.all("tracker_afxdp_ring_events_total");
    let events: Vec<&str> = rings.iter().map(|r| r.labels[0].1.as_str()).collect();
    for event in [
        "rx_dropped",
        "rx_ring_full",
        "fill_ring_empty",
        "tx_invalid",
    ] {
        assert!(events.contains(&event), "{event} missing: {events:?}");
    }

    assert_eq!(s["connects_in_kernel"], answered, "{s:#}");
    assert_eq!(s["xdp"]["iface"], net.server_if, "{s:#}");
    assert_eq!(s["xdp"]["program"]["answered"], answered, "{s:#}");
    assert_eq!(s["requests"]["udp_xdp"]["announce"], PEERS, "{s:#}");
}

/// An AF_XDP queue worker that stops draining its queue leaves the kernel
/// without fill-ring frames: what it then drops shows in the ring
/// statistics, and the worker serves again once it resumes.
#[test]
fn a_stalled_queue_worker_shows_in_the_ring_statistics() {
    use common::scrape::metrics;
    use common::stop::StoppedThread;

    let net = test_net(1);
    // The fewest frames the config allows: 32 for the fill ring.
    let t = Tracker::builder()
        .netns(&net.server_ns)
        .udp(&format!("{SERVER_V4}:{PORT}"))
        .arg("--iface")
        .arg(&net.server_if)
        .config(&format!(
            "[xdp]\npin_path = \"{}\"\nframe_count = 64\n",
            net.pin_dir
        ))
        .start();
    assert_xdp_in_use(&t);
    let admin = t.admin[0];
    let ns = net.server_ns.clone();
    let ring_events = move || {
        let ns = ns.clone();
        let m = in_ns(&ns, move || metrics(admin));
        let events: u64 = ["rx_dropped", "rx_ring_full", "fill_ring_empty"]
            .iter()
            .map(|e| m.get("tracker_afxdp_ring_events_total", &[("event", e)]))
            .sum();
        (events, m)
    };
    assert_eq!(ring_events().0, 0, "nothing dropped before the stall");

    let c = net.client(false);
    let id = c.connect();
    let stopped = StoppedThread::new(t.pid(), "xdp-0");
    // Announces are steered to the socket whatever their id; ten times
    // what the fill ring holds.
    for txid in 0..320 {
        let _ = c.sock.send_to(
            &Announce::new(random_hash(), 7000).encode(id, txid),
            c.tracker,
        );
    }
    let (events, m) = ring_events();
    assert!(events > 0, "{}", m.text);
    drop(stopped);

    // Serving again: a fresh announce is answered.
    std::thread::sleep(Duration::from_millis(200));
    while c.recv_timeout(Duration::from_millis(100)).is_some() {}
    let resp = c.announce(&Announce::new(random_hash(), 7001));
    assert_eq!(resp.leechers, 1);
}
