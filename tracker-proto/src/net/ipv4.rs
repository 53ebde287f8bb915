//! IPv4 headers (RFC 791).

use super::checksum;
use super::{get_array, get_u16, set_u16, Error, Result};

pub mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
    /// TTL and protocol share one checksummed word; a TTL rewrite updates
    /// the checksum over both.
    pub const TTL_PROTOCOL: Range<usize> = 8..10;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST.end;
pub const FLAG_DF: u16 = 0x4000;
pub const FLAG_MF: u16 = 0x2000;
pub const FRAG_OFFSET_MASK: u16 = 0x1FFF;
/// More-fragments flag and fragment offset: nonzero in every fragment but
/// an unfragmented datagram. Only the first fragment has a UDP header, and
/// only the kernel reassembles, so both sides leave fragments to it.
pub const FRAGMENT_MASK: u16 = FLAG_MF | FRAG_OFFSET_MASK;

/// Multicast (224/4), reserved (240/4) and the limited broadcast address:
/// destinations a unicast reply must not come from.
#[inline(always)]
pub const fn is_group_or_reserved(addr: &[u8; 4]) -> bool {
    addr[0] >= 224
}

/// An IPv4 header (and, through `payload`, its datagram) over a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The caller guarantees at least [`HEADER_LEN`] bytes; `header_len`,
    /// `total_len` and the payload are then whatever the fields say.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks version 4, an IHL of at least 5, and a total length that
    /// covers the header and fits in the buffer (trailing bytes, such as
    /// Ethernet padding, are allowed and ignored by `payload`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 || packet.header_len() < HEADER_LEN {
            return Err(Error::BadHeader);
        }
        let total = usize::from(packet.total_len());
        if total < packet.header_len() {
            return Err(Error::BadLength);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline(always)]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Flags and fragment offset.
    #[inline(always)]
    pub fn flags_frag(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }

    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & FRAGMENT_MASK != 0
    }

    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::SRC)
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::DST)
    }

    /// Whether the header (options included) checksums to zero. Only for
    /// views made with `new_checked`.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet_checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The bytes after the header, bounded by the total length. Empty for
    /// an unchecked view whose fields contradict the buffer.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer
            .get(self.header_len()..usize::from(self.total_len()))
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Version 4 and `header_len` (a multiple of 4, 20..=60) in one byte.
    #[inline(always)]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0F);
    }

    #[inline(always)]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    #[inline(always)]
    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline(always)]
    pub fn set_ident(&mut self, ident: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    #[inline(always)]
    pub fn set_flags_frag(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::FLAGS_FRAG, value);
    }

    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline(always)]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    #[inline(always)]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    #[inline(always)]
    pub fn set_src_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr);
    }

    #[inline(always)]
    pub fn set_dst_addr(&mut self, addr: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr);
    }

    /// Computes and stores the header checksum over `header_len` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = self.header_len();
        let check = checksum::internet_checksum(&self.buffer.as_ref()[..len]);
        self.set_checksum(check);
    }

    /// Turns a request's header into its reply's in place: addresses
    /// swapped, TTL reset to `ttl`, checksum updated incrementally (RFC
    /// 1624) since swapping addresses leaves the sum unchanged. Options, if
    /// any, are left alone: callers that answer in place only do so for
    /// 20-byte headers.
    #[inline(always)]
    pub fn reverse_for_reply(&mut self, ttl: u8) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        let old = [self.ttl(), self.protocol()];
        let new = [ttl, self.protocol()];
        let check = checksum::replace(self.checksum(), &old, &new);
        self.set_src_addr(dst);
        self.set_dst_addr(src);
        self.set_ttl(ttl);
        self.set_checksum(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 192.0.2.1 -> 198.51.100.2, UDP, id 0x1234, DF, TTL 57, total 28
    /// (an empty UDP datagram). Checksum by hand / Python:
    /// sum(struct.unpack("!10H", hdr)) with the field zero = 0x27baa,
    /// folded 0x7bac, complemented 0x8453.
    const HDR: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1C, 0x12, 0x34, 0x40, 0x00, 0x39, 0x11, 0x43, 0x66, 192, 0, 2, 1, 198,
        51, 100, 2, // UDP header
        0x30, 0x39, 0x1B, 0x39, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn reads_a_known_header() {
        let p = Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.flags_frag(), FLAG_DF);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 57);
        assert_eq!(p.protocol(), super::super::ip_proto::UDP);
        assert_eq!(p.checksum(), 0x4366);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), [192, 0, 2, 1]);
        assert_eq!(p.dst_addr(), [198, 51, 100, 2]);
        assert_eq!(p.payload(), &HDR[20..]);
    }

    #[test]
    fn rejects_what_cannot_be_ipv4() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&HDR[..len]), Err(Error::Truncated));
        }
        // The total length reaches beyond the buffer.
        assert_eq!(Packet::new_checked(&HDR[..27]), Err(Error::Truncated));
        let mut bad = HDR;
        bad[0] = 0x65;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::BadHeader));
        bad[0] = 0x44;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::BadHeader));
        let mut bad = HDR;
        bad[3] = 19;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::BadLength));
        // Trailing padding is not payload.
        let mut padded = [0xA5u8; 46];
        padded[..28].copy_from_slice(&HDR);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn fragments() {
        for (frag, is) in [
            (0, false),
            (FLAG_DF, false),
            (FLAG_MF, true),
            (1, true),
            (0x20, true),
        ] {
            let mut h = HDR;
            h[6..8].copy_from_slice(&frag.to_be_bytes());
            assert_eq!(Packet::new_unchecked(&h[..]).is_fragment(), is, "{frag:#x}");
        }
    }

    #[test]
    fn builds_and_reverses() {
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version_and_header_len(20);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_flags_frag(FLAG_DF);
        p.set_ttl(57);
        p.set_protocol(17);
        p.set_src_addr([192, 0, 2, 1]);
        p.set_dst_addr([198, 51, 100, 2]);
        p.fill_checksum();
        assert_eq!(&buf[..], &HDR[..20]);

        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.reverse_for_reply(64);
        assert_eq!(p.src_addr(), [198, 51, 100, 2]);
        assert_eq!(p.dst_addr(), [192, 0, 2, 1]);
        assert_eq!(p.ttl(), 64);
        assert!(p.verify_checksum());
        // TTL 57 -> 64 raises the ttl/protocol word by 0x0700, lowering
        // the checksum by as much: 0x4366 - 0x0700.
        assert_eq!(p.checksum(), 0x3C66);
    }

    #[test]
    fn group_destinations() {
        assert!(is_group_or_reserved(&[224, 0, 0, 1]));
        assert!(is_group_or_reserved(&[239, 1, 2, 3]));
        assert!(is_group_or_reserved(&[255, 255, 255, 255]));
        assert!(!is_group_or_reserved(&[203, 0, 113, 1]));
    }
}
