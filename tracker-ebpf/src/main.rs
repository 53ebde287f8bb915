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
//! program hands out. Header layouts, constants and checksum arithmetic
//! come from `tracker_proto::net`, the copy userland's AF_XDP path uses
//! too, and are tested on the host there (`cargo test -p tracker-proto`).
#![no_std]
#![no_main]

mod announce;
mod frame;
mod reply;
mod scrape;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use aya_log_ebpf::debug;
use tracker_proto::connection_id::{
    ip_to_16, make_connection_id, verify_connection_id, ConnectionIdSecret,
};
use tracker_proto::net::checksum::{self, UdpChecksum};
use tracker_proto::net::{ethernet, ip_proto, ipv4, ipv6, udp, REPLY_HOP_LIMIT};
use tracker_proto::udp::{
    write_connect_response, ConnectionId, TransactionId, ACTION_ANNOUNCE, ACTION_CONNECT,
    ACTION_SCRAPE, CONNECT_REQUEST_LEN, CONNECT_RESPONSE_LEN, PROTOCOL_ID,
};
use tracker_proto::xdp::{
    counter, ConnectState, ListenKey, MAP_CONNECT, MAP_COUNTERS, MAP_LISTEN, MAP_XSKS, MAX_LISTEN,
    MAX_QUEUES,
};

use frame::{count, frame_len, load, load_mut};

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

/// A BEP 15 connect request (protocol id, action, transaction id) and, in
/// its place, the response (action, transaction id, connection id): both
/// 16 bytes.
type ConnectMsg = [u8; CONNECT_REQUEST_LEN];
const _: () = assert!(CONNECT_REQUEST_LEN == CONNECT_RESPONSE_LEN);

const UDP_CONNECT_LEN: usize = udp::HEADER_LEN + CONNECT_REQUEST_LEN;

#[xdp]
pub fn tracker_xdp(mut ctx: XdpContext) -> u32 {
    count(counter::SEEN);
    let (action, outcome) = match handle(&mut ctx) {
        Some(verdict) => verdict,
        // Too short to hold the headers it announces, before any tracker
        // address was recognised: the kernel's problem, not ours.
        None => (xdp_action::XDP_PASS, counter::PASSED),
    };
    count(outcome);
    action
}

/// Returns the XDP action and the counter it is accounted under.
///
/// Headers are reached through [`load`] as fixed-size byte arrays in the
/// frame and read through `tracker_proto::net`'s views, whose field
/// offsets are constants: after inlining, each read is the bounds-checked
/// packet pointer plus a constant, which is what the verifier accepts.
#[inline(always)]
fn handle(ctx: &mut XdpContext) -> Option<(u32, u32)> {
    const PASS: (u32, u32) = (xdp_action::XDP_PASS, counter::PASSED);
    const MALFORMED: (u32, u32) = (xdp_action::XDP_PASS, counter::MALFORMED);

    let eth = load::<{ ethernet::HEADER_LEN }>(ctx, 0)?;
    let mut ether_type = ethernet::Frame::new_unchecked(eth).ethertype();
    let mut l3 = ethernet::HEADER_LEN;
    // At most two tags (QinQ); the verifier needs a fixed bound anyway.
    for _ in 0..ethernet::MAX_VLAN_TAGS {
        if !ethernet::is_vlan(ether_type) {
            break;
        }
        let tag = load::<{ ethernet::vlan::TAG_LEN }>(ctx, l3)?;
        ether_type = ethernet::vlan::Tag::new_unchecked(tag).ethertype();
        l3 += ethernet::vlan::TAG_LEN;
    }

    let (ip, l4, ip_payload_len) = match ether_type {
        ethernet::ethertype::IPV4 => {
            let ip = ipv4::Packet::new_unchecked(load::<{ ipv4::HEADER_LEN }>(ctx, l3)?);
            let ihl = ip.header_len();
            if ip.version() != 4 || ihl < ipv4::HEADER_LEN || ip.protocol() != ip_proto::UDP {
                return Some(PASS);
            }
            // Only the first fragment has a UDP header, and only the
            // kernel can reassemble: leave all of them to it.
            if ip.is_fragment() {
                return Some(PASS);
            }
            let l4 = l3 + ihl;
            let udp = udp::Datagram::new_unchecked(load::<{ udp::HEADER_LEN }>(ctx, l4)?);
            let dst_port = udp.dst_port();
            if !listening(&ListenKey::v4(ip.dst_addr(), dst_port)) {
                return Some(PASS);
            }
            let tot_len = usize::from(ip.total_len());
            let present = frame_len(ctx) - l3;
            if tot_len < ihl + udp::HEADER_LEN || tot_len > present {
                debug!(
                    ctx,
                    "malformed IPv4 datagram to tracker port {}: total length {} in {} bytes",
                    dst_port,
                    tot_len,
                    present
                );
                return Some(MALFORMED);
            }
            let simple = ihl == ipv4::HEADER_LEN;
            (Ip::V4 { simple }, l4, tot_len - ihl)
        }
        ethernet::ethertype::IPV6 => {
            let ip = ipv6::Packet::new_unchecked(load::<{ ipv6::HEADER_LEN }>(ctx, l3)?);
            // Extension headers would have to be walked one by one; a
            // tracker's clients do not send them, so the kernel can.
            if ip.next_header() != ip_proto::UDP {
                return Some(PASS);
            }
            let l4 = l3 + ipv6::HEADER_LEN;
            let udp = udp::Datagram::new_unchecked(load::<{ udp::HEADER_LEN }>(ctx, l4)?);
            let dst_port = udp.dst_port();
            if !listening(&ListenKey::v6(ip.dst_addr(), dst_port)) {
                return Some(PASS);
            }
            let payload_len = usize::from(ip.payload_len());
            let present = frame_len(ctx) - l4;
            if payload_len > present {
                debug!(
                    ctx,
                    "malformed IPv6 packet to tracker port {}: payload length {} in {} bytes",
                    dst_port,
                    payload_len,
                    present
                );
                return Some(MALFORMED);
            }
            (Ip::V6, l4, payload_len)
        }
        _ => return Some(PASS),
    };

    let udp = udp::Datagram::new_unchecked(load::<{ udp::HEADER_LEN }>(ctx, l4)?);
    let udp_len = usize::from(udp.length());
    if udp_len < udp::HEADER_LEN || udp_len > ip_payload_len {
        debug!(
            ctx,
            "malformed UDP datagram to tracker port {}: length {} in an IP payload of {}",
            udp.dst_port(),
            udp_len,
            ip_payload_len
        );
        return Some(MALFORMED);
    }

    if udp_len == UDP_CONNECT_LEN && answer_connect(ctx, ip, l3, l4).is_some() {
        return Some((xdp_action::XDP_TX, counter::ANSWERED));
    }
    let located = Located {
        ip,
        l3,
        l4,
        udp_len,
    };
    match answer_request(ctx, &located) {
        Some(Answer::Sent(outcome)) => return Some((xdp_action::XDP_TX, outcome)),
        // Called from here, not from `answer_request`: the kernel allows
        // 512 bytes of stack for a whole call chain, and this one is deep.
        Some(Answer::Announce) if announce::answer(ctx, &located) => {
            return Some((xdp_action::XDP_TX, counter::ANNOUNCE_ANSWERED));
        }
        _ => {}
    }

    // With XDP_PASS in the flags, a queue without a bound AF_XDP socket
    // passes the frame on to the kernel instead of dropping it, so the
    // tracker's ordinary sockets answer until (and unless) one is bound.
    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
        Ok(action) => Some((action, counter::REDIRECTED)),
        Err(_) => Some(PASS),
    }
}

/// Answers a scrape in place when its connection id checks out and the
/// answer is switched on and at hand, returning the counter it is
/// accounted under, or says an announce's id checked out; `None` leaves
/// the frame for userland, which answers everything the program does not
/// (a bad id with the BEP 15 error).
/// Not inlined, for the same reason as [`id_valid`].
#[inline(never)]
fn answer_request(ctx: &mut XdpContext, located: &Located) -> Option<Answer> {
    // A reference into the map, not a copy: this frame lies under every
    // answer's, and the kernel allows 512 bytes for the whole call chain.
    let state: &ConnectState = CONNECT.get(0)?;
    if state.scrape == 0 && state.announce == 0 {
        return None;
    }
    // connection id, action, transaction id: the start of both requests.
    let head: &[u8; 16] = load(ctx, located.l4 + udp::HEADER_LEN)?;
    let action = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let wanted = match action {
        ACTION_SCRAPE => state.scrape != 0,
        ACTION_ANNOUNCE => state.announce != 0,
        _ => false,
    };
    if !wanted {
        return None;
    }
    let mut req = core::mem::MaybeUninit::uninit();
    if !request_at(ctx, located, &mut req) {
        return None;
    }
    // SAFETY: `request_at` returned true, so it wrote `req`.
    let req = unsafe { req.assume_init() };
    if !id_valid(ctx, state, &req) {
        count(counter::BAD_CONNECTION_ID);
        return None;
    }
    if action == ACTION_SCRAPE {
        scrape::answer(ctx, state, &req)?;
        Some(Answer::Sent(counter::SCRAPE_ANSWERED))
    } else {
        Some(Answer::Announce)
    }
}

/// What [`answer_request`] did.
enum Answer {
    /// Answered, accounted under this counter.
    Sent(u32),
    /// An announce with a good connection id, for `announce::answer`.
    Announce,
}

/// The connection-id check, in a frame of its own: SipHash's register
/// spills would otherwise sit in `tracker_xdp`'s frame under every answer's,
/// and the kernel allows 512 bytes for the whole call chain.
#[inline(never)]
fn id_valid(ctx: &XdpContext, state: &ConnectState, req: &reply::Request) -> bool {
    let Some(head) = load::<8>(ctx, req.payload()) else {
        return false;
    };
    let id = ConnectionId(u64::from_be_bytes(*head));
    let secret = ConnectionIdSecret {
        k0: state.k0,
        k1: state.k1,
    };
    verify_connection_id(&secret, id, state.tick, state.id_lifetime, &req.client)
}

/// [`reply::Request::new`] in a frame of its own: it builds addresses byte
/// by byte, and each byte's register spill would otherwise stay in the
/// frame under the answer's.
/// Written through `out` and not returned: the compiler may return a
/// returned struct's address, a pointer into the caller's stack, which the
/// verifier refuses.
#[inline(never)]
pub(crate) fn request_at(
    ctx: &XdpContext,
    at: &Located,
    out: &mut core::mem::MaybeUninit<reply::Request>,
) -> bool {
    match reply::Request::new(ctx, at.ip, at.l3, at.l4, at.udp_len) {
        Some(req) => {
            out.write(req);
            true
        }
        None => false,
    }
}

/// Where a tracker datagram's headers are, for [`answer_request`]: BPF
/// calls take at most five arguments.
pub struct Located {
    pub ip: Ip,
    pub l3: usize,
    pub l4: usize,
    pub udp_len: usize,
}

/// The IP version of a tracker datagram, its header already checked.
#[derive(Clone, Copy)]
pub enum Ip {
    /// `simple`: a 20-byte header without options.
    V4 {
        simple: bool,
    },
    V6,
}

/// Whether `key`, or the same port on the wildcard address, is a tracker
/// address.
#[inline(always)]
fn listening(key: &ListenKey) -> bool {
    LISTEN.get_ptr(key).is_some() || LISTEN.get_ptr(key.wildcard()).is_some()
}

/// Turns a BEP 15 connect into its response in place, or returns `None`
/// leaving the frame untouched for userland. The caller has checked the
/// headers at `l3` and `l4` and that the UDP datagram is exactly a connect
/// request long. Not inlined, for the same reason as [`id_valid`].
#[inline(never)]
fn answer_connect(ctx: &mut XdpContext, ip: Ip, l3: usize, l4: usize) -> Option<()> {
    let state = *CONNECT.get(0)?;
    if state.enabled == 0 {
        return None;
    }
    let request: &ConnectMsg = load(ctx, l4 + udp::HEADER_LEN)?;
    let [p0, p1, p2, p3, p4, p5, p6, p7, a0, a1, a2, a3, t0, t1, t2, t3] = *request;
    if u64::from_be_bytes([p0, p1, p2, p3, p4, p5, p6, p7]) != PROTOCOL_ID
        || u32::from_be_bytes([a0, a1, a2, a3]) != ACTION_CONNECT
    {
        return None;
    }
    // A connect sent to a broadcast or multicast address gets no answer
    // from a socket either, and swapping addresses would make that group
    // the reply's source.
    let eth = ethernet::Frame::new_unchecked(load::<{ ethernet::HEADER_LEN }>(ctx, 0)?);
    if ethernet::is_group(&eth.dst_addr()) {
        return None;
    }

    let udp_hdr = load::<{ udp::HEADER_LEN }>(ctx, l4)?;
    let udp = udp::Datagram::new_unchecked(udp_hdr);
    let (src_port, dst_port, udp_len) = (udp.src_port(), udp.dst_port(), udp.length());
    let (client, pseudo) = match ip {
        // Options such as source routes would have to be reversed, not
        // echoed; userland's socket does that right.
        Ip::V4 { simple: false } => return None,
        Ip::V4 { simple: true } => {
            let ip = ipv4::Packet::new_unchecked(load::<{ ipv4::HEADER_LEN }>(ctx, l3)?);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ipv4::is_group_or_reserved(&dst) {
                return None;
            }
            let pseudo = checksum::pseudo_header_v4(&src, &dst, ip_proto::UDP, udp_len);
            (IpAddr::V4(Ipv4Addr::from(src)), pseudo)
        }
        Ip::V6 => {
            let ip = ipv6::Packet::new_unchecked(load::<{ ipv6::HEADER_LEN }>(ctx, l3)?);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ipv6::is_multicast(&dst) {
                return None;
            }
            let pseudo = checksum::pseudo_header_v6(&src, &dst, ip_proto::UDP, u32::from(udp_len));
            (IpAddr::V6(Ipv6Addr::from(src)), pseudo)
        }
    };

    // The one checksum policy of the XDP path (`UdpChecksum::accepted`):
    // answer only what the kernel would accept, since a connect answered
    // here never reaches its check.
    let segment = checksum::sum_words(checksum::sum_words(0, udp_hdr), request);
    let ipv4 = matches!(ip, Ip::V4 { .. });
    let class = UdpChecksum::classify(pseudo, segment, udp.checksum(), ipv4);
    if !class.accepted() {
        return None;
    }

    let secret = ConnectionIdSecret {
        k0: state.k0,
        k1: state.k1,
    };
    let id = make_connection_id(&secret, state.tick, &ip_to_16(client)).0;

    // The reply is written over the request, the furthest bytes first:
    // once they fit, the nearer writes (all within bytes already read)
    // cannot fail and leave the frame half rewritten.
    let reply = load_mut::<UDP_CONNECT_LEN>(ctx, l4)?;
    write_connect_response(
        &mut reply[udp::HEADER_LEN..],
        TransactionId(u32::from_be_bytes([t0, t1, t2, t3])),
        ConnectionId(id),
    )
    .ok()?;
    let mut out = udp::Datagram::new_unchecked(&mut reply[..]);
    out.set_src_port(dst_port);
    out.set_dst_port(src_port);
    out.set_checksum(0);
    // A request without a checksum (IPv4 only) gets a reply without one.
    // Otherwise computed afresh rather than updated (RFC 1624) so that a
    // request with a partial checksum still gets a complete one. Swapping
    // addresses and ports changes none of the pseudo-header's terms.
    if class != UdpChecksum::Absent {
        let check = !checksum::fold(checksum::sum_words(pseudo, reply));
        udp::Datagram::new_unchecked(&mut reply[..]).set_checksum(checksum::udp_on_wire(check));
    }
    match ip {
        Ip::V4 { .. } => {
            let hdr = load_mut::<{ ipv4::HEADER_LEN }>(ctx, l3)?;
            ipv4::Packet::new_unchecked(&mut hdr[..]).reverse_for_reply(REPLY_HOP_LIMIT);
        }
        Ip::V6 => {
            let hdr = load_mut::<{ ipv6::HEADER_LEN }>(ctx, l3)?;
            ipv6::Packet::new_unchecked(&mut hdr[..]).reverse_for_reply(REPLY_HOP_LIMIT);
        }
    }
    let eth = load_mut::<{ ethernet::HEADER_LEN }>(ctx, 0)?;
    ethernet::Frame::new_unchecked(&mut eth[..]).swap_addrs();
    Some(())
}

pub const fn str_eq(a: &str, b: &str) -> bool {
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
