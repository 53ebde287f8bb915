//! What the swarm examples share.

use tracker_proto::InfoHash;

/// Info hash number `i`, spread like SHA-1 output, as the shard's hasher
/// expects nothing else.
pub fn hash(i: u64) -> InfoHash {
    let mut h = [0u8; 20];
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h[..8].copy_from_slice(&x.to_le_bytes());
    h[8..16].copy_from_slice(&i.to_le_bytes());
    InfoHash(h)
}
