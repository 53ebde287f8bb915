//! Loads the XDP program, fills its maps, attaches it with a BPF link and
//! pins it for bpftool. Dropping the [`XdpAttachment`] detaches it; since
//! the attachment is a link, the kernel also detaches it if the process
//! dies, so no stale program is left steering packets to nobody.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use std::os::fd::AsFd;

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use tracker_proto::xdp::{
    counter, ConnectState, ListenKey, GLOBAL_SCRAPE_MAX_HASHES, MAP_ANNOUNCED, MAP_CONNECT,
    MAP_COUNTERS, MAP_HOT_V4, MAP_HOT_V6, MAP_LISTEN, MAP_SCRAPE, MAP_XSKS, PROGRAM_NAME,
};

use crate::config::{XdpAttachMode, XdpConfig};
use crate::udp::UdpSettings;

#[cfg(tracker_ebpf_object)]
static OBJECT: Option<&[u8]> = Some(aya::include_bytes_aligned!(env!(
    "TRACKER_EBPF_OBJECT_PATH"
)));
#[cfg(not(tracker_ebpf_object))]
static OBJECT: Option<&[u8]> = None;

/// The compiled XDP program, when this binary was built after
/// `cargo xtask build-ebpf`.
pub fn object() -> Option<&'static [u8]> {
    OBJECT
}

pub const NOT_BUILT: &str = "this tracker-user was built without the XDP program: run \
     `cargo xtask build-ebpf`, then rebuild tracker-user";

pub struct XdpAttachment {
    pub ifname: String,
    pub mode: XdpMode,
    pub queues: u32,
    // Field order is drop order: the maps and logger let go of their fds
    // before `ebpf` drops the link and detaches the program.
    xsks: XskMap<MapData>,
    connect: Option<Array<MapData, ConnectState>>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    pins: Vec<PathBuf>,
    ebpf: Ebpf,
}

impl XdpAttachment {
    /// Loads and attaches the program to `config.iface`, steering datagrams
    /// addressed to `listen`. The program answers scrapes of at most
    /// `max_scrape_hashes` hashes, the most userland answers.
    pub fn attach(
        config: &XdpConfig,
        listen: &[SocketAddr],
        state: ConnectState,
        max_scrape_hashes: u32,
    ) -> anyhow::Result<Self> {
        let object = object().ok_or_else(|| anyhow!(NOT_BUILT))?;
        let ifname = config.iface.clone();
        let queues = rx_queue_count(&ifname)?;
        // The in-kernel answers' maps are sized by the config; a map the
        // object lacks is left alone.
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_SCRAPE, config.scrape_map_entries.max(1))
            .map_max_entries(MAP_HOT_V4, config.hot_torrents.max(1))
            .map_max_entries(MAP_HOT_V6, config.hot_torrents.max(1))
            .map_max_entries(MAP_ANNOUNCED, config.ring_bytes)
            .override_global(GLOBAL_SCRAPE_MAX_HASHES, &max_scrape_hashes, true)
            .load(object)
            .context("loading the XDP object")?;
        // Absent when the program was built without log statements.
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();

        let mut listen_map: BpfHashMap<_, ListenKey, u32> =
            BpfHashMap::try_from(ebpf.map_mut(MAP_LISTEN).context("no LISTEN map")?)?;
        for addr in listen {
            listen_map
                .insert(listen_key(addr), 1, 0)
                .with_context(|| format!("steering {addr}"))?;
        }
        let mut connect: Array<_, ConnectState> =
            Array::try_from(ebpf.map_mut(MAP_CONNECT).context("no CONNECT map")?)?;
        connect.set(0, state, 0)?;

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .context("no tracker_xdp program in the object")?
            .try_into()?;
        program
            .load()
            .context("the kernel refused the XDP program")?;
        let mode = attach(program, config)?;

        let pins = pin(&mut ebpf, &config.pin_path)?;
        let xsks = XskMap::try_from(ebpf.take_map(MAP_XSKS).context("no XSKS map")?)?;
        let connect = Array::try_from(ebpf.take_map(MAP_CONNECT).context("no CONNECT map")?)?;
        log::info!(
            "XDP program attached to {ifname} ({mode:?} mode, {queues} RX queues), pinned under {}",
            config.pin_path.display()
        );
        Ok(Self {
            ifname,
            mode,
            queues,
            xsks,
            connect: Some(connect),
            logger,
            pins,
            ebpf,
        })
    }

    /// Routes queue `queue`'s tracker datagrams to the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: std::os::fd::RawFd) -> anyhow::Result<()> {
        self.xsks
            .set(queue, fd, 0)
            .with_context(|| format!("registering the AF_XDP socket of queue {queue}"))
    }

    /// The map the tick keeper rewrites every second.
    pub fn take_connect_map(&mut self) -> Option<Array<MapData, ConnectState>> {
        self.connect.take()
    }

    /// Forwards what the program logged through aya-log to our logger.
    pub fn flush_log(&mut self) {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }

    /// How the admin thread reads the program's counters: on its own
    /// handle of the COUNTERS map (a duplicated fd), so a scrape touches
    /// nothing the main thread holds. Called before the privilege drop: a
    /// map fd, once held, is read without privileges.
    pub fn counter_reader(&self) -> anyhow::Result<tracker_metrics::XdpCounterReader> {
        let Some(Map::PerCpuArray(data)) = self.ebpf.map(MAP_COUNTERS) else {
            bail!("no per-CPU COUNTERS map in the XDP object");
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the COUNTERS map's fd")?;
        let map = Map::from_map_data(MapData::from_fd(fd)?)?;
        let counters: PerCpuArray<MapData, u64> = PerCpuArray::try_from(map)?;
        Ok(Box::new(move || {
            let mut read = tracker_metrics::XdpProgramCounters::default();
            for (i, name) in (0u32..).zip(counter::NAMES) {
                let per_cpu = counters.get(&i, 0).ok()?;
                // Outcomes first, then the reasons counted besides them.
                let list = if i < counter::OUTCOMES {
                    &mut read.packets
                } else {
                    &mut read.events
                };
                list.push((name, per_cpu.iter().sum()));
            }
            Some(read)
        }))
    }

    /// A descriptor of the `SCRAPE` map of its own, for one request worker
    /// to publish scrape counts through. Taken before the privilege drop.
    pub fn scrape_map_fd(&self) -> anyhow::Result<std::os::fd::OwnedFd> {
        let map = self
            .ebpf
            .map(MAP_SCRAPE)
            .context("no SCRAPE map in the XDP object")?;
        let data = match map {
            Map::LruHashMap(data) => data,
            _ => bail!("the XDP object's SCRAPE map is not an LRU hash"),
        };
        data.fd()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating the SCRAPE map's fd")
    }

    /// A writer of the hot-torrent cache for one request worker, on its
    /// own handles of HOT_V4 and HOT_V6 (duplicated fds, taken before the
    /// privilege drop like [`counter_reader`](Self::counter_reader)).
    pub fn hot_cache(&self) -> anyhow::Result<super::hot_cache::HotCache> {
        let dup = |name: &str| -> anyhow::Result<std::os::fd::OwnedFd> {
            let Some(Map::HashMap(data)) = self.ebpf.map(name) else {
                bail!("no hash map {name} in the XDP object");
            };
            data.fd()
                .as_fd()
                .try_clone_to_owned()
                .with_context(|| format!("duplicating the {name} map's fd"))
        };
        Ok(super::hot_cache::HotCache::new(
            dup(MAP_HOT_V4)?,
            dup(MAP_HOT_V6)?,
        ))
    }

    /// The ring of announces answered in the kernel, for the one thread
    /// that applies them; `None` once taken, or without the map.
    pub fn take_announced(&mut self) -> Option<RingBuf<MapData>> {
        let map = self.ebpf.take_map(MAP_ANNOUNCED)?;
        RingBuf::try_from(map).ok()
    }

    /// The attach mode as `tracker_xdp_attached{mode}` names it.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            XdpMode::Driver => "driver",
            XdpMode::Skb => "generic",
            XdpMode::Hardware => "offload",
            XdpMode::Default => "default",
        }
    }
}

impl Drop for XdpAttachment {
    fn drop(&mut self) {
        // The pins would keep the program and maps alive after we detach;
        // an operator inspecting a stopped tracker should find nothing.
        for pin in &self.pins {
            let _ = std::fs::remove_file(pin);
        }
        // Only succeeds when empty: an operator's own files there stay.
        if let Some(dir) = self.pins.first().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
        log::info!("XDP program detached from {}", self.ifname);
    }
}

/// What the program is told at attach and every second after: the secret,
/// the clock, which answers it gives and the figures they carry. One
/// definition, so the tick keeper cannot switch an answer back on.
pub fn connect_state(config: &XdpConfig, settings: &UdpSettings, tick: u32) -> ConnectState {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    ConnectState {
        k0: settings.secret.k0,
        k1: settings.secret.k1,
        tick,
        enabled: u32::from(config.connect_in_kernel),
        scrape: u32::from(config.scrape_in_kernel),
        announce: u32::from(config.announce_in_kernel),
        interval: settings.announce_interval,
        id_lifetime: settings.connection_id_lifetime,
        default_numwant: clamp(settings.default_numwant),
        max_numwant: clamp(settings.max_numwant),
        announce_events: u32::from(config.announce_events_in_kernel),
        _pad: 0,
    }
}

fn listen_key(addr: &SocketAddr) -> ListenKey {
    match addr {
        SocketAddr::V4(a) => ListenKey::v4(a.ip().octets(), a.port()),
        SocketAddr::V6(a) => ListenKey::v6(a.ip().octets(), a.port()),
    }
}

/// RX queues of the interface: one AF_XDP socket is needed for each,
/// since the program redirects a frame to its own queue's socket. Asked of
/// iproute2, which answers for our network namespace whatever /sys shows.
fn rx_queue_count(ifname: &str) -> anyhow::Result<u32> {
    let output = std::process::Command::new("ip")
        .args(["-j", "-d", "link", "show", "dev", ifname])
        .output()
        .context("running `ip` (iproute2) to count RX queues")?;
    if !output.status.success() {
        bail!(
            "no interface named {ifname}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let links: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading `ip -j link` output")?;
    let count = links[0]["num_rx_queues"].as_u64().unwrap_or(1);
    Ok(count.clamp(1, u64::from(tracker_proto::xdp::MAX_QUEUES)) as u32)
}

/// Mounts bpffs at `/sys/fs/bpf` when nothing is there, as bpftool does,
/// so pinning works on hosts (or mount namespaces) that lack the mount.
fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let root = Path::new("/sys/fs/bpf");
    if !dir.starts_with(root) {
        return Ok(());
    }
    let c_root = std::ffi::CString::new("/sys/fs/bpf").expect("no NUL");
    let mut stat: libc::statfs = crate::ffi::zeroed();
    // SAFETY: `c_root` is a NUL-terminated string alive for the call, and
    // `stat` a live, exclusively borrowed `statfs`, the only thing written.
    let statted = unsafe { libc::statfs(c_root.as_ptr(), &mut stat) } == 0;
    // `f_type` is i64 on x86_64 glibc but narrower elsewhere; the cast keeps
    // the comparison portable.
    #[allow(clippy::unnecessary_cast)]
    let is_bpffs = stat.f_type as i64 == BPF_FS_MAGIC;
    if statted && is_bpffs {
        return Ok(());
    }
    let fstype = std::ffi::CString::new("bpf").expect("no NUL");
    // SAFETY: source, target and type are NUL-terminated strings alive for
    // the call; null `data` is allowed (no options) and nothing else is
    // read or written through our memory.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c_root.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "/sys/fs/bpf is not a bpffs and mounting one failed: {}",
            std::io::Error::last_os_error()
        );
    }
    log::info!("mounted bpffs at /sys/fs/bpf");
    Ok(())
}

fn attach(program: &mut Xdp, config: &XdpConfig) -> anyhow::Result<XdpMode> {
    let ifname = &config.iface;
    if let Some(existing) = attached_program(ifname) {
        if !config.replace_existing {
            bail!(
                "{ifname} already has an XDP program ({existing}); set xdp.replace_existing = \
                 true to replace it, or detach it first"
            );
        }
        log::warn!("replacing the XDP program on {ifname} ({existing})");
        detach_foreign(ifname)?;
    }
    let modes: &[XdpMode] = match config.attach_mode {
        XdpAttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
        XdpAttachMode::Driver => &[XdpMode::Driver],
        XdpAttachMode::Generic => &[XdpMode::Skb],
    };
    let mut last_error = None;
    for &mode in modes {
        match program.attach(ifname, mode) {
            Ok(_link) => return Ok(mode),
            Err(e) => {
                log::debug!("attaching to {ifname} in {mode:?} mode failed: {e}");
                last_error = Some(e);
            }
        }
    }
    Err(anyhow!(
        "cannot attach XDP to {ifname}: {}",
        last_error.map_or_else(|| "no mode to try".into(), |e| e.to_string())
    ))
}

/// The id of an XDP program already on the interface, as iproute2 reports
/// it (`ip -d link` prints `prog/xdp id N` for every attach type).
fn attached_program(ifname: &str) -> Option<String> {
    let output = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let start = text.find("prog/xdp")?;
    Some(
        text[start..]
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Removes a netlink-attached program; a program held by another
/// process's BPF link cannot be removed this way and attach then fails
/// with the kernel's EBUSY.
fn detach_foreign(ifname: &str) -> anyhow::Result<()> {
    for kind in ["xdp", "xdpgeneric", "xdpdrv"] {
        let _ = std::process::Command::new("ip")
            .args(["link", "set", "dev", ifname, kind, "off"])
            .status();
    }
    Ok(())
}

/// Pins the program and every map under `dir`, replacing stale pins from
/// an earlier run that did not stop cleanly.
fn pin(ebpf: &mut Ebpf, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    ensure_bpffs(dir)?;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "creating {} (is bpffs mounted at /sys/fs/bpf?)",
            dir.display()
        )
    })?;
    let mut pins = Vec::new();
    // Our maps only: the compiler's .rodata/.bss sections are maps too, but
    // frozen ones cannot be pinned and there is nothing in them to inspect.
    for name in [MAP_COUNTERS, MAP_LISTEN, MAP_CONNECT, MAP_XSKS, MAP_SCRAPE] {
        pin_map(ebpf, dir, name, &mut pins)?;
    }
    // The in-kernel answers' maps, for bpftool and the tests; an object
    // built before them lacks them, which is no error.
    for name in [MAP_HOT_V4, MAP_HOT_V6, MAP_ANNOUNCED] {
        if ebpf.map(name).is_some() {
            pin_map(ebpf, dir, name, &mut pins)?;
        }
    }
    let path = dir.join(PROGRAM_NAME);
    let _ = std::fs::remove_file(&path);
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .context("no tracker_xdp program")?
        .try_into()?;
    program
        .pin(&path)
        .with_context(|| format!("pinning the program at {}", path.display()))?;
    pins.push(path);
    Ok(pins)
}

fn pin_map(ebpf: &Ebpf, dir: &Path, name: &str, pins: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let map = ebpf
        .map(name)
        .with_context(|| format!("no {name} map in the object"))?;
    map.pin(&path)
        .with_context(|| format!("pinning map {name} at {}", path.display()))?;
    pins.push(path);
    Ok(())
}
