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

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// Where the BEP 15 payload starts in a frame.
pub const HEADERS_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
const TTL: u8 = 64;
/// Don't Fragment: requests are far below any MTU.
const FLAGS_DF: u16 = 0x4000;

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd
/// last byte padded with zero), not yet folded.
#[inline]
fn sum_words(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a sum to 16 bits and complements it: the Internet checksum.
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The UDP checksum over the pseudo-header and `udp` (header with a zero
/// checksum field, and payload). RFC 768: a computed 0 is sent as 0xffff.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let pseudo = sum_words(&src.octets())
        + sum_words(&dst.octets())
        + u64::from(IPPROTO_UDP)
        + udp.len() as u64;
    match fold(pseudo + sum_words(udp)) {
        0 => 0xffff,
        c => c,
    }
}

/// The constant part of every request frame.
#[derive(Clone, Debug)]
pub struct Template {
    headers: [u8; HEADERS_LEN],
    /// Sum of the IPv4 header words that never change (everything but
    /// total length, checksum and source address).
    ip_fixed_sum: u64,
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
        let ip_fixed_sum = sum_words(ip);
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
            let sum = self.ip_fixed_sum + u64::from(total_len) + sum_words(&src_ip);
            ip[10..12].copy_from_slice(&fold(sum).to_be_bytes());
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
        || fold(sum_words(ip)) != 0
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
    if udp[6..8] != [0, 0] {
        let src = *tracker.ip();
        let pseudo = sum_words(&src.octets())
            + sum_words(&dst.octets())
            + u64::from(IPPROTO_UDP)
            + udp_len as u64;
        // Summed with its own checksum field, a right datagram folds to 0
        // (or the all-ones sum a 0xffff for 0 stands for). A kernel that
        // left the checksum to the device (CHECKSUM_PARTIAL: veth passes
        // such frames on as they are, where a NIC would fill the field in)
        // sent only the pseudo-header's sum there: a receiving kernel takes
        // that frame as verified, and so do we.
        let field = u16::from_be_bytes([udp[6], udp[7]]);
        if fold(pseudo + sum_words(udp)) != 0 && field != !fold(pseudo) {
            return Received::Corrupt;
        }
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
            &[0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x25, 0x2d],
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
            assert_eq!(fold(sum_words(ip)), 0, "IPv4 header of {len}");
            let udp = &frame[ETH_LEN + IPV4_LEN..n];
            let pseudo = sum_words(&src.ip().octets())
                + sum_words(&tracker().ip().octets())
                + 17
                + udp.len() as u64;
            assert_eq!(fold(pseudo + sum_words(udp)), 0, "UDP of {len}");
        }
        assert_eq!(t.finish(&mut frame[..100], "1.2.3.4:5".parse().unwrap(), 98), None);
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
        assert!(matches!(parse(&offloaded, tracker()), Received::Answer { .. }));
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
