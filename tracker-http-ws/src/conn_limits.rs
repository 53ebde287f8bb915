//! Connection-level abuse limits: connections per client address, and the
//! close code a WebSocket protocol error is answered with.
//!
//! # Per-address cap
//!
//! SO_REUSEPORT spreads one client's connections over the socket workers by
//! a hash of the 4-tuple, so an exact global count per address would need
//! state shared between workers (a lock or contended atomics on every
//! accept and close). Instead each worker counts its own connections per
//! address and allows its share, `ceil(cap / workers)`. A client never gets
//! more than that share times the workers in all; because the hash spreads
//! its connections unevenly, one worker may refuse it somewhat before the
//! sum reaches the cap (with 2 workers and a cap of 512, a few dozen early
//! at worst).
//!
//! IPv6 clients are counted by /64, the block one subscriber gets: counting
//! single addresses would let one host use 2^64 of them.

use std::net::{IpAddr, SocketAddr};

use hashbrown::HashMap;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;

/// Open connections per client address on one socket worker.
pub(crate) struct PerIpConns {
    counts: HashMap<u128, u32, foldhash::fast::RandomState>,
    /// This worker's share of the cap; 0 turns counting off.
    cap: u32,
}

impl PerIpConns {
    /// `cap` is the tracker-wide cap, 0 for none.
    pub(crate) fn new(cap: usize, workers: usize) -> Self {
        let share = cap.div_ceil(workers.max(1));
        Self {
            counts: HashMap::default(),
            cap: u32::try_from(share).unwrap_or(u32::MAX),
        }
    }

    /// Counts a new connection from `addr`, or says it is over the cap.
    pub(crate) fn admit(&mut self, addr: SocketAddr) -> bool {
        if self.cap == 0 {
            return true;
        }
        let n = self.counts.entry(key(addr.ip())).or_insert(0);
        if *n >= self.cap {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection [`admit`](Self::admit)ted from `addr` closed.
    pub(crate) fn release(&mut self, addr: SocketAddr) {
        if self.cap == 0 {
            return;
        }
        let k = key(addr.ip());
        if let Some(n) = self.counts.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                // Entries exist only for addresses with open connections,
                // so the map is bounded by `max_connections`.
                self.counts.remove(&k);
            }
        }
    }
}

/// IPv4 (also mapped into IPv6) as itself, IPv6 by its /64.
fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        // Mapped form: its low 64 bits are never 0, unlike a /64 key's.
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

/// The close frame a failed read is answered with (RFC 6455 section 7.4.1),
/// or `None` when the peer is gone and there is nobody to tell.
pub(crate) fn ws_close_for(err: &tungstenite::Error) -> Option<(CloseCode, &'static str)> {
    use tungstenite::Error;
    match err {
        Error::Utf8(_) => Some((CloseCode::Invalid, "text message is not UTF-8")),
        Error::Capacity(_) => Some((CloseCode::Size, "message too large")),
        Error::Protocol(p) => {
            let reason = match p {
                ProtocolError::ResetWithoutClosingHandshake => return None,
                ProtocolError::UnmaskedFrameFromClient => "client frames must be masked",
                ProtocolError::NonZeroReservedBits => "reserved bits set",
                ProtocolError::UnknownControlFrameType(_)
                | ProtocolError::UnknownDataFrameType(_) => "reserved opcode",
                ProtocolError::ControlFrameTooBig => "control frame longer than 125 bytes",
                ProtocolError::FragmentedControlFrame => "fragmented control frame",
                ProtocolError::UnexpectedContinueFrame | ProtocolError::ExpectedFragment(_) => {
                    "bad fragmentation"
                }
                _ => "protocol error",
            };
            Some((CloseCode::Protocol, reason))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_worker_allows_its_share_of_the_cap() {
        let mut p = PerIpConns::new(5, 2);
        for _ in 0..3 {
            assert!(p.admit(a("192.0.2.1:1")));
        }
        assert!(!p.admit(a("192.0.2.1:2")), "share is ceil(5 / 2) = 3");
        assert!(!p.admit(a("[::ffff:192.0.2.1]:2")), "mapped is the same");
        assert!(p.admit(a("192.0.2.2:1")));
        p.release(a("192.0.2.1:1"));
        assert!(p.admit(a("192.0.2.1:3")));
    }

    #[test]
    fn ipv6_is_counted_by_64_prefix() {
        let mut p = PerIpConns::new(2, 1);
        assert!(p.admit(a("[2001:db8:0:1::1]:1")));
        assert!(p.admit(a("[2001:db8:0:1::2]:1")));
        assert!(!p.admit(a("[2001:db8:0:1:ffff::3]:1")));
        assert!(p.admit(a("[2001:db8:0:2::1]:1")));
    }

    #[test]
    fn cap_zero_counts_nothing() {
        let mut p = PerIpConns::new(0, 4);
        for _ in 0..100 {
            assert!(p.admit(a("192.0.2.1:1")));
        }
        p.release(a("192.0.2.1:1"));
        assert!(p.counts.is_empty());
    }
}
