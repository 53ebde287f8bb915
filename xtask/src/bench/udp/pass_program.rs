//! The XDP pass program the sockets-over-veth runs attach.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// A two-instruction XDP program (r0 = XDP_PASS; exit) attached with a BPF
// link through raw bpf(2), as the XDP tests do.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_PASS: i32 = 2;

fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr of the size we pass.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Attaches the pass program to `ifname` in the calling thread's network
/// namespace; it stays attached until the returned link is dropped.
pub(super) fn attach_pass_program(ifname: &str) -> std::io::Result<OwnedFd> {
    let put32 = |attr: &mut [u8], at: usize, v: u32| {
        attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    };
    let put64 = |attr: &mut [u8], at: usize, v: u64| {
        attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    };
    let mut insns = [0u8; 16];
    insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
    insns[4..8].copy_from_slice(&XDP_PASS.to_ne_bytes());
    insns[8] = 0x95; // BPF_JMP | BPF_EXIT
    let license = b"MIT\0";
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, 2);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    let prog = sys_bpf(BPF_PROG_LOAD, &mut attr)?;

    let name = std::ffi::CString::new(ifname).map_err(std::io::Error::other)?;
    // SAFETY: a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    sys_bpf(BPF_LINK_CREATE, &mut attr)
}
