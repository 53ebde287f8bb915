//! WebTorrent swarms: peers are WebSocket connections, not addresses.
//!
//! The request worker only decides who talks to whom. It keeps, per
//! torrent, each peer's id and the connection it announced on, picks the
//! peers an announce's offers go to, and finds the connection an answer goes
//! back to. The offers and answers themselves (SDP, often kilobytes) never
//! come here: the socket worker that read them forwards them to the
//! connections named in the results, so the swarm side copies 40 bytes per
//! target instead of the payload.
//!
//! A connection may hold several peer ids, even in one torrent (the npm
//! client and browsers share one socket among all their clients), and a
//! peer id in a swarm belongs to the connection that announced it until
//! that connection stops, closes or the entry expires: another connection
//! claiming it is refused, or it could take the owner's offers and, by
//! closing, remove the owner from the swarm.

use tracker_proto::{AnnounceEvent, InfoHash, PeerId};

use crate::counts::{CleanReport, RefusalTally, SwarmCounts};
use crate::limits::{Refusal, SwarmLimits};
use crate::peer_map::PeerMap;

/// A WebSocket connection, wherever it lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// Which socket worker holds it (its front-end index).
    pub front_end: u32,
    /// The connection's slot in that worker.
    pub token: u32,
    /// Bumped each time the slot is reused, so a message for a connection
    /// that has closed is not delivered to the one that took its slot.
    pub generation: u32,
}

/// A peer an offer goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsTarget {
    pub peer_id: PeerId,
    pub conn: ConnRef,
}

/// One WebTorrent announce, as the request worker needs it.
#[derive(Clone, Copy, Debug)]
pub struct WsAnnounce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub conn: ConnRef,
    pub event: AnnounceEvent,
    /// `left == 0`.
    pub seeder: bool,
    /// How many other peers should get one of this announce's offers:
    /// already the least of its offers, its numwant and the config's cap.
    pub offers: usize,
    /// For an announce carrying an answer: the peer the answer is for.
    pub answer_to: Option<PeerId>,
}

#[derive(Debug, Default)]
pub struct WsTorrent {
    peers: PeerMap<PeerId, ConnRef>,
    completed: u32,
}

impl WsTorrent {
    pub fn counts(&self) -> SwarmCounts {
        SwarmCounts {
            seeders: self.peers.seeders(),
            leechers: self.peers.leechers(),
            completed: self.completed,
        }
    }
}

type WsTorrentMap = crate::torrent_table::TorrentTable<WsTorrent>;

/// What a WebTorrent announce produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WsAnnounceOutcome {
    pub counts: SwarmCounts,
    /// Where the answer goes: `None` when the peer it is for has gone.
    pub answer_target: Option<ConnRef>,
    /// The peer id belongs to another connection: nothing was changed, no
    /// offer or answer goes anywhere.
    pub peer_id_taken: bool,
    /// Set when a new torrent or peer was refused at a limit: the
    /// announce changed nothing and goes nowhere.
    pub refused: Option<Refusal>,
}

/// The WebTorrent swarms of one shard, with their own limits and
/// counters: browsers reach each other only over WebRTC, so these are kept
/// apart from the UDP/HTTP swarms of the same info hash, and a flood of one
/// protocol cannot lock the other out.
#[derive(Debug)]
pub struct WsSwarms {
    torrents: WsTorrentMap,
    rng: fastrand::Rng,
    /// This shard's share; only the WebTorrent and per-torrent caps apply.
    limits: SwarmLimits,
    /// Peers held, kept in step with every insert and removal so a limit
    /// check costs a compare, and reset from the exact figure at each
    /// cleaning.
    peer_count: usize,
    /// Seeders held, kept the same way, for the metrics.
    seeder_count: usize,
    /// Announces with event=completed that counted.
    completed: u64,
    refusals: RefusalTally,
}

impl Default for WsSwarms {
    fn default() -> Self {
        Self::new(fastrand::Rng::new(), SwarmLimits::UNLIMITED)
    }
}

impl WsSwarms {
    /// Swarms that refuse new torrents and peers past `limits`; `rng`
    /// picks the peers offers go to.
    pub fn new(rng: fastrand::Rng, limits: SwarmLimits) -> Self {
        Self {
            torrents: WsTorrentMap::default(),
            rng,
            limits,
            peer_count: 0,
            seeder_count: 0,
            completed: 0,
            refusals: RefusalTally::default(),
        }
    }

    /// Seeders held.
    pub fn seeder_count(&self) -> usize {
        self.seeder_count
    }

    /// Announces with event=completed that counted.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Announces refused at a limit so far, by [`Refusal::index`].
    pub fn refusals(&self) -> RefusalTally {
        self.refusals
    }

    /// Peers held.
    pub fn peer_count(&self) -> usize {
        self.peer_count
    }

    /// Applies a WebTorrent announce at `now` and appends the peers its
    /// offers go to (never the announcer) to `targets`.
    pub fn announce(
        &mut self,
        announce: &WsAnnounce,
        now: u32,
        targets: &mut Vec<WsTarget>,
    ) -> WsAnnounceOutcome {
        let limits = self.limits;
        if announce.event != AnnounceEvent::Stopped
            && (self.torrents.len() >= limits.max_ws_torrents
                || self.peer_count >= limits.max_ws_peers)
            && self.torrents.get(&announce.info_hash).is_none()
        {
            let refusal = if self.torrents.len() >= limits.max_ws_torrents {
                Refusal::Torrents
            } else {
                Refusal::Peers
            };
            self.refusals[refusal.index()] += 1;
            return WsAnnounceOutcome {
                refused: Some(refusal),
                ..Default::default()
            };
        }
        let Some(torrent) = (match announce.event {
            // A stopped peer must not create a torrent just to leave it.
            AnnounceEvent::Stopped => self.torrents.get_mut(&announce.info_hash),
            _ => Some(self.torrents.entry(announce.info_hash).or_default()),
        }) else {
            return WsAnnounceOutcome::default();
        };
        if torrent
            .peers
            .get(&announce.peer_id)
            .is_some_and(|entry| entry.value != announce.conn)
        {
            return WsAnnounceOutcome {
                counts: torrent.counts(),
                answer_target: None,
                peer_id_taken: true,
                refused: None,
            };
        }
        // Resolved before the announcer's own entry changes, and only to a
        // peer that is still in the swarm: an answer to a peer that left is
        // dropped rather than sent to whoever reuses its id.
        let answer_target = announce
            .answer_to
            .and_then(|to| torrent.peers.get(&to))
            .map(|entry| entry.value);
        let seeders_before = torrent.peers.seeders() as usize;
        if announce.event == AnnounceEvent::Stopped {
            if torrent
                .peers
                .remove_if(&announce.peer_id, |entry| entry.value == announce.conn)
            {
                self.peer_count -= 1;
            }
            self.seeder_count =
                self.seeder_count + torrent.peers.seeders() as usize - seeders_before;
            return WsAnnounceOutcome {
                counts: torrent.counts(),
                answer_target,
                peer_id_taken: false,
                refused: None,
            };
        }
        let held = self.peer_count;
        let upserted = torrent.peers.try_upsert_with(
            announce.peer_id,
            announce.conn,
            announce.seeder,
            announce.event == AnnounceEvent::Completed,
            now,
            |peers, _| {
                if held >= limits.max_ws_peers {
                    Err(Refusal::Peers)
                } else if peers.len() >= limits.max_peers_per_torrent {
                    Err(Refusal::PeersPerTorrent)
                } else {
                    Ok(())
                }
            },
        );
        let upserted = match upserted {
            Ok(upserted) => {
                self.peer_count += usize::from(upserted.inserted);
                self.seeder_count =
                    self.seeder_count + torrent.peers.seeders() as usize - seeders_before;
                upserted
            }
            // No offers go out and no answer is relayed for a peer the
            // swarm does not hold.
            Err(refusal) => {
                self.refusals[refusal.index()] += 1;
                return WsAnnounceOutcome {
                    counts: torrent.counts(),
                    answer_target: None,
                    peer_id_taken: false,
                    refused: Some(refusal),
                };
            }
        };
        if upserted.completion {
            torrent.completed = torrent.completed.saturating_add(1);
            self.completed += 1;
        }
        if announce.offers > 0 {
            torrent.peers.sample_with(
                Some(upserted.position),
                announce.offers,
                &mut self.rng,
                |entry| {
                    targets.push(WsTarget {
                        peer_id: entry.key,
                        conn: entry.value,
                    })
                },
            );
        }
        WsAnnounceOutcome {
            counts: torrent.counts(),
            answer_target,
            peer_id_taken: false,
            refused: None,
        }
    }

    /// A connection closed: forget the peer it announced, unless the peer
    /// has since announced from another connection.
    pub fn leave(&mut self, info_hash: &InfoHash, peer_id: &PeerId, conn: ConnRef) {
        if let Some(torrent) = self.torrents.get_mut(info_hash) {
            let seeders_before = torrent.peers.seeders() as usize;
            if torrent
                .peers
                .remove_if(peer_id, |entry| entry.value == conn)
            {
                self.peer_count -= 1;
                self.seeder_count =
                    self.seeder_count + torrent.peers.seeders() as usize - seeders_before;
            }
            if torrent.peers.is_empty() {
                self.torrents.remove(info_hash);
            }
        }
    }

    pub fn scrape(&self, info_hash: &InfoHash) -> SwarmCounts {
        self.torrents
            .get(info_hash)
            .map(WsTorrent::counts)
            .unwrap_or_default()
    }

    /// Torrents held.
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Up to `limit` torrents with their counts, appended to `out` (for a
    /// full scrape); returns how many torrents were left out.
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

    /// Forgets peers last seen before `cutoff` and torrents left empty.
    pub fn clean(&mut self, cutoff: u32) -> CleanReport {
        let mut report = CleanReport::default();
        let mut seeders = 0;
        self.torrents.retain(|_, torrent| {
            report.peers_removed += torrent.peers.remove_older_than(cutoff);
            let keep = !torrent.peers.is_empty();
            if keep {
                report.peers_left += torrent.peers.len();
                seeders += torrent.peers.seeders() as usize;
            } else {
                report.torrents_removed += 1;
            }
            keep
        });
        self.peer_count = report.peers_left;
        self.seeder_count = seeders;
        report.torrents_left = self.torrents.len();
        self.torrents.shrink();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(token: u32) -> ConnRef {
        ConnRef {
            front_end: 0,
            token,
            generation: 1,
        }
    }

    fn ann(peer: u8, token: u32, offers: usize) -> WsAnnounce {
        WsAnnounce {
            info_hash: InfoHash([7; 20]),
            peer_id: PeerId([peer; 20]),
            conn: conn(token),
            event: AnnounceEvent::None,
            seeder: false,
            offers,
            answer_to: None,
        }
    }

    #[test]
    fn offers_go_to_others_only_and_answers_find_their_peer() {
        let mut swarms = WsSwarms::default();
        let mut targets = Vec::new();
        for peer in 1..=5 {
            swarms.announce(&ann(peer, u32::from(peer), 0), 0, &mut targets);
        }
        assert!(targets.is_empty());
        let outcome = swarms.announce(&ann(6, 6, 3), 0, &mut targets);
        assert_eq!(outcome.counts.leechers, 6);
        assert_eq!(targets.len(), 3);
        assert!(targets.iter().all(|t| t.peer_id != PeerId([6; 20])));
        for t in &targets {
            assert_eq!(t.conn.token, u32::from(t.peer_id.0[0]));
        }
        targets.clear();
        let mut answer = ann(2, 2, 0);
        answer.answer_to = Some(PeerId([6; 20]));
        let outcome = swarms.announce(&answer, 0, &mut targets);
        assert_eq!(outcome.answer_target, Some(conn(6)));
        answer.answer_to = Some(PeerId([99; 20]));
        let outcome = swarms.announce(&answer, 0, &mut targets);
        assert_eq!(outcome.answer_target, None, "unknown peer: nowhere to go");
    }

    #[test]
    fn more_offers_than_peers_reaches_every_other_peer_once() {
        let mut swarms = WsSwarms::default();
        let mut targets = Vec::new();
        swarms.announce(&ann(1, 1, 10), 0, &mut targets);
        swarms.announce(&ann(2, 2, 10), 0, &mut targets);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].peer_id, PeerId([1; 20]));
    }

    #[test]
    fn one_connection_keeps_every_peer_id_it_announces() {
        let mut swarms = WsSwarms::default();
        let mut targets = Vec::new();
        swarms.announce(&ann(1, 1, 0), 0, &mut targets);
        let outcome = swarms.announce(&ann(2, 1, 0), 0, &mut targets);
        assert_eq!(outcome.counts.leechers, 2, "a second id adds a peer");
        // A third peer's offers reach both ids, on the one connection.
        swarms.announce(&ann(3, 3, 10), 0, &mut targets);
        let mut got: Vec<_> = targets.iter().map(|t| (t.peer_id.0[0], t.conn)).collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(got, [(1, conn(1)), (2, conn(1))]);
        // Answers find each id.
        let mut answer = ann(3, 3, 0);
        answer.answer_to = Some(PeerId([2; 20]));
        let outcome = swarms.announce(&answer, 0, &mut targets);
        assert_eq!(outcome.answer_target, Some(conn(1)));
        // Each id stops and leaves on its own.
        let mut stop = ann(1, 1, 0);
        stop.event = AnnounceEvent::Stopped;
        let outcome = swarms.announce(&stop, 0, &mut targets);
        assert_eq!(outcome.counts.leechers, 2);
        swarms.leave(&InfoHash([7; 20]), &PeerId([2; 20]), conn(1));
        assert_eq!(swarms.scrape(&InfoHash([7; 20])).leechers, 1);
    }

    #[test]
    fn a_peer_id_belongs_to_the_connection_that_announced_it_first() {
        let mut swarms = WsSwarms::default();
        let mut targets = Vec::new();
        swarms.announce(&ann(1, 1, 0), 0, &mut targets);
        // Connection 9 claims peer 1, with offers, an answer and a stop:
        // each is refused and changes nothing.
        let mut claim = ann(1, 9, 5);
        claim.seeder = true;
        swarms.announce(&ann(2, 2, 0), 0, &mut targets);
        claim.answer_to = Some(PeerId([2; 20]));
        let outcome = swarms.announce(&claim, 0, &mut targets);
        assert!(outcome.peer_id_taken);
        assert_eq!(outcome.answer_target, None);
        assert!(targets.is_empty(), "no offers from a refused announce");
        assert_eq!((outcome.counts.seeders, outcome.counts.leechers), (0, 2));
        claim.event = AnnounceEvent::Stopped;
        assert!(swarms.announce(&claim, 0, &mut targets).peer_id_taken);
        swarms.leave(&InfoHash([7; 20]), &PeerId([1; 20]), conn(9));
        // The owner still gets offers.
        swarms.announce(&ann(3, 3, 10), 0, &mut targets);
        assert!(targets.contains(&WsTarget {
            peer_id: PeerId([1; 20]),
            conn: conn(1)
        }));
        // Once the owner stops, the id is free for another connection.
        let mut stop = ann(1, 1, 0);
        stop.event = AnnounceEvent::Stopped;
        assert!(!swarms.announce(&stop, 0, &mut targets).peer_id_taken);
        let outcome = swarms.announce(&ann(1, 9, 0), 0, &mut targets);
        assert!(!outcome.peer_id_taken);
        assert_eq!(outcome.counts.leechers, 3);
        // The same id in another torrent is another swarm's business.
        let mut elsewhere = ann(1, 1, 0);
        elsewhere.info_hash = InfoHash([8; 20]);
        assert!(!swarms.announce(&elsewhere, 0, &mut targets).peer_id_taken);
    }

    #[test]
    fn stopped_completed_and_leave() {
        let mut swarms = WsSwarms::default();
        let mut targets = Vec::new();
        let mut a = ann(1, 1, 0);
        a.event = AnnounceEvent::Completed;
        a.seeder = true;
        let outcome = swarms.announce(&a, 0, &mut targets);
        assert_eq!(
            (
                outcome.counts.seeders,
                outcome.counts.leechers,
                outcome.counts.completed
            ),
            (1, 0, 1)
        );
        swarms.announce(&ann(2, 2, 0), 0, &mut targets);
        a.event = AnnounceEvent::Stopped;
        let outcome = swarms.announce(&a, 0, &mut targets);
        assert_eq!((outcome.counts.seeders, outcome.counts.leechers), (0, 1));
        // A leave from a stale connection keeps the peer.
        swarms.leave(&InfoHash([7; 20]), &PeerId([2; 20]), conn(3));
        assert_eq!(swarms.scrape(&InfoHash([7; 20])).leechers, 1);
        swarms.leave(&InfoHash([7; 20]), &PeerId([2; 20]), conn(2));
        assert_eq!(swarms.torrent_count(), 0, "an emptied torrent goes");
        let mut stop_unknown = ann(5, 5, 0);
        stop_unknown.event = AnnounceEvent::Stopped;
        swarms.announce(&stop_unknown, 0, &mut targets);
        assert_eq!(swarms.torrent_count(), 0);
    }

    #[test]
    fn ws_limits_refuse_new_entries_and_free_on_leave() {
        let mut swarms = WsSwarms::new(
            fastrand::Rng::with_seed(1),
            SwarmLimits {
                max_ws_torrents: 1,
                max_ws_peers: 3,
                max_peers_per_torrent: 2,
                ..SwarmLimits::UNLIMITED
            },
        );
        let mut targets = Vec::new();
        swarms.announce(&ann(1, 1, 0), 0, &mut targets);
        swarms.announce(&ann(2, 2, 0), 0, &mut targets);
        let full = swarms.announce(&ann(3, 3, 5), 0, &mut targets);
        assert_eq!(full.refused, Some(Refusal::PeersPerTorrent));
        assert!(targets.is_empty(), "a refused peer sends no offers");
        let mut other = ann(3, 3, 0);
        other.info_hash = InfoHash([8; 20]);
        let outcome = swarms.announce(&other, 0, &mut targets);
        assert_eq!(outcome.refused, Some(Refusal::Torrents));
        assert_eq!(swarms.torrent_count(), 1);
        // Known peers re-announce, offers included.
        let outcome = swarms.announce(&ann(1, 1, 5), 0, &mut targets);
        assert_eq!((outcome.refused, targets.len()), (None, 1));
        // A leave frees a place.
        swarms.leave(&InfoHash([7; 20]), &PeerId([2; 20]), conn(2));
        assert_eq!(
            swarms.announce(&ann(3, 3, 0), 0, &mut targets).refused,
            None
        );
        assert_eq!(swarms.refusals(), [1, 0, 1, 0]);
    }
}
