//! The offers relayed to one WebSocket connection that it may still answer.
//!
//! An answer is relayed only when it answers an offer this connection was
//! actually sent (same offer id, from the peer the answer goes to, in the
//! same torrent) and not too long ago. Without this check any client could
//! push arbitrary "answers" at any peer id it learns.

use std::collections::VecDeque;

use tracker_proto::ws::OfferId;
use tracker_proto::{InfoHash, PeerId};

#[derive(Clone, Debug)]
struct Pending {
    offer_id: OfferId,
    from: PeerId,
    info_hash: InfoHash,
    /// Clock seconds when it was delivered.
    at: u32,
}

/// A bounded, oldest-first table of offers awaiting an answer.
#[derive(Debug, Default)]
pub(crate) struct PendingOffers {
    entries: VecDeque<Pending>,
}

impl PendingOffers {
    /// Records an offer delivered at `now`, forgetting the oldest beyond
    /// `max` entries.
    pub(crate) fn insert(
        &mut self,
        offer_id: OfferId,
        from: PeerId,
        info_hash: InfoHash,
        now: u32,
        max: usize,
    ) {
        if max == 0 {
            return;
        }
        while self.entries.len() >= max {
            self.entries.pop_front();
        }
        self.entries.push_back(Pending {
            offer_id,
            from,
            info_hash,
            at: now,
        });
    }

    /// Takes the offer an answer answers: true if it was pending and at
    /// most `timeout` seconds old. Expired entries go on the way.
    pub(crate) fn take(
        &mut self,
        offer_id: &OfferId,
        from: &PeerId,
        info_hash: &InfoHash,
        now: u32,
        timeout: u32,
    ) -> bool {
        // Entries are in delivery order, so the expired ones are in front.
        while self
            .entries
            .front()
            .is_some_and(|p| now.saturating_sub(p.at) > timeout)
        {
            self.entries.pop_front();
        }
        let found = self
            .entries
            .iter()
            .position(|p| p.offer_id == *offer_id && p.from == *from && p.info_hash == *info_hash);
        match found {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> OfferId {
        OfferId::from_binary(&[n; 20])
    }

    #[test]
    fn answers_only_what_was_offered() {
        let mut t = PendingOffers::default();
        let (a, b) = (PeerId([1; 20]), PeerId([2; 20]));
        let (h, g) = (InfoHash([7; 20]), InfoHash([8; 20]));
        t.insert(id(1), a, h, 10, 8);
        assert!(!t.take(&id(1), &b, &h, 10, 60), "wrong sender");
        assert!(!t.take(&id(1), &a, &g, 10, 60), "wrong torrent");
        assert!(!t.take(&id(2), &a, &h, 10, 60), "wrong offer");
        assert!(t.take(&id(1), &a, &h, 11, 60));
        assert!(!t.take(&id(1), &a, &h, 11, 60), "an offer is answered once");
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn oldest_go_first_when_full() {
        let mut t = PendingOffers::default();
        let a = PeerId([1; 20]);
        let h = InfoHash([7; 20]);
        for n in 0..5 {
            t.insert(id(n), a, h, 0, 3);
        }
        assert_eq!(t.len(), 3);
        assert!(!t.take(&id(0), &a, &h, 0, 60));
        assert!(!t.take(&id(1), &a, &h, 0, 60));
        assert!(t.take(&id(3), &a, &h, 0, 60));
        assert!(t.take(&id(2), &a, &h, 0, 60));
        assert!(t.take(&id(4), &a, &h, 0, 60));
        t.insert(id(9), a, h, 0, 0);
        assert_eq!(t.len(), 0, "a zero cap keeps nothing");
    }

    #[test]
    fn offers_expire() {
        let mut t = PendingOffers::default();
        let a = PeerId([1; 20]);
        let h = InfoHash([7; 20]);
        t.insert(id(1), a, h, 100, 8);
        t.insert(id(2), a, h, 130, 8);
        assert!(!t.take(&id(1), &a, &h, 161, 60), "61 s old");
        assert_eq!(t.len(), 1, "the expired entry went");
        assert!(
            t.take(&id(2), &a, &h, 190, 60),
            "exactly 60 s old still counts"
        );
    }

    #[test]
    fn odd_offer_ids_match_exactly() {
        let mut t = PendingOffers::default();
        let a = PeerId([1; 20]);
        let h = InfoHash([7; 20]);
        let long = OfferId::new(&"x".repeat(100));
        let short = OfferId::new("abc");
        t.insert(long.clone(), a, h, 0, 8);
        t.insert(short.clone(), a, h, 0, 8);
        assert!(t.take(&short, &a, &h, 0, 60));
        assert!(t.take(&long, &a, &h, 0, 60));
    }
}
