//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: a
//! tracker's clients do not send them, so both sides of the XDP path leave
//! such packets to the kernel.

use super::{get_array, get_u16, set_u16, Error, Result};

pub mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = field::DST.end;

/// Whether `addr` is multicast (ff00::/8).
#[inline(always)]
pub const fn is_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xFF
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The caller guarantees at least [`HEADER_LEN`] bytes.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks version 6 and a payload length that fits in the buffer
    /// (trailing bytes are ignored by `payload`). A payload length of zero
    /// (a jumbogram, which needs a hop-by-hop header) passes here; the
    /// caller decides what it makes of it.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::BadHeader);
        }
        if HEADER_LEN + usize::from(packet.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 16] {
        get_array(self.buffer.as_ref(), field::SRC)
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 16] {
        get_array(self.buffer.as_ref(), field::DST)
    }
}

impl<'a> Packet<&'a [u8]> {
    /// The bytes after the fixed header, bounded by the payload length.
    /// Empty for an unchecked view whose fields contradict the buffer.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer
            .get(HEADER_LEN..HEADER_LEN + usize::from(self.payload_len()))
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Version 6 with traffic class and flow label 0: a reply belongs to no
    /// flow the client could have labelled for us.
    #[inline(always)]
    pub fn set_version_unlabelled(&mut self) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
    }

    #[inline(always)]
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    #[inline(always)]
    pub fn set_next_header(&mut self, next: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next;
    }

    #[inline(always)]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    #[inline(always)]
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr);
    }

    #[inline(always)]
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr);
    }

    /// Turns a request's header into its reply's in place: addresses
    /// swapped, hop limit reset. Traffic class and flow label are echoed.
    #[inline(always)]
    pub fn reverse_for_reply(&mut self, hop_limit: u8) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
        self.set_hop_limit(hop_limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::7 -> 2001:db8:1::1, flow label 0xabcde, UDP, hop limit 51,
    /// payload length 8.
    const HDR: [u8; 48] = [
        0x60, 0x0A, 0xBC, 0xDE, 0x00, 0x08, 0x11, 0x33, // fixed part
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, // src
        0x20, 0x01, 0x0D, 0xB8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst
        0xC8, 0xD5, 0x1B, 0x39, 0x00, 0x08, 0x00, 0x00, // UDP header
    ];

    #[test]
    fn reads_a_known_header() {
        let p = Packet::new_checked(&HDR[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), super::super::ip_proto::UDP);
        assert_eq!(p.hop_limit(), 51);
        assert_eq!(p.src_addr()[..4], [0x20, 0x01, 0x0D, 0xB8]);
        assert_eq!(p.src_addr()[15], 7);
        assert_eq!(p.dst_addr()[5], 1);
        assert_eq!(p.payload(), &HDR[40..]);
        assert!(!is_multicast(&p.dst_addr()));
    }

    #[test]
    fn rejects_what_cannot_be_ipv6() {
        for len in 0..48 {
            assert_eq!(Packet::new_checked(&HDR[..len]), Err(Error::Truncated));
        }
        let mut bad = HDR;
        bad[0] = 0x45;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::BadHeader));
        let mut long = HDR;
        long[4..6].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&long[..]), Err(Error::Truncated));
    }

    #[test]
    fn builds_and_reverses() {
        let mut buf = HDR;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.reverse_for_reply(64);
        assert_eq!(p.src_addr(), Packet::new_unchecked(&HDR[..]).dst_addr());
        assert_eq!(p.dst_addr(), Packet::new_unchecked(&HDR[..]).src_addr());
        assert_eq!(p.hop_limit(), 64);
        p.set_version_unlabelled();
        p.set_payload_len(9);
        p.set_next_header(17);
        assert_eq!(&buf[..8], &[0x60, 0, 0, 0, 0, 9, 17, 64]);
        let mut ff = [0u8; 16];
        ff[0] = 0xFF;
        ff[1] = 0x02;
        assert!(is_multicast(&ff));
    }
}
