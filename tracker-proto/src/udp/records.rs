//! Zero-copy views of the repeated records in BEP 15 packets: peers, scrape
//! stats and info hashes, cast straight from and to the packet bytes.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::{INFO_HASH_LEN, SCRAPE_STATS_LEN};
use crate::common::InfoHash;

/// Types that are nothing but their wire bytes.
///
/// # Safety
///
/// Implementors must have alignment 1, no padding, and accept every bit
/// pattern, so that any byte slice of a multiple of their size is a valid
/// slice of them and vice versa.
pub(super) unsafe trait WireBytes: Copy {}

// All four are `repr(C)`/`repr(transparent)` over `u8` arrays only; the
// size and alignment asserts below pin the layout.
// SAFETY: `repr(C)` over `[u8; 4]` and `[u8; 2]`: alignment 1, no padding.
unsafe impl WireBytes for PeerV4 {}
// SAFETY: `repr(C)` over `[u8; 16]` and `[u8; 2]`: alignment 1, no padding.
unsafe impl WireBytes for PeerV6 {}
// SAFETY: `repr(C)` over three `[u8; 4]`: alignment 1, no padding.
unsafe impl WireBytes for ScrapeStats {}
// SAFETY: `repr(transparent)` over `[u8; 20]`: alignment 1, no padding.
unsafe impl WireBytes for InfoHash {}

const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<PeerV4>() == 6 && align_of::<PeerV4>() == 1);
    assert!(size_of::<PeerV6>() == 18 && align_of::<PeerV6>() == 1);
    assert!(size_of::<ScrapeStats>() == SCRAPE_STATS_LEN && align_of::<ScrapeStats>() == 1);
    assert!(size_of::<InfoHash>() == INFO_HASH_LEN && align_of::<InfoHash>() == 1);
};

fn cast_slice<T: WireBytes>(bytes: &[u8]) -> Option<&[T]> {
    let size = core::mem::size_of::<T>();
    let rem = bytes.len() % size;
    if rem != 0 {
        return None;
    }
    // SAFETY: `T: WireBytes` has alignment 1 and no invalid bit patterns, and
    // `len * size` is exactly `bytes.len()`, so the new slice covers the same
    // initialized, immutably borrowed memory for the same lifetime.
    Some(unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
}

pub(super) fn byte_slice<T: WireBytes>(items: &[T]) -> &[u8] {
    // SAFETY: `T: WireBytes` has no padding, so all `size_of_val(items)`
    // bytes are initialized; `u8` has alignment 1; the borrow is carried over.
    unsafe {
        core::slice::from_raw_parts(items.as_ptr().cast::<u8>(), core::mem::size_of_val(items))
    }
}

/// An IPv4 peer exactly as BEP 15 lays it out: 4 address bytes, then the
/// port, both in network order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct PeerV4 {
    ip: [u8; 4],
    port: [u8; 2],
}

impl PeerV4 {
    pub const fn new(ip: Ipv4Addr, port: u16) -> Self {
        PeerV4 {
            ip: ip.octets(),
            port: port.to_be_bytes(),
        }
    }

    pub const fn ip(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.ip;
        Ipv4Addr::new(a, b, c, d)
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }
}

impl From<SocketAddrV4> for PeerV4 {
    fn from(addr: SocketAddrV4) -> Self {
        PeerV4::new(*addr.ip(), addr.port())
    }
}

impl From<PeerV4> for SocketAddrV4 {
    fn from(peer: PeerV4) -> Self {
        SocketAddrV4::new(peer.ip(), peer.port())
    }
}

impl fmt::Debug for PeerV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip(), self.port())
    }
}

/// An IPv6 peer exactly as BEP 15 lays it out: 16 address bytes, then the
/// port, both in network order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct PeerV6 {
    ip: [u8; 16],
    port: [u8; 2],
}

impl PeerV6 {
    pub const fn new(ip: Ipv6Addr, port: u16) -> Self {
        PeerV6 {
            ip: ip.octets(),
            port: port.to_be_bytes(),
        }
    }

    pub fn ip(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.ip)
    }

    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }
}

impl From<SocketAddrV6> for PeerV6 {
    fn from(addr: SocketAddrV6) -> Self {
        PeerV6::new(*addr.ip(), addr.port())
    }
}

impl From<PeerV6> for SocketAddrV6 {
    fn from(peer: PeerV6) -> Self {
        SocketAddrV6::new(peer.ip(), peer.port(), 0, 0)
    }
}

impl fmt::Debug for PeerV6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]:{}", self.ip(), self.port())
    }
}

/// Views a compact IPv4 peer list without copying; `None` unless the length
/// is a multiple of 6.
pub fn peers_v4_from_bytes(bytes: &[u8]) -> Option<&[PeerV4]> {
    cast_slice(bytes)
}

/// Views a compact IPv6 peer list without copying; `None` unless the length
/// is a multiple of 18.
pub fn peers_v6_from_bytes(bytes: &[u8]) -> Option<&[PeerV6]> {
    cast_slice(bytes)
}

pub fn peers_v4_as_bytes(peers: &[PeerV4]) -> &[u8] {
    byte_slice(peers)
}

pub fn peers_v6_as_bytes(peers: &[PeerV6]) -> &[u8] {
    byte_slice(peers)
}

/// One torrent's counts in a scrape response, in wire order (seeders,
/// completed, leechers: not the order the announce response uses).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct ScrapeStats {
    seeders: [u8; 4],
    completed: [u8; 4],
    leechers: [u8; 4],
}

impl ScrapeStats {
    pub const fn new(seeders: u32, completed: u32, leechers: u32) -> Self {
        ScrapeStats {
            seeders: seeders.to_be_bytes(),
            completed: completed.to_be_bytes(),
            leechers: leechers.to_be_bytes(),
        }
    }

    pub const fn seeders(&self) -> u32 {
        u32::from_be_bytes(self.seeders)
    }

    /// Number of times the torrent was downloaded to completion.
    pub const fn completed(&self) -> u32 {
        u32::from_be_bytes(self.completed)
    }

    pub const fn leechers(&self) -> u32 {
        u32::from_be_bytes(self.leechers)
    }
}

impl fmt::Debug for ScrapeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeStats")
            .field("seeders", &self.seeders())
            .field("completed", &self.completed())
            .field("leechers", &self.leechers())
            .finish()
    }
}

/// Views scrape statistics without copying; `None` unless the length is a
/// multiple of 12.
pub fn scrape_stats_from_bytes(bytes: &[u8]) -> Option<&[ScrapeStats]> {
    cast_slice(bytes)
}

pub fn scrape_stats_as_bytes(stats: &[ScrapeStats]) -> &[u8] {
    byte_slice(stats)
}

/// The info hashes of a scrape request, viewed in place.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InfoHashes<'a> {
    hashes: &'a [InfoHash],
}

impl<'a> InfoHashes<'a> {
    /// `None` unless the length is a multiple of 20.
    pub fn from_bytes(bytes: &'a [u8]) -> Option<Self> {
        cast_slice(bytes).map(|hashes| InfoHashes { hashes })
    }

    pub const fn from_slice(hashes: &'a [InfoHash]) -> Self {
        InfoHashes { hashes }
    }

    pub const fn as_slice(&self) -> &'a [InfoHash] {
        self.hashes
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        byte_slice(self.hashes)
    }

    pub const fn len(&self) -> usize {
        self.hashes.len()
    }

    pub const fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<InfoHash> {
        self.hashes.get(index).copied()
    }

    pub fn iter(&self) -> core::iter::Copied<core::slice::Iter<'a, InfoHash>> {
        self.hashes.iter().copied()
    }
}

impl<'a> IntoIterator for InfoHashes<'a> {
    type Item = InfoHash;
    type IntoIter = core::iter::Copied<core::slice::Iter<'a, InfoHash>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for InfoHashes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.hashes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The crate may be `no_std`; its tests still run on a std host.
    extern crate std;
    use std::format;

    use crate::udp::info_hash_0_to_19;

    #[test]
    fn peer_views() {
        let bytes = [192, 0, 2, 1, 0x1a, 0xe1, 10, 0, 0, 1, 0, 80];
        let peers = peers_v4_from_bytes(&bytes).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers_v4_as_bytes(peers), &bytes);
        assert_eq!(format!("{:?}", peers[0]), "192.0.2.1:6881");
        assert!(peers_v4_from_bytes(&bytes[..11]).is_none());
        assert!(peers_v6_from_bytes(&bytes).is_none());
        assert_eq!(peers_v4_from_bytes(&[]), Some(&[][..]));

        let v6 = PeerV6::new(Ipv6Addr::LOCALHOST, 443);
        assert_eq!(format!("{v6:?}"), "[::1]:443");
        let b = peers_v6_as_bytes(core::slice::from_ref(&v6));
        assert_eq!(b.len(), 18);
        assert_eq!(&b[16..], &[1, 187]);
        assert_eq!(peers_v6_from_bytes(b), Some(&[v6][..]));

        let s = ScrapeStats::new(1, 2, 3);
        let b = scrape_stats_as_bytes(core::slice::from_ref(&s));
        assert_eq!(b, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(scrape_stats_from_bytes(b), Some(&[s][..]));
        assert!(scrape_stats_from_bytes(&b[1..]).is_none());

        // Byte order sorts like (address, port).
        assert!(
            PeerV4::new(Ipv4Addr::new(1, 0, 0, 0), 65535)
                < PeerV4::new(Ipv4Addr::new(1, 0, 0, 1), 0)
        );
        let sa = SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5);
        assert_eq!(SocketAddrV4::from(PeerV4::from(sa)), sa);
    }

    #[test]
    fn info_hashes_views() {
        let hashes = [info_hash_0_to_19(), InfoHash([7; 20])];
        let view = InfoHashes::from_slice(&hashes);
        assert_eq!(view.len(), 2);
        assert_eq!(InfoHashes::from_bytes(view.as_bytes()), Some(view));
        assert_eq!(&view.as_bytes()[..20], &info_hash_0_to_19().0);
        assert!(InfoHashes::from_bytes(&[0; 21]).is_none());
        assert!(InfoHashes::from_bytes(&[]).unwrap().is_empty());
    }
}
