//! recvmmsg/sendmmsg batching: one system call moves up to `BATCH`
//! datagrams, which is most of the cost of a small-packet UDP server.

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use crate::ffi::zeroed;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Receive buffer per datagram. Requests are at most a few hundred bytes
/// (a 74-hash scrape is 1496, and 101 hashes fill 2036); anything larger
/// arrives cut to this length, which [`RecvBatch::truncated`] reports so
/// that it is refused as too large rather than parsed.
pub const RECV_BUF_LEN: usize = 2048;

pub struct RecvBatch {
    buffers: Box<[[u8; RECV_BUF_LEN]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    /// Never read from Rust: kept alive because `headers` point into it.
    _iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    received: usize,
}

// SAFETY: the raw pointers in `_iovecs`/`headers` point only into this
// struct's own boxed slices. Moving the struct to another thread moves the
// boxes' ownership, not their heap storage, so the pointers stay valid, and
// nothing else holds them: the kernel uses them only inside `recv`, which
// takes `&mut self`.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        let mut buffers = vec![[0u8; RECV_BUF_LEN]; BATCH].into_boxed_slice();
        let mut addrs: Box<[libc::sockaddr_storage]> = (0..BATCH).map(|_| zeroed()).collect();
        let mut iovecs: Box<[libc::iovec]> = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: RECV_BUF_LEN,
            })
            .collect();
        let headers = (0..BATCH)
            .map(|i| {
                // The pointers set here stay valid for the struct's life: the
                // boxed slices are never resized, so never reallocated.
                let mut h: libc::mmsghdr = zeroed();
                h.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
                h.msg_hdr.msg_iov = &mut iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        Self {
            buffers,
            addrs,
            _iovecs: iovecs,
            headers,
            received: 0,
        }
    }

    /// Receives what is waiting, without blocking. Returns how many
    /// datagrams arrived; `WouldBlock` when none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in self.headers.iter_mut() {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: `headers` holds exactly BATCH entries (the vlen passed),
        // built in `new`: each `msg_name` points at its own
        // `sockaddr_storage` with `msg_namelen` reset above to that size,
        // each `msg_iov` at one iovec covering its own RECV_BUF_LEN buffer.
        // All of them are boxes owned by `self`, never reallocated, and
        // `&mut self` keeps Rust from touching them while the kernel writes;
        // MSG_DONTWAIT means the call returns before we do.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The `i`th datagram of the last `recv`: payload and source address
    /// (None for an address family we do not serve).
    pub fn get(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        if i >= self.received {
            return None;
        }
        let h = &self.headers[i];
        let len = (h.msg_len as usize).min(RECV_BUF_LEN);
        let addr = sockaddr_to_std(&self.addrs[i]);
        Some((&self.buffers[i][..len], addr))
    }

    /// Whether the `i`th datagram of the last `recv` was longer than its
    /// slot and arrived cut short (MSG_TRUNC).
    pub fn truncated(&self, i: usize) -> bool {
        i < self.received && self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: `sockaddr_storage` is larger than and aligned for every
            // sockaddr type, the family says the kernel wrote a
            // `sockaddr_in`, and the view borrows `storage` so cannot outlive it.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as for AF_INET: large and aligned enough, the family
            // says a `sockaddr_in6` is there, and the view borrows `storage`.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `storage`, returning the length to pass to the kernel.
fn std_to_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> u32 {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_storage` is larger than and aligned for any
            // sockaddr type, any bit pattern is a valid `sockaddr_in` (plain
            // integers), and the view borrows `storage` exclusively.
            let sin: &mut libc::sockaddr_in = unsafe { &mut *(storage as *mut _ as *mut _) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as u32
        }
        SocketAddr::V6(a) => {
            // SAFETY: as for V4: large and aligned enough, any bit pattern is
            // a valid `sockaddr_in6`, and the view borrows `storage` exclusively.
            let sin6: &mut libc::sockaddr_in6 = unsafe { &mut *(storage as *mut _ as *mut _) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as u32
        }
    }
}

/// Responses waiting for the kernel: a fixed ring of fixed-size slots, so
/// a slow or full socket costs bounded memory and no allocation.
pub struct SendQueue {
    slot_len: usize,
    data: Box<[u8]>,
    lens: Box<[u16]>,
    addrs: Box<[SocketAddr]>,
    head: usize,
    len: usize,
    // Scratch for one sendmmsg call.
    names: Box<[libc::sockaddr_storage]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
}

// SAFETY: the scratch pointers in `iovecs`/`headers` are rebuilt in `flush`
// before every sendmmsg and point only into this struct's own boxes, whose
// heap storage does not move when the struct moves to another thread; no
// other thread ever sees them.
unsafe impl Send for SendQueue {}

impl SendQueue {
    pub fn new(capacity: usize, slot_len: usize) -> Self {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            slot_len,
            data: vec![0u8; capacity * slot_len].into_boxed_slice(),
            lens: vec![0u16; capacity].into_boxed_slice(),
            addrs: vec![unspecified; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            names: (0..BATCH).map(|_| zeroed()).collect(),
            iovecs: (0..BATCH)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            headers: (0..BATCH).map(|_| zeroed()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues one response written by `write` into a slot; `write` returns
    /// the length it wrote, or None to abandon the slot. Returns false when
    /// the queue is full and the response was dropped.
    pub fn push(
        &mut self,
        addr: SocketAddr,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let capacity = self.lens.len();
        if self.len == capacity {
            return false;
        }
        let slot = (self.head + self.len) % capacity;
        let buf = &mut self.data[slot * self.slot_len..(slot + 1) * self.slot_len];
        match write(buf) {
            Some(n) if n <= self.slot_len => {
                self.lens[slot] = n as u16;
                self.addrs[slot] = addr;
                self.len += 1;
                true
            }
            _ => true,
        }
    }

    /// Sends as much as the kernel takes. `Ok(())` when the queue is empty,
    /// `WouldBlock` when the socket is full (wait for writability).
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        let capacity = self.lens.len();
        while self.len > 0 {
            let contiguous = (capacity - self.head).min(self.len).min(BATCH);
            for i in 0..contiguous {
                let slot = self.head + i;
                let namelen = std_to_sockaddr(&self.addrs[slot], &mut self.names[i]);
                self.iovecs[i] = libc::iovec {
                    iov_base: self.data[slot * self.slot_len..].as_mut_ptr().cast(),
                    iov_len: self.lens[slot] as usize,
                };
                let h = &mut self.headers[i];
                h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = namelen;
                h.msg_hdr.msg_iov = &mut self.iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_len = 0;
            }
            // SAFETY: the first `contiguous` (≤ BATCH = headers.len())
            // headers were just set: `msg_name` at a `names` entry of
            // `msg_namelen` bytes, `msg_iov` at one iovec over a queued slot
            // inside `data` (`lens[slot]` ≤ slot_len, so in bounds). All are
            // boxes owned by `self`, unchanged during the call since
            // `&mut self` is held; the kernel only reads them.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.as_mut_ptr(),
                    contiguous as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if sent < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    return Err(err);
                }
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram was refused for its own sake (an
                // unroutable or forbidden destination): drop it, carry on.
                log::debug!("dropping response to {}: {err}", self.addrs[self.head]);
                self.advance(1);
                continue;
            }
            self.advance(sent as usize);
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) {
        self.head = (self.head + n) % self.lens.len();
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn queue_round_trips_through_real_sockets_and_wraps() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = client.local_addr().unwrap();
        let mut queue = SendQueue::new(3, 16);
        for round in 0u8..4 {
            for i in 0..3u8 {
                assert!(queue.push(to, |b| {
                    b[..2].copy_from_slice(&[round, i]);
                    Some(2)
                }));
            }
            assert!(!queue.push(to, |_| Some(1)), "a full queue drops");
            queue.flush(server.as_raw_fd()).unwrap();
            assert!(queue.is_empty());
            for i in 0..3u8 {
                let mut buf = [0u8; 16];
                let (n, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[round, i]);
                assert_eq!(from, server.local_addr().unwrap());
            }
        }
    }

    #[test]
    fn recv_batch_reports_payloads_and_sources() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = RecvBatch::new();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while seen.len() < 5 && std::time::Instant::now() < deadline {
            if let Ok(n) = batch.recv(server.as_raw_fd()) {
                for i in 0..n {
                    let (data, from) = batch.get(i).unwrap();
                    assert_eq!(from, Some(client.local_addr().unwrap()));
                    seen.push(data.to_vec());
                }
            }
        }
        assert_eq!(seen, (0..5u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
        assert!(
            batch.recv(server.as_raw_fd()).is_err(),
            "nothing left: WouldBlock"
        );
    }

    #[test]
    fn recv_batch_flags_datagrams_longer_than_a_slot() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(&[7u8; RECV_BUF_LEN + 1], to).unwrap();
        client.send_to(&[8u8; RECV_BUF_LEN], to).unwrap();
        let mut batch = RecvBatch::new();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while seen.len() < 2 && std::time::Instant::now() < deadline {
            if let Ok(n) = batch.recv(server.as_raw_fd()) {
                for i in 0..n {
                    let (data, _) = batch.get(i).unwrap();
                    seen.push((data.len(), batch.truncated(i)));
                }
            }
        }
        assert_eq!(seen, vec![(RECV_BUF_LEN, true), (RECV_BUF_LEN, false)]);
    }
}
