//! Ethernet II headers and 802.1Q / 802.1ad (QinQ) VLAN tags.

use super::{get_array, get_u16, set_u16, Error, Result};

pub mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

pub const HEADER_LEN: usize = field::ETHERTYPE.end;

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86DD;
    /// 802.1Q customer tag.
    pub const VLAN_8021Q: u16 = 0x8100;
    /// 802.1ad service tag (the outer tag of QinQ).
    pub const VLAN_8021AD: u16 = 0x88A8;
}

/// More tags than this are not something a tracker sits behind; both sides
/// leave such frames to the kernel. Also the fixed loop bound the BPF
/// verifier needs.
pub const MAX_VLAN_TAGS: usize = 2;

/// Whether `ethertype` announces a VLAN tag rather than a payload.
#[inline(always)]
pub const fn is_vlan(ethertype: u16) -> bool {
    ethertype == ethertype::VLAN_8021Q || ethertype == ethertype::VLAN_8021AD
}

/// Whether `mac` is a group (multicast or broadcast) address: its I/G bit.
/// A group source is invalid, and answering a group destination would make
/// the group the reply's source.
#[inline(always)]
pub const fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// An Ethernet header (destination, source, ethertype) over a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// The caller guarantees at least [`HEADER_LEN`] bytes.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> [u8; 6] {
        get_array(self.buffer.as_ref(), field::DST)
    }

    #[inline(always)]
    pub fn src_addr(&self) -> [u8; 6] {
        get_array(self.buffer.as_ref(), field::SRC)
    }

    /// The first ethertype: a TPID if VLAN tags follow.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a> Frame<&'a [u8]> {
    /// Everything after the 14-byte header (tags, then the payload).
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline(always)]
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    #[inline(always)]
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    #[inline(always)]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    /// Swaps source and destination, turning a request's header into its
    /// reply's.
    #[inline(always)]
    pub fn swap_addrs(&mut self) {
        let (src, dst) = (self.src_addr(), self.dst_addr());
        self.set_src_addr(dst);
        self.set_dst_addr(src);
    }
}

/// One VLAN tag: the 2-byte TCI and the ethertype after it. The TPID that
/// announced the tag is the preceding ethertype field.
pub mod vlan {
    use super::super::{get_u16, set_u16, Error, Result};

    pub mod field {
        use core::ops::Range;
        pub const TCI: Range<usize> = 0..2;
        pub const ETHERTYPE: Range<usize> = 2..4;
    }

    pub const TAG_LEN: usize = field::ETHERTYPE.end;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Tag<T> {
        buffer: T,
    }

    impl<T: AsRef<[u8]>> Tag<T> {
        /// The caller guarantees at least [`TAG_LEN`] bytes.
        #[inline(always)]
        pub const fn new_unchecked(buffer: T) -> Self {
            Tag { buffer }
        }

        pub fn new_checked(buffer: T) -> Result<Self> {
            if buffer.as_ref().len() < TAG_LEN {
                return Err(Error::Truncated);
            }
            Ok(Tag { buffer })
        }

        /// PCP, DEI and VLAN id.
        #[inline(always)]
        pub fn tci(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::TCI)
        }

        /// The next ethertype: another TPID or the payload's type.
        #[inline(always)]
        pub fn ethertype(&self) -> u16 {
            get_u16(self.buffer.as_ref(), field::ETHERTYPE)
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
        pub fn set_tci(&mut self, tci: u16) {
            set_u16(self.buffer.as_mut(), field::TCI, tci);
        }

        pub fn set_ethertype(&mut self, ethertype: u16) {
            set_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured-style frame: broadcast-free unicast MACs, one 802.1Q tag
    /// (PCP 1, VLAN 100), then IPv4.
    const TAGGED: [u8; 18] = [
        0x02, 0x11, 0x22, 0x33, 0x44, 0x02, // dst
        0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01, // src
        0x81, 0x00, // 802.1Q
        0x20, 0x64, // TCI: PCP 1, VID 100
        0x08, 0x00, // IPv4
    ];

    #[test]
    fn reads_a_tagged_header() {
        let frame = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr(), [0x02, 0x11, 0x22, 0x33, 0x44, 0x02]);
        assert_eq!(frame.src_addr(), [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01]);
        assert_eq!(frame.ethertype(), ethertype::VLAN_8021Q);
        assert!(is_vlan(frame.ethertype()));
        let tag = vlan::Tag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.tci() & 0x0FFF, 100);
        assert_eq!(tag.tci() >> 13, 1);
        assert_eq!(tag.ethertype(), ethertype::IPV4);
        assert!(!is_vlan(tag.ethertype()));
    }

    #[test]
    fn short_buffers_are_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&TAGGED[..len]), Err(Error::Truncated));
        }
        assert_eq!(
            vlan::Tag::new_checked(&TAGGED[14..17]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn writes_and_swaps() {
        let mut buf = TAGGED;
        let mut frame = Frame::new_unchecked(&mut buf[..]);
        frame.swap_addrs();
        assert_eq!(frame.dst_addr(), [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01]);
        assert_eq!(frame.src_addr(), [0x02, 0x11, 0x22, 0x33, 0x44, 0x02]);
        frame.set_ethertype(ethertype::VLAN_8021AD);
        assert_eq!(&buf[12..14], &[0x88, 0xA8]);
        let mut tag = vlan::Tag::new_unchecked(&mut buf[14..]);
        tag.set_tci(7);
        tag.set_ethertype(ethertype::IPV6);
        assert_eq!(&buf[14..18], &[0, 7, 0x86, 0xDD]);
    }

    #[test]
    fn group_bit() {
        assert!(is_group(&[0xFF; 6]));
        assert!(is_group(&[0x01, 0x00, 0x5E, 0, 0, 1]));
        assert!(is_group(&[0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_group(&[0x02, 0, 0, 0, 0, 1]));
    }
}
