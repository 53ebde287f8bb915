//! Figures the kernel keeps for us, read when scraped so the hot path pays
//! nothing for them: a UDP socket's receive-buffer drops, an AF_XDP
//! socket's ring statistics, and the process's CPU, memory and fds.
//!
//! Everything is read through descriptors opened at start, before the
//! privilege drop: after a chroot `/proc` may not exist, and a dropped user
//! may not be allowed to open what root could.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// `SO_MEMINFO` on every architecture the tracker builds for but MIPS and
/// SPARC (libc exports it only from its raw uapi tables).
const SO_MEMINFO: libc::c_int = 55;

/// Datagrams the kernel dropped for this socket, almost all of them for a
/// full receive buffer (`SK_MEMINFO_DROPS`, the `drops` column of
/// /proc/net/udp): the worker did not drain fast enough.
pub fn udp_socket_drops(socket: &OwnedFd) -> std::io::Result<u64> {
    // SK_MEMINFO_VARS is 9 since Linux 4.7; a larger array is harmless.
    let mut meminfo = [0u32; 16];
    let mut len = std::mem::size_of_val(&meminfo) as libc::socklen_t;
    // SAFETY: the buffer and its length describe `meminfo`, which outlives
    // the call; the kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            meminfo.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from(meminfo[libc::SK_MEMINFO_DROPS as usize]))
}

/// An AF_XDP socket's `XDP_STATISTICS`, in [`XSK_STATISTICS`] order.
pub fn xsk_statistics(socket: &OwnedFd) -> std::io::Result<[u64; 6]> {
    // SAFETY: xdp_statistics is plain integers; all-zero is a valid value.
    let mut stats: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: as in udp_socket_drops: buffer and length describe `stats`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut stats as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok([
        stats.rx_dropped,
        stats.rx_invalid_descs,
        stats.tx_invalid_descs,
        stats.rx_ring_full,
        stats.rx_fill_ring_empty_descs,
        stats.tx_ring_empty_descs,
    ])
}

/// The label values of [`xsk_statistics`]'s figures, as the kernel names
/// them less its `_descs` suffixes.
pub const XSK_STATISTICS: [&str; 6] = [
    "rx_dropped",
    "rx_invalid",
    "tx_invalid",
    "rx_ring_full",
    "fill_ring_empty",
    "tx_ring_empty",
];

/// The process's own figures, as Prometheus's `process_*` metrics name them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

/// `/proc/self/stat` and `/proc/self/fd`, opened while `/proc` is still
/// reachable.
#[derive(Debug)]
pub struct ProcessSource {
    stat: File,
    fd_dir: File,
    ticks_per_second: f64,
    page_size: u64,
    start_time_seconds: f64,
}

impl ProcessSource {
    pub fn open() -> std::io::Result<Self> {
        let stat = File::open("/proc/self/stat")?;
        let fd_dir = File::open("/proc/self/fd")?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let mut source = Self {
            stat,
            fd_dir,
            ticks_per_second: ticks,
            page_size,
            start_time_seconds: 0.0,
        };
        let since_boot = source.stat_fields()?.start_ticks as f64 / ticks;
        source.start_time_seconds = boot_time()? + since_boot;
        Ok(source)
    }

    pub fn read(&self) -> std::io::Result<ProcessFigures> {
        let stat = self.stat_fields()?;
        Ok(ProcessFigures {
            cpu_seconds: (stat.utime + stat.stime) as f64 / self.ticks_per_second,
            resident_bytes: stat.rss_pages * self.page_size,
            virtual_bytes: stat.vsize,
            open_fds: self.open_fds()?,
            max_fds: max_fds(),
            start_time_seconds: self.start_time_seconds,
        })
    }

    fn stat_fields(&self) -> std::io::Result<StatFields> {
        let mut buf = [0u8; 1024];
        let n = self.stat.read_at(&mut buf, 0)?;
        parse_stat(&buf[..n]).ok_or_else(|| std::io::ErrorKind::InvalidData.into())
    }

    /// Entries of /proc/self/fd, less the one listing it.
    fn open_fds(&self) -> std::io::Result<u64> {
        let fd = self.fd_dir.as_raw_fd();
        // SAFETY: dup has no memory preconditions; the result is checked.
        let dup = unsafe { libc::dup(fd) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `dup` is an fd we own; fdopendir takes it over (closedir
        // below closes it) and fails only on a non-directory, checked.
        let dir = unsafe { libc::fdopendir(dup) };
        if dir.is_null() {
            // SAFETY: fdopendir failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `dir` is a valid stream until the closedir below; the dup
        // shares its offset with `fd_dir`, so start from the top.
        unsafe { libc::rewinddir(dir) };
        let mut entries = 0u64;
        loop {
            // SAFETY: `dir` is valid; readdir returns null at the end.
            let entry = unsafe { libc::readdir(dir) };
            if entry.is_null() {
                break;
            }
            // SAFETY: a non-null entry points to a dirent valid until the
            // next readdir on `dir`; d_name is NUL-terminated.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                entries += 1;
            }
        }
        // SAFETY: `dir` came from fdopendir and is closed once.
        unsafe { libc::closedir(dir) };
        // The listing includes the dup it was read through.
        Ok(entries.saturating_sub(1))
    }
}

fn max_fds() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

/// Seconds since the epoch at which the machine booted (`btime`).
fn boot_time() -> std::io::Result<f64> {
    let mut text = String::new();
    File::open("/proc/stat")?.read_to_string(&mut text)?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| std::io::ErrorKind::InvalidData.into())
}

#[derive(Debug, PartialEq)]
struct StatFields {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

/// The fields of `/proc/PID/stat` we need. The command name (field 2) is
/// in parentheses and may hold spaces or parentheses itself, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &[u8]) -> Option<StatFields> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After the name, field 3 (state) is index 0.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = b"4242 (tracker (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
            150 50 0 0 20 0 6 0 12345 987654321 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(StatFields {
                utime: 150,
                stime: 50,
                start_ticks: 12345,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(parse_stat(b"4242 (no close"), None);
    }

    #[test]
    fn reads_this_process() {
        let source = ProcessSource::open().unwrap();
        let before = source.read().unwrap();
        let held: Vec<File> = (0..100)
            .map(|_| File::open("/proc/self/stat").unwrap())
            .collect();
        let after = source.read().unwrap();
        // Other tests of this binary open and close sockets meanwhile, a
        // few at a time: the 100 held here must show, give or take those.
        let grew = after.open_fds as i64 - before.open_fds as i64;
        assert!((90..=110).contains(&grew), "{before:?} -> {after:?}");
        drop(held);
        assert!(after.resident_bytes > 1 << 20, "{after:?}");
        assert!(after.max_fds > 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started within the last hour, and not in the future.
        assert!(after.start_time_seconds <= now + 1.0 && after.start_time_seconds > now - 3600.0);
    }

    #[test]
    fn a_udp_socket_reports_its_drops() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = OwnedFd::from(socket.try_clone().unwrap());
        assert_eq!(udp_socket_drops(&fd).unwrap(), 0);
        // A tiny receive buffer overflows at once.
        let sock2 = socket2::SockRef::from(&socket);
        sock2.set_recv_buffer_size(1).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..64 {
            sender
                .send_to(&[0u8; 1000], socket.local_addr().unwrap())
                .unwrap();
        }
        assert!(udp_socket_drops(&fd).unwrap() > 0);
    }
}
