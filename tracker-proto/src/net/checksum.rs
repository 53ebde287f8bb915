//! The Internet checksum (RFC 1071), the UDP pseudo-headers (RFC 768,
//! RFC 8200 §8.1) and the incremental update of RFC 1624.
//!
//! Sums are kept unfolded in a `u32` (or the `u64` of [`Checksum`]) and
//! folded once at the end: two's-complement addition with the carries added
//! back later gives the same one's-complement sum (RFC 1071 §2(B)). The
//! fixed-size functions take `&[u8; N]` so that the eBPF program, which
//! may only loop a bounded number of times, gets fully unrolled code.

/// `sum` plus the big-endian 16-bit words of `bytes`, unfolded. `N` must be
/// even; an odd last byte is ignored. Callers in the eBPF program add at
/// most a few dozen words, far from overflowing 32 bits.
#[inline(always)]
pub const fn sum_words<const N: usize>(mut sum: u32, bytes: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// Folds a 32-bit sum of 16-bit words to their one's-complement sum.
#[inline(always)]
pub const fn fold(mut sum: u32) -> u16 {
    // Two rounds absorb every carry of a 32-bit sum: the first leaves at
    // most 0xFFFF + 0xFFFF, the second at most 0xFFFF.
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum as u16
}

/// The Internet checksum `check` after the bytes `old` of the data it
/// covers (at an even offset) were replaced by `new`: RFC 1624's
/// HC' = ~(~HC + ~m + m'), which needs neither the rest of the data nor the
/// pseudo-header. (RFC 1141's ~HC-free form gets the 0x0000/0xFFFF corner
/// wrong; RFC 1624 §3 explains.)
#[inline(always)]
pub const fn replace<const N: usize>(check: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut sum = (!check) as u32;
    let mut i = 0;
    while i + 1 < N {
        sum += (!u16::from_be_bytes([old[i], old[i + 1]])) as u32;
        i += 2;
    }
    !fold(sum_words(sum, new))
}

/// The unfolded sum of the IPv4 pseudo-header: source, destination, zero
/// and protocol, and the UDP (or TCP) length.
#[inline(always)]
pub const fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, len: u16) -> u32 {
    sum_words(sum_words(0, src), dst) + protocol as u32 + len as u32
}

/// The unfolded sum of the IPv6 pseudo-header: source, destination, the
/// 32-bit upper-layer length, 24 zero bits and the next header. The zeros
/// add nothing, and the length's two halves are two words.
#[inline(always)]
pub const fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    sum_words(sum_words(0, src), dst) + (len >> 16) + (len & 0xFFFF) + next_header as u32
}

/// The value to put in a UDP checksum field for a computed checksum:
/// zero on the wire means "no checksum" (IPv4) or is invalid (IPv6), so a
/// computed zero goes out as its one's-complement twin 0xFFFF (RFC 768),
/// which verifies the same.
#[inline(always)]
pub const fn udp_on_wire(check: u16) -> u16 {
    if check == 0 {
        0xFFFF
    } else {
        check
    }
}

/// What a received UDP checksum field says about its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpChecksum {
    /// Zero over IPv4: the sender computed none (RFC 768).
    Absent,
    /// Verifies over pseudo-header, header and payload.
    Complete,
    /// Holds only the folded pseudo-header sum: what a local sender with
    /// checksum offload hands over (Linux's CHECKSUM_PARTIAL), seen raw by
    /// XDP on a veth or before the NIC would have finished it.
    Partial,
    /// Anything else, including zero over IPv6 (RFC 8200 §8.1): corrupted.
    Wrong,
}

impl UdpChecksum {
    /// Classifies a received checksum field. `pseudo` is the unfolded
    /// pseudo-header sum and `segment` the unfolded sum of the whole UDP
    /// datagram, checksum field included.
    #[inline(always)]
    pub const fn classify(pseudo: u32, segment: u32, check: u16, ipv4: bool) -> UdpChecksum {
        if check == 0 {
            return if ipv4 {
                UdpChecksum::Absent
            } else {
                UdpChecksum::Wrong
            };
        }
        // Each fold first: `pseudo + segment` of a long datagram could
        // carry out of 32 bits.
        if fold(fold(pseudo) as u32 + fold(segment) as u32) == 0xFFFF {
            UdpChecksum::Complete
        } else if check == fold(pseudo) {
            UdpChecksum::Partial
        } else {
            UdpChecksum::Wrong
        }
    }

    /// The one policy both sides of the XDP path apply: accept what the
    /// kernel's UDP stack would accept, since a datagram handled on the XDP
    /// path never reaches the stack's own check.
    #[inline(always)]
    pub const fn accepted(self) -> bool {
        !matches!(self, UdpChecksum::Wrong)
    }
}

/// One's-complement sum accumulator over byte slices of any length, for
/// userland (the eBPF program uses the fixed-size functions above).
///
/// `add_bytes` treats its input as big-endian 16-bit words and pads an odd
/// trailing byte with zero, so only the last chunk fed in may have odd
/// length.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    // Wide enough that no realistic amount of data carries out of it; all
    // carries are folded in `sum`.
    sum: u64,
}

impl Checksum {
    pub const fn new() -> Self {
        Checksum { sum: 0 }
    }

    /// Starts from an unfolded partial sum such as a pseudo-header's.
    pub const fn from_sum(sum: u32) -> Self {
        Checksum { sum: sum as u64 }
    }

    pub fn add_u16(&mut self, word: u16) {
        self.sum += u64::from(word);
    }

    pub fn add_bytes(&mut self, data: &[u8]) {
        // 32-bit words fold to the same one's-complement sum as pairs of
        // 16-bit words (2^16 ≡ 1 mod 0xFFFF) with half the additions.
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            let mut b = [0u8; 4];
            b.copy_from_slice(w);
            self.sum += u64::from(u32::from_be_bytes(b));
        }
        let mut rest = words.remainder().chunks_exact(2);
        for w in &mut rest {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let Some(&last) = rest.remainder().first() {
            self.sum += u64::from(last) << 8;
        }
    }

    /// The one's-complement sum so far, folded (not complemented).
    pub fn sum(self) -> u16 {
        let mut sum = self.sum;
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        // The loop leaves at most 0xFFFF.
        sum as u16
    }

    /// The checksum to store in a header. Over data that already contains
    /// a valid checksum this is 0.
    pub fn finish(self) -> u16 {
        !self.sum()
    }
}

/// RFC 1071 checksum of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum = Checksum::new();
    sum.add_bytes(data);
    sum.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deliberately naive RFC 1071 sum, independent of the code above:
    /// 16-bit words, end-around carry after every addition.
    fn ref_sum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
            if sum > 0xFFFF {
                sum = (sum & 0xFFFF) + 1;
            }
        }
        sum as u16
    }

    #[test]
    fn rfc1071_worked_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7];
        assert_eq!(fold(sum_words(0, &data)), 0xDDF2);
        assert_eq!(internet_checksum(&data), !0xDDF2);
        assert_eq!(internet_checksum(&[]), 0xFFFF);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // The classic example header (Wikipedia, "IPv4 header checksum"):
        // 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7. By hand /
        // Python: sum(struct.unpack("!10H", hdr_with_zero_check)) =
        // 0x2479c, folded 0x479e, complemented 0xb861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xC0, 0xA8,
            0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7,
        ];
        assert_eq!(!fold(sum_words(0, &hdr)), 0xB861);
        assert_eq!(internet_checksum(&hdr), 0xB861);
        hdr[10..12].copy_from_slice(&0xB861u16.to_be_bytes());
        assert_eq!(internet_checksum(&hdr), 0);
    }

    #[test]
    fn slices_match_reference_at_every_length_and_alignment() {
        let data: std::vec::Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for start in 0..8 {
            for end in start..data.len() {
                if (end - start) % 97 != 0 && end - start > 16 {
                    continue;
                }
                let d = &data[start..end];
                assert_eq!(internet_checksum(d), !ref_sum(d), "{start}..{end}");
            }
        }
    }

    #[test]
    fn pseudo_headers() {
        // IPv4 192.0.2.1 -> 198.51.100.2, UDP, length 24. By hand:
        // c000+0201+c633+6402+0011+0018 = 0x1ec5f.
        let v4 = pseudo_header_v4(&[192, 0, 2, 1], &[198, 51, 100, 2], 17, 24);
        assert_eq!(v4, 0x1EC5F);
        // IPv6 2001:db8::1 -> 2001:db8::2, UDP, length 24: the addresses
        // give 2*(0x2001+0x0db8) + 1 + 2, plus 0x18 and 0x11.
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0D, 0xB8]);
        let mut b = a;
        a[15] = 1;
        b[15] = 2;
        let v6 = pseudo_header_v6(&a, &b, 17, 24);
        assert_eq!(v6, 2 * (0x2001 + 0x0DB8) + 3 + 0x18 + 0x11);
        // The 32-bit length's high half counts too.
        assert_eq!(pseudo_header_v6(&a, &b, 17, 0x1_0018), v6 + 1);
        // And it is the RFC 8200 layout summed naively.
        let mut layout = std::vec::Vec::new();
        layout.extend_from_slice(&a);
        layout.extend_from_slice(&b);
        layout.extend_from_slice(&24u32.to_be_bytes());
        layout.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(v6), ref_sum(&layout));
    }

    #[test]
    fn udp_checksum_classes() {
        // A known UDP/IPv4 datagram: 192.0.2.1:1234 -> 198.51.100.2:6969,
        // payload "ab", length 10. Python:
        //   words = [0xc000,0x0201,0xc633,0x6402,17,10, 1234,6969,10,0, 0x6162]
        //   s = sum(words); s = (s & 0xffff) + (s >> 16) -> 0x6dca; ~ -> 0x9235
        let src = [192, 0, 2, 1];
        let dst = [198, 51, 100, 2];
        let pseudo = pseudo_header_v4(&src, &dst, 17, 10);
        let mut udp = [0x04, 0xD2, 0x1B, 0x39, 0x00, 0x0A, 0x00, 0x00, 0x61, 0x62];
        let check = !fold(sum_words(pseudo, &udp));
        assert_eq!(check, 0x9235);
        udp[6..8].copy_from_slice(&check.to_be_bytes());
        let segment = sum_words(0, &udp);
        assert_eq!(
            UdpChecksum::classify(pseudo, segment, check, true),
            UdpChecksum::Complete
        );
        assert_eq!(
            UdpChecksum::classify(pseudo, segment, check, false),
            UdpChecksum::Complete
        );
        // The same with the offload's partial sum in the field.
        let partial = fold(pseudo);
        udp[6..8].copy_from_slice(&partial.to_be_bytes());
        let segment = sum_words(0, &udp);
        assert_eq!(
            UdpChecksum::classify(pseudo, segment, partial, true),
            UdpChecksum::Partial
        );
        // One flipped payload bit.
        udp[6..8].copy_from_slice(&check.to_be_bytes());
        udp[9] ^= 1;
        let segment = sum_words(0, &udp);
        let wrong = UdpChecksum::classify(pseudo, segment, check, true);
        assert_eq!(wrong, UdpChecksum::Wrong);
        assert!(!wrong.accepted());
    }

    #[test]
    fn zero_udp_checksum_is_absent_over_ipv4_only() {
        let pseudo = pseudo_header_v4(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, 8);
        let udp = [0x30, 0x39, 0x1B, 0x39, 0x00, 0x08, 0x00, 0x00];
        let segment = sum_words(0, &udp);
        let v4 = UdpChecksum::classify(pseudo, segment, 0, true);
        assert_eq!(v4, UdpChecksum::Absent);
        assert!(v4.accepted());
        let v6 = UdpChecksum::classify(pseudo, segment, 0, false);
        assert_eq!(v6, UdpChecksum::Wrong);
        assert!(!v6.accepted());
        // And a computed zero is never sent as zero.
        assert_eq!(udp_on_wire(0), 0xFFFF);
        assert_eq!(udp_on_wire(0x1234), 0x1234);
    }

    #[test]
    fn ttl_rewrite_known_value() {
        // The example header above with TTL 0x40 -> 0x3f: the ttl/protocol
        // word drops by 0x100, so the checksum rises by 0x100: 0xb961.
        let new = replace(0xB861, &[0x40, 0x11], &[0x3F, 0x11]);
        assert_eq!(new, 0xB961);
    }

    proptest! {
        /// RFC 1624's update agrees with recomputing from scratch, for any
        /// header and any word replaced at any even offset.
        #[test]
        fn incremental_update_matches_recomputation(
            words in proptest::collection::vec(any::<u16>(), 2..30),
            at in any::<proptest::sample::Index>(),
            replacement in any::<[u8; 2]>(),
        ) {
            let mut data: std::vec::Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let i = at.index(words.len()) * 2;
            let check = internet_checksum(&data);
            let old = [data[i], data[i + 1]];
            data[i..i + 2].copy_from_slice(&replacement);
            let updated = replace(check, &old, &replacement);
            // Equal as one's-complement numbers: 0 and 0xFFFF both verify.
            let full = internet_checksum(&data);
            prop_assert!(updated == full || (updated | full == 0xFFFF && updated & full == 0),
                "updated {updated:#06x} full {full:#06x}");
            // Either way the updated checksum verifies the new data.
            let mut verify = Checksum::new();
            verify.add_bytes(&data);
            verify.add_u16(updated);
            prop_assert_eq!(verify.finish(), 0);
        }

        /// Four-byte replacements (an address) the same way, and a fresh
        /// fixed-size sum agrees with the slice accumulator.
        #[test]
        fn incremental_update_of_addresses(
            header in any::<[u8; 20]>(),
            new_addr in any::<[u8; 4]>(),
        ) {
            let mut header = header;
            header[10] = 0;
            header[11] = 0;
            let check = !fold(sum_words(0, &header));
            prop_assert_eq!(check, internet_checksum(&header));
            let old: [u8; 4] = header[12..16].try_into().unwrap();
            header[12..16].copy_from_slice(&new_addr);
            let updated = replace(check, &old, &new_addr);
            header[10..12].copy_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(ref_sum(&header), 0xFFFF);
        }
    }
}
