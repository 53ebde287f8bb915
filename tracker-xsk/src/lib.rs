//! Shared by tracker-user (tracker_user::xdp::xsk re-exports it) and
//! tracker-load's AF_XDP sender.
//!
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
/// XDP_MAX_TX_SKB_BUDGET (Linux 6.17): raises that budget for one socket.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
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
    // SAFETY: sysconf takes no pointers and has no preconditions; an
    // unknown name only returns -1, handled below.
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

// SAFETY: the mapping is owned exclusively by this value (created in `new`,
// unmapped only in `drop`) and reached only through `&self`/`&mut self`, so
// moving it to another thread moves sole access; a process-wide mapping has
// no tie to the thread that created it.
unsafe impl Send for UmemArea {}

impl UmemArea {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // picks: it cannot overlap memory Rust already uses, no fd is
        // involved, and MAP_FAILED is checked below.
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
        // SAFETY: `start + len` ≤ `self.len` (checked above, without
        // overflow), so the range lies in the mapping, which is readable,
        // initialised (anonymous pages are zero-filled) and lives as long as
        // `self`, which the returned borrow cannot outlive. No `&mut` to it
        // can exist while `&self` is held (`bytes_mut` takes `&mut self`),
        // and the kernel does not write frames we are reading (see above).
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len) })
    }

    fn bytes_mut(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let start = usize::try_from(offset).ok()?;
        if start.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds as checked above, in a writable mapping that
        // lives as long as `self`; `&mut self` for the borrow's lifetime makes
        // this the only Rust view, and callers pass only frames the kernel
        // does not own at the moment.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), len) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the range `new` mapped, once; every
        // slice into it borrowed `self` and so is gone, and the socket that
        // registered it as UMEM is dropped first (`XskQueue` field order).
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
    /// Descriptors one copy-mode kick transmits at most.
    tx_budget: u32,
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
            tx_budget: KERNEL_TX_BATCH,
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
        // SAFETY: `self.fd()` is our open XDP socket; `flags` is a live,
        // exclusively borrowed u32 and `len` says exactly that size, so the
        // kernel writes at most 4 bytes into it.
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

    /// A second descriptor of the socket, for reading its XDP_STATISTICS
    /// from the admin thread without touching the queue.
    pub fn dup_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        // SAFETY: the socket stays open while `self` lives, and the borrow
        // ends with this call, which only dups it.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd()) }.try_clone_to_owned()
    }

    /// Lets one copy-mode kick transmit up to `budget` descriptors instead
    /// of the kernel's default 32 (XDP_MAX_TX_SKB_BUDGET, Linux 6.17 and
    /// later; at most the TX ring's size): a sender that only transmits
    /// then pays the syscall once per `budget` frames. Older kernels
    /// refuse it and the queue keeps the default.
    pub fn set_tx_budget(&mut self, budget: u32) -> io::Result<()> {
        // SAFETY: our open XDP socket; a live u32 and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd(),
                SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&budget as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(context(
                io::Error::last_os_error(),
                "setsockopt XDP_MAX_TX_SKB_BUDGET",
            ));
        }
        self.tx_budget = budget;
        Ok(())
    }

    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
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
            pending / self.tx_budget + 2
        };
        for _ in 0..rounds {
            // SAFETY: a zero-length send on our own open socket: null buffer
            // and address with zero lengths, so the kernel reads no user
            // memory; it only kicks the TX ring.
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

    /// Descriptors on the TX ring the kernel has not taken yet (for tests:
    /// a flush must leave none behind).
    pub fn tx_ring_pending(&self) -> u32 {
        self.tx.pending()
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
