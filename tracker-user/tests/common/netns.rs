//! A server and a client network namespace joined by a veth pair, for the
//! tests that attach the XDP program for real (tests/xdp.rs,
//! tests/privileges.rs), and the helpers they share: running commands,
//! entering a namespace, reading the program's counters with bpftool.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Fails the test, saying `why`, unless it runs as root: these tests fail
/// rather than skip, or the paths they cover would rot unnoticed.
pub fn require_root(why: &str) {
    assert_eq!(
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        unsafe { libc::geteuid() },
        0,
        "{why}"
    );
}

/// Runs a command, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it
/// creates stay in that namespace wherever they are used afterwards.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: the fd is open (owned by `file`) for the whole call;
        // setns(2) changes only this fresh thread's namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// What differs between the tests' networks.
pub struct NetSpec<'a> {
    /// Starts every name, so tests of different binaries that run at once
    /// never share one; at most 4 bytes, as interface names are capped at
    /// 15.
    pub prefix: &'a str,
    /// Server and client IPv4 addresses (in one /24).
    pub v4: (&'a str, &'a str),
    /// Server and client IPv6 addresses (in one /64), if any.
    pub v6: Option<(&'a str, &'a str)>,
    /// RX and TX queues of each veth end.
    pub queues: u32,
}

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A server and a client namespace joined by a veth pair, with a pin
/// directory for the tracker; all removed on drop.
pub struct TestNet {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    pub pin_dir: String,
    /// The server's and the client's IPv4 addresses.
    pub v4: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    client_link: Option<OwnedFd>,
}

impl TestNet {
    /// `builder` made ready for the server end: in its namespace, XDP on
    /// its interface, listening on `udp`, its config `top` then an `[xdp]`
    /// section with this net's pin path and `xdp`.
    pub fn xdp_tracker(
        &self,
        builder: super::TrackerBuilder,
        udp: &[String],
        top: &str,
        xdp: &str,
    ) -> super::TrackerBuilder {
        let mut builder = builder.netns(&self.server_ns);
        for addr in udp {
            builder = builder.udp(addr);
        }
        builder.arg("--iface").arg(&self.server_if).config(&format!(
            "log_level = \"debug\"\n{top}\n[xdp]\npin_path = \"{}\"\n{xdp}\n",
            self.pin_dir
        ))
    }

    pub fn new(spec: &NetSpec) -> TestNet {
        let prefix = spec.prefix;
        assert!(
            prefix.len() <= 4,
            "prefix {prefix}: names would be too long"
        );
        // The pid keeps concurrent test binaries apart, the counter the
        // tests within one; the dash keeps (pid 12, net 34) and (pid 123,
        // net 4) apart.
        let id = format!(
            "{}-{}",
            std::process::id() % 100_000,
            NEXT_NET.fetch_add(1, Ordering::Relaxed)
        );
        // Built before anything exists, so that if a step below fails,
        // dropping it removes what the steps before made.
        let mut net = TestNet {
            server_ns: format!("{prefix}-s{id}"),
            client_ns: format!("{prefix}-c{id}"),
            server_if: format!("{prefix}s{id}"),
            client_if: format!("{prefix}c{id}"),
            pin_dir: format!("/sys/fs/bpf/{prefix}-test-{id}"),
            v4: (
                spec.v4.0.parse().expect("server IPv4 address"),
                spec.v4.1.parse().expect("client IPv4 address"),
            ),
            client_link: None,
        };
        assert!(net.server_if.len() <= 15, "{}: too long", net.server_if);
        let (server_ns, client_ns) = (&net.server_ns, &net.client_ns);
        let (server_if, client_if) = (&net.server_if, &net.client_if);
        let q = spec.queues.to_string();
        run("ip", &["netns", "add", server_ns]);
        run("ip", &["netns", "add", client_ns]);
        #[rustfmt::skip]
        run("ip", &[
            "link", "add", server_if, "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
            "peer", "name", client_if, "numtxqueues", &q, "numrxqueues", &q,
        ]);
        run("ip", &["link", "set", server_if, "netns", server_ns]);
        run("ip", &["link", "set", client_if, "netns", client_ns]);
        for (ns, dev, v4, v6) in [
            (server_ns, server_if, spec.v4.0, spec.v6.map(|v| v.0)),
            (client_ns, client_if, spec.v4.1, spec.v6.map(|v| v.1)),
        ] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev],
            );
            if let Some(v6) = v6 {
                #[rustfmt::skip]
                run("ip", &["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            }
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // Frames the server sends back with XDP_TX reach the client's veth
        // only if that end runs an XDP program of its own.
        let dev = client_if.clone();
        let link = in_ns(client_ns, move || {
            tracker_xdp_testing::attach_pass_program(&dev)
        });
        net.client_link = Some(link.expect("attaching a pass program to the client veth"));
        net
    }

    /// Sums of the program's per-CPU counters, read with bpftool the way
    /// an operator reads them.
    pub fn counters(&self) -> Counters {
        let path = format!("{}/COUNTERS", self.pin_dir);
        let json = run("bpftool", &["-j", "map", "dump", "pinned", &path]);
        Counters::from_bpftool_json(&json)
    }

    /// The MAC addresses of the server's and the client's veth ends.
    fn veth_macs(&self) -> ([u8; 6], [u8; 6]) {
        let mac = |ns: &str, dev: &str| -> [u8; 6] {
            let out = run("ip", &["-n", ns, "-j", "link", "show", "dev", dev]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            let text = v[0]["address"].as_str().expect("MAC address").to_owned();
            let mut mac = [0u8; 6];
            for (i, part) in text.split(':').enumerate() {
                mac[i] = u8::from_str_radix(part, 16).unwrap();
            }
            mac
        };
        let dst = mac(&self.server_ns, &self.server_if);
        let src = mac(&self.client_ns, &self.client_if);
        (dst, src)
    }

    /// The UDP checksum of `udp` (header and payload, its checksum field
    /// taken as zero) from the client's IPv4 address to the server's.
    pub fn udp_checksum_v4(&self, udp: &[u8]) -> u16 {
        let mut words = Vec::new();
        words.extend(self.v4.1.octets());
        words.extend(self.v4.0.octets());
        words.extend([0, 17]);
        words.extend((udp.len() as u16).to_be_bytes());
        words.extend(&udp[..6]);
        words.extend([0, 0]);
        words.extend(&udp[8..]);
        if words.len() % 2 == 1 {
            words.push(0);
        }
        let mut sum = 0u32;
        for pair in words.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        match !(sum as u16) {
            // RFC 768: a computed zero goes on the wire as all ones.
            0 => 0xffff,
            check => check,
        }
    }

    /// Sends `udp` (header and payload, as given) from the client's
    /// address to the server's in an IPv4 packet with a correct header
    /// checksum, as a raw Ethernet frame from the client's veth, so no
    /// kernel fixes anything up.
    pub fn send_ipv4_udp_frame(&self, udp: &[u8]) {
        let (dst, src) = self.veth_macs();
        let client_if = self.client_if.clone();
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip.extend(self.v4.1.octets());
        ip.extend(self.v4.0.octets());
        let total = (20 + udp.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let mut sum = 0u32;
        for pair in ip.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let mut frame = Vec::new();
        frame.extend(dst);
        frame.extend(src);
        frame.extend(0x0800u16.to_be_bytes());
        frame.extend(&ip);
        frame.extend(udp);
        in_ns(&self.client_ns, move || {
            let name = std::ffi::CString::new(client_if).unwrap();
            // SAFETY: `name` is a NUL-terminated string that outlives the call.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(ifindex, 0);
            // SAFETY: socket(2) takes plain integers; the fd is checked below.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: all-zero is a valid sockaddr_ll (plain integers and bytes).
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&dst);
            // SAFETY: `frame` and `addr` are live for the call and the
            // lengths passed are theirs; the kernel only reads them.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            // SAFETY: `fd` is ours, open, and not used after this.
            unsafe { libc::close(fd) };
            assert_eq!(
                sent,
                frame.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
        });
    }

    /// Whether an XDP program is attached to the server's veth end.
    pub fn xdp_attached(&self) -> bool {
        let ns = &self.server_ns;
        run(
            "ip",
            &["-n", ns, "-d", "link", "show", "dev", &self.server_if],
        )
        .contains("prog/xdp")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it
        // the pair.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// The XDP program's counters, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub seen: u64,
    /// Frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Connects answered in the kernel.
    pub answered: u64,
    pub passed: u64,
    pub malformed: u64,
    pub scrape_answered: u64,
    pub announce_answered: u64,
    pub bad_connection_id: u64,
    pub scrape_miss: u64,
    pub hot_hit: u64,
    pub hot_miss: u64,
    pub ring_full: u64,
}

impl Counters {
    /// bpftool prints a per-CPU array as one entry per key with a value per
    /// CPU; without BTF, keys and values are arrays of hex byte strings.
    pub fn from_bpftool_json(json: &str) -> Counters {
        let entries: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bpftool JSON: {e}: {json}"));
        // The keys docs/xdp.md documents for operators, spelled out again
        // rather than taken from tracker-proto: the tests check that table.
        let mut sums = [0u64; 12];
        for entry in entries.as_array().expect("bpftool: an array of entries") {
            let key = number(entry.get("key").expect("entry key")) as usize;
            let values = entry
                .get("values")
                .and_then(|v| v.as_array())
                .unwrap_or_else(|| panic!("per-CPU values in {entry}"));
            let sum: u64 = values
                .iter()
                .map(|v| number(v.get("value").expect("CPU value")))
                .sum();
            if let Some(slot) = sums.get_mut(key) {
                *slot = sum;
            }
        }
        Counters {
            seen: sums[0],
            redirected: sums[1],
            answered: sums[2],
            passed: sums[3],
            malformed: sums[4],
            scrape_answered: sums[5],
            announce_answered: sums[6],
            bad_connection_id: sums[7],
            scrape_miss: sums[8],
            hot_hit: sums[9],
            hot_miss: sums[10],
            ring_full: sums[11],
        }
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
