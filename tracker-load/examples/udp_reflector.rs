//! A null BEP 15 tracker, for measuring load generators rather than
//! trackers: it answers every request at once with a canned valid answer
//! (a fixed connection id, announces with no peers, scrapes of zeros) and
//! keeps no state. Answers to one client of one length leave as a single
//! UDP GSO buffer, so per request it costs a fraction of a real tracker and
//! the generator under test becomes the limit.
//!
//! ```text
//! cargo run --release -p tracker-load --example udp_reflector -- 127.0.0.1:7000
//! ```

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tracker_proto::udp::{
    write_connect_response, write_error_response, AnnounceResponse, ConnectionId, Peers, Request,
    Response, ScrapeResponse, ScrapeStats, TransactionId,
};

const BATCH: usize = 256;
const SLOT: usize = 2048;
const UDP_SEGMENT: libc::c_int = 103;
const MAX_SEGMENTS: usize = 64;
const ZEROS: [ScrapeStats; 74] = [ScrapeStats::new(0, 0, 0); 74];

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Cmsg([u8; 32]);

/// Writes the canned answer to `request` into `out`; its length, or None
/// for datagrams not worth answering.
fn answer(request: &[u8], out: &mut [u8]) -> Option<usize> {
    match Request::parse(request) {
        Ok(Request::Connect(c)) => {
            write_connect_response(out, c.transaction_id, ConnectionId(0x5eed)).ok()
        }
        Ok(Request::Announce(a)) => Response::Announce(AnnounceResponse {
            transaction_id: a.transaction_id,
            interval: 900,
            leechers: 0,
            seeders: 0,
            peers: Peers::V4(&[]),
        })
        .emit(out)
        .ok(),
        Ok(Request::Scrape(s)) => Response::Scrape(ScrapeResponse {
            transaction_id: s.transaction_id,
            stats: &ZEROS[..s.info_hashes.len().min(ZEROS.len())],
        })
        .emit(out)
        .ok(),
        Err(e) => write_error_response(
            out,
            e.transaction_id.unwrap_or(TransactionId(0)),
            e.message().as_bytes(),
        )
        .ok(),
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned())
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket.bind(&addr.into())?;
    let fd = socket.as_raw_fd();
    eprintln!(
        "udp_reflector: answering on {}",
        socket.local_addr()?.as_socket().unwrap_or(addr)
    );

    let mut inbuf = vec![0u8; BATCH * SLOT];
    let mut outbuf = vec![0u8; BATCH * SLOT];
    let mut outlen = [0usize; BATCH];
    // SAFETY: all-zero is valid for these C structs.
    let mut names: Vec<libc::sockaddr_storage> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut iov_in: Vec<libc::iovec> = (0..BATCH)
        .map(|i| libc::iovec {
            iov_base: inbuf[i * SLOT..].as_mut_ptr().cast(),
            iov_len: SLOT,
        })
        .collect();
    // SAFETY: all-zero is a valid (empty) mmsghdr; it is filled in before use.
    let mut hdr_in: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut iov_out: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        })
        .collect();
    // SAFETY: as for `hdr_in`.
    let mut hdr_out: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    let mut cmsgs = vec![Cmsg([0; 32]); BATCH];
    let mut order = [0usize; BATCH];
    let mut keys = [([0u8; 28], 0usize); BATCH];

    let mut answered = 0u64;
    let mut last = (Instant::now(), 0u64);
    loop {
        for i in 0..BATCH {
            let h = &mut hdr_in[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut iov_in[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: headers point at BATCH live slots and address buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdr_in.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        for i in 0..n {
            let len = (hdr_in[i].msg_len as usize).min(SLOT);
            let request = &inbuf[i * SLOT..i * SLOT + len];
            outlen[i] = answer(request, &mut outbuf[i * SLOT..(i + 1) * SLOT]).unwrap_or(0);
            order[i] = i;
        }
        // Same client and length next to each other, for GSO runs.
        for i in 0..n {
            // SAFETY: sockaddr_storage is plain bytes, at least 28 of them.
            let bytes: [u8; 28] =
                unsafe { std::ptr::read((&names[i] as *const libc::sockaddr_storage).cast()) };
            keys[i] = (bytes, outlen[i]);
        }
        let key = |i: usize| keys[i];
        order[..n].sort_unstable_by_key(|&i| key(i));
        let mut messages = 0;
        let mut k = 0;
        while k < n {
            let first = order[k];
            let len = outlen[first];
            let mut end = k + 1;
            while end < n && end - k < MAX_SEGMENTS && key(order[end]) == key(first) {
                end += 1;
            }
            if len == 0 {
                k = end;
                continue;
            }
            for (j, &i) in order[k..end].iter().enumerate() {
                iov_out[k + j] = libc::iovec {
                    iov_base: outbuf[i * SLOT..].as_mut_ptr().cast(),
                    iov_len: len,
                };
            }
            let h = &mut hdr_out[messages].msg_hdr;
            h.msg_name = (&mut names[first] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = hdr_in[first].msg_hdr.msg_namelen;
            h.msg_iov = &mut iov_out[k];
            h.msg_iovlen = end - k;
            if end - k > 1 {
                h.msg_control = cmsgs[messages].0.as_mut_ptr().cast();
                // SAFETY: the control buffer is 8-aligned and holds CMSG_SPACE(2).
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
            answered += (end - k) as u64;
            messages += 1;
            k = end;
        }
        let mut done = 0;
        while done < messages {
            // SAFETY: headers done..messages point at live buffers.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    hdr_out[done..].as_mut_ptr(),
                    (messages - done) as u32,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // A client gone away (ECONNREFUSED): skip its message.
                done += 1;
                continue;
            }
            done += r as usize;
        }
        if last.0.elapsed() >= Duration::from_secs(1) {
            let secs = last.0.elapsed().as_secs_f64();
            eprintln!(
                "udp_reflector: {:.0} answers/s",
                (answered - last.1) as f64 / secs
            );
            last = (Instant::now(), answered);
        }
    }
}
