//! The swarm entries one WebSocket connection holds, so that closing it
//! removes every one of them.
//!
//! A connection may announce several peer ids, in one torrent or many: the
//! npm client and browsers share one socket per tracker among all their
//! clients. Each (torrent, peer id) pair is its own swarm entry, with its
//! own stop. Both caps are checked here, before the announce goes to a
//! request worker, so a refused announce changes nothing.

use hashbrown::HashMap;
use tracker_proto::{InfoHash, PeerId};

pub(crate) const TOO_MANY_TORRENTS: &str = "too many torrents on this connection";
pub(crate) const TOO_MANY_PEER_IDS: &str = "too many peer ids on this connection";

#[derive(Clone, Copy, Debug)]
struct Joined {
    seeder: bool,
}

#[derive(Debug, Default)]
pub(crate) struct WsPeers {
    joined: HashMap<(InfoHash, PeerId), Joined, foldhash::fast::RandomState>,
    /// Each distinct peer id of `joined` with how many entries use it; at
    /// most the per-connection cap long, so a scan is cheaper than a map.
    peer_ids: Vec<(PeerId, u32)>,
}

impl WsPeers {
    /// Whether the pair is seeding, if this connection announced it.
    pub(crate) fn seeder(&self, info_hash: &InfoHash, peer_id: &PeerId) -> Option<bool> {
        self.joined
            .get(&(*info_hash, *peer_id))
            .map(|joined| joined.seeder)
    }

    /// Why a pair this connection does not hold yet may not join: each
    /// (torrent, peer id) entry counts against `max_entries`, each distinct
    /// peer id against `max_peer_ids`.
    pub(crate) fn refuse_new(
        &self,
        peer_id: &PeerId,
        max_entries: usize,
        max_peer_ids: usize,
    ) -> Option<&'static str> {
        if self.joined.len() >= max_entries {
            return Some(TOO_MANY_TORRENTS);
        }
        let known = self.peer_ids.iter().any(|(id, _)| id == peer_id);
        (!known && self.peer_ids.len() >= max_peer_ids).then_some(TOO_MANY_PEER_IDS)
    }

    pub(crate) fn join(&mut self, info_hash: InfoHash, peer_id: PeerId, seeder: bool) {
        if self
            .joined
            .insert((info_hash, peer_id), Joined { seeder })
            .is_some()
        {
            return;
        }
        match self.peer_ids.iter_mut().find(|(id, _)| *id == peer_id) {
            Some((_, uses)) => *uses += 1,
            None => self.peer_ids.push((peer_id, 1)),
        }
    }

    pub(crate) fn leave(&mut self, info_hash: &InfoHash, peer_id: &PeerId) {
        if self.joined.remove(&(*info_hash, *peer_id)).is_none() {
            return;
        }
        if let Some(i) = self.peer_ids.iter().position(|(id, _)| id == peer_id) {
            self.peer_ids[i].1 -= 1;
            if self.peer_ids[i].1 == 0 {
                self.peer_ids.swap_remove(i);
            }
        }
    }

    /// Every pair, forgotten here as it is handed out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (InfoHash, PeerId)> + '_ {
        self.peer_ids.clear();
        self.joined.drain().map(|(pair, _)| pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn p(n: u8) -> PeerId {
        PeerId([n; 20])
    }

    #[test]
    fn caps_count_entries_and_distinct_peer_ids() {
        let mut peers = WsPeers::default();
        peers.join(h(1), p(1), false);
        peers.join(h(1), p(2), true);
        peers.join(h(2), p(1), false);
        assert_eq!(peers.seeder(&h(1), &p(2)), Some(true));
        assert_eq!(peers.seeder(&h(2), &p(2)), None);
        assert_eq!(peers.refuse_new(&p(3), 4, 2), Some(TOO_MANY_PEER_IDS));
        assert_eq!(
            peers.refuse_new(&p(2), 4, 2),
            None,
            "a known id may join more"
        );
        assert_eq!(peers.refuse_new(&p(2), 3, 2), Some(TOO_MANY_TORRENTS));
        // Leaving the last entry of an id frees its place.
        peers.leave(&h(1), &p(2));
        peers.leave(&h(1), &p(2));
        assert_eq!(peers.refuse_new(&p(3), 4, 2), None);
        // Leaving one of two entries of an id keeps it counted.
        peers.leave(&h(1), &p(1));
        peers.join(h(3), p(3), false);
        assert_eq!(peers.refuse_new(&p(4), 4, 2), Some(TOO_MANY_PEER_IDS));
        let mut all: Vec<_> = peers.drain().collect();
        all.sort_by_key(|(hash, _)| hash.0);
        assert_eq!(all, [(h(2), p(1)), (h(3), p(3))]);
        assert_eq!(peers.refuse_new(&p(9), 1, 1), None);
    }
}
