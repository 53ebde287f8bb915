//! Ethernet (with 802.1Q/802.1ad tags), IPv4, IPv6 and UDP headers and the
//! Internet checksum, written once for both ends of the XDP path.
//!
//! The XDP program (tracker-ebpf, built for `bpfel-unknown-none`) and the
//! AF_XDP front end (tracker-user's `xdp::frame`) both read and write these
//! headers without the kernel stack's help. They used to carry a copy each,
//! under different names, and the kernel side had no host tests at all; now
//! both take their offsets, constants and checksum arithmetic from here, and
//! the tests beside this code cover the eBPF program's arithmetic too.
//!
//! The style is smoltcp's `wire` module: each header has a `field` module of
//! byte ranges, and a typed view over a byte buffer (`Packet<&[u8]>` to read,
//! `Packet<&mut [u8]>` to write) whose `new_checked` rejects short or
//! self-contradictory input with an [`Error`] instead of panicking later.
//! `new_unchecked` is for buffers whose length the caller has already fixed:
//! the eBPF program makes its views over `&[u8; N]` references into the
//! frame, each bounds-checked against `data_end` for exactly the header's
//! length, so every field access is that checked pointer plus a constant,
//! which is the form the verifier accepts.

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

/// IP protocol numbers (IPv4 protocol, IPv6 next header).
pub mod ip_proto {
    pub const UDP: u8 = 17;
    /// The IPv6 fragment extension header.
    pub const IPV6_FRAGMENT: u8 = 44;
}

/// TTL / hop limit of the replies both sides build: Linux's default, so
/// they look like the ones the kernel path sends. A request's own TTL is
/// what was left of the client's after the trip here, possibly too little
/// for the trip back.
pub const REPLY_HOP_LIMIT: u8 = 64;

/// Why a header view could not be made over a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the header, or before the length the header
    /// claims for itself and its payload.
    Truncated,
    /// A version or header-length field that cannot be this header's.
    BadHeader,
    /// A length field that contradicts the header's own size.
    BadLength,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated header or payload",
            Error::BadHeader => "malformed header",
            Error::BadLength => "inconsistent length field",
        })
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// The big-endian `u16` at `at` (two bytes). Panics only if `at` is out of
/// range, which the views rule out by checking lengths once up front.
#[inline(always)]
fn get_u16(buf: &[u8], at: core::ops::Range<usize>) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at]);
    u16::from_be_bytes(b)
}

#[inline(always)]
fn set_u16(buf: &mut [u8], at: core::ops::Range<usize>, value: u16) {
    buf[at].copy_from_slice(&value.to_be_bytes());
}

#[inline(always)]
fn get_array<const N: usize>(buf: &[u8], at: core::ops::Range<usize>) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at]);
    out
}

#[cfg(test)]
mod tests {
    use super::checksum::{pseudo_header_v4, pseudo_header_v6, UdpChecksum};
    use super::*;

    /// A BEP 15 connect from 198.51.100.7:51413 to 203.0.113.1:6969 behind
    /// one 802.1Q tag (VLAN 100, PCP 1), as a capture would show it.
    /// Checksums computed independently with Python:
    ///   csum = lambda b: ~fold(sum(struct.unpack("!%dH" % (len(b)//2), b)))
    ///   IPv4 header with id 0x1234, DF, TTL 57 -> 0xc950
    ///   pseudo-header + UDP segment -> 0xd32d
    const VLAN_IPV4_CONNECT: [u8; 62] = [
        0x02, 0x11, 0x22, 0x33, 0x44, 0x02, 0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01, // MACs
        0x81, 0x00, 0x20, 0x64, 0x08, 0x00, // 802.1Q tag, IPv4
        0x45, 0x00, 0x00, 0x2C, 0x12, 0x34, 0x40, 0x00, 0x39, 0x11, 0xC9, 0x50, // IPv4
        198, 51, 100, 7, 203, 0, 113, 1, // addresses
        0xC8, 0xD5, 0x1B, 0x39, 0x00, 0x18, 0xD3, 0x2D, // UDP
        0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
        0x00, 0x00, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, // connect, transaction
    ];

    /// The same connect over IPv6, 2001:db8::7 -> 2001:db8:1::1, untagged.
    /// UDP checksum (Python, RFC 8200 pseudo-header) 0xddef.
    const IPV6_CONNECT: [u8; 78] = [
        0x02, 0x11, 0x22, 0x33, 0x44, 0x02, 0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01, 0x86, 0xDD, 0x60,
        0x0A, 0xBC, 0xDE, 0x00, 0x18, 0x11, 0x33, // fixed part
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, // src
        0x20, 0x01, 0x0D, 0xB8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst
        0xC8, 0xD5, 0x1B, 0x39, 0x00, 0x18, 0xDD, 0xEF, // UDP
        0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
        0x00, 0x00, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, // connect, transaction
    ];

    #[test]
    fn walks_a_vlan_tagged_ipv4_udp_frame() {
        let eth = ethernet::Frame::new_checked(&VLAN_IPV4_CONNECT[..]).unwrap();
        assert!(ethernet::is_vlan(eth.ethertype()));
        let tag = ethernet::vlan::Tag::new_checked(eth.payload()).unwrap();
        assert_eq!(tag.tci(), 0x2064);
        assert_eq!(tag.ethertype(), ethernet::ethertype::IPV4);
        let l3 = ethernet::HEADER_LEN + ethernet::vlan::TAG_LEN;
        let ip = ipv4::Packet::new_checked(&VLAN_IPV4_CONNECT[l3..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(!ip.is_fragment());
        assert_eq!(ip.protocol(), ip_proto::UDP);
        let udp = udp::Datagram::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (51413, 6969));
        assert_eq!(udp.payload().len(), crate::udp::CONNECT_REQUEST_LEN);
        let pseudo = pseudo_header_v4(&ip.src_addr(), &ip.dst_addr(), ip_proto::UDP, udp.length());
        assert_eq!(udp.checksum_class(pseudo, true), UdpChecksum::Complete);
    }

    #[test]
    fn walks_an_ipv6_udp_frame() {
        let eth = ethernet::Frame::new_checked(&IPV6_CONNECT[..]).unwrap();
        assert_eq!(eth.ethertype(), ethernet::ethertype::IPV6);
        let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.next_header(), ip_proto::UDP);
        let udp = udp::Datagram::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.checksum(), 0xDDEF);
        let pseudo = pseudo_header_v6(
            &ip.src_addr(),
            &ip.dst_addr(),
            ip_proto::UDP,
            u32::from(udp.length()),
        );
        assert_eq!(udp.checksum_class(pseudo, false), UdpChecksum::Complete);
        // Swapping the addresses leaves the pseudo-header sum unchanged, so
        // a reply's checksum depends only on what changes in the segment.
        let swapped = pseudo_header_v6(
            &ip.dst_addr(),
            &ip.src_addr(),
            ip_proto::UDP,
            u32::from(udp.length()),
        );
        assert_eq!(pseudo, swapped);
        // One bit off anywhere in the addresses and it no longer verifies.
        let mut src = ip.src_addr();
        src[15] ^= 2;
        let moved = pseudo_header_v6(&src, &ip.dst_addr(), ip_proto::UDP, 24);
        assert_eq!(udp.checksum_class(moved, false), UdpChecksum::Wrong);
    }
}
