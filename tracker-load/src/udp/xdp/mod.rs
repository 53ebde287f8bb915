//! The AF_XDP sender (`udp.xdp_iface`): BEP 15 load that does not go
//! through the client kernel's UDP stack.
//!
//! One AF_XDP socket on queue 0 of the interface (tracker-xsk, the code the
//! tracker's own XDP path runs) carries whole Ethernet/IPv4/UDP frames
//! built from a template (frame.rs). For answers to reach the socket, the
//! interface gets the smallest program that does it: every frame to the
//! XSKMAP slot of its queue (tracker-xdp-testing's redirect program), held
//! by a BPF link that goes with the process. The tracker's own object would
//! do too with LISTEN and the in-kernel answers set for it, but it would
//! tie the generator to the nightly eBPF build for a program that only
//! redirects. While the sender runs, the interface is its alone: the
//! kernel on this end sees nothing, so the tracker's end needs a permanent
//! neighbour entry for this end's address and a route for the simulated
//! sources via it.

mod frame;
mod prefill;
mod worker;

use std::io::{self, BufRead};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tracker_xsk::{XskConfig, XskQueue};

use crate::config::{parse_mac, Config};
use crate::profile::{mix64, Profile};
use crate::run::{supervise, Live, Outcome, RunOptions, Shared};
use worker::{Timing, Worker, WorkerConfig};

/// The UDP port every simulated source sends from.
pub const SOURCE_PORT: u16 = 40000;
/// The kernel refuses a kick budget below its default.
const TX_BUDGET_MIN: u32 = 32;
/// How long to wait for the kernel to resolve the tracker's MAC.
const RESOLVE_WITHIN: Duration = Duration::from_secs(3);

pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<Outcome> {
    let u = &config.udp;
    let SocketAddr::V4(tracker) = u.tracker else {
        bail!("the AF_XDP sender speaks IPv4 only");
    };
    let iface = u.xdp_iface.as_str();
    let ifindex = tracker_xdp_testing::ifindex(iface)
        .with_context(|| format!("udp.xdp_iface: no interface `{iface}` here"))?;
    let src_mac =
        hardware_address(iface).with_context(|| format!("reading the MAC address of {iface}"))?;
    // Before our program takes the interface: afterwards the kernel would
    // never see the neighbour's reply.
    let dst_mac = match parse_mac(&u.xdp_dest_mac) {
        Some(mac) => mac,
        None => resolve_mac(tracker).with_context(|| {
            format!(
                "finding {}'s MAC address (set udp.xdp_dest_mac)",
                tracker.ip()
            )
        })?,
    };
    let mut queue = XskQueue::open(
        iface,
        0,
        &XskConfig {
            frame_count: u.xdp_frame_count,
            frame_size: 2048,
            zero_copy: false,
            need_wakeup: true,
        },
    )
    .with_context(|| format!("opening an AF_XDP socket on {iface} queue 0"))?;
    // Most of a copy-mode sender's syscalls are kicks of 32 frames each;
    // where the kernel lets one kick take a whole batch, fewer of them.
    let budget = u32::try_from(u.batch_size)
        .unwrap_or(u32::MAX)
        .max(TX_BUDGET_MIN);
    let budget_note = match queue.set_tx_budget(budget) {
        Ok(()) => format!("{budget} frames per kick"),
        Err(e) => format!("32 frames per kick ({e})"),
    };
    let _link = attach_redirect(&queue, ifindex)
        .with_context(|| format!("attaching the redirect program to {iface}"))?;
    eprintln!(
        "tracker-load udp: AF_XDP sender on {iface} ({} mode, {budget_note}), {} sources from \
         {}:{SOURCE_PORT}",
        queue.mode(),
        u.xdp_source_count,
        u.xdp_source_first
    );

    let profile = Arc::new(Profile::new(&config.profile));
    let template = frame::Template::new(src_mac, dst_mac, tracker);
    // On this thread, before the worker's: the load's clock, and the
    // warm-up, start after it.
    let prefilled = match u.prefill {
        true => {
            let settings = prefill::Settings {
                profile: &profile,
                tracker,
                template: &template,
                source_first: u.xdp_source_first,
                source_count: u.xdp_source_count,
                window: u.xdp_in_flight,
                batch_size: u.batch_size,
                retry: Duration::from_secs_f64(u.window_timeout),
                connection_id_max_age: Duration::from_secs_f64(u.connection_id_max_age),
                progress: options.progress,
                seed: mix64(config.profile.seed ^ 0x7072_6566),
            };
            Some(prefill::run(&mut queue, &settings)?.into_report())
        }
        false => None,
    };

    let timing = Timing::from_config(u);
    let shared = Shared::new();
    let live = Arc::new(Live::default());
    let worker = Worker::new(
        WorkerConfig {
            profile,
            timing,
            queue,
            template,
            tracker,
            source_first: u.xdp_source_first,
            source_count: u.xdp_source_count,
            batch_size: u.batch_size,
            in_flight: u.xdp_in_flight,
            seed: mix64(config.profile.seed ^ 0x7873_6b77),
        },
        shared.clone(),
        live.clone(),
    );
    let handle = thread::Builder::new()
        .name("udp-load-xsk".to_owned())
        .spawn(move || worker.run())
        .context("starting the AF_XDP worker thread")?;
    let mut outcome = supervise(
        &shared,
        &[live],
        vec![handle],
        timing.window(),
        options,
        &super::worker::target(u),
    )?;
    outcome.report.prefill = prefilled;
    Ok(outcome)
}

/// Puts the queue's socket in slot 0 of a fresh XSKMAP and attaches the
/// program redirecting every frame there; detached when the link drops.
fn attach_redirect(queue: &XskQueue, ifindex: u32) -> io::Result<OwnedFd> {
    let map = tracker_xdp_testing::xskmap(1)?;
    tracker_xdp_testing::map_set(&map, 0, queue.fd() as u32)?;
    let program = tracker_xdp_testing::redirect_program(&map)?;
    // The driver's own mode where it has one (veth does): generic mode
    // would see frames only after the kernel built an skb for them.
    tracker_xdp_testing::attach_xdp(&program, ifindex, 0)
}

/// The interface's MAC address (SIOCGIFHWADDR).
fn hardware_address(iface: &str) -> io::Result<[u8; 6]> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    // struct ifreq: a 16-byte name, then a union whose sockaddr holds the
    // address in sa_data (after the 2-byte family).
    let mut ifreq = [0u8; 40];
    let name = iface.as_bytes();
    if name.len() >= 16 || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    ifreq[..name.len()].copy_from_slice(name);
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name and writes a
    // struct sockaddr into the 40-byte buffer, which is sizeof(struct
    // ifreq); the socket is open for the call.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFHWADDR as _,
            ifreq.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&ifreq[18..24]);
    Ok(mac)
}

/// Sends one BEP 15 connect from a plain socket so the kernel resolves the
/// tracker's (on-link) address, and reads the answer from /proc/net/arp.
fn resolve_mac(tracker: SocketAddrV4) -> anyhow::Result<[u8; 6]> {
    let socket = UdpSocket::bind("0.0.0.0:0").context("opening a probe socket")?;
    let deadline = Instant::now() + RESOLVE_WITHIN;
    let mut connect = [0u8; 16];
    connect[..8].copy_from_slice(&tracker_proto::udp::PROTOCOL_ID.to_be_bytes());
    loop {
        let _ = socket.send_to(&connect, tracker);
        thread::sleep(Duration::from_millis(50));
        if let Some(mac) = arp_entry(*tracker.ip())? {
            return Ok(mac);
        }
        if Instant::now() >= deadline {
            bail!(
                "no neighbour entry for {} after {RESOLVE_WITHIN:?}; the AF_XDP sender needs \
                 the tracker on this interface's link",
                tracker.ip()
            );
        }
    }
}

/// The complete /proc/net/arp entry for `ip`, if any.
fn arp_entry(ip: Ipv4Addr) -> anyhow::Result<Option<[u8; 6]>> {
    let file = std::fs::File::open("/proc/net/arp").context("reading /proc/net/arp")?;
    let want = ip.to_string();
    for line in io::BufReader::new(file).lines().skip(1) {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags (0x2: complete), HW address, ...
        if let [addr, _, flags, mac, ..] = fields[..] {
            let complete =
                u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 0x2 != 0);
            if addr == want && complete {
                return Ok(parse_mac(mac));
            }
        }
    }
    Ok(None)
}
