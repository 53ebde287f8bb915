//! SipHash-2-4 (Aumasson & Bernstein), the keyed PRF behind connection ids.
//!
//! Written here rather than taken from a crate because the XDP program has
//! to compute the very same function, and the eBPF verifier only accepts
//! bounded, straight-line code: [`siphash24_3words`] is the shape the BPF
//! side copies, and [`siphash24`] is the general reference it is tested
//! against.

const IV0: u64 = 0x736f_6d65_7073_6575; // "somepseu"
const IV1: u64 = 0x646f_7261_6e64_6f6d; // "dorandom"
const IV2: u64 = 0x6c79_6765_6e65_7261; // "lygenera"
const IV3: u64 = 0x7465_6462_7974_6573; // "tedbytes"

#[derive(Clone, Copy)]
struct State {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl State {
    #[inline(always)]
    fn new(k0: u64, k1: u64) -> Self {
        State {
            v0: IV0 ^ k0,
            v1: IV1 ^ k1,
            v2: IV2 ^ k0,
            v3: IV3 ^ k1,
        }
    }

    // Inlined so the BPF port sees straight-line code, not a call per round.
    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// Two compression rounds per 8-byte word: the "2" of SipHash-2-4.
    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }

    /// Four finalization rounds: the "4" of SipHash-2-4.
    #[inline(always)]
    fn finish(mut self) -> u64 {
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        self.round();
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

/// SipHash-2-4 of `data` under the 128-bit key `k0 || k1` (each half the
/// little-endian reading of 8 key bytes, as in the reference code).
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut s = State::new(k0, k1);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        s.compress(u64::from_le_bytes(b));
    }
    // Last block: the remaining 0..=7 bytes, zero padded, with the message
    // length (mod 256) in the top byte, so messages differing only by
    // trailing zeros hash differently.
    let mut last = [0u8; 8];
    let tail = words.remainder();
    if let Some(dst) = last.get_mut(..tail.len()) {
        dst.copy_from_slice(tail);
    }
    let m = u64::from_le_bytes(last) | ((data.len() as u64) << 56);
    s.compress(m);
    s.finish()
}

/// SipHash-2-4 of exactly 24 bytes, given as three little-endian words.
///
/// Equal to `siphash24(k0, k1, bytes)` where `bytes` is `m[0]`, `m[1]`,
/// `m[2]` each written little-endian. Straight-line on purpose: this is the
/// form the XDP program reproduces, and the verifier rejects loops whose
/// bound depends on data.
#[inline]
pub fn siphash24_3words(k0: u64, k1: u64, m: [u64; 3]) -> u64 {
    let mut s = State::new(k0, k1);
    s.compress(m[0]);
    s.compress(m[1]);
    s.compress(m[2]);
    // 24 is a multiple of 8, so the final block is only the length byte.
    s.compress(24u64 << 56);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference key 00 01 .. 0f.
    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

    /// `vectors_sip64` from the reference implementation: entry `i` is the
    /// hash of the message 00 01 .. (i-1), read as a little-endian u64.
    const VECTORS: [u64; 64] = [
        0x726f_db47_dd0e_0e31,
        0x74f8_39c5_93dc_67fd,
        0x0d6c_8009_d9a9_4f5a,
        0x8567_6696_d7fb_7e2d,
        0xcf27_94e0_2771_87b7,
        0x1876_5564_cd99_a68d,
        0xcbc9_466e_58fe_e3ce,
        0xab02_00f5_8b01_d137,
        0x93f5_f579_9a93_2462,
        0x9e00_82df_0ba9_e4b0,
        0x7a5d_bbc5_94dd_b9f3,
        0xf4b3_2f46_226b_ada7,
        0x751e_8fbc_860e_e5fb,
        0x14ea_5627_c084_3d90,
        0xf723_ca90_8e7a_f2ee,
        0xa129_ca61_49be_45e5,
        0x3f2a_cc7f_57c2_9bdb,
        0x699a_e9f5_2cbe_4794,
        0x4bc1_b3f0_968d_d39c,
        0xbb6d_c91d_a779_61bd,
        0xbed6_5cf2_1aa2_ee98,
        0xd0f2_cbb0_2e3b_67c7,
        0x9353_6795_e3a3_3e88,
        0xa80c_038c_cd5c_cec8,
        0xb8ad_50c6_f649_af94,
        0xbce1_92de_8a85_b8ea,
        0x17d8_35b8_5bbb_15f3,
        0x2f2e_6163_076b_cfad,
        0xde4d_aaac_a71d_c9a5,
        0xa6a2_5066_8795_6571,
        0xad87_a353_5c49_ef28,
        0x32d8_92fa_d841_c342,
        0x7127_512f_72f2_7cce,
        0xa7f3_2346_f959_78e3,
        0x12e0_b01a_bb05_1238,
        0x15e0_34d4_0fa1_97ae,
        0x314d_ffbe_0815_a3b4,
        0x0279_90f0_2962_3981,
        0xcadc_d4e5_9ef4_0c4d,
        0x9abf_d876_6a33_735c,
        0x0e3e_a96b_5304_a7d0,
        0xad0c_42d6_fc58_5992,
        0x1873_06c8_9bc2_15a9,
        0xd4a6_0abc_f379_2b95,
        0xf935_451d_e4f2_1df2,
        0xa953_8f04_1975_5787,
        0xdb9a_cddf_f56c_a510,
        0xd06c_98cd_5c09_75eb,
        0xe612_a3cb_9ecb_a951,
        0xc766_e62c_fcad_af96,
        0xee64_435a_9752_fe72,
        0xa192_d576_b245_165a,
        0x0a87_87bf_8ecb_74b2,
        0x81b3_e73d_20b4_9b6f,
        0x7fa8_220b_a3b2_ecea,
        0x2457_31c1_3ca4_2499,
        0xb78d_bfaf_3a8d_83bd,
        0xea1a_d565_322a_1a0b,
        0x60e6_1c23_a379_5013,
        0x6606_d7e4_4628_2b93,
        0x6ca4_ecb1_5c5f_91e1,
        0x9f62_6da1_5c96_25f3,
        0xe51b_3860_8ef2_5f57,
        0x958a_324c_eb06_4572,
    ];

    /// The reference messages are prefixes of 00 01 02 ..
    fn message() -> [u8; 64] {
        let mut m = [0u8; 64];
        for (i, b) in m.iter_mut().enumerate() {
            *b = i as u8;
        }
        m
    }

    #[test]
    fn reference_vectors() {
        let m = message();
        for (len, want) in VECTORS.iter().enumerate() {
            assert_eq!(siphash24(K0, K1, &m[..len]), *want, "length {len}");
        }
    }

    #[test]
    fn named_reference_vectors() {
        let m = message();
        assert_eq!(siphash24(K0, K1, &m[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(K0, K1, &m[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(K0, K1, &m[..7]), 0xab02_00f5_8b01_d137);
        assert_eq!(siphash24(K0, K1, &m[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(K0, K1, &m[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(K0, K1, &m[..63]), 0x958a_324c_eb06_4572);
    }

    #[test]
    fn three_words_matches_vector_24() {
        let m = message();
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&m[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        assert_eq!(siphash24_3words(K0, K1, [w(0), w(1), w(2)]), VECTORS[24]);
    }

    #[cfg(feature = "std")]
    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn to_bytes(m: [u64; 3]) -> [u8; 24] {
            let mut b = [0u8; 24];
            b[..8].copy_from_slice(&m[0].to_le_bytes());
            b[8..16].copy_from_slice(&m[1].to_le_bytes());
            b[16..].copy_from_slice(&m[2].to_le_bytes());
            b
        }

        proptest! {
            #[test]
            fn three_words_equals_general(k0: u64, k1: u64, m: [u64; 3]) {
                prop_assert_eq!(siphash24_3words(k0, k1, m), siphash24(k0, k1, &to_bytes(m)));
            }

            // std's deprecated SipHasher is SipHash-2-4 over the raw bytes
            // written to it: an independent implementation to compare with.
            #[test]
            #[allow(deprecated)]
            fn matches_std_siphasher(k0: u64, k1: u64, data in proptest::collection::vec(any::<u8>(), 0..200)) {
                use std::hash::Hasher;
                let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
                h.write(&data);
                prop_assert_eq!(siphash24(k0, k1, &data), h.finish());
            }
        }
    }
}
