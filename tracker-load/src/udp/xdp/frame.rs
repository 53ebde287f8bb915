//! Ethernet/IPv4/UDP framing for the AF_XDP sender: request frames built
//! from a header template, answers checked and unwrapped.
//!
//! The template holds every header byte that is the same for all requests
//! (MACs, the tracker's address and port, TTL, protocol) with the IPv4
//! checksum of those constant words already summed, so a request only
//! patches its source address, lengths and checksums. The UDP checksum
//! covers the payload, so it is computed for every frame: the tracker's
//! kernel (or its XDP program) would drop a wrong one, and a zero one is
//! legal in IPv4 but not what clients send.

use std::net::{Ipv4Addr, SocketAddrV4};

use tracker_proto::net::checksum::{
    fold, pseudo_header_v4, sum_words, udp_on_wire, Checksum, UdpChecksum,
};
use tracker_proto::net::{ethernet, ip_proto};

pub const ETH_LEN: usize = ethernet::HEADER_LEN;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// Where the BEP 15 payload starts in a frame.
pub const HEADERS_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
const ETHERTYPE_IPV4: u16 = ethernet::ethertype::IPV4;
const IPPROTO_UDP: u8 = ip_proto::UDP;
const TTL: u8 = 64;
/// Don't Fragment: requests are far below any MTU.
const FLAGS_DF: u16 = 0x4000;

/// The one's-complement sum of `bytes` (any length), folded.
fn sum_of(bytes: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add_bytes(bytes);
    c.sum()
}

/// The UDP checksum field for `udp` (header with a zero checksum field,
/// and payload) from `src` to `dst`.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let len = u16::try_from(udp.len()).unwrap_or(u16::MAX);
    let mut c = Checksum::from_sum(pseudo_header_v4(
        &src.octets(),
        &dst.octets(),
        IPPROTO_UDP,
        len,
    ));
    c.add_bytes(udp);
    udp_on_wire(c.finish())
}

/// The constant part of every request frame.
#[derive(Clone, Debug)]
pub struct Template {
    headers: [u8; HEADERS_LEN],
    /// Sum of the IPv4 header words that never change (everything but
    /// total length, checksum and source address), unfolded.
    ip_fixed_sum: u32,
    dst: Ipv4Addr,
}

impl Template {
    pub fn new(src_mac: [u8; 6], dst_mac: [u8; 6], tracker: SocketAddrV4) -> Self {
        let mut h = [0u8; HEADERS_LEN];
        h[0..6].copy_from_slice(&dst_mac);
        h[6..12].copy_from_slice(&src_mac);
        h[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut h[ETH_LEN..ETH_LEN + IPV4_LEN];
        ip[0] = 0x45; // version 4, 5 words of header
        ip[6..8].copy_from_slice(&FLAGS_DF.to_be_bytes());
        ip[8] = TTL;
        ip[9] = IPPROTO_UDP;
        ip[16..20].copy_from_slice(&tracker.ip().octets());
        let ip_fixed_sum = u32::from(sum_of(ip));
        let udp = &mut h[ETH_LEN + IPV4_LEN..];
        udp[2..4].copy_from_slice(&tracker.port().to_be_bytes());
        Self {
            headers: h,
            ip_fixed_sum,
            dst: *tracker.ip(),
        }
    }

    /// Writes the headers for a `payload_len`-byte datagram from `src`
    /// into `frame`, whose payload (at [`HEADERS_LEN`]) is already written,
    /// and returns the frame's length. None if the frame cannot hold it.
    #[inline]
    pub fn finish(&self, frame: &mut [u8], src: SocketAddrV4, payload_len: usize) -> Option<usize> {
        let len = HEADERS_LEN + payload_len;
        let udp_len = u16::try_from(UDP_LEN + payload_len).ok()?;
        let total_len = u16::try_from(IPV4_LEN + UDP_LEN + payload_len).ok()?;
        let frame = frame.get_mut(..len)?;
        frame[..HEADERS_LEN].copy_from_slice(&self.headers);
        let src_ip = src.ip().octets();
        {
            let ip = &mut frame[ETH_LEN..ETH_LEN + IPV4_LEN];
            ip[2..4].copy_from_slice(&total_len.to_be_bytes());
            ip[12..16].copy_from_slice(&src_ip);
            let sum = sum_words(self.ip_fixed_sum + u32::from(total_len), &src_ip);
            ip[10..12].copy_from_slice(&(!fold(sum)).to_be_bytes());
        }
        let udp = &mut frame[ETH_LEN + IPV4_LEN..];
        udp[0..2].copy_from_slice(&src.port().to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let checksum = udp_checksum(*src.ip(), self.dst, udp);
        udp[6..8].copy_from_slice(&checksum.to_be_bytes());
        Some(len)
    }
}

/// What a received frame is to the sender.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A UDP datagram from the tracker to `to`, checksums right.
    Answer { to: SocketAddrV4, payload: &'a [u8] },
    /// From the tracker to us, but a length or checksum is wrong.
    Corrupt,
    /// Anything else (other protocols, other senders): not ours to count.
    Other,
}

/// Unwraps a frame from the tracker, checking the IPv4 header checksum
/// and (unless the sender left it out, as IPv4 allows) the UDP checksum.
pub fn parse(frame: &[u8], tracker: SocketAddrV4) -> Received<'_> {
    let Some(eth) = frame.get(..ETH_LEN) else {
        return Received::Other;
    };
    if eth[12..14] != ETHERTYPE_IPV4.to_be_bytes() {
        return Received::Other;
    }
    let Some(ip) = frame.get(ETH_LEN..ETH_LEN + IPV4_LEN) else {
        return Received::Other;
    };
    if ip[0] >> 4 != 4 || ip[9] != IPPROTO_UDP || ip[12..16] != tracker.ip().octets() {
        return Received::Other;
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    // A fragment cannot be matched to its request whole.
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let udp_at = ETH_LEN + header_len;
    let Some(ip) = frame.get(ETH_LEN..ETH_LEN + header_len) else {
        return Received::Corrupt;
    };
    if header_len < IPV4_LEN
        || fragmented
        || total_len < header_len + UDP_LEN
        || frame.len() < ETH_LEN + total_len
        || sum_of(ip) != 0xFFFF
    {
        return Received::Corrupt;
    }
    let udp = &frame[udp_at..ETH_LEN + total_len];
    if udp[0..2] != tracker.port().to_be_bytes() {
        return Received::Other;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP_LEN || udp_len > udp.len() {
        return Received::Corrupt;
    }
    let udp = &udp[..udp_len];
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    // The kernel's rule, from the one place the tracker keeps it: a
    // complete checksum, none, or (from a sender that left it to the
    // device: veth passes CHECKSUM_PARTIAL frames on as they are, where a
    // NIC would fill the field in) the bare pseudo-header sum.
    let pseudo = pseudo_header_v4(
        &tracker.ip().octets(),
        &dst.octets(),
        IPPROTO_UDP,
        udp_len as u16,
    );
    let check = u16::from_be_bytes([udp[6], udp[7]]);
    if !UdpChecksum::classify(pseudo, u32::from(sum_of(udp)), check, true).accepted() {
        return Received::Corrupt;
    }
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    Received::Answer {
        to: SocketAddrV4::new(dst, port),
        payload: &udp[UDP_LEN..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const TRACKER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    fn tracker() -> SocketAddrV4 {
        "10.201.0.1:6969".parse().unwrap()
    }

    fn connect_frame() -> Vec<u8> {
        let t = Template::new(CLIENT_MAC, TRACKER_MAC, tracker());
        let mut frame = vec![0xaa; 2048];
        let payload = [
            0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
            0, 0, 0, 0, // connect
            0xde, 0xad, 0xbe, 0xef, // transaction id
        ];
        frame[HEADERS_LEN..HEADERS_LEN + 16].copy_from_slice(&payload);
        let src = "10.202.0.1:40000".parse().unwrap();
        let len = t.finish(&mut frame, src, 16).unwrap();
        frame.truncate(len);
        frame
    }

    #[test]
    fn connect_frame_is_these_bytes() {
        // Checksums worked out apart from this code (a few lines of
        // Python's struct over the same fields): IPv4 header words 4500
        // 002c 0000 4000 4011 0000 0aca 0001 0ac9 0001 sum to 0xdad2, so
        // 0x252d; UDP over pseudo-header, header and payload gives 0x506b.
        let want: Vec<u8> = [
            &TRACKER_MAC[..],
            &CLIENT_MAC[..],
            &[0x08, 0x00],
            &[
                0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x25, 0x2d,
            ],
            &[10, 202, 0, 1, 10, 201, 0, 1],
            &[0x9c, 0x40, 0x1b, 0x39, 0x00, 0x18, 0x50, 0x6b],
            &[0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80],
            &[0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef],
        ]
        .concat();
        assert_eq!(connect_frame(), want);
    }

    #[test]
    fn checksums_verify_over_the_whole_headers() {
        let t = Template::new(CLIENT_MAC, TRACKER_MAC, tracker());
        let mut frame = vec![0u8; 2048];
        for (i, len) in [16usize, 98, 17, 16 + 20 * 74].into_iter().enumerate() {
            for (j, b) in frame[HEADERS_LEN..HEADERS_LEN + len].iter_mut().enumerate() {
                *b = (i * 31 + j * 7) as u8;
            }
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 202, (i >> 8) as u8, i as u8), 40000);
            let n = t.finish(&mut frame, src, len).unwrap();
            assert_eq!(n, HEADERS_LEN + len);
            let ip = &frame[ETH_LEN..ETH_LEN + IPV4_LEN];
            assert_eq!(
                tracker_proto::net::checksum::internet_checksum(ip),
                0,
                "IPv4 of {len}"
            );
            let udp = &frame[ETH_LEN + IPV4_LEN..n];
            let pseudo = pseudo_header_v4(
                &src.ip().octets(),
                &tracker().ip().octets(),
                17,
                udp.len() as u16,
            );
            let check = u16::from_be_bytes([udp[6], udp[7]]);
            assert_eq!(
                UdpChecksum::classify(pseudo, u32::from(sum_of(udp)), check, true),
                UdpChecksum::Complete,
                "UDP of {len}"
            );
        }
        assert_eq!(
            t.finish(&mut frame[..100], "1.2.3.4:5".parse().unwrap(), 98),
            None
        );
    }

    /// An answer frame: the request turned around, as the tracker sends it.
    fn answer(payload: &[u8], udp_checksum_on: bool) -> Vec<u8> {
        let client: SocketAddrV4 = "10.202.0.9:40000".parse().unwrap();
        let mut frame = vec![0u8; HEADERS_LEN + payload.len()];
        frame[HEADERS_LEN..].copy_from_slice(payload);
        // The template builds client-to-tracker frames; swap the roles.
        let t = Template::new(TRACKER_MAC, CLIENT_MAC, client);
        t.finish(&mut frame, tracker(), payload.len()).unwrap();
        if !udp_checksum_on {
            frame[ETH_LEN + IPV4_LEN + 6..ETH_LEN + IPV4_LEN + 8].fill(0);
        }
        frame
    }

    #[test]
    fn answers_unwrap_to_their_payload_and_address() {
        let payload = [0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8];
        for checksum in [true, false] {
            let frame = answer(&payload, checksum);
            assert_eq!(
                parse(&frame, tracker()),
                Received::Answer {
                    to: "10.202.0.9:40000".parse().unwrap(),
                    payload: &payload
                }
            );
        }
        // Checksum left to the device: the field holds the pseudo-header's
        // folded sum (10.201.0.1 + 10.202.0.9 + 17 + 24 = 0x15c6, worked out
        // by hand), which the receiver takes as checked.
        let mut offloaded = answer(&payload, true);
        offloaded[ETH_LEN + IPV4_LEN + 6..ETH_LEN + IPV4_LEN + 8].copy_from_slice(&[0x15, 0xc6]);
        assert!(matches!(
            parse(&offloaded, tracker()),
            Received::Answer { .. }
        ));
        offloaded[ETH_LEN + IPV4_LEN + 7] ^= 1;
        assert_eq!(parse(&offloaded, tracker()), Received::Corrupt);
        // Ethernet padding after the datagram is not payload.
        let mut padded = answer(&payload[..8], true);
        padded.extend_from_slice(&[0; 10]);
        let Received::Answer { payload: p, .. } = parse(&padded, tracker()) else {
            panic!()
        };
        assert_eq!(p, &payload[..8]);
    }

    #[test]
    fn damaged_or_foreign_frames_are_told_apart() {
        let good = answer(&[0; 16], true);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&flipped, tracker()), Received::Corrupt);
        let mut bad_ip = good.clone();
        bad_ip[ETH_LEN + 8] = 1; // TTL without fixing the checksum
        assert_eq!(parse(&bad_ip, tracker()), Received::Corrupt);
        assert_eq!(parse(&good[..good.len() - 1], tracker()), Received::Corrupt);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(&arp, tracker()), Received::Other);
        let other: SocketAddrV4 = "10.201.0.7:6969".parse().unwrap();
        assert_eq!(parse(&good, other), Received::Other);
        for n in 0..HEADERS_LEN {
            assert_ne!(
                std::mem::discriminant(&parse(&good[..n], tracker())),
                std::mem::discriminant(&Received::Answer {
                    to: other,
                    payload: &[]
                })
            );
        }
    }
}
