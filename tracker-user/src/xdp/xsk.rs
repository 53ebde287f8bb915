//! One AF_XDP socket bound to one RX queue of one interface, owned by one
//! worker thread.
//!
//! The UMEM is `frame_count` frames of `frame_size` bytes. Half of them
//! start on the fill ring for the kernel to receive into; the other half
//! form the TX pool. Received frames go straight back to the fill ring and
//! transmitted frames come back to the pool through the completion ring, so
//! the halves never mix: a burst of replies cannot starve reception, and a
//! flood of requests cannot starve the replies.
//!
//! Every frame is in exactly one place at any time, recorded in `state`:
//!
//! - `Fill`: the kernel's, for RX (fill ring, being written, or RX ring);
//! - `Refill`: received and handed out, waiting for room on the fill ring;
//! - `Free`: in the TX pool;
//! - `Queued`: written by [`XskQueue::transmit`], not yet on the TX ring;
//! - `Tx`: published (TX ring, in flight, or completion ring).
//!
//! Every ring has room for all frames (sizes are rounded up to a power of
//! two ≥ `frame_count`), so handing frames to a ring never fails for lack of
//! space, which is what guarantees nothing gets stranded.

use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use xdpilone::xdp::XdpDesc;
use xdpilone::{
    DeviceQueue, Errno, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
};

/// Not in every libc version; a kernel ABI constant.
const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
/// The kernel's XDP_UMEM_MIN_CHUNK_SIZE.
const MIN_FRAME_SIZE: u32 = 2048;
/// 256 Ki frames is already half a gigabyte of pinned memory at 2 KiB.
const MAX_FRAME_COUNT: u32 = 1 << 18;
/// In copy mode one sendmsg transmits at most this many descriptors (the
/// kernel's default TX budget) and reports EAGAIN if more are left, so
/// a flush of a large batch needs several kicks.
const KERNEL_TX_BATCH: u32 = 32;
/// Anything shorter is not even an Ethernet header.
const MIN_TX_LEN: usize = 14;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Total UMEM frames, split evenly between RX and TX.
    pub frame_count: u32,
    /// Bytes per frame: a power of two from 2048 up to the page size.
    pub frame_size: u32,
    /// Ask for XDP_ZEROCOPY first and fall back to copy mode if the driver
    /// refuses (veth, most virtual devices).
    pub zero_copy: bool,
    /// XDP_USE_NEED_WAKEUP: the kernel tells us when a kick is needed, so
    /// busy queues avoid a syscall per flush in zero-copy mode.
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_count: 4096,
            frame_size: 2048,
            zero_copy: false,
            need_wakeup: true,
        }
    }
}

impl XskConfig {
    fn validate(&self) -> io::Result<()> {
        let page = page_size();
        let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if !self.frame_size.is_power_of_two()
            || self.frame_size < MIN_FRAME_SIZE
            || self.frame_size as usize > page
        {
            return bad(format!(
                "AF_XDP frame_size {} must be a power of two in {MIN_FRAME_SIZE}..={page}",
                self.frame_size
            ));
        }
        if !(2..=MAX_FRAME_COUNT).contains(&self.frame_count) {
            return bad(format!(
                "AF_XDP frame_count {} must be in 2..={MAX_FRAME_COUNT}",
                self.frame_count
            ));
        }
        Ok(())
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Counters kept by the queue plus the kernel's XDP_STATISTICS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    pub rx_packets: u64,
    /// Descriptors published on the TX ring.
    pub tx_packets: u64,
    /// Descriptors the kernel has completed (sent or dropped by the device).
    pub tx_completed: u64,
    /// `transmit` found the TX pool empty.
    pub tx_no_frame: u64,
    /// `transmit`'s closure declined or returned an impossible length.
    pub tx_abandoned: u64,
    /// TX kicks that failed for a reason other than "try again".
    pub kick_errors: u64,
    /// RX or completion descriptors naming a frame we did not give the
    /// kernel for that purpose. Must stay 0; the frame is not touched.
    pub bad_descriptors: u64,
    /// From the kernel (zero if the getsockopt failed).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// Where the frames are right now; see the module docs for the states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCensus {
    pub total: u32,
    pub fill: u32,
    pub refill: u32,
    pub free: u32,
    pub queued: u32,
    pub tx: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameState {
    Fill,
    Refill,
    Free,
    Queued,
    Tx,
}

/// The UMEM: an anonymous mapping the kernel pins and reads/writes frames
/// of. Dropped after the socket (field order in `XskQueue`), so the kernel
/// never holds a registration for memory we have already unmapped.
struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value; nothing about it
// is tied to the thread that created it.
unsafe impl Send for UmemArea {}

impl UmemArea {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(UmemArea { ptr, len })
    }

    fn as_raw_slice(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The bytes at `offset..offset + len`, if inside the mapping.
    ///
    /// Callers only ask for frames the kernel does not own at the moment
    /// (their `state` says so), so no concurrent kernel write can alias.
    fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        if start.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds of our live mapping, checked above.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len) })
    }

    fn bytes_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let start = usize::try_from(offset).ok()?;
        if start.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds, and `&mut self` makes it the only slice.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), len) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub struct XskQueue {
    // Field order is drop order: rings and socket go before `area`.
    rx: RingRx,
    tx: RingTx,
    device: DeviceQueue,
    /// TX pool (frame base offsets).
    free: Vec<u64>,
    /// Received frames waiting for room on the fill ring.
    to_fill: Vec<u64>,
    /// Written frames waiting for `flush` to publish them.
    queued: Vec<XdpDesc>,
    state: Box<[FrameState]>,
    /// Frames in `Fill` / `Tx`; the other states have their own lists.
    in_fill: u32,
    in_tx: u32,
    frame_size: u32,
    zero_copy: bool,
    need_wakeup: bool,
    stats: XskStats,
    area: UmemArea,
}

fn errno(e: Errno) -> io::Error {
    // xdpilone sometimes stores a negated errno.
    io::Error::from_raw_os_error(e.get_raw().abs())
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl XskQueue {
    /// Creates the UMEM and rings and binds to `ifname` queue `queue_id`.
    /// Receiving additionally needs an XDP program redirecting into an
    /// XSKMAP that holds [`XskQueue::fd`]; transmitting works without one.
    pub fn open(ifname: &str, queue_id: u32, config: &XskConfig) -> io::Result<XskQueue> {
        config.validate()?;
        if config.zero_copy {
            match Self::open_mode(ifname, queue_id, config, true) {
                Ok(q) => return Ok(q),
                Err(e) => log::info!(
                    "{ifname} queue {queue_id}: zero-copy AF_XDP unavailable ({e}); using copy mode"
                ),
            }
        }
        Self::open_mode(ifname, queue_id, config, false)
    }

    fn open_mode(
        ifname: &str,
        queue_id: u32,
        config: &XskConfig,
        zero_copy: bool,
    ) -> io::Result<XskQueue> {
        let frame_count = config.frame_count;
        let frame_size = config.frame_size;
        // Validated: frame_count ≤ 2^18, so this is ≤ 2^18 too.
        let ring_size = frame_count.next_power_of_two();
        let area = UmemArea::new(frame_count as usize * frame_size as usize)
            .map_err(|e| context(e, "mmap UMEM"))?;

        let umem_config = UmemConfig {
            fill_size: ring_size,
            complete_size: ring_size,
            frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a fresh page-aligned mapping of exactly this
        // length, and outlives every ring and the socket (`XskQueue` field
        // order). `Umem` itself is dropped at the end of this function; the
        // kernel registration lives on with the socket fd.
        let umem = unsafe { Umem::new(umem_config, area.as_raw_slice()) }
            .map_err(|e| context(errno(e), "register UMEM (XDP_UMEM_REG)"))?;

        let name = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
        let mut info = IfInfo::invalid();
        info.from_name(&name)
            .map_err(|e| context(errno(e), &format!("interface {ifname}")))?;
        info.set_queue(queue_id);

        // One fd carries the UMEM, fill/completion and RX/TX rings: this
        // queue is the UMEM's only user.
        let sock = Socket::with_shared(&info, &umem).map_err(errno)?;
        let mut device = umem
            .fq_cq(&sock)
            .map_err(|e| context(errno(e), "fill/completion rings"))?;
        let mut bind_flags = if zero_copy {
            SocketConfig::XDP_BIND_ZEROCOPY
        } else {
            SocketConfig::XDP_BIND_COPY
        };
        if config.need_wakeup {
            bind_flags |= SocketConfig::XDP_BIND_NEED_WAKEUP;
        }
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(ring_size),
                    tx_size: NonZeroU32::new(ring_size),
                    bind_flags,
                },
            )
            .map_err(|e| context(errno(e), "RX/TX rings"))?;
        let rx = user
            .map_rx()
            .map_err(|e| context(errno(e), "mmap RX ring"))?;
        let tx = user
            .map_tx()
            .map_err(|e| context(errno(e), "mmap TX ring"))?;

        // Fill before bind so the first packets already find buffers.
        let rx_frames = frame_count / 2;
        let mut state = vec![FrameState::Free; frame_count as usize].into_boxed_slice();
        {
            let mut writer = device.fill(rx_frames);
            let n = writer.insert((0..rx_frames).map(|i| u64::from(i) * u64::from(frame_size)));
            writer.commit();
            if n != rx_frames {
                return Err(io::Error::other(format!(
                    "fill ring took {n} of {rx_frames} frames"
                )));
            }
        }
        for s in state.iter_mut().take(rx_frames as usize) {
            *s = FrameState::Fill;
        }
        // Popped from the back: low offsets first, which only matters for
        // reading dumps.
        let free = (rx_frames..frame_count)
            .rev()
            .map(|i| u64::from(i) * u64::from(frame_size))
            .collect();

        umem.bind(&user).map_err(|e| {
            let mode = if zero_copy { "zero-copy" } else { "copy" };
            context(
                errno(e),
                &format!("bind AF_XDP ({mode}) to {ifname} queue {queue_id}"),
            )
        })?;

        let queue = XskQueue {
            rx,
            tx,
            device,
            free,
            to_fill: Vec::with_capacity(frame_count as usize),
            queued: Vec::with_capacity(frame_count as usize),
            state,
            in_fill: rx_frames,
            in_tx: 0,
            frame_size,
            zero_copy: false,
            need_wakeup: config.need_wakeup,
            stats: XskStats::default(),
            area,
        };
        // Ask the kernel rather than trusting the flag we asked for.
        let zero_copy = queue.kernel_zero_copy()?;
        Ok(XskQueue { zero_copy, ..queue })
    }

    fn kernel_zero_copy(&self) -> io::Result<bool> {
        let mut flags: u32 = 0;
        let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
        // SAFETY: valid fd, a u32 out-parameter of the advertised size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                SOL_XDP,
                XDP_OPTIONS,
                (&mut flags as *mut u32).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(context(
                io::Error::last_os_error(),
                "getsockopt XDP_OPTIONS",
            ));
        }
        Ok(flags & XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// The socket, for the XSKMAP and for poll(). Owned by the queue.
    pub fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    pub fn mode(&self) -> &'static str {
        if self.zero_copy {
            "zero-copy"
        } else {
            "copy"
        }
    }

    fn frame_index(&self, addr: u64) -> Option<usize> {
        let i = usize::try_from(addr / u64::from(self.frame_size)).ok()?;
        (i < self.state.len()).then_some(i)
    }

    /// Calls `f` with each of up to `max` received frames, then gives the
    /// frames back to the kernel for reception. Returns how many there were.
    pub fn receive(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        if max == 0 {
            return 0;
        }
        let frame_size = u64::from(self.frame_size);
        let mut received = 0usize;
        let mut reader = self.rx.receive(max);
        while let Some(desc) = reader.read() {
            // The descriptor points into the frame (past the kernel's
            // headroom), not at its start.
            let base = desc.addr - desc.addr % frame_size;
            let index = usize::try_from(desc.addr / frame_size)
                .ok()
                .filter(|&i| self.state.get(i) == Some(&FrameState::Fill));
            let within = desc.addr % frame_size + u64::from(desc.len) <= frame_size;
            let (Some(index), true) = (index, within) else {
                self.stats.bad_descriptors += 1;
                debug_assert!(false, "RX descriptor {desc:?} is not a fill frame");
                continue;
            };
            if let Some(bytes) = self.area.bytes(desc.addr, desc.len as usize) {
                f(bytes);
            }
            if let Some(s) = self.state.get_mut(index) {
                *s = FrameState::Refill;
            }
            self.to_fill.push(base);
            self.in_fill -= 1;
            received += 1;
        }
        reader.release();
        drop(reader);
        self.stats.rx_packets += received as u64;
        self.refill();
        received
    }

    /// Takes a frame from the TX pool and lets `write` fill it; `write`
    /// returns the frame length, or None to abandon it. The frame goes out
    /// on the next [`XskQueue::flush`]. Returns false (and counts it) if the
    /// pool is empty or the frame was abandoned.
    pub fn transmit(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let Some(addr) = self.free.pop() else {
            self.stats.tx_no_frame += 1;
            return false;
        };
        let frame_size = self.frame_size as usize;
        let len = self
            .area
            .bytes_mut(addr, frame_size)
            .and_then(write)
            .filter(|n| (MIN_TX_LEN..=frame_size).contains(n));
        let index = self.frame_index(addr);
        match (len, index) {
            (Some(len), Some(index)) => {
                self.queued.push(XdpDesc {
                    addr,
                    // ≤ frame_size, which is a u32.
                    len: len as u32,
                    options: 0,
                });
                if let Some(s) = self.state.get_mut(index) {
                    *s = FrameState::Queued;
                }
                true
            }
            _ => {
                self.free.push(addr);
                self.stats.tx_abandoned += 1;
                false
            }
        }
    }

    /// Publishes queued frames, makes the kernel send them, takes completed
    /// frames back into the TX pool and tops up the fill ring.
    pub fn flush(&mut self) {
        self.publish_tx();
        self.kick_tx();
        self.reap_completions();
        self.refill();
        if self.need_wakeup && self.device.needs_wakeup() {
            // Zero-copy drivers stop polling an empty fill ring until told.
            self.device.wake();
        }
        debug_assert_eq!(
            self.free.len()
                + self.to_fill.len()
                + self.queued.len()
                + self.in_fill as usize
                + self.in_tx as usize,
            self.state.len(),
            "frames leaked or duplicated"
        );
    }

    fn publish_tx(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let want = u32::try_from(self.queued.len()).unwrap_or(u32::MAX);
        let mut writer = self.tx.transmit(want);
        let n = writer.insert(self.queued.iter().copied());
        writer.commit();
        drop(writer);
        for desc in self.queued.drain(..n as usize) {
            let i = usize::try_from(desc.addr / u64::from(self.frame_size)).ok();
            if let Some(s) = i.and_then(|i| self.state.get_mut(i)) {
                *s = FrameState::Tx;
            }
        }
        self.in_tx += n;
        self.stats.tx_packets += u64::from(n);
    }

    fn kick_tx(&mut self) {
        let pending = self.tx.pending();
        if pending == 0 {
            return;
        }
        // Copy mode only transmits inside sendmsg, so it always needs the
        // kick; zero-copy drivers say whether they need one.
        if self.zero_copy && self.need_wakeup && !self.tx.needs_wakeup() {
            return;
        }
        let rounds = if self.zero_copy {
            1
        } else {
            pending / KERNEL_TX_BATCH + 2
        };
        for _ in 0..rounds {
            // SAFETY: a zero-length send on our own socket, no buffers.
            let rc = unsafe {
                libc::sendto(
                    self.fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    // Budget used up with descriptors left, device busy, or
                    // skb allocation failed: retry, then leave the rest for
                    // the next flush.
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => {}
                    _ => {
                        self.stats.kick_errors += 1;
                        return;
                    }
                }
            }
            if self.zero_copy || self.tx.pending() == 0 {
                return;
            }
        }
    }

    fn reap_completions(&mut self) {
        if self.in_tx == 0 {
            return;
        }
        let frame_size = u64::from(self.frame_size);
        let mut reader = self.device.complete(self.in_tx);
        while let Some(addr) = reader.read() {
            let index = usize::try_from(addr / frame_size)
                .ok()
                .filter(|&i| self.state.get(i) == Some(&FrameState::Tx));
            let Some(index) = index else {
                self.stats.bad_descriptors += 1;
                debug_assert!(false, "completion {addr:#x} is not a TX frame");
                continue;
            };
            if let Some(s) = self.state.get_mut(index) {
                *s = FrameState::Free;
            }
            self.free.push(addr - addr % frame_size);
            self.in_tx -= 1;
            self.stats.tx_completed += 1;
        }
        reader.release();
    }

    fn refill(&mut self) {
        if self.to_fill.is_empty() {
            return;
        }
        let want = u32::try_from(self.to_fill.len()).unwrap_or(u32::MAX);
        let mut writer = self.device.fill(want);
        let n = writer.insert(self.to_fill.iter().copied());
        writer.commit();
        drop(writer);
        for addr in self.to_fill.drain(..n as usize) {
            let i = usize::try_from(addr / u64::from(self.frame_size)).ok();
            if let Some(s) = i.and_then(|i| self.state.get_mut(i)) {
                *s = FrameState::Fill;
            }
        }
        self.in_fill += n;
    }

    /// Frames in the TX pool right now.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Frames published for TX and not yet completed.
    pub fn tx_in_flight(&self) -> u32 {
        self.in_tx + self.queued.len() as u32
    }

    pub fn census(&self) -> FrameCensus {
        let mut c = FrameCensus {
            total: self.state.len() as u32,
            ..FrameCensus::default()
        };
        for s in self.state.iter() {
            match s {
                FrameState::Fill => c.fill += 1,
                FrameState::Refill => c.refill += 1,
                FrameState::Free => c.free += 1,
                FrameState::Queued => c.queued += 1,
                FrameState::Tx => c.tx += 1,
            }
        }
        c
    }

    /// Full consistency check of frame ownership (O(frames), for tests and
    /// debugging): every frame in exactly one state, the lists holding
    /// exactly the frames of their state, and the kernel rings holding no
    /// more frames than we think we gave them.
    pub fn frames_accounted(&self) -> bool {
        let frame_size = u64::from(self.frame_size);
        let mut seen = vec![false; self.state.len()];
        let mut lists_ok = true;
        let mut mark = |addr: u64, expect: FrameState| {
            let i = usize::try_from(addr / frame_size).unwrap_or(usize::MAX);
            match (seen.get_mut(i), self.state.get(i)) {
                (Some(seen @ false), Some(&s)) if s == expect && addr & (frame_size - 1) == 0 => {
                    *seen = true
                }
                _ => lists_ok = false,
            }
        };
        for &a in &self.free {
            mark(a, FrameState::Free);
        }
        for &a in &self.to_fill {
            mark(a, FrameState::Refill);
        }
        for d in &self.queued {
            mark(d.addr, FrameState::Queued);
        }
        let c = self.census();
        let counts_ok = c.free as usize == self.free.len()
            && c.refill as usize == self.to_fill.len()
            && c.queued as usize == self.queued.len()
            && c.fill == self.in_fill
            && c.tx == self.in_tx
            && c.fill + c.refill + c.free + c.queued + c.tx == c.total;
        // Relaxed snapshots of kernel heads: frames the kernel is working
        // on sit in neither ring, so these are upper bounds, not equalities.
        let rings_ok = self.device.pending() + self.rx.available() <= self.in_fill
            && self.tx.pending() + self.device.available() <= self.in_tx;
        lists_ok && counts_ok && rings_ok
    }

    pub fn stats(&self) -> XskStats {
        let mut s = self.stats;
        if let Ok(k) = self.device.statistics_v2() {
            s.rx_dropped = k.rx_dropped;
            s.rx_invalid_descs = k.rx_invalid_descs;
            s.tx_invalid_descs = k.tx_invalid_descs;
            s.rx_ring_full = k.rx_ring_full;
            s.rx_fill_ring_empty_descs = k.rx_fill_ring_empty_descs;
            s.tx_ring_empty_descs = k.tx_ring_empty_descs;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    //! These run against the real kernel: each test builds its own pair of
    //! network namespaces joined by a veth, opens an `XskQueue` on one end
    //! and talks to an ordinary UDP socket on the other.
    //!
    //! Receiving needs an XDP program redirecting into an XSKMAP. The
    //! project's program (tracker-ebpf) is exercised by the end-to-end
    //! tests; here a six-instruction redirect-everything program is
    //! assembled by hand (module `bpf` below) so `receive` is tested without
    //! depending on that build.
    //!
    //! Root is required, and its absence is a failure, not a skip.

    use super::super::frame::{write_reply_frame, ReplyPath, VlanTag};
    use super::*;
    use std::fs::File;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

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
        let q1 = VethPair::run_in(&ns, || XskQueue::open(XSK_IF, 1, &small_config()))
            .expect("bind queue 1");
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
        assert_eq!(q.tx.pending(), 0, "descriptors left on the TX ring");
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
    /// Just enough bpf(2) to load "redirect every frame to the XSKMAP slot
    /// of its RX queue" and attach it with a BPF link. Attributes are laid
    /// out by hand from the `union bpf_attr` definitions in
    /// include/uapi/linux/bpf.h.
    mod bpf {
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
        pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
        pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

        fn put32(attr: &mut [u8], at: usize, v: u32) {
            attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }

        fn put64(attr: &mut [u8], at: usize, v: u64) {
            attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }

        fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
            // SAFETY: `attr` is a zero-padded bpf_attr of the given size;
            // any pointers inside it point at live buffers of the caller.
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

        pub fn xskmap(entries: u32) -> io::Result<OwnedFd> {
            let mut attr = [0u8; 128];
            put32(&mut attr, 0, BPF_MAP_TYPE_XSKMAP);
            put32(&mut attr, 4, 4); // key: queue index
            put32(&mut attr, 8, 4); // value: socket fd
            put32(&mut attr, 12, entries);
            sys_bpf(BPF_MAP_CREATE, &mut attr).map(owned)
        }

        pub fn map_set(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
            let mut attr = [0u8; 128];
            put32(&mut attr, 0, map.as_raw_fd() as u32);
            put64(&mut attr, 8, &key as *const u32 as u64);
            put64(&mut attr, 16, &value as *const u32 as u64);
            sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
        }

        fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
            let mut i = [0u8; 8];
            i[0] = code;
            i[1] = dst | (src << 4);
            i[2..4].copy_from_slice(&off.to_ne_bytes());
            i[4..8].copy_from_slice(&imm.to_ne_bytes());
            i
        }

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

        /// Attaches in the calling thread's namespace; detaches when the
        /// returned link fd is closed.
        pub fn attach_xdp(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
            let mut attr = [0u8; 64];
            put32(&mut attr, 0, prog.as_raw_fd() as u32);
            put32(&mut attr, 4, ifindex);
            put32(&mut attr, 8, BPF_XDP);
            put32(&mut attr, 12, flags);
            sys_bpf(BPF_LINK_CREATE, &mut attr).map(owned)
        }
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
            let name = std::ffi::CString::new(XSK_IF).unwrap();
            // SAFETY: a valid C string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(ifindex, 0);
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
                    if let Ok(parsed) = super::super::frame::parse_udp_frame(frame) {
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
}
