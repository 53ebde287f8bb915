//! The torrents one request worker owns: a plain data structure with no
//! threads or I/O, so every protocol front end and every test can drive it.

use hashbrown::HashMap;
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

#[derive(Debug, Default)]
pub struct Torrent {
    v4: PeerMap<PeerV4>,
    v6: PeerMap<PeerV6>,
    completed: u32,
}

impl Torrent {
    pub fn counts(&self) -> SwarmCounts {
        SwarmCounts {
            seeders: self.v4.seeders() + self.v6.seeders(),
            leechers: self.v4.leechers() + self.v6.leechers(),
            completed: self.completed,
        }
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A peer address of either family, the key of a peer in its swarm:
/// (IP, port), as BEP 15 clients behind one IP differ only by port.
pub trait PeerAddress: Copy + Eq + std::hash::Hash {
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self>;
}

impl PeerAddress for PeerV4 {
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        &mut torrent.v4
    }
}

impl PeerAddress for PeerV6 {
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        &mut torrent.v6
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

type TorrentMap = HashMap<InfoHash, Torrent, foldhash::fast::RandomState>;

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
                    P::peers(torrent).remove(&announce.peer);
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
            report.peers_removed += torrent.v4.remove_older_than(cutoff);
            report.peers_removed += torrent.v6.remove_older_than(cutoff);
            let keep = !torrent.is_empty();
            if keep {
                report.peers_left += torrent.v4.len() + torrent.v6.len();
            } else {
                report.torrents_removed += 1;
            }
            keep
        });
        self.clean_ws(cutoff, &mut report);
        report.torrents_left = self.torrents.len() + self.ws_torrents.len();
        if self.torrents.capacity() > 4 * self.torrents.len().max(1024) {
            self.torrents.shrink_to_fit();
        }
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
