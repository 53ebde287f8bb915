//! The torrents one request worker owns: a plain data structure with no
//! threads or I/O, so every protocol front end and every test can drive it.

use tracker_proto::udp::{PeerV4, PeerV6};
use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

use super::peer_map::{PeerKey, PeerMap};
use crate::counts::{CleanReport, RefusalCounts, RefusalTally, SwarmCounts};
use crate::limits::{Refusal, SwarmLimits};
use crate::webtorrent::{ConnRef, WsAnnounce, WsAnnounceOutcome, WsSwarms, WsTarget};

/// One torrent's UDP/HTTP swarm. A million of these is the common case
/// (most torrents have a few peers), so every byte here counts: the first
/// IPv4 peer sits in the record itself ([`PeerMap`] allocates from the
/// second), and the IPv6 peers, which most swarms lack, in a box with the
/// IPv4 ones that exists only while there are any. 24 bytes, 48 with its
/// info hash in the table.
#[derive(Debug, Default)]
pub struct Torrent {
    peers: Peers,
    pub(crate) completed: u32,
}

/// A torrent's peers by family. One variant per case rather than a map
/// and an optional box side by side: the box's pointer then fits where
/// the IPv4 map leaves room, and the record stays at 24 bytes.
#[derive(Debug)]
enum Peers {
    V4(PeerMap<PeerV4>),
    Both(Box<(PeerMap<PeerV4>, PeerMap<PeerV6>)>),
}

impl Default for Peers {
    fn default() -> Self {
        Self::V4(PeerMap::default())
    }
}

impl Torrent {
    /// A torrent with no peers yet, `completed` downloads so far.
    pub(crate) fn with_completed(completed: u32) -> Self {
        Self {
            peers: Peers::default(),
            completed,
        }
    }

    pub fn counts(&self) -> SwarmCounts {
        let v4 = self.v4();
        let (v6_seeders, v6_leechers) =
            self.v6().map_or((0, 0), |v6| (v6.seeders(), v6.leechers()));
        SwarmCounts {
            seeders: v4.seeders() + v6_seeders,
            leechers: v4.leechers() + v6_leechers,
            completed: self.completed,
        }
    }

    pub(crate) fn v4(&self) -> &PeerMap<PeerV4> {
        match &self.peers {
            Peers::V4(v4) => v4,
            Peers::Both(both) => &both.0,
        }
    }

    fn v4_mut(&mut self) -> &mut PeerMap<PeerV4> {
        match &mut self.peers {
            Peers::V4(v4) => v4,
            Peers::Both(both) => &mut both.0,
        }
    }

    /// The IPv6 peers, if there are any.
    pub(crate) fn v6(&self) -> Option<&PeerMap<PeerV6>> {
        match &self.peers {
            Peers::V4(_) => None,
            Peers::Both(both) => Some(&both.1),
        }
    }

    /// The IPv6 peers, boxed with the IPv4 ones if there were none yet.
    /// Leave no empty map behind: see [`drop_empty_v6`](Self::drop_empty_v6).
    pub(crate) fn v6_or_insert(&mut self) -> &mut PeerMap<PeerV6> {
        if let Peers::V4(v4) = &mut self.peers {
            self.peers = Peers::Both(Box::new((std::mem::take(v4), PeerMap::default())));
        }
        match &mut self.peers {
            Peers::Both(both) => &mut both.1,
            Peers::V4(_) => unreachable!("boxed just above"),
        }
    }

    /// Frees the box once the IPv6 peers are gone, the IPv4 ones back in
    /// the record.
    pub(crate) fn drop_empty_v6(&mut self) {
        if let Peers::Both(both) = &mut self.peers {
            if both.1.is_empty() {
                self.peers = Peers::V4(std::mem::take(&mut both.0));
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(&self.peers, Peers::V4(v4) if v4.is_empty())
    }

    /// Peers of all families held.
    pub fn peer_count(&self) -> usize {
        self.v4().len() + self.v6().map_or(0, PeerMap::len)
    }

    /// Drops peers last seen before `cutoff`, and the IPv6 map once empty.
    fn remove_older_than(&mut self, cutoff: u32) -> usize {
        let removed = match &mut self.peers {
            Peers::V4(v4) => v4.remove_older_than(cutoff),
            Peers::Both(both) => {
                both.0.remove_older_than(cutoff) + both.1.remove_older_than(cutoff)
            }
        };
        self.drop_empty_v6();
        removed
    }
}

/// A peer address of either family, the key of a peer in its swarm:
/// (IP, port), as BEP 15 clients behind one IP differ only by port.
pub trait PeerAddress: PeerKey {
    /// Index of this family in per-family tallies: 0 IPv4, 1 IPv6.
    const FAMILY: usize;
    /// The torrent's peers of this family, created if need be.
    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self>;
    /// Seeders of this family in the torrent.
    fn seeders(torrent: &Torrent) -> u32;
    /// Removes a peer; true if it was there.
    fn remove(torrent: &mut Torrent, peer: &Self) -> bool;
}

impl PeerAddress for PeerV4 {
    const FAMILY: usize = 0;

    fn seeders(torrent: &Torrent) -> u32 {
        torrent.v4().seeders()
    }

    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        torrent.v4_mut()
    }

    fn remove(torrent: &mut Torrent, peer: &Self) -> bool {
        torrent.v4_mut().remove(peer)
    }
}

impl PeerAddress for PeerV6 {
    const FAMILY: usize = 1;

    fn seeders(torrent: &Torrent) -> u32 {
        torrent.v6().map_or(0, PeerMap::seeders)
    }

    fn peers(torrent: &mut Torrent) -> &mut PeerMap<Self> {
        torrent.v6_or_insert()
    }

    fn remove(torrent: &mut Torrent, peer: &Self) -> bool {
        let removed = match &mut torrent.peers {
            Peers::V4(_) => false,
            Peers::Both(both) => both.1.remove(peer),
        };
        torrent.drop_empty_v6();
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

/// The torrents one request worker owns: the UDP/HTTP swarms, with their
/// limits and counters, and beside them the WebTorrent swarms
/// ([`WsSwarms`]), which keep their own.
#[derive(Debug)]
pub struct SwarmShard {
    pub(crate) torrents: TorrentMap,
    /// WebTorrent swarms: browsers reach each other only over WebRTC, so
    /// they are kept apart from the UDP/HTTP swarms of the same info hash.
    ws: WsSwarms,
    rng: fastrand::Rng,
    pub(crate) limits: SwarmLimits,
    /// UDP/HTTP peers held, kept in step with every insert and removal so
    /// a limit check costs a compare, and reset from the exact figure at
    /// each cleaning.
    pub(crate) peer_count: usize,
    /// Peers and seeders by family ([`PeerAddress::FAMILY`]), kept the same
    /// way, for the metrics.
    held: HeldPeers,
    /// Completed counts of torrents that have no peers left, so scrape
    /// `downloaded` survives a swarm going quiet; at most the torrent limit
    /// of them (24 bytes each against a live torrent's 48 with its first
    /// peer).
    pub(crate) retired: crate::torrent_table::TorrentTable<u32>,
    /// Announces with event=completed that counted (once per peer), both
    /// stores.
    completed: u64,
    /// UDP/HTTP announces refused, by [`Refusal::index`].
    refusals: RefusalTally,
}

/// UDP/HTTP peers and seeders held, by family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldPeers {
    pub peers: [usize; 2],
    pub seeders: [usize; 2],
}

impl HeldPeers {
    /// A peer count of `family` moved by the difference of two seeder
    /// counts of one torrent (before and after a change).
    fn track(&mut self, family: usize, inserted: bool, removed: bool, before: u32, after: u32) {
        self.peers[family] = self.peers[family] + usize::from(inserted) - usize::from(removed);
        self.seeders[family] = (self.seeders[family] + after as usize) - before as usize;
    }
}

impl Default for SwarmShard {
    fn default() -> Self {
        Self::new(fastrand::Rng::new())
    }
}

impl SwarmShard {
    pub fn new(rng: fastrand::Rng) -> Self {
        Self::with_limits(rng, SwarmLimits::UNLIMITED)
    }

    /// A shard that refuses new torrents and peers past `limits` (this
    /// shard's share: see [`SwarmLimits::per_shard`]).
    pub fn with_limits(mut rng: fastrand::Rng, limits: SwarmLimits) -> Self {
        let torrents = TorrentMap::default();
        Self {
            // Laid out like the torrents, so that a snapshot slice writes a
            // torrent whether it is live or retired at that moment.
            retired: crate::torrent_table::TorrentTable::laid_out_like(&torrents),
            torrents,
            ws: WsSwarms::new(rng.fork(), limits),
            rng,
            limits,
            peer_count: 0,
            held: HeldPeers::default(),
            completed: 0,
            refusals: RefusalTally::default(),
        }
    }

    /// UDP/HTTP peers and seeders held, by family.
    pub fn held(&self) -> HeldPeers {
        self.held
    }

    /// Announces with event=completed that counted, UDP/HTTP and
    /// WebTorrent.
    pub fn completed(&self) -> u64 {
        self.completed + self.ws.completed()
    }

    /// UDP/HTTP peers held.
    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Announces refused at a limit so far.
    pub fn refusals(&self) -> RefusalCounts {
        RefusalCounts {
            udp_http: self.refusals,
            ws: self.ws.refusals(),
        }
    }

    /// The WebTorrent swarms.
    pub fn ws(&self) -> &WsSwarms {
        &self.ws
    }

    /// Applies an announce at time `now` (coarse seconds) and appends up to
    /// `numwant` other peers of the same family to `peers_out`. A peer not
    /// held yet is refused past a limit; a known one never is.
    pub fn announce<P: PeerAddress>(
        &mut self,
        announce: &Announce<P>,
        now: u32,
        peers_out: &mut Vec<P>,
    ) -> Result<SwarmCounts, Refusal> {
        if announce.event == AnnounceEvent::Stopped {
            // A stopped peer wants nothing back but the counts; an unknown
            // torrent must not be created just to be emptied again.
            return Ok(match self.torrents.get_mut(&announce.info_hash) {
                Some(torrent) => {
                    let before = P::seeders(torrent);
                    let removed = P::remove(torrent, &announce.peer);
                    if removed {
                        self.peer_count -= 1;
                    }
                    let after = P::seeders(torrent);
                    self.held.track(P::FAMILY, false, removed, before, after);
                    torrent.counts()
                }
                None => SwarmCounts::default(),
            });
        }
        let limits = self.limits;
        let shard_peers = self.peer_count;
        // Only a shard at a limit pays the extra lookup: a new torrent
        // needs room for itself and for its first peer.
        if (self.torrents.len() >= limits.max_torrents || shard_peers >= limits.max_peers)
            && self.torrents.get(&announce.info_hash).is_none()
        {
            let refusal = if self.torrents.len() >= limits.max_torrents {
                Refusal::Torrents
            } else {
                Refusal::Peers
            };
            self.refusals[refusal.index()] += 1;
            return Err(refusal);
        }
        let retired = &mut self.retired;
        let info_hash = announce.info_hash;
        // A torrent back from the dead takes up its old count.
        let torrent = self
            .torrents
            .entry(info_hash)
            .or_insert_with(|| Torrent::with_completed(retired.remove(&info_hash).unwrap_or(0)));
        let torrent_peers = torrent.peer_count();
        let seeders_before = P::seeders(torrent);
        let upserted = P::peers(torrent).try_upsert_with(
            announce.peer,
            (),
            announce.seeder,
            announce.event == AnnounceEvent::Completed,
            now,
            |peers, peer| {
                if shard_peers >= limits.max_peers {
                    Err(Refusal::Peers)
                } else if torrent_peers >= limits.max_peers_per_torrent {
                    Err(Refusal::PeersPerTorrent)
                } else if peers.same_ip_count(peer) >= limits.max_peers_per_ip {
                    Err(Refusal::PeersPerIp)
                } else {
                    Ok(())
                }
            },
        );
        let upserted = match upserted {
            Ok(upserted) => upserted,
            Err(refusal) => {
                // A refused first IPv6 peer leaves no empty map behind.
                torrent.drop_empty_v6();
                self.refusals[refusal.index()] += 1;
                return Err(refusal);
            }
        };
        self.peer_count += usize::from(upserted.inserted);
        let seeders_after = P::seeders(torrent);
        self.held.track(
            P::FAMILY,
            upserted.inserted,
            false,
            seeders_before,
            seeders_after,
        );
        if upserted.completion {
            torrent.completed = torrent.completed.saturating_add(1);
            self.completed += 1;
        }
        P::peers(torrent).sample_into(
            Some(upserted.position),
            announce.numwant,
            &mut self.rng,
            peers_out,
        );
        Ok(torrent.counts())
    }

    pub fn scrape(&self, info_hash: &InfoHash) -> SwarmCounts {
        match self.torrents.get(info_hash) {
            Some(torrent) => torrent.counts(),
            // Only a miss pays the second lookup.
            None => SwarmCounts {
                completed: self.retired.get(info_hash).copied().unwrap_or(0),
                ..SwarmCounts::default()
            },
        }
    }

    /// Forgets peers last seen before `cutoff` and torrents left empty.
    /// An empty torrent that was ever completed leaves its count behind in
    /// [`retired`](Self::retired), while that holds fewer records than the
    /// torrent limit: beyond it the count goes too, so memory stays bounded.
    pub fn clean(&mut self, cutoff: u32) -> CleanReport {
        let mut report = CleanReport::default();
        let mut held = HeldPeers::default();
        let retired = &mut self.retired;
        let max_retired = self.limits.max_torrents;
        self.torrents.retain(|info_hash, torrent| {
            report.peers_removed += torrent.remove_older_than(cutoff);
            let keep = !torrent.is_empty();
            if !keep && torrent.completed > 0 && retired.len() < max_retired {
                *retired.get_or_insert_default(*info_hash) = torrent.completed;
            }
            if keep {
                report.peers_left += torrent.peer_count();
                held.peers[0] += torrent.v4().len();
                held.seeders[0] += torrent.v4().seeders() as usize;
                if let Some(v6) = torrent.v6() {
                    held.peers[1] += v6.len();
                    held.seeders[1] += v6.seeders() as usize;
                }
            } else {
                report.torrents_removed += 1;
            }
            keep
        });
        self.peer_count = report.peers_left;
        self.held = held;
        report.torrents_left = self.torrents.len();
        self.torrents.shrink();
        self.retired.shrink();
        report += self.ws.clean(cutoff);
        report
    }

    /// UDP/HTTP torrents held.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Torrents with no peers left whose completed count is kept.
    pub fn retired_count(&self) -> usize {
        self.retired.len()
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

    /// [`WsSwarms::announce`].
    pub fn ws_announce(
        &mut self,
        announce: &WsAnnounce,
        now: u32,
        targets: &mut Vec<WsTarget>,
    ) -> WsAnnounceOutcome {
        self.ws.announce(announce, now, targets)
    }

    /// [`WsSwarms::leave`].
    pub fn ws_leave(&mut self, info_hash: &InfoHash, peer_id: &PeerId, conn: ConnRef) {
        self.ws.leave(info_hash, peer_id, conn)
    }

    pub fn ws_scrape(&self, info_hash: &InfoHash) -> SwarmCounts {
        self.ws.scrape(info_hash)
    }

    /// WebTorrent torrents held.
    pub fn ws_torrent_count(&self) -> usize {
        self.ws.torrent_count()
    }

    /// [`full_scrape`](SwarmShard::full_scrape) of the WebTorrent swarms.
    pub fn ws_full_scrape(&self, limit: usize, out: &mut Vec<(InfoHash, SwarmCounts)>) -> usize {
        self.ws.full_scrape(limit, out)
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

    impl SwarmShard {
        /// Announces what must not be refused; the swarm's counts after it.
        fn admit<P: PeerAddress>(
            &mut self,
            announce: Announce<P>,
            now: u32,
            out: &mut Vec<P>,
        ) -> SwarmCounts {
            self.announce(&announce, now, out).unwrap()
        }
    }

    #[test]
    fn announce_returns_others_and_exact_counts() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        let c = shard.admit(ann(1, v4(1), AnnounceEvent::Started, false), 0, &mut out);
        assert_eq!((c.seeders, c.leechers), (0, 1));
        assert!(out.is_empty());
        shard.admit(ann(1, v4(2), AnnounceEvent::Started, true), 0, &mut out);
        assert_eq!(out, vec![v4(1)]);
        out.clear();
        let c = shard.admit(ann(1, v4(1), AnnounceEvent::None, false), 1, &mut out);
        assert_eq!(out, vec![v4(2)]);
        assert_eq!((c.seeders, c.leechers, c.completed), (1, 1, 0));
    }

    #[test]
    fn families_are_kept_apart_but_counted_together() {
        let mut shard = SwarmShard::default();
        let mut out4 = Vec::new();
        let mut out6 = Vec::new();
        shard.admit(ann(1, v4(1), AnnounceEvent::Started, true), 0, &mut out4);
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        let c = shard.admit(ann(1, p6, AnnounceEvent::Started, false), 0, &mut out6);
        assert!(out6.is_empty(), "a v6 requester gets no v4 peers");
        assert_eq!((c.seeders, c.leechers), (1, 1));
        shard.admit(ann(1, v4(2), AnnounceEvent::None, false), 0, &mut out4);
        assert_eq!(out4, vec![v4(1)]);
    }

    #[test]
    fn held_peers_by_family_and_role_follow_every_change() {
        let mut shard = SwarmShard::default();
        let (mut o4, mut o6) = (Vec::new(), Vec::new());
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        shard.admit(ann(1, v4(1), AnnounceEvent::Started, false), 10, &mut o4);
        shard.admit(ann(1, v4(2), AnnounceEvent::Started, true), 10, &mut o4);
        shard.admit(ann(2, p6, AnnounceEvent::Started, true), 10, &mut o6);
        let held = |s: &SwarmShard| (s.held().peers, s.held().seeders);
        assert_eq!(held(&shard), ([2, 1], [1, 1]));
        // A leecher completing becomes a seeder; re-announcing changes nothing.
        shard.admit(ann(1, v4(1), AnnounceEvent::Completed, true), 20, &mut o4);
        shard.admit(ann(1, v4(1), AnnounceEvent::None, true), 20, &mut o4);
        assert_eq!(held(&shard), ([2, 1], [2, 1]));
        assert_eq!(shard.completed(), 1);
        // Stopping a seeder; stopping it again changes nothing.
        shard.admit(ann(2, p6, AnnounceEvent::Stopped, true), 20, &mut o6);
        shard.admit(ann(2, p6, AnnounceEvent::Stopped, true), 20, &mut o6);
        assert_eq!(held(&shard), ([2, 0], [2, 0]));
        // Cleaning recounts: the peer last seen at 10 expires.
        shard.clean(15);
        assert_eq!(held(&shard), ([1, 0], [1, 0]));
    }

    #[test]
    fn stopped_and_completed() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        shard.admit(ann(1, v4(1), AnnounceEvent::Started, false), 0, &mut out);
        let c = shard.admit(ann(1, v4(1), AnnounceEvent::Completed, true), 0, &mut out);
        assert_eq!((c.seeders, c.leechers, c.completed), (1, 0, 1));
        let c = shard.admit(ann(1, v4(1), AnnounceEvent::Stopped, true), 0, &mut out);
        assert_eq!((c.seeders, c.leechers, c.completed), (0, 0, 1));
        let c = shard.admit(ann(9, v4(1), AnnounceEvent::Stopped, true), 0, &mut out);
        assert_eq!(c, SwarmCounts::default());
        assert_eq!(
            shard.torrent_count(),
            1,
            "stopping an unknown torrent creates nothing"
        );
    }

    #[test]
    fn a_peer_completing_twice_or_while_seeding_counts_once() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        shard.admit(ann(1, v4(1), AnnounceEvent::Started, false), 0, &mut out);
        shard.admit(ann(1, v4(1), AnnounceEvent::Completed, true), 1, &mut out);
        let c = shard.admit(ann(1, v4(1), AnnounceEvent::Completed, true), 2, &mut out);
        assert_eq!(c.completed, 1, "the same peer's second completed");
        shard.admit(ann(1, v4(2), AnnounceEvent::Started, true), 2, &mut out);
        shard.admit(ann(1, v4(2), AnnounceEvent::Completed, true), 3, &mut out);
        let c = shard.admit(ann(1, v4(2), AnnounceEvent::Completed, true), 3, &mut out);
        assert_eq!(c.completed, 2, "a seeder's completed counts once");
        let c = shard.admit(ann(1, v4(3), AnnounceEvent::Completed, true), 3, &mut out);
        assert_eq!(c.completed, 3, "another peer's counts");
        assert_eq!(shard.completed(), 3);
    }

    #[test]
    fn a_torrent_whose_peers_all_expired_keeps_its_completed_count() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        let hash = InfoHash([1; 20]);
        shard.admit(ann(1, v4(1), AnnounceEvent::Completed, true), 5, &mut out);
        shard.admit(ann(2, v4(1), AnnounceEvent::Started, false), 5, &mut out);
        let report = shard.clean(10);
        assert_eq!(report.torrents_removed, 2);
        assert_eq!((shard.torrent_count(), shard.retired_count()), (0, 1));
        let c = shard.scrape(&hash);
        assert_eq!((c.seeders, c.leechers, c.completed), (0, 0, 1));
        // Back to life, it counts on from there, and the record is gone.
        let c = shard.admit(ann(1, v4(2), AnnounceEvent::Completed, true), 20, &mut out);
        assert_eq!((c.seeders, c.completed), (1, 2));
        assert_eq!((shard.torrent_count(), shard.retired_count()), (1, 0));
        shard.clean(30);
        assert_eq!(shard.scrape(&hash).completed, 2);
    }

    #[test]
    fn kept_completed_counts_are_bounded_by_the_torrent_limit() {
        let mut shard = limited(SwarmLimits {
            max_torrents: 2,
            ..SwarmLimits::UNLIMITED
        });
        let mut out = Vec::new();
        for round in 0..3u8 {
            for hash in [2 * round + 1, 2 * round + 2] {
                shard.admit(
                    ann(hash, v4(1), AnnounceEvent::Completed, true),
                    5,
                    &mut out,
                );
            }
            shard.clean(10);
        }
        assert_eq!(shard.retired_count(), 2);
        let kept = (1..=6u8)
            .filter(|h| shard.scrape(&InfoHash([*h; 20])).completed == 1)
            .count();
        assert_eq!(kept, 2);
    }

    #[test]
    fn clean_expires_peers_and_frees_empty_torrents() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        shard.admit(ann(1, v4(1), AnnounceEvent::None, false), 5, &mut out);
        shard.admit(ann(2, v4(1), AnnounceEvent::None, false), 50, &mut out);
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
        shard.admit(ann(3, v4(1), AnnounceEvent::None, false), 0, &mut out);
        assert!(shard.torrents[&hash].v6().is_none());
        let mut out6 = Vec::new();
        let c = shard.admit(ann(3, p6, AnnounceEvent::None, true), 0, &mut out6);
        assert_eq!((c.seeders, c.leechers), (1, 1));
        assert!(shard.torrents[&hash].v6().is_some());
        let c = shard.admit(ann(3, p6, AnnounceEvent::Stopped, true), 0, &mut out6);
        assert_eq!((c.seeders, c.leechers), (0, 1));
        assert!(
            shard.torrents[&hash].v6().is_none(),
            "freed with its last peer"
        );
        shard.admit(ann(3, p6, AnnounceEvent::None, true), 5, &mut out6);
        shard.admit(ann(3, v4(1), AnnounceEvent::None, false), 50, &mut out);
        let report = shard.clean(10);
        assert_eq!(report.peers_removed, 1);
        assert!(
            shard.torrents[&hash].v6().is_none(),
            "freed when it expires"
        );
        assert_eq!(shard.scrape(&hash).leechers, 1);
    }

    #[test]
    fn a_torrent_record_stays_small() {
        // Half the memory of a million small swarms is this record; keep
        // it from growing back unnoticed.
        assert!(
            std::mem::size_of::<Torrent>() <= 24,
            "{}",
            std::mem::size_of::<Torrent>()
        );
    }

    #[test]
    fn numwant_is_exact_when_enough_peers_exist() {
        let mut shard = SwarmShard::default();
        let mut out = Vec::new();
        for port in 0..100 {
            shard.admit(ann(1, v4(port), AnnounceEvent::None, true), 0, &mut out);
        }
        for numwant in [0, 1, 30, 99, 150] {
            out.clear();
            let mut a = ann(1, v4(500), AnnounceEvent::None, false);
            a.numwant = numwant;
            shard.admit(a, 0, &mut out);
            assert_eq!(out.len(), numwant.min(100));
            assert!(!out.contains(&v4(500)));
        }
    }

    fn limited(limits: SwarmLimits) -> SwarmShard {
        SwarmShard::with_limits(fastrand::Rng::with_seed(1), limits)
    }

    fn peer_at(ip: u8, port: u16) -> PeerV4 {
        PeerV4::new(Ipv4Addr::new(10, 0, 0, ip), port)
    }

    #[test]
    fn torrent_limit_refuses_new_torrents_only() {
        let mut shard = limited(SwarmLimits {
            max_torrents: 2,
            ..SwarmLimits::UNLIMITED
        });
        let mut out = Vec::new();
        let none = AnnounceEvent::None;
        shard.admit(ann(1, v4(1), none, false), 5, &mut out);
        shard.admit(ann(2, v4(1), none, false), 50, &mut out);
        assert_eq!(
            shard.announce(&ann(3, v4(1), none, false), 50, &mut out),
            Err(Refusal::Torrents)
        );
        assert_eq!(shard.torrent_count(), 2);
        assert_eq!(shard.scrape(&InfoHash([3; 20])), SwarmCounts::default());
        // Existing swarms keep working: known and new peers alike.
        let c = shard.admit(ann(2, v4(1), none, true), 50, &mut out);
        assert_eq!(c.seeders, 1);
        let c = shard.admit(ann(2, v4(2), none, false), 50, &mut out);
        assert_eq!((c.seeders, c.leechers), (1, 1));
        // A stopped announce for a refused torrent is no error and makes none.
        let stopped = ann(3, v4(1), AnnounceEvent::Stopped, false);
        assert_eq!(
            shard.announce(&stopped, 50, &mut out),
            Ok(SwarmCounts::default())
        );
        // Torrent 1's only peer expires; its slot goes to torrent 3.
        shard.clean(10);
        assert_eq!(shard.torrent_count(), 1);
        shard.admit(ann(3, v4(1), none, false), 60, &mut out);
        assert_eq!(shard.refusals().udp_http, [1, 0, 0, 0]);
    }

    #[test]
    fn peer_limit_refuses_new_peers_and_frees_on_stop_and_expiry() {
        let mut shard = limited(SwarmLimits {
            max_peers: 3,
            ..SwarmLimits::UNLIMITED
        });
        let mut out = Vec::new();
        let none = AnnounceEvent::None;
        shard.admit(ann(1, v4(1), none, false), 5, &mut out);
        shard.admit(ann(1, v4(2), none, false), 50, &mut out);
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        shard.admit(ann(2, p6, none, false), 50, &mut out6());
        assert_eq!(shard.peer_count(), 3);
        let completed = ann(1, v4(3), AnnounceEvent::Completed, true);
        assert_eq!(
            shard.announce(&completed, 50, &mut out),
            Err(Refusal::Peers)
        );
        assert_eq!(
            shard.scrape(&InfoHash([1; 20])).completed,
            0,
            "a refused peer's completion is not counted"
        );
        assert_eq!(
            shard.announce(&ann(9, v4(1), none, false), 50, &mut out),
            Err(Refusal::Peers),
            "a new torrent needs room for its first peer"
        );
        assert_eq!(shard.torrent_count(), 2);
        let p6b = PeerV6::new(Ipv6Addr::LOCALHOST, 10);
        assert_eq!(
            shard.announce(&ann(2, p6b, none, false), 50, &mut out6()),
            Err(Refusal::Peers)
        );
        // Re-announces of every known peer still work.
        shard.admit(ann(1, v4(1), none, true), 50, &mut out);
        shard.admit(ann(2, p6, none, true), 50, &mut out6());
        // A stop frees a place...
        shard.admit(ann(1, v4(2), AnnounceEvent::Stopped, false), 50, &mut out);
        assert_eq!(shard.peer_count(), 2);
        shard.admit(ann(1, v4(3), none, false), 5, &mut out);
        assert_eq!(
            shard.announce(&ann(1, v4(4), none, false), 50, &mut out),
            Err(Refusal::Peers)
        );
        // ...and so does expiry.
        shard.clean(10);
        assert_eq!(shard.peer_count(), 2);
        shard.admit(ann(1, v4(4), none, false), 50, &mut out);
        assert_eq!(shard.refusals().udp_http, [0, 4, 0, 0]);
    }

    fn out6() -> Vec<PeerV6> {
        Vec::new()
    }

    #[test]
    fn per_torrent_limit_counts_both_families() {
        let mut shard = limited(SwarmLimits {
            max_peers_per_torrent: 3,
            ..SwarmLimits::UNLIMITED
        });
        let mut out = Vec::new();
        let none = AnnounceEvent::None;
        for port in 1..=3 {
            shard.admit(ann(1, v4(port), none, false), 50, &mut out);
        }
        let p6 = PeerV6::new(Ipv6Addr::LOCALHOST, 9);
        assert_eq!(
            shard.announce(&ann(1, p6, none, false), 50, &mut out6()),
            Err(Refusal::PeersPerTorrent)
        );
        assert!(
            shard.torrents[&InfoHash([1; 20])].v6().is_none(),
            "a refused first IPv6 peer leaves no map behind"
        );
        assert_eq!(
            shard.announce(&ann(1, v4(4), none, false), 50, &mut out),
            Err(Refusal::PeersPerTorrent)
        );
        // Other torrents are not affected; known peers re-announce.
        shard.admit(ann(2, v4(4), none, false), 50, &mut out);
        out.clear();
        shard.admit(ann(1, v4(3), none, true), 50, &mut out);
        assert_eq!(out.len(), 2);
        shard.admit(ann(1, v4(3), AnnounceEvent::Stopped, true), 50, &mut out);
        shard.admit(ann(1, p6, none, false), 50, &mut out6());
        assert_eq!(shard.refusals().udp_http, [0, 0, 2, 0]);
    }

    #[test]
    fn per_ip_limit_in_small_and_indexed_swarms() {
        let mut shard = limited(SwarmLimits {
            max_peers_per_ip: 2,
            ..SwarmLimits::UNLIMITED
        });
        let mut out = Vec::new();
        let none = AnnounceEvent::None;
        // A small swarm, scanned.
        shard.admit(ann(1, peer_at(1, 1), none, false), 50, &mut out);
        shard.admit(ann(1, peer_at(1, 2), none, false), 50, &mut out);
        assert_eq!(
            shard.announce(&ann(1, peer_at(1, 3), none, false), 50, &mut out),
            Err(Refusal::PeersPerIp)
        );
        shard.admit(ann(1, peer_at(2, 3), none, false), 50, &mut out);
        shard.admit(ann(2, peer_at(1, 3), none, false), 50, &mut out);
        shard.admit(ann(1, peer_at(1, 2), none, true), 50, &mut out);
        // Grown past the index threshold, the same limit from the index.
        for ip in 10..50 {
            shard.admit(ann(1, peer_at(ip, 1), none, false), 50, &mut out);
        }
        shard.admit(ann(1, peer_at(10, 2), none, false), 50, &mut out);
        assert_eq!(
            shard.announce(&ann(1, peer_at(10, 3), none, false), 50, &mut out),
            Err(Refusal::PeersPerIp)
        );
        assert_eq!(
            shard.announce(&ann(1, peer_at(1, 4), none, false), 50, &mut out),
            Err(Refusal::PeersPerIp)
        );
        shard.admit(
            ann(1, peer_at(10, 1), AnnounceEvent::Stopped, false),
            50,
            &mut out,
        );
        shard.admit(ann(1, peer_at(10, 3), none, false), 50, &mut out);
        assert_eq!(shard.refusals().udp_http, [0, 0, 0, 3]);
    }

    #[test]
    fn ws_swarms_are_apart_from_udp_http_and_expire() {
        let mut shard = SwarmShard::default();
        let mut targets = Vec::new();
        let ws = WsAnnounce {
            info_hash: InfoHash([7; 20]),
            peer_id: PeerId([1; 20]),
            conn: ConnRef::default(),
            event: AnnounceEvent::None,
            seeder: false,
            offers: 0,
            answer_to: None,
        };
        shard.ws_announce(&ws, 5, &mut targets);
        assert_eq!(shard.scrape(&InfoHash([7; 20])), SwarmCounts::default());
        assert_eq!(shard.ws_scrape(&InfoHash([7; 20])).leechers, 1);
        let mut full = Vec::new();
        assert_eq!(shard.ws_full_scrape(10, &mut full), 0);
        assert_eq!(full.len(), 1);
        let report = shard.clean(10);
        assert_eq!((report.peers_removed, report.torrents_removed), (1, 1));
        assert_eq!(shard.ws_torrent_count(), 0);
        assert_eq!(shard.ws().peer_count(), 0);
    }
}
