//! The snapshot file: what a restart needs to be invisible to clients
//! (every UDP/HTTP peer, every completed count, the connection-id secret),
//! in a compact binary form that is fast to write and to check.
//!
//! ```text
//! header, 32 bytes:
//!    0..8   magic "BTSWARM\0"
//!    8..12  format version (u32 LE): a file of another version is refused
//!   12..16  zero
//!   16..24  body length in bytes (u64 LE): a shorter file was truncated
//!   24..28  CRC-32 (IEEE) of the body (u32 LE)
//!   28..32  zero
//! body:
//!   16 bytes  connection-id secret
//!    8 bytes  unix time the snapshot was taken (u64 LE)
//!   then torrent records to the end, each:
//!     20 bytes  info hash
//!      4 bytes  completed count (u32 LE)
//!      4 bytes  IPv4 peers n4 (u32 LE)
//!      4 bytes  IPv6 peers n6 (u32 LE)
//!     n4 × 11   IPv4 address, port (network order), flags, last announce
//!     n6 × 23   IPv6 address, port (network order), flags, last announce
//! ```
//!
//! Flags: bit 0 seeder, bit 1 completion already counted. Last announce is
//! unix seconds (u32 LE), so a peer keeps its age across the restart. A
//! torrent with no peers is a kept completed count. Integers are
//! little-endian, the order every platform the tracker runs on uses, so
//! encoding is a copy. No serialisation crate: the layout is fixed-size
//! records, and writing them by hand costs nothing a crate would save.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use crossbeam_channel::Sender;
use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::InfoHash;

pub const MAGIC: [u8; 8] = *b"BTSWARM\0";
/// Bumped whenever the layout changes: an older or newer tracker then
/// refuses the file (and moves it aside) rather than misreading it.
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 32;
const PREFIX_LEN: usize = 16 + 8;
pub(crate) const TORRENT_LEN: usize = 32;
pub(crate) const V4_LEN: usize = 11;
pub(crate) const V6_LEN: usize = 23;
pub(crate) const FLAG_SEEDER: u8 = 1;
pub(crate) const FLAG_COMPLETED: u8 = 2;
/// Records are written into chunks of this size, so the buffer of a
/// million-peer shard never reallocates (and copies) as it grows.
const CHUNK: usize = 1 << 20;

/// Why a snapshot file cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    Empty,
    /// Shorter than the header, or than the body the header announces.
    Truncated {
        expected: u64,
        found: u64,
    },
    /// Longer than the header says: something was appended.
    TrailingBytes {
        expected: u64,
        found: u64,
    },
    /// Not a snapshot at all.
    NotASnapshot,
    /// A snapshot of another format version.
    Version {
        found: u32,
    },
    /// The body does not match its checksum: corrupted on disk.
    Checksum {
        expected: u32,
        found: u32,
    },
    /// The checksum matched but the records do not parse: written by
    /// something else, or a bug.
    Malformed {
        offset: usize,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Empty => write!(f, "the file is empty"),
            SnapshotError::Truncated { expected, found } => {
                write!(f, "truncated: {found} bytes of {expected}")
            }
            SnapshotError::TrailingBytes { expected, found } => {
                write!(f, "{found} bytes where the header says {expected}")
            }
            SnapshotError::NotASnapshot => write!(f, "not a tracker snapshot (wrong magic)"),
            SnapshotError::Version { found } => write!(
                f,
                "snapshot format version {found}, this tracker reads version {VERSION}"
            ),
            SnapshotError::Checksum { expected, found } => write!(
                f,
                "checksum mismatch (header {expected:08x}, body {found:08x}): the file is corrupt"
            ),
            SnapshotError::Malformed { offset } => {
                write!(f, "malformed record at body offset {offset}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Bytes kept in fixed-size chunks.
#[derive(Debug, Default)]
pub struct Chunks {
    chunks: Vec<Vec<u8>>,
    len: usize,
    /// Empty chunks whose memory is already touched ([`prefaulted`]),
    /// used before fresh ones.
    spare: Vec<Vec<u8>>,
}

/// Empty chunks for about `bytes` of records, every page of them touched
/// once: the first write to fresh memory costs the kernel a page fault,
/// and with transparent huge pages the zeroing of 2 MiB at a time, about
/// 5 ms measured, which a request worker would otherwise pay in the
/// middle of a slice. Made by the thread that asks for a snapshot.
pub fn prefaulted(bytes: usize) -> Vec<Vec<u8>> {
    (0..bytes.div_ceil(CHUNK))
        .map(|_| {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.resize(CHUNK, 0xa5);
            chunk.clear();
            chunk
        })
        .collect()
}

impl Chunks {
    /// Chunks that take `spare` (from [`prefaulted`]) before fresh ones.
    pub fn with_spare(spare: Vec<Vec<u8>>) -> Self {
        Self {
            spare,
            ..Self::default()
        }
    }

    /// A buffer to append `n` more bytes to: the last chunk while it has
    /// room, else a new one (larger than a chunk only for a record that is).
    pub(crate) fn room(&mut self, n: usize) -> &mut Vec<u8> {
        let full = self
            .chunks
            .last()
            .is_none_or(|c| c.len() + n > c.capacity());
        if full {
            let spare = self.spare.pop().filter(|c| c.capacity() >= n);
            self.chunks
                .push(spare.unwrap_or_else(|| Vec::with_capacity(CHUNK.max(n))));
        }
        self.len += n;
        self.chunks.last_mut().expect("pushed above")
    }

    /// Drops the spare chunks left over.
    pub(crate) fn release_spare(&mut self) {
        self.spare = Vec::new();
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Vec::as_slice)
    }
}

/// One request worker's records, and what writing them cost it.
#[derive(Debug, Default)]
pub struct SnapshotPart {
    pub worker: usize,
    pub records: Chunks,
    pub torrents: usize,
    pub peers: usize,
    /// The longest the worker spent on one slice, away from requests
    /// (wall time: preemption included).
    pub longest_slice: Duration,
    /// The most CPU time one slice took: the work itself.
    pub longest_slice_cpu: Duration,
    pub slices: usize,
}

/// A request to a worker: write your records as of now, send them back.
#[derive(Debug)]
pub struct SnapshotRequest {
    /// Unix seconds and the swarm clock at the same instant, to turn the
    /// clock's peer times into unix times.
    pub unix_now: u32,
    pub clock_now: u32,
    pub reply: Sender<SnapshotPart>,
    /// Buffers to write into ([`prefaulted`]); more are allocated if
    /// these run out.
    pub spare: Vec<Vec<u8>>,
}

/// A whole snapshot, ready to write.
#[derive(Debug)]
pub struct SnapshotFile {
    header: [u8; HEADER_LEN],
    prefix: [u8; PREFIX_LEN],
    parts: Vec<SnapshotPart>,
}

impl SnapshotFile {
    pub fn new(secret: [u8; 16], written_at: u64, parts: Vec<SnapshotPart>) -> Self {
        let mut prefix = [0u8; PREFIX_LEN];
        prefix[..16].copy_from_slice(&secret);
        prefix[16..].copy_from_slice(&written_at.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&prefix);
        let mut body_len = PREFIX_LEN as u64;
        for part in &parts {
            for chunk in part.records.iter() {
                crc.update(chunk);
                body_len += chunk.len() as u64;
            }
        }
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[16..24].copy_from_slice(&body_len.to_le_bytes());
        header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
        Self {
            header,
            prefix,
            parts,
        }
    }

    /// Bytes the file takes.
    pub fn len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from_le_bytes(self.header[16..24].try_into().expect("8 bytes"))
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn parts(&self) -> &[SnapshotPart] {
        &self.parts
    }

    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.header)?;
        out.write_all(&self.prefix)?;
        for part in &self.parts {
            for chunk in part.records.iter() {
                out.write_all(chunk)?;
            }
        }
        Ok(())
    }
}

/// A snapshot read back and checked: header, checksum and every record's
/// bounds, so restoring it cannot fail half-way.
#[derive(Debug)]
pub struct SnapshotImage {
    bytes: Vec<u8>,
    pub secret: [u8; 16],
    pub written_at: u64,
    pub torrents: usize,
    pub peers: usize,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl SnapshotImage {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, SnapshotError> {
        if bytes.is_empty() {
            return Err(SnapshotError::Empty);
        }
        let found = bytes.len() as u64;
        // The magic first: a short foreign file is foreign, not truncated.
        if bytes.len() < MAGIC.len() || bytes[..8] != MAGIC {
            let prefix_of_magic = MAGIC.starts_with(&bytes[..bytes.len().min(8)]);
            return Err(if prefix_of_magic {
                SnapshotError::Truncated {
                    expected: HEADER_LEN as u64,
                    found,
                }
            } else {
                SnapshotError::NotASnapshot
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::Truncated {
                expected: HEADER_LEN as u64,
                found,
            });
        }
        let version = u32_at(&bytes, 8);
        if version != VERSION {
            return Err(SnapshotError::Version { found: version });
        }
        let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let expected = (HEADER_LEN as u64).saturating_add(body_len);
        if found < expected {
            return Err(SnapshotError::Truncated { expected, found });
        }
        if found > expected {
            return Err(SnapshotError::TrailingBytes { expected, found });
        }
        let body = &bytes[HEADER_LEN..];
        let crc_expected = u32_at(&bytes, 24);
        let crc_found = crc32fast::hash(body);
        if crc_expected != crc_found {
            return Err(SnapshotError::Checksum {
                expected: crc_expected,
                found: crc_found,
            });
        }
        if body.len() < PREFIX_LEN {
            return Err(SnapshotError::Malformed { offset: 0 });
        }
        let mut secret = [0u8; 16];
        secret.copy_from_slice(&body[..16]);
        let written_at = u64::from_le_bytes(body[16..24].try_into().expect("8 bytes"));
        let (mut torrents, mut peers) = (0, 0);
        let mut offset = PREFIX_LEN;
        while offset < body.len() {
            let (record, next) =
                record_at(body, offset).ok_or(SnapshotError::Malformed { offset })?;
            torrents += 1;
            peers += record.v4.len() / V4_LEN + record.v6.len() / V6_LEN;
            offset = next;
        }
        Ok(Self {
            bytes,
            secret,
            written_at,
            torrents,
            peers,
        })
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    /// Every torrent record, in file order.
    pub fn records(&self) -> impl Iterator<Item = TorrentRecord<'_>> + '_ {
        let body = &self.bytes[HEADER_LEN..];
        let mut offset = PREFIX_LEN;
        std::iter::from_fn(move || {
            // Checked whole by `parse`: this only stops at the end.
            let (record, next) = record_at(body, offset)?;
            offset = next;
            Some(record)
        })
    }
}

/// The record at `offset` of `body` and where the next one starts; `None`
/// past the end or if it does not fit.
fn record_at(body: &[u8], offset: usize) -> Option<(TorrentRecord<'_>, usize)> {
    let head = body.get(offset..offset.checked_add(TORRENT_LEN)?)?;
    let n4 = u32_at(head, 24) as usize;
    let n6 = u32_at(head, 28) as usize;
    let v4_start = offset + TORRENT_LEN;
    let v6_start = v4_start.checked_add(n4.checked_mul(V4_LEN)?)?;
    let end = v6_start.checked_add(n6.checked_mul(V6_LEN)?)?;
    let record = TorrentRecord {
        info_hash: InfoHash(head[..20].try_into().expect("20 bytes")),
        completed: u32_at(head, 20),
        v4: body.get(v4_start..v6_start)?,
        v6: body.get(v6_start..end)?,
    };
    Some((record, end))
}

/// One torrent as a snapshot holds it.
#[derive(Clone, Copy, Debug)]
pub struct TorrentRecord<'a> {
    pub info_hash: InfoHash,
    pub completed: u32,
    v4: &'a [u8],
    v6: &'a [u8],
}

/// A peer as a snapshot holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRecord<P> {
    pub peer: P,
    pub seeder: bool,
    pub completed: bool,
    /// Unix seconds.
    pub last_announce: u32,
}

impl<P> PeerRecord<P> {
    fn from_tail(peer: P, tail: &[u8]) -> Self {
        PeerRecord {
            peer,
            seeder: tail[0] & FLAG_SEEDER != 0,
            completed: tail[0] & FLAG_COMPLETED != 0,
            last_announce: u32_at(tail, 1),
        }
    }
}

impl<'a> TorrentRecord<'a> {
    pub fn peer_count(&self) -> usize {
        self.v4.len() / V4_LEN + self.v6.len() / V6_LEN
    }

    pub fn v4(&self) -> impl Iterator<Item = PeerRecord<PeerV4>> + 'a {
        self.v4.chunks_exact(V4_LEN).map(|p| {
            let ip: [u8; 4] = p[..4].try_into().expect("4 bytes");
            let port = u16::from_be_bytes([p[4], p[5]]);
            PeerRecord::from_tail(PeerV4::new(ip.into(), port), &p[6..])
        })
    }

    pub fn v6(&self) -> impl Iterator<Item = PeerRecord<PeerV6>> + 'a {
        self.v6.chunks_exact(V6_LEN).map(|p| {
            let ip: [u8; 16] = p[..16].try_into().expect("16 bytes");
            let port = u16::from_be_bytes([p[16], p[17]]);
            PeerRecord::from_tail(PeerV6::new(ip.into(), port), &p[18..])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of two torrents: one with a v4 and a v6 peer, one with only
    /// a completed count.
    fn sample() -> Vec<u8> {
        let mut part = SnapshotPart::default();
        let mut record = Vec::new();
        record.extend_from_slice(&[7; 20]);
        record.extend_from_slice(&3u32.to_le_bytes());
        record.extend_from_slice(&1u32.to_le_bytes());
        record.extend_from_slice(&1u32.to_le_bytes());
        record.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, FLAG_SEEDER]);
        record.extend_from_slice(&1_000u32.to_le_bytes());
        record.extend_from_slice(&[0xfe; 16]);
        record.extend_from_slice(&[0, 80, FLAG_COMPLETED]);
        record.extend_from_slice(&2_000u32.to_le_bytes());
        record.extend_from_slice(&[8; 20]);
        record.extend_from_slice(&9u32.to_le_bytes());
        record.extend_from_slice(&[0; 8]);
        part.records.room(record.len()).extend_from_slice(&record);
        let file = SnapshotFile::new([5; 16], 1234, vec![part]);
        let mut bytes = Vec::new();
        file.write_to(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, file.len());
        bytes
    }

    #[test]
    fn a_written_file_reads_back_whole() {
        let image = SnapshotImage::parse(sample()).unwrap();
        assert_eq!((image.secret, image.written_at), ([5; 16], 1234));
        assert_eq!((image.torrents, image.peers), (2, 2));
        let records: Vec<_> = image.records().collect();
        assert_eq!(records[0].info_hash, InfoHash([7; 20]));
        assert_eq!(records[0].completed, 3);
        let v4: Vec<_> = records[0].v4().collect();
        assert_eq!(
            v4,
            [PeerRecord {
                peer: PeerV4::new([10, 0, 0, 1].into(), 6881),
                seeder: true,
                completed: false,
                last_announce: 1_000
            }]
        );
        let v6: Vec<_> = records[0].v6().collect();
        assert_eq!(v6[0].peer.port(), 80);
        assert_eq!((v6[0].seeder, v6[0].completed), (false, true));
        assert_eq!(v6[0].last_announce, 2_000);
        assert_eq!((records[1].completed, records[1].peer_count()), (9, 0));
    }

    #[test]
    fn spare_chunks_are_used_first_and_hold_no_bytes() {
        let spare = prefaulted(CHUNK + 1);
        assert_eq!(spare.len(), 2);
        assert!(spare.iter().all(|c| c.is_empty() && c.capacity() >= CHUNK));
        let pointers: Vec<*const u8> = spare.iter().map(|c| c.as_ptr()).collect();
        let mut chunks = Chunks::with_spare(spare);
        chunks.room(10).extend_from_slice(&[1; 10]);
        assert!(pointers.contains(&chunks.iter().next().unwrap().as_ptr()));
        assert_eq!(chunks.len(), 10);
        assert_eq!(chunks.iter().map(<[u8]>::len).sum::<usize>(), 10);
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert_eq!(
            SnapshotImage::parse(Vec::new()).unwrap_err(),
            SnapshotError::Empty
        );
    }

    #[test]
    fn every_truncation_is_refused_as_truncated() {
        let bytes = sample();
        for len in 1..bytes.len() {
            let err = SnapshotImage::parse(bytes[..len].to_vec()).unwrap_err();
            assert!(
                matches!(err, SnapshotError::Truncated { found, .. } if found == len as u64),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bytes = sample();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            // Flips in the two reserved header words do no harm.
            if (12..16).contains(&(bit / 8)) || (28..32).contains(&(bit / 8)) {
                continue;
            }
            assert!(SnapshotImage::parse(flipped).is_err(), "bit {bit}");
        }
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 40] ^= 4;
        assert!(matches!(
            SnapshotImage::parse(flipped).unwrap_err(),
            SnapshotError::Checksum { .. }
        ));
    }

    #[test]
    fn foreign_and_other_version_files_are_refused() {
        let err = SnapshotImage::parse(b"[swarm]\nworkers = 2\n".to_vec()).unwrap_err();
        assert_eq!(err, SnapshotError::NotASnapshot);
        let mut other = sample();
        other[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            SnapshotImage::parse(other).unwrap_err(),
            SnapshotError::Version { found: 2 }
        );
        let mut longer = sample();
        longer.push(0);
        assert!(matches!(
            SnapshotImage::parse(longer).unwrap_err(),
            SnapshotError::TrailingBytes { .. }
        ));
    }

    #[test]
    fn a_body_with_a_good_checksum_but_bad_records_is_malformed() {
        // A record announcing more peers than the body holds.
        let mut record = vec![1u8; 20];
        record.extend_from_slice(&0u32.to_le_bytes());
        record.extend_from_slice(&u32::MAX.to_le_bytes());
        record.extend_from_slice(&0u32.to_le_bytes());
        let mut part = SnapshotPart::default();
        part.records.room(record.len()).extend_from_slice(&record);
        let mut bytes = Vec::new();
        SnapshotFile::new([0; 16], 0, vec![part])
            .write_to(&mut bytes)
            .unwrap();
        assert_eq!(
            SnapshotImage::parse(bytes).unwrap_err(),
            SnapshotError::Malformed { offset: PREFIX_LEN }
        );
    }
}
