//! Hand-assembled XDP programs, loaded and attached with raw bpf(2) calls,
//! for tests and benchmarks that need an XDP program of their own without
//! depending on the tracker-ebpf build (which needs nightly) or on aya.
//!
//! A crate of its own because both tracker-user's integration tests and
//! xtask use it, and xtask must not depend on tracker-user: `cargo xtask`
//! would then rebuild the tracker (and its embedded XDP object) before it
//! could even build that object.
//!
//! Two programs:
//! - the **pass program** (`r0 = XDP_PASS; exit`). veth delivers frames
//!   that its peer sent back with `XDP_TX` only to an end that runs an XDP
//!   program itself (`veth_xdp_flush` wakes the receiver only then; GRO
//!   alone leaves them queued), so the client end of a test or benchmark
//!   veth gets this program before the tracker answers connects in the
//!   kernel;
//! - the **redirect program**: every frame to the XSKMAP slot of its RX
//!   queue, so an AF_XDP socket can be tested without the tracker's program.
//!
//! Attributes are laid out by hand from the `union bpf_attr` definitions in
//! include/uapi/linux/bpf.h. Everything here needs root (CAP_BPF and
//! CAP_NET_ADMIN).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// Attach flags for [`attach_xdp`]: generic (skb) mode.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// Attach flags for [`attach_xdp`]: native (driver) mode.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

fn put32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded bpf_attr of the given size; any
    // pointers inside it point at live buffers of the caller.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(rc: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new fd to us.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

/// One eBPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut i = [0u8; 8];
    i[0] = code;
    i[1] = dst | (src << 4);
    i[2..4].copy_from_slice(&off.to_ne_bytes());
    i[4..8].copy_from_slice(&imm.to_ne_bytes());
    i
}

/// Loads an XDP program; a refusal carries the verifier's log.
fn load_xdp(insns: &[u8]) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut log = vec![0u8; 8192];
    let mut attr = [0u8; 160];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, (insns.len() / 8) as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 24, 1); // log_level
    put32(&mut attr, 28, log.len() as u32);
    put64(&mut attr, 32, log.as_mut_ptr() as u64);
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(owned).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        io::Error::new(
            e.kind(),
            format!("{e}; verifier: {}", String::from_utf8_lossy(&log[..end])),
        )
    })
}

/// Loads the two-instruction program that passes every frame.
pub fn pass_program() -> io::Result<OwnedFd> {
    let insns = [
        // r0 = XDP_PASS (BPF_ALU64 | BPF_MOV | BPF_K)
        insn(0xb7, 0, 0, 0, XDP_PASS),
        // exit (BPF_JMP | BPF_EXIT)
        insn(0x95, 0, 0, 0, 0),
    ]
    .concat();
    load_xdp(&insns)
}

/// Creates an XSKMAP of `entries` slots (key: RX queue, value: socket fd).
pub fn xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_MAP_TYPE_XSKMAP);
    put32(&mut attr, 4, 4);
    put32(&mut attr, 8, 4);
    put32(&mut attr, 12, entries);
    sys_bpf(BPF_MAP_CREATE, &mut attr).map(owned)
}

/// Sets `map[key] = value`, for an XSKMAP a queue's AF_XDP socket fd.
pub fn map_set(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, map.as_raw_fd() as u32);
    put64(&mut attr, 8, &key as *const u32 as u64);
    put64(&mut attr, 16, &value as *const u32 as u64);
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Loads the program that redirects every frame to the `map` slot of its
/// RX queue, and passes it when the slot is empty.
pub fn redirect_program(map: &OwnedFd) -> io::Result<OwnedFd> {
    let insns = [
        // r2 = ((struct xdp_md *)r1)->rx_queue_index
        insn(0x61, 2, 1, 16, 0),
        // r1 = map (ld_imm64 with BPF_PSEUDO_MAP_FD), two slots
        insn(0x18, 1, 1, 0, map.as_raw_fd()),
        insn(0, 0, 0, 0, 0),
        // r3 = action when the slot is empty
        insn(0xb7, 3, 0, 0, XDP_PASS),
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(0x95, 0, 0, 0, 0),
    ]
    .concat();
    load_xdp(&insns)
}

/// Attaches `prog` to interface `ifindex` of the calling thread's network
/// namespace with a BPF link; it stays attached until the link is dropped.
pub fn attach_xdp(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    put32(&mut attr, 12, flags);
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

/// The index of `ifname` in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// Attaches the pass program to `ifname` in the calling thread's network
/// namespace (in the driver's default mode); it stays attached until the
/// returned link is dropped.
pub fn attach_pass_program(ifname: &str) -> io::Result<OwnedFd> {
    let index = ifindex(ifname)?;
    attach_xdp(&pass_program()?, index, 0)
}
