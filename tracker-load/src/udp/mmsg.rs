//! sendmmsg/recvmmsg over connected sockets: one system call moves a whole
//! batch, and with the socket connected no addresses are written or read.

use std::io;
use std::mem::zeroed;
use std::os::fd::RawFd;

/// Room for the largest request: a scrape of 74 hashes.
pub const SEND_SLOT: usize = 16 + 20 * 74;

/// Not exported by every libc target; the value is Linux's.
const UDP_SEGMENT: libc::c_int = 103;
/// Segments per GSO send that every kernel with UDP GSO (4.18+) accepts.
const MAX_GSO_SEGMENTS: usize = 64;
/// A GSO buffer is one UDP datagram to the stack until it is split.
const MAX_GSO_BYTES: usize = 65_000;

/// Control message space for one `UDP_SEGMENT` (a u16), 8-aligned.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct SegmentCmsg([u8; 32]);

/// Outgoing datagrams, built in place in fixed slots.
///
/// With GSO, datagrams of equal length (all connects, all announces) go to
/// the kernel as one buffer it splits into ordinary datagrams: on loopback
/// the split happens only when the tracker's socket receives them, so the
/// send path is walked once per batch instead of once per datagram, which
/// is most of a load generator's cost. The tracker sees the same datagrams.
pub struct SendBatch {
    bufs: Box<[[u8; SEND_SLOT]]>,
    lens: Box<[u16]>,
    /// Slot indices in send order: grouped by length under GSO.
    order: Box<[u16]>,
    sent: Box<[bool]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    /// The range of `order` each message carries.
    ranges: Box<[(u16, u16)]>,
    cmsgs: Box<[SegmentCmsg]>,
    gso: bool,
    gso_error: Option<io::Error>,
}

// SAFETY: the raw pointers in `iovecs`/`headers` are rewritten before every
// system call and point only into this struct's own boxes.
unsafe impl Send for SendBatch {}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

/// Errors that mean "no UDP GSO here" rather than trouble with the tracker.
fn is_gso_refusal(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

impl SendBatch {
    pub fn new(batch: usize, gso: bool) -> Self {
        let batch = batch.clamp(1, usize::from(u16::MAX));
        Self {
            bufs: vec![[0u8; SEND_SLOT]; batch].into_boxed_slice(),
            lens: vec![0; batch].into_boxed_slice(),
            order: vec![0; batch].into_boxed_slice(),
            sent: vec![false; batch].into_boxed_slice(),
            iovecs: (0..batch).map(|_| empty_iovec()).collect(),
            // SAFETY: all-zero is a valid mmsghdr (null name, no control).
            headers: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            ranges: vec![(0, 0); batch].into_boxed_slice(),
            cmsgs: vec![SegmentCmsg([0; 32]); batch].into_boxed_slice(),
            gso,
            gso_error: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Why GSO was turned off, once, if the kernel refused it.
    pub fn take_gso_error(&mut self) -> Option<io::Error> {
        self.gso_error.take()
    }

    /// Slot `i` to write a datagram into; [`Self::set_len`] says how much of it to send.
    #[inline]
    pub fn slot(&mut self, i: usize) -> &mut [u8; SEND_SLOT] {
        &mut self.bufs[i]
    }

    #[inline]
    pub fn set_len(&mut self, i: usize, len: usize) {
        self.lens[i] = len.min(SEND_SLOT) as u16;
    }

    /// Whether slot `i` went out in the last [`Self::send`].
    #[inline]
    pub fn sent(&self, i: usize) -> bool {
        self.sent[i]
    }

    /// Sends slots `0..n` without blocking and returns how many went out;
    /// [`Self::sent`] says which. An error means none did.
    pub fn send(&mut self, fd: RawFd, n: usize) -> io::Result<usize> {
        let n = n.min(self.bufs.len());
        self.sent[..n].fill(false);
        for (k, o) in self.order[..n].iter_mut().enumerate() {
            *o = k as u16;
        }
        if self.gso {
            let lens = &self.lens;
            self.order[..n].sort_unstable_by_key(|&i| lens[usize::from(i)]);
        }
        // Pointers are rebuilt per call so no long-lived raw pointer
        // aliases the slots handed out by `slot`.
        for k in 0..n {
            let i = usize::from(self.order[k]);
            self.iovecs[k] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: usize::from(self.lens[i]),
            };
        }
        let mut messages = 0;
        let mut k = 0;
        while k < n {
            let len = usize::from(self.lens[usize::from(self.order[k])]);
            let mut end = k + 1;
            if self.gso {
                while end < n
                    && usize::from(self.lens[usize::from(self.order[end])]) == len
                    && end - k < MAX_GSO_SEGMENTS
                    && (end - k + 1) * len <= MAX_GSO_BYTES
                {
                    end += 1;
                }
            }
            let h = &mut self.headers[messages].msg_hdr;
            h.msg_iov = &mut self.iovecs[k];
            h.msg_iovlen = end - k;
            if end - k > 1 {
                let cmsg = &mut self.cmsgs[messages];
                h.msg_control = cmsg.0.as_mut_ptr().cast();
                // SAFETY: CMSG_* only compute sizes and offsets; `cmsg` is
                // 8-aligned with room for CMSG_SPACE(2) <= 32 bytes, and
                // msg_control/msg_controllen describe exactly it.
                unsafe {
                    h.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), len as u16);
                }
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            self.headers[messages].msg_len = 0;
            self.ranges[messages] = (k as u16, end as u16);
            messages += 1;
            k = end;
        }
        let sent_messages = loop {
            // SAFETY: the first `messages` headers point at live iovecs,
            // slots and control buffers.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    messages as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                _ if self.gso && is_gso_refusal(&err) => {
                    self.gso = false;
                    self.gso_error = Some(err);
                    return self.send(fd, n);
                }
                _ => return Err(err),
            }
        };
        let mut count = 0;
        for &(from, to) in &self.ranges[..sent_messages] {
            for &i in &self.order[usize::from(from)..usize::from(to)] {
                self.sent[usize::from(i)] = true;
            }
            count += usize::from(to - from);
        }
        Ok(count)
    }
}

/// Incoming datagrams, received into fixed slots.
pub struct RecvBatch {
    slot_len: usize,
    bufs: Box<[u8]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    received: usize,
}

// SAFETY: as for SendBatch.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(batch: usize, slot_len: usize) -> Self {
        let batch = batch.max(1);
        let slot_len = slot_len.max(16);
        Self {
            slot_len,
            bufs: vec![0u8; batch * slot_len].into_boxed_slice(),
            iovecs: (0..batch).map(|_| empty_iovec()).collect(),
            // SAFETY: all-zero is a valid mmsghdr.
            headers: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            received: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Receives what is waiting, without blocking; `WouldBlock` when none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let batch = self.headers.len();
        let base = self.bufs.as_mut_ptr();
        for i in 0..batch {
            self.iovecs[i] = libc::iovec {
                // SAFETY: i * slot_len + slot_len <= bufs.len() by construction.
                iov_base: unsafe { base.add(i * self.slot_len) }.cast(),
                iov_len: self.slot_len,
            };
            let h = &mut self.headers[i];
            h.msg_hdr.msg_iov = &mut self.iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        self.received = 0;
        loop {
            // SAFETY: every header points at its own slot of slot_len bytes.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    batch as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                self.received = n as usize;
                return Ok(self.received);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// The `i`th datagram of the last `recv`, and whether it was cut off
    /// because it did not fit its slot.
    #[inline]
    pub fn get(&self, i: usize) -> Option<(&[u8], bool)> {
        if i >= self.received {
            return None;
        }
        let h = &self.headers[i];
        let len = (h.msg_len as usize).min(self.slot_len);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let start = i * self.slot_len;
        Some((&self.bufs[start..start + len], truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn batches_round_trip_and_report_truncation() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let mut send = SendBatch::new(4, false);
        assert_eq!(send.capacity(), 4);
        for i in 0..4 {
            let len = if i == 3 { 40 } else { i + 1 };
            send.slot(i)[..len].fill(i as u8 + 1);
            send.set_len(i, len);
        }
        assert_eq!(send.send(a.as_raw_fd(), 4).unwrap(), 4);
        assert!((0..4).all(|i| send.sent(i)));
        let mut recv = RecvBatch::new(8, 16);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < 4 && Instant::now() < deadline {
            if let Ok(n) = recv.recv(b.as_raw_fd()) {
                for i in 0..n {
                    let (data, truncated) = recv.get(i).unwrap();
                    got.push((data.to_vec(), truncated));
                }
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (vec![1], false));
        assert_eq!(got[2], (vec![3, 3, 3], false));
        assert_eq!(got[3], (vec![4; 16], true));
        assert!(recv.get(99).is_none());
        let err = recv.recv(b.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    /// Receives everything waiting on `sock`, as (length, first byte).
    fn drain(recv: &mut RecvBatch, sock: &UdpSocket, want: usize) -> Vec<(usize, u8)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < want && Instant::now() < deadline {
            if let Ok(n) = recv.recv(sock.as_raw_fd()) {
                for i in 0..n {
                    let (data, _) = recv.get(i).unwrap();
                    got.push((data.len(), data[0]));
                }
            }
        }
        got
    }

    #[test]
    fn gso_arrives_as_separate_datagrams() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        let mut send = SendBatch::new(200, true);
        // Interleaved lengths: 98, 16, 98, 16, ... and one odd 36.
        let n = 150;
        for i in 0..n {
            let len = match i {
                77 => 36,
                _ if i % 2 == 0 => 98,
                _ => 16,
            };
            send.slot(i)[..len].fill(i as u8);
            send.set_len(i, len);
        }
        assert_eq!(send.send(a.as_raw_fd(), n).unwrap(), n);
        if let Some(e) = send.take_gso_error() {
            // No UDP GSO in this kernel: the fallback still sent everything.
            eprintln!("GSO unavailable here: {e}");
        }
        let mut recv = RecvBatch::new(64, 2048);
        let mut got = drain(&mut recv, &b, n);
        assert_eq!(got.len(), n);
        got.sort_unstable_by_key(|&(_, first)| first);
        for (i, (len, first)) in got.into_iter().enumerate() {
            assert_eq!(first, i as u8);
            let want = match i {
                77 => 36,
                _ if i % 2 == 0 => 98,
                _ => 16,
            };
            assert_eq!(len, want, "datagram {i}");
        }
    }
}
