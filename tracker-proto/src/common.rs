//! Types shared by every tracker protocol.

use core::fmt;

/// SHA-1 info hash of a torrent (BEP 3), 20 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct InfoHash(pub [u8; 20]);

/// A peer's self-chosen 20-byte id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct PeerId(pub [u8; 20]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl InfoHash {
    /// Parses 40 hex digits (either case), as written in access lists.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(InfoHash(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `event` of an announce. UDP numbers them 0..=3 (BEP 15); HTTP and
/// WebTorrent name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    /// A regular re-announce (UDP 0, HTTP absent or empty, WS "update").
    #[default]
    None,
    /// The download finished (UDP 1).
    Completed,
    /// The peer joined the swarm (UDP 2).
    Started,
    /// The peer left the swarm (UDP 3).
    Stopped,
}

impl AnnounceEvent {
    pub fn from_udp(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::None,
            1 => Self::Completed,
            2 => Self::Started,
            3 => Self::Stopped,
            _ => return None,
        })
    }

    pub const fn to_udp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = InfoHash::from_hex("0123456789abcdefABCDEF0123456789abcdef01").unwrap();
        assert_eq!(h.0[0], 0x01);
        assert_eq!(h.0[7], 0xef);
        assert_eq!(h.0[8], 0xab);
        assert!(InfoHash::from_hex("0123").is_none());
        assert!(InfoHash::from_hex("g123456789abcdefABCDEF0123456789abcdef01").is_none());
    }

    #[test]
    fn udp_events_round_trip() {
        for v in 0..4 {
            assert_eq!(AnnounceEvent::from_udp(v).unwrap().to_udp(), v);
        }
        assert!(AnnounceEvent::from_udp(4).is_none());
    }
}
