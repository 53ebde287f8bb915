//! The `ANNOUNCED` ring: announces the XDP program answered itself, read
//! by AF_XDP queue worker 0 between its batches and applied to the swarm
//! like an announce that came through AF_XDP, without a response (the
//! program sent it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aya::maps::{MapData, RingBuf};
use tracker_proto::xdp::KernelAnnounce;
use tracker_proto::AnnounceEvent;

/// Records taken per round, so a flood of kernel answers cannot starve
/// the queue's own frames; the rest wait for the next round.
pub const RING_BATCH: usize = 256;

pub struct AnnouncedRing {
    pub ring: RingBuf<MapData>,
    /// Records too short to be one (never, from our program): counted for
    /// the stop line.
    pub bad: u64,
}

/// An announce as the program saw it, decoded from its ring record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub info_hash: [u8; 20],
    pub peer: SocketAddr,
    pub event: AnnounceEvent,
    pub seeder: bool,
}

impl AnnouncedRing {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring, bad: 0 }
    }

    /// Hands up to [`RING_BATCH`] records to `apply`; returns how many.
    pub fn drain(&mut self, mut apply: impl FnMut(Applied)) -> usize {
        let mut taken = 0;
        while taken < RING_BATCH {
            let Some(item) = self.ring.next() else {
                break;
            };
            taken += 1;
            match decode(&item) {
                Some(applied) => apply(applied),
                None => self.bad += 1,
            }
        }
        taken
    }
}

/// A ring record's announce; `None` for a record of the wrong size or
/// family, or an unknown event.
pub fn decode(bytes: &[u8]) -> Option<Applied> {
    if bytes.len() < size_of::<KernelAnnounce>() {
        return None;
    }
    // SAFETY: the length is checked, the record is plain data that any
    // bit pattern is valid for, and the read is unaligned-safe.
    let record: KernelAnnounce =
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<KernelAnnounce>()) };
    let ip = match record.family {
        4 => {
            let [a, b, c, d, ..] = record.ip;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        6 => IpAddr::V6(Ipv6Addr::from(record.ip)),
        _ => return None,
    };
    let event = match record.event {
        0 => AnnounceEvent::None,
        1 => AnnounceEvent::Completed,
        2 => AnnounceEvent::Started,
        3 => AnnounceEvent::Stopped,
        _ => return None,
    };
    Some(Applied {
        info_hash: record.info_hash,
        peer: SocketAddr::new(ip, record.port),
        event,
        seeder: record.left == 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(record: &KernelAnnounce) -> Vec<u8> {
        // SAFETY: plain data without padding (its size is pinned in
        // tracker-proto), read as bytes.
        unsafe {
            std::slice::from_raw_parts(
                (record as *const KernelAnnounce).cast::<u8>(),
                size_of::<KernelAnnounce>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn records_decode_to_the_announce_the_program_saw() {
        let mut record = KernelAnnounce {
            left: 0,
            info_hash: [7; 20],
            peer_id: [1; 20],
            ip: [0; 16],
            key: 9,
            port: 6881,
            family: 4,
            event: 0,
        };
        record.ip[..4].copy_from_slice(&[192, 0, 2, 1]);
        let applied = decode(&bytes(&record)).unwrap();
        assert_eq!(applied.peer, "192.0.2.1:6881".parse().unwrap());
        assert_eq!(applied.info_hash, [7; 20]);
        assert!(applied.seeder);
        assert_eq!(applied.event, AnnounceEvent::None);

        record.family = 6;
        record.ip = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        record.left = 5;
        let applied = decode(&bytes(&record)).unwrap();
        assert_eq!(applied.peer, "[2001:db8::1]:6881".parse().unwrap());
        assert!(!applied.seeder);
    }

    #[test]
    fn bad_records_are_refused() {
        let record = KernelAnnounce {
            family: 5,
            ..KernelAnnounce::default()
        };
        assert_eq!(decode(&bytes(&record)), None);
        let record = KernelAnnounce {
            family: 4,
            event: 9,
            ..KernelAnnounce::default()
        };
        assert_eq!(decode(&bytes(&record)), None);
        assert_eq!(decode(&[0; 10]), None);
    }
}
