//! The torrents one request worker owns: a plain data structure with no
//! threads or I/O, so every protocol front end and every test can drive it.

use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::{AnnounceEvent, InfoHash};

use super::peer_map::PeerMap;

/// Swarm totals as a client sees them, over both address families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmCounts {
    pub seeders: u32,
    pub leechers: u32,
    pub completed: u32,
}

/// One torrent's UDP/HTTP swarm. A million of these is the common case
/// (most torrents have a few peers), so every byte here counts: the IPv6
/// peers, which most swarms lack, sit behind a box that exists only while
/// there are any, which halves the record.
#[derive(Debug, Default)]
pub struct Torrent {
    v4: PeerMap<PeerV4>,
    v6: Option<Box<PeerMap<PeerV6>>>,
    completed: u32,
}

impl Torrent {
    pub fn counts(&self) -> SwarmCounts {
        let (v6_seeders, v6_leechers) = self
            .v6
            .as_deref()
            .map_or((0, 0), |v6| (v6.seeders(), v6.leechers()));
        SwarmCounts {
            seeders: self.v4.seeders() + v6_seeders,
            leechers: self.v4.leechers() + v6_leechers,
            completed: self.completed,
        }
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_none()
    }

    /// Peers of all families held.
    pub fn peer_count(&self) -> usize {
        self.v4.len() + self.v6.as_deref().map_or(0, PeerMap::len)
    }

    /// Drops peers last seen before `cutoff`, and the IPv6 map once empty.
    fn remove_older_than(&mut self, cutoff: u32) -> usize {
        let mut removed = self.v4.remove_older_than(cutoff);
        if let Some(v6) = self.v6.as_deref_mut() {
            removed += v6.remove_older_than(cutoff);
            if v6.is_empty() {
                self.v6 = None;
            }
        }
        removed
    }
}

/// A peer address of either family, the key of a peer in its swarm:
/// (IP, port), as BEP 15 clients behind one IP differ only by port.
pub trait PeerAddress: Copy + Eq + std::hash::Hash {
    /// The torrent's peers of this family, created if need be.
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self>;
    /// Removes a peer; true if it was there.
    fn remove(torrent: &mut Torrent, peer: &Self) -> bool;
}

impl PeerAddress for PeerV4 {
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        &mut torrent.v4
    }

    fn remove(torrent: &mut Torrent, peer: &Self) -> bool {
        torrent.v4.remove(peer)
    }
}

impl PeerAddress for PeerV6 {
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        torrent.v6.get_or_insert_with(Default::default)
    }

    fn remove(torrent: &mut Torrent, peer: &Self) -> bool {
        let Some(v6) = torrent.v6.as_deref_mut() else {
            return false;
        };
        let removed = v6.remove(peer);
        if v6.is_empty() {
            torrent.v6 = None;
        }
        removed
    }
}

/// One announce, whatever protocol carried it.
#[derive(Clone, Copy, Debug)]
pub struct Announce<P> {
    pub info_hash: InfoHash,
    pub peer: P,
    pub event: AnnounceEvent,
    /// `left == 0`.
    pub seeder: bool,
    /// Already resolved against the config's default and cap.
    pub numwant: usize,
}

type TorrentMap = crate::torrent_table::TorrentTable<Torrent>;

#[derive(Debug)]
pub struct SwarmShard {
    torrents: TorrentMap,
    /// WebTorrent swarms: browsers reach each other only over WebRTC, so
    /// they are kept apart from the UDP/HTTP swarms of the same info hash.
    pub(crate) ws_torrents: crate::webtorrent::WsTorrentMap,
    pub(crate) rng: fastrand::Rng,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub peers_removed: usize,
    pub torrents_removed: usize,
    pub torrents_left: usize,
    pub peers_left: usize,
}

impl Default for SwarmShard {
    fn default() -> Self {
        Self::new(fastrand::Rng::new())
    }
}

impl SwarmShard {
    pub fn new(rng: fastrand::Rng) -> Self {
        Self {
            torrents: TorrentMap::default(),
            ws_torrents: Default::default(),
            rng,
        }
    }

    /// Applies an announce at time `now` (coarse seconds) and appends up to
    /// `numwant` other peers of the same family to `peers_out`.
    pub fn announce<P: PeerAddress>(
        &mut self,
        announce: &Announce<P>,
        now: u32,
        peers_out: &mut Vec<P>,
    ) -> SwarmCounts {
        if announce.event == AnnounceEvent::Stopped {
            // A stopped peer wants nothing back but the counts; an unknown
            // torrent must not be created just to be emptied again.
            return match self.torrents.get_mut(&announce.info_hash) {
                Some(torrent) => {
                    P::remove(torrent, &announce.peer);
                    torrent.counts()
                }
                None => SwarmCounts::default(),
            };
        }
        let torrent = self.torrents.entry(announce.info_hash).or_default();
        if announce.event == AnnounceEvent::Completed {
            torrent.completed = torrent.completed.saturating_add(1);
        }
        let peers = P::peers(torrent);
        let position = peers.upsert(announce.peer, announce.seeder, now);
        peers.sample_into(Some(position), announce.numwant, &mut self.rng, peers_out);
        torrent.counts()
    }

    pub fn scrape(&self, info_hash: &InfoHash) -> SwarmCounts {
        self.torrents
            .get(info_hash)
            .map(Torrent::counts)
            .unwrap_or_default()
    }

    /// Forgets peers last seen before `cutoff` and torrents left empty.
    /// An empty torrent takes its completed count with it: keeping counts
    /// of dead torrents forever would grow memory without bound.
    pub fn clean(&mut self, cutoff: u32) -> CleanReport {
        let mut report = CleanReport::default();
        self.torrents.retain(|_, torrent| {
            report.peers_removed += torrent.remove_older_than(cutoff);
            let keep = !torrent.is_empty();
            if keep {
                report.peers_left += torrent.peer_count();
            } else {
                report.torrents_removed += 1;
            }
            keep
        });
        self.clean_ws(cutoff, &mut report);
        report.torrents_left = self.torrents.len() + self.ws_torrents.len();
        self.torrents.shrink();
        report
    }

    /// UDP/HTTP torrents held.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Up to `limit` UDP/HTTP torrents with their counts, appended to `out`
    /// (for a full scrape); returns how many torrents were left out.
    pub fn full_scrape(&self, limit: usize, out: &mut Vec<(InfoHash, SwarmCounts)>) -> usize {
        let before = out.len();
        out.extend(
            self.torrents
                .iter()
                .take(limit)
                .map(|(hash, torrent)| (*hash, torrent.counts())),
        );
        self.torrents.len() - (out.len() - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(port: u16) -> PeerV4 {
        PeerV4::new(Ipv4Addr::new(10, 0, 0, 1), port)
    }

    fn ann<P>(hash: u8, peer: P, event: AnnounceEvent, seeder: bool) -> Announce<P> {
        Announce {
            info_hash: InfoHash([hash; 20]),
            peer,
            event,
            seeder,
            numwant: 50,
        }
    }

    #[test]
    fn announce_returns_others_and_exact_counts() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        let c = shard.announce(&ann(1, v4(1), AnnounceEvent::Started, false), 0, &mut out);
        assert_eq!((c.seeders, c.leechers), (0, 1));
        assert!(out.is_empty());
        shard.announce(&ann(1, v4(2), AnnounceEvent::Started, true), 0, &mut out);
        assert_eq!(out, vec![v4(1)]);
        out.clear();
        let c = shard.announce(&ann(1, v4(1), AnnounceEvent::None, false), 1, &mut out);
        assert_eq!(out, vec![v4(2)]);
        assert_eq!((c.seeders, c.leechers, c.completed), (1, 1, 0));
    }

    #[test]
    fn families_are_kept_apart_but_counted_together() {
        let mut shard = SwarmShard::default();
        let mut out4 = Vec::new();
        let mut out6 = Vec::new();
        shard.announce(&ann(1, v4(1), AnnounceEvent::Started, true), 0, &mut out4);
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        let c = shard.announce(&ann(1, p6, AnnounceEvent::Started, false), 0, &mut out6);
        assert!(out6.is_empty(), "a v6 requester gets no v4 peers");
        assert_eq!((c.seeders, c.leechers), (1, 1));
        shard.announce(&ann(1, v4(2), AnnounceEvent::None, false), 0, &mut out4);
        assert_eq!(out4, vec![v4(1)]);
    }

    #[test]
    fn stopped_and_completed() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        shard.announce(&ann(1, v4(1), AnnounceEvent::Started, false), 0, &mut out);
        let c = shard.announce(&ann(1, v4(1), AnnounceEvent::Completed, true), 0, &mut out);
        assert_eq!((c.seeders, c.leechers, c.completed), (1, 0, 1));
        let c = shard.announce(&ann(1, v4(1), AnnounceEvent::Stopped, true), 0, &mut out);
        assert_eq!((c.seeders, c.leechers, c.completed), (0, 0, 1));
        let c = shard.announce(&ann(9, v4(1), AnnounceEvent::Stopped, true), 0, &mut out);
        assert_eq!(c, SwarmCounts::default());
        assert_eq!(
            shard.torrent_count(),
            1,
            "stopping an unknown torrent creates nothing"
        );
    }

    #[test]
    fn clean_expires_peers_and_frees_empty_torrents() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        shard.announce(&ann(1, v4(1), AnnounceEvent::None, false), 5, &mut out);
        shard.announce(&ann(2, v4(1), AnnounceEvent::None, false), 50, &mut out);
        let report = shard.clean(10);
        assert_eq!(report.peers_removed, 1);
        assert_eq!(report.torrents_removed, 1);
        assert_eq!(shard.torrent_count(), 1);
        assert_eq!(shard.scrape(&InfoHash([1; 20])), SwarmCounts::default());
        assert_eq!(shard.scrape(&InfoHash([2; 20])).leechers, 1);
    }

    #[test]
    fn the_ipv6_map_exists_only_while_it_has_peers() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        let hash = InfoHash([3; 20]);
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        shard.announce(&ann(3, v4(1), AnnounceEvent::None, false), 0, &mut out);
        assert!(shard.torrents[&hash].v6.is_none());
        let mut out6 = Vec::new();
        let c = shard.announce(&ann(3, p6, AnnounceEvent::None, true), 0, &mut out6);
        assert_eq!((c.seeders, c.leechers), (1, 1));
        assert!(shard.torrents[&hash].v6.is_some());
        let c = shard.announce(&ann(3, p6, AnnounceEvent::Stopped, true), 0, &mut out6);
        assert_eq!((c.seeders, c.leechers), (0, 1));
        assert!(
            shard.torrents[&hash].v6.is_none(),
            "freed with its last peer"
        );
        shard.announce(&ann(3, p6, AnnounceEvent::None, true), 5, &mut out6);
        shard.announce(&ann(3, v4(1), AnnounceEvent::None, false), 50, &mut out);
        let report = shard.clean(10);
        assert_eq!(report.peers_removed, 1);
        assert!(shard.torrents[&hash].v6.is_none(), "freed when it expires");
        assert_eq!(shard.scrape(&hash).leechers, 1);
    }

    #[test]
    fn a_torrent_record_stays_small() {
        // Half the memory of a million small swarms is this record; keep
        // it from growing back unnoticed.
        assert!(
            std::mem::size_of::<Torrent>() <= 56,
            "{}",
            std::mem::size_of::<Torrent>()
        );
    }

    #[test]
    fn numwant_is_exact_when_enough_peers_exist() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        for port in 0..100 {
            shard.announce(&ann(1, v4(port), AnnounceEvent::None, true), 0, &mut out);
        }
        for numwant in [0, 1, 30, 99, 150] {
            out.clear();
            let mut a = ann(1, v4(500), AnnounceEvent::None, false);
            a.numwant = numwant;
            shard.announce(&a, 0, &mut out);
            assert_eq!(out.len(), numwant.min(100));
            assert!(!out.contains(&v4(500)));
        }
    }
}
