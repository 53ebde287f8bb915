//! Turning a tracker request into its reply in place, for the answers whose
//! length differs from the request's (scrapes shrink, announces grow).
//!
//! An answer is built in three steps: [`Request::new`] checks that the
//! frame may be answered from here at all and gathers what the reply's
//! headers need; the answer sizes the frame with [`resize`] and writes its
//! payload, summing the 16-bit words it writes; [`finish`] then rewrites the
//! Ethernet, IP and UDP headers around it, the UDP checksum from that sum.
//! Summing while writing keeps every loop bounded by the records written,
//! instead of a second pass over a variable-length payload.

// Scrape and announce answers are being built on top of this.
#![allow(dead_code)]

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use tracker_proto::net::checksum::{self, UdpChecksum};
use tracker_proto::net::{ethernet, ip_proto, ipv4, ipv6, udp, REPLY_HOP_LIMIT};

use crate::frame::{frame_len, load, load_mut};
use crate::Ip;

/// A tracker datagram the program may answer itself, and what its reply's
/// headers are made from.
#[derive(Clone, Copy)]
pub struct Request {
    pub ip: Ip,
    /// Offsets of the IP and UDP headers in the frame.
    pub l3: usize,
    pub l4: usize,
    /// The UDP length (header included), already checked against the IP
    /// header and the frame.
    pub udp_len: usize,
    /// The client's address as connection ids cover it (IPv4 mapped).
    pub client: [u8; 16],
    /// The request's source port, which the reply goes back to.
    pub client_port: u16,
    /// The unfolded pseudo-header sum of the request, without the length
    /// term: it depends only on the addresses, which the reply swaps.
    pseudo_addrs: u32,
    /// The request's UDP checksum field.
    check: u16,
}

impl Request {
    /// `None` when the frame must go to userland whatever it asks: IPv4
    /// with options (they would have to be reversed, not echoed) or a
    /// group destination (a socket would not answer one either, and the
    /// reply would come from the group address).
    #[inline(always)]
    pub fn new(ctx: &XdpContext, ip: Ip, l3: usize, l4: usize, udp_len: usize) -> Option<Self> {
        let eth = ethernet::Frame::new_unchecked(load::<{ ethernet::HEADER_LEN }>(ctx, 0)?);
        if ethernet::is_group(&eth.dst_addr()) {
            return None;
        }
        let (client, pseudo_addrs) = match ip {
            Ip::V4 { simple: false } => return None,
            Ip::V4 { simple: true } => {
                let ip = ipv4::Packet::new_unchecked(load::<{ ipv4::HEADER_LEN }>(ctx, l3)?);
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                if ipv4::is_group_or_reserved(&dst) {
                    return None;
                }
                let [a, b, c, d] = src;
                let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d];
                (
                    mapped,
                    checksum::pseudo_header_v4(&src, &dst, ip_proto::UDP, 0),
                )
            }
            Ip::V6 => {
                let ip = ipv6::Packet::new_unchecked(load::<{ ipv6::HEADER_LEN }>(ctx, l3)?);
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                if ipv6::is_multicast(&dst) {
                    return None;
                }
                (
                    src,
                    checksum::pseudo_header_v6(&src, &dst, ip_proto::UDP, 0),
                )
            }
        };
        let udp = udp::Datagram::new_unchecked(load::<{ udp::HEADER_LEN }>(ctx, l4)?);
        Some(Self {
            ip,
            l3,
            l4,
            udp_len,
            client,
            client_port: udp.src_port(),
            pseudo_addrs,
            check: udp.checksum(),
        })
    }

    /// Where the UDP payload starts in the frame.
    #[inline(always)]
    pub fn payload(&self) -> usize {
        self.l4 + udp::HEADER_LEN
    }

    /// Whether the kernel would have accepted the request's UDP checksum,
    /// given the unfolded sum of its payload's words (the caller reads the
    /// payload anyway, so it sums as it reads). A request answered here
    /// never reaches the kernel's check, so the program must make it.
    #[inline(always)]
    pub fn checksum_ok(&self, ctx: &XdpContext, payload_sum: u32) -> bool {
        let Some(hdr) = load::<{ udp::HEADER_LEN }>(ctx, self.l4) else {
            return false;
        };
        let pseudo = self.pseudo_with_len(self.udp_len);
        let segment = checksum::sum_words(payload_sum, hdr);
        let ipv4 = matches!(self.ip, Ip::V4 { .. });
        UdpChecksum::classify(pseudo, segment, self.check, ipv4).accepted()
    }

    #[inline(always)]
    fn pseudo_with_len(&self, udp_len: usize) -> u32 {
        // IPv4 has a 16-bit length, IPv6 a 32-bit one whose high half is
        // zero for any frame: the same word either way.
        self.pseudo_addrs + udp_len as u32
    }
}

/// Grows or shrinks the frame so that it ends right after `payload_len`
/// bytes of UDP payload (dropping any Ethernet padding). Every pointer
/// into the frame is stale afterwards; [`load`] fetches fresh ones.
///
/// The payload may be overwritten when growing (the headers are moved
/// over its start, see [`grow_at_head`]): callers read what they need of
/// the request first.
#[inline(always)]
pub fn resize(ctx: &mut XdpContext, req: &Request, payload_len: usize) -> Option<()> {
    let want = req.payload() + payload_len;
    let delta = want as i64 - frame_len(ctx) as i64;
    if delta == 0 {
        return Some(());
    }
    // SAFETY: a helper call on the context the kernel gave this run; it
    // validates `delta` itself and fails without changing the frame.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } == 0 {
        return Some(());
    }
    if delta < 0 {
        return None;
    }
    grow_at_head(ctx, req, delta as usize)
}

/// The most [`grow_at_head`] takes: XDP guarantees 256 bytes of headroom
/// (`XDP_PACKET_HEADROOM`), part of which the kernel keeps for itself.
const MAX_HEAD_GROWTH: usize = 256;

/// The headers an answer keeps, at most: Ethernet with two VLAN tags,
/// IPv6 (IPv4 with options is never answered), UDP; rounded up to whole
/// 8-byte moves.
const MAX_HEADERS: usize = 72;
const _: () = assert!(
    ethernet::HEADER_LEN + 2 * ethernet::vlan::TAG_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN
        <= MAX_HEADERS
);

/// Grows the frame by `delta` bytes at its front and moves the headers
/// there, so the payload gains `delta` bytes where it ends. For frames
/// with too little room after them: veth and generic-mode XDP hand the
/// program a frame sized to the packet, with only tens of bytes of
/// tailroom but the full XDP headroom in front, where a NIC driver's
/// page-sized buffers have plenty of both. The move copies the first
/// [`MAX_HEADERS`] bytes, headers and the start of the payload, 8 at a
/// time from low to high: the destination lies below the source, so no
/// byte is overwritten before it is read.
#[inline(always)]
fn grow_at_head(ctx: &mut XdpContext, req: &Request, delta: usize) -> Option<()> {
    if delta > MAX_HEAD_GROWTH || req.payload() > MAX_HEADERS {
        return None;
    }
    // SAFETY: as for `bpf_xdp_adjust_tail`: the kernel checks the room and
    // fails without changing the frame.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(delta as i32)) } != 0 {
        return None;
    }
    for i in 0..MAX_HEADERS / 8 {
        let word = *load::<8>(ctx, delta + 8 * i)?;
        *load_mut::<8>(ctx, 8 * i)? = word;
    }
    Some(())
}

/// Rewrites the headers of a frame whose payload (`payload_len` bytes,
/// words summing to `payload_sum`) is already the reply's: addresses and
/// ports swapped, lengths set, the IPv4 header checksum updated, a fresh
/// UDP checksum. Called after [`resize`].
#[inline(always)]
pub fn finish(
    ctx: &mut XdpContext,
    req: &Request,
    payload_len: usize,
    payload_sum: u32,
) -> Option<()> {
    let udp_len = udp::HEADER_LEN + payload_len;
    let hdr = load_mut::<{ udp::HEADER_LEN }>(ctx, req.l4)?;
    let mut out = udp::Datagram::new_unchecked(&mut hdr[..]);
    let server_port = out.dst_port();
    out.set_src_port(server_port);
    out.set_dst_port(req.client_port);
    out.set_length(udp_len as u16);
    out.set_checksum(0);
    let sum = checksum::sum_words(payload_sum + req.pseudo_with_len(udp_len), hdr);
    let check = checksum::udp_on_wire(!checksum::fold(sum));
    udp::Datagram::new_unchecked(&mut hdr[..]).set_checksum(check);

    match req.ip {
        Ip::V4 { .. } => {
            let hdr = load_mut::<{ ipv4::HEADER_LEN }>(ctx, req.l3)?;
            let mut ip = ipv4::Packet::new_unchecked(&mut hdr[..]);
            let old = ip.total_len().to_be_bytes();
            let new = ((ipv4::HEADER_LEN + udp_len) as u16).to_be_bytes();
            ip.set_checksum(checksum::replace(ip.checksum(), &old, &new));
            ip.set_total_len(u16::from_be_bytes(new));
            ip.reverse_for_reply(REPLY_HOP_LIMIT);
        }
        Ip::V6 => {
            let hdr = load_mut::<{ ipv6::HEADER_LEN }>(ctx, req.l3)?;
            let mut ip = ipv6::Packet::new_unchecked(&mut hdr[..]);
            ip.set_payload_len(udp_len as u16);
            ip.reverse_for_reply(REPLY_HOP_LIMIT);
        }
    }
    let eth = load_mut::<{ ethernet::HEADER_LEN }>(ctx, 0)?;
    ethernet::Frame::new_unchecked(&mut eth[..]).swap_addrs();
    Some(())
}
