//! Stateless BEP 15 connection ids.
//!
//! BEP 15 makes a client prove it can receive at its source address before
//! the tracker acts on an announce: the tracker hands out a connection id,
//! and the client must echo it. Remembering every id handed out would cost
//! memory per connect and could be flooded, so instead the id is a MAC: the
//! server can recompute it from the request alone.
//!
//! An id is `tick << 32 | mac`, where `tick` is the u32 second it was issued
//! and `mac` the low 32 bits of SipHash-2-4, under a server secret, of the
//! 24-byte message
//!
//! ```text
//!  0..16  client IP (IPv4 as the mapped ::ffff:a.b.c.d)
//! 16..20  zero
//! 20..24  tick, big-endian
//! ```
//!
//! taken as three little-endian words. Carrying the tick in clear lets the
//! verifier know which tick to hash and bound the age without trying several.
//! A fixed 24-byte message and [`siphash24_3words`] keep the computation
//! straight-line, so the XDP program can answer connects and check ids with
//! the same secret and get bit-identical results.
//!
//! The id is bound to the client's IP only, not its UDP port. libtorrent
//! keeps one id per tracker for the whole process and reuses it from every
//! session and listen socket, and NAT port rebinding changes the source
//! port under a client; binding the port made such clients wait out
//! `connection id invalid or expired` for over a minute. The port adds
//! nothing against spoofing: the id only proves that the holder can
//! receive at that IP, and anyone there could ask for their own id anyway.
//!
//! BEP 15 asks trackers to accept an id for two minutes after sending it
//! ([`CONNECTION_ID_LIFETIME_SECS`]). 32 MAC bits make a forgery one guess in
//! four billion per packet, which is plenty for a token whose only job is to
//! stop address spoofing.

use core::fmt;
use core::net::IpAddr;

use crate::siphash::siphash24_3words;
use crate::udp::ConnectionId;

/// How long an id stays valid, per BEP 15.
pub const CONNECTION_ID_LIFETIME_SECS: u32 = 120;

/// How far in the future an id's tick may be. The XDP side stamps ids with a
/// tick userland last wrote into a map, which can be a second off either way
/// from the clock userland verifies against.
pub const MAX_FUTURE_SKEW_SECS: u32 = 2;

/// The SipHash key the ids are made with.
#[derive(Clone, Copy)]
pub struct ConnectionIdSecret {
    pub k0: u64,
    pub k1: u64,
}

impl ConnectionIdSecret {
    /// Builds the key from 16 random bytes, each half read little-endian as
    /// the SipHash reference code does.
    pub fn from_bytes(key: [u8; 16]) -> Self {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = key;
        ConnectionIdSecret {
            k0: u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            k1: u64::from_le_bytes([i, j, k, l, m, n, o, p]),
        }
    }
}

// Keys end up in logs through `{:?}` of whatever holds them; never print them.
impl fmt::Debug for ConnectionIdSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionIdSecret").finish_non_exhaustive()
    }
}

/// The 16-byte form of a client address the MAC covers. IPv4 is mapped so
/// that a client reaching a dual-stack socket gets the same id as through an
/// IPv4 socket.
pub fn ip_to_16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The 32-bit MAC of (ip, tick), as a u64 with the top half zero.
#[inline]
fn mac(secret: &ConnectionIdSecret, tick: u32, ip: &[u8; 16]) -> u64 {
    let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p] = *ip;
    let [t0, t1, t2, t3] = tick.to_be_bytes();
    let words = [
        u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        u64::from_le_bytes([i, j, k, l, m, n, o, p]),
        u64::from_le_bytes([0, 0, 0, 0, t0, t1, t2, t3]),
    ];
    siphash24_3words(secret.k0, secret.k1, words) & 0xffff_ffff
}

/// The id to hand to a client at `ip` (any port) at `tick` (unix seconds,
/// wrapping).
pub fn make_connection_id(secret: &ConnectionIdSecret, tick: u32, ip: &[u8; 16]) -> ConnectionId {
    ConnectionId((u64::from(tick) << 32) | mac(secret, tick, ip))
}

/// Whether `id` was issued by [`make_connection_id`] under `secret` to
/// `ip`, no more than `lifetime_secs` before `now_tick` and no more than
/// [`MAX_FUTURE_SKEW_SECS`] after it. Ticks wrap, so lifetimes beyond
/// 2^31 seconds are meaningless. See the module documentation for the
/// scheme and why it needs no per-client state.
pub fn verify_connection_id(
    secret: &ConnectionIdSecret,
    id: ConnectionId,
    now_tick: u32,
    lifetime_secs: u32,
    ip: &[u8; 16],
) -> bool {
    let id_tick = (id.0 >> 32) as u32;
    // Fold the difference into one word and test it once, so the time taken
    // does not reveal how many leading MAC bits a guess got right.
    let diff = (id.0 & 0xffff_ffff) ^ mac(secret, id_tick, ip);
    let mac_ok = diff == 0;
    let age = i64::from(now_tick.wrapping_sub(id_tick) as i32);
    let age_ok = age >= -i64::from(MAX_FUTURE_SKEW_SECS) && age <= i64::from(lifetime_secs);
    mac_ok & age_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const SECRET: ConnectionIdSecret = ConnectionIdSecret {
        k0: 0x0123_4567_89ab_cdef,
        k1: 0xfedc_ba98_7654_3210,
    };
    const LIFE: u32 = CONNECTION_ID_LIFETIME_SECS;

    fn v4() -> [u8; 16] {
        ip_to_16(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
    }

    fn ok(id: ConnectionId, now: u32) -> bool {
        verify_connection_id(&SECRET, id, now, LIFE, &v4())
    }

    #[test]
    fn accepted_from_issue_to_end_of_lifetime() {
        let id = make_connection_id(&SECRET, 1_700_000_000, &v4());
        assert_eq!(id.0 >> 32, 1_700_000_000);
        assert!(ok(id, 1_700_000_000));
        assert!(ok(id, 1_700_000_000 + LIFE));
        assert!(!ok(id, 1_700_000_000 + LIFE + 1));
    }

    #[test]
    fn small_future_skew_tolerated() {
        let id = make_connection_id(&SECRET, 1000, &v4());
        assert!(ok(id, 999));
        assert!(ok(id, 998));
        assert!(!ok(id, 997));
    }

    #[test]
    fn bound_to_ip_and_secret() {
        let id = make_connection_id(&SECRET, 1000, &v4());
        let other_ip = ip_to_16(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)));
        assert!(!verify_connection_id(&SECRET, id, 1000, LIFE, &other_ip));
        let v6 = ip_to_16(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)));
        assert!(!verify_connection_id(&SECRET, id, 1000, LIFE, &v6));
        let other_secret = ConnectionIdSecret {
            k0: SECRET.k0 ^ 1,
            k1: SECRET.k1,
        };
        assert!(!verify_connection_id(&other_secret, id, 1000, LIFE, &v4()));
    }

    #[test]
    fn same_ip_other_port_verifies() {
        // The port is not an input: a client's id issued on a connect from
        // one socket is the id any of its sockets on that IP would get, so
        // a second session or a NAT rebinding keeps working.
        let id = make_connection_id(&SECRET, 1000, &v4());
        assert!(ok(id, 1000));
        assert!(ok(id, 1000 + LIFE));
        assert!(!ok(id, 1000 + LIFE + 1), "other ports still expire");
    }

    #[test]
    fn any_flipped_bit_rejected() {
        let id = make_connection_id(&SECRET, 1000, &v4());
        for bit in 0..64 {
            let forged = ConnectionId(id.0 ^ (1 << bit));
            assert!(!ok(forged, 1000), "bit {bit}");
        }
    }

    #[test]
    fn v4_and_v4_mapped_agree() {
        let plain = ip_to_16(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        let mapped = ip_to_16(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()));
        assert_eq!(plain, mapped);
        assert_eq!(
            make_connection_id(&SECRET, 5, &plain),
            make_connection_id(&SECRET, 5, &mapped)
        );
        let v6 = ip_to_16(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert_ne!(
            make_connection_id(&SECRET, 5, &plain),
            make_connection_id(&SECRET, 5, &v6)
        );
    }

    #[test]
    fn tick_wraparound() {
        let id = make_connection_id(&SECRET, u32::MAX - 10, &v4());
        assert!(ok(id, u32::MAX));
        assert!(ok(id, 50)); // 61 seconds later, past the wrap
        assert!(ok(id, LIFE - 11));
        assert!(!ok(id, LIFE - 10));

        let id = make_connection_id(&SECRET, 1, &v4());
        assert!(ok(id, u32::MAX)); // issued 2 s "ahead", across the wrap
        assert!(!ok(id, u32::MAX - 1));
    }

    #[test]
    fn message_layout() {
        // Pins the layout the XDP program reproduces, independent of `mac`.
        let ip = v4();
        let tick = 0x1122_3344u32;
        let mut msg = [0u8; 24];
        msg[..16].copy_from_slice(&ip);
        msg[20..].copy_from_slice(&tick.to_be_bytes());
        let hash = crate::siphash::siphash24(SECRET.k0, SECRET.k1, &msg);
        let id = make_connection_id(&SECRET, tick, &ip);
        assert_eq!(id.0, (u64::from(tick) << 32) | (hash & 0xffff_ffff));
    }

    #[test]
    fn debug_hides_key() {
        extern crate std;
        use std::format;
        let s = format!("{SECRET:?}");
        assert!(!s.contains("0123") && !s.contains(&format!("{}", SECRET.k0)));
        assert_eq!(s, "ConnectionIdSecret { .. }");
    }

    #[test]
    fn from_bytes_is_little_endian() {
        let s =
            ConnectionIdSecret::from_bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(s.k0, 0x0706_0504_0302_0100);
        assert_eq!(s.k1, 0x0f0e_0d0c_0b0a_0908);
    }
}
