//! Ethernet / VLAN / IPv4 / IPv6 / UDP framing for the AF_XDP path.
//!
//! Frames arrive from the wire without any help from the kernel stack, so
//! everything the stack would normally check before a UDP socket sees a
//! datagram has to be checked here, and every header of the answer has to be
//! written here. The header layouts, constants and checksum arithmetic are
//! `tracker_proto::net`, shared with the XDP program; this module adds the
//! tracker's policy (which frames are answerable) and the reply path.
//! Nothing in this module panics on any input: the views are made with
//! `new_checked`, and everything else is reached through `get`.
//!
//! The UDP checksum is verified here as in the XDP program, with the same
//! rule (`UdpChecksum::accepted`): whatever the kernel's UDP stack would
//! accept. A datagram taken off the wire by AF_XDP never reaches the
//! stack's own check, and Ethernet's FCS covers only the link, not the
//! hosts and switches in between. Accepted are a complete checksum, none
//! over IPv4 (zero), and the bare pseudo-header sum a local sender with
//! checksum offload leaves in the field (CHECKSUM_PARTIAL): on a veth, and
//! on any NIC seen before the wire, XDP sees that raw, and rejecting it
//! would drop exactly the locally generated traffic the tests use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use tracker_proto::net::checksum::{pseudo_header_v4, pseudo_header_v6};
use tracker_proto::net::{ethernet, ip_proto, ipv4, ipv6, udp, REPLY_HOP_LIMIT};

pub use tracker_proto::net::ethernet::MAX_VLAN_TAGS;
/// Replies stay within the classic Ethernet MTU: the path MTU towards the
/// client is unknown here, and tracker answers are far smaller anyway (the
/// largest, a 74-hash scrape, is 896 bytes of UDP payload).
pub const MAX_IP_PACKET: usize = 1500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame ends before a header, or before the length a header claims.
    TooShort,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    TooManyVlans,
    /// IP version field disagrees with the ethertype, or IPv4 IHL < 5.
    BadIpHeader,
    /// IPv4 header checksum does not verify.
    BadChecksum,
    /// An IPv4 fragment or an IPv6 fragment header; reassembly is the
    /// kernel's job.
    Fragment,
    /// Not UDP (including IPv6 with extension headers before UDP).
    NotUdp,
    /// IP or UDP length fields that contradict each other.
    BadLength,
    /// A source that cannot or must not be answered (multicast, broadcast,
    /// unspecified, loopback, port 0), or a multicast/broadcast destination:
    /// the kernel stack would drop these as martians, and answering them
    /// would send unicast-looking replies to group addresses.
    BadAddress,
    /// A UDP checksum the kernel would reject: wrong, or zero over IPv6.
    BadUdpChecksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            FrameError::TooShort => "frame truncated",
            FrameError::NotIp => "not IPv4/IPv6",
            FrameError::TooManyVlans => "too many VLAN tags",
            FrameError::BadIpHeader => "malformed IP header",
            FrameError::BadChecksum => "bad IPv4 header checksum",
            FrameError::Fragment => "IP fragment",
            FrameError::NotUdp => "not UDP",
            FrameError::BadLength => "inconsistent IP/UDP length",
            FrameError::BadAddress => "unanswerable address",
            FrameError::BadUdpChecksum => "bad UDP checksum",
        };
        f.write_str(s)
    }
}

impl std::error::Error for FrameError {}

impl From<tracker_proto::net::Error> for FrameError {
    fn from(e: tracker_proto::net::Error) -> Self {
        match e {
            tracker_proto::net::Error::Truncated => FrameError::TooShort,
            tracker_proto::net::Error::BadHeader => FrameError::BadIpHeader,
            tracker_proto::net::Error::BadLength => FrameError::BadLength,
        }
    }
}

/// One 802.1Q/802.1ad tag as it appeared on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    /// PCP, DEI and VLAN id, echoed unchanged so the reply keeps the
    /// request's priority.
    pub tci: u16,
}

/// Everything needed to answer a request: the reply goes from `local` (the
/// request's destination) to `client` (the request's source) through the
/// same VLAN tags, with the MAC addresses swapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyPath {
    /// The request's source MAC; the reply's destination.
    pub client_mac: [u8; 6],
    /// The request's destination MAC; the reply's source.
    pub local_mac: [u8; 6],
    /// Outermost first; only the first `vlan_count` are meaningful.
    pub vlans: [VlanTag; MAX_VLAN_TAGS],
    pub vlan_count: u8,
    pub client: SocketAddr,
    pub local: SocketAddr,
}

impl ReplyPath {
    /// Bytes of Ethernet + VLAN + IP + UDP headers a reply on this path
    /// carries, or None if the path is inconsistent (mixed address families
    /// or too many tags).
    pub fn header_len(&self) -> Option<usize> {
        let l2 = l2_len(self.vlan_count)?;
        Some(l2 + ip_header_len(self)? + udp::HEADER_LEN)
    }

    /// The tags actually present, outermost first.
    pub fn vlan_tags(&self) -> &[VlanTag] {
        self.vlans
            .get(..usize::from(self.vlan_count))
            .unwrap_or(&[])
    }
}

fn l2_len(vlan_count: u8) -> Option<usize> {
    let n = usize::from(vlan_count);
    (n <= MAX_VLAN_TAGS).then_some(ethernet::HEADER_LEN + ethernet::vlan::TAG_LEN * n)
}

fn ip_header_len(path: &ReplyPath) -> Option<usize> {
    match (path.local, path.client) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => Some(ipv4::HEADER_LEN),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => Some(ipv6::HEADER_LEN),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedFrame<'a> {
    pub path: ReplyPath,
    /// The UDP payload, bounded by the UDP length (never includes Ethernet
    /// padding or trailing bytes after the IP packet).
    pub payload: &'a [u8],
}

/// Parses an Ethernet II frame carrying UDP over IPv4 or IPv6, optionally
/// behind one or two VLAN tags.
pub fn parse_udp_frame(frame: &[u8]) -> Result<ParsedFrame<'_>, FrameError> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();

    let mut vlans = [VlanTag::default(); MAX_VLAN_TAGS];
    let mut vlan_count = 0usize;
    while ethernet::is_vlan(ethertype) {
        let slot = vlans.get_mut(vlan_count).ok_or(FrameError::TooManyVlans)?;
        let tag = ethernet::vlan::Tag::new_checked(rest)?;
        *slot = VlanTag {
            tpid: ethertype,
            tci: tag.tci(),
        };
        vlan_count += 1;
        ethertype = tag.ethertype();
        rest = rest
            .get(ethernet::vlan::TAG_LEN..)
            .ok_or(FrameError::TooShort)?;
    }

    let (client_ip, local_ip, l4) = match ethertype {
        ethernet::ethertype::IPV4 => parse_ipv4(rest)?,
        ethernet::ethertype::IPV6 => parse_ipv6(rest)?,
        _ => return Err(FrameError::NotIp),
    };

    let datagram = udp::Datagram::new_checked(l4)?;
    let client_port = datagram.src_port();
    let local_port = datagram.dst_port();

    // A group source MAC is invalid on Ethernet; answering it would
    // multicast the reply.
    if ethernet::is_group(&eth.src_addr()) || client_port == 0 || local_port == 0 {
        return Err(FrameError::BadAddress);
    }

    let (pseudo, is_v4) = match (client_ip, local_ip) {
        (IpAddr::V4(c), IpAddr::V4(l)) => (
            pseudo_header_v4(&c.octets(), &l.octets(), ip_proto::UDP, datagram.length()),
            true,
        ),
        (IpAddr::V6(c), IpAddr::V6(l)) => (
            pseudo_header_v6(
                &c.octets(),
                &l.octets(),
                ip_proto::UDP,
                u32::from(datagram.length()),
            ),
            false,
        ),
        // Both come from the same IP header.
        _ => return Err(FrameError::NotIp),
    };
    if !datagram.checksum_class(pseudo, is_v4).accepted() {
        return Err(FrameError::BadUdpChecksum);
    }

    Ok(ParsedFrame {
        path: ReplyPath {
            client_mac: eth.src_addr(),
            local_mac: eth.dst_addr(),
            vlans,
            // At most MAX_VLAN_TAGS (2), enforced by the loop above.
            vlan_count: vlan_count as u8,
            client: SocketAddr::new(client_ip, client_port),
            local: SocketAddr::new(local_ip, local_port),
        },
        payload: datagram.payload(),
    })
}

/// Returns (source, destination, bytes after the IP header bounded by the
/// IP length).
fn parse_ipv4(packet: &[u8]) -> Result<(IpAddr, IpAddr, &[u8]), FrameError> {
    // Bounded by the IP length, not the frame: short frames are padded to
    // 60 bytes and the padding is not payload.
    let ip = ipv4::Packet::new_checked(packet)?;
    if !ip.verify_checksum() {
        return Err(FrameError::BadChecksum);
    }
    if ip.is_fragment() {
        return Err(FrameError::Fragment);
    }
    if ip.protocol() != ip_proto::UDP {
        return Err(FrameError::NotUdp);
    }
    let src = Ipv4Addr::from(ip.src_addr());
    let dst = Ipv4Addr::from(ip.dst_addr());
    if src.is_unspecified()
        || src.is_broadcast()
        || src.is_multicast()
        || src.is_loopback()
        || dst.is_unspecified()
        || dst.is_broadcast()
        || dst.is_multicast()
    {
        return Err(FrameError::BadAddress);
    }
    Ok((IpAddr::V4(src), IpAddr::V4(dst), ip.payload()))
}

fn parse_ipv6(packet: &[u8]) -> Result<(IpAddr, IpAddr, &[u8]), FrameError> {
    // The version and next header are judged before the payload length, so
    // that a fragment or a non-UDP packet is reported as such.
    let fixed = packet.get(..ipv6::HEADER_LEN).ok_or(FrameError::TooShort)?;
    let head = ipv6::Packet::new_unchecked(fixed);
    if head.version() != 6 {
        return Err(FrameError::BadIpHeader);
    }
    match head.next_header() {
        ip_proto::UDP => {}
        ip_proto::IPV6_FRAGMENT => return Err(FrameError::Fragment),
        // Extension headers are legal but never used by tracker clients;
        // the kernel stack still handles such packets.
        _ => return Err(FrameError::NotUdp),
    }
    // Zero would mean a jumbogram, which needs a hop-by-hop header and so
    // cannot reach here legitimately.
    if head.payload_len() == 0 {
        return Err(FrameError::BadLength);
    }
    let ip = ipv6::Packet::new_checked(packet)?;
    let src = Ipv6Addr::from(ip.src_addr());
    let dst = Ipv6Addr::from(ip.dst_addr());
    if src.is_unspecified()
        || src.is_multicast()
        || src.is_loopback()
        || dst.is_unspecified()
        || dst.is_multicast()
    {
        return Err(FrameError::BadAddress);
    }
    Ok((IpAddr::V6(src), IpAddr::V6(dst), ip.payload()))
}

/// Writes a complete reply frame for `path` into `out`: Ethernet (+VLAN
/// tags), IPv4 or IPv6, UDP, and the payload produced by `write_payload`.
///
/// `write_payload` gets the space after the headers, capped so the IP packet
/// stays within [`MAX_IP_PACKET`], and returns how many bytes it wrote (or
/// None to abandon the reply). Lengths and checksums are filled in
/// afterwards. Returns the frame length, or None if the headers do not fit,
/// the path is inconsistent, or the closure declined / overstated its
/// length.
pub fn write_reply_frame(
    path: &ReplyPath,
    out: &mut [u8],
    write_payload: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let l2 = l2_len(path.vlan_count)?;
    let ip_len = ip_header_len(path)?;
    let headers = l2 + ip_len + udp::HEADER_LEN;
    let limit = out.len().min(l2 + MAX_IP_PACKET);
    let payload_area = out.get_mut(headers..limit)?;
    let payload_len = write_payload(payload_area)?;
    if payload_len > limit - headers {
        return None;
    }

    let frame = out.get_mut(..headers + payload_len)?;
    let (eth, ip_udp) = frame.split_at_mut_checked(l2)?;
    let (ip, segment) = ip_udp.split_at_mut_checked(ip_len)?;
    write_ethernet(path, eth)?;

    let udp_len = u16::try_from(segment.len()).ok()?;
    let pseudo = match (path.local, path.client) {
        (SocketAddr::V4(local), SocketAddr::V4(client)) => {
            write_ipv4_header(ip, *local.ip(), *client.ip(), udp_len)?;
            pseudo_header_v4(
                &local.ip().octets(),
                &client.ip().octets(),
                ip_proto::UDP,
                udp_len,
            )
        }
        (SocketAddr::V6(local), SocketAddr::V6(client)) => {
            write_ipv6_header(ip, local, client, udp_len);
            pseudo_header_v6(
                &local.ip().octets(),
                &client.ip().octets(),
                ip_proto::UDP,
                u32::from(udp_len),
            )
        }
        _ => return None,
    };
    // `new_checked` would judge the length field, which is written next;
    // the slice holds the header and payload by construction.
    let mut datagram = udp::Datagram::new_unchecked(&mut segment[..]);
    datagram.set_src_port(path.local.port());
    datagram.set_dst_port(path.client.port());
    datagram.set_length(udp_len);
    datagram.fill_checksum(pseudo);
    Some(headers + payload_len)
}

fn write_ethernet(path: &ReplyPath, eth: &mut [u8]) -> Option<()> {
    let ethertype = match path.local {
        SocketAddr::V4(_) => ethernet::ethertype::IPV4,
        SocketAddr::V6(_) => ethernet::ethertype::IPV6,
    };
    let tags = path.vlan_tags();
    // Each ethertype field names what follows it: the next tag's TPID, and
    // after the last tag the IP version.
    let after = |i: usize| tags.get(i).map_or(ethertype, |t| t.tpid);
    let (head, mut rest) = eth.split_at_mut_checked(ethernet::HEADER_LEN)?;
    let mut frame = ethernet::Frame::new_checked(head).ok()?;
    frame.set_dst_addr(path.client_mac);
    frame.set_src_addr(path.local_mac);
    frame.set_ethertype(after(0));
    for (i, tag) in tags.iter().enumerate() {
        let (slot, next) = rest.split_at_mut_checked(ethernet::vlan::TAG_LEN)?;
        let mut view = ethernet::vlan::Tag::new_checked(slot).ok()?;
        view.set_tci(tag.tci);
        view.set_ethertype(after(i + 1));
        rest = next;
    }
    Some(())
}

fn write_ipv4_header(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, udp_len: u16) -> Option<()> {
    let total = (ipv4::HEADER_LEN as u16).checked_add(udp_len)?;
    let mut hdr = ipv4::Packet::new_unchecked(ip.get_mut(..ipv4::HEADER_LEN)?);
    hdr.set_version_and_header_len(ipv4::HEADER_LEN);
    hdr.set_dscp_ecn(0);
    hdr.set_total_len(total);
    // Identification 0 is fine with DF set (RFC 6864): the packet is never
    // fragmented, so there is nothing to reassemble.
    hdr.set_ident(0);
    hdr.set_flags_frag(ipv4::FLAG_DF);
    hdr.set_ttl(REPLY_HOP_LIMIT);
    hdr.set_protocol(ip_proto::UDP);
    hdr.set_src_addr(src.octets());
    hdr.set_dst_addr(dst.octets());
    hdr.fill_checksum();
    Some(())
}

fn write_ipv6_header(ip: &mut [u8], src: SocketAddrV6, dst: SocketAddrV6, payload_len: u16) {
    let Some(fixed) = ip.get_mut(..ipv6::HEADER_LEN) else {
        return;
    };
    let mut hdr = ipv6::Packet::new_unchecked(fixed);
    hdr.set_version_unlabelled();
    hdr.set_payload_len(payload_len);
    hdr.set_next_header(ip_proto::UDP);
    hdr.set_hop_limit(REPLY_HOP_LIMIT);
    hdr.set_src_addr(src.ip().octets());
    hdr.set_dst_addr(dst.ip().octets());
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethernet::ethertype::{VLAN_8021AD as TPID_8021AD, VLAN_8021Q as TPID_8021Q};
    use ipv4::{FLAG_DF as IPV4_FLAG_DF, FLAG_MF as IPV4_FLAG_MF};

    /// Deliberately naive RFC 1071 sum, independent of `Checksum`: 16-bit
    /// words, end-around carry after every addition.
    fn ref_sum(chunks: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = chunks.concat();
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u32::from(bytes[i]);
            let lo = u32::from(*bytes.get(i + 1).unwrap_or(&0));
            sum += (hi << 8) | lo;
            if sum > 0xFFFF {
                sum = (sum & 0xFFFF) + 1;
            }
            i += 2;
        }
        sum as u16
    }

    fn ref_checksum(chunks: &[&[u8]]) -> u16 {
        !ref_sum(chunks)
    }

    const CLIENT_MAC: [u8; 6] = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01];
    const LOCAL_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x02];

    #[derive(Clone)]
    struct Req {
        vlans: Vec<(u16, u16)>,
        src: SocketAddr,
        dst: SocketAddr,
        ipv4_options: Vec<u8>,
        payload: Vec<u8>,
        /// Frame length to pad to with junk (like a NIC padding to 60).
        pad_to: usize,
        frag: u16,
        proto: u8,
    }

    impl Req {
        fn v4() -> Self {
            Req {
                vlans: vec![],
                src: "198.51.100.7:51413".parse().unwrap(),
                dst: "203.0.113.1:6969".parse().unwrap(),
                ipv4_options: vec![],
                payload: b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\xde\xad\xbe\xef"
                    .to_vec(),
                pad_to: 0,
                frag: 0,
                proto: 17,
            }
        }

        fn v6() -> Self {
            Req {
                src: "[2001:db8::7]:51413".parse().unwrap(),
                dst: "[2001:db8:1::1]:6969".parse().unwrap(),
                ..Req::v4()
            }
        }

        /// Built byte by byte, independently of the code under test.
        fn build(&self) -> Vec<u8> {
            let mut f = Vec::new();
            f.extend_from_slice(&LOCAL_MAC);
            f.extend_from_slice(&CLIENT_MAC);
            for &(tpid, tci) in &self.vlans {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
            }
            let udp_len = (8 + self.payload.len()) as u16;
            let mut udp = Vec::new();
            udp.extend_from_slice(&self.src.port().to_be_bytes());
            udp.extend_from_slice(&self.dst.port().to_be_bytes());
            udp.extend_from_slice(&udp_len.to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            udp.extend_from_slice(&self.payload);
            match (self.src, self.dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    f.extend_from_slice(&0x0800u16.to_be_bytes());
                    let ihl = 20 + self.ipv4_options.len();
                    assert_eq!(ihl % 4, 0);
                    let pseudo = [
                        &s.ip().octets()[..],
                        &d.ip().octets(),
                        &[0, 17],
                        &udp_len.to_be_bytes(),
                    ]
                    .concat();
                    let c = ref_checksum(&[&pseudo, &udp]);
                    udp[6..8].copy_from_slice(&c.to_be_bytes());
                    let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
                    ip.extend_from_slice(&((ihl + udp.len()) as u16).to_be_bytes());
                    ip.extend_from_slice(&[0x12, 0x34]);
                    ip.extend_from_slice(&self.frag.to_be_bytes());
                    ip.extend_from_slice(&[57, self.proto, 0, 0]);
                    ip.extend_from_slice(&s.ip().octets());
                    ip.extend_from_slice(&d.ip().octets());
                    ip.extend_from_slice(&self.ipv4_options);
                    let c = ref_checksum(&[&ip]);
                    ip[10..12].copy_from_slice(&c.to_be_bytes());
                    f.extend_from_slice(&ip);
                }
                (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                    f.extend_from_slice(&0x86DDu16.to_be_bytes());
                    let pseudo = [
                        &s.ip().octets()[..],
                        &d.ip().octets(),
                        &(udp_len as u32).to_be_bytes(),
                        &[0, 0, 0, 17],
                    ]
                    .concat();
                    let c = ref_checksum(&[&pseudo, &udp]);
                    udp[6..8].copy_from_slice(&c.to_be_bytes());
                    f.extend_from_slice(&[0x60, 0x0A, 0xBC, 0xDE]);
                    f.extend_from_slice(&udp_len.to_be_bytes());
                    f.extend_from_slice(&[self.proto, 51]);
                    f.extend_from_slice(&s.ip().octets());
                    f.extend_from_slice(&d.ip().octets());
                }
                _ => unreachable!(),
            }
            f.extend_from_slice(&udp);
            while f.len() < self.pad_to {
                f.push(0xA5);
            }
            f
        }
    }

    /// Parses a frame with the test's own offsets and verifies both
    /// checksums with `ref_sum`. Returns (ip header, udp segment).
    fn check_reply_checksums(frame: &[u8], l2: usize) -> (Vec<u8>, Vec<u8>) {
        let ethertype = u16::from_be_bytes([frame[l2 - 2], frame[l2 - 1]]);
        let ip = &frame[l2..];
        match ethertype {
            0x0800 => {
                let hdr = &ip[..20];
                assert_eq!(ref_sum(&[hdr]), 0xFFFF, "IPv4 header checksum");
                let total = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
                assert_eq!(total, ip.len());
                let udp = &ip[20..total];
                let pseudo = [
                    &hdr[12..20],
                    &[0, 17][..],
                    &(udp.len() as u16).to_be_bytes()[..],
                ]
                .concat();
                assert_ne!(&udp[6..8], &[0, 0], "IPv4 UDP checksum must be sent");
                assert_eq!(ref_sum(&[&pseudo, udp]), 0xFFFF, "UDP/IPv4 checksum");
                (hdr.to_vec(), udp.to_vec())
            }
            0x86DD => {
                let hdr = &ip[..40];
                let plen = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
                assert_eq!(plen + 40, ip.len());
                let udp = &ip[40..];
                let pseudo = [
                    &hdr[8..40],
                    &(udp.len() as u32).to_be_bytes()[..],
                    &[0, 0, 0, 17][..],
                ]
                .concat();
                assert_ne!(&udp[6..8], &[0, 0]);
                assert_eq!(ref_sum(&[&pseudo, udp]), 0xFFFF, "UDP/IPv6 checksum");
                (hdr.to_vec(), udp.to_vec())
            }
            other => panic!("unexpected ethertype {other:#x}"),
        }
    }

    fn round_trip(req: &Req) {
        let frame = req.build();
        let parsed = parse_udp_frame(&frame).expect("request parses");
        assert_eq!(parsed.payload, &req.payload[..]);
        let p = parsed.path;
        assert_eq!(p.client, req.src);
        assert_eq!(p.local, req.dst);
        assert_eq!(p.client_mac, CLIENT_MAC);
        assert_eq!(p.local_mac, LOCAL_MAC);
        let tags: Vec<(u16, u16)> = p.vlan_tags().iter().map(|t| (t.tpid, t.tci)).collect();
        assert_eq!(tags, req.vlans);

        let answer = b"reply payload, odd length!";
        let mut out = [0u8; 2048];
        let len = write_reply_frame(&p, &mut out, |buf| {
            buf[..answer.len()].copy_from_slice(answer);
            Some(answer.len())
        })
        .expect("reply fits");
        let reply = &out[..len];
        let l2 = 14 + 4 * req.vlans.len();
        assert_eq!(len, p.header_len().unwrap() + answer.len());

        // Ethernet: MACs swapped, identical tags.
        assert_eq!(&reply[0..6], &CLIENT_MAC);
        assert_eq!(&reply[6..12], &LOCAL_MAC);
        assert_eq!(&reply[12..l2 - 2], &frame[12..l2 - 2]);
        let (ip, udp) = check_reply_checksums(reply, l2);
        if req.src.is_ipv4() {
            assert_eq!(ip[0], 0x45);
            assert_eq!(&ip[4..8], &[0, 0, 0x40, 0], "id 0, DF");
            assert_eq!(ip[8], 64);
            assert_eq!(ip[9], 17);
        } else {
            assert_eq!(&ip[0..4], &[0x60, 0, 0, 0]);
            assert_eq!(ip[6], 17);
            assert_eq!(ip[7], 64);
        }
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());

        // And the parser agrees: addresses swapped, payload intact.
        let back = parse_udp_frame(reply).expect("reply parses");
        assert_eq!(back.payload, answer);
        assert_eq!(back.path.client, req.dst);
        assert_eq!(back.path.local, req.src);
        assert_eq!(back.path.client_mac, LOCAL_MAC);
        assert_eq!(back.path.local_mac, CLIENT_MAC);
        assert_eq!(back.path.vlan_tags(), p.vlan_tags());
    }

    fn cases() -> Vec<Req> {
        vec![
            Req::v4(),
            // IHL 6 and the maximum IHL 15.
            Req {
                ipv4_options: vec![1, 1, 1, 0],
                ..Req::v4()
            },
            Req {
                ipv4_options: vec![1; 40],
                ..Req::v4()
            },
            Req {
                vlans: vec![(TPID_8021Q, 0x2064)],
                ..Req::v4()
            },
            Req {
                vlans: vec![(TPID_8021AD, 0x012C), (TPID_8021Q, 0xE007)],
                ..Req::v4()
            },
            Req {
                vlans: vec![(TPID_8021Q, 5), (TPID_8021Q, 6)],
                ..Req::v4()
            },
            Req::v6(),
            Req {
                vlans: vec![(TPID_8021Q, 100)],
                ..Req::v6()
            },
            Req {
                vlans: vec![(TPID_8021AD, 300), (TPID_8021Q, 7)],
                ..Req::v6()
            },
            // Link-local client on the same link: answerable by MAC.
            Req {
                src: "[fe80::1]:4000".parse().unwrap(),
                dst: "[fe80::2]:6969".parse().unwrap(),
                ..Req::v6()
            },
            // Empty and odd-length payloads.
            Req {
                payload: vec![],
                ..Req::v4()
            },
            Req {
                payload: vec![0xFF; 101],
                ..Req::v6()
            },
        ]
    }

    #[test]
    fn requests_round_trip_to_replies() {
        for req in cases() {
            round_trip(&req);
        }
    }

    #[test]
    fn padding_is_not_payload() {
        for base in [Req::v4(), Req::v6()] {
            for vlans in [vec![], vec![(TPID_8021Q, 9)]] {
                let req = Req {
                    payload: vec![7, 8, 9],
                    vlans: vlans.clone(),
                    pad_to: 60,
                    ..base.clone()
                };
                let frame = req.build();
                assert!(frame.len() >= 60);
                let parsed = parse_udp_frame(&frame).unwrap();
                assert_eq!(parsed.payload, &[7, 8, 9]);
                round_trip(&req);
            }
        }
        // A UDP length shorter than the IP payload bounds the payload too.
        let req = Req {
            payload: vec![1, 2, 3, 4],
            ..Req::v4()
        };
        let mut frame = req.build();
        frame[14 + 20 + 5] = 10; // UDP length 12 -> 10
                                 // The checksum covered the old length; zero is "none" over IPv4.
        frame[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
        assert_eq!(parse_udp_frame(&frame).unwrap().payload, &[1, 2]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for req in cases() {
            let frame = req.build();
            for len in 0..frame.len() {
                assert!(
                    parse_udp_frame(&frame[..len]).is_err(),
                    "truncated to {len} of {} parsed",
                    frame.len()
                );
            }
        }
    }

    #[test]
    fn corrupted_frames_never_panic() {
        // Flip every bit of every case, and feed pseudo-random junk.
        for req in cases() {
            let frame = req.build();
            for i in 0..frame.len() {
                for bit in 0..8 {
                    let mut f = frame.clone();
                    f[i] ^= 1 << bit;
                    if let Ok(p) = parse_udp_frame(&f) {
                        let mut out = [0u8; 1600];
                        let _ = write_reply_frame(&p.path, &mut out, |b| {
                            let n = p.payload.len().min(b.len());
                            b[..n].copy_from_slice(&p.payload[..n]);
                            Some(n)
                        });
                    }
                }
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            let mut f: Vec<u8> = (0..len)
                .map(|i| (x.rotate_left(i as u32 % 64) >> 3) as u8)
                .collect();
            // Make the junk reach the deeper parsers now and then.
            if f.len() > 14 && x & 1 == 0 {
                f[12] = 0x08;
                f[13] = 0x00;
            }
            let _ = parse_udp_frame(&f);
        }
    }

    #[test]
    fn fragments_rejected() {
        for frag in [IPV4_FLAG_MF, 1, 0x0100, IPV4_FLAG_MF | 0x20] {
            let f = Req { frag, ..Req::v4() }.build();
            assert_eq!(parse_udp_frame(&f), Err(FrameError::Fragment), "{frag:#x}");
        }
        // DF alone is the normal case.
        let f = Req {
            frag: IPV4_FLAG_DF,
            ..Req::v4()
        }
        .build();
        assert!(parse_udp_frame(&f).is_ok());
        let f = Req {
            proto: 44,
            ..Req::v6()
        }
        .build();
        assert_eq!(parse_udp_frame(&f), Err(FrameError::Fragment));
    }

    #[test]
    fn non_udp_rejected() {
        let f = Req {
            proto: 6,
            ..Req::v4()
        }
        .build();
        assert_eq!(parse_udp_frame(&f), Err(FrameError::NotUdp));
        for proto in [6, 0, 58] {
            let f = Req { proto, ..Req::v6() }.build();
            assert_eq!(parse_udp_frame(&f), Err(FrameError::NotUdp));
        }
        let mut arp = Req::v4().build();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse_udp_frame(&arp), Err(FrameError::NotIp));
        let f = Req {
            vlans: vec![(TPID_8021AD, 1), (TPID_8021Q, 2), (TPID_8021Q, 3)],
            ..Req::v4()
        }
        .build();
        assert_eq!(parse_udp_frame(&f), Err(FrameError::TooManyVlans));
    }

    #[test]
    fn inconsistent_headers_rejected() {
        let good = Req::v4().build();
        let ip = 14;
        let udp = ip + 20;

        let mut f = good.clone();
        f[ip + 11] ^= 0x40;
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadChecksum));

        // Version 6 inside an IPv4 ethertype.
        let mut f = good.clone();
        f[ip] = 0x65;
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadIpHeader));
        let mut f = good.clone();
        f[ip] = 0x44;
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadIpHeader));

        // UDP length below 8 or beyond the IP payload.
        for bad in [0u16, 7, 200] {
            let mut f = good.clone();
            f[udp + 4..udp + 6].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(parse_udp_frame(&f), Err(FrameError::BadLength), "{bad}");
        }
        // IP total length beyond the frame, and below the header.
        let mut f = good.clone();
        f.push(0);
        let total = u16::from_be_bytes([f[ip + 2], f[ip + 3]]) + 2;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let c = ref_checksum(&[&f[ip..ip + 20]]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse_udp_frame(&f), Err(FrameError::TooShort));
        let mut f = good.clone();
        f[ip + 2..ip + 4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadLength));

        // IPv6 payload length 0 and beyond the frame.
        let good6 = Req::v6().build();
        let mut f = good6.clone();
        f[ip + 4..ip + 6].copy_from_slice(&[0, 0]);
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadLength));
        let mut f = good6.clone();
        f[ip + 4..ip + 6].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(parse_udp_frame(&f), Err(FrameError::TooShort));
    }

    #[test]
    fn unanswerable_addresses_rejected() {
        let bad: [(&str, &str); 9] = [
            ("0.0.0.0:68", "203.0.113.1:6969"),
            ("255.255.255.255:1", "203.0.113.1:6969"),
            ("224.0.0.1:1", "203.0.113.1:6969"),
            ("127.0.0.1:1", "203.0.113.1:6969"),
            ("198.51.100.7:1", "255.255.255.255:6969"),
            ("198.51.100.7:1", "239.1.2.3:6969"),
            ("198.51.100.7:0", "203.0.113.1:6969"),
            ("[::]:1", "[2001:db8::1]:6969"),
            ("[2001:db8::7]:1", "[ff02::1]:6969"),
        ];
        for (src, dst) in bad {
            let base = if src.starts_with('[') {
                Req::v6()
            } else {
                Req::v4()
            };
            let f = Req {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                ..base
            }
            .build();
            assert_eq!(
                parse_udp_frame(&f),
                Err(FrameError::BadAddress),
                "{src} -> {dst}"
            );
        }
        let mut f = Req::v4().build();
        f[6] |= 1; // group bit in the source MAC
        assert_eq!(parse_udp_frame(&f), Err(FrameError::BadAddress));
    }

    fn path_of(req: &Req) -> ReplyPath {
        parse_udp_frame(&req.build()).unwrap().path
    }

    #[test]
    fn payload_space_is_capped_at_the_mtu() {
        for (req, ip_hdr) in [(Req::v4(), 20), (Req::v6(), 40)] {
            for vlans in [vec![], vec![(TPID_8021AD, 1), (TPID_8021Q, 2)]] {
                let p = path_of(&Req {
                    vlans: vlans.clone(),
                    ..req.clone()
                });
                let l2 = 14 + 4 * vlans.len();
                let mut out = vec![0u8; 4096];
                let mut offered = 0;
                let len = write_reply_frame(&p, &mut out, |b| {
                    offered = b.len();
                    b.fill(0x5A);
                    Some(b.len())
                })
                .unwrap();
                assert_eq!(offered, 1500 - ip_hdr - 8);
                assert_eq!(len, l2 + 1500);
                check_reply_checksums(&out[..len], l2);

                // A small buffer bounds the closure's slice instead.
                let mut small = vec![0u8; l2 + ip_hdr + 8 + 10];
                let len = write_reply_frame(&p, &mut small, |b| {
                    assert_eq!(b.len(), 10);
                    Some(10)
                });
                assert_eq!(len, Some(small.len()));
            }
        }
    }

    #[test]
    fn write_reply_refuses_what_does_not_fit() {
        let p = path_of(&Req::v4());
        let mut out = [0u8; 41];
        // 42 bytes of headers do not fit in 41; the closure is never run.
        assert_eq!(
            write_reply_frame(&p, &mut out, |_| panic!("must not be called")),
            None
        );
        let mut out = [0u8; 42];
        assert_eq!(write_reply_frame(&p, &mut out, |_| Some(0)), Some(42));
        let mut out = [0u8; 200];
        assert_eq!(write_reply_frame(&p, &mut out, |_| None), None);
        // Claiming more than the slice it was given.
        assert_eq!(write_reply_frame(&p, &mut out, |b| Some(b.len() + 1)), None);

        // Mixed families and impossible tag counts are not a path.
        let mut mixed = p;
        mixed.client = "[2001:db8::1]:5".parse().unwrap();
        assert_eq!(mixed.header_len(), None);
        assert_eq!(write_reply_frame(&mixed, &mut out, |_| Some(0)), None);
        let mut tags = p;
        tags.vlan_count = 3;
        assert_eq!(write_reply_frame(&tags, &mut out, |_| Some(0)), None);
    }

    #[test]
    fn computed_zero_udp_checksum_is_sent_as_ffff() {
        for req in [Req::v4(), Req::v6()] {
            let p = path_of(&req);
            let l2 = 14;
            let mut out = [0u8; 128];
            // With a zero payload word the checksum is !S; a payload word w
            // with S + w = 0xFFFF (one's complement) makes the computed
            // checksum exactly 0.
            let len = write_reply_frame(&p, &mut out, |b| {
                b[..2].copy_from_slice(&[0, 0]);
                Some(2)
            })
            .unwrap();
            let (_, udp) = check_reply_checksums(&out[..len], l2);
            let s = !u16::from_be_bytes([udp[6], udp[7]]);
            let w = 0xFFFF - s;
            let len = write_reply_frame(&p, &mut out, |b| {
                b[..2].copy_from_slice(&w.to_be_bytes());
                Some(2)
            })
            .unwrap();
            let (_, udp) = check_reply_checksums(&out[..len], l2);
            assert_eq!(&udp[6..8], &[0xFF, 0xFF]);
        }
    }

    /// Offset of the UDP checksum in an untagged frame.
    fn udp_check_at(req: &Req) -> usize {
        14 + if req.src.is_ipv4() { 20 } else { 40 } + 6
    }

    #[test]
    fn udp_checksum_policy_matches_the_kernels() {
        for req in [Req::v4(), Req::v6()] {
            let good = req.build();
            let at = udp_check_at(&req);

            // One flipped payload bit: the kernel would drop it, so do we.
            let mut f = good.clone();
            *f.last_mut().unwrap() ^= 0x10;
            assert_eq!(parse_udp_frame(&f), Err(FrameError::BadUdpChecksum));

            // A wrong checksum field.
            let mut f = good.clone();
            f[at] ^= 0x01;
            assert_eq!(parse_udp_frame(&f), Err(FrameError::BadUdpChecksum));

            // The pseudo-header partial sum a local sender with checksum
            // offload leaves (what XDP sees on a veth), computed here with
            // the test's own naive sum.
            let (src, dst) = (req.src.ip(), req.dst.ip());
            let len = (8 + req.payload.len()) as u16;
            let pseudo = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    [&s.octets()[..], &d.octets(), &[0, 17], &len.to_be_bytes()].concat()
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => [
                    &s.octets()[..],
                    &d.octets(),
                    &u32::from(len).to_be_bytes(),
                    &[0, 0, 0, 17],
                ]
                .concat(),
                _ => unreachable!(),
            };
            let mut f = good.clone();
            f[at..at + 2].copy_from_slice(&ref_sum(&[&pseudo]).to_be_bytes());
            assert_eq!(parse_udp_frame(&f).unwrap().payload, &req.payload[..]);

            // Zero: "no checksum" over IPv4, invalid over IPv6.
            let mut f = good.clone();
            f[at..at + 2].copy_from_slice(&[0, 0]);
            if req.src.is_ipv4() {
                assert_eq!(parse_udp_frame(&f).unwrap().payload, &req.payload[..]);
            } else {
                assert_eq!(parse_udp_frame(&f), Err(FrameError::BadUdpChecksum));
            }
        }
    }
}
