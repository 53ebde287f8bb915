//! The tracker's XDP program.
//!
//! Every frame is parsed just far enough to tell whether it is a UDP
//! datagram for an address in `LISTEN`. Those go to the AF_XDP socket of the
//! queue they arrived on, except BEP 15 connects, which need no tracker
//! state and are answered right here with `XDP_TX` when userland enables it.
//! Everything else, and every tracker datagram this program is unsure
//! about, is passed to the kernel stack unchanged: the tracker also listens
//! on ordinary sockets, so passing is always a safe answer.
//!
//! Map names, key and value layouts and counter indices come from
//! `tracker_proto::xdp`, and connection ids from
//! `tracker_proto::connection_id`, so that userland accepts the ids this
//! program hands out.
#![no_std]
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::{mem, ptr};

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use tracker_proto::connection_id::{ip_to_16, make_connection_id, ConnectionIdSecret};
use tracker_proto::udp::{ACTION_CONNECT, CONNECT_REQUEST_LEN, PROTOCOL_ID};
use tracker_proto::xdp::{
    counter, ConnectState, ListenKey, MAP_CONNECT, MAP_COUNTERS, MAP_LISTEN, MAP_XSKS, MAX_LISTEN,
    MAX_QUEUES,
};

// `#[map]` names each map after its static, and userland opens them by the
// names in `tracker_proto::xdp`; these fail the build if the two drift.
const _: () = assert!(str_eq(MAP_XSKS, "XSKS"));
const _: () = assert!(str_eq(MAP_LISTEN, "LISTEN"));
const _: () = assert!(str_eq(MAP_CONNECT, "CONNECT"));
const _: () = assert!(str_eq(MAP_COUNTERS, "COUNTERS"));

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static LISTEN: HashMap<ListenKey, u32> = HashMap::with_max_entries(MAX_LISTEN, 0);

#[map]
static CONNECT: Array<ConnectState> = Array::with_max_entries(1, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

// Wire headers. Fields are byte arrays so every struct has alignment 1:
// headers sit at arbitrary offsets after a 14-byte Ethernet header and VLAN
// tags, and an aligned load at an odd address is undefined behaviour.

#[repr(C)]
struct EthHdr {
    dst: [u8; 6],
    src: [u8; 6],
    ether_type: [u8; 2],
}

#[repr(C)]
struct VlanTag {
    _tci: [u8; 2],
    ether_type: [u8; 2],
}

#[repr(C)]
struct Ipv4Hdr {
    version_ihl: u8,
    _tos: u8,
    tot_len: [u8; 2],
    _id: [u8; 2],
    frag_off: [u8; 2],
    ttl: u8,
    protocol: u8,
    check: [u8; 2],
    src: [u8; 4],
    dst: [u8; 4],
}

#[repr(C)]
struct Ipv6Hdr {
    _version_class_flow: [u8; 4],
    payload_len: [u8; 2],
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

#[repr(C)]
struct UdpHdr {
    src_port: [u8; 2],
    dst_port: [u8; 2],
    len: [u8; 2],
    check: [u8; 2],
}

/// A BEP 15 connect request (protocol id, action, transaction id) and, in
/// its place, the response (action, transaction id, connection id): both
/// 16 bytes.
type ConnectMsg = [u8; CONNECT_REQUEST_LEN];

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_UDP: u8 = 17;
/// More-fragments flag and fragment offset of `frag_off`.
const IPV4_FRAGMENT_MASK: u16 = 0x3FFF;
/// TTL and hop limit of answered connects, as Linux uses by default. The
/// request's own TTL is what was left of the client's after the trip here,
/// possibly too little for the trip back.
const REPLY_TTL: u8 = 64;
const UDP_CONNECT_LEN: u16 = (mem::size_of::<UdpHdr>() + CONNECT_REQUEST_LEN) as u16;

#[xdp]
pub fn tracker_xdp(ctx: XdpContext) -> u32 {
    count(counter::SEEN);
    let (action, outcome) = match handle(&ctx) {
        Ok(verdict) => verdict,
        // Too short to hold the headers it announces, before any tracker
        // address was recognised: the kernel's problem, not ours.
        Err(()) => (xdp_action::XDP_PASS, counter::PASSED),
    };
    count(outcome);
    action
}

/// Returns the XDP action and the counter it is accounted under.
#[inline(always)]
fn handle(ctx: &XdpContext) -> Result<(u32, u32), ()> {
    const PASS: (u32, u32) = (xdp_action::XDP_PASS, counter::PASSED);
    const MALFORMED: (u32, u32) = (xdp_action::XDP_PASS, counter::MALFORMED);

    let eth: *mut EthHdr = ptr_at_mut(ctx, 0)?;
    let mut ether_type = be16(unsafe { (*eth).ether_type });
    let mut l3 = mem::size_of::<EthHdr>();
    // At most two tags (QinQ); the verifier needs a fixed bound anyway.
    for _ in 0..2 {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let tag: *const VlanTag = ptr_at(ctx, l3)?;
        ether_type = be16(unsafe { (*tag).ether_type });
        l3 += mem::size_of::<VlanTag>();
    }

    let (ip, l4, udp, ip_payload_len) = match ether_type {
        ETH_P_IPV4 => {
            let ip: *mut Ipv4Hdr = ptr_at_mut(ctx, l3)?;
            let (version_ihl, protocol, frag_off) =
                unsafe { ((*ip).version_ihl, (*ip).protocol, be16((*ip).frag_off)) };
            let ihl = usize::from(version_ihl & 0x0F) * 4;
            if version_ihl >> 4 != 4 || ihl < mem::size_of::<Ipv4Hdr>() || protocol != IPPROTO_UDP {
                return Ok(PASS);
            }
            // Only the first fragment has a UDP header, and only the
            // kernel can reassemble: leave all of them to it.
            if frag_off & IPV4_FRAGMENT_MASK != 0 {
                return Ok(PASS);
            }
            let l4 = l3 + ihl;
            let udp: *mut UdpHdr = ptr_at_mut(ctx, l4)?;
            let dst_port = be16(unsafe { (*udp).dst_port });
            if !listening(&ListenKey::v4(unsafe { (*ip).dst }, dst_port)) {
                return Ok(PASS);
            }
            let tot_len = usize::from(be16(unsafe { (*ip).tot_len }));
            let present = frame_len(ctx) - l3;
            if tot_len < ihl + mem::size_of::<UdpHdr>() || tot_len > present {
                debug!(
                    ctx,
                    "malformed IPv4 datagram to tracker port {}: total length {} in {} bytes",
                    dst_port,
                    tot_len,
                    present
                );
                return Ok(MALFORMED);
            }
            let simple = ihl == mem::size_of::<Ipv4Hdr>();
            (Ip::V4 { hdr: ip, simple }, l4, udp, tot_len - ihl)
        }
        ETH_P_IPV6 => {
            let ip: *mut Ipv6Hdr = ptr_at_mut(ctx, l3)?;
            // Extension headers would have to be walked one by one; a
            // tracker's clients do not send them, so the kernel can.
            if unsafe { (*ip).next_header } != IPPROTO_UDP {
                return Ok(PASS);
            }
            let l4 = l3 + mem::size_of::<Ipv6Hdr>();
            let udp: *mut UdpHdr = ptr_at_mut(ctx, l4)?;
            let dst_port = be16(unsafe { (*udp).dst_port });
            if !listening(&ListenKey::v6(unsafe { (*ip).dst }, dst_port)) {
                return Ok(PASS);
            }
            let payload_len = usize::from(be16(unsafe { (*ip).payload_len }));
            let present = frame_len(ctx) - l4;
            if payload_len > present {
                debug!(
                    ctx,
                    "malformed IPv6 packet to tracker port {}: payload length {} in {} bytes",
                    dst_port,
                    payload_len,
                    present
                );
                return Ok(MALFORMED);
            }
            (Ip::V6(ip), l4, udp, payload_len)
        }
        _ => return Ok(PASS),
    };

    let udp_len = be16(unsafe { (*udp).len });
    if usize::from(udp_len) < mem::size_of::<UdpHdr>() || usize::from(udp_len) > ip_payload_len {
        debug!(
            ctx,
            "malformed UDP datagram to tracker port {}: length {} in an IP payload of {}",
            be16(unsafe { (*udp).dst_port }),
            udp_len,
            ip_payload_len
        );
        return Ok(MALFORMED);
    }

    if udp_len == UDP_CONNECT_LEN {
        let packet = Packet { eth, ip, udp, l4 };
        if answer_connect(ctx, &packet).is_ok() {
            return Ok((xdp_action::XDP_TX, counter::ANSWERED));
        }
    }

    // With XDP_PASS in the flags, a queue without a bound AF_XDP socket
    // passes the frame on to the kernel instead of dropping it, so the
    // tracker's ordinary sockets answer until (and unless) one is bound.
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
        Ok(action) => Ok((action, counter::REDIRECTED)),
        Err(_) => Ok(PASS),
    }
}

/// The headers of a tracker datagram, already bounds-checked. Kept as
/// pointers rather than offsets: the verifier tracks the checked range per
/// pointer, and a pointer rebuilt from an offset would need checking again.
struct Packet {
    eth: *mut EthHdr,
    ip: Ip,
    udp: *mut UdpHdr,
    /// Offset of the UDP header.
    l4: usize,
}

#[derive(Clone, Copy)]
enum Ip {
    /// `simple`: a 20-byte header without options.
    V4 {
        hdr: *mut Ipv4Hdr,
        simple: bool,
    },
    V6(*mut Ipv6Hdr),
}

/// Whether `key`, or the same port on the wildcard address, is a tracker
/// address.
#[inline(always)]
fn listening(key: &ListenKey) -> bool {
    LISTEN.get_ptr(key).is_some() || LISTEN.get_ptr(key.wildcard()).is_some()
}

/// Turns a BEP 15 connect into its response in place, or returns `Err`
/// leaving the frame untouched for userland. The caller has checked that
/// the UDP datagram is exactly a connect request long.
#[inline(always)]
fn answer_connect(ctx: &XdpContext, packet: &Packet) -> Result<(), ()> {
    let &Packet { eth, ip, udp, l4 } = packet;
    let state = *CONNECT.get(0).ok_or(())?;
    if state.enabled == 0 {
        return Err(());
    }
    let msg: *mut ConnectMsg = ptr_at_mut(ctx, l4 + mem::size_of::<UdpHdr>())?;
    let request = unsafe { msg.read() };
    let [p0, p1, p2, p3, p4, p5, p6, p7, a0, a1, a2, a3, t0, t1, t2, t3] = request;
    if u64::from_be_bytes([p0, p1, p2, p3, p4, p5, p6, p7]) != PROTOCOL_ID
        || u32::from_be_bytes([a0, a1, a2, a3]) != ACTION_CONNECT
    {
        return Err(());
    }
    // A connect sent to a broadcast or multicast address gets no answer
    // from a socket either, and swapping addresses would make that group
    // the reply's source.
    if unsafe { (*eth).dst[0] } & 1 != 0 {
        return Err(());
    }

    // The one's complement sum of the addresses, for the pseudo-header.
    let (client, addr_sum) = match ip {
        // Options such as source routes would have to be reversed, not
        // echoed; userland's socket does that right.
        Ip::V4 { simple: false, .. } => return Err(()),
        Ip::V4 { hdr, simple: true } => {
            let (src, dst) = unsafe { ((*hdr).src, (*hdr).dst) };
            // Multicast, reserved and the limited broadcast address.
            if dst[0] >= 224 {
                return Err(());
            }
            let sum = sum_words(sum_words(0, &src), &dst);
            (IpAddr::V4(Ipv4Addr::from(src)), sum)
        }
        Ip::V6(hdr) => {
            let (src, dst) = unsafe { ((*hdr).src, (*hdr).dst) };
            if dst[0] == 0xFF {
                return Err(());
            }
            let sum = sum_words(sum_words(0, &src), &dst);
            (IpAddr::V6(Ipv6Addr::from(src)), sum)
        }
    };

    let (src_port, dst_port, udp_len, udp_check) =
        unsafe { ((*udp).src_port, (*udp).dst_port, (*udp).len, (*udp).check) };
    let pseudo = addr_sum + u32::from(IPPROTO_UDP) + u32::from(be16(udp_len));
    let ports = u32::from(be16(src_port)) + u32::from(be16(dst_port));
    // Zero means "no checksum", allowed over IPv4 only; the reply then goes
    // without one too.
    let optional = matches!(ip, Ip::V4 { .. }) && be16(udp_check) == 0;
    if !optional {
        // Answer only what the kernel would accept. A frame from a local
        // sender with checksum offload (the far end of a veth) carries
        // only the pseudo-header sum, which the kernel trusts as such; any
        // other mismatch is corruption, left to the kernel to drop.
        let sum = pseudo + ports + u32::from(be16(udp_len)) + u32::from(be16(udp_check));
        let valid = fold(sum_words(sum, &request)) == 0xFFFF;
        let partial = be16(udp_check) == fold(pseudo);
        if !valid && !partial {
            return Err(());
        }
    }

    let secret = ConnectionIdSecret {
        k0: state.k0,
        k1: state.k1,
    };
    let id = make_connection_id(&secret, state.tick, &ip_to_16(client)).0;
    let [c0, c1, c2, c3, c4, c5, c6, c7] = id.to_be_bytes();
    let [x0, x1, x2, x3] = ACTION_CONNECT.to_be_bytes();
    let response: ConnectMsg = [
        x0, x1, x2, x3, t0, t1, t2, t3, c0, c1, c2, c3, c4, c5, c6, c7,
    ];
    // Computed afresh rather than updated (RFC 1624) so that a request with
    // a partial checksum still gets a complete one. Swapping addresses and
    // ports changes none of the terms.
    let udp_check = if optional {
        0
    } else {
        let sum = pseudo + ports + u32::from(be16(udp_len));
        match !fold(sum_words(sum, &response)) {
            // Zero means "no checksum" on the wire; its one's complement
            // twin stands for a computed zero (RFC 768).
            0 => 0xFFFF,
            check => check,
        }
    };

    unsafe {
        match ip {
            Ip::V4 { hdr, .. } => {
                let (src, dst, ttl, protocol) =
                    ((*hdr).src, (*hdr).dst, (*hdr).ttl, (*hdr).protocol);
                let check =
                    csum_replace(be16((*hdr).check), &[ttl, protocol], &[REPLY_TTL, protocol]);
                (*hdr).src = dst;
                (*hdr).dst = src;
                (*hdr).ttl = REPLY_TTL;
                (*hdr).check = check.to_be_bytes();
            }
            Ip::V6(hdr) => {
                let (src, dst) = ((*hdr).src, (*hdr).dst);
                (*hdr).src = dst;
                (*hdr).dst = src;
                (*hdr).hop_limit = REPLY_TTL;
            }
        }
        mem::swap(&mut (*eth).src, &mut (*eth).dst);
        (*udp).src_port = dst_port;
        (*udp).dst_port = src_port;
        (*udp).check = udp_check.to_be_bytes();
        msg.write(response);
    }
    Ok(())
}

/// A pointer to a `T` at `offset` bytes into the frame, if the frame holds
/// all of it. Every packet access goes through here: the verifier rejects
/// any load it has not seen bounded by `data_end`.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let (start, end) = frame(ctx);
    if start + offset + mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Result<*mut T, ()> {
    ptr_at(ctx, offset).map(<*const T>::cast_mut)
}

/// The frame's start and end addresses. Read volatile so that each bounds
/// check starts from fresh loads: otherwise LLVM proves a later check
/// redundant from an earlier one and drops it, then rebuilds the pointer
/// from a reload of `data` that the verifier has never seen checked.
#[inline(always)]
fn frame(ctx: &XdpContext) -> (usize, usize) {
    unsafe {
        (
            ptr::read_volatile(&raw const (*ctx.ctx).data) as usize,
            ptr::read_volatile(&raw const (*ctx.ctx).data_end) as usize,
        )
    }
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    let (start, end) = frame(ctx);
    end - start
}

#[inline(always)]
fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

#[inline(always)]
fn count(index: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(index) {
        // Per-CPU: nothing else writes this slot concurrently.
        unsafe { *value += 1 };
    }
}

/// `sum` plus the big-endian 16-bit words of `bytes` (an even number of
/// them), without folding: callers add at most a few dozen words, far from
/// overflowing 32 bits.
#[inline(always)]
fn sum_words<const N: usize>(mut sum: u32, bytes: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    sum
}

/// Folds a 32-bit sum of 16-bit words to their one's complement sum.
#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    // Two rounds absorb every carry of a 32-bit sum.
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum as u16
}

/// The Internet checksum `check` after the bytes `old` of the data it
/// covers (at an even offset) were replaced by `new`: RFC 1624's
/// HC' = ~(~HC + ~m + m'), which needs neither the rest of the packet nor
/// the pseudo-header.
#[inline(always)]
fn csum_replace<const N: usize>(check: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut sum = u32::from(!check);
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(!u16::from_be_bytes([old[i], old[i + 1]]));
        i += 2;
    }
    !fold(sum_words(sum, new))
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The program's real licence. The kernel reserves some helpers and most
// kfuncs for GPL-compatible programs; none used here is one of them (the
// verifier would name it), so no GPL claim is needed.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 18] = *b"MIT OR Apache-2.0\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path
    // that could get here, since BPF cannot unwind or abort.
    loop {}
}
