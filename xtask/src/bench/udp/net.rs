//! The veth pair and network namespaces of the veth and XDP scenarios.

use std::fmt::Write as _;
use std::fs;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::bench::{GENERATOR_CPU, SERVER_CPU};

use super::{VETH_CLIENT_V4, VETH_SERVER_V4, XSK_SOURCES};

/// Runs `f` on a thread that has entered network namespace `ns`; sockets it
/// creates stay in that namespace.
pub(super) fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
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

/// What runs on the client end of the veth pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientEnd {
    /// The client kernel's UDP sockets, and a pass program: veth hands
    /// frames the server sends back with XDP_TX only to an end that runs
    /// XDP.
    Sockets,
    /// tracker-load's AF_XDP sender, which attaches its own program to the
    /// end while it runs and answers nothing the kernel would: the server
    /// gets a permanent neighbour entry for the client end's address and a
    /// route for the simulated sources ([`XSK_SOURCES`]) via it.
    Xsk,
}

/// A server and a client namespace joined by a veth pair, one queue each
/// way, set up for the client end's generator. Removed on drop.
pub(in crate::bench) struct VethNet {
    pub(super) server_ns: String,
    pub(super) client_ns: String,
    pub(super) server_if: String,
    pub(super) client_if: String,
    pub(super) client_end: ClientEnd,
    /// Whether each end's receive work is steered to its own side's core
    /// (see [`VethNet::steer`]).
    steered: bool,
    pub(super) pin_dir: PathBuf,
    _client_link: Option<OwnedFd>,
}

impl VethNet {
    pub(super) fn create(steer: bool, client_end: ClientEnd) -> Result<VethNet> {
        let pid = std::process::id();
        // Short names: the NAPI thread of a device is `napi/<name>-<id>`,
        // and task names are cut at 15 characters. The AF_XDP pair gets
        // names of its own (`x`): both pairs may exist at once.
        let kind = match client_end {
            ClientEnd::Sockets => "",
            ClientEnd::Xsk => "x",
        };
        let client_if = format!("tbc{kind}{}", pid % 100_000);
        let mut net = VethNet {
            server_ns: format!("{NS_PREFIX}s{kind}-{pid}"),
            client_ns: format!("{NS_PREFIX}c{kind}-{pid}"),
            server_if: format!("tbs{kind}{}", pid % 100_000),
            client_if: client_if.clone(),
            client_end,
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
        if client_end == ClientEnd::Xsk {
            net.route_sources()?;
            return Ok(net);
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
    /// The server's way back to the AF_XDP sender's simulated sources: a
    /// route via the client end, and that end's MAC fixed, since its kernel
    /// never sees the neighbour solicitations while the sender runs.
    fn route_sources(&self) -> Result<()> {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.client_ns,
                "-j",
                "link",
                "show",
                "dev",
                &self.client_if,
            ])
            .output()
            .context("running ip link show")?;
        let links: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("`ip -j link show {}` output", self.client_if))?;
        let mac = links
            .get(0)
            .and_then(|l| l.get("address"))
            .and_then(|a| a.as_str())
            .with_context(|| format!("no MAC address for {}", self.client_if))?
            .to_owned();
        #[rustfmt::skip]
        quiet("ip", &[
            "-n", &self.server_ns, "neigh", "replace", VETH_CLIENT_V4, "lladdr", &mac,
            "dev", &self.server_if, "nud", "permanent",
        ])?;
        #[rustfmt::skip]
        quiet("ip", &[
            "-n", &self.server_ns, "route", "add", XSK_SOURCES, "via", VETH_CLIENT_V4,
            "dev", &self.server_if,
        ])?;
        Ok(())
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
    pub(super) fn pin_napi_threads(&self) -> Result<(Vec<u32>, Vec<u32>)> {
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
    pub(super) fn ethtool_stats(&self) -> Vec<(String, u64)> {
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
pub(super) fn stats_delta(before: &[(String, u64)], after: &[(String, u64)]) -> String {
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
pub(super) fn remove_stale_namespaces() {
    let Ok(dir) = fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(_, p)| p.parse::<u32>().ok())
        else {
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

pub(in crate::bench) fn free_loopback_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(s.local_addr()?.port())
}
