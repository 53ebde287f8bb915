//! A shard into a snapshot and back: written a slice of sub-tables at a
//! time between batches, so a request worker is never away from requests
//! for long, and restored with the limits, the access list and peer ages
//! applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tracker_proto::InfoHash;

use crate::peer_map::{PeerEntry, PeerMap};
use crate::shard::{PeerAddress, SwarmShard, Torrent};
use crate::snapshot::{
    Chunks, PeerRecord, SnapshotImage, SnapshotPart, SnapshotRequest, FLAG_COMPLETED, FLAG_SEEDER,
    TORRENT_LEN, V4_LEN, V6_LEN,
};
use crate::torrent_table::SUB_TABLES;
use crate::TorrentFilter;

/// Torrents with more peers than this are copied (a memcpy of their
/// entries) and written from the copy over as many slices as it takes: a
/// swarm of a million peers would otherwise be one slice of ~50 ms.
const BIG_TORRENT: usize = 8_192;
/// Peers of a big torrent written between two looks at the clock.
const PEERS_PER_CHECK: usize = 4_096;

/// A snapshot a request worker is writing, between its slices.
pub struct SnapshotCursor {
    next_sub: usize,
    unix_now: u32,
    clock_now: u32,
    /// Big torrents of the sub-tables written so far, still to write.
    big: std::collections::VecDeque<BigTorrent>,
    part: SnapshotPart,
    reply: Sender<SnapshotPart>,
}

/// A big torrent as it was when its sub-table was written.
struct BigTorrent {
    info_hash: InfoHash,
    completed: u32,
    v4: Vec<PeerEntry<tracker_proto::udp::PeerV4>>,
    v6: Vec<PeerEntry<tracker_proto::udp::PeerV6>>,
    /// Peers written so far, IPv4 first.
    written: usize,
}

impl BigTorrent {
    fn copy(info_hash: InfoHash, torrent: &Torrent) -> Self {
        Self {
            info_hash,
            completed: torrent.completed,
            v4: torrent.v4().entries().to_vec(),
            v6: torrent
                .v6()
                .map_or_else(Vec::new, |v6| v6.entries().to_vec()),
            written: 0,
        }
    }

    /// Writes up to `most` more peers (the record's head first); true
    /// once all are written.
    fn write_some(&mut self, out: &mut Chunks, most: usize, unix_of: impl Fn(u32) -> u32) -> bool {
        let (n4, n6) = (self.v4.len(), self.v6.len());
        if self.written == 0 {
            write_head(out, &self.info_hash, self.completed, n4, n6);
        }
        let end = (self.written + most).min(n4 + n6);
        // `write_head` made room for every peer of the record.
        let buf = out.room(0);
        let v4_range = self.written.min(n4)..end.min(n4);
        write_v4(buf, &self.v4[v4_range], &unix_of);
        let v6_range = self.written.max(n4) - n4..end.max(n4) - n4;
        write_v6(buf, &self.v6[v6_range], &unix_of);
        self.written = end;
        end == n4 + n6
    }
}

impl SnapshotCursor {
    pub fn new(request: SnapshotRequest, worker: usize) -> Self {
        Self {
            next_sub: 0,
            unix_now: request.unix_now,
            clock_now: request.clock_now,
            big: Default::default(),
            part: SnapshotPart {
                worker,
                records: Chunks::with_spare(request.spare),
                ..SnapshotPart::default()
            },
            reply: request.reply,
        }
    }

    /// Writes records of `shard` until `budget` is spent (at least one
    /// sub-table or a few thousand peers); true once all are written.
    pub fn step(&mut self, shard: &SwarmShard, budget: Duration) -> bool {
        let start = Instant::now();
        let cpu_start = thread_cpu_time();
        let (unix_now, clock_now) = (self.unix_now, self.clock_now);
        // A peer announced after the request is as fresh as can be.
        let unix_of = |last_seen: u32| unix_now - clock_now.saturating_sub(last_seen);
        let part = &mut self.part;
        let done = loop {
            if let Some(big) = self.big.front_mut() {
                if big.write_some(&mut part.records, PEERS_PER_CHECK, unix_of) {
                    self.big.pop_front();
                }
            } else if self.next_sub == SUB_TABLES {
                break true;
            } else {
                let sub = self.next_sub;
                self.next_sub += 1;
                for (info_hash, torrent) in shard.torrents.sub_table(sub) {
                    part.torrents += 1;
                    part.peers += torrent.peer_count();
                    if torrent.peer_count() > BIG_TORRENT {
                        self.big.push_back(BigTorrent::copy(*info_hash, torrent));
                    } else {
                        write_torrent(&mut part.records, info_hash, torrent, unix_of);
                    }
                }
                for (info_hash, completed) in shard.retired.sub_table(sub) {
                    write_head(&mut part.records, info_hash, *completed, 0, 0);
                    part.torrents += 1;
                }
            }
            if start.elapsed() >= budget {
                break false;
            }
        };
        let spent = start.elapsed();
        let cpu = thread_cpu_time().saturating_sub(cpu_start);
        part.slices += 1;
        part.longest_slice = part.longest_slice.max(spent);
        part.longest_slice_cpu = part.longest_slice_cpu.max(cpu);
        done
    }

    /// Hands the finished part to whoever asked; false if they have gone.
    pub fn finish(mut self) -> bool {
        self.part.records.release_spare();
        self.reply.send(self.part).is_ok()
    }
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn write_head(out: &mut Chunks, info_hash: &InfoHash, completed: u32, n4: usize, n6: usize) {
    let buf = out.room(TORRENT_LEN + n4 * V4_LEN + n6 * V6_LEN);
    buf.extend_from_slice(&info_hash.0);
    buf.extend_from_slice(&completed.to_le_bytes());
    buf.extend_from_slice(&(n4 as u32).to_le_bytes());
    buf.extend_from_slice(&(n6 as u32).to_le_bytes());
}

fn flags<K, V>(entry: &PeerEntry<K, V>) -> u8 {
    (if entry.seeder { FLAG_SEEDER } else { 0 })
        | (if entry.completed { FLAG_COMPLETED } else { 0 })
}

fn write_torrent(
    out: &mut Chunks,
    info_hash: &InfoHash,
    torrent: &Torrent,
    unix_of: impl Fn(u32) -> u32,
) {
    let v4 = torrent.v4().entries();
    let v6 = torrent.v6().map_or(&[][..], PeerMap::entries);
    write_head(out, info_hash, torrent.completed, v4.len(), v6.len());
    // `write_head` made room for the peers in the same chunk.
    let buf = out.room(0);
    write_v4(buf, v4, &unix_of);
    write_v6(buf, v6, &unix_of);
}

fn write_v4(
    buf: &mut Vec<u8>,
    peers: &[PeerEntry<tracker_proto::udp::PeerV4>],
    unix_of: impl Fn(u32) -> u32,
) {
    for entry in peers {
        let mut rec = [0u8; V4_LEN];
        rec[..4].copy_from_slice(&entry.key.ip().octets());
        rec[4..6].copy_from_slice(&entry.key.port().to_be_bytes());
        rec[6] = flags(entry);
        rec[7..].copy_from_slice(&unix_of(entry.last_seen).to_le_bytes());
        buf.extend_from_slice(&rec);
    }
}

fn write_v6(
    buf: &mut Vec<u8>,
    peers: &[PeerEntry<tracker_proto::udp::PeerV6>],
    unix_of: impl Fn(u32) -> u32,
) {
    for entry in peers {
        let mut rec = [0u8; V6_LEN];
        rec[..16].copy_from_slice(&entry.key.ip().octets());
        rec[16..18].copy_from_slice(&entry.key.port().to_be_bytes());
        rec[18] = flags(entry);
        rec[19..].copy_from_slice(&unix_of(entry.last_seen).to_le_bytes());
        buf.extend_from_slice(&rec);
    }
}

/// What a restore put back, and what it left out and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub torrents: usize,
    pub peers: usize,
    /// Completed counts of torrents without peers.
    pub counts_kept: usize,
    /// Peers last seen longer ago than the maximum peer age.
    pub expired_peers: usize,
    /// Torrents the access list now denies.
    pub denied_torrents: usize,
    /// Torrents and peers past a `[swarm]` limit.
    pub refused_torrents: usize,
    pub refused_peers: usize,
}

impl std::ops::AddAssign for RestoreReport {
    fn add_assign(&mut self, o: Self) {
        self.torrents += o.torrents;
        self.peers += o.peers;
        self.counts_kept += o.counts_kept;
        self.expired_peers += o.expired_peers;
        self.denied_torrents += o.denied_torrents;
        self.refused_torrents += o.refused_torrents;
        self.refused_peers += o.refused_peers;
    }
}

/// Time at restore: unix seconds and the swarm clock at the same instant.
#[derive(Clone, Copy, Debug)]
pub struct RestoreClock {
    pub unix_now: u32,
    pub clock_now: u32,
    pub max_peer_age: u32,
}

impl RestoreClock {
    /// The clock time a peer last seen at unix time `unix` keeps, or
    /// `None` once it is older than the maximum peer age. The clock must
    /// have been started at least `max_peer_age` in the past
    /// ([`Clock::with_past`](crate::clock::Clock::with_past)), or older
    /// peers come back younger than they are.
    fn last_seen(&self, unix: u32) -> Option<u32> {
        let age = self.unix_now.saturating_sub(unix);
        (age <= self.max_peer_age).then(|| self.clock_now.saturating_sub(age))
    }
}

/// What a request worker restores at start: its share of a snapshot.
#[derive(Clone)]
pub struct RestoreJob {
    pub image: Arc<SnapshotImage>,
    /// The access list: a torrent it denies is not restored.
    pub filter: Option<Arc<dyn TorrentFilter>>,
    pub unix_now: u32,
    /// Where the worker reports what it restored, with its index.
    pub done: Sender<(usize, RestoreReport)>,
}

impl SwarmShard {
    /// Puts back the torrents of `image` that `mine` says belong to this
    /// shard and `allowed` lets in, with their peers that have not
    /// expired, up to this shard's limits.
    pub fn restore(
        &mut self,
        image: &SnapshotImage,
        mine: impl Fn(&InfoHash) -> bool,
        allowed: impl Fn(&InfoHash) -> bool,
        clock: RestoreClock,
    ) -> RestoreReport {
        let mut report = RestoreReport::default();
        for record in image.records() {
            let info_hash = record.info_hash;
            if !mine(&info_hash) {
                continue;
            }
            if !allowed(&info_hash) {
                report.denied_torrents += 1;
                continue;
            }
            let live = |unix: u32| clock.last_seen(unix).is_some();
            let live_peers = record.v4().filter(|p| live(p.last_announce)).count()
                + record.v6().filter(|p| live(p.last_announce)).count();
            report.expired_peers += record.peer_count() - live_peers;
            if live_peers == 0 {
                self.keep_count(info_hash, record.completed, &mut report);
                continue;
            }
            if self.torrents.get(&info_hash).is_none()
                && self.torrents.len() >= self.limits.max_torrents
            {
                report.refused_torrents += 1;
                report.refused_peers += live_peers;
                continue;
            }
            let retired = &mut self.retired;
            let torrent = self.torrents.entry(info_hash).or_insert_with(|| {
                Torrent::with_completed(retired.remove(&info_hash).unwrap_or(0))
            });
            torrent.completed = torrent.completed.max(record.completed);
            let mut family = FamilyRestore {
                torrent,
                clock,
                limits: self.limits,
                peer_count: &mut self.peer_count,
                report: &mut report,
            };
            family.restore(record.v4());
            family.restore(record.v6());
        }
        // Recounts the peers by family and role, and retires torrents
        // whose every peer was refused.
        self.clean(clock.clock_now.saturating_sub(clock.max_peer_age));
        report.torrents = self.torrents.len();
        report.peers = self.peer_count;
        report
    }

    fn keep_count(&mut self, info_hash: InfoHash, completed: u32, report: &mut RestoreReport) {
        if completed == 0 {
            return;
        }
        if let Some(torrent) = self.torrents.get_mut(&info_hash) {
            torrent.completed = torrent.completed.max(completed);
        } else if self.retired.len() < self.limits.max_torrents
            || self.retired.contains_key(&info_hash)
        {
            let kept = self.retired.get_or_insert_default(info_hash);
            *kept = (*kept).max(completed);
            report.counts_kept += 1;
        } else {
            report.refused_torrents += 1;
        }
    }
}

/// One torrent's peers going back in, one family at a time.
struct FamilyRestore<'a> {
    torrent: &'a mut Torrent,
    clock: RestoreClock,
    limits: crate::SwarmLimits,
    peer_count: &'a mut usize,
    report: &'a mut RestoreReport,
}

impl FamilyRestore<'_> {
    /// Puts back each peer that has not expired unless a limit refuses it.
    fn restore<P: PeerAddress>(&mut self, peers: impl Iterator<Item = PeerRecord<P>>) {
        let limits = self.limits;
        for peer in peers {
            let Some(last_seen) = self.clock.last_seen(peer.last_announce) else {
                continue;
            };
            let shard_peers = *self.peer_count;
            let torrent_peers = self.torrent.peer_count();
            let entry = PeerEntry {
                key: peer.peer,
                value: (),
                last_seen,
                seeder: peer.seeder,
                completed: peer.completed,
            };
            let outcome = P::peers(self.torrent).try_restore(entry, |peers, key| {
                let full = shard_peers >= limits.max_peers
                    || torrent_peers >= limits.max_peers_per_torrent
                    || peers.same_ip_count(key) >= limits.max_peers_per_ip;
                if full {
                    Err(())
                } else {
                    Ok(())
                }
            });
            match outcome {
                Ok(inserted) => *self.peer_count += usize::from(inserted),
                Err(()) => self.report.refused_peers += 1,
            }
        }
        // A refused first IPv6 peer leaves no empty map behind.
        self.torrent.drop_empty_v6();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Announce;
    use crate::snapshot::SnapshotFile;
    use crate::SwarmLimits;
    use tracker_proto::udp::{PeerV4, PeerV6};
    use tracker_proto::AnnounceEvent;

    fn v4(ip: u8, port: u16) -> PeerV4 {
        PeerV4::new([10, 0, 0, ip].into(), port)
    }

    fn announce(shard: &mut SwarmShard, hash: u8, peer: PeerV4, event: AnnounceEvent, now: u32) {
        let announce = Announce {
            info_hash: InfoHash([hash; 20]),
            peer,
            event,
            seeder: event == AnnounceEvent::Completed,
            numwant: 0,
        };
        shard.announce(&announce, now, &mut Vec::new()).unwrap();
    }

    /// The shard written whole (one-nanosecond slices) into a file image.
    fn image_of(shard: &SwarmShard, unix_now: u32, clock_now: u32) -> SnapshotImage {
        let (reply, parts) = crossbeam_channel::bounded(1);
        let request = SnapshotRequest {
            unix_now,
            clock_now,
            reply,
            spare: Vec::new(),
        };
        let mut cursor = SnapshotCursor::new(request, 0);
        let mut steps = 0;
        while !cursor.step(shard, Duration::from_nanos(1)) {
            steps += 1;
        }
        assert!(steps > 0, "a tiny budget takes many slices");
        assert!(cursor.finish());
        let file = SnapshotFile::new([9; 16], u64::from(unix_now), vec![parts.recv().unwrap()]);
        let mut bytes = Vec::new();
        file.write_to(&mut bytes).unwrap();
        SnapshotImage::parse(bytes).unwrap()
    }

    const CLOCK: RestoreClock = RestoreClock {
        unix_now: 100_000,
        clock_now: 1_000,
        max_peer_age: 600,
    };

    #[test]
    fn a_shard_comes_back_with_its_peers_ages_and_counts() {
        let mut shard = SwarmShard::default();
        let v6 = PeerV6::new(std::net::Ipv6Addr::LOCALHOST, 7);
        announce(&mut shard, 1, v4(1, 1), AnnounceEvent::Started, 50);
        announce(&mut shard, 1, v4(2, 1), AnnounceEvent::Completed, 90);
        let a6 = Announce {
            info_hash: InfoHash([1; 20]),
            peer: v6,
            event: AnnounceEvent::None,
            seeder: true,
            numwant: 0,
        };
        shard.announce(&a6, 100, &mut Vec::new()).unwrap();
        announce(&mut shard, 2, v4(3, 1), AnnounceEvent::Completed, 10);
        shard.clean(20); // torrent 2's only peer expires; its count stays
                         // Taken at clock 100 = unix 99_900: ages 50, 10, 0 seconds.
        let image = image_of(&shard, 99_900, 100);
        assert_eq!((image.torrents, image.peers), (2, 3));

        let mut back = SwarmShard::default();
        let report = back.restore(&image, |_| true, |_| true, CLOCK);
        assert_eq!(
            (report.torrents, report.peers, report.counts_kept),
            (1, 3, 1)
        );
        let c = back.scrape(&InfoHash([1; 20]));
        assert_eq!((c.seeders, c.leechers, c.completed), (2, 1, 1));
        assert_eq!(back.scrape(&InfoHash([2; 20])).completed, 1);
        assert_eq!(back.held(), shard.held());
        // Ages kept: unix 100_000 is 100 s after the snapshot, so the peer
        // of age 50 is now 150 s old, last seen at clock 850.
        let t = &back.torrents[&InfoHash([1; 20])];
        let mut seen: Vec<_> = t.v4().entries().iter().map(|e| e.last_seen).collect();
        seen.sort();
        assert_eq!(seen, [850, 890]);
        // A completion already counted stays counted once.
        announce(&mut back, 1, v4(2, 1), AnnounceEvent::Completed, 1_001);
        assert_eq!(back.scrape(&InfoHash([1; 20])).completed, 1);
    }

    #[test]
    fn a_big_torrent_is_written_whole_across_slices_from_a_copy() {
        let mut shard = SwarmShard::default();
        let peers = BIG_TORRENT as u16 + 3_000;
        for port in 1..=peers {
            let ip = (port % 200) as u8;
            announce(&mut shard, 1, v4(ip, port), AnnounceEvent::Started, 900);
        }
        let v6 = PeerV6::new(std::net::Ipv6Addr::LOCALHOST, 7);
        let a6 = Announce {
            info_hash: InfoHash([1; 20]),
            peer: v6,
            event: AnnounceEvent::Completed,
            seeder: true,
            numwant: 0,
        };
        shard.announce(&a6, 900, &mut Vec::new()).unwrap();
        announce(&mut shard, 2, v4(1, 1), AnnounceEvent::Started, 900);
        let (reply, parts) = crossbeam_channel::bounded(1);
        let request = SnapshotRequest {
            unix_now: 99_900,
            clock_now: 900,
            reply,
            spare: Vec::new(),
        };
        let mut cursor = SnapshotCursor::new(request, 0);
        let mut steps = 0;
        while !cursor.step(&shard, Duration::ZERO) {
            steps += 1;
            // Announces between slices change the shard, not the copy.
            if steps == SUB_TABLES + 1 {
                announce(&mut shard, 1, v4(250, 1), AnnounceEvent::Started, 950);
            }
        }
        assert!(steps > SUB_TABLES, "the big torrent took slices of its own");
        assert!(cursor.finish());
        let file = SnapshotFile::new([0; 16], 99_900, vec![parts.recv().unwrap()]);
        let mut bytes = Vec::new();
        file.write_to(&mut bytes).unwrap();
        let image = SnapshotImage::parse(bytes).unwrap();
        assert_eq!(image.torrents, 2);
        let mut back = SwarmShard::default();
        let report = back.restore(&image, |_| true, |_| true, CLOCK);
        assert_eq!(report.peers, usize::from(peers) + 2);
        let c = back.scrape(&InfoHash([1; 20]));
        assert_eq!(
            (c.seeders, c.leechers, c.completed),
            (1, u32::from(peers), 1)
        );
    }

    #[test]
    fn expired_denied_and_other_shards_torrents_stay_out() {
        let mut shard = SwarmShard::default();
        announce(&mut shard, 1, v4(1, 1), AnnounceEvent::Started, 0);
        announce(&mut shard, 2, v4(1, 1), AnnounceEvent::Started, 500);
        announce(&mut shard, 3, v4(1, 1), AnnounceEvent::Started, 500);
        announce(&mut shard, 4, v4(1, 1), AnnounceEvent::Started, 500);
        // Peer of torrent 1 is 700 s old at restore: past the 600 s age.
        let image = image_of(&shard, 99_500, 500);
        let mut back = SwarmShard::default();
        let report = back.restore(&image, |h| h.0[0] != 4, |h| h.0[0] != 3, CLOCK);
        assert_eq!(report.expired_peers, 1);
        assert_eq!(report.denied_torrents, 1);
        assert_eq!((report.torrents, report.peers), (1, 1));
        assert_eq!(back.scrape(&InfoHash([2; 20])).leechers, 1);
        for gone in [1, 3, 4] {
            assert_eq!(back.scrape(&InfoHash([gone; 20])).leechers, 0);
        }
    }

    #[test]
    fn limits_restore_what_fits_and_say_how_much_did_not() {
        let mut shard = SwarmShard::default();
        for hash in 1..=3 {
            for port in 1..=4 {
                announce(&mut shard, hash, v4(1, port), AnnounceEvent::Started, 900);
            }
        }
        let image = image_of(&shard, 99_900, 900);
        let limits = SwarmLimits {
            max_torrents: 2,
            max_peers_per_ip: 3,
            ..SwarmLimits::UNLIMITED
        };
        let mut back = SwarmShard::with_limits(fastrand::Rng::with_seed(1), limits);
        let report = back.restore(&image, |_| true, |_| true, CLOCK);
        assert_eq!((report.torrents, report.peers), (2, 6));
        assert_eq!(report.refused_torrents, 1);
        assert_eq!(report.refused_peers, 4 + 2);
        assert_eq!(back.peer_count(), 6);
    }
}
