//! Types shared by the XDP program (`tracker-ebpf`) and userland: map
//! names, keys and values. Both sides compile this file, so a layout change
//! cannot leave them disagreeing.

/// The program's name as `bpftool prog show` lists it.
pub const PROGRAM_NAME: &str = "tracker_xdp";

/// AF_XDP sockets by RX queue index (`BPF_MAP_TYPE_XSKMAP`).
pub const MAP_XSKS: &str = "XSKS";
/// Tracker addresses to steer: [`ListenKey`] → unused `u32`.
pub const MAP_LISTEN: &str = "LISTEN";
/// One [`ConnectState`] at index 0.
pub const MAP_CONNECT: &str = "CONNECT";
/// Per-CPU `u64` counters indexed by [`counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";

pub const MAX_QUEUES: u32 = 64;
pub const MAX_LISTEN: u32 = 64;

/// A tracker address the program steers. An all-zero `ip` matches any
/// destination address of that family, as a socket bound to 0.0.0.0 or
/// [::] would.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListenKey {
    /// IPv4 in the first 4 bytes, the rest zero; IPv6 in all 16.
    pub ip: [u8; 16],
    /// UDP port in host order.
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
    pub _pad: u8,
}

impl ListenKey {
    pub const fn v4(ip: [u8; 4], port: u16) -> Self {
        Self {
            ip: [
                ip[0], ip[1], ip[2], ip[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            port,
            family: 4,
            _pad: 0,
        }
    }

    pub const fn v6(ip: [u8; 16], port: u16) -> Self {
        Self {
            ip,
            port,
            family: 6,
            _pad: 0,
        }
    }

    /// The same port and family on any address.
    pub const fn wildcard(&self) -> Self {
        Self {
            ip: [0; 16],
            port: self.port,
            family: self.family,
            _pad: 0,
        }
    }
}

/// What the program needs to answer connects itself: the connection-id
/// secret and the current tick, which userland rewrites every second so
/// both sides stamp ids from the same clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectState {
    pub k0: u64,
    pub k1: u64,
    /// Unix seconds, as `crate::connection_id` ticks.
    pub tick: u32,
    /// Non-zero: answer connects in the kernel; zero: steer them to userland.
    pub enabled: u32,
}

/// Indices into the per-CPU counter array.
pub mod counter {
    /// Frames the program looked at.
    pub const SEEN: u32 = 0;
    /// Tracker datagrams handed to an AF_XDP socket.
    pub const REDIRECTED: u32 = 1;
    /// Connects answered by the program itself with XDP_TX.
    pub const ANSWERED: u32 = 2;
    /// Frames left to the kernel: not for the tracker, or not parseable.
    pub const PASSED: u32 = 3;
    /// Frames for a tracker port whose headers were inconsistent
    /// (truncated, bad lengths); passed to the kernel, which drops them.
    pub const MALFORMED: u32 = 4;
    pub const COUNT: u32 = 5;
    /// Names in index order, as docs and metrics show them.
    pub const NAMES: [&str; COUNT as usize] =
        ["seen", "redirected", "answered", "passed", "malformed"];
}

// Layouts are part of the contract with the kernel object: pin them.
const _: () = assert!(core::mem::size_of::<ListenKey>() == 20);
const _: () = assert!(core::mem::size_of::<ConnectState>() == 24);

#[cfg(feature = "aya")]
mod aya_pod {
    // SAFETY: plain-old-data with no padding holes (checked sizes above).
    unsafe impl aya::Pod for super::ListenKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnectState {}
}
