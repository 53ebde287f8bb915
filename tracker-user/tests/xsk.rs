//! The AF_XDP socket layer (`tracker_user::xdp::xsk`) against the real
//! kernel, kept out of the library's unit tests because it needs root:
//! each test builds its own pair of network namespaces joined by a veth,
//! opens an `XskQueue` on one end and talks to an ordinary UDP socket on
//! the other.
//!
//! Receiving needs an XDP program redirecting into an XSKMAP. The
//! project's program (tracker-ebpf) is exercised by the end-to-end tests
//! (tests/xdp.rs); here a six-instruction redirect-everything program,
//! assembled by hand in tracker-xdp-testing, tests `receive` without
//! depending on that build.
//!
//! Root is required, and its absence is a failure, not a skip.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tracker_user::xdp::frame::{parse_udp_frame, write_reply_frame, ReplyPath, VlanTag};
use tracker_user::xdp::xsk::{FrameCensus, XskConfig, XskQueue, XskStats};
use tracker_xdp_testing as bpf;

const XSK_MAC: [u8; 6] = [0x02, 0x13, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0x13, 0, 0, 0, 0x02];
const XSK_V4: &str = "10.213.0.1";
const PEER_V4: &str = "10.213.0.2";
const XSK_V6: &str = "fd00:213::1";
const PEER_V6: &str = "fd00:213::2";
const PEER_PORT: u16 = 7000;
const XSK_IF: &str = "xsk0";
const PEER_IF: &str = "peer0";

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "AF_XDP tests need root (network namespaces, veth, AF_XDP); run them as root"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("running `ip` (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Two namespaces joined by a veth (`xsk0` in `xsk_ns`, `peer0` in
/// `peer_ns`), deleted on drop.
struct VethPair {
    xsk_ns: String,
    peer_ns: String,
}

impl VethPair {
    fn new() -> VethPair {
        // Two real RX queues, so binding a second queue can be tested
        // (veth otherwise defaults to one).
        Self::with_queues(2)
    }

    fn with_queues(queues: u32) -> VethPair {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("xskt{}-{n}", std::process::id());
        let pair = VethPair {
            xsk_ns: format!("{base}a"),
            peer_ns: format!("{base}b"),
        };
        let (a, b) = (pair.xsk_ns.as_str(), pair.peer_ns.as_str());
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        let q = queues.to_string();
        ip(&[
            "link",
            "add",
            XSK_IF,
            "netns",
            a,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            PEER_IF,
            "netns",
            b,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        for (ns, dev, mac, v4, v6) in [
            (a, XSK_IF, XSK_MAC, XSK_V4, XSK_V6),
            (b, PEER_IF, PEER_MAC, PEER_V4, PEER_V6),
        ] {
            ip(&["-n", ns, "link", "set", dev, "address", &mac_str(mac)]);
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Runs `f` on a fresh thread inside `ns`; test threads themselves
    /// never change namespace. Sockets keep the namespace they were
    /// created in, so they can be used from any thread afterwards.
    fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: a netns fd we just opened; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    /// A `Udp:` counter from the peer namespace's /proc/net/snmp.
    fn peer_udp_counter(&self, field: &'static str) -> u64 {
        Self::run_in(&self.peer_ns, move || {
            // thread-self: /proc/self/net would show the namespace of
            // the process's main thread, not this one's.
            let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
            let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
            let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
            let at = names.split_whitespace().position(|n| n == field).unwrap();
            values.split_whitespace().nth(at).unwrap().parse().unwrap()
        })
    }

    fn open_xsk(&self, config: XskConfig) -> io::Result<XskQueue> {
        Self::run_in(&self.xsk_ns, move || XskQueue::open(XSK_IF, 0, &config))
    }

    fn peer_socket(&self, addr: &str) -> UdpSocket {
        let addr: SocketAddr = addr.parse().unwrap();
        let sock = Self::run_in(&self.peer_ns, move || UdpSocket::bind(addr))
            .expect("bind peer UDP socket");
        // Bursts outrun a default-sized receive buffer; root may force it.
        let size: libc::c_int = 8 << 20;
        // SAFETY: a valid socket and an int option.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", io::Error::last_os_error());
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.xsk_ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn path(local: &str, client: &str) -> ReplyPath {
    ReplyPath {
        client_mac: PEER_MAC,
        local_mac: XSK_MAC,
        vlans: [VlanTag::default(); 2],
        vlan_count: 0,
        client: client.parse().unwrap(),
        local: local.parse().unwrap(),
    }
}

fn send(q: &mut XskQueue, p: &ReplyPath, payload: &[u8]) -> bool {
    q.transmit(|frame| {
        write_reply_frame(p, frame, |buf| {
            let dst = buf.get_mut(..payload.len())?;
            dst.copy_from_slice(payload);
            Some(payload.len())
        })
    })
}

/// Flushes until every published frame has completed.
fn drain(q: &mut XskQueue) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        q.flush();
        if q.tx_in_flight() == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "TX never completed: {:?}",
            q.census()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn small_config() -> XskConfig {
    XskConfig {
        frame_count: 64,
        ..XskConfig::default()
    }
}

#[test]
fn xsk_queue_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<XskQueue>();
}

#[test]
fn opens_in_copy_mode_with_frames_split() {
    let pair = VethPair::new();
    // veth has no zero-copy support, so this exercises the fallback.
    let mut q = pair
        .open_xsk(XskConfig {
            zero_copy: true,
            ..XskConfig::default()
        })
        .expect("open AF_XDP on veth");
    assert_eq!(q.mode(), "copy");
    assert!(q.fd() >= 0);
    let c = q.census();
    assert_eq!(
        c,
        FrameCensus {
            total: 4096,
            fill: 2048,
            free: 2048,
            ..FrameCensus::default()
        }
    );
    assert!(q.frames_accounted());
    // No XDP program redirects to us, so nothing arrives; nor may
    // anything break.
    assert_eq!(q.receive(64, |_| panic!("nothing was redirected")), 0);
    q.flush();
    assert!(q.frames_accounted());
    assert_eq!(q.stats(), XskStats::default());

    // The same queue cannot be bound twice; another queue can.
    let again = pair.open_xsk(small_config());
    assert!(again.is_err(), "second bind to queue 0 succeeded");
    let ns = pair.xsk_ns.clone();
    let q1 =
        VethPair::run_in(&ns, || XskQueue::open(XSK_IF, 1, &small_config())).expect("bind queue 1");
    assert_eq!(q1.mode(), "copy");
}

#[test]
fn rejects_bad_configs() {
    let pair = VethPair::new();
    for config in [
        XskConfig {
            frame_size: 3000,
            ..XskConfig::default()
        },
        XskConfig {
            frame_size: 1024,
            ..XskConfig::default()
        },
        XskConfig {
            frame_size: 1 << 20,
            ..XskConfig::default()
        },
        XskConfig {
            frame_count: 1,
            ..XskConfig::default()
        },
    ] {
        let e = pair.open_xsk(config.clone()).err();
        assert_eq!(
            e.map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput),
            "{config:?}"
        );
    }
    let e = VethPair::run_in(&pair.xsk_ns, || {
        XskQueue::open("nosuchdev0", 0, &XskConfig::default())
    });
    assert!(e.is_err());
    let e = VethPair::run_in(&pair.xsk_ns, || {
        XskQueue::open("bad\0name", 0, &XskConfig::default())
    });
    assert!(e.is_err());
    // A queue the device does not have.
    let e = VethPair::run_in(&pair.xsk_ns, || {
        XskQueue::open(XSK_IF, 4000, &XskConfig::default())
    });
    assert!(e.is_err());
}

#[test]
fn ipv4_frames_reach_the_peer_and_bad_checksums_do_not() {
    let pair = VethPair::new();
    let peer = pair.peer_socket(&format!("{PEER_V4}:{PEER_PORT}"));
    let mut q = pair.open_xsk(small_config()).unwrap();
    let p = path(&format!("{XSK_V4}:6969"), &format!("{PEER_V4}:{PEER_PORT}"));

    // A frame whose UDP checksum is off by one must be dropped by the
    // peer's stack: that is what makes the good frames' arrival proof
    // that our checksums are right.
    assert!(q.transmit(|frame| {
        let n = write_reply_frame(&p, frame, |b| {
            b[..3].copy_from_slice(b"bad");
            Some(3)
        })?;
        frame[14 + 20 + 7] ^= 1;
        Some(n)
    }));
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
    for payload in &payloads {
        assert!(send(&mut q, &p, payload));
    }
    assert!(q.frames_accounted());
    drain(&mut q);
    assert!(q.frames_accounted());

    let mut buf = [0u8; 2048];
    for payload in &payloads {
        let (n, from) = peer.recv_from(&mut buf).expect("datagram from AF_XDP");
        assert_eq!(from, format!("{XSK_V4}:6969").parse().unwrap());
        assert_eq!(&buf[..n], &payload[..]);
    }
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(peer.recv_from(&mut buf).is_err(), "extra datagram arrived");
    assert_eq!(pair.peer_udp_counter("InCsumErrors"), 1);
    assert_eq!(pair.peer_udp_counter("InDatagrams"), 5);

    let s = q.stats();
    assert_eq!((s.tx_packets, s.tx_completed), (6, 6));
    assert_eq!(s.tx_invalid_descs, 0);
    assert_eq!(q.census().free, 32);
}

#[test]
fn ipv6_frames_reach_the_peer() {
    let pair = VethPair::new();
    let peer = pair.peer_socket(&format!("[{PEER_V6}]:{PEER_PORT}"));
    let mut q = pair.open_xsk(small_config()).unwrap();
    let p = path(
        &format!("[{XSK_V6}]:6969"),
        &format!("[{PEER_V6}]:{PEER_PORT}"),
    );
    // Largest reply that keeps the IP packet at 1500 bytes.
    let big = vec![0xABu8; 1500 - 40 - 8];
    assert!(send(&mut q, &p, b"hello over v6"));
    assert!(send(&mut q, &p, &big));
    drain(&mut q);
    let mut buf = [0u8; 2048];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from, format!("[{XSK_V6}]:6969").parse().unwrap());
    assert_eq!(&buf[..n], b"hello over v6");
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &big[..]);
    assert!(q.frames_accounted());
}

#[test]
fn bursts_beyond_the_pool_and_kernel_batch_all_arrive() {
    let pair = VethPair::new();
    let peer = pair.peer_socket(&format!("{PEER_V4}:{PEER_PORT}"));
    // 32 TX frames, so 600 datagrams need ~19 rounds of transmit until
    // the pool is empty, flush, reap.
    let mut q = pair.open_xsk(small_config()).unwrap();
    let p = path(&format!("{XSK_V4}:6969"), &format!("{PEER_V4}:{PEER_PORT}"));
    const TOTAL: u32 = 600;
    let receiver = std::thread::spawn(move || {
        let mut got = vec![false; TOTAL as usize];
        let mut buf = [0u8; 64];
        let mut count = 0;
        while count < TOTAL {
            let Ok((n, _)) = peer.recv_from(&mut buf) else {
                break;
            };
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert_eq!(n, 4);
            if !std::mem::replace(&mut got[seq as usize], true) {
                count += 1;
            }
        }
        count
    });

    let deadline = Instant::now() + Duration::from_secs(3);
    let mut next = 0u32;
    let mut pool_ran_dry = false;
    while next < TOTAL {
        if send(&mut q, &p, &next.to_be_bytes()) {
            next += 1;
        } else {
            pool_ran_dry = true;
            assert!(q.frames_accounted());
            q.flush();
            assert!(Instant::now() < deadline, "stalled at {next}");
        }
    }
    drain(&mut q);
    assert!(pool_ran_dry);
    assert_eq!(receiver.join().unwrap(), TOTAL, "datagrams lost");

    assert!(q.frames_accounted());
    let s = q.stats();
    assert_eq!(s.tx_packets, u64::from(TOTAL));
    assert_eq!(s.tx_completed, u64::from(TOTAL));
    assert!(s.tx_no_frame > 0);
    assert_eq!(
        (s.kick_errors, s.bad_descriptors, s.tx_invalid_descs),
        (0, 0, 0)
    );
    assert_eq!(
        q.census(),
        FrameCensus {
            total: 64,
            fill: 32,
            free: 32,
            ..FrameCensus::default()
        }
    );
}

#[test]
fn one_flush_sends_more_than_a_kernel_batch() {
    let pair = VethPair::new();
    let peer = pair.peer_socket(&format!("{PEER_V4}:{PEER_PORT}"));
    let mut q = pair
        .open_xsk(XskConfig {
            frame_count: 512,
            ..XskConfig::default()
        })
        .unwrap();
    let p = path(&format!("{XSK_V4}:6969"), &format!("{PEER_V4}:{PEER_PORT}"));
    for i in 0..200u32 {
        assert!(send(&mut q, &p, &i.to_be_bytes()));
    }
    // A single flush must get all 200 onto the wire even though copy
    // mode sends 32 per kick; completions may trail behind.
    q.flush();
    assert_eq!(q.tx_ring_pending(), 0, "descriptors left on the TX ring");
    drain(&mut q);
    let mut buf = [0u8; 16];
    for _ in 0..200 {
        peer.recv_from(&mut buf).expect("all 200 datagrams");
    }
    assert!(q.frames_accounted());
}

#[test]
fn abandoned_and_oversized_frames_return_to_the_pool() {
    let pair = VethPair::new();
    let mut q = pair.open_xsk(small_config()).unwrap();
    assert!(!q.transmit(|_| None));
    assert!(!q.transmit(|f| Some(f.len() + 1)));
    assert!(!q.transmit(|_| Some(5)));
    assert_eq!(q.stats().tx_abandoned, 3);
    assert_eq!(q.free_frames(), 32);
    assert!(q.frames_accounted());
    // Emptying the pool without flushing: the 33rd has no frame.
    for _ in 0..32 {
        assert!(q.transmit(|f| {
            f[..60].fill(0);
            Some(60)
        }));
    }
    assert!(!q.transmit(|_| Some(60)));
    assert_eq!(q.stats().tx_no_frame, 1);
    assert_eq!(q.census().queued, 32);
    assert!(q.frames_accounted());
    drain(&mut q);
    assert_eq!(q.free_frames(), 32);
    assert!(q.frames_accounted());
}
/// Requests from the peer arrive through `receive`, are parsed with
/// frame.rs, answered with `transmit`, and the answers reach the peer:
/// the whole layer as a UDP echo server.
fn echo_round_trip(xdp_flags: u32) {
    let pair = VethPair::with_queues(1);
    // The redirect program swallows ARP and neighbour discovery too, so
    // the peer must know our MAC up front.
    let mac = mac_str(XSK_MAC);
    for addr in [XSK_V4, XSK_V6] {
        ip(&[
            "-n",
            &pair.peer_ns,
            "neigh",
            "replace",
            addr,
            "lladdr",
            &mac,
            "dev",
            PEER_IF,
            "nud",
            "permanent",
        ]);
    }
    let mut q = pair.open_xsk(small_config()).unwrap();
    let map = bpf::xskmap(1).expect("create XSKMAP");
    bpf::map_set(&map, 0, q.fd() as u32).expect("insert socket into XSKMAP");
    let prog = bpf::redirect_program(&map).expect("load redirect program");
    let _link = VethPair::run_in(&pair.xsk_ns, move || {
        let ifindex = bpf::ifindex(XSK_IF).expect("the AF_XDP end's index");
        bpf::attach_xdp(&prog, ifindex, xdp_flags)
    })
    .expect("attach XDP program");

    let server4: SocketAddr = format!("{XSK_V4}:6969").parse().unwrap();
    let server6: SocketAddr = format!("[{XSK_V6}]:6969").parse().unwrap();
    let peer4 = pair.peer_socket(&format!("{PEER_V4}:{PEER_PORT}"));
    let peer6 = pair.peer_socket(&format!("[{PEER_V6}]:{PEER_PORT}"));

    // 32 RX frames; 10 rounds of 20 requests need them recycled.
    for round in 0..10u8 {
        let (peer, server) = if round % 2 == 0 {
            (&peer4, server4)
        } else {
            (&peer6, server6)
        };
        for i in 0..20u8 {
            peer.send_to(&[round, i, 0xEE], server).unwrap();
        }
        let mut requests = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while requests.len() < 20 {
            assert!(Instant::now() < deadline, "round {round}: got {requests:?}");
            let mut pfd = libc::pollfd {
                fd: q.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            q.receive(64, |frame| {
                // Stray neighbour/router traffic also lands here.
                if let Ok(parsed) = parse_udp_frame(frame) {
                    if parsed.path.local == server {
                        requests.push((parsed.path, parsed.payload.to_vec()));
                    }
                }
            });
            q.flush();
        }
        for (path, payload) in &requests {
            assert_eq!(path.client, peer.local_addr().unwrap());
            assert_eq!((path.client_mac, path.local_mac), (PEER_MAC, XSK_MAC));
            let mut reply = payload.clone();
            reply.reverse();
            assert!(send(&mut q, path, &reply));
        }
        drain(&mut q);
        let mut buf = [0u8; 64];
        for i in 0..20u8 {
            let (n, from) = peer.recv_from(&mut buf).expect("echo reply");
            assert_eq!(from, server);
            assert_eq!(&buf[..n], &[0xEE, i, round]);
        }
        assert!(q.frames_accounted());
    }
    let s = q.stats();
    assert!(s.rx_packets >= 200);
    assert_eq!(s.tx_completed, 200);
    assert_eq!((s.bad_descriptors, s.rx_dropped, s.kick_errors), (0, 0, 0));
    let c = q.census();
    assert_eq!((c.fill, c.free), (32, 32), "{c:?}");
}

#[test]
fn echo_through_native_xdp_redirect() {
    echo_round_trip(bpf::XDP_FLAGS_DRV_MODE);
}

#[test]
fn echo_through_generic_xdp_redirect() {
    echo_round_trip(bpf::XDP_FLAGS_SKB_MODE);
}
