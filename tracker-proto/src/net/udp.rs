//! UDP headers (RFC 768). The BEP 15 messages they carry are
//! `tracker_proto::udp`.

use super::checksum::{self, UdpChecksum};
use super::{get_u16, set_u16, Error, Result};

pub mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    /// Source and destination port: one checksummed 32-bit unit, so
    /// swapping them for a reply leaves the checksum alone.
    pub const PORTS: Range<usize> = 0..4;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Datagram<T> {
    /// The caller guarantees at least [`HEADER_LEN`] bytes.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Datagram { buffer }
    }

    /// Checks that the length field covers the header and fits in the
    /// buffer (the IP payload; bytes after the UDP length are ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let datagram = Datagram { buffer };
        let len = datagram.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let claimed = usize::from(datagram.length());
        // The IP length already bounds the buffer, so a UDP length beyond
        // it is the two headers disagreeing, not a short capture.
        if claimed < HEADER_LEN || claimed > len {
            return Err(Error::BadLength);
        }
        Ok(datagram)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[inline(always)]
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The received checksum's class against the pseudo-header sum
    /// `pseudo` ([`checksum::pseudo_header_v4`] / `_v6`). Only for views
    /// made with `new_checked`.
    pub fn checksum_class(&self, pseudo: u32, ipv4: bool) -> UdpChecksum {
        let mut segment = checksum::Checksum::new();
        segment.add_bytes(&self.buffer.as_ref()[..usize::from(self.length())]);
        UdpChecksum::classify(pseudo, u32::from(segment.sum()), self.checksum(), ipv4)
    }
}

impl<'a> Datagram<&'a [u8]> {
    /// The payload, bounded by the length field. Empty for an unchecked view
    /// whose fields contradict the buffer.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer
            .get(HEADER_LEN..usize::from(self.length()))
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Datagram<T> {
    #[inline(always)]
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    #[inline(always)]
    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    #[inline(always)]
    pub fn set_length(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline(always)]
    pub fn set_checksum(&mut self, check: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, check);
    }

    /// Computes and stores the checksum over the header and the `length()`
    /// bytes it announces, given the pseudo-header sum. Computed zero goes
    /// out as 0xFFFF.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let mut sum = checksum::Checksum::from_sum(pseudo);
        sum.add_bytes(&self.buffer.as_ref()[..usize::from(self.length())]);
        self.set_checksum(checksum::udp_on_wire(sum.finish()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::checksum::pseudo_header_v4;

    /// 192.0.2.1:1234 -> 198.51.100.2:6969, payload "ab", checksum 0x9235
    /// (worked out in checksum.rs's tests), then two bytes of padding.
    const DGRAM: [u8; 12] = [
        0x04, 0xD2, 0x1B, 0x39, 0x00, 0x0A, 0x92, 0x35, b'a', b'b', 0xA5, 0xA5,
    ];
    const SRC: [u8; 4] = [192, 0, 2, 1];
    const DST: [u8; 4] = [198, 51, 100, 2];

    #[test]
    fn reads_a_known_datagram() {
        let d = Datagram::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(d.src_port(), 1234);
        assert_eq!(d.dst_port(), 6969);
        assert_eq!(d.length(), 10);
        assert_eq!(d.payload(), b"ab");
        let pseudo = pseudo_header_v4(&SRC, &DST, 17, 10);
        assert_eq!(d.checksum_class(pseudo, true), UdpChecksum::Complete);
        // The same bytes claimed to come from elsewhere do not verify.
        let other = pseudo_header_v4(&[192, 0, 2, 9], &DST, 17, 10);
        assert_eq!(d.checksum_class(other, true), UdpChecksum::Wrong);
    }

    #[test]
    fn rejects_bad_lengths() {
        for len in 0..HEADER_LEN {
            assert_eq!(Datagram::new_checked(&DGRAM[..len]), Err(Error::Truncated));
        }
        for claimed in [0u16, 7, 13] {
            let mut d = DGRAM;
            d[4..6].copy_from_slice(&claimed.to_be_bytes());
            assert_eq!(Datagram::new_checked(&d[..]), Err(Error::BadLength));
        }
    }

    #[test]
    fn fills_the_known_checksum() {
        let mut buf = [0u8; 10];
        let mut d = Datagram::new_unchecked(&mut buf[..]);
        d.set_src_port(1234);
        d.set_dst_port(6969);
        d.set_length(10);
        buf[8..].copy_from_slice(b"ab");
        let mut d = Datagram::new_unchecked(&mut buf[..]);
        d.fill_checksum(pseudo_header_v4(&SRC, &DST, 17, 10));
        assert_eq!(&buf[..], &DGRAM[..10]);
    }
}
